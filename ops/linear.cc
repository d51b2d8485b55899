// Op family `linear`: matmul, bias_add and the fused dense op.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/status_macros.h"
#include "ops/activation_fn.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

absl::Status ExpectSameDType(const TensorType& a, const TensorType& b) {
  if (a.dtype == b.dtype) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("dtypes differ: ", a.ToString(), " vs ", b.ToString()));
}

// out[M,P] = op(a) * op(b), where op transposes when asked. Plain triple loop
// in the element type, accumulating in double so that f32 results do not depend
// on loop order.
template <typename T>
void MatMul(const Tensor& a, const Tensor& b, bool transpose_a,
            bool transpose_b, Tensor& out) {
  const int64_t m = out.shape().dim(0);
  const int64_t p = out.shape().dim(1);
  const int64_t k = transpose_a ? a.shape().dim(0) : a.shape().dim(1);
  auto av = a.data<T>();
  auto bv = b.data<T>();
  auto ov = out.data<T>();
  const int64_t a_cols = a.shape().dim(1);
  const int64_t b_cols = b.shape().dim(1);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < p; ++j) {
      double sum = 0;
      for (int64_t l = 0; l < k; ++l) {
        const T x = transpose_a ? av[l * a_cols + i] : av[i * a_cols + l];
        const T y = transpose_b ? bv[j * b_cols + l] : bv[l * b_cols + j];
        sum += static_cast<double>(x) * static_cast<double>(y);
      }
      ov[i * p + j] = static_cast<T>(sum);
    }
  }
}

Attributes Transposes(bool a, bool b) {
  return {{"transpose_a", a}, {"transpose_b", b}};
}

// For out = op_a(a) op_b(b): da and db, each itself one matmul with transposes
// (no explicit transpose nodes).
std::pair<ValueId, ValueId> MatMulGradients(GraphBuilder& b, ValueId a,
                                            ValueId bb, ValueId dout, bool ta,
                                            bool tb) {
  if (!ta && !tb) {
    return {b.Op("matmul", {dout, bb}, Transposes(false, true)),
            b.Op("matmul", {a, dout}, Transposes(true, false))};
  }
  if (!ta && tb) {
    return {b.Op("matmul", {dout, bb}, Transposes(false, false)),
            b.Op("matmul", {dout, a}, Transposes(true, false))};
  }
  if (ta && !tb) {
    return {b.Op("matmul", {bb, dout}, Transposes(false, true)),
            b.Op("matmul", {a, dout}, Transposes(false, false))};
  }
  return {b.Op("matmul", {bb, dout}, Transposes(true, true)),
          b.Op("matmul", {dout, a}, Transposes(true, true))};
}

// The sum of `dy` over every axis but the last: a bias's gradient.
ValueId SumToBias(GraphBuilder& b, ValueId dy) {
  std::vector<int64_t> axes;
  for (int i = 0; i + 1 < b.type(dy).shape.rank(); ++i) axes.push_back(i);
  if (axes.empty()) return dy;
  return b.Op("reduce_sum", {dy}, {{"axes", AttrValue(axes)}});
}

}  // namespace

OpDef Make_matmul_Op() {
  OpDef def;
  def.name = "matmul";
  def.inputs = {"a", "b"};
  def.outputs = {"out"};
  def.attrs = {{"transpose_a", AttrValue(false)},
               {"transpose_b", AttrValue(false)}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& a = in[0];
    const TensorType& b = in[1];
    SEQUENT_RETURN_IF_ERROR(ExpectRank(a, 2, "a"));
    SEQUENT_RETURN_IF_ERROR(ExpectRank(b, 2, "b"));
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(a, "a"));
    SEQUENT_RETURN_IF_ERROR(ExpectSameDType(a, b));
    const bool ta = BoolAttrOr(attrs, "transpose_a", false);
    const bool tb = BoolAttrOr(attrs, "transpose_b", false);
    const int64_t m = ta ? a.shape[1] : a.shape[0];
    const int64_t ka = ta ? a.shape[0] : a.shape[1];
    const int64_t kb = tb ? b.shape[1] : b.shape[0];
    const int64_t p = tb ? b.shape[0] : b.shape[1];
    // Contracting over N is fine when both sides have it (a weight gradient x^T
    // * dy).
    if (ka != kb) {
      return absl::InvalidArgumentError(
          absl::StrCat("inner dimensions differ: ", a.ToString(),
                       ta ? "^T" : "", " x ", b.ToString(), tb ? "^T" : ""));
    }
    return std::vector<TensorType>{{a.dtype, Shape{m, p}}};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const bool ta = BoolAttrOr(attrs, "transpose_a", false);
    const bool tb = BoolAttrOr(attrs, "transpose_b", false);
    return DispatchFloat(in[0]->dtype(), "matmul", [&](auto t) {
      MatMul<decltype(t)>(*in[0], *in[1], ta, tb, *out[0]);
      return absl::OkStatus();
    });
  };
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue, kNoValue};
    auto [da, db] =
        MatMulGradients(b, node.inputs[0], node.inputs[1], dys[0],
                        BoolAttrOr(node.attrs, "transpose_a", false),
                        BoolAttrOr(node.attrs, "transpose_b", false));
    return std::vector<ValueId>{da, db};
  };
  return def;
}

OpDef Make_bias_add_Op() {
  OpDef def;
  def.name = "bias_add";
  def.inputs = {"x", "bias"};
  def.outputs = {"out"};
  def.infer = [](absl::Span<const TensorType> in,
                 const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    const TensorType& bias = in[1];
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
    SEQUENT_RETURN_IF_ERROR(ExpectSameDType(x, bias));
    SEQUENT_RETURN_IF_ERROR(ExpectRank(bias, 1, "bias"));
    if (x.shape.rank() < 1 || x.shape[x.shape.rank() - 1] != bias.shape[0] ||
        bias.shape[0] == Shape::kBatch) {
      return absl::InvalidArgumentError(
          absl::StrCat("bias ", bias.ToString(),
                       " does not match the last dimension of ", x.ToString()));
    }
    return std::vector<TensorType>{x};
  };
  def.reference = [](absl::Span<const Tensor* const> in, const Attributes&,
                     absl::Span<Tensor* const> out) -> absl::Status {
    return DispatchFloat(in[0]->dtype(), "bias_add", [&](auto t) {
      using T = decltype(t);
      auto x = in[0]->data<T>();
      auto bias = in[1]->data<T>();
      auto o = out[0]->data<T>();
      const size_t c = bias.size();
      for (size_t i = 0; i < x.size(); ++i) o[i] = x[i] + bias[i % c];
      return absl::OkStatus();
    });
  };
  def.gradient = [](GraphBuilder& b, const Node&, absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue, kNoValue};
    return std::vector<ValueId>{dys[0], SumToBias(b, dys[0])};
  };
  return def;
}

OpDef Make_dense_Op() {
  OpDef def;
  def.name = "dense";
  def.inputs = {"x", "kernel", "bias"};
  def.num_required_inputs = 2;
  def.outputs = {"out"};
  def.attrs = {{"activation", AttrValue(std::string("linear"))}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    const TensorType& kernel = in[1];
    SEQUENT_RETURN_IF_ERROR(ExpectRank(x, 2, "x"));
    SEQUENT_RETURN_IF_ERROR(ExpectRank(kernel, 2, "kernel"));
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
    SEQUENT_RETURN_IF_ERROR(ExpectSameDType(x, kernel));
    if (x.shape[1] != kernel.shape[0]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inner dimensions differ: ", x.ToString(), " x ", kernel.ToString()));
    }
    if (in.size() > 2) {
      const TensorType& bias = in[2];
      SEQUENT_RETURN_IF_ERROR(ExpectSameDType(x, bias));
      if (bias.shape.rank() != 1 || bias.shape[0] != kernel.shape[1]) {
        return absl::InvalidArgumentError(
            absl::StrCat("bias ", bias.ToString(), " does not match kernel ",
                         kernel.ToString()));
      }
    }
    SEQUENT_RETURN_IF_ERROR(
        ParseActivation(StringAttrOr(attrs, "activation", "linear")).status());
    return std::vector<TensorType>{
        {x.dtype, Shape{x.shape[0], kernel.shape[1]}}};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    auto act = ParseActivation(StringAttrOr(attrs, "activation", "linear"));
    if (!act.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("[dense] ", act.status().message()));
    return DispatchFloat(in[0]->dtype(), "dense", [&](auto t) {
      using T = decltype(t);
      MatMul<T>(*in[0], *in[1], false, false, *out[0]);
      auto o = out[0]->data<T>();
      const int64_t p = out[0]->shape().dim(1);
      const T* bias =
          in.size() > 2 && in[2] != nullptr ? in[2]->data<T>().data() : nullptr;
      for (size_t i = 0; i < o.size(); ++i) {
        const T z = bias != nullptr ? o[i] + bias[i % p] : o[i];
        o[i] = ActivationValue<T>(*act, z);
      }
      return absl::OkStatus();
    });
  };
  // The derivative comes from the node's own output: the fused node keeps no
  // pre-activation value.
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    std::vector<ValueId> grads(node.inputs.size(), kNoValue);
    if (dys[0] == kNoValue) return grads;
    const std::string name = StringAttrOr(node.attrs, "activation", "linear");
    SEQUENT_ASSIGN_OR_RETURN(Activation act, ParseActivation(name));
    ValueId dz = dys[0];
    switch (act.kind) {
      case ActivationKind::kLinear:
        break;
      case ActivationKind::kRelu:
      case ActivationKind::kLeakyRelu:
      case ActivationKind::kElu:
      case ActivationKind::kSelu:
      case ActivationKind::kSigmoid:
      case ActivationKind::kTanh: {
        Attributes attrs{{"activation", name}};
        if (act.kind == ActivationKind::kLeakyRelu ||
            act.kind == ActivationKind::kElu) {
          attrs["alpha"] = act.alpha;
        }
        dz = b.Op("activation_grad", {dz, node.outputs[0]}, std::move(attrs));
        break;
      }
      default:
        return absl::UnimplementedError(absl::StrCat(
            "dense{activation = \"", name,
            "\"} keeps no pre-activation value, and the derivative of ", name,
            " needs it, so the fused node cannot be differentiated; "
            "differentiate matmul, bias_add and ",
            name, " before fusing them"));
    }
    grads[0] = b.Op("matmul", {dz, node.inputs[1]}, Transposes(false, true));
    grads[1] = b.Op("matmul", {node.inputs[0], dz}, Transposes(true, false));
    if (node.inputs.size() > 2) {
      grads[2] = b.Op("reduce_sum", {dz},
                      {{"axes", AttrValue(std::vector<int64_t>{0})}});
    }
    return grads;
  };
  return def;
}

}  // namespace sequent::ops
