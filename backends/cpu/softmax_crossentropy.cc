#include "backends/cpu/softmax_crossentropy.h"

#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>

#include "backends/cpu/avx512.h"

namespace sequent::cpu {
namespace {

// Sixteen rows at a time, transposed into registers so that every step is a
// vertical operation over the rows (a row per register, with its horizontal
// reductions, took twice as long); the class count is a template argument so
// that the registers stay registers.

#define SEQUENT_AVX512 __attribute__((target("avx512f"), always_inline)) inline

// exp(x) = 2^n exp(r) with n = round(x / ln 2) and |r| <= ln(2) / 2: Cephes'
// expf polynomial for exp(r) (within 2 ulp), vscalefps for 2^n. x is clamped
// so that r stays finite; far below, the result goes to 0.
SEQUENT_AVX512 __m512 Exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)),
                    _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(
      _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r),
                      _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// log(x) for normal x > 0: x = 2^e m with m in [sqrt(1/2), sqrt(2)), Cephes'
// logf polynomial for log(m) (within 2 ulp).
SEQUENT_AVX512 __m512 Log16(__m512 x) {
  __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
  __m512 e = _mm512_getexp_ps(x);
  const __mmask16 high =
      _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356237f), _CMP_GT_OQ);
  m = _mm512_mask_mul_ps(m, high, m, _mm512_set1_ps(0.5f));
  e = _mm512_mask_add_ps(e, high, e, _mm512_set1_ps(1.0f));
  const __m512 z = _mm512_sub_ps(m, _mm512_set1_ps(1.0f));
  const __m512 z2 = _mm512_mul_ps(z, z);
  __m512 y = _mm512_set1_ps(7.0376836292e-2f);
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(-1.1514610310e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(1.1676998740e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(-1.2420140846e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(1.4249322787e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(-1.6668057665e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(2.0000714765e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(-2.4999993993e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(3.3333331174e-1f));
  y = _mm512_mul_ps(_mm512_mul_ps(y, z), z2);
  y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), y);
  y = _mm512_fnmadd_ps(z2, _mm512_set1_ps(0.5f), y);
  return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), _mm512_add_ps(z, y));
}

// The labels of rows [first, first + 16) (lanes past `rows` are 0), and in
// *bad the lanes whose label is not an integer in [0, classes).
template <typename Label>
SEQUENT_AVX512 __m512i LoadLabels(const Label* labels, __mmask16 lanes,
                                  int64_t classes, __mmask16* bad) {
  __m512i index;
  __mmask16 integral = lanes;
  if constexpr (std::is_same_v<Label, int32_t>) {
    index = _mm512_maskz_loadu_epi32(lanes, labels);
  } else if constexpr (std::is_same_v<Label, int64_t>) {
    // Saturated to 32 bits, so out-of-range values stay out of range.
    const __m256i low =
        _mm512_cvtsepi64_epi32(_mm512_maskz_loadu_epi64(lanes & 0xFF, labels));
    const __m256i high = _mm512_cvtsepi64_epi32(
        _mm512_maskz_loadu_epi64(lanes >> 8, labels + 8));
    index = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
  } else {
    const __m512 value = _mm512_maskz_loadu_ps(lanes, labels);
    // Truncated, then compared with the value: NaN and fractions differ.
    index = _mm512_cvttps_epi32(value);
    integral =
        _mm512_mask_cmpeq_ps_mask(lanes, _mm512_cvtepi32_ps(index), value);
  }
  *bad = lanes &
         (~integral | _mm512_cmplt_epi32_mask(index, _mm512_setzero_si512()) |
          _mm512_cmpge_epi32_mask(
              index, _mm512_set1_epi32(static_cast<int32_t>(classes))));
  return index;
}

// Returns the first row whose label is bad, or -1. `weights` (null: all 1)
// holds a weight per row, or one for all when !weight_per_row.
template <int kClasses, typename Label>
__attribute__((target("avx512f"))) int64_t SoftmaxCrossentropyRows(
    const float* __restrict logits, const Label* __restrict labels,
    const float* __restrict weights, bool weight_per_row, int64_t rows,
    float* __restrict residual, double* loss_sum) {
  const auto class_lanes = static_cast<__mmask16>((1u << kClasses) - 1);
  const int64_t total = rows * kClasses;
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 weight_for_all =
      weights == nullptr ? one : _mm512_set1_ps(weights[0]);
  __m512d sum_low = _mm512_setzero_pd(), sum_high = _mm512_setzero_pd();
  for (int64_t first = 0; first < rows; first += 16) {
    const int64_t n = std::min<int64_t>(16, rows - first);
    const auto row_lanes =
        static_cast<__mmask16>(n == 16 ? 0xFFFF : (1u << n) - 1);
    __mmask16 bad;
    const __m512i label = LoadLabels(labels + first, row_lanes, kClasses, &bad);
    if (bad != 0) return first + __builtin_ctz(bad);
    const __m512 weight =
        weights != nullptr && weight_per_row
            ? _mm512_maskz_loadu_ps(row_lanes, weights + first)
            : _mm512_maskz_mov_ps(row_lanes, weight_for_all);
    __m512 v[16];
#pragma GCC unroll 16
    for (int64_t i = 0; i < 16; ++i) {
      v[i] = i < n ? _mm512_mask_loadu_ps(lowest, class_lanes,
                                          logits + (first + i) * kClasses)
                   : _mm512_setzero_ps();
    }
    avx512::Transpose16(v);
    __m512 max = v[0];
#pragma GCC unroll 16
    for (int j = 1; j < kClasses; ++j) max = _mm512_max_ps(max, v[j]);
    __m512 sum = _mm512_setzero_ps(), at_label = _mm512_setzero_ps();
    __mmask16 is_label[kClasses];
#pragma GCC unroll 16
    for (int j = 0; j < kClasses; ++j) {
      is_label[j] = _mm512_cmpeq_epi32_mask(label, _mm512_set1_epi32(j));
      at_label = _mm512_mask_mov_ps(at_label, is_label[j], v[j]);
      v[j] = Exp16(_mm512_sub_ps(v[j], max));
      sum = _mm512_add_ps(sum, v[j]);
    }
    const __m512 inverse = _mm512_div_ps(one, sum);
#pragma GCC unroll 16
    for (int j = 0; j < kClasses; ++j) {
      v[j] = _mm512_mul_ps(v[j], inverse);
      v[j] = _mm512_mul_ps(_mm512_mask_sub_ps(v[j], is_label[j], v[j], one),
                           weight);
    }
    // The row's loss, log(sum) + max - logit[label] (sum is in [1, classes]:
    // the max's own term is 1), weighted.
    const __m512 loss = _mm512_mul_ps(
        weight, _mm512_add_ps(Log16(sum), _mm512_sub_ps(max, at_label)));
    sum_low =
        _mm512_add_pd(sum_low, _mm512_cvtps_pd(_mm512_castps512_ps256(loss)));
    sum_high = _mm512_add_pd(
        sum_high, _mm512_cvtps_pd(_mm256_castpd_ps(
                      _mm512_extractf64x4_pd(_mm512_castps_pd(loss), 1))));
    avx512::Transpose16(v);
    avx512::StoreRows(v, residual, first, n, kClasses, total);
  }
  *loss_sum = _mm512_reduce_add_pd(_mm512_add_pd(sum_low, sum_high));
  return -1;
}

template <typename Label, int... kMinusOne>
int64_t DispatchClasses(std::integer_sequence<int, kMinusOne...>,
                        const float* logits, const void* labels,
                        const float* weights, bool weight_per_row, int64_t rows,
                        int64_t classes, float* residual, double* loss_sum) {
  using Rows = int64_t (*)(const float*, const Label*, const float*, bool,
                           int64_t, float*, double*);
  static constexpr Rows kByClasses[] = {
      &SoftmaxCrossentropyRows<kMinusOne + 1, Label>...};
  return kByClasses[classes - 1](logits, static_cast<const Label*>(labels),
                                 weights, weight_per_row, rows, residual,
                                 loss_sum);
}

constexpr int kMaxClasses = 16;

#undef SEQUENT_AVX512

}  // namespace

bool HasFusedSoftmaxCrossentropy(int64_t classes, DType label_dtype) {
  return avx512::Available() && classes >= 1 && classes <= kMaxClasses &&
         (label_dtype == DType::kI32 || label_dtype == DType::kI64 ||
          label_dtype == DType::kF32);
}

absl::Status SoftmaxCrossentropy(const float* logits, ConstView labels,
                                 ConstView weights, int64_t rows,
                                 int64_t classes, float* residual,
                                 float* loss) {
  const auto by_classes = std::make_integer_sequence<int, kMaxClasses>();
  const auto* weight_data = static_cast<const float*>(weights.data);
  const bool weight_per_row = weights.size != 1;
  double loss_sum = 0;
  int64_t bad_row;
  switch (labels.dtype) {
    case DType::kI32:
      bad_row = DispatchClasses<int32_t>(by_classes, logits, labels.data,
                                         weight_data, weight_per_row, rows,
                                         classes, residual, &loss_sum);
      break;
    case DType::kI64:
      bad_row = DispatchClasses<int64_t>(by_classes, logits, labels.data,
                                         weight_data, weight_per_row, rows,
                                         classes, residual, &loss_sum);
      break;
    default:
      bad_row = DispatchClasses<float>(by_classes, logits, labels.data,
                                       weight_data, weight_per_row, rows,
                                       classes, residual, &loss_sum);
  }
  if (bad_row >= 0) {
    return CheckSparseLabel(Load(labels.dtype, labels.data, bad_row), bad_row,
                            classes);
  }
  *loss = static_cast<float>(rows == 0 ? 0.0
                                       : loss_sum / static_cast<double>(rows));
  return absl::OkStatus();
}

}  // namespace sequent::cpu
