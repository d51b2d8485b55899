#ifndef SEQUENT_OPS_OP_UTIL_H_
#define SEQUENT_OPS_OP_UTIL_H_

// Helpers shared by the op families: dtype dispatch and common shape-rule checks.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace sequent::ops {

// Calls f(T{}) with T = float or double for f32/f64; other dtypes are an error naming `op`.
template <typename F>
absl::Status DispatchFloat(DType dtype, absl::string_view op, F&& f) {
  switch (dtype) {
    case DType::kF32:
      return f(float{});
    case DType::kF64:
      return f(double{});
    default:
      return absl::UnimplementedError(absl::StrCat("[", op, "] the reference kernel has no ",
                                                   DTypeName(dtype), " version"));
  }
}

// "x must be a floating-point tensor, got i32[N]".
absl::Status ExpectFloating(const TensorType& type, absl::string_view what);
// "x must have rank 2, got f32[N,3,4]".
absl::Status ExpectRank(const TensorType& type, int rank, absl::string_view what);

// Index helpers for reference kernels (row-major, static shapes).

// Element strides of a row-major tensor of `shape`: the last dimension has stride 1.
std::vector<int64_t> RowMajorStrides(const Shape& shape);

// Strides for reading an input of shape `in` that numpy-broadcasts to `out`: one entry per
// dimension of `out`, 0 where `in` has size 1 or lacks the dimension.
std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out);

// The element of the input that output element `out_index` reads, given `strides` from
// BroadcastStrides (or any per-output-dimension strides).
int64_t BroadcastSourceIndex(int64_t out_index, const Shape& out,
                             const std::vector<int64_t>& strides);

}  // namespace sequent::ops

#endif  // SEQUENT_OPS_OP_UTIL_H_
