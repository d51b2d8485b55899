#include "backends/reference/reference_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "backends/host_variable_store.h"
#include "core/graph_builder.h"
#include "core/initializers.h"
#include "ops/registry.h"

namespace sequent {
namespace {

using ::testing::HasSubstr;

const OpRegistry& Ops() { return ops::DefaultRegistry(); }

TensorType F32(std::initializer_list<int64_t> dims) {
  return {DType::kF32, Shape(dims)};
}

Attributes Glorot(int64_t seed) {
  return {{"initializer", std::string("glorot_uniform")}, {"seed", seed}};
}

// x -> [matmul, bias_add, relu] x2 -> matmul, bias_add -> softmax, or the same
// with dense nodes. Both name their variables alike, so they can share one
// store.
Graph Mlp(bool fused) {
  Graph g("mlp");
  GraphBuilder b(&g, &Ops());
  ValueId h = b.Input("x", F32({Shape::kBatch, 784}));
  const int64_t widths[] = {784, 512, 512, 10};
  for (int i = 0; i < 3; ++i) {
    const std::string layer = "dense_" + std::to_string(i + 1);
    b.SetLayer(layer);
    const std::string act = i < 2 ? "relu" : "linear";
    ValueId w = b.Variable(layer + "/kernel", F32({widths[i], widths[i + 1]}),
                           Glorot(i + 1));
    ValueId bias = b.Variable(layer + "/bias", F32({widths[i + 1]}),
                              {{"initializer", std::string("random_uniform")},
                               {"seed", int64_t{100 + i}}});
    if (fused) {
      h = b.Op("dense", {h, w, bias}, {{"activation", act}});
    } else {
      h = b.Op("bias_add", {b.Op("matmul", {h, w}), bias});
      if (i < 2) h = b.Op("relu", {h});
    }
  }
  b.SetLayer("softmax");
  ValueId y = b.Op("softmax", {h});
  EXPECT_TRUE(b.ok()) << b.status();
  g.AddOutput("y_pred", y);
  return g;
}

Tensor Ramp(const TensorType& type, double scale) {
  Tensor t(type);
  for (int64_t i = 0; i < t.num_elements(); ++i)
    t.SetFromDouble(i, scale * std::sin(0.37 * i));
  return t;
}

TEST(ReferenceBackendTest, MlpProducesDistributions) {
  Graph g = Mlp(/*fused=*/false);
  Tensor x = Ramp(F32({8, 784}), 1.0);
  auto out = RunGraphOnce(g, 8, {Feed{"x", &x}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  const Tensor& y = (*out)[0];
  EXPECT_EQ(y.type(), F32({8, 10}));
  for (int r = 0; r < 8; ++r) {
    double sum = 0;
    for (int c = 0; c < 10; ++c) {
      const double p = y.GetAsDouble(r * 10 + c);
      EXPECT_GT(p, 0.0);
      EXPECT_LT(p, 1.0);
      sum += p;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << r;
  }
  // Different inputs give different rows: the weights are not degenerate.
  EXPECT_NE(y.GetAsDouble(0), y.GetAsDouble(10));
}

TEST(ReferenceBackendTest, FusedAndUnfusedMlpAgreeOnASharedStore) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  auto unfused = backend.Compile(Mlp(false), 4, store.get());
  ASSERT_TRUE(unfused.ok()) << unfused.status();
  const std::vector<std::string> names = store->Names();
  EXPECT_EQ(names.size(), 6u);
  // The second executable finds every variable present and creates none.
  auto fused = backend.Compile(Mlp(true), 4, store.get());
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(store->Names(), names);

  Tensor x = Ramp(F32({4, 784}), 0.5);
  std::vector<Tensor> a, b;
  ASSERT_TRUE((*unfused)->Run({Feed{"x", &x}}, a).ok());
  ASSERT_TRUE((*fused)->Run({Feed{"x", &x}}, b).ok());
  ASSERT_EQ(a[0].type(), b[0].type());
  for (int64_t i = 0; i < a[0].num_elements(); ++i) {
    EXPECT_NEAR(a[0].GetAsDouble(i), b[0].GetAsDouble(i), 1e-6);
  }
  EXPECT_EQ((*fused)->output_names(), std::vector<std::string>{"y_pred"});
  EXPECT_EQ((*fused)->batch_size(), 4);
}

TEST(ReferenceBackendTest, CompileInitializesVariablesFromTheirAttributes) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  ASSERT_TRUE(backend.Compile(Mlp(false), 2, store.get()).ok());
  auto kernel = store->Read("dense_2/kernel");
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  auto expected = InitializeVariable(Glorot(2), F32({512, 512}));
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(kernel->ToVector<float>(), expected->ToVector<float>());
}

// 3 -> 4 (relu) -> 2 (softmax), weights written through the store by hand.
TEST(ReferenceBackendTest, TinyMlpMatchesHandComputation) {
  Graph g("tiny");
  GraphBuilder b(&g, &Ops());
  ValueId x = b.Input("x", F32({Shape::kBatch, 3}));
  ValueId w1 = b.Variable("w1", F32({3, 4}), {});
  ValueId b1 = b.Variable("b1", F32({4}), {});
  ValueId w2 = b.Variable("w2", F32({4, 2}), {});
  ValueId b2 = b.Variable("b2", F32({2}), {});
  ValueId h = b.Op("relu", {b.Op("bias_add", {b.Op("matmul", {x, w1}), b1})});
  ValueId logits = b.Op("bias_add", {b.Op("matmul", {h, w2}), b2});
  ValueId probs = b.Op("softmax", {logits});
  ASSERT_TRUE(b.ok()) << b.status();
  g.AddOutput("logits", logits);
  g.AddOutput("probs", probs);

  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  // Written before Compile: Compile keeps them (types match) instead of
  // initializing.
  ASSERT_TRUE(store
                  ->Write("w1", Tensor::FromVector<float>({1, 0, -1, 0.5,  //
                                                           0, 1, 1, -1,    //
                                                           2, 1, 0, 1},
                                                          Shape{3, 4}))
                  .ok());
  ASSERT_TRUE(
      store->Write("b1", Tensor::FromVector<float>({0, -1, 0.5, 2}, Shape{4}))
          .ok());
  ASSERT_TRUE(store
                  ->Write("w2", Tensor::FromVector<float>({1, -1,   //
                                                           0.5, 0,  //
                                                           -1, 2,   //
                                                           0, 1},
                                                          Shape{4, 2}))
                  .ok());
  ASSERT_TRUE(
      store->Write("b2", Tensor::FromVector<float>({0.25, -0.5}, Shape{2}))
          .ok());
  auto exe = backend.Compile(g, 2, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();

  Tensor xs = Tensor::FromVector<float>({1, 2, -1,  //
                                         0, 1, 3},
                                        Shape{2, 3});
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({Feed{"x", &xs}}, out).ok());
  ASSERT_EQ(out.size(), 2u);
  // Row 0: x W1 = [1-2, 2-1, -1+2, 0.5-2-1] = [-1, 1, 1, -2.5]; + b1 = [-1,
  // 0, 1.5, -0.5];
  //        relu = [0, 0, 1.5, 0]; h W2 = [-1.5, 3]; + b2 = [-1.25, 2.5].
  // Row 1: x W1 = [6, 4, 1, 2]; + b1 = [6, 3, 1.5, 4] (all positive);
  //        h W2 = [6 + 1.5 - 1.5, -6 + 3 + 4] = [6, 1]; + b2 = [6.25, 0.5].
  EXPECT_EQ(out[0].ToVector<float>(),
            (std::vector<float>{-1.25, 2.5, 6.25, 0.5}));
  // softmax of two logits: p1 = 1 / (1 + e^(l0 - l1)).
  const double p01 = 1.0 / (1.0 + std::exp(-1.25 - 2.5));
  const double p11 = 1.0 / (1.0 + std::exp(6.25 - 0.5));
  const std::vector<float> probs_got = out[1].ToVector<float>();
  EXPECT_NEAR(probs_got[0], 1 - p01, 1e-6);
  EXPECT_NEAR(probs_got[1], p01, 1e-6);
  EXPECT_NEAR(probs_got[2], 1 - p11, 1e-6);
  EXPECT_NEAR(probs_got[3], p11, 1e-6);

  // Weights changed through the store are seen by the next run without
  // recompiling.
  ASSERT_TRUE(
      store->Write("b2", Tensor::FromVector<float>({1.25, 0.5}, Shape{2}))
          .ok());
  ASSERT_TRUE((*exe)->Run({Feed{"x", &xs}}, out).ok());
  EXPECT_EQ(out[0].ToVector<float>(),
            (std::vector<float>{-0.25, 3.5, 7.25, 1.5}));
}

Graph SingleInput(TensorType type) {
  Graph g("relu_only");
  GraphBuilder b(&g, &Ops());
  ValueId x = b.Input("x", type);
  ValueId y = b.Input("y", type);
  ValueId z = b.Op("relu", {b.Op("add", {x, y})});
  EXPECT_TRUE(b.ok()) << b.status();
  g.AddOutput("z", z);
  return g;
}

TEST(ReferenceBackendTest, FeedErrors) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  auto exe =
      backend.Compile(SingleInput(F32({Shape::kBatch, 784})), 64, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  Tensor good(DType::kF32, Shape{64, 784});
  Tensor small(DType::kF32, Shape{32, 784});
  Tensor f64(DType::kF64, Shape{64, 784});
  std::vector<Tensor> out;

  absl::Status s = (*exe)->Run({Feed{"x", &small}, Feed{"y", &good}}, out);
  EXPECT_EQ(s.message(),
            "feed 'x' has type f32[32,784], the graph expects f32[64,784]");
  s = (*exe)->Run({Feed{"x", &good}, Feed{"y", &f64}}, out);
  EXPECT_EQ(s.message(),
            "feed 'y' has type f64[64,784], the graph expects f32[64,784]");
  s = (*exe)->Run({Feed{"x", &good}}, out);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing feed 'y'"));
  s = (*exe)->Run({Feed{"x", &good}, Feed{"y", &good}, Feed{"labels", &good}},
                  out);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown feed 'labels'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("x, y"));
  s = (*exe)->Run({Feed{"x", &good}, Feed{"x", &good}, Feed{"y", &good}}, out);
  EXPECT_THAT(std::string(s.message()), HasSubstr("given twice"));
  s = (*exe)->Run({Feed{"x", nullptr}, Feed{"y", &good}}, out);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE((*exe)->Run({Feed{"y", &good}, Feed{"x", &good}}, out).ok());
  EXPECT_EQ(out[0].type(), F32({64, 784}));
}

TEST(ReferenceBackendTest, OutputsAreReusedWhenTheTypeFits) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  auto exe =
      backend.Compile(SingleInput(F32({Shape::kBatch, 2})), 2, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  Tensor x = Tensor::FromVector<float>({1, -2, 3, -4}, Shape{2, 2});
  Tensor y = Tensor::FromVector<float>({1, 1, 1, 1}, Shape{2, 2});
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({Feed{"x", &x}, Feed{"y", &y}}, out).ok());
  const void* buffer = out[0].raw_data();
  EXPECT_EQ(out[0].ToVector<float>(), (std::vector<float>{2, 0, 4, 0}));
  ASSERT_TRUE((*exe)->Run({Feed{"x", &y}, Feed{"y", &y}}, out).ok());
  EXPECT_EQ(out[0].raw_data(), buffer);
  EXPECT_EQ(out[0].ToVector<float>(), (std::vector<float>{2, 2, 2, 2}));
}

// w := w + 1; the output shows the value the run read.
Graph Counter() {
  Graph g("counter");
  GraphBuilder b(&g, &Ops());
  ValueId w = b.Variable("w", F32({3}),
                         {{"initializer", std::string("constant")},
                          {"value", std::vector<double>{1, 2, 3}}});
  ValueId next = b.Op("add", {w, b.Constant(F32({3}), {1.0})});
  EXPECT_TRUE(b.ok()) << b.status();
  g.AddOutput("w", w);
  g.AddUpdate("w", next);
  return g;
}

TEST(ReferenceBackendTest, UpdatesApplyAfterTheRun) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  auto exe = backend.Compile(Counter(), 1, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({}, out).ok());
  EXPECT_EQ(out[0].ToVector<float>(), (std::vector<float>{1, 2, 3}));
  ASSERT_TRUE((*exe)->Run({}, out).ok());
  EXPECT_EQ(out[0].ToVector<float>(), (std::vector<float>{2, 3, 4}));
  EXPECT_EQ(store->Read("w")->ToVector<float>(), (std::vector<float>{3, 4, 5}));
}

TEST(ReferenceBackendTest, SwappingUpdatesReadPreRunValues) {
  Graph g("swap");
  GraphBuilder b(&g, &Ops());
  ValueId a = b.Variable("a", F32({1}), {{"initializer", std::string("ones")}});
  ValueId c =
      b.Variable("b", F32({1}), {{"initializer", std::string("zeros")}});
  ASSERT_TRUE(b.ok());
  g.AddUpdate("a", c);
  g.AddUpdate("b", a);
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  auto exe = backend.Compile(g, 1, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  std::vector<Tensor> out;
  ASSERT_TRUE((*exe)->Run({}, out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(store->Read("a")->ToVector<float>(), std::vector<float>{0});
  EXPECT_EQ(store->Read("b")->ToVector<float>(), std::vector<float>{1});
}

TEST(ReferenceBackendTest, ExecutablesOnOneStoreShareVariables) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  auto train = backend.Compile(Counter(), 1, store.get());
  ASSERT_TRUE(train.ok()) << train.status();

  // A reader of the same variable (as predict reads what train wrote); its own
  // initializer is ignored because the store already holds `w`.
  Graph reader("reader");
  GraphBuilder b(&reader, &Ops());
  ValueId x = b.Input("x", F32({Shape::kBatch, 3}));
  ValueId w =
      b.Variable("w", F32({3}), {{"initializer", std::string("zeros")}});
  reader.AddOutput("y", b.Op("bias_add", {x, w}));
  ASSERT_TRUE(b.ok()) << b.status();
  auto read = backend.Compile(reader, 2, store.get());
  ASSERT_TRUE(read.ok()) << read.status();

  Tensor xs(DType::kF32, Shape{2, 3});
  std::vector<Tensor> out;
  ASSERT_TRUE((*read)->Run({Feed{"x", &xs}}, out).ok());
  EXPECT_EQ(out[0].ToVector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  ASSERT_TRUE((*train)->Run({}, out).ok());
  ASSERT_TRUE((*train)->Run({}, out).ok());
  ASSERT_TRUE((*read)->Run({Feed{"x", &xs}}, out).ok());
  EXPECT_EQ(out[0].ToVector<float>(), (std::vector<float>{3, 4, 5, 3, 4, 5}));

  // A graph that declares `w` with another type cannot use this store.
  Graph clash("clash");
  GraphBuilder c(&clash, &Ops());
  clash.AddOutput("w", c.Variable("w", F32({4}), {}));
  auto bad = backend.Compile(clash, 1, store.get());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(
      bad.status().message(),
      "variable 'w' in the store has type f32[3], the graph expects f32[4]");
}

TEST(ReferenceBackendTest, BindsTheBatchPerExecutable) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  Graph g = SingleInput(F32({Shape::kBatch, 5}));
  auto e3 = backend.Compile(g, 3, store.get());
  auto e7 = backend.Compile(g, 7, store.get());
  ASSERT_TRUE(e3.ok() && e7.ok());
  Tensor x3(DType::kF32, Shape{3, 5}), x7(DType::kF32, Shape{7, 5});
  std::vector<Tensor> out;
  ASSERT_TRUE((*e3)->Run({Feed{"x", &x3}, Feed{"y", &x3}}, out).ok());
  EXPECT_EQ(out[0].shape(), (Shape{3, 5}));
  ASSERT_TRUE((*e7)->Run({Feed{"x", &x7}, Feed{"y", &x7}}, out).ok());
  EXPECT_EQ(out[0].shape(), (Shape{7, 5}));
  EXPECT_FALSE(backend.Compile(g, 0, store.get()).ok());
}

TEST(ReferenceBackendTest, SupportsFusedDenseForDenseActivations) {
  ReferenceBackend backend;
  EXPECT_EQ(backend.name(), "reference");
  for (const char* act :
       {"linear", "relu", "sigmoid", "tanh", "gelu", "swish"}) {
    EXPECT_TRUE(backend.SupportsFusedDense(act)) << act;
  }
  EXPECT_FALSE(backend.SupportsFusedDense("softmax_but_wrong"));
}

// A registry with an op whose kernel always fails, so error plumbing is tested
// without depending on any real op's limits.
OpRegistry FailingRegistry() {
  OpRegistry registry;
  OpDef def;
  def.name = "explode";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.infer = [](absl::Span<const TensorType> in,
                 const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    return std::vector<TensorType>{in[0]};
  };
  def.reference = [](absl::Span<const Tensor* const>, const Attributes&,
                     absl::Span<Tensor* const>) {
    return absl::InvalidArgumentError("[explode] boom");
  };
  EXPECT_TRUE(registry.Register(def).ok());
  OpDef no_kernel = def;
  no_kernel.name = "abstract";
  no_kernel.reference = nullptr;
  EXPECT_TRUE(registry.Register(no_kernel).ok());
  return registry;
}

TEST(ReferenceBackendTest, KernelAndCompileErrorsNameTheLayer) {
  OpRegistry registry = FailingRegistry();
  ReferenceBackend backend(&registry);
  auto store = backend.CreateVariableStore();

  Graph g("bad");
  GraphBuilder b(&g, &registry);
  b.SetLayer("boom_layer");
  g.AddOutput("y", b.Op("explode", {b.Input("x", F32({Shape::kBatch, 2}))}));
  ASSERT_TRUE(b.ok()) << b.status();
  auto exe = backend.Compile(g, 2, store.get());
  ASSERT_TRUE(exe.ok()) << exe.status();
  Tensor x(DType::kF32, Shape{2, 2});
  std::vector<Tensor> out;
  absl::Status s = (*exe)->Run({Feed{"x", &x}}, out);
  EXPECT_EQ(s.message(), "layer 'boom_layer': [explode] boom");

  Graph abstract("abstract");
  GraphBuilder a(&abstract, &registry);
  abstract.AddOutput("y", a.Op("abstract", {a.Input("x", F32({2}))}));
  auto no_kernel = backend.Compile(abstract, 1, store.get());
  ASSERT_FALSE(no_kernel.ok());
  EXPECT_THAT(std::string(no_kernel.status().message()),
              HasSubstr("no reference kernel"));

  Graph unknown("unknown");
  GraphBuilder u(&unknown, &registry);
  ValueId in = u.Input("x", F32({2}));
  unknown.AddNode("frobnicate", {in}, {}, {F32({2})}, "mystery");
  auto bad_op = backend.Compile(unknown, 1, store.get());
  ASSERT_FALSE(bad_op.ok());
  EXPECT_EQ(
      bad_op.status().message(),
      "layer 'mystery': unknown op 'frobnicate' (not in the op registry)");
}

TEST(ReferenceBackendTest, CompileRejectsInconsistentGraphs) {
  ReferenceBackend backend;
  auto store = backend.CreateVariableStore();
  // A hand-built node whose recorded type the kernel would trust.
  Graph g("lying");
  GraphBuilder b(&g, &Ops());
  ValueId x = b.Input("x", F32({Shape::kBatch, 3}));
  const NodeId relu =
      g.AddNode("relu", {x}, {}, {F32({Shape::kBatch, 4})}, "act");
  g.AddOutput("y", g.node(relu).outputs[0]);
  auto exe = backend.Compile(g, 2, store.get());
  ASSERT_FALSE(exe.ok());
  EXPECT_THAT(std::string(exe.status().message()),
              HasSubstr("layer 'act': [relu] output 0"));

  // An update of a variable nobody declares.
  Graph u("orphan_update");
  GraphBuilder ub(&u, &Ops());
  u.AddUpdate("ghost", ub.Input("x", F32({1})));
  auto orphan = backend.Compile(u, 1, store.get());
  ASSERT_FALSE(orphan.ok());
  EXPECT_THAT(std::string(orphan.status().message()), HasSubstr("'ghost'"));

  // A failed compile leaves the store untouched.
  Graph init_bad("init_bad");
  GraphBuilder ib(&init_bad, &Ops());
  init_bad.AddOutput(
      "v", ib.Variable("v", F32({2}), {{"initializer", std::string("nope")}}));
  auto failed = backend.Compile(init_bad, 1, store.get());
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(std::string(failed.status().message()),
              HasSubstr("unknown initializer"));
  EXPECT_FALSE(store->Contains("v"));
}

}  // namespace
}  // namespace sequent
