#include "backends/cuda/cudnn_ops.h"

#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/cuda/cuda_status.h"

namespace sequent::cuda {
namespace {

absl::Status CheckInt(int64_t v, const char* what) {
  if (v >= 0 && v <= std::numeric_limits<int>::max()) return absl::OkStatus();
  return absl::UnimplementedError(
      absl::StrCat("cuDNN takes int dimensions; ", what, " is ", v));
}

absl::Status SetNhwc(cudnnTensorDescriptor_t desc, int64_t n, int64_t h,
                     int64_t w, int64_t c) {
  for (int64_t v : {n, h, w, c}) {
    if (absl::Status s = CheckInt(v, "a dimension"); !s.ok()) return s;
  }
  // cudnnSetTensor4dDescriptor takes (format, type, n, c, h, w) whatever the
  // memory format.
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnSetTensor4dDescriptor(
      desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, static_cast<int>(n),
      static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
  return absl::OkStatus();
}

constexpr float kOne = 1.f, kZero = 0.f;

}  // namespace

CudnnConv::~CudnnConv() {
  if (conv_ != nullptr) cudnnDestroyConvolutionDescriptor(conv_);
  if (w_ != nullptr) cudnnDestroyFilterDescriptor(w_);
  if (y_ != nullptr) cudnnDestroyTensorDescriptor(y_);
  if (x_ != nullptr) cudnnDestroyTensorDescriptor(x_);
}

absl::StatusOr<std::unique_ptr<CudnnConv>> CudnnConv::Create(
    cudnnHandle_t handle, const ConvGeometry& g, ConvDirection direction,
    size_t max_workspace_bytes) {
  std::unique_ptr<CudnnConv> conv(new CudnnConv());
  conv->direction_ = direction;
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnCreateTensorDescriptor(&conv->x_));
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnCreateTensorDescriptor(&conv->y_));
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnCreateFilterDescriptor(&conv->w_));
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnCreateConvolutionDescriptor(&conv->conv_));
  if (absl::Status s = SetNhwc(conv->x_, g.n, g.h, g.w, g.c); !s.ok()) return s;
  if (absl::Status s = SetNhwc(conv->y_, g.n, g.oh, g.ow, g.f); !s.ok())
    return s;
  for (int64_t v : {g.f, g.kh, g.kw, g.pad_h, g.pad_w, g.stride_h, g.stride_w,
                    g.dil_h, g.dil_w}) {
    if (absl::Status s = CheckInt(v, "a filter parameter"); !s.ok()) return s;
  }
  // Filters take (type, format, k, c, h, w); NHWC filters are KRSC in memory.
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnSetFilter4dDescriptor(
      conv->w_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, static_cast<int>(g.f),
      static_cast<int>(g.c), static_cast<int>(g.kh), static_cast<int>(g.kw)));
  // TF/Keras conv2d is a cross-correlation (no filter flip).
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnSetConvolution2dDescriptor(
      conv->conv_, static_cast<int>(g.pad_h), static_cast<int>(g.pad_w),
      static_cast<int>(g.stride_h), static_cast<int>(g.stride_w),
      static_cast<int>(g.dil_h), static_cast<int>(g.dil_w),
      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // f32 results like the reference's: no TF32 tensor-core math.
  SEQUENT_CUDNN_RETURN_IF_ERROR(
      cudnnSetConvolutionMathType(conv->conv_, CUDNN_FMA_MATH));

  // The geometry must be the one cuDNN computes (padding mistakes show here).
  int on = 0, oc = 0, oh = 0, ow = 0;
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnGetConvolution2dForwardOutputDim(
      conv->conv_, conv->x_, conv->w_, &on, &oc, &oh, &ow));
  if (on != g.n || oc != g.f || oh != g.oh || ow != g.ow) {
    return absl::InternalError(
        absl::StrCat("cuDNN computes a ", on, "x", oc, "x", oh, "x", ow,
                     " (NCHW) convolution output, the graph expects ", g.n, "x",
                     g.f, "x", g.oh, "x", g.ow));
  }

  // The heuristics' candidates come fastest first; take the first that runs
  // with FMA math within the workspace limit, else the first that runs.
  constexpr int kCandidates = 16;
  int returned = 0;
  const auto pick = [&](const auto* perf, auto* algo,
                        const char* name) -> absl::Status {
    int chosen = -1;
    for (int fma_only = 1; fma_only >= 0 && chosen < 0; --fma_only) {
      for (int i = 0; i < returned; ++i) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS ||
            perf[i].memory > max_workspace_bytes ||
            (fma_only && perf[i].mathType != CUDNN_FMA_MATH)) {
          continue;
        }
        chosen = i;
        break;
      }
    }
    if (chosen < 0) {
      return absl::UnimplementedError(absl::StrCat(
          "cuDNN offers no ", name, " algorithm for this convolution within ",
          max_workspace_bytes >> 20, " MiB of workspace"));
    }
    *algo = perf[chosen].algo;
    conv->workspace_bytes_ = perf[chosen].memory;
    if (perf[chosen].mathType != CUDNN_FMA_MATH) {
      SEQUENT_CUDNN_RETURN_IF_ERROR(
          cudnnSetConvolutionMathType(conv->conv_, perf[chosen].mathType));
    }
    conv->description_ =
        absl::StrCat("cudnn conv ", name, " algo ", static_cast<int>(*algo),
                     ", ", conv->workspace_bytes_, " B workspace");
    return absl::OkStatus();
  };
  switch (direction) {
    case ConvDirection::kForward: {
      cudnnConvolutionFwdAlgoPerf_t perf[kCandidates];
      SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnGetConvolutionForwardAlgorithm_v7(
          handle, conv->x_, conv->w_, conv->conv_, conv->y_, kCandidates,
          &returned, perf));
      if (absl::Status s = pick(perf, &conv->fwd_algo_, "forward"); !s.ok())
        return s;
      // The size for the algorithm with the math type now set.
      SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnGetConvolutionForwardWorkspaceSize(
          handle, conv->x_, conv->w_, conv->conv_, conv->y_, conv->fwd_algo_,
          &conv->workspace_bytes_));
      break;
    }
    case ConvDirection::kBackwardData: {
      cudnnConvolutionBwdDataAlgoPerf_t perf[kCandidates];
      SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnGetConvolutionBackwardDataAlgorithm_v7(
          handle, conv->w_, conv->y_, conv->conv_, conv->x_, kCandidates,
          &returned, perf));
      if (absl::Status s = pick(perf, &conv->bwd_data_algo_, "backward data");
          !s.ok())
        return s;
      SEQUENT_CUDNN_RETURN_IF_ERROR(
          cudnnGetConvolutionBackwardDataWorkspaceSize(
              handle, conv->w_, conv->y_, conv->conv_, conv->x_,
              conv->bwd_data_algo_, &conv->workspace_bytes_));
      break;
    }
    case ConvDirection::kBackwardFilter: {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[kCandidates];
      SEQUENT_CUDNN_RETURN_IF_ERROR(
          cudnnGetConvolutionBackwardFilterAlgorithm_v7(
              handle, conv->x_, conv->y_, conv->conv_, conv->w_, kCandidates,
              &returned, perf));
      if (absl::Status s =
              pick(perf, &conv->bwd_filter_algo_, "backward filter");
          !s.ok())
        return s;
      SEQUENT_CUDNN_RETURN_IF_ERROR(
          cudnnGetConvolutionBackwardFilterWorkspaceSize(
              handle, conv->x_, conv->y_, conv->conv_, conv->w_,
              conv->bwd_filter_algo_, &conv->workspace_bytes_));
      break;
    }
  }
  return conv;
}

absl::Status CudnnConv::Forward(cudnnHandle_t handle, const float* x,
                                const float* filter, float* y,
                                void* workspace) const {
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnConvolutionForward(
      handle, &kOne, x_, x, w_, filter, conv_, fwd_algo_, workspace,
      workspace_bytes_, &kZero, y_, y));
  return absl::OkStatus();
}

absl::Status CudnnConv::BackwardData(cudnnHandle_t handle, const float* dy,
                                     const float* filter, float* dx,
                                     void* workspace) const {
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnConvolutionBackwardData(
      handle, &kOne, w_, filter, y_, dy, conv_, bwd_data_algo_, workspace,
      workspace_bytes_, &kZero, x_, dx));
  return absl::OkStatus();
}

absl::Status CudnnConv::BackwardFilter(cudnnHandle_t handle, const float* x,
                                       const float* dy, float* dfilter,
                                       void* workspace) const {
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnConvolutionBackwardFilter(
      handle, &kOne, x_, x, y_, dy, conv_, bwd_filter_algo_, workspace,
      workspace_bytes_, &kZero, w_, dfilter));
  return absl::OkStatus();
}

CudnnBatchNorm::~CudnnBatchNorm() {
  if (param_ != nullptr) cudnnDestroyTensorDescriptor(param_);
  if (x_ != nullptr) cudnnDestroyTensorDescriptor(x_);
}

absl::StatusOr<std::unique_ptr<CudnnBatchNorm>> CudnnBatchNorm::Create(
    int64_t n, int64_t h, int64_t w, int64_t c, double epsilon) {
  if (epsilon < CUDNN_BN_MIN_EPSILON) {
    return absl::UnimplementedError(absl::StrCat(
        "cuDNN batch normalization needs epsilon >= ", CUDNN_BN_MIN_EPSILON,
        ", got ", epsilon));
  }
  std::unique_ptr<CudnnBatchNorm> bn(new CudnnBatchNorm());
  bn->c_ = c;
  bn->epsilon_ = epsilon;
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnCreateTensorDescriptor(&bn->x_));
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnCreateTensorDescriptor(&bn->param_));
  if (absl::Status s = SetNhwc(bn->x_, n, h, w, c); !s.ok()) return s;
  // 1 x C x 1 x 1 f32 for gamma, beta and the statistics.
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnDeriveBNTensorDescriptor(
      bn->param_, bn->x_, CUDNN_BATCHNORM_SPATIAL));
  return bn;
}

absl::Status CudnnBatchNorm::ForwardTraining(cudnnHandle_t handle,
                                             const float* x, const float* gamma,
                                             const float* beta, float* y,
                                             float* running_scratch,
                                             float* saved_mean,
                                             float* saved_inv_std) const {
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnBatchNormalizationForwardTraining(
      handle, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, x_, x, x_, y, param_,
      gamma, beta, /*exponentialAverageFactor=*/1.0, running_scratch,
      running_scratch + c_, epsilon_, saved_mean, saved_inv_std));
  return absl::OkStatus();
}

absl::Status CudnnBatchNorm::Backward(cudnnHandle_t handle, const float* x,
                                      const float* dy, const float* gamma,
                                      const float* saved_mean,
                                      const float* saved_inv_std, float* dx,
                                      float* dgamma, float* dbeta) const {
  SEQUENT_CUDNN_RETURN_IF_ERROR(cudnnBatchNormalizationBackward(
      handle, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, x_, x, x_,
      dy, x_, dx, param_, gamma, dgamma, dbeta, epsilon_, saved_mean,
      saved_inv_std));
  return absl::OkStatus();
}

}  // namespace sequent::cuda
