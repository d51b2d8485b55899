#ifndef SEQUENT_EXAMPLES_MODELS_H_
#define SEQUENT_EXAMPLES_MODELS_H_

// The networks of the example scripts, shared by the scripts and by
// sequent-graph (--example=NAME), so that the picture a user draws is the model
// the example trains.

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "frontend/sequent.h"

namespace sequent::examples {

// Keras's Fashion-MNIST MLP: Input(28, 28) - Flatten - Dense 512 relu - Dense
// 512 relu - Dense 10 (logits). Also the PyTorch-style example's network.
Sequential FashionMnistMlp();
// conv32 - pool - conv64 - pool - dense128 - dense10 on [28, 28, 1] images.
Sequential FashionMnistCnn();
// Dense 512 relu x3 - Dense 1 on the Diabetes data's 10 features.
Sequential DiabetesRegressor();

// The example names --example takes, in a stable order.
std::vector<std::string> ExampleNames();

// The example's model compiled with the example's optimizer, loss and metrics
// (on `device` when given). Throws sequent::Error naming the known examples
// when `name` is not one.
Sequential CompiledExample(absl::string_view name,
                           std::optional<Device> device = std::nullopt);

}  // namespace sequent::examples

#endif  // SEQUENT_EXAMPLES_MODELS_H_
