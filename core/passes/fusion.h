#ifndef SEQUENT_CORE_PASSES_FUSION_H_
#define SEQUENT_CORE_PASSES_FUSION_H_

#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "core/op_registry.h"
#include "core/passes/pass.h"

namespace sequent {

// What the target backend can run fused. An empty function accepts nothing.
struct FusionPolicy {
  // Whether dense{activation=...} runs fused; asked with "linear" for the
  // bias-only form.
  std::function<bool(absl::string_view activation)> supports_fused_dense;
};

// Rewrites, when every intermediate value has exactly one use and the policy
// accepts:
//   matmul(x, w) -> bias_add(., b) -> act   =>  dense(x, w, b){activation =
//   act} matmul(x, w) -> bias_add(., b)          =>  dense(x, w, b){activation
//   = "linear"} matmul(x, w) -> act                     =>  dense(x,
//   w){activation = act}
// (matmul without transposes). When the policy rejects the activation but
// accepts "linear", the bias-only form still fires and the activation stays a
// separate node. Activations: relu, sigmoid, tanh, gelu (exact form only),
// swish, softplus, elu (alpha 1), selu, leaky_relu (alpha 0.2, dense's fixed
// slope). The dense node keeps the matmul's layer; the replaced nodes are
// removed.
class FusionPass : public Pass {
 public:
  FusionPass(const OpRegistry& registry, FusionPolicy policy)
      : registry_(registry), policy_(std::move(policy)) {}
  std::string name() const override { return "fusion"; }
  absl::StatusOr<bool> Run(Graph& graph) override;

 private:
  const OpRegistry& registry_;
  FusionPolicy policy_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_FUSION_H_
