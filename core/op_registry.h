#ifndef SEQUENT_CORE_OP_REGISTRY_H_
#define SEQUENT_CORE_OP_REGISTRY_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/attribute.h"
#include "core/graph.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace sequent {

class GraphBuilder;

// An attribute of an op's schema; no default means the attribute is required.
struct AttrSpec {
  std::string name;
  std::optional<AttrValue> default_value;
};

// Output types from input types and (defaults-filled) attributes. Errors describe the
// problem in terms of the inputs ("inner dimensions differ: f32[N,784] vs f32[512,10]");
// the registry prefixes the op name and the builder the layer.
using ShapeFn = std::function<absl::StatusOr<std::vector<TensorType>>(
    absl::Span<const TensorType> inputs, const Attributes& attrs)>;

// Plain host kernel. `outputs` arrive allocated with the inferred, batch-bound types.
using ReferenceKernel = std::function<absl::Status(
    absl::Span<const Tensor* const> inputs, const Attributes& attrs,
    absl::Span<Tensor* const> outputs)>;

// Emits IR computing the gradient of each input from the gradients of the outputs
// (kNoValue where an output has no gradient). Returns one entry per input, kNoValue for an
// input that gets no gradient (labels, integer tensors).
using GradientFn = std::function<absl::StatusOr<std::vector<ValueId>>(
    GraphBuilder& builder, const Node& node, absl::Span<const ValueId> output_grads)>;

struct OpDef {
  std::string name;
  std::string family;  // "linear", "activation", ... : the ops/ file that defines it.
  std::vector<std::string> inputs;
  // Inputs past this count are optional (dense's bias).
  int num_required_inputs = -1;  // -1: all of `inputs`
  bool variadic = false;         // The last input repeats (concat).
  std::vector<std::string> outputs;
  std::vector<AttrSpec> attrs;
  ShapeFn infer;
  ReferenceKernel reference;
  GradientFn gradient;  // Empty: not differentiable.
  // Randomness or side effects: CSE and constant folding leave the node alone.
  bool stateful = false;
  // (output, input) pairs that may share one buffer when the input dies at this node
  // (elementwise ops: {{0, 0}}; optimizer updates write their variable and slots in place).
  // The memory planner reads it.
  std::vector<std::pair<int, int>> inplace;
};

// The set of known ops. Core code receives it by reference; ops/ builds the default one.
class OpRegistry {
 public:
  absl::Status Register(OpDef def);
  const OpDef* Find(absl::string_view op) const;
  // An unknown op is an error listing nothing (there are many); it names the op.
  absl::StatusOr<const OpDef*> Get(absl::string_view op) const;
  OpDef* FindMutable(absl::string_view op);
  std::vector<std::string> OpNames() const;  // Sorted.

  // Checks arity and attribute names/types against the schema, fills defaults into `attrs`,
  // and runs the shape rule. Error messages begin with "[op] ".
  absl::StatusOr<std::vector<TensorType>> InferTypes(absl::string_view op,
                                                     absl::Span<const TensorType> inputs,
                                                     Attributes& attrs) const;

 private:
  absl::flat_hash_map<std::string, OpDef> ops_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_OP_REGISTRY_H_
