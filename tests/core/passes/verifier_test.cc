#include "core/passes/verifier.h"

#include <string>

#include "core/text_ir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ops/registry.h"

namespace sequent {
namespace {

using ::testing::HasSubstr;

constexpr absl::string_view kMlp = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[784,512]
  %2 = variable() {name = "b"} : f32[512]
  %3 = matmul(%0, %1) : f32[N,512] loc("dense_1")
  %4 = bias_add(%3, %2) : f32[N,512] loc("dense_1")
  %5 = relu(%4) : f32[N,512] loc("dense_1")
  output "y" = %5
}
)";

Graph Parse(absl::string_view text) {
  absl::StatusOr<Graph> graph = ParseGraph(text);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return graph.ok() ? *std::move(graph) : Graph();
}

std::string Verify(const Graph& graph) {
  absl::Status status = VerifyGraph(graph, ops::DefaultRegistry());
  return status.ok() ? "ok" : std::string(status.message());
}

TEST(VerifierTest, AcceptsAValidGraph) { EXPECT_EQ(Verify(Parse(kMlp)), "ok"); }

TEST(VerifierTest, CatchesAWrongRecordedType) {
  Graph graph = Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[784,512]
  %2 = matmul(%0, %1) : f32[N,10] loc("dense_1")
  output "y" = %2
}
)");
  EXPECT_EQ(Verify(graph),
            "%2 = matmul (layer 'dense_1'): output %2 is recorded as f32[N,10] "
            "but [matmul] "
            "infers f32[N,512] from f32[N,784], f32[784,512]");
}

TEST(VerifierTest, CatchesAnUpdateOfAnUndefinedVariable) {
  Graph graph = Parse(kMlp);
  graph.AddUpdate("w_typo", graph.FindOutput("y"));
  EXPECT_EQ(Verify(graph), "update of undefined variable 'w_typo'");
}

TEST(VerifierTest, CatchesAnUpdateOfTheWrongType) {
  Graph graph = Parse(kMlp);
  graph.AddUpdate("b", graph.FindOutput("y"));
  EXPECT_EQ(
      Verify(graph),
      "update of variable 'b' of type f32[512] reads %5 of type f32[N,512]");
}

TEST(VerifierTest, CatchesAReadOfARemovedNode) {
  Graph graph = Parse(kMlp);
  graph.RemoveNode(graph.value(graph.FindOutput("y")).producer -
                   1);  // the bias_add
  EXPECT_THAT(
      Verify(graph),
      HasSubstr("relu (layer 'dense_1'): input 0 reads %invalid_4, which no "
                "live node produces"));
}

TEST(VerifierTest, CatchesAnOutputOfARemovedNode) {
  Graph graph = Parse(kMlp);
  graph.RemoveNode(graph.value(graph.FindOutput("y")).producer);
  EXPECT_EQ(Verify(graph),
            "graph output 'y' reads %invalid_5, which no live node produces");
}

TEST(VerifierTest, CatchesACycle) {
  Graph graph = Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = relu(%0) : f32[N,4]
  %2 = tanh(%1) : f32[N,4]
  output "y" = %2
}
)");
  graph.mutable_node(graph.value(1).producer).inputs[0] = 2;
  EXPECT_THAT(Verify(graph), HasSubstr("cycle"));
}

TEST(VerifierTest, CatchesAValueProducedTwice) {
  Graph graph = Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = relu(%0) : f32[N,4]
  %2 = tanh(%0) : f32[N,4]
  output "y" = %2
}
)");
  graph.mutable_node(graph.value(2).producer).outputs[0] = 1;
  EXPECT_THAT(Verify(graph), HasSubstr("value %1 is also produced by"));
}

TEST(VerifierTest, CatchesUnknownOpsAndWrongArity) {
  EXPECT_EQ(Verify(Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = frobnicate(%0) : f32[N,4]
  output "y" = %1
}
)")),
            "%1 = frobnicate: unknown op 'frobnicate'");
  EXPECT_THAT(Verify(Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = relu(%0, %0) : f32[N,4]
  output "y" = %1
}
)")),
              HasSubstr("%1 = relu: [relu] expects 1 inputs"));
}

TEST(VerifierTest, CatchesMalformedStructuralNodes) {
  EXPECT_EQ(Verify(Parse(R"(graph "g" {
  %0 = input() : f32[N,4]
  output "y" = %0
}
)")),
            "%0 = input: an input needs a non-empty string attribute 'name'");
  EXPECT_EQ(Verify(Parse(R"(graph "g" {
  %0 = constant() : f32[2]
  output "y" = %0
}
)")),
            "%0 = constant: a constant needs a float list attribute 'value'");
  EXPECT_EQ(Verify(Parse(R"(graph "g" {
  %0 = constant() {value = [1.0, 2.0, 3.0]} : f32[2]
  output "y" = %0
}
)")),
            "%0 = constant: a constant of type f32[2] holds 3 values (one "
            "value, or one per "
            "element)");
  EXPECT_EQ(Verify(Parse(R"(graph "g" {
  %0 = variable() {name = "v"} : f32[N,2]
  output "y" = %0
}
)")),
            "%0 = variable: variable 'v' has type f32[N,2]; variables cannot "
            "depend on the batch");
  Graph with_input = Parse(kMlp);
  with_input.mutable_node(with_input.FindInput("x")).inputs.push_back(1);
  EXPECT_EQ(Verify(with_input),
            "%1 = input: input nodes take no inputs, got 1");
}

TEST(VerifierTest, CatchesDuplicateNames) {
  EXPECT_THAT(Verify(Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = input() {name = "x"} : f32[N,4]
  %2 = add(%0, %1) : f32[N,4]
  output "y" = %2
}
)")),
              HasSubstr("the name 'x' is also used by %0 = input"));
}

}  // namespace
}  // namespace sequent
