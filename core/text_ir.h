#ifndef SEQUENT_CORE_TEXT_IR_H_
#define SEQUENT_CORE_TEXT_IR_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/graph.h"

namespace sequent {

// The text form of the IR:
//
//   graph "mlp" {
//     %0 = input() {name = "x"} : f32[N,784]
//     %1 = variable() {name = "dense/kernel", trainable = true} : f32[784,512]
//     %2 = dense(%0, %1) {activation = "relu"} : f32[N,512] loc("dense")
//     %3, %4 = some_op(%2) : f32[N,512], f32[512]
//     output "y_pred" = %2
//     update "dense/kernel" = %4
//   }
//
// Nodes come in topological order and values are renumbered %0, %1, ... in
// order of definition, so equal graphs print equal text whatever their internal
// ids. `//` starts a comment. Result types are taken from the annotations; no
// op registry is consulted.
std::string PrintGraph(const Graph& g);

// Parses the text form. Errors are InvalidArgumentError starting with
// "line:col: ". print -> parse -> print is the identity.
absl::StatusOr<Graph> ParseGraph(absl::string_view text);

}  // namespace sequent

#endif  // SEQUENT_CORE_TEXT_IR_H_
