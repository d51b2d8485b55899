// Micro-benchmark of the CPU backend's executables for the MLP 784-512-512-10
// (ReLU), sparse categorical crossentropy from logits, Adam: one train step at
// batch 32/128/512 and predict at batch 1 and 128. The feeds are filled once;
// each iteration is one Executable::Run (no data staging), so this times the
// lowered schedule itself. bench/gemm_floor.cc gives the oneDNN GEMM floor of
// the same step. Threads: the backend's default (all cores) or
// SEQUENT_NUM_THREADS. The *Bf16 rows are the same models compiled under the
// "mixed_bfloat16" policy (bf16 GEMM operands, f32 accumulation and master
// weights; frontend/mixed_precision.h), run in the same process for a fair
// f32 vs bf16 comparison.
//
//   bazel run //bench:cpu_train_step_bench
//   SEQUENT_CPU_PLAN=1 bazel run //bench:cpu_train_step_bench  # memory plan
//   SEQUENT_CPU_PROFILE=1 ...  # time per step (profiling adds a wait per step)

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "bench/synthetic_feeds.h"
#include "benchmark/benchmark.h"
#include "core/tensor.h"
#include "core/training_graph.h"
#include "frontend/compile_options.h"
#include "frontend/device.h"
#include "frontend/layers.h"
#include "frontend/mixed_precision.h"
#include "frontend/model.h"

namespace sequent {
namespace {

// Compiles `m` under the dtype policy `policy`, restoring the global one.
Sequential* CompileUnder(Sequential* m, const char* policy) {
  const std::string previous = mixed_precision::global_policy();
  mixed_precision::set_global_policy(policy);
  m->compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
             Device::CPU());
  mixed_precision::set_global_policy(previous);
  return m;
}

Sequential* NewMlp() {
  return new Sequential(
      {Input({784}), Dense(512, "relu"), Dense(512, "relu"), Dense(10)});
}

// bench/sequent_bench.cc's CNN: conv32-pool-conv64-pool-dense128-dense10.
Sequential* NewCnn() {
  Conv2DOptions relu;
  relu.activation = "relu";
  return new Sequential({Input({28, 28, 1}), Conv2D(32, {3, 3}, relu),
                         MaxPooling2D({2, 2}), Conv2D(64, {3, 3}, relu),
                         MaxPooling2D({2, 2}), Flatten(), Dense(128, "relu"),
                         Dense(10)});
}

Sequential& Model(bool cnn, bool bf16) {
  if (cnn) {
    static Sequential* f32 = CompileUnder(NewCnn(), "float32");
    static Sequential* mixed = CompileUnder(NewCnn(), "mixed_bfloat16");
    return *(bf16 ? mixed : f32);
  }
  static Sequential* f32 = CompileUnder(NewMlp(), "float32");
  static Sequential* mixed = CompileUnder(NewMlp(), "mixed_bfloat16");
  return *(bf16 ? mixed : f32);
}

void Run(benchmark::State& state, GraphStage stage, bool cnn = false,
         bool bf16 = false) {
  const int64_t batch = state.range(0);
  const bool train = stage == GraphStage::kTrain;
  Executable* exe = nullptr;
  try {
    exe = &Model(cnn, bf16).executable(stage, batch);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  if (std::getenv("SEQUENT_CPU_PLAN") != nullptr) {
    std::fprintf(stderr, "%s batch %lld:\n%s\n", train ? "train" : "predict",
                 static_cast<long long>(batch),
                 CpuBackend::MemoryPlanString(*exe).c_str());
  }
  auto feeds = bench::MakeSyntheticFeeds(
      cnn ? Shape{batch, 28, 28, 1} : Shape{batch, 784}, train);
  std::vector<Tensor> outputs;
  // Warm-up: first touch of the arena, oneDNN's JIT kernels, output tensors.
  for (int i = 0; i < 3; ++i) {
    if (absl::Status s = exe->Run(feeds->list, outputs); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      return;
    }
  }
  for (auto _ : state) {
    if (absl::Status s = exe->Run(feeds->list, outputs); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
  }
  if (std::getenv("SEQUENT_CPU_PROFILE") != nullptr) {
    std::fprintf(stderr, "%s batch %lld profile:\n%s\n",
                 train ? "train" : "predict", static_cast<long long>(batch),
                 CpuBackend::ProfileString(*exe).c_str());
  }
  state.counters["samples_per_s"] =
      benchmark::Counter(static_cast<double>(batch),
                         benchmark::Counter::kIsIterationInvariantRate);
  if (const MemoryPlan* plan = CpuBackend::MemoryPlanOf(*exe)) {
    state.counters["arena_MiB"] =
        static_cast<double>(plan->arena_bytes) / (1 << 20);
  }
}

void BM_CpuMlpTrainStep(benchmark::State& state) {
  Run(state, GraphStage::kTrain);
}
BENCHMARK(BM_CpuMlpTrainStep)
    ->Arg(32)
    ->Arg(128)
    ->Arg(512)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_CpuCnnTrainStep(benchmark::State& state) {
  Run(state, GraphStage::kTrain, /*cnn=*/true);
}
BENCHMARK(BM_CpuCnnTrainStep)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_CpuMlpPredict(benchmark::State& state) {
  Run(state, GraphStage::kPredict);
}
BENCHMARK(BM_CpuMlpPredict)
    ->Arg(1)
    ->Arg(128)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// mixed_bfloat16.
void BM_CpuMlpTrainStepBf16(benchmark::State& state) {
  Run(state, GraphStage::kTrain, /*cnn=*/false, /*bf16=*/true);
}
BENCHMARK(BM_CpuMlpTrainStepBf16)
    ->Arg(32)
    ->Arg(128)
    ->Arg(512)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_CpuCnnTrainStepBf16(benchmark::State& state) {
  Run(state, GraphStage::kTrain, /*cnn=*/true, /*bf16=*/true);
}
BENCHMARK(BM_CpuCnnTrainStepBf16)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_CpuMlpPredictBf16(benchmark::State& state) {
  Run(state, GraphStage::kPredict, /*cnn=*/false, /*bf16=*/true);
}
BENCHMARK(BM_CpuMlpPredictBf16)
    ->Arg(1)
    ->Arg(128)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sequent
