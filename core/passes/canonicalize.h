#ifndef SEQUENT_CORE_PASSES_CANONICALIZE_H_
#define SEQUENT_CORE_PASSES_CANONICALIZE_H_

#include <string>

#include "core/op_registry.h"
#include "core/passes/pass.h"

namespace sequent {

// Local simplifications that never change a result:
// - identity ops are bypassed and removed: reshape to the same type, cast to
// the same dtype,
//   transpose with the identity permutation, flatten of a rank-2 input, dropout
//   that is off (training=false or rate=0) and whose mask is unused;
// - reshape(reshape(x)) reads x directly, transpose(transpose(x, p), q) becomes
// one
//   transpose of x with the composed permutation (the inner node is left for
//   DCE when it has other uses or none).
// Expects recorded types to be current (run shape inference first).
class CanonicalizePass : public Pass {
 public:
  explicit CanonicalizePass(const OpRegistry& registry) : registry_(registry) {}
  std::string name() const override { return "canonicalize"; }
  absl::StatusOr<bool> Run(Graph& graph) override;

 private:
  const OpRegistry& registry_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_PASSES_CANONICALIZE_H_
