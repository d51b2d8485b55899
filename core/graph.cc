#include "core/graph.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace sequent {

NodeId Graph::AddNode(std::string op, std::vector<ValueId> inputs,
                      Attributes attrs,
                      const std::vector<TensorType>& output_types,
                      std::string layer) {
  const NodeId id = num_nodes();
  Node node;
  node.op = std::move(op);
  node.inputs = std::move(inputs);
  node.attrs = std::move(attrs);
  node.layer = std::move(layer);
  for (int i = 0; i < static_cast<int>(output_types.size()); ++i) {
    node.outputs.push_back(num_values());
    values_.push_back(Value{output_types[i], id, i});
  }
  nodes_.push_back(std::move(node));
  return id;
}

void Graph::RemoveNode(NodeId id) { nodes_[id].removed = true; }

std::vector<NodeId> Graph::LiveNodes() const {
  std::vector<NodeId> live;
  for (NodeId id = 0; id < num_nodes(); ++id) {
    if (!nodes_[id].removed) live.push_back(id);
  }
  return live;
}

absl::StatusOr<std::vector<NodeId>> Graph::TopologicalOrder() const {
  // Kahn's algorithm, taking ready nodes in id order so the order is
  // deterministic.
  std::vector<int> pending(num_nodes(), 0);
  std::vector<std::vector<NodeId>> consumers(num_nodes());
  for (NodeId id : LiveNodes()) {
    for (ValueId in : nodes_[id].inputs) {
      if (in < 0 || in >= num_values()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "node %", id, " (", nodes_[id].op, ") reads unknown value %", in));
      }
      const NodeId producer = values_[in].producer;
      if (!IsLive(producer)) {
        return absl::InvalidArgumentError(
            absl::StrCat("node ", id, " (", nodes_[id].op,
                         ") reads a value of a removed node"));
      }
      ++pending[id];
      consumers[producer].push_back(id);
    }
  }
  std::vector<NodeId> order;
  std::vector<NodeId> ready;
  for (NodeId id : LiveNodes()) {
    if (pending[id] == 0) ready.push_back(id);
  }
  std::make_heap(ready.begin(), ready.end(), std::greater<>());
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), std::greater<>());
    const NodeId id = ready.back();
    ready.pop_back();
    order.push_back(id);
    for (NodeId c : consumers[id]) {
      if (--pending[c] == 0) {
        ready.push_back(c);
        std::push_heap(ready.begin(), ready.end(), std::greater<>());
      }
    }
  }
  if (order.size() != LiveNodes().size()) {
    for (NodeId id : LiveNodes()) {
      if (pending[id] > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("the graph has a cycle through node ", id, " (",
                         nodes_[id].op, ")"));
      }
    }
  }
  return order;
}

std::vector<std::pair<NodeId, int>> Graph::Users(ValueId value) const {
  std::vector<std::pair<NodeId, int>> users;
  for (NodeId id = 0; id < num_nodes(); ++id) {
    if (nodes_[id].removed) continue;
    const auto& inputs = nodes_[id].inputs;
    for (int i = 0; i < static_cast<int>(inputs.size()); ++i) {
      if (inputs[i] == value) users.emplace_back(id, i);
    }
  }
  return users;
}

int Graph::NumUses(ValueId value) const {
  int uses = static_cast<int>(Users(value).size());
  for (const auto& out : outputs_) uses += out.value == value;
  for (const auto& update : updates_) uses += update.value == value;
  return uses;
}

void Graph::ReplaceAllUsesWith(ValueId from, ValueId to) {
  for (Node& node : nodes_) {
    if (node.removed) continue;
    for (ValueId& in : node.inputs) {
      if (in == from) in = to;
    }
  }
  for (auto& out : outputs_) {
    if (out.value == from) out.value = to;
  }
  for (auto& update : updates_) {
    if (update.value == from) update.value = to;
  }
}

ValueId Graph::FindOutput(absl::string_view name) const {
  for (const auto& out : outputs_) {
    if (out.name == name) return out.value;
  }
  return kNoValue;
}

namespace {

NodeId FindNamed(const Graph& g, absl::string_view op, absl::string_view name) {
  for (NodeId id : g.LiveNodes()) {
    const Node& n = g.node(id);
    if (n.op == op && StringAttrOr(n.attrs, "name", "") == name) return id;
  }
  return kNoNode;
}

std::vector<NodeId> NodesOf(const Graph& g, absl::string_view op) {
  std::vector<NodeId> found;
  for (NodeId id : g.LiveNodes()) {
    if (g.node(id).op == op) found.push_back(id);
  }
  return found;
}

}  // namespace

NodeId Graph::FindInput(absl::string_view name) const {
  return FindNamed(*this, kInputOp, name);
}
NodeId Graph::FindVariable(absl::string_view name) const {
  return FindNamed(*this, kVariableOp, name);
}
std::vector<NodeId> Graph::InputNodes() const {
  return NodesOf(*this, kInputOp);
}
std::vector<NodeId> Graph::VariableNodes() const {
  return NodesOf(*this, kVariableOp);
}

absl::Status Graph::Compact() {
  auto order = TopologicalOrder();
  if (!order.ok()) return order.status();
  Graph compact(name_);
  absl::flat_hash_map<ValueId, ValueId> remap;
  for (NodeId id : *order) {
    const Node& n = nodes_[id];
    std::vector<ValueId> inputs;
    for (ValueId in : n.inputs) inputs.push_back(remap.at(in));
    std::vector<TensorType> types;
    for (ValueId out : n.outputs) types.push_back(values_[out].type);
    const NodeId new_id =
        compact.AddNode(n.op, std::move(inputs), n.attrs, types, n.layer);
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      remap[n.outputs[i]] = compact.node(new_id).outputs[i];
    }
  }
  for (const auto& out : outputs_) {
    auto it = remap.find(out.value);
    if (it == remap.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "graph output '", out.name, "' reads a removed or unknown value"));
    }
    compact.AddOutput(out.name, it->second);
  }
  for (const auto& update : updates_) {
    auto it = remap.find(update.value);
    if (it == remap.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("update of variable '", update.variable,
                       "' reads a removed or unknown value"));
    }
    compact.AddUpdate(update.variable, it->second);
  }
  *this = std::move(compact);
  return absl::OkStatus();
}

absl::Status WithLayer(const Node& node, absl::Status status) {
  if (status.ok() || node.layer.empty()) return status;
  return absl::Status(status.code(), absl::StrCat("layer '", node.layer,
                                                  "': ", status.message()));
}

absl::StatusOr<Tensor> ConstantValue(const Node& constant,
                                     const TensorType& type) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<double> values,
                           GetFloatListAttr(constant.attrs, "value"));
  const int64_t n = type.shape.NumElements();
  if (values.size() != 1 && static_cast<int64_t>(values.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("constant of type ", type.ToString(), " has ",
                     values.size(), " values; give 1 or ", n));
  }
  Tensor t(type);
  for (int64_t i = 0; i < n; ++i)
    t.SetFromDouble(i, values.size() == 1 ? values[0] : values[i]);
  return t;
}

}  // namespace sequent
