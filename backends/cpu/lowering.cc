#include "backends/cpu/lowering.h"

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
#include "backends/cpu/onednn_util.h"
#include "backends/cpu/softmax_crossentropy.h"
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

std::atomic<bool> fixed_kernel_choice{false};

// Best-of-5 seconds of `run`, after two warm-up runs, for choosing between
// equivalent formulations at Compile; best of 2 after one warm-up when a run
// takes over 0.5 ms (a large batch's GEMM), where noise matters less and
// seven runs of each candidate would be most of a compile.
double BestSeconds(const std::function<void()>& run) {
  double best = 1e30;
  int warm_up = 2, runs = 7;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (r == 0 && t > 0.5e-3) {
      warm_up = 1;
      runs = 3;
    }
    if (r >= warm_up) best = std::min(best, t);
  }
  return best;
}

int RememberedChoice(const std::string& key, const std::function<int()>& time) {
  static std::mutex mutex;
  static auto* choices = new absl::flat_hash_map<std::string, int>();
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = choices->find(key); it != choices->end()) return it->second;
  }
  const int choice = time();
  std::lock_guard<std::mutex> lock(mutex);
  return choices->try_emplace(key, choice).first->second;
}

absl::Status ExpectF32(const Node& node, const TensorType& t) {
  if (t.dtype == DType::kF32) return absl::OkStatus();
  return Unsupported(node,
                     absl::StrCat("runs f32 only so far, got ", t.ToString()));
}

memory::dims Dims(std::initializer_list<int64_t> d) { return memory::dims(d); }

namespace {

// The oneDNN formulations of one dense GEMM z = act(x W + b) at m rows, x
// [m, k], the kernel W [k, p]:
// - an inner product: the kernel as oneDNN's {OC=p, IC=k} weights is `io`
//   (or `weights`, a blocked layout the kernel is stored in);
// - a matmul: the kernel is its plain `ab` B and the bias a {1, p} row;
// - transposed, z^T = W^T x^T: an inner product whose weights are the batch
//   ([m, k] as `oi`) and whose source is the kernel transposed ([p, k]),
//   after a reorder that transposes the kernel; a loop of ours transposes
//   z^T back, adding the bias and the activation. For a thin layer (p a few
//   units) the direct forms broadcast one x value per multiply-add and fill
//   p of 16 lanes; this one runs along k (784x5 at batch 200 on one thread:
//   23 -> 10 us). f32 only, p <= 16, and no more than kMaxTransposedRows
//   rows: the GEMM packs the batch, its "weights", which costs more than it
//   saves once the batch no longer fits the caches (a 12,000-row validation
//   set through 784x5 on one thread: 3.1 ms, against 2.2 ms as a matmul).
struct DenseForms {
  memory::desc src, weights, dst, bias, b_desc, bias_row;
  dnnl::inner_product_forward::primitive_desc ip;
  dnnl::matmul::primitive_desc mm;
  bool transposable = false;
  memory::desc kernel_as_t, kernel_t, batch_as_weights, z_t;
  dnnl::reorder::primitive_desc transpose_kernel;
  dnnl::inner_product_forward::primitive_desc t_ip;
};

constexpr int64_t kMaxTransposedRows = 1024;

DenseForms MakeDenseForms(const dnnl::engine& engine,
                          const dnnl::primitive_attr& plain_attr,
                          const dnnl::primitive_attr& attr, int64_t m,
                          int64_t k, int64_t p, memory::data_type in,
                          bool has_bias, bool with_alternatives,
                          const memory::desc* weights = nullptr) {
  const auto f32 = memory::data_type::f32;
  DenseForms f;
  f.src = memory::desc({m, k}, in, tag::ab);
  f.weights = weights != nullptr ? *weights : memory::desc({p, k}, in, tag::io);
  f.dst = memory::desc({m, p}, f32, tag::ab);
  f.bias = memory::desc({p}, f32, tag::a);
  f.ip = has_bias ? dnnl::inner_product_forward::primitive_desc(
                        dnnl::inner_product_forward::desc(
                            dnnl::prop_kind::forward_inference, f.src,
                            f.weights, f.bias, f.dst),
                        attr, engine)
                  : dnnl::inner_product_forward::primitive_desc(
                        dnnl::inner_product_forward::desc(
                            dnnl::prop_kind::forward_inference, f.src,
                            f.weights, f.dst),
                        attr, engine);
  if (!with_alternatives) return f;
  f.b_desc = memory::desc({k, p}, in, tag::ab);
  f.bias_row = memory::desc({1, p}, f32, tag::ab);
  f.mm = has_bias
             ? dnnl::matmul::primitive_desc(
                   dnnl::matmul::desc(f.src, f.b_desc, f.bias_row, f.dst), attr,
                   engine)
             : dnnl::matmul::primitive_desc(
                   dnnl::matmul::desc(f.src, f.b_desc, f.dst), attr, engine);
  f.transposable = in == f32 && p <= 16 && m > 1 && m <= kMaxTransposedRows;
  if (!f.transposable) return f;
  f.kernel_as_t = memory::desc({p, k}, f32, tag::ba);  // The kernel's bytes.
  f.kernel_t = memory::desc({p, k}, f32, tag::ab);
  f.batch_as_weights = memory::desc({m, k}, f32, tag::oi);
  f.z_t = memory::desc({p, m}, f32, tag::ab);
  f.transpose_kernel = dnnl::reorder::primitive_desc(
      engine, f.kernel_as_t, engine, f.kernel_t, plain_attr);
  f.t_ip = dnnl::inner_product_forward::primitive_desc(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                        f.kernel_t, f.batch_as_weights, f.z_t),
      plain_attr, engine);
  return f;
}

}  // namespace

absl::Status Lowering::LowerDense(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& kernel = type(node.inputs[1]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  SEQUENT_ASSIGN_OR_RETURN(
      ops::Activation act,
      ops::ParseActivation(StringAttrOr(attrs, "activation", "linear")));
  const int64_t m = x.shape[0], k = kernel.shape[0], p = kernel.shape[1];
  const bool bf16 = Bf16Gemm(m, k, p);
  const auto in = GemmType(bf16);
  const ValueId x_id = GemmOperand(node.inputs[0], bf16);
  const ValueId w_id = GemmOperand(node.inputs[1], bf16);
  const ValueId z_id = node.outputs[0];
  const bool has_bias = node.inputs.size() > 2;
  const ValueId bias_id = has_bias ? node.inputs[2] : kNoValue;
  dnnl::primitive_attr attr = Attr();
  attr.set_post_ops(ActivationPostOps(act));
  // A kernel in its blocked layout (weight_layout.h) takes the inner product
  // the layout was chosen for; a thin kernel stored transposed, the
  // transposed form where it applies.
  const CpuVariableStore::Layout* layout = BlockedLayout(w_id);
  const bool stored_transposed =
      layout != nullptr && layout->blocked == TransposedKernel(k, p);
  if (layout != nullptr && !stored_transposed && !bf16) {
    SEQUENT_ASSIGN_OR_RETURN(bool owned,
                             LowerOwnedDense(node, attr, x_id, w_id, bias_id));
    if (owned) return absl::OkStatus();
  }
  const GemmChoice choice =
      layout != nullptr ? GemmChoice::kInnerProduct : GemmChoiceFromEnv();
  const DenseForms f =
      MakeDenseForms(engine(), Attr(), attr, m, k, p, in, has_bias,
                     choice != GemmChoice::kInnerProduct || stored_transposed,
                     layout != nullptr ? &layout->blocked : nullptr);
  enum { kIp, kMatmul, kTransposed } pick = kIp;
  if (stored_transposed && f.transposable) pick = kTransposed;
  if (choice == GemmChoice::kMatmul) pick = kMatmul;
  if (choice == GemmChoice::kTransposedMatmul)
    pick = f.transposable ? kTransposed : kMatmul;
  if (choice == GemmChoice::kAuto) {
    // Timed at no more than kTimingRows rows: a large batch (a validation
    // set predicted at once) takes the choice made there, instead of timing
    // every formulation on its full size.
    constexpr int64_t kTimingRows = 1024;
    const int64_t tm = std::min(m, kTimingRows);
    DenseForms timing =
        tm == m ? f
                : MakeDenseForms(engine(), Attr(), attr, tm, k, p, in, has_bias,
                                 /*with_alternatives=*/true);
    timing.transposable = timing.transposable && f.transposable;
    const std::string key = absl::StrCat(
        "dense ", tm, "x", k, "x", p, " transposable ", timing.transposable,
        " bias ", has_bias, " ", StringAttrOr(attrs, "activation", "linear"),
        " ", act.alpha, " ", static_cast<int>(in), " threads ",
        exe_.num_threads);
    pick = static_cast<decltype(pick)>(RememberedChoice(key, [&]() -> int {
      std::vector<std::pair<int, memory::desc>> ip_args = {
          {DNNL_ARG_SRC, timing.src},
          {DNNL_ARG_WEIGHTS, timing.weights},
          {DNNL_ARG_DST, timing.dst}};
      std::vector<std::pair<int, memory::desc>> mm_args = {
          {DNNL_ARG_SRC, timing.src},
          {DNNL_ARG_WEIGHTS, timing.b_desc},
          {DNNL_ARG_DST, timing.dst}};
      if (has_bias) {
        ip_args.push_back({DNNL_ARG_BIAS, timing.bias});
        mm_args.push_back({DNNL_ARG_BIAS, timing.bias_row});
      }
      const double ip_time =
          TimePrimitive(dnnl::inner_product_forward(timing.ip), ip_args,
                        timing.ip.scratchpad_desc());
      const double mm_time = TimePrimitive(dnnl::matmul(timing.mm), mm_args,
                                           timing.mm.scratchpad_desc());
      double t_time = 1e30;
      if (timing.transposable) {
        std::vector<float> zt(tm * p, 0.01f), bias(p, 0.01f), z(tm * p);
        t_time = TimePrimitive(dnnl::reorder(timing.transpose_kernel),
                               {{DNNL_ARG_FROM, timing.kernel_as_t},
                                {DNNL_ARG_TO, timing.kernel_t}},
                               timing.transpose_kernel.scratchpad_desc()) +
                 TimePrimitive(dnnl::inner_product_forward(timing.t_ip),
                               {{DNNL_ARG_SRC, timing.kernel_t},
                                {DNNL_ARG_WEIGHTS, timing.batch_as_weights},
                                {DNNL_ARG_DST, timing.z_t}},
                               timing.t_ip.scratchpad_desc()) +
                 BestSeconds([&] {
                   TransposeBiasActivation(zt.data(), bias.data(), z.data(), tm,
                                           p, act);
                 });
      }
      return ip_time <= std::min(mm_time, t_time) ? kIp
             : mm_time <= t_time                  ? kMatmul
                                                  : kTransposed;
    }));
  }
  if (pick == kTransposed) {
    ValueId w_t = w_id;
    if (!stored_transposed) {
      w_t = NewExtra(f.kernel_t.get_size());
      AddPrimitive(f.transpose_kernel, dnnl::reorder(f.transpose_kernel),
                   {{DNNL_ARG_FROM, w_id, f.kernel_as_t},
                    {DNNL_ARG_TO, w_t, f.kernel_t}});
    }
    std::byte* zt_data = nullptr;  // Loops read extras directly.
    const ValueId zt_id = NewExtra(f.z_t.get_size(), &zt_data);
    AddPrimitive(f.t_ip, dnnl::inner_product_forward(f.t_ip),
                 {{DNNL_ARG_SRC, w_t, f.kernel_t},
                  {DNNL_ARG_WEIGHTS, x_id, f.batch_as_weights},
                  {DNNL_ARG_DST, zt_id, f.z_t}});
    AddLoop([=](const Pointers& ptr) {
      TransposeBiasActivation(reinterpret_cast<const float*>(zt_data),
                              bias_id != kNoValue
                                  ? reinterpret_cast<const float*>(ptr[bias_id])
                                  : nullptr,
                              reinterpret_cast<float*>(ptr[z_id]), m, p, act);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  if (pick == kMatmul) {
    std::vector<std::tuple<int, ValueId, memory::desc>> args = {
        {DNNL_ARG_SRC, x_id, f.src},
        {DNNL_ARG_WEIGHTS, w_id, f.b_desc},
        {DNNL_ARG_DST, z_id, f.dst}};
    if (has_bias) args.push_back({DNNL_ARG_BIAS, bias_id, f.bias_row});
    AddPrimitive(f.mm, dnnl::matmul(f.mm), std::move(args));
    return absl::OkStatus();
  }
  std::vector<std::tuple<int, ValueId, memory::desc>> args = {
      {DNNL_ARG_SRC, x_id, f.src},
      {DNNL_ARG_WEIGHTS, w_id, f.weights},
      {DNNL_ARG_DST, z_id, f.dst}};
  if (has_bias) args.push_back({DNNL_ARG_BIAS, bias_id, f.bias});
  AddPrimitive(f.ip, dnnl::inner_product_forward(f.ip), std::move(args));
  return absl::OkStatus();
}

absl::Status Lowering::LowerMatmul(const Node& node, const Attributes& attrs) {
  const TensorType& a = type(node.inputs[0]);
  const TensorType& b = type(node.inputs[1]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, a));
  const bool ta = BoolAttrOr(attrs, "transpose_a", false);
  const bool tb = BoolAttrOr(attrs, "transpose_b", false);
  const int64_t m = ta ? a.shape[1] : a.shape[0];
  const int64_t k = ta ? a.shape[0] : a.shape[1];
  const int64_t p = tb ? b.shape[0] : b.shape[1];
  const auto f32 = memory::data_type::f32;
  const bool bf16 = Bf16Gemm(m, k, p);
  const auto in = GemmType(bf16);
  const ValueId a_id = GemmOperand(node.inputs[0], bf16);
  const ValueId b_id = GemmOperand(node.inputs[1], bf16);
  const memory::desc mm_src({m, k}, in, ta ? Dims({1, m}) : Dims({k, 1}));
  const memory::desc mm_weights({k, p}, in, tb ? Dims({1, k}) : Dims({p, 1}));
  const memory::desc mm_dst({m, p}, f32, tag::ab);
  dnnl::matmul::primitive_desc mm(
      dnnl::matmul::desc(mm_src, mm_weights, mm_dst), Attr(), engine());
  const CpuVariableStore::Layout* layout = BlockedLayout(node.inputs[1]);
  if (layout != nullptr && !ta && tb) {
    SEQUENT_ASSIGN_OR_RETURN(bool owned, LowerOwnedInputGradient(node));
    if (owned) return absl::OkStatus();
    MaterializeChunked(node.inputs[0]);
    // A dense layer's input gradient over its blocked kernel: dz [M, OC],
    // the kernel {OC, IC} (here k = OC, p = IC).
    const memory::desc diff_dst({m, k}, f32, tag::ab);
    const memory::desc diff_src({m, p}, f32, tag::ab);
    dnnl::inner_product_forward::primitive_desc hint(
        dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                          diff_src, layout->blocked, diff_dst),
        engine());
    dnnl::inner_product_backward_data::primitive_desc pd(
        dnnl::inner_product_backward_data::desc(diff_src, layout->blocked,
                                                diff_dst),
        Attr(), engine(), hint);
    AddPrimitive(pd, dnnl::inner_product_backward_data(pd),
                 {{DNNL_ARG_DIFF_DST, node.inputs[0], diff_dst},
                  {DNNL_ARG_WEIGHTS, node.inputs[1], layout->blocked},
                  {DNNL_ARG_DIFF_SRC, node.outputs[0], diff_src}});
    return absl::OkStatus();
  }
  if (layout == nullptr && !ta && tb && a.shape.rank() == 2 &&
      b.shape.rank() == 2 && !bf16) {
    SEQUENT_ASSIGN_OR_RETURN(bool owned, LowerOwnedRowSplitInputGradient(node));
    if (owned) return absl::OkStatus();
  }
  const GemmChoice choice = GemmChoiceFromEnv();
  if (!ta && tb && a.shape.rank() == 2 && b.shape.rank() == 2 &&
      choice != GemmChoice::kMatmul &&
      choice != GemmChoice::kTransposedMatmul) {
    // A dense layer's input gradient dz x W^T (dz [M, OC], W [IC, OC]):
    // oneDNN's inner_product_backward_data over the forward's weights, in
    // the forward's `io` view of W as {OC, IC}. Here k = OC and p = IC.
    const memory::desc diff_dst({m, k}, in, tag::ab);
    const memory::desc weights({k, p}, in, tag::io);
    const memory::desc diff_src({m, p}, f32, tag::ab);
    // The hint is the forward in the operands' type (oneDNN has no forward
    // from f32 src to bf16 dst).
    dnnl::inner_product_forward::primitive_desc hint(
        dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                          memory::desc({m, p}, in, tag::ab),
                                          weights, diff_dst),
        engine());
    dnnl::inner_product_backward_data::primitive_desc pd(
        dnnl::inner_product_backward_data::desc(diff_src, weights, diff_dst),
        Attr(), engine(), hint);
    dnnl::inner_product_backward_data ip_primitive(pd);
    bool use_ip = true;
    if (choice == GemmChoice::kAuto) {
      const std::string key =
          absl::StrCat("dense input gradient ", m, "x", k, "x", p, " ",
                       static_cast<int>(in), " threads ", exe_.num_threads);
      use_ip = RememberedChoice(key, [&] {
                 return TimePrimitive(ip_primitive,
                                      {{DNNL_ARG_DIFF_DST, diff_dst},
                                       {DNNL_ARG_WEIGHTS, weights},
                                       {DNNL_ARG_DIFF_SRC, diff_src}},
                                      pd.scratchpad_desc()) <=
                        TimePrimitive(dnnl::matmul(mm),
                                      {{DNNL_ARG_SRC, mm_src},
                                       {DNNL_ARG_WEIGHTS, mm_weights},
                                       {DNNL_ARG_DST, mm_dst}},
                                      mm.scratchpad_desc());
               }) == 1;
    }
    if (use_ip) {
      AddPrimitive(pd, std::move(ip_primitive),
                   {{DNNL_ARG_DIFF_DST, a_id, diff_dst},
                    {DNNL_ARG_WEIGHTS, b_id, weights},
                    {DNNL_ARG_DIFF_SRC, node.outputs[0], diff_src}});
      return absl::OkStatus();
    }
  }
  // A transposed operand is the stored matrix read with swapped strides.
  const memory::desc& src = mm_src;
  const memory::desc& weights = mm_weights;
  const memory::desc& dst = mm_dst;
  const dnnl::matmul::primitive_desc& pd = mm;
  AddPrimitive(pd, dnnl::matmul(pd),
               {{DNNL_ARG_SRC, a_id, src},
                {DNNL_ARG_WEIGHTS, b_id, weights},
                {DNNL_ARG_DST, node.outputs[0], dst}});
  return absl::OkStatus();
}

// `shape` right-aligned to `rank` with leading 1s (numpy broadcasting).
memory::dims PadDims(const Shape& shape, int rank) {
  memory::dims d(rank, 1);
  for (int i = 0; i < shape.rank(); ++i) d[rank - shape.rank() + i] = shape[i];
  return d;
}

absl::Status Lowering::LowerBinary(const Node& node, dnnl::algorithm alg,
                                   BinaryKind kind) {
  ValueId a = node.inputs[0], b = node.inputs[1];
  const ValueId out = node.outputs[0];
  const TensorType& out_type = type(out);
  const int rank = std::max(1, out_type.shape.rank());
  const memory::dims out_dims = ToDnnlDims(out_type.shape);
  memory::dims ad = PadDims(type(a).shape, rank),
               bd = PadDims(type(b).shape, rank);
  const bool a_full = ad == out_dims, b_full = bd == out_dims;
  const int64_t out_size = out_type.shape.NumElements();
  if (out_type.dtype == DType::kF32 && out_size > 1 &&
      (kind == BinaryKind::kAdd || kind == BinaryKind::kSub ||
       kind == BinaryKind::kMul) &&
      ((a_full && type(b).shape.NumElements() == 1) ||
       (b_full && type(a).shape.NumElements() == 1))) {
    // Tensor and scalar (an L2 penalty's gradient, a loss scale): our
    // vectorized loop beats oneDNN 2.6's generic broadcasting binary here.
    const std::vector<int64_t> flat = {out_size};
    const std::vector<int64_t> as = {a_full ? 1 : 0}, bs = {b_full ? 1 : 0};
    AddLoop([=](const Pointers& ptr) {
      BroadcastBinary(kind, DType::kF32, ptr[a], as, ptr[b], bs, ptr[out],
                      flat);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  // Tiny outputs (a loss's scalar terms) go to our loop below too: a
  // oneDNN primitive's execution costs ~0.3 us, several times their work.
  constexpr int64_t kTinyOutput = 64;
  const DType dtype = out_type.dtype;
  const bool loop_dtype = dtype == DType::kF32 || dtype == DType::kF64 ||
                          dtype == DType::kI32 || dtype == DType::kI64;
  if (HasDnnlType(dtype) && (a_full || b_full) &&
      (out_size > kTinyOutput || !loop_dtype)) {
    // oneDNN broadcasts src1 only; a broadcast src0 swaps, fixing
    // non-commutative ops with a post-op: a - b = -(b - a), a / b = (b / a)^-1.
    dnnl::post_ops post;
    if (!a_full) {
      std::swap(a, b);
      std::swap(ad, bd);
      if (kind == BinaryKind::kSub) {
        post.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, -1.f, 0.f);
      } else if (kind == BinaryKind::kDiv) {
        post.append_eltwise(1.f, dnnl::algorithm::eltwise_pow, 1.f, -1.f);
      }
    }
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src0, PlainDesc(ad, type(a).dtype));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src1, PlainDesc(bd, type(b).dtype));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc dst,
                             PlainDesc(out_dims, out_type.dtype));
    dnnl::primitive_attr attr = Attr();
    attr.set_post_ops(post);
    dnnl::binary::primitive_desc pd(dnnl::binary::desc(alg, src0, src1, dst),
                                    attr, engine());
    AddPrimitive(pd, dnnl::binary(pd),
                 {{DNNL_ARG_SRC_0, a, src0},
                  {DNNL_ARG_SRC_1, b, src1},
                  {DNNL_ARG_DST, out, dst}});
    return absl::OkStatus();
  }
  // Both operands broadcast, a dtype oneDNN lacks or a tiny output: our
  // strided loop.
  if (!loop_dtype) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(dtype), " version"));
  }
  auto strides = [&](const memory::dims& d) {
    std::vector<int64_t> s = RowMajorStrides(d);
    for (int i = 0; i < rank; ++i) {
      if (d[i] == 1) s[i] = 0;
    }
    return s;
  };
  std::vector<int64_t> as = strides(ad), bs = strides(bd);
  std::vector<int64_t> od(out_dims.begin(), out_dims.end());
  AddLoop([=](const Pointers& ptr) {
    BroadcastBinary(kind, dtype, ptr[a], as, ptr[b], bs, ptr[out], od);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerSoftmax(const Node& node, const Attributes& attrs,
                                    bool log) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  SEQUENT_ASSIGN_OR_RETURN(
      int axis, NormalizeAxis(IntAttrOr(attrs, "axis", -1), x.shape.rank()));
  SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(node.inputs[0]));
  AddSoftmax(node.inputs[0], node.outputs[0], desc, axis, log);
  return absl::OkStatus();
}

absl::Status Lowering::LowerReduce(const Node& node, const Attributes& attrs,
                                   dnnl::algorithm alg) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const int rank = x.shape.rank();
  const memory::dims src_dims = ToDnnlDims(x.shape);
  memory::dims dst_dims = src_dims;
  std::vector<int64_t> axes = IntListAttrOr(attrs, "axes", {});
  if (axes.empty()) {
    // No axes: reduce everything.
    for (auto& d : dst_dims) d = 1;
  }
  for (int64_t a : axes) {
    SEQUENT_ASSIGN_OR_RETURN(int axis, NormalizeAxis(a, rank));
    dst_dims[axis] = 1;
  }
  SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(node.inputs[0]));
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, PlainDesc(dst_dims, x.dtype));
  if (src_dims == dst_dims) {
    AddReorder(node.inputs[0], src, node.outputs[0], dst);
    return absl::OkStatus();
  }
  // A sum or mean over leading axes (bias gradients: [N, H, W, C] -> [C])
  // is a column sum, which oneDNN 2.6 runs with its slow reference reduction.
  int prefix = 0;
  while (prefix < rank && dst_dims[prefix] == 1 && src_dims[prefix] != 1)
    ++prefix;
  bool leading = prefix > 0;
  for (int i = prefix; i < rank; ++i) leading &= dst_dims[i] == src_dims[i];
  if (leading && (alg == dnnl::algorithm::reduction_sum ||
                  alg == dnnl::algorithm::reduction_mean)) {
    int64_t rows = 1, c = 1;
    for (int i = 0; i < prefix; ++i) rows *= src_dims[i];
    for (int i = prefix; i < rank; ++i) c *= src_dims[i];
    const double scale =
        alg == dnnl::algorithm::reduction_mean ? 1.0 / rows : 1.0;
    std::byte* scratch = nullptr;
    NewExtra(c * std::max(1, exe_.num_threads) *
                 static_cast<int64_t>(sizeof(double)),
             &scratch);
    const ValueId in = node.inputs[0], out = node.outputs[0];
    const DType dtype = x.dtype;
    AddLoop([=](const Pointers& ptr) {
      ColumnSums(dtype, ptr[in], ptr[out], rows, c, scale,
                 reinterpret_cast<double*>(scratch));
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  dnnl::reduction::primitive_desc pd(
      dnnl::reduction::desc(alg, src, dst, 0.f, 0.f), Attr(), engine());
  AddPrimitive(pd, dnnl::reduction(pd),
               {{DNNL_ARG_SRC, node.inputs[0], src},
                {DNNL_ARG_DST, node.outputs[0], dst}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerTranspose(const Node& node,
                                      const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& out = type(node.outputs[0]);
  const int rank = x.shape.rank();
  std::vector<int64_t> perm = IntListAttrOr(attrs, "perm", {});
  if (perm.empty()) {
    for (int i = rank - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int>(perm.size()) != rank) {
    return Unsupported(node, "got a perm that does not match the input rank");
  }
  const memory::dims in_strides = RowMajorStrides(ToDnnlDims(x.shape));
  const memory::dims out_dims = ToDnnlDims(out.shape);
  memory::dims strides(rank);
  for (int i = 0; i < rank; ++i) strides[i] = in_strides[perm[i]];
  SEQUENT_ASSIGN_OR_RETURN(memory::data_type dt, ToDnnlType(x.dtype));
  const memory::desc src(out_dims, dt, strides);
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(node.outputs[0]));
  AddReorder(node.inputs[0], src, node.outputs[0], dst);
  return absl::OkStatus();
}

absl::Status Lowering::LowerConcat(const Node& node, const Attributes& attrs) {
  const TensorType& out = type(node.outputs[0]);
  SEQUENT_ASSIGN_OR_RETURN(
      int axis, NormalizeAxis(IntAttrOr(attrs, "axis", -1), out.shape.rank()));
  std::vector<memory::desc> srcs;
  std::vector<std::tuple<int, ValueId, memory::desc>> args;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc d, Desc(node.inputs[i]));
    srcs.push_back(d);
    args.push_back(
        {DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), node.inputs[i], d});
  }
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(node.outputs[0]));
  args.push_back({DNNL_ARG_DST, node.outputs[0], dst});
  dnnl::concat::primitive_desc pd(dst, axis, srcs, engine(), Attr());
  AddPrimitive(pd, dnnl::concat(pd), std::move(args));
  return absl::OkStatus();
}

absl::Status Lowering::LowerSlice(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const std::vector<int64_t> begin = IntListAttrOr(attrs, "begin", {});
  if (static_cast<int>(begin.size()) != x.shape.rank()) {
    return Unsupported(node, "got a begin that does not match the input rank");
  }
  if (!HasDnnlType(x.dtype)) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(x.dtype), " version"));
  }
  // The slice is a window of the input: a reorder from its sub-memory
  // descriptor.
  SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(node.inputs[0]));
  SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(node.outputs[0]));
  const memory::dims offsets = x.shape.IsScalar()
                                   ? memory::dims{0}
                                   : memory::dims(begin.begin(), begin.end());
  AddReorder(node.inputs[0], src.submemory_desc(dst.dims(), offsets),
             node.outputs[0], dst);
  return absl::OkStatus();
}

absl::Status Lowering::LowerCast(const Node& node) {
  const ValueId in = node.inputs[0], out = node.outputs[0];
  const DType from = type(in).dtype, to = type(out).dtype;
  // oneDNN's reorder rounds float -> int to nearest; the reference truncates,
  // so only float <-> float conversions go through it.
  if (IsFloating(from) && IsFloating(to) && HasDnnlType(from) &&
      HasDnnlType(to)) {
    SEQUENT_ASSIGN_OR_RETURN(memory::desc src, Desc(in));
    SEQUENT_ASSIGN_OR_RETURN(memory::desc dst, Desc(out));
    AddReorder(in, src, out, dst);
    return absl::OkStatus();
  }
  const int64_t n = type(in).shape.NumElements();
  AddLoop([=](const Pointers& ptr) {
    CastElements(from, ptr[in], to, ptr[out], n);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerDropout(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  if (x.dtype != DType::kF32 && x.dtype != DType::kF64) {
    return Unsupported(node,
                       absl::StrCat("has no ", DTypeName(x.dtype), " version"));
  }
  const double rate = FloatAttrOr(attrs, "rate", 0.5);
  const bool active = BoolAttrOr(attrs, "training", true) && rate > 0.0;
  const uint64_t seed = static_cast<uint64_t>(IntAttrOr(attrs, "seed", 0));
  const ValueId in = node.inputs[0], y = node.outputs[0],
                mask = node.outputs[1];
  const ValueId step = node.inputs.size() > 1 ? node.inputs[1] : kNoValue;
  const DType step_type = step != kNoValue ? type(step).dtype : DType::kI64;
  const int64_t n = x.shape.NumElements();
  const DType dtype = x.dtype;
  AddLoop([=](const Pointers& ptr) {
    uint64_t s = 0;
    if (step != kNoValue) {
      s = step_type == DType::kI64
              ? static_cast<uint64_t>(
                    *reinterpret_cast<const int64_t*>(ptr[step]))
              : static_cast<uint64_t>(static_cast<int64_t>(
                    *reinterpret_cast<const int32_t*>(ptr[step])));
    }
    DropoutForward(dtype, ptr[in], ptr[y], ptr[mask], n, rate, seed, s, active);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// TF/Keras "same" padding for one spatial dimension: the odd pixel goes at the
// end.
std::pair<int64_t, int64_t> SamePadding(int64_t in, int64_t out, int64_t window,
                                        int64_t stride) {
  const int64_t total = std::max<int64_t>((out - 1) * stride + window - in, 0);
  return {total / 2, total - total / 2};
}

absl::Status Lowering::LowerConv2d(const Node& node, const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  const TensorType& k = type(node.inputs[1]);
  const TensorType& y = type(node.outputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const std::vector<int64_t> strides = IntListAttrOr(attrs, "strides", {1, 1});
  const std::vector<int64_t> dil = IntListAttrOr(attrs, "dilations", {1, 1});
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const int64_t kh = k.shape[0], kw = k.shape[1], o = k.shape[3];
  const int64_t oh = y.shape[1], ow = y.shape[2];
  memory::dims pad_l = {0, 0}, pad_r = {0, 0};
  if (same) {
    auto [t, b] = SamePadding(h, oh, (kh - 1) * dil[0] + 1, strides[0]);
    auto [l, r] = SamePadding(w, ow, (kw - 1) * dil[1] + 1, strides[1]);
    pad_l = {t, l};
    pad_r = {b, r};
  } else {
    // Valid convolution may leave input rows unread at the end; oneDNN wants
    // them as (negative) right padding.
    pad_r = {(oh - 1) * strides[0] + (kh - 1) * dil[0] + 1 - h,
             (ow - 1) * strides[1] + (kw - 1) * dil[1] + 1 - w};
  }
  const auto f32 = memory::data_type::f32;
  const bool bf16 = Bf16Gemm(n * oh * ow, kh * kw * c, o);
  const auto in = GemmType(bf16);
  const ValueId x_id = GemmOperand(node.inputs[0], bf16);
  const memory::desc src({n, c, h, w}, in, tag::nhwc);
  // The kernel in the layout the primitive picks (ConvWeights).
  const memory::desc weights({o, c, kh, kw}, in, tag::any);
  const memory::desc dst({n, o, oh, ow}, f32, tag::nhwc);
  // oneDNN counts dilation from 0 (no dilation = 0).
  const memory::dims dnnl_dil = {dil[0] - 1, dil[1] - 1};
  // kConvBiasActivationOp: the bias and the activation in the primitive.
  const bool has_bias = node.inputs.size() > 2;
  const memory::desc bias({o}, f32, tag::a);
  dnnl::primitive_attr attr = Attr();
  if (has_bias) {
    SEQUENT_ASSIGN_OR_RETURN(
        ops::Activation act,
        ops::ParseActivation(StringAttrOr(attrs, "activation", "linear")));
    attr.set_post_ops(ActivationPostOps(act));
  }
  const auto fwd = dnnl::prop_kind::forward_inference;
  const auto direct = dnnl::algorithm::convolution_direct;
  const memory::dims stride = {strides[0], strides[1]};
  dnnl::convolution_forward::primitive_desc pd(
      has_bias
          ? dnnl::convolution_forward::desc(fwd, direct, src, weights, bias,
                                            dst, stride, dnnl_dil, pad_l, pad_r)
          : dnnl::convolution_forward::desc(fwd, direct, src, weights, dst,
                                            stride, dnnl_dil, pad_l, pad_r),
      attr, engine());
  const ValueId k_id =
      ConvWeights(node.inputs[1], memory::desc({o, c, kh, kw}, f32, tag::hwio),
                  pd.weights_desc());
  std::vector<std::tuple<int, ValueId, memory::desc>> args = {
      {DNNL_ARG_SRC, x_id, src},
      {DNNL_ARG_WEIGHTS, k_id, pd.weights_desc()},
      {DNNL_ARG_DST, node.outputs[0], dst}};
  if (has_bias) args.emplace_back(DNNL_ARG_BIAS, node.inputs[2], bias);
  AddPrimitive(pd, dnnl::convolution_forward(pd), args);
  return absl::OkStatus();
}

PoolGeometry PoolGeom(const TensorType& x, const TensorType& y,
                      const Attributes& attrs, bool max) {
  const std::vector<int64_t> size = IntListAttrOr(attrs, "pool_size", {2, 2});
  std::vector<int64_t> strides = IntListAttrOr(attrs, "strides", {});
  if (strides.empty()) strides = size;
  const bool same = StringAttrOr(attrs, "padding", "valid") == "same";
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const int64_t oh = y.shape[1], ow = y.shape[2];
  PoolGeometry g;
  g.pad_l = {0, 0};
  g.pad_r = {0, 0};
  if (same) {
    auto [t, b] = SamePadding(h, oh, size[0], strides[0]);
    auto [l, r] = SamePadding(w, ow, size[1], strides[1]);
    g.pad_l = {t, l};
    g.pad_r = {b, r};
  } else {
    g.pad_r = {(oh - 1) * strides[0] + size[0] - h,
               (ow - 1) * strides[1] + size[1] - w};
  }
  const auto f32 = memory::data_type::f32;
  g.src = memory::desc({n, c, h, w}, f32, tag::nhwc);
  g.dst = memory::desc({n, c, oh, ow}, f32, tag::nhwc);
  g.strides = {strides[0], strides[1]};
  g.kernel = {size[0], size[1]};
  // Padding never counts: max ignores it, and the average divides by the
  // in-bounds count.
  g.alg = max ? dnnl::algorithm::pooling_max
              : dnnl::algorithm::pooling_avg_exclude_padding;
  return g;
}

dnnl::pooling_forward::primitive_desc PoolForwardPd(
    const PoolGeometry& g, bool training, const dnnl::primitive_attr& attr,
    const dnnl::engine& engine) {
  dnnl::pooling_forward::desc d(training ? dnnl::prop_kind::forward_training
                                         : dnnl::prop_kind::forward_inference,
                                g.alg, g.src, g.dst, g.strides, g.kernel,
                                g.pad_l, g.pad_r);
  return dnnl::pooling_forward::primitive_desc(d, attr, engine);
}

absl::Status Lowering::LowerPool2d(const Node& node, const Attributes& attrs,
                                   bool max) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const PoolGeometry g = PoolGeom(x, type(node.outputs[0]), attrs, max);
  // When the graph differentiates this max pooling, the forward keeps the
  // argmax workspace its backward reads (no second pass over x).
  auto ws = max ? pool_workspaces.find(node.outputs[0]) : pool_workspaces.end();
  const bool training = ws != pool_workspaces.end();
  auto pd = PoolForwardPd(g, training, Attr(), engine());
  std::vector<std::tuple<int, ValueId, memory::desc>> args = {
      {DNNL_ARG_SRC, node.inputs[0], g.src},
      {DNNL_ARG_DST, node.outputs[0], g.dst}};
  if (training) {
    ws->second = NewExtra(pd.workspace_desc().get_size());
    args.push_back({DNNL_ARG_WORKSPACE, ws->second, pd.workspace_desc()});
  }
  AddPrimitive(pd, dnnl::pooling_forward(pd), std::move(args));
  return absl::OkStatus();
}

absl::Status Lowering::LowerGlobalAvgPool2d(const Node& node) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const auto f32 = memory::data_type::f32;
  const memory::desc src({n, h, w, c}, f32, tag::abcd);
  const memory::desc dst({n, 1, 1, c}, f32, tag::abcd);
  dnnl::reduction::primitive_desc pd(
      dnnl::reduction::desc(dnnl::algorithm::reduction_mean, src, dst, 0.f,
                            0.f),
      Attr(), engine());
  AddPrimitive(pd, dnnl::reduction(pd),
               {{DNNL_ARG_SRC, node.inputs[0], src},
                {DNNL_ARG_DST, node.outputs[0], dst}});
  return absl::OkStatus();
}

absl::Status Lowering::LowerBatchNorm(const Node& node,
                                      const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const bool training = BoolAttrOr(attrs, "training", false);
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-3);
  const double momentum = FloatAttrOr(attrs, "momentum", 0.99);
  const int64_t c = x.shape[x.shape.rank() - 1];
  const int64_t rows = c == 0 ? 0 : x.shape.NumElements() / c;
  const auto f32 = memory::data_type::f32;
  // Channels last: every other axis is one "batch" axis for oneDNN.
  const memory::desc data({rows, c}, f32, tag::nc);
  const memory::desc stat({c}, f32, tag::a);
  const ValueId gamma = node.inputs[1], beta = node.inputs[2],
                moving_mean = node.inputs[3], moving_var = node.inputs[4];
  const ValueId y = node.outputs[0], new_mean = node.outputs[1],
                new_var = node.outputs[2], saved_mean = node.outputs[3],
                saved_inv_std = node.outputs[4];
  auto flags = dnnl::normalization_flags::use_scale |
               dnnl::normalization_flags::use_shift;
  if (!training) flags = flags | dnnl::normalization_flags::use_global_stats;
  dnnl::batch_normalization_forward::desc d(
      training ? dnnl::prop_kind::forward_training
               : dnnl::prop_kind::forward_inference,
      data, static_cast<float>(epsilon), flags);
  dnnl::batch_normalization_forward::primitive_desc pd(d, Attr(), engine());
  // In training oneDNN writes the batch mean to saved_mean and the batch
  // variance to new_moving_var, which the statistics loop then turns into the
  // moving average.
  AddPrimitive(pd, dnnl::batch_normalization_forward(pd),
               {{DNNL_ARG_SRC, node.inputs[0], data},
                {DNNL_ARG_DST, y, data},
                {DNNL_ARG_SCALE, gamma, stat},
                {DNNL_ARG_SHIFT, beta, stat},
                {DNNL_ARG_MEAN, training ? saved_mean : moving_mean, stat},
                {DNNL_ARG_VARIANCE, training ? new_var : moving_var, stat}});
  AddLoop([=](const Pointers& ptr) {
    auto f = [&](ValueId v) { return reinterpret_cast<float*>(ptr[v]); };
    if (!training)
      std::memcpy(f(saved_mean), f(moving_mean), c * sizeof(float));
    BatchNormStatistics(training, c, epsilon, momentum, f(saved_mean),
                        training ? f(new_var) : f(moving_var), f(moving_mean),
                        f(moving_var), f(new_mean), f(new_var),
                        f(saved_inv_std));
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerLayerNorm(const Node& node,
                                      const Attributes& attrs) {
  const TensorType& x = type(node.inputs[0]);
  SEQUENT_RETURN_IF_ERROR(ExpectF32(node, x));
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-3);
  const int64_t d = x.shape[x.shape.rank() - 1];
  const int64_t rows = d == 0 ? 0 : x.shape.NumElements() / d;
  const auto f32 = memory::data_type::f32;
  const memory::desc data({rows, d}, f32, tag::ab);
  const memory::desc stat({rows}, f32, tag::a);
  const memory::desc param({d}, f32, tag::a);
  dnnl::layer_normalization_forward::desc desc(
      dnnl::prop_kind::forward_training, data, stat,
      static_cast<float>(epsilon),
      dnnl::normalization_flags::use_scale |
          dnnl::normalization_flags::use_shift);
  dnnl::layer_normalization_forward::primitive_desc pd(desc, Attr(), engine());
  const ValueId inv_std = node.outputs[2];
  // The variance lands in saved_inv_std and becomes 1 / sqrt(var + epsilon) in
  // place.
  AddPrimitive(pd, dnnl::layer_normalization_forward(pd),
               {{DNNL_ARG_SRC, node.inputs[0], data},
                {DNNL_ARG_DST, node.outputs[0], data},
                {DNNL_ARG_SCALE, node.inputs[1], param},
                {DNNL_ARG_SHIFT, node.inputs[2], param},
                {DNNL_ARG_MEAN, node.outputs[1], stat},
                {DNNL_ARG_VARIANCE, inv_std, stat}});
  AddLoop([=](const Pointers& ptr) {
    InverseStd(reinterpret_cast<float*>(ptr[inv_std]), rows, epsilon);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerLoss(const Node& node, const Attributes& attrs,
                                 LossKind kind) {
  const TensorType& y_pred = type(node.inputs[1]);
  if (y_pred.dtype != DType::kF32 && y_pred.dtype != DType::kF64) {
    return Unsupported(
        node, absl::StrCat("has no ", DTypeName(y_pred.dtype), " version"));
  }
  const LossOperands o = LossOperandsOf(node, attrs, kind, /*weight_input=*/2);
  const ValueId out = node.outputs[0];
  if (o.SoftmaxOfLogits() && o.t_size == o.batch &&
      HasFusedSoftmaxCrossentropy(o.row_len, o.t_dtype) &&
      (o.w == kNoValue ||
       (o.w_dtype == DType::kF32 && (o.w_size == 1 || o.w_size == o.batch)))) {
    std::byte* residual = nullptr;
    NewExtra(o.p_size * static_cast<int64_t>(sizeof(float)), &residual);
    auto* residual_f32 = reinterpret_cast<float*>(residual);
    softmax_of_logits_.emplace(
        o.p, SoftmaxForGradient{residual_f32, true, o.t, o.w});
    AddLoop([=](const Pointers& ptr) {
      return SoftmaxCrossentropy(reinterpret_cast<const float*>(ptr[o.p]),
                                 o.Labels(ptr), o.Weights(ptr), o.batch,
                                 o.row_len, residual_f32,
                                 reinterpret_cast<float*>(ptr[out]));
    });
    return absl::OkStatus();
  }
  if (o.SoftmaxOfLogits()) {
    // oneDNN's vectorized softmax, then one logarithm per row: the per-row
    // exponentials in double were most of a small model's loss time.
    SEQUENT_ASSIGN_OR_RETURN(memory::desc desc, Desc(o.p));
    std::byte* probs = nullptr;
    const ValueId probs_id = NewExtra(desc.get_size(), &probs);
    if (o.row_len <= 32) {
      // A few classes per row: oneDNN's softmax pays its per-row setup on
      // rows this short (200 rows of 10: 3-4.7 us); the max and the sums in
      // our loops around its vectorized exp take ~1.5 us.
      const int64_t rows = o.batch, cols = o.row_len;
      const ValueId logits = o.p;
      auto* y = reinterpret_cast<float*>(probs);
      AddLoop([=](const Pointers& ptr) {
        SubtractRowMax(reinterpret_cast<const float*>(ptr[logits]), y, rows,
                       cols);
        return absl::OkStatus();
      });
      const memory::desc flat({rows * cols}, memory::data_type::f32, tag::a);
      dnnl::eltwise_forward::primitive_desc exp_pd(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::eltwise_exp, flat, 0.f,
                                      0.f),
          Attr(), engine());
      AddPrimitive(
          exp_pd, dnnl::eltwise_forward(exp_pd),
          {{DNNL_ARG_SRC, probs_id, flat}, {DNNL_ARG_DST, probs_id, flat}});
      AddLoop([=](const Pointers&) {
        NormalizeRows(y, rows, cols);
        return absl::OkStatus();
      });
    } else {
      AddSoftmax(o.p, probs_id, desc, 1, /*log=*/false);
    }
    softmax_of_logits_.emplace(
        o.p, SoftmaxForGradient{reinterpret_cast<const float*>(probs), false});
    AddLoop([=](const Pointers& ptr) {
      return SparseCrossentropyFromProbs(
          o.Labels(ptr), reinterpret_cast<const float*>(probs),
          reinterpret_cast<const float*>(ptr[o.p]), o.Weights(ptr), o.batch,
          o.row_len, o.batch, reinterpret_cast<float*>(ptr[out]));
    });
    return absl::OkStatus();
  }
  AddLoop([=](const Pointers& ptr) {
    return Loss(o.params, o.Labels(ptr), o.Predictions(ptr), o.Weights(ptr),
                o.row_len, o.batch, ptr[out]);
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerMetric(const Node& node, const Attributes& attrs,
                                   MetricKind kind) {
  const TensorType& y_true = type(node.inputs[0]);
  const TensorType& y_pred = type(node.inputs[1]);
  if (y_pred.dtype != DType::kF32 && y_pred.dtype != DType::kF64) {
    return Unsupported(
        node, absl::StrCat("has no ", DTypeName(y_pred.dtype), " version"));
  }
  const int rank = y_pred.shape.rank();
  const int64_t row_len = rank >= 1 ? y_pred.shape[rank - 1] : 1;
  const double threshold = FloatAttrOr(attrs, "threshold", 0.5);
  const ValueId t = node.inputs[0], p = node.inputs[1], out = node.outputs[0];
  const ConstView tv{nullptr, y_true.dtype, y_true.shape.NumElements()};
  const ConstView pv{nullptr, y_pred.dtype, y_pred.shape.NumElements()};
  AddLoop([=](const Pointers& ptr) {
    ConstView a = tv, b = pv;
    a.data = ptr[t];
    b.data = ptr[p];
    Accuracy(kind, a, b, row_len, threshold,
             reinterpret_cast<float*>(ptr[out]));
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::Status Lowering::LowerNode(const Node& node, const Attributes& attrs) {
  using dnnl::algorithm;
  const std::string& op = node.op;
  if (op == "dense") return LowerDense(node, attrs);
  if (op == "matmul") return LowerMatmul(node, attrs);
  if (op == "bias_add") {
    // x [..., C] + bias [C]: a binary add that broadcasts the bias.
    return LowerBinary(node, algorithm::binary_add, BinaryKind::kAdd);
  }
  if (op == "add")
    return LowerBinary(node, algorithm::binary_add, BinaryKind::kAdd);
  if (op == "sub")
    return LowerBinary(node, algorithm::binary_sub, BinaryKind::kSub);
  if (op == "mul")
    return LowerBinary(node, algorithm::binary_mul, BinaryKind::kMul);
  if (op == "div")
    return LowerBinary(node, algorithm::binary_div, BinaryKind::kDiv);
  if (op == "maximum")
    return LowerBinary(node, algorithm::binary_max, BinaryKind::kMax);

  static const auto* const kUnary =
      new absl::flat_hash_map<std::string, EltwiseStep>{
          {"neg", {algorithm::eltwise_linear, -1.f, 0.f}},
          {"exp", {algorithm::eltwise_exp, 0.f, 0.f}},
          {"log", {algorithm::eltwise_log, 0.f, 0.f}},
          {"sqrt", {algorithm::eltwise_sqrt, 0.f, 0.f}},
          {"square", {algorithm::eltwise_square, 0.f, 0.f}},
          {"abs", {algorithm::eltwise_abs, 0.f, 0.f}},
      };
  if (auto it = kUnary->find(op); it != kUnary->end()) {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(node.inputs[0])));
    return AddEltwiseChain(node.inputs[0], node.outputs[0], {it->second});
  }
  if (op == "relu" || op == "leaky_relu" || op == "elu" || op == "selu" ||
      op == "sigmoid" || op == "tanh" || op == "gelu" || op == "swish" ||
      op == "softplus") {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(node.inputs[0])));
    SEQUENT_ASSIGN_OR_RETURN(ops::Activation act, ActivationOf(node, attrs));
    return AddEltwiseChain(node.inputs[0], node.outputs[0], EltwiseChain(act));
  }
  if (op == "softmax") return LowerSoftmax(node, attrs, /*log=*/false);
  if (op == "log_softmax") return LowerSoftmax(node, attrs, /*log=*/true);
  if (op == "reduce_sum")
    return LowerReduce(node, attrs, algorithm::reduction_sum);
  if (op == "reduce_mean")
    return LowerReduce(node, attrs, algorithm::reduction_mean);
  if (op == "reduce_max")
    return LowerReduce(node, attrs, algorithm::reduction_max);
  if (op == "reshape" || op == "flatten") {
    // Row-major data is unchanged by a reshape: the output shares the input's
    // buffer.
    Alias(node.outputs[0], node.inputs[0]);
    return absl::OkStatus();
  }
  if (op == kFromBlockedOp || op == kToBlockedOp) {
    // A blocked variable read row-major, or written back from row-major
    // (weight_layout.h).
    const ValueId in = node.inputs[0], out = node.outputs[0];
    const bool from = op == kFromBlockedOp;
    const CpuVariableStore::Layout* layout = BlockedLayout(from ? in : out);
    if (layout == nullptr) return Unsupported(node, "lost its layout");
    AddReorder(in, from ? layout->blocked : layout->plain, out,
               from ? layout->plain : layout->blocked);
    return absl::OkStatus();
  }
  if (op == "transpose") return LowerTranspose(node, attrs);
  if (op == "concat") return LowerConcat(node, attrs);
  if (op == "cast") return LowerCast(node);
  if (op == "slice") return LowerSlice(node, attrs);
  if (op == "dropout") return LowerDropout(node, attrs);
  if (op == "conv2d" || op == kConvBiasActivationOp)
    return LowerConv2d(node, attrs);
  if (op == "max_pool2d") return LowerPool2d(node, attrs, /*max=*/true);
  if (op == "avg_pool2d") return LowerPool2d(node, attrs, /*max=*/false);
  if (op == "global_avg_pool2d") return LowerGlobalAvgPool2d(node);
  if (op == "batch_norm") return LowerBatchNorm(node, attrs);
  if (op == "layer_norm") return LowerLayerNorm(node, attrs);
  static const auto* const kLosses =
      new absl::flat_hash_map<std::string, LossKind>{
          {"mse", LossKind::kMse},
          {"mae", LossKind::kMae},
          {"huber", LossKind::kHuber},
          {"binary_crossentropy", LossKind::kBinaryCrossentropy},
          {"categorical_crossentropy", LossKind::kCategoricalCrossentropy},
          {"sparse_categorical_crossentropy",
           LossKind::kSparseCategoricalCrossentropy},
      };
  if (auto it = kLosses->find(op); it != kLosses->end()) {
    return LowerLoss(node, attrs, it->second);
  }
  if (op == "sparse_categorical_accuracy") {
    return LowerMetric(node, attrs, MetricKind::kSparseCategoricalAccuracy);
  }
  if (op == "categorical_accuracy") {
    return LowerMetric(node, attrs, MetricKind::kCategoricalAccuracy);
  }
  if (op == "binary_accuracy")
    return LowerMetric(node, attrs, MetricKind::kBinaryAccuracy);
  // The training graph's ops.
  if (op == "activation_grad")
    return LowerActivationGrad(node, attrs, /*from_output=*/true);
  if (op == "activation_input_grad")
    return LowerActivationGrad(node, attrs, /*from_output=*/false);
  if (op == "activation_bias_grad") return LowerActivationBiasGrad(node, attrs);
  if (op == "softmax_grad") return LowerSoftmaxGrad(node, attrs, false);
  if (op == "log_softmax_grad") return LowerSoftmaxGrad(node, attrs, true);
  if (op == "broadcast_to") return LowerBroadcastTo(node);
  if (op == "reduce_to_shape") return LowerReduceToShape(node);
  if (op == "reduce_max_grad") return LowerReduceMaxGrad(node, attrs);
  if (op == "slice_grad") return LowerSliceGrad(node, attrs);
  if (op == "maximum_grad") return LowerMaximumGrad(node);
  if (op == "sign") return LowerSign(node);
  if (op == "conv2d_backprop_input")
    return LowerConv2dBackprop(node, attrs, /*filter=*/false);
  if (op == "conv2d_backprop_filter")
    return LowerConv2dBackprop(node, attrs, /*filter=*/true);
  if (op == "max_pool2d_grad") return LowerMaxPool2dGrad(node, attrs);
  if (op == "avg_pool2d_grad") return LowerAvgPool2dGrad(node, attrs);
  if (op == "global_avg_pool2d_grad") return LowerGlobalAvgPool2dGrad(node);
  if (op == "batch_norm_grad") return LowerNormGrad(node, attrs, true);
  if (op == "layer_norm_grad") return LowerNormGrad(node, attrs, false);
  if (absl::EndsWith(op, "_grad")) {
    const std::string loss = op.substr(0, op.size() - 5);
    if (auto it = kLosses->find(loss); it != kLosses->end())
      return LowerLossGrad(node, attrs, it->second);
  }
  static const auto* const kUpdates =
      new absl::flat_hash_map<std::string, UpdateKind>{
          {"sgd_update", UpdateKind::kSgd},
          {"momentum_update", UpdateKind::kMomentum},
          {"adam_update", UpdateKind::kAdam},
          {"adamw_update", UpdateKind::kAdamW},
          {"rmsprop_update", UpdateKind::kRmsprop},
          {"adagrad_update", UpdateKind::kAdagrad},
      };
  if (auto it = kUpdates->find(op); it != kUpdates->end())
    return LowerUpdate(node, attrs, it->second);
  if (op == "clip_by_value") return LowerClip(node, attrs, /*norm=*/false);
  if (op == "clip_by_norm") return LowerClip(node, attrs, /*norm=*/true);
  if (op == kDenseBackwardWeightsOp) return LowerDenseBackwardWeights(node);
  if (op == kSumOfSquaresOp) {
    SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(node.inputs[0])));
    const ValueId w = node.inputs[0], out = node.outputs[0];
    const int64_t n = type(w).shape.NumElements();
    AddLoop([=](const Pointers& ptr) {
      *reinterpret_cast<float*>(ptr[out]) =
          SumOfSquares(reinterpret_cast<const float*>(ptr[w]), n);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  if (op == kAddScaledOp) {
    for (ValueId v : node.inputs)
      SEQUENT_RETURN_IF_ERROR(ExpectF32(node, type(v)));
    const ValueId g = node.inputs[0], w = node.inputs[1], out = node.outputs[0];
    const std::vector<ValueId> scalars(node.inputs.begin() + 2,
                                       node.inputs.end());
    if (penalties_in_updates.contains(out)) {
      penalty_terms_[out] = {g, scalars};
      return absl::OkStatus();
    }
    const int64_t n = type(out).shape.NumElements();
    AddLoop([=](const Pointers& ptr) {
      AddScaled(reinterpret_cast<const float*>(ptr[g]),
                reinterpret_cast<const float*>(ptr[w]), ScaleOf(ptr, scalars),
                reinterpret_cast<float*>(ptr[out]), n);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }
  if (op == kConvBackwardWeightsOp)
    return LowerConv2dBackprop(node, attrs, /*filter=*/true);
  return absl::UnimplementedError(
      absl::StrCat("[", op, "] the cpu backend does not lower ", op, " yet"));
}

ValueId Lowering::ArenaScratch(int step, int64_t bytes) {
  const MemoryPlan& plan = exe_.plan;
  std::vector<std::pair<int64_t, int64_t>> held;  // [begin, end) at `step`.
  for (ValueId v = 0; v < static_cast<ValueId>(plan.buffers.size()); ++v) {
    const BufferAssignment& b = plan.buffers[v];
    int first = b.first_step;
    if (auto it = early_writes_.find(v); it != early_writes_.end())
      first = std::min(first, it->second);
    if (b.kind == BufferAssignment::Kind::kVariable || b.offset < 0 ||
        first > step || b.last_step < step) {
      continue;
    }
    held.push_back({b.offset, b.offset + b.bytes});
  }
  for (const auto& [at, range] : arena_scratch_)
    if (at == step) held.push_back(range);
  std::sort(held.begin(), held.end());
  const int64_t align = plan.alignment;
  int64_t begin = 0;
  for (const auto& [b, e] : held) {
    if (b - begin >= bytes) break;
    begin = std::max(begin, (e + align - 1) / align * align);
  }
  if (begin + bytes > plan.arena_bytes) return NewExtra(bytes);
  arena_scratch_.push_back({step, {begin, begin + bytes}});
  return NewExternal(exe_.arena.get() + begin);
}

}  // namespace sequent::cpu
