#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/graph_builder.h"
#include "core/op_registry.h"
#include "core/tensor.h"
#include "ops/op_defs.h"
#include "tests/testing/op_harness.h"

namespace sequent::ops {
namespace {

OpHarness Linear() {
  return OpHarness({Make_matmul_Op(), Make_bias_add_Op(), Make_dense_Op()});
}

TEST(MatmulTest, ShapeRule) {
  OpHarness h = Linear();
  auto out = h.Infer("matmul", {F32({N, 784}), F32({784, 512})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 512}));
  // x^T * dy contracts over N: the weight gradient.
  out = h.Infer("matmul", {F32({N, 3}), F32({N, 5})}, {{"transpose_a", true}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({3, 5}));
  out = h.Infer("matmul", {F32({N, 5}), F32({3, 5})}, {{"transpose_b", true}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 3}));

  ExpectError(
      h.Infer("matmul", {F32({N, 784}), F32({512, 10})}),
      {"[matmul]", "inner dimensions differ", "f32[N,784]", "f32[512,10]"});
  ExpectError(h.Infer("matmul", {F32({N, 3, 4}), F32({4, 2})}),
              {"rank 2", "f32[N,3,4]"});
  ExpectError(h.Infer("matmul", {F32({2, 3}), {DType::kF64, Shape{3, 2}}}),
              {"f32[2,3]", "f64[3,2]"});
  ExpectError(h.Infer("matmul",
                      {{DType::kI32, Shape{2, 3}}, {DType::kI32, Shape{3, 2}}}),
              {"floating-point", "i32[2,3]"});
}

TEST(MatmulTest, Reference) {
  OpHarness h = Linear();
  Tensor a = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::FromVector<float>({7, 8, 9, 10, 11, 12}, {3, 2});
  auto out = h.Run("matmul", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 2}));
  ExpectValues((*out)[0], {58, 64, 139, 154});

  // a^T [3,2] x a [2,3] in f64.
  Tensor a64 = a.CastTo(DType::kF64);
  out = h.Run("matmul", {&a64, &a64}, {{"transpose_a", true}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DType::kF64);
  ExpectValues((*out)[0], {17, 22, 27, 22, 29, 36, 27, 36, 45});

  // a [2,3] x b^T where b^T is given as [2,3]: rows dotted with rows.
  out = h.Run("matmul", {&a, &a}, {{"transpose_b", true}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {14, 32, 32, 77});
}

TEST(BiasAddTest, ShapeRule) {
  OpHarness h = Linear();
  auto out = h.Infer("bias_add", {F32({N, 4}), F32({4})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 4}));
  out = h.Infer("bias_add", {F32({N, 2, 2, 3}), F32({3})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 2, 2, 3}));
  ExpectError(h.Infer("bias_add", {F32({N, 4}), F32({5})}),
              {"[bias_add]", "f32[5]", "f32[N,4]"});
  ExpectError(h.Infer("bias_add", {F32({N, 4}), F32({1, 4})}),
              {"bias", "rank 1", "f32[1,4]"});
}

TEST(BiasAddTest, Reference) {
  OpHarness h = Linear();
  Tensor x = Tensor::FromVector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor bias = Tensor::FromVector<double>({10, 20, 30}, {3});
  auto out = h.Run("bias_add", {&x, &bias});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {11, 22, 33, 14, 25, 36});
}

TEST(DenseTest, ShapeRule) {
  OpHarness h = Linear();
  auto out = h.Infer("dense", {F32({N, 784}), F32({784, 512}), F32({512})},
                     {{"activation", std::string("relu")}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 512}));
  out = h.Infer("dense", {F32({N, 784}), F32({784, 10})});  // no bias
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0], F32({N, 10}));

  ExpectError(
      h.Infer("dense", {F32({N, 784}), F32({512, 10})}),
      {"[dense]", "inner dimensions differ", "f32[N,784]", "f32[512,10]"});
  ExpectError(h.Infer("dense", {F32({N, 4}), F32({4, 10}), F32({4})}),
              {"bias", "f32[4]", "f32[4,10]"});
  ExpectError(h.Infer("dense", {F32({N, 4}), F32({4, 10})},
                      {{"activation", std::string("relu6")}}),
              {"relu6", "linear", "relu", "sigmoid", "gelu", "leaky_relu"});
}

TEST(DenseTest, Reference) {
  OpHarness h = Linear();
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor kernel = Tensor::FromVector<float>({1, -1, 0, 1, -1, 0}, {3, 2});
  Tensor bias = Tensor::FromVector<float>({0.5f, -10}, {2});
  // x * kernel = [[1-3, -1+2], [4-6, -4+5]] = [[-2, 1], [-2, 1]]; + bias =
  // [[-1.5, -9], ...].
  auto out = h.Run("dense", {&x, &kernel, &bias});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {-1.5, -9, -1.5, -9});
  out = h.Run("dense", {&x, &kernel}, {{"activation", std::string("relu")}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0, 1, 0, 1});
  // leaky_relu's slope 0.2 and sigmoid(-2) = 0.1192029, sigmoid(1) = 0.7310586.
  out = h.Run("dense", {&x, &kernel, &bias},
              {{"activation", std::string("leaky_relu")}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {-0.3, -1.8, -0.3, -1.8});
  out = h.Run("dense", {&x, &kernel}, {{"activation", std::string("sigmoid")}});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectValues((*out)[0], {0.1192029, 0.7310586, 0.1192029, 0.7310586});
}

TEST(DenseTest, IntegerInputsAreRejected) {
  OpHarness h = Linear();
  Tensor x = Tensor::FromVector<int32_t>({1, 2}, {1, 2});
  Tensor k = Tensor::FromVector<int32_t>({1, 2}, {2, 1});
  EXPECT_FALSE(h.Run("dense", {&x, &k}).ok());
}

// The gradient rules emit IR; a registry with just this family checks the
// matmuls they emit (the other ops they use live in other families and are
// checked end to end by tests/ops/gradients).
class LinearRuleTest : public ::testing::Test {
 protected:
  LinearRuleTest() : b_(&graph_, &registry_) {
    for (OpDef def : {Make_matmul_Op(), Make_bias_add_Op(), Make_dense_Op()}) {
      EXPECT_TRUE(registry_.Register(std::move(def)).ok());
    }
  }

  // Emits `op` on fresh inputs of `types` and runs its gradient rule with an
  // output gradient of the output's type.
  absl::StatusOr<std::vector<ValueId>> Gradients(
      absl::string_view op, const std::vector<TensorType>& types,
      Attributes attrs = {}) {
    std::vector<ValueId> inputs;
    for (size_t i = 0; i < types.size(); ++i) {
      inputs.push_back(b_.Input(absl::StrCat("in", i), types[i]));
    }
    const ValueId out = b_.Op(op, inputs, std::move(attrs));
    EXPECT_TRUE(b_.ok()) << b_.status();
    const ValueId dy = b_.Input("dy", b_.type(out));
    const Node node = graph_.producer(out);
    return registry_.Find(op)->gradient(b_, node, {dy});
  }

  Graph graph_;
  OpRegistry registry_;
  GraphBuilder b_;
};

TEST_F(LinearRuleTest, MatmulGradientsHaveTheOperandTypesForEveryTranspose) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(absl::StrCat("transpose_a ", ta, " transpose_b ", tb));
      const TensorType a = ta ? F32({5, N}) : F32({N, 5});
      const TensorType bt = tb ? F32({3, 5}) : F32({5, 3});
      auto grads = Gradients("matmul", {a, bt},
                             {{"transpose_a", ta}, {"transpose_b", tb}});
      ASSERT_TRUE(grads.ok()) << grads.status();
      ASSERT_EQ(grads->size(), 2u);
      ASSERT_TRUE(b_.ok()) << b_.status();
      EXPECT_EQ(b_.type((*grads)[0]), a);
      EXPECT_EQ(b_.type((*grads)[1]), bt);
      // Every gradient is a single matmul, never an explicit transpose.
      EXPECT_EQ(graph_.producer((*grads)[0]).op, "matmul");
      EXPECT_EQ(graph_.producer((*grads)[1]).op, "matmul");
    }
  }
}

TEST_F(LinearRuleTest, LinearDenseWithoutBias) {
  auto grads = Gradients("dense", {F32({N, 4}), F32({4, 2})});
  ASSERT_TRUE(grads.ok()) << grads.status();
  ASSERT_EQ(grads->size(), 2u);
  EXPECT_EQ(b_.type((*grads)[0]), F32({N, 4}));
  EXPECT_EQ(b_.type((*grads)[1]), F32({4, 2}));
}

TEST_F(LinearRuleTest, DenseWithAnInputDerivedActivationIsUnimplemented) {
  for (const char* act : {"gelu", "swish", "softplus"}) {
    SCOPED_TRACE(act);
    auto grads = Gradients("dense", {F32({N, 4}), F32({4, 2}), F32({2})},
                           {{"activation", std::string(act)}});
    ASSERT_FALSE(grads.ok());
    EXPECT_EQ(grads.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_NE(grads.status().message().find(act), std::string::npos);
    EXPECT_NE(grads.status().message().find("pre-activation"),
              std::string::npos)
        << grads.status().message();
  }
}

}  // namespace
}  // namespace sequent::ops
