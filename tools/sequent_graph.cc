// sequent-graph: prints or draws a model's IR at any stage, the memory plan of
// its training step, and the forward graph after each optimization pass.
//
//   sequent-graph --example=fashion_mnist_mlp --stage=optimized
//   sequent-graph --example=fashion_mnist_cnn --stage=train --format=svg
//   --out=cnn.svg sequent-graph --model=mlp.sequent --stage=plan
//   --batch_size=64 sequent-graph --example=fashion_mnist_mlp --print_after_all
//   sequent-graph --example=fashion_mnist_mlp --stage=train --html=mlp.html
//
// Errors are one line on stderr, "sequent-graph: error: ...", and exit code 2.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/dot.h"
#include "core/memory_planner.h"
#include "core/passes/pipeline.h"
#include "core/text_ir.h"
#include "examples/models.h"
#include "frontend/dump.h"
#include "frontend/sequent.h"
#include "ops/registry.h"

ABSL_FLAG(std::string, model, "",
          "a model saved with Sequential::save (one of --model, --example)");
ABSL_FLAG(std::string, example, "",
          "an example's model: fashion_mnist_mlp, fashion_mnist_cnn, "
          "pytorch_style_mlp, keras_regression");
ABSL_FLAG(int64_t, batch_size, 32, "the batch size --stage=plan binds");
ABSL_FLAG(std::string, stage, "optimized",
          "built, optimized, train, eval, predict, or plan (the memory plan of "
          "the train graph at --batch_size)");
ABSL_FLAG(std::string, format, "text",
          "text, dot, json, svg, png or html (svg, png and html need "
          "Graphviz's dot)");
ABSL_FLAG(std::string, out, "",
          "the file to write; stdout when empty (not for png)");
ABSL_FLAG(std::string, html, "",
          "also write the stage as one interactive HTML page to this file");
ABSL_FLAG(std::vector<std::string>, print_after, {},
          "comma-separated forward passes to print the graph after (text or "
          "dot)");
ABSL_FLAG(bool, print_after_all, false,
          "print the graph after every forward pass (text or dot)");

namespace sequent {
namespace {

// Thrown by the checks below and caught once in main.
struct UsageError {
  std::string message;
};

void Check(const absl::Status& status) {
  if (!status.ok()) throw UsageError{std::string(status.message())};
}
template <typename T>
T Check(absl::StatusOr<T> value) {
  Check(value.status());
  return *std::move(value);
}

// `bazel run` starts the tool in its runfiles tree; relative paths mean the
// directory the user ran it from.
std::string UserPath(const std::string& path) {
  const char* dir = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path == "-" || path[0] == '/' || dir == nullptr ||
      *dir == '\0') {
    return path;
  }
  return absl::StrCat(dir, "/", path);
}

const std::vector<std::string>& StageNames() {
  static const auto* names = new std::vector<std::string>{
      "built", "optimized", "train", "eval", "predict", "plan"};
  return *names;
}

GraphStage ToGraphStage(const std::string& stage) {
  if (stage == "built") return GraphStage::kBuilt;
  if (stage == "optimized") return GraphStage::kOptimized;
  if (stage == "eval") return GraphStage::kEval;
  if (stage == "predict") return GraphStage::kPredict;
  return GraphStage::kTrain;  // "train", and "plan" plans the train graph.
}

bool Contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// load_model restores the model compiled as it was saved, so every stage is
// there.
Sequential LoadSavedModel(const std::string& path) {
  Sequential model = load_model(path);
  if (!model.compiled()) {
    throw UsageError{absl::StrCat(path, ": the saved model is not compiled")};
  }
  return model;
}

Sequential LoadInput(const std::string& model_path,
                     const std::string& example) {
  if (model_path.empty() == example.empty()) {
    throw UsageError{"give exactly one of --model=FILE and --example=NAME"};
  }
  if (!example.empty()) {
    if (!Contains(examples::ExampleNames(), example)) {
      throw UsageError{absl::StrCat(
          "unknown example '", example,
          "'; examples: ", absl::StrJoin(examples::ExampleNames(), ", "))};
    }
    return examples::CompiledExample(example);
  }
  struct stat info;
  if (stat(model_path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    throw UsageError{absl::StrCat("--model: no such file: ", model_path)};
  }
  return LoadSavedModel(model_path);
}

// The forward pipeline as Sequential::compile runs it (same fusion policy),
// rerun on the built graph with a print hook.
std::string PrintAfterPasses(const Sequential& model,
                             const std::vector<std::string>& passes,
                             const std::string& format) {
  const OpRegistry& registry = ops::DefaultRegistry();
  const Backend& backend = model.backend();
  FusionPolicy policy{[&backend](absl::string_view activation) {
    // Mirrors compile: fused activations must have output-based gradients.
    const bool from_output = activation == "linear" || activation == "relu" ||
                             activation == "sigmoid" || activation == "tanh";
    return backend.SupportsFusedDense(activation) && from_output;
  }};
  PassPipeline pipeline = ForwardPipeline(registry, policy);
  const std::vector<std::string> known = pipeline.PassNames();
  for (const std::string& p : passes) {
    if (!Contains(known, p)) {
      throw UsageError{absl::StrCat("--print_after: unknown pass '", p,
                                    "'; passes: ", absl::StrJoin(known, ", "))};
    }
  }
  std::string out;
  pipeline.SetPrintAfter(
      [&](absl::string_view pass, const Graph& graph, bool changed) {
        absl::StrAppend(&out, "// ---- after ", std::string(pass), " (",
                        changed ? "changed" : "unchanged", ") ----\n",
                        format == "dot" ? ExportDot(graph) : PrintGraph(graph));
      },
      passes);
  Graph graph = model.graph(GraphStage::kBuilt);
  Check(pipeline.Run(graph).status());
  return out;
}

// Abseil reports unknown flags and bad values itself, with exit code 1; they
// are checked here first so that every usage error is one line and exit code 2.
void CheckFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) {
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name(arg.substr(0, eq));
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* positive =
          absl::FindCommandLineFlag(name.substr(2));
      if (positive != nullptr && positive->IsOfType<bool>()) continue;
    }
    // The help flags Abseil's parser handles without registering them.
    static constexpr absl::string_view kBuiltins[] = {
        "help",     "helpfull",  "helpshort",  "helppackage",
        "helpon",   "helpmatch", "version",    "only_check_args",
        "flagfile", "fromenv",   "tryfromenv", "undefok"};
    if (flag == nullptr && std::find(std::begin(kBuiltins), std::end(kBuiltins),
                                     name) != std::end(kBuiltins)) {
      continue;
    }
    if (flag == nullptr) {
      throw UsageError{absl::StrCat("unknown flag --", name, " (see --help)")};
    }
    // Abseil's own flags (--flagfile, --fromenv, ...) it parses itself.
    if (!absl::StrContains(flag->Filename(), "sequent_graph")) continue;
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw UsageError{absl::StrCat("--", name, " needs a value")};
    }
    // ParseFrom sets the flag; ParseCommandLine sets it again from argv.
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      throw UsageError{absl::StrCat("--", name, "=", value, ": ", error)};
    }
  }
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "prints or draws a sequent model's graph.\n"
      "  sequent-graph (--model=FILE | --example=NAME) [--stage=STAGE] "
      "[--format=FORMAT] [--out=FILE] [--html=FILE] [--print_after=PASS,...] "
      "[--print_after_all] [--batch_size=N]");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "sequent_graph");
  };
  absl::SetFlagsUsageConfig(usage);
  CheckFlags(argc, argv);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    throw UsageError{absl::StrCat("unexpected argument '", positional[1],
                                  "' (flags take the form --name=value)")};
  }
  const std::string stage = absl::GetFlag(FLAGS_stage);
  const std::string format = absl::GetFlag(FLAGS_format);
  const std::string out = UserPath(absl::GetFlag(FLAGS_out));
  const std::string html = UserPath(absl::GetFlag(FLAGS_html));
  const int64_t batch_size = absl::GetFlag(FLAGS_batch_size);
  std::vector<std::string> print_after = absl::GetFlag(FLAGS_print_after);
  const bool print_after_all = absl::GetFlag(FLAGS_print_after_all);

  if (!Contains(StageNames(), stage)) {
    throw UsageError{absl::StrCat("unknown stage '", stage, "'; stages: ",
                                  absl::StrJoin(StageNames(), ", "))};
  }
  if (!Contains(GraphFormats(), format)) {
    throw UsageError{absl::StrCat("unknown format '", format, "'; formats: ",
                                  absl::StrJoin(GraphFormats(), ", "))};
  }
  if (batch_size <= 0) {
    throw UsageError{
        absl::StrCat("--batch_size must be positive, got ", batch_size)};
  }
  const bool printing_passes = print_after_all || !print_after.empty();
  if (printing_passes && format != "text" && format != "dot") {
    throw UsageError{absl::StrCat(
        "--print_after and --print_after_all write text or dot, not ", format)};
  }
  if (format == "png" && out.empty()) {
    throw UsageError{"--format=png needs --out=FILE"};
  }

  Sequential model = LoadInput(UserPath(absl::GetFlag(FLAGS_model)),
                               absl::GetFlag(FLAGS_example));

  if (printing_passes) {
    Check(WriteFileContents(
        out.empty() ? "-" : out,
        PrintAfterPasses(
            model, print_after_all ? std::vector<std::string>{} : print_after,
            format)));
    return 0;
  }

  const Graph* graph = &model.graph(ToGraphStage(stage));
  Graph bound;
  std::optional<MemoryPlan> plan;
  if (stage == "plan") {
    bound = BindBatch(*graph, batch_size);
    plan = Check(PlanMemory(bound, ops::DefaultRegistry()));
    graph = &bound;
  }

  if (!html.empty()) {
    Check(WriteFileContents(
        html, Check(GraphHtml(*graph, plan ? &*plan : nullptr,
                              absl::StrCat(model.name(), " - ", stage)))));
    // With --html alone the page is the output.
    if (out.empty() && format == "text") return 0;
  }

  std::string contents;
  if (plan && format == "text") {
    contents = plan->ToString(*graph);
  } else if (plan && format == "dot") {
    contents = MemoryTimelineDot(*graph, *plan);
  } else if (plan && (format == "svg" || format == "png")) {
    contents = Check(RenderMemoryTimeline(*graph, *plan, format));
  } else {
    contents = Check(RenderGraph(*graph, format, plan ? &*plan : nullptr));
  }
  Check(WriteFileContents(out.empty() ? "-" : out, contents));
  return 0;
}

}  // namespace
}  // namespace sequent

int main(int argc, char** argv) {
  std::string message;
  try {
    return sequent::Main(argc, argv);
  } catch (const sequent::UsageError& e) {
    message = e.message;
  } catch (const sequent::Error& e) {
    message = e.what();
  } catch (const std::exception& e) {
    message = e.what();
  }
  // One line, whatever the message held.
  absl::StrReplaceAll({{"\n", " "}}, &message);
  std::fprintf(stderr, "sequent-graph: error: %s\n",
               std::string(absl::StripAsciiWhitespace(message)).c_str());
  return 2;
}
