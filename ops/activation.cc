// Op family `activation`: the pointwise activations (shared with `dense`
// through ops/activation_fn.h) and softmax / log_softmax along an axis.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/status_macros.h"
#include "ops/activation_fn.h"
#include "ops/backward_activation.h"
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
  def.inplace = {{0, 0}};  // Pointwise: out[i] reads x[i] only.
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

template <typename T>
T OutputDerivative(const Activation& act, T y) {
  const T alpha = static_cast<T>(act.alpha);
  switch (act.kind) {
    case ActivationKind::kRelu:
      return y > T(0) ? T(1) : T(0);
    case ActivationKind::kLeakyRelu:
      return y > T(0) ? T(1) : alpha;
    case ActivationKind::kElu:
      // y = alpha (e^x - 1), so alpha e^x = y + alpha.
      return y > T(0) ? T(1) : y + alpha;
    case ActivationKind::kSelu:
      return y > T(0) ? static_cast<T>(kSeluScale)
                      : y + static_cast<T>(kSeluScale * kSeluAlpha);
    case ActivationKind::kSigmoid:
      return y * (T(1) - y);
    case ActivationKind::kTanh:
      return T(1) - y * y;
    default:
      return T(1);
  }
}

absl::Status ExpectSameType(const TensorType& dy, const TensorType& other,
                            absl::string_view other_name) {
  if (dy == other) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("dy ", dy.ToString(), " and ", other_name, " ",
                   other.ToString(), " must have the same type"));
}

// dy * f'(v) with v the output (from_output) or the input of the activation.
OpDef MakeActivationGrad(std::string name, bool from_output) {
  OpDef def;
  def.name = name;
  def.inputs = {"dy", from_output ? "y" : "x"};
  def.outputs = {"dx"};
  def.attrs = {{"activation", std::nullopt},
               {"alpha", AttrValue(kBackwardDefaultAlpha)}};
  if (!from_output) def.attrs.push_back({"approximate", AttrValue(false)});
  def.infer =
      [from_output](
          absl::Span<const TensorType> in,
          const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(in[0], "dy"));
    SEQUENT_RETURN_IF_ERROR(
        ExpectSameType(in[0], in[1], from_output ? "y" : "x"));
    SEQUENT_RETURN_IF_ERROR(BackwardActivation(attrs, from_output).status());
    return std::vector<TensorType>{in[0]};
  };
  def.reference = [name, from_output](
                      absl::Span<const Tensor* const> in,
                      const Attributes& attrs,
                      absl::Span<Tensor* const> out) -> absl::Status {
    auto act = BackwardActivation(attrs, from_output);
    if (!act.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[", name, "] ", act.status().message()));
    }
    return DispatchFloat(in[0]->dtype(), name, [&](auto t) {
      using T = decltype(t);
      auto dy = in[0]->data<T>();
      auto v = in[1]->data<T>();
      auto dx = out[0]->data<T>();
      for (size_t i = 0; i < dx.size(); ++i) {
        dx[i] = dy[i] * (from_output ? OutputDerivative<T>(*act, v[i])
                                     : ActivationDerivative<T>(*act, v[i]));
      }
      return absl::OkStatus();
    });
  };
  return def;
}

// Softmax backward over `axis`, viewing the tensors as [outer, n, inner]:
// softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - e^y sum(dy).
OpDef MakeSoftmaxGrad(std::string name, bool log) {
  OpDef def;
  def.name = name;
  def.inputs = {"dy", "y"};
  def.outputs = {"dx"};
  def.attrs = {{"axis", AttrValue(int64_t{-1})}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(in[0], "dy"));
    SEQUENT_RETURN_IF_ERROR(ExpectSameType(in[0], in[1], "y"));
    const int64_t axis = IntAttrOr(attrs, "axis", -1);
    if (!NormalizeAxis(axis, in[0].shape.rank()).ok()) {
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
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < *axis; ++i) outer *= shape.dim(i);
    for (int i = *axis + 1; i < shape.rank(); ++i) inner *= shape.dim(i);
    const int64_t n = shape.dim(*axis);
    return DispatchFloat(in[0]->dtype(), name, [&](auto t) {
      using T = decltype(t);
      auto dy = in[0]->data<T>();
      auto y = in[1]->data<T>();
      auto dx = out[0]->data<T>();
      for (int64_t a = 0; a < outer; ++a) {
        for (int64_t b = 0; b < inner; ++b) {
          const int64_t base = a * n * inner + b;
          double sum = 0;
          for (int64_t k = 0; k < n; ++k) {
            const int64_t i = base + k * inner;
            sum += log ? static_cast<double>(dy[i])
                       : static_cast<double>(dy[i]) * static_cast<double>(y[i]);
          }
          const T s = static_cast<T>(sum);
          for (int64_t k = 0; k < n; ++k) {
            const int64_t i = base + k * inner;
            dx[i] = log ? dy[i] - std::exp(y[i]) * s : y[i] * (dy[i] - s);
          }
        }
      }
      return absl::OkStatus();
    });
  };
  return def;
}

// Gradient rules of the pointwise activations: from the output where the
// derivative allows it (the output is kept anyway), else from the input.
GradientFn ActivationGradient(std::string activation, bool from_output) {
  return [activation, from_output](GraphBuilder& b, const Node& node,
                                   absl::Span<const ValueId> dys)
             -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue};
    Attributes attrs{{"activation", activation}};
    if (auto it = node.attrs.find("alpha"); it != node.attrs.end()) {
      attrs["alpha"] = it->second;
    } else if (activation == "elu") {
      attrs["alpha"] = 1.0;  // elu's schema default; leaky_relu's is 0.2.
    }
    if (auto it = node.attrs.find("approximate"); it != node.attrs.end()) {
      attrs["approximate"] = it->second;
    }
    // A non-positive leaky slope makes y > 0 no longer mean x > 0.
    const bool use_output =
        from_output &&
        (activation != "leaky_relu" || FloatAttrOr(attrs, "alpha", 0.2) > 0);
    const ValueId grad =
        use_output
            ? b.Op("activation_grad", {dys[0], node.outputs[0]}, attrs)
            : b.Op("activation_input_grad", {dys[0], node.inputs[0]}, attrs);
    return std::vector<ValueId>{grad};
  };
}

GradientFn SoftmaxGradient(std::string grad_op) {
  return [grad_op](GraphBuilder& b, const Node& node,
                   absl::Span<const ValueId> dys)
             -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue};
    Attributes attrs;
    if (auto it = node.attrs.find("axis"); it != node.attrs.end()) {
      attrs["axis"] = it->second;
    }
    return std::vector<ValueId>{
        b.Op(grad_op, {dys[0], node.outputs[0]}, std::move(attrs))};
  };
}

OpDef WithGradient(OpDef def, GradientFn gradient) {
  def.gradient = std::move(gradient);
  return def;
}

}  // namespace

OpDef Make_relu_Op() {
  return WithGradient(
      MakePointwise("relu", ActivationKind::kRelu, {}, NoParams),
      ActivationGradient("relu", true));
}
OpDef Make_leaky_relu_Op() {
  return WithGradient(MakePointwise("leaky_relu", ActivationKind::kLeakyRelu,
                                    {{"alpha", AttrValue(0.2)}}, AlphaParam),
                      ActivationGradient("leaky_relu", true));
}
OpDef Make_elu_Op() {
  return WithGradient(MakePointwise("elu", ActivationKind::kElu,
                                    {{"alpha", AttrValue(1.0)}}, AlphaParam),
                      ActivationGradient("elu", true));
}
OpDef Make_selu_Op() {
  return WithGradient(
      MakePointwise("selu", ActivationKind::kSelu, {}, NoParams),
      ActivationGradient("selu", true));
}
OpDef Make_sigmoid_Op() {
  return WithGradient(
      MakePointwise("sigmoid", ActivationKind::kSigmoid, {}, NoParams),
      ActivationGradient("sigmoid", true));
}
OpDef Make_tanh_Op() {
  return WithGradient(
      MakePointwise("tanh", ActivationKind::kTanh, {}, NoParams),
      ActivationGradient("tanh", true));
}
OpDef Make_gelu_Op() {
  return WithGradient(
      MakePointwise("gelu", ActivationKind::kGelu,
                    {{"approximate", AttrValue(false)}}, ApproximateParam),
      ActivationGradient("gelu", false));
}
OpDef Make_swish_Op() {
  return WithGradient(
      MakePointwise("swish", ActivationKind::kSwish, {}, NoParams),
      ActivationGradient("swish", false));
}
OpDef Make_softplus_Op() {
  return WithGradient(
      MakePointwise("softplus", ActivationKind::kSoftplus, {}, NoParams),
      ActivationGradient("softplus", false));
}
OpDef Make_softmax_Op() {
  return WithGradient(MakeSoftmax("softmax", /*log=*/false),
                      SoftmaxGradient("softmax_grad"));
}
OpDef Make_log_softmax_Op() {
  return WithGradient(MakeSoftmax("log_softmax", /*log=*/true),
                      SoftmaxGradient("log_softmax_grad"));
}

OpDef Make_activation_grad_Op() {
  return MakeActivationGrad("activation_grad", /*from_output=*/true);
}
OpDef Make_activation_input_grad_Op() {
  return MakeActivationGrad("activation_input_grad", /*from_output=*/false);
}

// The dense backward fused: dz = dy * f'(y) and the bias gradient, dz summed
// over every axis but the last, in one pass.
OpDef Make_activation_bias_grad_Op() {
  OpDef def;
  def.name = "activation_bias_grad";
  def.inputs = {"dy", "y"};
  def.outputs = {"dz", "dbias"};
  def.attrs = {{"activation", std::nullopt},
               {"alpha", AttrValue(kBackwardDefaultAlpha)}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(in[0], "dy"));
    SEQUENT_RETURN_IF_ERROR(ExpectSameType(in[0], in[1], "y"));
    SEQUENT_RETURN_IF_ERROR(BackwardActivation(attrs, true).status());
    const Shape& shape = in[0].shape;
    if (shape.rank() < 1 || shape[shape.rank() - 1] == Shape::kBatch) {
      return absl::InvalidArgumentError(
          absl::StrCat("dy ", in[0].ToString(),
                       " needs a static last dimension for the bias"));
    }
    return std::vector<TensorType>{
        in[0], {in[0].dtype, Shape{shape[shape.rank() - 1]}}};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    auto act = BackwardActivation(attrs, true);
    if (!act.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[activation_bias_grad] ", act.status().message()));
    }
    return DispatchFloat(in[0]->dtype(), "activation_bias_grad", [&](auto t) {
      using T = decltype(t);
      auto dy = in[0]->data<T>();
      auto y = in[1]->data<T>();
      auto dz = out[0]->data<T>();
      auto db = out[1]->data<T>();
      const size_t c = db.size();
      std::vector<double> acc(c, 0.0);
      for (size_t i = 0; i < dz.size(); ++i) {
        dz[i] = dy[i] * OutputDerivative<T>(*act, y[i]);
        acc[i % c] += static_cast<double>(dz[i]);
      }
      for (size_t j = 0; j < c; ++j) db[j] = static_cast<T>(acc[j]);
      return absl::OkStatus();
    });
  };
  return def;
}

OpDef Make_softmax_grad_Op() {
  return MakeSoftmaxGrad("softmax_grad", /*log=*/false);
}
OpDef Make_log_softmax_grad_Op() {
  return MakeSoftmaxGrad("log_softmax_grad", /*log=*/true);
}

}  // namespace sequent::ops
