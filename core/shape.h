#ifndef SEQUENT_CORE_SHAPE_H_
#define SEQUENT_CORE_SHAPE_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace sequent {

// A tensor shape. A dimension equal to kBatch is the symbolic batch size `N`, bound to a
// number when a graph is compiled for a batch size.
class Shape {
 public:
  static constexpr int64_t kBatch = -1;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t dim(int i) const { return dims_[i]; }
  int64_t operator[](int i) const { return dims_[i]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  std::vector<int64_t>& mutable_dims() { return dims_; }

  bool IsScalar() const { return dims_.empty(); }
  bool HasBatch() const;
  // True when no dimension is symbolic.
  bool IsStatic() const { return !HasBatch(); }
  // Product of the dimensions; requires IsStatic().
  int64_t NumElements() const;
  // Product of the static dimensions, treating `N` as 1.
  int64_t NumElementsPerBatch() const;
  // The same shape with `N` replaced by `batch_size`.
  Shape WithBatch(int64_t batch_size) const;

  // "[N,28,28]", "[]" for a scalar.
  std::string ToString() const;

  friend bool operator==(const Shape& a, const Shape& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const Shape& s) {
    return H::combine(std::move(h), s.dims_);
  }

 private:
  std::vector<int64_t> dims_;
};

// The type of every IR value: element type plus shape.
struct TensorType {
  DType dtype = DType::kF32;
  Shape shape;

  // "f32[N,512]".
  std::string ToString() const;
  friend bool operator==(const TensorType& a, const TensorType& b) {
    return a.dtype == b.dtype && a.shape == b.shape;
  }
  friend bool operator!=(const TensorType& a, const TensorType& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const TensorType& t) {
    return H::combine(std::move(h), t.dtype, t.shape);
  }
};

// Numpy broadcasting of two shapes; `N` broadcasts with `N` and with 1.
absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b);

// Normalizes a possibly negative axis against `rank`; error names the axis and rank.
absl::StatusOr<int> NormalizeAxis(int64_t axis, int rank);

}  // namespace sequent

#endif  // SEQUENT_CORE_SHAPE_H_
