#ifndef SEQUENT_BACKENDS_CPU_KERNELS_H_
#define SEQUENT_BACKENDS_CPU_KERNELS_H_

// Our own loops for what oneDNN 2.6 lacks: broadcasting binaries oneDNN cannot
// express (both operands broadcast), dtype casts outside oneDNN's types,
// dropout with the stateless mask of ops/random_hash.h. OpenMP-parallel over
// independent elements, no allocation.

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace sequent::cpu {

enum class BinaryKind { kAdd, kSub, kMul, kDiv, kMax };

// out[i] = a[ia] op b[ib] over the row-major index space `out_dims`;
// `a_strides` and `b_strides` are element strides per output dimension (0 where
// the operand broadcasts). `dtype` is f32, f64, i32 or i64.
void BroadcastBinary(BinaryKind kind, DType dtype, const void* a,
                     const std::vector<int64_t>& a_strides, const void* b,
                     const std::vector<int64_t>& b_strides, void* out,
                     const std::vector<int64_t>& out_dims);

// Element-wise conversion of `n` elements between any two sequent dtypes (float
// -> int truncates toward zero, anything -> bool is != 0).
void CastElements(DType from, const void* src, DType to, void* dst, int64_t n);

// y = x * mask where mask[i] = keep(seed, step, i) ? 1 / (1 - rate) : 0
// (ops/random.cc); with `active` false the mask is all ones. `dtype` is f32 or
// f64.
void DropoutForward(DType dtype, const void* x, void* y, void* mask, int64_t n,
                    double rate, uint64_t seed, uint64_t step, bool active);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_KERNELS_H_
