#ifndef SEQUENT_BACKENDS_CPU_LOWERING_H_
#define SEQUENT_BACKENDS_CPU_LOWERING_H_

// Lowering: one graph node at a time into the executable's schedule of oneDNN
// primitives and our loops. lowering.cc has the forward ops and the dispatch
// (LowerNode), lowering_backward.cc the training graph's ops. Internal to
// backends/cpu.

#include <atomic>
#include <cstdint>
#include <dnnl.hpp>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backends/cpu/cpu_executable.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/onednn_util.h"
#include "backends/cpu/owned_team.h"
#include "backends/cpu/train_kernels.h"
#include "backends/cpu/weight_layout.h"
#include "core/graph.h"
#include "ops/activation_fn.h"

namespace sequent::cpu {

// A formulation chosen by timing, remembered for the process by `key` (the
// GEMM's role, shape, types and thread count): compiling the same model
// twice (two fit runs, an executable per batch size) picks the same kernels,
// so results repeat run to run, and each shape is timed once.
int RememberedChoice(const std::string& key, const std::function<int()>& time);
// Best-of-5 seconds of `run`, after two warm-up runs, for choosing between
// equivalent formulations at Compile; best of 2 after one warm-up when a run
// takes over 0.5 ms.
double BestSeconds(const std::function<void()>& run);

// Set by CpuBackend::SetFixedKernelChoice (deterministic mode).
extern std::atomic<bool> fixed_kernel_choice;

// Helpers of the forward lowerings (lowering.cc) that the backward ones share.
absl::Status ExpectF32(const Node& node, const TensorType& t);
memory::dims Dims(std::initializer_list<int64_t> d);
// `shape` right-aligned to `rank` with leading 1s (numpy broadcasting).
memory::dims PadDims(const Shape& shape, int rank);
// TF/Keras "same" padding for one spatial dimension: the odd pixel goes at the
// end.
std::pair<int64_t, int64_t> SamePadding(int64_t in, int64_t out, int64_t window,
                                        int64_t stride);
// The oneDNN view of a pooling op: NHWC descriptors and the window geometry.
struct PoolGeometry {
  memory::desc src, dst;
  memory::dims strides, kernel, pad_l, pad_r;
  dnnl::algorithm alg;
};
PoolGeometry PoolGeom(const TensorType& x, const TensorType& y,
                      const Attributes& attrs, bool max);
dnnl::pooling_forward::primitive_desc PoolForwardPd(
    const PoolGeometry& g, bool training, const dnnl::primitive_attr& attr,
    const dnnl::engine& engine);
// The activation ops: the op name is the activation, with its own parameters
// as attributes (lowering_backward.cc).
absl::StatusOr<ops::Activation> ActivationOf(const Node& node,
                                             const Attributes& attrs);

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
      step.exec_args.push_back({arg, mem.get()});
    }
    // The implementation string (e.g. "x64:gemm:jit") does not say the types.
    if (reads_bf16) step.kind += " [bf16]";
    const memory::desc scratch = pd.scratchpad_desc();
    if (scratch.get_size() > 0) {
      scratchpad_bytes_ =
          std::max<int64_t>(scratchpad_bytes_, scratch.get_size());
      memory mem(scratch, engine(), DNNL_MEMORY_NONE);
      step.args.push_back({DNNL_ARG_SCRATCHPAD, mem, kScratchpad});
      step.exec_args.push_back({DNNL_ARG_SCRATCHPAD, mem.get()});
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
  // After the last LowerNode: allocates what the steps share.
  void Finish();

  // Lower dense layers with blocked kernels as owned layers (owned_team.h):
  // set for training graphs on two or more threads.
  bool owned_layers = false;
  // The graph being lowered, for who reads a value.
  const Graph* graph = nullptr;

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
  // `bytes` of the arena that no value holds while schedule step `step`
  // runs, for a copy made and consumed within that step (it adds nothing to
  // the memory the step touches, unlike an extra buffer); an extra buffer
  // when no such gap exists.
  ValueId ArenaScratch(int step, int64_t bytes);
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
  // which pays only when the dimensions are large enough: with a reduction or
  // columns under 16 (a 10-class output layer) oneDNN 2.6's bf16 GEMM plus
  // the conversions is slower than its f32 GEMM. Fewer than 16 rows pay only
  // where bf16 is native (the weights' bf16 copies are kept across runs):
  // the MLP's predict at batch 1 took 11 us in bf16 against 16 us in f32 on
  // AVX512-BF16, 21 against 18 us emulated.
  bool Bf16Gemm(int64_t m, int64_t k, int64_t n) const {
    constexpr int64_t kMinDim = 16;
    return exe_.bf16 && std::min(k, n) >= kMinDim &&
           (m >= kMinDim || exe_.bf16_native);
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
  // Values held in a blocked weights layout (weight_layout.h).
  absl::flat_hash_map<ValueId, CpuVariableStore::Layout> blocked_values;
  // The product of cpu.add_scaled's scalar factors in this run.
  static float ScaleOf(const Pointers& ptr,
                       const std::vector<ValueId>& scalars) {
    float scale = 1.f;
    for (ValueId s : scalars) scale *= *reinterpret_cast<const float*>(ptr[s]);
    return scale;
  }
  // cpu.add_scaled outputs g + s * w whose only reader is w's own update (an
  // L2 penalty's gradient added to w's gradient): the update adds the term
  // itself, in its pass over w, and the add_scaled step is not emitted.
  absl::flat_hash_set<ValueId> penalties_in_updates;
  const CpuVariableStore::Layout* BlockedLayout(ValueId v) const {
    auto it = blocked_values.find(v);
    return it == blocked_values.end() ? nullptr : &it->second;
  }

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

  // Owned layers (lowering_owned.cc). How a blocked kernel {OC, IC} splits
  // into the executable's threads' chunks of whole output blocks, each
  // contiguous; none when the layer is not owned.
  struct OwnedSplit {
    int64_t oc = 0, ic = 0, chunk = 0;
    memory::desc chunk_weights;  // {chunk, IC}, in the kernel's layout.
    int64_t chunk_weight_bytes = 0;
  };
  std::optional<OwnedSplit> OwnedSplitOf(ValueId blocked) const;
  // Whether every reader of `dz` [M, width] is an owned step that takes its
  // chunk as it is (an input or weight gradient of an owned layer).
  bool ReadersAreOwned(ValueId dz, int64_t width) const;
  // Whether v is a graph output or a variable's update: Run reads it from
  // its buffer after the steps.
  bool LeavesTheStep(ValueId v) const;
  // Where the activation gradient dz [M, width] is stored chunked, when it
  // is: its offset in the team's resident memory (recorded in
  // chunked_values_).
  std::optional<int64_t> ChunkedGradient(ValueId dz, int64_t width);
  std::optional<int64_t> ChunkedHome(ValueId v) const;
  // The activation_grad node that alone reads dx, over an owned forward's
  // output; null if none.
  const Node* OwnedActivationGradOf(ValueId dx) const;
  // dx's activation gradient, when it alone reads dx and runs over an owned
  // forward's output, computed by the owned step that produces dx, row by
  // row from its columns of dx (which is then never written): one pass less
  // over [M, width].
  struct FusedActivationGrad {
    ops::Activation act;
    ValueId y = kNoValue, out = kNoValue;
    int64_t width = 0;
    std::optional<int64_t> home;  // ChunkedGradient's.
    // Row r, columns [lo, hi) of chunk t, from that row of dx.
    void Compute(const OwnedTeam& team, const Pointers& ptr, int t, int64_t r,
                 int64_t lo, int64_t hi, const float* dx_row) const {
      float* row = home.has_value()
                       ? reinterpret_cast<float*>(team.resident(t) + *home) +
                             r * (hi - lo)
                       : reinterpret_cast<float*>(ptr[out]) + r * width + lo;
      ActivationGrad(act, /*from_output=*/true, DType::kF32, dx_row,
                     reinterpret_cast<const float*>(ptr[y]) + r * width + lo,
                     row, hi - lo);
    }
  };
  std::optional<FusedActivationGrad> FuseActivationGrad(ValueId dx);
  // Whether arena value v's buffer may be written from schedule step `step`
  // on, before the step the memory plan gave it: no other value lives in
  // its bytes in between, nor does an ArenaScratch copy.
  bool WritableFrom(ValueId v, int step) const;
  // A reader of chunked value v that ReadersAreOwned counted on but that
  // could not be lowered as owned after all (oneDNN offered only a reference
  // kernel) reads v's arena buffer: the chunks are copied into it first.
  void MaterializeChunked(ValueId v);
  std::shared_ptr<OwnedTeam> Team();
  void AddOwnedLoop(const std::string& impl,
                    std::function<absl::Status(const Pointers&)> loop);
  // Each returns false, having added nothing, where the op stays pooled.
  absl::StatusOr<bool> LowerOwnedDense(const Node& node,
                                       const dnnl::primitive_attr& attr,
                                       ValueId x_id, ValueId w_id,
                                       ValueId bias_id);
  absl::StatusOr<bool> LowerOwnedInputGradient(const Node& node);
  absl::StatusOr<bool> LowerOwnedWeightGradient(const Node& node);
  // A plain kernel W [IC, OC] over an owned layer's output (IC its owned
  // width, OC small: a classifier head): chunk t takes rows [lo, hi) of W,
  // the input columns it owns. The input gradient's columns then need no
  // sum (and its activation gradient is fused), the weight gradient's rows
  // are contiguous.
  absl::StatusOr<bool> LowerOwnedRowSplitInputGradient(const Node& node);
  absl::StatusOr<bool> LowerOwnedRowSplitWeightGradient(const Node& node);
  absl::StatusOr<bool> LowerOwnedActivationGrad(const Node& node,
                                                const ops::Activation& act);

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
  // Logits -> what a sparse crossentropy loss step wrote for them (an extra
  // buffer), which its gradient step reuses: their softmax, or (residual) the
  // softmax minus the labels' one-hot.
  struct SoftmaxForGradient {
    const float* data = nullptr;
    bool residual = false;
    // The labels and sample weights the residual was made with.
    ValueId labels = kNoValue, weights = kNoValue;
  };
  absl::flat_hash_map<ValueId, SoftmaxForGradient> softmax_of_logits_;
  // penalties_in_updates' values -> (g, the scalars of s).
  absl::flat_hash_map<ValueId, std::pair<ValueId, std::vector<ValueId>>>
      penalty_terms_;
  std::vector<std::tuple<ValueId, memory::desc, ValueId>> conv_weights_;
  std::shared_ptr<OwnedTeam> owned_team_;
  // Outputs of owned dense forwards.
  absl::flat_hash_set<ValueId> owned_outputs_;
  // Values [M, C] stored as T chunks, each row-major [M, C / T], chunk t in
  // the team's resident memory of chunk t at the offset mapped here (their
  // arena buffers are not written).
  absl::flat_hash_map<ValueId, int64_t> chunked_values_;
  // Activation gradients computed by the owned input gradient before them.
  absl::flat_hash_set<ValueId> fused_activation_grads_;
  // Of those, the ones written into their arena buffers from an earlier
  // schedule step than the plan's (WritableFrom): value -> that step.
  absl::flat_hash_map<ValueId, int> early_writes_;
  // ArenaScratch's grants: (schedule step, [begin, end) in the arena).
  std::vector<std::pair<int, std::pair<int64_t, int64_t>>> arena_scratch_;
  absl::flat_hash_set<ValueId> materialized_;  // MaterializeChunked's.

 public:
  // Update values an update step wrote in place into their variable (and
  // bumped its version); Run bumps the others' after copying them.
  absl::flat_hash_set<ValueId> in_place_updates_;
};

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_LOWERING_H_
