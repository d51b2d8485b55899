// Op family `pool`: max/average pooling over NHWC windows and global average
// pooling.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/op_registry.h"
#include "core/status_macros.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

struct PoolParams {
  int64_t pool_h, pool_w, stride_h, stride_w;
  bool same;
};

absl::StatusOr<PoolParams> GetParams(const Attributes& attrs) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> size,
                           GetIntListAttr(attrs, "pool_size"));
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> strides,
                           GetIntListAttr(attrs, "strides"));
  SEQUENT_ASSIGN_OR_RETURN(std::string padding,
                           GetStringAttr(attrs, "padding"));
  if (size.size() != 2 || size[0] < 1 || size[1] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool_size must be two positive integers [h, w], got [",
                     absl::StrJoin(size, ", "), "]"));
  }
  // Keras: strides default to the pool size.
  if (strides.empty()) strides = size;
  if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "strides must be empty or two positive integers [h, w], got [",
        absl::StrJoin(strides, ", "), "]"));
  }
  if (padding != "valid" && padding != "same") {
    return absl::InvalidArgumentError(absl::StrCat(
        "padding must be \"valid\" or \"same\", got \"", padding, "\""));
  }
  return PoolParams{size[0], size[1], strides[0], strides[1],
                    padding == "same"};
}

// TF/Keras output size and leading padding for one spatial dimension (see
// ops/conv.cc).
struct Extent {
  int64_t out;
  int64_t pad_before;
};
Extent OutputExtent(int64_t in, int64_t window, int64_t stride, bool same) {
  if (same) {
    const int64_t out = (in + stride - 1) / stride;
    const int64_t pad = std::max<int64_t>((out - 1) * stride + window - in, 0);
    return {out, pad / 2};
  }
  return {(in - window) / stride + 1, 0};
}

absl::Status CheckNHWC(const TensorType& x) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
  SEQUENT_RETURN_IF_ERROR(ExpectRank(x, 4, "x (NHWC)"));
  for (int i = 1; i < 4; ++i) {
    if (x.shape[i] == Shape::kBatch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "only the batch dimension of x may be N, got ", x.ToString()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TensorType>> Pool2DShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& x = inputs[0];
  SEQUENT_RETURN_IF_ERROR(CheckNHWC(x));
  SEQUENT_ASSIGN_OR_RETURN(PoolParams p, GetParams(attrs));
  if (!p.same && (p.pool_h > x.shape[1] || p.pool_w > x.shape[2])) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool_size [", p.pool_h, ", ", p.pool_w, "] is larger than the input ",
        x.ToString(), " with padding \"valid\""));
  }
  const int64_t oh = OutputExtent(x.shape[1], p.pool_h, p.stride_h, p.same).out;
  const int64_t ow = OutputExtent(x.shape[2], p.pool_w, p.stride_w, p.same).out;
  return std::vector<TensorType>{
      {x.dtype, Shape{x.shape[0], oh, ow, x.shape[3]}}};
}

// Reduces each window over its in-bounds elements only: padding never
// contributes, so max ignores it (TF pads with -inf) and average divides by the
// in-bounds count (TF behavior).
template <bool kMax>
absl::Status Pool2DKernel(absl::string_view op,
                          absl::Span<const Tensor* const> inputs,
                          const Attributes& attrs,
                          absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  auto params = GetParams(attrs);
  if (!params.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[", op, "] ", params.status().message()));
  }
  const PoolParams& p = *params;
  const int64_t n = x.shape()[0], h = x.shape()[1], w = x.shape()[2],
                c = x.shape()[3];
  const Extent ey = OutputExtent(h, p.pool_h, p.stride_h, p.same);
  const Extent ex = OutputExtent(w, p.pool_w, p.stride_w, p.same);
  return DispatchFloat(x.dtype(), op, [&](auto zero) -> absl::Status {
    using T = decltype(zero);
    auto in = x.data<T>();
    auto out = outputs[0]->data<T>();
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t oy = 0; oy < ey.out; ++oy) {
        for (int64_t ox = 0; ox < ex.out; ++ox) {
          for (int64_t ch = 0; ch < c; ++ch) {
            T acc = kMax ? -std::numeric_limits<T>::infinity() : T(0);
            int64_t count = 0;
            for (int64_t ky = 0; ky < p.pool_h; ++ky) {
              const int64_t iy = oy * p.stride_h - ey.pad_before + ky;
              if (iy < 0 || iy >= h) continue;
              for (int64_t kx = 0; kx < p.pool_w; ++kx) {
                const int64_t ix = ox * p.stride_w - ex.pad_before + kx;
                if (ix < 0 || ix >= w) continue;
                const T v = in[((b * h + iy) * w + ix) * c + ch];
                if (kMax) {
                  acc = std::max(acc, v);
                } else {
                  acc += v;
                }
                ++count;
              }
            }
            if (!kMax) acc /= static_cast<T>(count);
            out[((b * ey.out + oy) * ex.out + ox) * c + ch] = acc;
          }
        }
      }
    }
    return absl::OkStatus();
  });
}

OpDef MakePool2D(const std::string& name) {
  OpDef def;
  def.name = name;
  def.family = "pool";
  def.inputs = {"x"};
  def.outputs = {"y"};
  def.attrs = {{"pool_size", AttrValue(std::vector<int64_t>{2, 2})},
               {"strides", AttrValue(std::vector<int64_t>{})},
               {"padding", AttrValue(std::string("valid"))}};
  def.infer = Pool2DShape;
  return def;
}

absl::StatusOr<std::vector<TensorType>> GlobalAvgPool2DShape(
    absl::Span<const TensorType> inputs, const Attributes&) {
  SEQUENT_RETURN_IF_ERROR(CheckNHWC(inputs[0]));
  return std::vector<TensorType>{
      {inputs[0].dtype, Shape{inputs[0].shape[0], inputs[0].shape[3]}}};
}

absl::Status GlobalAvgPool2DKernel(absl::Span<const Tensor* const> inputs,
                                   const Attributes&,
                                   absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  const int64_t n = x.shape()[0], hw = x.shape()[1] * x.shape()[2],
                c = x.shape()[3];
  return DispatchFloat(x.dtype(), "global_avg_pool2d",
                       [&](auto zero) -> absl::Status {
                         using T = decltype(zero);
                         auto in = x.data<T>();
                         auto out = outputs[0]->data<T>();
                         for (int64_t b = 0; b < n; ++b) {
                           for (int64_t ch = 0; ch < c; ++ch) {
                             T acc = T(0);
                             for (int64_t i = 0; i < hw; ++i)
                               acc += in[(b * hw + i) * c + ch];
                             out[b * c + ch] = acc / static_cast<T>(hw);
                           }
                         }
                         return absl::OkStatus();
                       });
}

// input_shape of a backward op: 4 positive integers, the first may be -1 for
// the batch dimension of dy (possibly N).
absl::StatusOr<Shape> InputShapeAttr(const Attributes& attrs, int64_t batch) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> dims,
                           GetIntListAttr(attrs, "input_shape"));
  bool ok = dims.size() == 4;
  for (size_t i = 0; ok && i < 4; ++i) {
    ok = dims[i] > 0 || (i == 0 && dims[i] == Shape::kBatch);
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input_shape must be 4 positive integers (the first may be -1 for N), "
        "got [",
        absl::StrJoin(dims, ", "), "]"));
  }
  if (dims[0] == Shape::kBatch) dims[0] = batch;
  return Shape(std::move(dims));
}

absl::Status ExpectSameType(const TensorType& got, const TensorType& want,
                            absl::string_view what, absl::string_view of) {
  if (got == want) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " must be ",
                                                 want.ToString(), " to match ",
                                                 of, ", got ", got.ToString()));
}

absl::StatusOr<std::vector<TensorType>> MaxPool2DGradShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<TensorType> y,
                           Pool2DShape(inputs.subspan(0, 1), attrs));
  SEQUENT_RETURN_IF_ERROR(
      ExpectSameType(inputs[1], y[0], "y", "the max_pool2d output of x"));
  SEQUENT_RETURN_IF_ERROR(
      ExpectSameType(inputs[2], y[0], "dy", "the max_pool2d output of x"));
  return std::vector<TensorType>{inputs[0]};
}

absl::StatusOr<std::vector<TensorType>> AvgPool2DGradShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& dy = inputs[0];
  SEQUENT_RETURN_IF_ERROR(CheckNHWC(dy));
  SEQUENT_ASSIGN_OR_RETURN(Shape x, InputShapeAttr(attrs, dy.shape[0]));
  const TensorType x_type{dy.dtype, x};
  SEQUENT_ASSIGN_OR_RETURN(std::vector<TensorType> y,
                           Pool2DShape({x_type}, attrs));
  SEQUENT_RETURN_IF_ERROR(
      ExpectSameType(dy, y[0], "dy", "the avg_pool2d output of input_shape"));
  return std::vector<TensorType>{x_type};
}

absl::StatusOr<std::vector<TensorType>> GlobalAvgPool2DGradShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& dy = inputs[0];
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(dy, "dy"));
  SEQUENT_RETURN_IF_ERROR(ExpectRank(dy, 2, "dy"));
  SEQUENT_ASSIGN_OR_RETURN(Shape x, InputShapeAttr(attrs, dy.shape[0]));
  if (dy.shape[1] != x[3]) {
    return absl::InvalidArgumentError(
        absl::StrCat("dy ", dy.ToString(), " must have ", x[3],
                     " channels to match input_shape ", x.ToString()));
  }
  return std::vector<TensorType>{{dy.dtype, x}};
}

// Visits every in-bounds window element of every output position: f(output
// index, flat input indices of the window in row-major order).
template <typename F>
void ForEachWindow(const Shape& x, const Shape& y, const PoolParams& p, F f) {
  const int64_t n = x[0], h = x[1], w = x[2], c = x[3];
  const int64_t pad_h =
      OutputExtent(h, p.pool_h, p.stride_h, p.same).pad_before;
  const int64_t pad_w =
      OutputExtent(w, p.pool_w, p.stride_w, p.same).pad_before;
  std::vector<int64_t> window;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t oy = 0; oy < y[1]; ++oy) {
      for (int64_t ox = 0; ox < y[2]; ++ox) {
        for (int64_t ch = 0; ch < c; ++ch) {
          window.clear();
          for (int64_t ky = 0; ky < p.pool_h; ++ky) {
            const int64_t iy = oy * p.stride_h - pad_h + ky;
            if (iy < 0 || iy >= h) continue;
            for (int64_t kx = 0; kx < p.pool_w; ++kx) {
              const int64_t ix = ox * p.stride_w - pad_w + kx;
              if (ix < 0 || ix >= w) continue;
              window.push_back(((b * h + iy) * w + ix) * c + ch);
            }
          }
          f(((b * y[1] + oy) * y[2] + ox) * c + ch, window);
        }
      }
    }
  }
}

absl::Status MaxPool2DGradKernel(absl::Span<const Tensor* const> inputs,
                                 const Attributes& attrs,
                                 absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  const Tensor& dy = *inputs[2];
  auto params = GetParams(attrs);
  if (!params.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[max_pool2d_grad] ", params.status().message()));
  }
  return DispatchFloat(
      x.dtype(), "max_pool2d_grad", [&](auto zero) -> absl::Status {
        using T = decltype(zero);
        auto in = x.data<T>();
        auto g = dy.data<T>();
        auto dx = outputs[0]->data<T>();
        std::fill(dx.begin(), dx.end(), T(0));
        ForEachWindow(x.shape(), dy.shape(), *params,
                      [&](int64_t o, const std::vector<int64_t>& window) {
                        // Ties go to the first maximum in row-major order
                        // (TensorFlow, oneDNN).
                        int64_t best = -1;
                        for (int64_t i : window) {
                          if (best < 0 || in[i] > in[best]) best = i;
                        }
                        if (best >= 0) dx[best] += g[o];
                      });
        return absl::OkStatus();
      });
}

absl::Status AvgPool2DGradKernel(absl::Span<const Tensor* const> inputs,
                                 const Attributes& attrs,
                                 absl::Span<Tensor* const> outputs) {
  const Tensor& dy = *inputs[0];
  auto params = GetParams(attrs);
  if (!params.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[avg_pool2d_grad] ", params.status().message()));
  }
  return DispatchFloat(
      dy.dtype(), "avg_pool2d_grad", [&](auto zero) -> absl::Status {
        using T = decltype(zero);
        auto g = dy.data<T>();
        auto dx = outputs[0]->data<T>();
        std::fill(dx.begin(), dx.end(), T(0));
        ForEachWindow(outputs[0]->shape(), dy.shape(), *params,
                      [&](int64_t o, const std::vector<int64_t>& window) {
                        for (int64_t i : window) {
                          dx[i] += g[o] / static_cast<T>(window.size());
                        }
                      });
        return absl::OkStatus();
      });
}

absl::Status GlobalAvgPool2DGradKernel(absl::Span<const Tensor* const> inputs,
                                       const Attributes&,
                                       absl::Span<Tensor* const> outputs) {
  const Tensor& dy = *inputs[0];
  const Shape& x = outputs[0]->shape();
  const int64_t n = x[0], hw = x[1] * x[2], c = x[3];
  return DispatchFloat(
      dy.dtype(), "global_avg_pool2d_grad", [&](auto zero) -> absl::Status {
        using T = decltype(zero);
        auto g = dy.data<T>();
        auto dx = outputs[0]->data<T>();
        for (int64_t b = 0; b < n; ++b) {
          for (int64_t i = 0; i < hw; ++i) {
            for (int64_t ch = 0; ch < c; ++ch) {
              dx[(b * hw + i) * c + ch] = g[b * c + ch] / static_cast<T>(hw);
            }
          }
        }
        return absl::OkStatus();
      });
}

Attributes PoolAttrs(const Node& node) {
  Attributes attrs;
  for (const char* name : {"pool_size", "strides", "padding"}) {
    if (auto it = node.attrs.find(name); it != node.attrs.end()) {
      attrs[name] = it->second;
    }
  }
  return attrs;
}

absl::StatusOr<std::vector<ValueId>> MaxPool2DGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  if (output_grads[0] == kNoValue) return std::vector<ValueId>{kNoValue};
  return std::vector<ValueId>{b.Op(
      "max_pool2d_grad", {node.inputs[0], node.outputs[0], output_grads[0]},
      PoolAttrs(node))};
}

absl::StatusOr<std::vector<ValueId>> AvgPool2DGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  if (output_grads[0] == kNoValue) return std::vector<ValueId>{kNoValue};
  Attributes attrs = PoolAttrs(node);
  attrs["input_shape"] = b.type(node.inputs[0]).shape.dims();
  return std::vector<ValueId>{
      b.Op("avg_pool2d_grad", {output_grads[0]}, std::move(attrs))};
}

absl::StatusOr<std::vector<ValueId>> GlobalAvgPool2DGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  if (output_grads[0] == kNoValue) return std::vector<ValueId>{kNoValue};
  Attributes attrs;
  attrs["input_shape"] = b.type(node.inputs[0]).shape.dims();
  return std::vector<ValueId>{
      b.Op("global_avg_pool2d_grad", {output_grads[0]}, std::move(attrs))};
}

}  // namespace

OpDef Make_max_pool2d_Op() {
  OpDef def = MakePool2D("max_pool2d");
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    return Pool2DKernel<true>("max_pool2d", inputs, attrs, outputs);
  };
  def.gradient = MaxPool2DGradient;
  return def;
}

OpDef Make_avg_pool2d_Op() {
  OpDef def = MakePool2D("avg_pool2d");
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    return Pool2DKernel<false>("avg_pool2d", inputs, attrs, outputs);
  };
  def.gradient = AvgPool2DGradient;
  return def;
}

OpDef Make_global_avg_pool2d_Op() {
  OpDef def;
  def.name = "global_avg_pool2d";
  def.family = "pool";
  def.inputs = {"x"};
  def.outputs = {"y"};
  def.infer = GlobalAvgPool2DShape;
  def.reference = GlobalAvgPool2DKernel;
  def.gradient = GlobalAvgPool2DGradient;
  return def;
}

OpDef Make_max_pool2d_grad_Op() {
  OpDef def = MakePool2D("max_pool2d_grad");
  def.inputs = {"x", "y", "dy"};
  def.outputs = {"dx"};
  def.infer = MaxPool2DGradShape;
  def.reference = MaxPool2DGradKernel;
  return def;
}

OpDef Make_avg_pool2d_grad_Op() {
  OpDef def = MakePool2D("avg_pool2d_grad");
  def.inputs = {"dy"};
  def.outputs = {"dx"};
  def.attrs.push_back({"input_shape", std::nullopt});
  def.infer = AvgPool2DGradShape;
  def.reference = AvgPool2DGradKernel;
  return def;
}

OpDef Make_global_avg_pool2d_grad_Op() {
  OpDef def;
  def.name = "global_avg_pool2d_grad";
  def.family = "pool";
  def.inputs = {"dy"};
  def.outputs = {"dx"};
  def.attrs = {{"input_shape", std::nullopt}};
  def.infer = GlobalAvgPool2DGradShape;
  def.reference = GlobalAvgPool2DGradKernel;
  return def;
}

}  // namespace sequent::ops
