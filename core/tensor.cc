#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sequent {

void Tensor::AlignedDeleter::operator()(std::byte* p) const { std::free(p); }

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  num_elements_ = shape_.IsStatic() ? shape_.NumElements() : 0;
  Allocate();
}

void Tensor::Allocate() {
  const size_t bytes = num_bytes();
  // aligned_alloc wants a multiple of the alignment; a zero-size tensor still gets a block.
  const size_t rounded = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, rounded == 0 ? kAlignment : rounded);
  data_.reset(static_cast<std::byte*>(p));
}

Tensor::Tensor(const Tensor& other)
    : dtype_(other.dtype_), shape_(other.shape_), num_elements_(other.num_elements_) {
  Allocate();
  if (other.data_) std::memcpy(data_.get(), other.data_.get(), num_bytes());
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this != &other) {
    Tensor copy(other);
    *this = std::move(copy);
  }
  return *this;
}

double Tensor::GetAsDouble(int64_t i) const {
  const void* p = data_.get();
  switch (dtype_) {
    case DType::kF32:
      return static_cast<const float*>(p)[i];
    case DType::kF64:
      return static_cast<const double*>(p)[i];
    case DType::kBF16:
      return BF16ToFloat(static_cast<const uint16_t*>(p)[i]);
    case DType::kF16:
      return F16ToFloat(static_cast<const uint16_t*>(p)[i]);
    case DType::kI32:
      return static_cast<const int32_t*>(p)[i];
    case DType::kI64:
      return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::kBool:
      return static_cast<const bool*>(p)[i] ? 1.0 : 0.0;
  }
  return 0.0;
}

void Tensor::SetFromDouble(int64_t i, double value) {
  void* p = data_.get();
  switch (dtype_) {
    case DType::kF32:
      static_cast<float*>(p)[i] = static_cast<float>(value);
      break;
    case DType::kF64:
      static_cast<double*>(p)[i] = value;
      break;
    case DType::kBF16:
      static_cast<uint16_t*>(p)[i] = FloatToBF16(static_cast<float>(value));
      break;
    case DType::kF16:
      static_cast<uint16_t*>(p)[i] = FloatToF16(static_cast<float>(value));
      break;
    case DType::kI32:
      static_cast<int32_t*>(p)[i] = static_cast<int32_t>(value);
      break;
    case DType::kI64:
      static_cast<int64_t*>(p)[i] = static_cast<int64_t>(value);
      break;
    case DType::kBool:
      static_cast<bool*>(p)[i] = value != 0.0;
      break;
  }
}

Tensor Tensor::CastTo(DType dtype) const {
  Tensor out(dtype, shape_);
  for (int64_t i = 0; i < num_elements_; ++i) out.SetFromDouble(i, GetAsDouble(i));
  return out;
}

namespace {

void AppendElement(const Tensor& t, int64_t i, std::string* out) {
  if (t.dtype() == DType::kBool) {
    out->append(t.GetAsDouble(i) != 0 ? "true" : "false");
  } else if (IsInteger(t.dtype())) {
    absl::StrAppend(out, static_cast<int64_t>(t.GetAsDouble(i)));
  } else {
    absl::StrAppend(out, absl::StrFormat("%.6g", t.GetAsDouble(i)));
  }
}

// Prints dimension `axis` of the block starting at element `offset`.
void AppendBlock(const Tensor& t, int axis, int64_t offset, int64_t max_elements,
                 std::string* out) {
  const Shape& s = t.shape();
  int64_t stride = 1;
  for (int i = axis + 1; i < s.rank(); ++i) stride *= s[i];
  const int64_t n = s[axis];
  const int64_t edge = std::max<int64_t>(1, max_elements / 2 / std::max<int64_t>(stride, 1));
  const bool elide = n * stride > max_elements && n > 2 * edge;
  out->append("[");
  for (int64_t i = 0; i < n; ++i) {
    if (elide && i == edge) {
      out->append("..., ");
      i = n - edge;
    }
    if (axis + 1 == s.rank()) {
      AppendElement(t, offset + i, out);
    } else {
      AppendBlock(t, axis + 1, offset + i * stride, max_elements, out);
    }
    if (i + 1 < n) out->append(axis + 1 == s.rank() ? ", " : ",\n ");
  }
  out->append("]");
}

}  // namespace

std::string Tensor::ToString(int64_t max_elements) const {
  std::string out = absl::StrCat("Tensor<", type().ToString(), ">(");
  if (shape_.IsScalar()) {
    AppendElement(*this, 0, &out);
  } else {
    AppendBlock(*this, 0, 0, max_elements, &out);
  }
  out.append(")");
  return out;
}

}  // namespace sequent
