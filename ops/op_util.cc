#include "ops/op_util.h"

namespace sequent::ops {

absl::Status ExpectFloating(const TensorType& type, absl::string_view what) {
  if (IsFloating(type.dtype)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must be a floating-point tensor, got ", type.ToString()));
}

absl::Status ExpectRank(const TensorType& type, int rank, absl::string_view what) {
  if (type.shape.rank() == rank) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must have rank ", rank, ", got ", type.ToString()));
}

std::vector<int64_t> RowMajorStrides(const Shape& shape) {
  std::vector<int64_t> strides(shape.rank());
  int64_t stride = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[i] = stride;
    stride *= shape.dim(i);
  }
  return strides;
}

std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  const std::vector<int64_t> in_strides = RowMajorStrides(in);
  std::vector<int64_t> strides(out.rank(), 0);
  const int offset = out.rank() - in.rank();
  for (int i = 0; i < in.rank(); ++i) {
    if (in.dim(i) != 1) strides[offset + i] = in_strides[i];
  }
  return strides;
}

int64_t BroadcastSourceIndex(int64_t out_index, const Shape& out,
                             const std::vector<int64_t>& strides) {
  int64_t source = 0;
  for (int i = out.rank() - 1; i >= 0; --i) {
    const int64_t d = out.dim(i);
    source += (out_index % d) * strides[i];
    out_index /= d;
  }
  return source;
}

}  // namespace sequent::ops
