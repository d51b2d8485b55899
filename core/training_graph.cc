#include "core/training_graph.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/autodiff.h"
#include "core/graph_builder.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

void SetTrainingMode(Graph& g, bool training) {
  for (NodeId id : g.LiveNodes()) {
    Node& n = g.mutable_node(id);
    auto it = n.attrs.find("training");
    if (it != n.attrs.end() && std::holds_alternative<bool>(it->second))
      it->second = training;
  }
}

absl::StatusOr<ValueId> PredictionOf(const Graph& g) {
  const ValueId y_pred = g.FindOutput(kPredictionOutput);
  if (y_pred == kNoValue) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the forward graph has no output named '", kPredictionOutput, "'"));
  }
  return y_pred;
}

// Emits the loss (plus regularization penalties) and the metrics on (y,
// y_pred); returns the total loss. Adds the label and sample-weight feeds.
absl::StatusOr<ValueId> EmitLossAndMetrics(
    GraphBuilder& b, const TrainingConfig& config,
    std::vector<GraphOutput>& metric_outputs) {
  Graph& g = b.graph();
  SEQUENT_ASSIGN_OR_RETURN(ValueId y_pred, PredictionOf(g));
  b.SetLayer("loss");
  const ValueId y = b.Input(kLabelFeed, config.label_type);
  std::vector<ValueId> loss_inputs = {y, y_pred};
  if (config.sample_weights) {
    const TensorType weight_type{g.type(y_pred).dtype, Shape{Shape::kBatch}};
    loss_inputs.push_back(b.Input(kSampleWeightFeed, weight_type));
  }
  ValueId loss = b.Op(config.loss.op, loss_inputs, config.loss.attrs);
  SEQUENT_RETURN_IF_ERROR(b.status());
  for (const Regularizer& r : config.regularizers) {
    const NodeId var = g.FindVariable(r.variable);
    if (var == kNoNode) {
      return absl::InvalidArgumentError(absl::StrCat(
          "regularizer names unknown variable '", r.variable, "'"));
    }
    const ValueId w = g.node(var).outputs[0];
    const DType dtype = g.type(w).dtype;
    if (r.l2 != 0.0) {
      const ValueId sum = b.Op("reduce_sum", {b.Op("square", {w})});
      loss = b.Op("add",
                  {loss, b.Op("mul", {sum, b.ScalarConstant(r.l2, dtype)})});
    }
    if (r.l1 != 0.0) {
      const ValueId sum = b.Op("reduce_sum", {b.Op("abs", {w})});
      loss = b.Op("add",
                  {loss, b.Op("mul", {sum, b.ScalarConstant(r.l1, dtype)})});
    }
  }
  b.SetLayer("metrics");
  for (const MetricSpec& m : config.metrics) {
    metric_outputs.push_back({m.name, b.Op(m.op, {y, y_pred}, m.attrs)});
  }
  SEQUENT_RETURN_IF_ERROR(b.status());
  return loss;
}

ValueId ClipGradient(GraphBuilder& b, ValueId grad, const OptimizerSpec& spec) {
  if (spec.clipvalue > 0.0) {
    grad = b.Op("clip_by_value", {grad},
                {{"min", -spec.clipvalue}, {"max", spec.clipvalue}});
  }
  if (spec.clipnorm > 0.0) {
    grad = b.Op("clip_by_norm", {grad}, {{"max_norm", spec.clipnorm}});
  }
  return grad;
}

}  // namespace

absl::StatusOr<OptimizerOps> OptimizerOpsFor(const OptimizerSpec& spec) {
  if (spec.name == "sgd") {
    const double momentum = FloatAttrOr(spec.attrs, "momentum", 0.0);
    if (momentum != 0.0 || BoolAttrOr(spec.attrs, "nesterov", false)) {
      return OptimizerOps{"momentum_update", {"velocity"}};
    }
    return OptimizerOps{"sgd_update", {}};
  }
  if (spec.name == "adam") return OptimizerOps{"adam_update", {"m", "v"}};
  if (spec.name == "adamw") return OptimizerOps{"adamw_update", {"m", "v"}};
  if (spec.name == "rmsprop") return OptimizerOps{"rmsprop_update", {"ms"}};
  if (spec.name == "adagrad")
    return OptimizerOps{"adagrad_update", {"accumulator"}};
  return absl::InvalidArgumentError(
      absl::StrCat("unknown optimizer '", spec.name,
                   "' (valid: adagrad, adam, adamw, rmsprop, sgd)"));
}

absl::StatusOr<TrainingGraphs> BuildTrainingGraphs(const Graph& forward,
                                                   const TrainingConfig& config,
                                                   const OpRegistry& registry) {
  SEQUENT_ASSIGN_OR_RETURN(OptimizerOps optimizer_ops,
                           OptimizerOpsFor(config.optimizer));
  TrainingGraphs graphs;

  // predict: the forward graph in inference mode.
  graphs.predict = forward;
  graphs.predict.set_name(absl::StrCat(forward.name(), ".predict"));
  SetTrainingMode(graphs.predict, false);
  graphs.predict.mutable_updates().clear();
  SEQUENT_ASSIGN_OR_RETURN(ValueId predicted, PredictionOf(graphs.predict));
  graphs.predict.mutable_outputs() = {{kPredictionOutput, predicted}};

  // eval: inference-mode forward + loss + metrics.
  graphs.eval = graphs.predict;
  graphs.eval.set_name(absl::StrCat(forward.name(), ".eval"));
  {
    GraphBuilder b(&graphs.eval, &registry);
    std::vector<GraphOutput> metrics;
    // Sample weights (class_weight) shape training only, as in Keras's fit.
    TrainingConfig eval_config = config;
    eval_config.sample_weights = false;
    SEQUENT_ASSIGN_OR_RETURN(ValueId loss,
                             EmitLossAndMetrics(b, eval_config, metrics));
    graphs.eval.mutable_outputs() = {{kLossOutput, loss}};
    for (auto& m : metrics) graphs.eval.mutable_outputs().push_back(m);
  }

  // train: training-mode forward + loss + gradients + updates + metrics.
  Graph& train = graphs.train;
  train = forward;
  train.set_name(absl::StrCat(forward.name(), ".train"));
  SetTrainingMode(train, true);
  GraphBuilder b(&train, &registry);
  std::vector<GraphOutput> metrics;
  SEQUENT_ASSIGN_OR_RETURN(ValueId loss,
                           EmitLossAndMetrics(b, config, metrics));

  std::vector<NodeId> trainable;
  std::vector<ValueId> weights;
  for (NodeId id : train.VariableNodes()) {
    if (BoolAttrOr(train.node(id).attrs, "trainable", true)) {
      trainable.push_back(id);
      weights.push_back(train.node(id).outputs[0]);
    }
  }
  if (weights.empty()) {
    // Keras compiles such a model (an Activation-only head) for predict and
    // evaluate; there is no step to generate, so `train` stays empty and
    // training it is the caller's error.
    train = Graph(train.name());
    return graphs;
  }
  SEQUENT_ASSIGN_OR_RETURN(std::vector<ValueId> grads,
                           AppendGradients(b, loss, weights));

  const DType dtype = train.type(weights[0]).dtype;
  b.SetLayer("optimizer");
  const ValueId learning_rate =
      b.Input(kLearningRateFeed, TensorType{dtype, Shape{}});
  const ValueId iterations =
      b.Variable(kIterationsVariable, TensorType{dtype, Shape{}},
                 {{"initializer", std::string("zeros")}},
                 /*trainable=*/false);
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::string name =
        StringAttrOr(train.node(trainable[i]).attrs, "name", "");
    b.SetLayer(absl::StrCat("optimizer/", name));
    const TensorType type = train.type(weights[i]);
    std::vector<ValueId> inputs = {weights[i],
                                   ClipGradient(b, grads[i], config.optimizer)};
    std::vector<std::string> slot_names;
    for (const std::string& slot : optimizer_ops.slots) {
      Attributes init = {{"initializer", std::string("zeros")}};
      if (slot == "accumulator") {
        init = {{"initializer", std::string("constant")},
                {"value", config.optimizer.initial_accumulator_value}};
      }
      slot_names.push_back(absl::StrCat(name, "/", slot));
      inputs.push_back(
          b.Variable(slot_names.back(), type, init, /*trainable=*/false));
    }
    inputs.push_back(learning_rate);
    inputs.push_back(iterations);
    std::vector<ValueId> outs =
        b.OpMulti(optimizer_ops.update_op, inputs, config.optimizer.attrs);
    SEQUENT_RETURN_IF_ERROR(b.status());
    train.AddUpdate(name, outs[0]);
    for (size_t s = 0; s < slot_names.size(); ++s)
      train.AddUpdate(slot_names[s], outs[s + 1]);
  }
  b.SetLayer("optimizer");
  train.AddUpdate(kIterationsVariable,
                  b.Op("add", {iterations, b.ScalarConstant(1.0, dtype)}));
  SEQUENT_RETURN_IF_ERROR(b.status());
  train.mutable_outputs() = {{kLossOutput, loss}};
  for (auto& m : metrics) train.mutable_outputs().push_back(m);
  return graphs;
}

}  // namespace sequent
