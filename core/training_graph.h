#ifndef SEQUENT_CORE_TRAINING_GRAPH_H_
#define SEQUENT_CORE_TRAINING_GRAPH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph.h"
#include "core/op_registry.h"

namespace sequent {

// The loss op ("sparse_categorical_crossentropy", "mse", ...) and its
// attributes.
struct LossSpec {
  std::string op;
  Attributes attrs;
};

// A metric reported under `name` ("accuracy", "mae"), computed by `op` on (y,
// y_pred).
struct MetricSpec {
  std::string name;
  std::string op;
  Attributes attrs;
};

// The optimizer: `name` is sgd | adam | adamw | rmsprop | adagrad; `attrs` are
// the update op's attributes (momentum, nesterov, beta_1, beta_2, epsilon, rho,
// weight_decay, ...). clipnorm > 0 clips each gradient to that L2 norm,
// clipvalue > 0 to [-clipvalue, clipvalue].
struct OptimizerSpec {
  std::string name = "adam";
  Attributes attrs;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
  double initial_accumulator_value = 0.1;  // adagrad
};

// L1/L2 penalty on one variable, added to the loss (Keras kernel_regularizer).
struct Regularizer {
  std::string variable;
  double l1 = 0.0;
  double l2 = 0.0;
};

struct TrainingConfig {
  LossSpec loss;
  OptimizerSpec optimizer;
  std::vector<MetricSpec> metrics;
  std::vector<Regularizer> regularizers;
  TensorType label_type;  // Type of the "y" feed, batch dim N.
  bool sample_weights =
      false;  // Adds a "sample_weight" feed [N] to the train graph's loss.
};

// Names the graphs use for their feeds, outputs and optimizer state.
inline constexpr char kFeatureFeed[] = "x";
inline constexpr char kLabelFeed[] = "y";
inline constexpr char kSampleWeightFeed[] = "sample_weight";
inline constexpr char kLearningRateFeed[] = "learning_rate";
inline constexpr char kPredictionOutput[] = "y_pred";
inline constexpr char kLossOutput[] = "loss";
inline constexpr char kIterationsVariable[] = "optimizer/iterations";

struct TrainingGraphs {
  Graph train;  // forward + loss + backward + updates + metrics: outputs loss,
                // metrics. Empty (no nodes) when the model has no trainable
                // variables.
  Graph eval;     // forward (inference mode) + loss + metrics.
  Graph predict;  // forward (inference mode): output y_pred.
};

// From a forward graph with feed "x" and output "y_pred" (its variable updates,
// e.g. batch norm moving statistics, kept in training only), generates the
// three static graphs. Ops with a `training` attribute (dropout, batch_norm)
// run in training mode in `train` only. The learning rate is the scalar feed
// "learning_rate", so schedules need no recompile. Nodes are tagged by part:
// layers "loss", "backward/...", "optimizer/<variable>", "metrics".
absl::StatusOr<TrainingGraphs> BuildTrainingGraphs(const Graph& forward,
                                                   const TrainingConfig& config,
                                                   const OpRegistry& registry);

// The update op for an optimizer name, and the slot variables it keeps per
// variable
// ("adam" -> adam_update, slots {"m", "v"}). Unknown names are an error listing
// valid ones.
struct OptimizerOps {
  std::string update_op;
  std::vector<std::string> slots;
};
absl::StatusOr<OptimizerOps> OptimizerOpsFor(const OptimizerSpec& spec);

}  // namespace sequent

#endif  // SEQUENT_CORE_TRAINING_GRAPH_H_
