// Gradient-check rows of the families random, conv, pool, norm and loss, and
// whole small models whose gradients cross many rules at once.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/graph_builder.h"
#include "tests/ops/gradients/rows.h"

namespace sequent::testing {
namespace {

TensorType F64(Shape shape) { return {DType::kF64, std::move(shape)}; }

Operand Diff(Shape shape, std::function<void(Tensor&)> fill = nullptr) {
  return {F64(std::move(shape)), true, std::move(fill)};
}

Operand Data(TensorType type, std::function<void(Tensor&)> fill) {
  return {std::move(type), false, std::move(fill)};
}

// Every element distinct, at least 2 / n apart, in a scrambled order: pooling
// windows then have a unique maximum far from ties (37 is prime and no test
// tensor has 37k elements).
std::function<void(Tensor&)> DistinctFill() {
  return [](Tensor& t) {
    const int64_t n = t.num_elements();
    for (int64_t i = 0; i < n; ++i) {
      t.SetFromDouble(
          i,
          2.0 * static_cast<double>((i * 37) % n) / static_cast<double>(n) - 1);
    }
  };
}

GradientCase Row(std::string name, std::string op,
                 std::vector<Operand> operands, Attributes attrs = {}) {
  GradientCase c;
  c.name = std::move(name);
  c.op = std::move(op);
  c.operands = std::move(operands);
  c.attrs = std::move(attrs);
  return c;
}

void RandomRows(std::vector<GradientCase>& rows) {
  rows.push_back(Row("dropout", "dropout", {Diff({3, 4})},
                     {{"rate", 0.5}, {"seed", int64_t{7}}}));
  rows.push_back(
      Row("dropout_step", "dropout",
          {Diff({2, 5}), Data({DType::kI64, Shape{}}, IntegerFill(3, 4, 1))},
          {{"rate", 0.3}, {"seed", int64_t{11}}}));
}

void ConvRows(std::vector<GradientCase>& rows) {
  rows.push_back(
      Row("conv2d_valid", "conv2d", {Diff({2, 5, 5, 2}), Diff({3, 3, 2, 3})}));
  rows.push_back(Row("conv2d_same_stride2", "conv2d",
                     {Diff({2, 5, 5, 2}), Diff({3, 3, 2, 3})},
                     {{"padding", std::string("same")},
                      {"strides", std::vector<int64_t>{2, 2}}}));
  rows.push_back(Row("conv2d_valid_stride2", "conv2d",
                     {Diff({2, 5, 5, 2}), Diff({3, 3, 2, 3})},
                     {{"strides", std::vector<int64_t>{2, 2}}}));
  rows.push_back(Row("conv2d_same_dilated", "conv2d",
                     {Diff({1, 5, 6, 2}), Diff({2, 3, 2, 2})},
                     {{"padding", std::string("same")},
                      {"dilations", std::vector<int64_t>{2, 1}},
                      {"strides", std::vector<int64_t>{1, 2}}}));
}

void PoolRows(std::vector<GradientCase>& rows) {
  rows.push_back(
      Row("max_pool2d", "max_pool2d", {Diff({2, 4, 4, 3}, DistinctFill())}));
  rows.push_back(Row("max_pool2d_same_overlapping", "max_pool2d",
                     {Diff({1, 5, 5, 2}, DistinctFill())},
                     {{"pool_size", std::vector<int64_t>{3, 3}},
                      {"strides", std::vector<int64_t>{2, 2}},
                      {"padding", std::string("same")}}));
  rows.push_back(Row("avg_pool2d", "avg_pool2d", {Diff({2, 4, 4, 3})}));
  rows.push_back(Row("avg_pool2d_same_overlapping", "avg_pool2d",
                     {Diff({1, 5, 5, 2})},
                     {{"pool_size", std::vector<int64_t>{3, 3}},
                      {"strides", std::vector<int64_t>{2, 2}},
                      {"padding", std::string("same")}}));
  rows.push_back(
      Row("global_avg_pool2d", "global_avg_pool2d", {Diff({2, 3, 4, 3})}));
}

std::vector<Operand> BatchNormOperands(Shape x, int64_t c) {
  return {Diff(std::move(x)), Diff({c}), Diff({c}),
          Data(F64({c}), UniformFill(-0.5, 0.5, 3)),
          Data(F64({c}), UniformFill(0.5, 1.5, 4))};
}

void NormRows(std::vector<GradientCase>& rows) {
  rows.push_back(Row("batch_norm_training", "batch_norm",
                     BatchNormOperands({6, 3}, 3), {{"training", true}}));
  rows.push_back(Row("batch_norm_training_nhwc", "batch_norm",
                     BatchNormOperands({2, 3, 3, 2}, 2), {{"training", true}}));
  rows.push_back(Row("batch_norm_inference", "batch_norm",
                     BatchNormOperands({4, 3}, 3), {{"training", false}}));
  rows.push_back(
      Row("layer_norm", "layer_norm", {Diff({3, 5}), Diff({5}), Diff({5})}));
  rows.push_back(Row("layer_norm_rank3", "layer_norm",
                     {Diff({2, 3, 4}), Diff({4}), Diff({4})},
                     {{"epsilon", 0.01}}));
}

// (y_true, y_pred[, sample_weight]) with y_pred the only differentiable
// operand.
GradientCase LossRow(std::string name, std::string op, Operand y_true,
                     std::function<void(Tensor&)> pred_fill,
                     Attributes attrs = {},
                     std::vector<int64_t> weight_shape = {},
                     bool weighted = false) {
  Shape pred_shape = y_true.type.shape;
  if (op == "sparse_categorical_crossentropy")
    pred_shape = Shape{y_true.type.shape[0], 4};
  std::vector<Operand> operands = {std::move(y_true),
                                   Diff(pred_shape, std::move(pred_fill))};
  if (weighted)
    operands.push_back(Data(F64(Shape(weight_shape)), UniformFill(0.2, 2, 9)));
  return Row(std::move(name), std::move(op), std::move(operands),
             std::move(attrs));
}

void LossRows(std::vector<GradientCase>& rows) {
  const TensorType labels = F64({4, 3});
  rows.push_back(
      LossRow("mse", "mse", Data(labels, UniformFill(-1, 1, 5)), nullptr));
  rows.push_back(LossRow("mse_weighted", "mse",
                         Data(labels, UniformFill(-1, 1, 5)), nullptr, {}, {4},
                         true));
  rows.push_back(LossRow("mse_rank3_weighted", "mse",
                         Data(F64({2, 3, 4}), UniformFill(-1, 1, 5)), nullptr,
                         {}, {2, 1}, true));
  rows.push_back(LossRow("mse_rank1_scalar_weight", "mse",
                         Data(F64({5}), UniformFill(-1, 1, 5)), nullptr, {}, {},
                         true));
  // |y_pred - y_true| >= 0.1 keeps mae and huber away from their kinks.
  rows.push_back(LossRow("mae", "mae", Data(labels, UniformFill(-0.4, 0.4, 6)),
                         AwayFromZeroFill(-1, 1, 0.5, 7)));
  rows.push_back(LossRow("huber", "huber",
                         Data(labels, UniformFill(-0.4, 0.4, 6)),
                         AwayFromZeroFill(-2.5, 2.5, 0.5, 7)));
  rows.push_back(LossRow(
      "huber_delta_weighted", "huber", Data(labels, UniformFill(-0.4, 0.4, 6)),
      AwayFromZeroFill(-2.5, 2.5, 0.5, 7), {{"delta", 0.7}}, {4, 1}, true));
  rows.push_back(LossRow("binary_crossentropy", "binary_crossentropy",
                         Data(labels, UniformFill(0, 1, 8)),
                         UniformFill(0.05, 0.95, 9)));
  rows.push_back(LossRow("binary_crossentropy_smoothing", "binary_crossentropy",
                         Data(labels, IntegerFill(0, 2, 8)),
                         UniformFill(0.05, 0.95, 9),
                         {{"label_smoothing", 0.2}}));
  rows.push_back(
      LossRow("binary_crossentropy_from_logits", "binary_crossentropy",
              Data(labels, UniformFill(0, 1, 8)), UniformFill(-3, 3, 9),
              {{"from_logits", true}}, {4}, true));
  rows.push_back(LossRow("categorical_crossentropy", "categorical_crossentropy",
                         Data(labels, ProbabilityFill(10)),
                         UniformFill(0.1, 1, 11)));
  rows.push_back(LossRow("categorical_crossentropy_smoothing_weighted",
                         "categorical_crossentropy",
                         Data(labels, ProbabilityFill(10)), ProbabilityFill(11),
                         {{"label_smoothing", 0.1}}, {4}, true));
  rows.push_back(LossRow(
      "categorical_crossentropy_from_logits", "categorical_crossentropy",
      Data(labels, ProbabilityFill(10)), UniformFill(-3, 3, 11),
      {{"from_logits", true}, {"label_smoothing", 0.1}}));
  rows.push_back(LossRow("sparse_categorical_crossentropy",
                         "sparse_categorical_crossentropy",
                         Data({DType::kI64, Shape{4}}, IntegerFill(0, 4, 12)),
                         UniformFill(0.1, 1, 13)));
  rows.push_back(
      LossRow("sparse_categorical_crossentropy_from_logits",
              "sparse_categorical_crossentropy",
              Data({DType::kI32, Shape{4, 1}}, IntegerFill(0, 4, 12)),
              UniformFill(-3, 3, 13), {{"from_logits", true}}));
  rows.push_back(LossRow("sparse_categorical_crossentropy_weighted",
                         "sparse_categorical_crossentropy",
                         Data({DType::kI64, Shape{4}}, IntegerFill(0, 4, 12)),
                         UniformFill(0.1, 1, 13), {}, {4}, true));
}

// x[4,6] -> dense(relu) -> dense -> sparse categorical crossentropy from
// logits.
GradientCase MlpModel() {
  GradientCase c;
  c.name = "model_mlp";
  c.op = "model_mlp";
  c.operands = {Diff({4, 6}),
                Diff({6, 5}),
                Diff({5}, UniformFill(-0.1, 0.1, 21)),
                Diff({5, 3}),
                Diff({3}),
                Data({DType::kI64, Shape{4}}, IntegerFill(0, 3, 22))};
  c.tolerance = 1e-5;
  c.build = [](GraphBuilder& b, const std::vector<ValueId>& in) {
    const ValueId hidden = b.Op("dense", {in[0], in[1], in[2]},
                                {{"activation", std::string("relu")}});
    const ValueId logits = b.Op("dense", {hidden, in[3], in[4]});
    return b.Op("sparse_categorical_crossentropy", {in[5], logits},
                {{"from_logits", true}});
  };
  return c;
}

// conv2d + bias_add + relu + max_pool2d + batch_norm(training) + flatten +
// matmul + softmax
// + categorical crossentropy.
GradientCase ConvModel() {
  GradientCase c;
  c.name = "model_conv";
  c.op = "model_conv";
  c.operands = {Diff({2, 6, 6, 2}, DistinctFill()),
                Diff({3, 3, 2, 3}),
                Diff({3}, UniformFill(0.1, 0.3, 31)),
                Diff({3}, UniformFill(0.5, 1.5, 32)),
                Diff({3}),
                Data(F64({3}), UniformFill(-0.5, 0.5, 33)),
                Data(F64({3}), UniformFill(0.5, 1.5, 34)),
                Diff({12, 4}),
                Data(F64({2, 4}), ProbabilityFill(35))};
  c.tolerance = 1e-5;
  c.build = [](GraphBuilder& b, const std::vector<ValueId>& in) {
    ValueId h = b.Op("conv2d", {in[0], in[1]});  // [2,4,4,3]
    h = b.Op("relu", {b.Op("bias_add", {h, in[2]})});
    h = b.Op("max_pool2d", {h});  // [2,2,2,3]
    const std::vector<ValueId> bn = b.OpMulti(
        "batch_norm", {h, in[3], in[4], in[5], in[6]}, {{"training", true}});
    h = bn.empty() ? kNoValue : bn[0];
    h = b.Op("flatten", {h});  // [2,12]
    const ValueId probs = b.Op("softmax", {b.Op("matmul", {h, in[7]})});
    return b.Op("categorical_crossentropy", {in[8], probs});
  };
  return c;
}

}  // namespace

std::vector<GradientCase> GradientRowsB() {
  std::vector<GradientCase> rows;
  RandomRows(rows);
  ConvRows(rows);
  PoolRows(rows);
  NormRows(rows);
  LossRows(rows);
  rows.push_back(MlpModel());
  rows.push_back(ConvModel());
  return rows;
}

}  // namespace sequent::testing
