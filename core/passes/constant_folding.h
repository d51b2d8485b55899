#ifndef SEQUENT_CORE_PASSES_CONSTANT_FOLDING_H_
#define SEQUENT_CORE_PASSES_CONSTANT_FOLDING_H_

#include <cstdint>
#include <string>

#include "core/op_registry.h"
#include "core/passes/pass.h"

namespace sequent {

// Evaluates, with the op's reference kernel, every non-stateful node whose
// inputs are all `constant` nodes and whose outputs are static and at most
// kMaxElements elements, and replaces it by `constant` nodes. Chains fold in
// one run (nodes are visited in topological order). A folded output whose
// elements are all equal is stored as one broadcast value. A kernel that fails
// (no reference kernel for the dtype, bad values) leaves the node alone: the
// same error will then surface where the graph runs, naming the layer.
class ConstantFoldingPass : public Pass {
 public:
  static constexpr int64_t kMaxElements = 65536;

  explicit ConstantFoldingPass(const OpRegistry& registry)
      : registry_(registry) {}
  std::string name() const override { return "constant_folding"; }
  absl::StatusOr<bool> Run(Graph& graph) override;

 private:
  const OpRegistry& registry_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_CONSTANT_FOLDING_H_
