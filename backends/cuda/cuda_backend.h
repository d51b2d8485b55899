#ifndef SEQUENT_BACKENDS_CUDA_CUDA_BACKEND_H_
#define SEQUENT_BACKENDS_CUDA_CUDA_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "backends/backend.h"
#include "core/op_registry.h"

namespace sequent {

// A CUDA executable: the whole graph as one CUDA graph on one stream, buffers
// in one device arena from the memory plan, variables resident on the device.
class CudaExecutable : public Executable {
 public:
  // Validates `feeds` and starts copying them host -> pinned -> device on the
  // copy stream (two slots, so the copy of batch i+1 overlaps step i). A later
  // Run with no feeds consumes the oldest prefetched batch; at most two may be
  // pending.
  virtual absl::Status Prefetch(absl::Span<const Feed> feeds) = 0;
  // One line per launched step, in order: its label, and for GEMMs the
  // cuBLASLt call chosen at Compile ("cublasLt 128x512x784 RELU_BIAS bf16").
  virtual std::vector<std::string> StepImplementations() const = 0;
};

// The CUDA backend ("cuda"): cuBLASLt matmuls with bias/activation epilogues
// and cuDNN convolutions and training batch norms (algorithms chosen once at
// Compile), our own kernels for everything else, a fused multi-tensor
// optimizer update. f32 math (casts also move bf16/i32/i64); what it cannot
// run fails at Compile, naming the op.
//
// Mixed precision (SetComputeDType(DType::kBF16), Keras's "mixed_bfloat16"):
// the GEMMs (dense, matmul, the input and weight gradients, BGRADA included)
// read bf16 copies of their operands and accumulate and write f32
// (CUBLAS_COMPUTE_32F, f32 bias); each copy is made by a conversion kernel
// once per step, into a buffer allocated at Compile, and shared by every GEMM
// that reads the value. A weight's copy is kept across steps: the fused
// optimizer rewrites it with the weight, and Run converts it again only after
// the variable changed otherwise (store versions). Weights (the master copy),
// optimizer state and every other op stay f32. A GEMM for which cuBLASLt offers
// no bf16 algorithm runs f32 (decided at Compile).
class CudaBackend : public Backend {
 public:
  struct Options {
    // Capture the step as a CUDA graph at the first Run (off: launch every
    // kernel each Run, for debugging).
    bool use_cuda_graph = true;
  };
  CudaBackend() : CudaBackend(Options{}) {}
  explicit CudaBackend(Options options, const OpRegistry* registry = nullptr);

  std::string name() const override { return "cuda"; }
  bool SupportsFusedDense(absl::string_view activation) const override;
  std::unique_ptr<VariableStore> CreateVariableStore() const override;
  // Lowers the whole graph first (an unsupported op fails here, GPU or not),
  // then needs a device: without one, FailedPrecondition "CUDA requested but
  // no GPU is visible: ...".
  absl::StatusOr<std::unique_ptr<Executable>> Compile(
      const Graph& graph, int64_t batch_size,
      VariableStore* store) const override;

  // OK when a GPU is usable, else the FailedPrecondition above.
  static absl::Status DeviceStatus();

  // The precision of the GEMMs of executables compiled afterwards: DType::kF32
  // (the default) or DType::kBF16 (mixed precision, above).
  absl::Status SetComputeDType(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }

  // The host half of Compile (no device needed): the labels of the steps it
  // would launch, in order; bf16 conversions read "to bf16 for <gemm>" and
  // GEMMs that will read bf16 end in " [bf16]" (cuBLASLt may still pick f32
  // for one at Compile, see CudaExecutable::StepImplementations).
  absl::StatusOr<std::vector<std::string>> LoweredSteps(
      const Graph& graph, int64_t batch_size, VariableStore* store) const;

 private:
  Options options_;
  const OpRegistry* registry_;
  DType compute_dtype_ = DType::kF32;
};

}  // namespace sequent

#endif  // SEQUENT_BACKENDS_CUDA_CUDA_BACKEND_H_
