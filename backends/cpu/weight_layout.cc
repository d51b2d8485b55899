#include "backends/cpu/weight_layout.h"

#include <dnnl.hpp>
#include <numeric>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "core/attribute.h"

namespace sequent::cpu {
namespace {

using tag = memory::format_tag;

// Ops that compute each output element from the same element of their
// same-shaped operands (scalars broadcast): a layout-agnostic loop or
// primitive.
bool IsElementwise(const std::string& op) {
  static const auto* const kOps =
      new absl::flat_hash_set<std::string>{"add",
                                           "sub",
                                           "mul",
                                           "div",
                                           "maximum",
                                           "neg",
                                           "square",
                                           "sqrt",
                                           "abs",
                                           "sign",
                                           "exp",
                                           "log",
                                           "clip_by_value",
                                           "clip_by_norm",
                                           "sgd_update",
                                           "momentum_update",
                                           "adam_update",
                                           "adamw_update",
                                           "rmsprop_update",
                                           "adagrad_update",
                                           std::string(kAddScaledOp)};
  return kOps->contains(op);
}

bool IsFullReduction(const Node& node, int rank) {
  if (node.op == kSumOfSquaresOp) return true;
  if (node.op != "reduce_sum" && node.op != "reduce_mean" &&
      node.op != "reduce_max") {
    return false;
  }
  const std::vector<int64_t> axes = IntListAttrOr(node.attrs, "axes", {});
  if (axes.empty()) return true;
  absl::flat_hash_set<int64_t> seen;
  for (int64_t a : axes) seen.insert(a < 0 ? a + rank : a);
  return static_cast<int>(seen.size()) == rank;
}

struct UnionFind {
  std::vector<ValueId> parent;
  explicit UnionFind(int n) : parent(n) {
    std::iota(parent.begin(), parent.end(), 0);
  }
  ValueId Find(ValueId v) {
    while (parent[v] != v) v = parent[v] = parent[parent[v]];
    return v;
  }
  void Join(ValueId a, ValueId b) { parent[Find(a)] = Find(b); }
};

// A group: the values joined to a kernel by elementwise work, and what reads
// and writes them.
struct Group {
  std::vector<ValueId> members;
  std::vector<std::string> variables;
  std::vector<NodeId> dense_uses, input_gradient_uses, weight_gradients;
  bool aware = true;  // Every producer and reader is layout-aware.
};

memory::dims Bound(const Shape& shape, int64_t batch_size) {
  memory::dims dims;
  for (int i = 0; i < shape.rank(); ++i)
    dims.push_back(shape[i] == Shape::kBatch ? batch_size : shape[i]);
  return dims;
}

bool IsReference(const char* impl) {
  return impl == nullptr || absl::StrContains(impl, "ref");
}

// The blocked layout of a kernel {OC = p, IC = k} that the group's forward
// prefers, when oneDNN has a non-reference kernel with it for every aware
// step of the group and it has no padding. A thin kernel, which the blocks
// would pad, is stored transposed instead (TransposedKernel).
std::optional<memory::desc> ChooseLayout(const Graph& graph, const Group& g,
                                         int64_t batch_size, int64_t k,
                                         int64_t p) {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  const auto f32 = memory::data_type::f32;
  const memory::desc plain({p, k}, f32, tag::io);
  const memory::desc bias({p}, f32, tag::a);
  const auto rows = [&](ValueId v) {
    return Bound(graph.type(v).shape, batch_size)[0];
  };
  try {
    const int64_t m = rows(graph.node(g.dense_uses[0]).inputs[0]);
    const dnnl::inner_product_forward::primitive_desc any(
        dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                          memory::desc({m, k}, f32, tag::ab),
                                          memory::desc({p, k}, f32, tag::any),
                                          bias,
                                          memory::desc({m, p}, f32, tag::ab)),
        engine);
    memory::desc blocked = any.weights_desc();
    if (blocked.get_size() != plain.get_size() && IsThinKernel(k, p))
      blocked = TransposedKernel(k, p);
    if (blocked == plain || blocked.get_size() != plain.get_size() ||
        blocked.data.format_kind != dnnl_blocked)
      return std::nullopt;
    const auto forward = [&](int64_t rows) {
      return dnnl::inner_product_forward::primitive_desc(
          dnnl::inner_product_forward::desc(
              dnnl::prop_kind::forward_training,
              memory::desc({rows, k}, f32, tag::ab), blocked, bias,
              memory::desc({rows, p}, f32, tag::ab)),
          engine);
    };
    for (NodeId id : g.dense_uses) {
      if (IsReference(forward(rows(graph.node(id).inputs[0])).impl_info_str()))
        return std::nullopt;
    }
    for (NodeId id : g.input_gradient_uses) {
      const int64_t r = rows(graph.node(id).inputs[0]);
      const dnnl::inner_product_backward_data::primitive_desc pd(
          dnnl::inner_product_backward_data::desc(
              memory::desc({r, k}, f32, tag::ab), blocked,
              memory::desc({r, p}, f32, tag::ab)),
          engine, forward(r));
      if (IsReference(pd.impl_info_str())) return std::nullopt;
    }
    for (NodeId id : g.weight_gradients) {
      const int64_t r = rows(graph.node(id).inputs[0]);
      const dnnl::inner_product_backward_weights::primitive_desc pd(
          dnnl::inner_product_backward_weights::desc(
              memory::desc({r, k}, f32, tag::ab), blocked, bias,
              memory::desc({r, p}, f32, tag::ab)),
          engine, forward(r));
      if (IsReference(pd.impl_info_str())) return std::nullopt;
    }
    return blocked;
  } catch (const dnnl::error&) {
    return std::nullopt;  // No such primitive: stay row-major.
  }
}

}  // namespace

bool IsThinKernel(int64_t k, int64_t p) {
  // Up to half of a 16-lane block: a 512x10 classifier head stays row-major,
  // as its batch-1 forward is 2 us faster so (brgemm against gemm:jit over
  // the transposed kernel; bench/sequent_bench MlpPredict/1: 19 vs 21 us).
  constexpr int64_t kMaxThinOutputs = 8, kMinThinInputs = 64;
  return p <= kMaxThinOutputs && k >= kMinThinInputs;
}

memory::desc TransposedKernel(int64_t k, int64_t p) {
  return memory::desc({p, k}, memory::data_type::f32, tag::oi);
}

WeightLayoutPlan PlanWeightLayouts(Graph& graph, int64_t batch_size,
                                   const CpuVariableStore& store, bool bf16) {
  WeightLayoutPlan plan;
  const int num_values = graph.num_values();
  UnionFind sets(num_values);
  absl::flat_hash_map<std::string, ValueId> variable_values;
  for (NodeId id : graph.VariableNodes()) {
    const Node& node = graph.node(id);
    if (node.outputs.size() == 1) {
      variable_values[StringAttrOr(node.attrs, "name", "")] = node.outputs[0];
    }
  }
  // Elementwise ops whose operands all have the output's shape or are
  // scalars; the others (broadcasting a row) read positions.
  absl::flat_hash_set<NodeId> elementwise;
  for (NodeId id : graph.LiveNodes()) {
    const Node& node = graph.node(id);
    if (!IsElementwise(node.op) || node.outputs.empty()) continue;
    const TensorType& out = graph.type(node.outputs[0]);
    bool same = true;
    for (ValueId v : node.inputs) {
      const TensorType& t = graph.type(v);
      same &= t.shape == out.shape || t.shape.NumElements() == 1;
    }
    for (ValueId v : node.outputs) same &= graph.type(v).shape == out.shape;
    if (!same) continue;
    elementwise.insert(id);
    for (ValueId v : node.inputs) {
      if (graph.type(v).shape == out.shape) sets.Join(v, node.outputs[0]);
    }
    for (ValueId v : node.outputs) sets.Join(v, node.outputs[0]);
  }
  for (const VariableUpdate& u : graph.updates()) {
    if (auto it = variable_values.find(u.variable);
        it != variable_values.end()) {
      sets.Join(u.value, it->second);
    }
  }

  // The groups of the variables that are f32 matrices.
  absl::flat_hash_map<ValueId, Group> groups;
  for (const auto& [name, value] : variable_values) {
    const TensorType& t = graph.type(value);
    if (t.dtype != DType::kF32 || t.shape.rank() != 2 || !t.shape.IsStatic())
      continue;
    groups[sets.Find(value)].variables.push_back(name);
  }
  if (groups.empty()) return plan;
  absl::flat_hash_set<ValueId> graph_outputs;
  for (const GraphOutput& out : graph.outputs())
    graph_outputs.insert(out.value);
  for (ValueId v = 0; v < num_values; ++v) {
    auto it = groups.find(sets.Find(v));
    if (it == groups.end()) continue;
    Group& g = it->second;
    g.members.push_back(v);
    const TensorType& type = graph.type(v);
    const TensorType& kernel =
        graph.type(variable_values.at(g.variables.front()));
    if (type != kernel || graph_outputs.contains(v)) g.aware = false;
    const Value& value = graph.value(v);
    if (value.producer == kNoNode || !graph.IsLive(value.producer)) continue;
    const Node& producer = graph.node(value.producer);
    if (producer.op == kDenseBackwardWeightsOp && value.output_index == 0) {
      g.weight_gradients.push_back(value.producer);
    } else if (producer.op != kVariableOp &&
               !elementwise.contains(value.producer)) {
      g.aware = false;
    }
    for (const auto& [user, index] : graph.Users(v)) {
      const Node& u = graph.node(user);
      if (elementwise.contains(user) || IsFullReduction(u, 2)) continue;
      if (u.op == "dense" && index == 1) {
        g.dense_uses.push_back(user);
      } else if (u.op == "matmul" && index == 1 && u.inputs.size() == 2 &&
                 !BoolAttrOr(u.attrs, "transpose_a", false) &&
                 BoolAttrOr(u.attrs, "transpose_b", false) &&
                 graph.type(u.inputs[0]).shape.rank() == 2 &&
                 sets.Find(u.inputs[0]) != sets.Find(v)) {
        g.input_gradient_uses.push_back(user);
      } else {
        g.aware = false;
      }
    }
  }

  for (auto& [root, g] : groups) {
    const ValueId kernel_value = variable_values.at(g.variables.front());
    const Shape& shape = graph.type(kernel_value).shape;
    const int64_t k = shape[0], p = shape[1];
    // The store's layout for the group: the one its blocked variables share;
    // variables no executable reads yet (new ones: an optimizer's slots)
    // take it. A variable read row-major elsewhere keeps the group so.
    const CpuVariableStore::Layout* stored = nullptr;
    bool consistent = true, bound_row_major = false;
    for (const std::string& name : g.variables) {
      const CpuVariableStore::Layout* l = store.LayoutOf(name);
      if (l == nullptr) {
        bound_row_major |= store.IsBound(name);
      } else if (stored == nullptr) {
        stored = l;
      } else {
        consistent &= l->blocked == stored->blocked;
      }
    }
    const bool usable = g.aware && !bf16 && consistent && !bound_row_major;
    std::optional<CpuVariableStore::Layout> layout;
    if (usable && stored != nullptr) {
      layout = *stored;
    } else if (usable && !g.dense_uses.empty()) {
      if (std::optional<memory::desc> blocked =
              ChooseLayout(graph, g, batch_size, k, p)) {
        layout = CpuVariableStore::Layout{
            memory::desc({p, k}, memory::data_type::f32, tag::io), *blocked};
      }
    }
    if (layout.has_value()) {
      for (const std::string& name : g.variables) {
        if (store.LayoutOf(name) == nullptr)
          plan.chosen.emplace_back(name, *layout);
      }
    }
    if (layout.has_value()) {
      for (ValueId v : g.members) plan.blocked.emplace(v, *layout);
      continue;
    }
    // Row-major here: a variable the store keeps blocked is read through a
    // row-major copy and updated through a conversion back.
    for (const std::string& name : g.variables) {
      const CpuVariableStore::Layout* l = store.LayoutOf(name);
      if (l == nullptr) continue;
      const ValueId var = variable_values.at(name);
      const TensorType type = graph.type(var);
      const std::vector<std::pair<NodeId, int>> users = graph.Users(var);
      const NodeId read = graph.AddNode(std::string(kFromBlockedOp), {var}, {},
                                        {type}, graph.producer(var).layer);
      const ValueId copy = graph.node(read).outputs[0];
      for (const auto& [user, index] : users)
        graph.mutable_node(user).inputs[index] = copy;
      for (GraphOutput& out : graph.mutable_outputs()) {
        if (out.value == var) out.value = copy;
      }
      plan.blocked.emplace(var, *l);
      for (VariableUpdate& u : graph.mutable_updates()) {
        if (u.variable != name) continue;
        const NodeId write =
            graph.AddNode(std::string(kToBlockedOp), {u.value}, {}, {type},
                          graph.producer(var).layer);
        u.value = graph.node(write).outputs[0];
        plan.blocked.emplace(u.value, *l);
      }
    }
  }
  return plan;
}

}  // namespace sequent::cpu
