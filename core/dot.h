#ifndef SEQUENT_CORE_DOT_H_
#define SEQUENT_CORE_DOT_H_

#include <string>

#include "core/graph.h"

namespace sequent {

struct DotOptions {
  // Node labels list the node's attributes (long values shortened); off: op
  // names only.
  bool show_attributes = true;
  // Edge labels give the value's type, f32[N,512].
  bool show_types = true;
  // Nodes are grouped into a cluster per layer; training phases (forward,
  // backward, optimizer, loss, metrics) get one cluster each with the layers
  // nested inside.
  bool cluster_layers = true;
  // Attribute values longer than this are cut and end in "...".
  int max_attribute_chars = 32;
};

// A Graphviz digraph of the live nodes. Structural nodes (input, variable,
// constant) and fused nodes (dense with a non-linear activation, fused_* ops)
// are styled apart; graph outputs and variable updates are separate sink nodes.
// Always valid DOT.
std::string ExportDot(const Graph& g, const DotOptions& options = {});

}  // namespace sequent

#endif  // SEQUENT_CORE_DOT_H_
