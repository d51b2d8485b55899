#ifndef SEQUENT_CORE_GRAPH_BUILDER_H_
#define SEQUENT_CORE_GRAPH_BUILDER_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "core/graph.h"
#include "core/op_registry.h"

namespace sequent {

// Emits type-checked nodes into a Graph. The first error sticks: later calls return
// kNoValue and do nothing, so model code and gradient rules read straight through and check
// status() once. Errors name the current layer ("layer 'dense_1': [matmul] ...").
class GraphBuilder {
 public:
  GraphBuilder(Graph* graph, const OpRegistry* registry) : graph_(graph), registry_(registry) {}

  // Emits `op` and returns its first output (kNoValue on error or when it has none).
  ValueId Op(absl::string_view op, std::vector<ValueId> inputs, Attributes attrs = {});
  // Emits `op` and returns all its outputs (empty on error).
  std::vector<ValueId> OpMulti(absl::string_view op, std::vector<ValueId> inputs,
                               Attributes attrs = {});

  // A feed of the executable: `name` is how callers bind data ("x", "y", "learning_rate").
  ValueId Input(std::string name, TensorType type);
  // A persistent variable; `init` holds the initializer attributes ({initializer="zeros"}).
  ValueId Variable(std::string name, TensorType type, Attributes init,
                   bool trainable = true);
  // A constant tensor filled from `values` (one value broadcasts to every element).
  ValueId Constant(TensorType type, std::vector<double> values);
  ValueId ScalarConstant(double value, DType dtype = DType::kF32);

  // Tags the nodes emitted from now on with a layer name, for errors and grouping.
  void SetLayer(std::string layer) { layer_ = std::move(layer); }
  const std::string& layer() const { return layer_; }

  const TensorType& type(ValueId value) const { return graph_->type(value); }
  Graph& graph() { return *graph_; }
  const OpRegistry& registry() const { return *registry_; }

  absl::Status status() const { return status_; }
  bool ok() const { return status_.ok(); }
  // Records an error from outside (a layer's own validation), unless one is recorded already.
  void Fail(absl::Status status);

 private:
  Graph* graph_;
  const OpRegistry* registry_;
  std::string layer_;
  absl::Status status_;
};

}  // namespace sequent

#endif  // SEQUENT_CORE_GRAPH_BUILDER_H_
