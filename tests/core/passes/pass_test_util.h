#ifndef SEQUENT_TESTS_CORE_PASSES_PASS_TEST_UTIL_H_
#define SEQUENT_TESTS_CORE_PASSES_PASS_TEST_UTIL_H_

// IR text in, IR text out: the pass tests parse a graph, run one pass, verify,
// renumber (Graph::Compact, so that removed nodes leave no gaps) and print.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph.h"
#include "core/passes/pass.h"

namespace sequent::pass_testing {

struct PassResult {
  bool changed = false;
  std::string text;
};

// Parses `text`, runs `pass`, checks the result with the verifier and prints it
// compacted.
absl::StatusOr<PassResult> RunPassOnText(Pass& pass, absl::string_view text);

// `text` parsed and printed again, so that expectations need not match the
// printer's spacing exactly.
std::string Normalize(absl::string_view text);

}  // namespace sequent::pass_testing

#endif  // SEQUENT_TESTS_CORE_PASSES_PASS_TEST_UTIL_H_
