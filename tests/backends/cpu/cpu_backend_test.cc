// The CPU backend against the reference backend: one table row per op case, run
// on random inputs, plus the MLP 784-512-512-10 forward at several batch sizes
// and the executable's contract (feeds, variables, updates, errors).

#include "backends/cpu/cpu_backend.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/reference/reference_backend.h"
#include "core/graph.h"
#include "core/graph_builder.h"
#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/backends/testing/conformance.h"

namespace sequent {
namespace {

using conformance::ExpectClose;
using conformance::F32;
using conformance::Fill;
using conformance::InputSpec;
using conformance::Labels;
using conformance::N;
using conformance::OpCase;
using conformance::RandomTensor;

void CompareBackends(const Graph& graph, int64_t batch,
                     const std::vector<Feed>& feeds, double tol,
                     const std::string& what) {
  conformance::CompareBackends(CpuBackend(), graph, batch, feeds, tol, what);
}

class OpConformanceTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpConformanceTest, MatchesReference) {
  conformance::ExpectOpMatchesReference(CpuBackend(), GetParam());
}

std::vector<OpCase> Cases() {
  std::vector<OpCase> cases;
  const auto add = [&](OpCase c) { cases.push_back(std::move(c)); };
  // linear
  for (const char* act : {"linear", "relu", "leaky_relu", "elu", "selu",
                          "sigmoid", "tanh", "gelu", "swish", "softplus"}) {
    add({absl::StrCat("dense_", act),
         "dense",
         {F32({N, 7}), F32({7, 5}), F32({5})},
         {{"activation", std::string(act)}}});
  }
  add({"dense_no_bias", "dense", {F32({N, 7}), F32({7, 5})}, {}});
  add({"matmul", "matmul", {F32({4, 6}), F32({6, 3})}, {}});
  add({"matmul_ta",
       "matmul",
       {F32({6, 4}), F32({6, 3})},
       {{"transpose_a", true}}});
  add({"matmul_tb",
       "matmul",
       {F32({4, 6}), F32({3, 6})},
       {{"transpose_b", true}}});
  add({"matmul_ta_tb",
       "matmul",
       {F32({6, 4}), F32({3, 6})},
       {{"transpose_a", true}, {"transpose_b", true}}});
  add({"matmul_batch", "matmul", {F32({N, 6}), F32({6, 3})}, {}});
  add({"bias_add", "bias_add", {F32({N, 5}), F32({5})}, {}});
  add({"bias_add_rank3", "bias_add", {F32({2, 3, 5}), F32({5})}, {}});
  // elementwise binaries: same shapes, src1 broadcast, src0 broadcast, both
  // broadcast.
  for (const char* op : {"add", "sub", "mul", "div", "maximum"}) {
    const bool div = std::string(op) == "div";
    const Fill yf = div ? Fill::kPositive : Fill::kNormal;
    add({absl::StrCat(op, "_same"), op, {F32({N, 5}), F32({N, 5}, yf)}, {}});
    add({absl::StrCat(op, "_bcast_y"), op, {F32({4, 5}), F32({5}, yf)}, {}});
    add({absl::StrCat(op, "_bcast_x"), op, {F32({5}), F32({4, 5}, yf)}, {}});
    add({absl::StrCat(op, "_bcast_both"),
         op,
         {F32({4, 1}), F32({1, 5}, yf)},
         {}});
    add({absl::StrCat(op, "_scalar"), op, {F32({}), F32({2, 3}, yf)}, {}});
    add({absl::StrCat(op, "_scalar_y"),
         op,
         {F32({N, 40}), F32({}, Fill::kPositive)},
         {}});
  }
  add({"add_i32",
       "add",
       {{{DType::kI32, Shape{4, 5}}, Fill::kLabels, 9},
        {{DType::kI32, Shape{5}}, Fill::kLabels, 9}},
       {}});
  // f64 has no oneDNN type: the broadcasting loop runs it.
  add({"add_f64",
       "add",
       {{{DType::kF64, Shape{N, 5}}}, {{DType::kF64, Shape{5}}}},
       {}});
  // elementwise unaries
  for (const char* op : {"neg", "exp", "square", "abs"})
    add({op, op, {F32({N, 6})}, {}});
  for (const char* op : {"log", "sqrt"})
    add({op, op, {F32({N, 6}, Fill::kPositive)}, {}});
  // activations
  for (const char* op : {"relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh",
                         "gelu", "swish", "softplus"}) {
    add({op, op, {F32({N, 4, 5})}, {}});
  }
  add({"leaky_relu_alpha", "leaky_relu", {F32({N, 6})}, {{"alpha", 0.05}}});
  add({"elu_alpha", "elu", {F32({N, 6})}, {{"alpha", 0.5}}});
  add({"gelu_tanh", "gelu", {F32({N, 6})}, {{"approximate", true}}});
  add({"softmax", "softmax", {F32({N, 10})}, {}});
  add({"softmax_axis0", "softmax", {F32({4, 3, 5})}, {{"axis", int64_t{0}}}});
  add({"log_softmax", "log_softmax", {F32({N, 10})}, {}});
  // random
  add({"dropout_train",
       "dropout",
       {F32({N, 50}), {{DType::kI64, Shape{}}, Fill::kStep}},
       {{"rate", 0.3}, {"seed", int64_t{5}}, {"training", true}}});
  add({"dropout_inference", "dropout", {F32({N, 8})}, {{"training", false}}});
  // conv and pooling (NHWC)
  add({"conv2d_valid", "conv2d", {F32({N, 8, 8, 3}), F32({3, 3, 3, 4})}, {}});
  add({"conv2d_same_stride2",
       "conv2d",
       {F32({N, 9, 7, 3}), F32({3, 2, 3, 4})},
       {{"padding", std::string("same")},
        {"strides", std::vector<int64_t>{2, 2}}}});
  add({"conv2d_dilated",
       "conv2d",
       {F32({N, 9, 9, 2}), F32({3, 3, 2, 3})},
       {{"dilations", std::vector<int64_t>{2, 2}}}});
  add({"conv2d_valid_stride_remainder",
       "conv2d",
       {F32({N, 8, 8, 2}), F32({3, 3, 2, 2})},
       {{"strides", std::vector<int64_t>{2, 2}}}});
  for (const char* op : {"max_pool2d", "avg_pool2d"}) {
    add({absl::StrCat(op, "_valid"), op, {F32({N, 8, 8, 3})}, {}});
    add({absl::StrCat(op, "_valid_remainder"),
         op,
         {F32({N, 7, 9, 3})},
         {{"pool_size", std::vector<int64_t>{3, 3}},
          {"strides", std::vector<int64_t>{2, 2}}}});
    add({absl::StrCat(op, "_same"),
         op,
         {F32({N, 7, 5, 2})},
         {{"pool_size", std::vector<int64_t>{3, 3}},
          {"strides", std::vector<int64_t>{2, 2}},
          {"padding", std::string("same")}}});
  }
  add({"global_avg_pool2d", "global_avg_pool2d", {F32({N, 5, 6, 4})}, {}});
  // reductions
  for (const char* op : {"reduce_sum", "reduce_mean", "reduce_max"}) {
    add({absl::StrCat(op, "_all"), op, {F32({N, 4, 5})}, {}});
    add({absl::StrCat(op, "_last"),
         op,
         {F32({N, 4, 5})},
         {{"axes", std::vector<int64_t>{-1}}}});
    add({absl::StrCat(op, "_batch_keepdims"),
         op,
         {F32({N, 4, 5})},
         {{"axes", std::vector<int64_t>{0, 2}}, {"keepdims", true}}});
  }
  // shape
  // The reference backend re-infers types after binding N, so its reshape
  // cannot keep a -1 (N) in `shape`: this row is static.
  add({"reshape",
       "reshape",
       {F32({2, 4, 6})},
       {{"shape", std::vector<int64_t>{6, 8}}}});
  add({"flatten", "flatten", {F32({N, 3, 2, 2})}, {}});
  add({"transpose_2d",
       "transpose",
       {F32({N, 5})},
       {{"perm", std::vector<int64_t>{1, 0}}}});
  add({"transpose_3d",
       "transpose",
       {F32({2, 3, 4})},
       {{"perm", std::vector<int64_t>{2, 0, 1}}}});
  add({"concat_last", "concat", {F32({N, 2}), F32({N, 3}), F32({N, 1})}, {}});
  add({"concat_batch",
       "concat",
       {F32({2, 3}), F32({4, 3})},
       {{"axis", int64_t{0}}}});
  add({"slice",
       "slice",
       {F32({N, 6, 5})},
       {{"begin", std::vector<int64_t>{0, 1, 2}},
        {"size", std::vector<int64_t>{-1, 3, -1}}}});
  add({"cast_f32_i32", "cast", {F32({N, 7})}, {{"to", std::string("i32")}}});
  add({"cast_f32_f64", "cast", {F32({N, 7})}, {{"to", std::string("f64")}}});
  add({"cast_f32_bf16", "cast", {F32({N, 7})}, {{"to", std::string("bf16")}}});
  add({"cast_i64_f32",
       "cast",
       {Labels(DType::kI64, {N, 4}, 100)},
       {{"to", std::string("f32")}}});
  add({"cast_i32_bool",
       "cast",
       {Labels(DType::kI32, {N, 4}, 3)},
       {{"to", std::string("bool")}}});
  // normalization: x, gamma, beta (, moving_mean, moving_var)
  for (bool training : {false, true}) {
    add({training ? "batch_norm_training" : "batch_norm_inference",
         "batch_norm",
         {F32({N, 4, 4, 3}), F32({3}), F32({3}), F32({3}),
          F32({3}, Fill::kPositive)},
         {{"training", training}, {"momentum", 0.9}}});
  }
  add({"batch_norm_2d",
       "batch_norm",
       {F32({N, 6}), F32({6}), F32({6}), F32({6}), F32({6}, Fill::kPositive)},
       {{"training", true}}});
  add({"layer_norm", "layer_norm", {F32({N, 4, 8}), F32({8}), F32({8})}, {}});
  // losses
  for (const char* op : {"mse", "mae", "huber"}) {
    add({op, op, {F32({N, 4}), F32({N, 4})}, {}});
    add({absl::StrCat(op, "_weighted"),
         op,
         {F32({N, 4}), F32({N, 4}), F32({N}, Fill::kPositive)},
         {}});
  }
  add({"mse_rank1", "mse", {F32({N}), F32({N})}, {}});
  add({"huber_delta", "huber", {F32({N, 4}), F32({N, 4})}, {{"delta", 0.5}}});
  add({"binary_crossentropy",
       "binary_crossentropy",
       {F32({N, 3}, Fill::kProb), F32({N, 3}, Fill::kProb)},
       {}});
  add({"binary_crossentropy_logits_smoothing",
       "binary_crossentropy",
       {F32({N, 3}, Fill::kProb), F32({N, 3})},
       {{"from_logits", true}, {"label_smoothing", 0.1}}});
  add({"categorical_crossentropy",
       "categorical_crossentropy",
       {F32({N, 5}, Fill::kOneHot), F32({N, 5}, Fill::kProb)},
       {}});
  add({"categorical_crossentropy_logits",
       "categorical_crossentropy",
       {F32({N, 5}, Fill::kOneHot), F32({N, 5})},
       {{"from_logits", true}, {"label_smoothing", 0.2}}});
  add({"sparse_categorical_crossentropy",
       "sparse_categorical_crossentropy",
       {Labels(DType::kI32, {N}, 5), F32({N, 5}, Fill::kProb)},
       {}});
  add({"sparse_categorical_crossentropy_logits",
       "sparse_categorical_crossentropy",
       {Labels(DType::kI32, {N}, 5), F32({N, 5})},
       {{"from_logits", true}}});
  // Logits far apart: the label's softmax underflows in f32 for some rows.
  add({"sparse_categorical_crossentropy_logits_wide",
       "sparse_categorical_crossentropy",
       {Labels(DType::kI64, {N}, 6), F32({N, 6}, Fill::kWide)},
       {{"from_logits", true}}});
  add({"sparse_categorical_crossentropy_logits_weighted",
       "sparse_categorical_crossentropy",
       {Labels(DType::kI64, {N, 1}, 5), F32({N, 5}), F32({}, Fill::kPositive)},
       {{"from_logits", true}}});
  // metrics
  add({"sparse_categorical_accuracy",
       "sparse_categorical_accuracy",
       {Labels(DType::kI32, {N}, 4), F32({N, 4})},
       {}});
  add({"categorical_accuracy",
       "categorical_accuracy",
       {F32({N, 4}, Fill::kOneHot), F32({N, 4})},
       {}});
  add({"binary_accuracy",
       "binary_accuracy",
       {Labels(DType::kI32, {N, 3}, 2), F32({N, 3}, Fill::kProb)},
       {}});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpConformanceTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// The MLP of the project's first milestone: 784-512-512-10 with fused dense
// nodes.
Graph Mlp() {
  Graph graph("mlp");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId h = b.Input("x", {DType::kF32, Shape{N, 784}});
  const std::vector<int64_t> widths = {784, 512, 512, 10};
  const std::vector<std::string> acts = {"relu", "relu", "linear"};
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    const std::string layer = absl::StrCat("dense_", i + 1);
    b.SetLayer(layer);
    ValueId w = b.Variable(layer + "/kernel",
                           {DType::kF32, Shape{widths[i], widths[i + 1]}},
                           {{"initializer", std::string("glorot_uniform")},
                            {"seed", static_cast<int64_t>(i + 1)}});
    ValueId bias =
        b.Variable(layer + "/bias", {DType::kF32, Shape{widths[i + 1]}},
                   {{"initializer", std::string("random_normal")},
                    {"seed", static_cast<int64_t>(i + 11)}});
    h = b.Op("dense", {h, w, bias}, {{"activation", acts[i]}});
  }
  b.SetLayer("softmax");
  ValueId y = b.Op("softmax", {h});
  EXPECT_TRUE(b.ok()) << b.status();
  graph.AddOutput("y_pred", y);
  return graph;
}

TEST(CpuBackendTest, MlpForwardMatchesReference) {
  const Graph graph = Mlp();
  std::mt19937 rng(7);
  for (int64_t batch : {1, 32, 128}) {
    Tensor x = RandomTensor(F32({batch, 784}), rng);
    CompareBackends(graph, batch, {{"x", &x}}, 1e-5,
                    absl::StrCat("mlp batch ", batch));
  }
}

TEST(CpuBackendTest, MlpForwardTiming) {
  const Graph graph = Mlp();
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  std::mt19937 rng(7);
  for (int64_t batch : {1, 32, 128}) {
    auto exe = cpu.Compile(graph, batch, store.get());
    ASSERT_TRUE(exe.ok()) << exe.status();
    Tensor x = RandomTensor(F32({batch, 784}), rng);
    std::vector<Tensor> out;
    ASSERT_TRUE((*exe)->Run({{"x", &x}}, out).ok());  // Warm-up.
    constexpr int kRuns = 20;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRuns; ++i)
      ASSERT_TRUE((*exe)->Run({{"x", &x}}, out).ok());
    const double us = std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - start)
                          .count() /
                      kRuns;
    std::printf(
        "mlp 784-512-512-10 forward, batch %ld, %d threads: %.1f us/run\n",
        static_cast<long>(batch), omp_get_max_threads(), us);
  }
}

TEST(CpuBackendTest, FeedErrorsNameTheFeedAndBothTypes) {
  Graph graph("g");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId x = b.Input("x", {DType::kF32, Shape{N, 3}});
  graph.AddOutput("y", b.Op("relu", {x}));
  ASSERT_TRUE(b.ok());
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 2, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  std::vector<Tensor> out;
  Tensor wrong(DType::kF32, Shape{3, 3});
  absl::Status s = (*exe)->Run({{"x", &wrong}}, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "feed 'x' has type f32[3,3], the graph expects f32[2,3]");
  s = (*exe)->Run({}, out);
  EXPECT_EQ(s.message(), "missing feed 'x'; the graph's inputs are: x");
  Tensor right(DType::kF32, Shape{2, 3});
  s = (*exe)->Run({{"x", &right}, {"z", &right}}, out);
  EXPECT_EQ(s.message(), "unknown feed 'z'; the graph's inputs are: x");
}

TEST(CpuBackendTest, VariablesInitializeAndUpdatesApply) {
  // v := v + x, run twice: the store sees both updates, and the second run
  // reads the first.
  Graph graph("acc");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId x = b.Input("x", {DType::kF32, Shape{3}});
  ValueId v =
      b.Variable("v", {DType::kF32, Shape{3}},
                 {{"initializer", std::string("constant")}, {"value", 1.0}});
  ValueId sum = b.Op("add", {v, x});
  ASSERT_TRUE(b.ok()) << b.status();
  graph.AddOutput("sum", sum);
  graph.AddUpdate("v", sum);
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 1, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  Tensor feed = Tensor::FromVector<float>({1, 2, 3}, Shape{3});
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({{"x", &feed}}, out).ok());
  ASSERT_TRUE((*exe)->Run({{"x", &feed}}, out).ok());
  EXPECT_EQ(out[0].ToVector<float>(), (std::vector<float>{3, 5, 7}));
  auto stored = store->Read("v");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->ToVector<float>(), (std::vector<float>{3, 5, 7}));
}

TEST(CpuBackendTest, SwappingUpdatesReadPreRunValues) {
  Graph graph("swap");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  const TensorType t{DType::kF32, Shape{2}};
  ValueId a = b.Variable(
      "a", t, {{"initializer", std::string("constant")}, {"value", 1.0}});
  ValueId c = b.Variable(
      "b", t, {{"initializer", std::string("constant")}, {"value", 2.0}});
  ASSERT_TRUE(b.ok());
  graph.AddUpdate("a", c);
  graph.AddUpdate("b", a);
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 1, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({}, out).ok());
  EXPECT_EQ(store->Read("a")->ToVector<float>(), (std::vector<float>{2, 2}));
  EXPECT_EQ(store->Read("b")->ToVector<float>(), (std::vector<float>{1, 1}));
}

TEST(CpuBackendTest, F64IsUnimplementedNamingOpAndLayer) {
  Graph graph("g");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  b.SetLayer("act");
  ValueId x = b.Input("x", {DType::kF64, Shape{N, 3}});
  graph.AddOutput("y", b.Op("tanh", {x}));
  ASSERT_TRUE(b.ok());
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 2, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_EQ(exe.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(exe.status().message().find("layer 'act'"), absl::string_view::npos)
      << exe.status();
  EXPECT_NE(exe.status().message().find("[tanh]"), absl::string_view::npos)
      << exe.status();
}

TEST(CpuBackendTest, F64TransposeIsUnimplementedNamingOpAndLayer) {
  Graph graph("g");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  b.SetLayer("t");
  ValueId x = b.Input("x", {DType::kF64, Shape{2, 3}});
  graph.AddOutput(
      "y", b.Op("transpose", {x}, {{"perm", std::vector<int64_t>{1, 0}}}));
  ASSERT_TRUE(b.ok()) << b.status();
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 1, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_EQ(exe.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(exe.status().message(),
            "layer 't': [transpose] the cpu backend: oneDNN has no f64 element "
            "type");
}

TEST(CpuBackendTest, AnOpWithoutLoweringIsUnimplementedNamingOpAndLayer) {
  // A registry with one op the backend has never heard of: Compile must refuse
  // it, never fall back silently.
  OpRegistry registry;
  OpDef def;
  def.name = "mystery";
  def.inputs = {"x"};
  def.outputs = {"y"};
  def.infer = [](absl::Span<const TensorType> in,
                 const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    return std::vector<TensorType>{in[0]};
  };
  ASSERT_TRUE(registry.Register(def).ok());
  Graph graph("g");
  GraphBuilder b(&graph, &registry);
  ValueId x = b.Input("x", {DType::kF32, Shape{N, 3}});
  b.SetLayer("odd_layer");
  graph.AddOutput("y", b.Op("mystery", {x}));
  ASSERT_TRUE(b.ok()) << b.status();
  CpuBackend cpu(&registry);
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 2, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_EQ(exe.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(exe.status().message(),
            "layer 'odd_layer': [mystery] the cpu backend does not lower "
            "mystery yet");
}

TEST(CpuBackendTest, SupportsFusedDenseForEveryDenseActivation) {
  CpuBackend cpu;
  for (const char* act : {"linear", "relu", "sigmoid", "tanh", "gelu", "swish",
                          "softplus", "elu", "selu", "leaky_relu"}) {
    EXPECT_TRUE(cpu.SupportsFusedDense(act)) << act;
  }
  EXPECT_FALSE(cpu.SupportsFusedDense("no_such_activation"));
}

TEST(CpuBackendTest, ReshapeKeepsTheBatchDimension) {
  Graph graph("g");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId x = b.Input("x", {DType::kF32, Shape{N, 4, 6}});
  ValueId y = b.Op("reshape", {x}, {{"shape", std::vector<int64_t>{-1, 3, 8}}});
  ASSERT_TRUE(b.ok()) << b.status();
  graph.AddOutput("y", y);
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 5, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  std::mt19937 rng(1);
  Tensor in = RandomTensor(F32({5, 4, 6}), rng);
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({{"x", &in}}, out).ok());
  EXPECT_EQ(out[0].shape(), (Shape{5, 3, 8}));
  EXPECT_EQ(out[0].ToVector<float>(), in.ToVector<float>());
}

TEST(CpuBackendTest, KernelErrorsMatchTheReference) {
  // An out-of-range or fractional label is a run-time error of the loss;
  // both backends name the layer, the op, the label and the sample alike,
  // from probabilities and from logits (the CPU's softmax path, with typed
  // loads for i32 labels), for i32 and f32 labels.
  for (bool from_logits : {false, true}) {
    for (DType label_type : {DType::kI32, DType::kF32}) {
      Graph graph("g");
      GraphBuilder b(&graph, &ops::DefaultRegistry());
      ValueId y = b.Input("y", {label_type, Shape{N}});
      ValueId p = b.Input("p", {DType::kF32, Shape{N, 5}});
      b.SetLayer("loss");
      graph.AddOutput("loss", b.Op("sparse_categorical_crossentropy", {y, p},
                                   {{"from_logits", from_logits}}));
      ASSERT_TRUE(b.ok()) << b.status();
      Tensor labels = label_type == DType::kI32
                          ? Tensor::FromVector<int32_t>({1, 7}, Shape{2})
                          : Tensor::FromVector<float>({1.0f, 2.5f}, Shape{2});
      Tensor probs(DType::kF32, Shape{2, 5});
      for (int64_t i = 0; i < 10; ++i) probs.SetFromDouble(i, 0.2);
      std::vector<Feed> feeds = {{"y", &labels}, {"p", &probs}};
      ReferenceBackend reference;
      CpuBackend cpu;
      auto ref_store = reference.CreateVariableStore();
      auto cpu_store = cpu.CreateVariableStore();
      auto ref_exe = reference.Compile(graph, 2, ref_store.get());
      auto cpu_exe = cpu.Compile(graph, 2, cpu_store.get());
      ASSERT_TRUE(ref_exe.ok() && cpu_exe.ok());
      std::vector<Tensor> out;
      const absl::Status want = (*ref_exe)->Run(feeds, out);
      const absl::Status got = (*cpu_exe)->Run(feeds, out);
      ASSERT_FALSE(want.ok());
      EXPECT_EQ(got, want) << "from_logits " << from_logits;
      EXPECT_NE(got.message().find("layer 'loss'"), absl::string_view::npos)
          << got;
      EXPECT_NE(got.message().find(label_type == DType::kI32
                                       ? "label 7 at sample 1 is out of range"
                                       : "label 2.5 at sample 1 is not an "
                                         "integer"),
                absl::string_view::npos)
          << got;
    }
  }
}

TEST(CpuBackendTest, CrossentropyFromLogitsStaysFiniteWhenSoftmaxUnderflows) {
  // exp(-400) is 0 in f32 and f64 alike: the loss must come from the logits.
  Graph graph("g");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId y = b.Input("y", {DType::kI32, Shape{N}});
  ValueId p = b.Input("p", {DType::kF32, Shape{N, 3}});
  graph.AddOutput("loss", b.Op("sparse_categorical_crossentropy", {y, p},
                               {{"from_logits", true}}));
  ASSERT_TRUE(b.ok()) << b.status();
  Tensor labels = Tensor::FromVector<int32_t>({2, 1}, Shape{2});
  Tensor logits =
      Tensor::FromVector<float>({0, 200, -200, 0, 1, 0}, Shape{2, 3});
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 2, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({{"y", &labels}, {"p", &logits}}, out).ok());
  const double second = -std::log(std::exp(1.0) / (2.0 + std::exp(1.0)));
  EXPECT_NEAR(out[0].GetAsDouble(0), (400.0 + second) / 2, 1e-4);
}

TEST(CpuBackendTest, NumThreadsFromTheEnvironment) {
  setenv("SEQUENT_NUM_THREADS", "1", 1);
  CpuBackend one;
  unsetenv("SEQUENT_NUM_THREADS");
  EXPECT_EQ(one.num_threads(), 1);
  CpuBackend all;
  EXPECT_EQ(all.num_threads(), 0);  // All cores.
}

TEST(CpuBackendTest, SetNumThreads) {
  CpuBackend cpu;
  cpu.SetNumThreads(1);
  EXPECT_EQ(cpu.num_threads(), 1);
  const Graph graph = Mlp();
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(graph, 4, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  std::mt19937 rng(3);
  Tensor x = RandomTensor(F32({4, 784}), rng);
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({{"x", &x}}, out).ok());
  EXPECT_EQ(out[0].shape(), (Shape{4, 10}));
}

}  // namespace
}  // namespace sequent
