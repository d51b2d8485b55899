#include <cmath>
#include <vector>

#include "absl/status/statusor.h"
#include "core/op_registry.h"
#include "core/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ops/op_defs.h"
#include "ops/random_hash.h"

namespace sequent::ops {
namespace {

using ::testing::HasSubstr;

OpRegistry MakeRegistry() {
  OpRegistry registry;
  EXPECT_TRUE(registry.Register(Make_dropout_Op()).ok());
  return registry;
}

// Infers output types (filling defaults), allocates the outputs and runs the
// reference kernel.
absl::StatusOr<std::vector<Tensor>> RunOp(const std::vector<Tensor>& inputs,
                                          Attributes attrs) {
  OpRegistry registry = MakeRegistry();
  std::vector<TensorType> types;
  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) {
    types.push_back(t.type());
    in.push_back(&t);
  }
  auto out_types = registry.InferTypes("dropout", types, attrs);
  if (!out_types.ok()) return out_types.status();
  std::vector<Tensor> outputs;
  for (const TensorType& t : *out_types) outputs.emplace_back(t);
  std::vector<Tensor*> out;
  for (Tensor& t : outputs) out.push_back(&t);
  absl::Status status = registry.Find("dropout")->reference(in, attrs, out);
  if (!status.ok()) return status;
  return outputs;
}

Tensor Iota(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = 1.0f + static_cast<float>(i % 7);
  return Tensor::FromVector(v, Shape{n});
}

TEST(DropoutShapeTest, OutputsMatchInput) {
  OpRegistry registry = MakeRegistry();
  Attributes attrs;
  auto types = registry.InferTypes(
      "dropout", {TensorType{DType::kF32, Shape{Shape::kBatch, 16}}}, attrs);
  ASSERT_TRUE(types.ok()) << types.status();
  ASSERT_EQ(types->size(), 2u);
  EXPECT_EQ((*types)[0].ToString(), "f32[N,16]");
  EXPECT_EQ((*types)[1].ToString(), "f32[N,16]");
  EXPECT_EQ(std::get<double>(attrs.at("rate")), 0.5);
  EXPECT_TRUE(registry.Find("dropout")->stateful);

  Attributes with_step;
  EXPECT_TRUE(registry
                  .InferTypes("dropout",
                              {TensorType{DType::kF64, Shape{4}},
                               TensorType{DType::kI64, Shape{}}},
                              with_step)
                  .ok());
}

TEST(DropoutShapeTest, RejectsBadRateAndStep) {
  OpRegistry registry = MakeRegistry();
  Attributes attrs = {{"rate", 1.0}};
  auto types = registry.InferTypes("dropout",
                                   {TensorType{DType::kF32, Shape{4}}}, attrs);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("[dropout] rate must be in [0, 1), got 1"));

  Attributes defaults;
  types = registry.InferTypes(
      "dropout",
      {TensorType{DType::kF32, Shape{4}}, TensorType{DType::kI64, Shape{2}}},
      defaults);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("step must be an integer scalar"));
  EXPECT_THAT(types.status().message(), HasSubstr("i64[2]"));

  Attributes defaults2;
  types = registry.InferTypes("dropout", {TensorType{DType::kI32, Shape{4}}},
                              defaults2);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("x must be a floating-point tensor, got i32[4]"));
}

TEST(DropoutKernelTest, DeterministicForSameSeedAndStep) {
  Tensor x = Iota(1000);
  auto a = RunOp({x, Tensor::Scalar<int64_t>(3)}, {{"seed", int64_t{42}}});
  auto b = RunOp({x, Tensor::Scalar<int64_t>(3)}, {{"seed", int64_t{42}}});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*a)[1].ToVector<float>(), (*b)[1].ToVector<float>());
  EXPECT_EQ((*a)[0].ToVector<float>(), (*b)[0].ToVector<float>());

  // The same step given as i32 is the same stream.
  auto c = RunOp({x, Tensor::Scalar<int32_t>(3)}, {{"seed", int64_t{42}}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*a)[1].ToVector<float>(), (*c)[1].ToVector<float>());
}

TEST(DropoutKernelTest, DifferentStepOrSeedGivesDifferentMask) {
  Tensor x = Iota(1000);
  auto a = RunOp({x, Tensor::Scalar<int64_t>(3)}, {});
  auto b = RunOp({x, Tensor::Scalar<int64_t>(4)}, {});
  auto c = RunOp({x, Tensor::Scalar<int64_t>(3)}, {{"seed", int64_t{1}}});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  int differ_step = 0, differ_seed = 0;
  for (int i = 0; i < 1000; ++i) {
    differ_step += (*a)[1].data<float>()[i] != (*b)[1].data<float>()[i];
    differ_seed += (*a)[1].data<float>()[i] != (*c)[1].data<float>()[i];
  }
  // Independent masks at rate 0.5 disagree on about half the elements.
  EXPECT_GT(differ_step, 400);
  EXPECT_LT(differ_step, 600);
  EXPECT_GT(differ_seed, 400);
  EXPECT_LT(differ_seed, 600);
}

TEST(DropoutKernelTest, KeepFractionAndExactScaling) {
  const int n = 10000;
  Tensor x = Iota(n);
  auto out = RunOp({x}, {{"rate", 0.25}, {"seed", int64_t{7}}});
  ASSERT_TRUE(out.ok()) << out.status();
  auto xs = x.data<float>();
  auto y = (*out)[0].data<float>();
  auto mask = (*out)[1].data<float>();
  const float scale = static_cast<float>(1.0 / 0.75);
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(mask[i] == 0.0f || mask[i] == scale) << i << ": " << mask[i];
    EXPECT_EQ(y[i], xs[i] * mask[i]);
    kept += mask[i] != 0.0f;
    // The mask is exactly the documented hash, so other backends can reproduce
    // it.
    EXPECT_EQ(mask[i] != 0.0f, DropoutUniform(7, 0, i) >= 0.25);
  }
  // Binomial(10000, 0.75): standard deviation ~43, so +-250 is far outside
  // chance.
  EXPECT_NEAR(kept, 7500, 250);
}

TEST(DropoutKernelTest, InferenceAndZeroRateKeepEverything) {
  Tensor x = Iota(100);
  for (const Attributes& attrs :
       {Attributes{{"training", false}},
        Attributes{{"rate", 0.0}, {"training", true}}}) {
    auto out = RunOp({x}, attrs);
    ASSERT_TRUE(out.ok()) << out.status();
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ((*out)[1].data<float>()[i], 1.0f);
      EXPECT_EQ((*out)[0].data<float>()[i], x.data<float>()[i]);
    }
  }
}

TEST(DropoutKernelTest, F64ScalingIsExact) {
  Tensor x =
      Tensor::FromVector<double>(std::vector<double>(64, 2.0), Shape{8, 8});
  auto out = RunOp({x}, {{"rate", 0.5}});
  ASSERT_TRUE(out.ok()) << out.status();
  for (double m : (*out)[1].ToVector<double>())
    EXPECT_TRUE(m == 0.0 || m == 2.0);
  for (double y : (*out)[0].ToVector<double>())
    EXPECT_TRUE(y == 0.0 || y == 4.0);
}

}  // namespace
}  // namespace sequent::ops
