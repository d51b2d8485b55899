#include "core/passes/shape_inference.h"

#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using pass_testing::RunPassOnText;

TEST(ShapeInferenceTest, ErrorNamesLayerOpAndShapes) {
  ShapeInferencePass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[512,10]
  %2 = matmul(%0, %1) : f32[N,10] loc("dense_1")
  output "y" = %2
}
)");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            "layer 'dense_1': [matmul] inner dimensions differ: f32[N,784] x "
            "f32[512,10]");
}

TEST(ShapeInferenceTest, ErrorWithoutLayerHasNoLayerPrefix) {
  ShapeInferencePass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[512,10]
  %2 = matmul(%0, %1) : f32[N,10]
  output "y" = %2
}
)");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "[matmul] inner dimensions differ: f32[N,784] x f32[512,10]");
}

TEST(ShapeInferenceTest, RecomputesTypesAlongAChainAndFillsDefaults) {
  ShapeInferencePass pass(ops::DefaultRegistry());
  // The recorded types are stale (the weight was resized); every user is
  // recomputed.
  auto result = RunPassOnText(pass, R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[784,256]
  %2 = matmul(%0, %1) : f32[N,512] loc("dense_1")
  %3 = relu(%2) : f32[N,512] loc("dense_1")
  output "y" = %3
}
)");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->changed);
  const std::string expected = Normalize(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[784,256]
  %2 = matmul(%0, %1) {transpose_a = false, transpose_b = false} : f32[N,256] loc("dense_1")
  %3 = relu(%2) : f32[N,256] loc("dense_1")
  output "y" = %3
}
)");
  EXPECT_EQ(result->text, expected);

  // A second run finds nothing to do.
  auto again = RunPassOnText(pass, expected);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->text, expected);
}

TEST(ShapeInferenceTest, UnknownOpIsAnError) {
  ShapeInferencePass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = frobnicate(%0) : f32[N,4] loc("custom")
  output "y" = %1
}
)");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "layer 'custom': unknown op 'frobnicate'");
}

}  // namespace
}  // namespace sequent
