#include "backends/cuda/device_kernels.h"

namespace sequent::cuda {
namespace {

__global__ void AxpyKernel(float alpha, const float* __restrict__ x,
                           float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    y[i] = alpha * x[i] + y[i];
  }
}

}  // namespace

cudaError_t LaunchAxpy(float alpha, const float* x, float* y, int64_t n,
                       cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(wanted < 65535 ? (wanted > 0 ? wanted : 1) : 65535);
  AxpyKernel<<<blocks, kThreads, 0, stream>>>(alpha, x, y, n);
  return cudaGetLastError();
}

}  // namespace sequent::cuda
