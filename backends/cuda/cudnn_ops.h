#ifndef SEQUENT_BACKENDS_CUDA_CUDNN_OPS_H_
#define SEQUENT_BACKENDS_CUDA_CUDNN_OPS_H_

// cuDNN (legacy descriptor API, still present in v9) for convolutions and
// batch normalization. Each object is built once at Compile (descriptors,
// algorithm, workspace size) and then enqueues work on the handle's stream
// any number of times without allocating, so it can be captured in a CUDA
// graph. Activations are NHWC; filters are KRSC ([out, kh, kw, in], cuDNN's
// NHWC filter layout) — the backend converts from/to the HWIO kernels of
// ops/conv.cc.

#include <cudnn.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sequent::cuda {

// A convolution as cuDNN sees it: symmetric zero padding only (the backend
// pads TF "same" asymmetric inputs itself).
struct ConvGeometry {
  int64_t n = 0, h = 0, w = 0, c = 0;  // x, NHWC
  int64_t f = 0, kh = 0, kw = 0;       // filter, KRSC
  int64_t oh = 0, ow = 0;              // y, NHWC [n, oh, ow, f]
  int64_t pad_h = 0, pad_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dil_h = 1, dil_w = 1;
};

enum class ConvDirection { kForward, kBackwardData, kBackwardFilter };

class CudnnConv {
 public:
  // Picks the fastest algorithm cuDNN's heuristics offer (f32, FMA math —
  // no TF32 — when available) whose workspace fits `max_workspace_bytes`.
  static absl::StatusOr<std::unique_ptr<CudnnConv>> Create(
      cudnnHandle_t handle, const ConvGeometry& geometry,
      ConvDirection direction, size_t max_workspace_bytes);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  // kForward: y = conv(x, filter).
  // kBackwardData: dx = conv_transpose(dy, filter).
  // kBackwardFilter: dfilter = correlation of x and dy.
  // `workspace` holds at least workspace_bytes().
  absl::Status Forward(cudnnHandle_t handle, const float* x,
                       const float* filter, float* y, void* workspace) const;
  absl::Status BackwardData(cudnnHandle_t handle, const float* dy,
                            const float* filter, float* dx,
                            void* workspace) const;
  absl::Status BackwardFilter(cudnnHandle_t handle, const float* x,
                              const float* dy, float* dfilter,
                              void* workspace) const;

  size_t workspace_bytes() const { return workspace_bytes_; }
  // "cudnn conv fwd algo 1, 0 B workspace", for errors and profiles.
  const std::string& description() const { return description_; }

 private:
  CudnnConv() = default;
  ConvDirection direction_ = ConvDirection::kForward;
  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr;
  cudnnFilterDescriptor_t w_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
  cudnnConvolutionFwdAlgo_t fwd_algo_{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo_{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo_{};
  size_t workspace_bytes_ = 0;
  std::string description_;
};

// Spatial batch normalization over every axis but the last (channels) of
// [rows, c], described to cuDNN as NHWC [n, h, w, c] with n * h * w = rows.
class CudnnBatchNorm {
 public:
  static absl::StatusOr<std::unique_ptr<CudnnBatchNorm>> Create(
      int64_t n, int64_t h, int64_t w, int64_t c, double epsilon);
  ~CudnnBatchNorm();
  CudnnBatchNorm(const CudnnBatchNorm&) = delete;
  CudnnBatchNorm& operator=(const CudnnBatchNorm&) = delete;

  // y = gamma (x - mean) inv_std + beta with the batch statistics (biased
  // variance); writes the batch mean and inv_std = 1 / sqrt(var + epsilon).
  // `running_scratch` is 2 * c floats that cuDNN's own running averages
  // overwrite (factor 1; the backend computes Keras's moving statistics).
  absl::Status ForwardTraining(cudnnHandle_t handle, const float* x,
                               const float* gamma, const float* beta, float* y,
                               float* running_scratch, float* saved_mean,
                               float* saved_inv_std) const;
  // The training-mode gradient through the batch statistics, from the saved
  // mean and inv_std.
  absl::Status Backward(cudnnHandle_t handle, const float* x, const float* dy,
                        const float* gamma, const float* saved_mean,
                        const float* saved_inv_std, float* dx, float* dgamma,
                        float* dbeta) const;

 private:
  CudnnBatchNorm() = default;
  cudnnTensorDescriptor_t x_ = nullptr, param_ = nullptr;
  int64_t c_ = 0;
  double epsilon_ = 1e-3;
};

}  // namespace sequent::cuda

#endif  // SEQUENT_BACKENDS_CUDA_CUDNN_OPS_H_
