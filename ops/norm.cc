// Op family `norm`: batch normalization (over every axis but the channels,
// which are last) and layer normalization (over the last axis), Keras
// semantics.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/op_registry.h"
#include "core/status_macros.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

// Checks that a per-feature parameter has shape [features] and x's dtype.
absl::Status ExpectVector(const TensorType& x, const TensorType& param,
                          absl::string_view what) {
  const int64_t features = x.shape[x.shape.rank() - 1];
  if (param.dtype != x.dtype || param.shape != Shape{features}) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be ", DTypeName(x.dtype), "[", features, "] to match x ",
        x.ToString(), ", got ", param.ToString()));
  }
  return absl::OkStatus();
}

absl::Status ExpectFeatureAxis(const TensorType& x, int min_rank) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
  if (x.shape.rank() < min_rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("x must have rank >= ", min_rank, ", got ", x.ToString()));
  }
  if (x.shape[x.shape.rank() - 1] == Shape::kBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the last (feature) axis of x must be static, got ", x.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TensorType>> BatchNormShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& x = inputs[0];
  SEQUENT_RETURN_IF_ERROR(ExpectFeatureAxis(x, 2));
  SEQUENT_RETURN_IF_ERROR(ExpectVector(x, inputs[1], "gamma"));
  SEQUENT_RETURN_IF_ERROR(ExpectVector(x, inputs[2], "beta"));
  SEQUENT_RETURN_IF_ERROR(ExpectVector(x, inputs[3], "moving_mean"));
  SEQUENT_RETURN_IF_ERROR(ExpectVector(x, inputs[4], "moving_var"));
  SEQUENT_ASSIGN_OR_RETURN(double epsilon, GetFloatAttr(attrs, "epsilon"));
  if (!(epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be positive, got ", epsilon));
  }
  const TensorType stat = inputs[1];
  return std::vector<TensorType>{x, stat, stat, stat, stat};
}

absl::Status BatchNormKernel(absl::Span<const Tensor* const> inputs,
                             const Attributes& attrs,
                             absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  const bool training = BoolAttrOr(attrs, "training", false);
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-3);
  const double momentum = FloatAttrOr(attrs, "momentum", 0.99);
  const int64_t c = x.shape()[x.shape().rank() - 1];
  const int64_t rows = c == 0 ? 0 : x.num_elements() / c;
  return DispatchFloat(x.dtype(), "batch_norm", [&](auto zero) -> absl::Status {
    using T = decltype(zero);
    auto in = x.data<T>();
    auto gamma = inputs[1]->data<T>();
    auto beta = inputs[2]->data<T>();
    auto moving_mean = inputs[3]->data<T>();
    auto moving_var = inputs[4]->data<T>();
    auto y = outputs[0]->data<T>();
    auto new_mean = outputs[1]->data<T>();
    auto new_var = outputs[2]->data<T>();
    auto saved_mean = outputs[3]->data<T>();
    auto saved_inv_std = outputs[4]->data<T>();
    for (int64_t ch = 0; ch < c; ++ch) {
      double mean = moving_mean[ch];
      double var = moving_var[ch];
      if (training) {
        double sum = 0;
        for (int64_t r = 0; r < rows; ++r) sum += in[r * c + ch];
        mean = sum / static_cast<double>(rows);
        double sq = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const double d = in[r * c + ch] - mean;
          sq += d * d;
        }
        // Biased (population) variance, for normalizing and for the moving
        // average (Keras).
        var = sq / static_cast<double>(rows);
        new_mean[ch] =
            static_cast<T>(moving_mean[ch] * momentum + mean * (1 - momentum));
        new_var[ch] =
            static_cast<T>(moving_var[ch] * momentum + var * (1 - momentum));
      } else {
        new_mean[ch] = moving_mean[ch];
        new_var[ch] = moving_var[ch];
      }
      const double inv_std = 1.0 / std::sqrt(var + epsilon);
      saved_mean[ch] = static_cast<T>(mean);
      saved_inv_std[ch] = static_cast<T>(inv_std);
      for (int64_t r = 0; r < rows; ++r) {
        y[r * c + ch] = static_cast<T>(
            gamma[ch] * ((in[r * c + ch] - mean) * inv_std) + beta[ch]);
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<TensorType>> LayerNormShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& x = inputs[0];
  SEQUENT_RETURN_IF_ERROR(ExpectFeatureAxis(x, 1));
  SEQUENT_RETURN_IF_ERROR(ExpectVector(x, inputs[1], "gamma"));
  SEQUENT_RETURN_IF_ERROR(ExpectVector(x, inputs[2], "beta"));
  SEQUENT_ASSIGN_OR_RETURN(double epsilon, GetFloatAttr(attrs, "epsilon"));
  if (!(epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be positive, got ", epsilon));
  }
  std::vector<int64_t> stat_dims = x.shape.dims();
  stat_dims.pop_back();
  const TensorType stat{x.dtype, Shape(std::move(stat_dims))};
  return std::vector<TensorType>{x, stat, stat};
}

absl::Status LayerNormKernel(absl::Span<const Tensor* const> inputs,
                             const Attributes& attrs,
                             absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-3);
  const int64_t d = x.shape()[x.shape().rank() - 1];
  const int64_t rows = d == 0 ? 0 : x.num_elements() / d;
  return DispatchFloat(x.dtype(), "layer_norm", [&](auto zero) -> absl::Status {
    using T = decltype(zero);
    auto in = x.data<T>();
    auto gamma = inputs[1]->data<T>();
    auto beta = inputs[2]->data<T>();
    auto y = outputs[0]->data<T>();
    auto saved_mean = outputs[1]->data<T>();
    auto saved_inv_std = outputs[2]->data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = &in[r * d];
      double sum = 0;
      for (int64_t i = 0; i < d; ++i) sum += row[i];
      const double mean = sum / static_cast<double>(d);
      double sq = 0;
      for (int64_t i = 0; i < d; ++i) sq += (row[i] - mean) * (row[i] - mean);
      const double inv_std =
          1.0 / std::sqrt(sq / static_cast<double>(d) + epsilon);
      saved_mean[r] = static_cast<T>(mean);
      saved_inv_std[r] = static_cast<T>(inv_std);
      for (int64_t i = 0; i < d; ++i) {
        y[r * d + i] =
            static_cast<T>(gamma[i] * ((row[i] - mean) * inv_std) + beta[i]);
      }
    }
    return absl::OkStatus();
  });
}

// (dy, x, gamma, saved_mean, saved_inv_std): dy matches x, gamma is per
// feature, and the statistics have `stat`'s type.
absl::StatusOr<std::vector<TensorType>> NormGradShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs, int min_rank,
    bool per_feature_stats) {
  const TensorType& dy = inputs[0];
  const TensorType& x = inputs[1];
  SEQUENT_RETURN_IF_ERROR(ExpectFeatureAxis(x, min_rank));
  if (dy != x) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dy ", dy.ToString(), " must have the type of x ", x.ToString()));
  }
  SEQUENT_RETURN_IF_ERROR(ExpectVector(x, inputs[2], "gamma"));
  TensorType stat = inputs[2];
  if (!per_feature_stats) {
    std::vector<int64_t> dims = x.shape.dims();
    dims.pop_back();
    stat = TensorType{x.dtype, Shape(std::move(dims))};
  }
  for (int i : {3, 4}) {
    if (inputs[i] != stat) {
      return absl::InvalidArgumentError(absl::StrCat(
          i == 3 ? "saved_mean" : "saved_inv_std", " must be ", stat.ToString(),
          " to match x ", x.ToString(), ", got ", inputs[i].ToString()));
    }
  }
  SEQUENT_ASSIGN_OR_RETURN(double epsilon, GetFloatAttr(attrs, "epsilon"));
  if (!(epsilon > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be positive, got ", epsilon));
  }
  return std::vector<TensorType>{x, inputs[2], inputs[2]};
}

// Sums over one normalized group (a channel for batch_norm, a row for
// layer_norm). With statistics computed from x, the gradient flows through
// them too: dx = s * inv_std * (g - mean(g) - xhat * mean(g * xhat)), with
// g = dy (times gamma for layer_norm, whose gamma is per element of the group)
// and s = gamma (1 for layer_norm); with constant statistics
// dx = gamma * inv_std * dy.
struct NormGroupGrad {
  double sum_dy = 0;
  double sum_dy_xhat = 0;
};

absl::Status BatchNormGradKernel(absl::Span<const Tensor* const> inputs,
                                 const Attributes& attrs,
                                 absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[1];
  const bool training = BoolAttrOr(attrs, "training", true);
  const int64_t c = x.shape()[x.shape().rank() - 1];
  const int64_t rows = c == 0 ? 0 : x.num_elements() / c;
  return DispatchFloat(
      x.dtype(), "batch_norm_grad", [&](auto zero) -> absl::Status {
        using T = decltype(zero);
        auto dy = inputs[0]->data<T>();
        auto in = x.data<T>();
        auto gamma = inputs[2]->data<T>();
        auto mean = inputs[3]->data<T>();
        auto inv_std = inputs[4]->data<T>();
        auto dx = outputs[0]->data<T>();
        auto dgamma = outputs[1]->data<T>();
        auto dbeta = outputs[2]->data<T>();
        for (int64_t ch = 0; ch < c; ++ch) {
          NormGroupGrad s;
          for (int64_t r = 0; r < rows; ++r) {
            const double xhat =
                (in[r * c + ch] - static_cast<double>(mean[ch])) * inv_std[ch];
            s.sum_dy += dy[r * c + ch];
            s.sum_dy_xhat += dy[r * c + ch] * xhat;
          }
          dgamma[ch] = static_cast<T>(s.sum_dy_xhat);
          dbeta[ch] = static_cast<T>(s.sum_dy);
          const double scale = static_cast<double>(gamma[ch]) * inv_std[ch];
          const double m = static_cast<double>(rows);
          for (int64_t r = 0; r < rows; ++r) {
            const double g = dy[r * c + ch];
            if (!training) {
              dx[r * c + ch] = static_cast<T>(scale * g);
              continue;
            }
            const double xhat =
                (in[r * c + ch] - static_cast<double>(mean[ch])) * inv_std[ch];
            dx[r * c + ch] = static_cast<T>(
                scale * (g - s.sum_dy / m - xhat * s.sum_dy_xhat / m));
          }
        }
        return absl::OkStatus();
      });
}

absl::Status LayerNormGradKernel(absl::Span<const Tensor* const> inputs,
                                 const Attributes&,
                                 absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[1];
  const int64_t d = x.shape()[x.shape().rank() - 1];
  const int64_t rows = d == 0 ? 0 : x.num_elements() / d;
  return DispatchFloat(
      x.dtype(), "layer_norm_grad", [&](auto zero) -> absl::Status {
        using T = decltype(zero);
        auto dy = inputs[0]->data<T>();
        auto in = x.data<T>();
        auto gamma = inputs[2]->data<T>();
        auto mean = inputs[3]->data<T>();
        auto inv_std = inputs[4]->data<T>();
        auto dx = outputs[0]->data<T>();
        auto dgamma = outputs[1]->data<T>();
        auto dbeta = outputs[2]->data<T>();
        std::vector<double> acc_gamma(d, 0.0), acc_beta(d, 0.0);
        for (int64_t r = 0; r < rows; ++r) {
          // Each row is normalized by its own statistics; the gradient flows
          // through them as for batch_norm in training, with g = dy * gamma.
          NormGroupGrad s;
          for (int64_t i = 0; i < d; ++i) {
            const double xhat =
                (in[r * d + i] - static_cast<double>(mean[r])) * inv_std[r];
            const double g = static_cast<double>(dy[r * d + i]) * gamma[i];
            s.sum_dy += g;
            s.sum_dy_xhat += g * xhat;
            acc_gamma[i] += dy[r * d + i] * xhat;
            acc_beta[i] += dy[r * d + i];
          }
          const double m = static_cast<double>(d);
          for (int64_t i = 0; i < d; ++i) {
            const double xhat =
                (in[r * d + i] - static_cast<double>(mean[r])) * inv_std[r];
            const double g = static_cast<double>(dy[r * d + i]) * gamma[i];
            dx[r * d + i] = static_cast<T>(
                inv_std[r] * (g - s.sum_dy / m - xhat * s.sum_dy_xhat / m));
          }
        }
        for (int64_t i = 0; i < d; ++i) {
          dgamma[i] = static_cast<T>(acc_gamma[i]);
          dbeta[i] = static_cast<T>(acc_beta[i]);
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<std::vector<ValueId>> BatchNormGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  std::vector<ValueId> grads(node.inputs.size(), kNoValue);
  // Only y carries a gradient: the moving statistics are state updates, and
  // the saved statistics are consumed by this rule alone.
  if (output_grads[0] == kNoValue) return grads;
  Attributes attrs;
  attrs["training"] = BoolAttrOr(node.attrs, "training", false);
  attrs["epsilon"] = FloatAttrOr(node.attrs, "epsilon", 1e-3);
  std::vector<ValueId> g =
      b.OpMulti("batch_norm_grad",
                {output_grads[0], node.inputs[0], node.inputs[1],
                 node.outputs[3], node.outputs[4]},
                std::move(attrs));
  if (g.size() != 3) return grads;  // The builder recorded the error.
  grads[0] = g[0];
  grads[1] = g[1];
  grads[2] = g[2];
  return grads;
}

absl::StatusOr<std::vector<ValueId>> LayerNormGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  if (output_grads[0] == kNoValue) {
    return std::vector<ValueId>{kNoValue, kNoValue, kNoValue};
  }
  Attributes attrs;
  attrs["epsilon"] = FloatAttrOr(node.attrs, "epsilon", 1e-3);
  std::vector<ValueId> g =
      b.OpMulti("layer_norm_grad",
                {output_grads[0], node.inputs[0], node.inputs[1],
                 node.outputs[1], node.outputs[2]},
                std::move(attrs));
  if (g.size() != 3) return std::vector<ValueId>{kNoValue, kNoValue, kNoValue};
  return g;
}

}  // namespace

OpDef Make_batch_norm_Op() {
  OpDef def;
  def.name = "batch_norm";
  def.family = "norm";
  def.inputs = {"x", "gamma", "beta", "moving_mean", "moving_var"};
  def.outputs = {"y", "new_moving_mean", "new_moving_var", "saved_mean",
                 "saved_inv_std"};
  def.attrs = {{"training", AttrValue(false)},
               {"epsilon", AttrValue(1e-3)},
               {"momentum", AttrValue(0.99)}};
  def.infer = BatchNormShape;
  def.reference = BatchNormKernel;
  def.gradient = BatchNormGradient;
  return def;
}

OpDef Make_layer_norm_Op() {
  OpDef def;
  def.name = "layer_norm";
  def.family = "norm";
  def.inputs = {"x", "gamma", "beta"};
  def.outputs = {"y", "saved_mean", "saved_inv_std"};
  def.attrs = {{"epsilon", AttrValue(1e-3)}};
  def.infer = LayerNormShape;
  def.reference = LayerNormKernel;
  def.gradient = LayerNormGradient;
  return def;
}

OpDef Make_batch_norm_grad_Op() {
  OpDef def;
  def.name = "batch_norm_grad";
  def.family = "norm";
  def.inputs = {"dy", "x", "gamma", "saved_mean", "saved_inv_std"};
  def.outputs = {"dx", "dgamma", "dbeta"};
  def.attrs = {{"training", AttrValue(true)}, {"epsilon", AttrValue(1e-3)}};
  def.infer = [](absl::Span<const TensorType> inputs, const Attributes& attrs) {
    return NormGradShape(inputs, attrs, 2, /*per_feature_stats=*/true);
  };
  def.reference = BatchNormGradKernel;
  return def;
}

OpDef Make_layer_norm_grad_Op() {
  OpDef def;
  def.name = "layer_norm_grad";
  def.family = "norm";
  def.inputs = {"dy", "x", "gamma", "saved_mean", "saved_inv_std"};
  def.outputs = {"dx", "dgamma", "dbeta"};
  def.attrs = {{"epsilon", AttrValue(1e-3)}};
  def.infer = [](absl::Span<const TensorType> inputs, const Attributes& attrs) {
    return NormGradShape(inputs, attrs, 1, /*per_feature_stats=*/false);
  };
  def.reference = LayerNormGradKernel;
  return def;
}

}  // namespace sequent::ops
