#ifndef SEQUENT_FRONTEND_BYTE_ROWS_H_
#define SEQUENT_FRONTEND_BYTE_ROWS_H_

// Image features scaled from bytes (x / 255.0f, as data.cc's loaders and most
// scripts scale pixels) kept as the bytes: a training epoch gathers its
// batches from rows scattered over a dataset larger than the caches, and
// those gathers are bound by memory traffic, a quarter of it in bytes. The
// floats come back bit for bit.

#include <cstdint>
#include <memory>
#include <optional>

#include "core/tensor.h"

namespace sequent {

class ByteRows {
 public:
  // The kernels they are coded and decoded with.
  enum class Isa { kNone, kAvx2, kAvx512 };

  // The byte form of x (f32 [n, d]) when every value is k / 255.0f for an
  // integer k in [0, 255] (the float division, bit for bit; -0.0 is not)
  // and the CPU has AVX-512 or AVX2 with FMA; nullopt otherwise. The
  // environment's SEQUENT_BYTE_ROWS=0 turns them off (to compare with the
  // floats), =avx2 takes the AVX2 kernels on an AVX-512 CPU.
  static std::optional<ByteRows> FromScaledFloats(const Tensor& x);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }

  // dst's first `count` rows (f32, cols() wide) = x's rows `rows[i]`, exactly
  // as x held them.
  void GatherRows(const int64_t* rows, int64_t count, Tensor& dst) const;

 private:
  struct Unmap {
    size_t bytes;  // mapped
    void operator()(uint8_t* p) const;
  };
  ByteRows(int64_t rows, int64_t cols, Isa isa);

  int64_t rows_ = 0, cols_ = 0;
  Isa isa_ = Isa::kNone;
  std::unique_ptr<uint8_t, Unmap> bytes_;
};

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_BYTE_ROWS_H_
