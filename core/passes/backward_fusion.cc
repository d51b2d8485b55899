#include "core/passes/backward_fusion.h"

#include <optional>
#include <vector>

#include "core/passes/pass_util.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

// Whether `node` sums its only input over axis 0 of a 2-D value into a 1-D
// one: the bias gradient of a dense layer.
bool IsBiasSum(const OpRegistry& registry, const Graph& graph,
               const Node& node) {
  if (node.op != "reduce_sum" || node.inputs.size() != 1 ||
      node.outputs.size() != 1) {
    return false;
  }
  const Attributes attrs = passes::AttrsWithDefaults(registry, node);
  const std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
  const int rank = graph.type(node.inputs[0]).shape.rank();
  return rank == 2 && axes.size() == 1 && (axes[0] == 0 || axes[0] == -2) &&
         !BoolAttrOr(attrs, "keepdims", true);
}

}  // namespace

absl::StatusOr<bool> BackwardFusionPass::Run(Graph& graph) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    if (!graph.IsLive(id) || graph.node(id).op != "activation_grad") continue;
    const Node& grad = graph.node(id);
    if (grad.inputs.size() != 2 || grad.outputs.size() != 1) continue;
    if (graph.type(grad.inputs[1]).shape.rank() != 2) continue;
    const ValueId dz = grad.outputs[0];

    std::optional<NodeId> bias_sum;
    for (const auto& [user, index] : graph.Users(dz)) {
      if (index == 0 && IsBiasSum(registry_, graph, graph.node(user))) {
        bias_sum = user;
        break;
      }
    }
    if (!bias_sum) continue;

    // The fused node's shape rule has the last word: both results must keep
    // exactly the types of the values they replace.
    std::vector<TensorType> input_types;
    for (ValueId in : grad.inputs) input_types.push_back(graph.type(in));
    Attributes checked = grad.attrs;
    auto types =
        registry_.InferTypes("activation_bias_grad", input_types, checked);
    const ValueId db = graph.node(*bias_sum).outputs[0];
    if (!types.ok() || types->size() != 2 || (*types)[0] != graph.type(dz) ||
        (*types)[1] != graph.type(db)) {
      continue;
    }

    const std::vector<ValueId> inputs = grad.inputs;
    const Attributes attrs = grad.attrs;
    const std::string layer = grad.layer;
    const NodeId fused =
        graph.AddNode("activation_bias_grad", inputs, attrs, *types, layer);
    const std::vector<ValueId> outs = graph.node(fused).outputs;
    graph.ReplaceAllUsesWith(db, outs[1]);
    graph.RemoveNode(*bias_sum);
    graph.ReplaceAllUsesWith(dz, outs[0]);
    graph.RemoveNode(id);
    changed = true;
  }
  return changed;
}

}  // namespace sequent
