#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/op_registry.h"
#include "core/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ops/op_defs.h"

namespace sequent::ops {
namespace {

using ::testing::HasSubstr;

constexpr int64_t N = Shape::kBatch;

OpRegistry MakeRegistry() {
  OpRegistry registry;
  for (OpDef def :
       {Make_mse_Op(), Make_mae_Op(), Make_huber_Op(),
        Make_binary_crossentropy_Op(), Make_categorical_crossentropy_Op(),
        Make_sparse_categorical_crossentropy_Op()}) {
    EXPECT_TRUE(registry.Register(std::move(def)).ok());
  }
  return registry;
}

absl::StatusOr<std::vector<TensorType>> Infer(const std::string& op,
                                              std::vector<TensorType> inputs,
                                              Attributes attrs) {
  return MakeRegistry().InferTypes(op, inputs, attrs);
}

// Infers the output type (filling defaults), allocates it and runs the
// reference kernel.
absl::StatusOr<Tensor> RunOp(const std::string& op,
                             const std::vector<Tensor>& inputs,
                             Attributes attrs = {}) {
  OpRegistry registry = MakeRegistry();
  std::vector<TensorType> types;
  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) {
    types.push_back(t.type());
    in.push_back(&t);
  }
  auto out_types = registry.InferTypes(op, types, attrs);
  if (!out_types.ok()) return out_types.status();
  Tensor out((*out_types)[0]);
  std::vector<Tensor*> outs = {&out};
  absl::Status status = registry.Find(op)->reference(in, attrs, outs);
  if (!status.ok()) return status;
  return out;
}

double RunScalar(const std::string& op, const std::vector<Tensor>& inputs,
                 Attributes attrs = {}) {
  auto out = RunOp(op, inputs, std::move(attrs));
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return -1;
  EXPECT_TRUE(out->shape().IsScalar());
  return out->GetAsDouble(0);
}

TensorType F32(Shape shape) { return {DType::kF32, std::move(shape)}; }

TEST(LossShapeTest, DenseLossesGiveScalars) {
  for (const char* op : {"mse", "mae", "huber", "binary_crossentropy",
                         "categorical_crossentropy"}) {
    auto t = Infer(op, {F32({N, 10}), F32({N, 10})}, {});
    ASSERT_TRUE(t.ok()) << op << ": " << t.status();
    EXPECT_EQ((*t)[0].ToString(), "f32[]");
    t = Infer(op,
              {F32({N, 10}), TensorType{DType::kF64, Shape{N, 10}}, F32({N})},
              {});
    ASSERT_TRUE(t.ok()) << op << ": " << t.status();
    EXPECT_EQ((*t)[0].ToString(), "f64[]");

    t = Infer(op, {F32({N, 10}), F32({N, 4})}, {});
    ASSERT_FALSE(t.ok());
    EXPECT_THAT(
        t.status().message(),
        HasSubstr(
            std::string("[") + op +
            "] y_true f32[N,10] and y_pred f32[N,4] must have the same shape"));

    t = Infer(op, {F32({N, 10}), F32({N, 10}), F32({N, 10})}, {});
    ASSERT_FALSE(t.ok());
    EXPECT_THAT(
        t.status().message(),
        HasSubstr(
            "sample_weight f32[N,10] must have shape [], [N] or [N,1] to match "
            "y_pred f32[N,10]"));
  }
  // Integer targets are fine for regression losses (Keras casts them).
  EXPECT_TRUE(
      Infer("mse", {TensorType{DType::kI32, Shape{N, 1}}, F32({N, 1})}, {})
          .ok());
  auto t =
      Infer("mse", {F32({N, 1}), TensorType{DType::kI32, Shape{N, 1}}}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("y_pred must be a floating-point tensor"));
  t = Infer("huber", {F32({N, 1}), F32({N, 1})}, {{"delta", 0.0}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[huber] delta must be positive"));
  t = Infer("categorical_crossentropy", {F32({N, 3}), F32({N, 3})},
            {{"label_smoothing", 1.5}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("label_smoothing must be in [0, 1], got 1.5"));
}

TEST(LossShapeTest, SparseLabels) {
  const TensorType labels_i32{DType::kI32, Shape{N}};
  auto t =
      Infer("sparse_categorical_crossentropy", {labels_i32, F32({N, 10})}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[]");
  EXPECT_TRUE(
      Infer("sparse_categorical_crossentropy",
            {TensorType{DType::kI64, Shape{N, 1}}, F32({N, 10}), F32({N})}, {})
          .ok());
  EXPECT_TRUE(
      Infer("sparse_categorical_crossentropy", {F32({N, 1}), F32({N, 10})}, {})
          .ok());

  t = Infer("sparse_categorical_crossentropy",
            {TensorType{DType::kI32, Shape{N, 10}}, F32({N, 10})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      t.status().message(),
      HasSubstr(
          "[sparse_categorical_crossentropy] y_true i32[N,10] must have shape "
          "[N] "
          "or [N,1] (one class index per sample) to match y_pred f32[N,10]"));
}

// Two samples with two outputs each: y_true = [[0, 1], [1, 0]], y_pred = [[.2,
// .6], [.9, 1.5]].
std::vector<Tensor> Regression() {
  return {Tensor::FromVector<float>({0, 1, 1, 0}, Shape{2, 2}),
          Tensor::FromVector<float>({0.2f, 0.6f, 0.9f, 1.5f}, Shape{2, 2})};
}

TEST(LossKernelTest, Mse) {
  // Per sample: (.04 + .16) / 2 = .1 and (.01 + 2.25) / 2 = 1.13; mean .615.
  EXPECT_NEAR(RunScalar("mse", Regression()), 0.615, 1e-6);
  // Weighted [1, 3]: (.1 + 3 * 1.13) / 2 = 1.745 (divided by the batch size,
  // not the weights).
  std::vector<Tensor> inputs = Regression();
  inputs.push_back(Tensor::FromVector<float>({1, 3}, Shape{2}));
  EXPECT_NEAR(RunScalar("mse", inputs), 1.745, 1e-6);
}

TEST(LossKernelTest, Mae) {
  // Per sample: (.2 + .4) / 2 = .3 and (.1 + 1.5) / 2 = .8; mean .55.
  EXPECT_NEAR(RunScalar("mae", Regression()), 0.55, 1e-6);
}

TEST(LossKernelTest, Huber) {
  // Quadratic below delta = 1: .02, .08 -> .05; then .005 and 1.5 - .5 = 1 ->
  // .5025; mean .27625.
  EXPECT_NEAR(RunScalar("huber", Regression()), 0.27625, 1e-6);
  // delta = 2 keeps everything quadratic: half the mse.
  EXPECT_NEAR(RunScalar("huber", Regression(), {{"delta", 2.0}}), 0.3075, 1e-6);
}

TEST(LossKernelTest, BinaryCrossentropy) {
  std::vector<Tensor> probs = {
      Tensor::FromVector<float>({0, 1, 1, 0}, Shape{2, 2}),
      Tensor::FromVector<float>({0.1f, 0.8f, 0.7f, 0.f}, Shape{2, 2})};
  // numpy: p = clip(p, 1e-7, 1 - 1e-7); -(t log p + (1-t)
  // log(1-p)).mean(-1).mean()
  //   per sample [0.16425203, 0.17833752] -> 0.17129478 (the 0 is clipped, no
  //   inf).
  EXPECT_NEAR(RunScalar("binary_crossentropy", probs), 0.17129478, 1e-6);
  // label_smoothing 0.2: t -> t * .8 + .1.
  EXPECT_NEAR(
      RunScalar("binary_crossentropy", probs, {{"label_smoothing", 0.2}}),
      0.68501759, 1e-6);

  // Logits [[-2, 1], [.5, 30]]; numpy: max(x,0) - x t + log1p(exp(-|x|))
  // -> 7.72856667.
  std::vector<Tensor> logits = {
      Tensor::FromVector<double>({0, 1, 1, 0}, Shape{2, 2}),
      Tensor::FromVector<double>({-2, 1, 0.5, 30}, Shape{2, 2}),
      Tensor::FromVector<double>({2, 0.5}, Shape{2, 1})};
  EXPECT_NEAR(RunScalar("binary_crossentropy", {logits[0], logits[1]},
                        {{"from_logits", true}}),
              7.728566670685349, 1e-12);
  EXPECT_NEAR(RunScalar("binary_crossentropy", logits, {{"from_logits", true}}),
              4.0293544723031225, 1e-12);
}

TEST(LossKernelTest, CategoricalCrossentropy) {
  // y_pred rows are rescaled to sum to 1: [.4, 1.4, .2] -> [.2, .7, .1].
  // -log .7 = .35667494, -log .5 = .69314718; mean .52491106.
  std::vector<Tensor> probs = {
      Tensor::FromVector<float>({0, 1, 0, 1, 0, 0}, Shape{2, 3}),
      Tensor::FromVector<float>({0.4f, 1.4f, 0.2f, 0.5f, 0.25f, 0.25f},
                                Shape{2, 3})};
  EXPECT_NEAR(RunScalar("categorical_crossentropy", probs), 0.52491106, 1e-6);
  // label_smoothing .3 over 3 classes: t -> t * .7 + .1; numpy gives .75415944.
  EXPECT_NEAR(
      RunScalar("categorical_crossentropy", probs, {{"label_smoothing", 0.3}}),
      0.75415944, 1e-6);

  // Logits [[1, 2, 3], [0, 0, 0]]: -log_softmax -> [1.40760596, log 3
  // = 1.09861229].
  std::vector<Tensor> logits = {
      probs[0].CastTo(DType::kF64),
      Tensor::FromVector<double>({1, 2, 3, 0, 0, 0}, Shape{2, 3})};
  EXPECT_NEAR(
      RunScalar("categorical_crossentropy", logits, {{"from_logits", true}}),
      1.253109126556245, 1e-12);
}

TEST(LossKernelTest, SparseCategoricalCrossentropy) {
  const Tensor probs = Tensor::FromVector<float>(
      {0.4f, 1.4f, 0.2f, 0.5f, 0.25f, 0.25f}, Shape{2, 3});
  // Same values as the categorical case, for every label encoding.
  for (const Tensor& labels :
       {Tensor::FromVector<int32_t>({1, 0}, Shape{2}),
        Tensor::FromVector<int64_t>({1, 0}, Shape{2, 1}),
        Tensor::FromVector<float>({1, 0}, Shape{2, 1})}) {
    EXPECT_NEAR(RunScalar("sparse_categorical_crossentropy", {labels, probs}),
                0.52491106, 1e-6)
        << labels.type().ToString();
  }
  // Logits with sample weights [1, 3]: (1.40760596 + 3 * 1.09861229) / 2
  // = 2.35172142.
  const Tensor logits =
      Tensor::FromVector<double>({1, 2, 3, 0, 0, 0}, Shape{2, 3});
  EXPECT_NEAR(RunScalar("sparse_categorical_crossentropy",
                        {Tensor::FromVector<int64_t>({1, 0}, Shape{2}), logits,
                         Tensor::FromVector<double>({1, 3}, Shape{2})},
                        {{"from_logits", true}}),
              2.351721415224355, 1e-12);
}

TEST(LossKernelTest, SparseLabelErrors) {
  const Tensor probs(DType::kF32, Shape{4, 10});
  auto out =
      RunOp("sparse_categorical_crossentropy",
            {Tensor::FromVector<int32_t>({0, 1, 2, 12}, Shape{4}), probs});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "[sparse_categorical_crossentropy] label 12 at sample 3 is out of "
            "range for 10 "
            "classes");

  out = RunOp("sparse_categorical_crossentropy",
              {Tensor::FromVector<int64_t>({-1, 1, 2, 3}, Shape{4, 1}), probs});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(),
              HasSubstr("label -1 at sample 0 is out of range"));

  out = RunOp("sparse_categorical_crossentropy",
              {Tensor::FromVector<float>({0, 1.5f, 2, 3}, Shape{4}), probs});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(),
              HasSubstr("label 1.5 at sample 1 is not an integer"));
}

}  // namespace
}  // namespace sequent::ops
