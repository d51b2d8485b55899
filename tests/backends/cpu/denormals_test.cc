// Denormals flushed to zero while the CPU backend runs: on the calling thread
// and the OpenMP team, restored on the caller afterwards, and off on request.

#include "backends/cpu/denormals.h"

#include <omp.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/graph.h"
#include "core/graph_builder.h"
#include "gtest/gtest.h"
#include "ops/registry.h"

namespace sequent {
namespace {

// 1e-20 squared is 1e-40, a denormal f32 (the smallest normal is ~1.18e-38).
float SquareOfTiny() {
  volatile float tiny = 1e-20f;
  volatile float square = tiny * tiny;
  return square;
}

// How many threads of a team of `team` saw 1e-20^2 flushed to zero.
int ThreadsFlushing(int team) {
  std::atomic<int> flushing = 0;
#pragma omp parallel num_threads(team)
  if (SquareOfTiny() == 0.0f) ++flushing;
  return flushing.load();
}

class DenormalsTest : public ::testing::Test {
 protected:
  void TearDown() override { cpu::SetFlushDenormals(true); }
};

TEST_F(DenormalsTest, ScopeFlushesCallerAndTeamThenRestoresCaller) {
  ASSERT_NE(SquareOfTiny(), 0.0f);
  {
    const cpu::ScopedFlushDenormals flush(true, 2);
    EXPECT_EQ(SquareOfTiny(), 0.0f);
    EXPECT_EQ(ThreadsFlushing(2), 2);
  }
  EXPECT_NE(SquareOfTiny(), 0.0f);
  {
    const cpu::ScopedFlushDenormals keep(false, 2);
    EXPECT_NE(SquareOfTiny(), 0.0f);
    EXPECT_EQ(ThreadsFlushing(2), 0);
  }
}

TEST_F(DenormalsTest, ATeamThatGrowsIsSwitchedToo) {
  {
    const cpu::ScopedFlushDenormals flush(true, 1);
    EXPECT_EQ(SquareOfTiny(), 0.0f);
  }
  {
    const cpu::ScopedFlushDenormals flush(true, 3);
    EXPECT_EQ(ThreadsFlushing(3), 3);
  }
  const cpu::ScopedFlushDenormals keep(false, 3);
  EXPECT_EQ(ThreadsFlushing(3), 0);
}

// x * x over enough elements for the whole team, with x = 1e-20.
std::vector<float> SquaresOfTiny(CpuBackend& cpu) {
  constexpr int64_t kN = 1 << 20;
  Graph graph("squares");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  const ValueId x = b.Input("x", {DType::kF32, Shape{kN}});
  graph.AddOutput("y", b.Op("mul", {x, x}));
  EXPECT_TRUE(b.ok()) << b.status();
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 1, store.get());
  EXPECT_TRUE(exe.ok()) << exe.status();
  if (!exe.ok()) return {};
  Tensor input(DType::kF32, Shape{kN});
  for (float& v : input.data<float>()) v = 1e-20f;
  std::vector<Tensor> out;
  EXPECT_TRUE((*exe)->Run({{"x", &input}}, out).ok());
  const auto y = out[0].data<float>();
  return std::vector<float>(y.begin(), y.end());
}

TEST_F(DenormalsTest, RunsFlushByDefaultAndKeepDenormalsOnRequest) {
  CpuBackend cpu;
  cpu.SetNumThreads(2);
  EXPECT_TRUE(CpuBackend::flush_denormals());
  for (float y : SquaresOfTiny(cpu)) ASSERT_EQ(y, 0.0f);
  // The caller's own arithmetic is its own again after the run.
  EXPECT_NE(SquareOfTiny(), 0.0f);

  CpuBackend::SetFlushDenormals(false);
  const float exact = SquareOfTiny();
  for (float y : SquaresOfTiny(cpu)) ASSERT_EQ(y, exact);
}

}  // namespace
}  // namespace sequent
