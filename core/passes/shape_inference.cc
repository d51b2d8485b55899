#include "core/passes/shape_inference.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace sequent {

absl::StatusOr<bool> ShapeInferencePass::Run(Graph& graph) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    Node& node = graph.mutable_node(id);
    if (node.op == kInputOp || node.op == kVariableOp || node.op == kConstantOp)
      continue;
    std::vector<TensorType> input_types;
    input_types.reserve(node.inputs.size());
    for (ValueId in : node.inputs) input_types.push_back(graph.type(in));
    Attributes attrs = node.attrs;
    auto types = registry_.InferTypes(node.op, input_types, attrs);
    if (!types.ok()) return WithLayer(node, types.status());
    if (types->size() != node.outputs.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          node.layer.empty() ? "" : absl::StrCat("layer '", node.layer, "': "),
          "[", node.op, "] produces ", types->size(), " outputs, the node has ",
          node.outputs.size()));
    }
    if (attrs != node.attrs) {
      node.attrs = std::move(attrs);
      changed = true;
    }
    for (size_t i = 0; i < types->size(); ++i) {
      TensorType& recorded = graph.mutable_value(node.outputs[i]).type;
      if (recorded != (*types)[i]) {
        recorded = (*types)[i];
        changed = true;
      }
    }
  }
  return changed;
}

}  // namespace sequent
