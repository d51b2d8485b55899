#include "core/passes/pipeline.h"

#include <string>
#include <utility>
#include <vector>

#include "core/passes/canonicalize.h"
#include "core/passes/dce.h"
#include "core/passes/shape_inference.h"
#include "core/text_ir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/core/passes/pass_test_util.h"

namespace sequent {
namespace {

using pass_testing::Normalize;
using ::testing::ElementsAre;

constexpr absl::string_view kInput = R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = reshape(%0) {shape = [-1, 4]} : f32[N,4]
  %2 = relu(%1) : f32[N,4] loc("act")
  %3 = tanh(%2) : f32[N,4]
  output "y" = %2
}
)";

Graph Parse(absl::string_view text) {
  absl::StatusOr<Graph> graph = ParseGraph(text);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return graph.ok() ? *std::move(graph) : Graph();
}

std::string CompactText(Graph graph) {
  absl::Status s = graph.Compact();
  return s.ok() ? PrintGraph(graph) : s.ToString();
}

// Records what the hook saw.
struct Printed {
  std::string pass;
  bool changed;
  std::string text;
};

// Breaks the graph it is given: the first relu's output gets a wrong recorded
// type.
class BreakerPass : public Pass {
 public:
  std::string name() const override { return "breaker"; }
  absl::StatusOr<bool> Run(Graph& graph) override {
    for (NodeId id : graph.LiveNodes()) {
      if (graph.node(id).op == "relu") {
        graph.mutable_value(graph.node(id).outputs[0]).type.shape = Shape{7};
        return true;
      }
    }
    return false;
  }
};

PassPipeline SmallPipeline() {
  PassPipeline pipeline(ops::DefaultRegistry());
  pipeline.AddPass<ShapeInferencePass>(ops::DefaultRegistry());
  pipeline.AddPass<CanonicalizePass>(ops::DefaultRegistry());
  pipeline.AddPass(std::make_unique<DcePass>());
  return pipeline;
}

TEST(PipelineTest, PrintsAfterTheNamedPassOnly) {
  PassPipeline pipeline = SmallPipeline();
  std::vector<Printed> printed;
  pipeline.SetPrintAfter(
      [&](absl::string_view pass, const Graph& graph, bool changed) {
        printed.push_back({std::string(pass), changed, CompactText(graph)});
      },
      {"canonicalize"});
  Graph graph = Parse(kInput);
  auto changed = pipeline.Run(graph);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  ASSERT_EQ(printed.size(), 1u);
  EXPECT_EQ(printed[0].pass, "canonicalize");
  EXPECT_TRUE(printed[0].changed);
  // After canonicalize the reshape is gone; the dead tanh is still there (DCE
  // runs later).
  EXPECT_EQ(printed[0].text, Normalize(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = relu(%0) : f32[N,4] loc("act")
  %2 = tanh(%1) : f32[N,4]
  output "y" = %1
}
)"));
  EXPECT_EQ(CompactText(graph), Normalize(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = relu(%0) : f32[N,4] loc("act")
  output "y" = %1
}
)"));
}

TEST(PipelineTest, PrintsAfterEveryPassWithAnEmptyFilter) {
  PassPipeline pipeline = SmallPipeline();
  std::vector<std::string> passes;
  std::vector<bool> changes;
  pipeline.SetPrintAfter(
      [&](absl::string_view pass, const Graph&, bool changed) {
        passes.emplace_back(pass);
        changes.push_back(changed);
      });
  Graph graph = Parse(kInput);
  ASSERT_TRUE(pipeline.Run(graph).ok());
  EXPECT_EQ(passes, pipeline.PassNames());
  EXPECT_THAT(passes, ElementsAre("shape_inference", "canonicalize", "dce"));
  // shape_inference fills reshape's and nothing else's defaults: reshape has
  // none, so whether it changes depends only on the recorded types, which are
  // right.
  EXPECT_THAT(changes, ElementsAre(false, true, true));
}

TEST(PipelineTest, ReportsThePassThatBrokeTheGraph) {
  PassPipeline pipeline = SmallPipeline();
  pipeline.AddPass(std::make_unique<BreakerPass>());
  pipeline.AddPass<ShapeInferencePass>(ops::DefaultRegistry());
  std::vector<std::string> passes;
  pipeline.SetPrintAfter([&](absl::string_view pass, const Graph&, bool) {
    passes.emplace_back(pass);
  });
  Graph graph = Parse(kInput);
  auto changed = pipeline.Run(graph);
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(changed.status().message(),
            // Values are named as PrintGraph numbers them after the removals.
            "after pass 'breaker': the graph is invalid: %1 = relu (layer "
            "'act'): output %1 "
            "is recorded as f32[7] but [relu] infers f32[N,4] from f32[N,4]");
  // The hook saw the broken graph; nothing ran after the breaker.
  EXPECT_THAT(passes,
              ElementsAre("shape_inference", "canonicalize", "dce", "breaker"));
}

TEST(PipelineTest, PassErrorsComeBackUnchanged) {
  PassPipeline pipeline = SmallPipeline();
  Graph graph = Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w"} : f32[512,10]
  %2 = matmul(%0, %1) : f32[N,10] loc("dense_1")
  output "y" = %2
}
)");
  auto changed = pipeline.Run(graph);
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.status().message(),
            "layer 'dense_1': [matmul] inner dimensions differ: f32[N,784] x "
            "f32[512,10]");
}

TEST(PipelineTest, ForwardPipelineSimplifiesAndFusesAnMlp) {
  PassPipeline pipeline = ForwardPipeline(
      ops::DefaultRegistry(), {[](absl::string_view) { return true; }});
  EXPECT_THAT(pipeline.PassNames(),
              ElementsAre("shape_inference", "canonicalize", "constant_folding",
                          "cse", "fusion", "dce"));
  Graph graph = Parse(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w1"} : f32[784,16]
  %2 = variable() {name = "b1"} : f32[16]
  %3 = variable() {name = "w2"} : f32[16,10]
  %4 = variable() {name = "b2"} : f32[10]
  %5 = reshape(%0) {shape = [-1, 784]} : f32[N,784] loc("flatten")
  %6 = matmul(%5, %1) : f32[N,16] loc("dense_1")
  %7 = bias_add(%6, %2) : f32[N,16] loc("dense_1")
  %8 = relu(%7) : f32[N,16] loc("dense_1")
  %9, %10 = dropout(%8) {rate = 0.5, training = false} : f32[N,16], f32[N,16] loc("dropout")
  %11 = matmul(%9, %3) : f32[N,10] loc("dense_2")
  %12 = bias_add(%11, %4) : f32[N,10] loc("dense_2")
  %13 = matmul(%9, %3) : f32[N,10] loc("unused")
  output "logits" = %12
}
)");
  auto changed = pipeline.Run(graph);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(CompactText(graph), Normalize(R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {name = "w1"} : f32[784,16]
  %2 = variable() {name = "b1"} : f32[16]
  %3 = variable() {name = "w2"} : f32[16,10]
  %4 = variable() {name = "b2"} : f32[10]
  %5 = dense(%0, %1, %2) {activation = "relu"} : f32[N,16] loc("dense_1")
  %6 = dense(%5, %3, %4) {activation = "linear"} : f32[N,10] loc("dense_2")
  output "logits" = %6
}
)"));
}

}  // namespace
}  // namespace sequent
