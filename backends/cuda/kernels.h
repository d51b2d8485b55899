#ifndef SEQUENT_BACKENDS_CUDA_KERNELS_H_
#define SEQUENT_BACKENDS_CUDA_KERNELS_H_

// The CUDA backend's own kernels (f32 data; i32/i64 labels and steps). Every
// launcher enqueues on `stream` and returns the launch's cudaError_t; the math
// follows the ops' reference kernels (ops/*.cc) term by term.

#include <cuda_runtime.h>

#include <cstdint>

namespace sequent::cuda {

// Pointwise functions: the unary elementwise ops and the activations.
enum class Pointwise : int {
  kIdentity,
  kNeg,
  kExp,
  kLog,
  kSqrt,
  kSquare,
  kAbs,
  kRelu,
  kLeakyRelu,
  kElu,
  kSelu,
  kSigmoid,
  kTanh,
  kGelu,      // erf form
  kGeluTanh,  // approximate = true
  kSwish,
  kSoftplus,
};

cudaError_t LaunchPointwise(Pointwise fn, float alpha, const float* x, float* y,
                            int64_t n, cudaStream_t stream);

// dx = dy * f'(v), v the activation's output (from_output) or its input.
cudaError_t LaunchActivationGrad(Pointwise fn, float alpha, bool from_output,
                                 const float* dy, const float* v, float* dx,
                                 int64_t n, cudaStream_t stream);

// out[c] = sum over rows of x[r, c] (the bias gradient; reduce_sum axes [0]).
cudaError_t LaunchColumnSum(const float* x, float* out, int64_t rows,
                            int64_t cols, cudaStream_t stream);

inline constexpr int kMaxRank = 6;

// out = x (op) y with numpy broadcasting; strides are 0 on broadcast axes.
enum class Binary : int { kAdd, kSub, kMul, kDiv, kMax };
struct BroadcastShape {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t x_strides[kMaxRank] = {};
  int64_t y_strides[kMaxRank] = {};
};
cudaError_t LaunchBinary(Binary op, const float* x, const float* y, float* out,
                         const BroadcastShape& shape, int64_t n,
                         cudaStream_t stream);

// A reduction: each output element combines `reduced_count` inputs at
// base(out index) + offset(reduced index).
enum class Reduce : int { kSum, kMean, kMax };
struct ReduceShape {
  int kept_rank = 0;
  int64_t kept_dims[kMaxRank] = {};
  int64_t kept_strides[kMaxRank] = {};  // input strides of the kept axes
  int reduced_rank = 0;
  int64_t reduced_dims[kMaxRank] = {};
  int64_t reduced_strides[kMaxRank] = {};
  int64_t reduced_count = 1;
};
cudaError_t LaunchReduce(Reduce op, const float* x, float* out,
                         const ReduceShape& shape, int64_t out_n,
                         cudaStream_t stream);

// out[i] = x[broadcast source of i] (broadcast_to); strides as
// BroadcastShape.x.
cudaError_t LaunchBroadcastTo(const float* x, float* out,
                              const BroadcastShape& shape, int64_t n,
                              cudaStream_t stream);

// Softmax / log_softmax over the middle axis of [outer, n, inner], and their
// gradients (softmax: dx = y (dy - sum(dy y)); log: dx = dy - e^y sum(dy)).
cudaError_t LaunchSoftmax(bool log, const float* x, float* y, int64_t outer,
                          int64_t n, int64_t inner, cudaStream_t stream);
cudaError_t LaunchSoftmaxGrad(bool log, const float* dy, const float* y,
                              float* dx, int64_t outer, int64_t n,
                              int64_t inner, cudaStream_t stream);

// Labels are i32 or i64 (labels_i64). `weights` is null, one value
// (weights_n == 1) or one per sample. A label outside [0, classes) sets
// *error_flag to 1 (read back after the run).
struct SparseCeArgs {
  const void* labels = nullptr;
  bool labels_i64 = false;
  const float* pred = nullptr;  // [rows, classes]
  const float* weights = nullptr;
  int64_t weights_n = 0;
  int64_t rows = 0;
  int64_t classes = 0;
  int64_t rows_per_sample = 1;
  bool from_logits = true;
  int* error_flag = nullptr;
};
cudaError_t LaunchSparseCe(const SparseCeArgs& args, float* loss,
                           cudaStream_t stream);
cudaError_t LaunchSparseCeGrad(const SparseCeArgs& args, const float* dloss,
                               float* grad, cudaStream_t stream);

// mse / mae over [rows, d] (mean over the last axis, then the weighted
// sum over rows divided by rows), and their gradients.
enum class PointLoss : int { kMse, kMae };
struct PointLossArgs {
  const float* y_true = nullptr;
  const float* pred = nullptr;
  const float* weights = nullptr;
  int64_t weights_n = 0;
  int64_t rows = 0;
  int64_t d = 1;
  int64_t rows_per_sample = 1;
};
cudaError_t LaunchPointLoss(PointLoss kind, const PointLossArgs& args,
                            float* loss, cudaStream_t stream);
cudaError_t LaunchPointLossGrad(PointLoss kind, const PointLossArgs& args,
                                const float* dloss, float* grad,
                                cudaStream_t stream);

// Fraction of rows whose argmax (first on ties) equals the label
// (sparse: labels i32/i64; dense: argmax of the one-hot row).
cudaError_t LaunchSparseAccuracy(const void* labels, bool labels_i64,
                                 const float* pred, int64_t rows,
                                 int64_t classes, float* out,
                                 cudaStream_t stream);
cudaError_t LaunchCategoricalAccuracy(const float* y_true, const float* pred,
                                      int64_t rows, int64_t classes, float* out,
                                      cudaStream_t stream);

// dropout with ops/random_hash.h's mask; `step` is null (step 0) or an i32/i64
// scalar on the device.
struct DropoutArgs {
  const float* x = nullptr;
  float* y = nullptr;
  float* mask = nullptr;
  int64_t n = 0;
  uint64_t seed = 0;
  const void* step = nullptr;
  bool step_i64 = false;
  uint32_t threshold = 0;
  float scale = 1.0f;
  bool active = false;
};
cudaError_t LaunchDropout(const DropoutArgs& args, cudaStream_t stream);

// Optimizer updates, every variable of one kind in one launch. The tables
// live on the device (built once at compile time); each chunk is a block's
// share of one tensor.
enum class UpdateKind : int { kSgd, kMomentum, kAdam, kAdamW };
struct UpdateTensor {
  const float* var = nullptr;
  const float* grad = nullptr;
  const float* slot0 = nullptr;
  const float* slot1 = nullptr;
  float* var_out = nullptr;
  float* slot0_out = nullptr;
  float* slot1_out = nullptr;
  int64_t n = 0;
};
struct UpdateChunk {
  int32_t tensor = 0;
  int64_t start = 0;
};
inline constexpr int64_t kUpdateChunk = 4096;
struct UpdateHyper {
  float momentum = 0;
  bool nesterov = false;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  float weight_decay = 0;
};
cudaError_t LaunchFusedUpdate(UpdateKind kind, const UpdateHyper& hyper,
                              const UpdateTensor* tensors,
                              const UpdateChunk* chunks, int64_t num_chunks,
                              const float* learning_rate,
                              const float* iterations, cudaStream_t stream);

cudaError_t LaunchClipByValue(const float* x, float* y, int64_t n, float lo,
                              float hi, cudaStream_t stream);
// `norm` is one float of scratch on the device.
cudaError_t LaunchClipByNorm(const float* x, float* y, int64_t n,
                             float max_norm, float* norm, cudaStream_t stream);

}  // namespace sequent::cuda

#endif  // SEQUENT_BACKENDS_CUDA_KERNELS_H_
