#ifndef SEQUENT_BACKENDS_CPU_CPU_BACKEND_H_
#define SEQUENT_BACKENDS_CPU_CPU_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "backends/backend.h"
#include "core/dtype.h"
#include "core/graph.h"
#include "core/memory_planner.h"
#include "core/op_registry.h"

namespace sequent {

// Lowers a graph to oneDNN 2.6 primitives (created once at Compile) plus a few
// OpenMP loops of our own for what oneDNN lacks (losses, metrics, dropout,
// integer casts). Every buffer is bound at Compile; Run allocates nothing
// (except `outputs` tensors of a new type). Variables live in a host variable
// store (backends/host_variable_store.h) and are read and updated in place.
//
// Supported: every op of ops/op_list.h (forward, backward, optimizer), f32
// through oneDNN (f64 only in our loops: binaries, casts, dropout, losses and
// their gradients, metrics, optimizer updates, clipping, the small backward
// ops); anything else is an UnimplementedError naming the op and the layer at
// Compile, never a fallback. An executable runs one call at a time (its
// buffers are shared).
//
// Training: eltwise backward from the saved output, softmax/logsoftmax,
// convolution, pooling (max with the forward's workspace) backward in oneDNN;
// a dense layer's weight and bias gradients are one oneDNN
// inner_product_backward_weights and its input gradient an
// inner_product_backward_data; a convolution's filter and bias gradients one
// convolution_backward_weights (Compile rewrites its copy of the graph into
// backend-private `cpu.*` nodes). Losses' gradients, optimizer updates (one
// pass per variable, in place), clipping, normalization gradients and the
// small backward ops are our loops (backends/cpu/train_kernels.h). Buffers
// come from the core memory planner (core/memory_planner.h): arena offsets
// reused across lifetimes, updates written in place into their variables,
// reshapes aliasing their input; feeds are read in place from the caller's
// tensors.
//
// Mixed precision (SetComputeDType(DType::kBF16), Keras's "mixed_bfloat16"):
// the GEMM-heavy primitives (dense and matmul forward, a dense layer's input
// and weight gradients, conv2d and its two gradients) read bf16 copies of
// their f32 operands (sources, weights, output gradients) and accumulate and
// write f32. Everything else, the memory plan and the variables stay f32. An
// activation's or gradient's copy is one reorder scheduled before the first
// primitive that reads it, into a buffer allocated at Compile, and shared by
// every later primitive of the run reading the same value (an output
// gradient's by the input and weight gradients). A weight's copy lives in the
// store (CreateVariableStore), shared by all its executables and kept across
// runs: every write bumps the variable's version, Adam's update rewrites the
// copy in the same pass, and a step converts the weight again only when it is
// stale (after Write, or another optimizer's update). A GEMM with a dimension
// under 16 (predict at batch 1, a 10-class output layer) stays f32: there the
// conversions and oneDNN's bf16 kernels cost more than they save.
//
// Dense kernels, with their gradients and optimizer slots, are stored in the
// blocked layout oneDNN's inner products prefer when every step touching
// them can read it (backends/cpu/weight_layout.h): no weight reorder per run;
// the store converts at its boundary (get_weights, set_weights, save, load).
// Convolution kernels are handed to oneDNN in the blocked layout its
// primitive picks (a small reorder per run; activations stay NHWC).
//
// Later: blocked convolution kernels in the store, and blocked activations.
class CpuBackend : public Backend {
 public:
  // Threads for oneDNN and our loops: SEQUENT_NUM_THREADS when set and
  // positive, else all cores (OpenMP's default).
  // `registry` (for shape rules and attribute defaults) defaults to
  // ops::DefaultRegistry(); tests may pass their own.
  explicit CpuBackend(const OpRegistry* registry = nullptr);

  std::string name() const override { return "cpu"; }
  bool SupportsFusedDense(absl::string_view activation) const override;
  std::unique_ptr<VariableStore> CreateVariableStore() const override;
  absl::StatusOr<std::unique_ptr<Executable>> Compile(
      const Graph& graph, int64_t batch_size,
      VariableStore* store) const override;

  // Threads used by executables compiled afterwards (oneDNN primitives are
  // tuned for the thread count they are created with). `num_threads` <= 0 means
  // all cores, except for a step too small to split (no convolutions, under
  // 4M multiply-adds, 1 MB of weights and 1 MB of values: scikit-learn's
  // small nets), which runs on one.
  void SetNumThreads(int num_threads);
  int num_threads() const { return num_threads_; }

  // Deterministic mode, for every executable compiled afterwards in this
  // process: a fixed GEMM formulation (inner product) instead of the faster one
  // timed at Compile, since a timing-based choice can differ between two
  // compiles and change the rounding.
  static void SetFixedKernelChoice(bool fixed);

  // Whether training executables compiled afterwards on two or more threads
  // split each wide dense layer between the threads by outputs, from the
  // forward to the optimizer update, so that no core touches what the other
  // wrote (backends/cpu/owned_team.h): on by default; off with
  // SEQUENT_CPU_OWNED=0 or SetOwnedLayers(false), for comparing.
  static void SetOwnedLayers(bool owned);
  static bool owned_layers();

  // Whether runs flush denormal floats to zero (backends/cpu/denormals.h), for
  // every executable of this process from its next run: on by default, as in
  // TensorFlow; off with SEQUENT_FLUSH_DENORMALS=0 or SetFlushDenormals(false)
  // (PyTorch's default: exact IEEE results, slower near zero).
  static void SetFlushDenormals(bool flush);
  static bool flush_denormals();

  // The element type the GEMM-heavy ops compute in, for executables compiled
  // afterwards: DType::kF32 (the default) or DType::kBF16 (mixed precision,
  // see above); anything else is an InvalidArgumentError.
  absl::Status SetComputeDType(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }
  // How this CPU runs bf16 GEMMs in oneDNN: natively (AVX512-BF16 / AMX),
  // emulated on AVX-512 (correct, slower), or not at all (SetComputeDType
  // then still succeeds; Compile returns an UnimplementedError saying so).
  enum class Bf16Support { kNative, kEmulated, kNone };
  static Bf16Support bf16_support();

  // One line per step of an executable this backend compiled: the step
  // ("op (layer 'name')"), then its implementation (oneDNN's, or "loop"),
  // with " [bf16]" when a primitive reads or writes bf16; "" for any other
  // executable. Unlike ProfileString it needs no profiling.
  static std::vector<std::string> StepImplementations(
      const Executable& executable);

  // Whether `store` (one this backend created) keeps `variable` in oneDNN's
  // blocked weights layout (backends/cpu/weight_layout.h); its Read and
  // Write still see row-major data.
  static bool StoresBlocked(const VariableStore& store,
                            absl::string_view variable);

  // The threads an executable this backend compiled runs on (0 for any other
  // executable).
  static int NumThreadsOf(const Executable& executable);

  // The memory plan of an executable this backend compiled (null for any
  // other executable), and the plan's table (MemoryPlan::ToString over the
  // batch-bound graph the plan numbers) for tools to print.
  static const MemoryPlan* MemoryPlanOf(const Executable& executable);
  static std::string MemoryPlanString(const Executable& executable);
  // With SEQUENT_CPU_PROFILE set when the executable was compiled, every step
  // is timed: the table of steps by time per run (op, layer, oneDNN
  // implementation), else "".
  static std::string ProfileString(const Executable& executable);

 private:
  const OpRegistry* registry_;
  int num_threads_;
  DType compute_dtype_ = DType::kF32;
};

}  // namespace sequent

#endif  // SEQUENT_BACKENDS_CPU_CPU_BACKEND_H_
