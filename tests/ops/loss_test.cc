#include <cmath>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/op_registry.h"
#include "core/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ops/op_defs.h"

namespace sequent::ops {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t N = Shape::kBatch;

OpRegistry MakeRegistry() {
  OpRegistry registry;
  for (OpDef def :
       {Make_mse_Op(), Make_mae_Op(), Make_huber_Op(),
        Make_binary_crossentropy_Op(), Make_categorical_crossentropy_Op(),
        Make_sparse_categorical_crossentropy_Op()}) {
    EXPECT_TRUE(registry.Register(std::move(def)).ok());
  }
  return registry;
}

absl::StatusOr<std::vector<TensorType>> Infer(const std::string& op,
                                              std::vector<TensorType> inputs,
                                              Attributes attrs) {
  return MakeRegistry().InferTypes(op, inputs, attrs);
}

// Infers the output type (filling defaults), allocates it and runs the
// reference kernel.
absl::StatusOr<Tensor> RunOp(const std::string& op,
                             const std::vector<Tensor>& inputs,
                             Attributes attrs = {}) {
  OpRegistry registry = MakeRegistry();
  std::vector<TensorType> types;
  std::vector<const Tensor*> in;
  for (const Tensor& t : inputs) {
    types.push_back(t.type());
    in.push_back(&t);
  }
  auto out_types = registry.InferTypes(op, types, attrs);
  if (!out_types.ok()) return out_types.status();
  Tensor out((*out_types)[0]);
  std::vector<Tensor*> outs = {&out};
  absl::Status status = registry.Find(op)->reference(in, attrs, outs);
  if (!status.ok()) return status;
  return out;
}

double RunScalar(const std::string& op, const std::vector<Tensor>& inputs,
                 Attributes attrs = {}) {
  auto out = RunOp(op, inputs, std::move(attrs));
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return -1;
  EXPECT_TRUE(out->shape().IsScalar());
  return out->GetAsDouble(0);
}

TensorType F32(Shape shape) { return {DType::kF32, std::move(shape)}; }

TEST(LossShapeTest, DenseLossesGiveScalars) {
  for (const char* op : {"mse", "mae", "huber", "binary_crossentropy",
                         "categorical_crossentropy"}) {
    auto t = Infer(op, {F32({N, 10}), F32({N, 10})}, {});
    ASSERT_TRUE(t.ok()) << op << ": " << t.status();
    EXPECT_EQ((*t)[0].ToString(), "f32[]");
    t = Infer(op,
              {F32({N, 10}), TensorType{DType::kF64, Shape{N, 10}}, F32({N})},
              {});
    ASSERT_TRUE(t.ok()) << op << ": " << t.status();
    EXPECT_EQ((*t)[0].ToString(), "f64[]");

    t = Infer(op, {F32({N, 10}), F32({N, 4})}, {});
    ASSERT_FALSE(t.ok());
    EXPECT_THAT(
        t.status().message(),
        HasSubstr(
            std::string("[") + op +
            "] y_true f32[N,10] and y_pred f32[N,4] must have the same shape"));

    t = Infer(op, {F32({N, 10}), F32({N, 10}), F32({N, 10})}, {});
    ASSERT_FALSE(t.ok());
    EXPECT_THAT(
        t.status().message(),
        HasSubstr(
            "sample_weight f32[N,10] must have shape [], [N] or [N,1] to match "
            "y_pred f32[N,10]"));
  }
  // Integer targets are fine for regression losses (Keras casts them).
  EXPECT_TRUE(
      Infer("mse", {TensorType{DType::kI32, Shape{N, 1}}, F32({N, 1})}, {})
          .ok());
  auto t =
      Infer("mse", {F32({N, 1}), TensorType{DType::kI32, Shape{N, 1}}}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("y_pred must be a floating-point tensor"));
  t = Infer("huber", {F32({N, 1}), F32({N, 1})}, {{"delta", 0.0}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[huber] delta must be positive"));
  t = Infer("categorical_crossentropy", {F32({N, 3}), F32({N, 3})},
            {{"label_smoothing", 1.5}});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("label_smoothing must be in [0, 1], got 1.5"));
}

TEST(LossShapeTest, SparseLabels) {
  const TensorType labels_i32{DType::kI32, Shape{N}};
  auto t =
      Infer("sparse_categorical_crossentropy", {labels_i32, F32({N, 10})}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[]");
  EXPECT_TRUE(
      Infer("sparse_categorical_crossentropy",
            {TensorType{DType::kI64, Shape{N, 1}}, F32({N, 10}), F32({N})}, {})
          .ok());
  EXPECT_TRUE(
      Infer("sparse_categorical_crossentropy", {F32({N, 1}), F32({N, 10})}, {})
          .ok());

  t = Infer("sparse_categorical_crossentropy",
            {TensorType{DType::kI32, Shape{N, 10}}, F32({N, 10})}, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(
      t.status().message(),
      HasSubstr(
          "[sparse_categorical_crossentropy] y_true i32[N,10] must have shape "
          "[N] "
          "or [N,1] (one class index per sample) to match y_pred f32[N,10]"));
}

// Two samples with two outputs each: y_true = [[0, 1], [1, 0]], y_pred = [[.2,
// .6], [.9, 1.5]].
std::vector<Tensor> Regression() {
  return {Tensor::FromVector<float>({0, 1, 1, 0}, Shape{2, 2}),
          Tensor::FromVector<float>({0.2f, 0.6f, 0.9f, 1.5f}, Shape{2, 2})};
}

TEST(LossKernelTest, Mse) {
  // Per sample: (.04 + .16) / 2 = .1 and (.01 + 2.25) / 2 = 1.13; mean .615.
  EXPECT_NEAR(RunScalar("mse", Regression()), 0.615, 1e-6);
  // Weighted [1, 3]: (.1 + 3 * 1.13) / 2 = 1.745 (divided by the batch size,
  // not the weights).
  std::vector<Tensor> inputs = Regression();
  inputs.push_back(Tensor::FromVector<float>({1, 3}, Shape{2}));
  EXPECT_NEAR(RunScalar("mse", inputs), 1.745, 1e-6);
}

TEST(LossKernelTest, Mae) {
  // Per sample: (.2 + .4) / 2 = .3 and (.1 + 1.5) / 2 = .8; mean .55.
  EXPECT_NEAR(RunScalar("mae", Regression()), 0.55, 1e-6);
}

TEST(LossKernelTest, Huber) {
  // Quadratic below delta = 1: .02, .08 -> .05; then .005 and 1.5 - .5 = 1 ->
  // .5025; mean .27625.
  EXPECT_NEAR(RunScalar("huber", Regression()), 0.27625, 1e-6);
  // delta = 2 keeps everything quadratic: half the mse.
  EXPECT_NEAR(RunScalar("huber", Regression(), {{"delta", 2.0}}), 0.3075, 1e-6);
}

TEST(LossKernelTest, BinaryCrossentropy) {
  std::vector<Tensor> probs = {
      Tensor::FromVector<float>({0, 1, 1, 0}, Shape{2, 2}),
      Tensor::FromVector<float>({0.1f, 0.8f, 0.7f, 0.f}, Shape{2, 2})};
  // numpy: p = clip(p, 1e-7, 1 - 1e-7); -(t log p + (1-t)
  // log(1-p)).mean(-1).mean()
  //   per sample [0.16425203, 0.17833752] -> 0.17129478 (the 0 is clipped, no
  //   inf).
  EXPECT_NEAR(RunScalar("binary_crossentropy", probs), 0.17129478, 1e-6);
  // label_smoothing 0.2: t -> t * .8 + .1.
  EXPECT_NEAR(
      RunScalar("binary_crossentropy", probs, {{"label_smoothing", 0.2}}),
      0.68501759, 1e-6);

  // Logits [[-2, 1], [.5, 30]]; numpy: max(x,0) - x t + log1p(exp(-|x|))
  // -> 7.72856667.
  std::vector<Tensor> logits = {
      Tensor::FromVector<double>({0, 1, 1, 0}, Shape{2, 2}),
      Tensor::FromVector<double>({-2, 1, 0.5, 30}, Shape{2, 2}),
      Tensor::FromVector<double>({2, 0.5}, Shape{2, 1})};
  EXPECT_NEAR(RunScalar("binary_crossentropy", {logits[0], logits[1]},
                        {{"from_logits", true}}),
              7.728566670685349, 1e-12);
  EXPECT_NEAR(RunScalar("binary_crossentropy", logits, {{"from_logits", true}}),
              4.0293544723031225, 1e-12);
}

TEST(LossKernelTest, CategoricalCrossentropy) {
  // y_pred rows are rescaled to sum to 1: [.4, 1.4, .2] -> [.2, .7, .1].
  // -log .7 = .35667494, -log .5 = .69314718; mean .52491106.
  std::vector<Tensor> probs = {
      Tensor::FromVector<float>({0, 1, 0, 1, 0, 0}, Shape{2, 3}),
      Tensor::FromVector<float>({0.4f, 1.4f, 0.2f, 0.5f, 0.25f, 0.25f},
                                Shape{2, 3})};
  EXPECT_NEAR(RunScalar("categorical_crossentropy", probs), 0.52491106, 1e-6);
  // label_smoothing .3 over 3 classes: t -> t * .7 + .1; numpy gives .75415944.
  EXPECT_NEAR(
      RunScalar("categorical_crossentropy", probs, {{"label_smoothing", 0.3}}),
      0.75415944, 1e-6);

  // Logits [[1, 2, 3], [0, 0, 0]]: -log_softmax -> [1.40760596, log 3
  // = 1.09861229].
  std::vector<Tensor> logits = {
      probs[0].CastTo(DType::kF64),
      Tensor::FromVector<double>({1, 2, 3, 0, 0, 0}, Shape{2, 3})};
  EXPECT_NEAR(
      RunScalar("categorical_crossentropy", logits, {{"from_logits", true}}),
      1.253109126556245, 1e-12);
}

TEST(LossKernelTest, SparseCategoricalCrossentropy) {
  const Tensor probs = Tensor::FromVector<float>(
      {0.4f, 1.4f, 0.2f, 0.5f, 0.25f, 0.25f}, Shape{2, 3});
  // Same values as the categorical case, for every label encoding.
  for (const Tensor& labels :
       {Tensor::FromVector<int32_t>({1, 0}, Shape{2}),
        Tensor::FromVector<int64_t>({1, 0}, Shape{2, 1}),
        Tensor::FromVector<float>({1, 0}, Shape{2, 1})}) {
    EXPECT_NEAR(RunScalar("sparse_categorical_crossentropy", {labels, probs}),
                0.52491106, 1e-6)
        << labels.type().ToString();
  }
  // Logits with sample weights [1, 3]: (1.40760596 + 3 * 1.09861229) / 2
  // = 2.35172142.
  const Tensor logits =
      Tensor::FromVector<double>({1, 2, 3, 0, 0, 0}, Shape{2, 3});
  EXPECT_NEAR(RunScalar("sparse_categorical_crossentropy",
                        {Tensor::FromVector<int64_t>({1, 0}, Shape{2}), logits,
                         Tensor::FromVector<double>({1, 3}, Shape{2})},
                        {{"from_logits", true}}),
              2.351721415224355, 1e-12);
}

TEST(LossKernelTest, SparseLabelErrors) {
  const Tensor probs(DType::kF32, Shape{4, 10});
  auto out =
      RunOp("sparse_categorical_crossentropy",
            {Tensor::FromVector<int32_t>({0, 1, 2, 12}, Shape{4}), probs});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "[sparse_categorical_crossentropy] label 12 at sample 3 is out of "
            "range for 10 "
            "classes");

  out = RunOp("sparse_categorical_crossentropy",
              {Tensor::FromVector<int64_t>({-1, 1, 2, 3}, Shape{4, 1}), probs});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(),
              HasSubstr("label -1 at sample 0 is out of range"));

  out = RunOp("sparse_categorical_crossentropy",
              {Tensor::FromVector<float>({0, 1.5f, 2, 3}, Shape{4}), probs});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(),
              HasSubstr("label 1.5 at sample 1 is not an integer"));
}

// ---- Backward ops.

// Runs `op` from `registry` on `inputs`: infers and allocates the outputs,
// then calls the reference kernel.
absl::StatusOr<std::vector<Tensor>> RunBackward(
    const OpRegistry& registry, const std::string& op,
    const std::vector<const Tensor*>& inputs, Attributes attrs) {
  std::vector<TensorType> types;
  for (const Tensor* t : inputs) types.push_back(t->type());
  auto out_types = registry.InferTypes(op, types, attrs);
  if (!out_types.ok()) return out_types.status();
  std::vector<Tensor> outputs;
  for (const TensorType& t : *out_types) outputs.emplace_back(t);
  std::vector<Tensor*> out;
  for (Tensor& t : outputs) out.push_back(&t);
  absl::Status status = registry.Find(op)->reference(inputs, attrs, out);
  if (!status.ok()) return status;
  return outputs;
}

// Deterministic values in [-1, 1) for adjoint and finite-difference checks.
Tensor Pattern(Shape shape, int salt) {
  Tensor t(DType::kF64, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.SetFromDouble(i, static_cast<double>((i * 7 + salt * 13) % 17) / 8.5 - 1);
  }
  return t;
}

OpRegistry BackwardRegistry() {
  OpRegistry registry = MakeRegistry();
  for (OpDef def : {Make_mse_grad_Op(), Make_mae_grad_Op(),
                    Make_huber_grad_Op(), Make_binary_crossentropy_grad_Op(),
                    Make_categorical_crossentropy_grad_Op(),
                    Make_sparse_categorical_crossentropy_grad_Op()}) {
    EXPECT_TRUE(registry.Register(std::move(def)).ok());
  }
  return registry;
}

// d loss / d y_pred from `op`_grad with upstream gradient `dloss`.
std::vector<double> Grad(const std::string& op, const Tensor& y_true,
                         const Tensor& y_pred, double dloss,
                         const Tensor* weight = nullptr,
                         Attributes attrs = {}) {
  const Tensor d = Tensor::FromVector<double>({dloss}, Shape{});
  const Tensor d_typed = d.CastTo(y_pred.dtype());
  std::vector<const Tensor*> in = {&y_true, &y_pred, &d_typed};
  if (weight != nullptr) in.push_back(weight);
  auto out = RunBackward(BackwardRegistry(), op + "_grad", in, attrs);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return {};
  std::vector<double> v;
  for (int64_t i = 0; i < (*out)[0].num_elements(); ++i) {
    v.push_back((*out)[0].GetAsDouble(i));
  }
  return v;
}

TEST(LossGradShapeTest, GradientHasThePredictionsType) {
  OpRegistry registry = BackwardRegistry();
  Attributes attrs;
  auto t = registry.InferTypes(
      "mse_grad", {F32({N, 10}), F32({N, 10}), F32({}), F32({N})}, attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,10]");

  attrs = {{"from_logits", true}};
  t = registry.InferTypes(
      "sparse_categorical_crossentropy_grad",
      {TensorType{DType::kI64, Shape{N}}, F32({N, 10}), F32({})}, attrs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].ToString(), "f32[N,10]");
}

TEST(LossGradShapeTest, Errors) {
  OpRegistry registry = BackwardRegistry();
  Attributes attrs;
  auto t = registry.InferTypes("mse_grad",
                               {F32({N, 10}), F32({N, 10}), F32({N})}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[mse_grad] dloss must be a f32[] scalar to match "
                        "y_pred f32[N,10], got f32[N]"));

  // The loss's own checks apply.
  attrs = {};
  t = registry.InferTypes("categorical_crossentropy_grad",
                          {F32({N, 10}), F32({N, 4}), F32({})}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(),
              HasSubstr("[categorical_crossentropy_grad] y_true f32[N,10] and "
                        "y_pred f32[N,4] must have the same shape"));

  attrs = {{"delta", -1.0}};
  t = registry.InferTypes("huber_grad", {F32({N, 2}), F32({N, 2}), F32({})},
                          attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("delta must be positive"));

  attrs = {};
  t = registry.InferTypes(
      "mae_grad", {F32({N, 2}), F32({N, 2}), F32({}), F32({N, 2})}, attrs);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("sample_weight f32[N,2]"));
}

TEST(LossGradKernelTest, Regression) {
  const Tensor t = Tensor::FromVector<float>({0, 0, 0, 0}, Shape{2, 2});
  const Tensor p = Tensor::FromVector<float>({0.5, -2, 0, 3}, Shape{2, 2});
  // Every element's loss is divided by the 4 elements.
  EXPECT_THAT(Grad("mse", t, p, 1), ElementsAre(0.25, -1, 0, 1.5));
  // sign(0) = 0 at the kink.
  EXPECT_THAT(Grad("mae", t, p, 1), ElementsAre(0.25, -0.25, 0, 0.25));
  EXPECT_THAT(Grad("huber", t, p, 1), ElementsAre(0.125, -0.25, 0, 0.25));
  EXPECT_THAT(Grad("huber", t, p, 1, nullptr, {{"delta", 2.5}}),
              ElementsAre(0.125, -0.5, 0, 0.625));
  // The upstream gradient and per-sample weights scale whole rows.
  const Tensor w = Tensor::FromVector<float>({2, 0}, Shape{2});
  EXPECT_THAT(Grad("mse", t, p, 3, &w), ElementsAre(1.5, -6, 0, 0));
}

TEST(LossGradKernelTest, BinaryCrossentropyClipsLikeKeras) {
  const Tensor t = Tensor::FromVector<double>({1, 0, 1, 0}, Shape{4});
  // p = 0 and p = 1 are clipped to [1e-7, 1 - 1e-7]: no gradient there.
  const Tensor p = Tensor::FromVector<double>({0, 1, 0.5, 0.25}, Shape{4});
  const std::vector<double> g = Grad("binary_crossentropy", t, p, 1);
  ASSERT_EQ(g.size(), 4u);
  EXPECT_EQ(g[0], 0);
  EXPECT_EQ(g[1], 0);
  EXPECT_DOUBLE_EQ(g[2], -2.0 / 4);        // -t / p
  EXPECT_DOUBLE_EQ(g[3], 1.0 / 0.75 / 4);  // (1 - t) / (1 - p)
  // From logits: sigmoid(z) - t.
  const Tensor z = Tensor::FromVector<double>({0, 0, 100, -100}, Shape{4});
  EXPECT_THAT(
      Grad("binary_crossentropy", t, z, 1, nullptr, {{"from_logits", true}}),
      ElementsAre(-0.125, 0.125, 0, ::testing::DoubleNear(0, 1e-40)));
}

TEST(LossGradKernelTest, CategoricalCrossentropy) {
  const Tensor t = Tensor::FromVector<double>({1, 0, 0, 1}, Shape{2, 2});
  // Row 0: p rescales to [0.5, 0.5]; d(-log(p0 / S))/dp = [1/S - 1/p0, 1/S].
  // Row 1: q = [1, 0] is clipped at both ends: no gradient.
  const Tensor p = Tensor::FromVector<double>({0.5, 0.5, 1, 0}, Shape{2, 2});
  EXPECT_THAT(Grad("categorical_crossentropy", t, p, 2),
              ElementsAre(-1, 1, 0, 0));
  // From logits: softmax - label (the softmax cross-entropy gradient).
  const Tensor z =
      Tensor::FromVector<double>({0, 0, 0, std::log(3.0)}, Shape{2, 2});
  const std::vector<double> g = Grad("categorical_crossentropy", t, z, 2,
                                     nullptr, {{"from_logits", true}});
  ASSERT_EQ(g.size(), 4u);
  EXPECT_DOUBLE_EQ(g[0], -0.5);
  EXPECT_DOUBLE_EQ(g[1], 0.5);
  EXPECT_DOUBLE_EQ(g[2], 0.25);
  EXPECT_DOUBLE_EQ(g[3], -0.25);
}

TEST(LossGradKernelTest, SparseCategoricalCrossentropy) {
  const Tensor labels = Tensor::FromVector<int32_t>({0, 1}, Shape{2, 1});
  const Tensor p = Tensor::FromVector<double>({0.5, 0.5, 1, 0}, Shape{2, 2});
  // Row 1's label has probability 0, clipped: no gradient.
  EXPECT_THAT(Grad("sparse_categorical_crossentropy", labels, p, 2),
              ElementsAre(-1, 1, 0, 0));
  const Tensor z =
      Tensor::FromVector<double>({0, 0, 0, std::log(3.0)}, Shape{2, 2});
  const std::vector<double> g = Grad("sparse_categorical_crossentropy", labels,
                                     z, 2, nullptr, {{"from_logits", true}});
  ASSERT_EQ(g.size(), 4u);
  EXPECT_DOUBLE_EQ(g[0], -0.5);
  EXPECT_DOUBLE_EQ(g[2], 0.25);
  EXPECT_DOUBLE_EQ(g[3], -0.25);

  const Tensor bad = Tensor::FromVector<int64_t>({0, 2}, Shape{2});
  const Tensor d = Tensor::FromVector<double>({1}, Shape{});
  auto out =
      RunBackward(BackwardRegistry(), "sparse_categorical_crossentropy_grad",
                  {&bad, &p, &d}, {});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(),
              HasSubstr("[sparse_categorical_crossentropy_grad] label 2 at "
                        "sample 1 is not a class index in [0, 2)"));
}

// Every gradient op against central differences of its loss's forward kernel,
// across attributes, sample weights and ranks.
TEST(LossGradKernelTest, MatchesForwardKernels) {
  struct Case {
    std::string op;
    Shape shape;
    Attributes attrs;
    std::vector<int64_t> weight;  // Empty: unweighted.
  };
  const std::vector<Case> cases = {
      {"mse", Shape{3, 4}, {}, {}},
      {"mse", Shape{2, 3, 4}, {}, {2, 1}},
      {"mse", Shape{5}, {}, {5}},
      {"mae", Shape{3, 4}, {}, {3}},
      {"huber", Shape{3, 4}, {{"delta", 0.3}}, {3}},
      {"binary_crossentropy", Shape{3, 4}, {{"label_smoothing", 0.2}}, {3}},
      {"binary_crossentropy", Shape{3, 4}, {{"from_logits", true}}, {}},
      {"categorical_crossentropy",
       Shape{3, 4},
       {{"label_smoothing", 0.1}},
       {3}},
      {"categorical_crossentropy",
       Shape{3, 4},
       {{"from_logits", true}, {"label_smoothing", 0.3}},
       {}},
      {"sparse_categorical_crossentropy", Shape{3, 4}, {}, {3}},
      {"sparse_categorical_crossentropy",
       Shape{3, 4},
       {{"from_logits", true}},
       {}}};
  OpRegistry registry = BackwardRegistry();
  for (const Case& c : cases) {
    const bool sparse = c.op == "sparse_categorical_crossentropy";
    const bool logits = BoolAttrOr(c.attrs, "from_logits", false);
    Tensor y_pred = Pattern(c.shape, 1);
    Tensor y_true = Pattern(c.shape, 2);
    for (int64_t i = 0; i < y_pred.num_elements(); ++i) {
      // Probabilities in (0.05, 0.95) unless logits; labels in [0, 1]; the
      // sparse labels cycle through the classes.
      if (!logits) y_pred.SetFromDouble(i, 0.5 + 0.45 * y_pred.GetAsDouble(i));
      y_true.SetFromDouble(i, 0.5 + 0.5 * y_true.GetAsDouble(i));
    }
    if (sparse) {
      y_true = Tensor(DType::kI64, Shape{c.shape[0]});
      for (int64_t i = 0; i < c.shape[0]; ++i) y_true.SetFromDouble(i, i % 4);
    }
    Tensor weight = Pattern(Shape(c.weight), 3);
    for (int64_t i = 0; i < weight.num_elements(); ++i) {
      weight.SetFromDouble(i, 1.5 + weight.GetAsDouble(i));
    }
    const Tensor* w = c.weight.empty() ? nullptr : &weight;
    auto loss = [&]() {
      std::vector<const Tensor*> in = {&y_true, &y_pred};
      if (w != nullptr) in.push_back(w);
      auto out = RunBackward(registry, c.op, in, c.attrs);
      EXPECT_TRUE(out.ok()) << out.status();
      return out.ok() ? (*out)[0].GetAsDouble(0) : 0.0;
    };
    const std::vector<double> g = Grad(c.op, y_true, y_pred, 1.5, w, c.attrs);
    ASSERT_EQ(static_cast<int64_t>(g.size()), y_pred.num_elements()) << c.op;
    for (int64_t i = 0; i < y_pred.num_elements(); ++i) {
      const double original = y_pred.GetAsDouble(i);
      y_pred.SetFromDouble(i, original + 1e-6);
      const double plus = loss();
      y_pred.SetFromDouble(i, original - 1e-6);
      const double minus = loss();
      y_pred.SetFromDouble(i, original);
      EXPECT_NEAR(g[i], 1.5 * (plus - minus) / 2e-6, 1e-6)
          << c.op << " " << c.shape.ToString() << " element " << i;
    }
  }
}

}  // namespace
}  // namespace sequent::ops
