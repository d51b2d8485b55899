#ifndef SEQUENT_BACKENDS_CUDA_BLASLT_MATMUL_H_
#define SEQUENT_BACKENDS_CUDA_BLASLT_MATMUL_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace sequent::cuda {

// c[m,n] = a[m,k] * b[k,n] (+ bias[n], then ReLU when `relu`), all row-major f32 on the
// device, through one cuBLASLt call with the BIAS / RELU_BIAS epilogue.
absl::Status MatmulRowMajor(cublasLtHandle_t handle, const float* a,
                            const float* b, const float* bias, bool relu,
                            float* c, int64_t m, int64_t n, int64_t k,
                            void* workspace, size_t workspace_bytes,
                            cudaStream_t stream);

}  // namespace sequent::cuda

#endif  // SEQUENT_BACKENDS_CUDA_BLASLT_MATMUL_H_
