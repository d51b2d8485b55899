// The CUDA backend against the reference backend: one table row per lowered
// op (forward, backward, losses, metrics, dropout, optimizer updates), whole
// MLP train steps (every variable and slot after three steps), prefetched
// feeds and graph-less runs. Every comparison needs a GPU and skips without
// one; the lowering errors (unsupported ops, no device) are checked anywhere.

#include "backends/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "backends/reference/reference_backend.h"
#include "core/graph.h"
#include "core/graph_builder.h"
#include "core/training_graph.h"
#include "frontend/device.h"
#include "frontend/layers.h"
#include "frontend/mixed_precision.h"
#include "frontend/model.h"
#include "gtest/gtest.h"
#include "ops/registry.h"

namespace sequent {
namespace {

constexpr int64_t N = Shape::kBatch;

#define SKIP_WITHOUT_GPU()                                     \
  do {                                                         \
    if (absl::Status s = CudaBackend::DeviceStatus(); !s.ok()) \
      GTEST_SKIP() << s.message();                             \
  } while (0)

enum class Fill {
  kNormal,
  kPositive,
  kLabels,
  kStep,
  kProbability,  // in (0, 1)
  kBinary,       // 0 or 1
  kSmallInts,    // 0, 1 or 2: ties for max-based ops
};

struct InputSpec {
  TensorType type;
  Fill fill = Fill::kNormal;
  int classes = 0;
};

InputSpec F32(std::vector<int64_t> dims, Fill fill = Fill::kNormal) {
  return {{DType::kF32, Shape(std::move(dims))}, fill};
}
InputSpec Labels(DType dtype, std::vector<int64_t> dims, int classes) {
  return {{dtype, Shape(std::move(dims))}, Fill::kLabels, classes};
}
InputSpec Typed(DType dtype, std::vector<int64_t> dims,
                Fill fill = Fill::kNormal) {
  return {{dtype, Shape(std::move(dims))}, fill, 50};
}

struct OpCase {
  std::string name;
  std::string op;
  std::vector<InputSpec> inputs;
  Attributes attrs;
  double tolerance = 1e-5;
};

std::ostream& operator<<(std::ostream& os, const OpCase& c) {
  return os << c.name;
}

Tensor RandomTensor(const InputSpec& spec, std::mt19937& rng) {
  Tensor t(spec.type);
  std::uniform_real_distribution<double> normal(-2.0, 2.0), positive(0.1, 3.0);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    double v = 0;
    switch (spec.fill) {
      case Fill::kNormal:
        v = normal(rng);
        break;
      case Fill::kPositive:
        v = positive(rng);
        break;
      case Fill::kLabels:
        v = static_cast<double>(rng() % spec.classes);
        break;
      case Fill::kStep:
        v = 7;
        break;
      case Fill::kProbability:
        v = 0.05 + 0.9 * (positive(rng) - 0.1) / 2.9;
        break;
      case Fill::kBinary:
        v = static_cast<double>(rng() % 2);
        break;
      case Fill::kSmallInts:
        v = static_cast<double>(rng() % 3);
        break;
    }
    t.SetFromDouble(i, v);
  }
  return t;
}

void ExpectClose(const Tensor& got, const Tensor& ref, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.type(), ref.type()) << what;
  int misses = 0;
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    const double c = got.GetAsDouble(i), r = ref.GetAsDouble(i);
    if (!(std::abs(c - r) <= tol * (1.0 + std::abs(r))) && misses++ < 5) {
      ADD_FAILURE() << what << " element " << i << ": cuda " << c
                    << " vs reference " << r;
    }
  }
}

std::vector<Tensor> Allocated(const Graph& graph, int64_t batch) {
  std::vector<Tensor> out;
  for (const GraphOutput& o : graph.outputs()) {
    TensorType t = graph.type(o.value);
    t.shape = t.shape.WithBatch(batch);
    out.emplace_back(t);
  }
  return out;
}

// |got - ref| <= tol * max|ref| over the tensor: bf16 GEMM errors scale with
// the output's magnitude, not each element's.
void ExpectCloseToScale(const Tensor& got, const Tensor& ref, double tol,
                        const std::string& what) {
  ASSERT_EQ(got.type(), ref.type()) << what;
  double scale = 0;
  for (int64_t i = 0; i < ref.num_elements(); ++i)
    scale = std::max(scale, std::abs(ref.GetAsDouble(i)));
  int misses = 0;
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    const double c = got.GetAsDouble(i), r = ref.GetAsDouble(i);
    if (!(std::abs(c - r) <= tol * scale) && misses++ < 5) {
      ADD_FAILURE() << what << " element " << i << ": " << c << " vs " << r
                    << " (scale " << scale << ")";
    }
  }
}

// The GEMM lines of a compiled executable's StepImplementations.
std::vector<std::string> GemmImplementations(const Executable& exe) {
  std::vector<std::string> gemms;
  for (const std::string& line :
       dynamic_cast<const CudaExecutable&>(exe).StepImplementations()) {
    if (absl::StrContains(line, "cublasLt")) gemms.push_back(line);
  }
  return gemms;
}

// With `compute` bf16, every GEMM must have got a bf16 algorithm (so the
// comparison cannot pass on an f32 fallback) and outputs are compared
// relative to their largest magnitude.
void CompareBackends(const Graph& graph, int64_t batch,
                     const std::vector<Feed>& feeds, double tol,
                     const std::string& what, DType compute = DType::kF32) {
  ReferenceBackend reference;
  CudaBackend cuda;
  ASSERT_TRUE(cuda.SetComputeDType(compute).ok());
  auto ref_store = reference.CreateVariableStore();
  auto cuda_store = cuda.CreateVariableStore();
  auto ref_exe = reference.Compile(graph, batch, ref_store.get());
  ASSERT_TRUE(ref_exe.ok()) << what << ": " << ref_exe.status();
  auto cuda_exe = cuda.Compile(graph, batch, cuda_store.get());
  ASSERT_TRUE(cuda_exe.ok()) << what << ": " << cuda_exe.status();
  if (compute == DType::kBF16) {
    const std::vector<std::string> gemms = GemmImplementations(**cuda_exe);
    EXPECT_FALSE(gemms.empty()) << what;
    for (const std::string& line : gemms) {
      EXPECT_TRUE(absl::EndsWith(line, " bf16")) << what << ": " << line;
    }
  }
  std::vector<Tensor> ref_out = Allocated(graph, batch), cuda_out;
  ASSERT_TRUE((*ref_exe)->Run(feeds, ref_out).ok());
  absl::Status run = (*cuda_exe)->Run(feeds, cuda_out);
  ASSERT_TRUE(run.ok()) << what << ": " << run;
  ASSERT_EQ(cuda_out.size(), ref_out.size());
  for (size_t i = 0; i < ref_out.size(); ++i) {
    const std::string name =
        absl::StrCat(what, " output ", (*cuda_exe)->output_names()[i]);
    if (compute == DType::kBF16) {
      ExpectCloseToScale(cuda_out[i], ref_out[i], tol, name);
    } else {
      ExpectClose(cuda_out[i], ref_out[i], tol, name);
    }
  }
  // The second run replays the captured CUDA graph.
  std::vector<Tensor> again;
  ASSERT_TRUE((*cuda_exe)->Run(feeds, again).ok());
  for (size_t i = 0; i < again.size(); ++i) {
    ExpectClose(again[i], cuda_out[i], 0, absl::StrCat(what, " replay"));
  }
}

Graph SingleOpGraph(const OpCase& c, bool* ok) {
  Graph graph(c.name);
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  std::vector<ValueId> inputs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    inputs.push_back(b.Input(absl::StrCat("in", i), c.inputs[i].type));
  }
  std::vector<ValueId> outs = b.OpMulti(c.op, inputs, c.attrs);
  *ok = b.ok();
  for (size_t i = 0; i < outs.size(); ++i)
    graph.AddOutput(absl::StrCat("out", i), outs[i]);
  return graph;
}

class CudaOpConformanceTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaOpConformanceTest, MatchesReference) {
  SKIP_WITHOUT_GPU();
  const OpCase& c = GetParam();
  bool ok = false;
  Graph graph = SingleOpGraph(c, &ok);
  ASSERT_TRUE(ok) << c.name;
  constexpr int64_t kBatch = 3;
  std::mt19937 rng(42);
  std::vector<Tensor> tensors;
  for (const InputSpec& spec : c.inputs) {
    InputSpec bound = spec;
    bound.type.shape = spec.type.shape.WithBatch(kBatch);
    tensors.push_back(RandomTensor(bound, rng));
  }
  std::vector<Feed> feeds;
  for (size_t i = 0; i < tensors.size(); ++i)
    feeds.push_back({absl::StrCat("in", i), &tensors[i]});
  CompareBackends(graph, kBatch, feeds, c.tolerance, c.name);
}

std::vector<OpCase> Cases() {
  std::vector<OpCase> cases;
  const auto add = [&](OpCase c) { cases.push_back(std::move(c)); };
  for (const char* act : {"linear", "relu", "leaky_relu", "elu", "selu",
                          "sigmoid", "tanh", "gelu", "swish", "softplus"}) {
    add({absl::StrCat("dense_", act),
         "dense",
         {F32({N, 7}), F32({7, 5}), F32({5})},
         {{"activation", std::string(act)}}});
  }
  add({"dense_no_bias", "dense", {F32({N, 7}), F32({7, 5})}, {}});
  add({"dense_relu_no_bias",
       "dense",
       {F32({N, 7}), F32({7, 5})},
       {{"activation", std::string("relu")}}});
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
  for (const char* op : {"add", "sub", "mul", "div", "maximum"}) {
    add({absl::StrCat(op, "_same"), op, {F32({N, 4}), F32({N, 4})}, {}});
    add({absl::StrCat(op, "_broadcast"), op, {F32({N, 4}), F32({1, 4})}, {}});
    add({absl::StrCat(op, "_scalar"), op, {F32({N, 4}), F32({})}, {}});
  }
  for (const char* op : {"neg", "exp", "square", "abs"})
    add({op, op, {F32({N, 6})}, {}});
  for (const char* op : {"log", "sqrt"})
    add({op, op, {F32({N, 6}, Fill::kPositive)}, {}});
  for (const char* op : {"relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh",
                         "gelu", "swish", "softplus"})
    add({op, op, {F32({N, 6})}, {}});
  add({"leaky_relu_alpha", "leaky_relu", {F32({N, 6})}, {{"alpha", 0.05}}});
  add({"gelu_approximate", "gelu", {F32({N, 6})}, {{"approximate", true}}});
  add({"softmax", "softmax", {F32({N, 5})}, {}});
  add({"softmax_axis0", "softmax", {F32({N, 5})}, {{"axis", int64_t{0}}}});
  add({"log_softmax", "log_softmax", {F32({N, 5})}, {}});
  add({"softmax_grad",
       "softmax_grad",
       {F32({N, 5}), F32({N, 5}, Fill::kPositive)},
       {}});
  add({"log_softmax_grad", "log_softmax_grad", {F32({N, 5}), F32({N, 5})}, {}});
  add({"reduce_sum_all", "reduce_sum", {F32({N, 4, 3})}, {}});
  add({"reduce_sum_axis0",
       "reduce_sum",
       {F32({N, 4})},
       {{"axes", std::vector<int64_t>{0}}}});
  add({"reduce_mean_axis1",
       "reduce_mean",
       {F32({N, 4, 3})},
       {{"axes", std::vector<int64_t>{1}}, {"keepdims", true}}});
  add({"reduce_max_last",
       "reduce_max",
       {F32({N, 4})},
       {{"axes", std::vector<int64_t>{-1}}}});
  add({"reduce_to_shape",
       "reduce_to_shape",
       {F32({N, 4, 3})},
       {{"shape", std::vector<int64_t>{4, 1}}}});
  // A conv's bias gradient: many rows, few columns (rows split over blocks).
  add({"reduce_to_shape_tall",
       "reduce_to_shape",
       {F32({N, 40, 40, 3})},
       {{"shape", std::vector<int64_t>{3}}},
       1e-4});
  add({"broadcast_to",
       "broadcast_to",
       {F32({4, 1})},
       {{"shape", std::vector<int64_t>{2, 4, 3}}}});
  for (const char* act :
       {"relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh"}) {
    add({absl::StrCat("activation_grad_", act),
         "activation_grad",
         {F32({N, 6}), F32({N, 6})},
         {{"activation", std::string(act)}}});
    add({absl::StrCat("activation_bias_grad_", act),
         "activation_bias_grad",
         {F32({N, 6}), F32({N, 6})},
         {{"activation", std::string(act)}}});
  }
  for (const char* act : {"gelu", "swish", "softplus", "relu"}) {
    add({absl::StrCat("activation_input_grad_", act),
         "activation_input_grad",
         {F32({N, 6}), F32({N, 6})},
         {{"activation", std::string(act)}}});
  }
  add({"dropout",
       "dropout",
       {F32({N, 64}), {{DType::kI64, Shape{}}, Fill::kStep}},
       {{"rate", 0.3}, {"seed", int64_t{5}}},
       0});
  add({"dropout_inference",
       "dropout",
       {F32({N, 8})},
       {{"rate", 0.3}, {"training", false}},
       0});
  for (DType d : {DType::kI32, DType::kI64}) {
    const std::string suffix = d == DType::kI32 ? "i32" : "i64";
    add({"sparse_ce_logits_" + suffix,
         "sparse_categorical_crossentropy",
         {Labels(d, {N}, 5), F32({N, 5})},
         {{"from_logits", true}}});
    add({"sparse_ce_grad_logits_" + suffix,
         "sparse_categorical_crossentropy_grad",
         {Labels(d, {N}, 5), F32({N, 5}), F32({})},
         {{"from_logits", true}}});
    add({"sparse_accuracy_" + suffix,
         "sparse_categorical_accuracy",
         {Labels(d, {N}, 5), F32({N, 5})},
         {}});
  }
  add({"sparse_ce_probs",
       "sparse_categorical_crossentropy",
       {Labels(DType::kI32, {N}, 5), F32({N, 5}, Fill::kPositive)},
       {}});
  add({"sparse_ce_grad_probs",
       "sparse_categorical_crossentropy_grad",
       {Labels(DType::kI32, {N}, 5), F32({N, 5}, Fill::kPositive), F32({})},
       {}});
  add({"sparse_ce_weighted",
       "sparse_categorical_crossentropy",
       {Labels(DType::kI32, {N}, 5), F32({N, 5}), F32({N}, Fill::kPositive)},
       {{"from_logits", true}}});
  add({"sparse_ce_grad_weighted",
       "sparse_categorical_crossentropy_grad",
       {Labels(DType::kI32, {N}, 5), F32({N, 5}), F32({}),
        F32({N}, Fill::kPositive)},
       {{"from_logits", true}}});
  for (const char* loss : {"mse", "mae"}) {
    add({loss, loss, {F32({N, 4}), F32({N, 4})}, {}});
    add({absl::StrCat(loss, "_grad"),
         absl::StrCat(loss, "_grad"),
         {F32({N, 4}), F32({N, 4}), F32({})},
         {}});
  }
  add({"categorical_accuracy",
       "categorical_accuracy",
       {F32({N, 5}), F32({N, 5})},
       {}});
  add({"clip_by_value",
       "clip_by_value",
       {F32({N, 6})},
       {{"min", -0.5}, {"max", 0.7}}});
  add({"clip_by_norm", "clip_by_norm", {F32({N, 6})}, {{"max_norm", 1.5}}});
  const InputSpec lr = F32({}, Fill::kPositive),
                  it = {{DType::kF32, Shape{}}, Fill::kStep};
  add({"sgd_update", "sgd_update", {F32({5, 3}), F32({5, 3}), lr, it}, {}});
  add({"momentum_update",
       "momentum_update",
       {F32({5, 3}), F32({5, 3}), F32({5, 3}), lr, it},
       {{"momentum", 0.9}, {"nesterov", true}}});
  add({"adam_update",
       "adam_update",
       {F32({5, 3}), F32({5, 3}), F32({5, 3}), F32({5, 3}, Fill::kPositive), lr,
        it},
       {},
       1e-4});
  add({"adamw_update",
       "adamw_update",
       {F32({9000}), F32({9000}), F32({9000}), F32({9000}, Fill::kPositive), lr,
        it},
       {},
       1e-4});
  add({"rmsprop_update",
       "rmsprop_update",
       {F32({5000}), F32({5000}), F32({5000}, Fill::kPositive), lr, it},
       {{"rho", 0.8}},
       1e-4});
  add({"adagrad_update",
       "adagrad_update",
       {F32({5, 3}), F32({5, 3}), F32({5, 3}, Fill::kPositive), lr, it},
       {},
       1e-4});

  // Convolutions (cuDNN): valid, symmetric "same", TF's asymmetric "same"
  // (stride 2 on an even input: one more pixel at the bottom/right, padded
  // explicitly), dilation; and both backprops of each.
  struct ConvCase {
    std::string name;
    std::vector<int64_t> x, k, y;
    Attributes attrs;
  };
  const std::vector<ConvCase> convs = {
      {"valid", {N, 8, 7, 3}, {3, 2, 3, 4}, {N, 6, 6, 4}, {}},
      {"same",
       {N, 8, 8, 2},
       {3, 3, 2, 5},
       {N, 8, 8, 5},
       {{"padding", std::string("same")}}},
      {"same_stride2",
       {N, 8, 9, 2},
       {3, 3, 2, 4},
       {N, 4, 5, 4},
       {{"padding", std::string("same")},
        {"strides", std::vector<int64_t>{2, 2}}}},
      {"same_even_kernel",
       {N, 6, 6, 3},
       {2, 2, 3, 2},
       {N, 6, 6, 2},
       {{"padding", std::string("same")}}},
      {"valid_stride2_dilated",
       {N, 9, 9, 2},
       {3, 3, 2, 3},
       {N, 3, 3, 3},
       {{"strides", std::vector<int64_t>{2, 2}},
        {"dilations", std::vector<int64_t>{2, 2}}}},
  };
  for (const ConvCase& cc : convs) {
    add({"conv2d_" + cc.name,
         "conv2d",
         {F32(cc.x), F32(cc.k)},
         cc.attrs,
         1e-4});
    Attributes in_attrs = cc.attrs;
    in_attrs["input_shape"] = cc.x;
    add({"conv2d_backprop_input_" + cc.name,
         "conv2d_backprop_input",
         {F32(cc.y), F32(cc.k)},
         in_attrs,
         1e-4});
    Attributes filter_attrs = cc.attrs;
    filter_attrs["filter_shape"] = cc.k;
    add({"conv2d_backprop_filter_" + cc.name,
         "conv2d_backprop_filter",
         {F32(cc.x), F32(cc.y)},
         filter_attrs,
         1e-4});
  }

  // Pooling: valid, "same" with asymmetric windows, overlapping windows.
  struct PoolCase {
    std::string name;
    std::vector<int64_t> x, y;
    Attributes attrs;
  };
  const std::vector<PoolCase> pools = {
      {"2x2", {N, 6, 6, 3}, {N, 3, 3, 3}, {}},
      {"3x3_same_stride2",
       {N, 7, 8, 2},
       {N, 4, 4, 2},
       {{"pool_size", std::vector<int64_t>{3, 3}},
        {"strides", std::vector<int64_t>{2, 2}},
        {"padding", std::string("same")}}},
      {"3x2_overlapping",
       {N, 7, 6, 2},
       {N, 5, 5, 2},
       {{"pool_size", std::vector<int64_t>{3, 2}},
        {"strides", std::vector<int64_t>{1, 1}}}},
  };
  for (const PoolCase& pc : pools) {
    add({"max_pool2d_" + pc.name, "max_pool2d", {F32(pc.x)}, pc.attrs});
    add({"avg_pool2d_" + pc.name, "avg_pool2d", {F32(pc.x)}, pc.attrs});
    // y only has to have the forward output's type (the reference recomputes
    // the maxima from x); small integers make ties.
    add({"max_pool2d_grad_" + pc.name,
         "max_pool2d_grad",
         {F32(pc.x, Fill::kSmallInts), F32(pc.y), F32(pc.y)},
         pc.attrs});
    Attributes grad_attrs = pc.attrs;
    grad_attrs["input_shape"] = pc.x;
    add({"avg_pool2d_grad_" + pc.name,
         "avg_pool2d_grad",
         {F32(pc.y)},
         grad_attrs});
  }
  add({"global_avg_pool2d", "global_avg_pool2d", {F32({N, 5, 4, 3})}, {}});
  add({"global_avg_pool2d_grad",
       "global_avg_pool2d_grad",
       {F32({N, 3})},
       {{"input_shape", std::vector<int64_t>{-1, 5, 4, 3}}}});

  // Normalization: batch_norm (cuDNN in training, our kernel in inference)
  // over NHWC and [N, C]; batch_norm_grad with constant statistics (the
  // training gradient needs consistent statistics: CudaTrainTest below).
  for (bool training : {false, true}) {
    const std::string mode = training ? "training" : "inference";
    add({"batch_norm_nhwc_" + mode,
         "batch_norm",
         {F32({N, 4, 5, 3}), F32({3}), F32({3}), F32({3}),
          F32({3}, Fill::kPositive)},
         {{"training", training}, {"momentum", 0.9}},
         1e-4});
    add({"batch_norm_2d_" + mode,
         "batch_norm",
         {F32({N, 6}), F32({6}), F32({6}), F32({6}), F32({6}, Fill::kPositive)},
         {{"training", training}, {"epsilon", 1e-2}},
         1e-4});
  }
  add({"batch_norm_grad_inference",
       "batch_norm_grad",
       {F32({N, 4, 5, 3}), F32({N, 4, 5, 3}), F32({3}), F32({3}),
        F32({3}, Fill::kPositive)},
       {{"training", false}},
       1e-4});
  add({"layer_norm",
       "layer_norm",
       {F32({N, 4, 37}), F32({37}), F32({37})},
       {},
       1e-4});
  add({"layer_norm_grad",
       "layer_norm_grad",
       {F32({N, 4, 37}), F32({N, 4, 37}), F32({37}), F32({N, 4}),
        F32({N, 4}, Fill::kPositive)},
       {},
       1e-4});

  // Losses.
  add({"huber", "huber", {F32({N, 4}), F32({N, 4})}, {{"delta", 0.7}}});
  add({"huber_grad",
       "huber_grad",
       {F32({N, 4}), F32({N, 4}), F32({})},
       {{"delta", 0.7}}});
  add({"huber_weighted",
       "huber",
       {F32({N, 4}), F32({N, 4}), F32({N}, Fill::kPositive)},
       {}});
  add({"bce_probs",
       "binary_crossentropy",
       {F32({N, 4}, Fill::kProbability), F32({N, 4}, Fill::kProbability)},
       {}});
  add({"bce_grad_probs",
       "binary_crossentropy_grad",
       {F32({N, 4}, Fill::kProbability), F32({N, 4}, Fill::kProbability),
        F32({})},
       {}});
  add({"bce_logits_smoothing",
       "binary_crossentropy",
       {F32({N, 4}, Fill::kBinary), F32({N, 4}), F32({N}, Fill::kPositive)},
       {{"from_logits", true}, {"label_smoothing", 0.1}}});
  add({"bce_grad_logits_smoothing",
       "binary_crossentropy_grad",
       {F32({N, 4}, Fill::kBinary), F32({N, 4}), F32({}),
        F32({N}, Fill::kPositive)},
       {{"from_logits", true}, {"label_smoothing", 0.1}}});
  add({"cce_probs",
       "categorical_crossentropy",
       {F32({N, 5}, Fill::kProbability), F32({N, 5}, Fill::kPositive)},
       {}});
  add({"cce_grad_probs",
       "categorical_crossentropy_grad",
       {F32({N, 5}, Fill::kProbability), F32({N, 5}, Fill::kPositive), F32({})},
       {}});
  add({"cce_logits_smoothing_weighted",
       "categorical_crossentropy",
       {F32({N, 5}, Fill::kBinary), F32({N, 5}), F32({N}, Fill::kPositive)},
       {{"from_logits", true}, {"label_smoothing", 0.2}}});
  add({"cce_grad_logits_smoothing_weighted",
       "categorical_crossentropy_grad",
       {F32({N, 5}, Fill::kBinary), F32({N, 5}), F32({}),
        F32({N}, Fill::kPositive)},
       {{"from_logits", true}, {"label_smoothing", 0.2}}});
  add({"binary_accuracy",
       "binary_accuracy",
       {F32({N, 6}, Fill::kBinary), F32({N, 6}, Fill::kProbability)},
       {{"threshold", 0.4}}});

  // Data movement and small elementwise ops.
  add({"transpose",
       "transpose",
       {F32({N, 4, 5})},
       {{"perm", std::vector<int64_t>{2, 0, 1}}}});
  add({"transpose_i64",
       "transpose",
       {Typed(DType::kI64, {3, 4}, Fill::kLabels)},
       {{"perm", std::vector<int64_t>{1, 0}}}});
  add({"concat_axis1",
       "concat",
       {F32({N, 2, 3}), F32({N, 4, 3}), F32({N, 1, 3})},
       {{"axis", int64_t{1}}}});
  add({"concat_last", "concat", {F32({N, 2}), F32({N, 5})}, {}});
  add({"slice",
       "slice",
       {F32({N, 6, 5})},
       {{"begin", std::vector<int64_t>{0, 2, 1}},
        {"size", std::vector<int64_t>{-1, 3, -1}}}});
  add({"slice_grad",
       "slice_grad",
       {F32({N, 3, 4})},
       {{"begin", std::vector<int64_t>{0, 2, 1}},
        {"input_shape", std::vector<int64_t>{-1, 6, 5}}}});
  struct CastCase {
    DType from, to;
  };
  for (const CastCase& cc :
       {CastCase{DType::kF32, DType::kI32}, CastCase{DType::kF32, DType::kI64},
        CastCase{DType::kI32, DType::kF32}, CastCase{DType::kI64, DType::kF32},
        CastCase{DType::kI64, DType::kI32}, CastCase{DType::kF32, DType::kBF16},
        CastCase{DType::kBF16, DType::kF32}}) {
    add({absl::StrCat("cast_", DTypeName(cc.from), "_", DTypeName(cc.to)),
         "cast",
         {Typed(cc.from, {N, 7},
                cc.from == DType::kI32 || cc.from == DType::kI64
                    ? Fill::kLabels
                    : Fill::kNormal)},
         {{"to", std::string(DTypeName(cc.to))}},
         0});
  }
  add({"sign", "sign", {F32({N, 6}, Fill::kSmallInts)}, {}});
  add({"maximum_grad_same",
       "maximum_grad",
       {F32({N, 4}, Fill::kSmallInts), F32({N, 4}, Fill::kSmallInts),
        F32({N, 4})},
       {}});
  add({"maximum_grad_broadcast",
       "maximum_grad",
       {F32({N, 4}), F32({1, 4}), F32({N, 4})},
       {}});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Ops, CudaOpConformanceTest,
                         ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// ---- Lowering errors: no device needed.

// Every table row lowers (the device check comes after the lowering).
TEST(CudaBackendTest, EveryTableOpLowersWithoutAGpu) {
  if (CudaBackend::DeviceStatus().ok()) GTEST_SKIP() << "a GPU is visible";
  CudaBackend cuda;
  for (const OpCase& c : Cases()) {
    bool ok = false;
    Graph graph = SingleOpGraph(c, &ok);
    EXPECT_TRUE(ok) << c.name;
    if (!ok) continue;
    auto store = cuda.CreateVariableStore();
    auto exe = cuda.Compile(graph, 3, store.get());
    ASSERT_FALSE(exe.ok());
    EXPECT_EQ(exe.status().code(), absl::StatusCode::kFailedPrecondition)
        << c.name << ": " << exe.status();
  }
}

// Every op of the IR lowers in f32 now; f16 is not supported anywhere.
TEST(CudaBackendTest, UnsupportedOpsFailAtCompileNamingTheOp) {
  bool ok = false;
  Graph graph = SingleOpGraph(
      {"cast_f16", "cast", {F32({N, 4})}, {{"to", std::string("f16")}}}, &ok);
  ASSERT_TRUE(ok);
  CudaBackend cuda;
  auto store = cuda.CreateVariableStore();
  auto exe = cuda.Compile(graph, 2, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_EQ(exe.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(
      absl::StartsWith(exe.status().message(), "[cast] the cuda backend"))
      << exe.status();
}

TEST(CudaBackendTest, F64FailsAtCompile) {
  bool ok = false;
  Graph graph = SingleOpGraph(
      {"add64",
       "add",
       {{{DType::kF64, Shape{N, 3}}}, {{DType::kF64, Shape{N, 3}}}},
       {}},
      &ok);
  ASSERT_TRUE(ok);
  CudaBackend cuda;
  auto store = cuda.CreateVariableStore();
  auto exe = cuda.Compile(graph, 2, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_EQ(exe.status().code(), absl::StatusCode::kUnimplemented)
      << exe.status();
  EXPECT_TRUE(absl::StrContains(exe.status().message(), "f32 only"))
      << exe.status();
}

TEST(CudaBackendTest, WithoutAGpuCompileSaysSo) {
  if (CudaBackend::DeviceStatus().ok()) GTEST_SKIP() << "a GPU is visible";
  bool ok = false;
  Graph graph = SingleOpGraph({"relu", "relu", {F32({N, 6})}, {}}, &ok);
  ASSERT_TRUE(ok);
  CudaBackend cuda;
  auto store = cuda.CreateVariableStore();
  auto exe = cuda.Compile(graph, 2, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_EQ(exe.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StartsWith(exe.status().message(),
                               "CUDA requested but no GPU is visible: "))
      << exe.status();
  EXPECT_FALSE(CudaAvailable());
  EXPECT_FALSE(CreateBackend(Device::CUDA()).ok());
  EXPECT_TRUE(CreateBackend(Device::CPU()).ok());
}

// ---- Whole train steps.

Sequential Mlp(int64_t in, std::vector<int64_t> hidden, int64_t classes,
               const std::string& act) {
  std::vector<LayerPtr> layers = {Input({in})};
  for (int64_t h : hidden) layers.push_back(Dense(h, act));
  layers.push_back(Dense(classes));
  return Sequential(std::move(layers));
}

// `in` is one sample's shape.
void CompareTrainSteps(Sequential model, const Optimizer& optimizer,
                       std::vector<int64_t> in, int64_t batch, double tol,
                       const std::string& what, bool prefetch = false,
                       bool use_graph = true) {
  SKIP_WITHOUT_GPU();
  model.compile(optimizer, SparseCategoricalCrossentropy{.from_logits = true},
                {"accuracy"}, Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  ReferenceBackend reference;
  CudaBackend cuda(CudaBackend::Options{.use_cuda_graph = use_graph});
  auto ref_store = reference.CreateVariableStore();
  auto cuda_store = cuda.CreateVariableStore();
  auto ref_exe = reference.Compile(train, batch, ref_store.get());
  ASSERT_TRUE(ref_exe.ok()) << ref_exe.status();
  auto cuda_exe = cuda.Compile(train, batch, cuda_store.get());
  ASSERT_TRUE(cuda_exe.ok()) << cuda_exe.status();
  auto* cexe = dynamic_cast<CudaExecutable*>(cuda_exe->get());
  ASSERT_NE(cexe, nullptr);
  std::mt19937 rng(11);
  struct Batch {
    Tensor x, y, w, lr;
    std::vector<Feed> feeds;
  };
  std::vector<Batch> batches(3);
  for (Batch& b : batches) {
    std::vector<int64_t> x_dims = {batch};
    x_dims.insert(x_dims.end(), in.begin(), in.end());
    b.x = RandomTensor(F32(x_dims), rng);
    b.y = RandomTensor(Labels(DType::kI32, {batch}, 10), rng);
    b.w = RandomTensor(F32({batch}, Fill::kPositive), rng);
    b.lr = Tensor::Scalar<float>(0.01f);
    b.feeds = {{kFeatureFeed, &b.x},
               {kLabelFeed, &b.y},
               {kSampleWeightFeed, &b.w},
               {kLearningRateFeed, &b.lr}};
  }
  if (prefetch) {
    ASSERT_TRUE(cexe->Prefetch(batches[0].feeds).ok());
  }
  for (size_t step = 0; step < batches.size(); ++step) {
    std::vector<Tensor> ref_out = Allocated(train, batch), cuda_out;
    ASSERT_TRUE((*ref_exe)->Run(batches[step].feeds, ref_out).ok());
    absl::Status s;
    if (prefetch) {
      if (step + 1 < batches.size()) {
        ASSERT_TRUE(cexe->Prefetch(batches[step + 1].feeds).ok());
      }
      s = cexe->Run({}, cuda_out);
    } else {
      s = cexe->Run(batches[step].feeds, cuda_out);
    }
    ASSERT_TRUE(s.ok()) << s;
    for (size_t i = 0; i < ref_out.size(); ++i) {
      ExpectClose(cuda_out[i], ref_out[i], tol,
                  absl::StrCat(what, " step ", step, " output ",
                               cexe->output_names()[i]));
    }
  }
  ASSERT_EQ(cuda_store->Names(), ref_store->Names());
  for (const std::string& name : ref_store->Names()) {
    auto r = ref_store->Read(name);
    auto c = cuda_store->Read(name);
    ASSERT_TRUE(r.ok() && c.ok()) << name;
    ExpectClose(*c, *r, tol, absl::StrCat(what, " variable ", name));
  }
}

// Without a GPU, Compile still lowers every node before it needs the device:
// a FailedPrecondition (not Unimplemented) means the whole graph lowers. Checks
// the model's train, eval and predict graphs.
void ExpectGraphsLowerWithoutAGpu(Sequential model, const Optimizer& optimizer,
                                  const std::string& what) {
  model.compile(optimizer, SparseCategoricalCrossentropy{.from_logits = true},
                {"accuracy"}, Device::CPU());
  CudaBackend cuda;
  for (GraphStage stage :
       {GraphStage::kTrain, GraphStage::kEval, GraphStage::kPredict}) {
    auto store = cuda.CreateVariableStore();
    auto exe = cuda.Compile(model.graph(stage), 8, store.get());
    ASSERT_FALSE(exe.ok()) << what;
    EXPECT_EQ(exe.status().code(), absl::StatusCode::kFailedPrecondition)
        << what << ": " << exe.status();
  }
}

TEST(CudaBackendTest, MlpTrainGraphsLowerWithoutAGpu) {
  if (CudaBackend::DeviceStatus().ok()) GTEST_SKIP() << "a GPU is visible";
  ExpectGraphsLowerWithoutAGpu(Mlp(784, {512, 512}, 10, "relu"), Adam{},
                               "adam relu");
  ExpectGraphsLowerWithoutAGpu(
      Mlp(20, {16}, 10, "tanh"),
      SGD{.learning_rate = 0.01, .momentum = 0.9, .clipnorm = 0.5},
      "sgd tanh clipnorm");
  ExpectGraphsLowerWithoutAGpu(Mlp(20, {16}, 10, "gelu"), SGD{}, "sgd gelu");
}

// tools/gpu/cuda_bench.cc's CNN: conv32-pool-conv64-pool-dense128-dense10.
Sequential Cnn() {
  Conv2DOptions relu;
  relu.activation = "relu";
  return Sequential({Input({28, 28, 1}), Conv2D(32, {3, 3}, relu),
                     MaxPooling2D({2, 2}), Conv2D(64, {3, 3}, relu),
                     MaxPooling2D({2, 2}), Flatten(), Dense(128, "relu"),
                     Dense(10)});
}

// Every new lowering inside whole graphs: "same" convolutions (one strided:
// asymmetric padding), batch norm in training and inference, average and
// global pooling, layer norm, dropout.
Sequential NormCnn() {
  Conv2DOptions same;
  same.padding = "same";
  Conv2DOptions strided = same;
  strided.strides = {2, 2};
  return Sequential({Input({10, 10, 3}), Conv2D(8, {3, 3}, same),
                     BatchNormalization({.momentum = 0.9}), Activation("relu"),
                     AveragePooling2D({2, 2}), Conv2D(6, {3, 3}, strided),
                     GlobalAveragePooling2D(), LayerNormalization(),
                     Dropout(0.2, 3), Dense(10)});
}

TEST(CudaBackendTest, CnnTrainGraphsLowerWithoutAGpu) {
  if (CudaBackend::DeviceStatus().ok()) GTEST_SKIP() << "a GPU is visible";
  ExpectGraphsLowerWithoutAGpu(Cnn(), Adam{}, "cnn adam");
  ExpectGraphsLowerWithoutAGpu(NormCnn(), RMSprop{}, "norm cnn rmsprop");
  ExpectGraphsLowerWithoutAGpu(NormCnn(), Adagrad{}, "norm cnn adagrad");
}

TEST(CudaTrainTest, CnnAdamMatchesReference) {
  CompareTrainSteps(Cnn(), Adam{}, {28, 28, 1}, 8, 2e-3, "cnn");
}

TEST(CudaTrainTest, NormCnnRmspropMatchesReference) {
  CompareTrainSteps(NormCnn(), RMSprop{}, {10, 10, 3}, 6, 2e-3, "norm cnn");
}

TEST(CudaTrainTest, NormCnnAdagradWithoutCudaGraphMatchesReference) {
  CompareTrainSteps(NormCnn(), Adagrad{}, {10, 10, 3}, 6, 2e-3,
                    "norm cnn no graph", /*prefetch=*/false,
                    /*use_graph=*/false);
}

// Ops whose inputs must be consistent: batch_norm_grad in training (cuDNN's
// backward from the forward's saved statistics), reduce_max_grad and
// max_pool2d_grad with ties (small integers).
TEST(CudaTrainTest, ForwardAndBackwardPairsMatchReference) {
  SKIP_WITHOUT_GPU();
  {
    Graph graph("bn");
    GraphBuilder b(&graph, &ops::DefaultRegistry());
    const ValueId x = b.Input("x", {DType::kF32, Shape{N, 4, 3, 5}});
    const ValueId dy = b.Input("dy", {DType::kF32, Shape{N, 4, 3, 5}});
    const ValueId gamma = b.Input("gamma", {DType::kF32, Shape{5}});
    const ValueId beta = b.Input("beta", {DType::kF32, Shape{5}});
    const ValueId mean = b.Input("mean", {DType::kF32, Shape{5}});
    const ValueId var = b.Input("var", {DType::kF32, Shape{5}});
    std::vector<ValueId> f = b.OpMulti(
        "batch_norm", {x, gamma, beta, mean, var}, {{"training", true}});
    ASSERT_TRUE(b.ok()) << b.status();
    std::vector<ValueId> g = b.OpMulti(
        "batch_norm_grad", {dy, x, gamma, f[3], f[4]}, {{"training", true}});
    ASSERT_TRUE(b.ok()) << b.status();
    for (int i = 0; i < 5; ++i) graph.AddOutput(absl::StrCat("f", i), f[i]);
    for (int i = 0; i < 3; ++i) graph.AddOutput(absl::StrCat("g", i), g[i]);
    std::mt19937 rng(5);
    Tensor tx = RandomTensor(F32({4, 4, 3, 5}), rng),
           tdy = RandomTensor(F32({4, 4, 3, 5}), rng),
           tg = RandomTensor(F32({5}), rng), tb = RandomTensor(F32({5}), rng),
           tm = RandomTensor(F32({5}), rng),
           tv = RandomTensor(F32({5}, Fill::kPositive), rng);
    CompareBackends(graph, 4,
                    {{"x", &tx},
                     {"dy", &tdy},
                     {"gamma", &tg},
                     {"beta", &tb},
                     {"mean", &tm},
                     {"var", &tv}},
                    1e-4, "batch_norm training + grad");
  }
  {
    Graph graph("max");
    GraphBuilder b(&graph, &ops::DefaultRegistry());
    const ValueId x = b.Input("x", {DType::kF32, Shape{N, 4, 6}});
    const ValueId dy = b.Input("dy", {DType::kF32, Shape{N, 6}});
    const ValueId px = b.Input("px", {DType::kF32, Shape{N, 6, 6, 2}});
    const Attributes axes = {{"axes", std::vector<int64_t>{1}}};
    const ValueId y = b.Op("reduce_max", {x}, axes);
    const ValueId dx = b.Op("reduce_max_grad", {x, y, dy}, axes);
    const Attributes pool = {{"pool_size", std::vector<int64_t>{3, 3}},
                             {"strides", std::vector<int64_t>{2, 2}},
                             {"padding", std::string("same")}};
    const ValueId py = b.Op("max_pool2d", {px}, pool);
    const ValueId pdx = b.Op("max_pool2d_grad", {px, py, py}, pool);
    ASSERT_TRUE(b.ok()) << b.status();
    graph.AddOutput("y", y);
    graph.AddOutput("dx", dx);
    graph.AddOutput("py", py);
    graph.AddOutput("pdx", pdx);
    std::mt19937 rng(9);
    Tensor tx = RandomTensor(F32({5, 4, 6}, Fill::kSmallInts), rng),
           tdy = RandomTensor(F32({5, 6}), rng),
           tpx = RandomTensor(F32({5, 6, 6, 2}, Fill::kSmallInts), rng);
    CompareBackends(graph, 5, {{"x", &tx}, {"dy", &tdy}, {"px", &tpx}}, 1e-5,
                    "max grads with ties");
  }
}

TEST(CudaTrainTest, MlpAdamMatchesReference) {
  CompareTrainSteps(Mlp(20, {16, 12}, 10, "relu"), Adam{}, {20}, 6, 1e-4,
                    "adam");
}

TEST(CudaTrainTest, MlpTanhSgdMomentumClipnormMatchesReference) {
  CompareTrainSteps(
      Mlp(20, {16}, 10, "tanh"),
      SGD{.learning_rate = 0.01, .momentum = 0.9, .clipnorm = 0.5}, {20}, 6,
      1e-4, "sgd");
}

TEST(CudaTrainTest, MlpGeluAdamWithoutCudaGraphMatchesReference) {
  CompareTrainSteps(Mlp(20, {16}, 10, "gelu"), Adam{}, {20}, 6, 1e-4,
                    "no graph",
                    /*prefetch=*/false, /*use_graph=*/false);
}

TEST(CudaTrainTest, Mlp784x512x512x10PrefetchedMatchesReference) {
  CompareTrainSteps(Mlp(784, {512, 512}, 10, "relu"), Adam{}, {784}, 128, 2e-3,
                    "mlp784 prefetch", /*prefetch=*/true);
}

// A weight gradient xᵀ dz beside the bias gradient (reduce_sum over the
// batch, and activation_bias_grad's): both become one cuBLASLt call with the
// BGRADA epilogue (or a plain GEMM + our column sum where cuBLASLt has none).
TEST(CudaTrainTest, WeightAndBiasGradientsMatchReference) {
  SKIP_WITHOUT_GPU();
  Graph graph("wgrad");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  const ValueId x = b.Input("x", {DType::kF32, Shape{N, 24}});
  const ValueId dy = b.Input("dy", {DType::kF32, Shape{N, 16}});
  const ValueId y = b.Input("y", {DType::kF32, Shape{N, 16}});
  const ValueId dw = b.Op("matmul", {x, dy}, {{"transpose_a", true}});
  const ValueId db =
      b.Op("reduce_sum", {dy}, {{"axes", std::vector<int64_t>{0}}});
  std::vector<ValueId> g = b.OpMulti("activation_bias_grad", {dy, y},
                                     {{"activation", std::string("relu")}});
  ASSERT_TRUE(b.ok()) << b.status();
  const ValueId dw2 = b.Op("matmul", {x, g[0]}, {{"transpose_a", true}});
  graph.AddOutput("dw", dw);
  graph.AddOutput("db", db);
  graph.AddOutput("dw2", dw2);
  graph.AddOutput("db2", g[1]);
  std::mt19937 rng(3);
  Tensor tx = RandomTensor(F32({37, 24}), rng),
         tdy = RandomTensor(F32({37, 16}), rng),
         ty = RandomTensor(F32({37, 16}), rng);
  CompareBackends(graph, 37, {{"x", &tx}, {"dy", &tdy}, {"y", &ty}}, 1e-4,
                  "wgrad");
}

TEST(CudaTrainTest, LabelOutOfRangeIsAnError) {
  SKIP_WITHOUT_GPU();
  bool ok = false;
  Graph graph = SingleOpGraph({"ce",
                               "sparse_categorical_crossentropy",
                               {Labels(DType::kI32, {N}, 5), F32({N, 5})},
                               {{"from_logits", true}}},
                              &ok);
  ASSERT_TRUE(ok);
  CudaBackend cuda;
  auto store = cuda.CreateVariableStore();
  auto exe = cuda.Compile(graph, 2, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  Tensor labels = Tensor::FromVector<int32_t>({1, 9}, Shape{2});
  Tensor logits(DType::kF32, Shape{2, 5});
  std::vector<Tensor> out;
  absl::Status s = (*exe)->Run({{"in0", &labels}, {"in1", &logits}}, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "sparse_categorical_crossentropy"))
      << s;
}

TEST(CudaTrainTest, VariableStoreRoundTrips) {
  SKIP_WITHOUT_GPU();
  CudaBackend cuda;
  auto store = cuda.CreateVariableStore();
  Tensor t = Tensor::FromVector<float>({1, 2, 3}, Shape{3});
  ASSERT_TRUE(store->Write("w", t).ok());
  auto back = store->Read("w");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToVector<float>(), t.ToVector<float>());
  EXPECT_FALSE(store->Write("w", Tensor(DType::kF32, Shape{2})).ok());
}

// ---- Mixed precision (bf16 GEMM operands, f32 accumulation and outputs).

TEST(CudaBf16Test, SetComputeDTypeTakesF32OrBf16) {
  CudaBackend cuda;
  EXPECT_EQ(cuda.compute_dtype(), DType::kF32);
  EXPECT_TRUE(cuda.SetComputeDType(DType::kBF16).ok());
  EXPECT_EQ(cuda.compute_dtype(), DType::kBF16);
  absl::Status s = cuda.SetComputeDType(DType::kF16);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "f16")) << s;
  EXPECT_EQ(cuda.compute_dtype(), DType::kBF16);
}

// Host-side lowering (runs without a GPU): in bf16 mode every GEMM of an MLP
// train step asks for bf16 operands and reads one conversion per distinct
// operand value (shared: the forward's weight and input copies serve the
// backward GEMMs too): activations and gradients inside the step, weights
// before it (only when changed; the optimizer rewrites their copies); in f32
// mode there is none.
TEST(CudaBf16Test, Bf16ModeConvertsEachGemmOperandOnce) {
  Sequential model = Mlp(20, {16}, 10, "relu");
  model.compile(SGD{}, SparseCategoricalCrossentropy{.from_logits = true},
                {"accuracy"}, Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  int gemms = 0;
  std::set<ValueId> operands, weights;
  auto order = train.TopologicalOrder();
  ASSERT_TRUE(order.ok()) << order.status();
  for (NodeId id : *order) {
    const Node& node = train.node(id);
    if (node.op != "dense" && node.op != "matmul") continue;
    ++gemms;
    for (int i : {0, 1}) {
      operands.insert(node.inputs[i]);
      if (train.producer(node.inputs[i]).op == kVariableOp)
        weights.insert(node.inputs[i]);
    }
  }
  // 2 forward, 1 input gradient, 2 weight gradients.
  ASSERT_EQ(gemms, 5);
  ASSERT_LT(operands.size(), 2u * gemms);
  ASSERT_EQ(weights.size(), 2u);

  const auto lowered = [&](DType compute) {
    CudaBackend cuda;
    EXPECT_TRUE(cuda.SetComputeDType(compute).ok());
    auto store = cuda.CreateVariableStore();
    auto steps = cuda.LoweredSteps(train, 8, store.get());
    EXPECT_TRUE(steps.ok()) << steps.status();
    return steps.ok() ? *steps : std::vector<std::string>{};
  };
  const std::vector<std::string> f32 = lowered(DType::kF32);
  const std::vector<std::string> bf16 = lowered(DType::kBF16);
  for (const std::string& step : f32) {
    EXPECT_FALSE(absl::StrContains(step, "bf16")) << step;
  }
  int conversions = 0, weight_conversions = 0, bf16_gemms = 0;
  std::vector<std::string> without_conversions;
  for (const std::string& step : bf16) {
    if (absl::StartsWith(step, "to bf16 for ")) {
      ++conversions;
      continue;
    }
    if (absl::StartsWith(step, "to bf16 when changed: variable ")) {
      ++weight_conversions;
      continue;
    }
    if (absl::EndsWith(step, " [bf16]")) {
      ++bf16_gemms;
      without_conversions.push_back(step.substr(0, step.size() - 7));
    } else {
      without_conversions.push_back(step);
    }
  }
  EXPECT_EQ(bf16_gemms, gemms);
  EXPECT_EQ(weight_conversions, static_cast<int>(weights.size()));
  EXPECT_EQ(conversions, static_cast<int>(operands.size() - weights.size()));
  // Otherwise the same steps in the same order.
  EXPECT_EQ(without_conversions, f32);
}

TEST(CudaBf16Test, DenseAndMatmulMatchReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(21);
  constexpr int64_t kBatch = 32;
  // Unsaturated activations only: a tolerance relative to the largest output
  // means little where every output is within [-1, 1].
  for (const char* act : {"linear", "relu", "gelu"}) {
    bool ok = false;
    Graph graph = SingleOpGraph({"dense_bf16",
                                 "dense",
                                 {F32({N, 64}), F32({64, 48}), F32({48})},
                                 {{"activation", std::string(act)}}},
                                &ok);
    ASSERT_TRUE(ok);
    Tensor x = RandomTensor(F32({kBatch, 64}), rng),
           w = RandomTensor(F32({64, 48}), rng),
           b = RandomTensor(F32({48}), rng);
    CompareBackends(graph, kBatch, {{"in0", &x}, {"in1", &w}, {"in2", &b}},
                    1e-2, absl::StrCat("bf16 dense ", act), DType::kBF16);
  }
  for (const auto& [ta, tb] : std::vector<std::pair<bool, bool>>{
           {false, false}, {true, false}, {false, true}}) {
    bool ok = false;
    Graph graph = SingleOpGraph(
        {"matmul_bf16",
         "matmul",
         {F32(ta ? std::vector<int64_t>{64, 40} : std::vector<int64_t>{40, 64}),
          F32(tb ? std::vector<int64_t>{24, 64}
                 : std::vector<int64_t>{64, 24})},
         {{"transpose_a", ta}, {"transpose_b", tb}}},
        &ok);
    ASSERT_TRUE(ok);
    Tensor a = RandomTensor(F32(ta ? std::vector<int64_t>{64, 40}
                                   : std::vector<int64_t>{40, 64}),
                            rng),
           b = RandomTensor(F32(tb ? std::vector<int64_t>{24, 64}
                                   : std::vector<int64_t>{64, 24}),
                            rng);
    CompareBackends(graph, 1, {{"in0", &a}, {"in1", &b}}, 1e-2,
                    absl::StrCat("bf16 matmul ta=", ta, " tb=", tb),
                    DType::kBF16);
  }
}

// The weight gradient beside its bias gradient (BGRADA, or the column-sum
// fallback) with bf16 operands.
TEST(CudaBf16Test, WeightAndBiasGradientsMatchReference) {
  SKIP_WITHOUT_GPU();
  Graph graph("wgrad_bf16");
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  const ValueId x = b.Input("x", {DType::kF32, Shape{N, 64}});
  const ValueId dy = b.Input("dy", {DType::kF32, Shape{N, 32}});
  const ValueId dw = b.Op("matmul", {x, dy}, {{"transpose_a", true}});
  const ValueId db =
      b.Op("reduce_sum", {dy}, {{"axes", std::vector<int64_t>{0}}});
  ASSERT_TRUE(b.ok()) << b.status();
  graph.AddOutput("dw", dw);
  graph.AddOutput("db", db);
  std::mt19937 rng(4);
  Tensor tx = RandomTensor(F32({48, 64}), rng),
         tdy = RandomTensor(F32({48, 32}), rng);
  CompareBackends(graph, 48, {{"x", &tx}, {"dy", &tdy}}, 1e-2, "bf16 wgrad",
                  DType::kBF16);
}

// Three SGD steps of an MLP in bf16 against the same steps in f32 on the GPU:
// the losses and every variable stay close. A smooth activation (gelu, the
// GELU_BIAS epilogue): with ReLU a pre-activation within bf16's rounding of 0
// flips its unit, which moves a zero-initialized bias by a whole term of its
// gradient sum; no accuracy metric for the same reason (one flipped argmax).
TEST(CudaBf16Test, MlpTrainStepTracksF32) {
  SKIP_WITHOUT_GPU();
  Sequential model = Mlp(64, {64, 32}, 10, "gelu");
  model.compile(SGD{.learning_rate = 0.05},
                SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  constexpr int64_t kBatch = 64;
  CudaBackend f32, bf16;
  ASSERT_TRUE(bf16.SetComputeDType(DType::kBF16).ok());
  auto f32_store = f32.CreateVariableStore();
  auto bf16_store = bf16.CreateVariableStore();
  auto f32_exe = f32.Compile(train, kBatch, f32_store.get());
  ASSERT_TRUE(f32_exe.ok()) << f32_exe.status();
  auto bf16_exe = bf16.Compile(train, kBatch, bf16_store.get());
  ASSERT_TRUE(bf16_exe.ok()) << bf16_exe.status();
  int bf16_gemms = 0;
  for (const std::string& line : GemmImplementations(**bf16_exe)) {
    bf16_gemms += absl::EndsWith(line, " bf16");
  }
  EXPECT_GE(bf16_gemms, 3) << "the hidden layers' GEMMs should run bf16";
  std::mt19937 rng(13);
  for (int step = 0; step < 3; ++step) {
    Tensor x = RandomTensor(F32({kBatch, 64}), rng);
    Tensor y = RandomTensor(Labels(DType::kI32, {kBatch}, 10), rng);
    Tensor w = RandomTensor(F32({kBatch}, Fill::kPositive), rng);
    Tensor lr = Tensor::Scalar<float>(0.05f);
    const std::vector<Feed> feeds = {{kFeatureFeed, &x},
                                     {kLabelFeed, &y},
                                     {kSampleWeightFeed, &w},
                                     {kLearningRateFeed, &lr}};
    std::vector<Tensor> f32_out, bf16_out;
    ASSERT_TRUE((*f32_exe)->Run(feeds, f32_out).ok());
    absl::Status s = (*bf16_exe)->Run(feeds, bf16_out);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_EQ(bf16_out.size(), f32_out.size());
    for (size_t i = 0; i < f32_out.size(); ++i) {
      ExpectCloseToScale(bf16_out[i], f32_out[i], 5e-2,
                         absl::StrCat("step ", step, " output ",
                                      (*f32_exe)->output_names()[i]));
    }
  }
  for (const std::string& name : f32_store->Names()) {
    auto r = f32_store->Read(name);
    auto c = bf16_store->Read(name);
    ASSERT_TRUE(r.ok() && c.ok()) << name;
    ExpectCloseToScale(*c, *r, 5e-2, absl::StrCat("variable ", name));
  }
}

// Weight copies kept across steps (rewritten by the fused optimizer, made
// again only after a change) against fresh ones: an executable that has run
// two steps and one compiled on a copy of its variables (converting every
// weight afresh) take the next step bit for bit alike; so after an outside
// write to a weight, and for a second executable (predict) on the store.
TEST(CudaBf16Test, WeightCopiesFollowEveryWrite) {
  SKIP_WITHOUT_GPU();
  Sequential model = Mlp(64, {64}, 16, "relu");
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  const Graph& train = model.graph(GraphStage::kTrain);
  constexpr int64_t kBatch = 32;
  CudaBackend cuda;
  ASSERT_TRUE(cuda.SetComputeDType(DType::kBF16).ok());
  std::mt19937 rng(23);
  struct Batch {
    Tensor x, y, w, lr;
    std::vector<Feed> feeds;
  };
  std::vector<Batch> batches(4);
  for (Batch& b : batches) {
    b.x = RandomTensor(F32({kBatch, 64}), rng);
    b.y = RandomTensor(Labels(DType::kI32, {kBatch}, 16), rng);
    b.w = RandomTensor(F32({kBatch}, Fill::kPositive), rng);
    b.lr = Tensor::Scalar<float>(0.01f);
    b.feeds = {{kFeatureFeed, &b.x},
               {kLabelFeed, &b.y},
               {kSampleWeightFeed, &b.w},
               {kLearningRateFeed, &b.lr}};
  }
  auto store_a = cuda.CreateVariableStore();
  auto exe_a = cuda.Compile(train, kBatch, store_a.get());
  ASSERT_TRUE(exe_a.ok()) << exe_a.status();
  std::vector<Tensor> out_a, out_b;
  for (int step = 0; step < 2; ++step) {
    ASSERT_TRUE((*exe_a)->Run(batches[step].feeds, out_a).ok());
  }
  auto store_b = cuda.CreateVariableStore();
  for (const std::string& name : store_a->Names()) {
    auto value = store_a->Read(name);
    ASSERT_TRUE(value.ok()) << name;
    ASSERT_TRUE(store_b->Write(name, *value).ok()) << name;
  }
  auto exe_b = cuda.Compile(train, kBatch, store_b.get());
  ASSERT_TRUE(exe_b.ok()) << exe_b.status();
  const auto same_step = [&](const Batch& batch, const std::string& what) {
    ASSERT_TRUE((*exe_a)->Run(batch.feeds, out_a).ok()) << what;
    ASSERT_TRUE((*exe_b)->Run(batch.feeds, out_b).ok()) << what;
    ASSERT_EQ(out_a.size(), out_b.size());
    for (size_t i = 0; i < out_a.size(); ++i) {
      ExpectClose(out_a[i], out_b[i], 0, absl::StrCat(what, " output ", i));
    }
    for (const std::string& name : store_a->Names()) {
      auto a = store_a->Read(name);
      auto b = store_b->Read(name);
      ASSERT_TRUE(a.ok() && b.ok()) << name;
      ExpectClose(*a, *b, 0, absl::StrCat(what, " variable ", name));
    }
  };
  same_step(batches[2], "kept copies vs fresh");
  // An outside write (set_weights) to every kernel.
  for (const std::string& name : store_a->Names()) {
    if (!absl::EndsWith(name, "/kernel")) continue;
    auto value = store_a->Read(name);
    ASSERT_TRUE(value.ok());
    Tensor halved = *value;
    for (int64_t i = 0; i < halved.num_elements(); ++i)
      halved.SetFromDouble(i, 0.5 * halved.GetAsDouble(i));
    ASSERT_TRUE(store_a->Write(name, halved).ok());
    ASSERT_TRUE(store_b->Write(name, halved).ok());
  }
  same_step(batches[3], "after an outside write");
  // A predict executable on each store: A's copies were made by its train
  // executable's optimizer, the predict one converts its own.
  const Graph& predict = model.graph(GraphStage::kPredict);
  auto predict_a = cuda.Compile(predict, kBatch, store_a.get());
  auto predict_b = cuda.Compile(predict, kBatch, store_b.get());
  ASSERT_TRUE(predict_a.ok() && predict_b.ok());
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE((*predict_a)->Run({{kFeatureFeed, &batches[0].x}}, out_a).ok());
    ASSERT_TRUE((*predict_b)->Run({{kFeatureFeed, &batches[0].x}}, out_b).ok());
    ASSERT_EQ(out_a.size(), out_b.size());
    for (size_t i = 0; i < out_a.size(); ++i) {
      ExpectClose(out_a[i], out_b[i], 0,
                  absl::StrCat("predict round ", round, " output ", i));
    }
    // The train executable moves the weights on: predict must follow.
    ASSERT_TRUE((*exe_a)->Run(batches[0].feeds, out_a).ok());
    ASSERT_TRUE((*exe_b)->Run(batches[0].feeds, out_b).ok());
  }
}

// compile() under mixed_bfloat16 on a CUDA device sets the backend to bf16;
// its predictions track a float32 model's with the same weights without
// equalling them (the GEMMs did round their operands).
TEST(CudaBf16Test, MixedBfloat16PolicyReachesTheCudaBackend) {
  SKIP_WITHOUT_GPU();
  struct ResetPolicy {
    ~ResetPolicy() { mixed_precision::set_global_policy("float32"); }
  } reset;
  const auto compile = [](Sequential& model) {
    model.compile(SGD{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                  Device::CUDA());
  };
  Sequential plain = Mlp(64, {64}, 16, "gelu");
  compile(plain);
  mixed_precision::set_global_policy("mixed_bfloat16");
  Sequential mixed = Mlp(64, {64}, 16, "gelu");
  compile(mixed);
  EXPECT_EQ(mixed.dtype_policy(), "mixed_bfloat16");
  EXPECT_EQ(dynamic_cast<CudaBackend&>(mixed.backend()).compute_dtype(),
            DType::kBF16);
  EXPECT_EQ(dynamic_cast<CudaBackend&>(plain.backend()).compute_dtype(),
            DType::kF32);
  mixed.set_weights(plain.get_weights());
  std::mt19937 rng(17);
  const Tensor x = RandomTensor(F32({32, 64}), rng);
  const Tensor a = plain.predict(x), b = mixed.predict(x);
  ExpectCloseToScale(b, a, 2e-2, "bf16 predict vs f32");
  int differ = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i)
    differ += a.GetAsDouble(i) != b.GetAsDouble(i);
  EXPECT_GT(differ, 0) << "bf16 predictions equal f32's bit for bit";
}

}  // namespace
}  // namespace sequent
