// Op family `shape`: reshape, flatten, transpose, concat, slice and cast. Apart
// from cast these only move elements, so their kernels copy bytes and work for
// every dtype.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/status_macros.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

std::string ListToString(const std::vector<int64_t>& values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

// Copies element `src_index` of `src` to element `dst_index` of `dst` (same
// dtype).
void CopyElement(const Tensor& src, int64_t src_index, Tensor& dst,
                 int64_t dst_index) {
  const size_t size = DTypeSize(src.dtype());
  std::memcpy(static_cast<std::byte*>(dst.raw_data()) + dst_index * size,
              static_cast<const std::byte*>(src.raw_data()) + src_index * size,
              size);
}

absl::Status CopyAllBytes(absl::Span<const Tensor* const> in,
                          absl::Span<Tensor* const> out, absl::string_view op) {
  if (in[0]->num_bytes() != out[0]->num_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[", op, "] output ", out[0]->type().ToString(),
                     " does not hold input ", in[0]->type().ToString()));
  }
  if (in[0]->num_bytes() > 0) {
    std::memcpy(out[0]->raw_data(), in[0]->raw_data(), in[0]->num_bytes());
  }
  return absl::OkStatus();
}

// Truncates toward zero, saturating at the type's range, with NaN going to 0:
// converting an out-of-range double to an integer is undefined behavior in C++.
double SaturateToInteger(double v, DType dtype) {
  if (std::isnan(v)) return 0;
  const double lo =
      dtype == DType::kI64 ? -9223372036854775808.0 : -2147483648.0;
  const double hi = dtype == DType::kI64 ? 9223372036854774784.0 : 2147483647.0;
  return std::trunc(std::clamp(v, lo, hi));
}

int CountBatch(const std::vector<int64_t>& dims) {
  int count = 0;
  for (int64_t d : dims) count += d == Shape::kBatch;
  return count;
}

// Gradient of ops that only rearrange elements: reshape dy back to the
// input's shape (N stays -1).
absl::StatusOr<std::vector<ValueId>> ReshapeBack(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> dys) {
  if (dys[0] == kNoValue || !IsFloating(b.type(node.inputs[0]).dtype)) {
    return std::vector<ValueId>{kNoValue};
  }
  return std::vector<ValueId>{
      b.Op("reshape", {dys[0]},
           {{"shape", AttrValue(b.type(node.inputs[0]).shape.dims())}})};
}

}  // namespace

OpDef Make_reshape_Op() {
  OpDef def;
  def.name = "reshape";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"shape", std::nullopt}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> dims,
                             GetIntListAttr(attrs, "shape"));
    const Shape target(dims);
    for (int64_t d : dims) {
      if (d < Shape::kBatch) {
        return absl::InvalidArgumentError(absl::StrCat(
            "shape ", ListToString(dims), " has a negative dimension ", d,
            " (-1 stands for the batch dimension N)"));
      }
    }
    // -1 is the batch dimension, never "infer this one": a reshape keeps N
    // where it was and says every other dimension.
    if (CountBatch(dims) != CountBatch(x.shape.dims())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot reshape ", x.ToString(), " to ", target.ToString(),
          ": -1 in shape stands for the batch dimension N, which must appear "
          "as often as "
          "in the input"));
    }
    if (target.NumElementsPerBatch() != x.shape.NumElementsPerBatch()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot reshape ", x.ToString(), " to ", target.ToString(), ": ",
          x.shape.NumElementsPerBatch(), " vs ", target.NumElementsPerBatch(),
          " elements", x.shape.HasBatch() ? " per batch" : ""));
    }
    return std::vector<TensorType>{{x.dtype, target}};
  };
  def.reference = [](absl::Span<const Tensor* const> in, const Attributes&,
                     absl::Span<Tensor* const> out) {
    return CopyAllBytes(in, out, "reshape");
  };
  def.gradient = ReshapeBack;
  return def;
}

OpDef Make_flatten_Op() {
  OpDef def;
  def.name = "flatten";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.infer = [](absl::Span<const TensorType> in,
                 const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    if (x.shape.rank() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("x must have at least rank 1, got ", x.ToString()));
    }
    int64_t inner = 1;
    for (int i = 1; i < x.shape.rank(); ++i) {
      if (x.shape[i] == Shape::kBatch) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot flatten ", x.ToString(),
                         ": only dimension 0 may be the batch dimension"));
      }
      inner *= x.shape[i];
    }
    return std::vector<TensorType>{{x.dtype, Shape{x.shape[0], inner}}};
  };
  def.reference = [](absl::Span<const Tensor* const> in, const Attributes&,
                     absl::Span<Tensor* const> out) {
    return CopyAllBytes(in, out, "flatten");
  };
  def.gradient = ReshapeBack;
  return def;
}

OpDef Make_transpose_Op() {
  OpDef def;
  def.name = "transpose";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"perm", std::nullopt}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> perm,
                             GetIntListAttr(attrs, "perm"));
    const int rank = x.shape.rank();
    std::vector<bool> seen(rank, false);
    bool valid = static_cast<int>(perm.size()) == rank;
    for (size_t i = 0; valid && i < perm.size(); ++i) {
      valid = perm[i] >= 0 && perm[i] < rank && !seen[perm[i]];
      if (valid) seen[perm[i]] = true;
    }
    if (!valid) {
      return absl::InvalidArgumentError(absl::StrCat(
          "perm ", ListToString(perm), " is not a permutation of the ", rank,
          " dimensions of ", x.ToString()));
    }
    std::vector<int64_t> dims(rank);
    for (int i = 0; i < rank; ++i) dims[i] = x.shape[perm[i]];
    return std::vector<TensorType>{{x.dtype, Shape(std::move(dims))}};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const std::vector<int64_t> perm = IntListAttrOr(attrs, "perm", {});
    const Shape& out_shape = out[0]->shape();
    if (static_cast<int>(perm.size()) != out_shape.rank()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[transpose] perm ", ListToString(perm),
                       " does not fit ", out[0]->type().ToString()));
    }
    // Output dimension i walks input dimension perm[i].
    const std::vector<int64_t> in_strides = RowMajorStrides(in[0]->shape());
    std::vector<int64_t> strides(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) strides[i] = in_strides[perm[i]];
    for (int64_t i = 0; i < out[0]->num_elements(); ++i) {
      CopyElement(*in[0], BroadcastSourceIndex(i, out_shape, strides), *out[0],
                  i);
    }
    return absl::OkStatus();
  };
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue || !IsFloating(b.type(node.inputs[0]).dtype)) {
      return std::vector<ValueId>{kNoValue};
    }
    const std::vector<int64_t> perm = IntListAttrOr(node.attrs, "perm", {});
    std::vector<int64_t> inverse(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(perm.size())) {
        return absl::InvalidArgumentError(
            absl::StrCat("perm ", ListToString(perm), " is not a permutation"));
      }
      inverse[perm[i]] = static_cast<int64_t>(i);
    }
    return std::vector<ValueId>{
        b.Op("transpose", {dys[0]}, {{"perm", AttrValue(inverse)}})};
  };
  return def;
}

OpDef Make_concat_Op() {
  OpDef def;
  def.name = "concat";
  def.inputs = {"values"};
  def.num_required_inputs = 1;
  def.variadic = true;
  def.outputs = {"out"};
  def.attrs = {{"axis", AttrValue(int64_t{-1})}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& first = in[0];
    const int64_t axis_attr = IntAttrOr(attrs, "axis", -1);
    auto axis = NormalizeAxis(axis_attr, first.shape.rank());
    if (!axis.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "axis ", axis_attr, " is out of range for ", first.ToString()));
    }
    std::vector<int64_t> dims = first.shape.dims();
    for (size_t k = 1; k < in.size(); ++k) {
      const TensorType& t = in[k];
      if (t.dtype != first.dtype) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dtypes differ: ", first.ToString(), " vs ", t.ToString()));
      }
      bool fits = t.shape.rank() == first.shape.rank();
      for (int i = 0; fits && i < t.shape.rank(); ++i) {
        fits = i == *axis || t.shape[i] == first.shape[i];
      }
      if (!fits) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot concatenate ", first.ToString(), " and ",
                         t.ToString(), " along axis ", axis_attr));
      }
      if (dims[*axis] == Shape::kBatch || t.shape[*axis] == Shape::kBatch) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot concatenate ", first.ToString(), " and ", t.ToString(),
            " along the batch dimension (axis ", axis_attr, ")"));
      }
      dims[*axis] += t.shape[*axis];
    }
    return std::vector<TensorType>{{first.dtype, Shape(std::move(dims))}};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const Shape& out_shape = out[0]->shape();
    auto axis = NormalizeAxis(IntAttrOr(attrs, "axis", -1), out_shape.rank());
    if (!axis.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("[concat] ", axis.status().message()));
    // Viewed as [outer, axis * inner]: each input contributes one contiguous
    // run per outer index, one after another.
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < *axis; ++i) outer *= out_shape.dim(i);
    for (int i = *axis + 1; i < out_shape.rank(); ++i)
      inner *= out_shape.dim(i);
    const size_t size = DTypeSize(out[0]->dtype());
    auto* dst = static_cast<std::byte*>(out[0]->raw_data());
    for (int64_t o = 0; o < outer; ++o) {
      for (const Tensor* t : in) {
        const int64_t run = t->shape().dim(*axis) * inner;
        const auto* src =
            static_cast<const std::byte*>(t->raw_data()) + o * run * size;
        if (run > 0) std::memcpy(dst, src, run * size);
        dst += run * size;
      }
    }
    return absl::OkStatus();
  };
  // Each input's gradient is its slab of dy along the axis.
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    std::vector<ValueId> grads(node.inputs.size(), kNoValue);
    if (dys[0] == kNoValue) return grads;
    const Shape out = b.type(node.outputs[0]).shape;  // Outlives b.Op.
    SEQUENT_ASSIGN_OR_RETURN(
        int axis, NormalizeAxis(IntAttrOr(node.attrs, "axis", -1), out.rank()));
    int64_t offset = 0;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const TensorType& t = b.type(node.inputs[k]);
      std::vector<int64_t> begin(out.rank(), 0);
      std::vector<int64_t> size = t.shape.dims();  // N is -1: take it whole.
      begin[axis] = offset;
      offset += t.shape[axis];
      if (!IsFloating(t.dtype)) continue;
      grads[k] = b.Op("slice", {dys[0]},
                      {{"begin", AttrValue(begin)}, {"size", AttrValue(size)}});
    }
    return grads;
  };
  return def;
}

OpDef Make_slice_Op() {
  OpDef def;
  def.name = "slice";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"begin", std::nullopt}, {"size", std::nullopt}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> begin,
                             GetIntListAttr(attrs, "begin"));
    SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> size,
                             GetIntListAttr(attrs, "size"));
    const int rank = x.shape.rank();
    const std::string what =
        absl::StrCat("begin ", ListToString(begin), ", size ",
                     ListToString(size), " for ", x.ToString());
    if (static_cast<int>(begin.size()) != rank ||
        static_cast<int>(size.size()) != rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": need one begin and one size per dimension (", rank, ")"));
    }
    std::vector<int64_t> dims(rank);
    for (int i = 0; i < rank; ++i) {
      const int64_t d = x.shape[i];
      if (d == Shape::kBatch) {
        if (begin[i] != 0 || size[i] != -1) {
          return absl::InvalidArgumentError(
              absl::StrCat(what, ": dimension ", i,
                           " is the batch dimension N, which can only be taken "
                           "whole (begin 0, size -1)"));
        }
        dims[i] = Shape::kBatch;
        continue;
      }
      const int64_t extent = size[i] == -1 ? d - begin[i] : size[i];
      if (begin[i] < 0 || begin[i] > d || extent < 0 || begin[i] + extent > d) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": dimension ", i, " is out of bounds"));
      }
      dims[i] = extent;
    }
    return std::vector<TensorType>{{x.dtype, Shape(std::move(dims))}};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const std::vector<int64_t> begin = IntListAttrOr(attrs, "begin", {});
    const Shape& out_shape = out[0]->shape();
    if (static_cast<int>(begin.size()) != out_shape.rank()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[slice] begin ", ListToString(begin), " does not fit ",
                       out[0]->type().ToString()));
    }
    const std::vector<int64_t> strides = RowMajorStrides(in[0]->shape());
    int64_t base = 0;
    for (size_t i = 0; i < begin.size(); ++i) base += begin[i] * strides[i];
    for (int64_t i = 0; i < out[0]->num_elements(); ++i) {
      CopyElement(*in[0], base + BroadcastSourceIndex(i, out_shape, strides),
                  *out[0], i);
    }
    return absl::OkStatus();
  };
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    const TensorType& x = b.type(node.inputs[0]);
    if (dys[0] == kNoValue || !IsFloating(x.dtype)) {
      return std::vector<ValueId>{kNoValue};
    }
    return std::vector<ValueId>{
        b.Op("slice_grad", {dys[0]},
             {{"begin", AttrValue(IntListAttrOr(node.attrs, "begin", {}))},
              {"input_shape", AttrValue(x.shape.dims())}})};
  };
  return def;
}

OpDef Make_cast_Op() {
  OpDef def;
  def.name = "cast";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"to", AttrValue(std::string("f32"))}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const std::string to = StringAttrOr(attrs, "to", "f32");
    auto dtype = ParseDType(to);
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "to = \"", to,
          "\" is not a dtype (valid: f32, f64, bf16, f16, i32, i64, bool)"));
    }
    return std::vector<TensorType>{{*dtype, in[0].shape}};
  };
  def.reference = [](absl::Span<const Tensor* const> in, const Attributes&,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const Tensor& x = *in[0];
    Tensor& y = *out[0];
    if (x.num_elements() != y.num_elements()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[cast] output ", y.type().ToString(),
                       " does not hold input ", x.type().ToString()));
    }
    // Integers go through int64 so that large i64 values survive; everything
    // else through double, which holds every f32, bf16, f16, i32 and bool value
    // exactly.
    const bool integers = IsInteger(x.dtype()) && IsInteger(y.dtype());
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      if (integers) {
        const int64_t v = x.dtype() == DType::kI64 ? x.data<int64_t>()[i]
                                                   : x.data<int32_t>()[i];
        if (y.dtype() == DType::kI64) {
          y.data<int64_t>()[i] = v;
        } else {
          y.data<int32_t>()[i] = static_cast<int32_t>(v);
        }
      } else if (IsInteger(y.dtype())) {
        y.SetFromDouble(i, SaturateToInteger(x.GetAsDouble(i), y.dtype()));
      } else {
        y.SetFromDouble(i, x.GetAsDouble(i));
      }
    }
    return absl::OkStatus();
  };
  // Casting between floating types is differentiable (the gradient casts
  // back); to or from integers it is piecewise constant.
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    const DType from = b.type(node.inputs[0]).dtype;
    if (dys[0] == kNoValue || !IsFloating(from) ||
        !IsFloating(b.type(node.outputs[0]).dtype)) {
      return std::vector<ValueId>{kNoValue};
    }
    return std::vector<ValueId>{b.Op(
        "cast", {dys[0]}, {{"to", AttrValue(std::string(DTypeName(from)))}})};
  };
  return def;
}

// The gradient of slice: zeros of the input's shape with dy at `begin`.
OpDef Make_slice_grad_Op() {
  OpDef def;
  def.name = "slice_grad";
  def.inputs = {"dy"};
  def.outputs = {"dx"};
  def.attrs = {{"begin", std::nullopt}, {"input_shape", std::nullopt}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& dy = in[0];
    SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> begin,
                             GetIntListAttr(attrs, "begin"));
    SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> input_shape,
                             GetIntListAttr(attrs, "input_shape"));
    const int rank = dy.shape.rank();
    const std::string what =
        absl::StrCat("dy ", dy.ToString(), " at begin ", ListToString(begin),
                     " in input_shape ", ListToString(input_shape));
    if (static_cast<int>(begin.size()) != rank ||
        static_cast<int>(input_shape.size()) != rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": need one begin and one input dimension per dimension (",
          rank, ")"));
    }
    for (int i = 0; i < rank; ++i) {
      const int64_t d = input_shape[i];
      if (d == Shape::kBatch || dy.shape[i] == Shape::kBatch) {
        if (d != dy.shape[i] || begin[i] != 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              what, ": dimension ", i,
              " is the batch dimension N, which must be taken whole"));
        }
        continue;
      }
      if (d < 0 || begin[i] < 0 || begin[i] + dy.shape[i] > d) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": dimension ", i, " is out of bounds"));
      }
    }
    return std::vector<TensorType>{{dy.dtype, Shape(std::move(input_shape))}};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const std::vector<int64_t> begin = IntListAttrOr(attrs, "begin", {});
    const Shape& in_shape = in[0]->shape();
    if (static_cast<int>(begin.size()) != in_shape.rank()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[slice_grad] begin ", ListToString(begin),
                       " does not fit ", in[0]->type().ToString()));
    }
    // Output buffers may be reused: zero everything first.
    if (out[0]->num_bytes() > 0) {
      std::memset(out[0]->raw_data(), 0, out[0]->num_bytes());
    }
    const std::vector<int64_t> strides = RowMajorStrides(out[0]->shape());
    int64_t base = 0;
    for (size_t i = 0; i < begin.size(); ++i) base += begin[i] * strides[i];
    for (int64_t i = 0; i < in[0]->num_elements(); ++i) {
      CopyElement(*in[0], i, *out[0],
                  base + BroadcastSourceIndex(i, in_shape, strides));
    }
    return absl::OkStatus();
  };
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue};
    return std::vector<ValueId>{
        b.Op("slice", {dys[0]},
             {{"begin", AttrValue(IntListAttrOr(node.attrs, "begin", {}))},
              {"size", AttrValue(b.type(node.inputs[0]).shape.dims())}})};
  };
  return def;
}

}  // namespace sequent::ops
