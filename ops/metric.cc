// Op family `metric`: Keras accuracy metrics as the f32 fraction of correct
// predictions in the batch (the frontend accumulates them across batches).

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

absl::Status CheckTypes(const TensorType& y_true, const TensorType& y_pred,
                        int min_rank) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(y_pred, "y_pred"));
  if (y_pred.shape.rank() < min_rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "y_pred must have rank >= ", min_rank, ", got ", y_pred.ToString()));
  }
  if (y_true.dtype == DType::kBF16 || y_true.dtype == DType::kF16 ||
      y_true.dtype == DType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat(
        "y_true must be f32, f64, i32 or i64, got ", y_true.ToString()));
  }
  return absl::OkStatus();
}

// Metrics are always f32, whatever the dtype of the predictions.
std::vector<TensorType> ScalarF32() { return {{DType::kF32, Shape{}}}; }

absl::StatusOr<std::vector<TensorType>> SameShape(
    absl::Span<const TensorType> inputs, const Attributes&, int min_rank) {
  SEQUENT_RETURN_IF_ERROR(CheckTypes(inputs[0], inputs[1], min_rank));
  if (inputs[0].shape != inputs[1].shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("y_true ", inputs[0].ToString(), " and y_pred ",
                     inputs[1].ToString(), " must have the same shape"));
  }
  return ScalarF32();
}

absl::StatusOr<std::vector<TensorType>> SparseShape(
    absl::Span<const TensorType> inputs, const Attributes&) {
  const TensorType& y_true = inputs[0];
  const TensorType& y_pred = inputs[1];
  SEQUENT_RETURN_IF_ERROR(CheckTypes(y_true, y_pred, 2));
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
  return ScalarF32();
}

// Index of the largest of row[0..n); the first one on ties, like numpy.argmax.
template <typename Get>
int64_t ArgMax(int64_t n, Get get) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (get(i) > get(best)) best = i;
  }
  return best;
}

void WriteFraction(int64_t correct, int64_t total, Tensor* out) {
  out->data<float>()[0] =
      total == 0 ? 0.0f
                 : static_cast<float>(static_cast<double>(correct) / total);
}

absl::Status SparseAccuracyKernel(absl::Span<const Tensor* const> inputs,
                                  const Attributes&,
                                  absl::Span<Tensor* const> outputs) {
  const Tensor& y_true = *inputs[0];
  const Tensor& y_pred = *inputs[1];
  const int64_t c = y_pred.shape()[y_pred.shape().rank() - 1];
  const int64_t rows = c == 0 ? 0 : y_pred.num_elements() / c;
  return DispatchFloat(
      y_pred.dtype(), "sparse_categorical_accuracy", [&](auto zero) {
        using T = decltype(zero);
        auto pred = y_pred.data<T>();
        int64_t correct = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t k =
              ArgMax(c, [&](int64_t i) { return pred[r * c + i]; });
          // An out-of-range or fractional label is simply never matched (as in
          // Keras).
          correct += y_true.GetAsDouble(r) == static_cast<double>(k);
        }
        WriteFraction(correct, rows, outputs[0]);
        return absl::OkStatus();
      });
}

absl::Status CategoricalAccuracyKernel(absl::Span<const Tensor* const> inputs,
                                       const Attributes&,
                                       absl::Span<Tensor* const> outputs) {
  const Tensor& y_true = *inputs[0];
  const Tensor& y_pred = *inputs[1];
  const int64_t c = y_pred.shape()[y_pred.shape().rank() - 1];
  const int64_t rows = c == 0 ? 0 : y_pred.num_elements() / c;
  return DispatchFloat(y_pred.dtype(), "categorical_accuracy", [&](auto zero) {
    using T = decltype(zero);
    auto pred = y_pred.data<T>();
    int64_t correct = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t k_pred =
          ArgMax(c, [&](int64_t i) { return pred[r * c + i]; });
      const int64_t k_true =
          ArgMax(c, [&](int64_t i) { return y_true.GetAsDouble(r * c + i); });
      correct += k_pred == k_true;
    }
    WriteFraction(correct, rows, outputs[0]);
    return absl::OkStatus();
  });
}

absl::Status BinaryAccuracyKernel(absl::Span<const Tensor* const> inputs,
                                  const Attributes& attrs,
                                  absl::Span<Tensor* const> outputs) {
  const Tensor& y_true = *inputs[0];
  const Tensor& y_pred = *inputs[1];
  const double threshold = FloatAttrOr(attrs, "threshold", 0.5);
  return DispatchFloat(y_pred.dtype(), "binary_accuracy", [&](auto zero) {
    using T = decltype(zero);
    auto pred = y_pred.data<T>();
    int64_t correct = 0;
    // Every sample has the same number of outputs, so the Keras mean over the
    // last axis and then over the batch equals the mean over all elements.
    for (int64_t i = 0; i < y_pred.num_elements(); ++i) {
      const double predicted =
          static_cast<double>(pred[i]) > threshold ? 1.0 : 0.0;
      correct += y_true.GetAsDouble(i) == predicted;
    }
    WriteFraction(correct, y_pred.num_elements(), outputs[0]);
    return absl::OkStatus();
  });
}

OpDef MakeMetric(const std::string& name) {
  OpDef def;
  def.name = name;
  def.family = "metric";
  def.inputs = {"y_true", "y_pred"};
  def.outputs = {"value"};
  return def;
}

}  // namespace

OpDef Make_sparse_categorical_accuracy_Op() {
  OpDef def = MakeMetric("sparse_categorical_accuracy");
  def.infer = SparseShape;
  def.reference = SparseAccuracyKernel;
  return def;
}

OpDef Make_categorical_accuracy_Op() {
  OpDef def = MakeMetric("categorical_accuracy");
  def.infer = [](absl::Span<const TensorType> inputs, const Attributes& attrs) {
    return SameShape(inputs, attrs, 2);
  };
  def.reference = CategoricalAccuracyKernel;
  return def;
}

OpDef Make_binary_accuracy_Op() {
  OpDef def = MakeMetric("binary_accuracy");
  def.attrs = {{"threshold", AttrValue(0.5)}};
  def.infer = [](absl::Span<const TensorType> inputs, const Attributes& attrs) {
    return SameShape(inputs, attrs, 1);
  };
  def.reference = BinaryAccuracyKernel;
  return def;
}

}  // namespace sequent::ops
