#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/op_registry.h"
#include "core/tensor.h"
#include "ops/activation_fn.h"
#include "ops/op_defs.h"
#include "tests/testing/op_harness.h"

namespace sequent::ops {
namespace {

OpHarness Activations() {
  return OpHarness({Make_relu_Op(), Make_leaky_relu_Op(), Make_elu_Op(),
                    Make_selu_Op(), Make_sigmoid_Op(), Make_tanh_Op(),
                    Make_gelu_Op(), Make_swish_Op(), Make_softplus_Op(),
                    Make_softmax_Op(), Make_log_softmax_Op()});
}

const char* const kPointwise[] = {"relu", "leaky_relu", "elu",
                                  "selu", "sigmoid",    "tanh",
                                  "gelu", "swish",      "softplus"};

TEST(ActivationTest, ShapeRule) {
  OpHarness h = Activations();
  for (const char* op : kPointwise) {
    SCOPED_TRACE(op);
    auto out = h.Infer(op, {F32({N, 512})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 512}));
    out = h.Infer(op, {{DType::kF64, Shape{N, 2, 3}}});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], (TensorType{DType::kF64, Shape{N, 2, 3}}));
    ExpectError(h.Infer(op, {{DType::kI32, Shape{N, 10}}}),
                {"[" + std::string(op) + "]", "floating-point", "i32[N,10]"});
  }
  ExpectError(
      h.Infer("leaky_relu", {F32({N})}, {{"alpha", std::string("big")}}),
      {"[leaky_relu]", "alpha", "float"});
  ExpectError(h.Infer("gelu", {F32({N})}, {{"approximate", int64_t{1}}}),
              {"[gelu]", "approximate", "bool"});
}

TEST(ActivationTest, Reference) {
  OpHarness h = Activations();
  Tensor x = Tensor::FromVector<float>({-2, -0.5f, 0, 1.5f}, {2, 2});
  struct Case {
    const char* op;
    Attributes attrs;
    std::vector<double> expected;
  };
  const std::vector<Case> cases = {
      {"relu", {}, {0, 0, 0, 1.5}},
      {"leaky_relu", {}, {-0.4, -0.1, 0, 1.5}},
      {"leaky_relu", {{"alpha", 0.1}}, {-0.2, -0.05, 0, 1.5}},
      {"elu", {}, {-0.8646647, -0.3934693, 0, 1.5}},
      {"elu", {{"alpha", 2.0}}, {-1.7293294, -0.7869387, 0, 1.5}},
      {"selu", {}, {-1.5201665, -0.6917582, 0, 1.5760515}},
      {"sigmoid", {}, {0.1192029, 0.3775407, 0.5, 0.8175745}},
      {"tanh", {}, {-0.9640276, -0.4621172, 0, 0.9051483}},
      {"gelu", {}, {-0.0455003, -0.1542688, 0, 1.3997892}},
      {"gelu", {{"approximate", true}}, {-0.0454023, -0.1542860, 0, 1.3995716}},
      {"swish", {}, {-0.2384058, -0.1887703, 0, 1.2263617}},
      {"softplus", {}, {0.1269280, 0.4740770, 0.6931472, 1.7014133}},
  };
  Tensor x64 = x.CastTo(DType::kF64);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    for (const Tensor* input : {&x, &x64}) {
      auto out = h.Run(c.op, {input}, c.attrs);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ((*out)[0].type(), input->type());
      ExpectValues((*out)[0], c.expected, 1e-6);
    }
  }
}

TEST(ActivationTest, ExtremeInputsStayFinite) {
  OpHarness h = Activations();
  Tensor x = Tensor::FromVector<float>({-1000, 1000}, {2});
  auto out = h.Run("sigmoid", {&x});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0, 1});
  out = h.Run("softplus", {&x});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0, 1000});
}

TEST(ActivationFnTest, DerivativesMatchFiniteDifferences) {
  for (const std::string& name : ActivationNames()) {
    SCOPED_TRACE(name);
    auto act = ParseActivation(name);
    ASSERT_TRUE(act.ok()) << act.status();
    for (double x : {-1.7, -0.3, 0.4, 2.2}) {
      const double eps = 1e-6;
      const double numeric =
          (ActivationValue(*act, x + eps) - ActivationValue(*act, x - eps)) /
          (2 * eps);
      EXPECT_NEAR(ActivationDerivative(*act, x), numeric, 1e-6) << "at " << x;
    }
  }
  Activation tanh_gelu{ActivationKind::kGelu, 0.0, /*approximate=*/true};
  const double numeric = (ActivationValue(tanh_gelu, 0.8 + 1e-6) -
                          ActivationValue(tanh_gelu, 0.8 - 1e-6)) /
                         2e-6;
  EXPECT_NEAR(ActivationDerivative(tanh_gelu, 0.8), numeric, 1e-6);
  EXPECT_NEAR(ActivationDerivative(tanh_gelu, 0.8f), numeric, 1e-5);

  auto bad = ParseActivation("relu6");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("relu6"), std::string::npos);
  EXPECT_NE(bad.status().message().find("leaky_relu"), std::string::npos);
}

TEST(SoftmaxTest, ShapeRule) {
  OpHarness h = Activations();
  for (const char* op : {"softmax", "log_softmax"}) {
    SCOPED_TRACE(op);
    auto out = h.Infer(op, {F32({N, 10})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 10}));
    out = h.Infer(op, {F32({N, 4, 10})}, {{"axis", int64_t{1}}});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 4, 10}));
    ExpectError(h.Infer(op, {F32({N, 10})}, {{"axis", int64_t{2}}}),
                {"[" + std::string(op) + "]", "axis 2", "f32[N,10]"});
    ExpectError(h.Infer(op, {F32({})}), {"axis -1", "f32[]"});
    ExpectError(h.Infer(op, {{DType::kI64, Shape{N, 3}}}),
                {"floating-point", "i64[N,3]"});
  }
}

TEST(SoftmaxTest, Reference) {
  OpHarness h = Activations();
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 1001, 1002, 1003}, {2, 3});
  auto out = h.Run("softmax", {&x});
  ASSERT_TRUE(out.ok()) << out.status();
  // The second row overflows exp() unless the maximum is subtracted first.
  ExpectValues((*out)[0], {0.0900306, 0.2447285, 0.6652410, 0.0900306,
                           0.2447285, 0.6652410});
  out = h.Run("log_softmax", {&x});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {-2.4076059, -1.4076059, -0.4076059, -2.4076059,
                           -1.4076059, -0.4076059});

  // Over axis 0 of [[1, 2], [4, 3]] in f64: columns (1, 4) and (2, 3).
  Tensor y = Tensor::FromVector<double>({1, 2, 4, 3}, {2, 2});
  out = h.Run("softmax", {&y}, {{"axis", int64_t{0}}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0.0474259, 0.2689414, 0.9525741, 0.7310586});
  out = h.Run("log_softmax", {&y}, {{"axis", int64_t{-2}}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0],
               {std::log(0.0474259), std::log(0.2689414), std::log(0.9525741),
                std::log(0.7310586)},
               1e-5);
}

OpHarness ActivationBackward() {
  return OpHarness({Make_activation_grad_Op(), Make_activation_input_grad_Op(),
                    Make_activation_bias_grad_Op(), Make_softmax_grad_Op(),
                    Make_log_softmax_grad_Op()});
}

Attributes Act(std::string name) {
  return {{"activation", AttrValue(std::move(name))}};
}

TEST(ActivationGradTest, ShapeRule) {
  OpHarness h = ActivationBackward();
  for (const char* op : {"activation_grad", "activation_input_grad"}) {
    SCOPED_TRACE(op);
    auto out = h.Infer(op, {F32({N, 4}), F32({N, 4})}, Act("relu"));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 4}));
    ExpectError(h.Infer(op, {F32({N, 4}), F32({N, 3})}, Act("relu")),
                {"f32[N,4]", "f32[N,3]", "same type"});
    ExpectError(h.Infer(op, {F32({N, 4}), F32({N, 4})}, Act("cube")),
                {"unknown activation", "cube"});
    ExpectError(h.Infer(op, {F32({N, 4}), F32({N, 4})}),
                {"missing required attribute 'activation'"});
  }
  // gelu, swish and softplus need the input.
  for (const char* act : {"gelu", "swish", "softplus"}) {
    ExpectError(h.Infer("activation_grad", {F32({2}), F32({2})}, Act(act)),
                {"[activation_grad]", act, "activation_input_grad"});
    EXPECT_TRUE(
        h.Infer("activation_input_grad", {F32({2}), F32({2})}, Act(act)).ok());
  }
}

TEST(ActivationGradTest, FromOutputMatchesTheDerivativeAtTheInput) {
  OpHarness h = ActivationBackward();
  const std::vector<double> xs = {-2, -0.5, 0.3, 1.7};
  struct Case {
    std::string name;
    double alpha;
  };
  for (const Case& c : std::vector<Case>{{"linear", 0.2},
                                         {"relu", 0.2},
                                         {"sigmoid", 0.2},
                                         {"tanh", 0.2},
                                         {"elu", 1.0},
                                         {"elu", 0.5},
                                         {"selu", 0.2},
                                         {"leaky_relu", 0.2},
                                         {"leaky_relu", 0.01}}) {
    SCOPED_TRACE(c.name + " alpha " + std::to_string(c.alpha));
    Activation act = *ParseActivation(c.name);
    act.alpha = c.alpha;
    std::vector<double> y, expected;
    for (double x : xs) {
      y.push_back(ActivationValue<double>(act, x));
      expected.push_back(3.0 * ActivationDerivative<double>(act, x));
    }
    Tensor dy = Tensor::FromVector<double>({3, 3, 3, 3}, {4});
    Tensor yt = Tensor::FromVector<double>(y, {4});
    Attributes attrs = Act(c.name);
    attrs["alpha"] = c.alpha;
    auto out = h.Run("activation_grad", {&dy, &yt}, attrs);
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectValues((*out)[0], expected, 1e-12);
  }
}

TEST(ActivationGradTest, Reference) {
  OpHarness h = ActivationBackward();
  Tensor dy = Tensor::FromVector<float>({1, 2, 3, 4}, {2, 2});
  Tensor y = Tensor::FromVector<float>({0.5f, 0, -0.25f, 2}, {2, 2});
  auto out = h.Run("activation_grad", {&dy, &y}, Act("relu"));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {1, 0, 0, 4});
  out = h.Run("activation_grad", {&dy, &y}, Act("sigmoid"));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0.25, 0, 3 * -0.25 * 1.25, 4 * 2 * -1});
  // elu's default alpha is 1: y + 1 below zero.
  out = h.Run("activation_grad", {&dy, &y}, Act("elu"));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {1, 2 * 1.0, 3 * 0.75, 4});
}

TEST(ActivationInputGradTest, Reference) {
  OpHarness h = ActivationBackward();
  Tensor dy = Tensor::FromVector<double>({1, 2, -1}, {3});
  Tensor x = Tensor::FromVector<double>({0, 1, -2}, {3});
  struct Case {
    std::string name;
    bool approximate;
    std::vector<double> expected;
  };
  const double s1 = 1 / (1 + std::exp(-1.0));
  const double s2 = 1 / (1 + std::exp(2.0));
  const std::vector<Case> cases = {
      // gelu'(x) = Phi(x) + x phi(x).
      {"gelu",
       false,
       {0.5, 2 * (0.8413447460685429 + 0.24197072451914337),
        -1 * (0.022750131948179195 - 2 * 0.05399096651318806)}},
      {"swish",
       false,
       {0.5, 2 * (s1 * (1 + 1 * (1 - s1))), -1 * (s2 * (1 - 2 * (1 - s2)))}},
      {"softplus", false, {0.5, 2 * s1, -1 * s2}},
      {"relu", false, {0, 2, 0}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Attributes attrs = Act(c.name);
    attrs["approximate"] = c.approximate;
    auto out = h.Run("activation_input_grad", {&dy, &x}, attrs);
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectValues((*out)[0], c.expected, 1e-9);
  }
  // The tanh form of gelu differs slightly from the exact one.
  Attributes tanh_form = Act("gelu");
  tanh_form["approximate"] = true;
  auto out = h.Run("activation_input_grad", {&dy, &x}, tanh_form);
  ASSERT_TRUE(out.ok()) << out.status();
  Activation act{ActivationKind::kGelu, 0.0, true};
  ExpectValues((*out)[0],
               {0.5, 2 * ActivationDerivative<double>(act, 1.0),
                -1 * ActivationDerivative<double>(act, -2.0)},
               1e-12);
  EXPECT_GT(std::abs((*out)[0].GetAsDouble(1) -
                     2 * (0.8413447460685429 + 0.24197072451914337)),
            1e-6);
}

TEST(ActivationBiasGradTest, ShapeRuleAndReference) {
  OpHarness h = ActivationBackward();
  auto types =
      h.Infer("activation_bias_grad", {F32({N, 3}), F32({N, 3})}, Act("tanh"));
  ASSERT_TRUE(types.ok()) << types.status();
  ASSERT_EQ(types->size(), 2u);
  EXPECT_EQ((*types)[0], F32({N, 3}));
  EXPECT_EQ((*types)[1], F32({3}));
  ExpectError(
      h.Infer("activation_bias_grad", {F32({N, 3}), F32({3, 3})}, Act("tanh")),
      {"f32[N,3]", "f32[3,3]"});
  ExpectError(h.Infer("activation_bias_grad", {F32({}), F32({})}, Act("tanh")),
              {"last dimension"});
  ExpectError(
      h.Infer("activation_bias_grad", {F32({2, 3}), F32({2, 3})}, Act("gelu")),
      {"gelu", "activation_input_grad"});

  Tensor dy = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = Tensor::FromVector<float>({1, -1, 2, 0, 3, 0.5f}, {2, 3});
  auto out = h.Run("activation_bias_grad", {&dy, &y}, Act("relu"));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {1, 0, 3, 0, 5, 6});
  ExpectValues((*out)[1], {1, 5, 9});
}

TEST(SoftmaxGradTest, ShapeRule) {
  OpHarness h = ActivationBackward();
  for (const char* op : {"softmax_grad", "log_softmax_grad"}) {
    SCOPED_TRACE(op);
    auto out = h.Infer(op, {F32({N, 5}), F32({N, 5})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0], F32({N, 5}));
    ExpectError(h.Infer(op, {F32({N, 5}), F32({N, 5})}, {{"axis", int64_t{2}}}),
                {"axis 2", "f32[N,5]"});
    ExpectError(h.Infer(op, {F32({N, 5}), F32({N, 4})}), {"f32[N,4]"});
  }
}

TEST(SoftmaxGradTest, Reference) {
  OpHarness h = ActivationBackward();
  // Rows of y are softmax outputs; dx = y (dy - sum(dy y)).
  Tensor y = Tensor::FromVector<double>({0.2, 0.3, 0.5, 0.1, 0.1, 0.8}, {2, 3});
  Tensor dy = Tensor::FromVector<double>({1, 2, 3, -1, 0, 1}, {2, 3});
  auto out = h.Run("softmax_grad", {&dy, &y});
  ASSERT_TRUE(out.ok()) << out.status();
  // Row sums of dy*y: 2.3 and 0.7.
  ExpectValues(
      (*out)[0],
      {0.2 * -1.3, 0.3 * -0.3, 0.5 * 0.7, 0.1 * -1.7, 0.1 * -0.7, 0.8 * 0.3},
      1e-12);
  // Along axis 0 the columns are the groups.
  out = h.Run("softmax_grad", {&dy, &y}, {{"axis", int64_t{0}}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0],
               {0.2 * (1 - 0.1), 0.3 * (2 - 0.6), 0.5 * (3 - 2.3),
                0.1 * (-1 - 0.1), 0.1 * (0 - 0.6), 0.8 * (1 - 2.3)},
               1e-12);
  // log_softmax: dx = dy - e^y sum(dy), with y = log p.
  Tensor logp = Tensor::FromVector<double>(
      {std::log(0.2), std::log(0.3), std::log(0.5)}, {1, 3});
  Tensor dl = Tensor::FromVector<double>({1, 2, 3}, {1, 3});
  out = h.Run("log_softmax_grad", {&dl, &logp});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {1 - 0.2 * 6, 2 - 0.3 * 6, 3 - 0.5 * 6}, 1e-12);
}

}  // namespace
}  // namespace sequent::ops
