#include "core/passes/cse.h"

#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using pass_testing::RunPassOnText;

void ExpectCse(absl::string_view input, absl::string_view expected,
               bool expect_changed) {
  CsePass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, input);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->changed, expect_changed);
  EXPECT_EQ(result->text, Normalize(expected));
}

TEST(CseTest, MergesDuplicatesAndTheirUsersInOneRun) {
  ExpectCse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = variable() {name = "w"} : f32[4,3]
  %2 = matmul(%0, %1) : f32[N,3]
  %3 = matmul(%0, %1) {transpose_a = false} : f32[N,3]
  %4 = relu(%2) : f32[N,3]
  %5 = relu(%3) : f32[N,3]
  %6 = add(%4, %5) : f32[N,3]
  output "y" = %6
  output "z" = %5
}
)",
            R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = variable() {name = "w"} : f32[4,3]
  %2 = matmul(%0, %1) : f32[N,3]
  %3 = relu(%2) : f32[N,3]
  %4 = add(%3, %3) : f32[N,3]
  output "y" = %4
  output "z" = %3
}
)",
            true);
}

TEST(CseTest, KeepsNodesWithDifferentAttributesOrInputs) {
  const char* input = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = input() {name = "x2"} : f32[N,4]
  %2 = variable() {name = "w"} : f32[4,4]
  %3 = matmul(%0, %2) : f32[N,4]
  %4 = matmul(%0, %2) {transpose_b = true} : f32[N,4]
  %5 = matmul(%1, %2) : f32[N,4]
  %6 = add(%3, %4) : f32[N,4]
  %7 = add(%6, %5) : f32[N,4]
  output "y" = %7
}
)";
  ExpectCse(input, input, false);
}

TEST(CseTest, KeepsDropoutNodesApart) {
  const char* input = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1, %2 = dropout(%0) {rate = 0.5, seed = 0, training = true} : f32[N,4], f32[N,4]
  %3, %4 = dropout(%0) {rate = 0.5, seed = 0, training = true} : f32[N,4], f32[N,4]
  %5 = add(%1, %3) : f32[N,4]
  output "y" = %5
}
)";
  ExpectCse(input, input, false);
}

TEST(CseTest, MergesEqualConstantsButNotInputsOrVariables) {
  ExpectCse(R"(graph "g" {
  %0 = variable() {name = "a"} : f32[2]
  %1 = variable() {name = "b"} : f32[2]
  %2 = constant() {value = [1.0, 2.0]} : f32[2]
  %3 = constant() {value = [1.0, 2.0]} : f32[2]
  %4 = constant() {value = [1.0, 3.0]} : f32[2]
  %5 = add(%0, %2) : f32[2]
  %6 = add(%1, %3) : f32[2]
  %7 = add(%5, %4) : f32[2]
  %8 = add(%7, %6) : f32[2]
  output "y" = %8
}
)",
            R"(graph "g" {
  %0 = variable() {name = "a"} : f32[2]
  %1 = variable() {name = "b"} : f32[2]
  %2 = constant() {value = [1.0, 2.0]} : f32[2]
  %3 = constant() {value = [1.0, 3.0]} : f32[2]
  %4 = add(%0, %2) : f32[2]
  %5 = add(%1, %2) : f32[2]
  %6 = add(%4, %3) : f32[2]
  %7 = add(%6, %5) : f32[2]
  output "y" = %7
}
)",
            true);
}

TEST(CseTest, ConstantsOfDifferentTypesStayApart) {
  const char* input = R"(graph "g" {
  %0 = constant() {value = [1.0]} : f32[2]
  %1 = constant() {value = [1.0]} : f32[3]
  output "a" = %0
  output "b" = %1
}
)";
  ExpectCse(input, input, false);
}

}  // namespace
}  // namespace sequent
