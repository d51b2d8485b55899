#ifndef SEQUENT_CORE_PASSES_CSE_H_
#define SEQUENT_CORE_PASSES_CSE_H_

#include <string>

#include "core/op_registry.h"
#include "core/passes/pass.h"

namespace sequent {

// Common-subexpression elimination: nodes with the same op, inputs, attributes
// and output types compute the same values, so later duplicates are replaced by
// the first. Stateful ops (dropout's randomness) are never merged; of the
// structural nodes only equal constants are (inputs and variables are distinct
// storage even when their attributes agree).
class CsePass : public Pass {
 public:
  explicit CsePass(const OpRegistry& registry) : registry_(registry) {}
  std::string name() const override { return "cse"; }
  absl::StatusOr<bool> Run(Graph& graph) override;

 private:
  const OpRegistry& registry_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_CSE_H_
