#ifndef SEQUENT_BACKENDS_REFERENCE_REFERENCE_BACKEND_H_
#define SEQUENT_BACKENDS_REFERENCE_REFERENCE_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "backends/backend.h"
#include "core/graph.h"
#include "core/op_registry.h"
#include "core/tensor.h"

namespace sequent {

// The oracle: runs any graph node by node with the ops' reference kernels,
// allocating fresh host tensors on every run. Slow and simple on purpose; other
// backends are tested against it.
class ReferenceBackend : public Backend {
 public:
  // `registry` defaults to ops::DefaultRegistry(); tests may pass their own.
  explicit ReferenceBackend(const OpRegistry* registry = nullptr);

  std::string name() const override { return "reference"; }
  // True for every activation the dense op's schema accepts: its reference
  // kernel applies the activation itself.
  bool SupportsFusedDense(absl::string_view activation) const override;
  std::unique_ptr<VariableStore> CreateVariableStore() const override;
  absl::StatusOr<std::unique_ptr<Executable>> Compile(
      const Graph& graph, int64_t batch_size,
      VariableStore* store) const override;

 private:
  const OpRegistry* registry_;
};

// Compiles `graph` on a fresh store, runs it once and returns its outputs
// (graph order).
absl::StatusOr<std::vector<Tensor>> RunGraphOnce(const Graph& graph,
                                                 int64_t batch_size,
                                                 absl::Span<const Feed> feeds);

}  // namespace sequent

#endif  // SEQUENT_BACKENDS_REFERENCE_REFERENCE_BACKEND_H_
