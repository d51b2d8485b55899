#include "core/passes/pass_util.h"

namespace sequent::passes {

std::optional<NodeId> SoleUserAsFirstInput(const Graph& graph, ValueId value) {
  if (graph.NumUses(value) != 1) return std::nullopt;
  auto users = graph.Users(value);
  if (users.size() != 1 || users[0].second != 0) return std::nullopt;
  return users[0].first;
}

bool IsStructural(absl::string_view op) {
  return op == kInputOp || op == kVariableOp || op == kConstantOp;
}

Attributes AttrsWithDefaults(const OpRegistry& registry, const Node& node) {
  Attributes attrs = node.attrs;
  if (const OpDef* def = registry.Find(node.op)) {
    for (const AttrSpec& spec : def->attrs) {
      if (spec.default_value && !attrs.contains(spec.name)) {
        attrs.emplace(spec.name, *spec.default_value);
      }
    }
  }
  return attrs;
}

double NumberAttrOr(const Attributes& attrs, absl::string_view name,
                    double fallback) {
  auto it = attrs.find(name);
  if (it == attrs.end()) return fallback;
  if (const auto* d = std::get_if<double>(&it->second)) return *d;
  if (const auto* i = std::get_if<int64_t>(&it->second))
    return static_cast<double>(*i);
  return fallback;
}

void ReplaceNode(Graph& graph, NodeId from, const std::vector<ValueId>& to) {
  const std::vector<ValueId> outputs = graph.node(from).outputs;
  for (size_t i = 0; i < outputs.size() && i < to.size(); ++i) {
    graph.ReplaceAllUsesWith(outputs[i], to[i]);
  }
  graph.RemoveNode(from);
}

}  // namespace sequent::passes
