#ifndef SEQUENT_CORE_TENSOR_H_
#define SEQUENT_CORE_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace sequent {

// An owning, 64-byte aligned host tensor with a static shape. Copying copies
// the data; moving is cheap. bf16/f16 elements are stored as uint16_t bit
// patterns.
class Tensor {
 public:
  static constexpr size_t kAlignment = 64;

  // A zero f32 scalar, so a default tensor is always a usable buffer.
  Tensor() : Tensor(DType::kF32, Shape{}) {}
  // Zero-filled. `shape` must be static.
  Tensor(DType dtype, Shape shape);
  explicit Tensor(const TensorType& type) : Tensor(type.dtype, type.shape) {}

  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  template <typename T>
  static Tensor FromVector(const std::vector<T>& values, Shape shape);
  template <typename T>
  static Tensor Scalar(T value) {
    return FromVector<T>({value}, Shape{});
  }
  // Checks the element count against `shape` instead of trusting the caller.
  template <typename T>
  static absl::StatusOr<Tensor> FromVectorChecked(const std::vector<T>& values,
                                                  Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  TensorType type() const { return {dtype_, shape_}; }
  // type() == t without copying the shape (Run loops compare every step).
  bool HasType(const TensorType& t) const {
    return dtype_ == t.dtype && shape_ == t.shape;
  }
  int64_t num_elements() const { return num_elements_; }
  size_t num_bytes() const {
    return static_cast<size_t>(num_elements_) * DTypeSize(dtype_);
  }
  bool empty() const { return num_elements_ == 0; }

  void* raw_data() { return data_.get(); }
  const void* raw_data() const { return data_.get(); }

  // Typed views; T must match dtype() in size (checked in debug builds by
  // callers' tests).
  template <typename T>
  std::span<T> data() {
    return {reinterpret_cast<T*>(data_.get()),
            static_cast<size_t>(num_elements_)};
  }
  template <typename T>
  std::span<const T> data() const {
    return {reinterpret_cast<const T*>(data_.get()),
            static_cast<size_t>(num_elements_)};
  }
  template <typename T>
  std::vector<T> ToVector() const {
    auto view = data<T>();
    return std::vector<T>(view.begin(), view.end());
  }

  // Element i converted to double, whatever the dtype (for tests, printing,
  // comparisons).
  double GetAsDouble(int64_t i) const;
  void SetFromDouble(int64_t i, double value);
  // A copy converted to `dtype`.
  Tensor CastTo(DType dtype) const;

  // numpy-like printing, elided in the middle past `max_elements`.
  std::string ToString(int64_t max_elements = 64) const;

 private:
  struct AlignedDeleter {
    void operator()(std::byte* p) const;
  };
  void Allocate();

  DType dtype_ = DType::kF32;
  Shape shape_;
  int64_t num_elements_ = 0;
  std::unique_ptr<std::byte[], AlignedDeleter> data_;
};

template <typename T>
Tensor Tensor::FromVector(const std::vector<T>& values, Shape shape) {
  Tensor t(DTypeOf<T>::value, std::move(shape));
  auto view = t.data<T>();
  for (size_t i = 0; i < view.size() && i < values.size(); ++i)
    view[i] = values[i];
  return t;
}

template <typename T>
absl::StatusOr<Tensor> Tensor::FromVectorChecked(const std::vector<T>& values,
                                                 Shape shape) {
  if (!shape.IsStatic() ||
      shape.NumElements() != static_cast<int64_t>(values.size())) {
    return absl::InvalidArgumentError(
        "tensor of shape " + shape.ToString() + " needs " +
        std::to_string(shape.IsStatic() ? shape.NumElements() : -1) +
        " values, got " + std::to_string(values.size()));
  }
  return FromVector(values, std::move(shape));
}

}  // namespace sequent

#endif  // SEQUENT_CORE_TENSOR_H_
