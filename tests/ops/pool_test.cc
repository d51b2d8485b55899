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

using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

constexpr int64_t N = Shape::kBatch;

OpRegistry MakeRegistry() {
  OpRegistry registry;
  EXPECT_TRUE(registry.Register(Make_max_pool2d_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_avg_pool2d_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_global_avg_pool2d_Op()).ok());
  return registry;
}

absl::StatusOr<std::vector<TensorType>> Infer(const std::string& op,
                                              TensorType x, Attributes attrs) {
  return MakeRegistry().InferTypes(op, {x}, attrs);
}

// Infers the output type (filling defaults), allocates it and runs the
// reference kernel.
absl::StatusOr<Tensor> RunOp(const std::string& op, const Tensor& x,
                             Attributes attrs) {
  OpRegistry registry = MakeRegistry();
  std::vector<TensorType> types = {x.type()};
  auto out_types = registry.InferTypes(op, types, attrs);
  if (!out_types.ok()) return out_types.status();
  Tensor out((*out_types)[0]);
  std::vector<const Tensor*> in = {&x};
  std::vector<Tensor*> outs = {&out};
  absl::Status status = registry.Find(op)->reference(in, attrs, outs);
  if (!status.ok()) return status;
  return out;
}

TEST(Pool2DShapeTest, GoodShapes) {
  for (const char* op : {"max_pool2d", "avg_pool2d"}) {
    auto t = Infer(op, {DType::kF32, Shape{N, 28, 28, 8}}, {});
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)[0].ToString(), "f32[N,14,14,8]");
    // Odd sizes: valid drops the remainder, same rounds up.
    t = Infer(op, {DType::kF32, Shape{N, 5, 7, 2}},
              {{"pool_size", std::vector<int64_t>{3, 3}},
               {"strides", std::vector<int64_t>{2, 2}}});
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)[0].ToString(), "f32[N,2,3,2]");
    t = Infer(op, {DType::kF64, Shape{N, 5, 7, 2}},
              {{"pool_size", std::vector<int64_t>{3, 3}},
               {"strides", std::vector<int64_t>{2, 2}},
               {"padding", std::string("same")}});
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)[0].ToString(), "f64[N,3,4,2]");
  }
  auto t = Infer("global_avg_pool2d", {DType::kF32, Shape{N, 7, 7, 64}}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,64]");
}

TEST(Pool2DShapeTest, Errors) {
  auto t = Infer("max_pool2d", {DType::kF32, Shape{N, 1, 8, 3}}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[max_pool2d] pool_size [2, 2] is larger than the "
                        "input f32[N,1,8,3]"));

  t = Infer("avg_pool2d", {DType::kF32, Shape{N, 8, 8, 3}},
            {{"padding", std::string("SAME")}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      t.status().message(),
      HasSubstr(
          "[avg_pool2d] padding must be \"valid\" or \"same\", got \"SAME\""));

  t = Infer("avg_pool2d", {DType::kF32, Shape{N, 8, 8, 3}},
            {{"strides", std::vector<int64_t>{1, 1, 1}}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("strides must be empty or two positive integers"));

  t = Infer("global_avg_pool2d", {DType::kF32, Shape{N, 64}}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      t.status().message(),
      HasSubstr(
          "[global_avg_pool2d] x (NHWC) must have rank 4, got f32[N,64]"));
}

// A single-channel 4x4 image:
//   1 5 2 0
//   3 4 8 1
//   9 2 6 7
//   0 1 3 5
Tensor X4x4() {
  return Tensor::FromVector<float>(
      {1, 5, 2, 0, 3, 4, 8, 1, 9, 2, 6, 7, 0, 1, 3, 5}, Shape{1, 4, 4, 1});
}

TEST(Pool2DKernelTest, MaxValid) {
  auto y = RunOp("max_pool2d", X4x4(), {});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 2, 2, 1}));
  EXPECT_THAT(y->ToVector<float>(), ElementsAreArray({5.f, 8.f, 9.f, 7.f}));
}

TEST(Pool2DKernelTest, AvgValid) {
  auto y = RunOp("avg_pool2d", X4x4(), {});
  ASSERT_TRUE(y.ok()) << y.status();
  // (1+5+3+4)/4, (2+0+8+1)/4, (9+2+0+1)/4, (6+7+3+5)/4.
  EXPECT_THAT(y->ToVector<float>(),
              ElementsAreArray({3.25f, 2.75f, 3.f, 5.25f}));
}

TEST(Pool2DKernelTest, SameIgnoresPadding) {
  // 3x3 windows with stride 2: out = ceil(4/2) = 2, one row/column of padding
  // at the end.
  Attributes attrs = {{"pool_size", std::vector<int64_t>{3, 3}},
                      {"strides", std::vector<int64_t>{2, 2}},
                      {"padding", std::string("same")}};
  auto y = RunOp("max_pool2d", X4x4(), attrs);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 2, 2, 1}));
  EXPECT_THAT(y->ToVector<float>(), ElementsAreArray({9.f, 8.f, 9.f, 7.f}));

  // Averages over the in-bounds elements only: 40/9, 24/6, 21/6, 21/4.
  y = RunOp("avg_pool2d", X4x4(), attrs);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_THAT(y->ToVector<float>(),
              Pointwise(FloatNear(1e-6),
                        std::vector<float>{40.f / 9, 4.f, 3.5f, 5.25f}));
}

TEST(Pool2DKernelTest, MaxOfNegativesAndChannelsF64) {
  // Two channels interleaved (NHWC); all-negative values catch a max that
  // starts at 0.
  Tensor x = Tensor::FromVector<double>({-1, 10, -2, 20, -3, 30, -4, 40},
                                        Shape{1, 2, 2, 2});
  auto y = RunOp("max_pool2d", x, {});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 1, 1, 2}));
  EXPECT_THAT(y->ToVector<double>(), ElementsAreArray({-1., 40.}));
}

TEST(Pool2DKernelTest, GlobalAverage) {
  // Batch of 2, 2x2 pixels, 2 channels: channel 0 holds 1..4 (then 5..8),
  // channel 1 ten times.
  Tensor x = Tensor::FromVector<float>(
      {1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60, 7, 70, 8, 80},
      Shape{2, 2, 2, 2});
  auto y = RunOp("global_avg_pool2d", x, {});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{2, 2}));
  EXPECT_THAT(y->ToVector<float>(), ElementsAreArray({2.5f, 25.f, 6.5f, 65.f}));
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
  EXPECT_TRUE(registry.Register(Make_max_pool2d_grad_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_avg_pool2d_grad_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_global_avg_pool2d_grad_Op()).ok());
  return registry;
}

TEST(Pool2DGradShapeTest, GoodShapes) {
  OpRegistry registry = BackwardRegistry();
  Attributes attrs;
  const TensorType y{DType::kF32, Shape{N, 2, 2, 3}};
  auto t = registry.InferTypes("max_pool2d_grad",
                               {{DType::kF32, Shape{N, 4, 4, 3}}, y, y}, attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,4,4,3]");

  attrs = {{"input_shape", std::vector<int64_t>{-1, 5, 5, 3}},
           {"padding", std::string("same")}};
  t = registry.InferTypes("avg_pool2d_grad", {{DType::kF64, Shape{N, 3, 3, 3}}},
                          attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f64[N,5,5,3]");

  attrs = {{"input_shape", std::vector<int64_t>{-1, 7, 6, 3}}};
  t = registry.InferTypes("global_avg_pool2d_grad",
                          {{DType::kF32, Shape{8, 3}}}, attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[8,7,6,3]");
}

TEST(Pool2DGradShapeTest, Errors) {
  OpRegistry registry = BackwardRegistry();
  Attributes attrs;
  const TensorType y{DType::kF32, Shape{N, 2, 2, 3}};
  auto t = registry.InferTypes(
      "max_pool2d_grad",
      {{DType::kF32, Shape{N, 4, 4, 3}}, y, {DType::kF32, Shape{N, 2, 3, 3}}},
      attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[max_pool2d_grad] dy must be f32[N,2,2,3] to match "
                        "the max_pool2d output of x, got f32[N,2,3,3]"));

  attrs = {{"input_shape", std::vector<int64_t>{-1, 5, 5, 3}}};
  t = registry.InferTypes("avg_pool2d_grad", {{DType::kF32, Shape{N, 3, 3, 3}}},
                          attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[avg_pool2d_grad] dy must be f32[N,2,2,3]"));

  attrs = {{"input_shape", std::vector<int64_t>{-1, 0, 5, 3}}};
  t = registry.InferTypes("avg_pool2d_grad", {{DType::kF32, Shape{N, 3, 3, 3}}},
                          attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("input_shape must be 4 positive integers"));

  attrs = {{"input_shape", std::vector<int64_t>{-1, 7, 6, 4}}};
  t = registry.InferTypes("global_avg_pool2d_grad",
                          {{DType::kF32, Shape{N, 3}}}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[global_avg_pool2d_grad] dy f32[N,3] must have 4 "
                        "channels to match input_shape [N,7,6,4]"));
}

TEST(Pool2DGradKernelTest, MaxGoesToTheFirstMaximum) {
  OpRegistry registry = BackwardRegistry();
  // Windows {1, 5, 3, 0} (maximum 5) and {2, 2, 2, 1}: a tie, the first 2
  // (row-major) takes the gradient.
  const Tensor x =
      Tensor::FromVector<float>({1, 5, 2, 2, 3, 0, 2, 1}, Shape{1, 2, 4, 1});
  const Tensor y = Tensor::FromVector<float>({5, 2}, Shape{1, 1, 2, 1});
  const Tensor dy = Tensor::FromVector<float>({10, 20}, Shape{1, 1, 2, 1});
  auto dx = RunBackward(registry, "max_pool2d_grad", {&x, &y, &dy}, {});
  ASSERT_TRUE(dx.ok()) << dx.status();
  EXPECT_THAT((*dx)[0].ToVector<float>(),
              ElementsAreArray({0.f, 10.f, 20.f, 0.f, 0.f, 0.f, 0.f, 0.f}));

  // Overlapping windows accumulate: 3x3 windows with stride 1 over a 3x4
  // input; the 9 sits in both windows.
  const Tensor x2 = Tensor::FromVector<double>(
      {0, 1, 2, 0, 3, 9, 4, 0, 5, 6, 7, 8}, Shape{1, 3, 4, 1});
  const Tensor y2 = Tensor::FromVector<double>({9, 9}, Shape{1, 1, 2, 1});
  const Tensor dy2 = Tensor::FromVector<double>({1, 2}, Shape{1, 1, 2, 1});
  dx = RunBackward(registry, "max_pool2d_grad", {&x2, &y2, &dy2},
                   {{"pool_size", std::vector<int64_t>{3, 3}},
                    {"strides", std::vector<int64_t>{1, 1}}});
  ASSERT_TRUE(dx.ok()) << dx.status();
  EXPECT_THAT(
      (*dx)[0].ToVector<double>(),
      ElementsAreArray({0., 0., 0., 0., 0., 3., 0., 0., 0., 0., 0., 0.}));
}

TEST(Pool2DGradKernelTest, AverageSharesAmongInBoundsElements) {
  OpRegistry registry = BackwardRegistry();
  const Tensor dy = Tensor::FromVector<float>({4, 8}, Shape{1, 1, 2, 1});
  auto dx = RunBackward(registry, "avg_pool2d_grad", {&dy},
                        {{"input_shape", std::vector<int64_t>{-1, 2, 4, 1}}});
  ASSERT_TRUE(dx.ok()) << dx.status();
  EXPECT_THAT((*dx)[0].ToVector<float>(),
              ElementsAreArray({1.f, 1.f, 2.f, 2.f, 1.f, 1.f, 2.f, 2.f}));

  // "same" on 3x3 with 2x2 windows, stride 2: the windows hold 4, 2, 2 and 1
  // in-bounds elements, each dividing its gradient by that count.
  const Tensor dy2 =
      Tensor::FromVector<double>({4, 4, 4, 4}, Shape{1, 2, 2, 1});
  dx = RunBackward(registry, "avg_pool2d_grad", {&dy2},
                   {{"input_shape", std::vector<int64_t>{-1, 3, 3, 1}},
                    {"padding", std::string("same")}});
  ASSERT_TRUE(dx.ok()) << dx.status();
  EXPECT_THAT((*dx)[0].ToVector<double>(),
              ElementsAreArray({1., 1., 2., 1., 1., 2., 2., 2., 4.}));
}

TEST(Pool2DGradKernelTest, GlobalAverage) {
  OpRegistry registry = BackwardRegistry();
  const Tensor dy = Tensor::FromVector<float>({4, 8}, Shape{1, 2});
  auto dx = RunBackward(registry, "global_avg_pool2d_grad", {&dy},
                        {{"input_shape", std::vector<int64_t>{-1, 2, 2, 2}}});
  ASSERT_TRUE(dx.ok()) << dx.status();
  EXPECT_THAT((*dx)[0].ToVector<float>(),
              ElementsAreArray({1.f, 2.f, 1.f, 2.f, 1.f, 2.f, 1.f, 2.f}));
}

// avg_pool2d_grad is the adjoint of avg_pool2d.
TEST(Pool2DGradKernelTest, AverageIsTheAdjoint) {
  OpRegistry registry = BackwardRegistry();
  const Attributes attrs = {{"pool_size", std::vector<int64_t>{3, 2}},
                            {"strides", std::vector<int64_t>{2, 1}},
                            {"padding", std::string("same")}};
  const Tensor x = Pattern(Shape{2, 5, 4, 3}, 1);
  auto y = RunBackward(registry, "avg_pool2d", {&x}, attrs);
  ASSERT_TRUE(y.ok()) << y.status();
  const Tensor dy = Pattern((*y)[0].shape(), 2);
  Attributes grad_attrs = attrs;
  grad_attrs["input_shape"] = std::vector<int64_t>{-1, 5, 4, 3};
  auto dx = RunBackward(registry, "avg_pool2d_grad", {&dy}, grad_attrs);
  ASSERT_TRUE(dx.ok()) << dx.status();
  EXPECT_NEAR(Dot(x, (*dx)[0]), Dot((*y)[0], dy), 1e-12);
}

}  // namespace
}  // namespace sequent::ops
