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

}  // namespace
}  // namespace sequent::ops
