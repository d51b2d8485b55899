#include "backends/cpu/graph_rewrites.h"

#include <algorithm>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/graph_builder.h"
#include "gtest/gtest.h"
#include "ops/registry.h"

namespace sequent::cpu {
namespace {

const TensorType kMatrix{DType::kF32, Shape{4, 3}};
const TensorType kScalar{DType::kF32, Shape{}};

std::vector<std::string> LiveOps(const Graph& g) {
  std::vector<std::string> ops;
  for (NodeId id : g.LiveNodes()) ops.push_back(g.node(id).op);
  return ops;
}

bool Has(const std::vector<std::string>& ops, absl::string_view op) {
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

// An L2 penalty as the training graph writes it, and its gradient added to a
// weight gradient as autodiff writes it.
TEST(RewriteWeightPenaltiesTest, PenaltyAndItsGradientBecomeOnePassEach) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId w = b.Input("w", kMatrix);
  const ValueId dw = b.Input("dw", kMatrix);
  const ValueId c = b.Input("c", kScalar);
  const ValueId sum = b.Op("reduce_sum", {b.Op("square", {w})});
  const ValueId two = b.ScalarConstant(2.0);
  const ValueId grad =
      b.Op("add", {b.Op("mul", {b.Op("mul", {w, two}), c}), dw});
  ASSERT_TRUE(b.status().ok()) << b.status();
  g.AddOutput("sum", sum);
  g.AddOutput("grad", grad);

  RewriteWeightPenalties(g);
  const Node& sum_node = g.producer(sum);
  EXPECT_EQ(sum_node.op, "cpu.sum_of_squares");
  EXPECT_EQ(sum_node.inputs, std::vector<ValueId>{w});
  const Node& grad_node = g.producer(grad);
  EXPECT_EQ(grad_node.op, "cpu.add_scaled");
  EXPECT_EQ(grad_node.inputs, (std::vector<ValueId>{dw, w, c, two}));
  const std::vector<std::string> ops = LiveOps(g);
  EXPECT_FALSE(Has(ops, "square"));
  EXPECT_FALSE(Has(ops, "mul"));
}

// A value read elsewhere too must still be computed: the rewrite stops at it.
TEST(RewriteWeightPenaltiesTest, KeepsValuesWithOtherUses) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId w = b.Input("w", kMatrix);
  const ValueId dw = b.Input("dw", kMatrix);
  const ValueId c = b.Input("c", kScalar);
  const ValueId squares = b.Op("square", {w});
  const ValueId sum = b.Op("reduce_sum", {squares});
  const ValueId doubled = b.Op("mul", {w, b.ScalarConstant(2.0)});
  const ValueId grad = b.Op("add", {dw, b.Op("mul", {c, doubled})});
  ASSERT_TRUE(b.status().ok()) << b.status();
  g.AddOutput("squares", squares);
  g.AddOutput("doubled", doubled);
  g.AddOutput("sum", sum);
  g.AddOutput("grad", grad);

  RewriteWeightPenalties(g);
  EXPECT_EQ(g.producer(sum).op, "reduce_sum");
  EXPECT_EQ(g.producer(squares).op, "square");
  EXPECT_EQ(g.producer(doubled).op, "mul");
  const Node& grad_node = g.producer(grad);
  EXPECT_EQ(grad_node.op, "cpu.add_scaled");
  EXPECT_EQ(grad_node.inputs, (std::vector<ValueId>{dw, doubled, c}));
}

// Only same-shaped operands: a broadcasting add, or a product of two
// matrices, stays as it is.
TEST(RewriteWeightPenaltiesTest, LeavesBroadcastsAndMatrixProductsAlone) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId w = b.Input("w", kMatrix);
  const ValueId row = b.Input("row", {DType::kF32, Shape{3}});
  const ValueId c = b.Input("c", kScalar);
  const ValueId broadcast = b.Op("add", {b.Op("mul", {row, c}), w});
  const ValueId product = b.Op("add", {b.Op("mul", {w, w}), w});
  ASSERT_TRUE(b.status().ok()) << b.status();
  g.AddOutput("broadcast", broadcast);
  g.AddOutput("product", product);

  RewriteWeightPenalties(g);
  EXPECT_EQ(g.producer(broadcast).op, "add");
  EXPECT_EQ(g.producer(product).op, "add");
}

const TensorType kImages{DType::kF32, Shape{2, 6, 6, 3}};
const TensorType kFilter{DType::kF32, Shape{3, 3, 3, 4}};
const TensorType kChannels{DType::kF32, Shape{4}};

// Conv2D(4, relu) as the model writes it: conv2d, bias_add, relu.
TEST(RewriteConvBiasActivationTest, ConvBiasReluBecomeOneConvolution) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId x = b.Input("x", kImages);
  const ValueId k = b.Input("k", kFilter);
  const ValueId bias = b.Input("b", kChannels);
  const ValueId y =
      b.Op("relu", {b.Op("bias_add", {b.Op("conv2d", {x, k}), bias})});
  ASSERT_TRUE(b.status().ok()) << b.status();
  g.AddOutput("y", y);

  RewriteConvBiasActivation(g);
  const Node& conv = g.producer(y);
  EXPECT_EQ(conv.op, "cpu.conv2d_bias_activation");
  EXPECT_EQ(conv.inputs, (std::vector<ValueId>{x, k, bias}));
  EXPECT_EQ(StringAttrOr(conv.attrs, "activation", ""), "relu");
  const std::vector<std::string> ops = LiveOps(g);
  EXPECT_FALSE(Has(ops, "conv2d"));
  EXPECT_FALSE(Has(ops, "bias_add"));
  EXPECT_FALSE(Has(ops, "relu"));
}

// Without an activation the bias alone goes in; a pre-activation value read
// elsewhere stays, with the relu after it.
TEST(RewriteConvBiasActivationTest, StopsWhereAValueHasOtherUses) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId x = b.Input("x", kImages);
  const ValueId k = b.Input("k", kFilter);
  const ValueId bias = b.Input("b", kChannels);
  const ValueId z = b.Op("bias_add", {b.Op("conv2d", {x, k}), bias});
  const ValueId y = b.Op("relu", {z});
  ASSERT_TRUE(b.status().ok()) << b.status();
  g.AddOutput("z", z);
  g.AddOutput("y", y);

  RewriteConvBiasActivation(g);
  EXPECT_EQ(g.producer(z).op, "cpu.conv2d_bias_activation");
  EXPECT_EQ(StringAttrOr(g.producer(z).attrs, "activation", ""), "linear");
  EXPECT_EQ(g.producer(y).op, "relu");
  EXPECT_FALSE(Has(LiveOps(g), "bias_add"));
}

const TensorType kPooled{DType::kF32, Shape{2, 3, 3, 3}};

// relu, max_pool2d and their gradients as autodiff writes them.
TEST(RewriteMaxPoolActivationGradTest, ActivationGradientMovesToThePooled) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId y = b.Op("relu", {b.Input("z", kImages)});
  const ValueId p = b.Op("max_pool2d", {y});
  const ValueId d = b.Input("d", kPooled);
  const ValueId spread = b.Op("max_pool2d_grad", {y, p, d});
  const ValueId dz = b.Op("activation_grad", {spread, y},
                          {{"activation", std::string("relu")}});
  ASSERT_TRUE(b.status().ok()) << b.status();
  g.AddOutput("dz", dz);

  RewriteMaxPoolActivationGrad(g);
  const Node& last = g.producer(dz);
  EXPECT_EQ(last.op, "max_pool2d_grad");
  ASSERT_EQ(last.inputs.size(), 3u);
  EXPECT_EQ(last.inputs[0], y);
  EXPECT_EQ(last.inputs[1], p);
  const ValueId scaled = last.inputs[2];
  const Node& first = g.producer(scaled);
  EXPECT_EQ(first.op, "activation_grad");
  EXPECT_EQ(first.inputs, (std::vector<ValueId>{d, p}));
  EXPECT_EQ(StringAttrOr(first.attrs, "activation", ""), "relu");
  EXPECT_EQ(g.type(scaled), kPooled);
  EXPECT_EQ(g.type(dz), kImages);
  EXPECT_TRUE(g.TopologicalOrder().ok());
}

// The pool gradient read elsewhere, or an activation gradient over another
// value than the pool's input: nothing moves.
TEST(RewriteMaxPoolActivationGradTest, StopsWhereItWouldChangeAResult) {
  Graph g;
  GraphBuilder b(&g, &ops::DefaultRegistry());
  const ValueId y = b.Op("relu", {b.Input("z", kImages)});
  const ValueId other = b.Input("other", kImages);
  const ValueId p = b.Op("max_pool2d", {y});
  const ValueId d = b.Input("d", kPooled);
  const ValueId shared = b.Op("max_pool2d_grad", {y, p, d});
  const Attributes relu = {{"activation", std::string("relu")}};
  const ValueId dz_shared = b.Op("activation_grad", {shared, y}, relu);
  const ValueId spread = b.Op("max_pool2d_grad", {y, p, d});
  const ValueId dz_other = b.Op("activation_grad", {spread, other}, relu);
  ASSERT_TRUE(b.status().ok()) << b.status();
  g.AddOutput("shared", shared);
  g.AddOutput("dz_shared", dz_shared);
  g.AddOutput("dz_other", dz_other);

  RewriteMaxPoolActivationGrad(g);
  EXPECT_EQ(g.producer(dz_shared).op, "activation_grad");
  EXPECT_EQ(g.producer(shared).op, "max_pool2d_grad");
  EXPECT_EQ(g.producer(dz_other).op, "activation_grad");
  EXPECT_EQ(g.producer(spread).op, "max_pool2d_grad");
  EXPECT_EQ(g.type(spread), kImages);
}

}  // namespace
}  // namespace sequent::cpu
