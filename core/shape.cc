#include "core/shape.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sequent {

bool Shape::HasBatch() const {
  return std::find(dims_.begin(), dims_.end(), kBatch) != dims_.end();
}

int64_t Shape::NumElements() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

int64_t Shape::NumElementsPerBatch() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= (d == kBatch ? 1 : d);
  return n;
}

Shape Shape::WithBatch(int64_t batch_size) const {
  std::vector<int64_t> dims = dims_;
  for (int64_t& d : dims) {
    if (d == kBatch) d = batch_size;
  }
  return Shape(std::move(dims));
}

std::string Shape::ToString() const {
  return absl::StrCat("[", absl::StrJoin(dims_, ",", [](std::string* out, int64_t d) {
                        if (d == kBatch) {
                          out->append("N");
                        } else {
                          absl::StrAppend(out, d);
                        }
                      }),
                      "]");
}

std::string TensorType::ToString() const {
  return absl::StrCat(DTypeName(dtype), shape.ToString());
}

absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  const int rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> dims(rank);
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i;
    const int ib = b.rank() - rank + i;
    const int64_t da = ia >= 0 ? a.dim(ia) : 1;
    const int64_t db = ib >= 0 ? b.dim(ib) : 1;
    if (da == db) {
      dims[i] = da;
    } else if (da == 1) {
      dims[i] = db;
    } else if (db == 1) {
      dims[i] = da;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("shapes ", a.ToString(), " and ",
                                                     b.ToString(),
                                                     " cannot be broadcast together"));
    }
  }
  return Shape(std::move(dims));
}

absl::StatusOr<int> NormalizeAxis(int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

}  // namespace sequent
