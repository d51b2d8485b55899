#include "frontend/dump.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/dot.h"
#include "core/text_ir.h"

extern char** environ;

namespace sequent {
namespace {

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// JSON has no NaN or infinity; they become strings so the page can still show
// them.
std::string JsonDouble(double d) {
  if (!std::isfinite(d)) {
    return JsonString(std::isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf"));
  }
  std::string s = absl::StrFormat("%.17g", d);
  // Prefer the short form when it reads back to the same double.
  std::string shorter = absl::StrFormat("%.9g", d);
  if (std::strtod(shorter.c_str(), nullptr) == d) s = shorter;
  return s;
}

std::string JsonAttr(const AttrValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          return absl::StrCat(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return JsonDouble(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return JsonString(v);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
        } else {
          std::vector<std::string> parts;
          for (double d : v) parts.push_back(JsonDouble(d));
          return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
        }
      },
      value);
}

// The text form's value names: %0, %1, ... in order of definition along a
// topological order (the order PrintGraph numbers them in).
absl::flat_hash_map<ValueId, int> TextNumbering(const Graph& g) {
  absl::flat_hash_map<ValueId, int> numbering;
  absl::StatusOr<std::vector<NodeId>> order = g.TopologicalOrder();
  const std::vector<NodeId> nodes = order.ok() ? *order : g.LiveNodes();
  int next = 0;
  for (NodeId id : nodes) {
    for (ValueId v : g.node(id).outputs) numbering[v] = next++;
  }
  return numbering;
}

bool ValidValue(const Graph& g, ValueId v) {
  return v >= 0 && v < g.num_values() && g.IsLive(g.value(v).producer);
}

std::string ValueName(const absl::flat_hash_map<ValueId, int>& numbering,
                      ValueId v) {
  auto it = numbering.find(v);
  return it == numbering.end() ? absl::StrCat("?", v)
                               : absl::StrCat("%", it->second);
}

std::string MemoryJson(const MemoryPlan& plan, ValueId v,
                       const absl::flat_hash_map<ValueId, int>& numbering) {
  if (v < 0 || v >= static_cast<int>(plan.buffers.size())) return "null";
  const BufferAssignment& b = plan.buffers[v];
  std::string placement;
  std::string extra;
  switch (b.kind) {
    case BufferAssignment::Kind::kArena:
      placement = "arena";
      break;
    case BufferAssignment::Kind::kVariable:
      placement = "variable";
      extra = absl::StrCat(", \"variable\": ", JsonString(b.variable));
      break;
    case BufferAssignment::Kind::kAlias:
      placement = "in_place";
      extra = absl::StrCat(", \"alias_of\": ",
                           JsonString(ValueName(numbering, b.alias_of)));
      break;
  }
  return absl::StrCat("{\"placement\": \"", placement,
                      "\", \"offset\": ", b.offset, ", \"bytes\": ", b.bytes,
                      ", \"first_step\": ", b.first_step,
                      ", \"last_step\": ", b.last_step, extra, "}");
}

std::string TypeJson(const TensorType& t) {
  std::vector<std::string> dims;
  for (int64_t d : t.shape.dims()) {
    dims.push_back(d == Shape::kBatch ? "\"N\"" : absl::StrCat(d));
  }
  return absl::StrCat("\"type\": ", JsonString(t.ToString()),
                      ", \"dtype\": ", JsonString(DTypeName(t.dtype)),
                      ", \"shape\": [", absl::StrJoin(dims, ", "), "]");
}

// A temporary file that removes itself.
class TempFile {
 public:
  explicit TempFile(absl::string_view suffix) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = absl::StrCat(tmp && *tmp ? tmp : "/tmp",
                                       "/sequent-graph-XXXXXX", suffix);
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    const int fd = mkstemps(buffer.data(), static_cast<int>(suffix.size()));
    if (fd >= 0) {
      close(fd);
      path_ = buffer.data();
    }
  }
  ~TempFile() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

absl::StatusOr<std::string> ReadFileContents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Graphviz's SVG without the XML prolog and DOCTYPE, so it can sit inside
// HTML.
std::string InlineSvg(const std::string& svg) {
  const size_t start = svg.find("<svg");
  return start == std::string::npos ? svg : svg.substr(start);
}

std::string HtmlEscape(absl::string_view s) {
  return absl::StrReplaceAll(
      s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

// Fill colours for the memory timeline, cycled by value.
constexpr const char* kPalette[] = {"#93c5fd", "#fca5a5", "#86efac", "#fcd34d",
                                    "#c4b5fd", "#f9a8d4", "#67e8f9", "#fdba74"};

std::string HumanBytes(int64_t bytes) {
  if (bytes >= (int64_t{1} << 20)) {
    return absl::StrFormat("%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  }
  if (bytes >= 1024) {
    return absl::StrFormat("%.1f KiB", static_cast<double>(bytes) / 1024);
  }
  return absl::StrCat(bytes, " B");
}

std::string DotQuote(absl::string_view s) {
  return absl::StrCat(
      "\"", absl::StrReplaceAll(s, {{"\\", "\\\\"}, {"\"", "\\\""}}), "\"");
}

}  // namespace

const std::vector<std::string>& GraphFormats() {
  static const auto* formats =
      new std::vector<std::string>{"text", "dot", "json", "svg", "png", "html"};
  return *formats;
}

std::string GraphToJson(const Graph& g, const MemoryPlan* plan) {
  const absl::flat_hash_map<ValueId, int> numbering = TextNumbering(g);
  std::string out =
      absl::StrCat("{\n  \"name\": ", JsonString(g.name()), ",\n");
  if (plan != nullptr) {
    absl::StrAppend(
        &out, "  \"memory\": {\"arena_bytes\": ", plan->arena_bytes,
        ", \"total_intermediate_bytes\": ", plan->total_intermediate_bytes,
        ", \"persistent_bytes\": ", plan->persistent_bytes,
        ", \"alignment\": ", plan->alignment,
        ", \"steps\": ", plan->schedule.size(), "},\n");
  }
  out += "  \"nodes\": [";
  const std::vector<NodeId> live = g.LiveNodes();
  for (size_t i = 0; i < live.size(); ++i) {
    const Node& n = g.node(live[i]);
    std::vector<std::string> attrs;
    for (const auto& [key, value] : n.attrs) {
      attrs.push_back(absl::StrCat(JsonString(key), ": ", JsonAttr(value)));
    }
    std::vector<std::string> inputs;
    for (ValueId v : n.inputs) {
      inputs.push_back(JsonString(ValueName(numbering, v)));
    }
    std::vector<std::string> outputs;
    for (ValueId v : n.outputs) {
      std::string o =
          absl::StrCat("{\"value\": ", JsonString(ValueName(numbering, v)),
                       ", ", TypeJson(g.type(v)));
      if (plan != nullptr) {
        absl::StrAppend(&o, ", \"memory\": ", MemoryJson(*plan, v, numbering));
      }
      outputs.push_back(o + "}");
    }
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n", "    {\"id\": ", live[i],
                    ", \"op\": ", JsonString(n.op),
                    ", \"layer\": ", JsonString(n.layer), ", \"attributes\": {",
                    absl::StrJoin(attrs, ", "), "}, \"inputs\": [",
                    absl::StrJoin(inputs, ", "), "], \"outputs\": [",
                    absl::StrJoin(outputs, ", "), "]}");
  }
  out += "\n  ],\n  \"edges\": [";
  bool first = true;
  for (NodeId id : live) {
    for (ValueId v : g.node(id).inputs) {
      if (!ValidValue(g, v)) continue;
      absl::StrAppend(&out, first ? "\n" : ",\n",
                      "    {\"from\": ", g.value(v).producer, ", \"to\": ", id,
                      ", \"value\": ", JsonString(ValueName(numbering, v)),
                      ", \"type\": ", JsonString(g.type(v).ToString()), "}");
      first = false;
    }
  }
  out += "\n  ],\n  \"outputs\": [";
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const GraphOutput& o = g.outputs()[i];
    absl::StrAppend(
        &out, i == 0 ? "" : ", ", "{\"name\": ", JsonString(o.name),
        ", \"from\": ", ValidValue(g, o.value) ? g.value(o.value).producer : -1,
        ", \"value\": ", JsonString(ValueName(numbering, o.value)), "}");
  }
  out += "],\n  \"updates\": [";
  for (size_t i = 0; i < g.updates().size(); ++i) {
    const VariableUpdate& u = g.updates()[i];
    absl::StrAppend(
        &out, i == 0 ? "" : ", ", "{\"variable\": ", JsonString(u.variable),
        ", \"from\": ", ValidValue(g, u.value) ? g.value(u.value).producer : -1,
        ", \"value\": ", JsonString(ValueName(numbering, u.value)), "}");
  }
  out += "]\n}\n";
  return out;
}

absl::StatusOr<std::string> RunGraphviz(const std::string& dot_text,
                                        absl::string_view format,
                                        absl::string_view program) {
  TempFile input(".dot");
  TempFile output(absl::StrCat(".", format));
  TempFile errors(".log");
  if (!input.ok() || !output.ok() || !errors.ok()) {
    return absl::InternalError(absl::StrCat(
        "cannot create a temporary file for Graphviz: ", std::strerror(errno)));
  }
  absl::Status written = WriteFileContents(input.path(), dot_text);
  if (!written.ok()) return written;

  const std::string prog(program);
  std::vector<std::string> args = {prog, absl::StrCat("-T", format)};
  if (program == "neato") args.push_back("-n2");
  args.push_back(input.path());
  args.push_back("-o");
  args.push_back(output.path());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(
      &actions, STDOUT_FILENO, errors.path().c_str(), O_WRONLY | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int spawned =
      posix_spawnp(&pid, prog.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    if (spawned == ENOENT) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--format=", format, " needs Graphviz's '", prog,
          "' program, which is not on PATH; install Graphviz (apt-get install "
          "graphviz) or write --format=dot"));
    }
    return absl::InternalError(
        absl::StrCat("cannot run ", prog, ": ", std::strerror(spawned)));
  }
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    absl::StatusOr<std::string> log = ReadFileContents(errors.path());
    std::string message = log.ok() ? *log : "";
    absl::StrReplaceAll({{"\n", " "}}, &message);
    return absl::InternalError(absl::StrCat(
        prog, " -T", format, " failed: ", absl::StripAsciiWhitespace(message)));
  }
  return ReadFileContents(output.path());
}

std::string MemoryTimelineDot(const Graph& g, const MemoryPlan& plan) {
  const absl::flat_hash_map<ValueId, int> numbering = TextNumbering(g);
  // Plot area in points; offset 0 at the top, time to the right.
  constexpr double kWidth = 900, kHeight = 480, kLeft = 90, kBottom = 50;
  // Graph outputs live to step schedule.size(), so the axis runs one further.
  const int steps = static_cast<int>(plan.schedule.size()) + 1;
  const double arena =
      static_cast<double>(std::max<int64_t>(1, plan.arena_bytes));
  auto x_of = [&](double step) { return kLeft + kWidth * step / steps; };
  auto y_of = [&](double offset) {
    return kBottom + kHeight * (1.0 - offset / arena);
  };
  auto box = [](double x0, double y0, double x1, double y1) {
    // Graphviz sizes are inches; positions are points (neato -n2).
    return absl::StrFormat("pos=\"%.2f,%.2f!\", width=%.4f, height=%.4f",
                           (x0 + x1) / 2, (y0 + y1) / 2,
                           std::max(1.0, std::abs(x1 - x0)) / 72.0,
                           std::max(1.0, std::abs(y1 - y0)) / 72.0);
  };
  std::string out =
      absl::StrCat("digraph ", DotQuote(absl::StrCat(g.name(), " memory plan")),
                   " {\n", "  graph [bgcolor=white, margin=0.2];\n",
                   "  node [shape=box, fixedsize=true, fontname=\"Helvetica\", "
                   "fontsize=8, style=filled, penwidth=0.5, label=\"\"];\n");
  absl::StrAppend(&out, "  frame [",
                  box(x_of(0), y_of(0), x_of(steps), y_of(arena)),
                  ", style=solid, penwidth=1];\n");
  absl::StrAppend(
      &out, "  title [", box(kLeft, y_of(0) + 12, kLeft + kWidth, y_of(0) + 32),
      ", shape=plaintext, style=\"\", fontsize=12, label=",
      DotQuote(absl::StrCat(
          g.name(), ": arena ", HumanBytes(plan.arena_bytes),
          " (without reuse ", HumanBytes(plan.total_intermediate_bytes),
          "), variables ", HumanBytes(plan.persistent_bytes))),
      "];\n");
  absl::StrAppend(&out, "  xaxis [",
                  box(kLeft, kBottom - 40, kLeft + kWidth, kBottom - 24),
                  ", shape=plaintext, style=\"\", fontsize=10, "
                  "label=\"schedule step (node order) ->\"];\n");
  absl::StrAppend(&out, "  yaxis [",
                  box(4, y_of(0) + 6, kLeft - 6, y_of(0) + 20),
                  ", shape=plaintext, style=\"\", fontsize=10, "
                  "label=\"arena offset\"];\n");
  for (int i = 0; i <= 4; ++i) {
    const double step = static_cast<double>(steps) * i / 4;
    absl::StrAppend(
        &out, "  xt", i, " [",
        box(x_of(step) - 20, kBottom - 20, x_of(step) + 20, kBottom - 6),
        ", shape=plaintext, style=\"\", label=\"",
        static_cast<int>(std::lround(step)), "\"];\n");
    const double offset = arena * i / 4;
    absl::StrAppend(&out, "  yt", i, " [",
                    box(4, y_of(offset) - 7, kLeft - 6, y_of(offset) + 7),
                    ", shape=plaintext, style=\"\", label=",
                    DotQuote(HumanBytes(static_cast<int64_t>(offset))), "];\n");
  }
  for (size_t v = 0; v < plan.buffers.size(); ++v) {
    const BufferAssignment& b = plan.buffers[v];
    if (b.kind != BufferAssignment::Kind::kArena || b.bytes <= 0 ||
        b.offset < 0 || !ValidValue(g, static_cast<ValueId>(v))) {
      continue;
    }
    const std::string name = ValueName(numbering, static_cast<ValueId>(v));
    const Node& producer = g.producer(static_cast<ValueId>(v));
    const double x0 = x_of(b.first_step), x1 = x_of(b.last_step + 1);
    const double y0 = y_of(static_cast<double>(b.offset));
    const double y1 = y_of(static_cast<double>(b.offset + b.bytes));
    // Labels only where they fit.
    const bool fits = (x1 - x0) >= 8.0 * static_cast<double>(name.size()) &&
                      (y0 - y1) >= 10.0;
    absl::StrAppend(
        &out, "  v", v, " [", box(x0, y0, x1, y1), ", fillcolor=\"",
        kPalette[v % std::size(kPalette)], "\"",
        fits ? absl::StrCat(", label=", DotQuote(name)) : "", ", tooltip=",
        DotQuote(absl::StrCat(name, " = ", producer.op, " : ",
                              g.type(static_cast<ValueId>(v)).ToString(), ", ",
                              HumanBytes(b.bytes), " @ ", b.offset, ", steps ",
                              b.first_step, "..", b.last_step,
                              producer.layer.empty()
                                  ? ""
                                  : absl::StrCat(" (", producer.layer, ")"))),
        "];\n");
  }
  out += "}\n";
  return out;
}

absl::StatusOr<std::string> RenderMemoryTimeline(const Graph& graph,
                                                 const MemoryPlan& plan,
                                                 absl::string_view format) {
  return RunGraphviz(MemoryTimelineDot(graph, plan), format, "neato");
}

absl::StatusOr<std::string> GraphHtml(const Graph& graph,
                                      const MemoryPlan* plan,
                                      absl::string_view title) {
  absl::StatusOr<std::string> svg = RunGraphviz(ExportDot(graph), "svg");
  if (!svg.ok()) return svg.status();
  std::string json = GraphToJson(graph, plan);
  // Inside <script> only "</" could end the element early.
  absl::StrReplaceAll({{"</", "<\\/"}}, &json);
  const std::string heading =
      HtmlEscape(title.empty() ? graph.name() : std::string(title));
  std::string page = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
<style>
  html, body { margin: 0; height: 100%; font-family: Helvetica, Arial, sans-serif; }
  body { display: flex; }
  #view { flex: 1; overflow: hidden; cursor: grab; background: #fff; }
  #view.dragging { cursor: grabbing; }
  #view svg { width: 100%; height: 100%; display: block; }
  #panel { width: 360px; overflow: auto; border-left: 1px solid #d1d5db;
           padding: 10px 14px; font-size: 13px; background: #f9fafb; }
  #panel h1 { font-size: 16px; margin: 4px 0 8px; }
  #panel h2 { font-size: 14px; margin: 12px 0 4px; }
  #panel table { border-collapse: collapse; width: 100%; }
  #panel td { border-top: 1px solid #e5e7eb; padding: 2px 4px; vertical-align: top;
              word-break: break-all; }
  #panel td:first-child { color: #4b5563; white-space: nowrap; word-break: normal; }
  .hint { color: #6b7280; }
  #selftest { white-space: pre-wrap; }
  g.node { cursor: pointer; }
  g.node.selected polygon, g.node.selected path, g.node.selected ellipse,
  g.node.selected polyline { stroke: #dc2626; stroke-width: 3px; }
</style>
</head>
<body>
<div id="view">@SVG@</div>
<div id="panel">
  <h1>@TITLE@</h1>
  <div class="hint">Wheel: zoom. Drag: pan. Click a node for its details.</div>
  <div id="summary"></div>
  <div id="details"></div>
  <pre id="selftest"></pre>
</div>
<script type="application/json" id="graph-data">@JSON@</script>
<script>
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('graph-data').textContent);
  var svg = document.querySelector('#view svg');
  var view = document.getElementById('view');
  var details = document.getElementById('details');
  var byId = {};
  data.nodes.forEach(function (n) { byId[n.id] = n; });

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c];
    });
  }
  function bytes(b) {
    if (b >= 1048576) return (b / 1048576).toFixed(2) + ' MiB';
    if (b >= 1024) return (b / 1024).toFixed(1) + ' KiB';
    return b + ' B';
  }
  function row(k, v) { return '<tr><td>' + esc(k) + '</td><td>' + v + '</td></tr>'; }

  var summary = data.nodes.length + ' nodes, ' + data.edges.length + ' edges';
  if (data.memory) {
    summary += '; arena ' + bytes(data.memory.arena_bytes) + ' (without reuse ' +
        bytes(data.memory.total_intermediate_bytes) + '), variables ' +
        bytes(data.memory.persistent_bytes);
  }
  document.getElementById('summary').textContent = summary;

  // Pan and zoom by moving the SVG's viewBox.
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  var vb = svg.getAttribute('viewBox').split(/[\s,]+/).map(Number);
  function applyViewBox() { svg.setAttribute('viewBox', vb.join(' ')); }
  function toSvg(clientX, clientY) {
    var r = svg.getBoundingClientRect();
    var scale = Math.max(vb[2] / (r.width || 1), vb[3] / (r.height || 1));
    // preserveAspectRatio xMidYMid meet centres the picture.
    var ox = (r.width * scale - vb[2]) / 2, oy = (r.height * scale - vb[3]) / 2;
    return {x: vb[0] - ox + (clientX - r.left) * scale,
            y: vb[1] - oy + (clientY - r.top) * scale, scale: scale};
  }
  view.addEventListener('wheel', function (e) {
    e.preventDefault();
    var p = toSvg(e.clientX, e.clientY);
    var f = e.deltaY < 0 ? 1 / 1.2 : 1.2;
    vb = [p.x - (p.x - vb[0]) * f, p.y - (p.y - vb[1]) * f, vb[2] * f, vb[3] * f];
    applyViewBox();
  }, {passive: false});
  var drag = null, moved = false;
  view.addEventListener('mousedown', function (e) {
    drag = {x: e.clientX, y: e.clientY, vb: vb.slice(), scale: toSvg(0, 0).scale};
    moved = false;
    view.classList.add('dragging');
  });
  window.addEventListener('mousemove', function (e) {
    if (!drag) return;
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    vb = [drag.vb[0] - dx * drag.scale, drag.vb[1] - dy * drag.scale, vb[2], vb[3]];
    applyViewBox();
  });
  window.addEventListener('mouseup', function () {
    drag = null;
    view.classList.remove('dragging');
  });

  function show(id, element) {
    var n = byId[id];
    if (!n) return;
    document.querySelectorAll('g.node.selected').forEach(function (g) {
      g.classList.remove('selected');
    });
    if (element) element.classList.add('selected');
    var h = '<h2>' + esc(n.op) + ' <span class="hint">n' + n.id + '</span></h2><table>';
    h += row('layer', esc(n.layer || '(none)'));
    h += row('inputs', esc(n.inputs.join(', ') || '(none)'));
    h += '</table><h2>attributes</h2><table>';
    var keys = Object.keys(n.attributes);
    if (!keys.length) h += row('', '<span class="hint">(none)</span>');
    keys.forEach(function (k) { h += row(k, esc(JSON.stringify(n.attributes[k]))); });
    h += '</table><h2>outputs</h2><table>';
    n.outputs.forEach(function (o) {
      var v = esc(o.type);
      if (o.memory) {
        var m = o.memory;
        v += '<br>' + esc(bytes(m.bytes)) + ', ' + esc(m.placement);
        if (m.placement === 'variable') v += ' ' + esc(m.variable);
        else v += ' @ ' + m.offset;
        if (m.alias_of) v += ' (in place of ' + esc(m.alias_of) + ')';
        v += '<br>live steps ' + m.first_step + '..' + m.last_step;
      }
      h += row(o.value, v);
    });
    h += '</table>';
    details.innerHTML = h;
  }

  var nodes = [];
  document.querySelectorAll('#view g.node').forEach(function (g) {
    var t = g.querySelector('title');
    var m = t && /^n(\d+)$/.exec(t.textContent.trim());
    if (!m) return;
    var id = Number(m[1]);
    nodes.push({id: id, element: g});
    g.addEventListener('click', function (e) {
      if (moved) return;
      e.stopPropagation();
      show(id, g);
    });
  });

  // Opened as page.html#selftest: the checks a headless browser can read back.
  if (location.hash === '#selftest') {
    var problems = [];
    if (nodes.length !== data.nodes.length) {
      problems.push('svg has ' + nodes.length + ' nodes, json ' + data.nodes.length);
    }
    var clicked = 'none';
    if (nodes.length) {
      var target = nodes[nodes.length - 1];
      target.element.dispatchEvent(new MouseEvent('click', {bubbles: true}));
      clicked = byId[target.id].op;
      var shown = details.querySelector('h2');
      if (!shown || shown.textContent.indexOf(clicked) !== 0) {
        problems.push('clicking n' + target.id + ' did not show its details');
      }
      if (!target.element.classList.contains('selected')) {
        problems.push('the clicked node is not highlighted');
      }
    }
    var before = vb.slice();
    view.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: 10, clientY: 10,
                                                bubbles: true, cancelable: true}));
    if (!(vb[2] < before[2])) problems.push('the wheel did not zoom in');
    document.getElementById('selftest').textContent =
        'selftest: ' + (problems.length ? 'FAIL ' + problems.join('; ') : 'PASS') +
        ' nodes=' + nodes.length + ' json_nodes=' + data.nodes.length +
        ' clicked=' + clicked;
  }
})();
</script>
</body>
</html>
)HTML";
  absl::StrReplaceAll({{"@TITLE@", heading}}, &page);
  // The SVG and JSON go in last, so markers inside them stay untouched.
  const size_t svg_at = page.find("@SVG@");
  page.replace(svg_at, 5, InlineSvg(*svg));
  const size_t json_at = page.find("@JSON@");
  page.replace(json_at, 6, json);
  return page;
}

absl::StatusOr<std::string> RenderGraph(const Graph& graph,
                                        absl::string_view format,
                                        const MemoryPlan* plan) {
  if (format == "text") return PrintGraph(graph);
  if (format == "dot") return ExportDot(graph);
  if (format == "json") return GraphToJson(graph, plan);
  if (format == "svg" || format == "png") {
    return RunGraphviz(ExportDot(graph), format);
  }
  if (format == "html") return GraphHtml(graph, plan);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown format '", std::string(format),
                   "'; formats: ", absl::StrJoin(GraphFormats(), ", ")));
}

absl::Status WriteFileContents(const std::string& path,
                               absl::string_view contents) {
  if (path == "-") {
    std::cout.write(contents.data(),
                    static_cast<std::streamsize>(contents.size()));
    std::cout.flush();
    return std::cout ? absl::OkStatus()
                     : absl::InternalError("cannot write to stdout");
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::NotFoundError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status DumpGraph(const Graph& graph, absl::string_view format,
                       const std::string& path) {
  absl::StatusOr<std::string> contents = RenderGraph(graph, format);
  if (!contents.ok()) return contents.status();
  return WriteFileContents(path, *contents);
}

absl::Status DumpStages(
    const std::string& model_name,
    const std::vector<std::pair<std::string, const Graph*>>& stages,
    const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  for (const auto& [stage, graph] : stages) {
    const std::string base = absl::StrCat(dir, "/", model_name, ".", stage);
    absl::Status s = WriteFileContents(base + ".txt", PrintGraph(*graph));
    if (s.ok()) s = WriteFileContents(base + ".dot", ExportDot(*graph));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void DumpStagesIfRequested(
    const std::string& model_name,
    const std::vector<std::pair<std::string, const Graph*>>& stages) {
  const char* dir = std::getenv("SEQUENT_DUMP_DIR");
  if (dir == nullptr || *dir == '\0') return;
  absl::Status s = DumpStages(model_name, stages, dir);
  if (!s.ok()) {
    std::cerr << "sequent: warning: SEQUENT_DUMP_DIR: " << s.message() << "\n";
  }
}

}  // namespace sequent
