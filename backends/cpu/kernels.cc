#include "backends/cpu/kernels.h"

#include <algorithm>
#include <cstring>

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
  // Rows of the innermost dimension are independent: parallelize over them.
  const int64_t inner = out_dims[rank - 1];
  int64_t rows = 1;
  for (int d = 0; d < rank - 1; ++d) rows *= out_dims[d];
  const int64_t sa = a_strides[rank - 1], sb = b_strides[rank - 1];
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
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
  }
}

template <typename T>
double LoadAsDouble(const void* p, int64_t i) {
  return static_cast<double>(static_cast<const T*>(p)[i]);
}

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

void CastElements(DType from, const void* src, DType to, void* dst, int64_t n) {
  if (from == to) {
    std::memcpy(dst, src, static_cast<size_t>(n) * DTypeSize(from));
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) Store(to, dst, i, Load(from, src, i));
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
