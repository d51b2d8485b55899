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

OpRegistry MakeRegistry() {
  OpRegistry registry;
  for (OpDef def : {Make_sgd_update_Op(), Make_momentum_update_Op(),
                    Make_adam_update_Op(), Make_adamw_update_Op(),
                    Make_rmsprop_update_Op(), Make_adagrad_update_Op(),
                    Make_clip_by_value_Op(), Make_clip_by_norm_Op()}) {
    EXPECT_TRUE(registry.Register(std::move(def)).ok());
  }
  return registry;
}

// Infers output types (filling defaults), allocates the outputs and runs the
// reference kernel.
absl::StatusOr<std::vector<Tensor>> RunOp(const std::string& op,
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
  std::vector<Tensor> outputs;
  for (const TensorType& t : *out_types) outputs.emplace_back(t);
  std::vector<Tensor*> out;
  for (Tensor& t : outputs) out.push_back(&t);
  absl::Status status = registry.Find(op)->reference(in, attrs, out);
  if (!status.ok()) return status;
  return outputs;
}

Tensor Vec(std::vector<double> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::FromVector(v, Shape{n});
}
Tensor Vec32(std::vector<float> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::FromVector(v, Shape{n});
}
Tensor S(double v) { return Tensor::Scalar(v); }

void ExpectNear(const Tensor& t, std::vector<double> want, double tol) {
  ASSERT_EQ(t.num_elements(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(t.GetAsDouble(i), want[i], tol) << "element " << i;
  }
}

constexpr double kTol = 1e-12;

// The two steps every update test takes: var=[1,-2], lr=0.1, gradients g1 at
// t=1 (iterations=0) and g2 at t=2 (iterations=1).
const std::vector<double> kVar = {1.0, -2.0};
const std::vector<double> kG1 = {0.1, 0.2};
const std::vector<double> kG2 = {-0.3, 0.4};

// ---------------------------------------------------------------------------
// Shape rules.

TEST(OptimizerShapeTest, UpdatesReturnVarAndSlotTypes) {
  OpRegistry registry = MakeRegistry();
  const TensorType w{DType::kF32, Shape{3, 4}};
  const TensorType s{DType::kF32, Shape{}};
  Attributes attrs;
  auto types = registry.InferTypes("adam_update", {w, w, w, w, s, s}, attrs);
  ASSERT_TRUE(types.ok()) << types.status();
  ASSERT_EQ(types->size(), 3u);
  for (const TensorType& t : *types) EXPECT_EQ(t.ToString(), "f32[3,4]");
  EXPECT_EQ(std::get<double>(attrs.at("beta_1")), 0.9);
  EXPECT_EQ(std::get<double>(attrs.at("beta_2")), 0.999);
  EXPECT_EQ(std::get<double>(attrs.at("epsilon")), 1e-7);

  Attributes none;
  types = registry.InferTypes("sgd_update", {w, w, s, s}, none);
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_EQ(types->size(), 1u);

  const TensorType d{DType::kF64, Shape{5}};
  const TensorType ds{DType::kF64, Shape{}};
  Attributes mom;
  types = registry.InferTypes("momentum_update", {d, d, d, ds, ds}, mom);
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_THAT(*types, ElementsAre(d, d));
  EXPECT_EQ(std::get<bool>(mom.at("nesterov")), false);
}

TEST(OptimizerShapeTest, SchemaIsPureWithInplacePairs) {
  OpRegistry registry = MakeRegistry();
  const OpDef* adam = registry.Find("adam_update");
  ASSERT_NE(adam, nullptr);
  EXPECT_FALSE(adam->stateful);
  EXPECT_FALSE(adam->gradient);
  EXPECT_EQ(adam->family, "optimizer");
  EXPECT_THAT(adam->inputs, ElementsAre("var", "grad", "m", "v",
                                        "learning_rate", "iterations"));
  EXPECT_THAT(adam->inplace,
              ElementsAre(std::pair{0, 0}, std::pair{1, 2}, std::pair{2, 3}));
  EXPECT_THAT(registry.Find("sgd_update")->inplace,
              ElementsAre(std::pair{0, 0}));
  EXPECT_THAT(registry.Find("adagrad_update")->inplace,
              ElementsAre(std::pair{0, 0}, std::pair{1, 2}));
  EXPECT_FALSE(registry.Find("clip_by_norm")->gradient);
}

TEST(OptimizerShapeTest, RejectsMismatchedTensors) {
  OpRegistry registry = MakeRegistry();
  const TensorType w{DType::kF32, Shape{3}};
  const TensorType s{DType::kF32, Shape{}};
  Attributes attrs;
  auto types = registry.InferTypes(
      "adam_update", {w, w, w, TensorType{DType::kF32, Shape{4}}, s, s}, attrs);
  ASSERT_FALSE(types.ok());
  EXPECT_EQ(types.status().message(),
            "[adam_update] v f32[4] differs from var f32[3]");

  Attributes a2;
  types = registry.InferTypes("sgd_update",
                              {w, TensorType{DType::kF64, Shape{3}}, s, s}, a2);
  ASSERT_FALSE(types.ok());
  EXPECT_EQ(types.status().message(),
            "[sgd_update] grad f64[3] differs from var f32[3]");
}

TEST(OptimizerShapeTest, RejectsBadScalars) {
  OpRegistry registry = MakeRegistry();
  const TensorType w{DType::kF32, Shape{3}};
  const TensorType s{DType::kF32, Shape{}};
  Attributes attrs;
  auto types = registry.InferTypes(
      "rmsprop_update", {w, w, w, TensorType{DType::kF32, Shape{1}}, s}, attrs);
  ASSERT_FALSE(types.ok());
  EXPECT_EQ(types.status().message(),
            "[rmsprop_update] learning_rate must be a scalar of var's dtype "
            "(f32[]), got f32[1]");

  Attributes a2;
  types = registry.InferTypes("sgd_update",
                              {w, w, s, TensorType{DType::kI64, Shape{}}}, a2);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("iterations must be a scalar of var's dtype"));

  Attributes a3;
  const TensorType i{DType::kI32, Shape{3}};
  types = registry.InferTypes("sgd_update",
                              {i, i, TensorType{DType::kI32, Shape{}},
                               TensorType{DType::kI32, Shape{}}},
                              a3);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("var must be a floating-point tensor, got i32[3]"));

  Attributes a4;
  types = registry.InferTypes("adagrad_update", {w, w, w, s}, a4);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(), HasSubstr("expects 5 inputs"));
}

TEST(OptimizerShapeTest, RejectsBadHyperparameters) {
  OpRegistry registry = MakeRegistry();
  const TensorType w{DType::kF32, Shape{3}};
  const TensorType s{DType::kF32, Shape{}};
  Attributes beta = {{"beta_1", 1.0}};
  auto types = registry.InferTypes("adam_update", {w, w, w, w, s, s}, beta);
  ASSERT_FALSE(types.ok());
  EXPECT_EQ(types.status().message(),
            "[adam_update] beta_1 must be in [0, 1), got 1");

  Attributes mom = {{"momentum", -0.5}};
  types = registry.InferTypes("momentum_update", {w, w, w, s, s}, mom);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("momentum must be in [0, 1]"));

  Attributes wd = {{"weight_decay", -1.0}};
  types = registry.InferTypes("adamw_update", {w, w, w, w, s, s}, wd);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("weight_decay must be >= 0, got -1"));

  Attributes unknown = {{"momentum", 0.9}};
  types = registry.InferTypes("sgd_update", {w, w, s, s}, unknown);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("has no attribute 'momentum'"));
}

TEST(OptimizerShapeTest, ClipAttributes) {
  OpRegistry registry = MakeRegistry();
  const TensorType x{DType::kF32, Shape{Shape::kBatch, 4}};
  Attributes ok = {{"min", -1.0}, {"max", 1.0}};
  auto types = registry.InferTypes("clip_by_value", {x}, ok);
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_EQ((*types)[0].ToString(), "f32[N,4]");

  Attributes missing = {{"min", -1.0}};
  types = registry.InferTypes("clip_by_value", {x}, missing);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("missing required attribute 'max'"));

  Attributes reversed = {{"min", 2.0}, {"max", 1.0}};
  types = registry.InferTypes("clip_by_value", {x}, reversed);
  ASSERT_FALSE(types.ok());
  EXPECT_EQ(types.status().message(),
            "[clip_by_value] min must be <= max, got min 2, max 1");

  Attributes zero = {{"max_norm", 0.0}};
  types = registry.InferTypes("clip_by_norm", {x}, zero);
  ASSERT_FALSE(types.ok());
  EXPECT_EQ(types.status().message(),
            "[clip_by_norm] max_norm must be > 0, got 0");

  Attributes text = {{"max_norm", std::string("big")}};
  types = registry.InferTypes("clip_by_norm", {x}, text);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(), HasSubstr("max_norm"));

  Attributes norm = {{"max_norm", int64_t{2}}};
  types = registry.InferTypes("clip_by_norm",
                              {TensorType{DType::kI32, Shape{3}}}, norm);
  ASSERT_FALSE(types.ok());
  EXPECT_THAT(types.status().message(),
              HasSubstr("x must be a floating-point tensor, got i32[3]"));
}

// ---------------------------------------------------------------------------
// Update kernels, two steps each, against hand-computed values.

TEST(OptimizerKernelTest, Sgd) {
  // var - lr*g: 1 - 0.01 = 0.99, -2 - 0.02 = -2.02; then +0.03, -0.04.
  auto s1 = RunOp("sgd_update", {Vec(kVar), Vec(kG1), S(0.1), S(0)});
  ASSERT_TRUE(s1.ok()) << s1.status();
  ExpectNear((*s1)[0], {0.99, -2.02}, kTol);
  auto s2 = RunOp("sgd_update", {(*s1)[0], Vec(kG2), S(0.1), S(1)});
  ASSERT_TRUE(s2.ok()) << s2.status();
  ExpectNear((*s2)[0], {1.02, -2.06}, kTol);
}

TEST(OptimizerKernelTest, MomentumPlainAndNesterovDiffer) {
  // v1 = -lr*g1 = [-0.01, -0.02]; v2 = 0.9*v1 - lr*g2 = [0.021, -0.058].
  // plain: var += v. nesterov: var += 0.9*v - lr*g.
  Attributes plain = {{"momentum", 0.9}};
  Attributes nesterov = {{"momentum", 0.9}, {"nesterov", true}};
  auto p1 = RunOp("momentum_update",
                  {Vec(kVar), Vec(kG1), Vec({0, 0}), S(0.1), S(0)}, plain);
  ASSERT_TRUE(p1.ok()) << p1.status();
  ExpectNear((*p1)[0], {0.99, -2.02}, kTol);
  ExpectNear((*p1)[1], {-0.01, -0.02}, kTol);
  auto p2 = RunOp("momentum_update",
                  {(*p1)[0], Vec(kG2), (*p1)[1], S(0.1), S(1)}, plain);
  ASSERT_TRUE(p2.ok()) << p2.status();
  ExpectNear((*p2)[0], {1.011, -2.078}, kTol);
  ExpectNear((*p2)[1], {0.021, -0.058}, kTol);

  auto n1 = RunOp("momentum_update",
                  {Vec(kVar), Vec(kG1), Vec({0, 0}), S(0.1), S(0)}, nesterov);
  ASSERT_TRUE(n1.ok()) << n1.status();
  // 1 + 0.9*(-0.01) - 0.01 = 0.981; -2 + 0.9*(-0.02) - 0.02 = -2.038.
  ExpectNear((*n1)[0], {0.981, -2.038}, kTol);
  ExpectNear((*n1)[1], {-0.01, -0.02}, kTol);
  auto n2 = RunOp("momentum_update",
                  {(*n1)[0], Vec(kG2), (*n1)[1], S(0.1), S(1)}, nesterov);
  ASSERT_TRUE(n2.ok()) << n2.status();
  // 0.981 + 0.9*0.021 + 0.03 = 1.0299; -2.038 + 0.9*(-0.058) - 0.04 = -2.1302.
  ExpectNear((*n2)[0], {1.0299, -2.1302}, kTol);
  ExpectNear((*n2)[1], {0.021, -0.058}, kTol);

  // Default momentum 0 is plain SGD with a velocity of -lr*g.
  auto zero = RunOp("momentum_update",
                    {Vec(kVar), Vec(kG1), Vec({5, 5}), S(0.1), S(0)});
  ASSERT_TRUE(zero.ok()) << zero.status();
  ExpectNear((*zero)[0], {0.99, -2.02}, kTol);
}

TEST(OptimizerKernelTest, Adam) {
  // t=1: m = 0.1*g = [0.01, 0.02]; v = 0.001*g^2 = [1e-5, 4e-5];
  // lr_t = 0.1*sqrt(0.001)/0.1 = 0.0316227766; var -= lr_t*m/(sqrt(v)+1e-7).
  auto s1 = RunOp("adam_update", {Vec(kVar), Vec(kG1), Vec({0, 0}), Vec({0, 0}),
                                  S(0.1), S(0)});
  ASSERT_TRUE(s1.ok()) << s1.status();
  ExpectNear((*s1)[0], {0.9000031621776634, -2.0999984188861696}, kTol);
  ExpectNear((*s1)[1], {0.01, 0.02}, kTol);
  ExpectNear((*s1)[2], {1e-5, 4e-5}, kTol);
  // t=2: m = [-0.021, 0.058]; v = [9.999e-5, 1.9996e-4];
  // lr_t = 0.1*sqrt(1-0.999^2)/(1-0.9^2).
  auto s2 = RunOp("adam_update",
                  {(*s1)[0], Vec(kG2), (*s1)[1], (*s1)[2], S(0.1), S(1)});
  ASSERT_TRUE(s2.ok()) << s2.status();
  ExpectNear((*s2)[0], {0.9494216512977695, -2.1965159389181586}, kTol);
  ExpectNear((*s2)[1], {-0.021, 0.058}, kTol);
  ExpectNear((*s2)[2], {9.999e-5, 1.9996e-4}, kTol);
}

TEST(OptimizerKernelTest, AdamWDecaysBeforeTheAdamStep) {
  // Same as Adam, with var *= (1 - 0.004*0.1) first: 1 -> 0.9996, -2 ->
  // -1.9992.
  auto s1 = RunOp("adamw_update", {Vec(kVar), Vec(kG1), Vec({0, 0}),
                                   Vec({0, 0}), S(0.1), S(0)});
  ASSERT_TRUE(s1.ok()) << s1.status();
  ExpectNear((*s1)[0], {0.8996031621776635, -2.0991984188861696}, kTol);
  ExpectNear((*s1)[1], {0.01, 0.02}, kTol);
  ExpectNear((*s1)[2], {1e-5, 4e-5}, kTol);
  auto s2 = RunOp("adamw_update",
                  {(*s1)[0], Vec(kG2), (*s1)[1], (*s1)[2], S(0.1), S(1)});
  ASSERT_TRUE(s2.ok()) << s2.status();
  ExpectNear((*s2)[0], {0.9486618100328984, -2.1948762595506044}, kTol);

  // weight_decay 0 is exactly Adam.
  auto plain =
      RunOp("adamw_update",
            {Vec(kVar), Vec(kG1), Vec({0, 0}), Vec({0, 0}), S(0.1), S(0)},
            {{"weight_decay", 0.0}});
  ASSERT_TRUE(plain.ok()) << plain.status();
  ExpectNear((*plain)[0], {0.9000031621776634, -2.0999984188861696}, kTol);
}

TEST(OptimizerKernelTest, RmsProp) {
  // ms = 0.9*ms + 0.1*g^2 = [0.001, 0.004]; var -= 0.1*g/sqrt(ms + 1e-7).
  auto s1 =
      RunOp("rmsprop_update", {Vec(kVar), Vec(kG1), Vec({0, 0}), S(0.1), S(0)});
  ASSERT_TRUE(s1.ok()) << s1.status();
  ExpectNear((*s1)[0], {0.6837880441857075, -2.316223813243877}, kTol);
  ExpectNear((*s1)[1], {0.001, 0.004}, kTol);
  // ms = [0.0009 + 0.009, 0.0036 + 0.016] = [0.0099, 0.0196].
  auto s2 =
      RunOp("rmsprop_update", {(*s1)[0], Vec(kG2), (*s1)[1], S(0.1), S(1)});
  ASSERT_TRUE(s2.ok()) << s2.status();
  ExpectNear((*s2)[0], {0.9852978659904388, -2.601937370097978}, kTol);
  ExpectNear((*s2)[1], {0.0099, 0.0196}, kTol);
}

TEST(OptimizerKernelTest, Adagrad) {
  // acc starts at Keras' 0.1: acc = [0.11, 0.14]; var -= 0.1*g/sqrt(acc+1e-7).
  auto s1 = RunOp("adagrad_update",
                  {Vec(kVar), Vec(kG1), Vec({0.1, 0.1}), S(0.1), S(0)});
  ASSERT_TRUE(s1.ok()) << s1.status();
  ExpectNear((*s1)[0], {0.9698488792472754, -2.0534522292924065}, kTol);
  ExpectNear((*s1)[1], {0.11, 0.14}, kTol);
  auto s2 =
      RunOp("adagrad_update", {(*s1)[0], Vec(kG2), (*s1)[1], S(0.1), S(1)});
  ASSERT_TRUE(s2.ok()) << s2.status();
  ExpectNear((*s2)[0], {1.0369309018017656, -2.1264818914548194}, kTol);
  ExpectNear((*s2)[1], {0.2, 0.3}, kTol);
}

TEST(OptimizerKernelTest, F32MatchesF64) {
  auto f64 = RunOp("adam_update", {Vec(kVar), Vec(kG1), Vec({0, 0}),
                                   Vec({0, 0}), S(0.1), S(0)});
  auto f32 = RunOp("adam_update",
                   {Vec32({1.0f, -2.0f}), Vec32({0.1f, 0.2f}), Vec32({0, 0}),
                    Vec32({0, 0}), Tensor::Scalar(0.1f), Tensor::Scalar(0.0f)});
  ASSERT_TRUE(f64.ok()) << f64.status();
  ASSERT_TRUE(f32.ok()) << f32.status();
  ASSERT_EQ(f32->size(), 3u);
  EXPECT_EQ((*f32)[0].dtype(), DType::kF32);
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 2; ++i) {
      EXPECT_NEAR((*f32)[k].GetAsDouble(i), (*f64)[k].GetAsDouble(i),
                  1e-6 * (1 + std::abs((*f64)[k].GetAsDouble(i))));
    }
  }
}

// The memory planner may hand a kernel the variable's own buffer as output.
TEST(OptimizerKernelTest, InPlaceUpdateMatchesSeparateBuffers) {
  OpRegistry registry = MakeRegistry();
  Tensor var = Vec(kVar), grad = Vec(kG1), m = Vec({0, 0}), v = Vec({0, 0});
  Tensor lr = S(0.1), it = S(0);
  std::vector<const Tensor*> in = {&var, &grad, &m, &v, &lr, &it};
  std::vector<Tensor*> out = {&var, &m, &v};
  Attributes attrs = {{"beta_1", 0.9}, {"beta_2", 0.999}, {"epsilon", 1e-7}};
  ASSERT_TRUE(registry.Find("adam_update")->reference(in, attrs, out).ok());
  ExpectNear(var, {0.9000031621776634, -2.0999984188861696}, kTol);
  ExpectNear(m, {0.01, 0.02}, kTol);
  ExpectNear(v, {1e-5, 4e-5}, kTol);
}

TEST(OptimizerKernelTest, KernelRejectsWrongBuffers) {
  OpRegistry registry = MakeRegistry();
  Tensor var = Vec(kVar), grad = Vec({1, 2, 3}), lr = S(0.1), it = S(0);
  Tensor out_var = Vec({0, 0});
  std::vector<const Tensor*> in = {&var, &grad, &lr, &it};
  std::vector<Tensor*> out = {&out_var};
  absl::Status status = registry.Find("sgd_update")->reference(in, {}, out);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("[sgd_update] input 1 is f64[3]"));
}

// ---------------------------------------------------------------------------
// Clipping.

TEST(OptimizerKernelTest, ClipByNorm) {
  auto clipped = RunOp("clip_by_norm", {Vec({3, 4})}, {{"max_norm", 1.0}});
  ASSERT_TRUE(clipped.ok()) << clipped.status();
  ExpectNear((*clipped)[0], {0.6, 0.8}, kTol);

  // Within the bound, and all zeros: unchanged.
  auto kept = RunOp("clip_by_norm", {Vec({3, 4})}, {{"max_norm", 5.0}});
  ASSERT_TRUE(kept.ok()) << kept.status();
  ExpectNear((*kept)[0], {3, 4}, 0.0);
  auto zeros = RunOp("clip_by_norm", {Vec({0, 0})}, {{"max_norm", 1.0}});
  ASSERT_TRUE(zeros.ok()) << zeros.status();
  ExpectNear((*zeros)[0], {0, 0}, 0.0);

  // Per tensor, not per row: [[3,0],[0,4]] has norm 5.
  Tensor m = Tensor::FromVector(std::vector<float>{3, 0, 0, 4}, Shape{2, 2});
  auto f32 = RunOp("clip_by_norm", {m}, {{"max_norm", 2.5}});
  ASSERT_TRUE(f32.ok()) << f32.status();
  ExpectNear((*f32)[0], {1.5, 0, 0, 2}, 1e-6);
}

TEST(OptimizerKernelTest, ClipByValue) {
  auto y = RunOp("clip_by_value", {Vec({-3, -0.5, 0.25, 2})},
                 {{"min", -1.0}, {"max", 1.0}});
  ASSERT_TRUE(y.ok()) << y.status();
  ExpectNear((*y)[0], {-1, -0.5, 0.25, 1}, 0.0);

  auto f32 = RunOp("clip_by_value", {Vec32({-3.0f, 0.5f, 9.0f})},
                   {{"min", int64_t{0}}, {"max", 0.5}});
  ASSERT_TRUE(f32.ok()) << f32.status();
  ExpectNear((*f32)[0], {0, 0.5, 0.5}, 0.0);
}

}  // namespace
}  // namespace sequent::ops
