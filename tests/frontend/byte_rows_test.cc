#include "frontend/byte_rows.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "frontend/data.h"

namespace sequent {
namespace {

// n x d values k / 255.0f, every k in [0, 255] among them.
Tensor ScaledBytes(int64_t n, int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor x(DType::kF32, Shape{n, d});
  auto values = x.data<float>();
  for (size_t i = 0; i < values.size(); ++i) {
    const auto k = i < 256 ? static_cast<uint32_t>(i) : rng() % 256;
    values[i] = static_cast<float>(k) / 255.0f;
  }
  return x;
}

bool Available() {
  return ByteRows::FromScaledFloats(ScaledBytes(2, 300, 1)).has_value();
}

// Both kernels where the CPU has AVX-512 (SEQUENT_BYTE_ROWS=avx2 takes the
// AVX2 ones).
class ByteRowsKernelTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { setenv("SEQUENT_BYTE_ROWS", GetParam(), 1); }
  void TearDown() override { unsetenv("SEQUENT_BYTE_ROWS"); }
};
INSTANTIATE_TEST_SUITE_P(Kernels, ByteRowsKernelTest,
                         ::testing::Values("", "avx2"));

TEST_P(ByteRowsKernelTest, GathersTheFloatsBitForBit) {
  if (!Available()) GTEST_SKIP() << "no AVX-512 or AVX2+FMA on this CPU";
  // Row widths with and without a tail past the last 16 (and 8) lanes.
  for (int64_t d : {1, 7, 16, 20, 300, 784}) {
    const int64_t n = 1 + 256 / d + 40;
    const Tensor x = ScaledBytes(n, d, static_cast<uint32_t>(d));
    const std::optional<ByteRows> bytes = ByteRows::FromScaledFloats(x);
    ASSERT_TRUE(bytes.has_value()) << d;
    EXPECT_EQ(bytes->rows(), n);
    EXPECT_EQ(bytes->cols(), d);
    std::vector<int64_t> rows;
    std::mt19937 rng(7);
    for (int i = 0; i < 2 * n; ++i) rows.push_back(rng() % n);
    const auto count = static_cast<int64_t>(rows.size());
    Tensor want(DType::kF32, Shape{count, d}),
        got(DType::kF32, Shape{count, d});
    GatherRows(x, rows.data(), count, want);
    bytes->GatherRows(rows.data(), count, got);
    EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.num_bytes()), 0)
        << "row width " << d;
  }
}

TEST_P(ByteRowsKernelTest, OnlyExactMultiplesOfOneOver255) {
  if (!Available()) GTEST_SKIP() << "no AVX-512 or AVX2+FMA on this CPU";
  const float not_codable[] = {
      0.5f,
      -1.0f / 255.0f,
      256.0f / 255.0f,
      std::nextafter(3.0f / 255.0f, 1.0f),
      // The product with the reciprocal: 1 ulp off the quotient.
      254.0f * (1.0f / 255.0f),
      -0.0f,
      std::numeric_limits<float>::quiet_NaN(),
      std::numeric_limits<float>::infinity(),
  };
  for (int64_t place : {0, 17, 299}) {
    for (float bad : not_codable) {
      Tensor x = ScaledBytes(3, 100, 3);
      x.data<float>()[place] = bad;
      EXPECT_FALSE(ByteRows::FromScaledFloats(x).has_value())
          << bad << " at " << place;
    }
  }
  EXPECT_FALSE(
      ByteRows::FromScaledFloats(ScaledBytes(3, 100, 3).CastTo(DType::kF64))
          .has_value());
}

// Inputs of 2^22 values and more are coded by two threads, a half each.
TEST_P(ByteRowsKernelTest, LargeInputsAreCodedInTwoHalves) {
  if (!Available()) GTEST_SKIP() << "no AVX-512 or AVX2+FMA on this CPU";
  constexpr int64_t kRows = 5400, kCols = 784;  // 4.2M values
  Tensor x = ScaledBytes(kRows, kCols, 9);
  const std::optional<ByteRows> bytes = ByteRows::FromScaledFloats(x);
  ASSERT_TRUE(bytes.has_value());
  std::vector<int64_t> rows = {
      0, 1, kRows / 2 - 1, kRows / 2, kRows / 2 + 1, kRows - 1};
  const auto count = static_cast<int64_t>(rows.size());
  Tensor want(DType::kF32, Shape{count, kCols}),
      got(DType::kF32, Shape{count, kCols});
  GatherRows(x, rows.data(), count, want);
  bytes->GatherRows(rows.data(), count, got);
  EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.num_bytes()), 0);
  // A value either half cannot code refuses the whole.
  for (int64_t place : {int64_t{5}, kRows * kCols - 3}) {
    Tensor bad = x;
    bad.data<float>()[place] = 0.5f;
    EXPECT_FALSE(ByteRows::FromScaledFloats(bad).has_value()) << place;
  }
}

TEST(ByteRowsTest, TheEnvironmentTurnsThemOff) {
  EXPECT_NE(254.0f * (1.0f / 255.0f), 254.0f / 255.0f);
  if (!Available()) GTEST_SKIP() << "no AVX-512 or AVX2+FMA on this CPU";
  setenv("SEQUENT_BYTE_ROWS", "0", 1);
  EXPECT_FALSE(ByteRows::FromScaledFloats(ScaledBytes(2, 300, 1)).has_value());
  unsetenv("SEQUENT_BYTE_ROWS");
  EXPECT_TRUE(ByteRows::FromScaledFloats(ScaledBytes(2, 300, 1)).has_value());
}

}  // namespace
}  // namespace sequent
