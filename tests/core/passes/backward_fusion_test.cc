#include "core/passes/backward_fusion.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/autodiff.h"
#include "core/graph_builder.h"
#include "core/text_ir.h"
#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using pass_testing::RunPassOnText;

// The backward of dense(x, w, b){activation = ...}: dy and the layer's output
// y, with the kernel gradient reading dz.
constexpr absl::string_view kHeader = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,3]
  %1 = input() {name = "dy"} : f32[N,4]
  %2 = input() {name = "y"} : f32[N,4]
)";

std::string WithBody(absl::string_view body) {
  return absl::StrCat(kHeader, body, "}\n");
}

void ExpectRewrite(absl::string_view input, absl::string_view expected,
                   bool expect_changed) {
  BackwardFusionPass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, input);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->changed, expect_changed);
  EXPECT_EQ(result->text, Normalize(expected));
}

TEST(BackwardFusionTest, ActivationGradAndBiasSumBecomeOneNode) {
  ExpectRewrite(
      WithBody(
          R"(  %3 = activation_grad(%1, %2) {activation = "relu"} : f32[N,4] loc("backward/dense_1")
  %4 = reduce_sum(%3) {axes = [0], keepdims = false} : f32[4] loc("backward/dense_1")
  %5 = matmul(%0, %3) {transpose_a = true, transpose_b = false} : f32[3,4] loc("backward/dense_1")
  output "dkernel" = %5
  output "dbias" = %4
)"),
      WithBody(
          R"(  %3, %4 = activation_bias_grad(%1, %2) {activation = "relu"} : f32[N,4], f32[4] loc("backward/dense_1")
  %5 = matmul(%0, %3) {transpose_a = true, transpose_b = false} : f32[3,4] loc("backward/dense_1")
  output "dkernel" = %5
  output "dbias" = %4
)"),
      true);
}

TEST(BackwardFusionTest, KeepsAttributesAndFeedsEveryUser) {
  ExpectRewrite(
      WithBody(
          R"(  %3 = activation_grad(%1, %2) {activation = "leaky_relu", alpha = 0.1} : f32[N,4] loc("backward/d")
  %4 = reduce_sum(%3) {axes = [0]} : f32[4] loc("backward/d")
  %5 = neg(%4) : f32[4]
  %6 = neg(%3) : f32[N,4]
  output "a" = %5
  output "b" = %6
  output "dz" = %3
)"),
      WithBody(
          R"(  %3, %4 = activation_bias_grad(%1, %2) {activation = "leaky_relu", alpha = 0.1} : f32[N,4], f32[4] loc("backward/d")
  %5 = neg(%4) : f32[4]
  %6 = neg(%3) : f32[N,4]
  output "a" = %5
  output "b" = %6
  output "dz" = %3
)"),
      true);
}

TEST(BackwardFusionTest, LeavesOtherReductionsAlone) {
  for (const char* attrs : {"{axes = [1]}", "{axes = [0], keepdims = true}",
                            "{axes = [0, 1]}", "{}"}) {
    SCOPED_TRACE(attrs);
    const std::string reduced =
        std::string(attrs).find("keepdims") != std::string::npos ? "f32[1,4]"
        : std::string(attrs) == "{axes = [1]}"                   ? "f32[N]"
                                                                 : "f32[]";
    const std::string text = WithBody(absl::StrCat(
        R"(  %3 = activation_grad(%1, %2) {activation = "tanh"} : f32[N,4]
  %4 = reduce_sum(%3) )",
        attrs, " : ", reduced, R"(
  output "s" = %4
)"));
    ExpectRewrite(text, text, false);
  }
}

TEST(BackwardFusionTest, NeedsTwoDimensionalOutputAndABiasSum) {
  const std::string rank3 = R"(graph "g" {
  %0 = input() {name = "dy"} : f32[N,2,4]
  %1 = input() {name = "y"} : f32[N,2,4]
  %2 = activation_grad(%0, %1) {activation = "sigmoid"} : f32[N,2,4]
  %3 = reduce_sum(%2) {axes = [0]} : f32[2,4]
  output "s" = %3
}
)";
  ExpectRewrite(rank3, rank3, false);

  const std::string no_sum = WithBody(
      R"(  %3 = activation_grad(%1, %2) {activation = "relu"} : f32[N,4]
  %4 = matmul(%0, %3) {transpose_a = true} : f32[3,4]
  output "dkernel" = %4
)");
  ExpectRewrite(no_sum, no_sum, false);

  // A reduce_sum over something else than the activation gradient.
  const std::string other_sum = WithBody(
      R"(  %3 = activation_grad(%1, %2) {activation = "relu"} : f32[N,4]
  %4 = reduce_sum(%1) {axes = [0]} : f32[4]
  output "dz" = %3
  output "s" = %4
)");
  ExpectRewrite(other_sum, other_sum, false);
}

TEST(BackwardFusionTest, FusesEachDenseLayer) {
  const std::string input = R"(graph "g" {
  %0 = input() {name = "dy"} : f32[N,4]
  %1 = input() {name = "y1"} : f32[N,4]
  %2 = input() {name = "y2"} : f32[N,4]
  %3 = activation_grad(%0, %2) {activation = "relu"} : f32[N,4] loc("backward/dense_2")
  %4 = reduce_sum(%3) {axes = [0]} : f32[4] loc("backward/dense_2")
  %5 = activation_grad(%3, %1) {activation = "sigmoid"} : f32[N,4] loc("backward/dense_1")
  %6 = reduce_sum(%5) {axes = [0]} : f32[4] loc("backward/dense_1")
  output "db2" = %4
  output "db1" = %6
}
)";
  const std::string expected = R"(graph "g" {
  %0 = input() {name = "dy"} : f32[N,4]
  %1 = input() {name = "y1"} : f32[N,4]
  %2 = input() {name = "y2"} : f32[N,4]
  %3, %4 = activation_bias_grad(%0, %2) {activation = "relu"} : f32[N,4], f32[4] loc("backward/dense_2")
  %5, %6 = activation_bias_grad(%3, %1) {activation = "sigmoid"} : f32[N,4], f32[4] loc("backward/dense_1")
  output "db2" = %4
  output "db1" = %6
}
)";
  ExpectRewrite(input, expected, true);
}

// The pattern is the one dense's gradient rule emits: differentiate a dense
// layer, fuse, and the bias sum is gone while both gradients keep their types.
TEST(BackwardFusionTest, FiresOnTheDenseGradient) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId x = b.Input("x", {DType::kF32, Shape{Shape::kBatch, 3}});
  const ValueId w = b.Variable("w", {DType::kF32, Shape{3, 4}}, {});
  const ValueId bias = b.Variable("b", {DType::kF32, Shape{4}}, {});
  const ValueId y =
      b.Op("dense", {x, w, bias}, {{"activation", std::string("sigmoid")}});
  const ValueId loss = b.Op("reduce_sum", {y});
  ASSERT_TRUE(b.ok()) << b.status();
  auto grads = AppendGradients(b, loss, std::vector<ValueId>{w, bias});
  ASSERT_TRUE(grads.ok()) << grads.status();
  g.AddOutput("dw", (*grads)[0]);
  g.AddOutput("db", (*grads)[1]);

  BackwardFusionPass pass(ops::DefaultRegistry());
  auto result = RunPassOnText(pass, PrintGraph(g));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->changed);
  EXPECT_NE(result->text.find("activation_bias_grad"), std::string::npos)
      << result->text;
  EXPECT_EQ(result->text.find("activation_grad("), std::string::npos)
      << result->text;
  EXPECT_NE(result->text.find(": f32[N,4], f32[4]"), std::string::npos)
      << result->text;
  // Only the loss's own reduce_sum is left.
  size_t sums = 0;
  for (size_t at = result->text.find("reduce_sum("); at != std::string::npos;
       at = result->text.find("reduce_sum(", at + 1)) {
    ++sums;
  }
  EXPECT_EQ(sums, 1u) << result->text;
}

TEST(BackwardFusionTest, Name) {
  EXPECT_EQ(BackwardFusionPass(ops::DefaultRegistry()).name(),
            "backward_fusion");
}

}  // namespace
}  // namespace sequent
