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

}  // namespace

OpDef Make_max_pool2d_Op() {
  OpDef def = MakePool2D("max_pool2d");
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    return Pool2DKernel<true>("max_pool2d", inputs, attrs, outputs);
  };
  return def;
}

OpDef Make_avg_pool2d_Op() {
  OpDef def = MakePool2D("avg_pool2d");
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    return Pool2DKernel<false>("avg_pool2d", inputs, attrs, outputs);
  };
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
  return def;
}

}  // namespace sequent::ops
