#include "backends/cuda/cuda_status.h"

#include "absl/strings/str_cat.h"

namespace sequent::cuda {

absl::Status FromCuda(cudaError_t error, const char* call) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("[cuda] ", call,
                                          " failed: ", cudaGetErrorName(error),
                                          ": ", cudaGetErrorString(error)));
}

absl::Status FromCublas(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      "[cublasLt] ", call, " failed: ", cublasLtGetStatusName(status), ": ",
      cublasLtGetStatusString(status)));
}

absl::Status FromCudnn(cudnnStatus_t status, const char* call) {
  if (status == CUDNN_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("[cudnn] ", call, " failed: ", cudnnGetErrorString(status)));
}

absl::Status CheckDevice() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    cudaGetLastError();
    return absl::FailedPreconditionError(absl::StrCat(
        "CUDA requested but no GPU is visible: ", cudaGetErrorName(error), ": ",
        cudaGetErrorString(error)));
  }
  if (count == 0) {
    return absl::FailedPreconditionError(
        "CUDA requested but no GPU is visible: the CUDA runtime reports 0 "
        "devices");
  }
  return absl::OkStatus();
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
