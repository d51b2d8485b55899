#include <gtest/gtest.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace sequent {
namespace {

TEST(DTypeTest, NamesRoundTrip) {
  for (DType d : {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32,
                  DType::kI64, DType::kBool}) {
    auto parsed = ParseDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_FALSE(ParseDType("f8").ok());
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
}

TEST(DTypeTest, HalfConversions) {
  EXPECT_EQ(BF16ToFloat(FloatToBF16(1.5f)), 1.5f);
  EXPECT_EQ(F16ToFloat(FloatToF16(-2.25f)), -2.25f);
  EXPECT_NEAR(F16ToFloat(FloatToF16(0.1f)), 0.1f, 1e-4);
  EXPECT_EQ(F16ToFloat(FloatToF16(1e6f)), std::numeric_limits<float>::infinity());
}

TEST(ShapeTest, BatchAndPrinting) {
  Shape s{Shape::kBatch, 28, 28};
  EXPECT_EQ(s.ToString(), "[N,28,28]");
  EXPECT_TRUE(s.HasBatch());
  EXPECT_EQ(s.WithBatch(32).NumElements(), 32 * 28 * 28);
  EXPECT_EQ(s.NumElementsPerBatch(), 784);
  EXPECT_EQ(Shape{}.ToString(), "[]");
  EXPECT_EQ((TensorType{DType::kF32, Shape{Shape::kBatch, 512}}).ToString(), "f32[N,512]");
}

TEST(ShapeTest, Broadcasting) {
  auto b = BroadcastShapes(Shape{Shape::kBatch, 512}, Shape{512});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (Shape{Shape::kBatch, 512}));
  auto c = BroadcastShapes(Shape{3, 1}, Shape{1, 4});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, (Shape{3, 4}));
  auto bad = BroadcastShapes(Shape{3, 2}, Shape{4});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("[3,2] and [4]"), std::string::npos);
}

TEST(TensorTest, AlignedOwningCopies) {
  Tensor t = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, Shape{2, 3});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % Tensor::kAlignment, 0u);
  Tensor copy = t;
  copy.data<float>()[0] = 10;
  EXPECT_EQ(t.data<float>()[0], 1);
  EXPECT_EQ(copy.ToVector<float>()[0], 10);
  EXPECT_EQ(t.ToString(), "Tensor<f32[2,3]>([[1, 2, 3],\n [4, 5, 6]])");
  EXPECT_EQ(Tensor::Scalar<int64_t>(7).ToString(), "Tensor<i64[]>(7)");
}

TEST(TensorTest, CheckedConstructionAndCast) {
  EXPECT_FALSE(Tensor::FromVectorChecked<float>({1, 2, 3}, Shape{2, 2}).ok());
  Tensor t = Tensor::FromVector<float>({1.5f, -2.0f}, Shape{2});
  Tensor bf = t.CastTo(DType::kBF16);
  EXPECT_EQ(bf.GetAsDouble(0), 1.5);
  Tensor i = t.CastTo(DType::kI32);
  EXPECT_EQ(i.data<int32_t>()[1], -2);
}

TEST(TensorTest, LongTensorsAreElided) {
  std::vector<float> v(1000, 1.0f);
  std::string s = Tensor::FromVector(v, Shape{1000}).ToString(8);
  EXPECT_NE(s.find("..."), std::string::npos);
  EXPECT_LT(s.size(), 100u);
}

}  // namespace
}  // namespace sequent
