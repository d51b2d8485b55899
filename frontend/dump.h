#ifndef SEQUENT_FRONTEND_DUMP_H_
#define SEQUENT_FRONTEND_DUMP_H_

// Graph dumps in every format sequent-graph writes: the text IR, Graphviz DOT,
// JSON, SVG/PNG rendered by Graphviz, and one self-contained HTML page. Also
// what Sequential::dump_graph and SEQUENT_DUMP_DIR write.
//
// These functions take a Graph rather than a Sequential so that
// //frontend:model can call them without a dependency cycle;
// Sequential::dump_graph is the model-level entry point.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph.h"
#include "core/memory_planner.h"

namespace sequent {

// text, dot, json, svg, png, html.
const std::vector<std::string>& GraphFormats();

// Nodes (id, op, layer, attributes, inputs, outputs with their types and, when
// `plan` is given, their memory placement), edges (from, to, value, type),
// graph outputs and variable updates. Node ids are the graph's NodeIds, the
// same ids the DOT export names its nodes by ("n12"); value names are the text
// form's ("%7").
std::string GraphToJson(const Graph& graph, const MemoryPlan* plan = nullptr);

// Runs a Graphviz program (dot, neato) on `dot_text` with -T<format>; the
// picture's bytes. An error that says what to install when the program is
// missing, and Graphviz's own message when it fails.
absl::StatusOr<std::string> RunGraphviz(const std::string& dot_text,
                                        absl::string_view format,
                                        absl::string_view program = "dot");

// The memory plan as a Graphviz picture for `neato -n2`: one box per arena
// buffer, lifetime (schedule steps) across, arena offset down, so reuse shows
// as boxes stacked at the same height.
std::string MemoryTimelineDot(const Graph& graph, const MemoryPlan& plan);
// MemoryTimelineDot rendered (svg or png).
absl::StatusOr<std::string> RenderMemoryTimeline(const Graph& graph,
                                                 const MemoryPlan& plan,
                                                 absl::string_view format);

// One page with the graph's SVG inline, pan (drag) and zoom (mouse wheel), and
// a side panel with a clicked node's attributes, types and memory. Opened with
// "#selftest" it checks itself and writes "selftest: PASS ..." (or FAIL and
// why) into the element #selftest.
absl::StatusOr<std::string> GraphHtml(const Graph& graph,
                                      const MemoryPlan* plan = nullptr,
                                      absl::string_view title = "");

// The graph in one of GraphFormats(); `plan` adds memory to json and html.
absl::StatusOr<std::string> RenderGraph(const Graph& graph,
                                        absl::string_view format,
                                        const MemoryPlan* plan = nullptr);

absl::Status WriteFileContents(const std::string& path,
                               absl::string_view contents);

// RenderGraph written to `path` ("-" writes to stdout).
absl::Status DumpGraph(const Graph& graph, absl::string_view format,
                       const std::string& path);

// Writes each stage as <dir>/<model>.<stage>.txt and .dot, creating `dir`.
absl::Status DumpStages(
    const std::string& model_name,
    const std::vector<std::pair<std::string, const Graph*>>& stages,
    const std::string& dir);

// DumpStages into $SEQUENT_DUMP_DIR when it is set (Sequential::compile calls
// it); a failure is a warning on stderr, not a failed compile.
void DumpStagesIfRequested(
    const std::string& model_name,
    const std::vector<std::pair<std::string, const Graph*>>& stages);

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_DUMP_H_
