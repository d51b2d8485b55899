// Op family `reduce`: sum, mean and max over a set of axes.

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attribute.h"
#include "core/status_macros.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

enum class Reduction { kSum, kMean, kMax };

// The reduced axes as a per-dimension mask; `axes` empty means every axis.
absl::StatusOr<std::vector<bool>> ReducedMask(const TensorType& x,
                                              const Attributes& attrs) {
  const std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
  const int rank = x.shape.rank();
  std::vector<bool> mask(rank, axes.empty());
  for (int64_t axis : axes) {
    if (axis < -rank || axis >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("axis ", axis, " of axes [", absl::StrJoin(axes, ", "),
                       "] is out of range for ", x.ToString()));
    }
    const int a = static_cast<int>(axis < 0 ? axis + rank : axis);
    if (mask[a]) {
      return absl::InvalidArgumentError(
          absl::StrCat("axes [", absl::StrJoin(axes, ", "), "] name dimension ",
                       a, " of ", x.ToString(), " twice"));
    }
    mask[a] = true;
  }
  return mask;
}

OpDef MakeReduce(std::string name, Reduction reduction) {
  OpDef def;
  def.name = name;
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"axes", AttrValue(std::vector<int64_t>{})},
               {"keepdims", AttrValue(false)}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
    SEQUENT_ASSIGN_OR_RETURN(std::vector<bool> mask, ReducedMask(x, attrs));
    const bool keepdims = BoolAttrOr(attrs, "keepdims", false);
    std::vector<int64_t> dims;
    for (int i = 0; i < x.shape.rank(); ++i) {
      if (!mask[i]) {
        dims.push_back(x.shape[i]);
      } else if (keepdims) {
        dims.push_back(1);
      }
    }
    return std::vector<TensorType>{{x.dtype, Shape(std::move(dims))}};
  };
  def.reference = [name, reduction](
                      absl::Span<const Tensor* const> in,
                      const Attributes& attrs,
                      absl::Span<Tensor* const> out) -> absl::Status {
    const Shape& shape = in[0]->shape();
    auto mask = ReducedMask(in[0]->type(), attrs);
    if (!mask.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[", name, "] ", mask.status().message()));
    }
    // Output element of each input element: the input shape with reduced
    // dimensions set to 1 broadcasts to the input, and its strides skip the
    // reduced dimensions.
    std::vector<int64_t> kept = shape.dims();
    int64_t count = 1;
    for (int i = 0; i < shape.rank(); ++i) {
      if ((*mask)[i]) {
        count *= kept[i];
        kept[i] = 1;
      }
    }
    const std::vector<int64_t> strides = BroadcastStrides(Shape(kept), shape);
    return DispatchFloat(in[0]->dtype(), name, [&](auto t) {
      using T = decltype(t);
      auto x = in[0]->data<T>();
      auto o = out[0]->data<T>();
      // Sums accumulate in double so that f32 results do not depend on the
      // order.
      std::vector<double> acc(o.size(),
                              reduction == Reduction::kMax
                                  ? -std::numeric_limits<double>::infinity()
                                  : 0.0);
      for (size_t i = 0; i < x.size(); ++i) {
        double& a = acc[BroadcastSourceIndex(i, shape, strides)];
        const double v = static_cast<double>(x[i]);
        if (reduction != Reduction::kMax) {
          a += v;
        } else if (std::isnan(v) || v > a) {
          if (!std::isnan(a))
            a = v;  // NaN propagates, as in numpy and TensorFlow.
        }
      }
      for (size_t j = 0; j < o.size(); ++j) {
        o[j] = static_cast<T>(reduction == Reduction::kMean
                                  ? acc[j] / static_cast<double>(count)
                                  : acc[j]);
      }
      return absl::OkStatus();
    });
  };
  return def;
}

}  // namespace

OpDef Make_reduce_sum_Op() { return MakeReduce("reduce_sum", Reduction::kSum); }
OpDef Make_reduce_mean_Op() {
  return MakeReduce("reduce_mean", Reduction::kMean);
}
OpDef Make_reduce_max_Op() { return MakeReduce("reduce_max", Reduction::kMax); }

}  // namespace sequent::ops
