// The CPU backend's training ops against the reference backend: one table row
// per backward, loss-gradient and optimizer op case, whole train steps of a
// small MLP and CNN (every variable and optimizer slot after two steps), and
// the memory plan (reuse, in-place updates, no growth across runs).

#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/reference/reference_backend.h"
#include "core/graph.h"
#include "core/graph_builder.h"
#include "core/training_graph.h"
#include "frontend/compile_options.h"
#include "frontend/device.h"
#include "frontend/layers.h"
#include "frontend/model.h"
#include "gtest/gtest.h"
#include "ops/registry.h"
#include "tests/backends/testing/conformance.h"

namespace sequent {
namespace {

using conformance::ExpectClose;
using conformance::F32;
using conformance::F64;
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

class TrainOpConformanceTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(TrainOpConformanceTest, MatchesReference) {
  conformance::ExpectOpMatchesReference(CpuBackend(), GetParam());
}

std::vector<OpCase> Cases() {
  std::vector<OpCase> cases;
  const auto add = [&](OpCase c) { cases.push_back(std::move(c)); };
  // activation
  for (const char* act :
       {"linear", "relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh"}) {
    add({absl::StrCat("activation_grad_", act),
         "activation_grad",
         {F32({N, 6}), F32({N, 6})},
         {{"activation", std::string(act)}}});
    add({absl::StrCat("activation_bias_grad_", act),
         "activation_bias_grad",
         {F32({N, 4, 5}), F32({N, 4, 5})},
         {{"activation", std::string(act)}}});
  }
  add({"activation_grad_leaky_relu_alpha",
       "activation_grad",
       {F32({N, 6}), F32({N, 6})},
       {{"activation", std::string("leaky_relu")}, {"alpha", 0.1}}});
  add({"activation_grad_f64",
       "activation_grad",
       {F64({N, 6}), F64({N, 6})},
       {{"activation", std::string("tanh")}}});
  for (const char* act : {"relu", "elu", "gelu", "swish", "softplus", "tanh"}) {
    add({absl::StrCat("activation_input_grad_", act),
         "activation_input_grad",
         {F32({N, 6}), F32({N, 6})},
         {{"activation", std::string(act)}}});
  }
  add({"activation_input_grad_gelu_tanh",
       "activation_input_grad",
       {F32({N, 6}), F32({N, 6})},
       {{"activation", std::string("gelu")}, {"approximate", true}}});
  add({"softmax_grad",
       "softmax_grad",
       {F32({N, 4, 5}), F32({N, 4, 5}, Fill::kProb)},
       {}});
  add({"softmax_grad_axis1",
       "softmax_grad",
       {F32({N, 4, 5}), F32({N, 4, 5}, Fill::kProb)},
       {{"axis", int64_t{1}}}});
  add({"log_softmax_grad", "log_softmax_grad", {F32({N, 7}), F32({N, 7})}, {}});
  add({"log_softmax_grad_f64",
       "log_softmax_grad",
       {F64({N, 7}), F64({N, 7})},
       {}});
  // elementwise, reduce, shape
  add({"maximum_grad",
       "maximum_grad",
       {F32({N, 5}, Fill::kSmallInt), F32({5}, Fill::kSmallInt), F32({N, 5})},
       {}});
  add({"sign", "sign", {F32({N, 5}, Fill::kSmallInt)}, {}});
  add({"broadcast_to",
       "broadcast_to",
       {F32({3, 1})},
       {{"shape", std::vector<int64_t>{2, 3, 4}}}});
  add({"reduce_to_shape",
       "reduce_to_shape",
       {F32({N, 4, 5})},
       {{"shape", std::vector<int64_t>{4, 1}}}});
  add({"reduce_to_shape_f64",
       "reduce_to_shape",
       {F64({N, 4, 5})},
       {{"shape", std::vector<int64_t>{5}}}});
  // Sums and means over leading axes run as column sums (bias gradients);
  // 120 rows of 3 columns let the threads split the rows.
  add({"reduce_sum_leading_axes",
       "reduce_sum",
       {F32({N, 40, 3})},
       {{"axes", std::vector<int64_t>{0, 1}}}});
  add({"reduce_sum_nhw",
       "reduce_sum",
       {F32({N, 4, 5, 6})},
       {{"axes", std::vector<int64_t>{0, 1, 2}}}});
  add({"reduce_mean_batch_keepdims",
       "reduce_mean",
       {F32({N, 7})},
       {{"axes", std::vector<int64_t>{0}}, {"keepdims", true}}});
  add({"reduce_max_grad",
       "reduce_max_grad",
       {F32({N, 5}, Fill::kSmallInt), F32({N}, Fill::kSmallInt), F32({N})},
       {{"axes", std::vector<int64_t>{1}}}});
  add({"slice_grad",
       "slice_grad",
       {F32({N, 2, 3})},
       {{"begin", std::vector<int64_t>{0, 1, 1}},
        {"input_shape", std::vector<int64_t>{-1, 4, 5}}}});
  // conv, pool
  add({"conv2d_backprop_input",
       "conv2d_backprop_input",
       {F32({N, 4, 4, 3}), F32({3, 3, 2, 3})},
       {{"input_shape", std::vector<int64_t>{-1, 6, 6, 2}}},
       1e-4});
  add({"conv2d_backprop_input_same_stride2",
       "conv2d_backprop_input",
       {F32({N, 3, 3, 3}), F32({3, 3, 2, 3})},
       {{"input_shape", std::vector<int64_t>{-1, 6, 6, 2}},
        {"padding", std::string("same")},
        {"strides", std::vector<int64_t>{2, 2}}},
       1e-4});
  add({"conv2d_backprop_filter",
       "conv2d_backprop_filter",
       {F32({N, 6, 6, 2}), F32({N, 4, 4, 3})},
       {{"filter_shape", std::vector<int64_t>{3, 3, 2, 3}}},
       1e-4});
  add({"conv2d_backprop_filter_same",
       "conv2d_backprop_filter",
       {F32({N, 5, 5, 2}), F32({N, 5, 5, 3})},
       {{"filter_shape", std::vector<int64_t>{3, 3, 2, 3}},
        {"padding", std::string("same")}},
       1e-4});
  add({"max_pool2d_grad",
       "max_pool2d_grad",
       {F32({N, 5, 5, 3}), F32({N, 2, 2, 3}), F32({N, 2, 2, 3})},
       {}});
  add({"max_pool2d_grad_same_ties",
       "max_pool2d_grad",
       {F32({N, 5, 5, 3}, Fill::kSmallInt), F32({N, 3, 3, 3}),
        F32({N, 3, 3, 3})},
       {{"padding", std::string("same")}}});
  add({"avg_pool2d_grad",
       "avg_pool2d_grad",
       {F32({N, 2, 2, 3})},
       {{"input_shape", std::vector<int64_t>{-1, 5, 5, 3}}}});
  add({"avg_pool2d_grad_same",
       "avg_pool2d_grad",
       {F32({N, 3, 3, 3})},
       {{"input_shape", std::vector<int64_t>{-1, 5, 5, 3}},
        {"padding", std::string("same")}}});
  add({"global_avg_pool2d_grad",
       "global_avg_pool2d_grad",
       {F32({N, 3})},
       {{"input_shape", std::vector<int64_t>{-1, 4, 4, 3}}}});
  // norm
  for (bool training : {true, false}) {
    add({absl::StrCat("batch_norm_grad_", training ? "training" : "inference"),
         "batch_norm_grad",
         {F32({N, 4, 5}), F32({N, 4, 5}), F32({5}), F32({5}),
          F32({5}, Fill::kPositive)},
         {{"training", training}},
         1e-4});
  }
  add({"layer_norm_grad",
       "layer_norm_grad",
       {F32({N, 6}), F32({N, 6}), F32({6}), F32({N}),
        F32({N}, Fill::kPositive)},
       {},
       1e-4});
  // loss gradients (y_true, y_pred, dloss, sample_weight?)
  const InputSpec dloss = F32({}, Fill::kPositive);
  for (const char* loss : {"mse", "mae", "huber"}) {
    add({absl::StrCat(loss, "_grad"),
         absl::StrCat(loss, "_grad"),
         {F32({N, 4}), F32({N, 4}), dloss, F32({N}, Fill::kPositive)},
         {}});
  }
  add({"mse_grad_f64", "mse_grad", {F64({N, 4}), F64({N, 4}), F64({})}, {}});
  add({"binary_crossentropy_grad",
       "binary_crossentropy_grad",
       {Labels(DType::kI32, {N, 3}, 2), F32({N, 3}, Fill::kProb), dloss},
       {{"label_smoothing", 0.1}}});
  add({"binary_crossentropy_grad_logits",
       "binary_crossentropy_grad",
       {F32({N, 3}, Fill::kProb), F32({N, 3}), dloss},
       {{"from_logits", true}}});
  add({"categorical_crossentropy_grad",
       "categorical_crossentropy_grad",
       {F32({N, 4}, Fill::kOneHot), F32({N, 4}, Fill::kProb), dloss},
       {{"label_smoothing", 0.2}}});
  add({"categorical_crossentropy_grad_logits",
       "categorical_crossentropy_grad",
       {F32({N, 4}, Fill::kOneHot), F32({N, 4}), dloss,
        F32({N}, Fill::kPositive)},
       {{"from_logits", true}}});
  add({"sparse_categorical_crossentropy_grad",
       "sparse_categorical_crossentropy_grad",
       {Labels(DType::kI64, {N}, 5), F32({N, 5}, Fill::kProb), dloss},
       {}});
  add({"sparse_categorical_crossentropy_grad_logits_unweighted",
       "sparse_categorical_crossentropy_grad",
       {Labels(DType::kI64, {N}, 5), F32({N, 5}), dloss},
       {{"from_logits", true}}});
  add({"sparse_categorical_crossentropy_grad_logits",
       "sparse_categorical_crossentropy_grad",
       {Labels(DType::kI32, {N}, 5), F32({N, 5}), dloss,
        F32({N}, Fill::kPositive)},
       {{"from_logits", true}}});
  // optimizer updates (var, grad, slots..., learning_rate, iterations)
  const InputSpec var = F32({7, 3}), grad = F32({7, 3});
  const InputSpec lr = F32({}, Fill::kProb), step = F32({}, Fill::kStep);
  add({"sgd_update", "sgd_update", {var, grad, lr, step}, {}});
  add({"momentum_update",
       "momentum_update",
       {var, grad, F32({7, 3}), lr, step},
       {{"momentum", 0.9}}});
  add({"momentum_update_nesterov",
       "momentum_update",
       {var, grad, F32({7, 3}), lr, step},
       {{"momentum", 0.9}, {"nesterov", true}}});
  add({"adam_update",
       "adam_update",
       {var, grad, F32({7, 3}), F32({7, 3}, Fill::kPositive), lr, step},
       {}});
  add({"matmul_transpose_b",
       "matmul",
       {F32({N, 6}), F32({4, 6})},
       {{"transpose_b", true}},
       1e-5});
  // Large enough for the multi-threaded, vectorized f32 path.
  add({"adam_update_large",
       "adam_update",
       {F32({200, 100}), F32({200, 100}), F32({200, 100}),
        F32({200, 100}, Fill::kPositive), lr, step},
       {}});
  add({"adamw_update_large",
       "adamw_update",
       {F32({200, 99}), F32({200, 99}), F32({200, 99}),
        F32({200, 99}, Fill::kPositive), lr, step},
       {}});
  add({"adam_update_f64",
       "adam_update",
       {F64({7, 3}), F64({7, 3}), F64({7, 3}), F64({7, 3}, Fill::kPositive),
        F64({}, Fill::kProb), F64({}, Fill::kStep)},
       {}});
  add({"adamw_update",
       "adamw_update",
       {var, grad, F32({7, 3}), F32({7, 3}, Fill::kPositive), lr, step},
       {{"weight_decay", 0.01}}});
  add({"rmsprop_update",
       "rmsprop_update",
       {var, grad, F32({7, 3}, Fill::kPositive), lr, step},
       {}});
  add({"adagrad_update",
       "adagrad_update",
       {var, grad, F32({7, 3}, Fill::kPositive), lr, step},
       {}});
  add({"clip_by_value",
       "clip_by_value",
       {F32({N, 5})},
       {{"min", -0.5}, {"max", 1.0}}});
  add({"clip_by_norm_clips",
       "clip_by_norm",
       {F32({N, 5})},
       {{"max_norm", 1.0}}});
  add({"clip_by_norm_keeps",
       "clip_by_norm",
       {F32({N, 5})},
       {{"max_norm", 100.0}}});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Ops, TrainOpConformanceTest,
                         ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// A max_pool2d feeding its own gradient: the pair shares the forward's
// workspace.
TEST(CpuTrainTest, MaxPoolPairSharesTheWorkspace) {
  Graph graph("pool_pair");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId x = b.Input("x", {DType::kF32, Shape{N, 6, 6, 2}});
  ValueId dy = b.Input("dy", {DType::kF32, Shape{N, 3, 3, 2}});
  ValueId y = b.Op("max_pool2d", {x});
  ValueId dx = b.Op("max_pool2d_grad", {x, y, dy});
  ASSERT_TRUE(b.ok()) << b.status();
  graph.AddOutput("y", y);
  graph.AddOutput("dx", dx);
  std::mt19937 rng(3);
  Tensor xt = RandomTensor(F32({2, 6, 6, 2}, Fill::kSmallInt), rng);
  Tensor dyt = RandomTensor(F32({2, 3, 3, 2}), rng);
  CompareBackends(graph, 2, {{"x", &xt}, {"dy", &dyt}}, 1e-6, "pool pair");
}

// An activation, a max pool, and their gradients as autodiff writes them:
// the CPU backend computes the activation gradient over the pooled values
// and spreads that (RewriteMaxPoolActivationGrad). Small integers make ties
// (and all-zero relu windows); the 3x3 stride-1 "same" pool overlaps its
// windows, so one position can take several windows' gradients.
TEST(CpuTrainTest, ActivationGradientOverThePooledValues) {
  for (const char* act : {"relu", "leaky_relu", "elu", "sigmoid", "tanh"}) {
    for (const bool overlapping : {false, true}) {
      Graph graph("pool_activation");
      GraphBuilder b(&graph, &ops::DefaultRegistry());
      const Attributes pool =
          overlapping ? Attributes{{"pool_size", std::vector<int64_t>{3, 3}},
                                   {"strides", std::vector<int64_t>{1, 1}},
                                   {"padding", std::string("same")}}
                      : Attributes{};
      const int64_t side = overlapping ? 6 : 3;
      ValueId z = b.Input("z", {DType::kF32, Shape{N, 6, 6, 3}});
      ValueId d = b.Input("d", {DType::kF32, Shape{N, side, side, 3}});
      ValueId y = b.Op(act, {z});
      ValueId p = b.Op("max_pool2d", {y}, pool);
      ValueId dz =
          b.Op("activation_grad", {b.Op("max_pool2d_grad", {y, p, d}, pool), y},
               {{"activation", std::string(act)}});
      ASSERT_TRUE(b.ok()) << b.status();
      graph.AddOutput("dz", dz);
      std::mt19937 rng(11);
      Tensor zt = RandomTensor(F32({2, 6, 6, 3}, Fill::kSmallInt), rng);
      Tensor dt = RandomTensor(F32({2, side, side, 3}), rng);
      CompareBackends(graph, 2, {{"z", &zt}, {"d", &dt}}, 1e-6,
                      absl::StrCat(act, overlapping ? " overlapping" : ""));
    }
  }
}

// reduce_max then its gradient, so that y is the true maximum (with ties).
TEST(CpuTrainTest, ReduceMaxGradSplitsTies) {
  Graph graph("reduce_max");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId x = b.Input("x", {DType::kF32, Shape{N, 6}});
  ValueId dy = b.Input("dy", {DType::kF32, Shape{N}});
  ValueId y = b.Op("reduce_max", {x}, {{"axes", std::vector<int64_t>{1}}});
  graph.AddOutput("dx", b.Op("reduce_max_grad", {x, y, dy},
                             {{"axes", std::vector<int64_t>{1}}}));
  ASSERT_TRUE(b.ok()) << b.status();
  std::mt19937 rng(5);
  Tensor xt = RandomTensor(F32({4, 6}, Fill::kSmallInt), rng);
  Tensor dyt = RandomTensor(F32({4}), rng);
  CompareBackends(graph, 4, {{"x", &xt}, {"dy", &dyt}}, 1e-6, "reduce_max");
}

// A sparse crossentropy from logits and a gradient of it in one graph: the
// gradient reuses the loss step's softmax - onehot (times the weights) only
// when it has the same labels and weights; here its weights differ.
TEST(CpuTrainTest, CrossentropyGradientWithOtherWeightsIsItsOwn) {
  Graph graph("crossentropy");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  ValueId y = b.Input("y", {DType::kI32, Shape{N}});
  ValueId p = b.Input("p", {DType::kF32, Shape{N, 5}});
  ValueId w = b.Input("w", {DType::kF32, Shape{N}});
  ValueId w2 = b.Input("w2", {DType::kF32, Shape{N}});
  ValueId dl = b.Input("dl", {DType::kF32, Shape{}});
  const Attributes logits = {{"from_logits", true}};
  graph.AddOutput("loss",
                  b.Op("sparse_categorical_crossentropy", {y, p, w}, logits));
  graph.AddOutput("same", b.Op("sparse_categorical_crossentropy_grad",
                               {y, p, dl, w}, logits));
  graph.AddOutput("other", b.Op("sparse_categorical_crossentropy_grad",
                                {y, p, dl, w2}, logits));
  ASSERT_TRUE(b.ok()) << b.status();
  std::mt19937 rng(9);
  Tensor yt = RandomTensor(Labels(DType::kI32, {6}, 5), rng);
  Tensor pt = RandomTensor(F32({6, 5}), rng);
  Tensor wt = RandomTensor(F32({6}, Fill::kPositive), rng);
  Tensor w2t = RandomTensor(F32({6}, Fill::kPositive), rng);
  Tensor dlt = Tensor::Scalar<float>(0.75f);
  CompareBackends(
      graph, 6,
      {{"y", &yt}, {"p", &pt}, {"w", &wt}, {"w2", &w2t}, {"dl", &dlt}}, 1e-6,
      "crossentropy gradients");
}

// ---- Whole train steps.

Sequential SmallMlp() {
  return Sequential(
      {Input({20}), Dense(16, "relu"), Dense(12, "tanh"), Dense(5)});
}

Sequential SmallCnn() {
  Conv2DOptions relu;
  relu.activation = "relu";
  return Sequential({Input({8, 8, 2}), Conv2D(4, {3, 3}, relu),
                     MaxPooling2D({2, 2}), Flatten(), Dense(16, "relu"),
                     Dense(5)});
}

struct Batch {
  Tensor x, y, sample_weight, learning_rate;
  std::vector<Feed> feeds;
};

Batch RandomBatch(const Shape& x_shape, int64_t batch, int classes,
                  std::mt19937& rng) {
  Batch b;
  std::vector<int64_t> dims = {batch};
  for (int i = 0; i < x_shape.rank(); ++i) dims.push_back(x_shape[i]);
  b.x = RandomTensor(F32(dims), rng);
  b.y = RandomTensor(Labels(DType::kI32, {batch}, classes), rng);
  b.sample_weight = RandomTensor(F32({batch}, Fill::kPositive), rng);
  b.learning_rate = Tensor::Scalar<float>(0.01f);
  b.feeds = {{kFeatureFeed, &b.x},
             {kLabelFeed, &b.y},
             {kSampleWeightFeed, &b.sample_weight},
             {kLearningRateFeed, &b.learning_rate}};
  return b;
}

// The train graph a model compiled for the CPU gets, run for two steps on both
// backends (each with its own store, initialized from the same seeded
// attributes); every variable, optimizer slot and the step counter must agree.
// One step of `train` on `batch` in each backend's executable.
void RunOnBoth(const Graph& train, int64_t batch_size, const Batch& batch,
               Executable& reference, Executable& cpu,
               std::vector<Tensor>& ref_out, std::vector<Tensor>& cpu_out) {
  for (const GraphOutput& out : train.outputs()) {
    TensorType t = train.type(out.value);
    t.shape = t.shape.WithBatch(batch_size);
    ref_out.emplace_back(t);
  }
  ASSERT_TRUE(reference.Run(batch.feeds, ref_out).ok());
  absl::Status s = cpu.Run(batch.feeds, cpu_out);
  ASSERT_TRUE(s.ok()) << s;
}

int CountBlocked(const VariableStore& store) {
  int blocked = 0;
  for (const std::string& name : store.Names())
    blocked += CpuBackend::StoresBlocked(store, name) ? 1 : 0;
  return blocked;
}

// How many steps of `exe` have `what` in their implementation.
int CountSteps(const Executable& exe, absl::string_view what) {
  int n = 0;
  for (const std::string& step : CpuBackend::StepImplementations(exe))
    n += absl::StrContains(step, what) ? 1 : 0;
  return n;
}

// How many of the cpu executable's steps must have `what` in their
// implementation ("owned x": owned layers, backends/cpu/owned_team.h).
struct ExpectedSteps {
  std::string what;
  int count = 0;
};

// `blocked`: how many variables the cpu store must keep in oneDNN's blocked
// layout; `threads`: the cpu backend's (0: all cores); `steps`, when set, a
// count of steps of one kind.
void CompareTrainSteps(Sequential model, const Optimizer& optimizer,
                       const Shape& x_shape, double tol,
                       const std::string& what, int blocked = 0,
                       int threads = 0,
                       std::optional<ExpectedSteps> steps = std::nullopt) {
  model.compile(optimizer, SparseCategoricalCrossentropy{.from_logits = true},
                {"accuracy"}, Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  ReferenceBackend reference;
  CpuBackend cpu;
  cpu.SetNumThreads(threads);
  auto ref_store = reference.CreateVariableStore();
  auto cpu_store = cpu.CreateVariableStore();
  constexpr int64_t kBatch = 6;
  auto ref_exe = reference.Compile(train, kBatch, ref_store.get());
  ASSERT_TRUE(ref_exe.ok()) << ref_exe.status();
  auto cpu_exe = cpu.Compile(train, kBatch, cpu_store.get());
  ASSERT_TRUE(cpu_exe.ok()) << cpu_exe.status();
  if (steps.has_value())
    EXPECT_EQ(CountSteps(**cpu_exe, steps->what), steps->count) << what;
  std::mt19937 rng(11);
  for (int step = 0; step < 2; ++step) {
    Batch batch = RandomBatch(x_shape, kBatch, 5, rng);
    std::vector<Tensor> ref_out, cpu_out;
    RunOnBoth(train, kBatch, batch, **ref_exe, **cpu_exe, ref_out, cpu_out);
    if (::testing::Test::HasFatalFailure()) return;
    for (size_t i = 0; i < ref_out.size(); ++i) {
      ExpectClose(cpu_out[i], ref_out[i], tol,
                  absl::StrCat(what, " step ", step, " output ",
                               (*cpu_exe)->output_names()[i]));
    }
  }
  ASSERT_EQ(cpu_store->Names(), ref_store->Names());
  for (const std::string& name : ref_store->Names()) {
    auto r = ref_store->Read(name);
    auto c = cpu_store->Read(name);
    ASSERT_TRUE(r.ok() && c.ok()) << name;
    ExpectClose(*c, *r, tol, absl::StrCat(what, " variable ", name));
  }
  EXPECT_EQ(CountBlocked(*cpu_store), blocked) << what;
}

// Layers of 128 units over 32 and 128 inputs: kernels oneDNN blocks 16x64
// without padding, in an order unlike row-major's (with 64 units the blocked
// bytes would equal the row-major ones); the 5-unit output layer's would
// pad, and is stored transposed (a thin kernel, weight_layout.h).
Sequential BlockableMlp() {
  return Sequential(
      {Input({32}), Dense(128, "relu"), Dense(128, "tanh"), Dense(5)});
}

TEST(CpuTrainTest, MlpTrainStepsMatchReferenceSgd) {
  CompareTrainSteps(
      SmallMlp(), SGD{.learning_rate = 0.01, .momentum = 0.9, .clipnorm = 0.5},
      Shape{20}, 1e-5, "mlp sgd");
}

TEST(CpuTrainTest, MlpTrainStepsMatchReferenceAdam) {
  CompareTrainSteps(SmallMlp(), Adam{}, Shape{20}, 1e-4, "mlp adam");
}

// Heads of up to 16 classes take one fused softmax-crossentropy pass
// (softmax_crossentropy.h); wider ones our row loops around oneDNN's exp
// (up to 32) or oneDNN's softmax, with the per-row gradient.
TEST(CpuTrainTest, WideClassifierHeadsTrainLikeReference) {
  // (classes, how many variables the CPU store keeps blocked)
  for (auto [classes, blocked] : {std::pair{16, 3}, {17, 0}, {40, 0}}) {
    CompareTrainSteps(
        Sequential({Input({20}), Dense(16, "relu"), Dense(classes)}), Adam{},
        Shape{20}, 1e-4, absl::StrCat("head of ", classes), blocked);
  }
}

// Each dense GEMM has several oneDNN formulations (inner product, matmul,
// and transposed ones: a weight gradient's matmul, a thin layer's forward
// z^T = W^T x^T with our bias-and-activation loop — every layer here has 16
// units or fewer), timed at Compile; all must give the same training.
TEST(CpuTrainTest, MlpTrainStepsMatchReferenceWithEveryGemmFormulation) {
  for (const char* gemm : {"ip", "matmul", "matmul_t"}) {
    setenv("SEQUENT_CPU_GEMM", gemm, 1);
    CompareTrainSteps(SmallMlp(), Adam{}, Shape{20}, 1e-4,
                      absl::StrCat("mlp adam ", gemm));
    unsetenv("SEQUENT_CPU_GEMM");
  }
}

// A convolution's filter gradient runs over NHWC operands or, reordered
// first into oneDNN's blocked layouts, over those (the faster, timed at
// Compile); both must give the same training. 16 and 32 channels make
// oneDNN's own layouts blocked, so the second form reorders.
TEST(CpuTrainTest, CnnTrainStepsMatchReferenceWithEitherFilterGradientForm) {
  const auto model = [] {
    Conv2DOptions relu;
    relu.activation = "relu";
    return Sequential({Input({10, 10, 1}), Conv2D(16, {3, 3}, relu),
                       MaxPooling2D({2, 2}), Conv2D(32, {3, 3}, relu),
                       Flatten(), Dense(5)});
  };
  for (const auto& [form, reorders] :
       {std::pair{"nhwc", 0}, std::pair{"blocked", 3}}) {
    setenv("SEQUENT_CPU_CONV_FILTER", form, 1);
    // The dense kernel and its two slots are kept blocked.
    CompareTrainSteps(model(), Adam{}, Shape{10, 10, 1}, 1e-4,
                      absl::StrCat("cnn, filter gradient ", form),
                      /*blocked=*/3, /*threads=*/0,
                      ExpectedSteps{"operand to blocked", reorders});
    unsetenv("SEQUENT_CPU_CONV_FILTER");
  }
}

// Two kernels in the blocked layout and a thin one stored transposed, each
// with Adam's two slots (or SGD's velocity): forward, input and weight
// gradients, clipping and the update all read and write them as stored; the
// store reads them back row-major.
TEST(CpuTrainTest, BlockedKernelTrainStepsMatchReference) {
  CompareTrainSteps(BlockableMlp(), Adam{}, Shape{32}, 1e-4, "blocked adam",
                    /*blocked=*/9);
  CompareTrainSteps(
      BlockableMlp(),
      SGD{.learning_rate = 0.01, .momentum = 0.9, .clipnorm = 0.5}, Shape{32},
      1e-5, "blocked sgd", /*blocked=*/6);
}

// Owned layers (backends/cpu/owned_team.h): on 2 and 4 threads each thread
// takes its share of every 256-unit layer's outputs from the forward to the
// update, with one-thread primitives, its chunks of the activation gradients
// kept apart, and the head's kernel split by rows. A linear middle layer
// gives an input gradient no activation gradient reads (copied chunks); the
// relu and tanh gradients are fused into the input gradients before them.
// Training must match the reference backend's either way, and the flag must
// turn it off. 10 owned steps: 3 forwards (the head's stays pooled), 3 input
// gradients and 4 weight gradients.
TEST(CpuTrainTest, OwnedLayersTrainLikeReference) {
  const auto model = [] {
    return Sequential({Input({32}), Dense(256, "relu"), Dense(256),
                       Dense(256, "tanh"), Dense(10)});
  };
  for (int threads : {2, 4}) {
    CompareTrainSteps(model(), Adam{}, Shape{32}, 1e-4,
                      absl::StrCat("owned adam x", threads), /*blocked=*/9,
                      threads, ExpectedSteps{"owned x", 10});
    CompareTrainSteps(
        model(), SGD{.learning_rate = 0.01, .momentum = 0.9, .clipnorm = 0.5},
        Shape{32}, 1e-5, absl::StrCat("owned sgd x", threads), /*blocked=*/6,
        threads, ExpectedSteps{"owned x", 10});
  }
  // Three threads do not divide 256 into whole 64-output blocks.
  const ExpectedSteps none{"owned x", 0};
  CompareTrainSteps(model(), Adam{}, Shape{32}, 1e-4, "adam x3", 9, 3, none);
  CpuBackend::SetOwnedLayers(false);
  CompareTrainSteps(model(), Adam{}, Shape{32}, 1e-4, "owned off", 9, 2, none);
  CpuBackend::SetOwnedLayers(true);
  CompareTrainSteps(model(), Adam{}, Shape{32}, 1e-4, "one thread", 9, 1, none);
}

// L2 penalties on every kernel: the cpu backend computes each penalty in one
// pass (graph_rewrites.h) and the optimizer adds each penalty's gradient in
// its own pass over the kernel (SGD, momentum and Adam); the training must
// match the reference backend's.
TEST(CpuTrainTest, WeightPenaltiesTrainLikeReference) {
  const auto penalized = [] {
    const DenseOptions l2{.kernel_regularizer = {.l2 = 1e-2}};
    return Sequential({Input({20}), Dense(16, "relu", l2),
                       Dense(12, "tanh", l2), Dense(5, "linear", l2)});
  };
  CompareTrainSteps(penalized(), Adam{}, Shape{20}, 1e-4, "l2 adam");
  CompareTrainSteps(penalized(), SGD{.learning_rate = 0.05, .momentum = 0.9},
                    Shape{20}, 1e-5, "l2 momentum");
  CompareTrainSteps(penalized(), SGD{.learning_rate = 0.05}, Shape{20}, 1e-5,
                    "l2 sgd");
  // RMSprop adds the gradient term in a step of its own.
  CompareTrainSteps(penalized(), RMSprop{}, Shape{20}, 1e-4, "l2 rmsprop");
  for (const bool fused : {true, false}) {
    Sequential model = penalized();
    model.compile(fused ? Optimizer(Adam{}) : Optimizer(RMSprop{}),
                  SparseCategoricalCrossentropy{.from_logits = true}, {},
                  Device::CPU());
    CpuBackend cpu;
    auto store = cpu.CreateVariableStore();
    auto exe = cpu.Compile(model.graph(GraphStage::kTrain), 6, store.get());
    ASSERT_TRUE(exe.ok()) << exe.status();
    int sums = 0, gradient_terms = 0;
    for (const std::string& step : CpuBackend::StepImplementations(**exe)) {
      sums += absl::StartsWith(step, "cpu.sum_of_squares") ? 1 : 0;
      gradient_terms +=
          absl::StartsWith(step, "cpu.add_scaled (layer 'backward/") ? 1 : 0;
      EXPECT_FALSE(absl::StartsWith(step, "square")) << step;
    }
    EXPECT_EQ(sums, 3);
    EXPECT_EQ(gradient_terms, fused ? 0 : 3);
  }
}

// scikit-learn's (5,5,5) net at a lower width: the first kernel (96x5) is
// stored transposed and the thin forms read and write it without reorders,
// with an L2 penalty on it as MLPClassifier adds.
TEST(CpuTrainTest, ThinKernelStoredTransposedTrainsLikeReference) {
  CompareTrainSteps(
      Sequential({Input({96}),
                  Dense(5, "relu", {.kernel_regularizer = {.l2 = 1e-3}}),
                  Dense(5, "relu"), Dense(5)}),
      Adam{}, Shape{96}, 1e-4, "thin adam", /*blocked=*/3);
}

// A store whose kernels are blocked serves a graph that cannot read them so
// (here: one computing in bf16) through row-major copies and converted
// updates; and Write then Read gives back what was written.
TEST(CpuTrainTest, BlockedKernelsServeGraphsThatReadThemRowMajor) {
  if (CpuBackend::bf16_support() == CpuBackend::Bf16Support::kNone)
    GTEST_SKIP() << "no bf16 GEMMs on this CPU";
  Sequential model = BlockableMlp();
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  ReferenceBackend reference;
  CpuBackend cpu, cpu_bf16;
  ASSERT_TRUE(cpu_bf16.SetComputeDType(DType::kBF16).ok());
  auto ref_store = reference.CreateVariableStore();
  auto cpu_store = cpu.CreateVariableStore();
  constexpr int64_t kBatch = 32;
  auto ref_exe = reference.Compile(train, kBatch, ref_store.get());
  ASSERT_TRUE(ref_exe.ok()) << ref_exe.status();
  auto f32_exe = cpu.Compile(train, kBatch, cpu_store.get());
  ASSERT_TRUE(f32_exe.ok()) << f32_exe.status();
  auto bf16_exe = cpu_bf16.Compile(train, kBatch, cpu_store.get());
  ASSERT_TRUE(bf16_exe.ok()) << bf16_exe.status();
  ASSERT_EQ(CountBlocked(*cpu_store), 9);
  std::mt19937 rng(17);
  for (Executable* exe : {f32_exe->get(), bf16_exe->get()}) {
    Batch batch = RandomBatch(Shape{32}, kBatch, 5, rng);
    std::vector<Tensor> ref_out, cpu_out;
    RunOnBoth(train, kBatch, batch, **ref_exe, *exe, ref_out, cpu_out);
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (const std::string& name : ref_store->Names()) {
    const Tensor r = ref_store->Read(name).value();
    ExpectClose(cpu_store->Read(name).value(), r, 2e-2,
                absl::StrCat("bf16 step variable ", name));
    ASSERT_TRUE(cpu_store->Write(name, r).ok()) << name;
    const Tensor back = cpu_store->Read(name).value();
    for (int64_t i = 0; i < r.num_elements(); ++i)
      ASSERT_EQ(back.GetAsDouble(i), r.GetAsDouble(i))
          << name << "[" << i << "]";
  }
}

TEST(CpuTrainTest, CnnTrainStepsMatchReferenceAdam) {
  CompareTrainSteps(SmallCnn(), Adam{}, Shape{8, 8, 2}, 1e-4, "cnn adam");
}

TEST(CpuTrainTest, CnnTrainStepsMatchReferenceRmsprop) {
  CompareTrainSteps(SmallCnn(), RMSprop{}, Shape{8, 8, 2}, 1e-4, "cnn rmsprop");
}

// Through the frontend: fit() on each device from the same seeds, two epochs
// of 20 samples in batches of 8 (the last batch of 4 compiles its own
// executable sharing the store), then predict; weights and predictions agree.
TEST(CpuTrainTest, FitOnCpuMatchesFitOnReference) {
  std::mt19937 rng(13);
  Tensor x = RandomTensor(F32({20, 20}), rng);
  Tensor y = RandomTensor(Labels(DType::kI32, {20}, 5), rng);
  std::vector<std::vector<Tensor>> weights;
  std::vector<Tensor> predictions;
  std::vector<Tensor> initial;
  for (const char* device : {"reference", "cpu"}) {
    Sequential model = SmallMlp();
    model.compile(Adam{.learning_rate = 0.01},
                  SparseCategoricalCrossentropy{.from_logits = true},
                  {"accuracy"}, Device(device));
    // Layer names (hence initializer seeds) differ between two models: both
    // start from the first one's weights.
    if (initial.empty()) {
      initial = model.get_weights();
    } else {
      model.set_weights(initial);
    }
    FitOptions options;
    options.batch_size = 8;
    options.epochs = 2;
    options.verbose = 0;
    options.shuffle = false;
    model.fit(x, y, options);
    weights.push_back(model.get_weights());
    predictions.push_back(model.predict(x));
  }
  ASSERT_EQ(weights[0].size(), weights[1].size());
  for (size_t i = 0; i < weights[0].size(); ++i)
    ExpectClose(weights[1][i], weights[0][i], 1e-4, absl::StrCat("weight ", i));
  ExpectClose(predictions[1], predictions[0], 1e-4, "predict");
}

// ---- The memory plan.

TEST(CpuTrainTest, MemoryPlanReusesTheArenaAndUpdatesInPlace) {
  Sequential model(
      {Input({784}), Dense(512, "relu"), Dense(512, "relu"), Dense(10)});
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(train, 128, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  const MemoryPlan* plan = CpuBackend::MemoryPlanOf(**exe);
  ASSERT_NE(plan, nullptr);
  EXPECT_LT(plan->arena_bytes, plan->total_intermediate_bytes);
  // Every optimizer update writes its variable and slots in place.
  int in_place = 0;
  for (const VariableUpdate& u : train.updates()) {
    const BufferAssignment& b = plan->buffers[u.value];
    if (b.kind == BufferAssignment::Kind::kVariable && b.variable == u.variable)
      ++in_place;
  }
  EXPECT_EQ(in_place, static_cast<int>(train.updates().size()) - 1)
      << "all but the step counter (an add) update in place\n"
      << CpuBackend::MemoryPlanString(**exe);
  const std::string table = CpuBackend::MemoryPlanString(**exe);
  // The dense backward runs as oneDNN inner-product backward-weights nodes.
  EXPECT_TRUE(absl::StrContains(table, "[cpu.dense_backward_weights]"))
      << table;
  EXPECT_FALSE(absl::StrContains(table, "[reduce_sum]")) << table;
}

TEST(CpuTrainTest, ConvBiasGradientRunsInsideConvBackwardWeights) {
  Sequential model = SmallCnn();
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto exe = cpu.Compile(model.graph(GraphStage::kTrain), 4, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  const std::string table = CpuBackend::MemoryPlanString(**exe);
  EXPECT_TRUE(absl::StrContains(table, "[cpu.conv2d_backward_weights]"))
      << table;
  EXPECT_FALSE(absl::StrContains(table, "[conv2d_backprop_filter]")) << table;
}

// y = relu(x) over x [N, width].
Graph ReluGraph(int64_t width) {
  Graph graph("g");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  graph.AddOutput("y",
                  b.Op("relu", {b.Input("x", {DType::kF32, Shape{N, width}})}));
  return graph;
}

// By default a step too small to split between cores runs on one thread:
// scikit-learn's (5,5,5) net at batch 200 does, the MLP 784-512-512-10 at
// batch 32 and a large elementwise graph use every core, and a thread count
// set by the caller is kept.
TEST(CpuTrainTest, TinyStepsRunOnOneThread) {
  const auto threads = [](Sequential model, int64_t batch, int set) {
    model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true},
                  {"accuracy"}, Device::CPU());
    CpuBackend cpu;
    cpu.SetNumThreads(set);
    auto store = cpu.CreateVariableStore();
    auto exe = cpu.Compile(model.graph(GraphStage::kTrain), batch, store.get());
    EXPECT_TRUE(exe.ok()) << exe.status();
    return exe.ok() ? CpuBackend::NumThreadsOf(**exe) : -1;
  };
  const auto small = [] {
    return Sequential({Input({784}), Dense(5, "relu"), Dense(5, "relu"),
                       Dense(5, "relu"), Dense(10)});
  };
  const auto mlp = [] {
    return Sequential(
        {Input({784}), Dense(512, "relu"), Dense(512, "relu"), Dense(10)});
  };
  EXPECT_EQ(threads(small(), 200, 0), 1);
  EXPECT_EQ(threads(small(), 200, 2), 2);
  EXPECT_EQ(threads(mlp(), 32, 0), omp_get_num_procs());

  const Graph graph = ReluGraph(4096);
  CpuBackend cpu;
  auto store = cpu.CreateVariableStore();
  auto big = cpu.Compile(graph, 256, store.get());
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(CpuBackend::NumThreadsOf(**big), omp_get_num_procs());
  auto tiny = cpu.Compile(graph, 2, store.get());
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(CpuBackend::NumThreadsOf(**tiny), 1);
}

TEST(CpuTrainTest, PlanIsNullForOtherExecutables) {
  const Graph graph = ReluGraph(3);
  ReferenceBackend reference;
  auto store = reference.CreateVariableStore();
  auto exe = reference.Compile(graph, 2, store.get());
  ASSERT_TRUE(exe.ok());
  EXPECT_EQ(CpuBackend::MemoryPlanOf(**exe), nullptr);
}

}  // namespace
}  // namespace sequent
