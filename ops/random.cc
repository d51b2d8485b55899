// Op family `random`: dropout with a stateless, reproducible mask (see
// ops/random_hash.h).

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/op_registry.h"
#include "core/status_macros.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"
#include "ops/random_hash.h"

namespace sequent::ops {
namespace {

absl::StatusOr<std::vector<TensorType>> DropoutShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(inputs[0], "x"));
  if (inputs.size() > 1) {
    const TensorType& step = inputs[1];
    if (!IsInteger(step.dtype) || !step.shape.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat("step must be an integer scalar (i32[] or i64[]), got ",
                       step.ToString()));
    }
  }
  SEQUENT_ASSIGN_OR_RETURN(double rate, GetFloatAttr(attrs, "rate"));
  if (!(rate >= 0.0 && rate < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rate must be in [0, 1), got ", rate));
  }
  return std::vector<TensorType>{inputs[0], inputs[0]};
}

absl::Status DropoutKernel(absl::Span<const Tensor* const> inputs,
                           const Attributes& attrs,
                           absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  const double rate = FloatAttrOr(attrs, "rate", 0.5);
  const bool training = BoolAttrOr(attrs, "training", true);
  const uint64_t seed = static_cast<uint64_t>(IntAttrOr(attrs, "seed", 0));
  uint64_t step = 0;
  if (inputs.size() > 1 && inputs[1] != nullptr) {
    const Tensor& s = *inputs[1];
    // Read integers directly: a double would round steps past 2^53.
    if (s.dtype() == DType::kI64) {
      step = static_cast<uint64_t>(s.data<int64_t>()[0]);
    } else if (s.dtype() == DType::kI32) {
      step = static_cast<uint64_t>(static_cast<int64_t>(s.data<int32_t>()[0]));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "[dropout] step must be i32 or i64, got ", s.type().ToString()));
    }
  }
  if (!(rate >= 0.0 && rate < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("[dropout] rate must be in [0, 1), got ", rate));
  }
  const bool active = training && rate > 0.0;
  const uint32_t threshold = DropoutKeepThreshold(rate);
  return DispatchFloat(x.dtype(), "dropout", [&](auto zero) -> absl::Status {
    using T = decltype(zero);
    const T scale = static_cast<T>(1.0 / (1.0 - rate));
    auto in = x.data<T>();
    auto y = outputs[0]->data<T>();
    auto mask = outputs[1]->data<T>();
    for (size_t i = 0; i < in.size(); ++i) {
      T m = T(1);
      if (active) m = DropoutKeep(seed, step, i, threshold) ? scale : T(0);
      mask[i] = m;
      y[i] = in[i] * m;
    }
    return absl::OkStatus();
  });
}

// y = x * mask with the mask a constant of the forward pass, so dx = dy * mask
// reuses the drawn mask; the step is an integer counter.
absl::StatusOr<std::vector<ValueId>> DropoutGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  std::vector<ValueId> grads(node.inputs.size(), kNoValue);
  if (output_grads[0] != kNoValue) {
    grads[0] = b.Op("mul", {output_grads[0], node.outputs[1]});
  }
  return grads;
}

}  // namespace

OpDef Make_dropout_Op() {
  OpDef def;
  def.name = "dropout";
  def.family = "random";
  def.inputs = {"x", "step"};
  def.num_required_inputs = 1;
  def.outputs = {"y", "mask"};
  def.attrs = {{"rate", AttrValue(0.5)},
               {"seed", AttrValue(int64_t{0})},
               {"training", AttrValue(true)}};
  def.infer = DropoutShape;
  def.reference = DropoutKernel;
  def.gradient = DropoutGradient;
  def.stateful = true;
  return def;
}

}  // namespace sequent::ops
