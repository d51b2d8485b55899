#include "backends/cpu/kernels.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "backends/cpu/avx512.h"
#include "backends/cpu/parallel.h"
#include "core/status_macros.h"
#include "ops/random_hash.h"

namespace sequent::cpu {
namespace {

template <typename T>
T ApplyBinary(BinaryKind kind, T a, T b) {
  switch (kind) {
    case BinaryKind::kAdd:
      return a + b;
    case BinaryKind::kSub:
      return a - b;
    case BinaryKind::kMul:
      return a * b;
    case BinaryKind::kDiv:
      return a / b;
    case BinaryKind::kMax:
      return std::max(a, b);
  }
  return a;
}

template <typename T>
void BroadcastBinaryT(BinaryKind kind, const T* a,
                      const std::vector<int64_t>& a_strides, const T* b,
                      const std::vector<int64_t>& b_strides, T* out,
                      const std::vector<int64_t>& out_dims) {
  const int rank = static_cast<int>(out_dims.size());
  if (rank == 0) {
    out[0] = ApplyBinary(kind, a[0], b[0]);
    return;
  }
  if (rank == 1 && (a_strides[0] == 0) != (b_strides[0] == 0)) {
    // A tensor and a scalar: one loop per kind, so each vectorizes.
    const int64_t n = out_dims[0];
    const bool scalar_a = a_strides[0] == 0;
    const T* x = scalar_a ? b : a;
    const T s = scalar_a ? a[0] : b[0];
    auto apply = [&](auto op) {
      if (scalar_a) {
        ParallelForSimd(n, [&](int64_t i) { out[i] = op(s, x[i]); });
      } else {
        ParallelForSimd(n, [&](int64_t i) { out[i] = op(x[i], s); });
      }
    };
    switch (kind) {
      case BinaryKind::kAdd:
        apply([](T u, T v) { return u + v; });
        return;
      case BinaryKind::kSub:
        apply([](T u, T v) { return u - v; });
        return;
      case BinaryKind::kMul:
        apply([](T u, T v) { return u * v; });
        return;
      default:
        break;  // div and max: the general loop below.
    }
  }
  // Rows of the innermost dimension are independent: parallelize over them.
  const int64_t inner = out_dims[rank - 1];
  int64_t rows = 1;
  for (int d = 0; d < rank - 1; ++d) rows *= out_dims[d];
  const int64_t sa = a_strides[rank - 1], sb = b_strides[rank - 1];
  ParallelFor(rows, rows * inner, [&](int64_t r) {
    int64_t ia = 0, ib = 0, rem = r;
    for (int d = rank - 2; d >= 0; --d) {
      const int64_t idx = rem % out_dims[d];
      rem /= out_dims[d];
      ia += idx * a_strides[d];
      ib += idx * b_strides[d];
    }
    T* o = out + r * inner;
    for (int64_t j = 0; j < inner; ++j)
      o[j] = ApplyBinary(kind, a[ia + j * sa], b[ib + j * sb]);
  });
}

template <typename T>
double LoadAsDouble(const void* p, int64_t i) {
  return static_cast<double>(static_cast<const T*>(p)[i]);
}

}  // namespace

double Load(DType dtype, const void* p, int64_t i) {
  switch (dtype) {
    case DType::kF32:
      return LoadAsDouble<float>(p, i);
    case DType::kF64:
      return LoadAsDouble<double>(p, i);
    case DType::kI32:
      return LoadAsDouble<int32_t>(p, i);
    case DType::kI64:
      return LoadAsDouble<int64_t>(p, i);
    case DType::kBool:
      return static_cast<const bool*>(p)[i] ? 1.0 : 0.0;
    case DType::kBF16:
      return BF16ToFloat(static_cast<const uint16_t*>(p)[i]);
    case DType::kF16:
      return F16ToFloat(static_cast<const uint16_t*>(p)[i]);
  }
  return 0.0;
}

namespace {

// Float -> integer conversion as ops/shape.cc's cast: NaN is 0, out-of-range
// values saturate, the rest truncate toward zero.
double SaturateToInteger(double v, DType dtype) {
  if (std::isnan(v)) return 0;
  const double lo =
      dtype == DType::kI64 ? -9223372036854775808.0 : -2147483648.0;
  const double hi = dtype == DType::kI64 ? 9223372036854774784.0 : 2147483647.0;
  return std::trunc(std::clamp(v, lo, hi));
}

int64_t LoadInteger(DType dtype, const void* p, int64_t i) {
  return dtype == DType::kI64 ? static_cast<const int64_t*>(p)[i]
                              : static_cast<const int32_t*>(p)[i];
}

void Store(DType dtype, void* p, int64_t i, double v) {
  switch (dtype) {
    case DType::kF32:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      return;
    case DType::kF64:
      static_cast<double*>(p)[i] = v;
      return;
    case DType::kI32:
      static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v);
      return;
    case DType::kI64:
      static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v);
      return;
    case DType::kBool:
      static_cast<bool*>(p)[i] = v != 0.0;
      return;
    case DType::kBF16:
      static_cast<uint16_t*>(p)[i] = FloatToBF16(static_cast<float>(v));
      return;
    case DType::kF16:
      static_cast<uint16_t*>(p)[i] = FloatToF16(static_cast<float>(v));
      return;
  }
}

template <typename T>
void DropoutT(const T* x, T* y, T* mask, int64_t n, double rate, uint64_t seed,
              uint64_t step, bool active) {
  const T scale = static_cast<T>(1.0 / (1.0 - rate));
  const uint32_t threshold = ops::DropoutKeepThreshold(rate);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T m =
        !active
            ? T(1)
            : (ops::DropoutKeep(seed, step, static_cast<uint64_t>(i), threshold)
                   ? scale
                   : T(0));
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

}  // namespace

void BroadcastBinary(BinaryKind kind, DType dtype, const void* a,
                     const std::vector<int64_t>& a_strides, const void* b,
                     const std::vector<int64_t>& b_strides, void* out,
                     const std::vector<int64_t>& out_dims) {
  switch (dtype) {
    case DType::kF32:
      BroadcastBinaryT(kind, static_cast<const float*>(a), a_strides,
                       static_cast<const float*>(b), b_strides,
                       static_cast<float*>(out), out_dims);
      return;
    case DType::kF64:
      BroadcastBinaryT(kind, static_cast<const double*>(a), a_strides,
                       static_cast<const double*>(b), b_strides,
                       static_cast<double*>(out), out_dims);
      return;
    case DType::kI32:
      BroadcastBinaryT(kind, static_cast<const int32_t*>(a), a_strides,
                       static_cast<const int32_t*>(b), b_strides,
                       static_cast<int32_t*>(out), out_dims);
      return;
    case DType::kI64:
      BroadcastBinaryT(kind, static_cast<const int64_t*>(a), a_strides,
                       static_cast<const int64_t*>(b), b_strides,
                       static_cast<int64_t*>(out), out_dims);
      return;
    default:
      return;  // The lowering only picks this loop for the dtypes above.
  }
}

void SubtractRowMax(const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    float max = in[0];
    for (int64_t j = 1; j < cols; ++j) max = std::max(max, in[j]);
    for (int64_t j = 0; j < cols; ++j) out[j] = in[j] - max;
  }
}

void NormalizeRows(float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * cols;
    float sum = 0;
    for (int64_t j = 0; j < cols; ++j) sum += row[j];
    const float inverse = 1.0f / sum;
    for (int64_t j = 0; j < cols; ++j) row[j] *= inverse;
  }
}

namespace {

// TransposeBiasActivation for ReLU or no activation on AVX-512, kCols
// columns: sixteen rows at a time, a column per register, transposed into
// rows (row by row in scalar code: ~0.6 us for 200 rows of 5).
template <int kCols>
__attribute__((target("avx512f"))) void TransposeBiasReluRows(
    const float* __restrict zt, const float* __restrict bias,
    float* __restrict z, int64_t rows, bool relu) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t first = 0; first < rows; first += 16) {
    const int64_t n = std::min<int64_t>(16, rows - first);
    const auto row_lanes =
        static_cast<__mmask16>(n == 16 ? 0xFFFF : (1u << n) - 1);
    __m512 v[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) {
      if (j >= kCols) {
        v[j] = zero;
        continue;
      }
      v[j] =
          _mm512_add_ps(_mm512_maskz_loadu_ps(row_lanes, zt + j * rows + first),
                        _mm512_set1_ps(bias != nullptr ? bias[j] : 0.0f));
      if (relu) v[j] = _mm512_max_ps(v[j], zero);
    }
    avx512::Transpose16(v);
    avx512::StoreRows(v, z, first, n, kCols, rows * kCols);
  }
}

template <int... kMinusOne>
void TransposeBiasReluOf(std::integer_sequence<int, kMinusOne...>,
                         const float* zt, const float* bias, float* z,
                         int64_t rows, int64_t cols, bool relu) {
  using Rows = void (*)(const float*, const float*, float*, int64_t, bool);
  static constexpr Rows kByCols[] = {&TransposeBiasReluRows<kMinusOne + 1>...};
  kByCols[cols - 1](zt, bias, z, rows, relu);
}

}  // namespace

void TransposeBiasActivation(const float* zt, const float* bias, float* z,
                             int64_t rows, int64_t cols,
                             const ops::Activation& act) {
  if ((act.kind == ops::ActivationKind::kRelu ||
       act.kind == ops::ActivationKind::kLinear) &&
      cols >= 1 && cols <= 16 && avx512::Available()) {
    TransposeBiasReluOf(std::make_integer_sequence<int, 16>(), zt, bias, z,
                        rows, cols, act.kind == ops::ActivationKind::kRelu);
    return;
  }
  // Row by row, so z is written contiguously; zt's cols streams are read in
  // step and stay in L1 for the thin layers this serves.
  const bool relu = act.kind == ops::ActivationKind::kRelu;
  const bool linear = act.kind == ops::ActivationKind::kLinear;
  float b[16];
  for (int64_t j = 0; j < cols; ++j) b[j] = bias != nullptr ? bias[j] : 0.0f;
  for (int64_t i = 0; i < rows; ++i) {
    float* row = z + i * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const float v = zt[j * rows + i] + b[j];
      row[j] = relu     ? std::max(v, 0.0f)
               : linear ? v
                        : ops::ActivationValue(act, v);
    }
  }
}

void CastElements(DType from, const void* src, DType to, void* dst, int64_t n) {
  if (from == to) {
    std::memcpy(dst, src, static_cast<size_t>(n) * DTypeSize(from));
    return;
  }
  if (IsInteger(from) && IsInteger(to)) {
    // Through int64, so that large i64 values survive.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = LoadInteger(from, src, i);
      if (to == DType::kI64) {
        static_cast<int64_t*>(dst)[i] = v;
      } else {
        static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(v);
      }
    }
    return;
  }
  const bool saturate = IsInteger(to);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double v = Load(from, src, i);
    Store(to, dst, i, saturate ? SaturateToInteger(v, to) : v);
  }
}

void DropoutForward(DType dtype, const void* x, void* y, void* mask, int64_t n,
                    double rate, uint64_t seed, uint64_t step, bool active) {
  if (dtype == DType::kF64) {
    DropoutT(static_cast<const double*>(x), static_cast<double*>(y),
             static_cast<double*>(mask), n, rate, seed, step, active);
  } else {
    DropoutT(static_cast<const float*>(x), static_cast<float*>(y),
             static_cast<float*>(mask), n, rate, seed, step, active);
  }
}

}  // namespace sequent::cpu

namespace sequent::cpu {
namespace {

// Keras's backend epsilon, clipping probabilities away from 0 and 1
// (ops/loss.cc).
constexpr double kLossEpsilon = 1e-7;
double Clip(double p) {
  return std::clamp(p, kLossEpsilon, 1.0 - kLossEpsilon);
}

template <typename T>
double RowLoss(const LossParams& params, ConstView y_true, const T* pred,
               int64_t r, int64_t d) {
  const T* p = pred + r * d;
  switch (params.kind) {
    case LossKind::kMse:
    case LossKind::kMae:
    case LossKind::kHuber:
    case LossKind::kBinaryCrossentropy: {
      double sum = 0;
      for (int64_t i = 0; i < d; ++i) {
        double t = Load(y_true.dtype, y_true.data, r * d + i);
        double x = static_cast<double>(p[i]);
        const double err = std::abs(x - t);
        switch (params.kind) {
          case LossKind::kMse:
            sum += err * err;
            break;
          case LossKind::kMae:
            sum += err;
            break;
          case LossKind::kHuber:
            sum += err <= params.delta
                       ? 0.5 * err * err
                       : params.delta * err - 0.5 * params.delta * params.delta;
            break;
          default: {
            t = t * (1 - params.label_smoothing) + 0.5 * params.label_smoothing;
            if (params.from_logits) {
              sum +=
                  std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x)));
            } else {
              x = Clip(x);
              sum += -(t * std::log(x) + (1 - t) * std::log(1 - x));
            }
          }
        }
      }
      return sum / static_cast<double>(d);
    }
    case LossKind::kCategoricalCrossentropy:
    case LossKind::kSparseCategoricalCrossentropy: {
      // log q_i of the predicted distribution: a stable log-softmax of logits,
      // or the rescaled and clipped probabilities.
      double max = -INFINITY, sum = 0;
      if (params.from_logits) {
        for (int64_t i = 0; i < d; ++i)
          max = std::max(max, static_cast<double>(p[i]));
        for (int64_t i = 0; i < d; ++i) sum += std::exp(p[i] - max);
      } else {
        for (int64_t i = 0; i < d; ++i) sum += p[i];
      }
      auto log_q = [&](int64_t i) {
        return params.from_logits ? p[i] - max - std::log(sum)
                                  : std::log(Clip(p[i] / sum));
      };
      if (params.kind == LossKind::kSparseCategoricalCrossentropy) {
        return -log_q(static_cast<int64_t>(Load(y_true.dtype, y_true.data, r)));
      }
      double loss = 0;
      for (int64_t i = 0; i < d; ++i) {
        const double t = Load(y_true.dtype, y_true.data, r * d + i) *
                             (1 - params.label_smoothing) +
                         params.label_smoothing / static_cast<double>(d);
        loss -= t * log_q(i);
      }
      return loss;
    }
  }
  return 0;
}

template <typename T>
void LossT(const LossParams& params, ConstView y_true, const T* pred,
           int64_t rows, int64_t d, ConstView weight, int64_t batch, T* out) {
  const int64_t rows_per_sample =
      batch == 0 ? 1 : std::max<int64_t>(rows / batch, 1);
  // Fixed blocks summed in order, not an OpenMP reduction: that combines the
  // threads' partial sums in the order they finish, so the loss would differ
  // in its last bits from run to run.
  constexpr int kBlocks = 64;
  double partial[kBlocks];
#pragma omp parallel for schedule(static)
  for (int b = 0; b < kBlocks; ++b) {
    double sum = 0;
    for (int64_t r = rows * b / kBlocks; r < rows * (b + 1) / kBlocks; ++r) {
      double loss = RowLoss<T>(params, y_true, pred, r, d);
      if (weight.data != nullptr) {
        loss *= Load(weight.dtype, weight.data,
                     weight.size == 1 ? 0 : r / rows_per_sample);
      }
      sum += loss;
    }
    partial[b] = sum;
  }
  double total = 0;
  for (int b = 0; b < kBlocks; ++b) total += partial[b];
  out[0] = static_cast<T>(rows == 0 ? 0.0 : total / static_cast<double>(rows));
}

int64_t ArgMax(int64_t n, const std::function<double(int64_t)>& get) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (get(i) > get(best)) best = i;
  }
  return best;
}

}  // namespace

absl::Status CheckSparseLabel(double label, int64_t r, int64_t classes) {
  constexpr absl::string_view kOp = "sparse_categorical_crossentropy";
  if (label != std::floor(label)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[", kOp, "] label ", label, " at sample ", r, " is not an integer"));
  }
  if (label < 0 || label >= static_cast<double>(classes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("[", kOp, "] label ", label, " at sample ", r,
                     " is out of range for ", classes, " classes"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckSparseLabels(ConstView labels, int64_t rows,
                               int64_t classes) {
  for (int64_t r = 0; r < rows; ++r) {
    SEQUENT_RETURN_IF_ERROR(
        CheckSparseLabel(Load(labels.dtype, labels.data, r), r, classes));
  }
  return absl::OkStatus();
}

// The loss summed over rows, reading labels and sample weights through
// label_at(r) / weight_at(r) (doubles): typed loads for the common case,
// since loads through the dtype took 3 us of a (5,5,5) step's 200 rows.
template <typename LabelAt, typename WeightAt>
absl::Status SparseCrossentropyRows(const LabelAt& label_at,
                                    const WeightAt& weight_at, bool unweighted,
                                    const float* probs, const float* logits,
                                    int64_t rows, int64_t classes,
                                    double* total) {
  double sum = 0;
  // Unweighted rows' -log(p) summed as -log of their product: a logarithm per
  // ~150 rows instead of one per row (200 took ~1 us). Each p > 1e-30 keeps
  // the product above 1e-230 before it is folded into the sum.
  double product = 1;
  for (int64_t r = 0; r < rows; ++r) {
    const double label = label_at(r);
    SEQUENT_RETURN_IF_ERROR(CheckSparseLabel(label, r, classes));
    const auto index = static_cast<int64_t>(label);
    const float p = probs[r * classes + index];
    double loss;
    if (p > 1e-30f && unweighted) {
      product *= p;
      if (product < 1e-200) {
        sum -= std::log(product);
        product = 1;
      }
      continue;
    }
    if (p > 1e-30f) {
      loss = -std::log(static_cast<double>(p));
    } else {
      // The softmax underflowed: log_softmax of the row in double keeps the
      // loss finite and exact.
      const float* row = logits + r * classes;
      double max = row[0];
      for (int64_t i = 1; i < classes; ++i)
        max = std::max(max, static_cast<double>(row[i]));
      double e = 0;
      for (int64_t i = 0; i < classes; ++i) e += std::exp(row[i] - max);
      loss = max + std::log(e) - row[index];
    }
    sum += loss * weight_at(r);
  }
  *total = sum - std::log(product);
  return absl::OkStatus();
}

}  // namespace

absl::Status Loss(const LossParams& params, ConstView y_true, ConstView y_pred,
                  ConstView weight, int64_t row_len, int64_t batch, void* out) {
  const int64_t rows = row_len == 0 ? 0 : y_pred.size / row_len;
  if (params.kind == LossKind::kSparseCategoricalCrossentropy) {
    SEQUENT_RETURN_IF_ERROR(CheckSparseLabels(y_true, rows, row_len));
  }
  if (y_pred.dtype == DType::kF64) {
    LossT(params, y_true, static_cast<const double*>(y_pred.data), rows,
          row_len, weight, batch, static_cast<double*>(out));
  } else {
    LossT(params, y_true, static_cast<const float*>(y_pred.data), rows, row_len,
          weight, batch, static_cast<float*>(out));
  }
  return absl::OkStatus();
}

absl::Status SparseCrossentropyFromProbs(ConstView labels, const float* probs,
                                         const float* logits, ConstView weight,
                                         int64_t rows, int64_t classes,
                                         int64_t batch, float* out) {
  const int64_t rows_per_sample =
      batch == 0 ? 1 : std::max<int64_t>(rows / batch, 1);
  const auto sample = [&](int64_t r) {
    return weight.size == 1 ? 0 : r / rows_per_sample;
  };
  // One thread in row order: a few hundred loads, and the sum stays the same
  // from run to run.
  double total = 0;
  absl::Status status;
  const auto* f32_weight = static_cast<const float*>(weight.data);
  if (labels.dtype == DType::kI32 &&
      (weight.data == nullptr || weight.dtype == DType::kF32)) {
    const auto* typed = static_cast<const int32_t*>(labels.data);
    status = SparseCrossentropyRows(
        [&](int64_t r) { return static_cast<double>(typed[r]); },
        [&](int64_t r) {
          return f32_weight == nullptr
                     ? 1.0
                     : static_cast<double>(f32_weight[sample(r)]);
        },
        f32_weight == nullptr, probs, logits, rows, classes, &total);
  } else {
    status = SparseCrossentropyRows(
        [&](int64_t r) { return Load(labels.dtype, labels.data, r); },
        [&](int64_t r) {
          return weight.data == nullptr
                     ? 1.0
                     : Load(weight.dtype, weight.data, sample(r));
        },
        weight.data == nullptr, probs, logits, rows, classes, &total);
  }
  SEQUENT_RETURN_IF_ERROR(status);
  out[0] =
      static_cast<float>(rows == 0 ? 0.0 : total / static_cast<double>(rows));
  return absl::OkStatus();
}

void Accuracy(MetricKind kind, ConstView y_true, ConstView y_pred,
              int64_t row_len, double threshold, float* out) {
  int64_t correct = 0, total = 0;
  auto pred = [&](int64_t i) { return Load(y_pred.dtype, y_pred.data, i); };
  auto truth = [&](int64_t i) { return Load(y_true.dtype, y_true.data, i); };
  if (kind == MetricKind::kBinaryAccuracy) {
    total = y_pred.size;
#pragma omp parallel for reduction(+ : correct) schedule(static)
    for (int64_t i = 0; i < total; ++i)
      correct += truth(i) == (pred(i) > threshold ? 1.0 : 0.0);
  } else {
    total = row_len == 0 ? 0 : y_pred.size / row_len;
#pragma omp parallel for reduction(+ : correct) schedule(static)
    for (int64_t r = 0; r < total; ++r) {
      const int64_t k =
          ArgMax(row_len, [&](int64_t i) { return pred(r * row_len + i); });
      if (kind == MetricKind::kSparseCategoricalAccuracy) {
        correct += truth(r) == static_cast<double>(k);
      } else {
        correct += k == ArgMax(row_len, [&](int64_t i) {
                     return truth(r * row_len + i);
                   });
      }
    }
  }
  out[0] = total == 0
               ? 0.0f
               : static_cast<float>(static_cast<double>(correct) / total);
}

void BatchNormStatistics(bool training, int64_t channels, double epsilon,
                         double momentum, const float* mean, const float* var,
                         const float* moving_mean, const float* moving_var,
                         float* new_mean, float* new_var,
                         float* saved_inv_std) {
  for (int64_t c = 0; c < channels; ++c) {
    const double v = var[c];
    saved_inv_std[c] = static_cast<float>(1.0 / std::sqrt(v + epsilon));
    if (training) {
      new_mean[c] = static_cast<float>(moving_mean[c] * momentum +
                                       mean[c] * (1 - momentum));
      new_var[c] =
          static_cast<float>(moving_var[c] * momentum + v * (1 - momentum));
    } else {
      new_mean[c] = moving_mean[c];
      new_var[c] = moving_var[c];
    }
  }
}

void InverseStd(float* v, int64_t n, double epsilon) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(1.0 / std::sqrt(v[i] + epsilon));
}

namespace {

// Vectorized for AVX-512 and AVX2 besides the baseline, picked at load time.
__attribute__((target_clones("avx512f", "avx2", "default"))) void ToBf16Chunk(
    const float* __restrict in, uint16_t* __restrict out, int64_t lo,
    int64_t hi) {
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) out[i] = FloatToBF16(in[i]);
}

}  // namespace

void ConvertToBf16(const float* in, uint16_t* out, int64_t n) {
  if (!UseTeam(n)) {
    ToBf16Chunk(in, out, 0, n);
    return;
  }
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), count = omp_get_num_threads();
    // 32-element blocks keep each thread's stores to whole cache lines.
    const int64_t blocks = (n + 31) / 32;
    const int64_t per = (blocks + count - 1) / count;
    const int64_t lo = std::min(n, per * t * 32);
    ToBf16Chunk(in, out, lo, std::min(n, lo + per * 32));
  }
}

}  // namespace sequent::cpu
