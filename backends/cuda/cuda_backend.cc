#include "backends/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backends/cuda/blaslt_matmul.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/cudnn_ops.h"
#include "backends/cuda/kernels.h"
#include "backends/feeds.h"
#include "core/initializers.h"
#include "core/memory_planner.h"
#include "core/status_macros.h"
#include "ops/activation_fn.h"
#include "ops/backward_activation.h"
#include "ops/random_hash.h"
#include "ops/registry.h"

namespace sequent {
namespace cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLASLt's workspace
constexpr int kSlots = 2;                             // feed double-buffering
// The most workspace one cuDNN convolution may ask for; the backend allocates
// the largest chosen one once.
constexpr size_t kMaxConvWorkspaceBytes = size_t{256} << 20;

absl::Status Unsupported(const Node& node, absl::string_view why) {
  return absl::UnimplementedError(
      absl::StrCat("[", node.op, "] the cuda backend ", why));
}

int64_t AlignUp(int64_t n, int64_t a = 256) { return (n + a - 1) / a * a; }

struct DeviceFree {
  void operator()(void* p) const {
    if (p != nullptr) cudaFree(p);
  }
};
using DeviceBuffer = std::unique_ptr<void, DeviceFree>;

absl::StatusOr<DeviceBuffer> DeviceAlloc(int64_t bytes) {
  void* p = nullptr;
  SEQUENT_CUDA_RETURN_IF_ERROR(
      cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 1))));
  return DeviceBuffer(p);
}

struct HostFree {
  void operator()(void* p) const {
    if (p != nullptr) cudaFreeHost(p);
  }
};
using PinnedBuffer = std::unique_ptr<void, HostFree>;

absl::StatusOr<PinnedBuffer> PinnedAlloc(int64_t bytes) {
  void* p = nullptr;
  SEQUENT_CUDA_RETURN_IF_ERROR(
      cudaHostAlloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 1)),
                    cudaHostAllocDefault));
  return PinnedBuffer(p);
}

}  // namespace

// ---------------------------------------------------------------------------
// Variables: one device allocation each, never moved or freed before the
// store, so executables keep raw pointers from Compile on.

class CudaVariableStore : public VariableStore {
 public:
  struct Var {
    TensorType type;
    DeviceBuffer data;
    // Bumped by every write (Write, and each Run of an executable that
    // updates the variable): bf16 copies held by executables record the
    // version they were made from.
    uint64_t version = 1;
  };

  bool Contains(absl::string_view name) const override {
    return vars_.find(name) != vars_.end();
  }
  absl::StatusOr<Tensor> Read(absl::string_view name) const override {
    auto it = vars_.find(name);
    if (it == vars_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no variable '", std::string(name), "' in the store"));
    }
    Tensor t(it->second.type);
    // Executables run on their own streams: wait for every pending step.
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    if (t.num_bytes() > 0) {
      SEQUENT_CUDA_RETURN_IF_ERROR(
          cudaMemcpy(t.raw_data(), it->second.data.get(), t.num_bytes(),
                     cudaMemcpyDeviceToHost));
    }
    return t;
  }
  absl::Status Write(absl::string_view name, const Tensor& value) override {
    auto it = vars_.find(name);
    if (it == vars_.end()) {
      SEQUENT_RETURN_IF_ERROR(CheckDevice());
      SEQUENT_ASSIGN_OR_RETURN(
          DeviceBuffer data,
          DeviceAlloc(static_cast<int64_t>(value.num_bytes())));
      it = vars_.emplace(std::string(name), Var{value.type(), std::move(data)})
               .first;
    } else if (it->second.type != value.type()) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable '", std::string(name), "' has type ",
                       it->second.type.ToString(), ", cannot write ",
                       value.type().ToString()));
    }
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    ++it->second.version;
    if (value.num_bytes() > 0) {
      SEQUENT_CUDA_RETURN_IF_ERROR(
          cudaMemcpy(it->second.data.get(), value.raw_data(), value.num_bytes(),
                     cudaMemcpyHostToDevice));
    }
    return absl::OkStatus();
  }
  void MarkWritten(absl::string_view name) {
    if (auto it = vars_.find(name); it != vars_.end()) ++it->second.version;
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    for (const auto& [name, var] : vars_) names.push_back(name);
    return names;
  }
  const Var* Find(absl::string_view name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, Var, std::less<>> vars_;
};

namespace {

// ---------------------------------------------------------------------------
// The schedule: host-side steps whose `launch` enqueues work on the stream
// (called once while capturing the CUDA graph, or every Run without graphs).

struct Ctx {
  std::vector<std::byte*> ptr;  // By ValueId.
  std::vector<std::byte*> extra;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  int* error_flag = nullptr;
  // cuDNN, when the graph has convolutions or batch norms: one handle on the
  // step's stream, one workspace for every convolution (sized by the
  // algorithms the prepare steps choose).
  cudnnHandle_t dnn = nullptr;
  void* dnn_workspace = nullptr;
  size_t dnn_workspace_bytes = 0;
  float* F(ValueId v) const { return reinterpret_cast<float*>(ptr[v]); }
};

struct Step {
  std::string label;
  // Device-side setup once pointers are bound (matmul algorithms, tables).
  std::function<absl::Status(Ctx&)> prepare;
  std::function<absl::Status(const Ctx&)> launch;
  // Runs once at Compile after every prepare, eagerly, writing only the
  // step's own scratch and intermediates: library calls that set themselves
  // up on first use (cuDNN) do so before the CUDA graph is captured.
  std::function<absl::Status(const Ctx&)> warmup;
  // What the step runs, once prepared (the chosen cuBLASLt call); may be
  // empty.
  std::function<std::string()> describe;
};

struct Location {
  enum class Kind { kArena, kVariable, kConstant, kAlias };
  Kind kind = Kind::kArena;
  int64_t offset = 0;
  ValueId alias_of = kNoValue;
  std::string variable;
};

absl::Status Launched(cudaError_t e, const char* what) {
  return FromCuda(e, what);
}

// The pointwise function of an activation (the forward or backward ops'
// attributes).
Pointwise ToPointwise(const ops::Activation& act) {
  using K = ops::ActivationKind;
  switch (act.kind) {
    case K::kLinear:
      return Pointwise::kIdentity;
    case K::kRelu:
      return Pointwise::kRelu;
    case K::kLeakyRelu:
      return Pointwise::kLeakyRelu;
    case K::kElu:
      return Pointwise::kElu;
    case K::kSelu:
      return Pointwise::kSelu;
    case K::kSigmoid:
      return Pointwise::kSigmoid;
    case K::kTanh:
      return Pointwise::kTanh;
    case K::kGelu:
      return act.approximate ? Pointwise::kGeluTanh : Pointwise::kGelu;
    case K::kSwish:
      return Pointwise::kSwish;
    case K::kSoftplus:
      return Pointwise::kSoftplus;
  }
  return Pointwise::kIdentity;
}

// A group of optimizer updates of one kind and hyperparameters, launched as
// one kernel at its last member's place in the schedule.
struct UpdateGroup {
  UpdateKind kind;
  UpdateHyper hyper;
  ValueId lr = kNoValue, iterations = kNoValue;
  struct Member {
    ValueId var, grad, slot0 = kNoValue, slot1 = kNoValue;
    ValueId var_out, slot0_out = kNoValue, slot1_out = kNoValue;
    int64_t n;
  };
  std::vector<Member> members;
  NodeId last = kNoNode;
  DeviceBuffer tensors, chunks;
  int64_t num_chunks = 0;
};

}  // namespace

class CudaExecutableImpl : public CudaExecutable {
 public:
  ~CudaExecutableImpl() override {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (cudaGraphExec_t& g : graph_exec_) {
      if (g != nullptr) cudaGraphExecDestroy(g);
    }
    for (int s = 0; s < kSlots; ++s) {
      if (copied_[s] != nullptr) cudaEventDestroy(copied_[s]);
      if (consumed_[s] != nullptr) cudaEventDestroy(consumed_[s]);
    }
    steps.clear();  // LtMatmul and cuDNN plans before the handles.
    if (ctx.lt != nullptr) cublasLtDestroy(ctx.lt);
    if (ctx.dnn != nullptr) cudnnDestroy(ctx.dnn);
    if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::Status Run(absl::Span<const Feed> feeds,
                   std::vector<Tensor>& outputs) override;
  absl::Status Prefetch(absl::Span<const Feed> feeds) override;
  std::vector<std::string> StepImplementations() const override {
    std::vector<std::string> lines;
    for (const WeightCopy& w : weight_copies) lines.push_back(w.label);
    for (const Step& step : steps) {
      const std::string what = step.describe ? step.describe() : "";
      lines.push_back(what.empty() ? step.label
                                   : absl::StrCat(step.label, ": ", what));
    }
    return lines;
  }
  const std::vector<std::string>& output_names() const override {
    return output_names_;
  }
  int64_t batch_size() const override { return batch_size_; }

  absl::Status Setup();  // Device phase of Compile.

  // Filled by Compile.
  bool use_graph = true;
  bool needs_cudnn = false;
  bool bf16 = false;  // CudaBackend::SetComputeDType(kBF16) at Compile.
  // The bf16 copies of variables that GEMMs read. Not converted inside the
  // step: Run converts one before launching the step only when the variable
  // changed since the copy was made (a Write, another executable's update,
  // an update of this one that did not rewrite the copy); the fused
  // optimizer rewrites the copy of each weight it updates in place.
  struct WeightCopy {
    std::string variable;
    std::string label;  // "to bf16 when changed: variable 'w' (for ...)"
    int extra = -1;
    int64_t n = 0;
    std::shared_ptr<bool> used;     // Some GEMM reads it (set at Compile).
    bool optimizer_writes = false;  // Set at Compile.
    uint64_t version = 0;           // Of the variable it holds; 0: none yet.
  };
  std::vector<WeightCopy> weight_copies;
  absl::flat_hash_map<ValueId, int> weight_copy_of;  // Value -> index.
  std::vector<NodeId> new_variables;  // Initialized at the device phase.
  int64_t batch_size_ = 0;
  Graph graph;  // Batch-bound, reshapes read through.
  MemoryPlan plan;
  std::vector<Location> locations;
  std::vector<Step> steps;
  std::vector<int64_t> extra_bytes;
  absl::flat_hash_map<ValueId, Tensor> constants;
  CudaVariableStore* store = nullptr;
  struct Input {
    std::string name;
    ValueId value;
    int64_t offset = 0;  // In the staging buffers.
    int64_t bytes = 0;
  };
  std::vector<Input> inputs;
  std::string expected_inputs;
  std::vector<ValueId> output_values;    // The buffers (reshapes read through).
  std::vector<TensorType> output_types;  // The graph's own output types.
  std::vector<std::string> output_names_;
  std::vector<int64_t> output_offsets;  // In the pinned output buffer.
  struct Update {
    ValueId value;
    std::string variable;
    int64_t staging = -1;  // Device staging offset when copied via staging.
    int64_t bytes = 0;
  };
  std::vector<Update> updates;
  std::vector<std::string> error_ops;  // Ops that may set the error flag.
  Ctx ctx;

 private:
  absl::StatusOr<std::vector<const Tensor*>> BindFeeds(
      absl::Span<const Feed> feeds) const;
  absl::StatusOr<int> Stage(const std::vector<const Tensor*>& fed);
  absl::Status Enqueue(int slot);  // The step's work, on stream_.

  cudaStream_t stream_ = nullptr, copy_stream_ = nullptr;
  DeviceBuffer arena_, extras_, staging_dev_[kSlots], update_staging_, misc_,
      dnn_workspace_;
  std::vector<DeviceBuffer> constant_buffers_;
  PinnedBuffer staging_host_[kSlots], outputs_host_;
  int64_t staging_bytes_ = 0, outputs_bytes_ = 0;
  cudaEvent_t copied_[kSlots] = {}, consumed_[kSlots] = {};
  cudaGraphExec_t graph_exec_[kSlots] = {};
  int next_slot_ = 0;
  std::deque<int> pending_;
};

absl::Status CudaExecutableImpl::Setup() {
  SEQUENT_RETURN_IF_ERROR(CheckDevice());
  SEQUENT_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  SEQUENT_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  for (int s = 0; s < kSlots; ++s) {
    SEQUENT_CUDA_RETURN_IF_ERROR(
        cudaEventCreateWithFlags(&copied_[s], cudaEventDisableTiming));
    SEQUENT_CUDA_RETURN_IF_ERROR(
        cudaEventCreateWithFlags(&consumed_[s], cudaEventDisableTiming));
  }
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&ctx.lt));
  ctx.stream = stream_;
  if (needs_cudnn) {
    SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnCreate(&ctx.dnn));
    SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnSetStream(ctx.dnn, stream_));
  }

  // One arena for every intermediate; the cuBLASLt workspace, the error flag
  // and the scratch buffers in a second allocation.
  SEQUENT_ASSIGN_OR_RETURN(arena_, DeviceAlloc(plan.arena_bytes));
  int64_t misc_bytes = AlignUp(static_cast<int64_t>(kWorkspaceBytes)) + 256;
  std::vector<int64_t> extra_offsets;
  for (int64_t b : extra_bytes) {
    extra_offsets.push_back(misc_bytes);
    misc_bytes += AlignUp(b);
  }
  SEQUENT_ASSIGN_OR_RETURN(misc_, DeviceAlloc(misc_bytes));
  auto* misc = static_cast<std::byte*>(misc_.get());
  ctx.workspace = misc;
  ctx.error_flag = reinterpret_cast<int*>(misc + AlignUp(kWorkspaceBytes));
  for (int64_t off : extra_offsets) ctx.extra.push_back(misc + off);

  for (auto& [v, t] : constants) {
    SEQUENT_ASSIGN_OR_RETURN(DeviceBuffer buf,
                             DeviceAlloc(static_cast<int64_t>(t.num_bytes())));
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaMemcpy(
        buf.get(), t.raw_data(), t.num_bytes(), cudaMemcpyHostToDevice));
    locations[v].offset = static_cast<int64_t>(constant_buffers_.size());
    constant_buffers_.push_back(std::move(buf));
  }
  std::function<std::byte*(ValueId)> resolve = [&](ValueId v) -> std::byte* {
    const Location& loc = locations[v];
    switch (loc.kind) {
      case Location::Kind::kArena:
        return static_cast<std::byte*>(arena_.get()) + loc.offset;
      case Location::Kind::kVariable: {
        const CudaVariableStore::Var* var = store->Find(loc.variable);
        return var == nullptr ? nullptr
                              : static_cast<std::byte*>(var->data.get());
      }
      case Location::Kind::kConstant:
        return static_cast<std::byte*>(constant_buffers_[loc.offset].get());
      case Location::Kind::kAlias:
        return resolve(loc.alias_of);
    }
    return nullptr;
  };
  ctx.ptr.assign(graph.num_values(), nullptr);
  for (NodeId id : plan.schedule) {
    for (ValueId v : graph.node(id).outputs) ctx.ptr[v] = resolve(v);
  }

  for (Input& in : inputs) {
    in.offset = staging_bytes_;
    in.bytes = plan.buffers[in.value].bytes;
    staging_bytes_ += AlignUp(in.bytes);
  }
  for (int s = 0; s < kSlots; ++s) {
    SEQUENT_ASSIGN_OR_RETURN(staging_dev_[s], DeviceAlloc(staging_bytes_));
    SEQUENT_ASSIGN_OR_RETURN(staging_host_[s], PinnedAlloc(staging_bytes_));
  }
  for (ValueId v : output_values) {
    output_offsets.push_back(outputs_bytes_);
    outputs_bytes_ += AlignUp(plan.buffers[v].bytes);
  }
  // The error flag is read back after the outputs.
  SEQUENT_ASSIGN_OR_RETURN(outputs_host_, PinnedAlloc(outputs_bytes_ + 256));
  int64_t update_staging_bytes = 0;
  for (Update& u : updates) {
    if (u.staging >= 0) {
      u.staging = update_staging_bytes;
      update_staging_bytes += AlignUp(u.bytes);
    }
  }
  SEQUENT_ASSIGN_OR_RETURN(update_staging_, DeviceAlloc(update_staging_bytes));

  for (Step& step : steps) {
    if (!step.prepare) continue;
    absl::Status s = step.prepare(ctx);
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat(step.label, ": ", s.message()));
    }
  }
  if (ctx.dnn_workspace_bytes > 0) {
    SEQUENT_ASSIGN_OR_RETURN(
        dnn_workspace_,
        DeviceAlloc(static_cast<int64_t>(ctx.dnn_workspace_bytes)));
    ctx.dnn_workspace = dnn_workspace_.get();
  }
  for (const Step& step : steps) {
    if (!step.warmup) continue;
    absl::Status s = step.warmup(ctx);
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat(step.label, ": ", s.message()));
    }
  }
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<const Tensor*>> CudaExecutableImpl::BindFeeds(
    absl::Span<const Feed> feeds) const {
  std::vector<const Tensor*> fed(inputs.size(), nullptr);
  SEQUENT_RETURN_IF_ERROR(MatchFeeds(
      feeds, [&](size_t i) -> const std::string& { return inputs[i].name; },
      [&](size_t i) -> const TensorType& {
        return graph.type(inputs[i].value);
      },
      expected_inputs, absl::MakeSpan(fed)));
  return fed;
}

absl::StatusOr<int> CudaExecutableImpl::Stage(
    const std::vector<const Tensor*>& fed) {
  const int slot = next_slot_;
  next_slot_ = (next_slot_ + 1) % kSlots;
  // The pinned slot is free once its previous upload finished.
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(copied_[slot]));
  auto* host = static_cast<std::byte*>(staging_host_[slot].get());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].bytes > 0) {
      std::memcpy(host + inputs[i].offset, fed[i]->raw_data(), inputs[i].bytes);
    }
  }
  // The device slot is free once the step that read it has started past its
  // feed copies; waiting for that step's end is simpler and still overlaps
  // the next batch's upload with the current step.
  SEQUENT_CUDA_RETURN_IF_ERROR(
      cudaStreamWaitEvent(copy_stream_, consumed_[slot], 0));
  if (staging_bytes_ > 0) {
    SEQUENT_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(staging_dev_[slot].get(), host, staging_bytes_,
                        cudaMemcpyHostToDevice, copy_stream_));
  }
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaEventRecord(copied_[slot], copy_stream_));
  return slot;
}

absl::Status CudaExecutableImpl::Prefetch(absl::Span<const Feed> feeds) {
  if (pending_.size() >= kSlots) {
    return absl::FailedPreconditionError(
        "two batches are already prefetched; Run one before prefetching more");
  }
  SEQUENT_ASSIGN_OR_RETURN(std::vector<const Tensor*> fed, BindFeeds(feeds));
  SEQUENT_ASSIGN_OR_RETURN(int slot, Stage(fed));
  pending_.push_back(slot);
  return absl::OkStatus();
}

absl::Status CudaExecutableImpl::Enqueue(int slot) {
  const cudaStream_t s = stream_;
  SEQUENT_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(ctx.error_flag, 0, sizeof(int), s));
  auto* staged = static_cast<std::byte*>(staging_dev_[slot].get());
  for (const Input& in : inputs) {
    if (in.bytes == 0) continue;
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(ctx.ptr[in.value],
                                                 staged + in.offset, in.bytes,
                                                 cudaMemcpyDeviceToDevice, s));
  }
  for (const Step& step : steps) {
    if (!step.launch) continue;
    absl::Status st = step.launch(ctx);
    if (!st.ok()) {
      return absl::Status(st.code(),
                          absl::StrCat(step.label, ": ", st.message()));
    }
  }
  auto* out_host = static_cast<std::byte*>(outputs_host_.get());
  for (size_t i = 0; i < output_values.size(); ++i) {
    const int64_t bytes = plan.buffers[output_values[i]].bytes;
    if (bytes == 0) continue;
    SEQUENT_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(out_host + output_offsets[i], ctx.ptr[output_values[i]],
                        bytes, cudaMemcpyDeviceToHost, s));
  }
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out_host + outputs_bytes_,
                                               ctx.error_flag, sizeof(int),
                                               cudaMemcpyDeviceToHost, s));
  // Updates not written in place: staged first when their value lives in
  // another variable (`a := b, b := a` must swap), then copied.
  auto* upd = static_cast<std::byte*>(update_staging_.get());
  for (const Update& u : updates) {
    if (u.staging >= 0 && u.bytes > 0) {
      SEQUENT_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(upd + u.staging, ctx.ptr[u.value], u.bytes,
                          cudaMemcpyDeviceToDevice, s));
    }
  }
  for (const Update& u : updates) {
    const CudaVariableStore::Var* var = store->Find(u.variable);
    const std::byte* src = u.staging >= 0 ? upd + u.staging : ctx.ptr[u.value];
    if (var == nullptr || u.bytes == 0 || src == var->data.get()) continue;
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(var->data.get(), src, u.bytes,
                                                 cudaMemcpyDeviceToDevice, s));
  }
  return absl::OkStatus();
}

absl::Status CudaExecutableImpl::Run(absl::Span<const Feed> feeds,
                                     std::vector<Tensor>& outputs) {
  int slot = 0;
  if (feeds.empty() && !pending_.empty()) {
    slot = pending_.front();
    pending_.pop_front();
  } else {
    if (!pending_.empty()) {
      return absl::FailedPreconditionError(
          "a prefetched batch is pending: call Run with no feeds to run it");
    }
    SEQUENT_ASSIGN_OR_RETURN(std::vector<const Tensor*> fed, BindFeeds(feeds));
    SEQUENT_ASSIGN_OR_RETURN(slot, Stage(fed));
  }
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(stream_, copied_[slot], 0));
  // Stale weight copies first, on the step's stream (outside the captured
  // graph, which reads them). Until the step has finished every copy counts
  // as stale, and the variables it updates count as written already, so a
  // failure leaves nothing that looks current.
  for (WeightCopy& w : weight_copies) {
    const CudaVariableStore::Var* var = store->Find(w.variable);
    if (*w.used && var != nullptr && w.version != var->version) {
      SEQUENT_RETURN_IF_ERROR(
          FromCuda(LaunchCast(CastType::kF32, CastType::kBF16, var->data.get(),
                              ctx.extra[w.extra], w.n, stream_),
                   "bf16 conversion kernel"));
    }
    w.version = 0;
  }
  for (const Update& u : updates) store->MarkWritten(u.variable);
  if (use_graph) {
    if (graph_exec_[slot] == nullptr) {
      SEQUENT_CUDA_RETURN_IF_ERROR(
          cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      absl::Status enqueued = Enqueue(slot);
      cudaGraph_t captured = nullptr;
      const cudaError_t ended = cudaStreamEndCapture(stream_, &captured);
      SEQUENT_RETURN_IF_ERROR(enqueued);
      SEQUENT_RETURN_IF_ERROR(FromCuda(ended, "cudaStreamEndCapture"));
      const cudaError_t inst =
          cudaGraphInstantiate(&graph_exec_[slot], captured, 0);
      cudaGraphDestroy(captured);
      SEQUENT_RETURN_IF_ERROR(FromCuda(inst, "cudaGraphInstantiate"));
    }
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(graph_exec_[slot], stream_));
  } else {
    SEQUENT_RETURN_IF_ERROR(Enqueue(slot));
  }
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaEventRecord(consumed_[slot], stream_));
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  for (WeightCopy& w : weight_copies) {
    bool updated = false;
    for (const Update& u : updates) updated |= u.variable == w.variable;
    const CudaVariableStore::Var* var = store->Find(w.variable);
    if (var != nullptr && (!updated || w.optimizer_writes))
      w.version = var->version;
  }

  const auto* out_host = static_cast<const std::byte*>(outputs_host_.get());
  int flag = 0;
  std::memcpy(&flag, out_host + outputs_bytes_, sizeof(int));
  if (flag != 0) {
    // The variable updates of this step already happened on the device, as
    // the reference backend would have stopped before them: say so.
    return absl::InvalidArgumentError(absl::StrCat(
        "[", absl::StrJoin(error_ops, ", "),
        "] a label is not a class index in [0, classes) (the cuda backend "
        "checks labels on the device; this step's updates were applied)"));
  }
  outputs.resize(output_values.size());
  for (size_t i = 0; i < output_values.size(); ++i) {
    const TensorType& type = output_types[i];
    if (!outputs[i].HasType(type) ||
        outputs[i].num_elements() != type.shape.NumElements()) {
      outputs[i] = Tensor(type);
    }
    if (outputs[i].num_bytes() > 0) {
      std::memcpy(outputs[i].raw_data(), out_host + output_offsets[i],
                  outputs[i].num_bytes());
    }
  }
  return absl::OkStatus();
}

namespace {

// ---------------------------------------------------------------------------
// Lowering: host only (no device calls), so unsupported graphs fail the same
// with or without a GPU.

class Lowering {
 public:
  Lowering(CudaExecutableImpl& exe) : exe_(exe), g_(exe.graph) {}

  // Reshapes are read through (their uses point at their input), so an input
  // of the current node may be stored with another shape: its type here is
  // the one the node was built with (same elements, same memory).
  const TensorType& type(ValueId v) const {
    if (shapes_ != nullptr && current_ != kNoNode) {
      const Node& now = g_.node(current_);
      const Node& built = shapes_->node(current_);
      for (size_t i = 0; i < now.inputs.size() && i < built.inputs.size();
           ++i) {
        if (now.inputs[i] == v) return shapes_->type(built.inputs[i]);
      }
    }
    return g_.type(v);
  }
  // The batch-bound graph before reshapes were read through.
  void set_shapes(const Graph* shapes) { shapes_ = shapes; }
  int64_t Numel(ValueId v) const { return type(v).shape.NumElements(); }

  void Add(std::function<absl::Status(const Ctx&)> launch,
           std::function<absl::Status(Ctx&)> prepare = nullptr) {
    exe_.steps.push_back({label_, std::move(prepare), std::move(launch)});
  }
  void SetWarmup(std::function<absl::Status(const Ctx&)> warmup) {
    exe_.steps.back().warmup = std::move(warmup);
  }
  int NewExtra(int64_t bytes) {
    exe_.extra_bytes.push_back(bytes);
    return static_cast<int>(exe_.extra_bytes.size()) - 1;
  }
  void set_label(std::string label) { label_ = std::move(label); }
  void set_node(NodeId id) { current_ = id; }

  // The bf16 copy of the f32 value `v` that bf16 GEMMs read: one buffer
  // (allocated at Compile) and one conversion step per value, placed before
  // the first GEMM that reads it and shared by every later one (values are
  // immutable: an in-place update of a variable comes after the last reader
  // of its old value, and the copy keeps that old value). The conversion
  // runs only when a GEMM reading it got a bf16 algorithm at Compile (`used`,
  // set by the GEMMs' prepare, which all run before any launch).
  struct Bf16Copy {
    int extra = -1;
    std::shared_ptr<bool> used;
  };
  Bf16Copy Bf16CopyOf(ValueId v);
  // The label of a GEMM step: " [bf16]" when it asks for bf16 operands.
  std::string GemmLabel() const {
    return exe_.bf16 ? absl::StrCat(label_, " [bf16]") : label_;
  }

  absl::Status ExpectF32(const Node& node, ValueId v) const {
    if (type(v).dtype == DType::kF32) return absl::OkStatus();
    return Unsupported(node, absl::StrCat("runs f32 only (no f64/bf16/f16 or "
                                          "integer math yet); got ",
                                          type(v).ToString()));
  }
  absl::Status ExpectAllF32(const Node& node) const {
    for (ValueId v : node.inputs) SEQUENT_RETURN_IF_ERROR(ExpectF32(node, v));
    for (ValueId v : node.outputs) SEQUENT_RETURN_IF_ERROR(ExpectF32(node, v));
    return absl::OkStatus();
  }
  absl::Status ExpectLabels(const Node& node, ValueId v) const {
    const DType d = type(v).dtype;
    if (d == DType::kI32 || d == DType::kI64) return absl::OkStatus();
    return Unsupported(node, absl::StrCat("takes i32 or i64 class labels; got ",
                                          type(v).ToString()));
  }

  absl::Status LowerNode(const Node& node, const Attributes& attrs);
  void AddUpdateGroup(std::shared_ptr<UpdateGroup> group);

  // Updates fused per group, keyed by node id of each member.
  absl::flat_hash_map<NodeId, std::shared_ptr<UpdateGroup>> update_groups;
  // Weight-gradient matmuls (xᵀ dz) that also write the bias gradient
  // (cuBLASLt's BGRADA epilogue), and the nodes whose bias gradient they take
  // over (a reduce_sum over the batch, or activation_bias_grad's second
  // output).
  absl::flat_hash_map<NodeId, ValueId> bias_grad_of_matmul;
  absl::flat_hash_set<NodeId> bias_grad_taken;

 private:
  absl::Status LowerDense(const Node& node, const Attributes& attrs);
  absl::Status LowerMatmul(const Node& node, const Attributes& attrs);
  absl::Status LowerBinary(const Node& node, Binary op);
  absl::Status LowerPointwise(const Node& node, Pointwise fn, float alpha);
  absl::Status LowerReduce(const Node& node, Reduce op,
                           const std::vector<bool>& reduced);
  absl::Status LowerLoss(const Node& node, const Attributes& attrs, bool grad);
  absl::Status LowerConv(const Node& node, const Attributes& attrs);
  absl::Status LowerPool(const Node& node, const Attributes& attrs);
  absl::Status LowerNorm(const Node& node, const Attributes& attrs);
  absl::Status LowerShapeOp(const Node& node, const Attributes& attrs);

  CudaExecutableImpl& exe_;
  const Graph& g_;
  const Graph* shapes_ = nullptr;
  std::string label_;
  NodeId current_ = kNoNode;
  absl::flat_hash_map<ValueId, Bf16Copy> bf16_copies_;
};

Lowering::Bf16Copy Lowering::Bf16CopyOf(ValueId v) {
  if (auto it = bf16_copies_.find(v); it != bf16_copies_.end())
    return it->second;
  const int64_t n = Numel(v);
  const Bf16Copy copy{NewExtra(n * 2), std::make_shared<bool>(false)};
  bf16_copies_.emplace(v, copy);
  if (g_.producer(v).op == kVariableOp &&
      exe_.locations[v].kind == Location::Kind::kVariable) {
    const std::string& name = exe_.locations[v].variable;
    exe_.weight_copy_of[v] = static_cast<int>(exe_.weight_copies.size());
    exe_.weight_copies.push_back(
        {name,
         absl::StrCat("to bf16 when changed: variable '", name, "' (for ",
                      label_, ")"),
         copy.extra, n, copy.used});
    return copy;
  }
  exe_.steps.push_back(
      {absl::StrCat("to bf16 for ", label_), nullptr,
       [v, n, copy](const Ctx& c) -> absl::Status {
         if (!*copy.used) return absl::OkStatus();
         return Launched(LaunchCast(CastType::kF32, CastType::kBF16, c.ptr[v],
                                    c.extra[copy.extra], n, c.stream),
                         "bf16 conversion kernel");
       }});
  return copy;
}

// The first of `shape` (its epilogue), `plain` (a simpler epilogue, when it
// differs) for which cuBLASLt has an algorithm: with bf16 inputs first when
// `bf16`, then in f32.
absl::StatusOr<std::unique_ptr<LtMatmul>> ChooseMatmul(cublasLtHandle_t lt,
                                                       LtMatmulShape shape,
                                                       LtMatmulShape plain,
                                                       bool bf16) {
  std::vector<LtMatmulShape> candidates;
  for (bool in_bf16 : {true, false}) {
    if (in_bf16 && !bf16) continue;
    shape.bf16_inputs = plain.bf16_inputs = in_bf16;
    candidates.push_back(shape);
    if (plain.epilogue != shape.epilogue) candidates.push_back(plain);
  }
  absl::Status last;
  for (const LtMatmulShape& s : candidates) {
    auto mm = LtMatmul::Create(lt, s, kWorkspaceBytes);
    if (mm.ok()) return mm;
    last = mm.status();
  }
  return last;
}

absl::StatusOr<BroadcastShape> MakeBroadcast(const Shape& out, const Shape& x,
                                             const Shape& y) {
  BroadcastShape s;
  if (out.rank() > kMaxRank) {
    return absl::UnimplementedError(absl::StrCat(
        "rank ", out.rank(), " > ", kMaxRank, " is not supported"));
  }
  s.rank = out.rank();
  auto strides = [&](const Shape& in, int64_t* dst) {
    int64_t stride = 1;
    for (int d = out.rank() - 1, k = in.rank() - 1; d >= 0; --d, --k) {
      s.dims[d] = out[d];
      if (k < 0) {
        dst[d] = 0;
        continue;
      }
      dst[d] = in[k] == 1 && out[d] != 1 ? 0 : stride;
      stride *= in[k];
    }
  };
  strides(x, s.x_strides);
  strides(y, s.y_strides);
  return s;
}

absl::Status Lowering::LowerBinary(const Node& node, Binary op) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  const ValueId x = node.inputs[0], y = node.inputs[1], out = node.outputs[0];
  SEQUENT_ASSIGN_OR_RETURN(
      BroadcastShape s,
      MakeBroadcast(type(out).shape, type(x).shape, type(y).shape));
  const int64_t n = Numel(out);
  Add([=](const Ctx& c) {
    return Launched(LaunchBinary(op, c.F(x), c.F(y), c.F(out), s, n, c.stream),
                    "binary kernel");
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerPointwise(const Node& node, Pointwise fn,
                                      float alpha) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  const ValueId x = node.inputs[0], y = node.outputs[0];
  const int64_t n = Numel(y);
  Add([=](const Ctx& c) {
    return Launched(LaunchPointwise(fn, alpha, c.F(x), c.F(y), n, c.stream),
                    "pointwise kernel");
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerReduce(const Node& node, Reduce op,
                                   const std::vector<bool>& reduced) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  const ValueId x = node.inputs[0], out = node.outputs[0];
  const Shape& in = type(x).shape;
  if (in.rank() > kMaxRank) {
    return Unsupported(node, absl::StrCat("reduces rank <= ", kMaxRank));
  }
  ReduceShape s;
  std::vector<int64_t> strides(in.rank(), 1);
  for (int d = in.rank() - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * in[d + 1];
  bool leading = true;  // reduced axes are a prefix: a column sum
  bool seen_kept = false;
  for (int d = 0; d < in.rank(); ++d) {
    if (reduced[d]) {
      s.reduced_dims[s.reduced_rank] = in[d];
      s.reduced_strides[s.reduced_rank++] = strides[d];
      s.reduced_count *= in[d];
      if (seen_kept) leading = false;
    } else {
      s.kept_dims[s.kept_rank] = in[d];
      s.kept_strides[s.kept_rank++] = strides[d];
      seen_kept = true;
    }
  }
  const int64_t out_n = Numel(out);
  if (op == Reduce::kSum && leading && out_n > 1) {
    const int64_t rows = s.reduced_count;
    const int64_t chunks = ColumnSumChunks(rows, out_n);
    const int scratch = chunks > 1 ? NewExtra(chunks * out_n * 4) : -1;
    Add([=](const Ctx& c) {
      return Launched(
          LaunchColumnSumChunked(
              c.F(x), c.F(out), rows, out_n,
              scratch < 0 ? nullptr
                          : reinterpret_cast<float*>(c.extra[scratch]),
              chunks, c.stream),
          "column sum kernel");
    });
    return absl::OkStatus();
  }
  Add([=](const Ctx& c) {
    return Launched(LaunchReduce(op, c.F(x), c.F(out), s, out_n, c.stream),
                    "reduce kernel");
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerDense(const Node& node, const Attributes& attrs) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  SEQUENT_ASSIGN_OR_RETURN(
      ops::Activation act,
      ops::ParseActivation(StringAttrOr(attrs, "activation", "linear")));
  const ValueId x = node.inputs[0], w = node.inputs[1], y = node.outputs[0];
  const ValueId b = node.inputs.size() > 2 ? node.inputs[2] : kNoValue;
  const Shape& ws = type(w).shape;
  LtMatmulShape shape;
  shape.k = ws[0];
  shape.n = ws[1];
  shape.m = shape.k == 0 ? 0 : Numel(x) / shape.k;
  const bool bias = b != kNoValue;
  std::optional<Pointwise> after;
  if (act.kind == ops::ActivationKind::kLinear) {
    shape.epilogue = bias ? Epilogue::kBias : Epilogue::kNone;
  } else if (act.kind == ops::ActivationKind::kRelu) {
    shape.epilogue = bias ? Epilogue::kReluBias : Epilogue::kRelu;
  } else if (act.kind == ops::ActivationKind::kGelu && act.approximate) {
    // cuBLASLt's GELU is the tanh approximation, so exact gelu stays a kernel.
    shape.epilogue = bias ? Epilogue::kGeluBias : Epilogue::kGelu;
  } else {
    shape.epilogue = bias ? Epilogue::kBias : Epilogue::kNone;
    after = ToPointwise(act);
  }
  if (shape.m == 0 || shape.n == 0) {
    return Unsupported(node, "does not run empty matmuls");
  }
  // The epilogue's activation, should cuBLASLt offer no algorithm with it,
  // becomes a kernel over a BIAS-epilogue GEMM (decided once, at Compile).
  struct DensePlan {
    std::unique_ptr<LtMatmul> matmul;
    std::optional<Pointwise> after;
  };
  auto plan = std::make_shared<DensePlan>();
  plan->after = after;
  const Pointwise fused_fn = ToPointwise(act);
  const float alpha = static_cast<float>(act.alpha);
  const int64_t n = Numel(y);
  const bool bf16 = exe_.bf16;
  const Bf16Copy xc = bf16 ? Bf16CopyOf(x) : Bf16Copy{};
  const Bf16Copy wc = bf16 ? Bf16CopyOf(w) : Bf16Copy{};
  LtMatmulShape plain = shape;
  plain.epilogue = bias ? Epilogue::kBias : Epilogue::kNone;
  const std::string label = GemmLabel();
  Add(
      [=](const Ctx& c) -> absl::Status {
        const bool in_bf16 = plan->matmul->bf16_inputs();
        SEQUENT_RETURN_IF_ERROR(plan->matmul->Run(
            c.lt, in_bf16 ? c.extra[xc.extra] : c.ptr[x],
            in_bf16 ? c.extra[wc.extra] : c.ptr[w], bias ? c.F(b) : nullptr,
            c.F(y), c.workspace, c.stream));
        if (plan->after) {
          return Launched(
              LaunchPointwise(*plan->after, alpha, c.F(y), c.F(y), n, c.stream),
              "activation kernel");
        }
        return absl::OkStatus();
      },
      [=](Ctx& c) -> absl::Status {
        // With the activation in the epilogue, `plain` (bias only) + our
        // kernel is the fallback; otherwise plain is the shape itself.
        SEQUENT_ASSIGN_OR_RETURN(plan->matmul,
                                 ChooseMatmul(c.lt, shape, plain, bf16));
        if (plan->matmul->epilogue() != shape.epilogue) plan->after = fused_fn;
        if (plan->matmul->bf16_inputs()) *xc.used = *wc.used = true;
        return absl::OkStatus();
      });
  exe_.steps.back().label = label;
  exe_.steps.back().describe = [plan] {
    return plan->matmul ? plan->matmul->description() : std::string();
  };
  return absl::OkStatus();
}

absl::Status Lowering::LowerMatmul(const Node& node, const Attributes& attrs) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  const ValueId a = node.inputs[0], b = node.inputs[1], out = node.outputs[0];
  if (type(a).shape.rank() != 2 || type(b).shape.rank() != 2) {
    return Unsupported(
        node, absl::StrCat("runs 2-D matmuls only; got ", type(a).ToString(),
                           " x ", type(b).ToString()));
  }
  LtMatmulShape shape;
  shape.transpose_a = BoolAttrOr(attrs, "transpose_a", false);
  shape.transpose_b = BoolAttrOr(attrs, "transpose_b", false);
  shape.m = type(out).shape[0];
  shape.n = type(out).shape[1];
  shape.k = shape.transpose_a ? type(a).shape[0] : type(a).shape[1];
  if (shape.m == 0 || shape.n == 0 || shape.k == 0) {
    return Unsupported(node, "does not run empty matmuls");
  }
  ValueId db = kNoValue;
  if (auto it = bias_grad_of_matmul.find(current_);
      it != bias_grad_of_matmul.end()) {
    db = it->second;
    shape.epilogue = Epilogue::kBGradA;
  }
  struct MatmulPlan {
    std::unique_ptr<LtMatmul> matmul;
    bool column_sum = false;  // BGRADA unavailable: our kernel instead.
  };
  auto plan = std::make_shared<MatmulPlan>();
  const bool bf16 = exe_.bf16;
  const Bf16Copy ac = bf16 ? Bf16CopyOf(a) : Bf16Copy{};
  const Bf16Copy bc = bf16 ? Bf16CopyOf(b) : Bf16Copy{};
  LtMatmulShape plain = shape;
  plain.epilogue = Epilogue::kNone;
  const std::string label = GemmLabel();
  Add(
      [=](const Ctx& c) -> absl::Status {
        const bool in_bf16 = plan->matmul->bf16_inputs();
        SEQUENT_RETURN_IF_ERROR(plan->matmul->Run(
            c.lt, in_bf16 ? c.extra[ac.extra] : c.ptr[a],
            in_bf16 ? c.extra[bc.extra] : c.ptr[b],
            db != kNoValue && !plan->column_sum ? c.F(db) : nullptr, c.F(out),
            c.workspace, c.stream));
        if (!plan->column_sum) return absl::OkStatus();
        return Launched(
            LaunchColumnSum(c.F(b), c.F(db), shape.k, shape.n, c.stream),
            "bias gradient kernel");
      },
      [=](Ctx& c) -> absl::Status {
        SEQUENT_ASSIGN_OR_RETURN(plan->matmul,
                                 ChooseMatmul(c.lt, shape, plain, bf16));
        // No BGRADA algorithm: the bias gradient from the f32 dz by our
        // column sum.
        plan->column_sum = plan->matmul->epilogue() != shape.epilogue;
        if (plan->matmul->bf16_inputs()) *ac.used = *bc.used = true;
        return absl::OkStatus();
      });
  exe_.steps.back().label = label;
  exe_.steps.back().describe = [plan] {
    return plan->matmul ? plan->matmul->description() : std::string();
  };
  return absl::OkStatus();
}

absl::Status Lowering::LowerLoss(const Node& node, const Attributes& attrs,
                                 bool grad) {
  std::string op = node.op;
  if (grad) op = op.substr(0, op.size() - 5);
  const ValueId y_true = node.inputs[0], pred = node.inputs[1];
  const ValueId dloss = grad ? node.inputs[2] : kNoValue;
  const size_t weight_index = grad ? 3 : 2;
  const ValueId weight =
      node.inputs.size() > weight_index ? node.inputs[weight_index] : kNoValue;
  const ValueId out = node.outputs[0];
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, pred));
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, out));
  if (weight != kNoValue) SEQUENT_RETURN_IF_ERROR(ExpectF32(node, weight));
  if (dloss != kNoValue) SEQUENT_RETURN_IF_ERROR(ExpectF32(node, dloss));
  const Shape& ps = type(pred).shape;
  const int64_t batch = ps.rank() > 0 ? ps[0] : 1;
  const int64_t weights_n = weight == kNoValue ? 0 : Numel(weight);
  if (op == "sparse_categorical_crossentropy") {
    SEQUENT_RETURN_IF_ERROR(ExpectLabels(node, y_true));
    SparseCeArgs a;
    a.labels_i64 = type(y_true).dtype == DType::kI64;
    a.classes = ps[ps.rank() - 1];
    a.rows = a.classes == 0 ? 0 : Numel(pred) / a.classes;
    a.rows_per_sample = batch == 0 ? 1 : std::max<int64_t>(a.rows / batch, 1);
    a.weights_n = weights_n;
    a.from_logits = BoolAttrOr(attrs, "from_logits", false);
    exe_.error_ops.push_back(node.op);
    Add([=](const Ctx& c) {
      SparseCeArgs args = a;
      args.labels = c.ptr[y_true];
      args.pred = c.F(pred);
      args.weights = weight == kNoValue ? nullptr : c.F(weight);
      args.error_flag = c.error_flag;
      return grad ? Launched(LaunchSparseCeGrad(args, c.F(dloss), c.F(out),
                                                c.stream),
                             "sparse cross-entropy gradient kernel")
                  : Launched(LaunchSparseCe(args, c.F(out), c.stream),
                             "sparse cross-entropy kernel");
    });
    return absl::OkStatus();
  }
  if (op == "categorical_crossentropy") {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, y_true));
    if (type(y_true).shape != ps || ps.rank() < 1) {
      return Unsupported(node, "needs y_true with y_pred's shape");
    }
    CategoricalCeArgs a;
    a.classes = ps[ps.rank() - 1];
    a.rows = a.classes == 0 ? 0 : Numel(pred) / a.classes;
    a.rows_per_sample = batch == 0 ? 1 : std::max<int64_t>(a.rows / batch, 1);
    a.weights_n = weights_n;
    a.from_logits = BoolAttrOr(attrs, "from_logits", false);
    a.smoothing = FloatAttrOr(attrs, "label_smoothing", 0.0);
    Add([=](const Ctx& c) {
      CategoricalCeArgs args = a;
      args.y_true = c.F(y_true);
      args.pred = c.F(pred);
      args.weights = weight == kNoValue ? nullptr : c.F(weight);
      return grad ? Launched(LaunchCategoricalCeGrad(args, c.F(dloss), c.F(out),
                                                     c.stream),
                             "cross-entropy gradient kernel")
                  : Launched(LaunchCategoricalCe(args, c.F(out), c.stream),
                             "cross-entropy kernel");
    });
    return absl::OkStatus();
  }
  if (op == "mse" || op == "mae" || op == "huber" ||
      op == "binary_crossentropy") {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, y_true));
    const PointLoss kind = op == "mse"     ? PointLoss::kMse
                           : op == "mae"   ? PointLoss::kMae
                           : op == "huber" ? PointLoss::kHuber
                                           : PointLoss::kBinaryCe;
    PointLossArgs a;
    a.delta = FloatAttrOr(attrs, "delta", 1.0);
    a.smoothing = FloatAttrOr(attrs, "label_smoothing", 0.0);
    a.from_logits = BoolAttrOr(attrs, "from_logits", false);
    a.d = ps.rank() >= 2 ? ps[ps.rank() - 1] : 1;
    a.rows = a.d == 0 ? 0 : Numel(pred) / a.d;
    a.rows_per_sample = batch == 0 ? 1 : std::max<int64_t>(a.rows / batch, 1);
    a.weights_n = weights_n;
    if (type(y_true).shape.NumElements() != Numel(pred)) {
      return Unsupported(node, "needs y_true with y_pred's element count");
    }
    Add([=](const Ctx& c) {
      PointLossArgs args = a;
      args.y_true = c.F(y_true);
      args.pred = c.F(pred);
      args.weights = weight == kNoValue ? nullptr : c.F(weight);
      return grad ? Launched(LaunchPointLossGrad(kind, args, c.F(dloss),
                                                 c.F(out), c.stream),
                             "loss gradient kernel")
                  : Launched(LaunchPointLoss(kind, args, c.F(out), c.stream),
                             "loss kernel");
    });
    return absl::OkStatus();
  }
  return Unsupported(node, absl::StrCat("does not lower ", node.op, " yet"));
}

// TF/Keras window placement for one spatial dimension (ops/conv.cc,
// ops/pool.cc): the leading padding and the total padding.
struct WindowPads {
  int64_t before = 0, total = 0;
};
WindowPads PadsFor(int64_t in, int64_t out, int64_t window, int64_t stride,
                   bool same) {
  if (!same) return {};
  const int64_t total = std::max<int64_t>((out - 1) * stride + window - in, 0);
  return {total / 2, total};
}

absl::StatusOr<std::vector<int64_t>> PairAttr(const Attributes& attrs,
                                              absl::string_view name) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> v, GetIntListAttr(attrs, name));
  if (v.size() != 2 || v[0] < 1 || v[1] < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(name), " must be two positive integers [h, w]"));
  }
  return v;
}

// Row-major strides of `dims`.
std::vector<int64_t> Strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int d = static_cast<int>(dims.size()) - 2; d >= 0; --d)
    s[d] = s[d + 1] * dims[d + 1];
  return s;
}

// A copy of every element of `dims` between two strided views.
StridedCopy MakeCopy(const std::vector<int64_t>& dims,
                     const std::vector<int64_t>& src_strides,
                     const std::vector<int64_t>& dst_strides,
                     int64_t src_base = 0, int64_t dst_base = 0) {
  StridedCopy c;
  c.rank = static_cast<int>(dims.size());
  for (int d = 0; d < c.rank; ++d) {
    c.dims[d] = dims[d];
    c.src_strides[d] = src_strides[d];
    c.dst_strides[d] = dst_strides[d];
  }
  c.src_base = src_base;
  c.dst_base = dst_base;
  return c;
}

int64_t Product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

absl::Status Lowering::LowerConv(const Node& node, const Attributes& attrs) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  const std::string& op = node.op;
  const bool forward = op == "conv2d";
  const bool backprop_input = op == "conv2d_backprop_input";
  // x [n,h,w,c], kernel HWIO [kh,kw,c,f], y [n,oh,ow,f].
  const Shape& x =
      backprop_input ? type(node.outputs[0]).shape : type(node.inputs[0]).shape;
  const Shape& k = forward || backprop_input ? type(node.inputs[1]).shape
                                             : type(node.outputs[0]).shape;
  const Shape& y = forward ? type(node.outputs[0]).shape
                           : (backprop_input ? type(node.inputs[0]).shape
                                             : type(node.inputs[1]).shape);
  if (x.rank() != 4 || k.rank() != 4 || y.rank() != 4) {
    return Unsupported(node, "needs NHWC activations and an HWIO kernel");
  }
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> strides,
                           PairAttr(attrs, "strides"));
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> dilations,
                           PairAttr(attrs, "dilations"));
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  const int64_t n = x[0], h = x[1], w = x[2], c = x[3];
  const int64_t kh = k[0], kw = k[1], f = k[3];
  const int64_t oh = y[1], ow = y[2];
  const WindowPads ph =
      PadsFor(h, oh, (kh - 1) * dilations[0] + 1, strides[0], same);
  const WindowPads pw =
      PadsFor(w, ow, (kw - 1) * dilations[1] + 1, strides[1], same);
  // cuDNN pads symmetrically; TF's odd "same" padding (one more pixel at the
  // bottom/right) goes through an explicitly padded copy of x.
  const bool explicit_pad =
      ph.total != 2 * ph.before || pw.total != 2 * pw.before;
  ConvGeometry g;
  g.n = n;
  g.h = explicit_pad ? h + ph.total : h;
  g.w = explicit_pad ? w + pw.total : w;
  g.c = c;
  g.f = f;
  g.kh = kh;
  g.kw = kw;
  g.oh = oh;
  g.ow = ow;
  g.pad_h = explicit_pad ? 0 : ph.before;
  g.pad_w = explicit_pad ? 0 : pw.before;
  g.stride_h = strides[0];
  g.stride_w = strides[1];
  g.dil_h = dilations[0];
  g.dil_w = dilations[1];
  if (Product({n, h, w, c}) == 0 || Product({kh, kw, c, f}) == 0 ||
      Product({n, oh, ow, f}) == 0) {
    return Unsupported(node, "does not run empty convolutions");
  }
  exe_.needs_cudnn = true;
  const int filter_t = NewExtra(Product({kh, kw, c, f}) * 4);
  const int padded =
      explicit_pad ? NewExtra(Product({n, g.h, g.w, c}) * 4) : -1;
  // HWIO <-> KRSC ([f, kh, kw, c], cuDNN's NHWC filter layout).
  const StridedCopy to_krsc = MakeCopy(
      {f, kh, kw, c}, {1, kw * c * f, c * f, f}, Strides({f, kh, kw, c}));
  const StridedCopy to_hwio = MakeCopy(
      {kh, kw, c, f}, {kw * c, c, 1, kh * kw * c}, Strides({kh, kw, c, f}));
  // x inside its padded copy, and back (the crop of backprop_input).
  const std::vector<int64_t> padded_strides = Strides({n, g.h, g.w, c});
  const int64_t interior = (ph.before * g.w + pw.before) * c;
  const StridedCopy pad_x = MakeCopy({n, h, w, c}, Strides({n, h, w, c}),
                                     padded_strides, 0, interior);
  const StridedCopy crop_x = MakeCopy({n, h, w, c}, padded_strides,
                                      Strides({n, h, w, c}), interior, 0);
  const int64_t x_n = n * h * w * c, filter_n = kh * kw * c * f;
  const int64_t padded_bytes = n * g.h * g.w * c * 4;
  const ConvDirection direction = forward ? ConvDirection::kForward
                                  : backprop_input
                                      ? ConvDirection::kBackwardData
                                      : ConvDirection::kBackwardFilter;
  auto plan = std::make_shared<std::unique_ptr<CudnnConv>>();
  const ValueId in0 = node.inputs[0], in1 = node.inputs[1],
                out = node.outputs[0];
  Add(
      [=](const Ctx& ctx) -> absl::Status {
        float* ft = reinterpret_cast<float*>(ctx.extra[filter_t]);
        float* xp =
            padded >= 0 ? reinterpret_cast<float*>(ctx.extra[padded]) : nullptr;
        const auto pad_input = [&](const float* src) -> absl::Status {
          SEQUENT_CUDA_RETURN_IF_ERROR(
              cudaMemsetAsync(xp, 0, padded_bytes, ctx.stream));
          return Launched(LaunchStridedCopy(src, xp, 4, pad_x, x_n, ctx.stream),
                          "pad kernel");
        };
        switch (direction) {
          case ConvDirection::kForward: {
            SEQUENT_RETURN_IF_ERROR(
                Launched(LaunchStridedCopy(ctx.F(in1), ft, 4, to_krsc, filter_n,
                                           ctx.stream),
                         "filter layout kernel"));
            if (xp != nullptr) SEQUENT_RETURN_IF_ERROR(pad_input(ctx.F(in0)));
            return (*plan)->Forward(ctx.dnn, xp != nullptr ? xp : ctx.F(in0),
                                    ft, ctx.F(out), ctx.dnn_workspace);
          }
          case ConvDirection::kBackwardData: {
            SEQUENT_RETURN_IF_ERROR(
                Launched(LaunchStridedCopy(ctx.F(in1), ft, 4, to_krsc, filter_n,
                                           ctx.stream),
                         "filter layout kernel"));
            SEQUENT_RETURN_IF_ERROR((*plan)->BackwardData(
                ctx.dnn, ctx.F(in0), ft, xp != nullptr ? xp : ctx.F(out),
                ctx.dnn_workspace));
            if (xp == nullptr) return absl::OkStatus();
            return Launched(
                LaunchStridedCopy(xp, ctx.F(out), 4, crop_x, x_n, ctx.stream),
                "crop kernel");
          }
          case ConvDirection::kBackwardFilter: {
            if (xp != nullptr) SEQUENT_RETURN_IF_ERROR(pad_input(ctx.F(in0)));
            SEQUENT_RETURN_IF_ERROR((*plan)->BackwardFilter(
                ctx.dnn, xp != nullptr ? xp : ctx.F(in0), ctx.F(in1), ft,
                ctx.dnn_workspace));
            return Launched(LaunchStridedCopy(ft, ctx.F(out), 4, to_hwio,
                                              filter_n, ctx.stream),
                            "filter layout kernel");
          }
        }
        return absl::OkStatus();
      },
      [=](Ctx& ctx) -> absl::Status {
        SEQUENT_ASSIGN_OR_RETURN(
            *plan,
            CudnnConv::Create(ctx.dnn, g, direction, kMaxConvWorkspaceBytes));
        ctx.dnn_workspace_bytes =
            std::max(ctx.dnn_workspace_bytes, (*plan)->workspace_bytes());
        return absl::OkStatus();
      });
  // The cuDNN call alone on this step's buffers (whatever they hold): its
  // outputs are the node's intermediate or the filter scratch.
  SetWarmup([=](const Ctx& ctx) -> absl::Status {
    float* ft = reinterpret_cast<float*>(ctx.extra[filter_t]);
    float* xp =
        padded >= 0 ? reinterpret_cast<float*>(ctx.extra[padded]) : nullptr;
    switch (direction) {
      case ConvDirection::kForward:
        return (*plan)->Forward(ctx.dnn, xp != nullptr ? xp : ctx.F(in0), ft,
                                ctx.F(out), ctx.dnn_workspace);
      case ConvDirection::kBackwardData:
        return (*plan)->BackwardData(ctx.dnn, ctx.F(in0), ft,
                                     xp != nullptr ? xp : ctx.F(out),
                                     ctx.dnn_workspace);
      case ConvDirection::kBackwardFilter:
        return (*plan)->BackwardFilter(ctx.dnn, xp != nullptr ? xp : ctx.F(in0),
                                       ctx.F(in1), ft, ctx.dnn_workspace);
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerPool(const Node& node, const Attributes& attrs) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  const std::string& op = node.op;
  const bool max = absl::StartsWith(op, "max");
  const bool grad = absl::EndsWith(op, "_grad");
  // x is the forward input (for avg_pool2d_grad: the output's shape), y the
  // forward output (dy's shape).
  const Shape& x = op == "avg_pool2d_grad" ? type(node.outputs[0]).shape
                                           : type(node.inputs[0]).shape;
  const Shape& y = !grad ? type(node.outputs[0]).shape
                         : type(node.inputs[max ? 2 : 0]).shape;
  if (x.rank() != 4 || y.rank() != 4) {
    return Unsupported(node, "needs NHWC tensors");
  }
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> size,
                           PairAttr(attrs, "pool_size"));
  std::vector<int64_t> strides = IntListAttrOr(attrs, "strides", {});
  if (strides.empty()) strides = size;  // Keras: default to the pool size.
  if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1) {
    return absl::InvalidArgumentError("strides must be empty or [h, w] > 0");
  }
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  PoolShape s;
  s.n = x[0];
  s.h = x[1];
  s.w = x[2];
  s.c = x[3];
  s.oh = y[1];
  s.ow = y[2];
  s.pool_h = size[0];
  s.pool_w = size[1];
  s.stride_h = strides[0];
  s.stride_w = strides[1];
  s.pad_h = PadsFor(s.h, s.oh, s.pool_h, s.stride_h, same).before;
  s.pad_w = PadsFor(s.w, s.ow, s.pool_w, s.stride_w, same).before;
  const ValueId in0 = node.inputs[0], out = node.outputs[0];
  if (!grad) {
    Add([=](const Ctx& c) {
      return Launched(LaunchPool(max, c.F(in0), c.F(out), s, c.stream),
                      "pooling kernel");
    });
  } else if (max) {
    const ValueId dy = node.inputs[2];
    Add([=](const Ctx& c) {
      return Launched(
          LaunchMaxPoolGrad(c.F(in0), c.F(dy), c.F(out), s, c.stream),
          "max pooling gradient kernel");
    });
  } else {
    Add([=](const Ctx& c) {
      return Launched(LaunchAvgPoolGrad(c.F(in0), c.F(out), s, c.stream),
                      "average pooling gradient kernel");
    });
  }
  return absl::OkStatus();
}

absl::Status Lowering::LowerNorm(const Node& node, const Attributes& attrs) {
  SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
  const std::string& op = node.op;
  const bool grad = absl::EndsWith(op, "_grad");
  const ValueId x = grad ? node.inputs[1] : node.inputs[0];
  const Shape& xs = type(x).shape;
  if (xs.rank() < 1) return Unsupported(node, "needs a feature axis");
  const int64_t c = xs[xs.rank() - 1];
  const int64_t rows = c == 0 ? 0 : Numel(x) / c;
  if (rows == 0 || c == 0) return Unsupported(node, "does not run empty norms");
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-3);
  std::vector<ValueId> in = node.inputs, out = node.outputs;
  if (op == "layer_norm") {
    LayerNormArgs a;
    a.rows = rows;
    a.c = c;
    a.epsilon = epsilon;
    Add([=](const Ctx& ctx) {
      LayerNormArgs args = a;
      args.x = ctx.F(in[0]);
      args.gamma = ctx.F(in[1]);
      args.beta = ctx.F(in[2]);
      args.y = ctx.F(out[0]);
      args.mean = ctx.F(out[1]);
      args.inv_std = ctx.F(out[2]);
      return Launched(LaunchLayerNorm(args, ctx.stream), "layer norm kernel");
    });
    return absl::OkStatus();
  }
  NormGradArgs ga;
  ga.rows = rows;
  ga.c = c;
  const auto bind_grad = [in, out, ga](const Ctx& ctx) {
    NormGradArgs args = ga;
    args.dy = ctx.F(in[0]);
    args.x = ctx.F(in[1]);
    args.gamma = ctx.F(in[2]);
    args.mean = ctx.F(in[3]);
    args.inv_std = ctx.F(in[4]);
    args.dx = ctx.F(out[0]);
    args.dgamma = ctx.F(out[1]);
    args.dbeta = ctx.F(out[2]);
    return args;
  };
  if (op == "layer_norm_grad") {
    Add([=](const Ctx& ctx) {
      return Launched(LaunchLayerNormGrad(bind_grad(ctx), ctx.stream),
                      "layer norm gradient kernel");
    });
    return absl::OkStatus();
  }
  const bool training = BoolAttrOr(attrs, "training", op == "batch_norm_grad");
  if (!training) {
    if (op == "batch_norm") {
      BatchNormInferenceArgs a;
      a.rows = rows;
      a.c = c;
      a.epsilon = epsilon;
      Add([=](const Ctx& ctx) {
        BatchNormInferenceArgs args = a;
        args.x = ctx.F(in[0]);
        args.gamma = ctx.F(in[1]);
        args.beta = ctx.F(in[2]);
        args.moving_mean = ctx.F(in[3]);
        args.moving_var = ctx.F(in[4]);
        args.y = ctx.F(out[0]);
        args.new_mean = ctx.F(out[1]);
        args.new_var = ctx.F(out[2]);
        args.saved_mean = ctx.F(out[3]);
        args.saved_inv_std = ctx.F(out[4]);
        return Launched(LaunchBatchNormInference(args, ctx.stream),
                        "batch norm inference kernel");
      });
    } else {
      Add([=](const Ctx& ctx) {
        return Launched(
            LaunchBatchNormGradInference(bind_grad(ctx), ctx.stream),
            "batch norm gradient kernel");
      });
    }
    return absl::OkStatus();
  }
  // Training: cuDNN over NHWC (other ranks as [rows, 1, 1, c]).
  exe_.needs_cudnn = true;
  const int64_t bn_n = xs.rank() == 4 ? xs[0] : rows;
  const int64_t bn_h = xs.rank() == 4 ? xs[1] : 1;
  const int64_t bn_w = xs.rank() == 4 ? xs[2] : 1;
  auto plan = std::make_shared<std::unique_ptr<CudnnBatchNorm>>();
  const auto prepare = [=](Ctx&) -> absl::Status {
    SEQUENT_ASSIGN_OR_RETURN(
        *plan, CudnnBatchNorm::Create(bn_n, bn_h, bn_w, c, epsilon));
    return absl::OkStatus();
  };
  if (op == "batch_norm") {
    const float momentum =
        static_cast<float>(FloatAttrOr(attrs, "momentum", 0.99));
    const int scratch = NewExtra(2 * c * 4);
    Add(
        [=](const Ctx& ctx) -> absl::Status {
          float* running = reinterpret_cast<float*>(ctx.extra[scratch]);
          // Factor 1 makes cuDNN's running averages the batch's (0 * old):
          // zeroed so that stale NaNs cannot leak into them.
          SEQUENT_CUDA_RETURN_IF_ERROR(
              cudaMemsetAsync(running, 0, 2 * c * 4, ctx.stream));
          SEQUENT_RETURN_IF_ERROR((*plan)->ForwardTraining(
              ctx.dnn, ctx.F(in[0]), ctx.F(in[1]), ctx.F(in[2]), ctx.F(out[0]),
              running, ctx.F(out[3]), ctx.F(out[4])));
          return Launched(
              LaunchBatchNormMovingStats(
                  ctx.F(in[3]), ctx.F(in[4]), ctx.F(out[3]), ctx.F(out[4]), c,
                  momentum, static_cast<float>(epsilon), ctx.F(out[1]),
                  ctx.F(out[2]), ctx.stream),
              "batch norm moving statistics kernel");
        },
        prepare);
    // Writes y, the saved statistics and the scratch only (not the moving
    // statistics, which may live in the variables).
    SetWarmup([=](const Ctx& ctx) {
      return (*plan)->ForwardTraining(
          ctx.dnn, ctx.F(in[0]), ctx.F(in[1]), ctx.F(in[2]), ctx.F(out[0]),
          reinterpret_cast<float*>(ctx.extra[scratch]), ctx.F(out[3]),
          ctx.F(out[4]));
    });
  } else {
    Add(
        [=](const Ctx& ctx) -> absl::Status {
          const NormGradArgs a = bind_grad(ctx);
          return (*plan)->Backward(ctx.dnn, a.x, a.dy, a.gamma, a.mean,
                                   a.inv_std, a.dx, a.dgamma, a.dbeta);
        },
        prepare);
    SetWarmup([=](const Ctx& ctx) {
      const NormGradArgs a = bind_grad(ctx);
      return (*plan)->Backward(ctx.dnn, a.x, a.dy, a.gamma, a.mean, a.inv_std,
                               a.dx, a.dgamma, a.dbeta);
    });
  }
  return absl::OkStatus();
}

// Pure data movement: any dtype of 2, 4 or 8 bytes.
absl::StatusOr<int> CopyElementBytes(const Node& node, DType dtype) {
  const size_t size = DTypeSize(dtype);
  if (size == 2 || size == 4 || size == 8) return static_cast<int>(size);
  return Unsupported(
      node, absl::StrCat("does not move ", DTypeName(dtype), " elements"));
}

absl::Status Lowering::LowerShapeOp(const Node& node, const Attributes& attrs) {
  const std::string& op = node.op;
  const ValueId out = node.outputs[0];
  SEQUENT_ASSIGN_OR_RETURN(int bytes, CopyElementBytes(node, type(out).dtype));
  const std::vector<int64_t> out_dims = type(out).shape.dims();
  if (out_dims.size() > kMaxRank) {
    return Unsupported(node, absl::StrCat("moves rank <= ", kMaxRank));
  }
  const auto add_copy = [&](ValueId src, ValueId dst, StridedCopy copy,
                            int64_t n, bool zero_first) {
    const int64_t dst_bytes = Numel(dst) * bytes;
    Add([=](const Ctx& c) -> absl::Status {
      if (zero_first && dst_bytes > 0) {
        SEQUENT_CUDA_RETURN_IF_ERROR(
            cudaMemsetAsync(c.ptr[dst], 0, dst_bytes, c.stream));
      }
      return Launched(
          LaunchStridedCopy(c.ptr[src], c.ptr[dst], bytes, copy, n, c.stream),
          "copy kernel");
    });
  };
  if (op == "transpose") {
    const std::vector<int64_t> perm = IntListAttrOr(attrs, "perm", {});
    const std::vector<int64_t> in_strides =
        Strides(type(node.inputs[0]).shape.dims());
    if (perm.size() != out_dims.size()) {
      return absl::InvalidArgumentError("perm does not fit the output");
    }
    std::vector<int64_t> src_strides(perm.size());
    for (size_t i = 0; i < perm.size(); ++i)
      src_strides[i] = in_strides[perm[i]];
    add_copy(node.inputs[0], out,
             MakeCopy(out_dims, src_strides, Strides(out_dims)), Numel(out),
             false);
    return absl::OkStatus();
  }
  if (op == "slice" || op == "slice_grad") {
    const std::vector<int64_t> begin = IntListAttrOr(attrs, "begin", {});
    const bool is_grad = op == "slice_grad";
    // The small tensor (slice's output, slice_grad's input) walks the big
    // one's strides from begin.
    const ValueId small = is_grad ? node.inputs[0] : out;
    const ValueId big = is_grad ? out : node.inputs[0];
    const std::vector<int64_t> small_dims = type(small).shape.dims();
    const std::vector<int64_t> big_strides = Strides(type(big).shape.dims());
    if (begin.size() != small_dims.size()) {
      return absl::InvalidArgumentError("begin does not fit the tensor");
    }
    int64_t base = 0;
    for (size_t i = 0; i < begin.size(); ++i) base += begin[i] * big_strides[i];
    const std::vector<int64_t> small_strides = Strides(small_dims);
    if (!is_grad) {
      add_copy(big, small,
               MakeCopy(small_dims, big_strides, small_strides, base),
               Numel(small), false);
    } else {
      add_copy(small, big,
               MakeCopy(small_dims, small_strides, big_strides, 0, base),
               Numel(small), true);
    }
    return absl::OkStatus();
  }
  if (op == "concat") {
    SEQUENT_ASSIGN_OR_RETURN(int axis,
                             NormalizeAxis(IntAttrOr(attrs, "axis", -1),
                                           static_cast<int>(out_dims.size())));
    const std::vector<int64_t> out_strides = Strides(out_dims);
    int64_t offset = 0;
    for (ValueId in : node.inputs) {
      if (type(in).dtype != type(out).dtype) {
        return absl::InvalidArgumentError("concat inputs differ in dtype");
      }
      const std::vector<int64_t> dims = type(in).shape.dims();
      add_copy(in, out,
               MakeCopy(dims, Strides(dims), out_strides, 0,
                        offset * out_strides[axis]),
               Numel(in), false);
      offset += dims[axis];
    }
    return absl::OkStatus();
  }
  return Unsupported(node, "is not a shape op");
}

std::optional<CastType> ToCastType(DType d) {
  switch (d) {
    case DType::kF32:
      return CastType::kF32;
    case DType::kBF16:
      return CastType::kBF16;
    case DType::kI32:
      return CastType::kI32;
    case DType::kI64:
      return CastType::kI64;
    default:
      return std::nullopt;
  }
}

void Lowering::AddUpdateGroup(std::shared_ptr<UpdateGroup> group) {
  CudaExecutableImpl* exe = &exe_;
  Add(
      [group](const Ctx& c) {
        return Launched(
            LaunchFusedUpdate(
                group->kind, group->hyper,
                static_cast<const UpdateTensor*>(group->tensors.get()),
                static_cast<const UpdateChunk*>(group->chunks.get()),
                group->num_chunks, c.F(group->lr), c.F(group->iterations),
                c.stream),
            "fused optimizer update kernel");
      },
      [group, exe](Ctx& c) -> absl::Status {
        std::vector<UpdateTensor> tensors;
        std::vector<UpdateChunk> chunks;
        for (const UpdateGroup::Member& m : group->members) {
          UpdateTensor t;
          t.var = c.F(m.var);
          t.grad = c.F(m.grad);
          t.var_out = c.F(m.var_out);
          if (m.slot0 != kNoValue) {
            t.slot0 = c.F(m.slot0);
            t.slot0_out = c.F(m.slot0_out);
          }
          if (m.slot1 != kNoValue) {
            t.slot1 = c.F(m.slot1);
            t.slot1_out = c.F(m.slot1_out);
          }
          t.n = m.n;
          // A weight whose bf16 copy GEMMs read, updated in place (so after
          // its last reader: the planner's rule): refresh the copy here.
          if (auto it = exe->weight_copy_of.find(m.var);
              it != exe->weight_copy_of.end() && t.var_out == t.var) {
            CudaExecutableImpl::WeightCopy& w = exe->weight_copies[it->second];
            if (*w.used) {
              t.var_bf16_out = reinterpret_cast<uint16_t*>(c.extra[w.extra]);
              w.optimizer_writes = true;
            }
          }
          for (int64_t start = 0; start < m.n; start += kUpdateChunk) {
            chunks.push_back({static_cast<int32_t>(tensors.size()), start});
          }
          tensors.push_back(t);
        }
        SEQUENT_ASSIGN_OR_RETURN(group->tensors,
                                 DeviceAlloc(static_cast<int64_t>(
                                     tensors.size() * sizeof(UpdateTensor))));
        SEQUENT_ASSIGN_OR_RETURN(group->chunks,
                                 DeviceAlloc(static_cast<int64_t>(
                                     chunks.size() * sizeof(UpdateChunk))));
        if (!tensors.empty()) {
          SEQUENT_CUDA_RETURN_IF_ERROR(cudaMemcpy(
              group->tensors.get(), tensors.data(),
              tensors.size() * sizeof(UpdateTensor), cudaMemcpyHostToDevice));
        }
        if (!chunks.empty()) {
          SEQUENT_CUDA_RETURN_IF_ERROR(cudaMemcpy(
              group->chunks.get(), chunks.data(),
              chunks.size() * sizeof(UpdateChunk), cudaMemcpyHostToDevice));
        }
        group->num_chunks = static_cast<int64_t>(chunks.size());
        return absl::OkStatus();
      });
}

std::optional<UpdateKind> UpdateKindOf(absl::string_view op) {
  if (op == "sgd_update") return UpdateKind::kSgd;
  if (op == "momentum_update") return UpdateKind::kMomentum;
  if (op == "adam_update") return UpdateKind::kAdam;
  if (op == "adamw_update") return UpdateKind::kAdamW;
  if (op == "rmsprop_update") return UpdateKind::kRmsprop;
  if (op == "adagrad_update") return UpdateKind::kAdagrad;
  return std::nullopt;
}

absl::Status Lowering::LowerNode(const Node& node, const Attributes& attrs) {
  const std::string& op = node.op;
  if (op == "conv2d" || op == "conv2d_backprop_input" ||
      op == "conv2d_backprop_filter") {
    return LowerConv(node, attrs);
  }
  if (op == "max_pool2d" || op == "avg_pool2d" || op == "max_pool2d_grad" ||
      op == "avg_pool2d_grad") {
    return LowerPool(node, attrs);
  }
  if (op == "global_avg_pool2d") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    if (type(node.inputs[0]).shape.rank() != 4) {
      return Unsupported(node, "needs an NHWC input");
    }
    return LowerReduce(node, Reduce::kMean, {false, true, true, false});
  }
  if (op == "global_avg_pool2d_grad") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    const Shape& xs = type(node.outputs[0]).shape;
    if (xs.rank() != 4) return Unsupported(node, "needs an NHWC output");
    const ValueId dy = node.inputs[0], dx = node.outputs[0];
    const int64_t n = xs[0], hw = xs[1] * xs[2], c = xs[3];
    Add([=](const Ctx& ctx) {
      return Launched(
          LaunchGlobalAvgPoolGrad(ctx.F(dy), ctx.F(dx), n, hw, c, ctx.stream),
          "global average pooling gradient kernel");
    });
    return absl::OkStatus();
  }
  if (op == "batch_norm" || op == "batch_norm_grad" || op == "layer_norm" ||
      op == "layer_norm_grad") {
    return LowerNorm(node, attrs);
  }
  if (op == "transpose" || op == "slice" || op == "slice_grad" ||
      op == "concat") {
    return LowerShapeOp(node, attrs);
  }
  if (op == "cast") {
    const ValueId x = node.inputs[0], y = node.outputs[0];
    const auto from = ToCastType(type(x).dtype);
    const auto to = ToCastType(type(y).dtype);
    if (!from || !to) {
      return Unsupported(
          node, absl::StrCat("casts between f32, bf16, i32 and i64 only; got ",
                             type(x).ToString(), " to ", type(y).ToString()));
    }
    const int64_t n = Numel(x);
    const CastType f = *from, t = *to;
    Add([=](const Ctx& c) {
      return Launched(LaunchCast(f, t, c.ptr[x], c.ptr[y], n, c.stream),
                      "cast kernel");
    });
    return absl::OkStatus();
  }
  if (op == "sign") return LowerPointwise(node, Pointwise::kSign, 0.f);
  if (op == "maximum_grad") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    const ValueId x = node.inputs[0], y = node.inputs[1], dout = node.inputs[2],
                  dx = node.outputs[0], dy = node.outputs[1];
    SEQUENT_ASSIGN_OR_RETURN(
        BroadcastShape s,
        MakeBroadcast(type(dout).shape, type(x).shape, type(y).shape));
    const int64_t n = Numel(dout);
    Add([=](const Ctx& c) {
      return Launched(LaunchMaximumGrad(c.F(x), c.F(y), c.F(dout), c.F(dx),
                                        c.F(dy), s, n, c.stream),
                      "maximum gradient kernel");
    });
    return absl::OkStatus();
  }
  if (op == "reduce_max_grad") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    const ValueId x = node.inputs[0], y = node.inputs[1], dy = node.inputs[2],
                  dx = node.outputs[0];
    const Shape& in = type(x).shape;
    if (in.rank() > kMaxRank) {
      return Unsupported(node, absl::StrCat("reduces rank <= ", kMaxRank));
    }
    const std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
    std::vector<bool> reduced(in.rank(), axes.empty());
    for (int64_t a : axes) {
      SEQUENT_ASSIGN_OR_RETURN(int d, NormalizeAxis(a, in.rank()));
      reduced[d] = true;
    }
    // The groups as reduce_max walks them, and each x element's group.
    ReduceShape groups;
    BroadcastShape to_group;
    to_group.rank = in.rank();
    const std::vector<int64_t> strides = Strides(in.dims());
    int64_t group_stride = 1;
    for (int d = in.rank() - 1; d >= 0; --d) {
      to_group.dims[d] = in[d];
      to_group.x_strides[d] = reduced[d] ? 0 : group_stride;
      if (!reduced[d]) group_stride *= in[d];
    }
    for (int d = 0; d < in.rank(); ++d) {
      if (reduced[d]) {
        groups.reduced_dims[groups.reduced_rank] = in[d];
        groups.reduced_strides[groups.reduced_rank++] = strides[d];
        groups.reduced_count *= in[d];
      } else {
        groups.kept_dims[groups.kept_rank] = in[d];
        groups.kept_strides[groups.kept_rank++] = strides[d];
      }
    }
    const int64_t groups_n = Numel(y), n = Numel(x);
    const int ties = NewExtra(std::max<int64_t>(groups_n, 1) * 4);
    Add([=](const Ctx& c) {
      return Launched(
          LaunchReduceMaxGrad(c.F(x), c.F(y), c.F(dy), c.F(dx),
                              reinterpret_cast<float*>(c.extra[ties]), groups,
                              groups_n, to_group, n, c.stream),
          "reduce_max gradient kernel");
    });
    return absl::OkStatus();
  }
  if (op == "binary_accuracy") {
    const ValueId y_true = node.inputs[0], pred = node.inputs[1],
                  out = node.outputs[0];
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, y_true));
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, pred));
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, out));
    if (Numel(y_true) != Numel(pred)) {
      return Unsupported(node, "needs y_true with y_pred's element count");
    }
    const double threshold = FloatAttrOr(attrs, "threshold", 0.5);
    const int64_t n = Numel(pred);
    Add([=](const Ctx& c) {
      return Launched(LaunchBinaryAccuracy(c.F(y_true), c.F(pred), n, threshold,
                                           c.F(out), c.stream),
                      "accuracy kernel");
    });
    return absl::OkStatus();
  }
  if (op == "dense") return LowerDense(node, attrs);
  if (op == "matmul") return LowerMatmul(node, attrs);
  if (op == "bias_add" || op == "add") return LowerBinary(node, Binary::kAdd);
  if (op == "sub") return LowerBinary(node, Binary::kSub);
  if (op == "mul") return LowerBinary(node, Binary::kMul);
  if (op == "div") return LowerBinary(node, Binary::kDiv);
  if (op == "maximum") return LowerBinary(node, Binary::kMax);
  static const auto* const kUnary =
      new absl::flat_hash_map<std::string, Pointwise>{
          {"neg", Pointwise::kNeg},       {"exp", Pointwise::kExp},
          {"log", Pointwise::kLog},       {"sqrt", Pointwise::kSqrt},
          {"square", Pointwise::kSquare}, {"abs", Pointwise::kAbs}};
  if (auto it = kUnary->find(op); it != kUnary->end()) {
    return LowerPointwise(node, it->second, 0.f);
  }
  if (op == "relu" || op == "leaky_relu" || op == "elu" || op == "selu" ||
      op == "sigmoid" || op == "tanh" || op == "gelu" || op == "swish" ||
      op == "softplus") {
    SEQUENT_ASSIGN_OR_RETURN(ops::Activation act, ops::ParseActivation(op));
    act.alpha = FloatAttrOr(attrs, "alpha", act.alpha);
    act.approximate = BoolAttrOr(attrs, "approximate", act.approximate);
    return LowerPointwise(node, ToPointwise(act),
                          static_cast<float>(act.alpha));
  }
  if (op == "softmax" || op == "log_softmax" || op == "softmax_grad" ||
      op == "log_softmax_grad") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    const bool log = absl::StartsWith(op, "log_");
    const bool is_grad = absl::EndsWith(op, "_grad");
    const ValueId ref = is_grad ? node.inputs[1] : node.inputs[0];
    const Shape& s = type(ref).shape;
    SEQUENT_ASSIGN_OR_RETURN(
        int axis, NormalizeAxis(IntAttrOr(attrs, "axis", -1), s.rank()));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= s[d];
    for (int d = axis + 1; d < s.rank(); ++d) inner *= s[d];
    const int64_t n = s.rank() == 0 ? 1 : s[axis];
    const ValueId in0 = node.inputs[0], out = node.outputs[0];
    if (!is_grad) {
      Add([=](const Ctx& c) {
        return Launched(
            LaunchSoftmax(log, c.F(in0), c.F(out), outer, n, inner, c.stream),
            "softmax kernel");
      });
    } else {
      const ValueId y = node.inputs[1];
      Add([=](const Ctx& c) {
        return Launched(LaunchSoftmaxGrad(log, c.F(in0), c.F(y), c.F(out),
                                          outer, n, inner, c.stream),
                        "softmax gradient kernel");
      });
    }
    return absl::OkStatus();
  }
  if (op == "reduce_sum" && bias_grad_taken.contains(current_)) {
    return absl::OkStatus();  // The weight-gradient matmul writes it.
  }
  if (op == "reduce_sum" || op == "reduce_mean" || op == "reduce_max") {
    const Shape& s = type(node.inputs[0]).shape;
    const std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
    std::vector<bool> reduced(s.rank(), axes.empty());
    for (int64_t a : axes) {
      SEQUENT_ASSIGN_OR_RETURN(int d, NormalizeAxis(a, s.rank()));
      reduced[d] = true;
    }
    const Reduce r = op == "reduce_sum"    ? Reduce::kSum
                     : op == "reduce_mean" ? Reduce::kMean
                                           : Reduce::kMax;
    return LowerReduce(node, r, reduced);
  }
  if (op == "reduce_to_shape") {
    const Shape& in = type(node.inputs[0]).shape;
    const Shape& target = type(node.outputs[0]).shape;
    std::vector<bool> reduced(in.rank(), false);
    const int lead = in.rank() - target.rank();
    for (int d = 0; d < in.rank(); ++d) {
      reduced[d] = d < lead || (target[d - lead] == 1 && in[d] != 1);
    }
    return LowerReduce(node, Reduce::kSum, reduced);
  }
  if (op == "broadcast_to") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    const ValueId x = node.inputs[0], out = node.outputs[0];
    SEQUENT_ASSIGN_OR_RETURN(
        BroadcastShape s,
        MakeBroadcast(type(out).shape, type(x).shape, type(x).shape));
    const int64_t n = Numel(out);
    Add([=](const Ctx& c) {
      return Launched(LaunchBroadcastTo(c.F(x), c.F(out), s, n, c.stream),
                      "broadcast kernel");
    });
    return absl::OkStatus();
  }
  if (op == "activation_grad" || op == "activation_input_grad" ||
      op == "activation_bias_grad") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    SEQUENT_ASSIGN_OR_RETURN(
        ops::Activation act,
        ops::BackwardActivation(attrs, /*from_output=*/false));
    const bool from_output = op != "activation_input_grad";
    const Pointwise fn = ToPointwise(act);
    const float alpha = static_cast<float>(act.alpha);
    const ValueId dy = node.inputs[0], v = node.inputs[1], dx = node.outputs[0];
    const int64_t n = Numel(dx);
    // The bias gradient may be the weight-gradient matmul's (BGRADA).
    const ValueId db =
        node.outputs.size() > 1 && !bias_grad_taken.contains(current_)
            ? node.outputs[1]
            : kNoValue;
    const int64_t cols = db == kNoValue ? 0 : Numel(db);
    const int64_t rows = cols == 0 ? 0 : n / cols;
    const int64_t chunks = db == kNoValue ? 1 : ColumnSumChunks(rows, cols);
    const int scratch = chunks > 1 ? NewExtra(chunks * cols * 4) : -1;
    Add([=](const Ctx& c) -> absl::Status {
      SEQUENT_RETURN_IF_ERROR(
          Launched(LaunchActivationGrad(fn, alpha, from_output, c.F(dy), c.F(v),
                                        c.F(dx), n, c.stream),
                   "activation gradient kernel"));
      if (db == kNoValue) return absl::OkStatus();
      return Launched(
          LaunchColumnSumChunked(
              c.F(dx), c.F(db), rows, cols,
              scratch < 0 ? nullptr
                          : reinterpret_cast<float*>(c.extra[scratch]),
              chunks, c.stream),
          "bias gradient kernel");
    });
    return absl::OkStatus();
  }
  if (op == "dropout") {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, node.inputs[0]));
    const double rate = FloatAttrOr(attrs, "rate", 0.5);
    DropoutArgs a;
    a.n = Numel(node.inputs[0]);
    a.seed = static_cast<uint64_t>(IntAttrOr(attrs, "seed", 0));
    a.active = BoolAttrOr(attrs, "training", true) && rate > 0.0;
    a.threshold = ops::DropoutKeepThreshold(rate);
    a.scale = static_cast<float>(1.0 / (1.0 - rate));
    const ValueId x = node.inputs[0], y = node.outputs[0],
                  mask = node.outputs[1];
    const ValueId step = node.inputs.size() > 1 ? node.inputs[1] : kNoValue;
    if (step != kNoValue) {
      SEQUENT_RETURN_IF_ERROR(ExpectLabels(node, step));
      a.step_i64 = type(step).dtype == DType::kI64;
    }
    Add([=](const Ctx& c) {
      DropoutArgs args = a;
      args.x = c.F(x);
      args.y = c.F(y);
      args.mask = c.F(mask);
      args.step = step == kNoValue ? nullptr : c.ptr[step];
      return Launched(LaunchDropout(args, c.stream), "dropout kernel");
    });
    return absl::OkStatus();
  }
  if (op == "mse" || op == "mae" || op == "huber" ||
      op == "binary_crossentropy" || op == "categorical_crossentropy" ||
      op == "sparse_categorical_crossentropy") {
    return LowerLoss(node, attrs, /*grad=*/false);
  }
  if (absl::EndsWith(op, "_grad") &&
      (absl::StartsWith(op, "mse") || absl::StartsWith(op, "mae") ||
       absl::StrContains(op, "crossentropy") ||
       absl::StartsWith(op, "huber"))) {
    return LowerLoss(node, attrs, /*grad=*/true);
  }
  if (op == "sparse_categorical_accuracy" || op == "categorical_accuracy") {
    const ValueId y_true = node.inputs[0], pred = node.inputs[1],
                  out = node.outputs[0];
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, pred));
    const Shape& ps = type(pred).shape;
    const int64_t classes = ps[ps.rank() - 1];
    const int64_t rows = classes == 0 ? 0 : Numel(pred) / classes;
    if (op == "sparse_categorical_accuracy") {
      SEQUENT_RETURN_IF_ERROR(ExpectLabels(node, y_true));
      const bool i64 = type(y_true).dtype == DType::kI64;
      Add([=](const Ctx& c) {
        return Launched(LaunchSparseAccuracy(c.ptr[y_true], i64, c.F(pred),
                                             rows, classes, c.F(out), c.stream),
                        "accuracy kernel");
      });
    } else {
      SEQUENT_RETURN_IF_ERROR(ExpectF32(node, y_true));
      Add([=](const Ctx& c) {
        return Launched(LaunchCategoricalAccuracy(c.F(y_true), c.F(pred), rows,
                                                  classes, c.F(out), c.stream),
                        "accuracy kernel");
      });
    }
    return absl::OkStatus();
  }
  if (op == "clip_by_value" || op == "clip_by_norm") {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    const ValueId x = node.inputs[0], y = node.outputs[0];
    const int64_t n = Numel(x);
    if (op == "clip_by_value") {
      const float lo = static_cast<float>(FloatAttrOr(attrs, "min", 0.0));
      const float hi = static_cast<float>(FloatAttrOr(attrs, "max", 0.0));
      Add([=](const Ctx& c) {
        return Launched(LaunchClipByValue(c.F(x), c.F(y), n, lo, hi, c.stream),
                        "clip kernel");
      });
    } else {
      const float max_norm =
          static_cast<float>(FloatAttrOr(attrs, "max_norm", 0.0));
      const int scratch = NewExtra(sizeof(float));
      Add([=](const Ctx& c) {
        return Launched(
            LaunchClipByNorm(c.F(x), c.F(y), n, max_norm,
                             reinterpret_cast<float*>(c.extra[scratch]),
                             c.stream),
            "clip kernel");
      });
    }
    return absl::OkStatus();
  }
  if (UpdateKindOf(op)) {
    SEQUENT_RETURN_IF_ERROR(ExpectAllF32(node));
    auto it = update_groups.find(current_);
    if (it == update_groups.end()) {
      return absl::InternalError("[" + op + "] has no update group");
    }
    std::shared_ptr<UpdateGroup> group = it->second;
    UpdateGroup::Member m;
    const size_t slots = node.outputs.size() - 1;
    m.var = node.inputs[0];
    m.grad = node.inputs[1];
    m.var_out = node.outputs[0];
    if (slots >= 1) {
      m.slot0 = node.inputs[2];
      m.slot0_out = node.outputs[1];
    }
    if (slots >= 2) {
      m.slot1 = node.inputs[3];
      m.slot1_out = node.outputs[2];
    }
    m.n = Numel(node.inputs[0]);
    group->members.push_back(m);
    if (group->last == current_) AddUpdateGroup(group);
    return absl::OkStatus();
  }
  return Unsupported(node, absl::StrCat("does not lower ", op, " yet"));
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
}  // namespace cuda

CudaBackend::CudaBackend(Options options, const OpRegistry* registry)
    : options_(options),
      registry_(registry != nullptr ? registry : &ops::DefaultRegistry()) {}

absl::Status CudaBackend::DeviceStatus() { return cuda::CheckDevice(); }

bool CudaBackend::SupportsFusedDense(absl::string_view activation) const {
  // Every activation: relu and tanh-gelu are cuBLASLt epilogues, the others a
  // kernel over the GEMM's output.
  return ops::ParseActivation(activation).ok();
}

std::unique_ptr<VariableStore> CudaBackend::CreateVariableStore() const {
  return std::make_unique<cuda::CudaVariableStore>();
}

absl::Status CudaBackend::SetComputeDType(DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the cuda backend computes in f32 or bf16, not ", DTypeName(dtype)));
  }
  compute_dtype_ = dtype;
  return absl::OkStatus();
}

namespace {

// Compile's host half: validates, plans memory and lowers every node (no
// CUDA call, so it fails the same with or without a GPU).
absl::StatusOr<std::unique_ptr<cuda::CudaExecutableImpl>> LowerOnHost(
    const Graph& graph, int64_t batch_size, VariableStore* store,
    const OpRegistry& registry, bool use_cuda_graph, bool bf16) {
  using cuda::CheckValue;
  if (batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be positive, got ", batch_size));
  }
  auto* cstore = dynamic_cast<cuda::CudaVariableStore*>(store);
  if (cstore == nullptr) {
    return absl::InvalidArgumentError(
        "the cuda backend needs a variable store from its own "
        "CreateVariableStore()");
  }
  SEQUENT_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    for (ValueId in : node.inputs) {
      SEQUENT_RETURN_IF_ERROR(WithLayer(
          node, CheckValue(graph, in, absl::StrCat("an input of ", node.op))));
    }
  }
  for (const GraphOutput& out : graph.outputs()) {
    SEQUENT_RETURN_IF_ERROR(
        CheckValue(graph, out.value, absl::StrCat("output '", out.name, "'")));
  }
  for (const VariableUpdate& u : graph.updates()) {
    SEQUENT_RETURN_IF_ERROR(
        CheckValue(graph, u.value,
                   absl::StrCat("the update of variable '", u.variable, "'")));
  }

  auto exe = std::make_unique<cuda::CudaExecutableImpl>();
  exe->use_graph = use_cuda_graph;
  exe->bf16 = bf16;
  exe->batch_size_ = batch_size;
  exe->store = cstore;
  exe->graph = BindBatch(graph, batch_size);
  Graph& g = exe->graph;
  for (const GraphOutput& out : g.outputs()) {
    exe->output_types.push_back(g.type(out.value));
  }
  for (NodeId id : order) {
    const Node& node = g.node(id);
    if ((node.op == "reshape" || node.op == "flatten") &&
        node.inputs.size() == 1 && node.outputs.size() == 1) {
      g.ReplaceAllUsesWith(node.outputs[0], node.inputs[0]);
    }
  }
  // Optimizer updates run fused at the last member's step: their non-variable
  // inputs (gradients) must stay live until then, which a graph output
  // guarantees in the plan. Updates whose results other nodes read run alone.
  const size_t real_outputs = g.outputs().size();
  std::map<std::string, std::shared_ptr<cuda::UpdateGroup>> groups;
  absl::flat_hash_map<NodeId, std::shared_ptr<cuda::UpdateGroup>> group_of;
  for (NodeId id : order) {
    const Node& node = g.node(id);
    auto kind = cuda::UpdateKindOf(node.op);
    if (!kind || node.inputs.size() < 4) continue;
    bool read_by_nodes = false;
    for (ValueId v : node.outputs) read_by_nodes |= !g.Users(v).empty();
    cuda::UpdateHyper h;
    h.momentum = static_cast<float>(FloatAttrOr(node.attrs, "momentum", 0.0));
    h.nesterov = BoolAttrOr(node.attrs, "nesterov", false);
    h.beta_1 = static_cast<float>(FloatAttrOr(node.attrs, "beta_1", 0.9));
    h.beta_2 = static_cast<float>(FloatAttrOr(node.attrs, "beta_2", 0.999));
    h.epsilon = static_cast<float>(FloatAttrOr(node.attrs, "epsilon", 1e-7));
    h.weight_decay =
        static_cast<float>(FloatAttrOr(node.attrs, "weight_decay", 0.004));
    const double rho = FloatAttrOr(node.attrs, "rho", 0.9);
    h.rho = static_cast<float>(rho);
    h.one_minus_rho = static_cast<float>(1.0 - rho);
    const ValueId lr = node.inputs[node.inputs.size() - 2];
    const ValueId it = node.inputs[node.inputs.size() - 1];
    const std::string key =
        read_by_nodes
            ? absl::StrCat("node ", id)
            : absl::StrCat(node.op, "/", h.momentum, "/", h.nesterov, "/",
                           h.beta_1, "/", h.beta_2, "/", h.epsilon, "/",
                           h.weight_decay, "/", rho, "/", lr, "/", it);
    auto& group = groups[key];
    if (group == nullptr) {
      group = std::make_shared<cuda::UpdateGroup>();
      group->kind = *kind;
      group->hyper = h;
      group->lr = lr;
      group->iterations = it;
    }
    group_of[id] = group;
    if (!read_by_nodes) {
      for (ValueId in : node.inputs) {
        if (g.producer(in).op != kVariableOp)
          g.AddOutput("cuda/keep_alive", in);
      }
    }
  }
  SEQUENT_ASSIGN_OR_RETURN(exe->plan, PlanMemory(g, registry, 256));
  g.mutable_outputs().resize(real_outputs);
  for (NodeId id : exe->plan.schedule) {
    if (auto it = group_of.find(id); it != group_of.end())
      it->second->last = id;
  }

  const Graph built_shapes = BindBatch(graph, batch_size);
  cuda::Lowering lowering(*exe);
  lowering.set_shapes(&built_shapes);
  lowering.update_groups = group_of;
  {
    absl::flat_hash_map<NodeId, int> pos;
    for (size_t i = 0; i < exe->plan.schedule.size(); ++i)
      pos[exe->plan.schedule[i]] = static_cast<int>(i);
    const auto f32_2d = [&](ValueId v) {
      return g.type(v).dtype == DType::kF32 && g.type(v).shape.rank() == 2;
    };
    for (NodeId m : exe->plan.schedule) {
      const Node& mm = g.node(m);
      if (mm.op != "matmul" || mm.inputs.size() != 2 ||
          !BoolAttrOr(mm.attrs, "transpose_a", false) ||
          BoolAttrOr(mm.attrs, "transpose_b", false) || !f32_2d(mm.inputs[0]) ||
          !f32_2d(mm.inputs[1]) || !f32_2d(mm.outputs[0])) {
        continue;
      }
      const ValueId dz = mm.inputs[1];
      NodeId owner = kNoNode;
      ValueId db = kNoValue;
      const NodeId producer = g.value(dz).producer;
      if (g.node(producer).op == "activation_bias_grad" &&
          g.node(producer).outputs.size() == 2 &&
          g.node(producer).outputs[0] == dz) {
        owner = producer;
        db = g.node(producer).outputs[1];
      } else {
        for (const auto& [user, index] : g.Users(dz)) {
          const Node& r = g.node(user);
          if (r.op == "reduce_sum" && pos[user] < pos[m] &&
              IntListAttrOr(r.attrs, "axes", {}) == std::vector<int64_t>{0} &&
              !BoolAttrOr(r.attrs, "keepdims", false)) {
            owner = user;
            db = r.outputs[0];
            break;
          }
        }
      }
      if (owner == kNoNode || lowering.bias_grad_taken.contains(owner))
        continue;
      // Written at the matmul's step: nothing may read it before then.
      bool read_later = true;
      for (const auto& [user, index] : g.Users(db)) {
        read_later = read_later && pos[user] > pos[m];
      }
      if (!read_later) continue;
      lowering.bias_grad_of_matmul[m] = db;
      lowering.bias_grad_taken.insert(owner);
    }
  }
  exe->locations.resize(g.num_values());
  absl::flat_hash_map<std::string, TensorType> variable_types;
  std::vector<NodeId>& new_variables = exe->new_variables;
  std::vector<std::string> input_names;
  for (NodeId id : exe->plan.schedule) {
    const Node& node = g.node(id);
    if (node.op == kInputOp || node.op == kVariableOp ||
        node.op == kConstantOp) {
      if (node.outputs.size() != 1 || !node.inputs.empty()) {
        return WithLayer(
            node, absl::InvalidArgumentError(absl::StrCat(
                      node.op, " nodes take no inputs and have one output")));
      }
      const ValueId out = node.outputs[0];
      const TensorType& type = g.type(out);
      if (node.op == kConstantOp) {
        auto t = ConstantValue(node, type);
        if (!t.ok()) return WithLayer(node, t.status());
        exe->constants.emplace(out, *std::move(t));
        exe->locations[out].kind = cuda::Location::Kind::kConstant;
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
        exe->inputs.push_back({*name, out});
        input_names.push_back(*name);
        continue;
      }
      auto [it, inserted] = variable_types.emplace(*name, type);
      if (!inserted && it->second != type) {
        return absl::InvalidArgumentError(
            absl::StrCat("variable '", *name, "' appears with types ",
                         it->second.ToString(), " and ", type.ToString()));
      }
      if (const auto* stored = cstore->Find(*name)) {
        if (stored->type != type) {
          return absl::InvalidArgumentError(
              absl::StrCat("variable '", *name, "' in the store has type ",
                           stored->type.ToString(), ", the graph expects ",
                           type.ToString()));
        }
      } else if (inserted) {
        new_variables.push_back(id);
      }
      exe->locations[out].kind = cuda::Location::Kind::kVariable;
      exe->locations[out].variable = *name;
      continue;
    }
    // The shape rule on the symbolic graph fills attribute defaults and checks
    // the recorded types.
    const Node& symbolic = graph.node(id);
    std::vector<TensorType> input_types;
    for (ValueId in : symbolic.inputs) input_types.push_back(graph.type(in));
    Attributes attrs = symbolic.attrs;
    auto inferred = registry.InferTypes(symbolic.op, input_types, attrs);
    if (!inferred.ok()) return WithLayer(node, inferred.status());
    if (inferred->size() != symbolic.outputs.size()) {
      return WithLayer(node, absl::InvalidArgumentError(absl::StrCat(
                                 "[", node.op, "] the graph gives it ",
                                 symbolic.outputs.size(),
                                 " outputs, the op has ", inferred->size())));
    }
    for (size_t i = 0; i < inferred->size(); ++i) {
      if ((*inferred)[i] != graph.type(symbolic.outputs[i])) {
        return WithLayer(
            node,
            absl::InvalidArgumentError(absl::StrCat(
                "[", node.op, "] output ", i, " is recorded as ",
                graph.type(symbolic.outputs[i]).ToString(),
                " but the shape rule gives ", (*inferred)[i].ToString())));
      }
    }
    if (node.op == "reshape" || node.op == "flatten") {
      exe->locations[node.outputs[0]].kind = cuda::Location::Kind::kAlias;
      exe->locations[node.outputs[0]].alias_of = node.inputs[0];
      continue;
    }
    lowering.set_label(node.layer.empty() ? node.op
                                          : absl::StrCat(node.op, " (layer '",
                                                         node.layer, "')"));
    lowering.set_node(id);
    absl::Status lowered = lowering.LowerNode(node, attrs);
    if (!lowered.ok() && !absl::StartsWith(lowered.message(), "[")) {
      lowered =
          absl::Status(lowered.code(),
                       absl::StrCat("[", node.op,
                                    "] the cuda backend: ", lowered.message()));
    }
    SEQUENT_RETURN_IF_ERROR(WithLayer(node, lowered));
  }
  for (const GraphOutput& out : g.outputs()) {
    exe->output_names_.push_back(out.name);
    exe->output_values.push_back(out.value);
  }
  exe->expected_inputs =
      input_names.empty() ? "none" : absl::StrJoin(input_names, ", ");

  for (const VariableUpdate& u : g.updates()) {
    TensorType var_type;
    if (auto it = variable_types.find(u.variable); it != variable_types.end()) {
      var_type = it->second;
    } else if (const auto* stored = cstore->Find(u.variable)) {
      var_type = stored->type;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "the graph updates variable '", u.variable,
          "', which it does not declare and the store does not hold"));
    }
    if (g.type(u.value) != var_type) {
      return absl::InvalidArgumentError(
          absl::StrCat("the update of variable '", u.variable, "' has type ",
                       g.type(u.value).ToString(), ", the variable has type ",
                       var_type.ToString()));
    }
  }
  for (ValueId v = 0; v < g.num_values(); ++v) {
    cuda::Location& loc = exe->locations[v];
    if (loc.kind != cuda::Location::Kind::kArena) continue;
    const BufferAssignment& b = exe->plan.buffers[v];
    if (b.kind == BufferAssignment::Kind::kVariable) {
      loc.kind = cuda::Location::Kind::kVariable;
      loc.variable = b.variable;
    } else {
      loc.offset = b.offset;
    }
  }
  for (const VariableUpdate& u : g.updates()) {
    ValueId v = u.value;
    while (exe->locations[v].kind == cuda::Location::Kind::kAlias)
      v = exe->locations[v].alias_of;
    const bool in_other_variable =
        exe->locations[v].kind == cuda::Location::Kind::kVariable &&
        exe->locations[v].variable != u.variable;
    exe->updates.push_back({u.value, u.variable, in_other_variable ? 0 : -1,
                            exe->plan.buffers[u.value].bytes});
  }

  return exe;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> CudaBackend::LoweredSteps(
    const Graph& graph, int64_t batch_size, VariableStore* store) const {
  SEQUENT_ASSIGN_OR_RETURN(
      std::unique_ptr<cuda::CudaExecutableImpl> exe,
      LowerOnHost(graph, batch_size, store, *registry_, options_.use_cuda_graph,
                  compute_dtype_ == DType::kBF16));
  std::vector<std::string> labels;
  for (const auto& w : exe->weight_copies) labels.push_back(w.label);
  for (const auto& step : exe->steps) labels.push_back(step.label);
  return labels;
}

absl::StatusOr<std::unique_ptr<Executable>> CudaBackend::Compile(
    const Graph& graph, int64_t batch_size, VariableStore* store) const {
  SEQUENT_ASSIGN_OR_RETURN(
      std::unique_ptr<cuda::CudaExecutableImpl> exe,
      LowerOnHost(graph, batch_size, store, *registry_, options_.use_cuda_graph,
                  compute_dtype_ == DType::kBF16));
  // Device phase: everything above fails the same without a GPU.
  SEQUENT_RETURN_IF_ERROR(cuda::CheckDevice());
  const Graph& g = exe->graph;
  cuda::CudaVariableStore* cstore = exe->store;
  for (NodeId id : exe->new_variables) {
    const Node& node = g.node(id);
    auto value = InitializeVariable(node.attrs, g.type(node.outputs[0]));
    if (!value.ok()) return WithLayer(node, value.status());
    SEQUENT_RETURN_IF_ERROR(
        cstore->Write(StringAttrOr(node.attrs, "name", ""), *value));
  }
  SEQUENT_RETURN_IF_ERROR(exe->Setup());
  return std::unique_ptr<Executable>(std::move(exe));
}

}  // namespace sequent
