#include "frontend/layers.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

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
