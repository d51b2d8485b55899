// The CUDA backend's MLP 784-512-512-10 (ReLU) train step, sparse categorical
// crossentropy from logits, Adam, at batch 128 and 8192, against the floor of
// the same step's eight GEMMs alone (cuBLASLt, algorithms chosen once, the
// forward ones with their bias/ReLU epilogue, replayed as one CUDA graph);
// and the CNN conv32-pool-conv64-pool-dense128-dense10 (28x28x1 input, 3x3
// ReLU convolutions on cuDNN, 2x2 max pooling) train step at batch 256.
// The MLP step and its GEMM floor also run in mixed precision (bf16 GEMM
// operands, f32 accumulation; CudaBackend::SetComputeDType): the "_bf16" rows.
// Each sequent step is Prefetch(next batch) + Run (feeds uploaded from pinned
// memory while the previous step runs). Prints one line per measurement:
//   bench <name> batch <B> ms_per_step <t> samples_per_s <s>
// tools/gpu/run_there.sh collects these lines into its table.

#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "backends/cuda/blaslt_matmul.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_status.h"
#include "core/tensor.h"
#include "core/training_graph.h"
#include "frontend/compile_options.h"
#include "frontend/device.h"
#include "frontend/layers.h"
#include "frontend/model.h"

namespace sequent {
namespace {

void Report(const char* name, int64_t batch, double seconds_per_step) {
  std::printf("bench %s batch %lld ms_per_step %.4f samples_per_s %.0f\n", name,
              static_cast<long long>(batch), seconds_per_step * 1e3,
              batch / seconds_per_step);
  std::fflush(stdout);
}

absl::Status Check(absl::Status s) {
  if (!s.ok())
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
  return s;
}

absl::Status BenchSequent(const char* name, const Graph& train, int64_t batch,
                          int steps, DType compute = DType::kF32) {
  CudaBackend backend;
  if (absl::Status s = backend.SetComputeDType(compute); !s.ok()) return s;
  auto store = backend.CreateVariableStore();
  auto compiled = backend.Compile(train, batch, store.get());
  if (!compiled.ok()) return compiled.status();
  auto* exe = dynamic_cast<CudaExecutable*>(compiled->get());
  // Two batches of feeds, alternated, filled once.
  std::mt19937 rng(7);
  struct Batch {
    std::vector<Tensor> tensors;
    std::vector<Feed> feeds;
  };
  std::vector<Batch> batches(2);
  for (Batch& b : batches) {
    b.tensors.reserve(8);
    for (NodeId id : train.InputNodes()) {
      const Node& node = train.node(id);
      const std::string name = StringAttrOr(node.attrs, "name", "");
      TensorType t = train.type(node.outputs[0]);
      t.shape = t.shape.WithBatch(batch);
      Tensor tensor(t);
      for (int64_t i = 0; i < tensor.num_elements(); ++i) {
        double v = 1.0;
        if (name == kFeatureFeed)
          v = std::uniform_real_distribution<double>(0, 1)(rng);
        if (name == kLabelFeed) v = static_cast<double>(rng() % 10);
        if (name == kLearningRateFeed) v = 1e-3;
        tensor.SetFromDouble(i, v);
      }
      b.tensors.push_back(std::move(tensor));
      b.feeds.push_back({name, &b.tensors.back()});
    }
  }
  std::vector<Tensor> outputs;
  const auto step = [&](int i) -> absl::Status {
    if (absl::Status s = exe->Prefetch(batches[(i + 1) % 2].feeds); !s.ok())
      return s;
    return exe->Run({}, outputs);
  };
  if (absl::Status s = exe->Prefetch(batches[0].feeds); !s.ok()) return s;
  for (int i = 0; i < 10; ++i) {
    if (absl::Status s = step(i); !s.ok()) return s;
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    if (absl::Status s = step(i); !s.ok()) return s;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  Report(name, batch, seconds / steps);
  std::vector<Tensor> drain;
  return exe->Run({}, drain);  // The last prefetched batch.
}

// With `bf16`, the same GEMMs read bf16 operands (the buffers are zeros in
// either type) and write f32: the mixed-precision floor.
absl::Status BenchGemmFloor(int64_t batch, int steps, bool bf16 = false) {
  using cuda::Epilogue;
  using cuda::LtMatmul;
  using cuda::LtMatmulShape;
  cublasLtHandle_t lt = nullptr;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&lt));
  cudaStream_t stream = nullptr;
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaStreamCreate(&stream));
  const size_t workspace_bytes = size_t{32} << 20;
  void* workspace = nullptr;
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaMalloc(&workspace, workspace_bytes));
  std::vector<void*> buffers;
  const auto alloc = [&](int64_t n) {
    void* p = nullptr;
    cudaMalloc(&p, n * sizeof(float));
    cudaMemset(p, 0, n * sizeof(float));
    buffers.push_back(p);
    return static_cast<float*>(p);
  };
  const int64_t B = batch;
  // Weights, biases, activations and gradients of 784-512-512-10.
  float *w1 = alloc(784 * 512), *w2 = alloc(512 * 512), *w3 = alloc(512 * 10);
  float *b1 = alloc(512), *b2 = alloc(512), *b3 = alloc(10);
  float *x = alloc(B * 784), *h1 = alloc(B * 512), *h2 = alloc(B * 512),
        *z3 = alloc(B * 10);
  float *d3 = alloc(B * 10), *d2 = alloc(B * 512), *d1 = alloc(B * 512);
  float *g1 = alloc(784 * 512), *g2 = alloc(512 * 512), *g3 = alloc(512 * 10);
  struct Gemm {
    LtMatmulShape shape;
    const float *a, *b, *bias;
    float* c;
  };
  const auto S = [](int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                    Epilogue e) {
    LtMatmulShape s;
    s.m = m, s.n = n, s.k = k, s.transpose_a = ta, s.transpose_b = tb,
    s.epilogue = e;
    return s;
  };
  std::vector<Gemm> gemms = {
      {S(B, 512, 784, false, false, Epilogue::kReluBias), x, w1, b1, h1},
      {S(B, 512, 512, false, false, Epilogue::kReluBias), h1, w2, b2, h2},
      {S(B, 10, 512, false, false, Epilogue::kBias), h2, w3, b3, z3},
      {S(B, 512, 10, false, true, Epilogue::kNone), d3, w3, nullptr, d2},
      {S(512, 10, B, true, false, Epilogue::kNone), h2, d3, nullptr, g3},
      {S(B, 512, 512, false, true, Epilogue::kNone), d2, w2, nullptr, d1},
      {S(512, 512, B, true, false, Epilogue::kNone), h1, d2, nullptr, g2},
      {S(784, 512, B, true, false, Epilogue::kNone), x, d1, nullptr, g1},
  };
  std::vector<std::unique_ptr<LtMatmul>> plans;
  for (Gemm& g : gemms) {
    g.shape.bf16_inputs = bf16;
    auto plan = LtMatmul::Create(lt, g.shape, workspace_bytes);
    if (!plan.ok()) return plan.status();
    plans.push_back(*std::move(plan));
  }
  SEQUENT_CUDA_RETURN_IF_ERROR(
      cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  absl::Status captured = absl::OkStatus();
  for (size_t i = 0; i < gemms.size() && captured.ok(); ++i) {
    captured = plans[i]->Run(lt, gemms[i].a, gemms[i].b, gemms[i].bias,
                             gemms[i].c, workspace, stream);
  }
  cudaGraph_t graph = nullptr;
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaStreamEndCapture(stream, &graph));
  if (!captured.ok()) return captured;
  cudaGraphExec_t exec = nullptr;
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < 10; ++i)
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec, stream));
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, stream);
  for (int i = 0; i < steps; ++i)
    SEQUENT_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec, stream));
  cudaEventRecord(stop, stream);
  SEQUENT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop));
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  Report(bf16 ? "cublaslt_gemm_floor_bf16" : "cublaslt_gemm_floor", batch,
         ms / 1e3 / steps);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  plans.clear();
  for (void* p : buffers) cudaFree(p);
  cudaFree(workspace);
  cudaStreamDestroy(stream);
  cublasLtDestroy(lt);
  return absl::OkStatus();
}

int Main() {
  if (!Check(CudaBackend::DeviceStatus()).ok()) return 1;
  Sequential model(
      {Input({784}), Dense(512, "relu"), Dense(512, "relu"), Dense(10)});
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  int failures = 0;
  for (auto [batch, steps] : {std::pair<int64_t, int>{128, 500}, {8192, 100}}) {
    failures +=
        !Check(BenchSequent("sequent_cuda_train_step", train, batch, steps))
             .ok();
    failures += !Check(BenchGemmFloor(batch, steps)).ok();
    failures += !Check(BenchSequent("sequent_cuda_bf16_train_step", train,
                                    batch, steps, DType::kBF16))
                     .ok();
    failures += !Check(BenchGemmFloor(batch, steps, /*bf16=*/true)).ok();
  }
  Conv2DOptions relu;
  relu.activation = "relu";
  Sequential cnn({Input({28, 28, 1}), Conv2D(32, {3, 3}, relu),
                  MaxPooling2D({2, 2}), Conv2D(64, {3, 3}, relu),
                  MaxPooling2D({2, 2}), Flatten(), Dense(128, "relu"),
                  Dense(10)});
  cnn.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
              Device::CPU());
  failures += !Check(BenchSequent("sequent_cuda_cnn_train_step",
                                  cnn.graph(GraphStage::kTrain), 256, 200))
                   .ok();
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace sequent

int main() { return sequent::Main(); }
