#ifndef SEQUENT_BACKENDS_CPU_ONEDNN_UTIL_H_
#define SEQUENT_BACKENDS_CPU_ONEDNN_UTIL_H_

// Small bridges between sequent's types and oneDNN 2.6: data types, plain
// memory descriptors, activation -> eltwise algorithm chains, and dnnl::error
// -> absl::Status.

#include <dnnl.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "ops/activation_fn.h"

namespace sequent::cpu {

// oneDNN's element type for `dtype`; f64, i64 and bool have none (our own loops
// run them).
absl::StatusOr<dnnl::memory::data_type> ToDnnlType(DType dtype);
bool HasDnnlType(DType dtype);

// Row-major strides of `dims`.
dnnl::memory::dims RowMajorStrides(const dnnl::memory::dims& dims);
// `shape` must be static; a scalar becomes {1}.
dnnl::memory::dims ToDnnlDims(const Shape& shape);
// A plain (row-major) descriptor; the shape must be static.
absl::StatusOr<dnnl::memory::desc> PlainDesc(const TensorType& type);
// `dims` laid out row-major with element type of `dtype`.
absl::StatusOr<dnnl::memory::desc> PlainDesc(const dnnl::memory::dims& dims,
                                             DType dtype);

// One eltwise operation: dst = alg(src; alpha, beta).
struct EltwiseStep {
  dnnl::algorithm alg;
  float alpha = 0.f;
  float beta = 0.f;
};

// The eltwise chain computing `act` (linear is the empty chain; selu is elu
// then a scale, since oneDNN 2.6 has no selu).
std::vector<EltwiseStep> EltwiseChain(const ops::Activation& act);
// That chain as a primitive's post-ops (a dense layer's or a convolution's).
dnnl::post_ops ActivationPostOps(const ops::Activation& act);

// Converts a dnnl::error into a status naming what was being done.
absl::Status DnnlError(const dnnl::error& e, absl::string_view what);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_ONEDNN_UTIL_H_
