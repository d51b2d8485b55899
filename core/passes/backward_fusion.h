#ifndef SEQUENT_CORE_PASSES_BACKWARD_FUSION_H_
#define SEQUENT_CORE_PASSES_BACKWARD_FUSION_H_

#include <string>

#include "core/op_registry.h"
#include "core/passes/pass.h"

namespace sequent {

// A training pass over the backward graph. The gradient of
// dense{activation = act} emits
//   dz = activation_grad(dy, y){activation = act}
//   db = reduce_sum(dz){axes = [0], keepdims = false}
// which reads dz twice. When y is 2-D this rewrites the pair into
//   dz, db = activation_bias_grad(dy, y){activation = act}
// one pass over dy and y. Users of dz other than the reduce_sum (the kernel and
// input gradients) read the fused node's first output, the reduce_sum's users
// its second; the node keeps activation_grad's attributes and layer.
class BackwardFusionPass : public Pass {
 public:
  explicit BackwardFusionPass(const OpRegistry& registry)
      : registry_(registry) {}
  std::string name() const override { return "backward_fusion"; }
  absl::StatusOr<bool> Run(Graph& graph) override;

 private:
  const OpRegistry& registry_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_BACKWARD_FUSION_H_
