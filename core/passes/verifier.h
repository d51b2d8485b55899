#ifndef SEQUENT_CORE_PASSES_VERIFIER_H_
#define SEQUENT_CORE_PASSES_VERIFIER_H_

#include <string>

#include "absl/status/status.h"
#include "core/graph.h"
#include "core/op_registry.h"
#include "core/passes/pass.h"

namespace sequent {

// Checks the invariants every pass must preserve: inputs read live values, each
// value has exactly one producer, no cycles, ops are known with the right
// arity, recorded output types equal what the shape rules infer, outputs and
// updates read live values, updates name an existing variable of the same type,
// and structural nodes carry their attributes. The error names the first
// offending node.
absl::Status VerifyGraph(const Graph& graph, const OpRegistry& registry);

// "%3 = dense (layer 'dense_1')": how verifier and pass errors name a node.
std::string DescribeNode(const Graph& graph, NodeId id);

// The verifier as a pass (never changes the graph), for running it at a chosen
// point.
class VerifierPass : public Pass {
 public:
  explicit VerifierPass(const OpRegistry& registry) : registry_(registry) {}
  std::string name() const override { return "verifier"; }
  absl::StatusOr<bool> Run(Graph& graph) override;

 private:
  const OpRegistry& registry_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_VERIFIER_H_
