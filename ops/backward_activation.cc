#include "ops/backward_activation.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace sequent::ops {

bool HasOutputDerivative(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::kLinear:
    case ActivationKind::kRelu:
    case ActivationKind::kLeakyRelu:
    case ActivationKind::kElu:
    case ActivationKind::kSelu:
    case ActivationKind::kSigmoid:
    case ActivationKind::kTanh:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<Activation> BackwardActivation(const Attributes& attrs,
                                              bool from_output) {
  SEQUENT_ASSIGN_OR_RETURN(std::string name,
                           GetStringAttr(attrs, "activation"));
  SEQUENT_ASSIGN_OR_RETURN(Activation act, ParseActivation(name));
  if (act.kind == ActivationKind::kLeakyRelu ||
      act.kind == ActivationKind::kElu) {
    const double alpha = FloatAttrOr(attrs, "alpha", kBackwardDefaultAlpha);
    if (alpha != kBackwardDefaultAlpha) act.alpha = alpha;
  }
  act.approximate = BoolAttrOr(attrs, "approximate", false);
  if (from_output && !HasOutputDerivative(act.kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the derivative of \"", name,
        "\" cannot be computed from its output; use activation_input_grad "
        "with the input"));
  }
  if (from_output && act.kind == ActivationKind::kLeakyRelu &&
      !(act.alpha > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "leaky_relu with alpha ", act.alpha,
        " has no derivative from its output (alpha must be positive)"));
  }
  return act;
}

}  // namespace sequent::ops
