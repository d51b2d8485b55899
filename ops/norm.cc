// Op family `norm`: batch normalization (over every axis but the channels,
// which are last) and layer normalization (over the last axis), Keras
// semantics.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
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
  return def;
}

}  // namespace sequent::ops
