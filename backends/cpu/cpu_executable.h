#ifndef SEQUENT_BACKENDS_CPU_CPU_EXECUTABLE_H_
#define SEQUENT_BACKENDS_CPU_CPU_EXECUTABLE_H_

// The CPU backend's executable and its buffers: where each value lives, the
// variable store with its bf16 copies, the schedule of oneDNN primitives and
// our loops, and Run. Internal to backends/cpu (Lowering fills it, CpuBackend
// compiles it).

#include <cstdint>
#include <cstdlib>
#include <dnnl.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "backends/backend.h"
#include "backends/host_variable_store.h"
#include "core/graph.h"
#include "core/memory_planner.h"
#include "core/status_macros.h"

namespace sequent::cpu {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

// Scratchpad memories of the steps point at one shared buffer, named by this
// value id.
inline constexpr ValueId kScratchpad = -2;
// Buffers outside the graph's values (max-pooling workspaces, loop scratch)
// are named kExtraBase - k for the executable's k-th extra buffer.
inline constexpr ValueId kExtraBase = -3;

// The backend's own op for a dense layer's weight and bias gradients together
// (one oneDNN inner_product_backward_weights): (x, dz) -> (dW, db). Compile
// rewrites its private copy of the graph to it (RewriteDenseBackward).
inline constexpr absl::string_view kDenseBackwardWeightsOp =
    "cpu.dense_backward_weights";
// Likewise conv2d_backprop_filter and the bias sum: (x, dz) -> (dkernel, db),
// with conv2d_backprop_filter's attributes.
inline constexpr absl::string_view kConvBackwardWeightsOp =
    "cpu.conv2d_backward_weights";
// A convolution with its bias and activation (RewriteConvBiasActivation):
// (x, kernel, bias) -> activation(conv2d(x, kernel) + bias), with conv2d's
// attributes and "activation" (an ops::ParseActivation name): one oneDNN
// convolution with a bias and an eltwise post-op.
inline constexpr absl::string_view kConvBiasActivationOp =
    "cpu.conv2d_bias_activation";
// A weight penalty's steps (RewriteWeightPenalties): (w) -> the sum of w's
// squares, f32[]; and (g, w, s1, ..., sk) -> g + s1 * ... * sk * w, for
// same-shaped g and w and scalar s's.
inline constexpr absl::string_view kSumOfSquaresOp = "cpu.sum_of_squares";
inline constexpr absl::string_view kAddScaledOp = "cpu.add_scaled";

// UnimplementedError "[op] the cpu backend <why>".
absl::Status Unsupported(const Node& node, absl::string_view why);

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

inline constexpr int64_t kAlign = 64;
inline int64_t AlignUp(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct AlignedFree {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte[], AlignedFree>;
inline AlignedBuffer AllocateAligned(int64_t bytes) {
  return AlignedBuffer(static_cast<std::byte*>(
      std::aligned_alloc(kAlign, AlignUp(std::max<int64_t>(bytes, 1)))));
}

// The cpu backend's variable store: host tensors, plus for variables that
// bf16 GEMMs read a persistent bf16 copy shared by every executable compiled
// on the store, so that the weights are not converted again each run. A
// version counter per tracked variable, bumped by every write (Write, and the
// executables' updates), tells when a copy is stale; Adam's update writes the
// copy in the same pass as the weights (no conversion in the next step).
//
// A dense kernel (with its gradient's optimizer slots) may be kept in the
// blocked layout oneDNN's inner products prefer (weight_layout.h decides, at
// the first Compile that reads it): Read and Write convert at this boundary,
// so callers (get_weights, set_weights, save, load) only see row-major data.
class CpuVariableStore : public HostVariableStore {
 public:
  struct Shadow {
    uint64_t version = 1;  // Of the f32 variable.
    uint64_t holds = 0;    // The version `copy` holds.
    AlignedBuffer copy;    // n bf16 values, allocated at Compile.
    int64_t n = 0;
  };

  absl::StatusOr<Tensor> Read(absl::string_view name) const override;
  absl::Status Write(absl::string_view name, const Tensor& value) override;

  // A variable kept in a blocked layout: oneDNN's view of its row-major
  // data (a kernel [IC, OC] is the weights {OC, IC} in `io`), and the
  // blocked layout of the same dims it is stored in.
  struct Layout {
    memory::desc plain, blocked;
  };
  // nullptr when the variable is stored row-major.
  const Layout* LayoutOf(absl::string_view name) const {
    auto it = layouts_.find(name);
    return it == layouts_.end() ? nullptr : &it->second;
  }
  // Converts the stored (row-major) variable to `layout.blocked`, of the same
  // size, and keeps it so. Only for a variable no executable reads yet
  // (!IsBound).
  absl::Status SetLayout(absl::string_view name, const Layout& layout);
  // Whether a compiled executable reads the variable (in its current layout,
  // which can then no longer change).
  bool IsBound(absl::string_view name) const { return bound_.contains(name); }
  void Bind(absl::string_view name) { bound_.insert(std::string(name)); }

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
  absl::flat_hash_map<std::string, Layout> layouts_;
  absl::flat_hash_set<std::string> bound_;
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
  // `args` as oneDNN's C API takes them: executing through it skips the C++
  // API's per-call conversion of an argument map (an allocation per call).
  std::vector<dnnl_exec_arg_t> exec_args;
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
  // The CPU runs bf16 GEMMs natively (AVX512-BF16), not emulated.
  bool bf16_native = false;
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

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_CPU_EXECUTABLE_H_
