#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/op_registry.h"
#include "core/tensor.h"
#include "ops/op_defs.h"
#include "tests/testing/op_harness.h"

namespace sequent::ops {
namespace {

OpHarness ShapeOps() {
  return OpHarness({Make_reshape_Op(), Make_flatten_Op(), Make_transpose_Op(),
                    Make_concat_Op(), Make_slice_Op(), Make_cast_Op()});
}

using Ints = std::vector<int64_t>;

TEST(ReshapeTest, ShapeRule) {
  OpHarness h = ShapeOps();
  auto out = h.Infer("reshape", {F32({N, 784})}, {{"shape", Ints{-1, 28, 28}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 28, 28}));
  out = h.Infer("reshape", {F32({N, 6})}, {{"shape", Ints{2, -1, 3}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({2, N, 3}));
  out = h.Infer("reshape", {F32({2, 6})}, {{"shape", Ints{3, 4}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({3, 4}));

  ExpectError(
      h.Infer("reshape", {F32({N, 784})}, {{"shape", Ints{-1, 10, 10}}}),
      {"[reshape]", "f32[N,784]", "[N,10,10]", "784", "100"});
  ExpectError(h.Infer("reshape", {F32({N, 784})}, {{"shape", Ints{784}}}),
              {"f32[N,784]", "[784]", "batch"});
  ExpectError(h.Infer("reshape", {F32({4, 4})}, {{"shape", Ints{-1, 4}}}),
              {"f32[4,4]", "[N,4]", "batch"});
  ExpectError(h.Infer("reshape", {F32({4})}, {{"shape", Ints{-2, -2}}}),
              {"[-2, -2]"});
  ExpectError(h.Infer("reshape", {F32({4})}),
              {"[reshape]", "missing", "shape"});
}

TEST(ReshapeTest, Reference) {
  OpHarness h = ShapeOps();
  Tensor x = Tensor::FromVector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto out = h.Run("reshape", {&x}, {{"shape", Ints{3, 2}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].type(), (TensorType{DType::kI32, Shape{3, 2}}));
  EXPECT_EQ((*out)[0].ToVector<int32_t>(),
            (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
}

TEST(FlattenTest, ShapeRule) {
  OpHarness h = ShapeOps();
  auto out = h.Infer("flatten", {F32({N, 28, 28})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 784}));
  out = h.Infer("flatten", {F32({N, 2, 3, 4})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 24}));
  out = h.Infer("flatten", {F32({N})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 1}));
  ExpectError(h.Infer("flatten", {F32({})}), {"[flatten]", "rank 1", "f32[]"});
  ExpectError(h.Infer("flatten", {F32({3, N})}), {"f32[3,N]", "batch"});
}

TEST(FlattenTest, Reference) {
  OpHarness h = ShapeOps();
  Tensor x = Tensor::FromVector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  auto out = h.Run("flatten", {&x});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 4}));
  ExpectValues((*out)[0], {1, 2, 3, 4, 5, 6, 7, 8});
}

TEST(TransposeTest, ShapeRule) {
  OpHarness h = ShapeOps();
  auto out = h.Infer("transpose", {F32({N, 3, 4})}, {{"perm", Ints{2, 0, 1}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({4, N, 3}));
  ExpectError(h.Infer("transpose", {F32({N, 3, 4})}, {{"perm", Ints{0, 1, 1}}}),
              {"[transpose]", "[0, 1, 1]", "permutation", "f32[N,3,4]"});
  ExpectError(h.Infer("transpose", {F32({N, 3, 4})}, {{"perm", Ints{1, 0}}}),
              {"[1, 0]", "f32[N,3,4]"});
  ExpectError(h.Infer("transpose", {F32({N, 3})}, {{"perm", Ints{0, 2}}}),
              {"[0, 2]"});
}

TEST(TransposeTest, Reference) {
  OpHarness h = ShapeOps();
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto out = h.Run("transpose", {&x}, {{"perm", Ints{1, 0}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{3, 2}));
  ExpectValues((*out)[0], {1, 4, 2, 5, 3, 6});
  // x[a][b][c] = 1..12 with shape [2,3,2]; perm [2,0,1] gives y[c][a][b].
  Tensor y = Tensor::FromVector<int64_t>(
      {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 3, 2});
  out = h.Run("transpose", {&y}, {{"perm", Ints{2, 0, 1}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 2, 3}));
  EXPECT_EQ((*out)[0].ToVector<int64_t>(),
            (std::vector<int64_t>{1, 3, 5, 7, 9, 11, 2, 4, 6, 8, 10, 12}));
}

TEST(ConcatTest, ShapeRule) {
  OpHarness h = ShapeOps();
  auto out = h.Infer("concat", {F32({N, 3}), F32({N, 5}), F32({N, 1})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 9}));
  out = h.Infer("concat", {F32({2, N, 3}), F32({4, N, 3})},
                {{"axis", int64_t{0}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({6, N, 3}));
  out = h.Infer("concat", {F32({N, 3})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 3}));

  ExpectError(h.Infer("concat", {F32({N, 3}), F32({N, 3, 1})}),
              {"[concat]", "f32[N,3]", "f32[N,3,1]"});
  ExpectError(
      h.Infer("concat", {F32({N, 3}), F32({2, 3})}, {{"axis", int64_t{1}}}),
      {"f32[N,3]", "f32[2,3]", "axis 1"});
  ExpectError(
      h.Infer("concat", {F32({N, 3}), F32({N, 3})}, {{"axis", int64_t{0}}}),
      {"f32[N,3]", "batch"});
  ExpectError(h.Infer("concat", {F32({N, 3}), {DType::kF64, Shape{N, 3}}}),
              {"dtypes differ", "f32[N,3]", "f64[N,3]"});
  ExpectError(h.Infer("concat", {F32({N, 3})}, {{"axis", int64_t{2}}}),
              {"axis 2", "f32[N,3]"});
  ExpectError(h.Infer("concat", {}), {"[concat]", "at least 1"});
}

TEST(ConcatTest, Reference) {
  OpHarness h = ShapeOps();
  Tensor a = Tensor::FromVector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::FromVector<float>({5, 6}, {2, 1});
  auto out = h.Run("concat", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 3}));
  ExpectValues((*out)[0], {1, 2, 5, 3, 4, 6});
  Tensor c = Tensor::FromVector<float>({7, 8}, {1, 2});
  out = h.Run("concat", {&a, &c, &a}, {{"axis", int64_t{0}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{5, 2}));
  ExpectValues((*out)[0], {1, 2, 3, 4, 7, 8, 1, 2, 3, 4});
}

TEST(SliceTest, ShapeRule) {
  OpHarness h = ShapeOps();
  auto out = h.Infer("slice", {F32({N, 10, 4})},
                     {{"begin", Ints{0, 2, 1}}, {"size", Ints{-1, 5, -1}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 5, 3}));
  out = h.Infer("slice", {F32({4, 4})},
                {{"begin", Ints{4, 0}}, {"size", Ints{0, 4}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({0, 4}));

  ExpectError(h.Infer("slice", {F32({N, 10})},
                      {{"begin", Ints{0, 8}}, {"size", Ints{-1, 3}}}),
              {"[slice]", "begin [0, 8]", "size [-1, 3]", "f32[N,10]",
               "out of bounds"});
  ExpectError(h.Infer("slice", {F32({N, 10})},
                      {{"begin", Ints{1, 0}}, {"size", Ints{-1, 3}}}),
              {"f32[N,10]", "batch"});
  ExpectError(h.Infer("slice", {F32({N, 10})},
                      {{"begin", Ints{0, 0}}, {"size", Ints{2, 3}}}),
              {"f32[N,10]", "batch"});
  ExpectError(h.Infer("slice", {F32({N, 10})},
                      {{"begin", Ints{0}}, {"size", Ints{-1}}}),
              {"begin [0]", "f32[N,10]", "per dimension"});
  ExpectError(
      h.Infer("slice", {F32({5})}, {{"begin", Ints{-1}}, {"size", Ints{1}}}),
      {"begin [-1]", "out of bounds"});
}

TEST(SliceTest, Reference) {
  OpHarness h = ShapeOps();
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
                                       {3, 4});
  auto out =
      h.Run("slice", {&x}, {{"begin", Ints{1, 1}}, {"size", Ints{2, -1}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 3}));
  ExpectValues((*out)[0], {6, 7, 8, 10, 11, 12});
  out = h.Run("slice", {&x}, {{"begin", Ints{0, 2}}, {"size", Ints{-1, 1}}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {3, 7, 11});
}

TEST(CastTest, ShapeRule) {
  OpHarness h = ShapeOps();
  auto out = h.Infer("cast", {{DType::kI32, Shape{N, 3}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 3}));
  out = h.Infer("cast", {F32({N})}, {{"to", std::string("bool")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], (TensorType{DType::kBool, Shape{N}}));
  ExpectError(h.Infer("cast", {F32({N})}, {{"to", std::string("float32")}}),
              {"[cast]", "float32", "f64", "i64"});
}

TEST(CastTest, Reference) {
  OpHarness h = ShapeOps();
  Tensor x = Tensor::FromVector<float>(
      {-1.75f, 0, 2.5f, std::numeric_limits<float>::quiet_NaN()}, {4});
  auto out = h.Run("cast", {&x}, {{"to", std::string("i32")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<int32_t>(), (std::vector<int32_t>{-1, 0, 2, 0}));
  out = h.Run("cast", {&x}, {{"to", std::string("bool")}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {1, 0, 1, 1});
  out = h.Run("cast", {&x}, {{"to", std::string("f64")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DType::kF64);
  EXPECT_EQ((*out)[0].GetAsDouble(0), -1.75);
  EXPECT_EQ((*out)[0].GetAsDouble(2), 2.5);
  EXPECT_TRUE(std::isnan((*out)[0].GetAsDouble(3)));
  Tensor big = Tensor::FromVector<float>({1e10f, -1e10f}, {2});
  out = h.Run("cast", {&big}, {{"to", std::string("i32")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<int32_t>(),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::max(),
                                  std::numeric_limits<int32_t>::min()}));
  // i64 -> i64 and i64 -> i32 keep integers exact beyond double's 2^53.
  Tensor i = Tensor::FromVector<int64_t>({(int64_t{1} << 60) + 1, 7}, {2});
  out = h.Run("cast", {&i}, {{"to", std::string("i64")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToVector<int64_t>(),
            (std::vector<int64_t>{(int64_t{1} << 60) + 1, 7}));
  Tensor half = Tensor::FromVector<double>({0.5, -3}, {2});
  out = h.Run("cast", {&half}, {{"to", std::string("bf16")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DType::kBF16);
  ExpectValues((*out)[0], {0.5, -3}, 0);
}

OpHarness SliceGrad() { return OpHarness({Make_slice_grad_Op()}); }

Attributes SliceGradAttrs(std::vector<int64_t> begin,
                          std::vector<int64_t> input_shape) {
  return {{"begin", AttrValue(std::move(begin))},
          {"input_shape", AttrValue(std::move(input_shape))}};
}

TEST(SliceGradTest, ShapeRule) {
  OpHarness h = SliceGrad();
  auto out =
      h.Infer("slice_grad", {F32({N, 2})}, SliceGradAttrs({0, 1}, {N, 4}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 4}));
  ExpectError(
      h.Infer("slice_grad", {F32({N, 2})}, SliceGradAttrs({0, 3}, {N, 4})),
      {"[slice_grad]", "f32[N,2]", "[0, 3]", "[-1, 4]", "dimension 1",
       "out of bounds"});
  ExpectError(
      h.Infer("slice_grad", {F32({N, 2})}, SliceGradAttrs({1, 0}, {N, 4})),
      {"batch dimension N"});
  ExpectError(
      h.Infer("slice_grad", {F32({3, 2})}, SliceGradAttrs({0, 0}, {N, 4})),
      {"batch dimension N"});
  ExpectError(h.Infer("slice_grad", {F32({2})}, SliceGradAttrs({0, 0}, {4})),
              {"one begin"});
  ExpectError(h.Infer("slice_grad", {F32({2})},
                      {{"begin", AttrValue(std::vector<int64_t>{0})}}),
              {"missing required attribute 'input_shape'"});
}

TEST(SliceGradTest, Reference) {
  OpHarness h = SliceGrad();
  Tensor dy = Tensor::FromVector<float>({1, 2, 3, 4}, {2, 2});
  auto out = h.Run("slice_grad", {&dy}, SliceGradAttrs({1, 1}, {3, 4}));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0});
  Tensor d64 = Tensor::FromVector<double>({5, 6}, {1, 2});
  out = h.Run("slice_grad", {&d64}, SliceGradAttrs({0, 2}, {2, 4}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DType::kF64);
  ExpectValues((*out)[0], {0, 0, 5, 6, 0, 0, 0, 0});
}

}  // namespace
}  // namespace sequent::ops
