#ifndef SEQUENT_FRONTEND_LAYERS_H_
#define SEQUENT_FRONTEND_LAYERS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph_builder.h"
#include "core/training_graph.h"

namespace sequent {

// What a layer needs while it emits IR.
struct LayerBuildContext {
  DType dtype = DType::kF32;
  uint64_t seed =
      0;  // Base seed; each layer derives its own from it and its index.
  int index = 0;  // Position in the model.
};

// A layer's hyper-parameters as text, by Keras's argument names ("units" ->
// "10", "activation" -> "relu", "name" -> "dense_1"); numbers print so that
// they parse back to the same value, lists as "3,3", booleans as
// "true"/"false". Save files store it, LayerFromConfig rebuilds the layer.
using LayerConfig = std::map<std::string, std::string>;

// A layer is a configuration: it holds hyper-parameters, and emits IR when the
// model is compiled (a Dense emits matmul + bias_add + activation over two
// variables).
class Layer {
 public:
  virtual ~Layer() = default;
  // Keras's class name ("Dense") and the base of generated names ("dense").
  virtual std::string type_name() const = 0;
  virtual std::string base_name() const = 0;
  // Emits the layer on `input` and returns its output value; errors go into the
  // builder.
  virtual ValueId Emit(GraphBuilder& b, ValueId input,
                       const LayerBuildContext& ctx) = 0;
  virtual std::vector<Regularizer> regularizers() const { return {}; }
  // Everything LayerFromConfig(type_name(), config()) needs to rebuild an equal
  // layer, the name included (so variable names match). Layers defined outside
  // this file only report their name and cannot be rebuilt.
  virtual LayerConfig config() const { return {{"name", name_}}; }

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

 protected:
  // "<layer>/<what>", the variable names get_weights and save files use.
  std::string VariableName(const std::string& what) const {
    return name_ + "/" + what;
  }

 private:
  std::string name_;
};

using LayerPtr = std::shared_ptr<Layer>;

// Keras: the input layer; the shape excludes the batch.
class InputLayer : public Layer {
 public:
  explicit InputLayer(std::vector<int64_t> shape) : shape_(std::move(shape)) {}
  std::string type_name() const override { return "InputLayer"; }
  std::string base_name() const override { return "input_layer"; }
  ValueId Emit(GraphBuilder& b, ValueId input,
               const LayerBuildContext& ctx) override;
  LayerConfig config() const override;
  const std::vector<int64_t>& shape() const { return shape_; }

 private:
  std::vector<int64_t> shape_;
};

// L1/L2 weight penalty (keras.regularizers.L1L2).
struct L1L2 {
  double l1 = 0.0;
  double l2 = 0.0;
  bool active() const { return l1 != 0.0 || l2 != 0.0; }
};

struct DenseOptions {
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  L1L2 kernel_regularizer;
  std::string name;
};

struct Conv2DOptions {
  std::vector<int64_t> strides = {1, 1};
  std::string padding = "valid";
  std::string activation = "linear";
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  L1L2 kernel_regularizer;
  std::string name;
};

struct PoolOptions {
  std::vector<int64_t> strides;  // Empty: the pool size.
  std::string padding = "valid";
  std::string name;
};

struct BatchNormalizationOptions {
  double momentum = 0.99;
  double epsilon = 1e-3;
  std::string name;
};

// Layer factories, named and shaped like Keras's constructors.
LayerPtr Input(std::vector<int64_t> shape);
LayerPtr Dense(int64_t units, std::string activation = "linear",
               DenseOptions options = {});
LayerPtr Activation(std::string activation, std::string name = "");
LayerPtr Flatten(std::string name = "");
LayerPtr Reshape(std::vector<int64_t> target_shape, std::string name = "");
LayerPtr Dropout(double rate, uint64_t seed = 0, std::string name = "");
LayerPtr Conv2D(int64_t filters, std::vector<int64_t> kernel_size,
                Conv2DOptions options = {});
LayerPtr MaxPooling2D(std::vector<int64_t> pool_size = {2, 2},
                      PoolOptions options = {});
LayerPtr AveragePooling2D(std::vector<int64_t> pool_size = {2, 2},
                          PoolOptions options = {});
LayerPtr GlobalAveragePooling2D(std::string name = "");
LayerPtr BatchNormalization(BatchNormalizationOptions options = {});
LayerPtr LayerNormalization(double epsilon = 1e-3, std::string name = "");

// Rebuilds a layer from its type_name() and config(); an unknown type, a
// missing or unknown key or an unparsable value is an InvalidArgumentError
// naming the layer type and key.
absl::StatusOr<LayerPtr> LayerFromConfig(const std::string& type_name,
                                         const LayerConfig& config);

// Emits a Keras activation by name ("relu", "softmax", "linear", ...); an
// unknown name is an error listing the valid ones.
ValueId EmitActivation(GraphBuilder& b, ValueId x,
                       const std::string& activation);
// The valid Keras activation names, for messages.
const std::vector<std::string>& ActivationNames();

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_LAYERS_H_
