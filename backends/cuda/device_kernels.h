#ifndef SEQUENT_BACKENDS_CUDA_DEVICE_KERNELS_H_
#define SEQUENT_BACKENDS_CUDA_DEVICE_KERNELS_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace sequent::cuda {

// y[i] = alpha * x[i] + y[i] over n elements, on `stream`.
cudaError_t LaunchAxpy(float alpha, const float* x, float* y, int64_t n,
                       cudaStream_t stream);

}  // namespace sequent::cuda

#endif  // SEQUENT_BACKENDS_CUDA_DEVICE_KERNELS_H_
