#include "core/passes/fusion.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using pass_testing::RunPassOnText;

FusionPolicy AcceptAll() {
  return {[](absl::string_view) { return true; }};
}

FusionPolicy AcceptOnly(std::string activation) {
  return {[activation](absl::string_view a) { return a == activation; }};
}

constexpr absl::string_view kHeader = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[784,512]
  %2 = variable() {name = "b"} : f32[512]
)";

std::string WithBody(absl::string_view body) {
  return absl::StrCat(kHeader, body, "}\n");
}

// Runs fusion and expects the graph to come out as `expected`.
void ExpectFusion(const FusionPolicy& policy, absl::string_view input,
                  absl::string_view expected, bool expect_changed) {
  FusionPass pass(ops::DefaultRegistry(), policy);
  auto result = RunPassOnText(pass, input);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->changed, expect_changed);
  EXPECT_EQ(result->text, Normalize(expected));
}

TEST(FusionTest, MatmulBiasAddReluBecomesDense) {
  ExpectFusion(
      AcceptAll(), WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512] loc("dense_1")
  %4 = bias_add(%3, %2) : f32[N,512] loc("dense_1")
  %5 = relu(%4) : f32[N,512] loc("relu_1")
  output "y" = %5
)"),
      WithBody(
          R"(  %3 = dense(%0, %1, %2) {activation = "relu"} : f32[N,512] loc("dense_1")
  output "y" = %3
)"),
      true);
}

TEST(FusionTest, DoesNotFireWhenMatmulResultHasTwoUses) {
  const std::string input =
      WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512] loc("dense_1")
  %4 = bias_add(%3, %2) : f32[N,512] loc("dense_1")
  %5 = relu(%4) : f32[N,512] loc("dense_1")
  output "y" = %5
  output "logits" = %3
)");
  ExpectFusion(AcceptAll(), input, input, false);
}

TEST(FusionTest, DoesNotFireWhenBiasAddResultHasTwoUsesButFusesTheBias) {
  // The activation cannot join (the pre-activation is used twice); the bias
  // still can.
  ExpectFusion(
      AcceptAll(), WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = bias_add(%3, %2) : f32[N,512]
  %5 = relu(%4) : f32[N,512]
  output "y" = %5
  output "pre" = %4
)"),
      WithBody(R"(  %3 = dense(%0, %1, %2) {activation = "linear"} : f32[N,512]
  %4 = relu(%3) : f32[N,512]
  output "y" = %4
  output "pre" = %3
)"),
      true);
}

TEST(FusionTest, DoesNotFireWhenPolicyRejectsEverything) {
  const std::string input = WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = bias_add(%3, %2) : f32[N,512]
  %5 = relu(%4) : f32[N,512]
  output "y" = %5
)");
  ExpectFusion(FusionPolicy{[](absl::string_view) { return false; }}, input,
               input, false);
  // An empty policy supports nothing.
  ExpectFusion(FusionPolicy{}, input, input, false);
}

TEST(FusionTest, DoesNotFuseActivationThePolicyRejects) {
  const std::string input = WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = relu(%3) : f32[N,512]
  output "y" = %4
)");
  ExpectFusion(AcceptOnly("sigmoid"), input, input, false);
}

TEST(FusionTest, PolicyRejectingTheActivationStillFusesTheBias) {
  ExpectFusion(
      AcceptOnly("linear"), WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = bias_add(%3, %2) : f32[N,512]
  %5 = relu(%4) : f32[N,512]
  output "y" = %5
)"),
      WithBody(R"(  %3 = dense(%0, %1, %2) {activation = "linear"} : f32[N,512]
  %4 = relu(%3) : f32[N,512]
  output "y" = %4
)"),
      true);
}

TEST(FusionTest, BiasOnlyForm) {
  ExpectFusion(
      AcceptOnly("linear"),
      WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512] loc("dense_2")
  %4 = bias_add(%3, %2) : f32[N,512] loc("dense_2")
  output "y" = %4
)"),
      WithBody(
          R"(  %3 = dense(%0, %1, %2) {activation = "linear"} : f32[N,512] loc("dense_2")
  output "y" = %3
)"),
      true);
}

TEST(FusionTest, BiasOnlyFormNeedsThePolicyToAcceptLinear) {
  const std::string input = WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = bias_add(%3, %2) : f32[N,512]
  output "y" = %4
)");
  ExpectFusion(AcceptOnly("relu"), input, input, false);
}

TEST(FusionTest, ActivationOnlyForm) {
  ExpectFusion(
      AcceptOnly("tanh"),
      WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512] loc("dense_3")
  %4 = tanh(%3) : f32[N,512] loc("dense_3")
  output "y" = %4
)"),
      WithBody(
          R"(  %3 = dense(%0, %1) {activation = "tanh"} : f32[N,512] loc("dense_3")
  output "y" = %3
)"),
      true);
}

TEST(FusionTest, ApproximateGeluIsNotFused) {
  const std::string input = WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = gelu(%3) {approximate = true} : f32[N,512]
  output "y" = %4
)");
  ExpectFusion(AcceptAll(), input, input, false);
}

TEST(FusionTest, TransposedMatmulIsNotFused) {
  const std::string input = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[512,784]
  %2 = variable() {name = "b"} : f32[512]
  %3 = matmul(%0, %1) {transpose_b = true} : f32[N,512]
  %4 = bias_add(%3, %2) : f32[N,512]
  output "y" = %4
}
)";
  ExpectFusion(AcceptAll(), input, input, false);
}

TEST(FusionTest, SoftmaxIsNotAFusableActivation) {
  const std::string input = WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = softmax(%3) : f32[N,512]
  output "y" = %4
)");
  ExpectFusion(AcceptAll(), input, input, false);
}

TEST(FusionTest, ParameterizedActivationsFuseOnlyWithDenseParameters) {
  // dense's elu has alpha 1 and its leaky_relu slope 0.2; other parameters stay
  // unfused.
  ExpectFusion(
      AcceptAll(), WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = elu(%3) {alpha = 1.0} : f32[N,512]
  output "y" = %4
)"),
      WithBody(R"(  %3 = dense(%0, %1) {activation = "elu"} : f32[N,512]
  output "y" = %3
)"),
      true);
  ExpectFusion(
      AcceptAll(), WithBody(R"(  %3 = matmul(%0, %1) : f32[N,512]
  %4 = bias_add(%3, %2) : f32[N,512]
  %5 = leaky_relu(%4) : f32[N,512]
  output "y" = %5
)"),
      WithBody(
          R"(  %3 = dense(%0, %1, %2) {activation = "leaky_relu"} : f32[N,512]
  output "y" = %3
)"),
      true);
  for (const char* act :
       {"elu(%3) {alpha = 0.5}", "leaky_relu(%3) {alpha = 0.3}"}) {
    const std::string input = WithBody(
        absl::StrCat("  %3 = matmul(%0, %1) : f32[N,512]\n  %4 = ", act,
                     " : f32[N,512]\n  output \"y\" = %4\n"));
    ExpectFusion(AcceptAll(), input, input, false);
  }
}

TEST(FusionTest, FusesEveryLayerOfAStack) {
  ExpectFusion(AcceptAll(), R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,8]
  %1 = variable() {name = "w1"} : f32[8,4]
  %2 = variable() {name = "b1"} : f32[4]
  %3 = variable() {name = "w2"} : f32[4,2]
  %4 = matmul(%0, %1) : f32[N,4] loc("dense_1")
  %5 = bias_add(%4, %2) : f32[N,4] loc("dense_1")
  %6 = sigmoid(%5) : f32[N,4] loc("dense_1")
  %7 = matmul(%6, %3) : f32[N,2] loc("dense_2")
  %8 = swish(%7) : f32[N,2] loc("dense_2")
  output "y" = %8
}
)",
               R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,8]
  %1 = variable() {name = "w1"} : f32[8,4]
  %2 = variable() {name = "b1"} : f32[4]
  %3 = variable() {name = "w2"} : f32[4,2]
  %4 = dense(%0, %1, %2) {activation = "sigmoid"} : f32[N,4] loc("dense_1")
  %5 = dense(%4, %3) {activation = "swish"} : f32[N,2] loc("dense_2")
  output "y" = %5
}
)",
               true);
}

}  // namespace
}  // namespace sequent
