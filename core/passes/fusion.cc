#include "core/passes/fusion.h"

#include <optional>
#include <vector>

#include "core/passes/pass_util.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

constexpr double kDenseLeakyReluAlpha = 0.2;

// Whether `node` is an activation that dense{activation=node.op} computes
// exactly.
bool IsFusableActivation(const OpRegistry& registry, const Node& node) {
  if (node.inputs.size() != 1 || node.outputs.size() != 1) return false;
  const Attributes attrs = passes::AttrsWithDefaults(registry, node);
  const std::string& op = node.op;
  if (op == "relu" || op == "sigmoid" || op == "tanh" || op == "swish" ||
      op == "softplus" || op == "selu") {
    return true;
  }
  // A gelu without the attribute is the exact form.
  if (op == "gelu") return !BoolAttrOr(attrs, "approximate", false);
  if (op == "elu") return passes::NumberAttrOr(attrs, "alpha", 0) == 1.0;
  if (op == "leaky_relu") {
    // dense{activation = "leaky_relu"} has a fixed slope (ops/activation_fn.h).
    return passes::NumberAttrOr(attrs, "alpha", -1) == kDenseLeakyReluAlpha;
  }
  return false;
}

}  // namespace

absl::StatusOr<bool> FusionPass::Run(Graph& graph) {
  if (!policy_.supports_fused_dense) return false;
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    if (!graph.IsLive(id) || graph.node(id).op != "matmul") continue;
    const Node& matmul = graph.node(id);
    const Attributes mm_attrs = passes::AttrsWithDefaults(registry_, matmul);
    if (matmul.inputs.size() != 2 ||
        BoolAttrOr(mm_attrs, "transpose_a", true) ||
        BoolAttrOr(mm_attrs, "transpose_b", true)) {
      continue;
    }
    const ValueId product = matmul.outputs[0];
    auto user = passes::SoleUserAsFirstInput(graph, product);
    if (!user) continue;

    std::vector<ValueId> dense_inputs = matmul.inputs;
    std::vector<NodeId> replaced = {id};
    std::string activation;
    const Node& next = graph.node(*user);
    if (next.op == "bias_add" && next.inputs.size() == 2) {
      dense_inputs.push_back(next.inputs[1]);
      replaced.push_back(*user);
      activation = "linear";
      if (auto act = passes::SoleUserAsFirstInput(graph, next.outputs[0])) {
        const Node& act_node = graph.node(*act);
        if (IsFusableActivation(registry_, act_node) &&
            policy_.supports_fused_dense(act_node.op)) {
          replaced.push_back(*act);
          activation = act_node.op;
        }
      }
      if (activation == "linear" && !policy_.supports_fused_dense("linear"))
        continue;
    } else if (IsFusableActivation(registry_, next) &&
               policy_.supports_fused_dense(next.op)) {
      replaced.push_back(*user);
      activation = next.op;
    } else {
      continue;
    }

    // The dense shape rule has the last word (it may be stricter than matmul's,
    // e.g. on ranks or dtypes); the fused value must have exactly the type of
    // the one it replaces.
    const ValueId result = graph.node(replaced.back()).outputs[0];
    std::vector<TensorType> input_types;
    for (ValueId in : dense_inputs) input_types.push_back(graph.type(in));
    Attributes attrs{{"activation", activation}};
    auto types = registry_.InferTypes("dense", input_types, attrs);
    if (!types.ok() || types->size() != 1 || (*types)[0] != graph.type(result))
      continue;

    const std::string layer = matmul.layer;
    const NodeId dense = graph.AddNode("dense", std::move(dense_inputs),
                                       std::move(attrs), *types, layer);
    graph.ReplaceAllUsesWith(result, graph.node(dense).outputs[0]);
    for (NodeId r : replaced) graph.RemoveNode(r);
    changed = true;
  }
  return changed;
}

}  // namespace sequent
