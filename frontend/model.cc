#include "frontend/model.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backends/cpu/cpu_backend.h"
#ifdef SEQUENT_WITH_CUDA
#include "backends/cuda/cuda_backend.h"
#endif
#include "core/graph_builder.h"
#include "core/memory_planner.h"
#include "core/passes/backward_fusion.h"
#include "core/passes/canonicalize.h"
#include "core/passes/cse.h"
#include "core/passes/dce.h"
#include "core/passes/pipeline.h"
#include "frontend/data.h"
#include "frontend/dump.h"
#include "frontend/error.h"
#include "frontend/mixed_precision.h"
#include "frontend/progress.h"
#include "ops/registry.h"

namespace sequent {
namespace {

// Keras names layers and models from process-wide counters: dense, dense_1, ...
std::mutex name_mutex;
std::map<std::string, int>& NameCounters() {
  static auto* counters = new std::map<std::string, int>();
  return *counters;
}
std::string UniqueName(const std::string& base) {
  std::lock_guard<std::mutex> lock(name_mutex);
  const int n = NameCounters()[base]++;
  return n == 0 ? base : absl::StrCat(base, "_", n);
}

uint64_t global_seed = 0;
uint64_t models_created = 0;
DType global_floatx = DType::kF32;
bool global_deterministic = false;

// Bytes a model may plan to use: SEQUENT_MEMORY_LIMIT_BYTES when set, else the
// kernel's MemAvailable estimate, else the free pages; -1 when unknown.
int64_t AvailableMemoryBytes() {
  if (const char* env = std::getenv("SEQUENT_MEMORY_LIMIT_BYTES")) {
    int64_t limit = 0;
    if (absl::SimpleAtoi(env, &limit) && limit > 0) return limit;
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) return int64_t{pages} * page_size;
  return -1;
}

// Fails before a backend allocates a plan that cannot fit: the arena plus the
// variables the store does not hold yet. A plan the planner cannot make is left
// to the backend, which reports it.
void CheckMemory(const Graph& graph, int64_t batch_size,
                 const VariableStore& store, const std::string& model_name) {
  absl::StatusOr<MemoryPlan> plan =
      PlanMemory(BindBatch(graph, batch_size), ops::DefaultRegistry());
  if (!plan.ok()) return;
  int64_t needed = plan->arena_bytes;
  std::set<std::string> counted;
  for (const BufferAssignment& b : plan->buffers) {
    if (b.kind == BufferAssignment::Kind::kVariable &&
        !store.Contains(b.variable) && counted.insert(b.variable).second) {
      needed += b.bytes;
    }
  }
  const int64_t available = AvailableMemoryBytes();
  if (available >= 0 && needed > available) {
    throw Error(absl::StrCat(
        "model '", model_name, "' at batch size ", batch_size, " needs ",
        needed, " bytes (", plan->arena_bytes,
        " for activations, the rest for ", "variables) but only ", available,
        " are available; use a smaller batch_size or smaller layers"));
  }
}

// Activations whose derivative can be read off the activation's output, so a
// fused dense{activation} stays differentiable (its input is not kept).
bool GradientFromOutput(absl::string_view activation) {
  return activation == "linear" || activation == "relu" ||
         activation == "sigmoid" || activation == "tanh";
}

std::string KerasShape(const Shape& shape) {
  std::vector<std::string> dims;
  for (int64_t d : shape.dims())
    dims.push_back(d == Shape::kBatch ? "None" : absl::StrCat(d));
  if (dims.size() == 1) return absl::StrCat("(", dims[0], ",)");
  return absl::StrCat("(", absl::StrJoin(dims, ", "), ")");
}

std::string WithThousands(int64_t n) {
  std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string ReadableBytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB"};
  for (const char* unit : units) {
    if (bytes / 1024 < 1) return absl::StrFormat("%.2f %s", bytes, unit);
    bytes /= 1024;
  }
  return absl::StrFormat("%.2f TB", bytes);
}

// The shuffle seed of one epoch: a function of (model seed, epoch) alone, so
// that a model resumed from a save file at epoch k shuffles epoch k exactly as
// an uninterrupted run does (splitmix64 spreads nearby inputs apart).
uint64_t EpochShuffleSeed(uint64_t seed, int epoch) {
  uint64_t z = (seed ^ 0x5DEECE66Dull) +
               0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(epoch) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string Pad(const std::string& text, size_t width, bool right) {
  // Width counts characters, not UTF-8 bytes; the table's text is ASCII.
  if (text.size() >= width) return text;
  const std::string fill(width - text.size(), ' ');
  return right ? fill + text : text + fill;
}

std::string Repeat(const char* s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

void SetFloatX(DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kF64) {
    throw Error(absl::StrCat("set_floatx: models compute in f32 or f64, not ",
                             DTypeName(dtype)));
  }
  std::lock_guard<std::mutex> lock(name_mutex);
  global_floatx = dtype;
}

DType FloatX() {
  std::lock_guard<std::mutex> lock(name_mutex);
  return global_floatx;
}

void set_deterministic(bool deterministic) {
  std::lock_guard<std::mutex> lock(name_mutex);
  global_deterministic = deterministic;
  CpuBackend::SetFixedKernelChoice(deterministic);
}

bool deterministic() {
  std::lock_guard<std::mutex> lock(name_mutex);
  return global_deterministic;
}

void SetRandomSeed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(name_mutex);
  global_seed = seed;
  models_created = 0;
}

// An executable with its staging buffers, so fit() allocates nothing per batch.
struct Sequential::Staged {
  std::unique_ptr<Executable> executable;
  Tensor x, y, sample_weight, learning_rate;
  std::vector<Feed> feeds;
  std::vector<Tensor> outputs;
};

Sequential::Sequential(std::initializer_list<LayerPtr> layers, std::string name)
    : Sequential(std::vector<LayerPtr>(layers), std::move(name)) {}

Sequential::Sequential(std::vector<LayerPtr> layers, std::string name)
    : name_(name.empty() ? UniqueName("sequential") : std::move(name)),
      device_(Device::CPU()) {
  {
    std::lock_guard<std::mutex> lock(name_mutex);
    seed_ = global_seed * 7919 + models_created++;
    dtype_ = global_floatx;
  }
  for (LayerPtr& layer : layers) add(std::move(layer));
}

Sequential::~Sequential() = default;
Sequential::Sequential(Sequential&&) noexcept = default;
Sequential& Sequential::operator=(Sequential&&) noexcept = default;

void Sequential::NameLayer(Layer& layer) {
  if (layer.name().empty()) layer.set_name(UniqueName(layer.base_name()));
}

void Sequential::add(LayerPtr layer) {
  if (layer == nullptr) throw Error("Sequential.add: the layer is null");
  if (compiled_)
    throw Error(
        "Sequential.add: the model is already compiled; add layers first");
  if (auto input = std::dynamic_pointer_cast<InputLayer>(layer)) {
    if (input_ != nullptr || !layers_.empty()) {
      throw Error(
          "Sequential: Input(...) must be the first layer, and only one is "
          "allowed");
    }
    input_ = std::move(input);
    return;
  }
  NameLayer(*layer);
  for (const LayerPtr& existing : layers_) {
    if (existing->name() == layer->name()) {
      throw Error(absl::StrCat("Sequential: two layers are named '",
                               layer->name(), "'; layer names must be unique"));
    }
  }
  layers_.push_back(std::move(layer));
}

const std::vector<int64_t>& Sequential::input_shape() const {
  if (input_ == nullptr) {
    throw Error(
        absl::StrCat("model '", name_,
                     "' has no input shape: start it with Input({...}), e.g. "
                     "Sequential({Input({784}), Dense(10)})"));
  }
  return input_->shape();
}

Graph Sequential::BuildForward(std::vector<LayerInfo>* infos) const {
  input_shape();
  if (layers_.empty())
    throw Error(absl::StrCat("model '", name_, "' has no layers"));
  Graph g(name_);
  GraphBuilder b(&g, &ops::DefaultRegistry());
  LayerBuildContext ctx;
  ctx.seed = seed_;
  ctx.dtype = dtype_;
  ValueId x = input_->Emit(b, kNoValue, ctx);
  // A bad Input shape fails here, before a layer reads the missing value.
  ThrowIfError(b.status());
  for (size_t i = 0; i < layers_.size(); ++i) {
    ctx.index = static_cast<int>(i);
    b.SetLayer(layers_[i]->name());
    const int before = g.num_nodes();
    x = layers_[i]->Emit(b, x, ctx);
    ThrowIfError(b.status());
    if (infos != nullptr) {
      LayerInfo info{layers_[i]->name(), layers_[i]->type_name(), g.type(x)};
      for (NodeId id = before; id < g.num_nodes(); ++id) {
        const Node& n = g.node(id);
        if (n.op != kVariableOp) continue;
        const int64_t count = g.type(n.outputs[0]).shape.NumElements();
        if (layers_[i]->type_name() == "Dropout")
          continue;  // Its step counter is no weight.
        (BoolAttrOr(n.attrs, "trainable", true) ? info.trainable_params
                                                : info.non_trainable_params) +=
            count;
      }
      infos->push_back(std::move(info));
    }
  }
  b.SetLayer("");
  g.AddOutput(kPredictionOutput, x);
  return g;
}

void Sequential::compile(Optimizer optimizer, Loss loss,
                         std::vector<std::string> metrics,
                         std::optional<Device> device) {
  const OpRegistry& registry = ops::DefaultRegistry();
  std::vector<LayerInfo> infos;
  built_ = BuildForward(&infos);
  weight_names_.clear();
  for (const LayerPtr& layer : layers_) {
    if (layer->type_name() == "Dropout") continue;
    for (NodeId id : built_.VariableNodes()) {
      if (built_.node(id).layer == layer->name()) {
        weight_names_.push_back(
            StringAttrOr(built_.node(id).attrs, "name", ""));
      }
    }
  }

  const ResolvedOptimizer resolved = ValueOrThrow(ResolveOptimizer(optimizer));
  loss_ = ValueOrThrow(ResolveLoss(loss));
  metrics_.clear();
  for (const std::string& m : metrics)
    metrics_.push_back(ValueOrThrow(ResolveMetric(m, loss_)));
  learning_rate_ = resolved.learning_rate;

  const TensorType y_pred = built_.type(built_.FindOutput(kPredictionOutput));
  if (loss_.op == "sparse_categorical_crossentropy") {
    if (y_pred.shape.rank() != 2) {
      throw Error(absl::StrCat(
          "loss sparse_categorical_crossentropy needs outputs of shape "
          "(None, classes); the model outputs ",
          KerasShape(y_pred.shape)));
    }
    label_type_ = {DType::kI32, Shape{Shape::kBatch}};
    num_classes_ = y_pred.shape[1];
  } else {
    label_type_ = y_pred;
    num_classes_ = 0;
  }

  device_ = device ? *device : WithDevice::Current();
  backend_ = ValueOrThrow(CreateBackend(device_));
  dtype_policy_ = mixed_precision::global_policy();
  if (auto* cpu = dynamic_cast<CpuBackend*>(backend_.get())) {
    if (deterministic()) {
      // oneDNN's and our loops' partitions follow the thread count: pin it,
      // and keep OpenMP from handing a region fewer threads than asked.
      omp_set_dynamic(0);
      if (cpu->num_threads() <= 0) cpu->SetNumThreads(omp_get_num_procs());
    }
    if (dtype_policy_ == "mixed_bfloat16" && dtype_ == DType::kF32) {
      ThrowIfError(cpu->SetComputeDType(DType::kBF16));
    }
  }
#ifdef SEQUENT_WITH_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(backend_.get())) {
    if (dtype_policy_ == "mixed_bfloat16" && dtype_ == DType::kF32) {
      ThrowIfError(cuda->SetComputeDType(DType::kBF16));
    }
  }
#endif
  FusionPolicy policy{[backend = backend_.get()](absl::string_view activation) {
    return backend->SupportsFusedDense(activation) &&
           GradientFromOutput(activation);
  }};
  optimized_ = built_;
  PassPipeline forward = ForwardPipeline(registry, policy);
  ThrowIfError(forward.Run(optimized_).status());

  TrainingConfig config;
  config.loss = loss_;
  config.optimizer = resolved.spec;
  config.metrics = metrics_;
  config.label_type = label_type_;
  config.sample_weights = true;
  for (const LayerPtr& layer : layers_) {
    for (const Regularizer& r : layer->regularizers())
      config.regularizers.push_back(r);
  }
  graphs_ = ValueOrThrow(BuildTrainingGraphs(optimized_, config, registry));
  PassPipeline training(registry);
  training.AddPass<CanonicalizePass>(registry);
  training.AddPass<CsePass>(registry);
  training.AddPass<BackwardFusionPass>(registry);
  training.AddPass<DcePass>();
  for (Graph* g : {&graphs_.train, &graphs_.eval, &graphs_.predict}) {
    ThrowIfError(training.Run(*g).status());
  }
  store_ = backend_->CreateVariableStore();
  executables_.clear();
  compile_args_ =
      CompileArgs{std::move(optimizer), std::move(loss), std::move(metrics)};
  compiled_ = true;
  DumpStagesIfRequested(name_, {{"built", &built_},
                                {"optimized", &optimized_},
                                {"train", &graphs_.train},
                                {"eval", &graphs_.eval},
                                {"predict", &graphs_.predict}});
}

void Sequential::RequireTrainable(const char* what) const {
  if (graphs_.train.num_nodes() == 0) {
    throw Error(absl::StrCat(
        what, ": model '", name_,
        "' has no trainable variables to train; it can still predict "
        "and evaluate"));
  }
}

void Sequential::RequireCompiled(const char* what) const {
  if (!compiled_) {
    throw Error(
        absl::StrCat(what,
                     ": the model must be compiled first: call model.compile("
                     "optimizer, loss, metrics)"));
  }
}

const Graph& Sequential::graph(GraphStage stage) const {
  if (stage != GraphStage::kBuilt) RequireCompiled("graph");
  switch (stage) {
    case GraphStage::kBuilt:
      return built_;
    case GraphStage::kOptimized:
      return optimized_;
    case GraphStage::kTrain:
      return graphs_.train;
    case GraphStage::kEval:
      return graphs_.eval;
    case GraphStage::kPredict:
      return graphs_.predict;
  }
  return built_;
}

Backend& Sequential::backend() const {
  RequireCompiled("backend");
  return *backend_;
}

VariableStore& Sequential::variables() const {
  RequireCompiled("variables");
  return *store_;
}

Executable& Sequential::executable(GraphStage stage, int64_t batch_size) {
  RequireCompiled("executable");
  auto key = std::make_pair(static_cast<int>(stage), batch_size);
  auto it = executables_.find(key);
  if (it != executables_.end()) return *it->second->executable;
  auto staged = std::make_unique<Staged>();
  CheckMemory(graph(stage), batch_size, *store_, name_);
  staged->executable =
      ValueOrThrow(backend_->Compile(graph(stage), batch_size, store_.get()));
  const TensorType x_type = graphs_.predict.type(
      graphs_.predict.node(graphs_.predict.FindInput(kFeatureFeed)).outputs[0]);
  staged->x = Tensor(x_type.dtype, x_type.shape.WithBatch(batch_size));
  staged->feeds.push_back({kFeatureFeed, &staged->x});
  if (stage == GraphStage::kTrain || stage == GraphStage::kEval) {
    staged->y =
        Tensor(label_type_.dtype, label_type_.shape.WithBatch(batch_size));
    staged->feeds.push_back({kLabelFeed, &staged->y});
  }
  if (stage == GraphStage::kTrain) {
    const DType dtype = x_type.dtype;
    staged->sample_weight = Tensor(dtype, Shape{batch_size});
    staged->learning_rate = Tensor(dtype, Shape{});
    staged->feeds.push_back({kSampleWeightFeed, &staged->sample_weight});
    staged->feeds.push_back({kLearningRateFeed, &staged->learning_rate});
  }
  Executable& result = *staged->executable;
  executables_[key] = std::move(staged);
  return result;
}

void Sequential::set_learning_rate(double learning_rate) {
  if (!(learning_rate > 0.0) || !std::isfinite(learning_rate)) {
    throw Error(absl::StrCat("learning_rate must be a positive number, got ",
                             learning_rate));
  }
  learning_rate_ = learning_rate;
}

Tensor Sequential::PrepareX(const Tensor& x, const char* what) const {
  const std::vector<int64_t>& expected = input_shape();
  std::vector<int64_t> want = {x.shape().rank() > 0 ? x.shape()[0] : 0};
  want.insert(want.end(), expected.begin(), expected.end());
  if (x.shape().rank() == 0 || x.shape().dims() != want) {
    std::vector<int64_t> model_shape = {Shape::kBatch};
    model_shape.insert(model_shape.end(), expected.begin(), expected.end());
    throw Error(absl::StrCat(what, ": x has shape ", KerasShape(x.shape()),
                             ", but the model's Input expects ",
                             KerasShape(Shape(model_shape))));
  }
  if (x.shape()[0] == 0)
    throw Error(absl::StrCat(what, ": x is empty (0 samples)"));
  if (x.dtype() == DType::kBool)
    throw Error(absl::StrCat(what, ": x must be numeric, got bool"));
  Tensor converted = x.dtype() == dtype_ ? x : x.CastTo(dtype_);
  for (int64_t i = 0; i < converted.num_elements(); ++i) {
    const double value = converted.GetAsDouble(i);
    if (!std::isfinite(value)) {
      const int64_t per_sample =
          converted.num_elements() / converted.shape()[0];
      throw Error(absl::StrCat(
          what, ": x contains ", std::isnan(value) ? "NaN" : "Inf", " (sample ",
          i / per_sample, "); clean or impute the data first"));
    }
  }
  return converted;
}

Tensor Sequential::PrepareY(const Tensor& y, int64_t rows,
                            const char* what) const {
  if (y.shape().rank() == 0 || y.shape()[0] != rows) {
    throw Error(absl::StrCat(
        what, ": x and y have different numbers of samples: x has ", rows,
        ", y has ", y.shape().rank() == 0 ? 0 : y.shape()[0]));
  }
  if (num_classes_ > 0) {
    if (!(y.shape().rank() == 1 ||
          (y.shape().rank() == 2 && y.shape()[1] == 1))) {
      throw Error(absl::StrCat(
          what,
          ": sparse_categorical_crossentropy wants integer labels of "
          "shape (samples,), got y of shape ",
          KerasShape(y.shape()),
          " (one-hot labels go with categorical_crossentropy)"));
    }
    Tensor labels(DType::kI32, Shape{rows});
    auto out = labels.data<int32_t>();
    for (int64_t i = 0; i < rows; ++i) {
      const double v = y.GetAsDouble(i);
      if (!(v >= 0 && v < static_cast<double>(num_classes_)) ||
          v != std::floor(v)) {
        throw Error(absl::StrCat(
            what, ": label ", v, " at sample ", i,
            " is out of range: the model has ", num_classes_,
            " outputs, so labels must be integers in [0, ", num_classes_, ")"));
      }
      out[i] = static_cast<int32_t>(v);
    }
    return labels;
  }
  std::vector<int64_t> want = {rows};
  for (int i = 1; i < label_type_.shape.rank(); ++i)
    want.push_back(label_type_.shape[i]);
  Tensor labels =
      y.dtype() == label_type_.dtype ? y : y.CastTo(label_type_.dtype);
  if (labels.shape().dims() != want) {
    // Keras accepts y of shape (n,) for a model with one output unit.
    if (labels.num_elements() == Shape(want).NumElements()) {
      Tensor reshaped(labels.dtype(), Shape(want));
      std::memcpy(reshaped.raw_data(), labels.raw_data(), labels.num_bytes());
      labels = std::move(reshaped);
    } else {
      throw Error(absl::StrCat(what, ": y has shape ", KerasShape(y.shape()),
                               ", but the model's output is ",
                               KerasShape(label_type_.shape), " for loss '",
                               loss_.op, "'"));
    }
  }
  for (int64_t i = 0; i < labels.num_elements(); ++i) {
    if (!std::isfinite(labels.GetAsDouble(i))) {
      throw Error(absl::StrCat(what, ": y contains NaN or Inf at element ", i));
    }
  }
  return labels;
}

Logs Sequential::RunBatches(GraphStage stage, const Tensor& x, const Tensor* y,
                            const std::vector<int64_t>& rows,
                            int64_t batch_size,
                            const std::vector<double>* sample_weights,
                            ProgressBar* bar,
                            std::vector<CallbackPtr>* callbacks,
                            Tensor* predictions) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t steps = (n + batch_size - 1) / batch_size;
  std::map<std::string, double> sums;
  int64_t seen = 0;
  Logs logs;
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t begin = step * batch_size;
    const int64_t count = std::min(batch_size, n - begin);
    executable(stage, count);
    Staged& s = *executables_.at({static_cast<int>(stage), count});
    GatherRows(x, rows.data() + begin, count, s.x);
    if (y != nullptr) GatherRows(*y, rows.data() + begin, count, s.y);
    if (stage == GraphStage::kTrain) {
      for (int64_t i = 0; i < count; ++i) {
        s.sample_weight.SetFromDouble(
            i, sample_weights == nullptr ? 1.0
                                         : (*sample_weights)[rows[begin + i]]);
      }
      s.learning_rate.SetFromDouble(0, learning_rate_);
    }
    ThrowIfError(s.executable->Run(s.feeds, s.outputs));
    const auto& names = s.executable->output_names();
    if (predictions != nullptr) {
      const Tensor& out = s.outputs[0];
      const size_t row_bytes = out.num_bytes() / static_cast<size_t>(count);
      std::memcpy(
          static_cast<std::byte*>(predictions->raw_data()) + begin * row_bytes,
          out.raw_data(), out.num_bytes());
    } else {
      // Keras averages loss and metrics over samples: weight each batch by its
      // size.
      for (size_t i = 0; i < names.size(); ++i) {
        sums[names[i]] +=
            s.outputs[i].GetAsDouble(0) * static_cast<double>(count);
      }
      seen += count;
      for (const auto& [name, sum] : sums)
        logs[name] = sum / static_cast<double>(seen);
    }
    if (callbacks != nullptr) {
      Logs batch_logs;
      for (size_t i = 0; i < names.size() && predictions == nullptr; ++i) {
        batch_logs[names[i]] = s.outputs[i].GetAsDouble(0);
      }
      for (auto& cb : *callbacks)
        cb->on_train_batch_end(static_cast<int>(step), batch_logs);
    }
    if (bar != nullptr && step + 1 < steps) bar->Update(step + 1, logs, false);
    if (stop_training && stage == GraphStage::kTrain) break;
  }
  return logs;
}

History Sequential::fit(const Tensor& x_in, const Tensor& y_in,
                        FitOptions options) {
  RequireCompiled("fit");
  RequireTrainable("fit");
  if (options.batch_size <= 0) {
    throw Error(absl::StrCat("fit: batch_size must be a positive integer, got ",
                             options.batch_size));
  }
  if (options.epochs < 0 || options.initial_epoch < 0) {
    throw Error("fit: epochs and initial_epoch must be >= 0");
  }
  if (!(options.validation_split >= 0.0 && options.validation_split < 1.0)) {
    throw Error(absl::StrCat("fit: validation_split must be in [0, 1), got ",
                             options.validation_split));
  }
  const Tensor x = PrepareX(x_in, "fit");
  const int64_t n = x.shape()[0];
  const Tensor y = PrepareY(y_in, n, "fit");

  int64_t n_train = n;
  std::optional<std::pair<Tensor, Tensor>> validation;
  if (options.validation_data) {
    Tensor vx =
        PrepareX(options.validation_data->first, "fit(validation_data)");
    Tensor vy = PrepareY(options.validation_data->second, vx.shape()[0],
                         "fit(validation_data)");
    validation.emplace(std::move(vx), std::move(vy));
  } else if (options.validation_split > 0.0) {
    n_train = static_cast<int64_t>(static_cast<double>(n) *
                                   (1.0 - options.validation_split));
    if (n_train == 0 || n_train == n) {
      throw Error(absl::StrCat(
          "fit: validation_split=", options.validation_split, " of ", n,
          " samples leaves ", n_train == 0 ? "no training" : "no validation",
          " samples"));
    }
  }
  if (options.batch_size > n_train)
    options.batch_size = n_train;  // Keras runs one batch.

  std::vector<double> weights;
  if (!options.class_weight.empty()) {
    if (num_classes_ == 0 && label_type_.shape.rank() > 1 &&
        label_type_.shape[1] > 1) {
      throw Error(
          "fit: class_weight needs integer class labels or one-hot labels");
    }
    weights.resize(static_cast<size_t>(n), 1.0);
    for (int64_t i = 0; i < n; ++i) {
      int64_t cls;
      if (num_classes_ > 0) {
        cls = y.data<int32_t>()[i];
      } else {
        cls = static_cast<int64_t>(
            std::llround(y.GetAsDouble(i * y.shape().NumElements() / n)));
      }
      auto it = options.class_weight.find(cls);
      if (it != options.class_weight.end()) weights[i] = it->second;
    }
  }

  const int verbose = options.verbose < 0 ? 1 : options.verbose;
  std::ostream& out = *options.out;
  const int64_t steps = (n_train + options.batch_size - 1) / options.batch_size;
  History history;
  history.params = {
      {"epochs", options.epochs}, {"steps", steps}, {"verbose", verbose}};
  stop_training = false;
  for (auto& cb : options.callbacks) cb->set_model(this);
  for (auto& cb : options.callbacks) cb->on_train_begin({});

  std::vector<int64_t> rows(static_cast<size_t>(n_train));
  Logs logs;
  for (int epoch = options.initial_epoch; epoch < options.epochs; ++epoch) {
    for (auto& cb : options.callbacks) cb->on_epoch_begin(epoch, {});
    std::iota(rows.begin(), rows.end(), 0);
    if (options.shuffle) {
      std::mt19937_64 shuffle_rng(EpochShuffleSeed(seed_, epoch));
      // Fisher-Yates over raw generator bits: the same order on every platform.
      for (int64_t i = n_train - 1; i > 0; --i) {
        const int64_t j =
            static_cast<int64_t>(shuffle_rng() % static_cast<uint64_t>(i + 1));
        std::swap(rows[i], rows[j]);
      }
    }
    if (verbose != 0)
      out << "Epoch " << epoch + 1 << "/" << options.epochs << "\n";
    ProgressBar bar(steps, verbose, verbose == 1 && IsTerminal(out), out);
    logs =
        RunBatches(GraphStage::kTrain, x, &y, rows, options.batch_size,
                   weights.empty() ? nullptr : &weights,
                   verbose != 0 ? &bar : nullptr, &options.callbacks, nullptr);
    if (validation || n_train < n) {
      const Tensor& vx = validation ? validation->first : x;
      const Tensor& vy = validation ? validation->second : y;
      std::vector<int64_t> vrows;
      if (validation) {
        vrows.resize(static_cast<size_t>(vx.shape()[0]));
        std::iota(vrows.begin(), vrows.end(), 0);
      } else {
        for (int64_t i = n_train; i < n; ++i) vrows.push_back(i);
      }
      const Logs val =
          RunBatches(GraphStage::kEval, vx, &vy, vrows, options.batch_size,
                     nullptr, nullptr, nullptr, nullptr);
      for (const auto& [name, value] : val) logs["val_" + name] = value;
    }
    if (verbose != 0) bar.Update(steps, logs, true);
    for (auto& cb : options.callbacks) cb->on_epoch_end(epoch, logs);
    history.epoch.push_back(epoch);
    for (const auto& [name, value] : logs)
      history.history[name].push_back(value);
    if (stop_training) break;
  }
  for (auto& cb : options.callbacks) cb->on_train_end(logs);
  return history;
}

Logs Sequential::evaluate(const Tensor& x_in, const Tensor& y_in,
                          EvaluateOptions options) {
  RequireCompiled("evaluate");
  if (options.batch_size <= 0) {
    throw Error(
        absl::StrCat("evaluate: batch_size must be a positive integer, got ",
                     options.batch_size));
  }
  const Tensor x = PrepareX(x_in, "evaluate");
  const Tensor y = PrepareY(y_in, x.shape()[0], "evaluate");
  std::vector<int64_t> rows(static_cast<size_t>(x.shape()[0]));
  std::iota(rows.begin(), rows.end(), 0);
  const int64_t batch = std::min(options.batch_size, x.shape()[0]);
  const int verbose = options.verbose < 0 ? 1 : options.verbose;
  const int64_t steps = (x.shape()[0] + batch - 1) / batch;
  ProgressBar bar(steps, verbose, verbose == 1 && IsTerminal(*options.out),
                  *options.out);
  Logs logs = RunBatches(GraphStage::kEval, x, &y, rows, batch, nullptr,
                         verbose != 0 ? &bar : nullptr, nullptr, nullptr);
  if (verbose != 0) bar.Update(steps, logs, true);
  return logs;
}

Tensor Sequential::predict(const Tensor& x_in, PredictOptions options) {
  RequireCompiled("predict");
  if (options.batch_size <= 0) {
    throw Error(
        absl::StrCat("predict: batch_size must be a positive integer, got ",
                     options.batch_size));
  }
  const Tensor x = PrepareX(x_in, "predict");
  const int64_t n = x.shape()[0];
  const TensorType y_pred =
      graphs_.predict.type(graphs_.predict.FindOutput(kPredictionOutput));
  Tensor predictions(y_pred.dtype, y_pred.shape.WithBatch(n));
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  const int64_t batch = std::min(options.batch_size, n);
  const int64_t steps = (n + batch - 1) / batch;
  ProgressBar bar(steps, options.verbose,
                  options.verbose == 1 && IsTerminal(*options.out),
                  *options.out);
  RunBatches(GraphStage::kPredict, x, nullptr, rows, batch, nullptr,
             options.verbose != 0 ? &bar : nullptr, nullptr, &predictions);
  if (options.verbose != 0) bar.Update(steps, {}, true);
  return predictions;
}

Logs Sequential::train_on_batch(const Tensor& x_in, const Tensor& y_in) {
  RequireCompiled("train_on_batch");
  RequireTrainable("train_on_batch");
  const Tensor x = PrepareX(x_in, "train_on_batch");
  const Tensor y = PrepareY(y_in, x.shape()[0], "train_on_batch");
  std::vector<int64_t> rows(static_cast<size_t>(x.shape()[0]));
  std::iota(rows.begin(), rows.end(), 0);
  return RunBatches(GraphStage::kTrain, x, &y, rows, x.shape()[0], nullptr,
                    nullptr, nullptr, nullptr);
}

Logs Sequential::test_on_batch(const Tensor& x_in, const Tensor& y_in) {
  RequireCompiled("test_on_batch");
  const Tensor x = PrepareX(x_in, "test_on_batch");
  const Tensor y = PrepareY(y_in, x.shape()[0], "test_on_batch");
  std::vector<int64_t> rows(static_cast<size_t>(x.shape()[0]));
  std::iota(rows.begin(), rows.end(), 0);
  return RunBatches(GraphStage::kEval, x, &y, rows, x.shape()[0], nullptr,
                    nullptr, nullptr, nullptr);
}

Tensor Sequential::predict_on_batch(const Tensor& x) {
  return predict(x, {.batch_size = std::max<int64_t>(
                         1, x.shape().rank() ? x.shape()[0] : 1)});
}

std::vector<std::string> Sequential::weight_names() const {
  RequireCompiled("weight_names");
  return weight_names_;
}

std::vector<Tensor> Sequential::get_weights() const {
  RequireCompiled("get_weights");
  std::vector<Tensor> weights;
  for (const std::string& name : weight_names_) {
    if (!store_->Contains(name)) {
      // Not created yet: no executable has run. Initialize through a predict
      // compile.
      const_cast<Sequential*>(this)->executable(GraphStage::kPredict, 1);
    }
    weights.push_back(ValueOrThrow(store_->Read(name)));
  }
  return weights;
}

void Sequential::set_weights(const std::vector<Tensor>& weights) {
  RequireCompiled("set_weights");
  if (weights.size() != weight_names_.size()) {
    throw Error(absl::StrCat("set_weights: the model has ",
                             weight_names_.size(), " weights, got ",
                             weights.size()));
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    const NodeId id = built_.FindVariable(weight_names_[i]);
    const TensorType want = built_.type(built_.node(id).outputs[0]);
    if (weights[i].shape() != want.shape) {
      throw Error(absl::StrCat("set_weights: weight ", i, " ('",
                               weight_names_[i], "') must have shape ",
                               KerasShape(want.shape), ", got ",
                               KerasShape(weights[i].shape())));
    }
    ThrowIfError(
        store_->Write(weight_names_[i], weights[i].dtype() == want.dtype
                                            ? weights[i]
                                            : weights[i].CastTo(want.dtype)));
  }
}

std::string Sequential::summary_string() const {
  std::vector<LayerInfo> infos;
  BuildForward(&infos);
  // Keras 3 on an 80-column terminal: columns of 31, 22 and 13 characters plus
  // padding.
  const size_t w1 = 31, w2 = 22, w3 = 13;
  std::string out = absl::StrCat("Model: \"", name_, "\"\n");
  const auto rule = [&](const char* left, const char* fill, const char* mid,
                        const char* right) {
    return absl::StrCat(left, Repeat(fill, w1 + 2), mid, Repeat(fill, w2 + 2),
                        mid, Repeat(fill, w3 + 2), right, "\n");
  };
  const auto row = [&](const char* bar, const std::string& a,
                       const std::string& b, const std::string& c) {
    return absl::StrCat(bar, " ", Pad(a, w1, false), " ", bar, " ",
                        Pad(b, w2, false), " ", bar, " ", Pad(c, w3, true), " ",
                        bar, "\n");
  };
  out += rule("\u250f", "\u2501", "\u2533", "\u2513");
  out += row("\u2503", "Layer (type)", "Output Shape", "Param #");
  out += rule("\u2521", "\u2501", "\u2547", "\u2529");
  int64_t trainable = 0, non_trainable = 0;
  for (size_t i = 0; i < infos.size(); ++i) {
    const LayerInfo& info = infos[i];
    const std::string label = absl::StrCat(info.name, " (", info.type, ")");
    const std::string params =
        WithThousands(info.trainable_params + info.non_trainable_params);
    if (label.size() <= w1) {
      out += row("\u2502", label, KerasShape(info.output.shape), params);
    } else {
      // Rich wraps at the space: the name, then "(Type)" on the next line.
      out += row("\u2502", info.name, KerasShape(info.output.shape), params);
      out += row("\u2502", absl::StrCat("(", info.type, ")"), "", "");
    }
    out += i + 1 < infos.size() ? rule("\u251c", "\u2500", "\u253c", "\u2524")
                                : rule("\u2514", "\u2500", "\u2534", "\u2518");
    trainable += info.trainable_params;
    non_trainable += info.non_trainable_params;
  }
  const auto total_line = [](const char* what, int64_t count) {
    return absl::StrCat(" ", what, ": ", WithThousands(count), " (",
                        ReadableBytes(static_cast<double>(count) * 4), ")\n");
  };
  out += total_line("Total params", trainable + non_trainable);
  out += total_line("Trainable params", trainable);
  out += total_line("Non-trainable params", non_trainable);
  return out;
}

void Sequential::summary(std::ostream& out) const { out << summary_string(); }

void Sequential::dump_graph(GraphStage stage, const std::string& format,
                            const std::string& path) const {
  ThrowIfError(DumpGraph(graph(stage), format, path));
}

}  // namespace sequent
