#ifndef SEQUENT_BACKENDS_CPU_AVX512_H_
#define SEQUENT_BACKENDS_CPU_AVX512_H_

// Register-level pieces of our AVX-512 loops (compiled for AVX-512 inside
// files built for the baseline; callers check the CPU first).

#include <immintrin.h>

#include <cstdint>

namespace sequent::cpu::avx512 {

// The CPU runs AVX-512F code.
inline bool Available() {
  static const bool available = __builtin_cpu_supports("avx512f");
  return available;
}

// v[j] lane i <- v[i] lane j: sixteen rows of 16 floats into sixteen
// columns, so that per-row work becomes vertical operations over the rows.
__attribute__((target("avx512f"), always_inline)) inline void Transpose16(
    __m512* v) {
  __m512 t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 4) {
    v[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    v[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    v[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    v[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 8) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_shuffle_f32x4(v[i + k], v[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_shuffle_f32x4(v[i + k], v[i + k + 4], 0xDD);
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    v[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
    v[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
  }
}

// Stores rows first .. first + count - 1 of a [rows, cols] matrix (cols <=
// 16) from v[0 .. count). Each row's store covers the next rows' places too
// (they are written after it): Zen's masked stores cost several plain ones,
// so only the rows whose 16 lanes would pass the matrix's end use them.
__attribute__((target("avx512f"), always_inline)) inline void StoreRows(
    const __m512* v, float* matrix, int64_t first, int64_t count, int64_t cols,
    int64_t total) {
  const auto lanes = static_cast<__mmask16>((1u << cols) - 1);
#pragma GCC unroll 16
  for (int64_t i = 0; i < count; ++i) {
    float* out = matrix + (first + i) * cols;
    if ((first + i) * cols + 16 <= total) {
      _mm512_storeu_ps(out, v[i]);
    } else {
      _mm512_mask_storeu_ps(out, lanes, v[i]);
    }
  }
}

}  // namespace sequent::cpu::avx512

#endif  // SEQUENT_BACKENDS_CPU_AVX512_H_
