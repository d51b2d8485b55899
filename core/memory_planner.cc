#include "core/memory_planner.h"

#include <algorithm>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

int64_t AlignUp(int64_t bytes, int64_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

// Follows in-place aliases to the value that owns the buffer.
ValueId Root(const std::vector<BufferAssignment>& buffers, ValueId v) {
  while (buffers[v].kind == BufferAssignment::Kind::kAlias)
    v = buffers[v].alias_of;
  return v;
}

}  // namespace

Graph BindBatch(const Graph& graph, int64_t batch_size) {
  Graph bound = graph;
  for (ValueId v = 0; v < bound.num_values(); ++v) {
    Value& value = bound.mutable_value(v);
    value.type.shape = value.type.shape.WithBatch(batch_size);
  }
  return bound;
}

absl::StatusOr<MemoryPlan> PlanMemory(const Graph& graph,
                                      const OpRegistry& registry,
                                      int64_t alignment) {
  MemoryPlan plan;
  plan.alignment = alignment;
  SEQUENT_ASSIGN_OR_RETURN(plan.schedule, graph.TopologicalOrder());
  const int steps = static_cast<int>(plan.schedule.size());
  plan.buffers.assign(graph.num_values(), BufferAssignment{});
  std::vector<bool> defined(graph.num_values(), false);

  absl::flat_hash_map<std::string, ValueId> variable_value;
  for (int step = 0; step < steps; ++step) {
    const Node& n = graph.node(plan.schedule[step]);
    for (ValueId out : n.outputs) {
      const TensorType& t = graph.type(out);
      if (!t.shape.IsStatic()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "memory planning needs static shapes; value of ", n.op,
            " has type ", t.ToString(), " (bind the batch size first)"));
      }
      BufferAssignment& b = plan.buffers[out];
      b.bytes =
          t.shape.NumElements() * static_cast<int64_t>(DTypeSize(t.dtype));
      b.first_step = b.last_step = step;
      defined[out] = true;
    }
    if (n.op == kVariableOp) {
      const std::string name = StringAttrOr(n.attrs, "name", "");
      BufferAssignment& b = plan.buffers[n.outputs[0]];
      b.kind = BufferAssignment::Kind::kVariable;
      b.variable = name;
      variable_value[name] = n.outputs[0];
      plan.persistent_bytes += b.bytes;
    }
    if (n.op == kInputOp) {
      for (ValueId out : n.outputs) plan.buffers[out].first_step = 0;
    }
    if (n.op == kConstantOp) {
      // Filled once at compile time, so no other buffer may ever take its
      // place.
      for (ValueId out : n.outputs) {
        plan.buffers[out].first_step = 0;
        plan.buffers[out].last_step = steps;
      }
    }
    for (ValueId in : n.inputs) {
      plan.buffers[in].last_step = std::max(plan.buffers[in].last_step, step);
    }
  }
  for (const GraphOutput& out : graph.outputs())
    plan.buffers[out.value].last_step = steps;
  for (const VariableUpdate& u : graph.updates())
    plan.buffers[u.value].last_step = steps;

  // Updates whose op writes in place over the variable itself live in the
  // variable.
  absl::flat_hash_map<ValueId, std::string> update_of;
  for (const VariableUpdate& u : graph.updates())
    update_of[u.value] = u.variable;

  // In-place: an output shares an input's buffer when the input dies here,
  // sizes match, and the input is not an input feed or something read later.
  for (int step = 0; step < steps; ++step) {
    const Node& n = graph.node(plan.schedule[step]);
    const OpDef* def = registry.Find(n.op);
    if (def == nullptr) continue;
    for (const auto& [out_index, in_index] : def->inplace) {
      if (out_index >= static_cast<int>(n.outputs.size()) ||
          in_index >= static_cast<int>(n.inputs.size())) {
        continue;
      }
      const ValueId out = n.outputs[out_index];
      const ValueId in = n.inputs[in_index];
      BufferAssignment& ob = plan.buffers[out];
      const ValueId root = Root(plan.buffers, in);
      const BufferAssignment& rb = plan.buffers[root];
      if (ob.kind != BufferAssignment::Kind::kArena || ob.bytes != rb.bytes)
        continue;
      if (rb.kind == BufferAssignment::Kind::kVariable) {
        // Only the update of that very variable may overwrite it, and only if
        // nothing reads the variable after this node.
        auto it = update_of.find(out);
        if (it == update_of.end() || it->second != rb.variable ||
            rb.last_step > step)
          continue;
        ob.kind = BufferAssignment::Kind::kVariable;
        ob.variable = rb.variable;
        continue;
      }
      if (graph.producer(root).op == kInputOp || rb.last_step > step) continue;
      bool in_is_output = false;
      for (const GraphOutput& o : graph.outputs())
        in_is_output = in_is_output || o.value == in;
      if (in_is_output || update_of.contains(root)) continue;
      ob.kind = BufferAssignment::Kind::kAlias;
      ob.alias_of = root;
      // The shared buffer now lives until the output's last use.
      plan.buffers[root].last_step =
          std::max(plan.buffers[root].last_step, ob.last_step);
    }
  }
  // Alias lifetimes may have grown after they were taken; propagate once more.
  for (ValueId v = 0; v < graph.num_values(); ++v) {
    if (defined[v] && plan.buffers[v].kind == BufferAssignment::Kind::kAlias) {
      BufferAssignment& root = plan.buffers[Root(plan.buffers, v)];
      root.last_step = std::max(root.last_step, plan.buffers[v].last_step);
    }
  }

  // Greedy by size (largest first), each at the lowest offset that fits beside
  // the buffers already placed whose lifetimes overlap (TFLite's arena planner
  // does the same).
  std::vector<ValueId> arena_values;
  for (ValueId v = 0; v < graph.num_values(); ++v) {
    if (!defined[v] ||
        plan.buffers[v].kind == BufferAssignment::Kind::kVariable)
      continue;
    // The baseline without planning: every value its own buffer, in place or
    // not.
    plan.total_intermediate_bytes += AlignUp(plan.buffers[v].bytes, alignment);
    if (plan.buffers[v].kind == BufferAssignment::Kind::kArena)
      arena_values.push_back(v);
  }
  std::stable_sort(arena_values.begin(), arena_values.end(),
                   [&](ValueId a, ValueId b) {
                     return plan.buffers[a].bytes > plan.buffers[b].bytes;
                   });
  std::vector<ValueId> placed;
  for (ValueId v : arena_values) {
    BufferAssignment& b = plan.buffers[v];
    const int64_t size = AlignUp(std::max<int64_t>(b.bytes, 1), alignment);
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (ValueId p : placed) {
      const BufferAssignment& pb = plan.buffers[p];
      if (pb.first_step <= b.last_step && b.first_step <= pb.last_step) {
        busy.emplace_back(
            pb.offset,
            pb.offset + AlignUp(std::max<int64_t>(pb.bytes, 1), alignment));
      }
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [start, end] : busy) {
      if (offset + size <= start) break;
      offset = std::max(offset, end);
    }
    b.offset = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(v);
  }
  for (ValueId v = 0; v < graph.num_values(); ++v) {
    if (defined[v] && plan.buffers[v].kind == BufferAssignment::Kind::kAlias) {
      plan.buffers[v].offset = plan.buffers[Root(plan.buffers, v)].offset;
    }
  }
  return plan;
}

std::string MemoryPlan::ToString(const Graph& graph) const {
  std::string out = absl::StrFormat("%-8s %-28s %12s %11s  %s\n", "value",
                                    "type", "bytes", "live", "placement");
  // Values printed in schedule order with the text form's numbering.
  int number = 0;
  absl::flat_hash_map<ValueId, int> numbering;
  for (NodeId id : schedule) {
    for (ValueId v : graph.node(id).outputs) numbering[v] = number++;
  }
  for (NodeId id : schedule) {
    for (ValueId v : graph.node(id).outputs) {
      const BufferAssignment& b = buffers[v];
      std::string placement;
      switch (b.kind) {
        case BufferAssignment::Kind::kArena:
          placement = absl::StrCat("arena @", b.offset);
          break;
        case BufferAssignment::Kind::kVariable:
          placement = absl::StrCat("variable '", b.variable, "'");
          break;
        case BufferAssignment::Kind::kAlias:
          placement = absl::StrCat("in place of %", numbering[b.alias_of],
                                   " (arena @", b.offset, ")");
          break;
      }
      absl::StrAppend(
          &out, absl::StrFormat("%-8s %-28s %12d %5d..%-4d  %s [%s]\n",
                                absl::StrCat("%", numbering[v]),
                                graph.type(v).ToString(), b.bytes, b.first_step,
                                b.last_step, placement, graph.node(id).op));
    }
  }
  absl::StrAppend(
      &out,
      absl::StrFormat(
          "arena: %d bytes (planned peak); all intermediates without reuse: "
          "%d bytes; persistent variables: %d bytes\n",
          arena_bytes, total_intermediate_bytes, persistent_bytes));
  return out;
}

}  // namespace sequent
