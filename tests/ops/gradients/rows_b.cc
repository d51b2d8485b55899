#include "tests/ops/gradients/rows.h"

namespace sequent::testing {

std::vector<GradientCase> GradientRowsB() { return {}; }

}  // namespace sequent::testing
