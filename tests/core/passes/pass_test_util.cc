#include "tests/core/passes/pass_test_util.h"

#include "absl/strings/str_cat.h"
#include "core/passes/verifier.h"
#include "core/status_macros.h"
#include "core/text_ir.h"
#include "ops/registry.h"

namespace sequent::pass_testing {

absl::StatusOr<PassResult> RunPassOnText(Pass& pass, absl::string_view text) {
  SEQUENT_ASSIGN_OR_RETURN(Graph graph, ParseGraph(text));
  SEQUENT_ASSIGN_OR_RETURN(bool changed, pass.Run(graph));
  if (absl::Status s = VerifyGraph(graph, ops::DefaultRegistry()); !s.ok()) {
    return absl::InternalError(absl::StrCat(
        "after ", pass.name(), ": ", s.message(), "\n", PrintGraph(graph)));
  }
  SEQUENT_RETURN_IF_ERROR(graph.Compact());
  return PassResult{changed, PrintGraph(graph)};
}

std::string Normalize(absl::string_view text) {
  absl::StatusOr<Graph> graph = ParseGraph(text);
  if (!graph.ok())
    return absl::StrCat("unparsable expectation: ", graph.status().ToString());
  return PrintGraph(*graph);
}

}  // namespace sequent::pass_testing
