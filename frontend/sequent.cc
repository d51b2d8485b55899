#include "frontend/sequent.h"

#include "absl/strings/str_cat.h"

namespace sequent {

Tensor argmax(const Tensor& x) {
  if (x.shape().rank() != 2) {
    throw Error(
        absl::StrCat("argmax expects a 2-D tensor (samples, classes), got ",
                     x.type().ToString()));
  }
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  Tensor out(DType::kI32, Shape{rows});
  for (int64_t r = 0; r < rows; ++r) {
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c) {
      if (x.GetAsDouble(r * cols + c) > x.GetAsDouble(r * cols + best))
        best = c;
    }
    out.data<int32_t>()[r] = static_cast<int32_t>(best);
  }
  return out;
}

}  // namespace sequent
