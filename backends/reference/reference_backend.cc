#include "backends/reference/reference_backend.h"

#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backends/feeds.h"
#include "backends/host_variable_store.h"
#include "core/initializers.h"
#include "core/status_macros.h"
#include "ops/registry.h"

namespace sequent {
namespace {

// Copies `src` into `dst`, reusing dst's buffer when the types already agree.
void CopyInto(const Tensor& src, Tensor& dst) {
  if (dst.type() == src.type()) {
    if (src.num_bytes() > 0)
      std::memcpy(dst.raw_data(), src.raw_data(), src.num_bytes());
  } else {
    dst = src;
  }
}

// One non-structural node: its op definition and its attributes with defaults
// filled.
struct Step {
  NodeId node = kNoNode;
  const OpDef* def = nullptr;
  Attributes attrs;
};

class ReferenceExecutable : public Executable {
 public:
  ReferenceExecutable(Graph graph, std::vector<Step> steps,
                      absl::flat_hash_map<ValueId, Tensor> constants,
                      HostVariableStore* store, int64_t batch_size)
      : graph_(std::move(graph)),
        steps_(std::move(steps)),
        constants_(std::move(constants)),
        store_(store),
        batch_size_(batch_size) {
    for (const GraphOutput& out : graph_.outputs())
      output_names_.push_back(out.name);
    for (NodeId id : graph_.InputNodes()) {
      input_names_.push_back(StringAttrOr(graph_.node(id).attrs, "name", ""));
    }
  }

  absl::Status Run(absl::Span<const Feed> feeds,
                   std::vector<Tensor>& outputs) override;
  const std::vector<std::string>& output_names() const override {
    return output_names_;
  }
  int64_t batch_size() const override { return batch_size_; }

 private:
  absl::StatusOr<absl::flat_hash_map<std::string, const Tensor*>> BindFeeds(
      absl::Span<const Feed> feeds) const;

  Graph graph_;  // Types bound to batch_size_.
  std::vector<Step>
      steps_;  // Topological order; def is null for structural nodes.
  absl::flat_hash_map<ValueId, Tensor> constants_;
  HostVariableStore* store_;
  int64_t batch_size_;
  std::vector<std::string> output_names_;
  std::vector<std::string> input_names_;
};

absl::StatusOr<absl::flat_hash_map<std::string, const Tensor*>>
ReferenceExecutable::BindFeeds(absl::Span<const Feed> feeds) const {
  const std::string expected =
      input_names_.empty() ? "none" : absl::StrJoin(input_names_, ", ");
  std::vector<const Tensor*> tensors(input_names_.size());
  SEQUENT_RETURN_IF_ERROR(MatchFeeds(
      feeds, [&](size_t i) -> const std::string& { return input_names_[i]; },
      [&](size_t i) -> const TensorType& {
        return graph_.type(
            graph_.node(graph_.FindInput(input_names_[i])).outputs[0]);
      },
      expected, absl::MakeSpan(tensors)));
  absl::flat_hash_map<std::string, const Tensor*> fed;
  for (size_t i = 0; i < tensors.size(); ++i)
    fed.emplace(input_names_[i], tensors[i]);
  return fed;
}

absl::Status ReferenceExecutable::Run(absl::Span<const Feed> feeds,
                                      std::vector<Tensor>& outputs) {
  SEQUENT_ASSIGN_OR_RETURN(auto fed, BindFeeds(feeds));

  std::vector<const Tensor*> values(graph_.num_values(), nullptr);
  std::vector<Tensor> owned(graph_.num_values());
  for (const Step& step : steps_) {
    const Node& node = graph_.node(step.node);
    if (node.op == kInputOp) {
      values[node.outputs[0]] = fed.at(StringAttrOr(node.attrs, "name", ""));
    } else if (node.op == kVariableOp) {
      const std::string name = StringAttrOr(node.attrs, "name", "");
      const Tensor* t = store_->Find(name);
      if (t == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat("variable '", name, "' is no longer in the store"));
      }
      values[node.outputs[0]] = t;
    } else if (node.op == kConstantOp) {
      values[node.outputs[0]] = &constants_.at(node.outputs[0]);
    } else {
      std::vector<const Tensor*> inputs;
      inputs.reserve(node.inputs.size());
      for (ValueId in : node.inputs) inputs.push_back(values[in]);
      std::vector<Tensor*> outs;
      outs.reserve(node.outputs.size());
      for (ValueId out : node.outputs) {
        owned[out] = Tensor(graph_.type(out));
        outs.push_back(&owned[out]);
        values[out] = &owned[out];
      }
      SEQUENT_RETURN_IF_ERROR(
          WithLayer(node, step.def->reference(inputs, step.attrs, outs)));
    }
  }

  outputs.resize(graph_.outputs().size());
  for (size_t i = 0; i < graph_.outputs().size(); ++i) {
    CopyInto(*values[graph_.outputs()[i].value], outputs[i]);
  }

  // Every update reads the pre-run variables (a graph is a function of them),
  // so take all new values before writing any: `a := b, b := a` must swap.
  std::vector<Tensor> new_values;
  new_values.reserve(graph_.updates().size());
  for (const VariableUpdate& u : graph_.updates())
    new_values.push_back(*values[u.value]);
  for (size_t i = 0; i < new_values.size(); ++i) {
    SEQUENT_RETURN_IF_ERROR(
        store_->Write(graph_.updates()[i].variable, new_values[i]));
  }
  return absl::OkStatus();
}

absl::Status CheckValue(const Graph& graph, ValueId value,
                        absl::string_view what) {
  if (value < 0 || value >= graph.num_values() ||
      !graph.IsLive(graph.value(value).producer)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what),
                                                   " refers to value %", value,
                                                   ", which no node produces"));
  }
  return absl::OkStatus();
}

}  // namespace

ReferenceBackend::ReferenceBackend(const OpRegistry* registry)
    : registry_(registry != nullptr ? registry : &ops::DefaultRegistry()) {}

bool ReferenceBackend::SupportsFusedDense(absl::string_view activation) const {
  // Asks dense's own schema, so this stays true exactly for what dense accepts.
  const OpDef* dense = registry_->Find("dense");
  if (dense == nullptr || !dense->reference) return false;
  std::vector<TensorType> inputs = {TensorType{DType::kF32, Shape{1, 1}},
                                    TensorType{DType::kF32, Shape{1, 1}},
                                    TensorType{DType::kF32, Shape{1}}};
  inputs.resize(std::min(inputs.size(), dense->inputs.size()));
  Attributes attrs = {{"activation", std::string(activation)}};
  return registry_->InferTypes("dense", inputs, attrs).ok();
}

std::unique_ptr<VariableStore> ReferenceBackend::CreateVariableStore() const {
  return std::make_unique<HostVariableStore>();
}

absl::StatusOr<std::unique_ptr<Executable>> ReferenceBackend::Compile(
    const Graph& graph, int64_t batch_size, VariableStore* store) const {
  if (batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be positive, got ", batch_size));
  }
  SEQUENT_ASSIGN_OR_RETURN(HostVariableStore * host,
                           HostVariableStore::FromStore(store, "reference"));
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());

  Graph bound = graph;
  for (ValueId v = 0; v < bound.num_values(); ++v) {
    TensorType& type = bound.mutable_value(v).type;
    type.shape = type.shape.WithBatch(batch_size);
  }
  for (const GraphOutput& out : bound.outputs()) {
    SEQUENT_RETURN_IF_ERROR(
        CheckValue(bound, out.value, absl::StrCat("output '", out.name, "'")));
  }

  std::vector<Step> steps;
  absl::flat_hash_map<ValueId, Tensor> constants;
  absl::flat_hash_map<std::string, TensorType> variable_types;
  std::vector<NodeId>
      new_variables;  // First node of each variable missing from the store.
  absl::flat_hash_map<std::string, NodeId> inputs_seen;
  for (NodeId id : order) {
    const Node& node = bound.node(id);
    Step step;
    step.node = id;
    if (node.op == kInputOp || node.op == kVariableOp ||
        node.op == kConstantOp) {
      if (node.outputs.size() != 1 || !node.inputs.empty()) {
        return WithLayer(
            node, absl::InvalidArgumentError(absl::StrCat(
                      node.op, " nodes take no inputs and have one output")));
      }
      const TensorType& type = bound.type(node.outputs[0]);
      if (node.op == kConstantOp) {
        auto t = ConstantValue(node, type);
        if (!t.ok()) return WithLayer(node, t.status());
        constants.emplace(node.outputs[0], *std::move(t));
      } else {
        auto name = GetStringAttr(node.attrs, "name");
        if (!name.ok()) return WithLayer(node, name.status());
        if (node.op == kInputOp) {
          if (!inputs_seen.emplace(*name, id).second) {
            return absl::InvalidArgumentError(
                absl::StrCat("the graph has two inputs named '", *name, "'"));
          }
        } else {
          auto [it, inserted] = variable_types.emplace(*name, type);
          if (!inserted && it->second != type) {
            return absl::InvalidArgumentError(
                absl::StrCat("variable '", *name, "' appears with types ",
                             it->second.ToString(), " and ", type.ToString()));
          }
          if (const Tensor* stored = host->Find(*name)) {
            if (stored->type() != type) {
              return absl::InvalidArgumentError(
                  absl::StrCat("variable '", *name, "' in the store has type ",
                               stored->type().ToString(),
                               ", the graph expects ", type.ToString()));
            }
          } else if (inserted) {
            new_variables.push_back(id);
          }
        }
      }
      steps.push_back(std::move(step));
      continue;
    }

    step.def = registry_->Find(node.op);
    if (step.def == nullptr) {
      return WithLayer(
          node, absl::InvalidArgumentError(absl::StrCat(
                    "unknown op '", node.op, "' (not in the op registry)")));
    }
    if (!step.def->reference) {
      return WithLayer(node, absl::UnimplementedError(absl::StrCat(
                                 "[", node.op, "] has no reference kernel")));
    }
    // Re-running the shape rule fills attribute defaults for the kernel and
    // catches graphs (parsed or hand-edited) whose recorded types the kernels
    // would otherwise trust blindly. It runs on the symbolic types: a rule may
    // need `N` itself (reshape's -1 is N).
    std::vector<TensorType> input_types;
    for (ValueId in : node.inputs) {
      SEQUENT_RETURN_IF_ERROR(WithLayer(
          node, CheckValue(bound, in, absl::StrCat("an input of ", node.op))));
      input_types.push_back(graph.type(in));
    }
    step.attrs = node.attrs;
    auto inferred = registry_->InferTypes(node.op, input_types, step.attrs);
    if (!inferred.ok()) return WithLayer(node, inferred.status());
    if (inferred->size() != node.outputs.size()) {
      return WithLayer(
          node, absl::InvalidArgumentError(absl::StrCat(
                    "[", node.op, "] the graph gives it ", node.outputs.size(),
                    " outputs, the op has ", inferred->size())));
    }
    for (size_t i = 0; i < inferred->size(); ++i) {
      const TensorType& recorded = graph.type(node.outputs[i]);
      if ((*inferred)[i] != recorded) {
        return WithLayer(node,
                         absl::InvalidArgumentError(absl::StrCat(
                             "[", node.op, "] output ", i, " is recorded as ",
                             recorded.ToString(), " but the shape rule gives ",
                             (*inferred)[i].ToString())));
      }
    }
    steps.push_back(std::move(step));
  }

  for (const VariableUpdate& u : bound.updates()) {
    SEQUENT_RETURN_IF_ERROR(
        CheckValue(bound, u.value,
                   absl::StrCat("the update of variable '", u.variable, "'")));
    const TensorType* var_type = nullptr;
    if (auto it = variable_types.find(u.variable); it != variable_types.end()) {
      var_type = &it->second;
    }
    TensorType stored_type;
    if (var_type == nullptr) {
      const Tensor* stored = host->Find(u.variable);
      if (stored == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("the graph updates variable '", u.variable,
                         "', which it does not "
                         "declare and the store does not hold"));
      }
      stored_type = stored->type();
      var_type = &stored_type;
    }
    if (bound.type(u.value) != *var_type) {
      return absl::InvalidArgumentError(
          absl::StrCat("the update of variable '", u.variable, "' has type ",
                       bound.type(u.value).ToString(),
                       ", the variable has type ", var_type->ToString()));
    }
  }

  // Only now, with the whole graph validated, does the store change.
  for (NodeId id : new_variables) {
    const Node& node = bound.node(id);
    auto value = InitializeVariable(node.attrs, bound.type(node.outputs[0]));
    if (!value.ok()) return WithLayer(node, value.status());
    SEQUENT_RETURN_IF_ERROR(
        host->Set(StringAttrOr(node.attrs, "name", ""), *std::move(value)));
  }

  return std::unique_ptr<Executable>(
      new ReferenceExecutable(std::move(bound), std::move(steps),
                              std::move(constants), host, batch_size));
}

absl::StatusOr<std::vector<Tensor>> RunGraphOnce(const Graph& graph,
                                                 int64_t batch_size,
                                                 absl::Span<const Feed> feeds) {
  ReferenceBackend backend;
  std::unique_ptr<VariableStore> store = backend.CreateVariableStore();
  SEQUENT_ASSIGN_OR_RETURN(std::unique_ptr<Executable> exe,
                           backend.Compile(graph, batch_size, store.get()));
  std::vector<Tensor> outputs;
  SEQUENT_RETURN_IF_ERROR(exe->Run(feeds, outputs));
  return outputs;
}

}  // namespace sequent
