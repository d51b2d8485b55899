#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/op_registry.h"
#include "core/tensor.h"
#include "ops/op_defs.h"
#include "tests/testing/op_harness.h"

namespace sequent::ops {
namespace {

OpHarness Reductions() {
  return OpHarness(
      {Make_reduce_sum_Op(), Make_reduce_mean_Op(), Make_reduce_max_Op()});
}

Attributes Axes(std::vector<int64_t> axes, bool keepdims = false) {
  return {{"axes", std::move(axes)}, {"keepdims", keepdims}};
}

TEST(ReduceTest, ShapeRule) {
  OpHarness h = Reductions();
  for (const char* op : {"reduce_sum", "reduce_mean", "reduce_max"}) {
    SCOPED_TRACE(op);
    auto out = h.Infer(op, {F32({N, 3, 4})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({}));
    out = h.Infer(op, {F32({N, 3, 4})}, Axes({}, true));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({1, 1, 1}));
    out = h.Infer(op, {F32({N, 3, 4})}, Axes({-1}));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 3}));
    out = h.Infer(op, {F32({N, 3, 4})}, Axes({0, 2}, true));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({1, 3, 1}));
    out = h.Infer(op, {F32({N, 3, 4})}, Axes({1}));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 4}));

    ExpectError(h.Infer(op, {F32({N, 3})}, Axes({2})),
                {"[" + std::string(op) + "]", "axis 2", "[2]", "f32[N,3]"});
    ExpectError(h.Infer(op, {F32({N, 3})}, Axes({1, -1})),
                {"[1, -1]", "twice", "f32[N,3]"});
    ExpectError(h.Infer(op, {{DType::kI32, Shape{N, 3}}}),
                {"floating-point", "i32[N,3]"});
  }
}

TEST(ReduceTest, Reference2D) {
  OpHarness h = Reductions();
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  struct Case {
    const char* op;
    Attributes attrs;
    Shape shape;
    std::vector<double> expected;
  };
  const std::vector<Case> cases = {
      {"reduce_sum", {}, Shape{}, {21}},
      {"reduce_sum", Axes({0}), Shape{3}, {5, 7, 9}},
      {"reduce_sum", Axes({-1}, true), Shape{2, 1}, {6, 15}},
      {"reduce_mean", {}, Shape{}, {3.5}},
      {"reduce_mean", Axes({1}), Shape{2}, {2, 5}},
      {"reduce_mean", Axes({0}, true), Shape{1, 3}, {2.5, 3.5, 4.5}},
      {"reduce_max", Axes({0}), Shape{3}, {4, 5, 6}},
      {"reduce_max", Axes({1}), Shape{2}, {3, 6}},
      {"reduce_max", Axes({0, 1}), Shape{}, {6}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    auto out = h.Run(c.op, {&x}, c.attrs);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].shape(), c.shape);
    ExpectValues((*out)[0], c.expected);
  }
}

TEST(ReduceTest, Reference3DInnerAndOuterAxes) {
  OpHarness h = Reductions();
  // x[a][j][c] = 1..8; reducing a and c leaves j: {1,2,5,6} and {3,4,7,8}.
  Tensor x = Tensor::FromVector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  auto out = h.Run("reduce_sum", {&x}, Axes({0, 2}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DType::kF64);
  ExpectValues((*out)[0], {14, 22});
  out = h.Run("reduce_mean", {&x}, Axes({2, 0}, true));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{1, 2, 1}));
  ExpectValues((*out)[0], {3.5, 5.5});
  out = h.Run("reduce_max", {&x}, Axes({-3, -1}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {6, 8});

  Tensor negative = Tensor::FromVector<float>({-3, -1, -2}, {3});
  out = h.Run("reduce_max", {&negative});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {-1});
  Tensor with_nan = Tensor::FromVector<float>(
      {1, std::numeric_limits<float>::quiet_NaN(), 5}, {3});
  out = h.Run("reduce_max", {&with_nan});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(std::isnan((*out)[0].GetAsDouble(0)));
}

OpHarness ReduceBackward() {
  return OpHarness({Make_broadcast_to_Op(), Make_reduce_to_shape_Op(),
                    Make_reduce_max_grad_Op()});
}

Attributes ShapeAttr(std::vector<int64_t> dims) {
  return {{"shape", AttrValue(std::move(dims))}};
}

TEST(BroadcastToTest, ShapeRule) {
  OpHarness h = ReduceBackward();
  auto out = h.Infer("broadcast_to", {F32({1, 3})}, ShapeAttr({N, 3}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 3}));
  out = h.Infer("broadcast_to", {F32({})}, ShapeAttr({2, N, 4}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({2, N, 4}));
  out = h.Infer("broadcast_to", {F32({N, 1})}, ShapeAttr({N, 5}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 5}));
  ExpectError(h.Infer("broadcast_to", {F32({2, 3})}, ShapeAttr({4, 3})),
              {"[broadcast_to]", "cannot broadcast", "f32[2,3]", "[4,3]"});
  ExpectError(h.Infer("broadcast_to", {F32({N, 3})}, ShapeAttr({3})),
              {"f32[N,3]", "[3]"});
  ExpectError(h.Infer("broadcast_to", {F32({3})}, ShapeAttr({-2, 3})),
              {"negative dimension -2"});
  ExpectError(h.Infer("broadcast_to", {F32({3})}),
              {"missing required attribute 'shape'"});
}

TEST(BroadcastToTest, Reference) {
  OpHarness h = ReduceBackward();
  Tensor col = Tensor::FromVector<float>({1, 2}, {2, 1});
  auto out = h.Run("broadcast_to", {&col}, ShapeAttr({3, 2, 2}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2});
  Tensor i = Tensor::FromVector<int64_t>({int64_t{1} << 60}, {1});
  out = h.Run("broadcast_to", {&i}, ShapeAttr({2}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<int64_t>(),
            (std::vector<int64_t>{int64_t{1} << 60, int64_t{1} << 60}));
}

TEST(ReduceToShapeTest, ShapeRule) {
  OpHarness h = ReduceBackward();
  auto out = h.Infer("reduce_to_shape", {F32({N, 3})}, ShapeAttr({3}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({3}));
  out = h.Infer("reduce_to_shape", {F32({N, 3})}, ShapeAttr({N, 1}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 1}));
  out = h.Infer("reduce_to_shape", {F32({2, 3})}, ShapeAttr({}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({}));
  ExpectError(h.Infer("reduce_to_shape", {F32({2, 3})}, ShapeAttr({2})),
              {"[reduce_to_shape]", "f32[2,3]", "[2]"});
  ExpectError(h.Infer("reduce_to_shape", {F32({3})}, ShapeAttr({2, 3})),
              {"cannot sum", "[2,3]"});
  ExpectError(
      h.Infer("reduce_to_shape", {{DType::kI32, Shape{3}}}, ShapeAttr({1})),
      {"floating-point"});
}

TEST(ReduceToShapeTest, Reference) {
  OpHarness h = ReduceBackward();
  Tensor x = Tensor::FromVector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto out = h.Run("reduce_to_shape", {&x}, ShapeAttr({3}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {5, 7, 9});
  out = h.Run("reduce_to_shape", {&x}, ShapeAttr({2, 1}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {6, 15});
  out = h.Run("reduce_to_shape", {&x}, ShapeAttr({}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {21});
  out = h.Run("reduce_to_shape", {&x}, ShapeAttr({2, 3}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {1, 2, 3, 4, 5, 6});
}

TEST(ReduceMaxGradTest, ShapeRule) {
  OpHarness h = ReduceBackward();
  auto out =
      h.Infer("reduce_max_grad", {F32({N, 3}), F32({N}), F32({N})}, Axes({1}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 3}));
  out = h.Infer("reduce_max_grad", {F32({N, 3}), F32({1, 3}), F32({1, 3})},
                Axes({0}, true));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 3}));
  ExpectError(
      h.Infer("reduce_max_grad", {F32({N, 3}), F32({3}), F32({N})}, Axes({1})),
      {"[reduce_max_grad]", "y f32[3]", "f32[N]"});
  ExpectError(
      h.Infer("reduce_max_grad", {F32({N, 3}), F32({N}), F32({3})}, Axes({1})),
      {"dy f32[3]"});
  ExpectError(
      h.Infer("reduce_max_grad", {F32({2, 3}), F32({2}), F32({2})}, Axes({2})),
      {"axis 2", "out of range"});
}

TEST(ReduceMaxGradTest, ReferenceSplitsTiesEqually) {
  OpHarness h = ReduceBackward();
  Tensor x = Tensor::FromVector<float>({1, 4, 4, 2, 0, 1}, {2, 3});
  Tensor y = Tensor::FromVector<float>({4, 2}, {2});
  Tensor dy = Tensor::FromVector<float>({10, 6}, {2});
  auto out = h.Run("reduce_max_grad", {&x, &y, &dy}, Axes({1}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0, 5, 5, 6, 0, 0});
  // Over both axes with keepdims: one tie of two.
  Tensor y_all = Tensor::FromVector<double>({4}, {1, 1});
  Tensor dy_all = Tensor::FromVector<double>({3}, {1, 1});
  Tensor x64 = x.CastTo(DType::kF64);
  out = h.Run("reduce_max_grad", {&x64, &y_all, &dy_all}, Axes({}, true));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0, 1.5, 1.5, 0, 0, 0});
}

}  // namespace
}  // namespace sequent::ops
