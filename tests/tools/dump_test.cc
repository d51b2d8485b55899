// Graph dumps from code: GraphToJson's fields, Sequential::dump_graph in each
// format, its errors, and SEQUENT_DUMP_DIR.
#include "frontend/dump.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "core/graph_builder.h"
#include "core/memory_planner.h"
#include "examples/models.h"
#include "frontend/sequent.h"
#include "gtest/gtest.h"
#include "ops/registry.h"

namespace sequent {
namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Graph TinyGraph() {
  Graph g("tiny");
  const TensorType x_type{DType::kF32, Shape{Shape::kBatch, 4}};
  const NodeId x = g.AddNode(std::string(kInputOp), {},
                             {{"name", std::string("x")}}, {x_type});
  const NodeId relu =
      g.AddNode("relu", {g.node(x).outputs[0]},
                {{"alpha", 0.5}, {"axes", std::vector<int64_t>{1, 2}}},
                {x_type}, "dense \"1\"");
  g.AddOutput("y", g.node(relu).outputs[0]);
  return g;
}

TEST(GraphToJson, NodesEdgesAttributesAndTypes) {
  const std::string json = GraphToJson(TinyGraph());
  EXPECT_NE(json.find("\"name\": \"tiny\""), std::string::npos) << json;
  EXPECT_NE(
      json.find("{\"id\": 0, \"op\": \"input\", \"layer\": \"\", "
                "\"attributes\": {\"name\": \"x\"}, \"inputs\": [], "
                "\"outputs\": [{\"value\": \"%0\", \"type\": \"f32[N,4]\", "
                "\"dtype\": \"f32\", \"shape\": [\"N\", 4]}]}"),
      std::string::npos)
      << json;
  // Layer names are escaped; float and list attributes keep their types.
  EXPECT_NE(json.find("\"layer\": \"dense \\\"1\\\"\", \"attributes\": "
                      "{\"alpha\": 0.5, \"axes\": [1, 2]}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("{\"from\": 0, \"to\": 1, \"value\": \"%0\", \"type\": "
                      "\"f32[N,4]\"}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"outputs\": [{\"name\": \"y\", \"from\": 1, \"value\": "
                      "\"%1\"}]"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find("\"memory\""), std::string::npos);
}

TEST(GraphToJson, MemoryPlanPlacesEveryOutput) {
  const Graph bound = BindBatch(TinyGraph(), 8);
  absl::StatusOr<MemoryPlan> plan = PlanMemory(bound, ops::DefaultRegistry());
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::string json = GraphToJson(bound, &*plan);
  EXPECT_NE(json.find("\"memory\": {\"arena_bytes\": "), std::string::npos);
  // f32[8,4] = 128 bytes, an input live from step 0.
  EXPECT_NE(json.find("\"type\": \"f32[8,4]\", \"dtype\": \"f32\", \"shape\": "
                      "[8, 4], \"memory\": {\"placement\": \"arena\", "
                      "\"offset\": 0, \"bytes\": 128, \"first_step\": 0"),
            std::string::npos)
      << json;
}

TEST(DumpGraph, ModelDumpsEveryFormat) {
  Sequential model = examples::CompiledExample("fashion_mnist_mlp");
  const std::string dir = TempDir();
  for (const std::string& format : GraphFormats()) {
    const std::string path = dir + "/optimized." + format;
    model.dump_graph(GraphStage::kOptimized, format, path);
    const std::string contents = ReadAll(path);
    ASSERT_FALSE(contents.empty()) << format;
    if (format == "text") {
      EXPECT_EQ(contents.rfind("graph \"", 0), 0u);
    } else if (format == "dot") {
      EXPECT_EQ(contents.rfind("digraph ", 0), 0u);
    } else if (format == "png") {
      EXPECT_EQ(contents.substr(1, 3), "PNG");
    }
    if (format == "svg" || format == "html") {
      EXPECT_NE(contents.find("matmul + bias_add + relu"), std::string::npos)
          << format;
    }
  }
}

TEST(DumpGraph, ErrorsNameTheProblem) {
  Sequential model = examples::FashionMnistMlp();
  try {
    model.dump_graph(GraphStage::kBuilt, "pdf", TempDir() + "/x.pdf");
    FAIL() << "no error for format pdf";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown format 'pdf'"),
              std::string::npos)
        << e.what();
  }
  try {
    model.dump_graph(GraphStage::kTrain, "text", TempDir() + "/x.txt");
    FAIL() << "no error for an uncompiled model's train graph";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("compile"), std::string::npos)
        << e.what();
  }
}

TEST(DumpStages, CompileWritesEveryStageToTheDumpDir) {
  const std::string dir = TempDir() + "/dumps";
  ASSERT_EQ(setenv("SEQUENT_DUMP_DIR", dir.c_str(), 1), 0);
  Sequential model = examples::CompiledExample("fashion_mnist_cnn");
  unsetenv("SEQUENT_DUMP_DIR");
  for (const char* stage : {"built", "optimized", "train", "eval", "predict"}) {
    const std::string base = dir + "/" + model.name() + "." + stage;
    EXPECT_EQ(ReadAll(base + ".txt").rfind("graph \"", 0), 0u) << base;
    EXPECT_EQ(ReadAll(base + ".dot").rfind("digraph ", 0), 0u) << base;
  }
  EXPECT_NE(ReadAll(dir + "/" + model.name() + ".optimized.txt").find("conv2d"),
            std::string::npos);
}

}  // namespace
}  // namespace sequent
