#ifndef SEQUENT_BACKENDS_CPU_TRAIN_KERNELS_H_
#define SEQUENT_BACKENDS_CPU_TRAIN_KERNELS_H_

// Our own loops for the training graph's ops that oneDNN 2.6 has no primitive
// for: loss gradients, fused optimizer updates, clipping, and the small
// backward ops (broadcasts, slices, maxima, normalization). Each matches the
// reference kernel of its op in ops/ (same formulas, same order of
// operations in the variable's dtype); OpenMP-parallel, one pass over memory,
// no allocation. Outputs may alias the input they replace (updates, clips).

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "backends/cpu/kernels.h"
#include "core/dtype.h"
#include "ops/activation_fn.h"

namespace sequent::cpu {

// d loss / d y_pred of ops/loss.cc's *_grad ops: `dloss` is a scalar of
// y_pred's dtype; `weight.data` is null when there is no sample weight.
// `scratch` holds 3 * row_len doubles per OpenMP thread.
// LossGrad's sparse crossentropy from logits, given `probs`, the softmax of
// the logits (f32 [rows, classes]; may be `grad` itself):
// grad = (probs - onehot(label)) * dloss * weight / rows, with LossGrad's
// checks.
absl::Status SparseCrossentropyGradFromProbs(ConstView labels, ConstView dloss,
                                             ConstView weight, int64_t rows,
                                             int64_t classes, int64_t batch,
                                             const float* probs, float* grad);

// grad = residual * dloss / rows over n elements: the sparse crossentropy's
// gradient from SoftmaxCrossentropy's residual.
void ScaleResidual(const float* residual, ConstView dloss, int64_t rows,
                   int64_t n, float* grad);

absl::Status LossGrad(const LossParams& params, ConstView y_true,
                      ConstView y_pred, ConstView dloss, ConstView weight,
                      int64_t row_len, int64_t batch, void* out,
                      double* scratch);

enum class UpdateKind { kSgd, kMomentum, kAdam, kAdamW, kRmsprop, kAdagrad };

struct UpdateParams {
  UpdateKind kind = UpdateKind::kSgd;
  double momentum = 0.0;
  bool nesterov = false;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  double weight_decay = 0.0;
  double rho = 0.9;
};

// One optimizer step over `n` elements (ops/optimizer.cc): reads var, grad and
// the slots once and writes var' and slots' (which may be the same buffers).
// `lr` and `iterations` point at scalars of `dtype` (f32 or f64). With
// `var_bf16` (f32 only) it also writes var' rounded to bf16 there (as
// ConvertToBf16), in the same pass for Adam and AdamW. With `penalty` (f32
// SGD, momentum and Adam only) the gradient is grad + *penalty * var, an L2
// penalty's term added in the same pass.
void ApplyUpdate(const UpdateParams& params, DType dtype, int64_t n,
                 const void* var, const void* grad,
                 const std::vector<const void*>& slots, const void* lr,
                 const void* iterations, void* var_out,
                 const std::vector<void*>& slots_out,
                 uint16_t* var_bf16 = nullptr, const float* penalty = nullptr);

// A weight penalty's steps (kSumOfSquaresOp, kAddScaledOp): the sum of w's
// squares (accumulated in double, the same in every run); out = g + scale * w.
float SumOfSquares(const float* w, int64_t n);
void AddScaled(const float* g, const float* w, float scale, float* out,
               int64_t n);

void ClipByValue(DType dtype, const void* x, void* y, int64_t n, double lo,
                 double hi);
void ClipByNorm(DType dtype, const void* x, void* y, int64_t n,
                double max_norm);

// dx = dy * f'(v), v the activation's output (from_output) or input.
void ActivationGrad(const ops::Activation& act, bool from_output, DType dtype,
                    const void* dy, const void* v, void* dx, int64_t n);
// activation_bias_grad: dz = dy * f'(y) and db[j] = sum over rows of dz[., j].
// `dz` may be null (only the bias gradient wanted).
void ActivationBiasGrad(const ops::Activation& act, DType dtype, const void* dy,
                        const void* y, void* dz, void* db, int64_t rows,
                        int64_t c);
// Column sums of a [rows, c] matrix, accumulated in double like the reference.
// Times `scale` (1 / rows for a mean); `scratch` (null, or threads * c
// doubles) lets threads split the rows when there are few columns.
void ColumnSums(DType dtype, const void* x, void* out, int64_t rows, int64_t c,
                double scale, double* scratch);

// softmax_grad / log_softmax_grad over [outer, n, inner].
void SoftmaxGrad(bool log, DType dtype, const void* dy, const void* y, void* dx,
                 int64_t outer, int64_t n, int64_t inner);

// out[i] = src[source(i)] over the row-major index space `out_dims`, with
// element strides `src_strides` per output dimension (0 where it broadcasts).
void StridedCopy(int64_t elem_size, const void* src,
                 const std::vector<int64_t>& src_strides, void* dst,
                 const std::vector<int64_t>& out_dims);
// reduce_to_shape for f64 (f32 goes through oneDNN's reduction): out[source(i)]
// += x[i], `out_strides` per input dimension.
void ReduceToShapeF64(const double* x, const std::vector<int64_t>& out_strides,
                      const std::vector<int64_t>& in_dims, double* out,
                      int64_t out_size);

// maximum_grad: the gradient goes to x where !(x < y) and y is not NaN.
void MaximumGrad(DType dtype, const void* x, const std::vector<int64_t>& xs,
                 const void* y, const std::vector<int64_t>& ys,
                 const void* dout, void* dx, void* dy,
                 const std::vector<int64_t>& out_dims);

// reduce_max_grad: dy spread evenly over the ties of each reduced group.
// `reduced_strides` are y's strides per x dimension (0 on reduced axes);
// `ties` is scratch of y's size.
void ReduceMaxGrad(DType dtype, const void* x, const void* y, const void* dy,
                   void* dx, const std::vector<int64_t>& x_dims,
                   const std::vector<int64_t>& reduced_strides, int64_t y_size,
                   int64_t* ties);

// slice_grad: zeros, then dy copied into the window at `begin`.
void SliceGrad(int64_t elem_size, const void* dy,
               const std::vector<int64_t>& dy_dims, void* dx,
               const std::vector<int64_t>& dx_dims,
               const std::vector<int64_t>& begin);

// sign: -1, 0 or 1 (NaN stays NaN) for f32, f64, i32, i64.
void Sign(DType dtype, const void* x, void* y, int64_t n);

// batch_norm_grad over [rows, c] (channels last) and layer_norm_grad over
// [rows, d]; f32.
void BatchNormGrad(bool training, int64_t rows, int64_t c, const float* dy,
                   const float* x, const float* gamma, const float* mean,
                   const float* inv_std, float* dx, float* dgamma,
                   float* dbeta);
void LayerNormGrad(int64_t rows, int64_t d, const float* dy, const float* x,
                   const float* gamma, const float* mean, const float* inv_std,
                   float* dx, float* dgamma, float* dbeta, double* scratch);

// global_avg_pool2d_grad: dx[b, i, c] = dy[b, c] / hw.
void GlobalAvgPoolGrad(DType dtype, const void* dy, void* dx, int64_t n,
                       int64_t hw, int64_t c);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_TRAIN_KERNELS_H_
