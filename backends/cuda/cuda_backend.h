#ifndef SEQUENT_BACKENDS_CUDA_CUDA_BACKEND_H_
#define SEQUENT_BACKENDS_CUDA_CUDA_BACKEND_H_

#include <memory>
#include <string>

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
};

// The CUDA backend ("cuda"): cuBLASLt matmuls with bias/activation epilogues
// and cuDNN convolutions and training batch norms (algorithms chosen once at
// Compile), our own kernels for everything else, a fused multi-tensor
// optimizer update. f32 math only (casts also move bf16/i32/i64); what it
// cannot run fails at Compile, naming the op.
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

 private:
  Options options_;
  const OpRegistry* registry_;
};

}  // namespace sequent

#endif  // SEQUENT_BACKENDS_CUDA_CUDA_BACKEND_H_
