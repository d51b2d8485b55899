#ifndef SEQUENT_CORE_PASSES_PASS_UTIL_H_
#define SEQUENT_CORE_PASSES_PASS_UTIL_H_

// Small helpers the passes share.

#include <optional>

#include "absl/strings/string_view.h"
#include "core/attribute.h"
#include "core/graph.h"
#include "core/op_registry.h"

namespace sequent::passes {

// input, variable and constant: the nodes that are not registry ops.
bool IsStructural(absl::string_view op);

// The node's attributes with the schema's defaults filled in, so that a pass
// reads the same values a kernel would whether or not shape inference ran
// first.
Attributes AttrsWithDefaults(const OpRegistry& registry, const Node& node);

// A numeric attribute read as double whether it was written as 1 or 1.0;
// `fallback` when absent or not a number.
double NumberAttrOr(const Attributes& attrs, absl::string_view name,
                    double fallback);

// The single node reading `value` as its first input, when that is its only
// use.
std::optional<NodeId> SoleUserAsFirstInput(const Graph& graph, ValueId value);

// Redirects the uses of every output of `from` to the matching output of `to`
// and removes `from`.
void ReplaceNode(Graph& graph, NodeId from, const std::vector<ValueId>& to);

}  // namespace sequent::passes

#endif  // SEQUENT_CORE_PASSES_PASS_UTIL_H_
