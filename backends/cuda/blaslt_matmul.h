#ifndef SEQUENT_BACKENDS_CUDA_BLASLT_MATMUL_H_
#define SEQUENT_BACKENDS_CUDA_BLASLT_MATMUL_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sequent::cuda {

// c[m,n] = a[m,k] * b[k,n] (+ bias[n], then ReLU when `relu`), all row-major
// f32 on the device, through one cuBLASLt call with the BIAS / RELU_BIAS
// epilogue.
absl::Status MatmulRowMajor(cublasLtHandle_t handle, const float* a,
                            const float* b, const float* bias, bool relu,
                            float* c, int64_t m, int64_t n, int64_t k,
                            void* workspace, size_t workspace_bytes,
                            cudaStream_t stream);

// A row-major f32 matmul c[m,n] = op(a) op(b) (+ epilogue) whose cuBLASLt
// descriptors and algorithm are chosen once (cublasLtMatmulAlgoGetHeuristic),
// then run any number of times (CUDA-graph capturable: no allocation).
// kBGradA also writes the bias gradient: the sum over k of the first cuBLASLt
// operand, i.e. for c = aᵀ b (transpose_a) the column sums of b, into `bias`.
enum class Epilogue {
  kNone,
  kBias,
  kRelu,
  kReluBias,
  kGelu,
  kGeluBias,
  kBGradA
};
struct LtMatmulShape {
  int64_t m = 0, n = 0, k = 0;
  bool transpose_a = false;  // a is stored [k, m]
  bool transpose_b = false;  // b is stored [n, k]
  Epilogue epilogue = Epilogue::kNone;
  // a and b in bf16 (CUDA_R_16BF); c, the bias / bias gradient, the scale
  // and the accumulation stay f32 (CUBLAS_COMPUTE_32F): mixed precision.
  bool bf16_inputs = false;
};

class LtMatmul {
 public:
  static absl::StatusOr<std::unique_ptr<LtMatmul>> Create(
      cublasLtHandle_t handle, const LtMatmulShape& shape,
      size_t workspace_bytes);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // a and b are float, or uint16_t bf16 bits when the shape has bf16_inputs.
  absl::Status Run(cublasLtHandle_t handle, const void* a, const void* b,
                   const float* bias, float* c, void* workspace,
                   cudaStream_t stream) const;
  bool bf16_inputs() const { return bf16_inputs_; }
  Epilogue epilogue() const { return epilogue_; }
  // "cublasLt m x n x k RELU_BIAS" (" bf16" when the inputs are), for
  // profiles and errors.
  const std::string& description() const { return description_; }

 private:
  LtMatmul() = default;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  size_t workspace_bytes_ = 0;
  bool has_bias_ = false;
  bool bf16_inputs_ = false;
  Epilogue epilogue_ = Epilogue::kNone;
  std::string description_;
};

}  // namespace sequent::cuda

#endif  // SEQUENT_BACKENDS_CUDA_BLASLT_MATMUL_H_
