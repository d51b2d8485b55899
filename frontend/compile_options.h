#ifndef SEQUENT_FRONTEND_COMPILE_OPTIONS_H_
#define SEQUENT_FRONTEND_COMPILE_OPTIONS_H_

#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/training_graph.h"

namespace sequent {

// Optimizers, with Keras 3's defaults. clipnorm / clipvalue: 0 = off.
struct SGD {
  double learning_rate = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
};
struct Adam {
  double learning_rate = 0.001;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
};
struct AdamW {
  double learning_rate = 0.001;
  double weight_decay = 0.004;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
};
struct RMSprop {
  double learning_rate = 0.001;
  double rho = 0.9;
  double epsilon = 1e-7;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
};
struct Adagrad {
  double learning_rate = 0.001;
  double initial_accumulator_value = 0.1;
  double epsilon = 1e-7;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
};
// A Keras name ("adam", "sgd", ...) or a configured optimizer.
using Optimizer = std::variant<std::string, SGD, Adam, AdamW, RMSprop, Adagrad>;

// Losses. Keras names: "mse"/"mean_squared_error", "mae"/"mean_absolute_error",
// "huber", "binary_crossentropy", "categorical_crossentropy",
// "sparse_categorical_crossentropy".
struct MeanSquaredError {};
struct MeanAbsoluteError {};
struct Huber {
  double delta = 1.0;
};
struct BinaryCrossentropy {
  bool from_logits = false;
  double label_smoothing = 0.0;
};
struct CategoricalCrossentropy {
  bool from_logits = false;
  double label_smoothing = 0.0;
};
struct SparseCategoricalCrossentropy {
  bool from_logits = false;
};
using Loss = std::variant<std::string, MeanSquaredError, MeanAbsoluteError,
                          Huber, BinaryCrossentropy, CategoricalCrossentropy,
                          SparseCategoricalCrossentropy>;

struct ResolvedOptimizer {
  OptimizerSpec spec;
  double learning_rate = 0.001;
};
absl::StatusOr<ResolvedOptimizer> ResolveOptimizer(const Optimizer& optimizer);
absl::StatusOr<LossSpec> ResolveLoss(const Loss& loss);
// Keras metric names ("accuracy", "mae", ...) for a loss; "accuracy" picks the
// variant the loss implies, as Keras does.
absl::StatusOr<MetricSpec> ResolveMetric(const std::string& name,
                                         const LossSpec& loss);

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_COMPILE_OPTIONS_H_
