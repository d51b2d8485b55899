#ifndef SEQUENT_BACKENDS_BACKEND_H_
#define SEQUENT_BACKENDS_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/graph.h"
#include "core/tensor.h"

namespace sequent {

// Persistent variables (weights, optimizer slots, moving statistics) of one model on one
// backend, shared by its train, eval and predict executables. Read/Write move plain host
// tensors; a backend may keep its own layout inside.
class VariableStore {
 public:
  virtual ~VariableStore() = default;
  virtual bool Contains(absl::string_view name) const = 0;
  virtual absl::StatusOr<Tensor> Read(absl::string_view name) const = 0;
  // Creates the variable when absent; otherwise the type must match.
  virtual absl::Status Write(absl::string_view name, const Tensor& value) = 0;
  virtual std::vector<std::string> Names() const = 0;  // Sorted.
};

// A data feed bound to the graph input of the same name ("x", "y", "learning_rate").
struct Feed {
  std::string name;
  const Tensor* tensor = nullptr;
};

// A graph compiled for one batch size: every buffer bound, every kernel chosen.
class Executable {
 public:
  virtual ~Executable() = default;
  // Runs the graph once: reads feeds, writes the graph outputs (in graph order) into
  // `outputs` (reusing its tensors when they already have the right type), and applies the
  // graph's variable updates to the store.
  virtual absl::Status Run(absl::Span<const Feed> feeds, std::vector<Tensor>& outputs) = 0;
  virtual const std::vector<std::string>& output_names() const = 0;
  virtual int64_t batch_size() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "reference", "cpu", "cuda"
  // Whether the backend runs dense{activation} as one kernel (the fusion pass asks).
  virtual bool SupportsFusedDense(absl::string_view activation) const = 0;
  virtual std::unique_ptr<VariableStore> CreateVariableStore() const = 0;
  // Binds the symbolic batch `N` to `batch_size`. Variables missing from `store` are created
  // from their initializer attributes; present ones are shared and type-checked.
  virtual absl::StatusOr<std::unique_ptr<Executable>> Compile(const Graph& graph,
                                                              int64_t batch_size,
                                                              VariableStore* store) const = 0;
};

}  // namespace sequent

#endif  // SEQUENT_BACKENDS_BACKEND_H_
