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

}  // namespace

OpDef Make_mse_Op() {
  OpDef def = MakeLoss("mse", {});
  def.reference = ElementwiseLossKernel(
      "mse",
      [](const Attributes&, double t, double p) { return (p - t) * (p - t); });
  return def;
}

OpDef Make_mae_Op() {
  OpDef def = MakeLoss("mae", {});
  def.reference = ElementwiseLossKernel(
      "mae",
      [](const Attributes&, double t, double p) { return std::abs(p - t); });
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
  return def;
}

OpDef Make_sparse_categorical_crossentropy_Op() {
  OpDef def = MakeLoss("sparse_categorical_crossentropy",
                       {{"from_logits", AttrValue(false)}});
  def.infer = SparseLossShape;
  def.reference = SparseCategoricalKernel;
  return def;
}

}  // namespace sequent::ops
