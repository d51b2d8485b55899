#ifndef SEQUENT_TESTS_TESTING_GRADIENT_CHECK_H_
#define SEQUENT_TESTS_TESTING_GRADIENT_CHECK_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace sequent::testing {

// One operand of an op under a gradient check.
struct Operand {
  TensorType type;           // Static shape; f64 for differentiable operands.
  bool differentiable = true;  // false: labels, indices, ... (filled by `fill`, not checked).
  // Fills the operand's value (default: uniform in [-1, 1] from the case's seed). Use it to
  // keep inputs away from kinks (relu at 0, max ties) or to give integer labels.
  std::function<void(Tensor&)> fill;
};

struct GradientCase {
  std::string name;  // Row name in the table; usually the op name plus a variant.
  std::string op;
  std::vector<Operand> operands;
  Attributes attrs;
  // Which output of the op feeds the loss (multi-output ops).
  int output = 0;
  double tolerance = 1e-6;  // Max |analytic - numeric| / max(1, |numeric|).
  uint64_t seed = 1;
  // Builds the function instead of a single op (whole-model checks); gets the operand values
  // and returns the value the loss reads. `op`/`attrs`/`output` are then unused.
  std::function<ValueId(GraphBuilder&, const std::vector<ValueId>&)> build;
};

// Builds loss = reduce_sum(op(operands)[output] * R) with a fixed random R, differentiates it
// with AppendGradients (the ops' gradient rules, i.e. IR), runs both on the reference backend
// in f64, and compares every differentiable operand's gradient with central differences
// (step 1e-6). Returns OK or an error naming the operand, element and both values.
absl::Status CheckGradient(const GradientCase& c);

// Fill helpers.
std::function<void(Tensor&)> UniformFill(double lo, double hi, uint64_t seed);
// Uniform in [lo, hi] with |x| >= gap, for kinks at 0.
std::function<void(Tensor&)> AwayFromZeroFill(double lo, double hi, double gap, uint64_t seed);
std::function<void(Tensor&)> IntegerFill(int64_t lo, int64_t hi_exclusive, uint64_t seed);
// Rows that sum to 1 (probabilities / one-hot-ish soft labels) over the last axis.
std::function<void(Tensor&)> ProbabilityFill(uint64_t seed);

}  // namespace sequent::testing

#endif  // SEQUENT_TESTS_TESTING_GRADIENT_CHECK_H_
