#include "frontend/byte_rows.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <thread>

namespace sequent {
namespace {

// k / 255.0f, correctly rounded, from the product with the rounded
// reciprocal and one FMA correction of its residual (checked for all 256 k
// by the tests; the plain product is 1 ulp off for some).
constexpr float kScale = 255.0f;
constexpr float kInverse = 1.0f / 255.0f;

ByteRows::Isa Supported() {
  static const ByteRows::Isa isa =
      __builtin_cpu_supports("avx512f") ? ByteRows::Isa::kAvx512
      : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
          ? ByteRows::Isa::kAvx2
          : ByteRows::Isa::kNone;
  return isa;
}

__attribute__((target("avx512f"), always_inline)) inline __m512 Decode16(
    __m512 k) {
  const __m512 q = _mm512_mul_ps(k, _mm512_set1_ps(kInverse));
  const __m512 residual = _mm512_fnmadd_ps(q, _mm512_set1_ps(kScale), k);
  return _mm512_fmadd_ps(residual, _mm512_set1_ps(kInverse), q);
}

__attribute__((target("avx2,fma"), always_inline)) inline __m256 Decode8(
    __m256 k) {
  const __m256 q = _mm256_mul_ps(k, _mm256_set1_ps(kInverse));
  const __m256 residual = _mm256_fnmadd_ps(q, _mm256_set1_ps(kScale), k);
  return _mm256_fmadd_ps(residual, _mm256_set1_ps(kInverse), q);
}

// Encodes x[0, n) into out; false at the first value that is not k / 255.
__attribute__((target("avx512f"))) bool EncodeAvx512(const float* x, int64_t n,
                                                     uint8_t* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const auto lanes =
        static_cast<__mmask16>(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
    // NaN and out-of-range products convert to 0x80000000: not <= 255.
    const __m512i k =
        _mm512_cvtps_epi32(_mm512_mul_ps(v, _mm512_set1_ps(kScale)));
    const __mmask16 in_range =
        _mm512_cmple_epu32_mask(k, _mm512_set1_epi32(255));
    const __mmask16 exact = _mm512_cmpeq_epi32_mask(
        _mm512_castps_si512(Decode16(_mm512_cvtepi32_ps(k))),
        _mm512_castps_si512(v));
    if ((in_range & exact & lanes) != lanes) return false;
    if (lanes == 0xFFFF) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                       _mm512_cvtepi32_epi8(k));
    } else {
      _mm512_mask_cvtepi32_storeu_epi8(out + i, lanes, k);
    }
  }
  return true;
}

__attribute__((target("avx2,fma"))) bool EncodeAvx2(const float* x, int64_t n,
                                                    uint8_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256i k =
        _mm256_cvtps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(kScale)));
    // Unsigned k <= 255: max(k, 255) == 255.
    const __m256i in_range = _mm256_cmpeq_epi32(
        _mm256_max_epu32(k, _mm256_set1_epi32(255)), _mm256_set1_epi32(255));
    const __m256i exact =
        _mm256_cmpeq_epi32(_mm256_castps_si256(Decode8(_mm256_cvtepi32_ps(k))),
                           _mm256_castps_si256(v));
    if (_mm256_movemask_epi8(_mm256_and_si256(in_range, exact)) != -1)
      return false;
    alignas(32) int32_t codes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(codes), k);
    for (int j = 0; j < 8; ++j) out[i + j] = static_cast<uint8_t>(codes[j]);
  }
  for (; i < n; ++i) {
    const float k = std::nearbyint(x[i] * kScale);
    if (!(k >= 0.0f && k <= 255.0f)) return false;
    // From the integer code, so -0.0 (code 0 decodes to +0.0) is refused.
    const float decoded = static_cast<float>(static_cast<int>(k)) / kScale;
    if (std::memcmp(&decoded, x + i, sizeof(float)) != 0) return false;
    out[i] = static_cast<uint8_t>(k);
  }
  return true;
}

__attribute__((target("avx512f"))) void DecodeRowAvx512(const uint8_t* in,
                                                        float* out, int64_t n) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m128i bytes =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + j));
    _mm512_storeu_ps(out + j,
                     Decode16(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes))));
  }
  for (; j < n; ++j) out[j] = static_cast<float>(in[j]) / kScale;
}

__attribute__((target("avx2,fma"))) void DecodeRowAvx2(const uint8_t* in,
                                                       float* out, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m128i bytes =
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + j));
    _mm256_storeu_ps(out + j,
                     Decode8(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes))));
  }
  for (; j < n; ++j) out[j] = static_cast<float>(in[j]) / kScale;
}

// `bytes` (at least 1) mapped, their pages populated by the coding threads
// (first-touch faults, one per 4 KB page, took ~20 ms of a one-thread coding
// of Fashion-MNIST's 47 MB, 25 ms in all).
uint8_t* Map(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<uint8_t*>(p);
}

}  // namespace

ByteRows::ByteRows(int64_t rows, int64_t cols, Isa isa)
    : rows_(rows),
      cols_(cols),
      isa_(isa),
      bytes_(Map(std::max<size_t>(1, static_cast<size_t>(rows * cols))),
             Unmap{std::max<size_t>(1, static_cast<size_t>(rows * cols))}) {}

void ByteRows::Unmap::operator()(uint8_t* p) const { munmap(p, bytes); }

std::optional<ByteRows> ByteRows::FromScaledFloats(const Tensor& x) {
  Isa isa = Supported();
  const char* setting = std::getenv("SEQUENT_BYTE_ROWS");
  const std::string_view wanted = setting != nullptr ? setting : "";
  if (wanted == "0") return std::nullopt;
  if (wanted == "avx2" && isa == Isa::kAvx512) isa = Isa::kAvx2;
  if (isa == Isa::kNone || x.dtype() != DType::kF32 || x.shape().rank() != 2)
    return std::nullopt;
  ByteRows coded(x.shape()[0], x.shape()[1], isa);
  const int64_t n = x.num_elements();
  const float* values = x.data<float>().data();
  uint8_t* bytes = coded.bytes_.get();
  const auto encode = [&](int64_t begin, int64_t end) {
    return isa == Isa::kAvx512
               ? EncodeAvx512(values + begin, end - begin, bytes + begin)
               : EncodeAvx2(values + begin, end - begin, bytes + begin);
  };
  // Two threads halve the reading of the floats (DRAM-bound) and the page
  // faults of the bytes: 47 MB in ~11 ms instead of ~21.
  constexpr int64_t kSplitFrom = int64_t{1} << 22;
  bool ok;
  if (n >= kSplitFrom && std::thread::hardware_concurrency() >= 2) {
    const int64_t half = n / 2 / 4096 * 4096;
    bool second_ok = false;
    std::thread second([&] { second_ok = encode(half, n); });
    ok = encode(0, half);
    second.join();
    ok = ok && second_ok;
  } else {
    ok = encode(0, n);
  }
  if (!ok) return std::nullopt;
  return coded;
}

void ByteRows::GatherRows(const int64_t* rows, int64_t count,
                          Tensor& dst) const {
  float* out = dst.data<float>().data();
  const bool avx512 = isa_ == Isa::kAvx512;
  // As data.cc's GatherRows: the row kAhead places on is requested now, so
  // several rows are on their way from memory at once.
  constexpr int64_t kAhead = 8, kLine = 64;
  for (int64_t i = 0; i < count; ++i) {
    if (i + kAhead < count) {
      const uint8_t* ahead = bytes_.get() + rows[i + kAhead] * cols_;
      for (int64_t line = 0; line < cols_; line += kLine)
        __builtin_prefetch(ahead + line);
    }
    const uint8_t* in = bytes_.get() + rows[i] * cols_;
    if (avx512) {
      DecodeRowAvx512(in, out + i * cols_, cols_);
    } else {
      DecodeRowAvx2(in, out + i * cols_, cols_);
    }
  }
}

}  // namespace sequent
