#include "core/passes/verifier.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

// Value names as PrintGraph shows them (values renumbered in order of
// definition along the topological order, or along the id order when there is
// none), so that an error can be read next to a dump of the same graph.
absl::flat_hash_map<ValueId, int> TextNumbers(const Graph& graph) {
  auto topo = graph.TopologicalOrder();
  const std::vector<NodeId> order =
      topo.ok() ? *std::move(topo) : graph.LiveNodes();
  absl::flat_hash_map<ValueId, int> numbers;
  for (NodeId id : order) {
    for (ValueId v : graph.node(id).outputs) {
      const int number = static_cast<int>(numbers.size());
      numbers.emplace(v, number);
    }
  }
  return numbers;
}

std::string Name(const absl::flat_hash_map<ValueId, int>& numbers,
                 ValueId value) {
  auto it = numbers.find(value);
  return it == numbers.end() ? absl::StrCat("%invalid_", value)
                             : absl::StrCat("%", it->second);
}

std::string V(const Graph& graph, ValueId value) {
  return Name(TextNumbers(graph), value);
}

absl::Status NodeError(const Graph& graph, NodeId id,
                       absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(DescribeNode(graph, id), ": ", std::string(message)));
}

bool IsStructural(absl::string_view op) {
  return op == kInputOp || op == kVariableOp || op == kConstantOp;
}

absl::Status CheckStructural(const Graph& graph, NodeId id) {
  const Node& node = graph.node(id);
  if (!node.inputs.empty()) {
    return NodeError(graph, id,
                     absl::StrCat(node.op, " nodes take no inputs, got ",
                                  node.inputs.size()));
  }
  if (node.outputs.size() != 1) {
    return NodeError(
        graph, id,
        absl::StrCat(node.op, " nodes have exactly one output, got ",
                     node.outputs.size()));
  }
  const TensorType& type = graph.type(node.outputs[0]);
  if (node.op == kConstantOp) {
    auto value = GetFloatListAttr(node.attrs, "value");
    if (!value.ok() || !node.attrs.contains("value")) {
      return NodeError(graph, id,
                       "a constant needs a float list attribute 'value'");
    }
    const int64_t count = static_cast<int64_t>(value->size());
    const bool broadcast = count == 1;
    if (!broadcast &&
        (!type.shape.IsStatic() || type.shape.NumElements() != count)) {
      return NodeError(
          graph, id,
          absl::StrCat("a constant of type ", type.ToString(), " holds ", count,
                       " values (one value, or one per element)"));
    }
    return absl::OkStatus();
  }
  auto name = GetStringAttr(node.attrs, "name");
  if (!name.ok() || name->empty()) {
    return NodeError(
        graph, id,
        absl::StrCat("an ", node.op == kInputOp ? "input" : "variable",
                     " needs a non-empty string attribute 'name'"));
  }
  if (node.op == kVariableOp && !type.shape.IsStatic()) {
    return NodeError(
        graph, id,
        absl::StrCat("variable '", *name, "' has type ", type.ToString(),
                     "; variables cannot depend on the batch"));
  }
  return absl::OkStatus();
}

absl::Status CheckTypes(const Graph& graph, NodeId id,
                        const OpRegistry& registry) {
  const Node& node = graph.node(id);
  std::vector<TensorType> input_types;
  input_types.reserve(node.inputs.size());
  for (ValueId in : node.inputs) input_types.push_back(graph.type(in));
  Attributes attrs = node.attrs;
  auto inferred = registry.InferTypes(node.op, input_types, attrs);
  if (!inferred.ok()) return NodeError(graph, id, inferred.status().message());
  if (inferred->size() != node.outputs.size()) {
    return NodeError(graph, id,
                     absl::StrCat("has ", node.outputs.size(), " outputs but [",
                                  node.op, "] produces ", inferred->size()));
  }
  for (size_t i = 0; i < inferred->size(); ++i) {
    const TensorType& recorded = graph.type(node.outputs[i]);
    if (recorded != (*inferred)[i]) {
      return NodeError(
          graph, id,
          absl::StrCat("output ", V(graph, node.outputs[i]), " is recorded as ",
                       recorded.ToString(), " but [", node.op, "] infers ",
                       (*inferred)[i].ToString(), " from ",
                       absl::StrJoin(input_types, ", ",
                                     [](std::string* out, const TensorType& t) {
                                       absl::StrAppend(out, t.ToString());
                                     })));
    }
  }
  return absl::OkStatus();
}

// A value that a node, output or update may read: produced by a live node that
// lists it.
bool IsLiveValue(const Graph& graph, ValueId value) {
  if (value < 0 || value >= graph.num_values()) return false;
  const Value& v = graph.value(value);
  if (!graph.IsLive(v.producer)) return false;
  const auto& outputs = graph.node(v.producer).outputs;
  return v.output_index >= 0 &&
         v.output_index < static_cast<int>(outputs.size()) &&
         outputs[v.output_index] == value;
}

}  // namespace

std::string DescribeNode(const Graph& graph, NodeId id) {
  const Node& node = graph.node(id);
  const absl::flat_hash_map<ValueId, int> numbers = TextNumbers(graph);
  std::string out;
  if (!node.outputs.empty()) {
    out = absl::StrCat(absl::StrJoin(node.outputs, ", ",
                                     [&](std::string* s, ValueId v) {
                                       absl::StrAppend(s, Name(numbers, v));
                                     }),
                       " = ");
  }
  absl::StrAppend(&out, node.op);
  if (!node.layer.empty()) absl::StrAppend(&out, " (layer '", node.layer, "')");
  return out;
}

absl::Status VerifyGraph(const Graph& graph, const OpRegistry& registry) {
  const std::vector<NodeId> live = graph.LiveNodes();

  // SSA: each value listed as the output of exactly one live node, which it
  // points back to.
  absl::flat_hash_map<ValueId, NodeId> producer_of;
  for (NodeId id : live) {
    const Node& node = graph.node(id);
    for (int i = 0; i < static_cast<int>(node.outputs.size()); ++i) {
      const ValueId out = node.outputs[i];
      if (out < 0 || out >= graph.num_values()) {
        return NodeError(
            graph, id,
            absl::StrCat("output ", i, " is unknown value ", V(graph, out)));
      }
      if (auto [it, inserted] = producer_of.emplace(out, id); !inserted) {
        return NodeError(
            graph, id,
            absl::StrCat("value ", V(graph, out), " is also produced by ",
                         DescribeNode(graph, it->second)));
      }
      const Value& v = graph.value(out);
      if (v.producer != id || v.output_index != i) {
        return NodeError(
            graph, id,
            absl::StrCat("value ", V(graph, out), " records producer ",
                         v.producer, " output ", v.output_index,
                         ", not this node's output ", i));
      }
    }
  }

  for (NodeId id : live) {
    const Node& node = graph.node(id);
    for (int i = 0; i < static_cast<int>(node.inputs.size()); ++i) {
      if (!IsLiveValue(graph, node.inputs[i])) {
        return NodeError(
            graph, id,
            absl::StrCat("input ", i, " reads ", V(graph, node.inputs[i]),
                         ", which no live node produces"));
      }
    }
  }

  absl::flat_hash_map<std::string, NodeId> input_names, variable_names;
  for (NodeId id : live) {
    const Node& node = graph.node(id);
    if (IsStructural(node.op)) {
      SEQUENT_RETURN_IF_ERROR(CheckStructural(graph, id));
      if (node.op == kConstantOp) continue;
      auto& names = node.op == kInputOp ? input_names : variable_names;
      const std::string name = StringAttrOr(node.attrs, "name", "");
      if (auto [it, inserted] = names.emplace(name, id); !inserted) {
        return NodeError(graph, id,
                         absl::StrCat("the name '", name, "' is also used by ",
                                      DescribeNode(graph, it->second)));
      }
    } else if (registry.Find(node.op) == nullptr) {
      return NodeError(graph, id, absl::StrCat("unknown op '", node.op, "'"));
    }
  }

  SEQUENT_RETURN_IF_ERROR(graph.TopologicalOrder().status());

  for (NodeId id : live) {
    if (!IsStructural(graph.node(id).op)) {
      SEQUENT_RETURN_IF_ERROR(CheckTypes(graph, id, registry));
    }
  }

  absl::flat_hash_set<std::string> output_names;
  for (const GraphOutput& out : graph.outputs()) {
    if (!output_names.insert(out.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph output '", out.name, "' is defined twice"));
    }
    if (!IsLiveValue(graph, out.value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph output '", out.name, "' reads ",
                       V(graph, out.value), ", which no live node produces"));
    }
  }
  absl::flat_hash_set<std::string> updated;
  for (const VariableUpdate& update : graph.updates()) {
    auto it = variable_names.find(update.variable);
    if (it == variable_names.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("update of undefined variable '", update.variable, "'"));
    }
    if (!updated.insert(update.variable).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable '", update.variable, "' is updated twice"));
    }
    if (!IsLiveValue(graph, update.value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update of variable '", update.variable, "' reads ",
          V(graph, update.value), ", which no live node produces"));
    }
    const TensorType& var_type = graph.type(graph.node(it->second).outputs[0]);
    const TensorType& new_type = graph.type(update.value);
    if (var_type != new_type) {
      return absl::InvalidArgumentError(
          absl::StrCat("update of variable '", update.variable, "' of type ",
                       var_type.ToString(), " reads ", V(graph, update.value),
                       " of type ", new_type.ToString()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> VerifierPass::Run(Graph& graph) {
  SEQUENT_RETURN_IF_ERROR(VerifyGraph(graph, registry_));
  return false;
}

}  // namespace sequent
