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

__global__ void __launch_bounds__(kReduceThreads) PointLossKernel(PointLoss kind, PointLossArgs a, float* loss) {
  double total = 0;
  for (int64_t r = threadIdx.x; r < a.rows; r += blockDim.x) {
    double row = 0;
    for (int64_t i = r * a.d; i < (r + 1) * a.d; ++i) {
      const double diff = double(a.pred[i]) - a.y_true[i];
      row += kind == PointLoss::kMse ? diff * diff : fabs(diff);
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
    const double diff = double(a.pred[i]) - a.y_true[i];
    const double df = kind == PointLoss::kMse
                          ? 2 * diff
                          : double((diff > 0) - (diff < 0));
    grad[i] = float(scale * df / a.d);
  }
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
    }
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

}  // namespace sequent::cuda
