// The generated training step of the 784-512-512-10 MLP: one static graph with
// forward (fused dense nodes), loss, backward, optimizer updates and metrics,
// and its memory plan.
#include "core/training_graph.h"

#include <gtest/gtest.h>

#include <iostream>

#include "absl/strings/match.h"
#include "core/graph_builder.h"
#include "core/memory_planner.h"
#include "core/passes/backward_fusion.h"
#include "core/passes/cse.h"
#include "core/passes/dce.h"
#include "core/passes/pipeline.h"
#include "core/text_ir.h"
#include "ops/registry.h"

namespace sequent {
namespace {

Graph MlpForward() {
  Graph g("mlp");
  GraphBuilder b(&g, &ops::DefaultRegistry());
  ValueId h = b.Input(kFeatureFeed, {DType::kF32, Shape{Shape::kBatch, 784}});
  const int64_t sizes[] = {784, 512, 512, 10};
  for (int i = 0; i < 3; ++i) {
    const std::string layer = i == 0 ? "dense" : "dense_" + std::to_string(i);
    b.SetLayer(layer);
    const ValueId w = b.Variable(
        layer + "/kernel", {DType::kF32, Shape{sizes[i], sizes[i + 1]}},
        {{"initializer", std::string("glorot_uniform")}, {"seed", int64_t{i}}});
    const ValueId bias =
        b.Variable(layer + "/bias", {DType::kF32, Shape{sizes[i + 1]}}, {});
    h = b.Op("bias_add", {b.Op("matmul", {h, w}), bias});
    if (i < 2) h = b.Op("relu", {h});
  }
  EXPECT_TRUE(b.ok()) << b.status();
  g.AddOutput(kPredictionOutput, h);
  return g;
}

TrainingGraphs MlpTrainingGraphs() {
  const OpRegistry& registry = ops::DefaultRegistry();
  Graph forward = MlpForward();
  FusionPolicy policy{
      [](absl::string_view act) { return act == "relu" || act == "linear"; }};
  EXPECT_TRUE(ForwardPipeline(registry, policy).Run(forward).ok());
  TrainingConfig config;
  config.loss = {"sparse_categorical_crossentropy", {{"from_logits", true}}};
  config.optimizer.name = "adam";
  config.metrics = {{"accuracy", "sparse_categorical_accuracy", {}}};
  config.label_type = {DType::kI32, Shape{Shape::kBatch}};
  auto graphs = BuildTrainingGraphs(forward, config, registry);
  EXPECT_TRUE(graphs.ok()) << graphs.status();
  PassPipeline training(registry);
  training.AddPass<CsePass>(registry);
  training.AddPass<BackwardFusionPass>(registry);
  training.AddPass<DcePass>();
  EXPECT_TRUE(training.Run(graphs->train).ok());
  return *std::move(graphs);
}

TEST(TrainingGraphTest, MlpStepHasEveryPart) {
  const TrainingGraphs graphs = MlpTrainingGraphs();
  const std::string text = PrintGraph(graphs.train);
  std::cout << text;
  // Forward: fused dense nodes, the last one linear.
  EXPECT_TRUE(
      absl::StrContains(text, "= dense(%0, %1, %2) {activation = \"relu\"}"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "{activation = \"linear\"}"));
  // Loss, its gradient, the backward of each dense, with the relu + bias
  // gradient fused.
  EXPECT_TRUE(absl::StrContains(text, "sparse_categorical_crossentropy("));
  EXPECT_TRUE(absl::StrContains(text, "sparse_categorical_crossentropy_grad("));
  EXPECT_TRUE(absl::StrContains(text, "activation_bias_grad("));
  EXPECT_TRUE(absl::StrContains(text, "loc(\"backward/dense_1\")"));
  // One fused Adam update per trainable variable, written back as updates.
  size_t updates = 0;
  for (size_t pos = 0;
       (pos = text.find("adam_update(", pos)) != std::string::npos; ++pos) {
    ++updates;
  }
  EXPECT_EQ(updates, 6u);
  EXPECT_TRUE(absl::StrContains(text, "update \"dense_2/kernel\" = "));
  EXPECT_TRUE(absl::StrContains(text, "update \"dense_2/kernel/m\" = "));
  EXPECT_TRUE(absl::StrContains(text, "update \"optimizer/iterations\" = "));
  EXPECT_TRUE(absl::StrContains(text, "output \"loss\" = "));
  EXPECT_TRUE(absl::StrContains(text, "output \"accuracy\" = "));
  EXPECT_TRUE(
      absl::StrContains(text, "= input() {name = \"learning_rate\"} : f32[]"));
  // Round trip of the whole training graph.
  auto parsed = ParseGraph(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(PrintGraph(*parsed), text);
}

TEST(TrainingGraphTest, MlpMemoryPlanReusesTheArena) {
  const TrainingGraphs graphs = MlpTrainingGraphs();
  const Graph bound = BindBatch(graphs.train, 128);
  auto plan = PlanMemory(bound, ops::DefaultRegistry());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::cout << plan->ToString(bound);
  std::cout << "MLP train step at batch 128: arena " << plan->arena_bytes
            << " bytes, all intermediates " << plan->total_intermediate_bytes
            << " bytes\n";
  EXPECT_GT(plan->arena_bytes, 0);
  // Well below the sum of all intermediates.
  EXPECT_LT(plan->arena_bytes * 2, plan->total_intermediate_bytes);
  // Weights and Adam slots persist outside the arena: 669,706 parameters x 3 (+
  // iterations).
  EXPECT_EQ(plan->persistent_bytes, (669706 * 3 + 1) * 4);
  // Every Adam update writes its variable and slots in place.
  for (const VariableUpdate& u : bound.updates()) {
    const BufferAssignment& b = plan->buffers[u.value];
    if (absl::StrContains(u.variable, "kernel") ||
        absl::StrContains(u.variable, "bias")) {
      EXPECT_EQ(b.kind, BufferAssignment::Kind::kVariable) << u.variable;
      EXPECT_EQ(b.variable, u.variable);
    }
  }
}

}  // namespace
}  // namespace sequent
