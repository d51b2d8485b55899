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

OpHarness Elementwise() {
  return OpHarness({Make_add_Op(), Make_sub_Op(), Make_mul_Op(), Make_div_Op(),
                    Make_maximum_Op(), Make_neg_Op(), Make_exp_Op(),
                    Make_log_Op(), Make_sqrt_Op(), Make_square_Op(),
                    Make_abs_Op()});
}

TEST(BinaryTest, ShapeRuleBroadcasts) {
  OpHarness h = Elementwise();
  for (const char* op : {"add", "sub", "mul", "div", "maximum"}) {
    SCOPED_TRACE(op);
    auto out = h.Infer(op, {F32({N, 3}), F32({3})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 3}));
    out = h.Infer(op, {F32({N, 1, 4}), F32({2, 1})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 2, 4}));
    out = h.Infer(op, {F32({1, 5}), F32({N, 1})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 5}));
    out = h.Infer(op, {F32({}), F32({N, 2})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 2}));

    ExpectError(h.Infer(op, {F32({N, 3}), F32({4})}),
                {"[" + std::string(op) + "]", "f32[N,3]", "f32[4]"});
    ExpectError(h.Infer(op, {F32({N, 3}), {DType::kF64, Shape{N, 3}}}),
                {"dtypes differ", "f32[N,3]", "f64[N,3]"});
  }
  // Integer arithmetic is allowed where it stays exact; division is not.
  TensorType i32{DType::kI32, Shape{N, 2}};
  EXPECT_TRUE(h.Infer("add", {i32, i32}).ok());
  ExpectError(h.Infer("div", {i32, i32}), {"floating-point", "i32[N,2]"});
  TensorType b{DType::kBool, Shape{2}};
  ExpectError(h.Infer("mul", {b, b}), {"numeric", "bool[2]"});
}

TEST(BinaryTest, Reference) {
  OpHarness h = Elementwise();
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor row = Tensor::FromVector<float>({10, 20, 30}, {3});
  Tensor col = Tensor::FromVector<float>({2, 4}, {2, 1});

  auto out = h.Run("add", {&x, &row});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {11, 22, 33, 14, 25, 36});
  out = h.Run("sub", {&row, &x});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {9, 18, 27, 6, 15, 24});
  out = h.Run("mul", {&x, &col});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {2, 4, 6, 16, 20, 24});
  out = h.Run("div", {&x, &col});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0.5, 1, 1.5, 1, 1.25, 1.5});
  // [2,1] against [3] broadcasts to [2,3].
  Tensor odd = Tensor::FromVector<float>({1, 3, 5}, {3});
  out = h.Run("maximum", {&col, &odd});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 3}));
  ExpectValues((*out)[0], {2, 3, 5, 4, 4, 5});

  Tensor a64 = Tensor::FromVector<double>({1.5, -2}, {2});
  Tensor s64 = Tensor::Scalar<double>(0.25);
  out = h.Run("mul", {&a64, &s64});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DType::kF64);
  ExpectValues((*out)[0], {0.375, -0.5});

  Tensor i = Tensor::FromVector<int64_t>({3, -4}, {2});
  out = h.Run("add", {&i, &i});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<int64_t>(), (std::vector<int64_t>{6, -8}));
}

TEST(UnaryTest, ShapeRule) {
  OpHarness h = Elementwise();
  for (const char* op : {"neg", "exp", "log", "sqrt", "square", "abs"}) {
    SCOPED_TRACE(op);
    auto out = h.Infer(op, {F32({N, 3, 2})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 3, 2}));
    ExpectError(h.Infer(op, {{DType::kBool, Shape{N, 3}}}),
                {"[" + std::string(op) + "]", "bool[N,3]"});
  }
  ExpectError(h.Infer("exp", {{DType::kI32, Shape{N}}}),
              {"floating-point", "i32[N]"});
  ExpectError(h.Infer("neg", {F32({2}), F32({2})}), {"[neg]", "expects 1"});
}

TEST(UnaryTest, Reference) {
  OpHarness h = Elementwise();
  Tensor x = Tensor::FromVector<float>({-2, 0.5f, 4}, {3});
  Tensor pos = Tensor::FromVector<double>({1, 4, 0.25}, {3});
  struct Case {
    const char* op;
    const Tensor* input;
    std::vector<double> expected;
  };
  const std::vector<Case> cases = {
      {"neg", &x, {2, -0.5, -4}},
      {"exp", &x, {0.1353353, 1.6487213, 54.5981500}},
      {"log", &pos, {0, 1.3862944, -1.3862944}},
      {"sqrt", &pos, {1, 2, 0.5}},
      {"square", &x, {4, 0.25, 16}},
      {"abs", &x, {2, 0.5, 4}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    auto out = h.Run(c.op, {c.input});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].dtype(), c.input->dtype());
    ExpectValues((*out)[0], c.expected, 1e-4);
  }
  Tensor i = Tensor::FromVector<int32_t>({-3, 5}, {2});
  auto out = h.Run("abs", {&i});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<int32_t>(), (std::vector<int32_t>{3, 5}));
}

OpHarness ElementwiseBackward() {
  return OpHarness({Make_maximum_grad_Op(), Make_sign_Op()});
}

TEST(MaximumGradTest, ShapeRule) {
  OpHarness h = ElementwiseBackward();
  auto out = h.Infer("maximum_grad", {F32({N, 3}), F32({3}), F32({N, 3})});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0], F32({N, 3}));
  EXPECT_EQ((*out)[1], F32({N, 3}));
  ExpectError(h.Infer("maximum_grad", {F32({N, 3}), F32({3}), F32({N, 4})}),
              {"[maximum_grad]", "f32[N,4]", "broadcast", "f32[N,3]"});
  ExpectError(h.Infer("maximum_grad", {F32({2}), F32({3}), F32({2})}),
              {"f32[2]", "f32[3]"});
  ExpectError(
      h.Infer("maximum_grad", {F32({2}), F32({2}), {DType::kF64, Shape{2}}}),
      {"dtypes differ"});
  ExpectError(h.Infer("maximum_grad", {{DType::kI32, Shape{2}},
                                       {DType::kI32, Shape{2}},
                                       {DType::kI32, Shape{2}}}),
              {"floating-point", "i32[2]"});
}

TEST(MaximumGradTest, ReferenceRoutesToTheLargerAndTiesToX) {
  OpHarness h = ElementwiseBackward();
  Tensor x = Tensor::FromVector<float>({1, 5, 3, -2, 0, 7}, {2, 3});
  Tensor y = Tensor::FromVector<float>({2, 5, 1}, {3});
  Tensor dout = Tensor::FromVector<float>({10, 20, 30, 40, 50, 60}, {2, 3});
  auto out = h.Run("maximum_grad", {&x, &y, &dout});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0, 20, 30, 0, 0, 60});
  ExpectValues((*out)[1], {10, 0, 0, 40, 50, 0});

  Tensor x64 = Tensor::FromVector<double>({std::nan(""), 1}, {2});
  Tensor y64 = Tensor::FromVector<double>({0, std::nan("")}, {2});
  Tensor d64 = Tensor::FromVector<double>({1, 2}, {2});
  out = h.Run("maximum_grad", {&x64, &y64, &d64});
  ASSERT_TRUE(out.ok()) << out.status();
  // The gradient follows the NaN that maximum propagates.
  ExpectValues((*out)[0], {1, 0});
  ExpectValues((*out)[1], {0, 2});
}

TEST(SignTest, ShapeRuleAndReference) {
  OpHarness h = ElementwiseBackward();
  auto type = h.Infer("sign", {F32({N, 2})});
  ASSERT_TRUE(type.ok()) << type.status();
  EXPECT_EQ((*type)[0], F32({N, 2}));
  ExpectError(h.Infer("sign", {{DType::kBool, Shape{2}}}),
              {"[sign]", "bool[2]"});
  Tensor x = Tensor::FromVector<double>({-3, 0, 0.5, -0.0}, {4});
  auto out = h.Run("sign", {&x});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {-1, 0, 1, 0});
  Tensor i = Tensor::FromVector<int32_t>({-7, 0, 9}, {3});
  out = h.Run("sign", {&i});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<int32_t>(), (std::vector<int32_t>{-1, 0, 1}));
}

}  // namespace
}  // namespace sequent::ops
