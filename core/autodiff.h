#ifndef SEQUENT_CORE_AUTODIFF_H_
#define SEQUENT_CORE_AUTODIFF_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/graph.h"
#include "core/graph_builder.h"

namespace sequent {

// Reverse-mode differentiation as a graph transformation (Glow's Grad.cpp, ggml-opt): walks
// the nodes between `wrt` and the scalar `loss` in reverse topological order and appends each
// op's gradient rule (OpDef::gradient, itself IR) to the graph. Gradients of a value with
// several users are summed with `add`. Only values on a path from some `wrt` to `loss` get
// gradients: labels, integer tensors and stop-gradient inputs get none. Returns the gradient
// of `loss` with respect to each `wrt` (a zeros constant when `loss` does not depend on it).
// Backward nodes are tagged with layer "backward/<forward layer>".
absl::StatusOr<std::vector<ValueId>> AppendGradients(GraphBuilder& builder, ValueId loss,
                                                     absl::Span<const ValueId> wrt);

}  // namespace sequent

#endif  // SEQUENT_CORE_AUTODIFF_H_
