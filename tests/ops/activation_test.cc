#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/op_registry.h"
#include "core/tensor.h"
#include "ops/activation_fn.h"
#include "ops/op_defs.h"

namespace sequent::ops {
namespace {

// Registers `def` in a local registry so that shape rules run with defaults
// filled and the
// "[op] " prefix, exactly as graphs see them.
class OpHarness {
 public:
  explicit OpHarness(std::vector<OpDef> defs) {
    for (OpDef& def : defs) {
      const std::string name = def.name;
      EXPECT_TRUE(registry_.Register(std::move(def)).ok()) << name;
    }
  }

  absl::StatusOr<std::vector<TensorType>> Infer(absl::string_view op,
                                                std::vector<TensorType> inputs,
                                                Attributes attrs = {}) const {
    return registry_.InferTypes(op, inputs, attrs);
  }

  // Infers the output types from the inputs' (static) types, allocates the
  // outputs and runs the reference kernel.
  absl::StatusOr<std::vector<Tensor>> Run(
      absl::string_view op, const std::vector<const Tensor*>& inputs,
      Attributes attrs = {}) const {
    std::vector<TensorType> types;
    for (const Tensor* t : inputs) types.push_back(t->type());
    auto out_types = registry_.InferTypes(op, types, attrs);
    if (!out_types.ok()) return out_types.status();
    std::vector<Tensor> outputs;
    for (const TensorType& t : *out_types) outputs.emplace_back(t);
    std::vector<Tensor*> out_ptrs;
    for (Tensor& t : outputs) out_ptrs.push_back(&t);
    const OpDef* def = registry_.Find(op);
    absl::Status status = def->reference(inputs, attrs, out_ptrs);
    if (!status.ok()) return status;
    return outputs;
  }

 private:
  OpRegistry registry_;
};

constexpr int64_t N = Shape::kBatch;

TensorType F32(Shape shape) { return {DType::kF32, std::move(shape)}; }

void ExpectValues(const Tensor& t, const std::vector<double>& expected,
                  double tol = 1e-5) {
  ASSERT_EQ(t.num_elements(), static_cast<int64_t>(expected.size()))
      << t.ToString();
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(t.GetAsDouble(i), expected[i], tol)
        << "element " << i << " of " << t.ToString();
  }
}

void ExpectError(const absl::StatusOr<std::vector<TensorType>>& result,
                 const std::vector<std::string>& fragments) {
  ASSERT_FALSE(result.ok())
      << "expected an error, got " << (*result)[0].ToString();
  for (const std::string& f : fragments) {
    EXPECT_NE(result.status().message().find(f), std::string::npos)
        << "message \"" << result.status().message() << "\" lacks \"" << f
        << "\"";
  }
}

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

}  // namespace
}  // namespace sequent::ops
