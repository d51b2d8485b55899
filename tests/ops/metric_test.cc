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
  EXPECT_TRUE(registry.Register(Make_sparse_categorical_accuracy_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_categorical_accuracy_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_binary_accuracy_Op()).ok());
  return registry;
}

absl::StatusOr<std::vector<TensorType>> Infer(const std::string& op,
                                              std::vector<TensorType> inputs,
                                              Attributes attrs) {
  return MakeRegistry().InferTypes(op, inputs, attrs);
}

// Infers the output type (filling defaults), allocates it and runs the
// reference kernel.
float RunScalar(const std::string& op, const std::vector<Tensor>& inputs,
                Attributes attrs = {}) {
  OpRegistry registry = MakeRegistry();
  std::vector<TensorType> types;
  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) {
    types.push_back(t.type());
    in.push_back(&t);
  }
  auto out_types = registry.InferTypes(op, types, attrs);
  EXPECT_TRUE(out_types.ok()) << out_types.status();
  if (!out_types.ok()) return -1;
  Tensor out((*out_types)[0]);
  std::vector<Tensor*> outs = {&out};
  absl::Status status = registry.Find(op)->reference(in, attrs, outs);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(out.type().ToString(), "f32[]");
  return out.data<float>()[0];
}

TensorType F32(Shape shape) { return {DType::kF32, std::move(shape)}; }

TEST(MetricShapeTest, GoodShapes) {
  auto t = Infer("sparse_categorical_accuracy",
                 {TensorType{DType::kI64, Shape{N}},
                  TensorType{DType::kF64, Shape{N, 10}}},
                 {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[]");
  EXPECT_TRUE(
      Infer("sparse_categorical_accuracy", {F32({N, 1}), F32({N, 10})}, {})
          .ok());
  t = Infer("categorical_accuracy", {F32({N, 10}), F32({N, 10})}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[]");
  t = Infer("binary_accuracy", {F32({N, 1}), F32({N, 1})}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[]");
}

TEST(MetricShapeTest, Errors) {
  auto t =
      Infer("sparse_categorical_accuracy", {F32({N, 10}), F32({N, 10})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      t.status().message(),
      HasSubstr(
          "[sparse_categorical_accuracy] y_true f32[N,10] must have shape [N] "
          "or "
          "[N,1] (one class index per sample) to match y_pred f32[N,10]"));
  t = Infer("categorical_accuracy", {F32({N, 10}), F32({N, 5})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[categorical_accuracy] y_true f32[N,10] and y_pred "
                        "f32[N,5] must have "
                        "the same shape"));
  t = Infer("binary_accuracy", {F32({N, 1}), F32({N})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("y_true f32[N,1] and y_pred f32[N]"));
  t = Infer("categorical_accuracy", {F32({N}), F32({N})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("y_pred must have rank >= 2, got f32[N]"));
}

// Four samples over 3 classes; the last row ties between classes 0 and 2
// (argmax picks 0).
Tensor Pred() {
  return Tensor::FromVector<float>({0.1f, 0.7f, 0.2f,  //
                                    0.5f, 0.3f, 0.2f,  //
                                    0.2f, 0.2f, 0.6f,  //
                                    0.4f, 0.2f, 0.4f},
                                   Shape{4, 3});
}

TEST(MetricKernelTest, SparseCategoricalAccuracy) {
  // argmax = [1, 0, 2, 0]; labels [1, 2, 2, 0] match 3 of 4.
  EXPECT_FLOAT_EQ(
      RunScalar("sparse_categorical_accuracy",
                {Tensor::FromVector<int32_t>({1, 2, 2, 0}, Shape{4}), Pred()}),
      0.75f);
  // Label 2 on the tied row is wrong: the first maximal index wins.
  EXPECT_FLOAT_EQ(
      RunScalar("sparse_categorical_accuracy",
                {Tensor::FromVector<float>({1, 0, 2, 2}, Shape{4, 1}), Pred()}),
      0.75f);
  EXPECT_FLOAT_EQ(
      RunScalar("sparse_categorical_accuracy",
                {Tensor::FromVector<int64_t>({0, 1, 0, 2}, Shape{4}),
                 Pred().CastTo(DType::kF64)}),
      0.0f);
}

TEST(MetricKernelTest, CategoricalAccuracy) {
  // One-hot [1, 0, 0, 2]: matches rows 1 (class 0) and 3 (tie -> 0) only... row
  // 4 true class 2.
  Tensor y_true = Tensor::FromVector<float>({0, 1, 0,  //
                                             1, 0, 0,  //
                                             1, 0, 0,  //
                                             0, 0, 1},
                                            Shape{4, 3});
  // argmax(y_pred) = [1, 0, 2, 0], argmax(y_true) = [1, 0, 0, 2]: 2 of 4.
  EXPECT_FLOAT_EQ(RunScalar("categorical_accuracy", {y_true, Pred()}), 0.5f);
}

TEST(MetricKernelTest, BinaryAccuracy) {
  Tensor y_true = Tensor::FromVector<float>({1, 0, 1, 0, 1}, Shape{5, 1});
  // > 0.5 -> [1, 0, 0, 1, 1]; 0.5 itself is not above the threshold. Matches 3
  // of 5.
  Tensor y_pred =
      Tensor::FromVector<float>({0.9f, 0.2f, 0.5f, 0.6f, 0.51f}, Shape{5, 1});
  EXPECT_FLOAT_EQ(RunScalar("binary_accuracy", {y_true, y_pred}), 0.6f);
  // threshold 0.55 -> [1, 0, 0, 1, 0]: matches 2 of 5.
  EXPECT_FLOAT_EQ(
      RunScalar("binary_accuracy", {y_true, y_pred}, {{"threshold", 0.55}}),
      0.4f);
  // Fraction over all elements of a [2, 2] batch: 3 of 4.
  EXPECT_FLOAT_EQ(
      RunScalar(
          "binary_accuracy",
          {Tensor::FromVector<int32_t>({1, 1, 0, 0}, Shape{2, 2}),
           Tensor::FromVector<double>({0.7, 0.1, 0.2, 0.3}, Shape{2, 2})}),
      0.75f);
}

}  // namespace
}  // namespace sequent::ops
