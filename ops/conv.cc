// Op family `conv`: 2-D convolution, NHWC input and HWIO kernel
// (Keras/TensorFlow layout).

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/attribute.h"
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
  return def;
}

}  // namespace sequent::ops
