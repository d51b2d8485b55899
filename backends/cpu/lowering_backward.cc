#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/lowering.h"
#include "backends/cpu/onednn_util.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/train_kernels.h"
#include "backends/feeds.h"
#include "backends/host_variable_store.h"
#include "core/initializers.h"
#include "core/memory_planner.h"
#include "core/status_macros.h"
#include "ops/activation_fn.h"
#include "ops/backward_activation.h"
#include "ops/registry.h"

namespace sequent::cpu {

// ---------------------------------------------------------------------------------------
// The training graph's ops: backward, loss gradients, optimizer updates.

namespace {

// oneDNN's eltwise backward from the saved output for `act`, when it has one.
std::optional<EltwiseStep> UseDstAlgorithm(const ops::Activation& act) {
  using dnnl::algorithm;
  const float alpha = static_cast<float>(act.alpha);
  switch (act.kind) {
    case ops::ActivationKind::kRelu:
      return EltwiseStep{algorithm::eltwise_relu_use_dst_for_bwd, 0.f, 0.f};
    case ops::ActivationKind::kLeakyRelu:
      if (!(act.alpha > 0)) return std::nullopt;
      return EltwiseStep{algorithm::eltwise_relu_use_dst_for_bwd, alpha, 0.f};
    case ops::ActivationKind::kElu:
      return EltwiseStep{algorithm::eltwise_elu_use_dst_for_bwd, alpha, 0.f};
    case ops::ActivationKind::kSigmoid:
      return EltwiseStep{algorithm::eltwise_logistic_use_dst_for_bwd, 0.f, 0.f};
    case ops::ActivationKind::kTanh:
      return EltwiseStep{algorithm::eltwise_tanh_use_dst_for_bwd, 0.f, 0.f};
    default:
      return std::nullopt;
  }
}

absl::Status ExpectFloat(const Node& node, const TensorType& t) {
  if (t.dtype == DType::kF32 || t.dtype == DType::kF64) return absl::OkStatus();
  return Unsupported(node,
                     absl::StrCat("has no ", DTypeName(t.dtype), " version"));
}

}  // namespace

absl::Status Lowering::LowerActivationGrad(const Node& node,
                                           const Attributes& attrs,
                                           bool from_output) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dy));
  SEQUENT_ASSIGN_OR_RETURN(
      ops::Activation act,
      ops::BackwardActivation(attrs, /*from_output=*/false));
  if (from_output) {
    SEQUENT_ASSIGN_OR_RETURN(bool owned, LowerOwnedActivationGrad(node, act));
    if (owned) return absl::OkStatus();
  }
  const ValueId d = node.inputs[0], v = node.inputs[1], dx = node.outputs[0];
  const int64_t n = dy.shape.NumElements();
  // A small ReLU gradient in our vectorized loop: oneDNN's primitive took
  // ~0.45 us for 1,000 elements, most of it the call.
  const bool small_relu =
      act.kind == ops::ActivationKind::kRelu && n < kMinParallelWork;
  std::optional<EltwiseStep> alg =
      from_output && !small_relu ? UseDstAlgorithm(act) : std::nullopt;
  if (dy.dtype == DType::kF32 && alg.has_value()) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(d));
    dnnl::eltwise_forward::primitive_desc hint(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg->alg,
                                    desc, alg->alpha, alg->beta),
        engine());
    dnnl::eltwise_backward::primitive_desc pd(
        dnnl::eltwise_backward::desc(alg->alg, desc, desc, alg->alpha,
                                     alg->beta),
        Attr(), engine(), hint);
    AddPrimitive(pd, dnnl::eltwise_backward(pd),
                 {{DNNL_ARG_DST, v, desc},
                  {DNNL_ARG_DIFF_DST, d, desc},
                  {DNNL_ARG_DIFF_SRC, dx, desc}});
    return absl::OkStatus();
  }
  const DType dtype = dy.dtype;
  AddLoop([=](const Pointers& ptr) {
    ActivationGrad(act, from_output, dtype, ptr[d], ptr[v], ptr[dx], n);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerActivationBiasGrad(const Node& node,
                                               const Attributes& attrs) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dy));
  SEQUENT_ASSIGN_OR_RETURN(
      ops::Activation act,
      ops::BackwardActivation(attrs, /*from_output=*/false));
  const int64_t c = type(node.outputs[1]).shape.NumElements();
  const int64_t rows = c == 0 ? 0 : dy.shape.NumElements() / c;
  const ValueId d = node.inputs[0], y = node.inputs[1], dz = node.outputs[0],
                db = node.outputs[1];
  const DType dtype = dy.dtype;
  AddLoop([=](const Pointers& ptr) {
    ActivationBiasGrad(act, dtype, ptr[d], ptr[y], ptr[dz], ptr[db], rows, c);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSoftmaxGrad(const Node& node,
                                        const Attributes& attrs, bool log) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dy));
  SEQUENT_ASSIGN_OR_RETURN(
      int axis, NormalizeAxis(IntAttrOr(attrs, "axis", -1), dy.shape.rank()));
  const ValueId d = node.inputs[0], y = node.inputs[1], dx = node.outputs[0];
  if (dy.dtype == DType::kF32) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(d));
    const auto prop = dnnl::prop_kind::forward_training;
    std::vector<std::tuple<int, ValueId, memory::desc>> args = {
        {DNNL_ARG_DST, y, desc},
        {DNNL_ARG_DIFF_DST, d, desc},
        {DNNL_ARG_DIFF_SRC, dx, desc}};
    if (log) {
      dnnl::logsoftmax_forward::primitive_desc hint(
          dnnl::logsoftmax_forward::desc(prop, desc, axis), engine());
      dnnl::logsoftmax_backward::primitive_desc pd(
          dnnl::logsoftmax_backward::desc(desc, desc, axis), Attr(), engine(),
          hint);
      AddPrimitive(pd, dnnl::logsoftmax_backward(pd), std::move(args));
    } else {
      dnnl::softmax_forward::primitive_desc hint(
          dnnl::softmax_forward::desc(prop, desc, axis), engine());
      dnnl::softmax_backward::primitive_desc pd(
          dnnl::softmax_backward::desc(desc, desc, axis), Attr(), engine(),
          hint);
      AddPrimitive(pd, dnnl::softmax_backward(pd), std::move(args));
    }
    return absl::OkStatus();
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= dy.shape[i];
  for (int i = axis + 1; i < dy.shape.rank(); ++i) inner *= dy.shape[i];
  const int64_t n = dy.shape[axis];
  const DType dtype = dy.dtype;
  AddLoop([=](const Pointers& ptr) {
    SoftmaxGrad(log, dtype, ptr[d], ptr[y], ptr[dx], outer, n, inner);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

namespace {

// Element strides of `from` (right-aligned, numpy broadcasting) per dimension
// of `to`: 0 where `from` has 1 or lacks the dimension.
std::vector<int64_t> BroadcastStridesOf(const Shape& from, const Shape& to) {
  const int rank = to.rank();
  const memory::dims fd = PadDims(from, std::max(rank, 1));
  std::vector<int64_t> s = RowMajorStrides(fd);
  for (int i = 0; i < static_cast<int>(fd.size()); ++i) {
    if (fd[i] == 1) s[i] = 0;
  }
  if (rank == 0) s.assign(0, 0);
  return s;
}

std::vector<int64_t> DimsOf(const Shape& shape) {
  return std::vector<int64_t>(shape.dims().begin(), shape.dims().end());
}

}  // namespace

absl::Status Lowering::LowerBroadcastTo(const Node& node) {
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int64_t elem = static_cast<int64_t>(DTypeSize(type(in).dtype));
  const std::vector<int64_t> strides =
      BroadcastStridesOf(type(in).shape, type(out).shape);
  const std::vector<int64_t> dims = DimsOf(type(out).shape);
  AddLoop([=](const Pointers& ptr) {
    StridedCopy(elem, ptr[in], strides, ptr[out], dims);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerReduceToShape(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, x));
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int rank = std::max(1, x.shape.rank());
  const memory::dims src_dims = ToDnnlDims(x.shape);
  const memory::dims dst_dims = PadDims(type(out).shape, rank);
  if (x.dtype == DType::kF32) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(in));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, PlainDesc(dst_dims, x.dtype));
    if (src_dims == dst_dims) {
      AddReorder(in, src, out, dst);
      return absl::OkStatus();
    }
    dnnl::reduction::primitive_desc pd(
        dnnl::reduction::desc(dnnl::algorithm::reduction_sum, src, dst, 0.f,
                              0.f),
        Attr(), engine());
    AddPrimitive(pd, dnnl::reduction(pd),
                 {{DNNL_ARG_SRC, in, src}, {DNNL_ARG_DST, out, dst}});
    return absl::OkStatus();
  }
  std::vector<int64_t> out_strides = RowMajorStrides(dst_dims);
  for (int i = 0; i < rank; ++i) {
    if (dst_dims[i] == 1) out_strides[i] = 0;
  }
  const std::vector<int64_t> in_dims(src_dims.begin(), src_dims.end());
  const int64_t out_size = type(out).shape.NumElements();
  AddLoop([=](const Pointers& ptr) {
    ReduceToShapeF64(reinterpret_cast<const double*>(ptr[in]), out_strides,
                     in_dims, reinterpret_cast<double*>(ptr[out]), out_size);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerReduceMaxGrad(const Node& node,
                                          const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, x));
  const int rank = x.shape.rank();
  std::vector<bool> reduced(rank, false);
  const std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
  if (axes.empty()) reduced.assign(rank, true);
  for (int64_t a : axes) {
    SEQUENT_ASSIGN_OR_RETURN(int axis, NormalizeAxis(a, rank));
    reduced[axis] = true;
  }
  memory::dims keep(std::max(rank, 1), 1);
  for (int i = 0; i < rank; ++i) keep[i] = reduced[i] ? 1 : x.shape[i];
  std::vector<int64_t> strides = RowMajorStrides(keep);
  for (int i = 0; i < rank; ++i) {
    if (reduced[i]) strides[i] = 0;
  }
  if (rank == 0) strides.clear();
  const std::vector<int64_t> dims = DimsOf(x.shape);
  const int64_t y_size = type(node.inputs[1]).shape.NumElements();
  std::byte* ties = nullptr;
  NewExtra(y_size * static_cast<int64_t>(sizeof(int64_t)), &ties);
  const ValueId xv = node.inputs[0], y = node.inputs[1], dy = node.inputs[2],
                dx = node.outputs[0];
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    ReduceMaxGrad(dtype, ptr[xv], ptr[y], ptr[dy], ptr[dx], dims, strides,
                  y_size, reinterpret_cast<int64_t*>(ties));
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSliceGrad(const Node& node,
                                      const Attributes& attrs) {
  const std::vector<int64_t> begin = IntListAttrOr(attrs, "begin", {});
  const TensorType& dy = type(node.inputs[0]);
  const TensorType& dx = type(node.outputs[0]);
  if (static_cast<int>(begin.size()) != dy.shape.rank()) {
    return Unsupported(node, "got a begin that does not match the input rank");
  }
  const int64_t elem = static_cast<int64_t>(DTypeSize(dy.dtype));
  const std::vector<int64_t> dy_dims = DimsOf(dy.shape),
                             dx_dims = DimsOf(dx.shape);
  const ValueId in = node.inputs[0], out = node.outputs[0];
  AddLoop([=](const Pointers& ptr) {
    SliceGrad(elem, ptr[in], dy_dims, ptr[out], dx_dims, begin);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerMaximumGrad(const Node& node) {
  const TensorType& out = type(node.outputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, out));
  const ValueId x = node.inputs[0], y = node.inputs[1], d = node.inputs[2],
                dx = node.outputs[0], dy = node.outputs[1];
  const std::vector<int64_t> xs = BroadcastStridesOf(type(x).shape, out.shape);
  const std::vector<int64_t> ys = BroadcastStridesOf(type(y).shape, out.shape);
  const std::vector<int64_t> dims = DimsOf(out.shape);
  const DType dtype = out.dtype;
  AddLoop([=](const Pointers& ptr) {
    MaximumGrad(dtype, ptr[x], xs, ptr[y], ys, ptr[d], ptr[dx], ptr[dy], dims);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSign(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  if (x.dtype != DType::kF32 && x.dtype != DType::kF64 &&
      x.dtype != DType::kI32 && x.dtype != DType::kI64) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(x.dtype), " version"));
  }
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int64_t n = x.shape.NumElements();
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    Sign(dtype, ptr[in], ptr[out], n);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

namespace {

// The convolution geometry shared by conv2d and its two backward ops: x NHWC
// [n, h, w, c], kernel HWIO [kh, kw, c, o], y NHWC [n, oh, ow, o].
struct ConvGeometry {
  memory::desc src, weights, dst;
  memory::dims strides, dilations, pad_l, pad_r;
};

ConvGeometry ConvGeom(const Shape& x, const Shape& k, const Shape& y,
                      const Attributes& attrs,
                      memory::data_type dt = memory::data_type::f32) {
  const std::vector<int64_t> strides = IntListAttrOr(attrs, "strides", {1, 1});
  const std::vector<int64_t> dil = IntListAttrOr(attrs, "dilations", {1, 1});
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  const int64_t n = x[0], h = x[1], w = x[2], c = x[3];
  const int64_t kh = k[0], kw = k[1], o = k[3];
  const int64_t oh = y[1], ow = y[2];
  ConvGeometry g;
  g.pad_l = {0, 0};
  g.pad_r = {0, 0};
  if (same) {
    auto [t, b] = SamePadding(h, oh, (kh - 1) * dil[0] + 1, strides[0]);
    auto [l, r] = SamePadding(w, ow, (kw - 1) * dil[1] + 1, strides[1]);
    g.pad_l = {t, l};
    g.pad_r = {b, r};
  } else {
    g.pad_r = {(oh - 1) * strides[0] + (kh - 1) * dil[0] + 1 - h,
               (ow - 1) * strides[1] + (kw - 1) * dil[1] + 1 - w};
  }
  g.src = memory::desc({n, c, h, w}, dt, tag::nhwc);
  g.weights = memory::desc({o, c, kh, kw}, dt, tag::hwio);
  g.dst = memory::desc({n, o, oh, ow}, dt, tag::nhwc);
  g.strides = {strides[0], strides[1]};
  g.dilations = {dil[0] - 1, dil[1] - 1};
  return g;
}

}  // namespace

absl::Status Lowering::LowerConv2dBackprop(const Node& node,
                                           const Attributes& attrs,
                                           bool filter) {
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(node.inputs[0])));
  // backprop_input: (dy, kernel) -> dx; backprop_filter: (x, dy) -> dkernel.
  const Shape& x =
      filter ? type(node.inputs[0]).shape : type(node.outputs[0]).shape;
  const Shape& k =
      filter ? type(node.outputs[0]).shape : type(node.inputs[1]).shape;
  const Shape& y =
      filter ? type(node.inputs[1]).shape : type(node.inputs[0]).shape;
  // `g` in the compute type (operands, and the forward hint), `f` in f32 (the
  // gradient written).
  // As a GEMM: output pixels x (window x input channels) -> output channels.
  const bool bf16 = Bf16Gemm(y[0] * y[1] * y[2], k[0] * k[1] * k[2], k[3]);
  const ConvGeometry g = ConvGeom(x, k, y, attrs, GemmType(bf16));
  const ConvGeometry f = ConvGeom(x, k, y, attrs);
  // The kernel (or its gradient) in the layout the primitive picks: the
  // input gradient reads it through ConvWeights, the filter gradient is
  // written there and reordered to HWIO.
  const memory::desc any_weights(g.weights.dims(), g.weights.data_type(),
                                 tag::any);
  const memory::desc any_diff_weights(f.weights.dims(), f.weights.data_type(),
                                      tag::any);
  const ValueId in0 = GemmOperand(node.inputs[0], bf16);
  const ValueId in1 =
      filter ? GemmOperand(node.inputs[1], bf16) : node.inputs[1];
  const auto alg = dnnl::algorithm::convolution_direct;
  // The forward over src and dst that hints a backward primitive.
  auto forward_hint = [&](const memory::desc& src, const memory::desc& dst) {
    return dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg,
                                        src, any_weights, dst, g.strides,
                                        g.dilations, g.pad_l, g.pad_r),
        engine());
  };
  // Writes the filter gradient `pd` produced into an extra buffer as HWIO.
  auto to_hwio = [&](const memory::desc& blocked, ValueId blocked_id) {
    AddReorder(blocked_id, blocked, node.outputs[0], f.weights);
    exe_.steps.back().kind =
        absl::StrCat("kernel gradient to HWIO: ", exe_.steps.back().kind);
  };
  if (filter) {
    // With the bias gradient when it has one (kConvBackwardWeightsOp).
    const bool with_bias = node.outputs.size() == 2;
    const memory::desc bias({k[3]}, memory::data_type::f32, tag::a);
    auto filter_pd = [&](const memory::desc& src, const memory::desc& dst) {
      using Pd = dnnl::convolution_backward_weights::primitive_desc;
      using Desc = dnnl::convolution_backward_weights::desc;
      const auto forward = forward_hint(src, dst);
      return with_bias ? Pd(Desc(alg, src, any_diff_weights, bias, dst,
                                 g.strides, g.dilations, g.pad_l, g.pad_r),
                            Attr(), engine(), forward)
                       : Pd(Desc(alg, src, any_diff_weights, dst, g.strides,
                                 g.dilations, g.pad_l, g.pad_r),
                            Attr(), engine(), forward);
    };
    auto args =
        [&](const dnnl::convolution_backward_weights::primitive_desc& pd) {
          std::vector<std::pair<int, memory::desc>> a = {
              {DNNL_ARG_SRC, pd.src_desc()},
              {DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
              {DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc()}};
          if (with_bias) a.push_back({DNNL_ARG_DIFF_BIAS, bias});
          return a;
        };
    auto pd = filter_pd(g.src, g.dst);
    // oneDNN 2.6's filter gradients over NHWC operands can be much slower
    // than over its own blocked layouts (the CNN's first layer, 1 -> 32
    // channels on 26x26: 233 against 88 us on 2 threads), enough to pay for
    // reordering the operands first (62 us): the blocked form when it times
    // clearly faster, unless SEQUENT_CPU_CONV_FILTER says "nhwc" or "blocked"
    // (tests), or deterministic mode keeps NHWC.
    const char* form = std::getenv("SEQUENT_CPU_CONV_FILTER");
    const std::string forced = form == nullptr ? "" : form;
    if (!bf16 && forced != "nhwc" &&
        (!fixed_kernel_choice.load() || forced == "blocked")) {
      const memory::desc any_src(g.src.dims(), g.src.data_type(), tag::any),
          any_dst(g.dst.dims(), g.dst.data_type(), tag::any);
      auto blocked = filter_pd(any_src, any_dst);
      const bool differs =
          blocked.src_desc() != g.src || blocked.diff_dst_desc() != g.dst;
      const std::string key = absl::StrCat(
          "conv filter gradient ", absl::StrJoin(g.src.dims(), "x"), " -> ",
          absl::StrJoin(g.dst.dims(), "x"), " kernel ",
          absl::StrJoin(f.weights.dims(), "x"), " stride ",
          absl::StrJoin(g.strides, "x"), " pad ", absl::StrJoin(g.pad_l, "x"),
          "/", absl::StrJoin(g.pad_r, "x"), " bias ", with_bias, " threads ",
          exe_.num_threads);
      const bool use_blocked =
          differs &&
          (forced == "blocked" ||
           RememberedChoice(key, [&]() -> int {
             const double direct =
                 TimePrimitive(dnnl::convolution_backward_weights(pd), args(pd),
                               pd.scratchpad_desc());
             double reordered =
                 TimePrimitive(dnnl::convolution_backward_weights(blocked),
                               args(blocked), blocked.scratchpad_desc());
             for (const auto& [plain, want] :
                  {std::pair(g.src, blocked.src_desc()),
                   std::pair(g.dst, blocked.diff_dst_desc())}) {
               if (plain == want) continue;
               dnnl::reorder::primitive_desc r(engine(), plain, engine(), want,
                                               Attr());
               reordered +=
                   TimePrimitive(dnnl::reorder(r),
                                 {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, want}},
                                 r.scratchpad_desc());
             }
             // By a clear margin: in the step the reorders cost more than
             // alone (the CNN's 88-114 against 62 us), and a close call
             // flips with the timing's noise from one process to the next.
             return reordered < 0.8 * direct ? 1 : 0;
           }) == 1);
      if (use_blocked) pd = blocked;
    }
    // The operands in the layouts pd takes: reordered copies where they are
    // not the arena's NHWC.
    auto operand = [&](ValueId v, const memory::desc& plain,
                       const memory::desc& want) {
      if (want == plain) return v;
      const ValueId copy =
          ArenaScratch(exe_.plan.buffers[node.outputs[0]].first_step,
                       static_cast<int64_t>(want.get_size()));
      AddReorder(v, plain, copy, want);
      exe_.steps.back().kind =
          absl::StrCat("operand to blocked: ", exe_.steps.back().kind);
      return copy;
    };
    const ValueId src_id = operand(in0, g.src, pd.src_desc());
    const ValueId dst_id = operand(in1, g.dst, pd.diff_dst_desc());
    const memory::desc dw = pd.diff_weights_desc();
    const ValueId dw_id =
        dw == f.weights ? node.outputs[0] : NewExtra(dw.get_size());
    std::vector<std::tuple<int, ValueId, memory::desc>> primitive_args = {
        {DNNL_ARG_SRC, src_id, pd.src_desc()},
        {DNNL_ARG_DIFF_DST, dst_id, pd.diff_dst_desc()},
        {DNNL_ARG_DIFF_WEIGHTS, dw_id, dw}};
    if (with_bias)
      primitive_args.push_back({DNNL_ARG_DIFF_BIAS, node.outputs[1], bias});
    AddPrimitive(pd, dnnl::convolution_backward_weights(pd), primitive_args);
    if (dw_id != node.outputs[0]) to_hwio(dw, dw_id);
  } else {
    dnnl::convolution_backward_data::primitive_desc pd(
        dnnl::convolution_backward_data::desc(alg, f.src, any_weights, g.dst,
                                              g.strides, g.dilations, g.pad_l,
                                              g.pad_r),
        Attr(), engine(), forward_hint(g.src, g.dst));
    const ValueId k_id = ConvWeights(in1, f.weights, pd.weights_desc());
    AddPrimitive(pd, dnnl::convolution_backward_data(pd),
                 {{DNNL_ARG_DIFF_DST, in0, g.dst},
                  {DNNL_ARG_WEIGHTS, k_id, pd.weights_desc()},
                  {DNNL_ARG_DIFF_SRC, node.outputs[0], f.src}});
  }
  return absl::OkStatus();
}

namespace {

// The pooling backward of `g`, hinted by its forward.
dnnl::pooling_backward::primitive_desc PoolBackwardPd(
    const PoolGeometry& g, const dnnl::pooling_forward::primitive_desc& hint,
    const dnnl::primitive_attr& attr, const dnnl::engine& engine) {
  return dnnl::pooling_backward::primitive_desc(
      dnnl::pooling_backward::desc(g.alg, g.src, g.dst, g.strides, g.kernel,
                                   g.pad_l, g.pad_r),
      attr, engine, hint);
}

}  // namespace

absl::Status Lowering::LowerMaxPool2dGrad(const Node& node,
                                          const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const PoolGeometry g = PoolGeom(x, type(node.inputs[1]), attrs, true);
  auto hint = PoolForwardPd(g, /*training=*/true, Attr(), engine());
  ValueId workspace = kNoValue;
  if (auto it = pool_workspaces.find(node.inputs[1]);
      it != pool_workspaces.end() && it->second != kNoValue) {
    workspace = it->second;
  } else {
    // y does not come from a max_pool2d of x we lowered: recompute the
    // forward here for its workspace.
    workspace = NewExtra(hint.workspace_desc().get_size());
    const ValueId dst = NewExtra(g.dst.get_size());
    AddPrimitive(hint, dnnl::pooling_forward(hint),
                 {{DNNL_ARG_SRC, node.inputs[0], g.src},
                  {DNNL_ARG_DST, dst, g.dst},
                  {DNNL_ARG_WORKSPACE, workspace, hint.workspace_desc()}});
  }
  const dnnl::pooling_backward::primitive_desc pd =
      PoolBackwardPd(g, hint, Attr(), engine());
  AddPrimitive(pd, dnnl::pooling_backward(pd),
               {{DNNL_ARG_DIFF_DST, node.inputs[2], g.dst},
                {DNNL_ARG_WORKSPACE, workspace, hint.workspace_desc()},
                {DNNL_ARG_DIFF_SRC, node.outputs[0], g.src}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerAvgPool2dGrad(const Node& node,
                                          const Attributes& attrs) {
  const TensorType& dy = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, dy));
  const PoolGeometry g = PoolGeom(type(node.outputs[0]), dy, attrs, false);
  auto hint = PoolForwardPd(g, /*training=*/true, Attr(), engine());
  const dnnl::pooling_backward::primitive_desc pd =
      PoolBackwardPd(g, hint, Attr(), engine());
  AddPrimitive(pd, dnnl::pooling_backward(pd),
               {{DNNL_ARG_DIFF_DST, node.inputs[0], g.dst},
                {DNNL_ARG_DIFF_SRC, node.outputs[0], g.src}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerGlobalAvgPool2dGrad(const Node& node) {
  const TensorType& dx = type(node.outputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, dx));
  const int64_t n = dx.shape[0], hw = dx.shape[1] * dx.shape[2],
                c = dx.shape[3];
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const DType dtype = dx.dtype;
  AddLoop([=](const Pointers& ptr) {
    GlobalAvgPoolGrad(dtype, ptr[in], ptr[out], n, hw, c);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerNormGrad(const Node& node, const Attributes& attrs,
                                     bool batch) {
  const TensorType& x = type(node.inputs[1]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const bool training = BoolAttrOr(attrs, "training", true);
  const int64_t c = x.shape[x.shape.rank() - 1];
  const int64_t rows = c == 0 ? 0 : x.shape.NumElements() / c;
  std::byte* scratch = nullptr;
  if (!batch) {
    NewExtra(2 * c * std::max(1, exe_.num_threads) *
                 static_cast<int64_t>(sizeof(double)),
             &scratch);
  }
  const ValueId dy = node.inputs[0], xv = node.inputs[1],
                gamma = node.inputs[2], mean = node.inputs[3],
                inv_std = node.inputs[4], dx = node.outputs[0],
                dgamma = node.outputs[1], dbeta = node.outputs[2];
  AddLoop([=](const Pointers& ptr) {
    auto f = [&](ValueId v) { return reinterpret_cast<float*>(ptr[v]); };
    if (batch) {
      BatchNormGrad(training, rows, c, f(dy), f(xv), f(gamma), f(mean),
                    f(inv_std), f(dx), f(dgamma), f(dbeta));
    } else {
      LayerNormGrad(rows, c, f(dy), f(xv), f(gamma), f(mean), f(inv_std), f(dx),
                    f(dgamma), f(dbeta), reinterpret_cast<double*>(scratch));
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerLossGrad(const Node& node, const Attributes& attrs,
                                     LossKind kind) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, type(node.inputs[1])));
  const LossOperands o = LossOperandsOf(node, attrs, kind, /*weight_input=*/3);
  const ValueId dl = node.inputs[2], out = node.outputs[0];
  const std::string op = node.op;
  if (o.SoftmaxOfLogits()) {
    // oneDNN's softmax straight into the gradient, then the label and scale
    // fixed in place.
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(o.p));
    auto it = softmax_of_logits_.find(o.p);
    if (it != softmax_of_logits_.end() && it->second.residual &&
        (it->second.labels != o.t || it->second.weights != o.w)) {
      it = softmax_of_logits_.end();  // A residual of other labels or weights.
    }
    if (it != softmax_of_logits_.end()) {
      // The loss, an earlier step, computed these probabilities already.
      const float* probs = it->second.data;
      if (it->second.residual) {
        // ...and subtracted the labels, which it checked.
        const int64_t n = o.p_size, rows = o.batch;
        const DType dl_dtype = o.p_dtype;
        AddLoop([=](const Pointers& ptr) {
          ScaleResidual(probs, {ptr[dl], dl_dtype, 1}, rows, n,
                        reinterpret_cast<float*>(ptr[out]));
          return absl::OkStatus();
        });
        return absl::OkStatus();
      }
      AddLoop([=](const Pointers& ptr) {
        return SparseCrossentropyGradFromProbs(
            o.Labels(ptr), {ptr[dl], o.p_dtype, 1}, o.Weights(ptr), o.batch,
            o.row_len, o.batch, probs, reinterpret_cast<float*>(ptr[out]));
      });
      return absl::OkStatus();
    }
    AddSoftmax(o.p, out, desc, 1, /*log=*/false);
    AddLoop([=](const Pointers& ptr) {
      auto* grad = reinterpret_cast<float*>(ptr[out]);
      return SparseCrossentropyGradFromProbs(
          o.Labels(ptr), {ptr[dl], o.p_dtype, 1}, o.Weights(ptr), o.batch,
          o.row_len, o.batch, grad, grad);
    });
    return absl::OkStatus();
  }
  std::byte* scratch = nullptr;
  NewExtra(3 * o.row_len * std::max(1, exe_.num_threads) *
               static_cast<int64_t>(sizeof(double)),
           &scratch);
  AddLoop([=](const Pointers& ptr) -> absl::Status {
    absl::Status s =
        LossGrad(o.params, o.Labels(ptr), o.Predictions(ptr),
                 {ptr[dl], o.p_dtype, 1}, o.Weights(ptr), o.row_len, o.batch,
                 ptr[out], reinterpret_cast<double*>(scratch));
    if (s.ok() || absl::StartsWith(s.message(), "[")) return s;
    return absl::Status(s.code(), absl::StrCat("[", op, "] ", s.message()));
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerUpdate(const Node& node, const Attributes& attrs,
                                   UpdateKind kind) {
  const TensorType& var = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, var));
  UpdateParams params;
  params.kind = kind;
  params.momentum = FloatAttrOr(attrs, "momentum", 0.0);
  params.nesterov = BoolAttrOr(attrs, "nesterov", false);
  params.beta_1 = FloatAttrOr(attrs, "beta_1", 0.9);
  params.beta_2 = FloatAttrOr(attrs, "beta_2", 0.999);
  params.epsilon = FloatAttrOr(attrs, "epsilon", 1e-7);
  params.weight_decay = FloatAttrOr(attrs, "weight_decay", 0.004);
  params.rho = FloatAttrOr(attrs, "rho", 0.9);
  const size_t num_slots = node.outputs.size() - 1;
  const ValueId v = node.inputs[0], lr = node.inputs[num_slots + 2],
                it = node.inputs[num_slots + 3], v_out = node.outputs[0];
  // The gradient, or the gradient before the weight's penalty term, which the
  // update then adds (penalties_in_updates).
  ValueId g = node.inputs[1];
  std::vector<ValueId> penalty_scalars;
  if (auto term = penalty_terms_.find(g); term != penalty_terms_.end()) {
    std::tie(g, penalty_scalars) = term->second;
  }
  const bool penalized = !penalty_scalars.empty();
  std::vector<ValueId> slots, slots_out;
  for (size_t s = 0; s < num_slots; ++s) {
    slots.push_back(node.inputs[2 + s]);
    slots_out.push_back(node.outputs[1 + s]);
  }
  const int64_t n = var.shape.NumElements();
  const DType dtype = var.dtype;
  // Pointer lists built once here and refilled per run (no allocation in
  // Run).
  auto slot_ptrs = std::make_shared<std::vector<const void*>>(num_slots);
  auto out_ptrs = std::make_shared<std::vector<void*>>(num_slots);
  // An update the planner writes in place into its variable changes the
  // variable here: its version entry (for bf16 copies) is bumped here, and
  // when the store holds a bf16 copy of it (allocated by any executable's
  // Compile) the update writes that too, in the same pass.
  CpuVariableStore::Shadow* shadow = nullptr;
  if (exe_.cpu_store != nullptr && dtype == DType::kF32 &&
      exe_.locations[v].kind == Location::Kind::kVariable) {
    const BufferAssignment& out = exe_.plan.buffers[v_out];
    if (out.kind == BufferAssignment::Kind::kVariable &&
        out.variable == exe_.locations[v].variable) {
      shadow = exe_.cpu_store->ShadowOf(out.variable);
      in_place_updates_.insert(v_out);
    }
  }
  AddLoop([=](const Pointers& ptr) {
    for (size_t s = 0; s < slots.size(); ++s) {
      (*slot_ptrs)[s] = ptr[slots[s]];
      (*out_ptrs)[s] = ptr[slots_out[s]];
    }
    uint16_t* copy =
        shadow != nullptr && shadow->copy != nullptr && shadow->n == n
            ? reinterpret_cast<uint16_t*>(shadow->copy.get())
            : nullptr;
    const float penalty = ScaleOf(ptr, penalty_scalars);
    ApplyUpdate(params, dtype, n, ptr[v], ptr[g], *slot_ptrs, ptr[lr], ptr[it],
                ptr[v_out], *out_ptrs, copy, penalized ? &penalty : nullptr);
    if (shadow != nullptr) {
      ++shadow->version;
      if (copy != nullptr) shadow->holds = shadow->version;
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerClip(const Node& node, const Attributes& attrs,
                                 bool norm) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectFloat(node, x));
  const double lo = FloatAttrOr(attrs, "min", 0.0);
  const double hi = FloatAttrOr(attrs, "max", 0.0);
  const double max_norm = FloatAttrOr(attrs, "max_norm", 0.0);
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const int64_t n = x.shape.NumElements();
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    if (norm) {
      ClipByNorm(dtype, ptr[in], ptr[out], n, max_norm);
    } else {
      ClipByValue(dtype, ptr[in], ptr[out], n, lo, hi);
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// (x [M, K], dz [M, P]) -> (dW [K, P], db [P]), the faster of three
// formulations timed here (deterministic mode keeps the first):
//   - one oneDNN inner_product_backward_weights computing both, dW in the
//     forward kernel's `io` layout;
//   - a matmul x^T dz (x read through swapped strides) and our column sums;
//   - a matmul dz^T x into a scratch [P, K] plus a transposing reorder, and
//     the column sums: for thin layers (P = 5 of scikit-learn's nets) the
//     GEMM's long side is then K and it runs ~3x faster.
absl::Status Lowering::LowerDenseBackwardWeights(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& dz = type(node.inputs[1]);
  const int64_t m = x.shape[0], k = x.shape[1], p = dz.shape[1];
  const auto f32 = memory::data_type::f32;
  const bool bf16 = Bf16Gemm(k, m, p);
  const auto in = GemmType(bf16);
  const memory::desc src({m, k}, in, tag::ab);
  const memory::desc weights({p, k}, f32, tag::io);
  const memory::desc bias({p}, f32, tag::a);
  const memory::desc dst({m, p}, in, tag::ab);
  // db as column sums of dz (f32 in bf16 mode too), in a loop of ours with a
  // per-thread scratch.
  const auto new_sums_scratch = [&] {
    std::byte* scratch = nullptr;
    NewExtra(p * std::max(1, exe_.num_threads) *
                 static_cast<int64_t>(sizeof(double)),
             &scratch);
    return reinterpret_cast<double*>(scratch);
  };
  const auto add_column_sums = [&](double* sums) {
    const ValueId dz_f32 = node.inputs[1], db_id = node.outputs[1];
    AddLoop([=](const Pointers& ptr) {
      ColumnSums(DType::kF32, ptr[dz_f32], ptr[db_id], m, p, 1.0, sums);
      return absl::OkStatus();
    });
  };
  const CpuVariableStore::Layout* layout = BlockedLayout(node.outputs[0]);
  if (layout != nullptr && layout->blocked == TransposedKernel(k, p) && !bf16) {
    // A thin kernel stored transposed: dW^T = dz^T x straight into it (the
    // GEMM's long side is k), and the column sums.
    const memory::desc dz_t({p, m}, f32, Dims({1, p}));
    dnnl::matmul::primitive_desc transposed(
        dnnl::matmul::desc(dz_t, src, layout->blocked), Attr(), engine());
    AddPrimitive(transposed, dnnl::matmul(transposed),
                 {{DNNL_ARG_SRC, node.inputs[1], dz_t},
                  {DNNL_ARG_WEIGHTS, node.inputs[0], src},
                  {DNNL_ARG_DST, node.outputs[0], layout->blocked}});
    add_column_sums(new_sums_scratch());
    return absl::OkStatus();
  }
  if (layout != nullptr && !bf16) {
    SEQUENT_ASSIGN_OR_RETURN(bool owned, LowerOwnedWeightGradient(node));
    if (owned) return absl::OkStatus();
  }
  MaterializeChunked(node.inputs[1]);
  if (layout != nullptr) {
    // The kernel's gradient in the kernel's blocked layout.
    dnnl::inner_product_forward::primitive_desc blocked_hint(
        dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                          src, layout->blocked, bias, dst),
        engine());
    dnnl::inner_product_backward_weights::primitive_desc blocked_pd(
        dnnl::inner_product_backward_weights::desc(src, layout->blocked, bias,
                                                   dst),
        Attr(), engine(), blocked_hint);
    AddPrimitive(blocked_pd, dnnl::inner_product_backward_weights(blocked_pd),
                 {{DNNL_ARG_SRC, node.inputs[0], src},
                  {DNNL_ARG_DIFF_DST, node.inputs[1], dst},
                  {DNNL_ARG_DIFF_WEIGHTS, node.outputs[0], layout->blocked},
                  {DNNL_ARG_DIFF_BIAS, node.outputs[1], bias}});
    return absl::OkStatus();
  }
  if (!bf16) {
    SEQUENT_ASSIGN_OR_RETURN(bool owned,
                             LowerOwnedRowSplitWeightGradient(node));
    if (owned) return absl::OkStatus();
  }
  dnnl::inner_product_forward::primitive_desc hint(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training, src,
                                        memory::desc({p, k}, in, tag::io), bias,
                                        dst),
      engine());
  dnnl::inner_product_backward_weights::primitive_desc pd(
      dnnl::inner_product_backward_weights::desc(src, weights, bias, dst),
      Attr(), engine(), hint);
  dnnl::inner_product_backward_weights ip_primitive(pd);
  // The GEMM reads x and dz in the compute type; the column sums below read
  // dz itself (f32 in bf16 mode too).
  const ValueId x_id = GemmOperand(node.inputs[0], bf16);
  const ValueId dz_id = GemmOperand(node.inputs[1], bf16);
  const ValueId dw_id = node.outputs[0], db_id = node.outputs[1];

  const GemmChoice choice = GemmChoiceFromEnv();
  if (choice != GemmChoice::kInnerProduct) {
    const memory::desc x_t({k, m}, in, Dims({1, k}));
    const memory::desc dw({k, p}, f32, tag::ab);
    dnnl::matmul::primitive_desc direct(dnnl::matmul::desc(x_t, dst, dw),
                                        Attr(), engine());
    const memory::desc dz_t({p, m}, in, Dims({1, p}));
    const memory::desc dw_t({p, k}, f32, tag::ab);
    const memory::desc dw_as_t({p, k}, f32, Dims({1, p}));
    dnnl::matmul::primitive_desc transposed(dnnl::matmul::desc(dz_t, src, dw_t),
                                            Attr(), engine());
    dnnl::reorder::primitive_desc transpose(engine(), dw_t, engine(), dw_as_t,
                                            Attr());
    double* sums = new_sums_scratch();
    enum {
      kIp,
      kDirect,
      kTransposed
    } pick = choice == GemmChoice::kTransposedMatmul ? kTransposed : kDirect;
    if (choice == GemmChoice::kAuto) {
      const std::string key =
          absl::StrCat("dense weight gradient ", m, "x", k, "x", p, " ",
                       static_cast<int>(in), " threads ", exe_.num_threads);
      pick = static_cast<decltype(pick)>(RememberedChoice(key, [&]() -> int {
        const double column_sums = TimeColumnSums(m, p, sums);
        const double ip_time = TimePrimitive(ip_primitive,
                                             {{DNNL_ARG_SRC, src},
                                              {DNNL_ARG_DIFF_DST, dst},
                                              {DNNL_ARG_DIFF_WEIGHTS, weights},
                                              {DNNL_ARG_DIFF_BIAS, bias}},
                                             pd.scratchpad_desc());
        const double direct_time = TimePrimitive(dnnl::matmul(direct),
                                                 {{DNNL_ARG_SRC, x_t},
                                                  {DNNL_ARG_WEIGHTS, dst},
                                                  {DNNL_ARG_DST, dw}},
                                                 direct.scratchpad_desc()) +
                                   column_sums;
        const double transposed_time =
            TimePrimitive(dnnl::matmul(transposed),
                          {{DNNL_ARG_SRC, dz_t},
                           {DNNL_ARG_WEIGHTS, src},
                           {DNNL_ARG_DST, dw_t}},
                          transposed.scratchpad_desc()) +
            TimePrimitive(dnnl::reorder(transpose),
                          {{DNNL_ARG_FROM, dw_t}, {DNNL_ARG_TO, dw_as_t}},
                          transpose.scratchpad_desc()) +
            column_sums;
        return ip_time <= std::min(direct_time, transposed_time) ? kIp
               : direct_time <= transposed_time                  ? kDirect
                                                                 : kTransposed;
      }));
    }
    if (pick != kIp) {
      if (pick == kDirect) {
        AddPrimitive(direct, dnnl::matmul(direct),
                     {{DNNL_ARG_SRC, x_id, x_t},
                      {DNNL_ARG_WEIGHTS, dz_id, dst},
                      {DNNL_ARG_DST, dw_id, dw}});
      } else {
        const ValueId scratch = NewExtra(dw_t.get_size());
        AddPrimitive(transposed, dnnl::matmul(transposed),
                     {{DNNL_ARG_SRC, dz_id, dz_t},
                      {DNNL_ARG_WEIGHTS, x_id, src},
                      {DNNL_ARG_DST, scratch, dw_t}});
        AddPrimitive(
            transpose, dnnl::reorder(transpose),
            {{DNNL_ARG_FROM, scratch, dw_t}, {DNNL_ARG_TO, dw_id, dw_as_t}});
      }
      add_column_sums(sums);
      return absl::OkStatus();
    }
  }
  AddPrimitive(pd, std::move(ip_primitive),
               {{DNNL_ARG_SRC, x_id, src},
                {DNNL_ARG_DIFF_DST, dz_id, dst},
                {DNNL_ARG_DIFF_WEIGHTS, dw_id, weights},
                {DNNL_ARG_DIFF_BIAS, db_id, bias}});
  return absl::OkStatus();
}

// The activation ops: the op name is the activation, with its own parameters as
// attributes.
absl::StatusOr<ops::Activation> ActivationOf(const Node& node,
                                             const Attributes& attrs) {
  SEQUENT_ASSIGN_OR_RETURN(ops::Activation act, ops::ParseActivation(node.op));
  act.alpha = FloatAttrOr(attrs, "alpha", act.alpha);
  act.approximate = BoolAttrOr(attrs, "approximate", act.approximate);
  return act;
}

}  // namespace sequent::cpu
