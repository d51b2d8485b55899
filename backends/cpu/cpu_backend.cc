#include "backends/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backends/cpu/cpu_executable.h"
#include "backends/cpu/denormals.h"
#include "backends/cpu/graph_rewrites.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/lowering.h"
#include "backends/cpu/onednn_util.h"
#include "backends/cpu/train_kernels.h"
#include "backends/cpu/weight_layout.h"
#include "backends/feeds.h"
#include "backends/host_variable_store.h"
#include "core/initializers.h"
#include "core/memory_planner.h"
#include "core/status_macros.h"
#include "ops/activation_fn.h"
#include "ops/backward_activation.h"
#include "ops/registry.h"

namespace sequent {
namespace cpu {
namespace {

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

// Same window on the same input: the max_pool2d_grad can use the forward's
// workspace.
bool SamePooling(const Node& forward, const Node& grad) {
  if (forward.op != "max_pool2d" || forward.inputs.empty() ||
      forward.inputs[0] != grad.inputs[0]) {
    return false;
  }
  auto geometry = [](const Attributes& a) {
    const std::vector<int64_t> size = IntListAttrOr(a, "pool_size", {2, 2});
    std::vector<int64_t> strides = IntListAttrOr(a, "strides", {});
    if (strides.empty()) strides = size;
    return std::make_tuple(size, strides, StringAttrOr(a, "padding", "valid"));
  };
  return geometry(forward.attrs) == geometry(grad.attrs);
}

int DefaultNumThreads() {
  if (const char* env = std::getenv("SEQUENT_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return 0;
}

// SEQUENT_CPU_OWNED=0 turns owned layers off (owned_team.h), for comparing.
std::atomic<bool>& OwnedLayersFlag() {
  static std::atomic<bool> owned([] {
    const char* env = std::getenv("SEQUENT_CPU_OWNED");
    return env == nullptr || std::string(env) != "0";
  }());
  return owned;
}

// Whether a batch-bound graph's step is too small to split between cores: no
// convolutions, under kTinyMacs multiply-adds in its dense layers and matmuls,
// kTinyBytes of variables and kTinyBytes of values (the memory plan's arena).
// Splitting it costs more than it saves whenever handing data between cores is
// expensive: the (5,5,5) net's train step at batch 200 took 25.5-27.8 us on two
// threads and 26.6-28.0 on one when the host was quiet, but 41-48 against 27.5
// us in its slow phase (bench/README.md, ninth session).
bool TinyStep(const Graph& graph, int64_t arena_bytes) {
  constexpr int64_t kTinyMacs = int64_t{4} << 20;
  constexpr int64_t kTinyBytes = int64_t{1} << 20;
  if (arena_bytes > kTinyBytes) return false;
  int64_t macs = 0, weight_bytes = 0;
  for (NodeId id : graph.LiveNodes()) {
    const Node& node = graph.node(id);
    if (absl::StrContains(node.op, "conv") ||
        absl::StrContains(node.op, "pool"))
      return false;
    if (node.op == kVariableOp) {
      const TensorType& t = graph.type(node.outputs[0]);
      if (!t.shape.IsStatic()) return false;
      weight_bytes += t.shape.NumElements() * DTypeSize(t.dtype);
    }
    // One multiply-add per output element and element of the reduction:
    // dense x [M, K] W [K, P] and the weight gradient x^T dz reduce over K
    // and M, a matmul over a's columns (rows when transposed).
    int64_t reduction = 0;
    const auto dim = [&](int input, int axis) {
      const Shape& shape = graph.type(node.inputs[input]).shape;
      return shape.rank() == 2 ? shape[axis] : int64_t{-1};
    };
    if (node.op == "dense") reduction = dim(1, 0);
    if (node.op == kDenseBackwardWeightsOp) reduction = dim(0, 0);
    if (node.op == "matmul")
      reduction = dim(0, BoolAttrOr(node.attrs, "transpose_a", false) ? 0 : 1);
    if (reduction == 0) continue;
    const Shape& out = graph.type(node.outputs[0]).shape;
    if (reduction < 0 || !out.IsStatic()) return false;
    macs += reduction * out.NumElements();
  }
  return macs <= kTinyMacs && weight_bytes <= kTinyBytes;
}

}  // namespace
}  // namespace cpu

using cpu::CpuExecutable;
using cpu::Location;

CpuBackend::CpuBackend(const OpRegistry* registry)
    : registry_(registry != nullptr ? registry : &ops::DefaultRegistry()),
      num_threads_(cpu::DefaultNumThreads()) {}

void CpuBackend::SetNumThreads(int num_threads) {
  num_threads_ = std::max(0, num_threads);
}

const MemoryPlan* CpuBackend::MemoryPlanOf(const Executable& executable) {
  const auto* cpu = dynamic_cast<const CpuExecutable*>(&executable);
  return cpu != nullptr ? &cpu->plan : nullptr;
}

int CpuBackend::NumThreadsOf(const Executable& executable) {
  const auto* cpu = dynamic_cast<const CpuExecutable*>(&executable);
  return cpu != nullptr ? cpu->num_threads : 0;
}

std::string CpuBackend::ProfileString(const Executable& executable) {
  const auto* cpu = dynamic_cast<const CpuExecutable*>(&executable);
  if (cpu == nullptr || cpu->profiled_runs == 0) return "";
  std::vector<const cpu::Step*> steps;
  double total = 0;
  for (const cpu::Step& step : cpu->steps) {
    steps.push_back(&step);
    total += step.seconds;
  }
  std::stable_sort(steps.begin(), steps.end(),
                   [](const cpu::Step* a, const cpu::Step* b) {
                     return a->seconds > b->seconds;
                   });
  const double runs = static_cast<double>(cpu->profiled_runs);
  std::string out = absl::StrFormat("%10s %6s  %-44s %s\n", "us/run", "%",
                                    "step", "implementation");
  for (const cpu::Step* step : steps) {
    absl::StrAppend(
        &out, absl::StrFormat("%10.1f %5.1f%%  %-44s %s\n",
                              step->seconds / runs * 1e6,
                              total > 0 ? 100 * step->seconds / total : 0.0,
                              step->label, step->kind));
  }
  absl::StrAppend(&out, absl::StrFormat("%10.1f us per run over %d steps\n",
                                        total / runs * 1e6, steps.size()));
  return out;
}

std::string CpuBackend::MemoryPlanString(const Executable& executable) {
  const auto* cpu = dynamic_cast<const CpuExecutable*>(&executable);
  if (cpu == nullptr) return "";
  return cpu->plan.ToString(cpu->planned_graph);
}

bool CpuBackend::SupportsFusedDense(absl::string_view activation) const {
  // Every activation dense accepts maps to an eltwise post-op chain in
  // oneDNN 2.6 (selu as elu then a scale).
  return ops::ParseActivation(activation).ok();
}

std::unique_ptr<VariableStore> CpuBackend::CreateVariableStore() const {
  return std::make_unique<cpu::CpuVariableStore>();
}

absl::StatusOr<std::unique_ptr<Executable>> CpuBackend::Compile(
    const Graph& graph, int64_t batch_size, VariableStore* store) const {
  if (batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be positive, got ", batch_size));
  }
  SEQUENT_ASSIGN_OR_RETURN(HostVariableStore * host,
                           HostVariableStore::FromStore(store, "cpu"));
  if (compute_dtype_ == DType::kBF16 && bf16_support() == Bf16Support::kNone) {
    return absl::UnimplementedError(
        "the cpu backend computes in bf16 (the mixed_bfloat16 policy) only on "
        "CPUs with AVX-512, where oneDNN 2.6 has bf16 GEMMs (natively with "
        "AVX512-BF16); this CPU has none: use the float32 policy");
  }
  const OpRegistry& registry = *registry_;
  // Every value a node, output or update names must exist before the memory
  // planner indexes by it.
  {
    SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order,
                             graph.TopologicalOrder());
    for (NodeId id : order) {
      const Node& node = graph.node(id);
      for (ValueId in : node.inputs) {
        SEQUENT_RETURN_IF_ERROR(WithLayer(
            node,
            cpu::CheckValue(graph, in, absl::StrCat("an input of ", node.op))));
      }
    }
    for (const GraphOutput& out : graph.outputs()) {
      SEQUENT_RETURN_IF_ERROR(cpu::CheckValue(
          graph, out.value, absl::StrCat("output '", out.name, "'")));
    }
    for (const VariableUpdate& u : graph.updates()) {
      SEQUENT_RETURN_IF_ERROR(cpu::CheckValue(
          graph, u.value,
          absl::StrCat("the update of variable '", u.variable, "'")));
    }
  }
  // The backend's own copy: dense backward patterns become oneDNN-shaped
  // nodes.
  Graph lowered_graph = graph;
  cpu::RewriteDenseBackward(lowered_graph);
  cpu::RewriteConvBiasActivation(lowered_graph);
  cpu::RewriteMaxPoolActivationGrad(lowered_graph);
  cpu::RewriteWeightPenalties(lowered_graph);
  auto* cpu_store = dynamic_cast<cpu::CpuVariableStore*>(host);
  cpu::WeightLayoutPlan layouts;
  if (cpu_store != nullptr) {
    layouts = cpu::PlanWeightLayouts(lowered_graph, batch_size, *cpu_store,
                                     compute_dtype_ == DType::kBF16);
  }

  auto exe = std::make_unique<CpuExecutable>();
  // The memory plan over the batch-bound graph in which every reshape's users
  // read its input instead (a reshape aliases its input's buffer, which must
  // then live as long as the reshape's users).
  exe->planned_graph = BindBatch(lowered_graph, batch_size);
  {
    SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order,
                             exe->planned_graph.TopologicalOrder());
    for (NodeId id : order) {
      const Node& node = exe->planned_graph.node(id);
      if ((node.op == "reshape" || node.op == "flatten") &&
          node.inputs.size() == 1 && node.outputs.size() == 1) {
        exe->planned_graph.ReplaceAllUsesWith(node.outputs[0], node.inputs[0]);
      }
    }
  }
  SEQUENT_ASSIGN_OR_RETURN(exe->plan, PlanMemory(exe->planned_graph, registry));
  const std::vector<NodeId>& order = exe->plan.schedule;

  exe->batch_size_ = batch_size;
  exe->bf16 = compute_dtype_ == DType::kBF16;
  exe->bf16_native = exe->bf16 && bf16_support() == Bf16Support::kNative;
  exe->num_threads = num_threads_ > 0 ? num_threads_
                     : cpu::TinyStep(exe->planned_graph, exe->plan.arena_bytes)
                         ? 1
                         : omp_get_num_procs();
  // oneDNN tunes primitives to the thread count they are created under.
  omp_set_num_threads(exe->num_threads);
  exe->store = host;
  exe->cpu_store = dynamic_cast<cpu::CpuVariableStore*>(host);
  exe->profile = std::getenv("SEQUENT_CPU_PROFILE") != nullptr;
  exe->types.resize(lowered_graph.num_values());
  for (ValueId v = 0; v < lowered_graph.num_values(); ++v) {
    exe->types[v] = {lowered_graph.type(v).dtype,
                     lowered_graph.type(v).shape.WithBatch(batch_size)};
  }
  exe->locations.resize(lowered_graph.num_values());
  for (const GraphOutput& out : lowered_graph.outputs()) {
    SEQUENT_RETURN_IF_ERROR(cpu::CheckValue(
        lowered_graph, out.value, absl::StrCat("output '", out.name, "'")));
    exe->output_names_.push_back(out.name);
    exe->output_values.push_back(out.value);
  }

  // Before lowering: a step may borrow arena bytes no value holds at the
  // time (Lowering::ArenaScratch).
  exe->arena = cpu::AllocateAligned(exe->plan.arena_bytes);
  cpu::Lowering lowering(*exe);
  lowering.blocked_values = layouts.blocked;
  lowering.penalties_in_updates = cpu::PenaltiesAddedByUpdates(lowered_graph);
  lowering.graph = &lowered_graph;
  lowering.owned_layers = exe->num_threads > 1 &&
                          !lowered_graph.updates().empty() &&
                          cpu::OwnedLayersFlag().load();
  for (NodeId id : order) {
    const Node& node = lowered_graph.node(id);
    if (node.op == "max_pool2d_grad" && node.inputs.size() == 3 &&
        cpu::SamePooling(lowered_graph.producer(node.inputs[1]), node)) {
      lowering.pool_workspaces[node.inputs[1]] = kNoValue;
    }
  }
  absl::flat_hash_map<std::string, TensorType> variable_types;
  std::vector<NodeId> new_variables;
  try {
    exe->engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
    exe->stream = dnnl::stream(exe->engine);
  } catch (const dnnl::error& e) {
    return cpu::DnnlError(e, "creating the oneDNN cpu engine");
  }

  for (NodeId id : order) {
    const Node& node = lowered_graph.node(id);
    if (node.op == kInputOp || node.op == kVariableOp ||
        node.op == kConstantOp) {
      if (node.outputs.size() != 1 || !node.inputs.empty()) {
        return WithLayer(
            node, absl::InvalidArgumentError(absl::StrCat(
                      node.op, " nodes take no inputs and have one output")));
      }
      const ValueId out = node.outputs[0];
      const TensorType& type = exe->types[out];
      if (node.op == kConstantOp) {
        auto t = ConstantValue(node, type);
        if (!t.ok()) return WithLayer(node, t.status());
        exe->constants.emplace(out, *std::move(t));
        exe->locations[out].kind = Location::Kind::kConstant;
        continue;
      }
      auto name = GetStringAttr(node.attrs, "name");
      if (!name.ok()) return WithLayer(node, name.status());
      if (node.op == kInputOp) {
        for (const auto& in : exe->inputs) {
          if (in.name == *name) {
            return absl::InvalidArgumentError(
                absl::StrCat("the graph has two inputs named '", *name, "'"));
          }
        }
        exe->inputs.push_back({*name, out, {}, {}});
        exe->input_names.push_back(*name);
        continue;
      }
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
                           stored->type().ToString(), ", the graph expects ",
                           type.ToString()));
        }
      } else if (inserted) {
        new_variables.push_back(id);
      }
      exe->locations[out].kind = Location::Kind::kVariable;
      exe->locations[out].variable = *name;
      continue;
    }

    // Re-running the shape rule fills attribute defaults and catches graphs
    // whose recorded types the lowering would otherwise trust. It runs on the
    // symbolic types: a rule may need `N` itself (reshape's -1 is N).
    std::vector<TensorType> input_types;
    for (ValueId in : node.inputs) {
      SEQUENT_RETURN_IF_ERROR(WithLayer(
          node, cpu::CheckValue(lowered_graph, in,
                                absl::StrCat("an input of ", node.op))));
      input_types.push_back(lowered_graph.type(in));
    }
    Attributes attrs = node.attrs;
    // The backend's own nodes (graph_rewrites.h, PlanWeightLayouts) have
    // no shape rule: they keep the types they were made with.
    std::vector<TensorType> own_types;
    for (ValueId v : node.outputs) own_types.push_back(lowered_graph.type(v));
    auto inferred = absl::StartsWith(node.op, "cpu.")
                        ? absl::StatusOr<std::vector<TensorType>>(own_types)
                        : registry.InferTypes(node.op, input_types, attrs);
    if (!inferred.ok()) return WithLayer(node, inferred.status());
    if (inferred->size() != node.outputs.size()) {
      return WithLayer(
          node, absl::InvalidArgumentError(absl::StrCat(
                    "[", node.op, "] the graph gives it ", node.outputs.size(),
                    " outputs, the op has ", inferred->size())));
    }
    for (size_t i = 0; i < inferred->size(); ++i) {
      if ((*inferred)[i] != lowered_graph.type(node.outputs[i])) {
        return WithLayer(
            node,
            absl::InvalidArgumentError(absl::StrCat(
                "[", node.op, "] output ", i, " is recorded as ",
                lowered_graph.type(node.outputs[i]).ToString(),
                " but the shape rule gives ", (*inferred)[i].ToString())));
      }
    }
    lowering.set_label(node.layer.empty() ? node.op
                                          : absl::StrCat(node.op, " (layer '",
                                                         node.layer, "')"),
                       node.layer);
    absl::Status lowered;
    try {
      lowered = lowering.LowerNode(node, attrs);
    } catch (const dnnl::error& e) {
      lowered = cpu::DnnlError(
          e, absl::StrCat("[", node.op, "] creating its oneDNN primitive"));
    }
    if (!lowered.ok() && !absl::StartsWith(lowered.message(), "[")) {
      // Helpers (descriptor building) do not know the op; name it here.
      lowered = absl::Status(
          lowered.code(),
          absl::StrCat("[", node.op, "] the cpu backend: ", lowered.message()));
    }
    SEQUENT_RETURN_IF_ERROR(WithLayer(node, lowered));
  }

  for (const VariableUpdate& u : lowered_graph.updates()) {
    SEQUENT_RETURN_IF_ERROR(cpu::CheckValue(
        lowered_graph, u.value,
        absl::StrCat("the update of variable '", u.variable, "'")));
    TensorType var_type;
    if (auto it = variable_types.find(u.variable); it != variable_types.end()) {
      var_type = it->second;
    } else if (const Tensor* stored = host->Find(u.variable)) {
      var_type = stored->type();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "the graph updates variable '", u.variable,
          "', which it does not declare and the store does not hold"));
    }
    if (exe->types[u.value] != var_type) {
      return absl::InvalidArgumentError(
          absl::StrCat("the update of variable '", u.variable, "' has type ",
                       exe->types[u.value].ToString(),
                       ", the variable has type ", var_type.ToString()));
    }
  }

  // Only now, with the whole graph validated and lowered, does the store
  // change.
  for (NodeId id : new_variables) {
    const Node& node = lowered_graph.node(id);
    auto value = InitializeVariable(node.attrs, exe->types[node.outputs[0]]);
    if (!value.ok()) return WithLayer(node, value.status());
    SEQUENT_RETURN_IF_ERROR(
        host->Set(StringAttrOr(node.attrs, "name", ""), *std::move(value)));
  }
  for (const auto& [name, layout] : layouts.chosen)
    SEQUENT_RETURN_IF_ERROR(cpu_store->SetLayout(name, layout));
  // The variables this executable reads keep their layouts from now on.
  if (cpu_store != nullptr) {
    for (const auto& [name, type] : variable_types) cpu_store->Bind(name);
  }

  exe->expected_inputs =
      exe->input_names.empty() ? "none" : absl::StrJoin(exe->input_names, ", ");
  exe->fed_scratch.assign(exe->inputs.size(), nullptr);

  // Bind every value to memory, then every primitive argument to its value.
  for (ValueId v = 0; v < lowered_graph.num_values(); ++v) {
    Location& loc = exe->locations[v];
    const TensorType& t = exe->types[v];
    loc.bytes =
        t.shape.IsStatic()
            ? t.shape.NumElements() * static_cast<int64_t>(DTypeSize(t.dtype))
            : 0;
    if (loc.kind != Location::Kind::kArena) continue;
    const BufferAssignment& b = exe->plan.buffers[v];
    if (b.kind == BufferAssignment::Kind::kVariable) {
      loc.kind = Location::Kind::kVariable;
      loc.variable = b.variable;
    } else {
      loc.offset = b.offset;
    }
  }
  lowering.Finish();
  exe->scratchpad = cpu::AllocateAligned(lowering.scratchpad_bytes());
  exe->pointers.assign(lowered_graph.num_values(), nullptr);
  std::function<std::byte*(ValueId)> resolve = [&](ValueId v) -> std::byte* {
    const Location& loc = exe->locations[v];
    switch (loc.kind) {
      case Location::Kind::kArena:
        return exe->arena.get() + loc.offset;
      case Location::Kind::kVariable:
        return static_cast<std::byte*>(host->Find(loc.variable)->raw_data());
      case Location::Kind::kConstant:
        return static_cast<std::byte*>(exe->constants.at(v).raw_data());
      case Location::Kind::kAlias:
        return resolve(loc.alias_of);
    }
    return nullptr;
  };
  for (NodeId id : order) {
    for (ValueId v : lowered_graph.node(id).outputs)
      exe->pointers[v] = resolve(v);
  }
  // What reads each feed (through reshapes): bound to the fed tensor per run.
  std::function<ValueId(ValueId)> root = [&](ValueId v) {
    while (v >= 0 && exe->locations[v].kind == Location::Kind::kAlias)
      v = exe->locations[v].alias_of;
    return v;
  };
  for (CpuExecutable::Input& in : exe->inputs) {
    for (NodeId id : order) {
      for (ValueId v : lowered_graph.node(id).outputs) {
        if (root(v) == in.value) in.values.push_back(v);
      }
    }
    for (cpu::Step& step : exe->steps) {
      for (cpu::MemArg& arg : step.args) {
        if (arg.value >= 0 && root(arg.value) == in.value)
          in.args.push_back(&arg.mem);
      }
    }
  }
  for (cpu::Step& step : exe->steps) {
    for (cpu::MemArg& arg : step.args) {
      std::byte* data = arg.value == cpu::kScratchpad ? exe->scratchpad.get()
                        : arg.value <= cpu::kExtraBase
                            ? exe->extra_data[cpu::kExtraBase - arg.value]
                            : exe->pointers[arg.value];
      arg.mem.set_data_handle(data);
    }
  }

  // Updates whose new value sits in variable storage are staged before any is
  // written.
  int64_t staging_bytes = 0;
  std::vector<int64_t> staging_offsets;
  for (const VariableUpdate& u : lowered_graph.updates()) {
    ValueId v = u.value;
    while (exe->locations[v].kind == Location::Kind::kAlias)
      v = exe->locations[v].alias_of;
    // An update the planner wrote in place into its own variable needs no
    // copy at all.
    const bool in_variable =
        exe->locations[v].kind == Location::Kind::kVariable &&
        exe->locations[v].variable != u.variable;
    staging_offsets.push_back(in_variable ? staging_bytes : -1);
    if (in_variable)
      staging_bytes += cpu::AlignUp(exe->locations[u.value].bytes);
  }
  exe->staging = cpu::AllocateAligned(staging_bytes);
  for (size_t i = 0; i < lowered_graph.updates().size(); ++i) {
    const VariableUpdate& u = lowered_graph.updates()[i];
    exe->updates.push_back({host->Find(u.variable), u.value,
                            staging_offsets[i] >= 0
                                ? exe->staging.get() + staging_offsets[i]
                                : nullptr});
    // Variables written at the end of Run: their bf16 copies (if any, now or
    // compiled later) become stale. In-place writes by other steps than the
    // optimizer updates (which bump it themselves) have no bf16 copy to keep.
    if (exe->cpu_store != nullptr &&
        !lowering.in_place_updates_.contains(u.value)) {
      exe->updates.back().shadow = exe->cpu_store->ShadowOf(u.variable);
    }
  }
  return std::unique_ptr<Executable>(std::move(exe));
}

bool CpuBackend::StoresBlocked(const VariableStore& store,
                               absl::string_view variable) {
  const auto* cpu_store = dynamic_cast<const cpu::CpuVariableStore*>(&store);
  return cpu_store != nullptr && cpu_store->LayoutOf(variable) != nullptr;
}

void CpuBackend::SetFlushDenormals(bool flush) {
  cpu::SetFlushDenormals(flush);
}

bool CpuBackend::flush_denormals() { return cpu::FlushDenormals(); }

void CpuBackend::SetOwnedLayers(bool owned) {
  cpu::OwnedLayersFlag().store(owned);
}

bool CpuBackend::owned_layers() { return cpu::OwnedLayersFlag().load(); }

void CpuBackend::SetFixedKernelChoice(bool fixed) {
  cpu::fixed_kernel_choice.store(fixed);
}

absl::Status CpuBackend::SetComputeDType(DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the cpu backend computes in f32 or bf16, not ", DTypeName(dtype)));
  }
  compute_dtype_ = dtype;
  return absl::OkStatus();
}

CpuBackend::Bf16Support CpuBackend::bf16_support() {
  // oneDNN's ISA values are nested bit sets: an ISA includes another when it
  // has all of its bits.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [isa](dnnl::cpu_isa want) {
    const auto bits = static_cast<unsigned>(want);
    return (isa & bits) == bits;
  };
  if (has(dnnl::cpu_isa::avx512_core_bf16)) return Bf16Support::kNative;
  if (has(dnnl::cpu_isa::avx512_core)) return Bf16Support::kEmulated;
  return Bf16Support::kNone;
}

std::vector<std::string> CpuBackend::StepImplementations(
    const Executable& executable) {
  std::vector<std::string> out;
  const auto* cpu = dynamic_cast<const CpuExecutable*>(&executable);
  if (cpu == nullptr) return out;
  for (const cpu::Step& step : cpu->steps)
    out.push_back(absl::StrCat(step.label, ": ", step.kind));
  return out;
}

}  // namespace sequent
