#include "backends/cuda/cuda_status.h"

#include "absl/strings/str_cat.h"

namespace sequent::cuda {

absl::Status FromCuda(cudaError_t error, const char* call) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("[cuda] ", call, " failed: ",
                                          cudaGetErrorName(error), ": ",
                                          cudaGetErrorString(error)));
}

absl::Status FromCublas(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("[cublasLt] ", call, " failed: ",
                                          cublasLtGetStatusName(status), ": ",
                                          cublasLtGetStatusString(status)));
}

bool DeviceAvailable() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // Clear the sticky "no driver" error.
    return false;
  }
  return count > 0;
}

}  // namespace sequent::cuda
