#ifndef SEQUENT_CORE_PASSES_SHAPE_INFERENCE_H_
#define SEQUENT_CORE_PASSES_SHAPE_INFERENCE_H_

#include <string>

#include "core/op_registry.h"
#include "core/passes/pass.h"

namespace sequent {

// Recomputes every node's output types from its inputs (in topological order)
// and fills attribute defaults, so the recorded types are exactly what the
// shape rules say. The types of input, variable and constant nodes are the
// graph's givens and stay as they are. Errors read "layer 'dense_1': [matmul]
// inner dimensions differ: f32[N,784] x f32[512,10]".
class ShapeInferencePass : public Pass {
 public:
  explicit ShapeInferencePass(const OpRegistry& registry)
      : registry_(registry) {}
  std::string name() const override { return "shape_inference"; }
  absl::StatusOr<bool> Run(Graph& graph) override;

 private:
  const OpRegistry& registry_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_SHAPE_INFERENCE_H_
