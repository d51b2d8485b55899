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
#include "backends/cpu/kernels.h"
#include "backends/cpu/onednn_util.h"
#include "backends/cpu/train_kernels.h"
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

using dnnl::memory;
using tag = dnnl::memory::format_tag;

// Set by CpuBackend::SetFixedKernelChoice (deterministic mode).
std::atomic<bool> fixed_kernel_choice{false};

// Scratchpad memories of the steps point at one shared buffer, named by this
// value id.
constexpr ValueId kScratchpad = -2;
// Buffers outside the graph's values (max-pooling workspaces, loop scratch)
// are named kExtraBase - k for the executable's k-th extra buffer.
constexpr ValueId kExtraBase = -3;

// The backend's own op for a dense layer's weight and bias gradients together
// (one oneDNN inner_product_backward_weights): (x, dz) -> (dW, db). Compile
// rewrites its private copy of the graph to it (RewriteDenseBackward).
constexpr absl::string_view kDenseBackwardWeightsOp =
    "cpu.dense_backward_weights";
// Likewise conv2d_backprop_filter and the bias sum: (x, dz) -> (dkernel, db),
// with conv2d_backprop_filter's attributes.
constexpr absl::string_view kConvBackwardWeightsOp =
    "cpu.conv2d_backward_weights";

absl::Status Unsupported(const Node& node, absl::string_view why) {
  return absl::UnimplementedError(
      absl::StrCat("[", node.op, "] the cpu backend ", why));
}

// ---------------------------------------------------------------------------------------
// Buffers. Every value lives in the arena (at the offset the core memory
// planner gives it, reused across lifetimes), in a variable of the store (a
// variable, or an update the planner writes in place into it), in an owned
// constant, or aliases another value (reshape).

struct Location {
  enum class Kind { kArena, kVariable, kConstant, kAlias };
  Kind kind = Kind::kArena;
  int64_t offset = 0;  // kArena.
  int64_t bytes = 0;
  ValueId alias_of = kNoValue;  // kAlias.
  std::string variable;         // kVariable.
};

constexpr int64_t kAlign = 64;
int64_t AlignUp(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// A formulation chosen by timing, remembered for the process by `key` (the
// GEMM's role, shape, types and thread count): compiling the same model
// twice (two fit runs, an executable per batch size) picks the same kernels,
// so results repeat run to run, and each shape is timed once.
// Best-of-5 seconds of `run`, after two warm-up runs, for choosing between
// equivalent formulations at Compile; best of 2 after one warm-up when a run
// takes over 0.5 ms (a large batch's GEMM), where noise matters less and
// seven runs of each candidate would be most of a compile.
double BestSeconds(const std::function<void()>& run) {
  double best = 1e30;
  int warm_up = 2, runs = 7;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (r == 0 && t > 0.5e-3) {
      warm_up = 1;
      runs = 3;
    }
    if (r >= warm_up) best = std::min(best, t);
  }
  return best;
}

int RememberedChoice(const std::string& key, const std::function<int()>& time) {
  static std::mutex mutex;
  static auto* choices = new absl::flat_hash_map<std::string, int>();
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = choices->find(key); it != choices->end()) return it->second;
  }
  const int choice = time();
  std::lock_guard<std::mutex> lock(mutex);
  return choices->try_emplace(key, choice).first->second;
}

struct AlignedFree {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte[], AlignedFree>;
AlignedBuffer AllocateAligned(int64_t bytes) {
  return AlignedBuffer(static_cast<std::byte*>(
      std::aligned_alloc(kAlign, AlignUp(std::max<int64_t>(bytes, 1)))));
}

// The cpu backend's variable store: host tensors, plus for variables that
// bf16 GEMMs read a persistent bf16 copy shared by every executable compiled
// on the store, so that the weights are not converted again each run. A
// version counter per tracked variable, bumped by every write (Write, and the
// executables' updates), tells when a copy is stale; Adam's update writes the
// copy in the same pass as the weights (no conversion in the next step).
class CpuVariableStore : public HostVariableStore {
 public:
  struct Shadow {
    uint64_t version = 1;  // Of the f32 variable.
    uint64_t holds = 0;    // The version `copy` holds.
    AlignedBuffer copy;    // n bf16 values, allocated at Compile.
    int64_t n = 0;
  };

  absl::Status Write(absl::string_view name, const Tensor& value) override {
    SEQUENT_RETURN_IF_ERROR(HostVariableStore::Write(name, value));
    if (auto it = shadows_.find(name); it != shadows_.end())
      ++it->second->version;
    return absl::OkStatus();
  }

  // The (stable) version entry of `name`, created when absent.
  Shadow* ShadowOf(absl::string_view name) {
    std::unique_ptr<Shadow>& s = shadows_[name];
    if (s == nullptr) s = std::make_unique<Shadow>();
    return s.get();
  }
  // As ShadowOf, with the bf16 copy of `n` elements allocated.
  Shadow* Bf16CopyOf(absl::string_view name, int64_t n) {
    Shadow* s = ShadowOf(name);
    if (s->copy == nullptr) {
      s->copy = AllocateAligned(n * 2);
      s->n = n;
    }
    return s;
  }

 private:
  absl::flat_hash_map<std::string, std::unique_ptr<Shadow>> shadows_;
};

// ---------------------------------------------------------------------------------------
// The schedule.

struct MemArg {
  int arg;
  memory mem;
  ValueId value;  // or kScratchpad
};

using Pointers = std::vector<std::byte*>;  // Indexed by ValueId.

struct Step {
  std::string label;   // "op" or "op (layer)", for errors.
  std::string kind;    // oneDNN primitive kind or "loop", for the profile.
  double seconds = 0;  // Accumulated when profiling.
  dnnl::primitive primitive;
  std::vector<MemArg> args;
  std::unordered_map<int, memory> arg_map;
  std::string layer;
  // Our own loop, when `primitive` is empty.
  std::function<absl::Status(const Pointers&)> loop;
};

class CpuExecutable : public Executable {
 public:
  absl::Status Run(absl::Span<const Feed> feeds,
                   std::vector<Tensor>& outputs) override;
  const std::vector<std::string>& output_names() const override {
    return output_names_;
  }
  int64_t batch_size() const override { return batch_size_; }

  // Everything below is filled by Compile.
  int num_threads = 0;
  int64_t batch_size_ = 0;
  // CpuBackend::SetComputeDType(kBF16) at Compile: GEMMs read bf16 copies.
  bool bf16 = false;
  dnnl::engine engine;
  dnnl::stream stream;
  std::vector<Step> steps;
  std::vector<TensorType> types;  // Batch-bound, per value.
  std::vector<Location> locations;
  AlignedBuffer arena;
  AlignedBuffer scratchpad;
  AlignedBuffer staging;
  std::vector<AlignedBuffer> extras;  // Owned extra buffers.
  // kExtraBase - k: the k-th extra buffer, owned (`extras`) or borrowed (a
  // bf16 weight copy in the store).
  std::vector<std::byte*> extra_data;
  // The memory plan and the graph it numbers (batch-bound, reshapes resolved
  // to their inputs), for tools that print it.
  MemoryPlan plan;
  Graph planned_graph;
  absl::flat_hash_map<ValueId, Tensor> constants;
  Pointers pointers;
  struct Input {
    std::string name;
    ValueId value;
    // Primitive arguments and values (the input and reshapes of it) that read
    // the feed: Run points them at the fed tensor instead of copying it.
    std::vector<memory*> args;
    std::vector<ValueId> values;
  };
  std::vector<Input> inputs;
  std::vector<std::string> input_names;
  std::string expected_inputs;  // "x, y", or "none", for feed errors.
  std::vector<const Tensor*> fed_scratch;  // One per input.
  std::vector<ValueId> output_values;
  std::vector<std::string> output_names_;
  struct Update {
    Tensor* variable;
    ValueId value;
    // Set when the new value lives in variable storage, which an earlier update
    // may overwrite: it is copied here first (`a := b, b := a` must swap).
    std::byte* staging = nullptr;
    // The variable's version entry when copied here (the copy is then stale).
    CpuVariableStore::Shadow* shadow = nullptr;
  };
  std::vector<Update> updates;
  HostVariableStore* store = nullptr;
  // The store when the cpu backend created it (persistent bf16 copies).
  CpuVariableStore* cpu_store = nullptr;
  // SEQUENT_CPU_PROFILE set at Compile: every step is timed (CpuBackend::
  // ProfileString prints the table).
  bool profile = false;
  int64_t profiled_runs = 0;
};

absl::Status CpuExecutable::Run(absl::Span<const Feed> feeds,
                                std::vector<Tensor>& outputs) {
  // Feeds are validated like the reference backend's, with the same messages.
  // Nothing here allocates unless there is an error to report.
  std::vector<const Tensor*>& fed = fed_scratch;
  SEQUENT_RETURN_IF_ERROR(MatchFeeds(
      feeds, [&](size_t i) -> const std::string& { return inputs[i].name; },
      [&](size_t i) -> const TensorType& { return types[inputs[i].value]; },
      expected_inputs, absl::MakeSpan(fed)));

  if (num_threads > 0 && omp_get_max_threads() != num_threads)
    omp_set_num_threads(num_threads);
  // Feeds are read in place: nothing writes an input's buffer (the planner
  // never reuses it in place), so the steps may read the caller's tensor.
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto* data = static_cast<std::byte*>(const_cast<void*>(fed[i]->raw_data()));
    if (data == nullptr) continue;
    for (ValueId v : inputs[i].values) pointers[v] = data;
    for (memory* mem : inputs[i].args) mem->set_data_handle(data);
  }
  try {
    for (Step& step : steps) {
      const auto start = profile ? std::chrono::steady_clock::now()
                                 : std::chrono::steady_clock::time_point();
      if (step.loop) {
        if (absl::Status s = step.loop(pointers); !s.ok()) {
          stream.wait();
          if (step.layer.empty()) return s;
          return absl::Status(s.code(), absl::StrCat("layer '", step.layer,
                                                     "': ", s.message()));
        }
      } else {
        step.primitive.execute(stream, step.arg_map);
      }
      if (profile) {
        stream.wait();
        step.seconds += std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - start)
                            .count();
      }
    }
    stream.wait();
    if (profile) ++profiled_runs;
  } catch (const dnnl::error& e) {
    return DnnlError(e, "running the cpu executable");
  }

  outputs.resize(output_values.size());
  for (size_t i = 0; i < output_values.size(); ++i) {
    const TensorType& type = types[output_values[i]];
    // A default Tensor claims type f32[] but holds no buffer, hence the element
    // count.
    if (outputs[i].type() != type ||
        outputs[i].num_elements() != type.shape.NumElements()) {
      outputs[i] = Tensor(type);
    }
    if (outputs[i].num_bytes() > 0) {
      std::memcpy(outputs[i].raw_data(), pointers[output_values[i]],
                  outputs[i].num_bytes());
    }
  }
  for (Update& u : updates) {
    if (u.staging != nullptr) {
      std::memcpy(u.staging, pointers[u.value], u.variable->num_bytes());
    }
  }
  for (Update& u : updates) {
    const std::byte* src = u.staging != nullptr ? u.staging : pointers[u.value];
    if (src != u.variable->raw_data() && u.variable->num_bytes() > 0) {
      std::memcpy(u.variable->raw_data(), src, u.variable->num_bytes());
    }
    if (u.shadow != nullptr) ++u.shadow->version;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Lowering.

template <typename PD>
std::string PrimitiveKindName(const PD& pd) {
  const char* impl = pd.impl_info_str();
  return impl != nullptr ? impl : "";
}

class Lowering {
 public:
  explicit Lowering(CpuExecutable& exe) : exe_(exe) {}

  const TensorType& type(ValueId v) const { return exe_.types[v]; }
  const dnnl::engine& engine() const { return exe_.engine; }

  // An attribute set with the user-managed scratchpad (so Run allocates
  // nothing).
  dnnl::primitive_attr Attr() const {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return attr;
  }

  absl::StatusOr<memory::desc> Desc(ValueId v) const {
    return PlainDesc(type(v));
  }

  // Adds a primitive whose arguments view values through the given descriptors.
  template <typename PD>
  void AddPrimitive(const PD& pd, dnnl::primitive primitive,
                    std::vector<std::tuple<int, ValueId, memory::desc>> args) {
    Step step;
    step.label = label_;
    step.kind = PrimitiveKindName(pd);
    step.primitive = std::move(primitive);
    bool reads_bf16 = false;
    for (auto& [arg, value, desc] : args) {
      reads_bf16 |= desc.data_type() == memory::data_type::bf16;
      memory mem(desc, engine(), DNNL_MEMORY_NONE);
      step.args.push_back({arg, mem, value});
      step.arg_map.emplace(arg, mem);
    }
    // The implementation string (e.g. "x64:gemm:jit") does not say the types.
    if (reads_bf16) step.kind += " [bf16]";
    const memory::desc scratch = pd.scratchpad_desc();
    if (scratch.get_size() > 0) {
      scratchpad_bytes_ =
          std::max<int64_t>(scratchpad_bytes_, scratch.get_size());
      memory mem(scratch, engine(), DNNL_MEMORY_NONE);
      step.args.push_back({DNNL_ARG_SCRATCHPAD, mem, kScratchpad});
      step.arg_map.emplace(DNNL_ARG_SCRATCHPAD, mem);
    }
    exe_.steps.push_back(std::move(step));
  }

  // A loop of ours; it may read what earlier primitives wrote (the CPU stream
  // runs primitives synchronously under OpenMP).
  void AddLoop(std::function<absl::Status(const Pointers&)> loop) {
    Step step;
    step.label = label_;
    step.kind = "loop";
    step.layer = layer_;
    step.loop = std::move(loop);
    exe_.steps.push_back(std::move(step));
  }

  void Alias(ValueId out, ValueId in) {
    exe_.locations[out].kind = Location::Kind::kAlias;
    exe_.locations[out].alias_of = in;
  }

  // A reorder (copy with layout or type change) from `src` viewed as `src_desc`
  // into `dst` viewed as `dst_desc`.
  void AddReorder(ValueId src, const memory::desc& src_desc, ValueId dst,
                  const memory::desc& dst_desc) {
    dnnl::reorder::primitive_desc pd(engine(), src_desc, engine(), dst_desc,
                                     Attr());
    AddPrimitive(
        pd, dnnl::reorder(pd),
        {{DNNL_ARG_FROM, src, src_desc}, {DNNL_ARG_TO, dst, dst_desc}});
  }

  // dst = chain(src), one eltwise primitive per step (the later ones in place).
  absl::Status AddEltwiseChain(ValueId src, ValueId dst,
                               const std::vector<EltwiseStep>& chain) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(src));
    if (chain.empty()) {
      AddReorder(src, desc, dst, desc);
      return absl::OkStatus();
    }
    ValueId in = src;
    for (const EltwiseStep& e : chain) {
      dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, e.alg,
                                    desc, e.alpha, e.beta);
      dnnl::eltwise_forward::primitive_desc pd(d, Attr(), engine());
      AddPrimitive(pd, dnnl::eltwise_forward(pd),
                   {{DNNL_ARG_SRC, in, desc}, {DNNL_ARG_DST, dst, desc}});
      in = dst;
    }
    return absl::OkStatus();
  }

  // dst = softmax (or log_softmax) of src over `axis`, one oneDNN primitive.
  void AddSoftmax(ValueId src, ValueId dst, const memory::desc& desc, int axis,
                  bool log) {
    if (log) {
      dnnl::logsoftmax_forward::primitive_desc pd(
          dnnl::logsoftmax_forward::desc(dnnl::prop_kind::forward_inference,
                                         desc, axis),
          Attr(), engine());
      AddPrimitive(pd, dnnl::logsoftmax_forward(pd),
                   {{DNNL_ARG_SRC, src, desc}, {DNNL_ARG_DST, dst, desc}});
    } else {
      dnnl::softmax_forward::primitive_desc pd(
          dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, desc,
                                      axis),
          Attr(), engine());
      AddPrimitive(pd, dnnl::softmax_forward(pd),
                   {{DNNL_ARG_SRC, src, desc}, {DNNL_ARG_DST, dst, desc}});
    }
  }

  // What a loss node and its gradient node both read: y_true (input 0),
  // y_pred (input 1), the optional sample weight at `weight_input`, and the
  // Keras row layout.
  struct LossOperands {
    LossParams params;
    int64_t row_len = 0;
    int64_t batch = 0;
    int rank = 0;
    ValueId t = kNoValue, p = kNoValue, w = kNoValue;
    DType t_dtype = DType::kF32, p_dtype = DType::kF32, w_dtype = DType::kF32;
    int64_t t_size = 0, p_size = 0, w_size = 0;

    ConstView Labels(const Pointers& ptr) const {
      return {ptr[t], t_dtype, t_size};
    }
    ConstView Predictions(const Pointers& ptr) const {
      return {ptr[p], p_dtype, p_size};
    }
    ConstView Weights(const Pointers& ptr) const {
      return {w != kNoValue ? ptr[w] : nullptr, w_dtype, w_size};
    }
    // Sparse crossentropy from f32 [batch, classes] logits: the softmax can
    // come from oneDNN.
    bool SoftmaxOfLogits() const {
      return params.kind == LossKind::kSparseCategoricalCrossentropy &&
             params.from_logits && p_dtype == DType::kF32 && rank == 2;
    }
  };
  LossOperands LossOperandsOf(const Node& node, const Attributes& attrs,
                              LossKind kind, size_t weight_input) const {
    LossOperands o;
    o.params.kind = kind;
    o.params.delta = FloatAttrOr(attrs, "delta", 1.0);
    o.params.from_logits = BoolAttrOr(attrs, "from_logits", false);
    o.params.label_smoothing = FloatAttrOr(attrs, "label_smoothing", 0.0);
    const TensorType& y_true = type(node.inputs[0]);
    const TensorType& y_pred = type(node.inputs[1]);
    o.rank = y_pred.shape.rank();
    // The elementwise losses average over the last axis when there is one
    // beside the batch; the crossentropies over classes always take the last
    // axis.
    const bool elementwise = kind == LossKind::kMse || kind == LossKind::kMae ||
                             kind == LossKind::kHuber ||
                             kind == LossKind::kBinaryCrossentropy;
    o.row_len = elementwise ? (o.rank >= 2 ? y_pred.shape[o.rank - 1] : 1)
                            : y_pred.shape[o.rank - 1];
    o.batch = y_pred.shape[0];
    o.t = node.inputs[0];
    o.p = node.inputs[1];
    o.t_dtype = y_true.dtype;
    o.p_dtype = y_pred.dtype;
    o.t_size = y_true.shape.NumElements();
    o.p_size = y_pred.shape.NumElements();
    if (node.inputs.size() > weight_input) {
      o.w = node.inputs[weight_input];
      o.w_dtype = type(o.w).dtype;
      o.w_size = type(o.w).shape.NumElements();
    }
    return o;
  }

  absl::Status LowerNode(const Node& node, const Attributes& attrs);

  void set_label(std::string label, std::string layer) {
    label_ = std::move(label);
    layer_ = std::move(layer);
  }
  int64_t scratchpad_bytes() const { return scratchpad_bytes_; }

  // A buffer of the executable outside the arena; returns its id for
  // primitive arguments and sets `*data`.
  ValueId NewExtra(int64_t bytes, std::byte** data = nullptr) {
    exe_.extras.push_back(AllocateAligned(bytes));
    if (data != nullptr) *data = exe_.extras.back().get();
    return NewExternal(exe_.extras.back().get());
  }
  // An extra buffer the executable does not own.
  ValueId NewExternal(std::byte* data) {
    exe_.extra_data.push_back(data);
    return kExtraBase - static_cast<ValueId>(exe_.extra_data.size() - 1);
  }

  // The kernel `kernel` (f32, viewed as `plain`) as a convolution primitive
  // wants it (`want`: oneDNN's blocked layout, in the compute type): one
  // reorder per run into a buffer of the executable, which also converts to
  // bf16, shared by the primitives that want the same layout (the forward
  // and the input gradient). Convolution kernels are small; their primitives
  // run 2-4x faster with blocked weights than with plain HWIO (oneDNN 2.6 on
  // Zen 4: the CNN's 3x3x32x64 forward 567 vs 2215 us in f32, 294 vs 910 us in
  // bf16), while the activations stay NHWC in the arena.
  ValueId ConvWeights(ValueId kernel, const memory::desc& plain,
                      const memory::desc& want) {
    if (want == plain) return kernel;
    for (const auto& [value, desc, id] : conv_weights_) {
      if (value == kernel && desc == want) return id;
    }
    const ValueId id = NewExtra(want.get_size());
    AddReorder(kernel, plain, id, want);
    exe_.steps.back().kind =
        absl::StrCat("kernel to blocked: ", exe_.steps.back().kind);
    conv_weights_.push_back({kernel, want, id});
    return id;
  }

  // Whether a GEMM of these sizes (rows x reduction -> columns) reads bf16
  // operands in bf16 mode. Converting the activations is a pass over each,
  // which pays only when every dimension is large enough: with fewer than 16
  // rows (the MLP's predict at batch 1: 18.5 us in bf16, 16.3 us in f32) or
  // 16 columns (a 10-class output layer) oneDNN 2.6's bf16 GEMM plus the
  // conversions is slower than its f32 GEMM (measured on Zen 4).
  bool Bf16Gemm(int64_t m, int64_t k, int64_t n) const {
    constexpr int64_t kMinDim = 16;
    return exe_.bf16 && std::min({m, k, n}) >= kMinDim;
  }
  static memory::data_type GemmType(bool bf16) {
    return bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  }
  // The value a GEMM reads for f32 value `v`: `v` itself, or when `bf16`
  // its bf16 copy (same element order, so any view of `v` applies to it). The
  // copy is one reorder, scheduled before the first GEMM that asks and shared
  // by every later one: values are immutable once produced (the planner reuses
  // a buffer only after its value's last reader), so the copy stays exact.
  ValueId GemmOperand(ValueId v, bool bf16) {
    if (!bf16) return v;
    while (exe_.locations[v].kind == Location::Kind::kAlias)
      v = exe_.locations[v].alias_of;
    if (auto it = bf16_copies_.find(v); it != bf16_copies_.end())
      return it->second;
    const int64_t n = std::max<int64_t>(1, type(v).shape.NumElements());
    if (exe_.cpu_store != nullptr &&
        exe_.locations[v].kind == Location::Kind::kVariable) {
      // A variable: the store's persistent copy, converted only when a write
      // since the last conversion made it stale.
      CpuVariableStore::Shadow* shadow =
          exe_.cpu_store->Bf16CopyOf(exe_.locations[v].variable, n);
      const ValueId copy = NewExternal(shadow->copy.get());
      AddLoop([shadow, v, n](const Pointers& ptr) {
        if (shadow->holds != shadow->version) {
          ConvertToBf16(reinterpret_cast<const float*>(ptr[v]),
                        reinterpret_cast<uint16_t*>(shadow->copy.get()), n);
          shadow->holds = shadow->version;
        }
        return absl::OkStatus();
      });
      exe_.steps.back().kind =
          "to bf16 (when the variable changed): loop [bf16]";
      bf16_copies_.emplace(v, copy);
      return copy;
    }
    const ValueId copy = NewExtra(n * 2);
    AddReorder(v, memory::desc({n}, memory::data_type::f32, tag::a), copy,
               memory::desc({n}, memory::data_type::bf16, tag::a));
    exe_.steps.back().kind = absl::StrCat("to bf16: ", exe_.steps.back().kind);
    bf16_copies_.emplace(v, copy);
    return copy;
  }

  // Best-of-5 seconds of one run of `primitive` on scratch buffers of the
  // given descriptors (filled with small values: no denormal or zero fast
  // path), for choosing between equivalent formulations at Compile.
  double TimePrimitive(const dnnl::primitive& primitive,
                       const std::vector<std::pair<int, memory::desc>>& args,
                       const memory::desc& scratchpad) {
    std::unordered_map<int, memory> map;
    size_t next = 0;
    auto bind = [&](int arg, const memory::desc& desc) {
      // The k-th argument reuses the k-th buffer of earlier timings while it
      // is large enough and of the same type: filling fresh buffers cost more
      // than the timing itself for a large batch (a 12000-row predict's
      // input is 38 MB).
      const int64_t bytes = static_cast<int64_t>(desc.get_size());
      if (next == timing_buffers_.size()) timing_buffers_.emplace_back();
      TimingBuffer& buffer = timing_buffers_[next++];
      if (buffer.bytes < bytes || buffer.type != desc.data_type()) {
        buffer.data = AllocateAligned(bytes);
        buffer.bytes = bytes;
        buffer.type = desc.data_type();
        if (desc.data_type() == memory::data_type::bf16) {
          uint16_t* h = reinterpret_cast<uint16_t*>(buffer.data.get());
          std::fill(h, h + bytes / 2, FloatToBF16(0.01f));
        } else {
          float* f = reinterpret_cast<float*>(buffer.data.get());
          std::fill(f, f + bytes / 4, 0.01f);
        }
      }
      map.emplace(arg, memory(desc, engine(), buffer.data.get()));
    };
    for (const auto& [arg, desc] : args) bind(arg, desc);
    if (scratchpad.get_size() > 0) bind(DNNL_ARG_SCRATCHPAD, scratchpad);
    return BestSeconds([&] {
      primitive.execute(exe_.stream, map);
      exe_.stream.wait();
    });
  }
  // Best-of-5 seconds of our column sums over a [rows, c] f32 scratch.
  double TimeColumnSums(int64_t rows, int64_t c, double* scratch) {
    AlignedBuffer in = AllocateAligned(rows * c * 4),
                  out = AllocateAligned(c * 4);
    float* f = reinterpret_cast<float*>(in.get());
    std::fill(f, f + rows * c, 0.01f);
    return BestSeconds([&] {
      ColumnSums(DType::kF32, in.get(), out.get(), rows, c, 1.0, scratch);
    });
  }

  // How a dense GEMM is formulated: SEQUENT_CPU_GEMM=ip or =matmul forces
  // one, =matmul_t computes transposed what can be (weight gradients, and the
  // forward of thin layers) and the rest as matmuls (tests run all three);
  // otherwise each GEMM is timed every way at Compile and the fastest kept, as
  // bench/gemm_floor.cc picks its floor.
  enum class GemmChoice { kAuto, kInnerProduct, kMatmul, kTransposedMatmul };
  static GemmChoice GemmChoiceFromEnv() {
    const char* env = std::getenv("SEQUENT_CPU_GEMM");
    if (env == nullptr) {
      return fixed_kernel_choice.load() ? GemmChoice::kInnerProduct
                                        : GemmChoice::kAuto;
    }
    if (std::string(env) == "ip") return GemmChoice::kInnerProduct;
    if (std::string(env) == "matmul") return GemmChoice::kMatmul;
    if (std::string(env) == "matmul_t") return GemmChoice::kTransposedMatmul;
    return GemmChoice::kAuto;
  }

  // max_pool2d outputs whose max_pool2d_grad reads the forward's workspace.
  absl::flat_hash_map<ValueId, ValueId> pool_workspaces;  // y -> extra id

 private:
  absl::Status LowerActivationGrad(const Node& node, const Attributes& attrs,
                                   bool from_output);
  absl::Status LowerActivationBiasGrad(const Node& node,
                                       const Attributes& attrs);
  absl::Status LowerSoftmaxGrad(const Node& node, const Attributes& attrs,
                                bool log);
  absl::Status LowerBroadcastTo(const Node& node);
  absl::Status LowerReduceToShape(const Node& node);
  absl::Status LowerReduceMaxGrad(const Node& node, const Attributes& attrs);
  absl::Status LowerSliceGrad(const Node& node, const Attributes& attrs);
  absl::Status LowerMaximumGrad(const Node& node);
  absl::Status LowerSign(const Node& node);
  absl::Status LowerConv2dBackprop(const Node& node, const Attributes& attrs,
                                   bool filter);
  absl::Status LowerMaxPool2dGrad(const Node& node, const Attributes& attrs);
  absl::Status LowerAvgPool2dGrad(const Node& node, const Attributes& attrs);
  absl::Status LowerGlobalAvgPool2dGrad(const Node& node);
  absl::Status LowerNormGrad(const Node& node, const Attributes& attrs,
                             bool batch);
  absl::Status LowerLossGrad(const Node& node, const Attributes& attrs,
                             LossKind kind);
  absl::Status LowerUpdate(const Node& node, const Attributes& attrs,
                           UpdateKind kind);
  absl::Status LowerClip(const Node& node, const Attributes& attrs, bool norm);
  absl::Status LowerDenseBackwardWeights(const Node& node);

  absl::Status LowerDense(const Node& node, const Attributes& attrs);
  absl::Status LowerMatmul(const Node& node, const Attributes& attrs);
  absl::Status LowerBinary(const Node& node, dnnl::algorithm alg,
                           BinaryKind kind);
  absl::Status LowerSoftmax(const Node& node, const Attributes& attrs,
                            bool log);
  absl::Status LowerReduce(const Node& node, const Attributes& attrs,
                           dnnl::algorithm alg);
  absl::Status LowerTranspose(const Node& node, const Attributes& attrs);
  absl::Status LowerConcat(const Node& node, const Attributes& attrs);
  absl::Status LowerCast(const Node& node);
  absl::Status LowerSlice(const Node& node, const Attributes& attrs);
  absl::Status LowerDropout(const Node& node, const Attributes& attrs);
  absl::Status LowerConv2d(const Node& node, const Attributes& attrs);
  absl::Status LowerPool2d(const Node& node, const Attributes& attrs, bool max);
  absl::Status LowerGlobalAvgPool2d(const Node& node);
  absl::Status LowerBatchNorm(const Node& node, const Attributes& attrs);
  absl::Status LowerLayerNorm(const Node& node, const Attributes& attrs);
  absl::Status LowerLoss(const Node& node, const Attributes& attrs,
                         LossKind kind);
  absl::Status LowerMetric(const Node& node, const Attributes& attrs,
                           MetricKind kind);

  CpuExecutable& exe_;
  std::string label_;
  std::string layer_;
  int64_t scratchpad_bytes_ = 0;
  absl::flat_hash_map<ValueId, ValueId> bf16_copies_;  // value -> extra id
  // Scratch operands of TimePrimitive, reused by later timings.
  struct TimingBuffer {
    AlignedBuffer data;
    int64_t bytes = 0;
    memory::data_type type = memory::data_type::undef;
  };
  std::vector<TimingBuffer> timing_buffers_;
  // Logits -> the softmax a sparse crossentropy loss step wrote for them
  // (an extra buffer), which its gradient step reuses.
  absl::flat_hash_map<ValueId, const std::byte*> softmax_of_logits_;
  std::vector<std::tuple<ValueId, memory::desc, ValueId>> conv_weights_;

 public:
  // Update values an update step wrote in place into their variable (and
  // bumped its version); Run bumps the others' after copying them.
  absl::flat_hash_set<ValueId> in_place_updates_;
};

absl::Status ExpectF32(const Node& node, const TensorType& t) {
  if (t.dtype == DType::kF32) return absl::OkStatus();
  return Unsupported(node,
                     absl::StrCat("runs f32 only so far, got ", t.ToString()));
}

memory::dims Dims(std::initializer_list<int64_t> d) { return memory::dims(d); }

// The oneDNN formulations of one dense GEMM z = act(x W + b) at m rows, x
// [m, k], the kernel W [k, p]:
// - an inner product: the kernel as oneDNN's {OC=p, IC=k} weights is `io`;
// - a matmul: the kernel is its plain `ab` B and the bias a {1, p} row;
// - transposed, z^T = W^T x^T: an inner product whose weights are the batch
//   ([m, k] as `oi`) and whose source is the kernel transposed ([p, k]),
//   after a reorder that transposes the kernel; a loop of ours transposes
//   z^T back, adding the bias and the activation. For a thin layer (p a few
//   units) the direct forms broadcast one x value per multiply-add and fill
//   p of 16 lanes; this one runs along k (784x5 at batch 200 on one thread:
//   23 -> 10 us). f32 only, p <= 16.
struct DenseForms {
  memory::desc src, weights, dst, bias, b_desc, bias_row;
  dnnl::inner_product_forward::primitive_desc ip;
  dnnl::matmul::primitive_desc mm;
  bool transposable = false;
  memory::desc kernel_as_t, kernel_t, batch_as_weights, z_t;
  dnnl::reorder::primitive_desc transpose_kernel;
  dnnl::inner_product_forward::primitive_desc t_ip;
};

DenseForms MakeDenseForms(const dnnl::engine& engine,
                          const dnnl::primitive_attr& plain_attr,
                          const dnnl::primitive_attr& attr, int64_t m,
                          int64_t k, int64_t p, memory::data_type in,
                          bool has_bias, bool with_alternatives) {
  const auto f32 = memory::data_type::f32;
  DenseForms f;
  f.src = memory::desc({m, k}, in, tag::ab);
  f.weights = memory::desc({p, k}, in, tag::io);
  f.dst = memory::desc({m, p}, f32, tag::ab);
  f.bias = memory::desc({p}, f32, tag::a);
  f.ip = has_bias ? dnnl::inner_product_forward::primitive_desc(
                        dnnl::inner_product_forward::desc(
                            dnnl::prop_kind::forward_inference, f.src,
                            f.weights, f.bias, f.dst),
                        attr, engine)
                  : dnnl::inner_product_forward::primitive_desc(
                        dnnl::inner_product_forward::desc(
                            dnnl::prop_kind::forward_inference, f.src,
                            f.weights, f.dst),
                        attr, engine);
  if (!with_alternatives) return f;
  f.b_desc = memory::desc({k, p}, in, tag::ab);
  f.bias_row = memory::desc({1, p}, f32, tag::ab);
  f.mm = has_bias
             ? dnnl::matmul::primitive_desc(
                   dnnl::matmul::desc(f.src, f.b_desc, f.bias_row, f.dst), attr,
                   engine)
             : dnnl::matmul::primitive_desc(
                   dnnl::matmul::desc(f.src, f.b_desc, f.dst), attr, engine);
  f.transposable = in == f32 && p <= 16 && m > 1;
  if (!f.transposable) return f;
  f.kernel_as_t = memory::desc({p, k}, f32, tag::ba);  // The kernel's bytes.
  f.kernel_t = memory::desc({p, k}, f32, tag::ab);
  f.batch_as_weights = memory::desc({m, k}, f32, tag::oi);
  f.z_t = memory::desc({p, m}, f32, tag::ab);
  f.transpose_kernel = dnnl::reorder::primitive_desc(
      engine, f.kernel_as_t, engine, f.kernel_t, plain_attr);
  f.t_ip = dnnl::inner_product_forward::primitive_desc(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                        f.kernel_t, f.batch_as_weights, f.z_t),
      plain_attr, engine);
  return f;
}

absl::Status Lowering::LowerDense(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& kernel = type(node.inputs[1]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  SEQUENT_ASSIGN_OR_RETURN(
      ops::Activation act,
      ops::ParseActivation(StringAttrOr(attrs, "activation", "linear")));
  const int64_t m = x.shape[0], k = kernel.shape[0], p = kernel.shape[1];
  const bool bf16 = Bf16Gemm(m, k, p);
  const auto in = GemmType(bf16);
  const ValueId x_id = GemmOperand(node.inputs[0], bf16);
  const ValueId w_id = GemmOperand(node.inputs[1], bf16);
  const ValueId z_id = node.outputs[0];
  const bool has_bias = node.inputs.size() > 2;
  const ValueId bias_id = has_bias ? node.inputs[2] : kNoValue;
  dnnl::post_ops post;
  for (const EltwiseStep& e : EltwiseChain(act))
    post.append_eltwise(1.f, e.alg, e.alpha, e.beta);
  dnnl::primitive_attr attr = Attr();
  attr.set_post_ops(post);
  const GemmChoice choice = GemmChoiceFromEnv();
  const DenseForms f =
      MakeDenseForms(engine(), Attr(), attr, m, k, p, in, has_bias,
                     choice != GemmChoice::kInnerProduct);
  enum { kIp, kMatmul, kTransposed } pick = kIp;
  if (choice == GemmChoice::kMatmul) pick = kMatmul;
  if (choice == GemmChoice::kTransposedMatmul)
    pick = f.transposable ? kTransposed : kMatmul;
  if (choice == GemmChoice::kAuto) {
    // Timed at no more than kTimingRows rows: a large batch (a validation
    // set predicted at once) takes the choice made there, instead of timing
    // every formulation on its full size.
    constexpr int64_t kTimingRows = 1024;
    const int64_t tm = std::min(m, kTimingRows);
    const DenseForms timing =
        tm == m ? f
                : MakeDenseForms(engine(), Attr(), attr, tm, k, p, in, has_bias,
                                 /*with_alternatives=*/true);
    const std::string key = absl::StrCat(
        "dense ", tm, "x", k, "x", p, " bias ", has_bias, " ",
        StringAttrOr(attrs, "activation", "linear"), " ", act.alpha, " ",
        static_cast<int>(in), " threads ", exe_.num_threads);
    pick = static_cast<decltype(pick)>(RememberedChoice(key, [&]() -> int {
      std::vector<std::pair<int, memory::desc>> ip_args = {
          {DNNL_ARG_SRC, timing.src},
          {DNNL_ARG_WEIGHTS, timing.weights},
          {DNNL_ARG_DST, timing.dst}};
      std::vector<std::pair<int, memory::desc>> mm_args = {
          {DNNL_ARG_SRC, timing.src},
          {DNNL_ARG_WEIGHTS, timing.b_desc},
          {DNNL_ARG_DST, timing.dst}};
      if (has_bias) {
        ip_args.push_back({DNNL_ARG_BIAS, timing.bias});
        mm_args.push_back({DNNL_ARG_BIAS, timing.bias_row});
      }
      const double ip_time =
          TimePrimitive(dnnl::inner_product_forward(timing.ip), ip_args,
                        timing.ip.scratchpad_desc());
      const double mm_time = TimePrimitive(dnnl::matmul(timing.mm), mm_args,
                                           timing.mm.scratchpad_desc());
      double t_time = 1e30;
      if (timing.transposable) {
        std::vector<float> zt(tm * p, 0.01f), bias(p, 0.01f), z(tm * p);
        t_time = TimePrimitive(dnnl::reorder(timing.transpose_kernel),
                               {{DNNL_ARG_FROM, timing.kernel_as_t},
                                {DNNL_ARG_TO, timing.kernel_t}},
                               timing.transpose_kernel.scratchpad_desc()) +
                 TimePrimitive(dnnl::inner_product_forward(timing.t_ip),
                               {{DNNL_ARG_SRC, timing.kernel_t},
                                {DNNL_ARG_WEIGHTS, timing.batch_as_weights},
                                {DNNL_ARG_DST, timing.z_t}},
                               timing.t_ip.scratchpad_desc()) +
                 BestSeconds([&] {
                   TransposeBiasActivation(zt.data(), bias.data(), z.data(), tm,
                                           p, act);
                 });
      }
      return ip_time <= std::min(mm_time, t_time) ? kIp
             : mm_time <= t_time                  ? kMatmul
                                                  : kTransposed;
    }));
    if (pick == kTransposed && !f.transposable) pick = kMatmul;
  }
  if (pick == kTransposed) {
    const ValueId w_t = NewExtra(f.kernel_t.get_size());
    std::byte* zt_data = nullptr;  // Loops read extras directly.
    const ValueId zt_id = NewExtra(f.z_t.get_size(), &zt_data);
    AddPrimitive(
        f.transpose_kernel, dnnl::reorder(f.transpose_kernel),
        {{DNNL_ARG_FROM, w_id, f.kernel_as_t}, {DNNL_ARG_TO, w_t, f.kernel_t}});
    AddPrimitive(f.t_ip, dnnl::inner_product_forward(f.t_ip),
                 {{DNNL_ARG_SRC, w_t, f.kernel_t},
                  {DNNL_ARG_WEIGHTS, x_id, f.batch_as_weights},
                  {DNNL_ARG_DST, zt_id, f.z_t}});
    AddLoop([=](const Pointers& ptr) {
      TransposeBiasActivation(reinterpret_cast<const float*>(zt_data),
                              bias_id != kNoValue
                                  ? reinterpret_cast<const float*>(ptr[bias_id])
                                  : nullptr,
                              reinterpret_cast<float*>(ptr[z_id]), m, p, act);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  if (pick == kMatmul) {
    std::vector<std::tuple<int, ValueId, memory::desc>> args = {
        {DNNL_ARG_SRC, x_id, f.src},
        {DNNL_ARG_WEIGHTS, w_id, f.b_desc},
        {DNNL_ARG_DST, z_id, f.dst}};
    if (has_bias) args.push_back({DNNL_ARG_BIAS, bias_id, f.bias_row});
    AddPrimitive(f.mm, dnnl::matmul(f.mm), std::move(args));
    return absl::OkStatus();
  }
  std::vector<std::tuple<int, ValueId, memory::desc>> args = {
      {DNNL_ARG_SRC, x_id, f.src},
      {DNNL_ARG_WEIGHTS, w_id, f.weights},
      {DNNL_ARG_DST, z_id, f.dst}};
  if (has_bias) args.push_back({DNNL_ARG_BIAS, bias_id, f.bias});
  AddPrimitive(f.ip, dnnl::inner_product_forward(f.ip), std::move(args));
  return absl::OkStatus();
}

absl::Status Lowering::LowerMatmul(const Node& node, const Attributes& attrs) {
  const TensorType& a = type(node.inputs[0]);
  const TensorType& b = type(node.inputs[1]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, a));
  const bool ta = BoolAttrOr(attrs, "transpose_a", false);
  const bool tb = BoolAttrOr(attrs, "transpose_b", false);
  const int64_t m = ta ? a.shape[1] : a.shape[0];
  const int64_t k = ta ? a.shape[0] : a.shape[1];
  const int64_t p = tb ? b.shape[0] : b.shape[1];
  const auto f32 = memory::data_type::f32;
  const bool bf16 = Bf16Gemm(m, k, p);
  const auto in = GemmType(bf16);
  const ValueId a_id = GemmOperand(node.inputs[0], bf16);
  const ValueId b_id = GemmOperand(node.inputs[1], bf16);
  const memory::desc mm_src({m, k}, in, ta ? Dims({1, m}) : Dims({k, 1}));
  const memory::desc mm_weights({k, p}, in, tb ? Dims({1, k}) : Dims({p, 1}));
  const memory::desc mm_dst({m, p}, f32, tag::ab);
  dnnl::matmul::primitive_desc mm(
      dnnl::matmul::desc(mm_src, mm_weights, mm_dst), Attr(), engine());
  const GemmChoice choice = GemmChoiceFromEnv();
  if (!ta && tb && a.shape.rank() == 2 && b.shape.rank() == 2 &&
      choice != GemmChoice::kMatmul &&
      choice != GemmChoice::kTransposedMatmul) {
    // A dense layer's input gradient dz x W^T (dz [M, OC], W [IC, OC]):
    // oneDNN's inner_product_backward_data over the forward's weights, in
    // the forward's `io` view of W as {OC, IC}. Here k = OC and p = IC.
    const memory::desc diff_dst({m, k}, in, tag::ab);
    const memory::desc weights({k, p}, in, tag::io);
    const memory::desc diff_src({m, p}, f32, tag::ab);
    // The hint is the forward in the operands' type (oneDNN has no forward
    // from f32 src to bf16 dst).
    dnnl::inner_product_forward::primitive_desc hint(
        dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                          memory::desc({m, p}, in, tag::ab),
                                          weights, diff_dst),
        engine());
    dnnl::inner_product_backward_data::primitive_desc pd(
        dnnl::inner_product_backward_data::desc(diff_src, weights, diff_dst),
        Attr(), engine(), hint);
    dnnl::inner_product_backward_data ip_primitive(pd);
    bool use_ip = true;
    if (choice == GemmChoice::kAuto) {
      const std::string key =
          absl::StrCat("dense input gradient ", m, "x", k, "x", p, " ",
                       static_cast<int>(in), " threads ", exe_.num_threads);
      use_ip = RememberedChoice(key, [&] {
                 return TimePrimitive(ip_primitive,
                                      {{DNNL_ARG_DIFF_DST, diff_dst},
                                       {DNNL_ARG_WEIGHTS, weights},
                                       {DNNL_ARG_DIFF_SRC, diff_src}},
                                      pd.scratchpad_desc()) <=
                        TimePrimitive(dnnl::matmul(mm),
                                      {{DNNL_ARG_SRC, mm_src},
                                       {DNNL_ARG_WEIGHTS, mm_weights},
                                       {DNNL_ARG_DST, mm_dst}},
                                      mm.scratchpad_desc());
               }) == 1;
    }
    if (use_ip) {
      AddPrimitive(pd, std::move(ip_primitive),
                   {{DNNL_ARG_DIFF_DST, a_id, diff_dst},
                    {DNNL_ARG_WEIGHTS, b_id, weights},
                    {DNNL_ARG_DIFF_SRC, node.outputs[0], diff_src}});
      return absl::OkStatus();
    }
  }
  // A transposed operand is the stored matrix read with swapped strides.
  const memory::desc& src = mm_src;
  const memory::desc& weights = mm_weights;
  const memory::desc& dst = mm_dst;
  const dnnl::matmul::primitive_desc& pd = mm;
  AddPrimitive(pd, dnnl::matmul(pd),
               {{DNNL_ARG_SRC, a_id, src},
                {DNNL_ARG_WEIGHTS, b_id, weights},
                {DNNL_ARG_DST, node.outputs[0], dst}});
  return absl::OkStatus();
}

// `shape` right-aligned to `rank` with leading 1s (numpy broadcasting).
memory::dims PadDims(const Shape& shape, int rank) {
  memory::dims d(rank, 1);
  for (int i = 0; i < shape.rank(); ++i) d[rank - shape.rank() + i] = shape[i];
  return d;
}

absl::Status Lowering::LowerBinary(const Node& node, dnnl::algorithm alg,
                                   BinaryKind kind) {
  ValueId a = node.inputs[0], b = node.inputs[1];
  const ValueId out = node.outputs[0];
  const TensorType& out_type = type(out);
  const int rank = std::max(1, out_type.shape.rank());
  const memory::dims out_dims = ToDnnlDims(out_type.shape);
  memory::dims ad = PadDims(type(a).shape, rank),
               bd = PadDims(type(b).shape, rank);
  const bool a_full = ad == out_dims, b_full = bd == out_dims;
  const int64_t out_size = out_type.shape.NumElements();
  if (out_type.dtype == DType::kF32 && out_size > 1 &&
      (kind == BinaryKind::kAdd || kind == BinaryKind::kSub ||
       kind == BinaryKind::kMul) &&
      ((a_full && type(b).shape.NumElements() == 1) ||
       (b_full && type(a).shape.NumElements() == 1))) {
    // Tensor and scalar (an L2 penalty's gradient, a loss scale): our
    // vectorized loop beats oneDNN 2.6's generic broadcasting binary here.
    const std::vector<int64_t> flat = {out_size};
    const std::vector<int64_t> as = {a_full ? 1 : 0}, bs = {b_full ? 1 : 0};
    AddLoop([=](const Pointers& ptr) {
      BroadcastBinary(kind, DType::kF32, ptr[a], as, ptr[b], bs, ptr[out],
                      flat);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  // Tiny outputs (a loss's scalar terms) go to our loop below too: a
  // oneDNN primitive's execution costs ~0.3 us, several times their work.
  constexpr int64_t kTinyOutput = 64;
  const DType dtype = out_type.dtype;
  const bool loop_dtype = dtype == DType::kF32 || dtype == DType::kF64 ||
                          dtype == DType::kI32 || dtype == DType::kI64;
  if (HasDnnlType(dtype) && (a_full || b_full) &&
      (out_size > kTinyOutput || !loop_dtype)) {
    // oneDNN broadcasts src1 only; a broadcast src0 swaps, fixing
    // non-commutative ops with a post-op: a - b = -(b - a), a / b = (b / a)^-1.
    dnnl::post_ops post;
    if (!a_full) {
      std::swap(a, b);
      std::swap(ad, bd);
      if (kind == BinaryKind::kSub) {
        post.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, -1.f, 0.f);
      } else if (kind == BinaryKind::kDiv) {
        post.append_eltwise(1.f, dnnl::algorithm::eltwise_pow, 1.f, -1.f);
      }
    }
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src0, PlainDesc(ad, type(a).dtype));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src1, PlainDesc(bd, type(b).dtype));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc dst,
                             PlainDesc(out_dims, out_type.dtype));
    dnnl::primitive_attr attr = Attr();
    attr.set_post_ops(post);
    dnnl::binary::primitive_desc pd(dnnl::binary::desc(alg, src0, src1, dst),
                                    attr, engine());
    AddPrimitive(pd, dnnl::binary(pd),
                 {{DNNL_ARG_SRC_0, a, src0},
                  {DNNL_ARG_SRC_1, b, src1},
                  {DNNL_ARG_DST, out, dst}});
    return absl::OkStatus();
  }
  // Both operands broadcast, a dtype oneDNN lacks or a tiny output: our
  // strided loop.
  if (!loop_dtype) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(dtype), " version"));
  }
  auto strides = [&](const memory::dims& d) {
    std::vector<int64_t> s = RowMajorStrides(d);
    for (int i = 0; i < rank; ++i) {
      if (d[i] == 1) s[i] = 0;
    }
    return s;
  };
  std::vector<int64_t> as = strides(ad), bs = strides(bd);
  std::vector<int64_t> od(out_dims.begin(), out_dims.end());
  AddLoop([=](const Pointers& ptr) {
    BroadcastBinary(kind, dtype, ptr[a], as, ptr[b], bs, ptr[out], od);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSoftmax(const Node& node, const Attributes& attrs,
                                    bool log) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  SEQUENT_ASSIGN_OR_RETURN(
      int axis, NormalizeAxis(IntAttrOr(attrs, "axis", -1), x.shape.rank()));
  SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(node.inputs[0]));
  AddSoftmax(node.inputs[0], node.outputs[0], desc, axis, log);
  return absl::OkStatus();
}

absl::Status Lowering::LowerReduce(const Node& node, const Attributes& attrs,
                                   dnnl::algorithm alg) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const int rank = x.shape.rank();
  const memory::dims src_dims = ToDnnlDims(x.shape);
  memory::dims dst_dims = src_dims;
  std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
  if (axes.empty()) {
    // No axes: reduce everything.
    for (auto& d : dst_dims) d = 1;
  }
  for (int64_t a : axes) {
    SEQUENT_ASSIGN_OR_RETURN(int axis, NormalizeAxis(a, rank));
    dst_dims[axis] = 1;
  }
  SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(node.inputs[0]));
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, PlainDesc(dst_dims, x.dtype));
  if (src_dims == dst_dims) {
    AddReorder(node.inputs[0], src, node.outputs[0], dst);
    return absl::OkStatus();
  }
  // A sum or mean over leading axes (bias gradients: [N, H, W, C] -> [C])
  // is a column sum, which oneDNN 2.6 runs with its slow reference reduction.
  int prefix = 0;
  while (prefix < rank && dst_dims[prefix] == 1 && src_dims[prefix] != 1)
    ++prefix;
  bool leading = prefix > 0;
  for (int i = prefix; i < rank; ++i) leading &= dst_dims[i] == src_dims[i];
  if (leading && (alg == dnnl::algorithm::reduction_sum ||
                  alg == dnnl::algorithm::reduction_mean)) {
    int64_t rows = 1, c = 1;
    for (int i = 0; i < prefix; ++i) rows *= src_dims[i];
    for (int i = prefix; i < rank; ++i) c *= src_dims[i];
    const double scale =
        alg == dnnl::algorithm::reduction_mean ? 1.0 / rows : 1.0;
    std::byte* scratch = nullptr;
    NewExtra(c * std::max(1, exe_.num_threads) *
                 static_cast<int64_t>(sizeof(double)),
             &scratch);
    const ValueId in = node.inputs[0], out = node.outputs[0];
    const DType dtype = x.dtype;
    AddLoop([=](const Pointers& ptr) {
      ColumnSums(dtype, ptr[in], ptr[out], rows, c, scale,
                 reinterpret_cast<double*>(scratch));
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  dnnl::reduction::primitive_desc pd(
      dnnl::reduction::desc(alg, src, dst, 0.f, 0.f), Attr(), engine());
  AddPrimitive(pd, dnnl::reduction(pd),
               {{DNNL_ARG_SRC, node.inputs[0], src},
                {DNNL_ARG_DST, node.outputs[0], dst}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerTranspose(const Node& node,
                                      const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& out = type(node.outputs[0]);
  const int rank = x.shape.rank();
  std::vector<int64_t> perm = IntListAttrOr(attrs, "perm", {});
  if (perm.empty()) {
    for (int i = rank - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int>(perm.size()) != rank) {
    return Unsupported(node, "got a perm that does not match the input rank");
  }
  const memory::dims in_strides = RowMajorStrides(ToDnnlDims(x.shape));
  const memory::dims out_dims = ToDnnlDims(out.shape);
  memory::dims strides(rank);
  for (int i = 0; i < rank; ++i) strides[i] = in_strides[perm[i]];
  SEQUENT_ASSIGN_OR_RETURN(memory::data_type dt, ToDnnlType(x.dtype));
  const memory::desc src(out_dims, dt, strides);
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(node.outputs[0]));
  AddReorder(node.inputs[0], src, node.outputs[0], dst);
  return absl::OkStatus();
}

absl::Status Lowering::LowerConcat(const Node& node, const Attributes& attrs) {
  const TensorType& out = type(node.outputs[0]);
  SEQUENT_ASSIGN_OR_RETURN(
      int axis, NormalizeAxis(IntAttrOr(attrs, "axis", -1), out.shape.rank()));
  std::vector<memory::desc> srcs;
  std::vector<std::tuple<int, ValueId, memory::desc>> args;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc d, Desc(node.inputs[i]));
    srcs.push_back(d);
    args.push_back(
        {DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), node.inputs[i], d});
  }
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(node.outputs[0]));
  args.push_back({DNNL_ARG_DST, node.outputs[0], dst});
  dnnl::concat::primitive_desc pd(dst, axis, srcs, engine(), Attr());
  AddPrimitive(pd, dnnl::concat(pd), std::move(args));
  return absl::OkStatus();
}

absl::Status Lowering::LowerSlice(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const std::vector<int64_t> begin = IntListAttrOr(attrs, "begin", {});
  if (static_cast<int>(begin.size()) != x.shape.rank()) {
    return Unsupported(node, "got a begin that does not match the input rank");
  }
  if (!HasDnnlType(x.dtype)) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(x.dtype), " version"));
  }
  // The slice is a window of the input: a reorder from its sub-memory
  // descriptor.
  SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(node.inputs[0]));
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(node.outputs[0]));
  const memory::dims offsets = x.shape.IsScalar()
                                   ? memory::dims{0}
                                   : memory::dims(begin.begin(), begin.end());
  AddReorder(node.inputs[0], src.submemory_desc(dst.dims(), offsets),
             node.outputs[0], dst);
  return absl::OkStatus();
}

absl::Status Lowering::LowerCast(const Node& node) {
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const DType from = type(in).dtype, to = type(out).dtype;
  // oneDNN's reorder rounds float -> int to nearest; the reference truncates,
  // so only float <-> float conversions go through it.
  if (IsFloating(from) && IsFloating(to) && HasDnnlType(from) &&
      HasDnnlType(to)) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(in));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(out));
    AddReorder(in, src, out, dst);
    return absl::OkStatus();
  }
  const int64_t n = type(in).shape.NumElements();
  AddLoop([=](const Pointers& ptr) {
    CastElements(from, ptr[in], to, ptr[out], n);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerDropout(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  if (x.dtype != DType::kF32 && x.dtype != DType::kF64) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(x.dtype), " version"));
  }
  const double rate = FloatAttrOr(attrs, "rate", 0.5);
  const bool active = BoolAttrOr(attrs, "training", true) && rate > 0.0;
  const uint64_t seed = static_cast<uint64_t>(IntAttrOr(attrs, "seed", 0));
  const ValueId in = node.inputs[0], y = node.outputs[0],
                mask = node.outputs[1];
  const ValueId step = node.inputs.size() > 1 ? node.inputs[1] : kNoValue;
  const DType step_type = step != kNoValue ? type(step).dtype : DType::kI64;
  const int64_t n = x.shape.NumElements();
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    uint64_t s = 0;
    if (step != kNoValue) {
      s = step_type == DType::kI64
              ? static_cast<uint64_t>(
                    *reinterpret_cast<const int64_t*>(ptr[step]))
              : static_cast<uint64_t>(static_cast<int64_t>(
                    *reinterpret_cast<const int32_t*>(ptr[step])));
    }
    DropoutForward(dtype, ptr[in], ptr[y], ptr[mask], n, rate, seed, s, active);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// TF/Keras "same" padding for one spatial dimension: the odd pixel goes at the
// end.
std::pair<int64_t, int64_t> SamePadding(int64_t in, int64_t out, int64_t window,
                                        int64_t stride) {
  const int64_t total = std::max<int64_t>((out - 1) * stride + window - in, 0);
  return {total / 2, total - total / 2};
}

absl::Status Lowering::LowerConv2d(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& k = type(node.inputs[1]);
  const TensorType& y = type(node.outputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const std::vector<int64_t> strides = IntListAttrOr(attrs, "strides", {1, 1});
  const std::vector<int64_t> dil = IntListAttrOr(attrs, "dilations", {1, 1});
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const int64_t kh = k.shape[0], kw = k.shape[1], o = k.shape[3];
  const int64_t oh = y.shape[1], ow = y.shape[2];
  memory::dims pad_l = {0, 0}, pad_r = {0, 0};
  if (same) {
    auto [t, b] = SamePadding(h, oh, (kh - 1) * dil[0] + 1, strides[0]);
    auto [l, r] = SamePadding(w, ow, (kw - 1) * dil[1] + 1, strides[1]);
    pad_l = {t, l};
    pad_r = {b, r};
  } else {
    // Valid convolution may leave input rows unread at the end; oneDNN wants
    // them as (negative) right padding.
    pad_r = {(oh - 1) * strides[0] + (kh - 1) * dil[0] + 1 - h,
             (ow - 1) * strides[1] + (kw - 1) * dil[1] + 1 - w};
  }
  const auto f32 = memory::data_type::f32;
  const bool bf16 = Bf16Gemm(n * oh * ow, kh * kw * c, o);
  const auto in = GemmType(bf16);
  const ValueId x_id = GemmOperand(node.inputs[0], bf16);
  const memory::desc src({n, c, h, w}, in, tag::nhwc);
  // The kernel in the layout the primitive picks (ConvWeights).
  const memory::desc weights({o, c, kh, kw}, in, tag::any);
  const memory::desc dst({n, o, oh, ow}, f32, tag::nhwc);
  // oneDNN counts dilation from 0 (no dilation = 0).
  const memory::dims dnnl_dil = {dil[0] - 1, dil[1] - 1};
  dnnl::convolution_forward::desc d(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      src, weights, dst, {strides[0], strides[1]}, dnnl_dil, pad_l, pad_r);
  dnnl::convolution_forward::primitive_desc pd(d, Attr(), engine());
  const ValueId k_id =
      ConvWeights(node.inputs[1], memory::desc({o, c, kh, kw}, f32, tag::hwio),
                  pd.weights_desc());
  AddPrimitive(pd, dnnl::convolution_forward(pd),
               {{DNNL_ARG_SRC, x_id, src},
                {DNNL_ARG_WEIGHTS, k_id, pd.weights_desc()},
                {DNNL_ARG_DST, node.outputs[0], dst}});
  return absl::OkStatus();
}

// The oneDNN view of a pooling op: NHWC descriptors and the window geometry.
struct PoolGeometry {
  memory::desc src, dst;
  memory::dims strides, kernel, pad_l, pad_r;
  dnnl::algorithm alg;
};

PoolGeometry PoolGeom(const TensorType& x, const TensorType& y,
                      const Attributes& attrs, bool max) {
  const std::vector<int64_t> size = IntListAttrOr(attrs, "pool_size", {2, 2});
  std::vector<int64_t> strides = IntListAttrOr(attrs, "strides", {});
  if (strides.empty()) strides = size;
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const int64_t oh = y.shape[1], ow = y.shape[2];
  PoolGeometry g;
  g.pad_l = {0, 0};
  g.pad_r = {0, 0};
  if (same) {
    auto [t, b] = SamePadding(h, oh, size[0], strides[0]);
    auto [l, r] = SamePadding(w, ow, size[1], strides[1]);
    g.pad_l = {t, l};
    g.pad_r = {b, r};
  } else {
    g.pad_r = {(oh - 1) * strides[0] + size[0] - h,
               (ow - 1) * strides[1] + size[1] - w};
  }
  const auto f32 = memory::data_type::f32;
  g.src = memory::desc({n, c, h, w}, f32, tag::nhwc);
  g.dst = memory::desc({n, c, oh, ow}, f32, tag::nhwc);
  g.strides = {strides[0], strides[1]};
  g.kernel = {size[0], size[1]};
  // Padding never counts: max ignores it, and the average divides by the
  // in-bounds count.
  g.alg = max ? dnnl::algorithm::pooling_max
              : dnnl::algorithm::pooling_avg_exclude_padding;
  return g;
}

dnnl::pooling_forward::primitive_desc PoolForwardPd(
    const PoolGeometry& g, bool training, const dnnl::primitive_attr& attr,
    const dnnl::engine& engine) {
  dnnl::pooling_forward::desc d(training ? dnnl::prop_kind::forward_training
                                         : dnnl::prop_kind::forward_inference,
                                g.alg, g.src, g.dst, g.strides, g.kernel,
                                g.pad_l, g.pad_r);
  return dnnl::pooling_forward::primitive_desc(d, attr, engine);
}

absl::Status Lowering::LowerPool2d(const Node& node, const Attributes& attrs,
                                   bool max) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const PoolGeometry g = PoolGeom(x, type(node.outputs[0]), attrs, max);
  // When the graph differentiates this max pooling, the forward keeps the
  // argmax workspace its backward reads (no second pass over x).
  auto ws = max ? pool_workspaces.find(node.outputs[0]) : pool_workspaces.end();
  const bool training = ws != pool_workspaces.end();
  auto pd = PoolForwardPd(g, training, Attr(), engine());
  std::vector<std::tuple<int, ValueId, memory::desc>> args = {
      {DNNL_ARG_SRC, node.inputs[0], g.src},
      {DNNL_ARG_DST, node.outputs[0], g.dst}};
  if (training) {
    ws->second = NewExtra(pd.workspace_desc().get_size());
    args.push_back({DNNL_ARG_WORKSPACE, ws->second, pd.workspace_desc()});
  }
  AddPrimitive(pd, dnnl::pooling_forward(pd), std::move(args));
  return absl::OkStatus();
}

absl::Status Lowering::LowerGlobalAvgPool2d(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const auto f32 = memory::data_type::f32;
  const memory::desc src({n, h, w, c}, f32, tag::abcd);
  const memory::desc dst({n, 1, 1, c}, f32, tag::abcd);
  dnnl::reduction::primitive_desc pd(
      dnnl::reduction::desc(dnnl::algorithm::reduction_mean, src, dst, 0.f,
                            0.f),
      Attr(), engine());
  AddPrimitive(pd, dnnl::reduction(pd),
               {{DNNL_ARG_SRC, node.inputs[0], src},
                {DNNL_ARG_DST, node.outputs[0], dst}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerBatchNorm(const Node& node,
                                      const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const bool training = BoolAttrOr(attrs, "training", false);
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-3);
  const double momentum = FloatAttrOr(attrs, "momentum", 0.99);
  const int64_t c = x.shape[x.shape.rank() - 1];
  const int64_t rows = c == 0 ? 0 : x.shape.NumElements() / c;
  const auto f32 = memory::data_type::f32;
  // Channels last: every other axis is one "batch" axis for oneDNN.
  const memory::desc data({rows, c}, f32, tag::nc);
  const memory::desc stat({c}, f32, tag::a);
  const ValueId gamma = node.inputs[1], beta = node.inputs[2],
                moving_mean = node.inputs[3], moving_var = node.inputs[4];
  const ValueId y = node.outputs[0], new_mean = node.outputs[1],
                new_var = node.outputs[2], saved_mean = node.outputs[3],
                saved_inv_std = node.outputs[4];
  auto flags = dnnl::normalization_flags::use_scale |
               dnnl::normalization_flags::use_shift;
  if (!training) flags = flags | dnnl::normalization_flags::use_global_stats;
  dnnl::batch_normalization_forward::desc d(
      training ? dnnl::prop_kind::forward_training
               : dnnl::prop_kind::forward_inference,
      data, static_cast<float>(epsilon), flags);
  dnnl::batch_normalization_forward::primitive_desc pd(d, Attr(), engine());
  // In training oneDNN writes the batch mean to saved_mean and the batch
  // variance to new_moving_var, which the statistics loop then turns into the
  // moving average.
  AddPrimitive(pd, dnnl::batch_normalization_forward(pd),
               {{DNNL_ARG_SRC, node.inputs[0], data},
                {DNNL_ARG_DST, y, data},
                {DNNL_ARG_SCALE, gamma, stat},
                {DNNL_ARG_SHIFT, beta, stat},
                {DNNL_ARG_MEAN, training ? saved_mean : moving_mean, stat},
                {DNNL_ARG_VARIANCE, training ? new_var : moving_var, stat}});
  AddLoop([=](const Pointers& ptr) {
    auto f = [&](ValueId v) { return reinterpret_cast<float*>(ptr[v]); };
    if (!training)
      std::memcpy(f(saved_mean), f(moving_mean), c * sizeof(float));
    BatchNormStatistics(training, c, epsilon, momentum, f(saved_mean),
                        training ? f(new_var) : f(moving_var), f(moving_mean),
                        f(moving_var), f(new_mean), f(new_var),
                        f(saved_inv_std));
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerLayerNorm(const Node& node,
                                      const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-3);
  const int64_t d = x.shape[x.shape.rank() - 1];
  const int64_t rows = d == 0 ? 0 : x.shape.NumElements() / d;
  const auto f32 = memory::data_type::f32;
  const memory::desc data({rows, d}, f32, tag::ab);
  const memory::desc stat({rows}, f32, tag::a);
  const memory::desc param({d}, f32, tag::a);
  dnnl::layer_normalization_forward::desc desc(
      dnnl::prop_kind::forward_training, data, stat,
      static_cast<float>(epsilon),
      dnnl::normalization_flags::use_scale |
          dnnl::normalization_flags::use_shift);
  dnnl::layer_normalization_forward::primitive_desc pd(desc, Attr(), engine());
  const ValueId inv_std = node.outputs[2];
  // The variance lands in saved_inv_std and becomes 1 / sqrt(var + epsilon) in
  // place.
  AddPrimitive(pd, dnnl::layer_normalization_forward(pd),
               {{DNNL_ARG_SRC, node.inputs[0], data},
                {DNNL_ARG_DST, node.outputs[0], data},
                {DNNL_ARG_SCALE, node.inputs[1], param},
                {DNNL_ARG_SHIFT, node.inputs[2], param},
                {DNNL_ARG_MEAN, node.outputs[1], stat},
                {DNNL_ARG_VARIANCE, inv_std, stat}});
  AddLoop([=](const Pointers& ptr) {
    InverseStd(reinterpret_cast<float*>(ptr[inv_std]), rows, epsilon);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerLoss(const Node& node, const Attributes& attrs,
                                 LossKind kind) {
  const TensorType& y_pred = type(node.inputs[1]);
  if (y_pred.dtype != DType::kF32 && y_pred.dtype != DType::kF64) {
    return Unsupported(
        node, absl::StrCat("has no ", DTypeName(y_pred.dtype), " version"));
  }
  const LossOperands o = LossOperandsOf(node, attrs, kind, /*weight_input=*/2);
  const ValueId out = node.outputs[0];
  if (o.SoftmaxOfLogits()) {
    // oneDNN's vectorized softmax, then one logarithm per row: the per-row
    // exponentials in double were most of a small model's loss time.
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(o.p));
    std::byte* probs = nullptr;
    AddSoftmax(o.p, NewExtra(desc.get_size(), &probs), desc, 1, /*log=*/false);
    softmax_of_logits_.emplace(o.p, probs);
    AddLoop([=](const Pointers& ptr) {
      return SparseCrossentropyFromProbs(
          o.Labels(ptr), reinterpret_cast<const float*>(probs),
          reinterpret_cast<const float*>(ptr[o.p]), o.Weights(ptr), o.batch,
          o.row_len, o.batch, reinterpret_cast<float*>(ptr[out]));
    });
    return absl::OkStatus();
  }
  AddLoop([=](const Pointers& ptr) {
    return Loss(o.params, o.Labels(ptr), o.Predictions(ptr), o.Weights(ptr),
                o.row_len, o.batch, ptr[out]);
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerMetric(const Node& node, const Attributes& attrs,
                                   MetricKind kind) {
  const TensorType& y_true = type(node.inputs[0]);
  const TensorType& y_pred = type(node.inputs[1]);
  if (y_pred.dtype != DType::kF32 && y_pred.dtype != DType::kF64) {
    return Unsupported(
        node, absl::StrCat("has no ", DTypeName(y_pred.dtype), " version"));
  }
  const int rank = y_pred.shape.rank();
  const int64_t row_len = rank >= 1 ? y_pred.shape[rank - 1] : 1;
  const double threshold = FloatAttrOr(attrs, "threshold", 0.5);
  const ValueId t = node.inputs[0], p = node.inputs[1], out = node.outputs[0];
  const ConstView tv{nullptr, y_true.dtype, y_true.shape.NumElements()};
  const ConstView pv{nullptr, y_pred.dtype, y_pred.shape.NumElements()};
  AddLoop([=](const Pointers& ptr) {
    ConstView a = tv, b = pv;
    a.data = ptr[t];
    b.data = ptr[p];
    Accuracy(kind, a, b, row_len, threshold,
             reinterpret_cast<float*>(ptr[out]));
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// The training graph's ops: backward, loss gradients, optimizer updates.

// oneDNN's eltwise backward from the saved output for `act`, when it has one.
std::optional<EltwiseStep> UseDstAlgorithm(const ops::Activation& act) {
  using dnnl::algorithm;
  const float alpha = static_cast<float>(act.alpha);
  switch (act.kind) {
    case ops::ActivationKind::kRelu:
      return EltwiseStep{algorithm::eltwise_relu_use_dst_for_bwd, 0.f, 0.f};
    case ops::ActivationKind::kLeakyRelu:
      if (!(act.alpha > 0)) return std::nullopt;
      return EltwiseStep{algorithm::eltwise_relu_use_dst_for_bwd, alpha, 0.f};
    case ops::ActivationKind::kElu:
      return EltwiseStep{algorithm::eltwise_elu_use_dst_for_bwd, alpha, 0.f};
    case ops::ActivationKind::kSigmoid:
      return EltwiseStep{algorithm::eltwise_logistic_use_dst_for_bwd, 0.f, 0.f};
    case ops::ActivationKind::kTanh:
      return EltwiseStep{algorithm::eltwise_tanh_use_dst_for_bwd, 0.f, 0.f};
    default:
      return std::nullopt;
  }
}

absl::Status ExpectFloat(const Node& node, const TensorType& t) {
  if (t.dtype == DType::kF32 || t.dtype == DType::kF64) return absl::OkStatus();
  return Unsupported(node,
                     absl::StrCat("has no ", DTypeName(t.dtype), " version"));
}

absl::Status Lowering::LowerActivationGrad(const Node& node,
                                           const Attributes& attrs,
                                           bool from_output) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dy));
  SEQUENT_ASSIGN_OR_RETURN(
      ops::Activation act,
      ops::BackwardActivation(attrs, /*from_output=*/false));
  const ValueId d = node.inputs[0], v = node.inputs[1], dx = node.outputs[0];
  std::optional<EltwiseStep> alg =
      from_output ? UseDstAlgorithm(act) : std::nullopt;
  if (dy.dtype == DType::kF32 && alg.has_value()) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(d));
    dnnl::eltwise_forward::primitive_desc hint(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg->alg,
                                    desc, alg->alpha, alg->beta),
        engine());
    dnnl::eltwise_backward::primitive_desc pd(
        dnnl::eltwise_backward::desc(alg->alg, desc, desc, alg->alpha,
                                     alg->beta),
        Attr(), engine(), hint);
    AddPrimitive(pd, dnnl::eltwise_backward(pd),
                 {{DNNL_ARG_DST, v, desc},
                  {DNNL_ARG_DIFF_DST, d, desc},
                  {DNNL_ARG_DIFF_SRC, dx, desc}});
    return absl::OkStatus();
  }
  const DType dtype = dy.dtype;
  const int64_t n = dy.shape.NumElements();
  AddLoop([=](const Pointers& ptr) {
    ActivationGrad(act, from_output, dtype, ptr[d], ptr[v], ptr[dx], n);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerActivationBiasGrad(const Node& node,
                                               const Attributes& attrs) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dy));
  SEQUENT_ASSIGN_OR_RETURN(
      ops::Activation act,
      ops::BackwardActivation(attrs, /*from_output=*/false));
  const int64_t c = type(node.outputs[1]).shape.NumElements();
  const int64_t rows = c == 0 ? 0 : dy.shape.NumElements() / c;
  const ValueId d = node.inputs[0], y = node.inputs[1], dz = node.outputs[0],
                db = node.outputs[1];
  const DType dtype = dy.dtype;
  AddLoop([=](const Pointers& ptr) {
    ActivationBiasGrad(act, dtype, ptr[d], ptr[y], ptr[dz], ptr[db], rows, c);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSoftmaxGrad(const Node& node,
                                        const Attributes& attrs, bool log) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dy));
  SEQUENT_ASSIGN_OR_RETURN(
      int axis, NormalizeAxis(IntAttrOr(attrs, "axis", -1), dy.shape.rank()));
  const ValueId d = node.inputs[0], y = node.inputs[1], dx = node.outputs[0];
  if (dy.dtype == DType::kF32) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(d));
    const auto prop = dnnl::prop_kind::forward_training;
    std::vector<std::tuple<int, ValueId, memory::desc>> args = {
        {DNNL_ARG_DST, y, desc},
        {DNNL_ARG_DIFF_DST, d, desc},
        {DNNL_ARG_DIFF_SRC, dx, desc}};
    if (log) {
      dnnl::logsoftmax_forward::primitive_desc hint(
          dnnl::logsoftmax_forward::desc(prop, desc, axis), engine());
      dnnl::logsoftmax_backward::primitive_desc pd(
          dnnl::logsoftmax_backward::desc(desc, desc, axis), Attr(), engine(),
          hint);
      AddPrimitive(pd, dnnl::logsoftmax_backward(pd), std::move(args));
    } else {
      dnnl::softmax_forward::primitive_desc hint(
          dnnl::softmax_forward::desc(prop, desc, axis), engine());
      dnnl::softmax_backward::primitive_desc pd(
          dnnl::softmax_backward::desc(desc, desc, axis), Attr(), engine(),
          hint);
      AddPrimitive(pd, dnnl::softmax_backward(pd), std::move(args));
    }
    return absl::OkStatus();
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= dy.shape[i];
  for (int i = axis + 1; i < dy.shape.rank(); ++i) inner *= dy.shape[i];
  const int64_t n = dy.shape[axis];
  const DType dtype = dy.dtype;
  AddLoop([=](const Pointers& ptr) {
    SoftmaxGrad(log, dtype, ptr[d], ptr[y], ptr[dx], outer, n, inner);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// Element strides of `from` (right-aligned, numpy broadcasting) per dimension
// of `to`: 0 where `from` has 1 or lacks the dimension.
std::vector<int64_t> BroadcastStridesOf(const Shape& from, const Shape& to) {
  const int rank = to.rank();
  const memory::dims fd = PadDims(from, std::max(rank, 1));
  std::vector<int64_t> s = RowMajorStrides(fd);
  for (int i = 0; i < static_cast<int>(fd.size()); ++i) {
    if (fd[i] == 1) s[i] = 0;
  }
  if (rank == 0) s.assign(0, 0);
  return s;
}

std::vector<int64_t> DimsOf(const Shape& shape) {
  return std::vector<int64_t>(shape.dims().begin(), shape.dims().end());
}

absl::Status Lowering::LowerBroadcastTo(const Node& node) {
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int64_t elem = static_cast<int64_t>(DTypeSize(type(in).dtype));
  const std::vector<int64_t> strides =
      BroadcastStridesOf(type(in).shape, type(out).shape);
  const std::vector<int64_t> dims = DimsOf(type(out).shape);
  AddLoop([=](const Pointers& ptr) {
    StridedCopy(elem, ptr[in], strides, ptr[out], dims);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerReduceToShape(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, x));
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int rank = std::max(1, x.shape.rank());
  const memory::dims src_dims = ToDnnlDims(x.shape);
  const memory::dims dst_dims = PadDims(type(out).shape, rank);
  if (x.dtype == DType::kF32) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(in));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, PlainDesc(dst_dims, x.dtype));
    if (src_dims == dst_dims) {
      AddReorder(in, src, out, dst);
      return absl::OkStatus();
    }
    dnnl::reduction::primitive_desc pd(
        dnnl::reduction::desc(dnnl::algorithm::reduction_sum, src, dst, 0.f,
                              0.f),
        Attr(), engine());
    AddPrimitive(pd, dnnl::reduction(pd),
                 {{DNNL_ARG_SRC, in, src}, {DNNL_ARG_DST, out, dst}});
    return absl::OkStatus();
  }
  std::vector<int64_t> out_strides = RowMajorStrides(dst_dims);
  for (int i = 0; i < rank; ++i) {
    if (dst_dims[i] == 1) out_strides[i] = 0;
  }
  const std::vector<int64_t> in_dims(src_dims.begin(), src_dims.end());
  const int64_t out_size = type(out).shape.NumElements();
  AddLoop([=](const Pointers& ptr) {
    ReduceToShapeF64(reinterpret_cast<const double*>(ptr[in]), out_strides,
                     in_dims, reinterpret_cast<double*>(ptr[out]), out_size);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerReduceMaxGrad(const Node& node,
                                          const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, x));
  const int rank = x.shape.rank();
  std::vector<bool> reduced(rank, false);
  const std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
  if (axes.empty()) reduced.assign(rank, true);
  for (int64_t a : axes) {
    SEQUENT_ASSIGN_OR_RETURN(int axis, NormalizeAxis(a, rank));
    reduced[axis] = true;
  }
  memory::dims keep(std::max(rank, 1), 1);
  for (int i = 0; i < rank; ++i) keep[i] = reduced[i] ? 1 : x.shape[i];
  std::vector<int64_t> strides = RowMajorStrides(keep);
  for (int i = 0; i < rank; ++i) {
    if (reduced[i]) strides[i] = 0;
  }
  if (rank == 0) strides.clear();
  const std::vector<int64_t> dims = DimsOf(x.shape);
  const int64_t y_size = type(node.inputs[1]).shape.NumElements();
  std::byte* ties = nullptr;
  NewExtra(y_size * static_cast<int64_t>(sizeof(int64_t)), &ties);
  const ValueId xv = node.inputs[0], y = node.inputs[1], dy = node.inputs[2],
                dx = node.outputs[0];
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    ReduceMaxGrad(dtype, ptr[xv], ptr[y], ptr[dy], ptr[dx], dims, strides,
                  y_size, reinterpret_cast<int64_t*>(ties));
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSliceGrad(const Node& node,
                                      const Attributes& attrs) {
  const std::vector<int64_t> begin = IntListAttrOr(attrs, "begin", {});
  const TensorType& dy = type(node.inputs[0]);
  const TensorType& dx = type(node.outputs[0]);
  if (static_cast<int>(begin.size()) != dy.shape.rank()) {
    return Unsupported(node, "got a begin that does not match the input rank");
  }
  const int64_t elem = static_cast<int64_t>(DTypeSize(dy.dtype));
  const std::vector<int64_t> dy_dims = DimsOf(dy.shape),
                             dx_dims = DimsOf(dx.shape);
  const ValueId in = node.inputs[0], out = node.outputs[0];
  AddLoop([=](const Pointers& ptr) {
    SliceGrad(elem, ptr[in], dy_dims, ptr[out], dx_dims, begin);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerMaximumGrad(const Node& node) {
  const TensorType& out = type(node.outputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, out));
  const ValueId x = node.inputs[0], y = node.inputs[1], d = node.inputs[2],
                dx = node.outputs[0], dy = node.outputs[1];
  const std::vector<int64_t> xs = BroadcastStridesOf(type(x).shape, out.shape);
  const std::vector<int64_t> ys = BroadcastStridesOf(type(y).shape, out.shape);
  const std::vector<int64_t> dims = DimsOf(out.shape);
  const DType dtype = out.dtype;
  AddLoop([=](const Pointers& ptr) {
    MaximumGrad(dtype, ptr[x], xs, ptr[y], ys, ptr[d], ptr[dx], ptr[dy], dims);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSign(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  if (x.dtype != DType::kF32 && x.dtype != DType::kF64 &&
      x.dtype != DType::kI32 && x.dtype != DType::kI64) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(x.dtype), " version"));
  }
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int64_t n = x.shape.NumElements();
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    Sign(dtype, ptr[in], ptr[out], n);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// The convolution geometry shared by conv2d and its two backward ops: x NHWC
// [n, h, w, c], kernel HWIO [kh, kw, c, o], y NHWC [n, oh, ow, o].
struct ConvGeometry {
  memory::desc src, weights, dst;
  memory::dims strides, dilations, pad_l, pad_r;
};

ConvGeometry ConvGeom(const Shape& x, const Shape& k, const Shape& y,
                      const Attributes& attrs,
                      memory::data_type dt = memory::data_type::f32) {
  const std::vector<int64_t> strides = IntListAttrOr(attrs, "strides", {1, 1});
  const std::vector<int64_t> dil = IntListAttrOr(attrs, "dilations", {1, 1});
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  const int64_t n = x[0], h = x[1], w = x[2], c = x[3];
  const int64_t kh = k[0], kw = k[1], o = k[3];
  const int64_t oh = y[1], ow = y[2];
  ConvGeometry g;
  g.pad_l = {0, 0};
  g.pad_r = {0, 0};
  if (same) {
    auto [t, b] = SamePadding(h, oh, (kh - 1) * dil[0] + 1, strides[0]);
    auto [l, r] = SamePadding(w, ow, (kw - 1) * dil[1] + 1, strides[1]);
    g.pad_l = {t, l};
    g.pad_r = {b, r};
  } else {
    g.pad_r = {(oh - 1) * strides[0] + (kh - 1) * dil[0] + 1 - h,
               (ow - 1) * strides[1] + (kw - 1) * dil[1] + 1 - w};
  }
  g.src = memory::desc({n, c, h, w}, dt, tag::nhwc);
  g.weights = memory::desc({o, c, kh, kw}, dt, tag::hwio);
  g.dst = memory::desc({n, o, oh, ow}, dt, tag::nhwc);
  g.strides = {strides[0], strides[1]};
  g.dilations = {dil[0] - 1, dil[1] - 1};
  return g;
}

absl::Status Lowering::LowerConv2dBackprop(const Node& node,
                                           const Attributes& attrs,
                                           bool filter) {
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(node.inputs[0])));
  // backprop_input: (dy, kernel) -> dx; backprop_filter: (x, dy) -> dkernel.
  const Shape& x =
      filter ? type(node.inputs[0]).shape : type(node.outputs[0]).shape;
  const Shape& k =
      filter ? type(node.outputs[0]).shape : type(node.inputs[1]).shape;
  const Shape& y =
      filter ? type(node.inputs[1]).shape : type(node.inputs[0]).shape;
  // `g` in the compute type (operands, and the forward hint), `f` in f32 (the
  // gradient written).
  // As a GEMM: output pixels x (window x input channels) -> output channels.
  const bool bf16 = Bf16Gemm(y[0] * y[1] * y[2], k[0] * k[1] * k[2], k[3]);
  const ConvGeometry g = ConvGeom(x, k, y, attrs, GemmType(bf16));
  const ConvGeometry f = ConvGeom(x, k, y, attrs);
  // The kernel (or its gradient) in the layout the primitive picks: the
  // input gradient reads it through ConvWeights, the filter gradient is
  // written there and reordered to HWIO.
  const memory::desc any_weights(g.weights.dims(), g.weights.data_type(),
                                 tag::any);
  const memory::desc any_diff_weights(f.weights.dims(), f.weights.data_type(),
                                      tag::any);
  const ValueId in0 = GemmOperand(node.inputs[0], bf16);
  const ValueId in1 =
      filter ? GemmOperand(node.inputs[1], bf16) : node.inputs[1];
  const auto alg = dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::primitive_desc hint(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg,
                                      g.src, any_weights, g.dst, g.strides,
                                      g.dilations, g.pad_l, g.pad_r),
      engine());
  // Writes the filter gradient `pd` produced into an extra buffer as HWIO.
  auto to_hwio = [&](const memory::desc& blocked, ValueId blocked_id) {
    AddReorder(blocked_id, blocked, node.outputs[0], f.weights);
    exe_.steps.back().kind =
        absl::StrCat("kernel gradient to HWIO: ", exe_.steps.back().kind);
  };
  if (filter && node.outputs.size() == 2) {
    // With the bias gradient (kConvBackwardWeightsOp).
    const memory::desc bias({k[3]}, memory::data_type::f32, tag::a);
    dnnl::convolution_backward_weights::primitive_desc pd(
        dnnl::convolution_backward_weights::desc(alg, g.src, any_diff_weights,
                                                 bias, g.dst, g.strides,
                                                 g.dilations, g.pad_l, g.pad_r),
        Attr(), engine(), hint);
    const memory::desc dw = pd.diff_weights_desc();
    const ValueId dw_id =
        dw == f.weights ? node.outputs[0] : NewExtra(dw.get_size());
    AddPrimitive(pd, dnnl::convolution_backward_weights(pd),
                 {{DNNL_ARG_SRC, in0, g.src},
                  {DNNL_ARG_DIFF_DST, in1, g.dst},
                  {DNNL_ARG_DIFF_WEIGHTS, dw_id, dw},
                  {DNNL_ARG_DIFF_BIAS, node.outputs[1], bias}});
    if (dw_id != node.outputs[0]) to_hwio(dw, dw_id);
  } else if (filter) {
    dnnl::convolution_backward_weights::primitive_desc pd(
        dnnl::convolution_backward_weights::desc(alg, g.src, any_diff_weights,
                                                 g.dst, g.strides, g.dilations,
                                                 g.pad_l, g.pad_r),
        Attr(), engine(), hint);
    const memory::desc dw = pd.diff_weights_desc();
    const ValueId dw_id =
        dw == f.weights ? node.outputs[0] : NewExtra(dw.get_size());
    AddPrimitive(pd, dnnl::convolution_backward_weights(pd),
                 {{DNNL_ARG_SRC, in0, g.src},
                  {DNNL_ARG_DIFF_DST, in1, g.dst},
                  {DNNL_ARG_DIFF_WEIGHTS, dw_id, dw}});
    if (dw_id != node.outputs[0]) to_hwio(dw, dw_id);
  } else {
    dnnl::convolution_backward_data::primitive_desc pd(
        dnnl::convolution_backward_data::desc(alg, f.src, any_weights, g.dst,
                                              g.strides, g.dilations, g.pad_l,
                                              g.pad_r),
        Attr(), engine(), hint);
    const ValueId k_id = ConvWeights(in1, f.weights, pd.weights_desc());
    AddPrimitive(pd, dnnl::convolution_backward_data(pd),
                 {{DNNL_ARG_DIFF_DST, in0, g.dst},
                  {DNNL_ARG_WEIGHTS, k_id, pd.weights_desc()},
                  {DNNL_ARG_DIFF_SRC, node.outputs[0], f.src}});
  }
  return absl::OkStatus();
}

absl::Status Lowering::LowerMaxPool2dGrad(const Node& node,
                                          const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const PoolGeometry g = PoolGeom(x, type(node.inputs[1]), attrs, true);
  auto hint = PoolForwardPd(g, /*training=*/true, Attr(), engine());
  ValueId workspace = kNoValue;
  if (auto it = pool_workspaces.find(node.inputs[1]);
      it != pool_workspaces.end() && it->second != kNoValue) {
    workspace = it->second;
  } else {
    // y does not come from a max_pool2d of x we lowered: recompute the
    // forward here for its workspace.
    workspace = NewExtra(hint.workspace_desc().get_size());
    const ValueId dst = NewExtra(g.dst.get_size());
    AddPrimitive(hint, dnnl::pooling_forward(hint),
                 {{DNNL_ARG_SRC, node.inputs[0], g.src},
                  {DNNL_ARG_DST, dst, g.dst},
                  {DNNL_ARG_WORKSPACE, workspace, hint.workspace_desc()}});
  }
  dnnl::pooling_backward::primitive_desc pd(
      dnnl::pooling_backward::desc(g.alg, g.src, g.dst, g.strides, g.kernel,
                                   g.pad_l, g.pad_r),
      Attr(), engine(), hint);
  AddPrimitive(pd, dnnl::pooling_backward(pd),
               {{DNNL_ARG_DIFF_DST, node.inputs[2], g.dst},
                {DNNL_ARG_WORKSPACE, workspace, hint.workspace_desc()},
                {DNNL_ARG_DIFF_SRC, node.outputs[0], g.src}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerAvgPool2dGrad(const Node& node,
                                          const Attributes& attrs) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, dy));
  const PoolGeometry g = PoolGeom(type(node.outputs[0]), dy, attrs, false);
  auto hint = PoolForwardPd(g, /*training=*/true, Attr(), engine());
  dnnl::pooling_backward::primitive_desc pd(
      dnnl::pooling_backward::desc(g.alg, g.src, g.dst, g.strides, g.kernel,
                                   g.pad_l, g.pad_r),
      Attr(), engine(), hint);
  AddPrimitive(pd, dnnl::pooling_backward(pd),
               {{DNNL_ARG_DIFF_DST, node.inputs[0], g.dst},
                {DNNL_ARG_DIFF_SRC, node.outputs[0], g.src}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerGlobalAvgPool2dGrad(const Node& node) {
  const TensorType& dx = type(node.outputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dx));
  const int64_t n = dx.shape[0], hw = dx.shape[1] * dx.shape[2],
                c = dx.shape[3];
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const DType dtype = dx.dtype;
  AddLoop([=](const Pointers& ptr) {
    GlobalAvgPoolGrad(dtype, ptr[in], ptr[out], n, hw, c);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerNormGrad(const Node& node, const Attributes& attrs,
                                     bool batch) {
  const TensorType& x = type(node.inputs[1]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const bool training = BoolAttrOr(attrs, "training", true);
  const int64_t c = x.shape[x.shape.rank() - 1];
  const int64_t rows = c == 0 ? 0 : x.shape.NumElements() / c;
  std::byte* scratch = nullptr;
  if (!batch) {
    NewExtra(2 * c * std::max(1, exe_.num_threads) *
                 static_cast<int64_t>(sizeof(double)),
             &scratch);
  }
  const ValueId dy = node.inputs[0], xv = node.inputs[1],
                gamma = node.inputs[2], mean = node.inputs[3],
                inv_std = node.inputs[4], dx = node.outputs[0],
                dgamma = node.outputs[1], dbeta = node.outputs[2];
  AddLoop([=](const Pointers& ptr) {
    auto f = [&](ValueId v) { return reinterpret_cast<float*>(ptr[v]); };
    if (batch) {
      BatchNormGrad(training, rows, c, f(dy), f(xv), f(gamma), f(mean),
                    f(inv_std), f(dx), f(dgamma), f(dbeta));
    } else {
      LayerNormGrad(rows, c, f(dy), f(xv), f(gamma), f(mean), f(inv_std), f(dx),
                    f(dgamma), f(dbeta), reinterpret_cast<double*>(scratch));
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerLossGrad(const Node& node, const Attributes& attrs,
                                     LossKind kind) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, type(node.inputs[1])));
  const LossOperands o = LossOperandsOf(node, attrs, kind, /*weight_input=*/3);
  const ValueId dl = node.inputs[2], out = node.outputs[0];
  const std::string op = node.op;
  if (o.SoftmaxOfLogits()) {
    // oneDNN's softmax straight into the gradient, then the label and scale
    // fixed in place.
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(o.p));
    if (auto it = softmax_of_logits_.find(o.p);
        it != softmax_of_logits_.end()) {
      // The loss, an earlier step, computed these probabilities already.
      const std::byte* probs = it->second;
      const size_t bytes = desc.get_size();
      AddLoop([=](const Pointers& ptr) {
        std::memcpy(ptr[out], probs, bytes);
        return SparseCrossentropyGradFromProbs(
            o.Labels(ptr), {ptr[dl], o.p_dtype, 1}, o.Weights(ptr), o.batch,
            o.row_len, o.batch, reinterpret_cast<float*>(ptr[out]));
      });
      return absl::OkStatus();
    }
    AddSoftmax(o.p, out, desc, 1, /*log=*/false);
    AddLoop([=](const Pointers& ptr) {
      return SparseCrossentropyGradFromProbs(
          o.Labels(ptr), {ptr[dl], o.p_dtype, 1}, o.Weights(ptr), o.batch,
          o.row_len, o.batch, reinterpret_cast<float*>(ptr[out]));
    });
    return absl::OkStatus();
  }
  std::byte* scratch = nullptr;
  NewExtra(3 * o.row_len * std::max(1, exe_.num_threads) *
               static_cast<int64_t>(sizeof(double)),
           &scratch);
  AddLoop([=](const Pointers& ptr) -> absl::Status {
    absl::Status s =
        LossGrad(o.params, o.Labels(ptr), o.Predictions(ptr),
                 {ptr[dl], o.p_dtype, 1}, o.Weights(ptr), o.row_len, o.batch,
                 ptr[out], reinterpret_cast<double*>(scratch));
    if (s.ok() || absl::StartsWith(s.message(), "[")) return s;
    return absl::Status(s.code(), absl::StrCat("[", op, "] ", s.message()));
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerUpdate(const Node& node, const Attributes& attrs,
                                   UpdateKind kind) {
  const TensorType& var = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, var));
  UpdateParams params;
  params.kind = kind;
  params.momentum = FloatAttrOr(attrs, "momentum", 0.0);
  params.nesterov = BoolAttrOr(attrs, "nesterov", false);
  params.beta_1 = FloatAttrOr(attrs, "beta_1", 0.9);
  params.beta_2 = FloatAttrOr(attrs, "beta_2", 0.999);
  params.epsilon = FloatAttrOr(attrs, "epsilon", 1e-7);
  params.weight_decay = FloatAttrOr(attrs, "weight_decay", 0.004);
  params.rho = FloatAttrOr(attrs, "rho", 0.9);
  const size_t num_slots = node.outputs.size() - 1;
  const ValueId v = node.inputs[0], g = node.inputs[1],
                lr = node.inputs[num_slots + 2],
                it = node.inputs[num_slots + 3], v_out = node.outputs[0];
  std::vector<ValueId> slots, slots_out;
  for (size_t s = 0; s < num_slots; ++s) {
    slots.push_back(node.inputs[2 + s]);
    slots_out.push_back(node.outputs[1 + s]);
  }
  const int64_t n = var.shape.NumElements();
  const DType dtype = var.dtype;
  // Pointer lists built once here and refilled per run (no allocation in
  // Run).
  auto slot_ptrs = std::make_shared<std::vector<const void*>>(num_slots);
  auto out_ptrs = std::make_shared<std::vector<void*>>(num_slots);
  // An update the planner writes in place into its variable changes the
  // variable here: its version entry (for bf16 copies) is bumped here, and
  // when the store holds a bf16 copy of it (allocated by any executable's
  // Compile) the update writes that too, in the same pass.
  CpuVariableStore::Shadow* shadow = nullptr;
  if (exe_.cpu_store != nullptr && dtype == DType::kF32 &&
      exe_.locations[v].kind == Location::Kind::kVariable) {
    const BufferAssignment& out = exe_.plan.buffers[v_out];
    if (out.kind == BufferAssignment::Kind::kVariable &&
        out.variable == exe_.locations[v].variable) {
      shadow = exe_.cpu_store->ShadowOf(out.variable);
      in_place_updates_.insert(v_out);
    }
  }
  AddLoop([=](const Pointers& ptr) {
    for (size_t s = 0; s < slots.size(); ++s) {
      (*slot_ptrs)[s] = ptr[slots[s]];
      (*out_ptrs)[s] = ptr[slots_out[s]];
    }
    uint16_t* copy =
        shadow != nullptr && shadow->copy != nullptr && shadow->n == n
            ? reinterpret_cast<uint16_t*>(shadow->copy.get())
            : nullptr;
    ApplyUpdate(params, dtype, n, ptr[v], ptr[g], *slot_ptrs, ptr[lr], ptr[it],
                ptr[v_out], *out_ptrs, copy);
    if (shadow != nullptr) {
      ++shadow->version;
      if (copy != nullptr) shadow->holds = shadow->version;
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerClip(const Node& node, const Attributes& attrs,
                                 bool norm) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, x));
  const double lo = FloatAttrOr(attrs, "min", 0.0);
  const double hi = FloatAttrOr(attrs, "max", 0.0);
  const double max_norm = FloatAttrOr(attrs, "max_norm", 0.0);
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int64_t n = x.shape.NumElements();
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    if (norm) {
      ClipByNorm(dtype, ptr[in], ptr[out], n, max_norm);
    } else {
      ClipByValue(dtype, ptr[in], ptr[out], n, lo, hi);
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// (x [M, K], dz [M, P]) -> (dW [K, P], db [P]), the faster of three
// formulations timed here (deterministic mode keeps the first):
//   - one oneDNN inner_product_backward_weights computing both, dW in the
//     forward kernel's `io` layout;
//   - a matmul x^T dz (x read through swapped strides) and our column sums;
//   - a matmul dz^T x into a scratch [P, K] plus a transposing reorder, and
//     the column sums: for thin layers (P = 5 of scikit-learn's nets) the
//     GEMM's long side is then K and it runs ~3x faster.
absl::Status Lowering::LowerDenseBackwardWeights(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& dz = type(node.inputs[1]);
  const int64_t m = x.shape[0], k = x.shape[1], p = dz.shape[1];
  const auto f32 = memory::data_type::f32;
  const bool bf16 = Bf16Gemm(k, m, p);
  const auto in = GemmType(bf16);
  const memory::desc src({m, k}, in, tag::ab);
  const memory::desc weights({p, k}, f32, tag::io);
  const memory::desc bias({p}, f32, tag::a);
  const memory::desc dst({m, p}, in, tag::ab);
  dnnl::inner_product_forward::primitive_desc hint(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training, src,
                                        memory::desc({p, k}, in, tag::io), bias,
                                        dst),
      engine());
  dnnl::inner_product_backward_weights::primitive_desc pd(
      dnnl::inner_product_backward_weights::desc(src, weights, bias, dst),
      Attr(), engine(), hint);
  dnnl::inner_product_backward_weights ip_primitive(pd);
  // The GEMM reads x and dz in the compute type; the column sums below read
  // dz itself (f32 in bf16 mode too).
  const ValueId x_id = GemmOperand(node.inputs[0], bf16);
  const ValueId dz_id = GemmOperand(node.inputs[1], bf16);
  const ValueId dz_f32 = node.inputs[1];
  const ValueId dw_id = node.outputs[0], db_id = node.outputs[1];

  const GemmChoice choice = GemmChoiceFromEnv();
  if (choice != GemmChoice::kInnerProduct) {
    const memory::desc x_t({k, m}, in, Dims({1, k}));
    const memory::desc dw({k, p}, f32, tag::ab);
    dnnl::matmul::primitive_desc direct(dnnl::matmul::desc(x_t, dst, dw),
                                        Attr(), engine());
    const memory::desc dz_t({p, m}, in, Dims({1, p}));
    const memory::desc dw_t({p, k}, f32, tag::ab);
    const memory::desc dw_as_t({p, k}, f32, Dims({1, p}));
    dnnl::matmul::primitive_desc transposed(dnnl::matmul::desc(dz_t, src, dw_t),
                                            Attr(), engine());
    dnnl::reorder::primitive_desc transpose(engine(), dw_t, engine(), dw_as_t,
                                            Attr());
    std::byte* sums_scratch = nullptr;
    NewExtra(p * std::max(1, exe_.num_threads) *
                 static_cast<int64_t>(sizeof(double)),
             &sums_scratch);
    auto* sums = reinterpret_cast<double*>(sums_scratch);
    enum {
      kIp,
      kDirect,
      kTransposed
    } pick = choice == GemmChoice::kTransposedMatmul ? kTransposed : kDirect;
    if (choice == GemmChoice::kAuto) {
      const std::string key =
          absl::StrCat("dense weight gradient ", m, "x", k, "x", p, " ",
                       static_cast<int>(in), " threads ", exe_.num_threads);
      pick = static_cast<decltype(pick)>(RememberedChoice(key, [&]() -> int {
        const double column_sums = TimeColumnSums(m, p, sums);
        const double ip_time = TimePrimitive(ip_primitive,
                                             {{DNNL_ARG_SRC, src},
                                              {DNNL_ARG_DIFF_DST, dst},
                                              {DNNL_ARG_DIFF_WEIGHTS, weights},
                                              {DNNL_ARG_DIFF_BIAS, bias}},
                                             pd.scratchpad_desc());
        const double direct_time = TimePrimitive(dnnl::matmul(direct),
                                                 {{DNNL_ARG_SRC, x_t},
                                                  {DNNL_ARG_WEIGHTS, dst},
                                                  {DNNL_ARG_DST, dw}},
                                                 direct.scratchpad_desc()) +
                                   column_sums;
        const double transposed_time =
            TimePrimitive(dnnl::matmul(transposed),
                          {{DNNL_ARG_SRC, dz_t},
                           {DNNL_ARG_WEIGHTS, src},
                           {DNNL_ARG_DST, dw_t}},
                          transposed.scratchpad_desc()) +
            TimePrimitive(dnnl::reorder(transpose),
                          {{DNNL_ARG_FROM, dw_t}, {DNNL_ARG_TO, dw_as_t}},
                          transpose.scratchpad_desc()) +
            column_sums;
        return ip_time <= std::min(direct_time, transposed_time) ? kIp
               : direct_time <= transposed_time                  ? kDirect
                                                                 : kTransposed;
      }));
    }
    if (pick != kIp) {
      if (pick == kDirect) {
        AddPrimitive(direct, dnnl::matmul(direct),
                     {{DNNL_ARG_SRC, x_id, x_t},
                      {DNNL_ARG_WEIGHTS, dz_id, dst},
                      {DNNL_ARG_DST, dw_id, dw}});
      } else {
        const ValueId scratch = NewExtra(dw_t.get_size());
        AddPrimitive(transposed, dnnl::matmul(transposed),
                     {{DNNL_ARG_SRC, dz_id, dz_t},
                      {DNNL_ARG_WEIGHTS, x_id, src},
                      {DNNL_ARG_DST, scratch, dw_t}});
        AddPrimitive(
            transpose, dnnl::reorder(transpose),
            {{DNNL_ARG_FROM, scratch, dw_t}, {DNNL_ARG_TO, dw_id, dw_as_t}});
      }
      AddLoop([=](const Pointers& ptr) {
        ColumnSums(DType::kF32, ptr[dz_f32], ptr[db_id], m, p, 1.0, sums);
        return absl::OkStatus();
      });
      return absl::OkStatus();
    }
  }
  AddPrimitive(pd, std::move(ip_primitive),
               {{DNNL_ARG_SRC, x_id, src},
                {DNNL_ARG_DIFF_DST, dz_id, dst},
                {DNNL_ARG_DIFF_WEIGHTS, dw_id, weights},
                {DNNL_ARG_DIFF_BIAS, db_id, bias}});
  return absl::OkStatus();
}

// The activation ops: the op name is the activation, with its own parameters as
// attributes.
absl::StatusOr<ops::Activation> ActivationOf(const Node& node,
                                             const Attributes& attrs) {
  SEQUENT_ASSIGN_OR_RETURN(ops::Activation act, ops::ParseActivation(node.op));
  act.alpha = FloatAttrOr(attrs, "alpha", act.alpha);
  act.approximate = BoolAttrOr(attrs, "approximate", act.approximate);
  return act;
}

absl::Status Lowering::LowerNode(const Node& node, const Attributes& attrs) {
  using dnnl::algorithm;
  const std::string& op = node.op;
  if (op == "dense") return LowerDense(node, attrs);
  if (op == "matmul") return LowerMatmul(node, attrs);
  if (op == "bias_add") {
    // x [..., C] + bias [C]: a binary add that broadcasts the bias.
    return LowerBinary(node, algorithm::binary_add, BinaryKind::kAdd);
  }
  if (op == "add")
    return LowerBinary(node, algorithm::binary_add, BinaryKind::kAdd);
  if (op == "sub")
    return LowerBinary(node, algorithm::binary_sub, BinaryKind::kSub);
  if (op == "mul")
    return LowerBinary(node, algorithm::binary_mul, BinaryKind::kMul);
  if (op == "div")
    return LowerBinary(node, algorithm::binary_div, BinaryKind::kDiv);
  if (op == "maximum")
    return LowerBinary(node, algorithm::binary_max, BinaryKind::kMax);

  static const auto* const kUnary =
      new absl::flat_hash_map<std::string, EltwiseStep>{
          {"neg", {algorithm::eltwise_linear, -1.f, 0.f}},
          {"exp", {algorithm::eltwise_exp, 0.f, 0.f}},
          {"log", {algorithm::eltwise_log, 0.f, 0.f}},
          {"sqrt", {algorithm::eltwise_sqrt, 0.f, 0.f}},
          {"square", {algorithm::eltwise_square, 0.f, 0.f}},
          {"abs", {algorithm::eltwise_abs, 0.f, 0.f}},
      };
  if (auto it = kUnary->find(op); it != kUnary->end()) {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(node.inputs[0])));
    return AddEltwiseChain(node.inputs[0], node.outputs[0], {it->second});
  }
  if (op == "relu" || op == "leaky_relu" || op == "elu" || op == "selu" ||
      op == "sigmoid" || op == "tanh" || op == "gelu" || op == "swish" ||
      op == "softplus") {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(node.inputs[0])));
    SEQUENT_ASSIGN_OR_RETURN(ops::Activation act, ActivationOf(node, attrs));
    return AddEltwiseChain(node.inputs[0], node.outputs[0], EltwiseChain(act));
  }
  if (op == "softmax") return LowerSoftmax(node, attrs, /*log=*/false);
  if (op == "log_softmax") return LowerSoftmax(node, attrs, /*log=*/true);
  if (op == "reduce_sum")
    return LowerReduce(node, attrs, algorithm::reduction_sum);
  if (op == "reduce_mean")
    return LowerReduce(node, attrs, algorithm::reduction_mean);
  if (op == "reduce_max")
    return LowerReduce(node, attrs, algorithm::reduction_max);
  if (op == "reshape" || op == "flatten") {
    // Row-major data is unchanged by a reshape: the output shares the input's
    // buffer.
    Alias(node.outputs[0], node.inputs[0]);
    return absl::OkStatus();
  }
  if (op == "transpose") return LowerTranspose(node, attrs);
  if (op == "concat") return LowerConcat(node, attrs);
  if (op == "cast") return LowerCast(node);
  if (op == "slice") return LowerSlice(node, attrs);
  if (op == "dropout") return LowerDropout(node, attrs);
  if (op == "conv2d") return LowerConv2d(node, attrs);
  if (op == "max_pool2d") return LowerPool2d(node, attrs, /*max=*/true);
  if (op == "avg_pool2d") return LowerPool2d(node, attrs, /*max=*/false);
  if (op == "global_avg_pool2d") return LowerGlobalAvgPool2d(node);
  if (op == "batch_norm") return LowerBatchNorm(node, attrs);
  if (op == "layer_norm") return LowerLayerNorm(node, attrs);
  static const auto* const kLosses =
      new absl::flat_hash_map<std::string, LossKind>{
          {"mse", LossKind::kMse},
          {"mae", LossKind::kMae},
          {"huber", LossKind::kHuber},
          {"binary_crossentropy", LossKind::kBinaryCrossentropy},
          {"categorical_crossentropy", LossKind::kCategoricalCrossentropy},
          {"sparse_categorical_crossentropy",
           LossKind::kSparseCategoricalCrossentropy},
      };
  if (auto it = kLosses->find(op); it != kLosses->end()) {
    return LowerLoss(node, attrs, it->second);
  }
  if (op == "sparse_categorical_accuracy") {
    return LowerMetric(node, attrs, MetricKind::kSparseCategoricalAccuracy);
  }
  if (op == "categorical_accuracy") {
    return LowerMetric(node, attrs, MetricKind::kCategoricalAccuracy);
  }
  if (op == "binary_accuracy")
    return LowerMetric(node, attrs, MetricKind::kBinaryAccuracy);
  // The training graph's ops.
  if (op == "activation_grad")
    return LowerActivationGrad(node, attrs, /*from_output=*/true);
  if (op == "activation_input_grad")
    return LowerActivationGrad(node, attrs, /*from_output=*/false);
  if (op == "activation_bias_grad") return LowerActivationBiasGrad(node, attrs);
  if (op == "softmax_grad") return LowerSoftmaxGrad(node, attrs, false);
  if (op == "log_softmax_grad") return LowerSoftmaxGrad(node, attrs, true);
  if (op == "broadcast_to") return LowerBroadcastTo(node);
  if (op == "reduce_to_shape") return LowerReduceToShape(node);
  if (op == "reduce_max_grad") return LowerReduceMaxGrad(node, attrs);
  if (op == "slice_grad") return LowerSliceGrad(node, attrs);
  if (op == "maximum_grad") return LowerMaximumGrad(node);
  if (op == "sign") return LowerSign(node);
  if (op == "conv2d_backprop_input")
    return LowerConv2dBackprop(node, attrs, /*filter=*/false);
  if (op == "conv2d_backprop_filter")
    return LowerConv2dBackprop(node, attrs, /*filter=*/true);
  if (op == "max_pool2d_grad") return LowerMaxPool2dGrad(node, attrs);
  if (op == "avg_pool2d_grad") return LowerAvgPool2dGrad(node, attrs);
  if (op == "global_avg_pool2d_grad") return LowerGlobalAvgPool2dGrad(node);
  if (op == "batch_norm_grad") return LowerNormGrad(node, attrs, true);
  if (op == "layer_norm_grad") return LowerNormGrad(node, attrs, false);
  if (absl::EndsWith(op, "_grad")) {
    const std::string loss = op.substr(0, op.size() - 5);
    if (auto it = kLosses->find(loss); it != kLosses->end())
      return LowerLossGrad(node, attrs, it->second);
  }
  static const auto* const kUpdates =
      new absl::flat_hash_map<std::string, UpdateKind>{
          {"sgd_update", UpdateKind::kSgd},
          {"momentum_update", UpdateKind::kMomentum},
          {"adam_update", UpdateKind::kAdam},
          {"adamw_update", UpdateKind::kAdamW},
          {"rmsprop_update", UpdateKind::kRmsprop},
          {"adagrad_update", UpdateKind::kAdagrad},
      };
  if (auto it = kUpdates->find(op); it != kUpdates->end())
    return LowerUpdate(node, attrs, it->second);
  if (op == "clip_by_value") return LowerClip(node, attrs, /*norm=*/false);
  if (op == "clip_by_norm") return LowerClip(node, attrs, /*norm=*/true);
  if (op == kDenseBackwardWeightsOp) return LowerDenseBackwardWeights(node);
  if (op == kConvBackwardWeightsOp)
    return LowerConv2dBackprop(node, attrs, /*filter=*/true);
  return absl::UnimplementedError(
      absl::StrCat("[", op, "] the cpu backend does not lower ", op, " yet"));
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

// Makes each dense layer's weight gradient matmul(x, dz, transpose_a) and its
// bias gradient (activation_bias_grad's second output beside dz, or
// reduce_sum(dz, axes=[0])) one kDenseBackwardWeightsOp node, which oneDNN
// runs as one inner_product_backward_weights. activation_bias_grad keeps dz
// only (an activation_grad, oneDNN's eltwise backward from the output).
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
  exe->num_threads = num_threads_ > 0 ? num_threads_ : omp_get_num_procs();
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

  cpu::Lowering lowering(*exe);
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
    // The backend's own nodes (RewriteDenseBackward) have no shape rule.
    auto inferred =
        (node.op == cpu::kDenseBackwardWeightsOp ||
         node.op == cpu::kConvBackwardWeightsOp)
            ? absl::StatusOr<std::vector<TensorType>>(
                  std::vector<TensorType>{lowered_graph.type(node.outputs[0]),
                                          lowered_graph.type(node.outputs[1])})
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
  exe->arena = cpu::AllocateAligned(exe->plan.arena_bytes);
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
