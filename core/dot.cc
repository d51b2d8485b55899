#include "core/dot.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sequent {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not
// valid.
size_t Utf8Length(absl::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  }
  return len;
}

// Body of a DOT double-quoted string. Backslashes are doubled because Graphviz
// gives \N, \l, ... special meaning in labels; control characters and invalid
// UTF-8 (which Graphviz rejects or warns about) become '?', newlines become
// line breaks.
std::string Escape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      out += '?';
    } else if (u >= 0x80) {
      const size_t len = Utf8Length(s, i);
      if (len == 0) {
        out += '?';
      } else {
        out.append(s.data() + i, len);
        i += len - 1;
      }
    } else {
      out += c;
    }
  }
  return out;
}

std::string Q(absl::string_view s) {
  return absl::StrCat("\"", Escape(s), "\"");
}

// Cuts at a character boundary so that the result stays valid UTF-8.
std::string Shorten(const std::string& s, int max_chars) {
  if (max_chars < 4 || static_cast<int>(s.size()) <= max_chars) return s;
  size_t cut = static_cast<size_t>(max_chars - 3);
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

bool IsStructural(const Node& n) {
  return n.op == kInputOp || n.op == kVariableOp || n.op == kConstantOp;
}

// What a fused node computes, in the order of the original ops; empty when not
// fused.
std::string FusedParts(const Node& n) {
  if (n.op == "dense") {
    const std::string activation =
        StringAttrOr(n.attrs, "activation", "linear");
    if (activation == "linear") return "";
    // dense(x, kernel[, bias]).
    return n.inputs.size() >= 3
               ? absl::StrCat("matmul + bias_add + ", activation)
               : absl::StrCat("matmul + ", activation);
  }
  if (absl::StartsWith(n.op, "fused_")) {
    const std::string listed = StringAttrOr(n.attrs, "fused_ops", "");
    if (!listed.empty()) {
      std::vector<std::string> parts =
          absl::StrSplit(listed, absl::ByAnyChar(",+"), absl::SkipWhitespace());
      for (std::string& p : parts)
        p = std::string(absl::StripAsciiWhitespace(p));
      return absl::StrJoin(parts, " + ");
    }
    return absl::StrCat("fused: ", n.op.substr(6));
  }
  return "";
}

const std::vector<absl::string_view>& Phases() {
  static const auto* phases = new std::vector<absl::string_view>{
      "forward", "backward", "optimizer", "loss", "metrics"};
  return *phases;
}

// Outer and inner cluster of a layer: "backward/dense_1" -> ("backward",
// "dense_1"), "forward" -> ("forward", ""), "dense_1" -> ("dense_1", "").
std::pair<std::string, std::string> ClusterOf(const std::string& layer) {
  const size_t slash = layer.find('/');
  const std::string first = layer.substr(0, slash);
  for (absl::string_view phase : Phases()) {
    if (first == phase) {
      return {first, slash == std::string::npos ? "" : layer.substr(slash + 1)};
    }
  }
  return {layer, ""};
}

std::string NodeStatement(const Graph& g, NodeId id,
                          const DotOptions& options) {
  const Node& n = g.node(id);
  std::vector<std::string> lines = {n.op};
  const std::string fused = FusedParts(n);
  if (!fused.empty()) lines.push_back(absl::StrCat("(", fused, ")"));
  if (IsStructural(n)) {
    const std::string name = StringAttrOr(n.attrs, "name", "");
    if (!name.empty()) lines.push_back(name);
    // Inputs show their type on their out-edges; variables and constants are
    // easier to read with the shape in the box.
    if (n.op != kInputOp && n.outputs.size() == 1 && n.outputs[0] >= 0 &&
        n.outputs[0] < g.num_values()) {
      lines.push_back(g.type(n.outputs[0]).ToString());
    }
  }
  if (options.show_attributes) {
    for (const auto& [key, value] : n.attrs) {
      if (IsStructural(n) && (key == "name" || key == "value")) continue;
      if (!fused.empty() && (key == "activation" || key == "fused_ops"))
        continue;
      lines.push_back(absl::StrCat(
          key, " = ",
          Shorten(AttrValueToString(value), options.max_attribute_chars)));
    }
  }
  std::string style;
  if (!fused.empty()) {
    style =
        "shape=box, style=\"filled,bold\", penwidth=2.5, fillcolor=\"#fcd34d\"";
  } else if (n.op == kInputOp) {
    style = "shape=invhouse, style=filled, fillcolor=\"#bfdbfe\"";
  } else if (n.op == kVariableOp) {
    style = "shape=cylinder, style=filled, fillcolor=\"#e9d5ff\"";
  } else if (n.op == kConstantOp) {
    style = "shape=note, style=filled, fillcolor=\"#e5e7eb\"";
  } else {
    style = "shape=box, style=rounded";
  }
  return absl::StrCat("n", id, " [label=", Q(absl::StrJoin(lines, "\n")), ", ",
                      style, "];");
}

std::string EdgeLabel(const Graph& g, ValueId v, const DotOptions& options) {
  if (!options.show_types) return "";
  const Value& value = g.value(v);
  std::string label = value.type.ToString();
  if (value.producer >= 0 && value.producer < g.num_nodes() &&
      g.node(value.producer).outputs.size() > 1) {
    label = absl::StrCat("#", value.output_index, " ", label);
  }
  return absl::StrCat(" [label=", Q(label), "]");
}

bool ValidValue(const Graph& g, ValueId v) {
  return v >= 0 && v < g.num_values() && g.IsLive(g.value(v).producer);
}

}  // namespace

std::string ExportDot(const Graph& g, const DotOptions& options) {
  std::string out = absl::StrCat(
      "digraph ", Q(g.name().empty() ? "graph" : g.name()), " {\n");
  out +=
      "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=11];\n"
      "  node [fontname=\"Helvetica\", fontsize=10];\n"
      "  edge [fontname=\"Helvetica\", fontsize=9];\n";

  // outer cluster -> inner cluster ("" for none) -> nodes; top-level nodes
  // under "".
  std::map<std::string, std::map<std::string, std::vector<NodeId>>> clusters;
  const std::vector<NodeId> live = g.LiveNodes();
  for (NodeId id : live) {
    const std::string& layer = g.node(id).layer;
    if (!options.cluster_layers || layer.empty()) {
      clusters[""][""].push_back(id);
    } else {
      auto [outer, inner] = ClusterOf(layer);
      clusters[outer][inner].push_back(id);
    }
  }
  for (NodeId id : clusters[""][""]) {
    absl::StrAppend(&out, "  ", NodeStatement(g, id, options), "\n");
  }
  for (const auto& [outer, inners] : clusters) {
    if (outer.empty()) continue;
    // Training phases are shaded so that forward, backward and optimizer read
    // as regions.
    const bool is_phase =
        ClusterOf(outer).first == outer &&
        std::find(Phases().begin(), Phases().end(), outer) != Phases().end();
    absl::StrAppend(
        &out, "  subgraph ", Q(absl::StrCat("cluster_", outer)), " {\n",
        "    label=", Q(outer), ";\n",
        is_phase ? "    style=\"rounded,filled\";\n    fillcolor=\"#f3f4f6\";\n"
                   "    fontname=\"Helvetica-Bold\";\n"
                 : "    style=\"rounded,dashed\";\n");
    for (const auto& [inner, ids] : inners) {
      std::string indent = "    ";
      if (!inner.empty()) {
        absl::StrAppend(&out, "    subgraph ",
                        Q(absl::StrCat("cluster_", outer, "/", inner)),
                        " {\n      label=", Q(inner),
                        ";\n      style=rounded;\n");
        indent = "      ";
      }
      for (NodeId id : ids)
        absl::StrAppend(&out, indent, NodeStatement(g, id, options), "\n");
      if (!inner.empty()) out += "    }\n";
    }
    out += "  }\n";
  }

  for (NodeId id : live) {
    for (ValueId in : g.node(id).inputs) {
      if (!ValidValue(g, in)) continue;
      absl::StrAppend(&out, "  n", g.value(in).producer, " -> n", id,
                      EdgeLabel(g, in, options), ";\n");
    }
  }
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const GraphOutput& o = g.outputs()[i];
    absl::StrAppend(
        &out, "  out", i, " [label=", Q(absl::StrCat("output\n", o.name)),
        ", shape=doubleoctagon, style=filled, fillcolor=\"#bbf7d0\"];\n");
    if (ValidValue(g, o.value)) {
      absl::StrAppend(&out, "  n", g.value(o.value).producer, " -> out", i,
                      EdgeLabel(g, o.value, options), ";\n");
    }
  }
  for (size_t i = 0; i < g.updates().size(); ++i) {
    const VariableUpdate& u = g.updates()[i];
    absl::StrAppend(
        &out, "  upd", i, " [label=", Q(absl::StrCat("update\n", u.variable)),
        ", shape=house, style=\"filled,dashed\", fillcolor=\"#fed7aa\"];\n");
    if (ValidValue(g, u.value)) {
      std::string label = EdgeLabel(g, u.value, options);
      absl::StrAppend(
          &out, "  n", g.value(u.value).producer, " -> upd", i,
          label.empty() ? " [style=dashed]"
                        : label.substr(0, label.size() - 1) + ", style=dashed]",
          ";\n");
    }
  }
  out += "}\n";
  return out;
}

}  // namespace sequent
