// Op family `conv`: 2-D convolution, NHWC input and HWIO kernel
// (Keras/TensorFlow layout).

#include <algorithm>
#include <cstdint>
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

struct ConvParams {
  int64_t stride_h, stride_w, dil_h, dil_w;
  bool same;
};

absl::StatusOr<std::vector<int64_t>> PositivePair(const Attributes& attrs,
                                                  absl::string_view name) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> v, GetIntListAttr(attrs, name));
  if (v.size() != 2 || v[0] < 1 || v[1] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be two positive integers [h, w], got [",
                     absl::StrJoin(v, ", "), "]"));
  }
  return v;
}

absl::StatusOr<ConvParams> GetParams(const Attributes& attrs) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> strides,
                           PositivePair(attrs, "strides"));
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> dilations,
                           PositivePair(attrs, "dilations"));
  SEQUENT_ASSIGN_OR_RETURN(std::string padding,
                           GetStringAttr(attrs, "padding"));
  if (padding != "valid" && padding != "same") {
    return absl::InvalidArgumentError(absl::StrCat(
        "padding must be \"valid\" or \"same\", got \"", padding, "\""));
  }
  return ConvParams{strides[0], strides[1], dilations[0], dilations[1],
                    padding == "same"};
}

// TF/Keras output size and leading padding for one spatial dimension. "same"
// pads so that out = ceil(in / stride), with the odd pixel of padding at the
// end (bottom/right).
struct Extent {
  int64_t out;
  int64_t pad_before;
};
Extent OutputExtent(int64_t in, int64_t effective_kernel, int64_t stride,
                    bool same) {
  if (same) {
    const int64_t out = (in + stride - 1) / stride;
    const int64_t pad =
        std::max<int64_t>((out - 1) * stride + effective_kernel - in, 0);
    return {out, pad / 2};
  }
  return {(in - effective_kernel) / stride + 1, 0};
}

absl::StatusOr<std::vector<TensorType>> Conv2DShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& x = inputs[0];
  const TensorType& k = inputs[1];
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
  SEQUENT_RETURN_IF_ERROR(ExpectRank(x, 4, "x (NHWC)"));
  SEQUENT_RETURN_IF_ERROR(ExpectRank(k, 4, "kernel (HWIO)"));
  if (k.dtype != x.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "x and kernel dtypes differ: ", x.ToString(), " vs ", k.ToString()));
  }
  bool symbolic = k.shape.HasBatch();
  for (int i = 1; i < 4; ++i) symbolic |= x.shape[i] == Shape::kBatch;
  if (symbolic) {
    return absl::InvalidArgumentError(
        absl::StrCat("only the batch dimension of x may be N; got x ",
                     x.ToString(), ", kernel ", k.ToString()));
  }
  if (x.shape[3] != k.shape[2]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input channels differ: x ", x.ToString(), " has ", x.shape[3],
        " channels, kernel ", k.ToString(), " expects ", k.shape[2]));
  }
  SEQUENT_ASSIGN_OR_RETURN(ConvParams p, GetParams(attrs));
  const int64_t eff_h = (k.shape[0] - 1) * p.dil_h + 1;
  const int64_t eff_w = (k.shape[1] - 1) * p.dil_w + 1;
  if (!p.same && (eff_h > x.shape[1] || eff_w > x.shape[2])) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel ", k.ToString(), " (dilated extent ", eff_h, "x",
                     eff_w, ") is larger than the input ", x.ToString(),
                     " with padding \"valid\""));
  }
  const int64_t oh = OutputExtent(x.shape[1], eff_h, p.stride_h, p.same).out;
  const int64_t ow = OutputExtent(x.shape[2], eff_w, p.stride_w, p.same).out;
  return std::vector<TensorType>{
      {x.dtype, Shape{x.shape[0], oh, ow, k.shape[3]}}};
}

absl::Status Conv2DKernel(absl::Span<const Tensor* const> inputs,
                          const Attributes& attrs,
                          absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  const Tensor& k = *inputs[1];
  auto params = GetParams(attrs);
  if (!params.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("[conv2d] ", params.status().message()));
  const ConvParams& p = *params;
  const int64_t n = x.shape()[0], h = x.shape()[1], w = x.shape()[2],
                c = x.shape()[3];
  const int64_t kh = k.shape()[0], kw = k.shape()[1], f = k.shape()[3];
  const Extent ey = OutputExtent(h, (kh - 1) * p.dil_h + 1, p.stride_h, p.same);
  const Extent ex = OutputExtent(w, (kw - 1) * p.dil_w + 1, p.stride_w, p.same);
  return DispatchFloat(x.dtype(), "conv2d", [&](auto zero) -> absl::Status {
    using T = decltype(zero);
    auto in = x.data<T>();
    auto ker = k.data<T>();
    auto out = outputs[0]->data<T>();
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t oy = 0; oy < ey.out; ++oy) {
        for (int64_t ox = 0; ox < ex.out; ++ox) {
          for (int64_t of = 0; of < f; ++of) {
            T acc = T(0);
            for (int64_t ky = 0; ky < kh; ++ky) {
              const int64_t iy = oy * p.stride_h - ey.pad_before + ky * p.dil_h;
              if (iy < 0 || iy >= h) continue;
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t ix =
                    ox * p.stride_w - ex.pad_before + kx * p.dil_w;
                if (ix < 0 || ix >= w) continue;
                for (int64_t ic = 0; ic < c; ++ic) {
                  acc += in[((b * h + iy) * w + ix) * c + ic] *
                         ker[((ky * kw + kx) * c + ic) * f + of];
                }
              }
            }
            out[((b * ey.out + oy) * ex.out + ox) * f + of] = acc;
          }
        }
      }
    }
    return absl::OkStatus();
  });
}

// The NHWC input shape of a backward op's attribute, with -1 at the batch
// position standing for dy's batch size (possibly N).
absl::StatusOr<Shape> ShapeAttr(const Attributes& attrs, absl::string_view name,
                                int64_t batch, int rank) {
  SEQUENT_ASSIGN_OR_RETURN(std::vector<int64_t> dims,
                           GetIntListAttr(attrs, name));
  bool ok = static_cast<int>(dims.size()) == rank;
  for (size_t i = 0; ok && i < dims.size(); ++i) {
    ok = dims[i] > 0 || (i == 0 && dims[i] == Shape::kBatch && rank == 4 &&
                         name == "input_shape");
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " must be ", rank, " positive integers",
        name == "input_shape" ? " (the first may be -1 for N)" : "", ", got [",
        absl::StrJoin(dims, ", "), "]"));
  }
  if (name == "input_shape" && dims[0] == Shape::kBatch) dims[0] = batch;
  return Shape(std::move(dims));
}

// Checks that conv2d of x (NHWC) with kernel (HWIO) yields dy, for the
// backward ops whose operands come from different places.
absl::Status CheckConvTriple(const Shape& x, const Shape& k, const Shape& dy,
                             const ConvParams& p, DType dtype) {
  const int64_t eff_h = (k[0] - 1) * p.dil_h + 1;
  const int64_t eff_w = (k[1] - 1) * p.dil_w + 1;
  const auto describe = [&] {
    return absl::StrCat("x ", TensorType{dtype, x}.ToString(), ", kernel ",
                        TensorType{dtype, k}.ToString(), ", dy ",
                        TensorType{dtype, dy}.ToString());
  };
  if (x[3] != k[2] || dy[3] != k[3] || x[0] != dy[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("channels or batch do not match: ", describe()));
  }
  if (!p.same && (eff_h > x[1] || eff_w > x[2])) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel is larger than the input with padding \"valid\": ",
                     describe()));
  }
  const int64_t oh = OutputExtent(x[1], eff_h, p.stride_h, p.same).out;
  const int64_t ow = OutputExtent(x[2], eff_w, p.stride_w, p.same).out;
  if (dy[1] != oh || dy[2] != ow) {
    return absl::InvalidArgumentError(
        absl::StrCat("dy must have spatial size ", oh, "x", ow,
                     " (the conv2d output), got ", describe()));
  }
  return absl::OkStatus();
}

absl::Status CheckStaticNHWC(const TensorType& t, absl::string_view what) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(t, what));
  SEQUENT_RETURN_IF_ERROR(ExpectRank(t, 4, what));
  for (int i = 1; i < 4; ++i) {
    if (t.shape[i] == Shape::kBatch) {
      return absl::InvalidArgumentError(
          absl::StrCat("only the batch dimension of ", what, " may be N, got ",
                       t.ToString()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TensorType>> BackpropInputShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& dy = inputs[0];
  const TensorType& k = inputs[1];
  SEQUENT_RETURN_IF_ERROR(CheckStaticNHWC(dy, "dy"));
  SEQUENT_RETURN_IF_ERROR(ExpectRank(k, 4, "kernel (HWIO)"));
  if (k.dtype != dy.dtype || k.shape.HasBatch()) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel must be a static tensor of dy's dtype, got dy ",
                     dy.ToString(), ", kernel ", k.ToString()));
  }
  SEQUENT_ASSIGN_OR_RETURN(ConvParams p, GetParams(attrs));
  SEQUENT_ASSIGN_OR_RETURN(Shape x,
                           ShapeAttr(attrs, "input_shape", dy.shape[0], 4));
  SEQUENT_RETURN_IF_ERROR(CheckConvTriple(x, k.shape, dy.shape, p, dy.dtype));
  return std::vector<TensorType>{{dy.dtype, x}};
}

absl::StatusOr<std::vector<TensorType>> BackpropFilterShape(
    absl::Span<const TensorType> inputs, const Attributes& attrs) {
  const TensorType& x = inputs[0];
  const TensorType& dy = inputs[1];
  SEQUENT_RETURN_IF_ERROR(CheckStaticNHWC(x, "x"));
  SEQUENT_RETURN_IF_ERROR(CheckStaticNHWC(dy, "dy"));
  if (x.dtype != dy.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "x and dy dtypes differ: ", x.ToString(), " vs ", dy.ToString()));
  }
  SEQUENT_ASSIGN_OR_RETURN(ConvParams p, GetParams(attrs));
  SEQUENT_ASSIGN_OR_RETURN(Shape k, ShapeAttr(attrs, "filter_shape", 0, 4));
  SEQUENT_RETURN_IF_ERROR(CheckConvTriple(x.shape, k, dy.shape, p, x.dtype));
  return std::vector<TensorType>{{x.dtype, k}};
}

// Visits every (x element, kernel element, dy element) triple that conv2d
// multiplies together, as flat indices. Both backward kernels are this loop.
template <typename F>
void ForEachConvTap(const Shape& x, const Shape& k, const Shape& dy,
                    const ConvParams& p, F f) {
  const int64_t n = x[0], h = x[1], w = x[2], c = x[3];
  const int64_t kh = k[0], kw = k[1], nf = k[3];
  const int64_t oh = dy[1], ow = dy[2];
  const int64_t pad_h =
      OutputExtent(h, (kh - 1) * p.dil_h + 1, p.stride_h, p.same).pad_before;
  const int64_t pad_w =
      OutputExtent(w, (kw - 1) * p.dil_w + 1, p.stride_w, p.same).pad_before;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * p.stride_h - pad_h + ky * p.dil_h;
          if (iy < 0 || iy >= h) continue;
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t ix = ox * p.stride_w - pad_w + kx * p.dil_w;
            if (ix < 0 || ix >= w) continue;
            for (int64_t ic = 0; ic < c; ++ic) {
              for (int64_t of = 0; of < nf; ++of) {
                f(((b * h + iy) * w + ix) * c + ic,
                  ((ky * kw + kx) * c + ic) * nf + of,
                  ((b * oh + oy) * ow + ox) * nf + of);
              }
            }
          }
        }
      }
    }
  }
}

absl::Status BackpropInputKernel(absl::Span<const Tensor* const> inputs,
                                 const Attributes& attrs,
                                 absl::Span<Tensor* const> outputs) {
  const Tensor& dy = *inputs[0];
  const Tensor& k = *inputs[1];
  Tensor& dx = *outputs[0];
  auto params = GetParams(attrs);
  if (!params.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[conv2d_backprop_input] ", params.status().message()));
  }
  return DispatchFloat(
      dy.dtype(), "conv2d_backprop_input", [&](auto zero) -> absl::Status {
        using T = decltype(zero);
        auto g = dy.data<T>();
        auto ker = k.data<T>();
        auto out = dx.data<T>();
        std::fill(out.begin(), out.end(), T(0));
        ForEachConvTap(dx.shape(), k.shape(), dy.shape(), *params,
                       [&](int64_t xi, int64_t ki, int64_t yi) {
                         out[xi] += g[yi] * ker[ki];
                       });
        return absl::OkStatus();
      });
}

absl::Status BackpropFilterKernel(absl::Span<const Tensor* const> inputs,
                                  const Attributes& attrs,
                                  absl::Span<Tensor* const> outputs) {
  const Tensor& x = *inputs[0];
  const Tensor& dy = *inputs[1];
  Tensor& dk = *outputs[0];
  auto params = GetParams(attrs);
  if (!params.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("[conv2d_backprop_filter] ", params.status().message()));
  }
  return DispatchFloat(
      x.dtype(), "conv2d_backprop_filter", [&](auto zero) -> absl::Status {
        using T = decltype(zero);
        auto in = x.data<T>();
        auto g = dy.data<T>();
        auto out = dk.data<T>();
        std::fill(out.begin(), out.end(), T(0));
        ForEachConvTap(x.shape(), dk.shape(), dy.shape(), *params,
                       [&](int64_t xi, int64_t ki, int64_t yi) {
                         out[ki] += in[xi] * g[yi];
                       });
        return absl::OkStatus();
      });
}

absl::StatusOr<std::vector<ValueId>> Conv2DGradient(
    GraphBuilder& b, const Node& node, absl::Span<const ValueId> output_grads) {
  const ValueId dy = output_grads[0];
  if (dy == kNoValue) return std::vector<ValueId>{kNoValue, kNoValue};
  const ValueId x = node.inputs[0];
  const ValueId k = node.inputs[1];
  Attributes attrs;
  for (const char* name : {"strides", "padding", "dilations"}) {
    if (auto it = node.attrs.find(name); it != node.attrs.end()) {
      attrs[name] = it->second;
    }
  }
  Attributes input_attrs = attrs;
  input_attrs["input_shape"] = b.type(x).shape.dims();
  Attributes filter_attrs = attrs;
  filter_attrs["filter_shape"] = b.type(k).shape.dims();
  return std::vector<ValueId>{
      b.Op("conv2d_backprop_input", {dy, k}, std::move(input_attrs)),
      b.Op("conv2d_backprop_filter", {x, dy}, std::move(filter_attrs))};
}

}  // namespace

OpDef Make_conv2d_Op() {
  OpDef def;
  def.name = "conv2d";
  def.family = "conv";
  def.inputs = {"x", "kernel"};
  def.outputs = {"y"};
  def.attrs = {{"strides", AttrValue(std::vector<int64_t>{1, 1})},
               {"padding", AttrValue(std::string("valid"))},
               {"dilations", AttrValue(std::vector<int64_t>{1, 1})}};
  def.infer = Conv2DShape;
  def.reference = Conv2DKernel;
  def.gradient = Conv2DGradient;
  return def;
}

OpDef Make_conv2d_backprop_input_Op() {
  OpDef def;
  def.name = "conv2d_backprop_input";
  def.family = "conv";
  def.inputs = {"dy", "kernel"};
  def.outputs = {"dx"};
  def.attrs = {{"strides", AttrValue(std::vector<int64_t>{1, 1})},
               {"padding", AttrValue(std::string("valid"))},
               {"dilations", AttrValue(std::vector<int64_t>{1, 1})},
               {"input_shape", std::nullopt}};
  def.infer = BackpropInputShape;
  def.reference = BackpropInputKernel;
  return def;
}

OpDef Make_conv2d_backprop_filter_Op() {
  OpDef def;
  def.name = "conv2d_backprop_filter";
  def.family = "conv";
  def.inputs = {"x", "dy"};
  def.outputs = {"dkernel"};
  def.attrs = {{"strides", AttrValue(std::vector<int64_t>{1, 1})},
               {"padding", AttrValue(std::string("valid"))},
               {"dilations", AttrValue(std::vector<int64_t>{1, 1})},
               {"filter_shape", std::nullopt}};
  def.infer = BackpropFilterShape;
  def.reference = BackpropFilterKernel;
  return def;
}

}  // namespace sequent::ops
