#include "frontend/layers.h"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace sequent {
namespace {

// Distinct, reproducible initializer seeds per layer and variable.
int64_t VariableSeed(const LayerBuildContext& ctx, int which) {
  return static_cast<int64_t>((ctx.seed * 1000003u +
                               static_cast<uint64_t>(ctx.index) * 101u +
                               static_cast<uint64_t>(which)) &
                              0x7FFFFFFFFFFFull);
}

Attributes Initializer(const std::string& name, int64_t seed) {
  return {{"initializer", name}, {"seed", seed}};
}

std::vector<int64_t> WithBatch(const std::vector<int64_t>& dims) {
  std::vector<int64_t> out = {Shape::kBatch};
  out.insert(out.end(), dims.begin(), dims.end());
  return out;
}

std::string ShapeArg(const std::vector<int64_t>& dims) {
  return absl::StrCat("(", absl::StrJoin(dims, ", "), ")");
}

// The shortest text that parses back to exactly `v`.
std::string Num(double v) {
  char buf[32];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}
std::string Ints(const std::vector<int64_t>& v) {
  return absl::StrJoin(v, ",");
}
std::string Bool(bool v) { return v ? "true" : "false"; }

// Reads a LayerConfig back, remembering the first problem; every key of the
// config must be read (an unknown key means a corrupt or foreign config).
class ConfigReader {
 public:
  ConfigReader(const std::string& type, const LayerConfig& config)
      : type_(type), config_(config) {}

  std::string String(const std::string& key) {
    const std::string* v = Find(key);
    return v == nullptr ? "" : *v;
  }
  double Double(const std::string& key) {
    const std::string* v = Find(key);
    double out = 0.0;
    if (v != nullptr && !absl::SimpleAtod(*v, &out)) Bad(key, *v, "a number");
    return out;
  }
  int64_t Int(const std::string& key) {
    const std::string* v = Find(key);
    int64_t out = 0;
    if (v != nullptr && !absl::SimpleAtoi(*v, &out)) Bad(key, *v, "an integer");
    return out;
  }
  uint64_t Uint(const std::string& key) {
    const std::string* v = Find(key);
    uint64_t out = 0;
    if (v != nullptr && !absl::SimpleAtoi(*v, &out))
      Bad(key, *v, "a non-negative integer");
    return out;
  }
  bool Bool(const std::string& key) {
    const std::string* v = Find(key);
    if (v == nullptr) return false;
    if (*v == "true") return true;
    if (*v != "false") Bad(key, *v, "true or false");
    return false;
  }
  std::vector<int64_t> Ints(const std::string& key) {
    const std::string* v = Find(key);
    std::vector<int64_t> out;
    if (v == nullptr || v->empty()) return out;
    for (absl::string_view part : absl::StrSplit(*v, ',')) {
      int64_t d = 0;
      if (!absl::SimpleAtoi(part, &d)) {
        Bad(key, *v, "comma-separated integers");
        return {};
      }
      out.push_back(d);
    }
    return out;
  }
  L1L2 Regularizer(const std::string& key) {
    return {Double(key + "_l1"), Double(key + "_l2")};
  }

  // OK when every key was present, parsed and used.
  absl::Status Finish() {
    if (!status_.ok()) return status_;
    for (const auto& [key, value] : config_) {
      if (used_.count(key) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer config of ", type_, ": unknown key '", key,
                         "' (= '", value, "')"));
      }
    }
    return absl::OkStatus();
  }

 private:
  const std::string* Find(const std::string& key) {
    used_.insert(key);
    auto it = config_.find(key);
    if (it == config_.end()) {
      if (status_.ok()) {
        status_ = absl::InvalidArgumentError(absl::StrCat(
            "layer config of ", type_, ": missing key '", key, "'"));
      }
      return nullptr;
    }
    return &it->second;
  }
  void Bad(const std::string& key, const std::string& value, const char* want) {
    if (!status_.ok()) return;
    status_ = absl::InvalidArgumentError(
        absl::StrCat("layer config of ", type_, ": '", key, "' = '", value,
                     "' is not ", want));
  }

  std::string type_;
  const LayerConfig& config_;
  std::set<std::string> used_;
  absl::Status status_;
};

class DenseLayer : public Layer {
 public:
  DenseLayer(int64_t units, std::string activation, DenseOptions options)
      : units_(units),
        activation_(std::move(activation)),
        options_(std::move(options)) {
    set_name(options_.name);
  }
  std::string type_name() const override { return "Dense"; }
  std::string base_name() const override { return "dense"; }
  ValueId Emit(GraphBuilder& b, ValueId x,
               const LayerBuildContext& ctx) override {
    if (units_ <= 0) {
      b.Fail(absl::InvalidArgumentError(absl::StrCat(
          "Dense(units=", units_, "): units must be a positive integer")));
      return kNoValue;
    }
    const TensorType in = b.type(x);
    if (in.shape.rank() != 2) {
      b.Fail(absl::InvalidArgumentError(
          absl::StrCat("Dense expects a 2-D input (batch, features), got ",
                       in.ToString(), "; add a Flatten() layer before it")));
      return kNoValue;
    }
    const ValueId kernel = b.Variable(
        VariableName("kernel"), {ctx.dtype, Shape{in.shape[1], units_}},
        Initializer(options_.kernel_initializer, VariableSeed(ctx, 0)));
    ValueId y = b.Op("matmul", {x, kernel});
    if (options_.use_bias) {
      const ValueId bias = b.Variable(
          VariableName("bias"), {ctx.dtype, Shape{units_}},
          Initializer(options_.bias_initializer, VariableSeed(ctx, 1)));
      y = b.Op("bias_add", {y, bias});
    }
    return EmitActivation(b, y, activation_);
  }
  std::vector<Regularizer> regularizers() const override {
    if (!options_.kernel_regularizer.active()) return {};
    return {{VariableName("kernel"), options_.kernel_regularizer.l1,
             options_.kernel_regularizer.l2}};
  }
  LayerConfig config() const override {
    return {{"name", name()},
            {"units", absl::StrCat(units_)},
            {"activation", activation_},
            {"use_bias", Bool(options_.use_bias)},
            {"kernel_initializer", options_.kernel_initializer},
            {"bias_initializer", options_.bias_initializer},
            {"kernel_regularizer_l1", Num(options_.kernel_regularizer.l1)},
            {"kernel_regularizer_l2", Num(options_.kernel_regularizer.l2)}};
  }

 private:
  int64_t units_;
  std::string activation_;
  DenseOptions options_;
};

class ActivationLayer : public Layer {
 public:
  explicit ActivationLayer(std::string activation)
      : activation_(std::move(activation)) {}
  std::string type_name() const override { return "Activation"; }
  std::string base_name() const override { return "activation"; }
  ValueId Emit(GraphBuilder& b, ValueId x, const LayerBuildContext&) override {
    return EmitActivation(b, x, activation_);
  }
  LayerConfig config() const override {
    return {{"name", name()}, {"activation", activation_}};
  }

 private:
  std::string activation_;
};

class FlattenLayer : public Layer {
 public:
  std::string type_name() const override { return "Flatten"; }
  std::string base_name() const override { return "flatten"; }
  ValueId Emit(GraphBuilder& b, ValueId x, const LayerBuildContext&) override {
    return b.Op("flatten", {x});
  }
};

class ReshapeLayer : public Layer {
 public:
  explicit ReshapeLayer(std::vector<int64_t> target)
      : target_(std::move(target)) {}
  std::string type_name() const override { return "Reshape"; }
  std::string base_name() const override { return "reshape"; }
  ValueId Emit(GraphBuilder& b, ValueId x, const LayerBuildContext&) override {
    const int64_t have = b.type(x).shape.NumElementsPerBatch();
    const int64_t want = std::accumulate(
        target_.begin(), target_.end(), int64_t{1}, std::multiplies<int64_t>());
    if (have != want || std::any_of(target_.begin(), target_.end(),
                                    [](int64_t d) { return d <= 0; })) {
      b.Fail(absl::InvalidArgumentError(absl::StrCat(
          "Reshape(target_shape=", ShapeArg(target_),
          ") cannot reshape an input of shape ", b.type(x).ToString(), ": ",
          have, " values per sample, the target holds ", want)));
      return kNoValue;
    }
    return b.Op("reshape", {x}, {{"shape", WithBatch(target_)}});
  }
  LayerConfig config() const override {
    return {{"name", name()}, {"target_shape", Ints(target_)}};
  }

 private:
  std::vector<int64_t> target_;
};

class DropoutLayer : public Layer {
 public:
  DropoutLayer(double rate, uint64_t seed) : rate_(rate), seed_(seed) {}
  std::string type_name() const override { return "Dropout"; }
  std::string base_name() const override { return "dropout"; }
  ValueId Emit(GraphBuilder& b, ValueId x,
               const LayerBuildContext& ctx) override {
    if (!(rate_ >= 0.0 && rate_ < 1.0)) {
      b.Fail(absl::InvalidArgumentError(
          absl::StrCat("Dropout(rate=", rate_, "): rate must be in [0, 1)")));
      return kNoValue;
    }
    // A per-layer step counter makes each training step draw a fresh mask; the
    // counter's update only exists in the training graph.
    const ValueId step = b.Variable(VariableName("step"), {ctx.dtype, Shape{}},
                                    {{"initializer", std::string("zeros")}},
                                    /*trainable=*/false);
    const ValueId step_index =
        b.Op("cast", {step}, {{"to", std::string("i64")}});
    const int64_t seed =
        seed_ != 0 ? static_cast<int64_t>(seed_) : VariableSeed(ctx, 2);
    std::vector<ValueId> outs =
        b.OpMulti("dropout", {x, step_index},
                  {{"rate", rate_}, {"seed", seed}, {"training", true}});
    if (outs.empty()) return kNoValue;
    b.graph().AddUpdate(VariableName("step"),
                        b.Op("add", {step, b.ScalarConstant(1.0, ctx.dtype)}));
    return outs[0];
  }
  LayerConfig config() const override {
    return {
        {"name", name()}, {"rate", Num(rate_)}, {"seed", absl::StrCat(seed_)}};
  }

 private:
  double rate_;
  uint64_t seed_;
};

class Conv2DLayer : public Layer {
 public:
  Conv2DLayer(int64_t filters, std::vector<int64_t> kernel_size,
              Conv2DOptions options)
      : filters_(filters),
        kernel_size_(std::move(kernel_size)),
        options_(std::move(options)) {
    set_name(options_.name);
  }
  std::string type_name() const override { return "Conv2D"; }
  std::string base_name() const override { return "conv2d"; }
  ValueId Emit(GraphBuilder& b, ValueId x,
               const LayerBuildContext& ctx) override {
    const TensorType in = b.type(x);
    if (in.shape.rank() != 4) {
      b.Fail(absl::InvalidArgumentError(absl::StrCat(
          "Conv2D expects a 4-D input (batch, height, width, channels), got ",
          in.ToString(), "; use Input({28, 28, 1}) or a Reshape layer")));
      return kNoValue;
    }
    if (kernel_size_.size() != 2 || filters_ <= 0) {
      b.Fail(absl::InvalidArgumentError(absl::StrCat(
          "Conv2D(filters=", filters_, ", kernel_size=", ShapeArg(kernel_size_),
          "): filters must be positive and kernel_size two integers")));
      return kNoValue;
    }
    const ValueId kernel = b.Variable(
        VariableName("kernel"),
        {ctx.dtype,
         Shape{kernel_size_[0], kernel_size_[1], in.shape[3], filters_}},
        Initializer(options_.kernel_initializer, VariableSeed(ctx, 0)));
    ValueId y =
        b.Op("conv2d", {x, kernel},
             {{"strides", options_.strides}, {"padding", options_.padding}});
    if (options_.use_bias) {
      const ValueId bias = b.Variable(
          VariableName("bias"), {ctx.dtype, Shape{filters_}},
          Initializer(options_.bias_initializer, VariableSeed(ctx, 1)));
      y = b.Op("bias_add", {y, bias});
    }
    return EmitActivation(b, y, options_.activation);
  }
  std::vector<Regularizer> regularizers() const override {
    if (!options_.kernel_regularizer.active()) return {};
    return {{VariableName("kernel"), options_.kernel_regularizer.l1,
             options_.kernel_regularizer.l2}};
  }
  LayerConfig config() const override {
    return {{"name", name()},
            {"filters", absl::StrCat(filters_)},
            {"kernel_size", Ints(kernel_size_)},
            {"strides", Ints(options_.strides)},
            {"padding", options_.padding},
            {"activation", options_.activation},
            {"use_bias", Bool(options_.use_bias)},
            {"kernel_initializer", options_.kernel_initializer},
            {"bias_initializer", options_.bias_initializer},
            {"kernel_regularizer_l1", Num(options_.kernel_regularizer.l1)},
            {"kernel_regularizer_l2", Num(options_.kernel_regularizer.l2)}};
  }

 private:
  int64_t filters_;
  std::vector<int64_t> kernel_size_;
  Conv2DOptions options_;
};

class Pool2DLayer : public Layer {
 public:
  Pool2DLayer(std::string op, std::string type, std::string base,
              std::vector<int64_t> pool, PoolOptions options)
      : op_(std::move(op)),
        type_(std::move(type)),
        base_(std::move(base)),
        pool_(std::move(pool)),
        options_(std::move(options)) {
    set_name(options_.name);
  }
  std::string type_name() const override { return type_; }
  std::string base_name() const override { return base_; }
  ValueId Emit(GraphBuilder& b, ValueId x, const LayerBuildContext&) override {
    return b.Op(
        op_, {x},
        {{"pool_size", pool_},
         {"strides", options_.strides.empty() ? pool_ : options_.strides},
         {"padding", options_.padding}});
  }
  LayerConfig config() const override {
    return {{"name", name()},
            {"pool_size", Ints(pool_)},
            {"strides", Ints(options_.strides)},
            {"padding", options_.padding}};
  }

 private:
  std::string op_, type_, base_;
  std::vector<int64_t> pool_;
  PoolOptions options_;
};

class GlobalAveragePooling2DLayer : public Layer {
 public:
  std::string type_name() const override { return "GlobalAveragePooling2D"; }
  std::string base_name() const override { return "global_average_pooling2d"; }
  ValueId Emit(GraphBuilder& b, ValueId x, const LayerBuildContext&) override {
    return b.Op("global_avg_pool2d", {x});
  }
};

class BatchNormalizationLayer : public Layer {
 public:
  explicit BatchNormalizationLayer(BatchNormalizationOptions options)
      : options_(std::move(options)) {
    set_name(options_.name);
  }
  std::string type_name() const override { return "BatchNormalization"; }
  std::string base_name() const override { return "batch_normalization"; }
  ValueId Emit(GraphBuilder& b, ValueId x,
               const LayerBuildContext& ctx) override {
    const TensorType in = b.type(x);
    if (in.shape.rank() < 2) {
      b.Fail(absl::InvalidArgumentError(
          absl::StrCat("BatchNormalization expects at least a 2-D input, got ",
                       in.ToString())));
      return kNoValue;
    }
    const Shape channels{in.shape[in.shape.rank() - 1]};
    const auto init = [](const char* name) {
      return Attributes{{"initializer", std::string(name)}};
    };
    const ValueId gamma =
        b.Variable(VariableName("gamma"), {ctx.dtype, channels}, init("ones"));
    const ValueId beta =
        b.Variable(VariableName("beta"), {ctx.dtype, channels}, init("zeros"));
    const ValueId mean =
        b.Variable(VariableName("moving_mean"), {ctx.dtype, channels},
                   init("zeros"), /*trainable=*/false);
    const ValueId var =
        b.Variable(VariableName("moving_variance"), {ctx.dtype, channels},
                   init("ones"), /*trainable=*/false);
    std::vector<ValueId> outs =
        b.OpMulti("batch_norm", {x, gamma, beta, mean, var},
                  {{"training", true},
                   {"momentum", options_.momentum},
                   {"epsilon", options_.epsilon}});
    if (outs.empty()) return kNoValue;
    b.graph().AddUpdate(VariableName("moving_mean"), outs[1]);
    b.graph().AddUpdate(VariableName("moving_variance"), outs[2]);
    return outs[0];
  }
  LayerConfig config() const override {
    return {{"name", name()},
            {"momentum", Num(options_.momentum)},
            {"epsilon", Num(options_.epsilon)}};
  }

 private:
  BatchNormalizationOptions options_;
};

class LayerNormalizationLayer : public Layer {
 public:
  explicit LayerNormalizationLayer(double epsilon) : epsilon_(epsilon) {}
  std::string type_name() const override { return "LayerNormalization"; }
  std::string base_name() const override { return "layer_normalization"; }
  ValueId Emit(GraphBuilder& b, ValueId x,
               const LayerBuildContext& ctx) override {
    const TensorType in = b.type(x);
    const Shape features{in.shape[in.shape.rank() - 1]};
    const ValueId gamma =
        b.Variable(VariableName("gamma"), {ctx.dtype, features},
                   {{"initializer", std::string("ones")}});
    const ValueId beta = b.Variable(VariableName("beta"), {ctx.dtype, features},
                                    {{"initializer", std::string("zeros")}});
    return b.Op("layer_norm", {x, gamma, beta}, {{"epsilon", epsilon_}});
  }
  LayerConfig config() const override {
    return {{"name", name()}, {"epsilon", Num(epsilon_)}};
  }

 private:
  double epsilon_;
};

template <typename T, typename... Args>
LayerPtr Named(std::string name, Args&&... args) {
  auto layer = std::make_shared<T>(std::forward<Args>(args)...);
  if (!name.empty()) layer->set_name(std::move(name));
  return layer;
}

}  // namespace

ValueId InputLayer::Emit(GraphBuilder& b, ValueId,
                         const LayerBuildContext& ctx) {
  for (int64_t d : shape_) {
    if (d <= 0) {
      b.Fail(absl::InvalidArgumentError(
          absl::StrCat("Input(shape=", ShapeArg(shape_),
                       "): every dimension must be positive")));
      return kNoValue;
    }
  }
  return b.Input(kFeatureFeed, {ctx.dtype, Shape(WithBatch(shape_))});
}

LayerConfig InputLayer::config() const {
  return {{"name", name()}, {"shape", Ints(shape_)}};
}

absl::StatusOr<LayerPtr> LayerFromConfig(const std::string& type,
                                         const LayerConfig& config) {
  ConfigReader r(type, config);
  LayerPtr layer;
  if (type == "InputLayer") {
    std::vector<int64_t> shape = r.Ints("shape");
    r.String("name");  // Input layers are unnamed in a Sequential.
    layer = Input(std::move(shape));
  } else if (type == "Dense") {
    DenseOptions o;
    o.name = r.String("name");
    o.use_bias = r.Bool("use_bias");
    o.kernel_initializer = r.String("kernel_initializer");
    o.bias_initializer = r.String("bias_initializer");
    o.kernel_regularizer = r.Regularizer("kernel_regularizer");
    const int64_t units = r.Int("units");
    layer = Dense(units, r.String("activation"), std::move(o));
  } else if (type == "Activation") {
    layer = Activation(r.String("activation"), r.String("name"));
  } else if (type == "Flatten") {
    layer = Flatten(r.String("name"));
  } else if (type == "Reshape") {
    layer = Reshape(r.Ints("target_shape"), r.String("name"));
  } else if (type == "Dropout") {
    const double rate = r.Double("rate");
    const uint64_t seed = r.Uint("seed");
    layer = Dropout(rate, seed, r.String("name"));
  } else if (type == "Conv2D") {
    Conv2DOptions o;
    o.name = r.String("name");
    o.strides = r.Ints("strides");
    o.padding = r.String("padding");
    o.activation = r.String("activation");
    o.use_bias = r.Bool("use_bias");
    o.kernel_initializer = r.String("kernel_initializer");
    o.bias_initializer = r.String("bias_initializer");
    o.kernel_regularizer = r.Regularizer("kernel_regularizer");
    const int64_t filters = r.Int("filters");
    layer = Conv2D(filters, r.Ints("kernel_size"), std::move(o));
  } else if (type == "MaxPooling2D" || type == "AveragePooling2D") {
    PoolOptions o;
    o.name = r.String("name");
    o.strides = r.Ints("strides");
    o.padding = r.String("padding");
    std::vector<int64_t> pool = r.Ints("pool_size");
    layer = type == "MaxPooling2D"
                ? MaxPooling2D(std::move(pool), std::move(o))
                : AveragePooling2D(std::move(pool), std::move(o));
  } else if (type == "GlobalAveragePooling2D") {
    layer = GlobalAveragePooling2D(r.String("name"));
  } else if (type == "BatchNormalization") {
    BatchNormalizationOptions o;
    o.name = r.String("name");
    o.momentum = r.Double("momentum");
    o.epsilon = r.Double("epsilon");
    layer = BatchNormalization(std::move(o));
  } else if (type == "LayerNormalization") {
    const double epsilon = r.Double("epsilon");
    layer = LayerNormalization(epsilon, r.String("name"));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown layer type '", type,
        "' (known: Activation, AveragePooling2D, BatchNormalization, Conv2D, "
        "Dense, Dropout, Flatten, GlobalAveragePooling2D, InputLayer, "
        "LayerNormalization, MaxPooling2D, Reshape)"));
  }
  if (absl::Status s = r.Finish(); !s.ok()) return s;
  return layer;
}

const std::vector<std::string>& ActivationNames() {
  static const std::vector<std::string> names = {
      "elu",      "gelu",  "leaky_relu", "linear", "log_softmax",
      "relu",     "selu",  "sigmoid",    "silu",   "softmax",
      "softplus", "swish", "tanh"};
  return names;
}

ValueId EmitActivation(GraphBuilder& b, ValueId x,
                       const std::string& activation) {
  if (activation == "linear" || activation.empty()) return x;
  if (activation == "silu") return b.Op("swish", {x});
  const auto& names = ActivationNames();
  if (std::find(names.begin(), names.end(), activation) == names.end()) {
    b.Fail(absl::InvalidArgumentError(
        absl::StrCat("unknown activation '", activation,
                     "' (valid: ", absl::StrJoin(names, ", "), ")")));
    return kNoValue;
  }
  return b.Op(activation, {x});
}

LayerPtr Input(std::vector<int64_t> shape) {
  return std::make_shared<InputLayer>(shape);
}
LayerPtr Dense(int64_t units, std::string activation, DenseOptions options) {
  return std::make_shared<DenseLayer>(units, std::move(activation),
                                      std::move(options));
}
LayerPtr Activation(std::string activation, std::string name) {
  return Named<ActivationLayer>(std::move(name), std::move(activation));
}
LayerPtr Flatten(std::string name) {
  return Named<FlattenLayer>(std::move(name));
}
LayerPtr Reshape(std::vector<int64_t> target_shape, std::string name) {
  return Named<ReshapeLayer>(std::move(name), std::move(target_shape));
}
LayerPtr Dropout(double rate, uint64_t seed, std::string name) {
  return Named<DropoutLayer>(std::move(name), rate, seed);
}
LayerPtr Conv2D(int64_t filters, std::vector<int64_t> kernel_size,
                Conv2DOptions options) {
  return std::make_shared<Conv2DLayer>(filters, std::move(kernel_size),
                                       std::move(options));
}
LayerPtr MaxPooling2D(std::vector<int64_t> pool_size, PoolOptions options) {
  return std::make_shared<Pool2DLayer>("max_pool2d", "MaxPooling2D",
                                       "max_pooling2d", std::move(pool_size),
                                       std::move(options));
}
LayerPtr AveragePooling2D(std::vector<int64_t> pool_size, PoolOptions options) {
  return std::make_shared<Pool2DLayer>(
      "avg_pool2d", "AveragePooling2D", "average_pooling2d",
      std::move(pool_size), std::move(options));
}
LayerPtr GlobalAveragePooling2D(std::string name) {
  return Named<GlobalAveragePooling2DLayer>(std::move(name));
}
LayerPtr BatchNormalization(BatchNormalizationOptions options) {
  return std::make_shared<BatchNormalizationLayer>(std::move(options));
}
LayerPtr LayerNormalization(double epsilon, std::string name) {
  return Named<LayerNormalizationLayer>(std::move(name), epsilon);
}

}  // namespace sequent
