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
  kSign,  // -1, 0 or 1; NaN stays NaN
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

// The same for tall inputs (many rows, few columns: a conv's bias gradient
// over N*H*W): `chunks` row ranges in parallel write partial sums to
// `scratch` [chunks, cols], then one column sum adds them (deterministic).
// ColumnSumChunks gives the chunk count worth using (1: LaunchColumnSum).
int64_t ColumnSumChunks(int64_t rows, int64_t cols);
cudaError_t LaunchColumnSumChunked(const float* x, float* out, int64_t rows,
                                   int64_t cols, float* scratch, int64_t chunks,
                                   cudaStream_t stream);

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
// huber uses `delta`; binary_crossentropy `smoothing` and `from_logits`.
enum class PointLoss : int { kMse, kMae, kHuber, kBinaryCe };
struct PointLossArgs {
  const float* y_true = nullptr;
  const float* pred = nullptr;
  const float* weights = nullptr;
  int64_t weights_n = 0;
  int64_t rows = 0;
  int64_t d = 1;
  int64_t rows_per_sample = 1;
  double delta = 1.0;
  double smoothing = 0.0;
  bool from_logits = false;
};
cudaError_t LaunchPointLoss(PointLoss kind, const PointLossArgs& args,
                            float* loss, cudaStream_t stream);
cudaError_t LaunchPointLossGrad(PointLoss kind, const PointLossArgs& args,
                                const float* dloss, float* grad,
                                cudaStream_t stream);

// categorical_crossentropy over [rows, classes] with dense (one-hot or soft)
// y_true, label smoothing, logits or probabilities, sample weights.
struct CategoricalCeArgs {
  const float* y_true = nullptr;
  const float* pred = nullptr;
  const float* weights = nullptr;
  int64_t weights_n = 0;
  int64_t rows = 0;
  int64_t classes = 0;
  int64_t rows_per_sample = 1;
  bool from_logits = false;
  double smoothing = 0.0;
};
cudaError_t LaunchCategoricalCe(const CategoricalCeArgs& args, float* loss,
                                cudaStream_t stream);
cudaError_t LaunchCategoricalCeGrad(const CategoricalCeArgs& args,
                                    const float* dloss, float* grad,
                                    cudaStream_t stream);

// Fraction of the n elements with (pred > threshold) == y_true.
cudaError_t LaunchBinaryAccuracy(const float* y_true, const float* pred,
                                 int64_t n, double threshold, float* out,
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
enum class UpdateKind : int {
  kSgd,
  kMomentum,
  kAdam,
  kAdamW,
  kRmsprop,
  kAdagrad
};
struct UpdateTensor {
  const float* var = nullptr;
  const float* grad = nullptr;
  const float* slot0 = nullptr;
  const float* slot1 = nullptr;
  float* var_out = nullptr;
  float* slot0_out = nullptr;
  float* slot1_out = nullptr;
  // Mixed precision: also write var_out rounded to bf16 here (the copy the
  // next step's GEMMs read), in the same pass.
  uint16_t* var_bf16_out = nullptr;
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
  float rho = 0.9f;
  float one_minus_rho = 0.1f;  // (float)(1 - rho) in double, as the reference
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

// Element copies between strided views (transpose, slice, slice_grad,
// concat, padding and cropping, filter layout changes): for every index
// (i_0..i_{rank-1}) of `dims`, dst[dst_base + sum i_d dst_strides[d]] =
// src[src_base + sum i_d src_strides[d]], in elements of `elem_bytes` (2, 4
// or 8).
struct StridedCopy {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t src_strides[kMaxRank] = {};
  int64_t dst_strides[kMaxRank] = {};
  int64_t src_base = 0;
  int64_t dst_base = 0;
};
cudaError_t LaunchStridedCopy(const void* src, void* dst, int elem_bytes,
                              const StridedCopy& copy, int64_t n,
                              cudaStream_t stream);

// cast between f32, bf16, i32 and i64 exactly as the reference (through
// double; float -> integer truncates and saturates, NaN -> 0; bf16 rounds to
// nearest even).
enum class CastType : int { kF32, kBF16, kI32, kI64 };
cudaError_t LaunchCast(CastType from, CastType to, const void* x, void* y,
                       int64_t n, cudaStream_t stream);

// maximum_grad: dx = dout where x won (ties and NaN in x go to x), dy the
// rest; both have dout's shape. Strides as BroadcastShape.
cudaError_t LaunchMaximumGrad(const float* x, const float* y, const float* dout,
                              float* dx, float* dy, const BroadcastShape& shape,
                              int64_t n, cudaStream_t stream);

// reduce_max_grad: ties[j] = count of x == y[j] over group j (ReduceShape, as
// reduce_max), then dx[i] = x[i] == y[j] ? dy[j] / ties[j] : 0, where j is
// i's group (BroadcastShape.x_strides map x indices to groups).
cudaError_t LaunchReduceMaxGrad(const float* x, const float* y, const float* dy,
                                float* dx, float* ties,
                                const ReduceShape& groups, int64_t groups_n,
                                const BroadcastShape& to_group, int64_t n,
                                cudaStream_t stream);

// NHWC pooling with TF/Keras windows: out-of-bounds positions never count
// (max ignores them, average divides by the in-bounds count); max gradient to
// the first maximum in row-major window order. Gradients are gathers (no
// atomics): deterministic and summed in the reference's order.
struct PoolShape {
  int64_t n = 0, h = 0, w = 0, c = 0;
  int64_t oh = 0, ow = 0;
  int64_t pool_h = 1, pool_w = 1, stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // leading padding
};
cudaError_t LaunchPool(bool max, const float* x, float* y, const PoolShape& s,
                       cudaStream_t stream);
cudaError_t LaunchMaxPoolGrad(const float* x, const float* dy, float* dx,
                              const PoolShape& s, cudaStream_t stream);
cudaError_t LaunchAvgPoolGrad(const float* dy, float* dx, const PoolShape& s,
                              cudaStream_t stream);
// dx[b, i, c] = dy[b, c] / hw.
cudaError_t LaunchGlobalAvgPoolGrad(const float* dy, float* dx, int64_t n,
                                    int64_t hw, int64_t c, cudaStream_t stream);

// batch_norm helpers over [rows, c] (channels last).
// Training: the moving statistics from the batch's saved mean and inverse
// std (var = 1 / inv_std^2 - epsilon, the biased variance cuDNN normalized
// with): new = moving * momentum + batch * (1 - momentum).
cudaError_t LaunchBatchNormMovingStats(
    const float* moving_mean, const float* moving_var, const float* saved_mean,
    const float* saved_inv_std, int64_t c, float momentum, float epsilon,
    float* new_mean, float* new_var, cudaStream_t stream);
// Inference: y from the moving statistics; they pass through to
// new_mean/new_var and saved_mean, saved_inv_std = 1 / sqrt(var + epsilon).
struct BatchNormInferenceArgs {
  const float* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  const float* moving_mean = nullptr;
  const float* moving_var = nullptr;
  float* y = nullptr;
  float* new_mean = nullptr;
  float* new_var = nullptr;
  float* saved_mean = nullptr;
  float* saved_inv_std = nullptr;
  int64_t rows = 0, c = 0;
  double epsilon = 1e-3;
};
cudaError_t LaunchBatchNormInference(const BatchNormInferenceArgs& args,
                                     cudaStream_t stream);
// batch_norm_grad with constant statistics (training = false):
// dx = gamma inv_std dy, dgamma = sum dy xhat, dbeta = sum dy.
struct NormGradArgs {
  const float* dy = nullptr;
  const float* x = nullptr;
  const float* gamma = nullptr;
  const float* mean = nullptr;
  const float* inv_std = nullptr;
  float* dx = nullptr;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
  int64_t rows = 0, c = 0;
};
cudaError_t LaunchBatchNormGradInference(const NormGradArgs& args,
                                         cudaStream_t stream);

// layer_norm over the last axis of [rows, c] (statistics per row, in double
// as the reference), and its gradient (dx per row; dgamma/dbeta column sums).
struct LayerNormArgs {
  const float* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float* y = nullptr;
  float* mean = nullptr;
  float* inv_std = nullptr;
  int64_t rows = 0, c = 0;
  double epsilon = 1e-3;
};
cudaError_t LaunchLayerNorm(const LayerNormArgs& args, cudaStream_t stream);
cudaError_t LaunchLayerNormGrad(const NormGradArgs& args, cudaStream_t stream);

}  // namespace sequent::cuda

#endif  // SEQUENT_BACKENDS_CUDA_KERNELS_H_
