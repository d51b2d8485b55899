#ifndef SEQUENT_TESTS_OPS_GRADIENTS_ROWS_H_
#define SEQUENT_TESTS_OPS_GRADIENTS_ROWS_H_

#include <vector>

#include "tests/testing/gradient_check.h"

namespace sequent::testing {

// Gradient-check rows, one or more per differentiable op (f64, reference backend).
// Families linear, elementwise, activation, reduce, shape:
std::vector<GradientCase> GradientRowsA();
// Families random, conv, pool, norm, loss, and whole small models:
std::vector<GradientCase> GradientRowsB();

}  // namespace sequent::testing

#endif  // SEQUENT_TESTS_OPS_GRADIENTS_ROWS_H_
