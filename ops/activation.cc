// Op family `activation`: the pointwise activations (shared with `dense`
// through ops/activation_fn.h) and softmax / log_softmax along an axis.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
#include "core/status_macros.h"
#include "ops/activation_fn.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

absl::StatusOr<std::vector<TensorType>> SameFloatType(
    absl::Span<const TensorType> in, const Attributes&) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(in[0], "x"));
  return std::vector<TensorType>{in[0]};
}

// `params` reads the op's attributes into the activation (alpha, approximate).
OpDef MakePointwise(std::string name, ActivationKind kind,
                    std::vector<AttrSpec> attrs,
                    Activation (*params)(ActivationKind, const Attributes&)) {
  OpDef def;
  def.name = name;
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = std::move(attrs);
  def.infer = SameFloatType;
  def.reference = [name, kind, params](
                      absl::Span<const Tensor* const> in,
                      const Attributes& attrs,
                      absl::Span<Tensor* const> out) -> absl::Status {
    const Activation act = params(kind, attrs);
    return DispatchFloat(in[0]->dtype(), name, [&](auto t) {
      using T = decltype(t);
      auto x = in[0]->data<T>();
      auto o = out[0]->data<T>();
      for (size_t i = 0; i < o.size(); ++i)
        o[i] = ActivationValue<T>(act, x[i]);
      return absl::OkStatus();
    });
  };
  return def;
}

Activation NoParams(ActivationKind kind, const Attributes&) { return {kind}; }
Activation AlphaParam(ActivationKind kind, const Attributes& attrs) {
  return {kind, FloatAttrOr(attrs, "alpha", 0.0)};
}
Activation ApproximateParam(ActivationKind kind, const Attributes& attrs) {
  return {kind, 0.0, BoolAttrOr(attrs, "approximate", false)};
}

// Softmax over `axis`, subtracting the maximum first so that exp never
// overflows.
OpDef MakeSoftmax(std::string name, bool log) {
  OpDef def;
  def.name = name;
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"axis", AttrValue(int64_t{-1})}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(in[0], "x"));
    const int64_t axis = IntAttrOr(attrs, "axis", -1);
    auto normalized = NormalizeAxis(axis, in[0].shape.rank());
    if (!normalized.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "axis ", axis, " is out of range for ", in[0].ToString()));
    }
    return std::vector<TensorType>{in[0]};
  };
  def.reference = [name, log](absl::Span<const Tensor* const> in,
                              const Attributes& attrs,
                              absl::Span<Tensor* const> out) -> absl::Status {
    const Shape& shape = in[0]->shape();
    auto axis = NormalizeAxis(IntAttrOr(attrs, "axis", -1), shape.rank());
    if (!axis.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("[", name, "] ", axis.status().message()));
    // View the tensor as [outer, n, inner] with the softmax running over n.
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < *axis; ++i) outer *= shape.dim(i);
    for (int i = *axis + 1; i < shape.rank(); ++i) inner *= shape.dim(i);
    const int64_t n = shape.dim(*axis);
    if (n == 0)
      return absl::OkStatus();  // An empty tensor has nothing to normalize.
    return DispatchFloat(in[0]->dtype(), name, [&](auto t) {
      using T = decltype(t);
      auto x = in[0]->data<T>();
      auto o = out[0]->data<T>();
      for (int64_t a = 0; a < outer; ++a) {
        for (int64_t b = 0; b < inner; ++b) {
          const int64_t base = a * n * inner + b;
          T max = x[base];
          for (int64_t k = 1; k < n; ++k)
            max = std::max(max, x[base + k * inner]);
          T sum = 0;
          for (int64_t k = 0; k < n; ++k)
            sum += std::exp(x[base + k * inner] - max);
          const T log_sum = std::log(sum);
          for (int64_t k = 0; k < n; ++k) {
            const T shifted = x[base + k * inner] - max;
            o[base + k * inner] =
                log ? shifted - log_sum : std::exp(shifted) / sum;
          }
        }
      }
      return absl::OkStatus();
    });
  };
  return def;
}

}  // namespace

OpDef Make_relu_Op() {
  return MakePointwise("relu", ActivationKind::kRelu, {}, NoParams);
}
OpDef Make_leaky_relu_Op() {
  return MakePointwise("leaky_relu", ActivationKind::kLeakyRelu,
                       {{"alpha", AttrValue(0.2)}}, AlphaParam);
}
OpDef Make_elu_Op() {
  return MakePointwise("elu", ActivationKind::kElu, {{"alpha", AttrValue(1.0)}},
                       AlphaParam);
}
OpDef Make_selu_Op() {
  return MakePointwise("selu", ActivationKind::kSelu, {}, NoParams);
}
OpDef Make_sigmoid_Op() {
  return MakePointwise("sigmoid", ActivationKind::kSigmoid, {}, NoParams);
}
OpDef Make_tanh_Op() {
  return MakePointwise("tanh", ActivationKind::kTanh, {}, NoParams);
}
OpDef Make_gelu_Op() {
  return MakePointwise("gelu", ActivationKind::kGelu,
                       {{"approximate", AttrValue(false)}}, ApproximateParam);
}
OpDef Make_swish_Op() {
  return MakePointwise("swish", ActivationKind::kSwish, {}, NoParams);
}
OpDef Make_softplus_Op() {
  return MakePointwise("softplus", ActivationKind::kSoftplus, {}, NoParams);
}
OpDef Make_softmax_Op() { return MakeSoftmax("softmax", /*log=*/false); }
OpDef Make_log_softmax_Op() { return MakeSoftmax("log_softmax", /*log=*/true); }

}  // namespace sequent::ops
