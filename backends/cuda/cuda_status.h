#ifndef SEQUENT_BACKENDS_CUDA_CUDA_STATUS_H_
#define SEQUENT_BACKENDS_CUDA_CUDA_STATUS_H_

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "absl/status/status.h"

namespace sequent::cuda {

// Each vendor status becomes an absl::Status naming the call and the library's
// message.
absl::Status FromCuda(cudaError_t error, const char* call);
absl::Status FromCublas(cublasStatus_t status, const char* call);
absl::Status FromCudnn(cudnnStatus_t status, const char* call);

// True when the CUDA runtime sees at least one usable device.
bool DeviceAvailable();

// OK when a device is usable; otherwise FailedPrecondition "CUDA requested but
// no GPU is visible: <the runtime's error>".
absl::Status CheckDevice();

}  // namespace sequent::cuda

#define SEQUENT_CUDA_RETURN_IF_ERROR(expr)                                    \
  do {                                                                        \
    if (absl::Status _s = ::sequent::cuda::FromCuda((expr), #expr); !_s.ok()) \
      return _s;                                                              \
  } while (0)

#define SEQUENT_CUBLAS_RETURN_IF_ERROR(expr)                          \
  do {                                                                \
    if (absl::Status _s = ::sequent::cuda::FromCublas((expr), #expr); \
        !_s.ok())                                                     \
      return _s;                                                      \
  } while (0)

#define SEQUENT_CUDNN_RETURN_IF_ERROR(expr)                                    \
  do {                                                                         \
    if (absl::Status _s = ::sequent::cuda::FromCudnn((expr), #expr); !_s.ok()) \
      return _s;                                                               \
  } while (0)

#endif  // SEQUENT_BACKENDS_CUDA_CUDA_STATUS_H_
