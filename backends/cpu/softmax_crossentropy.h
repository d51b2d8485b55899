#ifndef SEQUENT_BACKENDS_CPU_SOFTMAX_CROSSENTROPY_H_
#define SEQUENT_BACKENDS_CPU_SOFTMAX_CROSSENTROPY_H_

// Sparse categorical crossentropy from the logits of a few classes in one
// pass: the softmax, the mean loss and what its gradient needs. A classifier
// head of ten classes at batch 200 took ~5 us in the separate steps (row max,
// oneDNN's exp, row sums, a logarithm per row, the gradient's fix-up), a
// seventh of scikit-learn's (5,5,5) net's step; here ~1 us with the gradient.

#include <cstdint>

#include "absl/status/status.h"
#include "backends/cpu/kernels.h"

namespace sequent::cpu {

// Whether SoftmaxCrossentropy serves rows of `classes` logits with labels of
// `label_dtype`: on CPUs with AVX-512, for 1-16 classes and i32, i64 or f32
// labels.
bool HasFusedSoftmaxCrossentropy(int64_t classes, DType label_dtype);

// For logits f32 [rows, classes], labels [rows] (integral values in
// [0, classes)) and f32 sample weights (`weights.data` null: none; one value
// for all rows or one per row): into *loss the weighted sum over rows of
// -log softmax(logits)[label], divided by rows; into `residual` (f32
// [rows, classes], not the logits' buffer) (softmax(logits) - onehot(label))
// times the row's weight, which times dloss / rows is the loss's gradient.
// A label out of range is an InvalidArgument naming it and its sample.
absl::Status SoftmaxCrossentropy(const float* logits, ConstView labels,
                                 ConstView weights, int64_t rows,
                                 int64_t classes, float* residual, float* loss);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_SOFTMAX_CROSSENTROPY_H_
