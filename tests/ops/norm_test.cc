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

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

constexpr int64_t N = Shape::kBatch;

OpRegistry MakeRegistry() {
  OpRegistry registry;
  EXPECT_TRUE(registry.Register(Make_batch_norm_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_layer_norm_Op()).ok());
  return registry;
}

absl::StatusOr<std::vector<TensorType>> Infer(const std::string& op,
                                              std::vector<TensorType> inputs,
                                              Attributes attrs) {
  return MakeRegistry().InferTypes(op, inputs, attrs);
}

// Infers output types (filling defaults), allocates the outputs and runs the
// reference kernel.
absl::StatusOr<std::vector<Tensor>> RunOp(const std::string& op,
                                          const std::vector<Tensor>& inputs,
                                          Attributes attrs) {
  OpRegistry registry = MakeRegistry();
  std::vector<TensorType> types;
  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) {
    types.push_back(t.type());
    in.push_back(&t);
  }
  auto out_types = registry.InferTypes(op, types, attrs);
  if (!out_types.ok()) return out_types.status();
  std::vector<Tensor> outputs;
  for (const TensorType& t : *out_types) outputs.emplace_back(t);
  std::vector<Tensor*> out;
  for (Tensor& t : outputs) out.push_back(&t);
  absl::Status status = registry.Find(op)->reference(in, attrs, out);
  if (!status.ok()) return status;
  return outputs;
}

TensorType F32(Shape shape) { return {DType::kF32, std::move(shape)}; }

TEST(BatchNormShapeTest, GoodShapes) {
  auto t = Infer(
      "batch_norm",
      {F32({N, 8, 8, 16}), F32({16}), F32({16}), F32({16}), F32({16})}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 5u);
  EXPECT_EQ((*t)[0].ToString(), "f32[N,8,8,16]");
  for (int i = 1; i < 5; ++i) EXPECT_EQ((*t)[i].ToString(), "f32[16]");
}

TEST(BatchNormShapeTest, Errors) {
  auto t = Infer("batch_norm",
                 {F32({N, 16}), F32({16}), F32({8}), F32({16}), F32({16})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[batch_norm] beta must be f32[16] to match x "
                        "f32[N,16], got f32[8]"));

  t = Infer("batch_norm",
            {F32({16}), F32({16}), F32({16}), F32({16}), F32({16})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("x must have rank >= 2, got f32[16]"));

  t = Infer("batch_norm",
            {F32({N, 4}), F32({4}), F32({4}), F32({4}),
             TensorType{DType::kF64, Shape{4}}},
            {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("moving_var must be f32[4]"));
}

// x is a batch of 4 samples with 2 channels:
//   channel 0: 1, 3, 5, 7   mean 4, biased variance 5
//   channel 1: 2, 4, 6, 12  mean 6, biased variance 14
// gamma = [1, 2], beta = [0, 1], moving_mean = [0, 1], moving_var = [1, 2],
// epsilon 1e-3. Expected values computed with numpy (x.mean(0), x.var(0),
// g*(x-m)/sqrt(v+eps)+b).
std::vector<Tensor> BatchNormInputs() {
  return {Tensor::FromVector<float>({1, 2, 3, 4, 5, 6, 7, 12}, Shape{4, 2}),
          Tensor::FromVector<float>({1, 2}, Shape{2}),
          Tensor::FromVector<float>({0, 1}, Shape{2}),
          Tensor::FromVector<float>({0, 1}, Shape{2}),
          Tensor::FromVector<float>({1, 2}, Shape{2})};
}

TEST(BatchNormKernelTest, Training) {
  auto out = RunOp("batch_norm", BatchNormInputs(), {{"training", true}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(
      (*out)[0].ToVector<float>(),
      Pointwise(FloatNear(1e-5),
                std::vector<float>{-1.34150664f, -1.13801358f, -0.44716888f,
                                   -0.06900679f, 0.44716888f, 1.0f, 1.34150664f,
                                   4.20702037f}));
  // moving * 0.99 + batch * 0.01.
  EXPECT_THAT((*out)[1].ToVector<float>(),
              Pointwise(FloatNear(1e-6), std::vector<float>{0.04f, 1.05f}));
  EXPECT_THAT((*out)[2].ToVector<float>(),
              Pointwise(FloatNear(1e-6), std::vector<float>{1.04f, 2.12f}));
  EXPECT_THAT((*out)[3].ToVector<float>(), ElementsAre(4.f, 6.f));
  EXPECT_THAT(
      (*out)[4].ToVector<float>(),
      Pointwise(FloatNear(1e-6), std::vector<float>{0.44716888f, 0.2672517f}));
}

TEST(BatchNormKernelTest, InferenceUsesMovingStats) {
  std::vector<Tensor> inputs = BatchNormInputs();
  auto out = RunOp("batch_norm", inputs, {});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(
      (*out)[0].ToVector<float>(),
      Pointwise(FloatNear(1e-5),
                std::vector<float>{0.99950037f, 2.41386014f, 2.99850112f,
                                   5.24158042f, 4.99750187f, 8.06930071f,
                                   6.99650262f, 16.55246156f}));
  EXPECT_EQ((*out)[1].ToVector<float>(), inputs[3].ToVector<float>());
  EXPECT_EQ((*out)[2].ToVector<float>(), inputs[4].ToVector<float>());
  EXPECT_EQ((*out)[3].ToVector<float>(), inputs[3].ToVector<float>());
  // 1/sqrt(1.001), 1/sqrt(2.001).
  EXPECT_THAT(
      (*out)[4].ToVector<float>(),
      Pointwise(FloatNear(1e-6), std::vector<float>{0.99950037f, 0.70693007f}));
}

TEST(BatchNormKernelTest, F64AndCustomMomentum) {
  std::vector<Tensor> inputs;
  for (const Tensor& t : BatchNormInputs())
    inputs.push_back(t.CastTo(DType::kF64));
  auto out =
      RunOp("batch_norm", inputs, {{"training", true}, {"momentum", 0.5}});
  ASSERT_TRUE(out.ok()) << out.status();
  // (0 + 4) / 2, (1 + 6) / 2 and (1 + 5) / 2, (2 + 14) / 2.
  EXPECT_THAT((*out)[1].ToVector<double>(),
              Pointwise(DoubleNear(1e-12), {2.0, 3.5}));
  EXPECT_THAT((*out)[2].ToVector<double>(),
              Pointwise(DoubleNear(1e-12), {3.0, 8.0}));
  EXPECT_NEAR((*out)[0].data<double>()[7], 4.20702037, 1e-8);
}

TEST(LayerNormShapeTest, GoodAndBad) {
  auto t = Infer("layer_norm", {F32({N, 10, 64}), F32({64}), F32({64})}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].ToString(), "f32[N,10,64]");
  EXPECT_EQ((*t)[1].ToString(), "f32[N,10]");
  EXPECT_EQ((*t)[2].ToString(), "f32[N,10]");

  t = Infer("layer_norm", {F32({N, 64}), F32({32}), F32({64})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[layer_norm] gamma must be f32[64] to match x "
                        "f32[N,64], got f32[32]"));

  t = Infer("layer_norm", {F32({64, N}), F32({64}), F32({64})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("last (feature) axis of x must be static"));
}

TEST(LayerNormKernelTest, NormalizesRows) {
  // Rows [1,2,3,4] (mean 2.5, variance 1.25) and [2,2,2,6] (mean 3, variance
  // 3); gamma = [1,1,2,2], beta = [0,0,0,1], epsilon 1e-3; expected values from
  // numpy.
  std::vector<Tensor> inputs = {
      Tensor::FromVector<float>({1, 2, 3, 4, 2, 2, 2, 6}, Shape{2, 4}),
      Tensor::FromVector<float>({1, 1, 2, 2}, Shape{4}),
      Tensor::FromVector<float>({0, 0, 0, 1}, Shape{4})};
  auto out = RunOp("layer_norm", inputs, {});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(
      (*out)[0].ToVector<float>(),
      Pointwise(FloatNear(1e-5),
                std::vector<float>{-1.34110445f, -0.44703482f, 0.89406963f,
                                   3.6822089f, -0.57725407f, -0.57725407f,
                                   -1.15450814f, 4.46352441f}));
  EXPECT_THAT((*out)[1].ToVector<float>(), ElementsAreArray({2.5f, 3.f}));
  EXPECT_THAT(
      (*out)[2].ToVector<float>(),
      Pointwise(FloatNear(1e-6), std::vector<float>{0.89406963f, 0.57725407f}));
}

// ---- Backward ops.

// Runs `op` from `registry` on `inputs`: infers and allocates the outputs,
// then calls the reference kernel.
absl::StatusOr<std::vector<Tensor>> RunBackward(
    const OpRegistry& registry, const std::string& op,
    const std::vector<const Tensor*>& inputs, Attributes attrs) {
  std::vector<TensorType> types;
  for (const Tensor* t : inputs) types.push_back(t->type());
  auto out_types = registry.InferTypes(op, types, attrs);
  if (!out_types.ok()) return out_types.status();
  std::vector<Tensor> outputs;
  for (const TensorType& t : *out_types) outputs.emplace_back(t);
  std::vector<Tensor*> out;
  for (Tensor& t : outputs) out.push_back(&t);
  absl::Status status = registry.Find(op)->reference(inputs, attrs, out);
  if (!status.ok()) return status;
  return outputs;
}

// Deterministic values in [-1, 1) for adjoint and finite-difference checks.
Tensor Pattern(Shape shape, int salt) {
  Tensor t(DType::kF64, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.SetFromDouble(i, static_cast<double>((i * 7 + salt * 13) % 17) / 8.5 - 1);
  }
  return t;
}

double Dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    s += a.GetAsDouble(i) * b.GetAsDouble(i);
  }
  return s;
}

OpRegistry BackwardRegistry() {
  OpRegistry registry = MakeRegistry();
  EXPECT_TRUE(registry.Register(Make_batch_norm_grad_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_layer_norm_grad_Op()).ok());
  return registry;
}

TEST(NormGradShapeTest, GoodShapes) {
  OpRegistry registry = BackwardRegistry();
  Attributes attrs;
  const TensorType x = F32({N, 4, 4, 3});
  auto t = registry.InferTypes("batch_norm_grad",
                               {x, x, F32({3}), F32({3}), F32({3})}, attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].ToString(), "f32[N,4,4,3]");
  EXPECT_EQ((*t)[1].ToString(), "f32[3]");
  EXPECT_EQ((*t)[2].ToString(), "f32[3]");
  EXPECT_EQ(std::get<bool>(attrs["training"]), true);

  attrs = {};
  const TensorType x2 = F32({N, 7, 5});
  t = registry.InferTypes("layer_norm_grad",
                          {x2, x2, F32({5}), F32({N, 7}), F32({N, 7})}, attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,7,5]");
  EXPECT_EQ((*t)[1].ToString(), "f32[5]");
}

TEST(NormGradShapeTest, Errors) {
  OpRegistry registry = BackwardRegistry();
  Attributes attrs;
  const TensorType x = F32({N, 3});
  auto t = registry.InferTypes(
      "batch_norm_grad", {F32({N, 4}), x, F32({3}), F32({3}), F32({3})}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[batch_norm_grad] dy f32[N,4] must have the type of "
                        "x f32[N,3]"));

  attrs = {};
  t = registry.InferTypes("batch_norm_grad",
                          {x, x, F32({3}), F32({N}), F32({3})}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("saved_mean must be f32[3] to match x f32[N,3], got "
                        "f32[N]"));

  // layer_norm's statistics are per row, not per feature.
  attrs = {};
  t = registry.InferTypes("layer_norm_grad",
                          {x, x, F32({3}), F32({3}), F32({3})}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[layer_norm_grad] saved_mean must be f32[N] to match "
                        "x f32[N,3], got f32[3]"));

  attrs = {{"epsilon", 0.0}};
  t = registry.InferTypes("layer_norm_grad",
                          {x, x, F32({3}), F32({N}), F32({N})}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("epsilon must be positive"));
}

TEST(NormGradKernelTest, BatchNormInferenceTreatsStatisticsAsConstants) {
  OpRegistry registry = BackwardRegistry();
  // One channel, mean 2, inv_std 0.5: xhat = [-0.5, 0.5], dx = 3 * 0.5 * dy.
  const Tensor dy = Tensor::FromVector<float>({1, 4}, Shape{2, 1});
  const Tensor x = Tensor::FromVector<float>({1, 3}, Shape{2, 1});
  const Tensor gamma = Tensor::FromVector<float>({3}, Shape{1});
  const Tensor mean = Tensor::FromVector<float>({2}, Shape{1});
  const Tensor inv_std = Tensor::FromVector<float>({0.5}, Shape{1});
  auto g =
      RunBackward(registry, "batch_norm_grad",
                  {&dy, &x, &gamma, &mean, &inv_std}, {{"training", false}});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_THAT((*g)[0].ToVector<float>(), ElementsAre(1.5f, 6.f));
  EXPECT_THAT((*g)[1].ToVector<float>(), ElementsAre(1.5f));  // -0.5 + 2
  EXPECT_THAT((*g)[2].ToVector<float>(), ElementsAre(5.f));

  // With batch statistics, two samples normalize to -1 and 1 whatever x is,
  // so x gets no gradient at all.
  const Tensor batch_inv_std = Tensor::FromVector<float>({1}, Shape{1});
  g = RunBackward(registry, "batch_norm_grad",
                  {&dy, &x, &gamma, &mean, &batch_inv_std}, {});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_THAT((*g)[0].ToVector<float>(), ElementsAre(0.f, 0.f));
  EXPECT_THAT((*g)[1].ToVector<float>(), ElementsAre(3.f));  // -1 + 4
}

// The gradient ops against central differences of the forward kernels, for
// L = sum(dy * y) with y the normalized output.
void ExpectMatchesForward(const std::string& op, std::vector<Tensor> inputs,
                          const Attributes& attrs) {
  OpRegistry registry = BackwardRegistry();
  auto run = [&](const std::vector<Tensor>& in) {
    std::vector<const Tensor*> ptrs;
    for (const Tensor& t : in) ptrs.push_back(&t);
    auto out = RunBackward(registry, op, ptrs, attrs);
    EXPECT_TRUE(out.ok()) << out.status();
    return std::move(out).value();
  };
  std::vector<Tensor> forward = run(inputs);
  const Tensor dy = Pattern(inputs[0].shape(), 5);
  const Tensor* saved_mean = &forward[forward.size() - 2];
  const Tensor* saved_inv_std = &forward[forward.size() - 1];
  Attributes grad_attrs = {{"epsilon", FloatAttrOr(attrs, "epsilon", 1e-3)}};
  if (op == "batch_norm") grad_attrs["training"] = true;
  auto grads = RunBackward(
      registry, op + "_grad",
      {&dy, &inputs[0], &inputs[1], saved_mean, saved_inv_std}, grad_attrs);
  ASSERT_TRUE(grads.ok()) << grads.status();
  for (int operand = 0; operand < 3; ++operand) {
    for (int64_t e = 0; e < inputs[operand].num_elements(); ++e) {
      const double original = inputs[operand].GetAsDouble(e);
      const double step = 1e-6;
      inputs[operand].SetFromDouble(e, original + step);
      const double plus = Dot(run(inputs)[0], dy);
      inputs[operand].SetFromDouble(e, original - step);
      const double minus = Dot(run(inputs)[0], dy);
      inputs[operand].SetFromDouble(e, original);
      EXPECT_NEAR((*grads)[operand].GetAsDouble(e), (plus - minus) / (2 * step),
                  1e-6)
          << op << " operand " << operand << " element " << e;
    }
  }
}

TEST(NormGradKernelTest, BatchNormTrainingMatchesForward) {
  Tensor moving_var = Pattern(Shape{3}, 4);
  for (int64_t i = 0; i < 3; ++i) {
    moving_var.SetFromDouble(i, moving_var.GetAsDouble(i) + 2);
  }
  ExpectMatchesForward("batch_norm",
                       {Pattern(Shape{2, 2, 2, 3}, 1), Pattern(Shape{3}, 2),
                        Pattern(Shape{3}, 3), Pattern(Shape{3}, 6), moving_var},
                       {{"training", true}});
}

TEST(NormGradKernelTest, LayerNormMatchesForward) {
  ExpectMatchesForward(
      "layer_norm",
      {Pattern(Shape{2, 3, 5}, 1), Pattern(Shape{5}, 2), Pattern(Shape{5}, 3)},
      {{"epsilon", 0.01}});
}

}  // namespace
}  // namespace sequent::ops
