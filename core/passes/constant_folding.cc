#include "core/passes/constant_folding.h"

#include <cmath>
#include <optional>
#include <vector>

#include "core/passes/pass_util.h"
#include "core/status_macros.h"
#include "core/tensor.h"

namespace sequent {
namespace {

bool SmallStatic(const TensorType& type) {
  return type.shape.IsStatic() &&
         type.shape.NumElements() <= ConstantFoldingPass::kMaxElements;
}

// The tensor a constant node stands for; nullopt when its attribute does not
// describe one.
std::optional<Tensor> ConstantTensor(const Graph& graph, const Node& node) {
  const TensorType& type = graph.type(node.outputs[0]);
  if (!SmallStatic(type)) return std::nullopt;
  auto values = GetFloatListAttr(node.attrs, "value");
  if (!values.ok()) return std::nullopt;
  Tensor t(type);
  const int64_t n = t.num_elements();
  if (values->size() == 1) {
    for (int64_t i = 0; i < n; ++i) t.SetFromDouble(i, (*values)[0]);
  } else if (static_cast<int64_t>(values->size()) == n) {
    for (int64_t i = 0; i < n; ++i) t.SetFromDouble(i, (*values)[i]);
  } else {
    return std::nullopt;
  }
  return t;
}

std::vector<double> ConstantValues(const Tensor& t) {
  std::vector<double> values;
  values.reserve(t.num_elements());
  for (int64_t i = 0; i < t.num_elements(); ++i)
    values.push_back(t.GetAsDouble(i));
  bool uniform = !values.empty();
  for (double v : values) {
    // Compares bit-exact meaning: -0.0 and NaN must not be collapsed with other
    // values.
    if (!(v == values[0] && std::signbit(v) == std::signbit(values[0]))) {
      uniform = false;
      break;
    }
  }
  if (uniform) values.resize(1);
  return values;
}

}  // namespace

absl::StatusOr<bool> ConstantFoldingPass::Run(Graph& graph) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (passes::IsStructural(node.op) || node.inputs.empty() ||
        node.outputs.empty())
      continue;
    const OpDef* def = registry_.Find(node.op);
    if (def == nullptr || def->stateful || !def->reference) continue;
    bool foldable = true;
    for (ValueId out : node.outputs)
      foldable = foldable && SmallStatic(graph.type(out));
    std::vector<Tensor> inputs;
    for (ValueId in : node.inputs) {
      const Node& producer = graph.producer(in);
      std::optional<Tensor> t;
      if (foldable && producer.op == kConstantOp)
        t = ConstantTensor(graph, producer);
      if (!t) {
        foldable = false;
        break;
      }
      inputs.push_back(std::move(*t));
    }
    if (!foldable) continue;

    std::vector<Tensor> outputs;
    for (ValueId out : node.outputs) outputs.emplace_back(graph.type(out));
    std::vector<const Tensor*> input_ptrs;
    for (const Tensor& t : inputs) input_ptrs.push_back(&t);
    std::vector<Tensor*> output_ptrs;
    for (Tensor& t : outputs) output_ptrs.push_back(&t);
    const Attributes attrs = passes::AttrsWithDefaults(registry_, node);
    if (!def->reference(input_ptrs, attrs, output_ptrs).ok()) continue;

    const std::string layer = node.layer;
    const std::vector<ValueId> consumed = node.inputs;
    std::vector<ValueId> folded;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const NodeId c = graph.AddNode(std::string(kConstantOp), {},
                                     {{"value", ConstantValues(outputs[i])}},
                                     {outputs[i].type()}, layer);
      folded.push_back(graph.node(c).outputs[0]);
    }
    passes::ReplaceNode(graph, id, folded);
    // Constants that fed only folded nodes are dead now; dropping them here
    // keeps the folded graph readable without waiting for DCE.
    for (ValueId in : consumed) {
      const NodeId producer = graph.value(in).producer;
      if (graph.IsLive(producer) && graph.NumUses(in) == 0)
        graph.RemoveNode(producer);
    }
    changed = true;
  }
  return changed;
}

}  // namespace sequent
