#include "core/dot.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/text_ir.h"

namespace sequent {
namespace {

constexpr char kDotBinary[] = "/usr/bin/dot";

// A training-style graph: phases as layer prefixes, a fused dense, a fused_ op,
// a multi-output node, outputs and updates, and names that need escaping.
constexpr char kTrainText[] = R"(graph "train \"mlp\"" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = input() {name = "labels"} : i32[N]
  %2 = variable() {initializer = "glorot_uniform", name = "dense/kernel", seed = 1, trainable = true} : f32[784,512]
  %3 = variable() {initializer = "zeros", name = "dense/bias", trainable = true} : f32[512]
  %4 = constant() {value = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]} : f32[12]
  %5 = dense(%0, %2, %3) {activation = "relu"} : f32[N,512] loc("forward/dense_1")
  %6 = dense(%5, %2) {activation = "linear"} : f32[N,512] loc("dense_2")
  %7 = fused_conv2d_relu(%6) {fused_ops = "conv2d,relu"} : f32[N,512] loc("conv \\ \"odd\"")
  %8 = fused_scale_shift(%7) : f32[N,512] loc("forward")
  %9 = sparse_categorical_crossentropy(%8, %1) {from_logits = true} : f32[] loc("loss")
  %10, %11 = dense_grad(%9, %5) : f32[784,512], f32[512] loc("backward/dense_1")
  %12 = sgd_update(%3, %11) {learning_rate = 0.01} : f32[512] loc("optimizer/dense/bias")
  %13 = accuracy(%8, %1) : f32[] loc("metrics/accuracy")
  %14 = weird(%4) {note = "line\nbreak \x01 \xff"} : f32[12] loc("caf\xc3\xa9")
  output "loss" = %9
  output "accuracy" = %13
  update "dense/bias" = %12
}
)";

Graph TrainGraph() {
  auto g = ParseGraph(kTrainText);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *std::move(g) : Graph();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The statement that declares node `n<id>` (its line).
std::string NodeLine(const std::string& dot, int id) {
  const std::string key = "n" + std::to_string(id) + " [label=";
  const size_t at = dot.find(key);
  if (at == std::string::npos) return "";
  return dot.substr(at, dot.find('\n', at) - at);
}

TEST(DotTest, LabelsStylesAndSinks) {
  const std::string dot = ExportDot(TrainGraph());
  EXPECT_EQ(dot.rfind("digraph \"train \\\"mlp\\\"\" {\n", 0), 0u) << dot;
  // Fused dense: filled bold box that names what it fused.
  const std::string fused = NodeLine(dot, 5);
  EXPECT_TRUE(Contains(fused, "label=\"dense\\n(matmul + bias_add + relu)\""))
      << fused;
  EXPECT_TRUE(Contains(fused, "shape=box")) << fused;
  EXPECT_TRUE(Contains(fused, "style=\"filled,bold\"")) << fused;
  // A linear dense is not drawn fused, and shows its attributes.
  const std::string linear = NodeLine(dot, 6);
  EXPECT_FALSE(Contains(linear, "bold")) << linear;
  EXPECT_TRUE(Contains(linear, "activation = \\\"linear\\\"")) << linear;
  EXPECT_TRUE(Contains(NodeLine(dot, 7), "(conv2d + relu)\""))
      << NodeLine(dot, 7);
  EXPECT_TRUE(Contains(NodeLine(dot, 7), "filled,bold")) << NodeLine(dot, 7);
  EXPECT_TRUE(Contains(NodeLine(dot, 8), "(fused: scale_shift)\""))
      << NodeLine(dot, 8);
  // Structural nodes are styled apart from ops and from each other.
  EXPECT_TRUE(Contains(NodeLine(dot, 0), "label=\"input\\nx\", shape=invhouse"))
      << NodeLine(dot, 0);
  EXPECT_TRUE(
      Contains(NodeLine(dot, 2), "variable\\ndense/kernel\\nf32[784,512]"));
  EXPECT_TRUE(Contains(NodeLine(dot, 2), "shape=cylinder"));
  EXPECT_TRUE(Contains(NodeLine(dot, 4), "shape=note"));
  EXPECT_FALSE(Contains(NodeLine(dot, 4), "0.1"))
      << "constant payloads are not printed";
  EXPECT_TRUE(Contains(NodeLine(dot, 9), "shape=box, style=rounded"));
  // Edges carry value types; multi-output values say which output.
  EXPECT_TRUE(Contains(dot, "n0 -> n5 [label=\"f32[N,784]\"];")) << dot;
  EXPECT_TRUE(Contains(dot, "n10 -> n11 [label=\"#1 f32[512]\"];")) << dot;
  // Outputs and updates are sink nodes of their own.
  EXPECT_TRUE(
      Contains(dot, "out0 [label=\"output\\nloss\", shape=doubleoctagon"))
      << dot;
  EXPECT_TRUE(Contains(dot, "n9 -> out0 [label=\"f32[]\"];")) << dot;
  EXPECT_TRUE(Contains(dot, "upd0 [label=\"update\\ndense/bias\", shape=house"))
      << dot;
  EXPECT_TRUE(Contains(dot, "n11 -> upd0 [label=\"f32[512]\", style=dashed];"))
      << dot;
  // Escaping: quotes and backslashes in layer names, control bytes and invalid
  // UTF-8 replaced, valid UTF-8 kept.
  EXPECT_TRUE(Contains(dot, "label=\"conv \\\\ \\\"odd\\\"\";")) << dot;
  EXPECT_TRUE(
      Contains(NodeLine(dot, 13), "note = \\\"line\\\\nbreak \\\\x01 ?\\\""))
      << NodeLine(dot, 13);
  EXPECT_TRUE(Contains(dot, "label=\"caf\xc3\xa9\";")) << dot;
}

TEST(DotTest, ClustersByPhaseThenLayer) {
  const std::string dot = ExportDot(TrainGraph());
  for (const char* cluster : {"subgraph \"cluster_forward\" {",
                              "subgraph \"cluster_forward/dense_1\" {",
                              "subgraph \"cluster_backward\" {",
                              "subgraph \"cluster_backward/dense_1\" {",
                              "subgraph \"cluster_optimizer/dense/bias\" {",
                              "subgraph \"cluster_loss\" {",
                              "subgraph \"cluster_metrics/accuracy\" {",
                              "subgraph \"cluster_dense_2\" {"}) {
    EXPECT_TRUE(Contains(dot, cluster)) << cluster << "\n" << dot;
  }
  // The fused dense sits inside forward/dense_1, which sits inside forward.
  const size_t forward = dot.find("subgraph \"cluster_forward\" {");
  const size_t inner = dot.find("subgraph \"cluster_forward/dense_1\" {");
  const size_t node = dot.find("n5 [label=");
  EXPECT_LT(forward, inner);
  EXPECT_LT(inner, node);
  // No cluster closes between the outer cluster's start and the node.
  EXPECT_EQ(dot.substr(forward, node - forward).find("\n  }\n"),
            std::string::npos)
      << dot;
  // Nodes without a layer stay at the top level, before any cluster.
  EXPECT_LT(dot.find("n0 [label="), dot.find("subgraph"));

  DotOptions flat;
  flat.cluster_layers = false;
  EXPECT_FALSE(Contains(ExportDot(TrainGraph(), flat), "subgraph"));
}

TEST(DotTest, OptionsTurnOffAttributesAndTypes) {
  DotOptions options;
  options.show_attributes = false;
  options.show_types = false;
  const std::string dot = ExportDot(TrainGraph(), options);
  EXPECT_FALSE(Contains(dot, "learning_rate")) << dot;
  EXPECT_FALSE(Contains(dot, "f32[N,784]")) << dot;
  EXPECT_TRUE(Contains(dot, "n0 -> n5;")) << dot;
  EXPECT_TRUE(Contains(dot, "n11 -> upd0 [style=dashed];")) << dot;
  // The fused label survives: it is what the node is, not an attribute listing.
  EXPECT_TRUE(Contains(NodeLine(dot, 5), "(matmul + bias_add + relu)"));
  // Long attribute values are shortened.
  DotOptions shortened;
  shortened.max_attribute_chars = 10;
  EXPECT_TRUE(Contains(ExportDot(TrainGraph(), shortened),
                       "initializer = \\\"glorot...\\n"));
}

TEST(DotTest, RemovedNodesAreSkipped) {
  Graph g = TrainGraph();
  g.RemoveNode(12);
  g.mutable_outputs().pop_back();
  const std::string dot = ExportDot(g);
  EXPECT_FALSE(Contains(dot, "n12")) << dot;
  EXPECT_FALSE(Contains(dot, "accuracy(")) << dot;
}

// Runs Graphviz on `dot`; returns its exit status and fills `messages` with its
// stderr.
int RunGraphviz(const std::string& dot, std::string* messages) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : "/tmp";
  static int counter = 0;
  const std::string base = dir + "/dot_test_" + std::to_string(counter++);
  {
    std::ofstream f(base + ".dot", std::ios::binary);
    f << dot;
  }
  const std::string cmd = std::string(kDotBinary) + " -Tsvg " + base +
                          ".dot -o " + base + ".svg 2> " + base + ".err";
  const int rc = std::system(cmd.c_str());
  std::ifstream err(base + ".err");
  std::stringstream ss;
  ss << err.rdbuf();
  *messages = ss.str();
  return rc;
}

TEST(DotTest, GraphvizAcceptsTheOutput) {
  if (std::FILE* f = std::fopen(kDotBinary, "r")) {
    std::fclose(f);
  } else {
    GTEST_SKIP() << kDotBinary << " not installed";
  }
  Graph empty("");
  DotOptions bare;
  bare.show_attributes = false;
  bare.show_types = false;
  bare.cluster_layers = false;
  for (const auto& [graph, options] :
       std::vector<std::pair<Graph, DotOptions>>{{TrainGraph(), DotOptions{}},
                                                 {TrainGraph(), bare},
                                                 {empty, DotOptions{}}}) {
    const std::string dot = ExportDot(graph, options);
    std::string messages;
    EXPECT_EQ(RunGraphviz(dot, &messages), 0) << messages << "\n" << dot;
    EXPECT_EQ(messages, "") << dot;
  }
}

}  // namespace
}  // namespace sequent
