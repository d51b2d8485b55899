#ifndef SEQUENT_OPS_OP_UTIL_H_
#define SEQUENT_OPS_OP_UTIL_H_

// Helpers shared by the op families: dtype dispatch and common shape-rule checks.

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

}  // namespace sequent::ops

#endif  // SEQUENT_OPS_OP_UTIL_H_
