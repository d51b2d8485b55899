#ifndef SEQUENT_OPS_RANDOM_HASH_H_
#define SEQUENT_OPS_RANDOM_HASH_H_

// The stateless, counter-based random stream behind dropout. Every backend
// (reference, CPU, CUDA) computes the mask from (seed, step, flat element
// index) with these functions alone, so all of them produce bit-identical masks
// without sharing generator state.

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SEQUENT_HOST_DEVICE __host__ __device__
#else
#define SEQUENT_HOST_DEVICE
#endif

namespace sequent::ops {

// splitmix64's finalizer: a bijective mix with full avalanche.
SEQUENT_HOST_DEVICE inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// 24 uniform random bits for element `index` of the stream (seed, step). Each
// key part is mixed before the next is folded in, so nearby seeds, steps and
// indices give unrelated bits.
SEQUENT_HOST_DEVICE inline uint32_t DropoutBits(uint64_t seed, uint64_t step,
                                                uint64_t index) {
  const uint64_t h = SplitMix64(SplitMix64(SplitMix64(seed) ^ step) ^ index);
  return static_cast<uint32_t>(h >> 40);
}

// Uniform in [0, 1): exactly representable in float and double, so u is the
// same everywhere.
SEQUENT_HOST_DEVICE inline double DropoutUniform(uint64_t seed, uint64_t step,
                                                 uint64_t index) {
  return static_cast<double>(DropoutBits(seed, step, index)) *
         (1.0 / 16777216.0);
}

// Keep an element when u >= rate, i.e. when its bits >= ceil(rate * 2^24).
// Comparing integers against this host-computed threshold avoids float/double
// rounding differences on devices.
inline uint32_t DropoutKeepThreshold(double rate) {
  if (!(rate > 0.0)) return 0;
  if (rate >= 1.0) return 1u << 24;
  return static_cast<uint32_t>(std::ceil(rate * 16777216.0));
}

SEQUENT_HOST_DEVICE inline bool DropoutKeep(uint64_t seed, uint64_t step,
                                            uint64_t index,
                                            uint32_t threshold) {
  return DropoutBits(seed, step, index) >= threshold;
}

}  // namespace sequent::ops

#endif  // SEQUENT_OPS_RANDOM_HASH_H_
