#ifndef SEQUENT_CORE_PASSES_PASS_H_
#define SEQUENT_CORE_PASSES_PASS_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/graph.h"

namespace sequent {

// A graph-to-graph transformation, XLA style. Run returns whether it changed
// the graph; an error means the input could not be transformed (a user mistake
// such as mismatched shapes), never that the pass left the graph half-rewritten
// in an invalid state.
class Pass {
 public:
  virtual ~Pass() = default;
  // Short, stable name ("cse"): the pipeline's hooks, filters and errors use
  // it.
  virtual std::string name() const = 0;
  virtual absl::StatusOr<bool> Run(Graph& graph) = 0;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_PASS_H_
