#include "ops/activation_fn.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sequent::ops {

const std::vector<std::string>& ActivationNames() {
  static const auto* names = new std::vector<std::string>{
      "linear", "relu",     "sigmoid", "tanh", "gelu",
      "swish",  "softplus", "elu",     "selu", "leaky_relu"};
  return *names;
}

absl::StatusOr<Activation> ParseActivation(absl::string_view name) {
  if (name == "linear") return Activation{ActivationKind::kLinear};
  if (name == "relu") return Activation{ActivationKind::kRelu};
  if (name == "sigmoid") return Activation{ActivationKind::kSigmoid};
  if (name == "tanh") return Activation{ActivationKind::kTanh};
  if (name == "gelu") return Activation{ActivationKind::kGelu};
  if (name == "swish") return Activation{ActivationKind::kSwish};
  if (name == "softplus") return Activation{ActivationKind::kSoftplus};
  if (name == "elu") return Activation{ActivationKind::kElu, 1.0};
  if (name == "selu") return Activation{ActivationKind::kSelu};
  if (name == "leaky_relu") return Activation{ActivationKind::kLeakyRelu, 0.2};
  return absl::InvalidArgumentError(
      absl::StrCat("unknown activation \"", name,
                   "\" (valid: ", absl::StrJoin(ActivationNames(), ", "), ")"));
}

}  // namespace sequent::ops
