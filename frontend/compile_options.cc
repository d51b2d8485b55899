#include "frontend/compile_options.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sequent {
namespace {

template <typename T>
void SetClipping(const T& o, OptimizerSpec& spec) {
  spec.clipnorm = o.clipnorm;
  spec.clipvalue = o.clipvalue;
}

}  // namespace

absl::StatusOr<ResolvedOptimizer> ResolveOptimizer(const Optimizer& optimizer) {
  ResolvedOptimizer r;
  if (const std::string* name = std::get_if<std::string>(&optimizer)) {
    if (*name == "sgd") return ResolveOptimizer(SGD{});
    if (*name == "adam") return ResolveOptimizer(Adam{});
    if (*name == "adamw") return ResolveOptimizer(AdamW{});
    if (*name == "rmsprop") return ResolveOptimizer(RMSprop{});
    if (*name == "adagrad") return ResolveOptimizer(Adagrad{});
    return absl::InvalidArgumentError(
        absl::StrCat("unknown optimizer '", *name,
                     "' (valid: adagrad, adam, adamw, rmsprop, sgd)"));
  }
  if (const SGD* o = std::get_if<SGD>(&optimizer)) {
    r.spec.name = "sgd";
    r.learning_rate = o->learning_rate;
    if (o->momentum != 0.0 || o->nesterov) {
      r.spec.attrs = {{"momentum", o->momentum}, {"nesterov", o->nesterov}};
    }
    SetClipping(*o, r.spec);
  } else if (const Adam* o = std::get_if<Adam>(&optimizer)) {
    r.spec.name = "adam";
    r.learning_rate = o->learning_rate;
    r.spec.attrs = {
        {"beta_1", o->beta_1}, {"beta_2", o->beta_2}, {"epsilon", o->epsilon}};
    SetClipping(*o, r.spec);
  } else if (const AdamW* o = std::get_if<AdamW>(&optimizer)) {
    r.spec.name = "adamw";
    r.learning_rate = o->learning_rate;
    r.spec.attrs = {{"beta_1", o->beta_1},
                    {"beta_2", o->beta_2},
                    {"epsilon", o->epsilon},
                    {"weight_decay", o->weight_decay}};
    SetClipping(*o, r.spec);
  } else if (const RMSprop* o = std::get_if<RMSprop>(&optimizer)) {
    r.spec.name = "rmsprop";
    r.learning_rate = o->learning_rate;
    r.spec.attrs = {{"rho", o->rho}, {"epsilon", o->epsilon}};
    SetClipping(*o, r.spec);
  } else if (const Adagrad* o = std::get_if<Adagrad>(&optimizer)) {
    r.spec.name = "adagrad";
    r.learning_rate = o->learning_rate;
    r.spec.attrs = {{"epsilon", o->epsilon}};
    r.spec.initial_accumulator_value = o->initial_accumulator_value;
    SetClipping(*o, r.spec);
  }
  if (!(r.learning_rate > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer '", r.spec.name, "': learning_rate must be positive, got ",
        r.learning_rate));
  }
  if (r.spec.clipnorm < 0 || r.spec.clipvalue < 0) {
    return absl::InvalidArgumentError(
        "optimizer clipnorm and clipvalue must be >= 0");
  }
  return r;
}

absl::StatusOr<LossSpec> ResolveLoss(const Loss& loss) {
  if (const std::string* name = std::get_if<std::string>(&loss)) {
    if (*name == "mse" || *name == "mean_squared_error")
      return LossSpec{"mse", {}};
    if (*name == "mae" || *name == "mean_absolute_error")
      return LossSpec{"mae", {}};
    if (*name == "huber") return LossSpec{"huber", {}};
    if (*name == "binary_crossentropy")
      return LossSpec{"binary_crossentropy", {}};
    if (*name == "categorical_crossentropy")
      return LossSpec{"categorical_crossentropy", {}};
    if (*name == "sparse_categorical_crossentropy") {
      return LossSpec{"sparse_categorical_crossentropy", {}};
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown loss '", *name,
        "' (valid: binary_crossentropy, categorical_crossentropy, huber, mae, "
        "mean_absolute_error, mean_squared_error, mse, "
        "sparse_categorical_crossentropy)"));
  }
  if (std::holds_alternative<MeanSquaredError>(loss))
    return LossSpec{"mse", {}};
  if (std::holds_alternative<MeanAbsoluteError>(loss))
    return LossSpec{"mae", {}};
  if (const Huber* h = std::get_if<Huber>(&loss))
    return LossSpec{"huber", {{"delta", h->delta}}};
  if (const BinaryCrossentropy* b = std::get_if<BinaryCrossentropy>(&loss)) {
    return LossSpec{"binary_crossentropy",
                    {{"from_logits", b->from_logits},
                     {"label_smoothing", b->label_smoothing}}};
  }
  if (const CategoricalCrossentropy* c =
          std::get_if<CategoricalCrossentropy>(&loss)) {
    return LossSpec{"categorical_crossentropy",
                    {{"from_logits", c->from_logits},
                     {"label_smoothing", c->label_smoothing}}};
  }
  const auto& s = std::get<SparseCategoricalCrossentropy>(loss);
  return LossSpec{"sparse_categorical_crossentropy",
                  {{"from_logits", s.from_logits}}};
}

absl::StatusOr<MetricSpec> ResolveMetric(const std::string& name,
                                         const LossSpec& loss) {
  if (name == "accuracy" || name == "acc") {
    if (loss.op == "sparse_categorical_crossentropy") {
      return MetricSpec{name, "sparse_categorical_accuracy", {}};
    }
    if (loss.op == "categorical_crossentropy")
      return MetricSpec{name, "categorical_accuracy", {}};
    return MetricSpec{name, "binary_accuracy", {}};
  }
  if (name == "sparse_categorical_accuracy" || name == "categorical_accuracy" ||
      name == "binary_accuracy") {
    return MetricSpec{name, name, {}};
  }
  if (name == "mae" || name == "mean_absolute_error")
    return MetricSpec{name, "mae", {}};
  if (name == "mse" || name == "mean_squared_error")
    return MetricSpec{name, "mse", {}};
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown metric '", name,
      "' (valid: accuracy, acc, binary_accuracy, categorical_accuracy, mae, "
      "mean_absolute_error, mean_squared_error, mse, "
      "sparse_categorical_accuracy)"));
}

}  // namespace sequent
