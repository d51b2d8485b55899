#ifndef SEQUENT_CORE_GRAPH_H_
#define SEQUENT_CORE_GRAPH_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/attribute.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace sequent {

using ValueId = int32_t;
using NodeId = int32_t;
inline constexpr ValueId kNoValue = -1;
inline constexpr NodeId kNoNode = -1;

// Op names of the structural nodes every graph may hold.
inline constexpr absl::string_view kInputOp = "input";  // attr name: feed name
inline constexpr absl::string_view kVariableOp =
    "variable";  // attrs name, initializer, ...
inline constexpr absl::string_view kConstantOp =
    "constant";  // attr value: float list

// An SSA value: produced by exactly one node output.
struct Value {
  TensorType type;
  NodeId producer = kNoNode;
  int output_index = 0;
};

struct Node {
  std::string op;
  std::vector<ValueId> inputs;
  std::vector<ValueId> outputs;
  Attributes attrs;
  // The frontend layer that emitted the node ("dense_1"); error messages and
  // DOT name it.
  std::string layer;
  bool removed = false;
};

// A named result of the graph ("loss", "accuracy", "y_pred").
struct GraphOutput {
  std::string name;
  ValueId value = kNoValue;
};

// After a run, variable `variable` takes the value `value` (optimizer updates,
// batch-norm moving statistics). Graphs stay functional; backends may update in
// place.
struct VariableUpdate {
  std::string variable;
  ValueId value = kNoValue;
};

// A static compute graph in SSA form. Node and value ids are stable indices;
// removing a node marks it removed (Compact() renumbers). Copyable: a copy is a
// clone.
class Graph {
 public:
  Graph() = default;
  explicit Graph(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  // Adds a node whose outputs get the given types; returns its id.
  NodeId AddNode(std::string op, std::vector<ValueId> inputs, Attributes attrs,
                 const std::vector<TensorType>& output_types,
                 std::string layer = "");
  // Marks a node removed. Its outputs must have no remaining uses.
  void RemoveNode(NodeId id);

  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  int num_values() const { return static_cast<int>(values_.size()); }
  const Node& node(NodeId id) const { return nodes_[id]; }
  Node& mutable_node(NodeId id) { return nodes_[id]; }
  const Value& value(ValueId id) const { return values_[id]; }
  Value& mutable_value(ValueId id) { return values_[id]; }
  const TensorType& type(ValueId id) const { return values_[id].type; }
  // The node producing `value`.
  const Node& producer(ValueId value) const {
    return nodes_[values_[value].producer];
  }
  bool IsLive(NodeId id) const {
    return id >= 0 && id < num_nodes() && !nodes_[id].removed;
  }

  // Live nodes in id order.
  std::vector<NodeId> LiveNodes() const;
  // Live nodes with every producer before its users; an error names a node on a
  // cycle.
  absl::StatusOr<std::vector<NodeId>> TopologicalOrder() const;

  // (node, input index) pairs that read `value`, over live nodes.
  std::vector<std::pair<NodeId, int>> Users(ValueId value) const;
  // Uses by live nodes plus graph outputs and variable updates.
  int NumUses(ValueId value) const;
  // Redirects every use of `from` (nodes, outputs, updates) to `to`.
  void ReplaceAllUsesWith(ValueId from, ValueId to);

  const std::vector<GraphOutput>& outputs() const { return outputs_; }
  std::vector<GraphOutput>& mutable_outputs() { return outputs_; }
  void AddOutput(std::string name, ValueId value) {
    outputs_.push_back({std::move(name), value});
  }
  // kNoValue when there is no output of that name.
  ValueId FindOutput(absl::string_view name) const;

  const std::vector<VariableUpdate>& updates() const { return updates_; }
  std::vector<VariableUpdate>& mutable_updates() { return updates_; }
  void AddUpdate(std::string variable, ValueId value) {
    updates_.push_back({std::move(variable), value});
  }

  // Structural nodes by their `name` attribute; kNoNode when absent.
  NodeId FindInput(absl::string_view name) const;
  NodeId FindVariable(absl::string_view name) const;
  std::vector<NodeId> InputNodes() const;
  std::vector<NodeId> VariableNodes() const;

  // Drops removed nodes and unused values, renumbering in topological order.
  absl::Status Compact();

 private:
  std::string name_;
  std::vector<Node> nodes_;
  std::vector<Value> values_;
  std::vector<GraphOutput> outputs_;
  std::vector<VariableUpdate> updates_;
};

// `status` with "layer '<layer>': " in front of its message when the node
// belongs to a layer, so that errors name what the user wrote; an OK status
// passes through.
absl::Status WithLayer(const Node& node, absl::Status status);

// The value of a `constant` node at `type` (its batch-bound type): the `value`
// attribute holds one number, broadcast, or one per element. Every backend
// materializes constants through this, with the same message for a bad count.
absl::StatusOr<Tensor> ConstantValue(const Node& constant,
                                     const TensorType& type);

}  // namespace sequent

#endif  // SEQUENT_CORE_GRAPH_H_
