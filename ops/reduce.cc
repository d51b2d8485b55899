// Op family `reduce`: sum, mean and max over a set of axes.

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
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

enum class Reduction { kSum, kMean, kMax };

// The reduced axes as a per-dimension mask; `axes` empty means every axis.
absl::StatusOr<std::vector<bool>> ReducedMask(const TensorType& x,
                                              const Attributes& attrs) {
  const std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
  const int rank = x.shape.rank();
  std::vector<bool> mask(rank, axes.empty());
  for (int64_t axis : axes) {
    if (axis < -rank || axis >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("axis ", axis, " of axes [", absl::StrJoin(axes, ", "),
                       "] is out of range for ", x.ToString()));
    }
    const int a = static_cast<int>(axis < 0 ? axis + rank : axis);
    if (mask[a]) {
      return absl::InvalidArgumentError(
          absl::StrCat("axes [", absl::StrJoin(axes, ", "), "] name dimension ",
                       a, " of ", x.ToString(), " twice"));
    }
    mask[a] = true;
  }
  return mask;
}

OpDef MakeReduce(std::string name, Reduction reduction) {
  OpDef def;
  def.name = name;
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"axes", AttrValue(std::vector<int64_t>{})},
               {"keepdims", AttrValue(false)}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
    SEQUENT_ASSIGN_OR_RETURN(std::vector<bool> mask, ReducedMask(x, attrs));
    const bool keepdims = BoolAttrOr(attrs, "keepdims", false);
    std::vector<int64_t> dims;
    for (int i = 0; i < x.shape.rank(); ++i) {
      if (!mask[i]) {
        dims.push_back(x.shape[i]);
      } else if (keepdims) {
        dims.push_back(1);
      }
    }
    return std::vector<TensorType>{{x.dtype, Shape(std::move(dims))}};
  };
  def.reference = [name, reduction](
                      absl::Span<const Tensor* const> in,
                      const Attributes& attrs,
                      absl::Span<Tensor* const> out) -> absl::Status {
    const Shape& shape = in[0]->shape();
    auto mask = ReducedMask(in[0]->type(), attrs);
    if (!mask.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[", name, "] ", mask.status().message()));
    }
    // Output element of each input element: the input shape with reduced
    // dimensions set to 1 broadcasts to the input, and its strides skip the
    // reduced dimensions.
    std::vector<int64_t> kept = shape.dims();
    int64_t count = 1;
    for (int i = 0; i < shape.rank(); ++i) {
      if ((*mask)[i]) {
        count *= kept[i];
        kept[i] = 1;
      }
    }
    const std::vector<int64_t> strides = BroadcastStrides(Shape(kept), shape);
    return DispatchFloat(in[0]->dtype(), name, [&](auto t) {
      using T = decltype(t);
      auto x = in[0]->data<T>();
      auto o = out[0]->data<T>();
      // Sums accumulate in double so that f32 results do not depend on the
      // order.
      std::vector<double> acc(o.size(),
                              reduction == Reduction::kMax
                                  ? -std::numeric_limits<double>::infinity()
                                  : 0.0);
      for (size_t i = 0; i < x.size(); ++i) {
        double& a = acc[BroadcastSourceIndex(i, shape, strides)];
        const double v = static_cast<double>(x[i]);
        if (reduction != Reduction::kMax) {
          a += v;
        } else if (std::isnan(v) || v > a) {
          if (!std::isnan(a))
            a = v;  // NaN propagates, as in numpy and TensorFlow.
        }
      }
      for (size_t j = 0; j < o.size(); ++j) {
        o[j] = static_cast<T>(reduction == Reduction::kMean
                                  ? acc[j] / static_cast<double>(count)
                                  : acc[j]);
      }
      return absl::OkStatus();
    });
  };
  return def;
}

std::string DimsToString(const std::vector<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// The `shape` attribute of broadcast_to / reduce_to_shape (-1 is N).
absl::StatusOr<Shape> TargetShape(const Attributes& attrs) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> dims,
                           GetIntListAttr(attrs, "shape"));
  for (int64_t d : dims) {
    if (d < Shape::kBatch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape ", DimsToString(dims), " has a negative dimension ", d,
          " (-1 stands for the batch dimension N)"));
    }
  }
  return Shape(std::move(dims));
}

// Whether `small` numpy-broadcasts to exactly `big`.
bool BroadcastsTo(const Shape& small, const Shape& big) {
  auto shape = BroadcastShapes(small, big);
  return shape.ok() && *shape == big;
}

// The input's shape with the reduced dimensions kept as 1, as a reshape
// target (-1 for N).
std::vector<int64_t> KeepdimsShape(const Shape& shape,
                                   const std::vector<bool>& mask) {
  std::vector<int64_t> dims = shape.dims();
  for (int i = 0; i < shape.rank(); ++i) {
    if (mask[i]) dims[i] = 1;
  }
  return dims;
}

// dy of a reduction, reshaped to keep the reduced dimensions and broadcast
// back to the input's shape.
absl::StatusOr<ValueId> BroadcastBack(GraphBuilder& b, const Node& node,
                                      ValueId dy) {
  // A copy: b.Op appends values, which may reallocate the graph's value table.
  const TensorType x = b.type(node.inputs[0]);
  SEQUENT_ASSIGN_OR_RETURN(std::vector<bool> mask, ReducedMask(x, node.attrs));
  const std::vector<int64_t> kept = KeepdimsShape(x.shape, mask);
  if (b.type(dy).shape.dims() != kept) {
    dy = b.Op("reshape", {dy}, {{"shape", AttrValue(kept)}});
  }
  return b.Op("broadcast_to", {dy}, {{"shape", AttrValue(x.shape.dims())}});
}

}  // namespace

OpDef Make_reduce_sum_Op() {
  OpDef def = MakeReduce("reduce_sum", Reduction::kSum);
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue};
    SEQUENT_ASSIGN_OR_RETURN(ValueId dx, BroadcastBack(b, node, dys[0]));
    return std::vector<ValueId>{dx};
  };
  return def;
}

OpDef Make_reduce_mean_Op() {
  OpDef def = MakeReduce("reduce_mean", Reduction::kMean);
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue};
    const TensorType x = b.type(node.inputs[0]);  // Outlives b.Op: a copy.
    SEQUENT_ASSIGN_OR_RETURN(std::vector<bool> mask,
                             ReducedMask(x, node.attrs));
    int64_t count = 1;
    bool batch_reduced = false;
    for (int i = 0; i < x.shape.rank(); ++i) {
      if (!mask[i]) continue;
      if (x.shape[i] == Shape::kBatch) {
        batch_reduced = true;
      } else {
        count *= x.shape[i];
      }
    }
    SEQUENT_ASSIGN_OR_RETURN(ValueId dx, BroadcastBack(b, node, dys[0]));
    if (!batch_reduced) {
      return std::vector<ValueId>{b.Op(
          "mul",
          {dx, b.ScalarConstant(1.0 / static_cast<double>(count), x.dtype)})};
    }
    // The count includes N, known only when the graph runs: count the
    // elements by summing ones of the input's shape.
    const ValueId ones = b.Op("broadcast_to", {b.ScalarConstant(1.0, x.dtype)},
                              {{"shape", AttrValue(x.shape.dims())}});
    Attributes count_attrs = node.attrs;
    count_attrs["keepdims"] = true;
    const ValueId counts = b.Op("reduce_sum", {ones}, count_attrs);
    return std::vector<ValueId>{b.Op("div", {dx, counts})};
  };
  return def;
}

OpDef Make_reduce_max_Op() {
  OpDef def = MakeReduce("reduce_max", Reduction::kMax);
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue};
    return std::vector<ValueId>{b.Op("reduce_max_grad",
                                     {node.inputs[0], node.outputs[0], dys[0]},
                                     node.attrs)};
  };
  return def;
}

OpDef Make_broadcast_to_Op() {
  OpDef def;
  def.name = "broadcast_to";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"shape", std::nullopt}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_ASSIGN_OR_RETURN(Shape target, TargetShape(attrs));
    if (!BroadcastsTo(in[0].shape, target)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot broadcast ", in[0].ToString(), " to ", target.ToString()));
    }
    return std::vector<TensorType>{{in[0].dtype, std::move(target)}};
  };
  def.reference = [](absl::Span<const Tensor* const> in, const Attributes&,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const Shape& shape = out[0]->shape();
    const std::vector<int64_t> strides =
        BroadcastStrides(in[0]->shape(), shape);
    // Copies bytes, so that every dtype broadcasts exactly.
    const size_t size = DTypeSize(in[0]->dtype());
    const auto* src = static_cast<const std::byte*>(in[0]->raw_data());
    auto* dst = static_cast<std::byte*>(out[0]->raw_data());
    for (int64_t i = 0; i < out[0]->num_elements(); ++i) {
      std::memcpy(dst + i * size,
                  src + BroadcastSourceIndex(i, shape, strides) * size, size);
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
    if (b.type(dys[0]).shape == x.shape) return std::vector<ValueId>{dys[0]};
    return std::vector<ValueId>{b.Op("reduce_to_shape", {dys[0]},
                                     {{"shape", AttrValue(x.shape.dims())}})};
  };
  return def;
}

OpDef Make_reduce_to_shape_Op() {
  OpDef def;
  def.name = "reduce_to_shape";
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.attrs = {{"shape", std::nullopt}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(in[0], "x"));
    SEQUENT_ASSIGN_OR_RETURN(Shape target, TargetShape(attrs));
    if (!BroadcastsTo(target, in[0].shape)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot sum ", in[0].ToString(), " down to ",
                       target.ToString(), ": ", target.ToString(),
                       " does not broadcast to ", in[0].shape.ToString()));
    }
    return std::vector<TensorType>{{in[0].dtype, std::move(target)}};
  };
  def.reference = [](absl::Span<const Tensor* const> in, const Attributes&,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const Shape& shape = in[0]->shape();
    const std::vector<int64_t> strides =
        BroadcastStrides(out[0]->shape(), shape);
    // Accumulates in double so that f32 sums do not depend on the order.
    std::vector<double> acc(out[0]->num_elements(), 0.0);
    for (int64_t i = 0; i < in[0]->num_elements(); ++i) {
      acc[BroadcastSourceIndex(i, shape, strides)] += in[0]->GetAsDouble(i);
    }
    for (size_t j = 0; j < acc.size(); ++j) out[0]->SetFromDouble(j, acc[j]);
    return absl::OkStatus();
  };
  def.gradient = [](GraphBuilder& b, const Node& node,
                    absl::Span<const ValueId> dys)
      -> absl::StatusOr<std::vector<ValueId>> {
    if (dys[0] == kNoValue) return std::vector<ValueId>{kNoValue};
    return std::vector<ValueId>{
        b.Op("broadcast_to", {dys[0]},
             {{"shape", AttrValue(b.type(node.inputs[0]).shape.dims())}})};
  };
  return def;
}

OpDef Make_reduce_max_grad_Op() {
  OpDef def;
  def.name = "reduce_max_grad";
  def.inputs = {"x", "y", "dy"};
  def.outputs = {"dx"};
  def.attrs = {{"axes", AttrValue(std::vector<int64_t>{})},
               {"keepdims", AttrValue(false)}};
  def.infer =
      [](absl::Span<const TensorType> in,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
    SEQUENT_ASSIGN_OR_RETURN(std::vector<bool> mask, ReducedMask(x, attrs));
    const bool keepdims = BoolAttrOr(attrs, "keepdims", false);
    std::vector<int64_t> dims;
    for (int i = 0; i < x.shape.rank(); ++i) {
      if (!mask[i]) {
        dims.push_back(x.shape[i]);
      } else if (keepdims) {
        dims.push_back(1);
      }
    }
    const TensorType reduced{x.dtype, Shape(std::move(dims))};
    for (int i = 1; i < 3; ++i) {
      if (in[i] != reduced) {
        return absl::InvalidArgumentError(absl::StrCat(
            i == 1 ? "y " : "dy ", in[i].ToString(), " is not ",
            reduced.ToString(), ", the max of ", x.ToString(), " over axes ",
            DimsToString(IntListAttrOr(attrs, "axes", {}))));
      }
    }
    return std::vector<TensorType>{x};
  };
  def.reference = [](absl::Span<const Tensor* const> in,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> out) -> absl::Status {
    const Shape& shape = in[0]->shape();
    auto mask = ReducedMask(in[0]->type(), attrs);
    if (!mask.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[reduce_max_grad] ", mask.status().message()));
    }
    const std::vector<int64_t> strides =
        BroadcastStrides(Shape(KeepdimsShape(shape, *mask)), shape);
    return DispatchFloat(in[0]->dtype(), "reduce_max_grad", [&](auto t) {
      using T = decltype(t);
      auto x = in[0]->data<T>();
      auto y = in[1]->data<T>();
      auto dy = in[2]->data<T>();
      auto dx = out[0]->data<T>();
      // Ties share the gradient equally, so that it sums to dy.
      std::vector<int64_t> ties(y.size(), 0);
      for (size_t i = 0; i < x.size(); ++i) {
        const int64_t j = BroadcastSourceIndex(i, shape, strides);
        if (x[i] == y[j]) ++ties[j];
      }
      for (size_t i = 0; i < x.size(); ++i) {
        const int64_t j = BroadcastSourceIndex(i, shape, strides);
        dx[i] = x[i] == y[j] ? dy[j] / static_cast<T>(ties[j]) : T(0);
      }
      return absl::OkStatus();
    });
  };
  return def;
}

}  // namespace sequent::ops
