#include "core/passes/dce.h"

#include "gtest/gtest.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using pass_testing::RunPassOnText;

TEST(DceTest, RemovesUnusedNodesButKeepsInputsAndVariables) {
  DcePass pass;
  auto result = RunPassOnText(pass, R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = input() {name = "unused_feed"} : f32[N,4]
  %2 = variable() {name = "unused_weight"} : f32[4]
  %3 = relu(%0) : f32[N,4]
  %4 = tanh(%3) : f32[N,4]
  %5 = sigmoid(%1) : f32[N,4]
  %6 = constant() {value = [2.0]} : f32[]
  output "y" = %3
}
)");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->changed);
  EXPECT_EQ(result->text, Normalize(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = input() {name = "unused_feed"} : f32[N,4]
  %2 = variable() {name = "unused_weight"} : f32[4]
  %3 = relu(%0) : f32[N,4]
  output "y" = %3
}
)"));
}

TEST(DceTest, KeepsMultiOutputNodesWithOneUsedOutputAndNothingElseToDo) {
  DcePass pass;
  const char* input = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1, %2 = dropout(%0) {rate = 0.5, seed = 0, training = true} : f32[N,4], f32[N,4]
  output "y" = %1
}
)";
  auto result = RunPassOnText(pass, input);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->changed);
  EXPECT_EQ(result->text, Normalize(input));
}

}  // namespace
}  // namespace sequent
