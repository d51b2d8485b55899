#ifndef SEQUENT_CORE_PASSES_DCE_H_
#define SEQUENT_CORE_PASSES_DCE_H_

#include <string>

#include "core/passes/pass.h"

namespace sequent {

// Dead-code elimination: removes every node none of whose outputs reaches a
// graph output or a variable update. Input and variable nodes always stay: they
// are the executable's interface (feeds and weights), used or not. Removed
// nodes are only marked; the graph is not renumbered (Graph::Compact does
// that).
class DcePass : public Pass {
 public:
  std::string name() const override { return "dce"; }
  absl::StatusOr<bool> Run(Graph& graph) override;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_DCE_H_
