// sequent's side of bench/run_all.sh: the benchmarked models built with the
// Keras-style API, compiled on Device::CPU(), and one executable step timed
// with feeds filled once (as fit() stages them, minus the row gathering).
//
// Benchmark names match bench/gemm_floor.cc so that bench/report.py can pair
// each with its floor; `samples_per_s` is the counter it reads. Threads: the
// CPU backend's default (all cores), or SEQUENT_NUM_THREADS. With
// SEQUENT_CPU_PROFILE=1 each benchmark prints its steps by time.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "bench/synthetic_feeds.h"
#include "benchmark/benchmark.h"
#include "core/tensor.h"
#include "core/training_graph.h"
#include "frontend/compile_options.h"
#include "frontend/device.h"
#include "frontend/error.h"
#include "frontend/layers.h"
#include "frontend/model.h"

namespace sequent {
namespace {

enum class Workload { kMlp, kCnn, kSklearn };

Sequential BuildModel(Workload workload) {
  switch (workload) {
    case Workload::kMlp:
      return Sequential(
          {Input({784}), Dense(512, "relu"), Dense(512, "relu"), Dense(10)});
    case Workload::kCnn: {
      Conv2DOptions relu;
      relu.activation = "relu";
      return Sequential({Input({28, 28, 1}), Conv2D(32, {3, 3}, relu),
                         MaxPooling2D({2, 2}), Conv2D(64, {3, 3}, relu),
                         MaxPooling2D({2, 2}), Flatten(), Dense(128, "relu"),
                         Dense(10)});
    }
    case Workload::kSklearn: {
      // MLPClassifier(hidden_layer_sizes=(5, 5, 5)): relu hidden layers, a
      // softmax output trained with log-loss (here: logits + sparse CE), and
      // its default L2 penalty alpha=1e-4 (0.5 * alpha / batch per weight),
      // which scikit-learn's step computes too.
      DenseOptions l2;
      l2.kernel_regularizer.l2 = 0.5 * 1e-4 / 200;
      return Sequential({Input({784}), Dense(5, "relu", l2),
                         Dense(5, "relu", l2), Dense(5, "relu", l2),
                         Dense(10, "linear", l2)});
    }
  }
  throw Error("unknown workload");
}

// One compiled model per workload, shared by every benchmark run of it (Google
// Benchmark calls each function several times; compiling once keeps the run
// short and the weights warm).
Sequential& Model(Workload workload) {
  static std::map<Workload, std::unique_ptr<Sequential>> models;
  auto& slot = models[workload];
  if (slot == nullptr) {
    auto model = std::make_unique<Sequential>(BuildModel(workload));
    model->compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true},
                   {}, Device::CPU());
    slot = std::move(model);
  }
  return *slot;
}

void RunStep(benchmark::State& state, Workload workload, GraphStage stage) {
  const int64_t batch = state.range(0);
  const bool train = stage == GraphStage::kTrain;
  Executable* executable = nullptr;
  try {
    executable = &Model(workload).executable(stage, batch);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  auto feeds = bench::MakeSyntheticFeeds(
      workload == Workload::kCnn ? Shape{batch, 28, 28, 1} : Shape{batch, 784},
      train);
  std::vector<Tensor> outputs;
  // Warm-up: the first run allocates outputs, first-touches buffers and JITs
  // oneDNN kernels.
  if (absl::Status s = executable->Run(feeds->list, outputs); !s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  for (auto _ : state) {
    if (absl::Status s = executable->Run(feeds->list, outputs); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
  }
  if (std::getenv("SEQUENT_CPU_PROFILE") != nullptr) {
    std::fprintf(stderr, "%s batch %lld profile:\n%s\n",
                 train ? "train" : "predict", static_cast<long long>(batch),
                 CpuBackend::ProfileString(*executable).c_str());
  }
  state.counters["samples_per_s"] =
      benchmark::Counter(static_cast<double>(batch),
                         benchmark::Counter::kIsIterationInvariantRate);
}

// MLP 784-512-512-10 (ReLU), sparse CE from logits, Adam: one train step.
void BM_MlpTrain(benchmark::State& state) {
  RunStep(state, Workload::kMlp, GraphStage::kTrain);
}
BENCHMARK(BM_MlpTrain)
    ->Arg(32)
    ->Arg(128)
    ->Arg(512)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The same MLP's predict graph (logits).
void BM_MlpPredict(benchmark::State& state) {
  RunStep(state, Workload::kMlp, GraphStage::kPredict);
}
BENCHMARK(BM_MlpPredict)
    ->Arg(1)
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// conv32-pool-conv64-pool-dense128-dense10 on 28x28x1: one train step.
void BM_CnnTrain(benchmark::State& state) {
  RunStep(state, Workload::kCnn, GraphStage::kTrain);
}
BENCHMARK(BM_CnnTrain)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

// The (5,5,5) net at batch 200; report.py turns the step into an epoch of
// 48000 samples (240 steps), which is what scikit-learn's partial_fit times.
void BM_SklearnStep(benchmark::State& state) {
  RunStep(state, Workload::kSklearn, GraphStage::kTrain);
}
BENCHMARK(BM_SklearnStep)
    ->Arg(200)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sequent
