// The CPU backend's mixed precision (CpuBackend::SetComputeDType(kBF16), the
// "mixed_bfloat16" policy): every GEMM-heavy op against the reference backend
// with a bf16 tolerance, and against the f32 CPU backend to show that bf16 was
// really used (the results must differ); the schedule names bf16 primitives
// and shares one bf16 copy per value; a whole MLP train step against f32; and
// deterministic mode stays bit-identical.

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/host_variable_store.h"
#include "backends/reference/reference_backend.h"
#include "core/graph.h"
#include "core/graph_builder.h"
#include "core/training_graph.h"
#include "frontend/compile_options.h"
#include "frontend/device.h"
#include "frontend/layers.h"
#include "frontend/mixed_precision.h"
#include "frontend/model.h"
#include "gtest/gtest.h"
#include "ops/registry.h"

namespace sequent {
namespace {

constexpr int64_t N = Shape::kBatch;

#define SKIP_WITHOUT_BF16()                                         \
  if (CpuBackend::bf16_support() == CpuBackend::Bf16Support::kNone) \
  GTEST_SKIP()                                                      \
      << "oneDNN runs bf16 only on AVX-512 CPUs (natively with "    \
         "AVX512-BF16, emulated on AVX512-core); this CPU has neither"

Tensor RandomTensor(const TensorType& type, std::mt19937& rng) {
  Tensor t(type);
  std::uniform_real_distribution<double> dist(-2.0, 2.0);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, dist(rng));
  return t;
}

double MaxAbs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.num_elements(); ++i)
    m = std::max(m, std::abs(t.GetAsDouble(i)));
  return m;
}

// bf16 keeps 8 significant bits: each product is off by up to ~2^-8
// relatively, so a sum is compared against the size of the output.
void ExpectBf16Close(const Tensor& got, const Tensor& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.type(), want.type()) << what;
  const double bound = tol * std::max(1.0, MaxAbs(want));
  int misses = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const double g = got.GetAsDouble(i), w = want.GetAsDouble(i);
    if (!(std::abs(g - w) <= bound) && misses++ < 5) {
      ADD_FAILURE() << what << " element " << i << ": bf16 " << g
                    << " vs reference " << w << " (bound " << bound << ")";
    }
  }
}

bool Differ(const Tensor& a, const Tensor& b) {
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    if (a.GetAsDouble(i) != b.GetAsDouble(i)) return true;
  }
  return false;
}

struct Result {
  std::vector<Tensor> outputs;
  std::vector<std::string> steps;
};

Result RunOn(const Backend& backend, const Graph& graph, int64_t batch,
             const std::vector<Feed>& feeds) {
  Result r;
  auto store = backend.CreateVariableStore();
  auto exe = backend.Compile(graph, batch, store.get());
  EXPECT_TRUE(exe.ok()) << backend.name() << ": " << exe.status();
  if (!exe.ok()) return r;
  absl::Status s = (*exe)->Run(feeds, r.outputs);
  EXPECT_TRUE(s.ok()) << backend.name() << ": " << s;
  r.steps = CpuBackend::StepImplementations(**exe);
  return r;
}

// A graph of one op (or a backward pattern the backend rewrites), its random
// feeds, and the step label its GEMM gets.
struct Bf16Case {
  std::string name;
  std::function<void(Graph&, GraphBuilder&)> build;
  std::vector<std::pair<std::string, TensorType>> inputs;
  std::string gemm_label;
};

std::ostream& operator<<(std::ostream& os, const Bf16Case& c) {
  return os << c.name;
}

class Bf16OpTest : public ::testing::TestWithParam<Bf16Case> {};

TEST_P(Bf16OpTest, MatchesReferenceAndUsesBf16) {
  SKIP_WITHOUT_BF16();
  const Bf16Case& c = GetParam();
  Graph graph(c.name);
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  c.build(graph, b);
  ASSERT_TRUE(b.ok()) << b.status();
  constexpr int64_t kBatch = 16;
  std::mt19937 rng(5);
  std::vector<Tensor> tensors;
  for (const auto& [name, type] : c.inputs) {
    tensors.push_back(
        RandomTensor({type.dtype, type.shape.WithBatch(kBatch)}, rng));
  }
  std::vector<Feed> feeds;
  for (size_t i = 0; i < tensors.size(); ++i)
    feeds.push_back({c.inputs[i].first, &tensors[i]});

  ReferenceBackend reference;
  CpuBackend f32, bf16;
  ASSERT_TRUE(bf16.SetComputeDType(DType::kBF16).ok());
  const Result want = RunOn(reference, graph, kBatch, feeds);
  const Result plain = RunOn(f32, graph, kBatch, feeds);
  const Result mixed = RunOn(bf16, graph, kBatch, feeds);
  ASSERT_EQ(mixed.outputs.size(), want.outputs.size());
  ASSERT_EQ(plain.outputs.size(), want.outputs.size());
  bool any_differs = false;
  for (size_t i = 0; i < want.outputs.size(); ++i) {
    ExpectBf16Close(mixed.outputs[i], want.outputs[i], 1e-2,
                    absl::StrCat(c.name, " output ", i));
    ExpectBf16Close(plain.outputs[i], want.outputs[i], 1e-5,
                    absl::StrCat(c.name, " f32 output ", i));
    any_differs |= Differ(mixed.outputs[i], plain.outputs[i]);
  }
  EXPECT_TRUE(any_differs) << c.name << ": bf16 gave exactly the f32 result";

  const std::string steps = absl::StrJoin(mixed.steps, "\n");
  bool gemm_in_bf16 = false;
  for (const std::string& step : mixed.steps) {
    if (absl::StartsWith(step, c.gemm_label) &&
        absl::StrContains(step, "[bf16]") &&
        !absl::StartsWith(step.substr(step.find(": ") + 2), "to bf16")) {
      gemm_in_bf16 = true;
      // With AVX512-BF16 oneDNN must pick a jit/brgemm kernel, not its
      // reference one.
      if (CpuBackend::bf16_support() == CpuBackend::Bf16Support::kNative) {
        EXPECT_FALSE(absl::StrContains(step, "ref")) << step;
      }
    }
  }
  EXPECT_TRUE(gemm_in_bf16) << steps;
  EXPECT_FALSE(absl::StrContains(absl::StrJoin(plain.steps, "\n"), "[bf16]"));
}

TensorType F32(std::vector<int64_t> dims) {
  return {DType::kF32, Shape(std::move(dims))};
}

Bf16Case OneOp(std::string name, std::string op, std::vector<TensorType> inputs,
               Attributes attrs = {}) {
  Bf16Case c;
  c.name = name;
  c.gemm_label = op;
  for (size_t i = 0; i < inputs.size(); ++i)
    c.inputs.push_back({absl::StrCat("in", i), inputs[i]});
  c.build = [c, op, attrs](Graph& g, GraphBuilder& b) {
    std::vector<ValueId> in;
    for (const auto& [n, t] : c.inputs) in.push_back(b.Input(n, t));
    std::vector<ValueId> outs = b.OpMulti(op, in, attrs);
    for (size_t i = 0; i < outs.size(); ++i)
      g.AddOutput(absl::StrCat("out", i), outs[i]);
  };
  return c;
}

std::vector<Bf16Case> Cases() {
  std::vector<Bf16Case> cases;
  cases.push_back(OneOp("dense_relu", "dense",
                        {F32({N, 96}), F32({96, 40}), F32({40})},
                        {{"activation", std::string("relu")}}));
  cases.push_back(
      OneOp("dense_no_bias", "dense", {F32({N, 96}), F32({96, 40})}));
  cases.push_back(OneOp("matmul", "matmul", {F32({N, 96}), F32({96, 40})}));
  // A dense layer's input gradient dz W^T (inner product backward data).
  cases.push_back(OneOp("matmul_tb_backward_data", "matmul",
                        {F32({N, 40}), F32({96, 40})},
                        {{"transpose_b", true}}));
  cases.push_back(OneOp("matmul_ta", "matmul", {F32({N, 96}), F32({N, 40})},
                        {{"transpose_a", true}}));
  // A dense layer's weight and bias gradients, rewritten into one
  // cpu.dense_backward_weights.
  {
    Bf16Case c;
    c.name = "dense_backward_weights";
    c.gemm_label = "cpu.dense_backward_weights";
    c.inputs = {{"x", F32({N, 96})}, {"dz", F32({N, 40})}};
    c.build = [](Graph& g, GraphBuilder& b) {
      const ValueId x = b.Input("x", F32({N, 96}));
      const ValueId dz = b.Input("dz", F32({N, 40}));
      g.AddOutput("dw", b.Op("matmul", {x, dz}, {{"transpose_a", true}}));
      g.AddOutput(
          "db", b.Op("reduce_sum", {dz}, {{"axes", std::vector<int64_t>{0}}}));
    };
    cases.push_back(c);
  }
  cases.push_back(OneOp("conv2d_valid", "conv2d",
                        {F32({N, 10, 10, 8}), F32({3, 3, 8, 16})}));
  cases.push_back(OneOp("conv2d_same_stride2", "conv2d",
                        {F32({N, 9, 7, 8}), F32({3, 2, 8, 16})},
                        {{"padding", std::string("same")},
                         {"strides", std::vector<int64_t>{2, 2}}}));
  cases.push_back(
      OneOp("conv2d_backprop_input", "conv2d_backprop_input",
            {F32({N, 8, 8, 16}), F32({3, 3, 8, 16})},
            {{"input_shape", std::vector<int64_t>{-1, 10, 10, 8}}}));
  cases.push_back(OneOp("conv2d_backprop_filter", "conv2d_backprop_filter",
                        {F32({N, 10, 10, 8}), F32({N, 8, 8, 16})},
                        {{"filter_shape", std::vector<int64_t>{3, 3, 8, 16}}}));
  // Filter and bias gradients as one cpu.conv2d_backward_weights.
  {
    Bf16Case c;
    c.name = "conv2d_backward_weights";
    c.gemm_label = "cpu.conv2d_backward_weights";
    c.inputs = {{"x", F32({N, 10, 10, 8})}, {"dz", F32({N, 8, 8, 16})}};
    c.build = [](Graph& g, GraphBuilder& b) {
      const ValueId x = b.Input("x", F32({N, 10, 10, 8}));
      const ValueId dz = b.Input("dz", F32({N, 8, 8, 16}));
      g.AddOutput("dk",
                  b.Op("conv2d_backprop_filter", {x, dz},
                       {{"filter_shape", std::vector<int64_t>{3, 3, 8, 16}}}));
      g.AddOutput("db", b.Op("reduce_sum", {dz},
                             {{"axes", std::vector<int64_t>{0, 1, 2}}}));
    };
    cases.push_back(c);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Ops, Bf16OpTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(CpuBf16Test, SetComputeDTypeAcceptsF32AndBf16Only) {
  CpuBackend cpu;
  EXPECT_EQ(cpu.compute_dtype(), DType::kF32);
  EXPECT_TRUE(cpu.SetComputeDType(DType::kBF16).ok());
  EXPECT_EQ(cpu.compute_dtype(), DType::kBF16);
  const absl::Status s = cpu.SetComputeDType(DType::kF16);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.message(), "f32 or bf16")) << s;
  EXPECT_EQ(cpu.compute_dtype(), DType::kBF16);
}

// Without AVX-512 (cpu_bf16_avx2_test runs this file with oneDNN capped at
// AVX2) bf16 compiles fail saying what to do; f32 still compiles.
TEST(CpuBf16Test, WithoutAvx512CompileSaysToUseFloat32) {
  if (CpuBackend::bf16_support() != CpuBackend::Bf16Support::kNone)
    GTEST_SKIP() << "this CPU runs bf16 (cpu_bf16_avx2_test caps oneDNN at "
                    "AVX2 to run this test)";
  Graph g("dense");
  GraphBuilder b(&g, &ops::DefaultRegistry());
  g.AddOutput("y", b.Op("dense", {b.Input("x", F32({N, 32})),
                                  b.Input("w", F32({32, 32}))}));
  ASSERT_TRUE(b.ok()) << b.status();
  CpuBackend f32, bf16;
  ASSERT_TRUE(bf16.SetComputeDType(DType::kBF16).ok());
  auto store = bf16.CreateVariableStore();
  auto exe = bf16.Compile(g, 32, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_EQ(exe.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(absl::StrContains(exe.status().message(), "AVX-512"))
      << exe.status();
  EXPECT_TRUE(absl::StrContains(exe.status().message(), "float32"))
      << exe.status();
  EXPECT_TRUE(f32.Compile(g, 32, store.get()).ok());
}

// ---- Whole train steps.

Sequential Mlp() {
  return Sequential(
      {Input({64}), Dense(48, "relu"), Dense(32, "relu"), Dense(10)});
}

struct Batch {
  Tensor x, y, sample_weight, learning_rate;
  std::vector<Feed> feeds;
};

Batch RandomBatch(int64_t batch, std::mt19937& rng) {
  Batch b;
  b.x = RandomTensor(F32({batch, 64}), rng);
  b.y = Tensor(DType::kI32, Shape{batch});
  for (int32_t& v : b.y.data<int32_t>()) v = static_cast<int32_t>(rng() % 10);
  b.sample_weight = Tensor(DType::kF32, Shape{batch});
  for (float& v : b.sample_weight.data<float>()) v = 1.0f;
  b.learning_rate = Tensor::Scalar<float>(1e-3f);
  b.feeds = {{kFeatureFeed, &b.x},
             {kLabelFeed, &b.y},
             {kSampleWeightFeed, &b.sample_weight},
             {kLearningRateFeed, &b.learning_rate}};
  return b;
}

// The schedule of the MLP 64-48-32-10's train step at batch 32. The GEMMs of
// the 10-class output layer (forward, input and weight gradients) have a
// dimension under 16 and stay f32; the other five (two forwards, the second
// layer's input gradient, two weight gradients) read bf16, and each value they
// read is converted once: x and h1 (forward sources, reused by the weight
// gradients), the two kernels (the second reused by its input gradient) and
// the two output gradients dz (dz2 reused by its input and weight gradients).
TEST(CpuBf16Test, TrainStepSharesOneBf16CopyPerValue) {
  SKIP_WITHOUT_BF16();
  Sequential model = Mlp();
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  CpuBackend cpu;
  ASSERT_TRUE(cpu.SetComputeDType(DType::kBF16).ok());
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(model.graph(GraphStage::kTrain), 32, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  int conversions = 0, gemms = 0;
  const std::vector<std::string> steps = CpuBackend::StepImplementations(**exe);
  for (const std::string& step : steps) {
    if (!absl::StrContains(step, "[bf16]")) continue;
    if (absl::StartsWith(step.substr(step.find(": ") + 2), "to bf16")) {
      ++conversions;
    } else {
      ++gemms;
    }
  }
  const std::string all = absl::StrJoin(steps, "\n");
  EXPECT_EQ(gemms, 5) << all;
  EXPECT_EQ(conversions, 6) << all;
}

// Predict at batch 1 runs bf16 only where bf16 is native (the weights' bf16
// copies are kept across runs, and the GEMM is faster than f32's; emulated it
// is slower): elsewhere it stays f32, the same schedule and result as without
// bf16. At batch 64 it runs bf16 everywhere.
TEST(CpuBf16Test, PredictAtBatchOneRunsBf16WhereNative) {
  SKIP_WITHOUT_BF16();
  Sequential model = Mlp();
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  const Graph& predict = model.graph(GraphStage::kPredict);
  CpuBackend f32, bf16;
  ASSERT_TRUE(bf16.SetComputeDType(DType::kBF16).ok());
  // One GEMM formulation for both (the timed choice may differ and round
  // differently).
  CpuBackend::SetFixedKernelChoice(true);
  std::mt19937 rng(1);
  for (int64_t batch : {1, 64}) {
    Tensor x = RandomTensor(F32({batch, 64}), rng);
    const std::vector<Feed> feeds = {{kFeatureFeed, &x}};
    const Result plain = RunOn(f32, predict, batch, feeds);
    const Result mixed = RunOn(bf16, predict, batch, feeds);
    ASSERT_EQ(plain.outputs.size(), 1u);
    ASSERT_EQ(mixed.outputs.size(), 1u);
    const std::string steps = absl::StrJoin(mixed.steps, "\n");
    const bool native =
        CpuBackend::bf16_support() == CpuBackend::Bf16Support::kNative;
    if (batch == 1 && !native) {
      EXPECT_FALSE(absl::StrContains(steps, "[bf16]")) << steps;
      EXPECT_FALSE(Differ(mixed.outputs[0], plain.outputs[0]));
    } else {
      EXPECT_TRUE(absl::StrContains(steps, "[bf16]")) << steps;
      EXPECT_TRUE(Differ(mixed.outputs[0], plain.outputs[0]));
      ExpectBf16Close(mixed.outputs[0], plain.outputs[0], 2e-2, "predict");
    }
  }
  CpuBackend::SetFixedKernelChoice(false);
}

// Two Adam steps on the f32 and the bf16 CPU backend from the same initial
// variables: losses and every variable and slot agree loosely (bf16
// gradients, f32 master weights).
TEST(CpuBf16Test, MlpTrainStepsMatchF32) {
  SKIP_WITHOUT_BF16();
  Sequential model = Mlp();
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true},
                {"accuracy"}, Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  CpuBackend f32, bf16;
  ASSERT_TRUE(bf16.SetComputeDType(DType::kBF16).ok());
  auto f32_store = f32.CreateVariableStore();
  auto bf16_store = bf16.CreateVariableStore();
  constexpr int64_t kBatch = 32;
  auto f32_exe = f32.Compile(train, kBatch, f32_store.get());
  auto bf16_exe = bf16.Compile(train, kBatch, bf16_store.get());
  ASSERT_TRUE(f32_exe.ok() && bf16_exe.ok());
  std::mt19937 rng(3);
  for (int step = 0; step < 2; ++step) {
    Batch batch = RandomBatch(kBatch, rng);
    std::vector<Tensor> f32_out, bf16_out;
    ASSERT_TRUE((*f32_exe)->Run(batch.feeds, f32_out).ok());
    absl::Status s = (*bf16_exe)->Run(batch.feeds, bf16_out);
    ASSERT_TRUE(s.ok()) << s;
    for (size_t i = 0; i < f32_out.size(); ++i) {
      ExpectBf16Close(bf16_out[i], f32_out[i], 2e-2,
                      absl::StrCat("step ", step, " output ",
                                   (*f32_exe)->output_names()[i]));
    }
  }
  bool any_differs = false;
  for (const std::string& name : f32_store->Names()) {
    auto want = f32_store->Read(name);
    auto got = bf16_store->Read(name);
    ASSERT_TRUE(want.ok() && got.ok()) << name;
    ExpectBf16Close(*got, *want, 2e-2, absl::StrCat("variable ", name));
    any_differs |= Differ(*got, *want);
  }
  EXPECT_TRUE(any_differs) << "bf16 training gave exactly the f32 variables";
}

// The store keeps a bf16 copy of each weight across runs (written by Adam's
// update in the same pass, converted again only after another write). After
// every kind of write (train steps of two executables, Write from outside)
// a predict on the store must equal, bit for bit, a predict on a plain copy of
// the variables, which converts the weights afresh each run.
TEST(CpuBf16Test, PersistentWeightCopiesFollowEveryWrite) {
  SKIP_WITHOUT_BF16();
  CpuBackend::SetFixedKernelChoice(true);  // Same GEMMs in both compiles.
  for (const Optimizer& optimizer :
       {Optimizer(Adam{}), Optimizer(SGD{.learning_rate = 0.01})}) {
    Sequential model = Mlp();
    model.compile(optimizer, SparseCategoricalCrossentropy{.from_logits = true},
                  {}, Device::CPU());
    const Graph& train = model.graph(GraphStage::kTrain);
    const Graph& predict = model.graph(GraphStage::kPredict);
    CpuBackend cpu;
    ASSERT_TRUE(cpu.SetComputeDType(DType::kBF16).ok());
    auto store = cpu.CreateVariableStore();
    auto train32 = cpu.Compile(train, 32, store.get());
    auto train16 = cpu.Compile(train, 16, store.get());
    auto predict64 = cpu.Compile(predict, 64, store.get());
    ASSERT_TRUE(train32.ok() && train16.ok() && predict64.ok());
    std::mt19937 rng(21);
    Tensor x = RandomTensor(F32({64, 64}), rng);
    const std::vector<Feed> feeds = {{kFeatureFeed, &x}};
    auto check = [&](const std::string& when) {
      std::vector<Tensor> got;
      ASSERT_TRUE((*predict64)->Run(feeds, got).ok());
      HostVariableStore plain;
      for (const std::string& name : store->Names())
        ASSERT_TRUE(plain.Write(name, *store->Read(name)).ok());
      auto fresh = cpu.Compile(predict, 64, &plain);
      ASSERT_TRUE(fresh.ok()) << fresh.status();
      std::vector<Tensor> want;
      ASSERT_TRUE((*fresh)->Run(feeds, want).ok());
      ASSERT_EQ(got.size(), 1u);
      ASSERT_EQ(want.size(), 1u);
      EXPECT_FALSE(Differ(got[0], want[0]))
          << when << ", optimizer " << optimizer.index();
    };
    check("initial");
    Batch b32 = RandomBatch(32, rng), b16 = RandomBatch(16, rng);
    std::vector<Tensor> out;
    ASSERT_TRUE((*train32)->Run(b32.feeds, out).ok());
    check("after a step at batch 32");
    ASSERT_TRUE((*train16)->Run(b16.feeds, out).ok());
    check("after a step at batch 16");
    for (const std::string& name : store->Names()) {
      Tensor t = *store->Read(name);
      if (!absl::EndsWith(name, "/kernel")) continue;
      for (int64_t i = 0; i < t.num_elements(); ++i)
        t.SetFromDouble(i, -t.GetAsDouble(i));
      ASSERT_TRUE(store->Write(name, t).ok());
    }
    check("after Write");
    ASSERT_TRUE((*train32)->Run(b32.feeds, out).ok());
    check("after Write and a step");
  }
  CpuBackend::SetFixedKernelChoice(false);
}

// Deterministic mode: two models trained under mixed_bfloat16 from the same
// seed end bit-identical.
TEST(CpuBf16Test, DeterministicFitIsBitIdentical) {
  SKIP_WITHOUT_BF16();
  set_deterministic(true);
  mixed_precision::set_global_policy("mixed_bfloat16");
  std::mt19937 rng(9);
  Batch data = RandomBatch(96, rng);
  std::vector<std::vector<Tensor>> weights;
  for (int run = 0; run < 2; ++run) {
    SetRandomSeed(17);
    Sequential model = Mlp();
    model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true},
                  {}, Device::CPU());
    EXPECT_EQ(model.dtype_policy(), "mixed_bfloat16");
    if (!weights.empty()) model.set_weights(weights[0]);  // Same start.
    if (weights.empty()) weights.push_back(model.get_weights());
    FitOptions options;
    options.batch_size = 32;
    options.epochs = 2;
    options.verbose = 0;
    model.fit(data.x, data.y, options);
    weights.push_back(model.get_weights());
  }
  mixed_precision::set_global_policy("float32");
  set_deterministic(false);
  ASSERT_EQ(weights[1].size(), weights[2].size());
  for (size_t i = 0; i < weights[1].size(); ++i) {
    EXPECT_FALSE(Differ(weights[1][i], weights[2][i])) << "weight " << i;
    EXPECT_TRUE(Differ(weights[1][i], weights[0][i])) << "weight " << i;
  }
}

}  // namespace
}  // namespace sequent
