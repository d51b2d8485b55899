#include "core/passes/pipeline.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/passes/canonicalize.h"
#include "core/passes/constant_folding.h"
#include "core/passes/cse.h"
#include "core/passes/dce.h"
#include "core/passes/shape_inference.h"
#include "core/passes/verifier.h"

namespace sequent {

PassPipeline& PassPipeline::AddPass(std::unique_ptr<Pass> pass) {
  passes_.push_back(std::move(pass));
  return *this;
}

void PassPipeline::SetPrintAfter(PrintHook hook,
                                 std::vector<std::string> passes) {
  print_hook_ = std::move(hook);
  print_filter_ =
      absl::flat_hash_set<std::string>(passes.begin(), passes.end());
}

absl::StatusOr<bool> PassPipeline::Run(Graph& graph) {
  bool changed = false;
  for (const auto& pass : passes_) {
    const std::string name = pass->name();
    absl::StatusOr<bool> pass_changed = pass->Run(graph);
    if (!pass_changed.ok()) return pass_changed.status();
    changed = changed || *pass_changed;
    if (print_hook_ &&
        (print_filter_.empty() || print_filter_.contains(name))) {
      print_hook_(name, graph, *pass_changed);
    }
    if (absl::Status verified = VerifyGraph(graph, registry_); !verified.ok()) {
      return absl::InternalError(
          absl::StrCat("after pass '", name,
                       "': the graph is invalid: ", verified.message()));
    }
  }
  return changed;
}

std::vector<std::string> PassPipeline::PassNames() const {
  std::vector<std::string> names;
  for (const auto& pass : passes_) names.push_back(pass->name());
  return names;
}

PassPipeline ForwardPipeline(const OpRegistry& registry,
                             const FusionPolicy& policy) {
  PassPipeline pipeline(registry);
  pipeline.AddPass<ShapeInferencePass>(registry);
  pipeline.AddPass<CanonicalizePass>(registry);
  pipeline.AddPass<ConstantFoldingPass>(registry);
  pipeline.AddPass<CsePass>(registry);
  pipeline.AddPass<FusionPass>(registry, policy);
  pipeline.AddPass<DcePass>();
  return pipeline;
}

}  // namespace sequent
