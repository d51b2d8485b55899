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

}  // namespace sequent::ops
