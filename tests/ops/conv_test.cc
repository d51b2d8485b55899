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
using ::testing::HasSubstr;

constexpr int64_t N = Shape::kBatch;

OpRegistry MakeRegistry() {
  OpRegistry registry;
  EXPECT_TRUE(registry.Register(Make_conv2d_Op()).ok());
  return registry;
}

absl::StatusOr<std::vector<TensorType>> Infer(std::vector<TensorType> inputs,
                                              Attributes attrs) {
  return MakeRegistry().InferTypes("conv2d", inputs, attrs);
}

// Infers the output type (filling defaults), allocates it and runs the
// reference kernel.
absl::StatusOr<Tensor> RunOp(const std::vector<Tensor>& inputs,
                             Attributes attrs) {
  OpRegistry registry = MakeRegistry();
  std::vector<TensorType> types;
  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) {
    types.push_back(t.type());
    in.push_back(&t);
  }
  auto out_types = registry.InferTypes("conv2d", types, attrs);
  if (!out_types.ok()) return out_types.status();
  Tensor out((*out_types)[0]);
  std::vector<Tensor*> outs = {&out};
  absl::Status status = registry.Find("conv2d")->reference(in, attrs, outs);
  if (!status.ok()) return status;
  return out;
}

TEST(Conv2DShapeTest, ValidAndSame) {
  auto t = Infer(
      {{DType::kF32, Shape{N, 28, 28, 3}}, {DType::kF32, Shape{3, 3, 3, 16}}},
      {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,26,26,16]");

  t = Infer(
      {{DType::kF32, Shape{N, 28, 28, 3}}, {DType::kF32, Shape{3, 3, 3, 16}}},
      {{"padding", std::string("same")},
       {"strides", std::vector<int64_t>{2, 2}}});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,14,14,16]");

  // Dilation 2 makes a 3x3 kernel span 5 pixels: 28 - 5 + 1 = 24; stride 3 over
  // 27 -> 9.
  t = Infer(
      {{DType::kF64, Shape{2, 28, 27, 3}}, {DType::kF64, Shape{3, 1, 3, 4}}},
      {{"dilations", std::vector<int64_t>{2, 1}},
       {"strides", std::vector<int64_t>{1, 3}}});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f64[2,24,9,4]");
}

TEST(Conv2DShapeTest, Errors) {
  auto t = Infer(
      {{DType::kF32, Shape{N, 28, 28, 3}}, {DType::kF32, Shape{3, 3, 4, 16}}},
      {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[conv2d] input channels differ: x f32[N,28,28,3] "
                        "has 3 channels, kernel f32[3,3,4,16] expects 4"));

  t = Infer(
      {{DType::kF32, Shape{N, 28, 28, 3}}, {DType::kF32, Shape{3, 3, 3, 16}}},
      {{"padding", std::string("full")}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("padding must be \"valid\" or \"same\", got \"full\""));

  t = Infer(
      {{DType::kF32, Shape{N, 2, 8, 3}}, {DType::kF32, Shape{3, 3, 3, 16}}},
      {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("kernel f32[3,3,3,16]"));
  EXPECT_THAT(t.status().message(),
              HasSubstr("is larger than the input f32[N,2,8,3]"));

  t = Infer({{DType::kF32, Shape{N, 28, 3}}, {DType::kF32, Shape{3, 3, 3, 16}}},
            {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("x (NHWC) must have rank 4, got f32[N,28,3]"));

  t = Infer(
      {{DType::kF32, Shape{N, 8, 8, 3}}, {DType::kF32, Shape{3, 3, 3, 16}}},
      {{"strides", std::vector<int64_t>{0, 1}}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("strides must be two positive integers"));
}

// x = [[1,2,3],[4,5,6],[7,8,9]], kernel = [[1,2],[3,4]] (one channel in, one
// out).
Tensor X3x3() {
  return Tensor::FromVector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9},
                                   Shape{1, 3, 3, 1});
}
Tensor K2x2() {
  return Tensor::FromVector<float>({1, 2, 3, 4}, Shape{2, 2, 1, 1});
}

TEST(Conv2DKernelTest, Valid) {
  auto y = RunOp({X3x3(), K2x2()}, {});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 2, 2, 1}));
  // 1*1+2*2+4*3+5*4 = 37, 2+6+15+24 = 47, 4+10+21+32 = 67, 5+12+24+36 = 77.
  EXPECT_THAT(y->ToVector<float>(), ElementsAreArray({37.f, 47.f, 67.f, 77.f}));
}

TEST(Conv2DKernelTest, SamePadsBottomRight) {
  auto y = RunOp({X3x3(), K2x2()}, {{"padding", std::string("same")}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 3, 3, 1}));
  // Total padding 1 per dimension goes after the input (TF): the last column
  // sees x[r][2]*1 + x[r+1][2]*3, the last row x[2][c]*1 + x[2][c+1]*2.
  EXPECT_THAT(
      y->ToVector<float>(),
      ElementsAreArray({37.f, 47.f, 21.f, 67.f, 77.f, 33.f, 23.f, 26.f, 9.f}));
}

TEST(Conv2DKernelTest, StridedSameAndDilated) {
  auto y = RunOp({X3x3(), K2x2()}, {{"padding", std::string("same")},
                                    {"strides", std::vector<int64_t>{2, 2}}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 2, 2, 1}));
  EXPECT_THAT(y->ToVector<float>(), ElementsAreArray({37.f, 21.f, 23.f, 9.f}));

  // Dilation 2: the taps are the four corners, 1*1 + 3*2 + 7*3 + 9*4 = 64.
  y = RunOp({X3x3(), K2x2()}, {{"dilations", std::vector<int64_t>{2, 2}}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{1, 1, 1, 1}));
  EXPECT_THAT(y->ToVector<float>(), ElementsAreArray({64.f}));
}

TEST(Conv2DKernelTest, ChannelsAndBatchF64) {
  // Two images of 1x2 pixels with 2 channels; a 1x1 kernel mapping (a, b) ->
  // (a, b, a - b).
  Tensor x =
      Tensor::FromVector<double>({1, 2, 3, 4, 5, 6, 7, 8}, Shape{2, 1, 2, 2});
  Tensor k = Tensor::FromVector<double>({1, 0, 1, 0, 1, -1}, Shape{1, 1, 2, 3});
  auto y = RunOp({x, k}, {});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{2, 1, 2, 3}));
  EXPECT_THAT(
      y->ToVector<double>(),
      ElementsAreArray({1., 2., -1., 3., 4., -1., 5., 6., -1., 7., 8., -1.}));
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
  OpRegistry registry;
  EXPECT_TRUE(registry.Register(Make_conv2d_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_conv2d_backprop_input_Op()).ok());
  EXPECT_TRUE(registry.Register(Make_conv2d_backprop_filter_Op()).ok());
  return registry;
}

TEST(Conv2DBackpropShapeTest, GoodShapes) {
  OpRegistry registry = BackwardRegistry();
  Attributes attrs = {{"input_shape", std::vector<int64_t>{-1, 5, 5, 2}}};
  auto t = registry.InferTypes(
      "conv2d_backprop_input",
      {{DType::kF32, Shape{N, 3, 3, 4}}, {DType::kF32, Shape{3, 3, 2, 4}}},
      attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,5,5,2]");

  // -1 takes dy's batch, also once it is bound.
  attrs = {{"input_shape", std::vector<int64_t>{-1, 5, 5, 2}},
           {"padding", std::string("same")},
           {"strides", std::vector<int64_t>{2, 2}}};
  t = registry.InferTypes(
      "conv2d_backprop_input",
      {{DType::kF64, Shape{3, 3, 3, 4}}, {DType::kF64, Shape{3, 3, 2, 4}}},
      attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f64[3,5,5,2]");

  attrs = {{"filter_shape", std::vector<int64_t>{3, 3, 2, 4}}};
  t = registry.InferTypes(
      "conv2d_backprop_filter",
      {{DType::kF32, Shape{N, 5, 5, 2}}, {DType::kF32, Shape{N, 3, 3, 4}}},
      attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[3,3,2,4]");
}

TEST(Conv2DBackpropShapeTest, Errors) {
  OpRegistry registry = BackwardRegistry();
  // dy is not what conv2d makes of input_shape.
  Attributes attrs = {{"input_shape", std::vector<int64_t>{-1, 6, 5, 2}}};
  auto t = registry.InferTypes(
      "conv2d_backprop_input",
      {{DType::kF32, Shape{N, 3, 3, 4}}, {DType::kF32, Shape{3, 3, 2, 4}}},
      attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[conv2d_backprop_input] dy must have spatial size "
                        "4x3 (the conv2d output)"));

  attrs = {{"input_shape", std::vector<int64_t>{-1, 5, 5}}};
  t = registry.InferTypes(
      "conv2d_backprop_input",
      {{DType::kF32, Shape{N, 3, 3, 4}}, {DType::kF32, Shape{3, 3, 2, 4}}},
      attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("input_shape must be 4 positive integers"));

  attrs = {};
  t = registry.InferTypes(
      "conv2d_backprop_input",
      {{DType::kF32, Shape{N, 3, 3, 4}}, {DType::kF32, Shape{3, 3, 2, 4}}},
      attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("missing required attribute 'input_shape'"));

  // The filter's output channels must be dy's.
  attrs = {{"filter_shape", std::vector<int64_t>{3, 3, 2, 5}}};
  t = registry.InferTypes(
      "conv2d_backprop_filter",
      {{DType::kF32, Shape{N, 5, 5, 2}}, {DType::kF32, Shape{N, 3, 3, 4}}},
      attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[conv2d_backprop_filter] channels or batch do not "
                        "match"));

  attrs = {{"filter_shape", std::vector<int64_t>{3, 3, 2, 4}}};
  t = registry.InferTypes(
      "conv2d_backprop_filter",
      {{DType::kF32, Shape{N, 5, 5, 2}}, {DType::kF64, Shape{N, 3, 3, 4}}},
      attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("x and dy dtypes differ"));
}

TEST(Conv2DBackpropKernelTest, HandComputed) {
  OpRegistry registry = BackwardRegistry();
  // x 3x3 = 1..9, kernel 2x2 = [1, 2; 3, 4], valid: dy is 2x2. dy(0,0) = 1
  // scatters the kernel onto the top-left window, dy(1,1) = 2 twice it onto
  // the bottom-right one.
  const Tensor dy = Tensor::FromVector<float>({1, 0, 0, 2}, Shape{1, 2, 2, 1});
  const Tensor k = Tensor::FromVector<float>({1, 2, 3, 4}, Shape{2, 2, 1, 1});
  auto dx = RunBackward(registry, "conv2d_backprop_input", {&dy, &k},
                        {{"input_shape", std::vector<int64_t>{-1, 3, 3, 1}}});
  ASSERT_TRUE(dx.ok()) << dx.status();
  EXPECT_THAT((*dx)[0].ToVector<float>(),
              ElementsAreArray({1.f, 2.f, 0.f, 3.f, 6.f, 4.f, 0.f, 6.f, 8.f}));

  // dkernel = 1 * (top-left window of x) + 2 * (bottom-right window).
  const Tensor x =
      Tensor::FromVector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, Shape{1, 3, 3, 1});
  auto dk = RunBackward(registry, "conv2d_backprop_filter", {&x, &dy},
                        {{"filter_shape", std::vector<int64_t>{2, 2, 1, 1}}});
  ASSERT_TRUE(dk.ok()) << dk.status();
  EXPECT_THAT((*dk)[0].ToVector<float>(),
              ElementsAreArray({11.f, 14.f, 20.f, 23.f}));
}

// Both backward ops are adjoints of conv2d:
// <conv2d(x, k), dy> = <x, backprop_input(dy, k)> = <k, backprop_filter(x,
// dy)>.
TEST(Conv2DBackpropKernelTest, AdjointsOfConv2D) {
  OpRegistry registry = BackwardRegistry();
  const std::vector<Attributes> variants = {
      {},
      {{"padding", std::string("same")},
       {"strides", std::vector<int64_t>{2, 2}}},
      {{"padding", std::string("same")},
       {"dilations", std::vector<int64_t>{2, 1}},
       {"strides", std::vector<int64_t>{1, 2}}},
      {{"strides", std::vector<int64_t>{2, 3}}}};
  for (const Attributes& conv_attrs : variants) {
    const Tensor x = Pattern(Shape{2, 6, 7, 3}, 1);
    const Tensor k = Pattern(Shape{3, 2, 3, 4}, 2);
    auto y = RunBackward(registry, "conv2d", {&x, &k}, conv_attrs);
    ASSERT_TRUE(y.ok()) << y.status();
    const Tensor dy = Pattern((*y)[0].shape(), 3);
    Attributes input_attrs = conv_attrs;
    input_attrs["input_shape"] = std::vector<int64_t>{-1, 6, 7, 3};
    auto dx =
        RunBackward(registry, "conv2d_backprop_input", {&dy, &k}, input_attrs);
    ASSERT_TRUE(dx.ok()) << dx.status();
    Attributes filter_attrs = conv_attrs;
    filter_attrs["filter_shape"] = std::vector<int64_t>{3, 2, 3, 4};
    auto dk = RunBackward(registry, "conv2d_backprop_filter", {&x, &dy},
                          filter_attrs);
    ASSERT_TRUE(dk.ok()) << dk.status();
    const double forward = Dot((*y)[0], dy);
    EXPECT_NEAR(Dot(x, (*dx)[0]), forward, 1e-9);
    EXPECT_NEAR(Dot(k, (*dk)[0]), forward, 1e-9);
  }
}

}  // namespace
}  // namespace sequent::ops
