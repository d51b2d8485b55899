#include "core/passes/dce.h"

#include <vector>

namespace sequent {

absl::StatusOr<bool> DcePass::Run(Graph& graph) {
  std::vector<bool> live(graph.num_nodes(), false);
  std::vector<NodeId> work;
  auto mark = [&](NodeId id) {
    if (graph.IsLive(id) && !live[id]) {
      live[id] = true;
      work.push_back(id);
    }
  };
  auto mark_value = [&](ValueId value) {
    if (value >= 0 && value < graph.num_values())
      mark(graph.value(value).producer);
  };
  for (const GraphOutput& out : graph.outputs()) mark_value(out.value);
  for (const VariableUpdate& update : graph.updates()) mark_value(update.value);
  for (NodeId id : graph.InputNodes()) mark(id);
  for (NodeId id : graph.VariableNodes()) mark(id);
  while (!work.empty()) {
    const NodeId id = work.back();
    work.pop_back();
    for (ValueId in : graph.node(id).inputs) mark_value(in);
  }
  bool changed = false;
  for (NodeId id : graph.LiveNodes()) {
    if (!live[id]) {
      graph.RemoveNode(id);
      changed = true;
    }
  }
  return changed;
}

}  // namespace sequent
