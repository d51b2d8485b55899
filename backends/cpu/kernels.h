#ifndef SEQUENT_BACKENDS_CPU_KERNELS_H_
#define SEQUENT_BACKENDS_CPU_KERNELS_H_

// Our own loops for what oneDNN 2.6 lacks: broadcasting binaries oneDNN cannot
// express (both operands broadcast), dtype casts outside oneDNN's types,
// dropout with the stateless mask of ops/random_hash.h. OpenMP-parallel over
// independent elements, no allocation.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/dtype.h"
#include "ops/activation_fn.h"

namespace sequent::cpu {

enum class BinaryKind { kAdd, kSub, kMul, kDiv, kMax };

// out[i] = a[ia] op b[ib] over the row-major index space `out_dims`;
// `a_strides` and `b_strides` are element strides per output dimension (0 where
// the operand broadcasts). `dtype` is f32, f64, i32 or i64.
void BroadcastBinary(BinaryKind kind, DType dtype, const void* a,
                     const std::vector<int64_t>& a_strides, const void* b,
                     const std::vector<int64_t>& b_strides, void* out,
                     const std::vector<int64_t>& out_dims);

// Softmax over rows of a few columns, in the steps around oneDNN's
// vectorized exp: y = x - (the row's max), then (after exp) each row divided
// by its sum.
void SubtractRowMax(const float* x, float* y, int64_t rows, int64_t cols);
void NormalizeRows(float* y, int64_t rows, int64_t cols);

// z[i, j] = act(zt[j, i] + bias[j]) for z [rows, cols] from its transpose
// zt [cols, rows], cols <= 16; `bias` may be null. Finishes a dense forward
// computed transposed (a thin layer's z^T = W^T x^T).
void TransposeBiasActivation(const float* zt, const float* bias, float* z,
                             int64_t rows, int64_t cols,
                             const ops::Activation& act);

// Element-wise conversion of `n` elements between any two sequent dtypes, as
// ops/shape.cc's cast: integers convert through int64, float -> int truncates
// toward zero and saturates (NaN -> 0), anything -> bool is != 0.
void CastElements(DType from, const void* src, DType to, void* dst, int64_t n);

// f32 -> bf16 with round-to-nearest-even and NaNs kept quiet NaNs, bit for bit
// what oneDNN's reorder (and core's FloatToBF16) produce.
void ConvertToBf16(const float* in, uint16_t* out, int64_t n);

// y = x * mask where mask[i] = keep(seed, step, i) ? 1 / (1 - rate) : 0
// (ops/random.cc); with `active` false the mask is all ones. `dtype` is f32 or
// f64.
void DropoutForward(DType dtype, const void* x, void* y, void* mask, int64_t n,
                    double rate, uint64_t seed, uint64_t step, bool active);

// A read-only tensor argument of a loop: data, dtype and element count.
struct ConstView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t size = 0;
};

enum class LossKind {
  kMse,
  kMae,
  kHuber,
  kBinaryCrossentropy,
  kCategoricalCrossentropy,
  kSparseCategoricalCrossentropy
};

struct LossParams {
  LossKind kind = LossKind::kMse;
  double delta = 1.0;  // huber
  bool from_logits = false;
  double label_smoothing = 0.0;
};

// The Keras losses of ops/loss.cc with "sum_over_batch_size": per-row losses (a
// row is the last axis of y_pred, `row_len` long; the elementwise losses
// average over it), times the sample weight (`weight.data` null when absent),
// summed and divided by the row count. `batch` is y_pred's first dimension.
// Writes one element of y_pred's dtype to `out`. Out-of-range or fractional
// sparse labels are an error naming the label and the sample.
// Element i of a tensor of `dtype` at `p`, as a double.
double Load(DType dtype, const void* p, int64_t i);

// A label of sparse_categorical_crossentropy (sample r) must be an integer in
// [0, classes): OK, or the InvalidArgument naming it and its sample.
absl::Status CheckSparseLabel(double label, int64_t r, int64_t classes);

absl::Status Loss(const LossParams& params, ConstView y_true, ConstView y_pred,
                  ConstView weight, int64_t row_len, int64_t batch, void* out);

// Loss's sparse crossentropy from logits, given the softmax of the logits
// (f32 [rows, classes], computed by a oneDNN primitive): the same label checks,
// weights and mean, with one logarithm per row (rows whose softmax underflowed
// are recomputed from the logits).
absl::Status SparseCrossentropyFromProbs(ConstView labels, const float* probs,
                                         const float* logits, ConstView weight,
                                         int64_t rows, int64_t classes,
                                         int64_t batch, float* out);

enum class MetricKind {
  kSparseCategoricalAccuracy,
  kCategoricalAccuracy,
  kBinaryAccuracy
};

// The accuracy metrics of ops/metric.cc: the f32 fraction of correct rows (of
// correct elements for binary accuracy, thresholded at `threshold`).
void Accuracy(MetricKind kind, ConstView y_true, ConstView y_pred,
              int64_t row_len, double threshold, float* out);

// batch_norm's statistics outputs from oneDNN's batch mean and (biased)
// variance: saved_inv_std = 1 / sqrt(var + epsilon), and in training the moving
// averages new = moving * momentum + batch * (1 - momentum). `var` may alias
// `new_var` (oneDNN writes the variance there). Outside training mean/var are
// the moving statistics, copied through.
void BatchNormStatistics(bool training, int64_t channels, double epsilon,
                         double momentum, const float* mean, const float* var,
                         const float* moving_mean, const float* moving_var,
                         float* new_mean, float* new_var, float* saved_inv_std);

// In place: v = 1 / sqrt(v + epsilon).
void InverseStd(float* v, int64_t n, double epsilon);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_KERNELS_H_
