#include "backends/cpu/softmax_crossentropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace sequent::cpu {
namespace {

enum class Weighting { kNone, kOneForAll, kPerRow };

struct Case {
  int64_t rows = 0, classes = 0;
  DType label_dtype = DType::kI32;
  Weighting weighting = Weighting::kNone;
  float logit_scale = 3.0f;
};

// The loss and residual in double, row by row, as ops/loss.cc defines them.
void Reference(const std::vector<float>& logits,
               const std::vector<int64_t>& labels,
               const std::vector<float>& weights, const Case& c,
               std::vector<double>& residual, double& loss) {
  residual.assign(logits.size(), 0.0);
  double total = 0;
  for (int64_t r = 0; r < c.rows; ++r) {
    const float* row = logits.data() + r * c.classes;
    double max = row[0];
    for (int64_t j = 1; j < c.classes; ++j)
      max = std::max(max, static_cast<double>(row[j]));
    double sum = 0;
    for (int64_t j = 0; j < c.classes; ++j) sum += std::exp(row[j] - max);
    const double weight = weights.empty()       ? 1.0
                          : weights.size() == 1 ? weights[0]
                                                : weights[r];
    for (int64_t j = 0; j < c.classes; ++j) {
      residual[r * c.classes + j] =
          (std::exp(row[j] - max) / sum - (j == labels[r] ? 1.0 : 0.0)) *
          weight;
    }
    total += weight * (max + std::log(sum) - row[labels[r]]);
  }
  loss = total / static_cast<double>(c.rows);
}

// Labels of `dtype` holding `values`, in `storage`.
ConstView LabelView(DType dtype, const std::vector<double>& values,
                    std::vector<int32_t>& i32, std::vector<int64_t>& i64,
                    std::vector<float>& f32) {
  const auto n = static_cast<int64_t>(values.size());
  switch (dtype) {
    case DType::kI32:
      i32.assign(values.begin(), values.end());
      return {i32.data(), dtype, n};
    case DType::kI64:
      i64.assign(values.begin(), values.end());
      return {i64.data(), dtype, n};
    default:
      f32.assign(values.begin(), values.end());
      return {f32.data(), dtype, n};
  }
}

class SoftmaxCrossentropyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HasFusedSoftmaxCrossentropy(10, DType::kI32))
      GTEST_SKIP() << "no AVX-512 on this CPU: the lowering takes other steps";
  }
};

TEST_F(SoftmaxCrossentropyTest, MatchesTheReferenceForEveryClassCount) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (int64_t classes = 1; classes <= 16; ++classes) {
    for (int64_t rows : {1, 5, 16, 17, 33, 200}) {
      for (DType dtype : {DType::kI32, DType::kI64, DType::kF32}) {
        for (Weighting weighting :
             {Weighting::kNone, Weighting::kOneForAll, Weighting::kPerRow}) {
          const Case c{rows, classes, dtype, weighting,
                       rows == 33 ? 60.0f : 3.0f};
          const std::string what = absl::StrCat(
              classes, " classes, ", rows, " rows, labels ", DTypeName(dtype),
              ", weighting ", static_cast<int>(weighting));
          ASSERT_TRUE(HasFusedSoftmaxCrossentropy(classes, dtype)) << what;
          std::vector<float> logits(rows * classes);
          for (float& v : logits) v = normal(rng) * c.logit_scale;
          std::vector<double> label_values(rows);
          std::vector<int64_t> labels(rows);
          for (int64_t r = 0; r < rows; ++r) {
            labels[r] = static_cast<int64_t>(rng() % classes);
            label_values[r] = static_cast<double>(labels[r]);
          }
          std::vector<float> weights;
          if (weighting == Weighting::kOneForAll) weights = {0.75f};
          if (weighting == Weighting::kPerRow) {
            for (int64_t r = 0; r < rows; ++r)
              weights.push_back(0.25f + static_cast<float>(r % 7));
          }
          std::vector<int32_t> i32;
          std::vector<int64_t> i64;
          std::vector<float> f32;
          const ConstView label_view =
              LabelView(dtype, label_values, i32, i64, f32);
          const ConstView weight_view{
              weights.empty() ? nullptr : weights.data(), DType::kF32,
              static_cast<int64_t>(weights.size())};
          // Sentinels after the residual: the stores must stay inside it.
          constexpr float kSentinel = 12345.0f;
          std::vector<float> residual(rows * classes + 32, kSentinel);
          float loss = 0;
          ASSERT_TRUE(SoftmaxCrossentropy(logits.data(), label_view,
                                          weight_view, rows, classes,
                                          residual.data(), &loss)
                          .ok())
              << what;
          std::vector<double> want_residual;
          double want_loss;
          Reference(logits, labels, weights, c, want_residual, want_loss);
          EXPECT_NEAR(loss, want_loss, 2e-6 * std::max(1.0, want_loss)) << what;
          for (int64_t i = 0; i < rows * classes; ++i) {
            const double weight = weights.empty()       ? 1.0
                                  : weights.size() == 1 ? weights[0]
                                                        : weights[i / classes];
            ASSERT_NEAR(residual[i], want_residual[i], 1e-6 * weight)
                << what << " element " << i;
          }
          for (int64_t i = rows * classes; i < rows * classes + 32; ++i)
            ASSERT_EQ(residual[i], kSentinel) << what << " past the end " << i;
        }
      }
    }
  }
}

TEST_F(SoftmaxCrossentropyTest, LossStaysExactWhenTheSoftmaxUnderflows) {
  // exp(-400) is 0 in f32: the loss comes from the logits, not the softmax.
  const std::vector<float> logits = {0, 200, -200, 0, 1, 0};
  const std::vector<int32_t> labels = {2, 1};
  std::vector<float> residual(6);
  float loss = 0;
  ASSERT_TRUE(SoftmaxCrossentropy(logits.data(),
                                  {labels.data(), DType::kI32, 2}, {}, 2, 3,
                                  residual.data(), &loss)
                  .ok());
  const double second = -std::log(std::exp(1.0) / (2.0 + std::exp(1.0)));
  EXPECT_NEAR(loss, (400.0 + second) / 2, 1e-4);
  EXPECT_NEAR(residual[1], 1.0, 1e-7);
  EXPECT_NEAR(residual[2], -1.0, 1e-7);
}

TEST_F(SoftmaxCrossentropyTest, BadLabelsNameTheSample) {
  const int64_t rows = 40, classes = 10;
  const std::vector<float> logits(rows * classes, 0.5f);
  std::vector<float> residual(rows * classes);
  const auto error = [&](DType dtype, double bad_value) {
    std::vector<double> values(rows, 3.0);
    values[21] = bad_value;
    values[30] = -1;  // a later bad label: the first one is reported
    std::vector<int32_t> i32;
    std::vector<int64_t> i64;
    std::vector<float> f32;
    float loss = 0;
    return std::string(
        SoftmaxCrossentropy(logits.data(),
                            LabelView(dtype, values, i32, i64, f32), {}, rows,
                            classes, residual.data(), &loss)
            .message());
  };
  EXPECT_EQ(error(DType::kI32, 10),
            "[sparse_categorical_crossentropy] label 10 at sample 21 is out "
            "of range for 10 classes");
  EXPECT_EQ(error(DType::kI32, -3),
            "[sparse_categorical_crossentropy] label -3 at sample 21 is out "
            "of range for 10 classes");
  // Beyond 32 bits: saturated, still out of range.
  EXPECT_NE(error(DType::kI64, 1099511627776.0)
                .find("at sample 21 is out of range for 10 classes"),
            std::string::npos);
  EXPECT_EQ(error(DType::kF32, 2.5),
            "[sparse_categorical_crossentropy] label 2.5 at sample 21 is not "
            "an integer");
  EXPECT_NE(error(DType::kF32, std::numeric_limits<double>::quiet_NaN())
                .find("label nan at sample 21"),
            std::string::npos);
}

TEST(SoftmaxCrossentropyScopeTest, ServesOnlyAFewClassesOfIndexLabels) {
  EXPECT_FALSE(HasFusedSoftmaxCrossentropy(0, DType::kI32));
  EXPECT_FALSE(HasFusedSoftmaxCrossentropy(17, DType::kI32));
  EXPECT_FALSE(HasFusedSoftmaxCrossentropy(10, DType::kF64));
}

}  // namespace
}  // namespace sequent::cpu
