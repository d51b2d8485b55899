#ifndef SEQUENT_CORE_INITIALIZERS_H_
#define SEQUENT_CORE_INITIALIZERS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/attribute.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace sequent {

// Creates the initial value of a `variable` node from its attributes, with
// Keras semantics:
//   initializer = "zeros" | "ones" | "constant" {value} | "glorot_uniform" |
//   "glorot_normal" |
//                 "he_uniform" | "he_normal" | "random_normal" {mean=0,
//                 stddev=0.05} | "random_uniform" {minval=-0.05, maxval=0.05}
//                 (default "zeros")
//   seed = int (default 0)
// `value` of "constant" is a number or a float list (one value broadcasts,
// otherwise one per element). Random draws come from our own generator, so a
// seed gives the same bits on every platform and standard library. `type` must
// have a static shape.
absl::StatusOr<Tensor> InitializeVariable(const Attributes& attrs,
                                          const TensorType& type);

// Keras fan computation: rank 2 [in, out]; rank >= 3 convolution kernels [...,
// cin, cout] scale by the receptive field; rank 1 uses the one dimension for
// both; a scalar gives 1.
struct Fans {
  double fan_in = 1;
  double fan_out = 1;
};
Fans ComputeFans(const Shape& shape);

// A small deterministic generator (splitmix64) with the draws the initializers
// need.
class InitRandom {
 public:
  explicit InitRandom(uint64_t seed) : state_(seed) {}
  uint64_t NextBits();
  // Uniform in [0, 1) from the top 53 bits.
  double Uniform();
  // Standard normal by Box-Muller (one draw per call; the twin is discarded for
  // simplicity).
  double Normal();
  // Standard normal resampled until |z| <= 2.
  double TruncatedNormal();

 private:
  uint64_t state_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_INITIALIZERS_H_
