#include "core/passes/constant_folding.h"

#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using pass_testing::RunPassOnText;

void ExpectFolding(absl::string_view input, absl::string_view expected,
                   bool expect_changed) {
  ConstantFoldingPass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, input);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->changed, expect_changed);
  EXPECT_EQ(result->text, Normalize(expected));
}

TEST(ConstantFoldingTest, FoldsAddOfConstants) {
  ExpectFolding(R"(graph "g" {
  %0 = constant() {value = [1.0, 2.0, 3.0]} : f32[3]
  %1 = constant() {value = [10.0, 20.0, 30.5]} : f32[3]
  %2 = add(%0, %1) : f32[3] loc("scale")
  output "y" = %2
}
)",
                R"(graph "g" {
  %0 = constant() {value = [11.0, 22.0, 33.5]} : f32[3] loc("scale")
  output "y" = %0
}
)",
                true);
}

TEST(ConstantFoldingTest, FoldsChainsAndBroadcastsAndKeepsTheRest) {
  // exp(0) * 3 folds to a uniform constant (stored as one value); the add reads
  // an input.
  ExpectFolding(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,2]
  %1 = constant() {value = [0.0]} : f32[2]
  %2 = exp(%1) : f32[2]
  %3 = constant() {value = [3.0]} : f32[]
  %4 = mul(%2, %3) : f32[2]
  %5 = add(%0, %4) : f32[N,2]
  output "y" = %5
}
)",
                R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,2]
  %1 = constant() {value = [3.0]} : f32[2]
  %2 = add(%0, %1) : f32[N,2]
  output "y" = %2
}
)",
                true);
}

TEST(ConstantFoldingTest, LeavesStatefulOpsAlone) {
  const char* input = R"(graph "g" {
  %0 = constant() {value = [1.0, 2.0]} : f32[2]
  %1, %2 = dropout(%0) {rate = 0.5, seed = 0, training = true} : f32[2], f32[2]
  output "y" = %1
}
)";
  ExpectFolding(input, input, false);
}

TEST(ConstantFoldingTest, LeavesLargeResultsAlone) {
  // 300 x 300 = 90000 elements, past the 65536 limit.
  const char* input = R"(graph "g" {
  %0 = constant() {value = [1.0]} : f32[300,300]
  %1 = constant() {value = [2.0]} : f32[300,300]
  %2 = add(%0, %1) : f32[300,300]
  output "y" = %2
}
)";
  ExpectFolding(input, input, false);
}

}  // namespace
}  // namespace sequent
