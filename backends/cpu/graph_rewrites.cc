#include "backends/cpu/graph_rewrites.h"

#include <string>
#include <vector>

#include "backends/cpu/cpu_executable.h"
#include "core/attribute.h"
#include "core/passes/pass_util.h"

namespace sequent::cpu {
namespace {

// An f32 value of one element (kAddScaledOp's lowering reads them as f32).
bool IsScalar(const Graph& g, ValueId v) {
  const TensorType& t = g.type(v);
  return t.dtype == DType::kF32 && t.shape.IsStatic() &&
         t.shape.NumElements() == 1;
}

// A node this rewrite absorbs: nothing reads its output any more.
void Remove(Graph& g, NodeId id) {
  Node& node = g.mutable_node(id);
  node.removed = true;
  node.outputs.clear();
}

// The live producer of `v` when it runs `op` and `v` has no other use.
NodeId SoleUseProducer(const Graph& g, ValueId v, absl::string_view op) {
  const NodeId producer = g.value(v).producer;
  if (!g.IsLive(producer) || g.node(producer).op != op ||
      g.node(producer).outputs.size() != 1 || g.NumUses(v) != 1) {
    return kNoNode;
  }
  return producer;
}

// For `v` = mul(...mul(w, s1)..., sk) with scalar s's, each product used only
// by the next: w, the s's, and the mul nodes; nothing when `v` is no such
// product of a same-shaped w.
struct ScaledValue {
  ValueId base = kNoValue;
  std::vector<ValueId> scalars;
  std::vector<NodeId> muls;
};

ScaledValue ScaledValueOf(const Graph& g, ValueId v) {
  ScaledValue scaled;
  const TensorType& type = g.type(v);
  ValueId current = v;
  for (;;) {
    const NodeId mul = SoleUseProducer(g, current, "mul");
    if (mul == kNoNode || g.node(mul).inputs.size() != 2) break;
    const ValueId a = g.node(mul).inputs[0], b = g.node(mul).inputs[1];
    ValueId next;
    if (IsScalar(g, b) && g.type(a) == type) {
      next = a;
      scaled.scalars.push_back(b);
    } else if (IsScalar(g, a) && g.type(b) == type) {
      next = b;
      scaled.scalars.push_back(a);
    } else {
      break;
    }
    scaled.muls.push_back(mul);
    current = next;
  }
  if (!scaled.muls.empty()) scaled.base = current;
  return scaled;
}

}  // namespace

void RewriteDenseBackward(Graph& g) {
  for (NodeId id : g.LiveNodes()) {
    if (g.node(id).op != "matmul") continue;
    const Node& m = g.node(id);
    if (!BoolAttrOr(m.attrs, "transpose_a", false) ||
        BoolAttrOr(m.attrs, "transpose_b", false) || m.inputs.size() != 2) {
      continue;
    }
    const ValueId x = m.inputs[0], dz = m.inputs[1];
    const TensorType& xt = g.type(x);
    const TensorType& dt = g.type(dz);
    if (xt.dtype != DType::kF32 || dt.dtype != DType::kF32 ||
        xt.shape.rank() != 2 || dt.shape.rank() != 2 ||
        dt.shape[1] == Shape::kBatch) {
      continue;
    }
    const TensorType bias_type{DType::kF32, Shape{dt.shape[1]}};
    ValueId db = kNoValue;
    const NodeId producer = g.value(dz).producer;
    if (g.node(producer).op == "activation_bias_grad" &&
        g.node(producer).outputs.size() == 2 &&
        g.node(producer).outputs[0] == dz) {
      db = g.node(producer).outputs[1];
      Node& abg = g.mutable_node(producer);
      abg.op = "activation_grad";
      abg.outputs.resize(1);
    } else {
      for (const auto& [user, index] : g.Users(dz)) {
        const Node& u = g.node(user);
        const std::vector<int64_t> axes = IntListAttrOr(u.attrs, "axes", {});
        if (u.op == "reduce_sum" && u.outputs.size() == 1 &&
            (axes == std::vector<int64_t>{0} ||
             axes == std::vector<int64_t>{-2}) &&
            !BoolAttrOr(u.attrs, "keepdims", false) &&
            g.type(u.outputs[0]) == bias_type) {
          db = u.outputs[0];
          Node& r = g.mutable_node(user);
          r.removed = true;
          r.outputs.clear();
          break;
        }
      }
    }
    if (db == kNoValue) continue;
    Node& w = g.mutable_node(id);
    w.op = std::string(kDenseBackwardWeightsOp);
    w.attrs.clear();
    w.outputs.push_back(db);
    g.mutable_value(db).producer = id;
    g.mutable_value(db).output_index = 1;
  }
  // A convolution's filter gradient conv2d_backprop_filter(x, dz) and its
  // bias gradient reduce_sum(dz, axes=[0, 1, 2]): one oneDNN
  // convolution_backward_weights with diff_bias.
  for (NodeId id : g.LiveNodes()) {
    const Node& f = g.node(id);
    if (f.op != "conv2d_backprop_filter" || f.inputs.size() != 2) continue;
    const ValueId dz = f.inputs[1];
    const TensorType& dt = g.type(dz);
    if (dt.dtype != DType::kF32 || dt.shape.rank() != 4) continue;
    const TensorType bias_type{DType::kF32, Shape{dt.shape[3]}};
    for (const auto& [user, index] : g.Users(dz)) {
      const Node& u = g.node(user);
      const std::vector<int64_t> axes = IntListAttrOr(u.attrs, "axes", {});
      if (u.op != "reduce_sum" || u.outputs.size() != 1 ||
          !(axes == std::vector<int64_t>{0, 1, 2} ||
            axes == std::vector<int64_t>{-4, -3, -2}) ||
          BoolAttrOr(u.attrs, "keepdims", false) ||
          g.type(u.outputs[0]) != bias_type) {
        continue;
      }
      const ValueId db = u.outputs[0];
      Node& r = g.mutable_node(user);
      r.removed = true;
      r.outputs.clear();
      Node& w = g.mutable_node(id);
      w.op = std::string(kConvBackwardWeightsOp);
      w.outputs.push_back(db);
      g.mutable_value(db).producer = id;
      g.mutable_value(db).output_index = 1;
      break;
    }
  }
}

void RewriteConvBiasActivation(Graph& g) {
  for (NodeId id : g.LiveNodes()) {
    const Node& bias_add = g.node(id);
    if (bias_add.op != "bias_add" || bias_add.inputs.size() != 2 ||
        bias_add.outputs.size() != 1 ||
        g.type(bias_add.outputs[0]).dtype != DType::kF32) {
      continue;
    }
    const NodeId conv = SoleUseProducer(g, bias_add.inputs[0], "conv2d");
    if (conv == kNoNode || g.node(conv).inputs.size() != 2) continue;
    const ValueId bias = bias_add.inputs[1];
    ValueId out = bias_add.outputs[0];
    std::string activation = "linear";
    if (const auto relu = passes::SoleUserAsFirstInput(g, out);
        relu && g.node(*relu).op == "relu" &&
        g.node(*relu).outputs.size() == 1 && g.node(*relu).attrs.empty()) {
      activation = "relu";
      out = g.node(*relu).outputs[0];
      Remove(g, *relu);
    }
    Remove(g, id);
    Node& fused = g.mutable_node(conv);
    fused.op = std::string(kConvBiasActivationOp);
    fused.inputs.push_back(bias);
    fused.attrs["activation"] = activation;
    fused.outputs = {out};
    g.mutable_value(out).producer = conv;
    g.mutable_value(out).output_index = 0;
  }
}

void RewriteMaxPoolActivationGrad(Graph& g) {
  for (NodeId act_id : g.LiveNodes()) {
    const Node& act = g.node(act_id);
    if (act.op != "activation_grad" || act.inputs.size() != 2 ||
        act.outputs.size() != 1) {
      continue;
    }
    const ValueId spread = act.inputs[0], y = act.inputs[1];
    const NodeId pool_id = SoleUseProducer(g, spread, "max_pool2d_grad");
    if (pool_id == kNoNode) continue;
    const Node& pool = g.node(pool_id);
    if (pool.inputs.size() != 3 || pool.inputs[0] != y) continue;
    const ValueId pooled = pool.inputs[1], d = pool.inputs[2];
    if (g.type(pooled) != g.type(d)) continue;
    // The two nodes trade ops, each keeping its place in the order: the
    // first now scales d, the second spreads the result.
    const Node old_pool = pool, old_act = act;
    Node& scale = g.mutable_node(pool_id);
    scale.op = old_act.op;
    scale.attrs = old_act.attrs;
    scale.layer = old_act.layer;
    scale.inputs = {d, pooled};
    g.mutable_value(spread).type = g.type(d);
    Node& spread_node = g.mutable_node(act_id);
    spread_node.op = old_pool.op;
    spread_node.attrs = old_pool.attrs;
    spread_node.layer = old_pool.layer;
    spread_node.inputs = {y, pooled, spread};
  }
}

void RewriteWeightPenalties(Graph& g) {
  for (NodeId id : g.LiveNodes()) {
    const Node& node = g.node(id);
    if (node.op != "reduce_sum" || node.inputs.size() != 1 ||
        node.outputs.size() != 1) {
      continue;
    }
    // A scalar result: every axis reduced.
    const TensorType& out = g.type(node.outputs[0]);
    if (out.dtype != DType::kF32 || out.shape.rank() != 0) continue;
    const NodeId square = SoleUseProducer(g, node.inputs[0], "square");
    if (square == kNoNode) continue;
    const ValueId w = g.node(square).inputs[0];
    Remove(g, square);
    Node& sum = g.mutable_node(id);
    sum.op = std::string(kSumOfSquaresOp);
    sum.inputs = {w};
    sum.attrs.clear();
  }
  for (NodeId id : g.LiveNodes()) {
    const Node& node = g.node(id);
    if (node.op != "add" || node.outputs.size() != 1 ||
        node.inputs.size() != 2) {
      continue;
    }
    const TensorType& type = g.type(node.outputs[0]);
    if (type.dtype != DType::kF32 || g.type(node.inputs[0]) != type ||
        g.type(node.inputs[1]) != type) {
      continue;
    }
    for (int side = 0; side < 2; ++side) {
      const ScaledValue scaled = ScaledValueOf(g, node.inputs[side]);
      if (scaled.base == kNoValue) continue;
      std::vector<ValueId> inputs = {node.inputs[1 - side], scaled.base};
      inputs.insert(inputs.end(), scaled.scalars.begin(), scaled.scalars.end());
      for (NodeId mul : scaled.muls) Remove(g, mul);
      Node& add = g.mutable_node(id);
      add.op = std::string(kAddScaledOp);
      add.inputs = std::move(inputs);
      add.attrs.clear();
      break;
    }
  }
}

absl::flat_hash_set<ValueId> PenaltiesAddedByUpdates(const Graph& g) {
  absl::flat_hash_set<ValueId> fused;
  for (NodeId id : g.LiveNodes()) {
    const Node& node = g.node(id);
    if (node.op != kAddScaledOp || node.outputs.size() != 1 ||
        node.inputs.size() < 3 || g.NumUses(node.outputs[0]) != 1) {
      continue;
    }
    const auto users = g.Users(node.outputs[0]);
    if (users.size() != 1 || users[0].second != 1) continue;
    const Node& update = g.node(users[0].first);
    if ((update.op == "adam_update" || update.op == "sgd_update" ||
         update.op == "momentum_update") &&
        update.inputs[0] == node.inputs[1] &&
        g.type(update.inputs[0]).dtype == DType::kF32) {
      fused.insert(node.outputs[0]);
    }
  }
  return fused;
}

}  // namespace sequent::cpu
