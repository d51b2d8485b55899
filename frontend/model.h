#ifndef SEQUENT_FRONTEND_MODEL_H_
#define SEQUENT_FRONTEND_MODEL_H_

#include <cstdint>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "core/graph.h"
#include "core/tensor.h"
#include "core/training_graph.h"
#include "frontend/callbacks.h"
#include "frontend/compile_options.h"
#include "frontend/device.h"
#include "frontend/error.h"
#include "frontend/layers.h"

namespace sequent {

struct FitOptions {
  int64_t batch_size = 32;
  int epochs = 1;
  int verbose =
      -1;  // -1 "auto" (= 1), 0 silent, 1 progress bar, 2 one line per epoch.
  double validation_split =
      0.0;  // The last fraction of x/y, as Keras takes it.
  std::optional<std::pair<Tensor, Tensor>> validation_data;
  bool shuffle = true;
  int initial_epoch = 0;
  std::map<int64_t, double> class_weight;
  std::vector<CallbackPtr> callbacks;
  std::ostream* out = &std::cout;
};

struct EvaluateOptions {
  int64_t batch_size = 32;
  int verbose = -1;
  std::ostream* out = &std::cout;
};

struct PredictOptions {
  int64_t batch_size = 32;
  int verbose = 0;
  std::ostream* out = &std::cout;
};

// The arguments compile() was given, kept so that a saved model recompiles the
// same way.
struct CompileArgs {
  Optimizer optimizer;
  Loss loss;
  std::vector<std::string> metrics;
};

struct SavingAccess;

// The graphs a compiled model holds, by the stage a tool or test asks for.
enum class GraphStage { kBuilt, kOptimized, kTrain, kEval, kPredict };

// keras.Sequential. Every call goes through the IR: layers emit a forward
// graph, passes optimize it, the training step is generated from it, and a
// backend compiles each graph per batch size. Errors throw sequent::Error with
// a message that says what to fix.
class Sequential {
 public:
  Sequential(std::initializer_list<LayerPtr> layers = {},
             std::string name = "");
  explicit Sequential(std::vector<LayerPtr> layers, std::string name = "");
  ~Sequential();
  Sequential(Sequential&&) noexcept;
  Sequential& operator=(Sequential&&) noexcept;

  void add(LayerPtr layer);
  const std::string& name() const { return name_; }
  const std::vector<LayerPtr>& layers() const { return layers_; }
  DType dtype() const { return dtype_; }

  // Keras: compile(optimizer, loss, metrics). `device` defaults to the
  // WithDevice scope, else Device::Auto().
  void compile(Optimizer optimizer = std::string("rmsprop"),
               Loss loss = std::string("mean_squared_error"),
               std::vector<std::string> metrics = {},
               std::optional<Device> device = std::nullopt);
  bool compiled() const { return compiled_; }

  History fit(const Tensor& x, const Tensor& y, FitOptions options = {});
  Logs evaluate(const Tensor& x, const Tensor& y, EvaluateOptions options = {});
  Tensor predict(const Tensor& x, PredictOptions options = {});
  Logs train_on_batch(const Tensor& x, const Tensor& y);
  Logs test_on_batch(const Tensor& x, const Tensor& y);
  Tensor predict_on_batch(const Tensor& x);

  // Weights in Keras's order (layer by layer, kernel before bias), as host
  // tensors.
  std::vector<Tensor> get_weights() const;
  void set_weights(const std::vector<Tensor>& weights);
  std::vector<std::string> weight_names() const;

  // Keras: model.save(path) writes the whole model (layers, compile arguments,
  // every variable including optimizer state and counters) so that
  // load_model(path) resumes training exactly; save_weights / load_weights
  // write and read only the layers' variables. The format is documented in
  // frontend/SAVE_FORMAT.md. These are defined in frontend/saving.cc (target
  // //frontend:saving, part of //frontend:sequent).
  void save(const std::string& path) const;
  void save_weights(const std::string& path) const;
  void load_weights(const std::string& path);
  // The seed the model initializes, drops out and shuffles from.
  uint64_t seed() const { return seed_; }
  // What compile() was given; empty before compile.
  const std::optional<CompileArgs>& compile_args() const {
    return compile_args_;
  }

  // Keras's summary table (80-column terminal layout).
  void summary(std::ostream& out = std::cout) const;
  std::string summary_string() const;

  double learning_rate() const { return learning_rate_; }
  void set_learning_rate(double learning_rate);
  // Callbacks set this to end fit() after the current epoch.
  bool stop_training = false;

  const Device& device() const { return device_; }
  // The mixed_precision global policy when compile() ran ("float32" or
  // "mixed_bfloat16"; "float32" before compile). Only the cpu backend acts on
  // mixed_bfloat16 (frontend/mixed_precision.h).
  const std::string& dtype_policy() const { return dtype_policy_; }
  // The IR at a stage (compile first for all but kBuilt).
  const Graph& graph(GraphStage stage) const;
  // The executable's graph for a stage at a batch size, compiled on demand.
  Executable& executable(GraphStage stage, int64_t batch_size);
  Backend& backend() const;
  VariableStore& variables() const;
  const std::vector<MetricSpec>& metrics() const { return metrics_; }
  const LossSpec& loss() const { return loss_; }
  // Writes the graph at `stage` as text, dot, json, svg, png or html to `path`
  // ("-": stdout); see frontend/dump.h and tools/sequent-graph.
  void dump_graph(GraphStage stage, const std::string& format,
                  const std::string& path) const;

 private:
  struct LayerInfo {
    std::string name;
    std::string type;
    TensorType output;
    int64_t trainable_params = 0;
    int64_t non_trainable_params = 0;
  };
  struct Staged;

  friend struct SavingAccess;

  void NameLayer(Layer& layer);
  Graph BuildForward(std::vector<LayerInfo>* infos) const;
  const std::vector<int64_t>& input_shape() const;
  void RequireCompiled(const char* what) const;
  void RequireTrainable(const char* what) const;
  // Checks x (and y when given) against the model and converts them to the feed
  // types.
  Tensor PrepareX(const Tensor& x, const char* what) const;
  Tensor PrepareY(const Tensor& y, int64_t rows, const char* what) const;
  Logs RunBatches(GraphStage stage, const Tensor& x, const Tensor* y,
                  const std::vector<int64_t>& rows, int64_t batch_size,
                  const std::vector<double>* sample_weights,
                  class ProgressBar* bar, std::vector<CallbackPtr>* callbacks,
                  Tensor* predictions);

  std::string name_;
  std::shared_ptr<InputLayer> input_;
  std::vector<LayerPtr> layers_;
  uint64_t seed_ = 0;
  DType dtype_ = DType::kF32;

  bool compiled_ = false;
  Device device_;
  std::string dtype_policy_ = "float32";
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<VariableStore> store_;
  Graph built_;
  Graph optimized_;
  TrainingGraphs graphs_;
  LossSpec loss_;
  std::vector<MetricSpec> metrics_;
  std::optional<CompileArgs> compile_args_;
  double learning_rate_ = 0.001;
  TensorType label_type_;
  int64_t num_classes_ = 0;  // For sparse labels: the width of y_pred.
  std::vector<std::string> weight_names_;
  std::map<std::pair<int, int64_t>, std::unique_ptr<Staged>> executables_;
};

// keras.utils.set_random_seed: models created afterwards initialize and shuffle
// from it.
void SetRandomSeed(uint64_t seed);
// tf.config.experimental.enable_op_determinism: with a seed (SetRandomSeed),
// models compiled while it is on train to bit-identical weights run after run
// on the same machine (their CPU thread count is pinned; see README,
// "Determinism").
void set_deterministic(bool deterministic);
bool deterministic();
// keras.config.set_floatx: the dtype (f32 or f64) of models created afterwards.
void SetFloatX(DType dtype);
DType FloatX();

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_MODEL_H_
