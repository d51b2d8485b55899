#include "core/passes/canonicalize.h"

#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using pass_testing::RunPassOnText;

void ExpectCanonical(absl::string_view input, absl::string_view expected,
                     bool expect_changed) {
  CanonicalizePass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, input);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->changed, expect_changed);
  EXPECT_EQ(result->text, Normalize(expected));
}

TEST(CanonicalizeTest, RemovesIdentityReshape) {
  ExpectCanonical(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = reshape(%0) {shape = [-1, 4]} : f32[N,4]
  %2 = relu(%1) : f32[N,4]
  output "y" = %2
  output "r" = %1
}
)",
                  R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = relu(%0) : f32[N,4]
  output "y" = %1
  output "r" = %0
}
)",
                  true);
}

TEST(CanonicalizeTest, BinaryOpsBroadcastTheirOwnOperands) {
  ExpectCanonical(R"(graph "g" {
  %0 = input() {name = "w"} : f32[784,5]
  %1 = input() {name = "s"} : f32[]
  %2 = broadcast_to(%1) {shape = [784, 5]} : f32[784,5]
  %3 = mul(%0, %2) : f32[784,5]
  %4 = sub(%2, %0) : f32[784,5]
  output "m" = %3
  output "d" = %4
}
)",
                  // The broadcast is dead (left for DCE).
                  R"(graph "g" {
  %0 = input() {name = "w"} : f32[784,5]
  %1 = input() {name = "s"} : f32[]
  %2 = broadcast_to(%1) {shape = [784, 5]} : f32[784,5]
  %3 = mul(%0, %1) : f32[784,5]
  %4 = sub(%1, %0) : f32[784,5]
  output "m" = %3
  output "d" = %4
}
)",
                  true);
}

TEST(CanonicalizeTest, KeepsBroadcastsThatShapeTheResult) {
  // Neither operand has the result's shape without the broadcast.
  constexpr absl::string_view kGraph = R"(graph "g" {
  %0 = input() {name = "a"} : f32[4,1]
  %1 = input() {name = "s"} : f32[]
  %2 = broadcast_to(%1) {shape = [4, 3]} : f32[4,3]
  %3 = add(%0, %2) : f32[4,3]
  output "y" = %3
}
)";
  ExpectCanonical(kGraph, kGraph, false);
}

TEST(CanonicalizeTest, KeepsRealReshapesAndMergesReshapeChains) {
  ExpectCanonical(
      R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,2,3]
  %1 = reshape(%0) {shape = [-1, 6]} : f32[N,6]
  %2 = reshape(%1) {shape = [-1, 3, 2]} : f32[N,3,2]
  %3 = reshape(%2) {shape = [-1, 2, 3]} : f32[N,2,3]
  output "a" = %2
  output "b" = %3
}
)",
      // The chain x -> [N,6] -> [N,3,2] reads x directly; reshaping back to
      // x's type is the identity. The [N,6] reshape is dead (left for DCE).
      R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,2,3]
  %1 = reshape(%0) {shape = [-1, 6]} : f32[N,6]
  %2 = reshape(%0) {shape = [-1, 3, 2]} : f32[N,3,2]
  output "a" = %2
  output "b" = %0
}
)",
      true);
}

TEST(CanonicalizeTest, RemovesIdentityCastTransposeAndFlatten) {
  ExpectCanonical(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = cast(%0) {to = "f32"} : f32[N,4]
  %2 = transpose(%1) {perm = [0, 1]} : f32[N,4]
  %3 = flatten(%2) : f32[N,4]
  %4 = cast(%3) {to = "f64"} : f64[N,4]
  output "y" = %4
}
)",
                  R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = cast(%0) {to = "f64"} : f64[N,4]
  output "y" = %1
}
)",
                  true);
}

TEST(CanonicalizeTest, ComposesTransposes) {
  ExpectCanonical(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,2,3]
  %1 = transpose(%0) {perm = [0, 2, 1]} : f32[N,3,2]
  %2 = transpose(%1) {perm = [2, 0, 1]} : f32[2,N,3]
  %3 = transpose(%1) {perm = [0, 2, 1]} : f32[N,2,3]
  output "a" = %2
  output "b" = %3
}
)",
                  R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,2,3]
  %1 = transpose(%0) {perm = [0, 2, 1]} : f32[N,3,2]
  %2 = transpose(%0) {perm = [1, 0, 2]} : f32[2,N,3]
  output "a" = %2
  output "b" = %0
}
)",
                  true);
}

TEST(CanonicalizeTest, RemovesInactiveDropoutOnlyWhenItsMaskIsUnused) {
  ExpectCanonical(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1, %2 = dropout(%0) {rate = 0.5, seed = 0, training = false} : f32[N,4], f32[N,4]
  %3, %4 = dropout(%1) {rate = 0.0, seed = 0, training = true} : f32[N,4], f32[N,4]
  %5 = relu(%3) : f32[N,4]
  output "y" = %5
}
)",
                  R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = relu(%0) : f32[N,4]
  output "y" = %1
}
)",
                  true);

  const char* mask_used = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1, %2 = dropout(%0) {rate = 0.5, seed = 0, training = false} : f32[N,4], f32[N,4]
  %3 = mul(%1, %2) : f32[N,4]
  output "y" = %3
}
)";
  ExpectCanonical(mask_used, mask_used, false);

  const char* active = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1, %2 = dropout(%0) {rate = 0.5, seed = 0, training = true} : f32[N,4], f32[N,4]
  output "y" = %1
}
)";
  ExpectCanonical(active, active, false);
}

}  // namespace
}  // namespace sequent
