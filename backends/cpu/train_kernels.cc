#include "backends/cpu/train_kernels.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "backends/cpu/parallel.h"

namespace sequent::cpu {
namespace {

constexpr double kLossEpsilon = 1e-7;  // Keras's backend epsilon (ops/loss.cc).

double ClipGrad(double p) {
  return p >= kLossEpsilon && p <= 1.0 - kLossEpsilon ? 1.0 : 0.0;
}

// d f(t, p) / dp of the elementwise losses, as ops/loss.cc writes them.
double ElementwiseDerivative(const LossParams& params, double t, double p) {
  switch (params.kind) {
    case LossKind::kMse:
      return 2 * (p - t);
    case LossKind::kMae:
      return static_cast<double>((p > t) - (p < t));
    case LossKind::kHuber: {
      const double err = p - t;
      if (std::abs(err) <= params.delta) return err;
      return err > 0 ? params.delta : -params.delta;
    }
    default: {
      t = t * (1 - params.label_smoothing) + 0.5 * params.label_smoothing;
      if (params.from_logits) return 1.0 / (1.0 + std::exp(-p)) - t;
      if (ClipGrad(p) == 0) return 0.0;
      return -t / p + (1 - t) / (1 - p);
    }
  }
}

// Writes the unweighted gradient of row r into grad[0..d) (doubles), for the
// crossentropies; `p`, `q` are scratch of d doubles.
template <typename T>
void CrossentropyRowGrad(const LossParams& params, ConstView y_true,
                         const T* pred, int64_t r, int64_t c, double* grad,
                         double* p, double* q) {
  double sum_p = 0;
  for (int64_t i = 0; i < c; ++i) {
    p[i] = static_cast<double>(pred[r * c + i]);
    sum_p += p[i];
  }
  auto softmax = [&]() {
    double max = -INFINITY;
    for (int64_t i = 0; i < c; ++i) max = std::max(max, p[i]);
    double sum = 0;
    for (int64_t i = 0; i < c; ++i) sum += std::exp(p[i] - max);
    for (int64_t i = 0; i < c; ++i) q[i] = std::exp(p[i] - max) / sum;
  };
  if (params.kind == LossKind::kSparseCategoricalCrossentropy) {
    const int64_t k = static_cast<int64_t>(Load(y_true.dtype, y_true.data, r));
    if (params.from_logits) {
      softmax();
      for (int64_t j = 0; j < c; ++j) grad[j] = q[j] - (j == k ? 1 : 0);
      return;
    }
    const double rk = p[k] / sum_p;
    if (ClipGrad(rk) == 0) return;
    for (int64_t j = 0; j < c; ++j)
      grad[j] = (1.0 - (j == k ? 1.0 / rk : 0.0)) / sum_p;
    return;
  }
  const double s = params.label_smoothing;
  double sum_t = 0;
  auto t = [&](int64_t i) {
    return Load(y_true.dtype, y_true.data, r * c + i) * (1 - s) +
           s / static_cast<double>(c);
  };
  for (int64_t i = 0; i < c; ++i) sum_t += t(i);
  if (params.from_logits) {
    softmax();
    for (int64_t j = 0; j < c; ++j) grad[j] = q[j] * sum_t - t(j);
    return;
  }
  double kept = 0;
  for (int64_t i = 0; i < c; ++i) kept += t(i) * ClipGrad(p[i] / sum_p);
  for (int64_t j = 0; j < c; ++j) {
    const double rj = p[j] / sum_p;
    const double own = ClipGrad(rj) > 0 ? t(j) / rj : 0.0;
    grad[j] = (kept - own) / sum_p;
  }
}

template <typename T>
void LossGradT(const LossParams& params, ConstView y_true, const T* pred,
               double dloss, ConstView weight, int64_t rows, int64_t d,
               int64_t batch, T* out, double* scratch_all) {
  const int64_t rows_per_sample =
      batch == 0 ? 1 : std::max<int64_t>(rows / batch, 1);
  const bool elementwise = params.kind == LossKind::kMse ||
                           params.kind == LossKind::kMae ||
                           params.kind == LossKind::kHuber ||
                           params.kind == LossKind::kBinaryCrossentropy;
#pragma omp parallel
  {
    // Per-thread scratch of 3 rows.
    double* scratch = scratch_all + 3 * d * omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      double scale = dloss / static_cast<double>(rows);
      if (weight.data != nullptr) {
        scale *= Load(weight.dtype, weight.data,
                      weight.size == 1 ? 0 : r / rows_per_sample);
      }
      if (elementwise) {
        for (int64_t i = 0; i < d; ++i) {
          const int64_t e = r * d + i;
          const double g =
              ElementwiseDerivative(params, Load(y_true.dtype, y_true.data, e),
                                    static_cast<double>(pred[e])) /
              static_cast<double>(d);
          out[e] = static_cast<T>(scale * g);
        }
        continue;
      }
      double* grad = scratch;
      std::fill(grad, grad + d, 0.0);
      CrossentropyRowGrad<T>(params, y_true, pred, r, d, grad, scratch + d,
                             scratch + 2 * d);
      for (int64_t i = 0; i < d; ++i)
        out[r * d + i] = static_cast<T>(scale * grad[i]);
    }
  }
}

// One Adam/AdamW step's constants, and its update of element i: the first
// and second moments into m_out, v_out and the weight into var_out (each may
// alias its input: element i reads only index i before writing it).
template <typename T>
struct AdamStep {
  T alpha, one_minus_b1, one_minus_b2, eps, wd, lr;
  bool decay;
  // An L2 penalty's gradient term, penalty * var, added to grad here.
  bool penalized = false;
  T penalty = 0;

  void operator()(int64_t i, const T* var, const T* grad, const T* m_in,
                  const T* v_in, T* m_out, T* v_out, T* var_out) const {
    T w = var[i];
    const T g = penalized ? grad[i] + penalty * w : grad[i];
    if (decay) w = w - w * wd * lr;
    const T m = m_in[i] + (g - m_in[i]) * one_minus_b1;
    const T v = v_in[i] + (g * g - v_in[i]) * one_minus_b2;
    m_out[i] = m;
    v_out[i] = v;
    var_out[i] = w - (m * alpha) / (std::sqrt(v) + eps);
  }
};

// The f32 Adam/AdamW element loop over [lo, hi), compiled for AVX-512 and
// AVX2 besides the baseline (the build targets plain x86-64) and picked at load
// time. Called per thread on its own chunk: OpenMP's outlined region bodies
// would not be cloned.
__attribute__((target_clones("avx512f", "avx2", "default"))) void AdamChunkF32(
    int64_t lo, int64_t hi, const AdamStep<float>& step, const float* var,
    const float* __restrict grad, const float* m_in, const float* v_in,
    float* m_out, float* v_out, float* var_out, uint16_t* var_bf16) {
  // Element i reads only index i before writing it, so the in-place aliasing
  // of the outputs with var, m and v does not stop vectorization.
  // With `var_bf16`, var' is also rounded to bf16 (to nearest even, NaN stays
  // NaN), block by block while the block is in L1: no second pass over the
  // weights for the bf16 GEMMs of the next step.
  const int64_t block = var_bf16 != nullptr ? 2048 : hi - lo;
  for (int64_t b = lo; b < hi; b += block) {
    const int64_t e = std::min(hi, b + block);
#pragma omp simd
    for (int64_t i = b; i < e; ++i)
      step(i, var, grad, m_in, v_in, m_out, v_out, var_out);
    if (var_bf16 == nullptr) continue;
#pragma omp simd
    for (int64_t i = b; i < e; ++i) var_bf16[i] = FloatToBF16(var_out[i]);
  }
}

// [lo, hi) of thread `t` of `threads` over n elements, in 16-element blocks.
std::pair<int64_t, int64_t> ThreadChunk(int64_t n, int t, int threads) {
  const int64_t blocks = (n + 15) / 16;
  const int64_t per = (blocks + threads - 1) / threads;
  const int64_t lo = std::min(n, per * t * 16);
  return {lo, std::min(n, lo + per * 16)};
}

template <typename T>
void UpdateT(const UpdateParams& prm, int64_t n, const T* var, const T* grad,
             const std::vector<const void*>& slots, T lr, T iterations,
             T* var_out, const std::vector<void*>& slots_out,
             uint16_t* var_bf16, const T* penalty) {
  // The gradient with an L2 penalty's term (SGD and momentum; Adam's step
  // adds it itself).
  const bool penalized = penalty != nullptr;
  const T p = penalized ? *penalty : T(0);
  const auto gradient = [&](int64_t i) {
    return penalized ? grad[i] + p * var[i] : grad[i];
  };
  const T* s0 = slots.size() > 0 ? static_cast<const T*>(slots[0]) : nullptr;
  const T* s1 = slots.size() > 1 ? static_cast<const T*>(slots[1]) : nullptr;
  T* o0 = slots_out.size() > 0 ? static_cast<T*>(slots_out[0]) : nullptr;
  T* o1 = slots_out.size() > 1 ? static_cast<T*>(slots_out[1]) : nullptr;
  switch (prm.kind) {
    case UpdateKind::kSgd:
      ParallelForSimd(
          n, [&](int64_t i) { var_out[i] = var[i] - gradient(i) * lr; });
      return;
    case UpdateKind::kMomentum: {
      const T mu = static_cast<T>(prm.momentum);
      const bool nesterov = prm.nesterov;
      ParallelForSimd(n, [&](int64_t i) {
        const T g = gradient(i);
        const T v = s0[i] * mu - g * lr;
        o0[i] = v;
        var_out[i] = var[i] + (nesterov ? v * mu - g * lr : v);
      });
      return;
    }
    case UpdateKind::kAdam:
    case UpdateKind::kAdamW: {
      const T t = iterations + T(1);
      const T b1_power = std::pow(static_cast<T>(prm.beta_1), t);
      const T b2_power = std::pow(static_cast<T>(prm.beta_2), t);
      const AdamStep<T> step{
          .alpha = lr * std::sqrt(T(1) - b2_power) / (T(1) - b1_power),
          .one_minus_b1 = static_cast<T>(1.0 - prm.beta_1),
          .one_minus_b2 = static_cast<T>(1.0 - prm.beta_2),
          .eps = static_cast<T>(prm.epsilon),
          .wd = static_cast<T>(prm.weight_decay),
          .lr = lr,
          .decay = prm.kind == UpdateKind::kAdamW,
          .penalized = penalized,
          .penalty = p};
      if constexpr (std::is_same_v<T, float>) {
        if (!UseTeam(n, 16384)) {
          AdamChunkF32(0, n, step, var, grad, s0, s1, o0, o1, var_out,
                       var_bf16);
          return;
        }
#pragma omp parallel
        {
          const auto [lo, hi] =
              ThreadChunk(n, omp_get_thread_num(), omp_get_num_threads());
          AdamChunkF32(lo, hi, step, var, grad, s0, s1, o0, o1, var_out,
                       var_bf16);
        }
        return;
      }
      ParallelForSimd(
          n, [&](int64_t i) { step(i, var, grad, s0, s1, o0, o1, var_out); });
      return;
    }
    case UpdateKind::kRmsprop: {
      const T r = static_cast<T>(prm.rho);
      const T one_minus_r = static_cast<T>(1.0 - prm.rho);
      const T eps = static_cast<T>(prm.epsilon);
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const T g = grad[i];
        const T ms = r * s0[i] + one_minus_r * (g * g);
        o0[i] = ms;
        var_out[i] = var[i] - (lr * g) / std::sqrt(ms + eps);
      }
      return;
    }
    case UpdateKind::kAdagrad: {
      const T eps = static_cast<T>(prm.epsilon);
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const T g = grad[i];
        const T acc = s0[i] + g * g;
        o0[i] = acc;
        var_out[i] = var[i] - (lr * g) / std::sqrt(acc + eps);
      }
      return;
    }
  }
}

template <typename T>
T OutputDerivative(const ops::Activation& act, T y) {
  using ops::ActivationKind;
  const T alpha = static_cast<T>(act.alpha);
  switch (act.kind) {
    case ActivationKind::kRelu:
      return y > T(0) ? T(1) : T(0);
    case ActivationKind::kLeakyRelu:
      return y > T(0) ? T(1) : alpha;
    case ActivationKind::kElu:
      return y > T(0) ? T(1) : y + alpha;
    case ActivationKind::kSelu:
      return y > T(0) ? static_cast<T>(ops::kSeluScale)
                      : y + static_cast<T>(ops::kSeluScale * ops::kSeluAlpha);
    case ActivationKind::kSigmoid:
      return y * (T(1) - y);
    case ActivationKind::kTanh:
      return T(1) - y * y;
    default:
      return T(1);
  }
}

template <typename T>
void ActivationGradT(const ops::Activation& act, bool from_output, const T* dy,
                     const T* v, T* dx, int64_t n) {
  if (from_output && act.kind == ops::ActivationKind::kRelu) {
    // dy[i] read unconditionally, so the select vectorizes (a load under the
    // condition kept the loop scalar: 0.4 us for 1,000 elements).
    ParallelForSimd(n, [&](int64_t i) {
      const T g = dy[i];
      dx[i] = v[i] > T(0) ? g : T(0);
    });
    return;
  }
  ParallelFor(n, n, [&](int64_t i) {
    dx[i] = dy[i] * (from_output ? OutputDerivative<T>(act, v[i])
                                 : ops::ActivationDerivative<T>(act, v[i]));
  });
}

// ColumnSumsT for kColumns (2-16) columns: even and odd rows in two sets of
// accumulators that stay in registers (an array indexed by a run-time column
// chained each sum through memory: ~0.45 us for a 200x5 bias gradient).
template <int kColumns, typename T, typename Get>
void FewColumnSums(int64_t rows, T* out, const Get& get, double scale) {
  double even[kColumns] = {}, odd[kColumns] = {};
  int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
#pragma GCC unroll 16
    for (int j = 0; j < kColumns; ++j) {
      even[j] += get(r * kColumns + j);
      odd[j] += get((r + 1) * kColumns + j);
    }
  }
  if (r < rows) {
#pragma GCC unroll 16
    for (int j = 0; j < kColumns; ++j) even[j] += get(r * kColumns + j);
  }
  for (int j = 0; j < kColumns; ++j)
    out[j] = static_cast<T>((even[j] + odd[j]) * scale);
}

// FewColumnSums<c> where c is in 2-16; false otherwise.
template <typename T, typename Get, int... kMinusTwo>
bool FewColumnSumsOf(std::integer_sequence<int, kMinusTwo...>, int64_t rows,
                     int64_t c, T* out, const Get& get, double scale) {
  return ((c == kMinusTwo + 2
               ? (FewColumnSums<kMinusTwo + 2>(rows, out, get, scale), true)
               : false) ||
          ...);
}

// Column sums over rows, in double, times `scale`: each thread sums a band of
// columns over all rows (rows inner would stride; columns inner vectorizes),
// or, with too few bands for the threads and `scratch` (threads * c doubles),
// a block of rows into its own partial sums, added up in thread order (so the
// result does not depend on scheduling); FewColumnSums where there are few.
template <typename T, typename Get>
void ColumnSumsT(int64_t rows, int64_t c, T* out, Get get, double scale = 1.0,
                 double* scratch = nullptr) {
  if (rows * c < kMinParallelWork &&
      FewColumnSumsOf(std::make_integer_sequence<int, 15>(), rows, c, out, get,
                      scale)) {
    return;
  }
  constexpr int64_t kBand = 256;
  const int64_t bands = (c + kBand - 1) / kBand;
  const int threads = omp_get_max_threads();
  if (c == 1 && rows < (1 << 16)) {
    // A full reduction (an L2 penalty's sum of squares): independent lanes in
    // a fixed order so it vectorizes and stays deterministic.
    // Eight named accumulators stay in registers (an array of them was
    // spilled: 1.4 us for a 784x5 kernel's 3920 squares).
    double l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0, l5 = 0, l6 = 0, l7 = 0;
    int64_t r = 0;
    for (; r + 8 <= rows; r += 8) {
      l0 += get(r);
      l1 += get(r + 1);
      l2 += get(r + 2);
      l3 += get(r + 3);
      l4 += get(r + 4);
      l5 += get(r + 5);
      l6 += get(r + 6);
      l7 += get(r + 7);
    }
    double sum = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7;
    for (; r < rows; ++r) sum += get(r);
    out[0] = static_cast<T>(sum * scale);
    return;
  }
  if (scratch != nullptr && threads > 1 && bands < threads &&
      rows >= 4 * threads) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      double* acc = scratch + t * c;
      std::fill(acc, acc + c, 0.0);
      const int64_t per = (rows + nt - 1) / nt;
      const int64_t lo = std::min(rows, per * t), hi = std::min(rows, lo + per);
      for (int64_t r = lo; r < hi; ++r) {
        for (int64_t j = 0; j < c; ++j) acc[j] += get(r * c + j);
      }
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t j = 0; j < c; ++j) {
        double sum = 0;
        for (int u = 0; u < nt; ++u) sum += scratch[u * c + j];
        out[j] = static_cast<T>(sum * scale);
      }
    }
    return;
  }
  ParallelFor(bands, rows * c, [&](int64_t band) {
    const int64_t lo = band * kBand, hi = std::min(c, lo + kBand);
    double acc[kBand];
    std::fill(acc, acc + (hi - lo), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = lo; j < hi; ++j) acc[j - lo] += get(r * c + j);
    }
    for (int64_t j = lo; j < hi; ++j)
      out[j] = static_cast<T>(acc[j - lo] * scale);
  });
}

template <typename T>
void ActivationBiasGradT(const ops::Activation& act, const T* dy, const T* y,
                         T* dz, T* db, int64_t rows, int64_t c) {
  if (dz != nullptr) ActivationGradT<T>(act, true, dy, y, dz, rows * c);
  const T* src = dz;
  if (src != nullptr) {
    ColumnSumsT<T>(rows, c, db, [&](int64_t i) { return double(src[i]); });
  } else {
    ColumnSumsT<T>(rows, c, db, [&](int64_t i) {
      return double(dy[i] * OutputDerivative<T>(act, y[i]));
    });
  }
}

template <typename T>
void SoftmaxGradT(bool log, const T* dy, const T* y, T* dx, int64_t outer,
                  int64_t n, int64_t inner) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t a = 0; a < outer; ++a) {
    for (int64_t b = 0; b < inner; ++b) {
      const int64_t base = a * n * inner + b;
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = base + k * inner;
        sum += log ? static_cast<double>(dy[i])
                   : static_cast<double>(dy[i]) * static_cast<double>(y[i]);
      }
      const T s = static_cast<T>(sum);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = base + k * inner;
        dx[i] = log ? dy[i] - std::exp(y[i]) * s : y[i] * (dy[i] - s);
      }
    }
  }
}

// Source offset of row-major output index `i` under per-dimension strides.
int64_t SourceIndex(int64_t i, const std::vector<int64_t>& dims,
                    const std::vector<int64_t>& strides) {
  int64_t src = 0;
  for (int d = static_cast<int>(dims.size()) - 1; d >= 0; --d) {
    src += (i % dims[d]) * strides[d];
    i /= dims[d];
  }
  return src;
}

int64_t Product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

template <typename T>
void MaximumGradT(const T* x, const std::vector<int64_t>& xs, const T* y,
                  const std::vector<int64_t>& ys, const T* dout, T* dx, T* dy,
                  const std::vector<int64_t>& dims) {
  const int64_t n = Product(dims);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T a = x[SourceIndex(i, dims, xs)];
    const T c = y[SourceIndex(i, dims, ys)];
    const bool to_x = c == c && !(a < c);
    dx[i] = to_x ? dout[i] : T(0);
    dy[i] = to_x ? T(0) : dout[i];
  }
}

template <typename T>
void ReduceMaxGradT(const T* x, const T* y, const T* dy, T* dx,
                    const std::vector<int64_t>& dims,
                    const std::vector<int64_t>& strides, int64_t y_size,
                    int64_t* ties) {
  const int64_t n = Product(dims);
  std::fill(ties, ties + y_size, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = SourceIndex(i, dims, strides);
    if (x[i] == y[j]) ++ties[j];
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = SourceIndex(i, dims, strides);
    dx[i] = x[i] == y[j] ? dy[j] / static_cast<T>(ties[j]) : T(0);
  }
}

template <typename T>
void ClipByValueT(const T* x, T* y, int64_t n, T lo, T hi) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = std::clamp(x[i], lo, hi);
}

// Sum of x[lo, hi)'s squares in double, compiled for AVX-512 and AVX2 besides
// the baseline (a 784x5 kernel: 0.6 us at the baseline's SSE2). Four
// quarters in four accumulators: one accumulator chained every addition
// through the adder's latency (0.6 us for 3,920 values at AVX-512 too).
template <typename T>
double SumOfSquaresRange(const T* x, int64_t lo, int64_t hi) {
  const auto square = [](T v) {
    return static_cast<double>(v) * static_cast<double>(v);
  };
  const int64_t quarter = (hi - lo) / 4;
  const T *a = x + lo, *b = a + quarter, *c = b + quarter, *d = c + quarter;
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (int64_t i = 0; i < quarter; ++i) {
    s0 += square(a[i]);
    s1 += square(b[i]);
    s2 += square(c[i]);
    s3 += square(d[i]);
  }
  for (int64_t i = lo + 4 * quarter; i < hi; ++i) s3 += square(x[i]);
  return (s0 + s1) + (s2 + s3);
}
__attribute__((target_clones("avx512f", "avx2", "default"))) double
SumOfSquaresRangeF32(const float* x, int64_t lo, int64_t hi) {
  return SumOfSquaresRange(x, lo, hi);
}
template <typename T>
double SumOfSquaresOf(const T* x, int64_t lo, int64_t hi) {
  if constexpr (std::is_same_v<T, float>) {
    return SumOfSquaresRangeF32(x, lo, hi);
  } else {
    return SumOfSquaresRange(x, lo, hi);
  }
}

// Sum of x's squares in double, the same for any thread count: large x in
// fixed blocks summed in order (an OpenMP reduction combines partial sums in
// the order threads finish, which would make the result differ in its last
// bits from run to run).
template <typename T>
double SumOfSquaresT(const T* x, int64_t n) {
  // One pass when small (64 blocks of a 784x5 kernel's 61 elements took
  // 2.3 us, the pass 0.3).
  if (n < kMinParallelWork) return SumOfSquaresOf(x, 0, n);
  constexpr int kBlocks = 64;
  double partial[kBlocks];
  ParallelFor(kBlocks, n, [&](int64_t b) {
    partial[b] = SumOfSquaresOf(x, n * b / kBlocks, n * (b + 1) / kBlocks);
  });
  double sum = 0.0;
  for (int b = 0; b < kBlocks; ++b) sum += partial[b];
  return sum;
}

template <typename T>
void ClipByNormT(const T* x, T* y, int64_t n, double max_norm) {
  const T norm = static_cast<T>(std::sqrt(SumOfSquaresT(x, n)));
  const T c = static_cast<T>(max_norm);
  if (norm > c) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * c / norm;
  } else if (x != y) {
    std::memcpy(y, x, static_cast<size_t>(n) * sizeof(T));
  }
}

template <typename T>
void GlobalAvgPoolGradT(const T* dy, T* dx, int64_t n, int64_t hw, int64_t c) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t i = 0; i < hw; ++i) {
      for (int64_t ch = 0; ch < c; ++ch)
        dx[(b * hw + i) * c + ch] = dy[b * c + ch] / static_cast<T>(hw);
    }
  }
}

}  // namespace

namespace {

// Compiled for AVX-512 and AVX2 besides the baseline's SSE2. `in` may be
// `out` (element i reads only index i).
__attribute__((target_clones("avx512f", "avx2", "default"))) void ScaleChunk(
    const float* in, float scale, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * scale;
}

// out = in * scale over n elements.
void Scale(const float* in, float scale, float* out, int64_t n) {
  if (!UseTeam(n)) {
    ScaleChunk(in, scale, out, n);
    return;
  }
  ParallelForSimd(n, [&](int64_t i) { out[i] = in[i] * scale; });
}

// A crossentropy gradient's factor per row, dloss / rows.
double PerRow(ConstView dloss, int64_t rows) {
  return Load(dloss.dtype, dloss.data, 0) /
         static_cast<double>(std::max<int64_t>(rows, 1));
}

}  // namespace

absl::Status SparseCrossentropyGradFromProbs(ConstView labels, ConstView dloss,
                                             ConstView weight, int64_t rows,
                                             int64_t classes, int64_t batch,
                                             const float* probs, float* grad) {
  if (weight.data != nullptr && weight.size != 1 && weight.size != batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample_weight has ", weight.size, " elements for a batch of ", batch));
  }
  const int64_t rows_per_sample =
      batch == 0 ? 1 : std::max<int64_t>(rows / batch, 1);
  const auto sample = [&](int64_t r) {
    return weight.size == 1 ? 0 : r / rows_per_sample;
  };
  const double per_row = PerRow(dloss, rows);
  const auto bad_label = [&](int64_t r, double label) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[sparse_categorical_crossentropy_grad] label ", label, " at sample ",
        r, " is not a class index in [0, ", classes, ")"));
  };
  if (labels.dtype == DType::kI32 && weight.data == nullptr) {
    // The common case in one flat pass that vectorizes, then the labels'
    // places: 200 rows of 10 went from ~1.6 us row by row to ~0.3.
    const auto* typed = static_cast<const int32_t*>(labels.data);
    for (int64_t r = 0; r < rows; ++r) {
      if (typed[r] < 0 || typed[r] >= classes) return bad_label(r, typed[r]);
    }
    const auto scale = static_cast<float>(per_row);
    Scale(probs, scale, grad, rows * classes);
    for (int64_t r = 0; r < rows; ++r) grad[r * classes + typed[r]] -= scale;
    return absl::OkStatus();
  }
  // label_at(r), weight_at(r): typed loads for i32 labels and f32 weights,
  // loads through the dtype otherwise.
  const auto run = [&](const auto& label_at,
                       const auto& weight_at) -> absl::Status {
    for (int64_t r = 0; r < rows; ++r) {
      const double label = label_at(r);
      if (label != std::floor(label) || label < 0 ||
          label >= static_cast<double>(classes)) {
        return bad_label(r, label);
      }
    }
    ParallelFor(rows, rows * classes, [&](int64_t r) {
      const float* p = probs + r * classes;
      float* row = grad + r * classes;
      const auto s = static_cast<float>(per_row * weight_at(r));
      for (int64_t i = 0; i < classes; ++i) row[i] = p[i] * s;
      row[static_cast<int64_t>(label_at(r))] -= s;
    });
    return absl::OkStatus();
  };
  const auto* f32_weight = static_cast<const float*>(weight.data);
  if (labels.dtype == DType::kI32 &&
      (weight.data == nullptr || weight.dtype == DType::kF32)) {
    const auto* typed = static_cast<const int32_t*>(labels.data);
    return run([&](int64_t r) { return static_cast<double>(typed[r]); },
               [&](int64_t r) {
                 return f32_weight == nullptr
                            ? 1.0
                            : static_cast<double>(f32_weight[sample(r)]);
               });
  }
  return run([&](int64_t r) { return Load(labels.dtype, labels.data, r); },
             [&](int64_t r) {
               return weight.data == nullptr
                          ? 1.0
                          : Load(weight.dtype, weight.data, sample(r));
             });
}

void ScaleResidual(const float* residual, ConstView dloss, int64_t rows,
                   int64_t n, float* grad) {
  Scale(residual, static_cast<float>(PerRow(dloss, rows)), grad, n);
}

absl::Status LossGrad(const LossParams& params, ConstView y_true,
                      ConstView y_pred, ConstView dloss, ConstView weight,
                      int64_t row_len, int64_t batch, void* out,
                      double* scratch) {
  const int64_t rows = row_len == 0 ? 0 : y_pred.size / row_len;
  if (weight.data != nullptr && weight.size != 1 && weight.size != batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample_weight has ", weight.size, " elements for a batch of ", batch));
  }
  if (params.kind == LossKind::kSparseCategoricalCrossentropy) {
    for (int64_t r = 0; r < rows; ++r) {
      const double label = Load(y_true.dtype, y_true.data, r);
      if (label != std::floor(label) || label < 0 ||
          label >= static_cast<double>(row_len)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "[sparse_categorical_crossentropy_grad] label ", label,
            " at sample ", r, " is not a class index in [0, ", row_len, ")"));
      }
    }
  }
  const double dl = Load(dloss.dtype, dloss.data, 0);
  if (y_pred.dtype == DType::kF64) {
    LossGradT(params, y_true, static_cast<const double*>(y_pred.data), dl,
              weight, rows, row_len, batch, static_cast<double*>(out), scratch);
  } else {
    LossGradT(params, y_true, static_cast<const float*>(y_pred.data), dl,
              weight, rows, row_len, batch, static_cast<float*>(out), scratch);
  }
  return absl::OkStatus();
}

void ApplyUpdate(const UpdateParams& params, DType dtype, int64_t n,
                 const void* var, const void* grad,
                 const std::vector<const void*>& slots, const void* lr,
                 const void* iterations, void* var_out,
                 const std::vector<void*>& slots_out, uint16_t* var_bf16,
                 const float* penalty) {
  if (dtype == DType::kF64) {
    UpdateT<double>(params, n, static_cast<const double*>(var),
                    static_cast<const double*>(grad), slots,
                    *static_cast<const double*>(lr),
                    *static_cast<const double*>(iterations),
                    static_cast<double*>(var_out), slots_out, nullptr, nullptr);
  } else {
    UpdateT<float>(params, n, static_cast<const float*>(var),
                   static_cast<const float*>(grad), slots,
                   *static_cast<const float*>(lr),
                   *static_cast<const float*>(iterations),
                   static_cast<float*>(var_out), slots_out, var_bf16, penalty);
    const bool fused =
        params.kind == UpdateKind::kAdam || params.kind == UpdateKind::kAdamW;
    if (var_bf16 != nullptr && !fused) {
      ConvertToBf16(static_cast<const float*>(var_out), var_bf16, n);
    }
  }
}

float SumOfSquares(const float* w, int64_t n) {
  return static_cast<float>(SumOfSquaresT(w, n));
}

void AddScaled(const float* g, const float* w, float scale, float* out,
               int64_t n) {
  ParallelForSimd(n, [&](int64_t i) { out[i] = g[i] + scale * w[i]; });
}

void ClipByValue(DType dtype, const void* x, void* y, int64_t n, double lo,
                 double hi) {
  if (dtype == DType::kF64) {
    ClipByValueT(static_cast<const double*>(x), static_cast<double*>(y), n, lo,
                 hi);
  } else {
    ClipByValueT(static_cast<const float*>(x), static_cast<float*>(y), n,
                 static_cast<float>(lo), static_cast<float>(hi));
  }
}

void ClipByNorm(DType dtype, const void* x, void* y, int64_t n,
                double max_norm) {
  if (dtype == DType::kF64) {
    ClipByNormT(static_cast<const double*>(x), static_cast<double*>(y), n,
                max_norm);
  } else {
    ClipByNormT(static_cast<const float*>(x), static_cast<float*>(y), n,
                max_norm);
  }
}

void ActivationGrad(const ops::Activation& act, bool from_output, DType dtype,
                    const void* dy, const void* v, void* dx, int64_t n) {
  if (dtype == DType::kF64) {
    ActivationGradT(act, from_output, static_cast<const double*>(dy),
                    static_cast<const double*>(v), static_cast<double*>(dx), n);
  } else {
    ActivationGradT(act, from_output, static_cast<const float*>(dy),
                    static_cast<const float*>(v), static_cast<float*>(dx), n);
  }
}

void ActivationBiasGrad(const ops::Activation& act, DType dtype, const void* dy,
                        const void* y, void* dz, void* db, int64_t rows,
                        int64_t c) {
  if (dtype == DType::kF64) {
    ActivationBiasGradT(act, static_cast<const double*>(dy),
                        static_cast<const double*>(y), static_cast<double*>(dz),
                        static_cast<double*>(db), rows, c);
  } else {
    ActivationBiasGradT(act, static_cast<const float*>(dy),
                        static_cast<const float*>(y), static_cast<float*>(dz),
                        static_cast<float*>(db), rows, c);
  }
}

void ColumnSums(DType dtype, const void* x, void* out, int64_t rows, int64_t c,
                double scale, double* scratch) {
  if (dtype == DType::kF64) {
    const double* p = static_cast<const double*>(x);
    ColumnSumsT<double>(
        rows, c, static_cast<double*>(out), [&](int64_t i) { return p[i]; },
        scale, scratch);
  } else {
    const float* p = static_cast<const float*>(x);
    ColumnSumsT<float>(
        rows, c, static_cast<float*>(out),
        [&](int64_t i) { return double(p[i]); }, scale, scratch);
  }
}

void SoftmaxGrad(bool log, DType dtype, const void* dy, const void* y, void* dx,
                 int64_t outer, int64_t n, int64_t inner) {
  if (dtype == DType::kF64) {
    SoftmaxGradT(log, static_cast<const double*>(dy),
                 static_cast<const double*>(y), static_cast<double*>(dx), outer,
                 n, inner);
  } else {
    SoftmaxGradT(log, static_cast<const float*>(dy),
                 static_cast<const float*>(y), static_cast<float*>(dx), outer,
                 n, inner);
  }
}

void StridedCopy(int64_t elem_size, const void* src,
                 const std::vector<int64_t>& src_strides, void* dst,
                 const std::vector<int64_t>& out_dims) {
  const int64_t n = Product(out_dims);
  const auto* s = static_cast<const std::byte*>(src);
  auto* d = static_cast<std::byte*>(dst);
  if (n == 0) return;
  // Rows of the last dimension: copied whole when the source row is
  // contiguous, filled from one element when it is broadcast.
  if (std::all_of(src_strides.begin(), src_strides.end(),
                  [](int64_t stride) { return stride == 0; }) &&
      elem_size == 4) {
    uint32_t value;
    std::memcpy(&value, s, 4);
    std::fill_n(reinterpret_cast<uint32_t*>(d), n, value);
    return;
  }
  const int rank = static_cast<int>(out_dims.size());
  const int64_t inner = rank == 0 ? 1 : out_dims[rank - 1];
  const int64_t inner_stride = rank == 0 ? 0 : src_strides[rank - 1];
  if (inner_stride > 1 || inner < 8) {
    ParallelFor(n, n, [&](int64_t i) {
      std::memcpy(d + i * elem_size,
                  s + SourceIndex(i, out_dims, src_strides) * elem_size,
                  elem_size);
    });
    return;
  }
  const int64_t outer = n / inner;
  const int64_t row_bytes = inner * elem_size;
  ParallelFor(outer, n, [&](int64_t o) {
    const std::byte* from =
        s + SourceIndex(o * inner, out_dims, src_strides) * elem_size;
    std::byte* to = d + o * row_bytes;
    if (inner_stride == 1) {
      std::memcpy(to, from, row_bytes);
    } else if (elem_size == 4) {
      uint32_t value;
      std::memcpy(&value, from, 4);
      std::fill_n(reinterpret_cast<uint32_t*>(to), inner, value);
    } else {
      for (int64_t j = 0; j < inner; ++j)
        std::memcpy(to + j * elem_size, from, elem_size);
    }
  });
}

void ReduceToShapeF64(const double* x, const std::vector<int64_t>& out_strides,
                      const std::vector<int64_t>& in_dims, double* out,
                      int64_t out_size) {
  std::fill(out, out + out_size, 0.0);
  const int64_t n = Product(in_dims);
  for (int64_t i = 0; i < n; ++i)
    out[SourceIndex(i, in_dims, out_strides)] += x[i];
}

void MaximumGrad(DType dtype, const void* x, const std::vector<int64_t>& xs,
                 const void* y, const std::vector<int64_t>& ys,
                 const void* dout, void* dx, void* dy,
                 const std::vector<int64_t>& out_dims) {
  if (dtype == DType::kF64) {
    MaximumGradT(static_cast<const double*>(x), xs,
                 static_cast<const double*>(y), ys,
                 static_cast<const double*>(dout), static_cast<double*>(dx),
                 static_cast<double*>(dy), out_dims);
  } else {
    MaximumGradT(static_cast<const float*>(x), xs, static_cast<const float*>(y),
                 ys, static_cast<const float*>(dout), static_cast<float*>(dx),
                 static_cast<float*>(dy), out_dims);
  }
}

void ReduceMaxGrad(DType dtype, const void* x, const void* y, const void* dy,
                   void* dx, const std::vector<int64_t>& x_dims,
                   const std::vector<int64_t>& reduced_strides, int64_t y_size,
                   int64_t* ties) {
  if (dtype == DType::kF64) {
    ReduceMaxGradT(static_cast<const double*>(x), static_cast<const double*>(y),
                   static_cast<const double*>(dy), static_cast<double*>(dx),
                   x_dims, reduced_strides, y_size, ties);
  } else {
    ReduceMaxGradT(static_cast<const float*>(x), static_cast<const float*>(y),
                   static_cast<const float*>(dy), static_cast<float*>(dx),
                   x_dims, reduced_strides, y_size, ties);
  }
}

void SliceGrad(int64_t elem_size, const void* dy,
               const std::vector<int64_t>& dy_dims, void* dx,
               const std::vector<int64_t>& dx_dims,
               const std::vector<int64_t>& begin) {
  std::memset(dx, 0, static_cast<size_t>(Product(dx_dims) * elem_size));
  std::vector<int64_t> strides(dx_dims.size(), 1);
  for (int d = static_cast<int>(dx_dims.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * dx_dims[d + 1];
  int64_t base = 0;
  for (size_t d = 0; d < begin.size(); ++d) base += begin[d] * strides[d];
  const int64_t n = Product(dy_dims);
  const auto* s = static_cast<const std::byte*>(dy);
  auto* o = static_cast<std::byte*>(dx);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(o + (base + SourceIndex(i, dy_dims, strides)) * elem_size,
                s + i * elem_size, elem_size);
  }
}

void BatchNormGrad(bool training, int64_t rows, int64_t c, const float* dy,
                   const float* x, const float* gamma, const float* mean,
                   const float* inv_std, float* dx, float* dgamma,
                   float* dbeta) {
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double xhat =
          (x[r * c + ch] - static_cast<double>(mean[ch])) * inv_std[ch];
      sum_dy += dy[r * c + ch];
      sum_dy_xhat += dy[r * c + ch] * xhat;
    }
    dgamma[ch] = static_cast<float>(sum_dy_xhat);
    dbeta[ch] = static_cast<float>(sum_dy);
    const double scale = static_cast<double>(gamma[ch]) * inv_std[ch];
    const double m = static_cast<double>(rows);
    for (int64_t r = 0; r < rows; ++r) {
      const double g = dy[r * c + ch];
      if (!training) {
        dx[r * c + ch] = static_cast<float>(scale * g);
        continue;
      }
      const double xhat =
          (x[r * c + ch] - static_cast<double>(mean[ch])) * inv_std[ch];
      dx[r * c + ch] =
          static_cast<float>(scale * (g - sum_dy / m - xhat * sum_dy_xhat / m));
    }
  }
}

void LayerNormGrad(int64_t rows, int64_t d, const float* dy, const float* x,
                   const float* gamma, const float* mean, const float* inv_std,
                   float* dx, float* dgamma, float* dbeta, double* scratch) {
  // scratch: 2 * d doubles per thread for the parameter gradients.
  const int threads = omp_get_max_threads();
  std::fill(scratch, scratch + 2 * d * threads, 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* acc_gamma = scratch + 2 * d * omp_get_thread_num();
    double* acc_beta = acc_gamma + d;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      double sum_dy = 0, sum_dy_xhat = 0;
      for (int64_t i = 0; i < d; ++i) {
        const double xhat =
            (x[r * d + i] - static_cast<double>(mean[r])) * inv_std[r];
        const double g = static_cast<double>(dy[r * d + i]) * gamma[i];
        sum_dy += g;
        sum_dy_xhat += g * xhat;
        acc_gamma[i] += dy[r * d + i] * xhat;
        acc_beta[i] += dy[r * d + i];
      }
      const double m = static_cast<double>(d);
      for (int64_t i = 0; i < d; ++i) {
        const double xhat =
            (x[r * d + i] - static_cast<double>(mean[r])) * inv_std[r];
        const double g = static_cast<double>(dy[r * d + i]) * gamma[i];
        dx[r * d + i] = static_cast<float>(
            inv_std[r] * (g - sum_dy / m - xhat * sum_dy_xhat / m));
      }
    }
  }
  for (int64_t i = 0; i < d; ++i) {
    double g = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
      g += scratch[2 * d * t + i];
      b += scratch[2 * d * t + d + i];
    }
    dgamma[i] = static_cast<float>(g);
    dbeta[i] = static_cast<float>(b);
  }
}

template <typename T>
void SignT(const T* x, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    y[i] = v != v ? v : static_cast<T>(v > T(0) ? 1 : (v < T(0) ? -1 : 0));
  }
}

void Sign(DType dtype, const void* x, void* y, int64_t n) {
  switch (dtype) {
    case DType::kF64:
      return SignT(static_cast<const double*>(x), static_cast<double*>(y), n);
    case DType::kI32:
      return SignT(static_cast<const int32_t*>(x), static_cast<int32_t*>(y), n);
    case DType::kI64:
      return SignT(static_cast<const int64_t*>(x), static_cast<int64_t*>(y), n);
    default:
      return SignT(static_cast<const float*>(x), static_cast<float*>(y), n);
  }
}

void GlobalAvgPoolGrad(DType dtype, const void* dy, void* dx, int64_t n,
                       int64_t hw, int64_t c) {
  if (dtype == DType::kF64) {
    GlobalAvgPoolGradT(static_cast<const double*>(dy), static_cast<double*>(dx),
                       n, hw, c);
  } else {
    GlobalAvgPoolGradT(static_cast<const float*>(dy), static_cast<float*>(dx),
                       n, hw, c);
  }
}

}  // namespace sequent::cpu
