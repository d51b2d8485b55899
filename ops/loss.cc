// Op family `loss`: Keras losses reduced to a scalar with
// "sum_over_batch_size": the loss of each sample (mean over the last axis where
// Keras takes one), times its sample weight, summed and divided by the number
// of per-sample losses (not by the sum of the weights).

#include <algorithm>
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

// Keras's backend epsilon, used to clip probabilities away from 0 and 1.
constexpr double kEpsilon = 1e-7;

absl::Status CheckSampleWeight(absl::Span<const TensorType> inputs) {
  if (inputs.size() < 3) return absl::OkStatus();
  const TensorType& y_pred = inputs[1];
  const TensorType& w = inputs[2];
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(w, "sample_weight"));
  const int64_t batch = y_pred.shape[0];
  const bool ok = w.shape.IsScalar() || w.shape == Shape{batch} ||
                  w.shape == Shape{batch, 1};
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample_weight ", w.ToString(), " must have shape [], ",
        Shape{batch}.ToString(), " or ", Shape{batch, 1}.ToString(),
        " to match y_pred ", y_pred.ToString()));
  }
  return absl::OkStatus();
}

absl::Status CheckPred(const TensorType& y_pred, int min_rank) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(y_pred, "y_pred"));
  if (y_pred.shape.rank() < min_rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "y_pred must have rank >= ", min_rank, ", got ", y_pred.ToString()));
  }
  return absl::OkStatus();
}

absl::Status CheckTrueType(const TensorType& y_true) {
  if (y_true.dtype == DType::kBF16 || y_true.dtype == DType::kF16 ||
      y_true.dtype == DType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat(
        "y_true must be f32, f64, i32 or i64, got ", y_true.ToString()));
  }
  return absl::OkStatus();
}

// y_true and y_pred of the same shape (mse, mae, huber, crossentropies).
absl::StatusOr<std::vector<TensorType>> DenseLossShape(
    absl::Span<const TensorType> inputs, const Attributes&) {
  const TensorType& y_true = inputs[0];
  const TensorType& y_pred = inputs[1];
  SEQUENT_RETURN_IF_ERROR(CheckPred(y_pred, 1));
  SEQUENT_RETURN_IF_ERROR(CheckTrueType(y_true));
  if (y_true.shape != y_pred.shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("y_true ", y_true.ToString(), " and y_pred ",
                     y_pred.ToString(), " must have the same shape"));
  }
  SEQUENT_RETURN_IF_ERROR(CheckSampleWeight(inputs));
  return std::vector<TensorType>{{y_pred.dtype, Shape{}}};
}

absl::StatusOr<std::vector<TensorType>> CrossentropyShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  SEQUENT_ASSIGN_OR_RETURN(double smoothing,
                           GetFloatAttr(attrs, "label_smoothing"));
  if (!(smoothing >= 0 && smoothing <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("label_smoothing must be in [0, 1], got ", smoothing));
  }
  return DenseLossShape(inputs, attrs);
}

absl::StatusOr<std::vector<TensorType>> SparseLossShape(
    absl::Span<const TensorType> inputs, const Attributes&) {
  const TensorType& y_true = inputs[0];
  const TensorType& y_pred = inputs[1];
  SEQUENT_RETURN_IF_ERROR(CheckPred(y_pred, 2));
  SEQUENT_RETURN_IF_ERROR(CheckTrueType(y_true));
  std::vector<int64_t> dims = y_pred.shape.dims();
  dims.pop_back();
  const Shape labels(dims);
  dims.push_back(1);
  const Shape labels_1(dims);
  if (y_true.shape != labels && y_true.shape != labels_1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "y_true ", y_true.ToString(), " must have shape ", labels.ToString(),
        " or ", labels_1.ToString(),
        " (one class index per sample) to match y_pred ", y_pred.ToString()));
  }
  SEQUENT_RETURN_IF_ERROR(CheckSampleWeight(inputs));
  return std::vector<TensorType>{{y_pred.dtype, Shape{}}};
}

// Runs `row_loss(row, y_true_row, y_pred_row) -> StatusOr<double>` over every
// length-`row_len` row of y_pred and writes sum(loss * weight) / rows to the
// scalar output.
template <typename T, typename RowLoss>
absl::Status WeightedMean(absl::string_view op,
                          absl::Span<const Tensor* const> inputs,
                          int64_t row_len, RowLoss row_loss, Tensor* out) {
  const Tensor& y_pred = *inputs[1];
  const Tensor* weight = inputs.size() > 2 ? inputs[2] : nullptr;
  const int64_t rows = row_len == 0 ? 0 : y_pred.num_elements() / row_len;
  const int64_t batch = y_pred.shape()[0];
  const int64_t rows_per_sample =
      batch == 0 ? 1 : std::max<int64_t>(rows / batch, 1);
  if (weight != nullptr && weight->num_elements() != 1 &&
      weight->num_elements() != batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("[", op, "] sample_weight ", weight->type().ToString(),
                     " does not match ", "y_pred ", y_pred.type().ToString()));
  }
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    SEQUENT_ASSIGN_OR_RETURN(double loss, row_loss(r));
    if (weight != nullptr) {
      loss *= weight->GetAsDouble(
          weight->num_elements() == 1 ? 0 : r / rows_per_sample);
    }
    total += loss;
  }
  // Keras divides with divide_no_nan: an empty batch has loss 0.
  out->data<T>()[0] =
      static_cast<T>(rows == 0 ? 0.0 : total / static_cast<double>(rows));
  return absl::OkStatus();
}

// Losses that average an elementwise loss `f(t, p)` over the last axis.
template <typename F>
ReferenceKernel ElementwiseLossKernel(std::string op, F f) {
  return [op, f](absl::Span<const Tensor* const> inputs,
                 const Attributes& attrs,
                 absl::Span<Tensor* const> outputs) -> absl::Status {
    const Tensor& y_true = *inputs[0];
    const Tensor& y_pred = *inputs[1];
    const int rank = y_pred.shape().rank();
    const int64_t d = rank >= 2 ? y_pred.shape()[rank - 1] : 1;
    return DispatchFloat(y_pred.dtype(), op, [&](auto zero) -> absl::Status {
      using T = decltype(zero);
      auto pred = y_pred.data<T>();
      return WeightedMean<T>(
          op, inputs, d,
          [&](int64_t r) -> absl::StatusOr<double> {
            double sum = 0;
            for (int64_t i = r * d; i < (r + 1) * d; ++i) {
              sum +=
                  f(attrs, y_true.GetAsDouble(i), static_cast<double>(pred[i]));
            }
            return sum / static_cast<double>(d);
          },
          outputs[0]);
    });
  };
}

double Clip(double p) { return std::clamp(p, kEpsilon, 1.0 - kEpsilon); }

OpDef MakeLoss(const std::string& name, std::vector<AttrSpec> attrs) {
  OpDef def;
  def.name = name;
  def.family = "loss";
  def.inputs = {"y_true", "y_pred", "sample_weight"};
  def.num_required_inputs = 2;
  def.outputs = {"loss"};
  def.attrs = std::move(attrs);
  def.infer = DenseLossShape;
  return def;
}

absl::Status CategoricalKernel(absl::Span<const Tensor* const> inputs,
                               const Attributes& attrs,
                               absl::Span<Tensor* const> outputs) {
  const Tensor& y_true = *inputs[0];
  const Tensor& y_pred = *inputs[1];
  const bool from_logits = BoolAttrOr(attrs, "from_logits", false);
  const double smoothing = FloatAttrOr(attrs, "label_smoothing", 0.0);
  const int64_t c = y_pred.shape()[y_pred.shape().rank() - 1];
  return DispatchFloat(
      y_pred.dtype(), "categorical_crossentropy", [&](auto zero) {
        using T = decltype(zero);
        auto pred = y_pred.data<T>();
        return WeightedMean<T>(
            "categorical_crossentropy", inputs, c,
            [&](int64_t r) -> absl::StatusOr<double> {
              const T* p = &pred[r * c];
              // log q_i for the predicted distribution q of this row.
              std::vector<double> log_q(c);
              if (from_logits) {
                double max = -INFINITY;
                for (int64_t i = 0; i < c; ++i)
                  max = std::max(max, static_cast<double>(p[i]));
                double sum = 0;
                for (int64_t i = 0; i < c; ++i) sum += std::exp(p[i] - max);
                for (int64_t i = 0; i < c; ++i)
                  log_q[i] = p[i] - max - std::log(sum);
              } else {
                // Keras rescales the probabilities to sum to 1, then clips.
                double sum = 0;
                for (int64_t i = 0; i < c; ++i) sum += p[i];
                for (int64_t i = 0; i < c; ++i)
                  log_q[i] = std::log(Clip(p[i] / sum));
              }
              double loss = 0;
              for (int64_t i = 0; i < c; ++i) {
                const double t =
                    y_true.GetAsDouble(r * c + i) * (1 - smoothing) +
                    smoothing / static_cast<double>(c);
                loss -= t * log_q[i];
              }
              return loss;
            },
            outputs[0]);
      });
}

absl::Status SparseCategoricalKernel(absl::Span<const Tensor* const> inputs,
                                     const Attributes& attrs,
                                     absl::Span<Tensor* const> outputs) {
  constexpr absl::string_view kOp = "sparse_categorical_crossentropy";
  const Tensor& y_true = *inputs[0];
  const Tensor& y_pred = *inputs[1];
  const bool from_logits = BoolAttrOr(attrs, "from_logits", false);
  const int64_t c = y_pred.shape()[y_pred.shape().rank() - 1];
  return DispatchFloat(y_pred.dtype(), kOp, [&](auto zero) {
    using T = decltype(zero);
    auto pred = y_pred.data<T>();
    return WeightedMean<T>(
        kOp, inputs, c,
        [&](int64_t r) -> absl::StatusOr<double> {
          const double label = y_true.GetAsDouble(r);
          if (label != std::floor(label)) {
            return absl::InvalidArgumentError(
                absl::StrCat("[", kOp, "] label ", label, " at sample ", r,
                             " is not an integer"));
          }
          if (label < 0 || label >= static_cast<double>(c)) {
            return absl::InvalidArgumentError(
                absl::StrCat("[", kOp, "] label ", label, " at sample ", r,
                             " is out of range for ", c, " classes"));
          }
          const T* p = &pred[r * c];
          const int64_t k = static_cast<int64_t>(label);
          if (from_logits) {
            double max = -INFINITY;
            for (int64_t i = 0; i < c; ++i)
              max = std::max(max, static_cast<double>(p[i]));
            double sum = 0;
            for (int64_t i = 0; i < c; ++i) sum += std::exp(p[i] - max);
            return -(p[k] - max - std::log(sum));
          }
          double sum = 0;
          for (int64_t i = 0; i < c; ++i) sum += p[i];
          return -std::log(Clip(p[k] / sum));
        },
        outputs[0]);
  });
}

// ---- Gradients: (y_true, y_pred, dloss, sample_weight?) -> d loss / d y_pred.

// Checks dloss and hands the forward operands to the forward shape rule, so
// the gradient op accepts exactly what its loss accepts.
ShapeFn GradShape(ShapeFn forward) {
  return [forward](absl::Span<const TensorType> inputs, const Attributes& attrs)
             -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& y_pred = inputs[1];
    const TensorType& dloss = inputs[2];
    std::vector<TensorType> forward_inputs = {inputs[0], inputs[1]};
    if (inputs.size() > 3) forward_inputs.push_back(inputs[3]);
    SEQUENT_RETURN_IF_ERROR(forward(forward_inputs, attrs).status());
    if (dloss.dtype != y_pred.dtype || !dloss.shape.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dloss must be a ", DTypeName(y_pred.dtype),
                       "[] scalar to match y_pred ", y_pred.ToString(),
                       ", got ", dloss.ToString()));
    }
    return std::vector<TensorType>{y_pred};
  };
}

// The gradient of WeightedMean: row r of the output is
// dloss * weight(r) / rows * row_grad(r), where `row_grad(r, grad)` writes the
// gradient of the row's unweighted loss into grad[0..row_len).
template <typename T, typename RowGrad>
absl::Status WeightedMeanGrad(absl::string_view op,
                              absl::Span<const Tensor* const> inputs,
                              int64_t row_len, RowGrad row_grad, Tensor* out) {
  const Tensor& y_pred = *inputs[1];
  const double dloss = inputs[2]->GetAsDouble(0);
  const Tensor* weight = inputs.size() > 3 ? inputs[3] : nullptr;
  const int64_t rows = row_len == 0 ? 0 : y_pred.num_elements() / row_len;
  const int64_t batch = y_pred.shape()[0];
  const int64_t rows_per_sample =
      batch == 0 ? 1 : std::max<int64_t>(rows / batch, 1);
  if (weight != nullptr && weight->num_elements() != 1 &&
      weight->num_elements() != batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("[", op, "] sample_weight ", weight->type().ToString(),
                     " does not match ", "y_pred ", y_pred.type().ToString()));
  }
  auto dst = out->data<T>();
  std::vector<double> grad(row_len);
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(grad.begin(), grad.end(), 0.0);
    SEQUENT_RETURN_IF_ERROR(row_grad(r, grad.data()));
    double scale = dloss / static_cast<double>(rows);
    if (weight != nullptr) {
      scale *= weight->GetAsDouble(
          weight->num_elements() == 1 ? 0 : r / rows_per_sample);
    }
    for (int64_t i = 0; i < row_len; ++i) {
      dst[r * row_len + i] = static_cast<T>(scale * grad[i]);
    }
  }
  return absl::OkStatus();
}

// The gradient of ElementwiseLossKernel's loss, from `df(attrs, t, p)`, the
// derivative of f with respect to p.
template <typename F>
ReferenceKernel ElementwiseLossGradKernel(std::string op, F df) {
  return [op, df](absl::Span<const Tensor* const> inputs,
                  const Attributes& attrs,
                  absl::Span<Tensor* const> outputs) -> absl::Status {
    const Tensor& y_true = *inputs[0];
    const Tensor& y_pred = *inputs[1];
    const int rank = y_pred.shape().rank();
    const int64_t d = rank >= 2 ? y_pred.shape()[rank - 1] : 1;
    return DispatchFloat(y_pred.dtype(), op, [&](auto zero) -> absl::Status {
      using T = decltype(zero);
      auto pred = y_pred.data<T>();
      return WeightedMeanGrad<T>(
          op, inputs, d,
          [&](int64_t r, double* grad) -> absl::Status {
            for (int64_t i = 0; i < d; ++i) {
              const int64_t e = r * d + i;
              grad[i] = df(attrs, y_true.GetAsDouble(e),
                           static_cast<double>(pred[e])) /
                        static_cast<double>(d);
            }
            return absl::OkStatus();
          },
          outputs[0]);
    });
  };
}

// Clip's derivative: TensorFlow's clip_by_value passes the gradient where the
// value lies inside [epsilon, 1 - epsilon] and blocks it where clipped.
double ClipGrad(double p) {
  return p >= kEpsilon && p <= 1.0 - kEpsilon ? 1.0 : 0.0;
}

void Softmax(const double* logits, int64_t c, double* out) {
  double max = -INFINITY;
  for (int64_t i = 0; i < c; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < c; ++i) sum += std::exp(logits[i] - max);
  for (int64_t i = 0; i < c; ++i) out[i] = std::exp(logits[i] - max) / sum;
}

// For every row, with S = sum(p) and r = p / S the rescaled probabilities,
// loss = -sum_i t_i log(clip(r_i)), whose gradient is
// dL/dp_j = (sum_i t_i [r_i unclipped] - t_j [r_j unclipped] / r_j) / S.
// From logits, loss = -sum_i t_i log_softmax(z)_i and
// dL/dz_j = softmax(z)_j * sum_i t_i - t_j.
absl::Status CategoricalGradKernel(absl::Span<const Tensor* const> inputs,
                                   const Attributes& attrs,
                                   absl::Span<Tensor* const> outputs) {
  constexpr absl::string_view kOp = "categorical_crossentropy_grad";
  const Tensor& y_true = *inputs[0];
  const Tensor& y_pred = *inputs[1];
  const bool from_logits = BoolAttrOr(attrs, "from_logits", false);
  const double smoothing = FloatAttrOr(attrs, "label_smoothing", 0.0);
  const int64_t c = y_pred.shape()[y_pred.shape().rank() - 1];
  return DispatchFloat(y_pred.dtype(), kOp, [&](auto zero) {
    using T = decltype(zero);
    auto pred = y_pred.data<T>();
    std::vector<double> p(c), t(c), q(c);
    return WeightedMeanGrad<T>(
        kOp, inputs, c,
        [&](int64_t r, double* grad) -> absl::Status {
          double sum_t = 0, sum_p = 0;
          for (int64_t i = 0; i < c; ++i) {
            p[i] = pred[r * c + i];
            t[i] = y_true.GetAsDouble(r * c + i) * (1 - smoothing) +
                   smoothing / static_cast<double>(c);
            sum_t += t[i];
            sum_p += p[i];
          }
          if (from_logits) {
            Softmax(p.data(), c, q.data());
            for (int64_t j = 0; j < c; ++j) grad[j] = q[j] * sum_t - t[j];
            return absl::OkStatus();
          }
          double kept = 0;
          for (int64_t i = 0; i < c; ++i) kept += t[i] * ClipGrad(p[i] / sum_p);
          for (int64_t j = 0; j < c; ++j) {
            const double rj = p[j] / sum_p;
            const double own = ClipGrad(rj) > 0 ? t[j] / rj : 0.0;
            grad[j] = (kept - own) / sum_p;
          }
          return absl::OkStatus();
        },
        outputs[0]);
  });
}

// The categorical gradient with a one-hot t at the label k.
absl::Status SparseCategoricalGradKernel(absl::Span<const Tensor* const> inputs,
                                         const Attributes& attrs,
                                         absl::Span<Tensor* const> outputs) {
  constexpr absl::string_view kOp = "sparse_categorical_crossentropy_grad";
  const Tensor& y_true = *inputs[0];
  const Tensor& y_pred = *inputs[1];
  const bool from_logits = BoolAttrOr(attrs, "from_logits", false);
  const int64_t c = y_pred.shape()[y_pred.shape().rank() - 1];
  return DispatchFloat(y_pred.dtype(), kOp, [&](auto zero) {
    using T = decltype(zero);
    auto pred = y_pred.data<T>();
    std::vector<double> p(c), q(c);
    return WeightedMeanGrad<T>(
        kOp, inputs, c,
        [&](int64_t r, double* grad) -> absl::Status {
          const double label = y_true.GetAsDouble(r);
          if (label != std::floor(label) || label < 0 ||
              label >= static_cast<double>(c)) {
            return absl::InvalidArgumentError(
                absl::StrCat("[", kOp, "] label ", label, " at sample ", r,
                             " is not a class index in [0, ", c, ")"));
          }
          const int64_t k = static_cast<int64_t>(label);
          double sum_p = 0;
          for (int64_t i = 0; i < c; ++i) {
            p[i] = pred[r * c + i];
            sum_p += p[i];
          }
          if (from_logits) {
            Softmax(p.data(), c, q.data());
            for (int64_t j = 0; j < c; ++j) grad[j] = q[j] - (j == k ? 1 : 0);
            return absl::OkStatus();
          }
          const double rk = p[k] / sum_p;
          if (ClipGrad(rk) == 0) return absl::OkStatus();
          for (int64_t j = 0; j < c; ++j) {
            grad[j] = (1.0 - (j == k ? 1.0 / rk : 0.0)) / sum_p;
          }
          return absl::OkStatus();
        },
        outputs[0]);
  });
}

OpDef MakeLossGrad(const OpDef& forward) {
  OpDef def;
  def.name = forward.name + "_grad";
  def.family = "loss";
  def.inputs = {"y_true", "y_pred", "dloss", "sample_weight"};
  def.num_required_inputs = 3;
  def.outputs = {"dy_pred"};
  def.attrs = forward.attrs;
  def.infer = GradShape(forward.infer);
  return def;
}

// y_pred's gradient through the loss's _grad op; y_true and sample_weight are
// data, not parameters.
absl::StatusOr<std::vector<ValueId>> LossGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  std::vector<ValueId> grads(node.inputs.size(), kNoValue);
  if (output_grads[0] == kNoValue) return grads;
  std::vector<ValueId> inputs = {node.inputs[0], node.inputs[1],
                                 output_grads[0]};
  if (node.inputs.size() > 2) inputs.push_back(node.inputs[2]);
  grads[1] =
      b.Op(absl::StrCat(node.op, "_grad"), std::move(inputs), node.attrs);
  return grads;
}

}  // namespace

OpDef Make_mse_Op() {
  OpDef def = MakeLoss("mse", {});
  def.reference = ElementwiseLossKernel(
      "mse",
      [](const Attributes&, double t, double p) { return (p - t) * (p - t); });
  def.gradient = LossGradient;
  return def;
}

OpDef Make_mae_Op() {
  OpDef def = MakeLoss("mae", {});
  def.reference = ElementwiseLossKernel(
      "mae",
      [](const Attributes&, double t, double p) { return std::abs(p - t); });
  def.gradient = LossGradient;
  return def;
}

OpDef Make_huber_Op() {
  OpDef def = MakeLoss("huber", {{"delta", AttrValue(1.0)}});
  def.infer =
      [](absl::Span<const TensorType> inputs,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_ASSIGN_OR_RETURN(double delta, GetFloatAttr(attrs, "delta"));
    if (!(delta > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("delta must be positive, got ", delta));
    }
    return DenseLossShape(inputs, attrs);
  };
  def.reference = ElementwiseLossKernel("huber", [](const Attributes& attrs,
                                                    double t, double p) {
    const double delta = FloatAttrOr(attrs, "delta", 1.0);
    const double err = std::abs(p - t);
    return err <= delta ? 0.5 * err * err : delta * err - 0.5 * delta * delta;
  });
  def.gradient = LossGradient;
  return def;
}

OpDef Make_binary_crossentropy_Op() {
  OpDef def = MakeLoss(
      "binary_crossentropy",
      {{"from_logits", AttrValue(false)}, {"label_smoothing", AttrValue(0.0)}});
  def.infer = CrossentropyShape;
  def.reference = ElementwiseLossKernel(
      "binary_crossentropy", [](const Attributes& attrs, double t, double p) {
        const double smoothing = FloatAttrOr(attrs, "label_smoothing", 0.0);
        t = t * (1 - smoothing) + 0.5 * smoothing;
        if (BoolAttrOr(attrs, "from_logits", false)) {
          // log(1 + exp(x)) - x*t, arranged so that exp never overflows.
          return std::max(p, 0.0) - p * t + std::log1p(std::exp(-std::abs(p)));
        }
        p = Clip(p);
        return -(t * std::log(p) + (1 - t) * std::log(1 - p));
      });
  def.gradient = LossGradient;
  return def;
}

OpDef Make_categorical_crossentropy_Op() {
  OpDef def = MakeLoss(
      "categorical_crossentropy",
      {{"from_logits", AttrValue(false)}, {"label_smoothing", AttrValue(0.0)}});
  def.infer =
      [](absl::Span<const TensorType> inputs,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    // The class axis is last and the batch first, so a lone distribution needs
    // a batch axis.
    SEQUENT_RETURN_IF_ERROR(CheckPred(inputs[1], 2));
    return CrossentropyShape(inputs, attrs);
  };
  def.reference = CategoricalKernel;
  def.gradient = LossGradient;
  return def;
}

OpDef Make_sparse_categorical_crossentropy_Op() {
  OpDef def = MakeLoss("sparse_categorical_crossentropy",
                       {{"from_logits", AttrValue(false)}});
  def.infer = SparseLossShape;
  def.reference = SparseCategoricalKernel;
  def.gradient = LossGradient;
  return def;
}

}  // namespace sequent::ops

namespace sequent::ops {

OpDef Make_mse_grad_Op() {
  OpDef def = MakeLossGrad(Make_mse_Op());
  def.reference = ElementwiseLossGradKernel(
      "mse_grad",
      [](const Attributes&, double t, double p) { return 2 * (p - t); });
  return def;
}

OpDef Make_mae_grad_Op() {
  OpDef def = MakeLossGrad(Make_mae_Op());
  // sign(0) = 0, as TensorFlow differentiates abs.
  def.reference = ElementwiseLossGradKernel(
      "mae_grad", [](const Attributes&, double t, double p) {
        return static_cast<double>((p > t) - (p < t));
      });
  return def;
}

OpDef Make_huber_grad_Op() {
  OpDef def = MakeLossGrad(Make_huber_Op());
  def.reference = ElementwiseLossGradKernel(
      "huber_grad", [](const Attributes& attrs, double t, double p) {
        const double delta = FloatAttrOr(attrs, "delta", 1.0);
        const double err = p - t;
        if (std::abs(err) <= delta) return err;
        return err > 0 ? delta : -delta;
      });
  return def;
}

OpDef Make_binary_crossentropy_grad_Op() {
  OpDef def = MakeLossGrad(Make_binary_crossentropy_Op());
  def.reference = ElementwiseLossGradKernel(
      "binary_crossentropy_grad",
      [](const Attributes& attrs, double t, double p) {
        const double smoothing = FloatAttrOr(attrs, "label_smoothing", 0.0);
        t = t * (1 - smoothing) + 0.5 * smoothing;
        if (BoolAttrOr(attrs, "from_logits", false)) {
          return 1.0 / (1.0 + std::exp(-p)) - t;
        }
        if (ClipGrad(p) == 0) return 0.0;
        return -t / p + (1 - t) / (1 - p);
      });
  return def;
}

OpDef Make_categorical_crossentropy_grad_Op() {
  OpDef def = MakeLossGrad(Make_categorical_crossentropy_Op());
  def.reference = CategoricalGradKernel;
  return def;
}

OpDef Make_sparse_categorical_crossentropy_grad_Op() {
  OpDef def = MakeLossGrad(Make_sparse_categorical_crossentropy_Op());
  def.reference = SparseCategoricalGradKernel;
  return def;
}

}  // namespace sequent::ops
