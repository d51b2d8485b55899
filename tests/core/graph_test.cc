#include "core/graph.h"

#include <gtest/gtest.h>

#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/op_registry.h"

namespace sequent {
namespace {

// A registry with one toy op, so core is tested without ops/.
OpRegistry ToyRegistry() {
  OpRegistry registry;
  OpDef add;
  add.name = "toy_add";
  add.inputs = {"a", "b"};
  add.outputs = {"out"};
  add.attrs = {{"scale", AttrValue(1.0)}};
  add.infer = [](absl::Span<const TensorType> in,
                 const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    if (in[0] != in[1]) {
      return absl::InvalidArgumentError("operands differ: " + in[0].ToString() +
                                        " vs " + in[1].ToString());
    }
    return std::vector<TensorType>{in[0]};
  };
  EXPECT_TRUE(registry.Register(add).ok());
  return registry;
}

TEST(GraphTest, ConstantValueBroadcastsOneValueOrTakesOnePerElement) {
  const TensorType type{DType::kF32, Shape{2, 2}};
  Node one;
  one.op = std::string(kConstantOp);
  one.attrs["value"] = std::vector<double>{1.5};
  auto broadcast = ConstantValue(one, type);
  ASSERT_TRUE(broadcast.ok()) << broadcast.status();
  EXPECT_EQ(broadcast->ToVector<float>(),
            (std::vector<float>{1.5f, 1.5f, 1.5f, 1.5f}));

  Node each = one;
  each.attrs["value"] = std::vector<double>{1, 2, 3, 4};
  auto full = ConstantValue(each, type);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->ToVector<float>(), (std::vector<float>{1, 2, 3, 4}));

  Node bad = one;
  bad.attrs["value"] = std::vector<double>{1, 2, 3};
  auto wrong = ConstantValue(bad, type);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(),
            "constant of type f32[2,2] has 3 values; give 1 or 4");
}

TEST(GraphTest, BuildTopoOrderAndUses) {
  OpRegistry registry = ToyRegistry();
  Graph g("toy");
  GraphBuilder b(&g, &registry);
  TensorType t{DType::kF32, Shape{Shape::kBatch, 4}};
  ValueId x = b.Input("x", t);
  ValueId y = b.Op("toy_add", {x, x});
  ValueId z = b.Op("toy_add", {y, x}, {{"scale", AttrValue(int64_t{2})}});
  ASSERT_TRUE(b.ok()) << b.status();
  g.AddOutput("z", z);
  EXPECT_EQ(g.NumUses(x), 3);
  EXPECT_EQ(g.NumUses(z), 1);
  EXPECT_EQ(FloatAttrOr(g.producer(z).attrs, "scale", 0), 2.0);
  EXPECT_TRUE(std::holds_alternative<double>(g.producer(z).attrs.at("scale")));
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(order->size(), 3u);
  EXPECT_NE(g.FindInput("x"), kNoNode);
}

TEST(GraphTest, BuilderErrorsNameLayerAndShapes) {
  OpRegistry registry = ToyRegistry();
  Graph g;
  GraphBuilder b(&g, &registry);
  ValueId x = b.Input("x", {DType::kF32, Shape{2, 3}});
  ValueId w = b.Input("w", {DType::kF32, Shape{3, 2}});
  b.SetLayer("dense_1");
  ValueId bad = b.Op("toy_add", {x, w});
  EXPECT_EQ(bad, kNoValue);
  EXPECT_EQ(b.Op("toy_add", {x, x}), kNoValue);  // Sticky.
  EXPECT_EQ(b.status().message(),
            "layer 'dense_1': [toy_add] operands differ: f32[2,3] vs f32[3,2]");
}

TEST(GraphTest, SchemaChecksArityAndAttributes) {
  OpRegistry registry = ToyRegistry();
  Attributes attrs{{"bogus", AttrValue(true)}};
  TensorType t{DType::kF32, Shape{2}};
  std::vector<TensorType> two{t, t};
  auto r = registry.InferTypes("toy_add", two, attrs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "[toy_add] has no attribute 'bogus' (valid: scale)");
  Attributes none;
  std::vector<TensorType> one{t};
  EXPECT_FALSE(registry.InferTypes("toy_add", one, none).ok());
  EXPECT_FALSE(registry.InferTypes("nope", one, none).ok());
}

TEST(GraphTest, CycleIsAnErrorAndReplaceAllUses) {
  OpRegistry registry = ToyRegistry();
  Graph g;
  GraphBuilder b(&g, &registry);
  TensorType t{DType::kF32, Shape{2}};
  ValueId x = b.Input("x", t);
  ValueId y = b.Op("toy_add", {x, x});
  ValueId z = b.Op("toy_add", {y, y});
  g.AddOutput("z", z);
  g.ReplaceAllUsesWith(z, y);
  EXPECT_EQ(g.outputs()[0].value, y);
  // Make y read z: a cycle.
  g.mutable_node(g.value(y).producer).inputs[0] = z;
  g.ReplaceAllUsesWith(y, y);
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_NE(order.status().message().find("cycle"), std::string::npos);
}

TEST(GraphTest, CompactDropsRemovedNodes) {
  OpRegistry registry = ToyRegistry();
  Graph g;
  GraphBuilder b(&g, &registry);
  TensorType t{DType::kF32, Shape{2}};
  ValueId x = b.Input("x", t);
  ValueId dead = b.Op("toy_add", {x, x});
  ValueId live = b.Op("toy_add", {x, x});
  g.AddOutput("out", live);
  g.RemoveNode(g.value(dead).producer);
  ASSERT_TRUE(g.Compact().ok());
  EXPECT_EQ(g.num_nodes(), 2);
  EXPECT_EQ(g.outputs()[0].value, 1);
  Graph copy = g;
  EXPECT_EQ(copy.num_nodes(), 2);
}

}  // namespace
}  // namespace sequent
