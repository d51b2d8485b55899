#include "core/memory_planner.h"

#include <gtest/gtest.h>

#include "core/text_ir.h"
#include "ops/registry.h"

namespace sequent {
namespace {

absl::StatusOr<MemoryPlan> Plan(const std::string& text, Graph* graph) {
  auto parsed = ParseGraph(text);
  if (!parsed.ok()) return parsed.status();
  *graph = *std::move(parsed);
  return PlanMemory(*graph, ops::DefaultRegistry());
}

TEST(MemoryPlannerTest, ReusesDeadBuffersAndWorksInPlace) {
  // A chain: %1 dies when %2 is made, so %3 can take %1's place; relu/neg work
  // in place.
  Graph g;
  auto plan = Plan(R"(graph "chain" {
  %0 = input() {name = "x"} : f32[256]
  %1 = exp(%0) : f32[256]
  %2 = relu(%1) : f32[256]
  %3 = exp(%2) : f32[256]
  %4 = neg(%3) : f32[256]
  output "y" = %4
}
)",
                   &g);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // Sum: five 1 KiB buffers. Planned: the feed plus two alternating buffers at
  // most.
  EXPECT_EQ(plan->total_intermediate_bytes, 5 * 1024);
  EXPECT_LE(plan->arena_bytes, 3 * 1024);
  const auto& b = plan->buffers;
  if (ops::DefaultRegistry().Find("relu")->inplace.empty())
    GTEST_SKIP() << "relu not in place";
  EXPECT_EQ(b[2].kind, BufferAssignment::Kind::kAlias);
  EXPECT_EQ(b[2].offset, b[1].offset);
  EXPECT_NE(b[0].offset, b[1].offset);  // The feed is never overwritten.
}

TEST(MemoryPlannerTest, OverlappingLifetimesNeverShare) {
  Graph g;
  auto plan = Plan(R"(graph "diamond" {
  %0 = input() {name = "x"} : f32[64]
  %1 = exp(%0) : f32[64]
  %2 = exp(%0) : f32[64]
  %3 = add(%1, %2) : f32[64]
  output "y" = %3
}
)",
                   &g);
  ASSERT_TRUE(plan.ok());
  const auto& b = plan->buffers;
  for (int i = 0; i < 4; ++i) {
    for (int j = i + 1; j < 4; ++j) {
      const bool overlap = b[i].first_step <= b[j].last_step &&
                           b[j].first_step <= b[i].last_step;
      const bool same_place = b[i].offset == b[j].offset;
      if (overlap && b[i].kind == BufferAssignment::Kind::kArena &&
          b[j].kind == BufferAssignment::Kind::kArena) {
        EXPECT_FALSE(same_place) << "%" << i << " and %" << j;
      }
    }
  }
}

TEST(MemoryPlannerTest, UpdatesWriteIntoTheirVariable) {
  Graph g;
  auto plan = Plan(R"(graph "sgd" {
  %0 = variable() {initializer = "zeros", name = "w", trainable = true} : f32[8]
  %1 = input() {name = "g"} : f32[8]
  %2 = input() {name = "learning_rate"} : f32[]
  %3 = input() {name = "it"} : f32[]
  %4 = sgd_update(%0, %1, %2, %3) : f32[8]
  update "w" = %4
}
)",
                   &g);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->buffers[4].kind, BufferAssignment::Kind::kVariable);
  EXPECT_EQ(plan->buffers[4].variable, "w");
  EXPECT_EQ(plan->persistent_bytes, 32);
}

TEST(MemoryPlannerTest, NeedsStaticShapes) {
  Graph g;
  auto plan = Plan(R"(graph "n" {
  %0 = input() {name = "x"} : f32[N,4]
  %1 = exp(%0) : f32[N,4]
  output "y" = %1
}
)",
                   &g);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("bind the batch size first"),
            std::string::npos);
  EXPECT_TRUE(PlanMemory(BindBatch(g, 4), ops::DefaultRegistry()).ok());
}

}  // namespace
}  // namespace sequent
