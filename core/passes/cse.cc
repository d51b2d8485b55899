#include "core/passes/cse.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/passes/pass_util.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

// An exact textual key: attribute values print so that they parse back to the
// same value, and the variant index keeps 1 and 1.0 apart.
std::string NodeKey(const Graph& graph, const Node& node,
                    const Attributes& attrs) {
  std::string key = absl::StrCat(node.op, "(");
  for (ValueId in : node.inputs) absl::StrAppend(&key, in, ",");
  absl::StrAppend(&key, "){");
  for (const auto& [name, value] : attrs) {
    absl::StrAppend(&key, name, "=", value.index(), ":",
                    AttrValueToString(value), ";");
  }
  absl::StrAppend(&key, "}:");
  for (ValueId out : node.outputs)
    absl::StrAppend(&key, graph.type(out).ToString(), ",");
  return key;
}

}  // namespace

absl::StatusOr<bool> CsePass::Run(Graph& graph) {
  // Topological order, so a node's inputs are already merged when its key is
  // taken.
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  absl::flat_hash_map<std::string, NodeId> first;
  bool changed = false;
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (node.op == kInputOp || node.op == kVariableOp) continue;
    Attributes attrs = node.attrs;
    if (node.op != kConstantOp) {
      const OpDef* def = registry_.Find(node.op);
      if (def == nullptr || def->stateful) continue;
      attrs = passes::AttrsWithDefaults(registry_, node);
    }
    auto [it, inserted] = first.emplace(NodeKey(graph, node, attrs), id);
    if (inserted) continue;
    passes::ReplaceNode(graph, id, graph.node(it->second).outputs);
    changed = true;
  }
  return changed;
}

}  // namespace sequent
