#include "core/autodiff.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

// Marks values reachable forward from `wrt` (their gradient can be non-zero).
std::vector<bool> DependsOnWrt(const Graph& g, const std::vector<NodeId>& order,
                               absl::Span<const ValueId> wrt) {
  std::vector<bool> depends(g.num_values(), false);
  for (ValueId v : wrt) depends[v] = true;
  for (NodeId id : order) {
    const Node& n = g.node(id);
    bool any = false;
    for (ValueId in : n.inputs) any = any || depends[in];
    if (any) {
      for (ValueId out : n.outputs) depends[out] = true;
    }
  }
  return depends;
}

// Marks values `loss` depends on (their gradient is needed).
std::vector<bool> NeededByLoss(const Graph& g, const std::vector<NodeId>& order, ValueId loss) {
  std::vector<bool> needed(g.num_values(), false);
  needed[loss] = true;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Node& n = g.node(*it);
    bool any = false;
    for (ValueId out : n.outputs) any = any || needed[out];
    if (any) {
      for (ValueId in : n.inputs) needed[in] = true;
    }
  }
  return needed;
}

std::string BackwardLayer(const Node& n) {
  return n.layer.empty() ? std::string("backward") : absl::StrCat("backward/", n.layer);
}

}  // namespace

absl::StatusOr<std::vector<ValueId>> AppendGradients(GraphBuilder& builder, ValueId loss,
                                                     absl::Span<const ValueId> wrt) {
  Graph& g = builder.graph();
  SEQUENT_RETURN_IF_ERROR(builder.status());
  if (loss < 0 || loss >= g.num_values()) {
    return absl::InvalidArgumentError("autodiff: the loss is not a value of the graph");
  }
  if (!g.type(loss).shape.IsScalar() || !IsFloating(g.type(loss).dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "autodiff: the loss must be a floating-point scalar, got ", g.type(loss).ToString()));
  }
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  const std::vector<bool> depends = DependsOnWrt(g, order, wrt);
  const std::vector<bool> needed = NeededByLoss(g, order, loss);
  const int forward_values = g.num_values();

  std::vector<ValueId> grad(forward_values, kNoValue);
  const std::string saved_layer = builder.layer();
  builder.SetLayer("backward");
  grad[loss] = builder.Constant(g.type(loss), {1.0});

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const NodeId id = *it;
    // Copy: the rule appends nodes, which may reallocate the node vector.
    const Node node = g.node(id);
    bool relevant = false;
    std::vector<ValueId> output_grads;
    for (ValueId out : node.outputs) {
      output_grads.push_back(depends[out] && needed[out] ? grad[out] : kNoValue);
      relevant = relevant || output_grads.back() != kNoValue;
    }
    if (!relevant) continue;
    bool wants_input_grad = false;
    for (ValueId in : node.inputs) wants_input_grad = wants_input_grad || depends[in];
    if (!wants_input_grad) continue;

    SEQUENT_ASSIGN_OR_RETURN(const OpDef* def, builder.registry().Get(node.op));
    if (!def->gradient) {
      return absl::UnimplementedError(absl::StrCat(
          "autodiff: op '", node.op, "'",
          node.layer.empty() ? "" : absl::StrCat(" of layer '", node.layer, "'"),
          " has no gradient rule, but the loss depends on it"));
    }
    builder.SetLayer(BackwardLayer(node));
    auto input_grads = def->gradient(builder, node, output_grads);
    SEQUENT_RETURN_IF_ERROR(builder.status());
    if (!input_grads.ok()) {
      return absl::Status(input_grads.status().code(),
                          absl::StrCat("gradient of [", node.op, "]: ",
                                       input_grads.status().message()));
    }
    if (input_grads->size() != node.inputs.size()) {
      return absl::InternalError(absl::StrCat("gradient rule of [", node.op, "] returned ",
                                              input_grads->size(), " gradients for ",
                                              node.inputs.size(), " inputs"));
    }
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const ValueId in = node.inputs[i];
      const ValueId contribution = (*input_grads)[i];
      if (contribution == kNoValue || !depends[in]) continue;
      if (g.type(contribution) != g.type(in)) {
        return absl::InternalError(absl::StrCat(
            "gradient rule of [", node.op, "] gives input ", i, " a gradient of type ",
            g.type(contribution).ToString(), ", the input is ", g.type(in).ToString()));
      }
      grad[in] = grad[in] == kNoValue ? contribution : builder.Op("add", {grad[in], contribution});
    }
    SEQUENT_RETURN_IF_ERROR(builder.status());
  }

  std::vector<ValueId> result;
  builder.SetLayer("backward");
  for (ValueId v : wrt) {
    result.push_back(grad[v] != kNoValue ? grad[v] : builder.Constant(g.type(v), {0.0}));
  }
  builder.SetLayer(saved_layer);
  SEQUENT_RETURN_IF_ERROR(builder.status());
  return result;
}

}  // namespace sequent
