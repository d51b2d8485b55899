#include <cmath>

#include "backends/cuda/kernels.h"
#include "ops/random_hash.h"

namespace sequent::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kReduceThreads = 1024;

int BlocksFor(int64_t n) {
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  if (wanted < 1) return 1;
  return static_cast<int>(wanted < 65535 * 16 ? wanted : 65535 * 16);
}

#define SEQUENT_GRID_LOOP(i, n)                                        \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

// Keras/TF constants, as in ops/activation_fn.h.
constexpr float kSeluAlpha = 1.6732632423543772848170429916717f;
constexpr float kSeluScale = 1.0507009873554804934193349852946f;
constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
constexpr float kInvSqrt2 = 0.70710678118654752440084436210485f;
constexpr float kInvSqrt2Pi = 0.39894228040143267793994605993438f;

__device__ float StableSigmoid(float x) {
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  const float e = expf(x);
  return e / (1.f + e);
}

__device__ float Apply(Pointwise fn, float alpha, float x) {
  switch (fn) {
    case Pointwise::kIdentity: return x;
    case Pointwise::kNeg: return -x;
    case Pointwise::kExp: return expf(x);
    case Pointwise::kLog: return logf(x);
    case Pointwise::kSqrt: return sqrtf(x);
    case Pointwise::kSquare: return x * x;
    case Pointwise::kAbs: return fabsf(x);
    case Pointwise::kRelu: return x > 0.f ? x : 0.f;
    case Pointwise::kLeakyRelu: return x > 0.f ? x : alpha * x;
    case Pointwise::kElu: return x > 0.f ? x : alpha * expm1f(x);
    case Pointwise::kSelu:
      return kSeluScale * (x > 0.f ? x : kSeluAlpha * expm1f(x));
    case Pointwise::kSigmoid: return StableSigmoid(x);
    case Pointwise::kTanh: return tanhf(x);
    case Pointwise::kGelu: return 0.5f * x * (1.f + erff(x * kInvSqrt2));
    case Pointwise::kGeluTanh:
      return 0.5f * x * (1.f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    case Pointwise::kSwish: return x * StableSigmoid(x);
    case Pointwise::kSoftplus:
      return (x > 0.f ? x : 0.f) + log1pf(expf(-fabsf(x)));
    case Pointwise::kSign:
      if (x != x) return x;
      return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
  }
  return x;
}

// f'(x) from the input (ops/activation_fn.h ActivationDerivative).
__device__ float DerivativeFromInput(Pointwise fn, float alpha, float x) {
  switch (fn) {
    case Pointwise::kRelu: return x > 0.f ? 1.f : 0.f;
    case Pointwise::kLeakyRelu: return x > 0.f ? 1.f : alpha;
    case Pointwise::kElu: return x > 0.f ? 1.f : alpha * expf(x);
    case Pointwise::kSelu:
      return kSeluScale * (x > 0.f ? 1.f : kSeluAlpha * expf(x));
    case Pointwise::kSigmoid: {
      const float s = StableSigmoid(x);
      return s * (1.f - s);
    }
    case Pointwise::kTanh: {
      const float t = tanhf(x);
      return 1.f - t * t;
    }
    case Pointwise::kGelu: {
      const float cdf = 0.5f * (1.f + erff(x * kInvSqrt2));
      return cdf + x * expf(-0.5f * x * x) * kInvSqrt2Pi;
    }
    case Pointwise::kGeluTanh: {
      const float k = 0.044715f;
      const float t = tanhf(kSqrt2OverPi * (x + k * x * x * x));
      return 0.5f * (1.f + t) +
             0.5f * x * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * k * x * x);
    }
    case Pointwise::kSwish: {
      const float s = StableSigmoid(x);
      return s * (1.f + x * (1.f - s));
    }
    case Pointwise::kSoftplus: return StableSigmoid(x);
    default: return 1.f;
  }
}

// f'(x) from y = f(x) (ops/activation.cc OutputDerivative).
__device__ float DerivativeFromOutput(Pointwise fn, float alpha, float y) {
  switch (fn) {
    case Pointwise::kRelu: return y > 0.f ? 1.f : 0.f;
    case Pointwise::kLeakyRelu: return y > 0.f ? 1.f : alpha;
    case Pointwise::kElu: return y > 0.f ? 1.f : y + alpha;
    case Pointwise::kSelu:
      return y > 0.f ? kSeluScale : y + kSeluScale * kSeluAlpha;
    case Pointwise::kSigmoid: return y * (1.f - y);
    case Pointwise::kTanh: return 1.f - y * y;
    default: return 1.f;
  }
}

__global__ void PointwiseKernel(Pointwise fn, float alpha, const float* x,
                                float* y, int64_t n) {
  SEQUENT_GRID_LOOP(i, n) { y[i] = Apply(fn, alpha, x[i]); }
}

__global__ void ActivationGradKernel(Pointwise fn, float alpha,
                                     bool from_output, const float* dy,
                                     const float* v, float* dx, int64_t n) {
  SEQUENT_GRID_LOOP(i, n) {
    dx[i] = dy[i] * (from_output ? DerivativeFromOutput(fn, alpha, v[i])
                                 : DerivativeFromInput(fn, alpha, v[i]));
  }
}

// 32 columns per block, 32 row lanes per column, then a shared-memory sum.
__global__ void __launch_bounds__(kReduceThreads) ColumnSumKernel(const float* x, float* out, int64_t rows,
                                int64_t cols) {
  __shared__ float partial[32][33];
  const int64_t col = blockIdx.x * int64_t{32} + threadIdx.x;
  float sum = 0.f;
  if (col < cols) {
    for (int64_t r = threadIdx.y; r < rows; r += 32) sum += x[r * cols + col];
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float total = 0.f;
    for (int k = 0; k < 32; ++k) total += partial[k][threadIdx.x];
    out[col] = total;
  }
}

// ColumnSumKernel over rows [blockIdx.y * rows_per_chunk, ...), into row
// blockIdx.y of the partial sums.
__global__ void __launch_bounds__(kReduceThreads) ChunkedColumnSumKernel(const float* x, float* partial, int64_t rows,
                                       int64_t cols, int64_t rows_per_chunk) {
  __shared__ float sums[32][33];
  const int64_t col = blockIdx.x * int64_t{32} + threadIdx.x;
  const int64_t begin = blockIdx.y * rows_per_chunk;
  int64_t end = begin + rows_per_chunk;
  if (end > rows) end = rows;
  float sum = 0.f;
  if (col < cols) {
    for (int64_t r = begin + threadIdx.y; r < end; r += 32) sum += x[r * cols + col];
  }
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float total = 0.f;
    for (int k = 0; k < 32; ++k) total += sums[k][threadIdx.x];
    partial[blockIdx.y * cols + col] = total;
  }
}

__device__ float BinaryOp(Binary op, float a, float b) {
  switch (op) {
    case Binary::kAdd: return a + b;
    case Binary::kSub: return a - b;
    case Binary::kMul: return a * b;
    case Binary::kDiv: return a / b;
    case Binary::kMax: return a > b ? a : b;
  }
  return a;
}

__global__ void BinaryKernel(Binary op, const float* x, const float* y,
                             float* out, BroadcastShape s, int64_t n) {
  SEQUENT_GRID_LOOP(i, n) {
    int64_t rest = i, xo = 0, yo = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int64_t idx = rest % s.dims[d];
      rest /= s.dims[d];
      xo += idx * s.x_strides[d];
      yo += idx * s.y_strides[d];
    }
    out[i] = BinaryOp(op, x[xo], y[yo]);
  }
}

__global__ void BroadcastToKernel(const float* x, float* out, BroadcastShape s,
                                  int64_t n) {
  SEQUENT_GRID_LOOP(i, n) {
    int64_t rest = i, xo = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int64_t idx = rest % s.dims[d];
      rest /= s.dims[d];
      xo += idx * s.x_strides[d];
    }
    out[i] = x[xo];
  }
}

__global__ void ReduceKernel(Reduce op, const float* x, float* out,
                             ReduceShape s, int64_t out_n) {
  SEQUENT_GRID_LOOP(o, out_n) {
    int64_t rest = o, base = 0;
    for (int d = s.kept_rank - 1; d >= 0; --d) {
      const int64_t idx = rest % s.kept_dims[d];
      rest /= s.kept_dims[d];
      base += idx * s.kept_strides[d];
    }
    float acc = op == Reduce::kMax ? -INFINITY : 0.f;
    for (int64_t r = 0; r < s.reduced_count; ++r) {
      int64_t rr = r, off = base;
      for (int d = s.reduced_rank - 1; d >= 0; --d) {
        const int64_t idx = rr % s.reduced_dims[d];
        rr /= s.reduced_dims[d];
        off += idx * s.reduced_strides[d];
      }
      const float v = x[off];
      acc = op == Reduce::kMax ? (v > acc ? v : acc) : acc + v;
    }
    if (op == Reduce::kMean && s.reduced_count > 0) acc /= s.reduced_count;
    out[o] = acc;
  }
}

__global__ void SoftmaxKernel(bool log, const float* x, float* y,
                              int64_t outer, int64_t n, int64_t inner) {
  SEQUENT_GRID_LOOP(row, outer * inner) {
    const int64_t base = (row / inner) * n * inner + row % inner;
    float max = -INFINITY;
    for (int64_t k = 0; k < n; ++k) max = fmaxf(max, x[base + k * inner]);
    float sum = 0.f;
    for (int64_t k = 0; k < n; ++k) sum += expf(x[base + k * inner] - max);
    const float log_sum = logf(sum);
    for (int64_t k = 0; k < n; ++k) {
      const float z = x[base + k * inner] - max;
      y[base + k * inner] = log ? z - log_sum : expf(z) / sum;
    }
  }
}

__global__ void SoftmaxGradKernel(bool log, const float* dy, const float* y,
                                  float* dx, int64_t outer, int64_t n,
                                  int64_t inner) {
  SEQUENT_GRID_LOOP(row, outer * inner) {
    const int64_t base = (row / inner) * n * inner + row % inner;
    float sum = 0.f;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t e = base + k * inner;
      sum += log ? dy[e] : dy[e] * y[e];
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t e = base + k * inner;
      dx[e] = log ? dy[e] - expf(y[e]) * sum : y[e] * (dy[e] - sum);
    }
  }
}

// One block of kReduceThreads (the reduction kernels are __launch_bounds__ to
// it, so they always fit its register budget): a deterministic sum of
// per-thread partials.
__device__ double BlockSum(double v) {
  __shared__ double shared[kReduceThreads];
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

__device__ int64_t LabelAt(const void* labels, bool i64, int64_t r) {
  return i64 ? static_cast<const int64_t*>(labels)[r]
             : static_cast<int64_t>(static_cast<const int32_t*>(labels)[r]);
}

__device__ float WeightAt(const float* w, int64_t w_n, int64_t r,
                          int64_t rows_per_sample) {
  if (w == nullptr) return 1.f;
  return w_n == 1 ? w[0] : w[r / rows_per_sample];
}

__device__ double SparseCeRow(const SparseCeArgs& a, int64_t r) {
  const int64_t k = LabelAt(a.labels, a.labels_i64, r);
  if (k < 0 || k >= a.classes) {
    atomicOr(a.error_flag, 1);
    return 0.0;
  }
  const float* p = a.pred + r * a.classes;
  if (a.from_logits) {
    float max = -INFINITY;
    for (int64_t i = 0; i < a.classes; ++i) max = fmaxf(max, p[i]);
    double sum = 0;
    for (int64_t i = 0; i < a.classes; ++i) sum += exp(double(p[i]) - max);
    return -(double(p[k]) - max - log(sum));
  }
  double sum = 0;
  for (int64_t i = 0; i < a.classes; ++i) sum += p[i];
  const double q = fmin(fmax(p[k] / sum, 1e-7), 1.0 - 1e-7);
  return -log(q);
}

__global__ void __launch_bounds__(kReduceThreads) SparseCeKernel(SparseCeArgs a, float* loss) {
  double total = 0;
  for (int64_t r = threadIdx.x; r < a.rows; r += blockDim.x) {
    total += SparseCeRow(a, r) * WeightAt(a.weights, a.weights_n, r,
                                          a.rows_per_sample);
  }
  total = BlockSum(total);
  if (threadIdx.x == 0) loss[0] = a.rows == 0 ? 0.f : float(total / a.rows);
}

__global__ void SparseCeGradKernel(SparseCeArgs a, const float* dloss,
                                   float* grad) {
  SEQUENT_GRID_LOOP(r, a.rows) {
    const float* p = a.pred + r * a.classes;
    float* g = grad + r * a.classes;
    const int64_t k = LabelAt(a.labels, a.labels_i64, r);
    for (int64_t i = 0; i < a.classes; ++i) g[i] = 0.f;
    if (k < 0 || k >= a.classes) {
      atomicOr(a.error_flag, 1);
      continue;
    }
    const double scale = double(dloss[0]) / a.rows *
                         WeightAt(a.weights, a.weights_n, r, a.rows_per_sample);
    if (a.from_logits) {
      float max = -INFINITY;
      for (int64_t i = 0; i < a.classes; ++i) max = fmaxf(max, p[i]);
      double sum = 0;
      for (int64_t i = 0; i < a.classes; ++i) sum += exp(double(p[i]) - max);
      for (int64_t i = 0; i < a.classes; ++i) {
        const double q = exp(double(p[i]) - max) / sum;
        g[i] = float(scale * (q - (i == k ? 1.0 : 0.0)));
      }
      continue;
    }
    double sum = 0;
    for (int64_t i = 0; i < a.classes; ++i) sum += p[i];
    const double rk = p[k] / sum;
    if (!(rk >= 1e-7 && rk <= 1.0 - 1e-7)) continue;
    for (int64_t i = 0; i < a.classes; ++i) {
      g[i] = float(scale * (1.0 - (i == k ? 1.0 / rk : 0.0)) / sum);
    }
  }
}

// Keras's epsilon for clipping probabilities (ops/loss.cc).
constexpr double kProbEpsilon = 1e-7;

__device__ double ClipProb(double p) {
  return fmin(fmax(p, kProbEpsilon), 1.0 - kProbEpsilon);
}

// The elementwise loss f(t, p) and its derivative in p (ops/loss.cc).
__device__ double PointLossValue(PointLoss kind, const PointLossArgs& a,
                                 double t, double p) {
  switch (kind) {
    case PointLoss::kMse: return (p - t) * (p - t);
    case PointLoss::kMae: return fabs(p - t);
    case PointLoss::kHuber: {
      const double err = fabs(p - t);
      return err <= a.delta ? 0.5 * err * err
                            : a.delta * err - 0.5 * a.delta * a.delta;
    }
    case PointLoss::kBinaryCe: {
      t = t * (1 - a.smoothing) + 0.5 * a.smoothing;
      if (a.from_logits) return fmax(p, 0.0) - p * t + log1p(exp(-fabs(p)));
      p = ClipProb(p);
      return -(t * log(p) + (1 - t) * log(1 - p));
    }
  }
  return 0;
}

__device__ double PointLossDerivative(PointLoss kind, const PointLossArgs& a,
                                      double t, double p) {
  switch (kind) {
    case PointLoss::kMse: return 2 * (p - t);
    case PointLoss::kMae: return double((p > t) - (p < t));
    case PointLoss::kHuber: {
      const double err = p - t;
      if (fabs(err) <= a.delta) return err;
      return err > 0 ? a.delta : -a.delta;
    }
    case PointLoss::kBinaryCe: {
      t = t * (1 - a.smoothing) + 0.5 * a.smoothing;
      if (a.from_logits) return 1.0 / (1.0 + exp(-p)) - t;
      if (!(p >= kProbEpsilon && p <= 1.0 - kProbEpsilon)) return 0.0;
      return -t / p + (1 - t) / (1 - p);
    }
  }
  return 0;
}

__global__ void __launch_bounds__(kReduceThreads) PointLossKernel(PointLoss kind, PointLossArgs a, float* loss) {
  double total = 0;
  for (int64_t r = threadIdx.x; r < a.rows; r += blockDim.x) {
    double row = 0;
    for (int64_t i = r * a.d; i < (r + 1) * a.d; ++i) {
      row += PointLossValue(kind, a, a.y_true[i], a.pred[i]);
    }
    total += row / a.d * WeightAt(a.weights, a.weights_n, r, a.rows_per_sample);
  }
  total = BlockSum(total);
  if (threadIdx.x == 0) loss[0] = a.rows == 0 ? 0.f : float(total / a.rows);
}

__global__ void PointLossGradKernel(PointLoss kind, PointLossArgs a,
                                    const float* dloss, float* grad) {
  SEQUENT_GRID_LOOP(i, a.rows * a.d) {
    const int64_t r = i / a.d;
    const double scale = double(dloss[0]) / a.rows *
                         WeightAt(a.weights, a.weights_n, r, a.rows_per_sample);
    grad[i] = float(
        scale * (PointLossDerivative(kind, a, a.y_true[i], a.pred[i]) / a.d));
  }
}

__device__ double SmoothedTarget(const CategoricalCeArgs& a, int64_t e) {
  return double(a.y_true[e]) * (1 - a.smoothing) + a.smoothing / double(a.classes);
}

__device__ double CategoricalCeRow(const CategoricalCeArgs& a, int64_t r) {
  const float* p = a.pred + r * a.classes;
  const int64_t base = r * a.classes;
  double loss = 0;
  if (a.from_logits) {
    double max = -INFINITY;
    for (int64_t i = 0; i < a.classes; ++i) max = fmax(max, double(p[i]));
    double sum = 0;
    for (int64_t i = 0; i < a.classes; ++i) sum += exp(double(p[i]) - max);
    const double log_sum = log(sum);
    for (int64_t i = 0; i < a.classes; ++i) {
      loss -= SmoothedTarget(a, base + i) * (double(p[i]) - max - log_sum);
    }
    return loss;
  }
  // Keras rescales the probabilities to sum to 1, then clips.
  double sum = 0;
  for (int64_t i = 0; i < a.classes; ++i) sum += p[i];
  for (int64_t i = 0; i < a.classes; ++i) {
    loss -= SmoothedTarget(a, base + i) * log(ClipProb(double(p[i]) / sum));
  }
  return loss;
}

__global__ void __launch_bounds__(kReduceThreads) CategoricalCeKernel(CategoricalCeArgs a, float* loss) {
  double total = 0;
  for (int64_t r = threadIdx.x; r < a.rows; r += blockDim.x) {
    total += CategoricalCeRow(a, r) *
             WeightAt(a.weights, a.weights_n, r, a.rows_per_sample);
  }
  total = BlockSum(total);
  if (threadIdx.x == 0) loss[0] = a.rows == 0 ? 0.f : float(total / a.rows);
}

__device__ bool Unclipped(double r) {
  return r >= kProbEpsilon && r <= 1.0 - kProbEpsilon;
}

// ops/loss.cc CategoricalGradKernel: from logits dz_j = softmax_j sum(t) -
// t_j; from probabilities dp_j = (sum_i t_i [r_i unclipped] - t_j [r_j
// unclipped] / r_j) / S with S = sum(p), r = p / S.
__global__ void CategoricalCeGradKernel(CategoricalCeArgs a, const float* dloss,
                                        float* grad) {
  SEQUENT_GRID_LOOP(r, a.rows) {
    const int64_t base = r * a.classes;
    const float* p = a.pred + base;
    float* g = grad + base;
    const double scale = double(dloss[0]) / a.rows *
                         WeightAt(a.weights, a.weights_n, r, a.rows_per_sample);
    double sum_t = 0, sum_p = 0;
    for (int64_t i = 0; i < a.classes; ++i) {
      sum_t += SmoothedTarget(a, base + i);
      sum_p += p[i];
    }
    if (a.from_logits) {
      double max = -INFINITY;
      for (int64_t i = 0; i < a.classes; ++i) max = fmax(max, double(p[i]));
      double sum = 0;
      for (int64_t i = 0; i < a.classes; ++i) sum += exp(double(p[i]) - max);
      for (int64_t j = 0; j < a.classes; ++j) {
        const double q = exp(double(p[j]) - max) / sum;
        g[j] = float(scale * (q * sum_t - SmoothedTarget(a, base + j)));
      }
      continue;
    }
    double kept = 0;
    for (int64_t i = 0; i < a.classes; ++i) {
      if (Unclipped(double(p[i]) / sum_p)) kept += SmoothedTarget(a, base + i);
    }
    for (int64_t j = 0; j < a.classes; ++j) {
      const double rj = double(p[j]) / sum_p;
      const double own = Unclipped(rj) ? SmoothedTarget(a, base + j) / rj : 0.0;
      g[j] = float(scale * ((kept - own) / sum_p));
    }
  }
}

__global__ void __launch_bounds__(kReduceThreads) BinaryAccuracyKernel(const float* y_true, const float* pred, int64_t n,
                                     double threshold, float* out) {
  double correct = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double predicted = double(pred[i]) > threshold ? 1.0 : 0.0;
    correct += double(y_true[i]) == predicted;
  }
  correct = BlockSum(correct);
  if (threadIdx.x == 0) out[0] = n == 0 ? 0.f : float(correct / n);
}

__device__ int64_t ArgMax(const float* row, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (row[i] > row[best]) best = i;
  }
  return best;
}

__global__ void __launch_bounds__(kReduceThreads) SparseAccuracyKernel(const void* labels, bool i64,
                                     const float* pred, int64_t rows,
                                     int64_t classes, float* out) {
  double correct = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    correct += LabelAt(labels, i64, r) == ArgMax(pred + r * classes, classes);
  }
  correct = BlockSum(correct);
  if (threadIdx.x == 0) out[0] = rows == 0 ? 0.f : float(correct / rows);
}

__global__ void __launch_bounds__(kReduceThreads) CategoricalAccuracyKernel(const float* y_true,
                                          const float* pred, int64_t rows,
                                          int64_t classes, float* out) {
  double correct = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    correct += ArgMax(y_true + r * classes, classes) ==
               ArgMax(pred + r * classes, classes);
  }
  correct = BlockSum(correct);
  if (threadIdx.x == 0) out[0] = rows == 0 ? 0.f : float(correct / rows);
}

__global__ void DropoutKernel(DropoutArgs a) {
  uint64_t step = 0;
  if (a.step != nullptr) {
    step = a.step_i64 ? static_cast<uint64_t>(*static_cast<const int64_t*>(a.step))
                      : static_cast<uint64_t>(static_cast<int64_t>(
                            *static_cast<const int32_t*>(a.step)));
  }
  SEQUENT_GRID_LOOP(i, a.n) {
    float m = 1.f;
    if (a.active) {
      m = ops::DropoutKeep(a.seed, step, static_cast<uint64_t>(i), a.threshold)
              ? a.scale
              : 0.f;
    }
    a.mask[i] = m;
    a.y[i] = a.x[i] * m;
  }
}

// core/dtype.cc FloatToBF16: round to nearest even, NaN stays NaN.
__device__ uint16_t DeviceFloatToBF16(float value) {
  const uint32_t bits = __float_as_uint(value);
  if (value != value) return static_cast<uint16_t>((bits >> 16) | 0x40);
  const uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// One chunk of one tensor per block; the Adam scalars (lr, t) are read on the
// device so the captured graph needs no host values.
__global__ void FusedUpdateKernel(UpdateKind kind, UpdateHyper h,
                                  const UpdateTensor* tensors,
                                  const UpdateChunk* chunks,
                                  const float* learning_rate,
                                  const float* iterations) {
  const UpdateChunk chunk = chunks[blockIdx.x];
  const UpdateTensor t = tensors[chunk.tensor];
  const float lr = *learning_rate;
  float alpha = 0.f;
  if (kind == UpdateKind::kAdam || kind == UpdateKind::kAdamW) {
    const float step = *iterations + 1.f;
    const float b1_power = powf(h.beta_1, step);
    const float b2_power = powf(h.beta_2, step);
    alpha = lr * sqrtf(1.f - b2_power) / (1.f - b1_power);
  }
  const float one_minus_b1 = 1.f - h.beta_1;
  const float one_minus_b2 = 1.f - h.beta_2;
  int64_t end = chunk.start + kUpdateChunk;
  if (end > t.n) end = t.n;
  for (int64_t i = chunk.start + threadIdx.x; i < end; i += blockDim.x) {
    const float g = t.grad[i];
    switch (kind) {
      case UpdateKind::kSgd:
        t.var_out[i] = t.var[i] - g * lr;
        break;
      case UpdateKind::kMomentum: {
        const float v = t.slot0[i] * h.momentum - g * lr;
        t.slot0_out[i] = v;
        t.var_out[i] = t.var[i] + (h.nesterov ? v * h.momentum - g * lr : v);
        break;
      }
      case UpdateKind::kAdam:
      case UpdateKind::kAdamW: {
        float w = t.var[i];
        if (kind == UpdateKind::kAdamW) w = w - w * h.weight_decay * lr;
        const float m = t.slot0[i] + (g - t.slot0[i]) * one_minus_b1;
        const float v = t.slot1[i] + (g * g - t.slot1[i]) * one_minus_b2;
        t.slot0_out[i] = m;
        t.slot1_out[i] = v;
        t.var_out[i] = w - (m * alpha) / (sqrtf(v) + h.epsilon);
        break;
      }
      case UpdateKind::kRmsprop: {
        const float ms = h.rho * t.slot0[i] + h.one_minus_rho * (g * g);
        t.slot0_out[i] = ms;
        t.var_out[i] = t.var[i] - (lr * g) / sqrtf(ms + h.epsilon);
        break;
      }
      case UpdateKind::kAdagrad: {
        const float acc = t.slot0[i] + g * g;
        t.slot0_out[i] = acc;
        t.var_out[i] = t.var[i] - (lr * g) / sqrtf(acc + h.epsilon);
        break;
      }
    }
    if (t.var_bf16_out != nullptr)
      t.var_bf16_out[i] = DeviceFloatToBF16(t.var_out[i]);
  }
}

__global__ void ClipByValueKernel(const float* x, float* y, int64_t n, float lo,
                                  float hi) {
  SEQUENT_GRID_LOOP(i, n) { y[i] = fminf(fmaxf(x[i], lo), hi); }
}

__global__ void __launch_bounds__(kReduceThreads) SumSquaresKernel(const float* x, int64_t n, float* norm) {
  double sum = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    sum += double(x[i]) * double(x[i]);
  }
  sum = BlockSum(sum);
  if (threadIdx.x == 0) norm[0] = float(sqrt(sum));
}

__global__ void ClipByNormKernel(const float* x, float* y, int64_t n,
                                 float max_norm, const float* norm) {
  const float nrm = *norm;
  SEQUENT_GRID_LOOP(i, n) { y[i] = nrm > max_norm ? x[i] * max_norm / nrm : x[i]; }
}

template <typename T>
__global__ void StridedCopyKernel(const T* src, T* dst, StridedCopy s,
                                  int64_t n) {
  SEQUENT_GRID_LOOP(i, n) {
    int64_t rest = i, so = s.src_base, d_o = s.dst_base;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int64_t idx = rest % s.dims[d];
      rest /= s.dims[d];
      so += idx * s.src_strides[d];
      d_o += idx * s.dst_strides[d];
    }
    dst[d_o] = src[so];
  }
}

__device__ bool IsIntegerCast(CastType t) {
  return t == CastType::kI32 || t == CastType::kI64;
}

__device__ double LoadAsDouble(CastType t, const void* p, int64_t i) {
  switch (t) {
    case CastType::kF32: return static_cast<const float*>(p)[i];
    case CastType::kBF16:
      return __uint_as_float(
          static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16);
    case CastType::kI32: return static_cast<const int32_t*>(p)[i];
    case CastType::kI64:
      return static_cast<double>(static_cast<const int64_t*>(p)[i]);
  }
  return 0;
}


__global__ void CastKernel(CastType from, CastType to, const void* x, void* y,
                           int64_t n) {
  SEQUENT_GRID_LOOP(i, n) {
    if (IsIntegerCast(from) && IsIntegerCast(to)) {
      const int64_t v = from == CastType::kI64
                            ? static_cast<const int64_t*>(x)[i]
                            : int64_t{static_cast<const int32_t*>(x)[i]};
      if (to == CastType::kI64) {
        static_cast<int64_t*>(y)[i] = v;
      } else {
        static_cast<int32_t*>(y)[i] = static_cast<int32_t>(v);
      }
      continue;
    }
    double v = LoadAsDouble(from, x, i);
    switch (to) {
      case CastType::kF32:
        static_cast<float*>(y)[i] = static_cast<float>(v);
        break;
      case CastType::kBF16:
        static_cast<uint16_t*>(y)[i] = DeviceFloatToBF16(static_cast<float>(v));
        break;
      case CastType::kI32:
      case CastType::kI64: {
        // ops/shape.cc SaturateToInteger.
        const double lo = to == CastType::kI64 ? -9223372036854775808.0
                                               : -2147483648.0;
        const double hi = to == CastType::kI64 ? 9223372036854774784.0
                                               : 2147483647.0;
        v = v != v ? 0.0 : trunc(fmin(fmax(v, lo), hi));
        if (to == CastType::kI64) {
          static_cast<int64_t*>(y)[i] = static_cast<int64_t>(v);
        } else {
          static_cast<int32_t*>(y)[i] = static_cast<int32_t>(v);
        }
        break;
      }
    }
  }
}

__global__ void MaximumGradKernel(const float* x, const float* y,
                                  const float* dout, float* dx, float* dy,
                                  BroadcastShape s, int64_t n) {
  SEQUENT_GRID_LOOP(i, n) {
    int64_t rest = i, xo = 0, yo = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int64_t idx = rest % s.dims[d];
      rest /= s.dims[d];
      xo += idx * s.x_strides[d];
      yo += idx * s.y_strides[d];
    }
    const float a = x[xo], c = y[yo];
    const bool to_x = c == c && !(a < c);
    dx[i] = to_x ? dout[i] : 0.f;
    dy[i] = to_x ? 0.f : dout[i];
  }
}

__global__ void CountTiesKernel(const float* x, const float* y, float* ties,
                                ReduceShape s, int64_t out_n) {
  SEQUENT_GRID_LOOP(o, out_n) {
    int64_t rest = o, base = 0;
    for (int d = s.kept_rank - 1; d >= 0; --d) {
      const int64_t idx = rest % s.kept_dims[d];
      rest /= s.kept_dims[d];
      base += idx * s.kept_strides[d];
    }
    int64_t count = 0;
    const float target = y[o];
    for (int64_t r = 0; r < s.reduced_count; ++r) {
      int64_t rr = r, off = base;
      for (int d = s.reduced_rank - 1; d >= 0; --d) {
        const int64_t idx = rr % s.reduced_dims[d];
        rr /= s.reduced_dims[d];
        off += idx * s.reduced_strides[d];
      }
      count += x[off] == target;
    }
    ties[o] = static_cast<float>(count);
  }
}

__global__ void ReduceMaxGradKernel(const float* x, const float* y,
                                    const float* dy, const float* ties,
                                    float* dx, BroadcastShape s, int64_t n) {
  SEQUENT_GRID_LOOP(i, n) {
    int64_t rest = i, j = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int64_t idx = rest % s.dims[d];
      rest /= s.dims[d];
      j += idx * s.x_strides[d];
    }
    dx[i] = x[i] == y[j] ? dy[j] / ties[j] : 0.f;
  }
}

__global__ void PoolKernel(bool max, const float* x, float* y, PoolShape s) {
  SEQUENT_GRID_LOOP(o, s.n * s.oh * s.ow * s.c) {
    const int64_t ch = o % s.c;
    int64_t r = o / s.c;
    const int64_t ox = r % s.ow;
    r /= s.ow;
    const int64_t oy = r % s.oh;
    const int64_t b = r / s.oh;
    float acc = max ? -INFINITY : 0.f;
    int64_t count = 0;
    for (int64_t ky = 0; ky < s.pool_h; ++ky) {
      const int64_t iy = oy * s.stride_h - s.pad_h + ky;
      if (iy < 0 || iy >= s.h) continue;
      for (int64_t kx = 0; kx < s.pool_w; ++kx) {
        const int64_t ix = ox * s.stride_w - s.pad_w + kx;
        if (ix < 0 || ix >= s.w) continue;
        const float v = x[((b * s.h + iy) * s.w + ix) * s.c + ch];
        if (max) {
          acc = acc < v ? v : acc;  // std::max(acc, v)
        } else {
          acc += v;
        }
        ++count;
      }
    }
    if (!max) acc /= static_cast<float>(count);
    y[o] = acc;
  }
}

// The output rows/columns whose windows contain input position i (1-D).
__device__ void WindowsContaining(int64_t i, int64_t pad, int64_t window,
                                  int64_t stride, int64_t out, int64_t* lo,
                                  int64_t* hi) {
  const int64_t first = i + pad - window + 1;
  *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  *hi = (i + pad) / stride;
  if (*hi > out - 1) *hi = out - 1;
}

__global__ void MaxPoolGradKernel(const float* x, const float* dy, float* dx,
                                  PoolShape s) {
  SEQUENT_GRID_LOOP(i, s.n * s.h * s.w * s.c) {
    const int64_t ch = i % s.c;
    int64_t r = i / s.c;
    const int64_t ix = r % s.w;
    r /= s.w;
    const int64_t iy = r % s.h;
    const int64_t b = r / s.h;
    int64_t oy_lo, oy_hi, ox_lo, ox_hi;
    WindowsContaining(iy, s.pad_h, s.pool_h, s.stride_h, s.oh, &oy_lo, &oy_hi);
    WindowsContaining(ix, s.pad_w, s.pool_w, s.stride_w, s.ow, &ox_lo, &ox_hi);
    float acc = 0.f;
    for (int64_t oy = oy_lo; oy <= oy_hi; ++oy) {
      for (int64_t ox = ox_lo; ox <= ox_hi; ++ox) {
        // The window's first maximum in row-major order.
        int64_t best_y = -1, best_x = -1;
        float best = 0.f;
        for (int64_t ky = 0; ky < s.pool_h; ++ky) {
          const int64_t yy = oy * s.stride_h - s.pad_h + ky;
          if (yy < 0 || yy >= s.h) continue;
          for (int64_t kx = 0; kx < s.pool_w; ++kx) {
            const int64_t xx = ox * s.stride_w - s.pad_w + kx;
            if (xx < 0 || xx >= s.w) continue;
            const float v = x[((b * s.h + yy) * s.w + xx) * s.c + ch];
            if (best_y < 0 || v > best) {
              best_y = yy;
              best_x = xx;
              best = v;
            }
          }
        }
        if (best_y == iy && best_x == ix) {
          acc += dy[((b * s.oh + oy) * s.ow + ox) * s.c + ch];
        }
      }
    }
    dx[i] = acc;
  }
}

__global__ void AvgPoolGradKernel(const float* dy, float* dx, PoolShape s) {
  SEQUENT_GRID_LOOP(i, s.n * s.h * s.w * s.c) {
    const int64_t ch = i % s.c;
    int64_t r = i / s.c;
    const int64_t ix = r % s.w;
    r /= s.w;
    const int64_t iy = r % s.h;
    const int64_t b = r / s.h;
    int64_t oy_lo, oy_hi, ox_lo, ox_hi;
    WindowsContaining(iy, s.pad_h, s.pool_h, s.stride_h, s.oh, &oy_lo, &oy_hi);
    WindowsContaining(ix, s.pad_w, s.pool_w, s.stride_w, s.ow, &ox_lo, &ox_hi);
    float acc = 0.f;
    for (int64_t oy = oy_lo; oy <= oy_hi; ++oy) {
      const int64_t y0 = oy * s.stride_h - s.pad_h;
      const int64_t rows = min(y0 + s.pool_h, s.h) - max(y0, int64_t{0});
      for (int64_t ox = ox_lo; ox <= ox_hi; ++ox) {
        const int64_t x0 = ox * s.stride_w - s.pad_w;
        const int64_t cols = min(x0 + s.pool_w, s.w) - max(x0, int64_t{0});
        acc += dy[((b * s.oh + oy) * s.ow + ox) * s.c + ch] /
               static_cast<float>(rows * cols);
      }
    }
    dx[i] = acc;
  }
}

__global__ void GlobalAvgPoolGradKernel(const float* dy, float* dx, int64_t n,
                                        int64_t hw, int64_t c) {
  SEQUENT_GRID_LOOP(i, n * hw * c) {
    const int64_t ch = i % c;
    const int64_t b = i / (hw * c);
    dx[i] = dy[b * c + ch] / static_cast<float>(hw);
  }
}

__global__ void BatchNormMovingStatsKernel(
    const float* moving_mean, const float* moving_var, const float* saved_mean,
    const float* saved_inv_std, int64_t c, double momentum, double epsilon,
    float* new_mean, float* new_var) {
  SEQUENT_GRID_LOOP(ch, c) {
    const double inv = saved_inv_std[ch];
    double var = 1.0 / (inv * inv) - epsilon;
    if (var < 0) var = 0;
    new_mean[ch] = float(double(moving_mean[ch]) * momentum +
                         double(saved_mean[ch]) * (1 - momentum));
    new_var[ch] = float(double(moving_var[ch]) * momentum + var * (1 - momentum));
  }
}

__global__ void BatchNormInferenceKernel(BatchNormInferenceArgs a) {
  SEQUENT_GRID_LOOP(i, a.rows * a.c) {
    const int64_t ch = i % a.c;
    const double mean = a.moving_mean[ch];
    const double inv_std = 1.0 / sqrt(double(a.moving_var[ch]) + a.epsilon);
    a.y[i] = float(double(a.gamma[ch]) * ((double(a.x[i]) - mean) * inv_std) +
                   double(a.beta[ch]));
    if (i < a.c) {
      a.new_mean[i] = a.moving_mean[i];
      a.new_var[i] = a.moving_var[i];
      a.saved_mean[i] = a.moving_mean[i];
      a.saved_inv_std[i] = float(inv_std);
    }
  }
}

// dgamma[col] = sum_r dy xhat, dbeta[col] = sum_r dy over [rows, c]: 32
// columns per block, 32 row lanes each, summed in double. The statistics are
// per column (batch_norm) or per row (layer_norm).
__global__ void __launch_bounds__(kReduceThreads) NormParamGradKernel(NormGradArgs a, bool per_row_stats) {
  __shared__ double partial_g[32][33];
  __shared__ double partial_b[32][33];
  const int64_t col = blockIdx.x * int64_t{32} + threadIdx.x;
  double sum_g = 0, sum_b = 0;
  if (col < a.c) {
    for (int64_t r = threadIdx.y; r < a.rows; r += 32) {
      const int64_t stat = per_row_stats ? r : col;
      const int64_t e = r * a.c + col;
      const double xhat =
          (double(a.x[e]) - double(a.mean[stat])) * double(a.inv_std[stat]);
      sum_g += double(a.dy[e]) * xhat;
      sum_b += a.dy[e];
    }
  }
  partial_g[threadIdx.y][threadIdx.x] = sum_g;
  partial_b[threadIdx.y][threadIdx.x] = sum_b;
  __syncthreads();
  if (threadIdx.y == 0 && col < a.c) {
    double g = 0, b = 0;
    for (int k = 0; k < 32; ++k) {
      g += partial_g[k][threadIdx.x];
      b += partial_b[k][threadIdx.x];
    }
    a.dgamma[col] = float(g);
    a.dbeta[col] = float(b);
  }
}

__global__ void BatchNormGradInferenceDxKernel(NormGradArgs a) {
  SEQUENT_GRID_LOOP(i, a.rows * a.c) {
    const int64_t ch = i % a.c;
    a.dx[i] = float(double(a.gamma[ch]) * double(a.inv_std[ch]) * double(a.dy[i]));
  }
}

constexpr int kRowThreads = 256;

// One block per row (grid-stride over rows).
__global__ void __launch_bounds__(kRowThreads) LayerNormKernel(LayerNormArgs a) {
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const float* x = a.x + r * a.c;
    double sum = 0;
    for (int64_t i = threadIdx.x; i < a.c; i += blockDim.x) sum += x[i];
    const double mean = BlockSum(sum) / double(a.c);
    double sq = 0;
    for (int64_t i = threadIdx.x; i < a.c; i += blockDim.x) {
      const double d = double(x[i]) - mean;
      sq += d * d;
    }
    const double inv_std = 1.0 / sqrt(BlockSum(sq) / double(a.c) + a.epsilon);
    if (threadIdx.x == 0) {
      a.mean[r] = float(mean);
      a.inv_std[r] = float(inv_std);
    }
    for (int64_t i = threadIdx.x; i < a.c; i += blockDim.x) {
      a.y[r * a.c + i] = float(double(a.gamma[i]) *
                                   ((double(x[i]) - mean) * inv_std) +
                               double(a.beta[i]));
    }
  }
}

// dx per row: with g = dy gamma, dx = inv_std (g - mean(g) - xhat
// mean(g xhat)), the statistics as saved (f32), as the reference.
__global__ void __launch_bounds__(kRowThreads) LayerNormGradDxKernel(NormGradArgs a) {
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const double mean = a.mean[r], inv_std = a.inv_std[r];
    double s1 = 0, s2 = 0;
    for (int64_t i = threadIdx.x; i < a.c; i += blockDim.x) {
      const int64_t e = r * a.c + i;
      const double xhat = (double(a.x[e]) - mean) * inv_std;
      const double g = double(a.dy[e]) * double(a.gamma[i]);
      s1 += g;
      s2 += g * xhat;
    }
    s1 = BlockSum(s1);
    s2 = BlockSum(s2);
    const double m = double(a.c);
    for (int64_t i = threadIdx.x; i < a.c; i += blockDim.x) {
      const int64_t e = r * a.c + i;
      const double xhat = (double(a.x[e]) - mean) * inv_std;
      const double g = double(a.dy[e]) * double(a.gamma[i]);
      a.dx[e] = float(inv_std * (g - s1 / m - xhat * s2 / m));
    }
  }
}

}  // namespace

cudaError_t LaunchPointwise(Pointwise fn, float alpha, const float* x, float* y,
                            int64_t n, cudaStream_t stream) {
  PointwiseKernel<<<BlocksFor(n), kThreads, 0, stream>>>(fn, alpha, x, y, n);
  return cudaGetLastError();
}

cudaError_t LaunchActivationGrad(Pointwise fn, float alpha, bool from_output,
                                 const float* dy, const float* v, float* dx,
                                 int64_t n, cudaStream_t stream) {
  ActivationGradKernel<<<BlocksFor(n), kThreads, 0, stream>>>(
      fn, alpha, from_output, dy, v, dx, n);
  return cudaGetLastError();
}

cudaError_t LaunchColumnSum(const float* x, float* out, int64_t rows,
                            int64_t cols, cudaStream_t stream) {
  const int blocks = static_cast<int>((cols + 31) / 32);
  ColumnSumKernel<<<blocks > 0 ? blocks : 1, dim3(32, 32), 0, stream>>>(
      x, out, rows, cols);
  return cudaGetLastError();
}

int64_t ColumnSumChunks(int64_t rows, int64_t cols) {
  const int64_t col_blocks = (cols + 31) / 32;
  // A few blocks per SM in all; chunks of at least 1024 rows.
  constexpr int64_t kTargetBlocks = 512;
  if (col_blocks >= kTargetBlocks / 4 || rows < 4096) return 1;
  int64_t chunks = (rows + 1023) / 1024;
  const int64_t cap = kTargetBlocks / col_blocks;
  if (chunks > cap) chunks = cap;
  return chunks < 1 ? 1 : chunks;
}

cudaError_t LaunchColumnSumChunked(const float* x, float* out, int64_t rows,
                                   int64_t cols, float* scratch, int64_t chunks,
                                   cudaStream_t stream) {
  if (chunks <= 1) return LaunchColumnSum(x, out, rows, cols, stream);
  const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
  const unsigned col_blocks = static_cast<unsigned>((cols + 31) / 32);
  ChunkedColumnSumKernel<<<dim3(col_blocks, static_cast<unsigned>(chunks)),
                           dim3(32, 32), 0, stream>>>(x, scratch, rows, cols,
                                                      rows_per_chunk);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  return LaunchColumnSum(scratch, out, chunks, cols, stream);
}

cudaError_t LaunchBinary(Binary op, const float* x, const float* y, float* out,
                         const BroadcastShape& shape, int64_t n,
                         cudaStream_t stream) {
  BinaryKernel<<<BlocksFor(n), kThreads, 0, stream>>>(op, x, y, out, shape, n);
  return cudaGetLastError();
}

cudaError_t LaunchReduce(Reduce op, const float* x, float* out,
                         const ReduceShape& shape, int64_t out_n,
                         cudaStream_t stream) {
  ReduceKernel<<<BlocksFor(out_n), kThreads, 0, stream>>>(op, x, out, shape,
                                                          out_n);
  return cudaGetLastError();
}

cudaError_t LaunchBroadcastTo(const float* x, float* out,
                              const BroadcastShape& shape, int64_t n,
                              cudaStream_t stream) {
  BroadcastToKernel<<<BlocksFor(n), kThreads, 0, stream>>>(x, out, shape, n);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmax(bool log, const float* x, float* y, int64_t outer,
                          int64_t n, int64_t inner, cudaStream_t stream) {
  SoftmaxKernel<<<BlocksFor(outer * inner), kThreads, 0, stream>>>(
      log, x, y, outer, n, inner);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmaxGrad(bool log, const float* dy, const float* y,
                              float* dx, int64_t outer, int64_t n,
                              int64_t inner, cudaStream_t stream) {
  SoftmaxGradKernel<<<BlocksFor(outer * inner), kThreads, 0, stream>>>(
      log, dy, y, dx, outer, n, inner);
  return cudaGetLastError();
}

cudaError_t LaunchSparseCe(const SparseCeArgs& args, float* loss,
                           cudaStream_t stream) {
  SparseCeKernel<<<1, kReduceThreads, 0, stream>>>(args, loss);
  return cudaGetLastError();
}

cudaError_t LaunchSparseCeGrad(const SparseCeArgs& args, const float* dloss,
                               float* grad, cudaStream_t stream) {
  SparseCeGradKernel<<<BlocksFor(args.rows), kThreads, 0, stream>>>(args, dloss,
                                                                    grad);
  return cudaGetLastError();
}

cudaError_t LaunchPointLoss(PointLoss kind, const PointLossArgs& args,
                            float* loss, cudaStream_t stream) {
  PointLossKernel<<<1, kReduceThreads, 0, stream>>>(kind, args, loss);
  return cudaGetLastError();
}

cudaError_t LaunchPointLossGrad(PointLoss kind, const PointLossArgs& args,
                                const float* dloss, float* grad,
                                cudaStream_t stream) {
  PointLossGradKernel<<<BlocksFor(args.rows * args.d), kThreads, 0, stream>>>(
      kind, args, dloss, grad);
  return cudaGetLastError();
}

cudaError_t LaunchSparseAccuracy(const void* labels, bool labels_i64,
                                 const float* pred, int64_t rows,
                                 int64_t classes, float* out,
                                 cudaStream_t stream) {
  SparseAccuracyKernel<<<1, kReduceThreads, 0, stream>>>(labels, labels_i64,
                                                         pred, rows, classes, out);
  return cudaGetLastError();
}

cudaError_t LaunchCategoricalAccuracy(const float* y_true, const float* pred,
                                      int64_t rows, int64_t classes, float* out,
                                      cudaStream_t stream) {
  CategoricalAccuracyKernel<<<1, kReduceThreads, 0, stream>>>(y_true, pred,
                                                              rows, classes, out);
  return cudaGetLastError();
}

cudaError_t LaunchDropout(const DropoutArgs& args, cudaStream_t stream) {
  DropoutKernel<<<BlocksFor(args.n), kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

cudaError_t LaunchFusedUpdate(UpdateKind kind, const UpdateHyper& hyper,
                              const UpdateTensor* tensors,
                              const UpdateChunk* chunks, int64_t num_chunks,
                              const float* learning_rate,
                              const float* iterations, cudaStream_t stream) {
  if (num_chunks == 0) return cudaSuccess;
  FusedUpdateKernel<<<static_cast<unsigned>(num_chunks), kThreads, 0, stream>>>(
      kind, hyper, tensors, chunks, learning_rate, iterations);
  return cudaGetLastError();
}

cudaError_t LaunchClipByValue(const float* x, float* y, int64_t n, float lo,
                              float hi, cudaStream_t stream) {
  ClipByValueKernel<<<BlocksFor(n), kThreads, 0, stream>>>(x, y, n, lo, hi);
  return cudaGetLastError();
}

cudaError_t LaunchClipByNorm(const float* x, float* y, int64_t n,
                             float max_norm, float* norm, cudaStream_t stream) {
  SumSquaresKernel<<<1, kReduceThreads, 0, stream>>>(x, n, norm);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  ClipByNormKernel<<<BlocksFor(n), kThreads, 0, stream>>>(x, y, n, max_norm,
                                                          norm);
  return cudaGetLastError();
}

cudaError_t LaunchCategoricalCe(const CategoricalCeArgs& args, float* loss,
                                cudaStream_t stream) {
  CategoricalCeKernel<<<1, kReduceThreads, 0, stream>>>(args, loss);
  return cudaGetLastError();
}

cudaError_t LaunchCategoricalCeGrad(const CategoricalCeArgs& args,
                                    const float* dloss, float* grad,
                                    cudaStream_t stream) {
  CategoricalCeGradKernel<<<BlocksFor(args.rows), kThreads, 0, stream>>>(
      args, dloss, grad);
  return cudaGetLastError();
}

cudaError_t LaunchBinaryAccuracy(const float* y_true, const float* pred,
                                 int64_t n, double threshold, float* out,
                                 cudaStream_t stream) {
  BinaryAccuracyKernel<<<1, kReduceThreads, 0, stream>>>(y_true, pred, n,
                                                         threshold, out);
  return cudaGetLastError();
}

cudaError_t LaunchStridedCopy(const void* src, void* dst, int elem_bytes,
                              const StridedCopy& copy, int64_t n,
                              cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (elem_bytes) {
    case 2:
      StridedCopyKernel<<<BlocksFor(n), kThreads, 0, stream>>>(
          static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), copy,
          n);
      break;
    case 4:
      StridedCopyKernel<<<BlocksFor(n), kThreads, 0, stream>>>(
          static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), copy,
          n);
      break;
    case 8:
      StridedCopyKernel<<<BlocksFor(n), kThreads, 0, stream>>>(
          static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), copy,
          n);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t LaunchCast(CastType from, CastType to, const void* x, void* y,
                       int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  CastKernel<<<BlocksFor(n), kThreads, 0, stream>>>(from, to, x, y, n);
  return cudaGetLastError();
}

cudaError_t LaunchMaximumGrad(const float* x, const float* y,
                              const float* dout, float* dx, float* dy,
                              const BroadcastShape& shape, int64_t n,
                              cudaStream_t stream) {
  MaximumGradKernel<<<BlocksFor(n), kThreads, 0, stream>>>(x, y, dout, dx, dy,
                                                           shape, n);
  return cudaGetLastError();
}

cudaError_t LaunchReduceMaxGrad(const float* x, const float* y,
                                const float* dy, float* dx, float* ties,
                                const ReduceShape& groups, int64_t groups_n,
                                const BroadcastShape& to_group, int64_t n,
                                cudaStream_t stream) {
  CountTiesKernel<<<BlocksFor(groups_n), kThreads, 0, stream>>>(x, y, ties,
                                                                groups, groups_n);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  ReduceMaxGradKernel<<<BlocksFor(n), kThreads, 0, stream>>>(x, y, dy, ties, dx,
                                                             to_group, n);
  return cudaGetLastError();
}

cudaError_t LaunchPool(bool max, const float* x, float* y, const PoolShape& s,
                       cudaStream_t stream) {
  PoolKernel<<<BlocksFor(s.n * s.oh * s.ow * s.c), kThreads, 0, stream>>>(
      max, x, y, s);
  return cudaGetLastError();
}

cudaError_t LaunchMaxPoolGrad(const float* x, const float* dy, float* dx,
                              const PoolShape& s, cudaStream_t stream) {
  MaxPoolGradKernel<<<BlocksFor(s.n * s.h * s.w * s.c), kThreads, 0, stream>>>(
      x, dy, dx, s);
  return cudaGetLastError();
}

cudaError_t LaunchAvgPoolGrad(const float* dy, float* dx, const PoolShape& s,
                              cudaStream_t stream) {
  AvgPoolGradKernel<<<BlocksFor(s.n * s.h * s.w * s.c), kThreads, 0, stream>>>(
      dy, dx, s);
  return cudaGetLastError();
}

cudaError_t LaunchGlobalAvgPoolGrad(const float* dy, float* dx, int64_t n,
                                    int64_t hw, int64_t c, cudaStream_t stream) {
  GlobalAvgPoolGradKernel<<<BlocksFor(n * hw * c), kThreads, 0, stream>>>(
      dy, dx, n, hw, c);
  return cudaGetLastError();
}

cudaError_t LaunchBatchNormMovingStats(const float* moving_mean,
                                       const float* moving_var,
                                       const float* saved_mean,
                                       const float* saved_inv_std, int64_t c,
                                       float momentum, float epsilon,
                                       float* new_mean, float* new_var,
                                       cudaStream_t stream) {
  BatchNormMovingStatsKernel<<<BlocksFor(c), kThreads, 0, stream>>>(
      moving_mean, moving_var, saved_mean, saved_inv_std, c, momentum, epsilon,
      new_mean, new_var);
  return cudaGetLastError();
}

cudaError_t LaunchBatchNormInference(const BatchNormInferenceArgs& args,
                                     cudaStream_t stream) {
  BatchNormInferenceKernel<<<BlocksFor(args.rows * args.c), kThreads, 0,
                             stream>>>(args);
  return cudaGetLastError();
}

cudaError_t LaunchBatchNormGradInference(const NormGradArgs& args,
                                         cudaStream_t stream) {
  const int blocks = static_cast<int>((args.c + 31) / 32);
  NormParamGradKernel<<<blocks > 0 ? blocks : 1, dim3(32, 32), 0, stream>>>(
      args, /*per_row_stats=*/false);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  BatchNormGradInferenceDxKernel<<<BlocksFor(args.rows * args.c), kThreads, 0,
                                   stream>>>(args);
  return cudaGetLastError();
}

int RowBlocks(int64_t rows) {
  if (rows < 1) return 1;
  return static_cast<int>(rows < 65535 * 16 ? rows : 65535 * 16);
}

cudaError_t LaunchLayerNorm(const LayerNormArgs& args, cudaStream_t stream) {
  LayerNormKernel<<<RowBlocks(args.rows), kRowThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

cudaError_t LaunchLayerNormGrad(const NormGradArgs& args, cudaStream_t stream) {
  LayerNormGradDxKernel<<<RowBlocks(args.rows), kRowThreads, 0, stream>>>(args);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  const int blocks = static_cast<int>((args.c + 31) / 32);
  NormParamGradKernel<<<blocks > 0 ? blocks : 1, dim3(32, 32), 0, stream>>>(
      args, /*per_row_stats=*/true);
  return cudaGetLastError();
}


}  // namespace sequent::cuda
