#ifndef SEQUENT_CORE_PASSES_PIPELINE_H_
#define SEQUENT_CORE_PASSES_PIPELINE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph.h"
#include "core/op_registry.h"
#include "core/passes/fusion.h"
#include "core/passes/pass.h"

namespace sequent {

// Runs passes in order, verifying the graph after each one, like XLA's
// HloPassPipeline.
class PassPipeline {
 public:
  // Called after a pass ran (and before the graph is verified, so a broken
  // graph can be looked at): the pass name, the graph, whether the pass changed
  // it.
  using PrintHook = std::function<void(absl::string_view pass,
                                       const Graph& graph, bool changed)>;

  explicit PassPipeline(const OpRegistry& registry) : registry_(registry) {}

  PassPipeline& AddPass(std::unique_ptr<Pass> pass);
  template <typename P, typename... Args>
  PassPipeline& AddPass(Args&&... args) {
    return AddPass(std::make_unique<P>(std::forward<Args>(args)...));
  }

  // Like LLVM's -print-after: `hook` runs after every pass named in `passes`,
  // or after every pass (-print-after-all) when `passes` is empty. An empty
  // hook turns printing off.
  void SetPrintAfter(PrintHook hook, std::vector<std::string> passes = {});

  // Runs every pass; true when any changed the graph. A pass's own error comes
  // back as it is (it names the user's layer); a graph that fails verification
  // after a pass is an internal error naming the pass: "after pass 'cse': the
  // graph is invalid: ...".
  absl::StatusOr<bool> Run(Graph& graph);

  std::vector<std::string> PassNames() const;

 private:
  const OpRegistry& registry_;
  std::vector<std::unique_ptr<Pass>> passes_;
  PrintHook print_hook_;
  absl::flat_hash_set<std::string> print_filter_;
};

// The forward pipeline every graph goes through before a backend compiles it:
// shape_inference, canonicalize, constant_folding, cse, fusion, dce.
PassPipeline ForwardPipeline(const OpRegistry& registry,
                             const FusionPolicy& policy);

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_PIPELINE_H_
