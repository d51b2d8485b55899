#include "core/passes/canonicalize.h"

#include <optional>
#include <vector>

#include "core/passes/pass_util.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

// The explicit permutation of a transpose node, if it has one valid for `rank`.
std::optional<std::vector<int64_t>> Permutation(const Attributes& attrs,
                                                int rank) {
  std::vector<int64_t> perm = IntListAttrOr(attrs, "perm", {});
  if (static_cast<int>(perm.size()) != rank) return std::nullopt;
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p]) return std::nullopt;
    seen[p] = true;
  }
  return perm;
}

bool IsIdentityPermutation(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

// Whether node (already rewritten by the composition rules) forwards its first
// input unchanged as its first output, with every other output unused.
bool IsIdentity(const Graph& graph, const Node& node, const Attributes& attrs) {
  if (node.inputs.empty() || node.outputs.empty()) return false;
  const TensorType& in = graph.type(node.inputs[0]);
  const TensorType& out = graph.type(node.outputs[0]);
  if (in != out) return false;
  for (size_t i = 1; i < node.outputs.size(); ++i) {
    if (graph.NumUses(node.outputs[i]) > 0) return false;
  }
  if (node.op == "reshape" || node.op == "cast") return node.inputs.size() == 1;
  if (node.op == "flatten") return in.shape.rank() == 2;
  if (node.op == "transpose") {
    if (in.shape.rank() <= 1) return true;
    auto perm = Permutation(attrs, in.shape.rank());
    return perm.has_value() && IsIdentityPermutation(*perm);
  }
  if (node.op == "dropout") {
    return !BoolAttrOr(attrs, "training", true) ||
           passes::NumberAttrOr(attrs, "rate", 1) == 0;
  }
  return false;
}

bool IsBroadcastingBinary(const std::string& op) {
  return op == "add" || op == "sub" || op == "mul" || op == "div" ||
         op == "maximum";
}

}  // namespace

absl::StatusOr<bool> CanonicalizePass::Run(Graph& graph) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    if (!graph.IsLive(id)) continue;
    const std::string op = graph.node(id).op;
    if (op == "reshape" && graph.node(id).inputs.size() == 1) {
      const Node& inner = graph.producer(graph.node(id).inputs[0]);
      if (inner.op == "reshape" && inner.inputs.size() == 1) {
        // Both reshapes keep the element count, so the outer one means the same
        // on x.
        graph.mutable_node(id).inputs[0] = inner.inputs[0];
        changed = true;
      }
    }
    if (op == "transpose" && graph.node(id).inputs.size() == 1) {
      const ValueId mid = graph.node(id).inputs[0];
      const Node& inner = graph.producer(mid);
      const int rank = graph.type(mid).shape.rank();
      if (inner.op == "transpose" && inner.inputs.size() == 1) {
        auto outer_perm = Permutation(
            passes::AttrsWithDefaults(registry_, graph.node(id)), rank);
        auto inner_perm =
            Permutation(passes::AttrsWithDefaults(registry_, inner), rank);
        if (outer_perm && inner_perm) {
          // out[i] = mid[outer[i]] = x[inner[outer[i]]].
          std::vector<int64_t> composed(rank);
          for (int i = 0; i < rank; ++i)
            composed[i] = (*inner_perm)[(*outer_perm)[i]];
          const ValueId x = inner.inputs[0];
          Node& node = graph.mutable_node(id);
          node.inputs[0] = x;
          node.attrs["perm"] = composed;
          changed = true;
        }
      }
    }
    if (IsBroadcastingBinary(op) && graph.node(id).inputs.size() == 2) {
      // x (op) broadcast_to(s), x already of the result's type: the binary op
      // broadcasts s itself, so the materialized broadcast (a full pass over
      // memory, e.g. the scalar of an L2 penalty's gradient) is not needed.
      const Node& node = graph.node(id);
      const TensorType& result = graph.type(node.outputs[0]);
      for (int i = 0; i < 2; ++i) {
        const ValueId operand = graph.node(id).inputs[i];
        const ValueId other = graph.node(id).inputs[1 - i];
        const Node& producer = graph.producer(operand);
        if (producer.op == "broadcast_to" && producer.inputs.size() == 1 &&
            graph.type(other) == result &&
            graph.type(producer.inputs[0]).dtype == result.dtype) {
          graph.mutable_node(id).inputs[i] = producer.inputs[0];
          changed = true;
        }
      }
    }
    const Node& node = graph.node(id);
    if (IsIdentity(graph, node, passes::AttrsWithDefaults(registry_, node))) {
      const ValueId in = node.inputs[0];
      graph.ReplaceAllUsesWith(node.outputs[0], in);
      graph.RemoveNode(id);
      changed = true;
    }
  }
  return changed;
}

}  // namespace sequent
