#include "backends/cpu/onednn_util.h"

#include "absl/strings/str_cat.h"

namespace sequent::cpu {

using dt = dnnl::memory::data_type;

absl::StatusOr<dnnl::memory::data_type> ToDnnlType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return dt::f32;
    case DType::kBF16:
      return dt::bf16;
    case DType::kF16:
      return dt::f16;
    case DType::kI32:
      return dt::s32;
    default:
      return absl::UnimplementedError(
          absl::StrCat("oneDNN has no ", DTypeName(dtype), " element type"));
  }
}

bool HasDnnlType(DType dtype) { return ToDnnlType(dtype).ok(); }

dnnl::memory::dims RowMajorStrides(const dnnl::memory::dims& dims) {
  dnnl::memory::dims strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * dims[i + 1];
  }
  return strides;
}

dnnl::memory::dims ToDnnlDims(const Shape& shape) {
  if (shape.IsScalar()) return {1};
  return dnnl::memory::dims(shape.dims().begin(), shape.dims().end());
}

absl::StatusOr<dnnl::memory::desc> PlainDesc(const dnnl::memory::dims& dims,
                                             DType dtype) {
  auto type = ToDnnlType(dtype);
  if (!type.ok()) return type.status();
  return dnnl::memory::desc(dims, *type, RowMajorStrides(dims));
}

absl::StatusOr<dnnl::memory::desc> PlainDesc(const TensorType& type) {
  if (!type.shape.IsStatic()) {
    return absl::InternalError(
        absl::StrCat("type ", type.ToString(), " is not batch-bound"));
  }
  return PlainDesc(ToDnnlDims(type.shape), type.dtype);
}

std::vector<EltwiseStep> EltwiseChain(const ops::Activation& act) {
  using dnnl::algorithm;
  const float alpha = static_cast<float>(act.alpha);
  switch (act.kind) {
    case ops::ActivationKind::kLinear:
      return {};
    case ops::ActivationKind::kRelu:
      return {{algorithm::eltwise_relu, 0.f, 0.f}};
    case ops::ActivationKind::kLeakyRelu:
      return {{algorithm::eltwise_relu, alpha, 0.f}};
    case ops::ActivationKind::kElu:
      return {{algorithm::eltwise_elu, alpha, 0.f}};
    case ops::ActivationKind::kSelu:
      return {
          {algorithm::eltwise_elu, static_cast<float>(ops::kSeluAlpha), 0.f},
          {algorithm::eltwise_linear, static_cast<float>(ops::kSeluScale),
           0.f}};
    case ops::ActivationKind::kSigmoid:
      return {{algorithm::eltwise_logistic, 0.f, 0.f}};
    case ops::ActivationKind::kTanh:
      return {{algorithm::eltwise_tanh, 0.f, 0.f}};
    case ops::ActivationKind::kGelu:
      return {{act.approximate ? algorithm::eltwise_gelu_tanh
                               : algorithm::eltwise_gelu_erf,
               0.f, 0.f}};
    case ops::ActivationKind::kSwish:
      // oneDNN's swish is x * sigmoid(alpha * x).
      return {{algorithm::eltwise_swish, 1.f, 0.f}};
    case ops::ActivationKind::kSoftplus:
      // soft_relu in 2.6 is log(1 + e^x), with no alpha.
      return {{algorithm::eltwise_soft_relu, 0.f, 0.f}};
  }
  return {};
}

dnnl::post_ops ActivationPostOps(const ops::Activation& act) {
  dnnl::post_ops post;
  for (const EltwiseStep& e : EltwiseChain(act))
    post.append_eltwise(1.f, e.alg, e.alpha, e.beta);
  return post;
}

absl::Status DnnlError(const dnnl::error& e, absl::string_view what) {
  const std::string message = absl::StrCat(what, ": oneDNN error ", e.what());
  if (e.status == dnnl_unimplemented) return absl::UnimplementedError(message);
  if (e.status == dnnl_out_of_memory)
    return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

}  // namespace sequent::cpu
