// Owned layers (owned_team.h): the dense forward, input gradient, weight
// gradient and activation gradient of a layer whose kernel is blocked, each
// as one step in which chunk t of T computes output columns [t OC/T, (t+1)
// OC/T) with a one-thread oneDNN primitive; and a plain head's input and
// weight gradients split by its kernel's rows, the columns its input's owners
// hold. Adam's update needs nothing of its own: its ThreadChunk halves are
// already the owned rows.

#include <omp.h>

#include <atomic>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/lowering.h"
#include "backends/cpu/onednn_util.h"
#include "backends/cpu/owned_team.h"
#include "backends/cpu/weight_layout.h"
#include "ops/backward_activation.h"

namespace sequent::cpu {
namespace {

// oneDNN sizes a primitive's work for the threads OpenMP allows when it is
// created: owned primitives are created for one.
class ScopedOneThread {
 public:
  ScopedOneThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~ScopedOneThread() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

using Args = std::vector<std::pair<int, memory::desc>>;

// Runs body(t) for every chunk t in one OpenMP region; the first oneDNN
// failure is returned.
template <typename Body>
dnnl_status_t RunChunks(int chunks, const Body& body) {
  std::atomic<int> failed{dnnl_success};
#pragma omp parallel num_threads(chunks)
  ForEachChunk(omp_get_thread_num(), omp_get_num_threads(), chunks, [&](int t) {
    const dnnl_status_t s = body(t);
    if (s != dnnl_success) failed = s;
  });
  return static_cast<dnnl_status_t>(failed.load());
}

absl::Status OwnedStatus(dnnl_status_t s, const std::string& label) {
  if (s == dnnl_success) return absl::OkStatus();
  return DnnlError(dnnl::error(s, "could not execute a primitive"),
                   absl::StrCat(label, ", an owned step"));
}

bool IsReference(const char* impl) {
  return impl == nullptr || std::string(impl).rfind("ref", 0) == 0;
}

// The owned call of the primitive descriptor `make_pd()` returns, both made
// while OpenMP allows one thread; null when oneDNN offers only its reference
// kernel. Sets *impl to the implementation's name.
template <typename Primitive, typename MakePd>
std::shared_ptr<OwnedCall> OneThreadCall(const MakePd& make_pd,
                                         const Args& args,
                                         const dnnl::engine& engine, int chunks,
                                         std::string* impl) {
  ScopedOneThread one;
  const auto pd = make_pd();
  if (IsReference(pd.impl_info_str())) return nullptr;
  *impl = PrimitiveKindName(pd);
  return std::make_shared<OwnedCall>(Primitive(pd), args, pd.scratchpad_desc(),
                                     engine, chunks);
}

template <typename T>
T* At(std::byte* base, int64_t bytes) {
  return reinterpret_cast<T*>(base + bytes);
}

// Chunk t's columns [t * chunk, (t + 1) * chunk) of dz [m, oc], row-major:
// its chunk in resident memory as it is when dz is stored chunked (`home`),
// else copied out of dz into chunk t's memory at `copy`.
const float* OwnColumns(const OwnedTeam& team, int t,
                        const std::optional<int64_t>& home, const float* dz,
                        int64_t m, int64_t oc, int64_t chunk, int64_t copy) {
  if (home.has_value()) return At<float>(team.resident(t), *home);
  float* own = At<float>(team.memory(t), copy);
  CopyFromColumns(dz, oc, t * chunk, m, chunk, own);
  return own;
}

// OneThreadCall of the matmul src x weights -> dst.
std::shared_ptr<OwnedCall> OneThreadMatmul(const memory::desc& src,
                                           const memory::desc& weights,
                                           const memory::desc& dst,
                                           const dnnl::primitive_attr& attr,
                                           const dnnl::engine& engine,
                                           int chunks, std::string* impl) {
  return OneThreadCall<dnnl::matmul>(
      [&] {
        return dnnl::matmul::primitive_desc({src, weights, dst}, attr, engine);
      },
      {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}},
      engine, chunks, impl);
}

}  // namespace

std::optional<Lowering::OwnedSplit> Lowering::OwnedSplitOf(
    ValueId blocked) const {
  if (!owned_layers) return std::nullopt;
  const CpuVariableStore::Layout* layout = BlockedLayout(blocked);
  if (layout == nullptr || layout->blocked.dims().size() != 2)
    return std::nullopt;
  const int64_t oc = layout->blocked.dims()[0], ic = layout->blocked.dims()[1];
  const int chunks = exe_.num_threads;
  // Whole 64-output blocks per chunk, so that a chunk is contiguous in every
  // layout below and Adam's ThreadChunk split falls on its edges.
  if (oc % (64 * chunks) != 0) return std::nullopt;
  for (tag t : {tag::AB16b64a, tag::AB16b32a, tag::AB16b16a}) {
    if (layout->blocked != memory::desc({oc, ic}, memory::data_type::f32, t))
      continue;
    OwnedSplit split;
    split.oc = oc;
    split.ic = ic;
    split.chunk = oc / chunks;
    split.chunk_weights =
        memory::desc({split.chunk, ic}, memory::data_type::f32, t);
    split.chunk_weight_bytes =
        static_cast<int64_t>(split.chunk_weights.get_size());
    if (split.chunk_weight_bytes * chunks !=
        static_cast<int64_t>(layout->blocked.get_size())) {
      return std::nullopt;
    }
    return split;
  }
  return std::nullopt;
}

std::optional<int64_t> Lowering::ChunkedGradient(ValueId dz, int64_t width) {
  // Stored as chunks in the team's resident memory when only owned steps read
  // it: they read their chunk as it is, with no copy out of its columns.
  if (width % (64 * exe_.num_threads) != 0 || !ReadersAreOwned(dz, width))
    return std::nullopt;
  const int64_t rows = type(dz).shape[0];
  const int64_t offset =
      Team()->AddResident(rows * (width / exe_.num_threads) * 4);
  chunked_values_[dz] = offset;
  return offset;
}

std::optional<int64_t> Lowering::ChunkedHome(ValueId v) const {
  auto it = chunked_values_.find(v);
  if (it == chunked_values_.end()) return std::nullopt;
  return it->second;
}

const Node* Lowering::OwnedActivationGradOf(ValueId dx) const {
  if (graph == nullptr || type(dx).dtype != DType::kF32 ||
      type(dx).shape.rank() != 2) {
    return nullptr;
  }
  if (LeavesTheStep(dx)) return nullptr;
  const auto users = graph->Users(dx);
  if (users.size() != 1 || users[0].second != 0) return nullptr;
  const Node& user = graph->node(users[0].first);
  if (user.op != "activation_grad" || user.inputs.size() != 2 ||
      !owned_outputs_.contains(user.inputs[1]) ||
      !ops::BackwardActivation(user.attrs, /*from_output=*/true).ok()) {
    return nullptr;
  }
  return &user;
}

bool Lowering::WritableFrom(ValueId v, int step) const {
  const BufferAssignment& b = exe_.plan.buffers[v];
  if (b.kind != BufferAssignment::Kind::kArena) return false;
  for (ValueId u = 0; u < static_cast<ValueId>(exe_.plan.buffers.size()); ++u) {
    const BufferAssignment& o = exe_.plan.buffers[u];
    if (u == v || o.kind == BufferAssignment::Kind::kVariable || o.offset < 0 ||
        o.offset >= b.offset + b.bytes || b.offset >= o.offset + o.bytes) {
      continue;
    }
    // Another value in the same bytes, live at some step in [step, the
    // step that was to write v).
    if (o.last_step >= step && o.first_step < b.first_step) return false;
  }
  // Or bytes ArenaScratch lent a step in that range.
  for (const auto& [at, range] : arena_scratch_) {
    if (at >= step && at < b.first_step && range.first < b.offset + b.bytes &&
        b.offset < range.second) {
      return false;
    }
  }
  return true;
}

bool Lowering::LeavesTheStep(ValueId v) const {
  for (const GraphOutput& out : graph->outputs())
    if (out.value == v) return true;
  for (const VariableUpdate& u : graph->updates())
    if (u.value == v) return true;
  return false;
}

std::optional<Lowering::FusedActivationGrad> Lowering::FuseActivationGrad(
    ValueId dx) {
  const Node* node = OwnedActivationGradOf(dx);
  if (node == nullptr) return std::nullopt;
  FusedActivationGrad f;
  f.act = *ops::BackwardActivation(node->attrs, /*from_output=*/false);
  f.y = node->inputs[1];
  f.out = node->outputs[0];
  f.width = type(dx).shape[1];
  // Its result goes to chunks in resident memory, or when other steps read
  // it, to its own buffer, which must then be free from this step on.
  f.home = ChunkedGradient(f.out, f.width);
  if (!f.home.has_value() &&
      !WritableFrom(f.out, exe_.plan.buffers[dx].first_step)) {
    return std::nullopt;
  }
  fused_activation_grads_.insert(f.out);
  if (!f.home.has_value())
    early_writes_[f.out] = exe_.plan.buffers[dx].first_step;
  return f;
}

void Lowering::MaterializeChunked(ValueId v) {
  const std::optional<int64_t> home = ChunkedHome(v);
  if (!home.has_value() || !materialized_.insert(v).second) return;
  const int64_t m = type(v).shape[0], c = type(v).shape[1];
  const int chunks = exe_.num_threads;
  const int64_t chunk = c / chunks;
  std::shared_ptr<OwnedTeam> team = Team();
  AddOwnedLoop("loop", [=](const Pointers& ptr) {
    float* out = At<float>(ptr[v], 0);
    RunChunks(chunks, [&](int t) {
      CopyToColumns(At<float>(team->resident(t), *home), m, chunk, out, c,
                    t * chunk);
      return dnnl_success;
    });
    return absl::OkStatus();
  });
}

std::shared_ptr<OwnedTeam> Lowering::Team() {
  if (owned_team_ == nullptr)
    owned_team_ = std::make_shared<OwnedTeam>(engine(), exe_.num_threads);
  return owned_team_;
}

void Lowering::Finish() {
  if (owned_team_ != nullptr) owned_team_->Allocate();
}

void Lowering::AddOwnedLoop(const std::string& impl,
                            std::function<absl::Status(const Pointers&)> loop) {
  AddLoop(std::move(loop));
  exe_.steps.back().kind =
      absl::StrCat("owned x", exe_.num_threads, ": ", impl);
}

bool Lowering::ReadersAreOwned(ValueId dz, int64_t width) const {
  if (graph == nullptr) return false;
  if (LeavesTheStep(dz)) return false;
  const auto users = graph->Users(dz);
  if (users.empty()) return false;
  for (const auto& [user, index] : users) {
    const Node& u = graph->node(user);
    std::optional<OwnedSplit> split;
    if (u.op == "matmul" && index == 0 &&
        !BoolAttrOr(u.attrs, "transpose_a", false) &&
        BoolAttrOr(u.attrs, "transpose_b", false)) {
      split = OwnedSplitOf(u.inputs[1]);
    } else if (u.op == kDenseBackwardWeightsOp && index == 1) {
      split = OwnedSplitOf(u.outputs[0]);
    }
    if (!split.has_value() || split->oc != width) return false;
  }
  return true;
}

absl::StatusOr<bool> Lowering::LowerOwnedDense(const Node& node,
                                               const dnnl::primitive_attr& attr,
                                               ValueId x_id, ValueId w_id,
                                               ValueId bias_id) {
  const std::optional<OwnedSplit> split = OwnedSplitOf(w_id);
  if (!split.has_value()) return false;
  const int64_t m = type(x_id).shape[0], k = split->ic, chunk = split->chunk,
                p = split->oc;
  const auto f32 = memory::data_type::f32;
  const memory::desc src({m, k}, f32, tag::ab), dst({m, chunk}, f32, tag::ab),
      bias({chunk}, f32, tag::a);
  const bool has_bias = bias_id != kNoValue;
  Args args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, split->chunk_weights}};
  if (has_bias) args.push_back({DNNL_ARG_BIAS, bias});
  args.push_back({DNNL_ARG_DST, dst});
  std::string impl;
  const std::shared_ptr<OwnedCall> call =
      OneThreadCall<dnnl::inner_product_forward>(
          [&] {
            using Pd = dnnl::inner_product_forward::primitive_desc;
            const auto prop = dnnl::prop_kind::forward_inference;
            return has_bias ? Pd({prop, src, split->chunk_weights, bias, dst},
                                 attr, engine())
                            : Pd({prop, src, split->chunk_weights, dst}, attr,
                                 engine());
          },
          args, engine(), exe_.num_threads, &impl);
  if (call == nullptr) return false;
  std::shared_ptr<OwnedTeam> team = Team();
  const int64_t workspace =
      OwnedTeam::WorkspaceOffset(call->scratchpad_bytes());
  team->Reserve(workspace + m * chunk * 4);
  const int64_t w_bytes = split->chunk_weight_bytes;
  const ValueId z_id = node.outputs[0];
  const std::string label = label_;
  AddOwnedLoop(impl, [=](const Pointers& ptr) {
    const std::byte* x = ptr[x_id];
    std::byte* w = ptr[w_id];
    const float* b = has_bias ? At<float>(ptr[bias_id], 0) : nullptr;
    float* z = At<float>(ptr[z_id], 0);
    const dnnl_status_t s = RunChunks(team->chunks(), [&](int t) {
      float* out = At<float>(team->memory(t), workspace);
      const dnnl_status_t e =
          has_bias ? call->Execute(*team, t,
                                   {x, w + t * w_bytes, b + t * chunk, out})
                   : call->Execute(*team, t, {x, w + t * w_bytes, out});
      if (e == dnnl_success) CopyToColumns(out, m, chunk, z, p, t * chunk);
      return e;
    });
    return OwnedStatus(s, label);
  });
  owned_outputs_.insert(z_id);
  return true;
}

absl::StatusOr<bool> Lowering::LowerOwnedInputGradient(const Node& node) {
  const ValueId dz_id = node.inputs[0], w_id = node.inputs[1],
                dx_id = node.outputs[0];
  const std::optional<OwnedSplit> split = OwnedSplitOf(w_id);
  if (!split.has_value()) return false;
  const int64_t m = type(dz_id).shape[0], ic = split->ic, oc = split->oc,
                chunk = split->chunk;
  const auto f32 = memory::data_type::f32;
  const memory::desc diff_dst({m, chunk}, f32, tag::ab),
      diff_src({m, ic}, f32, tag::ab);
  std::string impl;
  const std::shared_ptr<OwnedCall> call =
      OneThreadCall<dnnl::inner_product_backward_data>(
          [&] {
            dnnl::inner_product_forward::primitive_desc hint(
                {dnnl::prop_kind::forward_training, diff_src,
                 split->chunk_weights, diff_dst},
                engine());
            return dnnl::inner_product_backward_data::primitive_desc(
                {diff_src, split->chunk_weights, diff_dst}, Attr(), engine(),
                hint);
          },
          {{DNNL_ARG_DIFF_DST, diff_dst},
           {DNNL_ARG_WEIGHTS, split->chunk_weights},
           {DNNL_ARG_DIFF_SRC, diff_src}},
          engine(), exe_.num_threads, &impl);
  if (call == nullptr) return false;
  const std::optional<FusedActivationGrad> fused = FuseActivationGrad(dx_id);
  // Chunk t's partial dx (its outputs' share of every input's gradient),
  // which the other chunks read, lives in resident memory: bytes no other
  // step writes, so no scratchpad later has to take lines back from the
  // cores that read it. Its memory: scratchpad, its columns of dz unless dz
  // is chunked, and a row of sums for the activation gradient.
  std::shared_ptr<OwnedTeam> team = Team();
  const int64_t partial = team->AddResident(m * ic * 4);
  const int64_t dz_copy = OwnedTeam::WorkspaceOffset(call->scratchpad_bytes());
  const std::optional<int64_t> dz_home = ChunkedHome(dz_id);
  const int64_t row_sums =
      dz_copy + AlignUp(dz_home.has_value() ? 0 : m * chunk * 4);
  team->Reserve(row_sums + ic * 4);
  const int64_t w_bytes = split->chunk_weight_bytes;
  const std::string label = label_;
  AddOwnedLoop(impl, [=](const Pointers& ptr) {
    std::byte* w = ptr[w_id];
    float* dx = At<float>(ptr[dx_id], 0);
    const int chunks = team->chunks();
    std::atomic<int> failed{dnnl_success};
#pragma omp parallel num_threads(chunks)
    {
      const int t0 = omp_get_thread_num(), threads = omp_get_num_threads();
      ForEachChunk(t0, threads, chunks, [&](int t) {
        const float* own_dz = OwnColumns(
            *team, t, dz_home, At<float>(ptr[dz_id], 0), m, oc, chunk, dz_copy);
        const dnnl_status_t s = call->Execute(
            *team, t,
            {own_dz, w + t * w_bytes, At<float>(team->resident(t), partial)});
        if (s != dnnl_success) failed = s;
      });
#pragma omp barrier
      ForEachChunk(t0, threads, chunks, [&](int t) {
        const auto [lo, hi] = ColumnChunk(ic, t, chunks);
        if (!fused.has_value()) {
          SumPartialColumns(*team, partial, m, ic, lo, hi, dx + lo, ic);
          return;
        }
        float* sums = At<float>(team->memory(t), row_sums);
        for (int64_t r = 0; r < m; ++r) {
          SumPartialColumns(*team, partial + r * ic * 4, 1, ic, lo, hi, sums,
                            0);
          fused->Compute(*team, ptr, t, r, lo, hi, sums);
        }
      });
    }
    return OwnedStatus(static_cast<dnnl_status_t>(failed.load()), label);
  });
  return true;
}

absl::StatusOr<bool> Lowering::LowerOwnedWeightGradient(const Node& node) {
  const ValueId x_id = node.inputs[0], dz_id = node.inputs[1],
                dw_id = node.outputs[0], db_id = node.outputs[1];
  const std::optional<OwnedSplit> split = OwnedSplitOf(dw_id);
  if (!split.has_value()) return false;
  const int64_t m = type(x_id).shape[0], ic = split->ic, oc = split->oc,
                chunk = split->chunk;
  const auto f32 = memory::data_type::f32;
  const memory::desc src({m, ic}, f32, tag::ab),
      diff_dst({m, chunk}, f32, tag::ab), bias({chunk}, f32, tag::a);
  std::string impl;
  const std::shared_ptr<OwnedCall> call =
      OneThreadCall<dnnl::inner_product_backward_weights>(
          [&] {
            dnnl::inner_product_forward::primitive_desc hint(
                {dnnl::prop_kind::forward_training, src, split->chunk_weights,
                 bias, diff_dst},
                engine());
            return dnnl::inner_product_backward_weights::primitive_desc(
                {src, split->chunk_weights, bias, diff_dst}, Attr(), engine(),
                hint);
          },
          {{DNNL_ARG_SRC, src},
           {DNNL_ARG_DIFF_DST, diff_dst},
           {DNNL_ARG_DIFF_WEIGHTS, split->chunk_weights},
           {DNNL_ARG_DIFF_BIAS, bias}},
          engine(), exe_.num_threads, &impl);
  if (call == nullptr) return false;
  std::shared_ptr<OwnedTeam> team = Team();
  const int64_t dz_copy = OwnedTeam::WorkspaceOffset(call->scratchpad_bytes());
  const std::optional<int64_t> dz_home = ChunkedHome(dz_id);
  team->Reserve(dz_copy + (dz_home.has_value() ? 0 : m * chunk * 4));
  const int64_t w_bytes = split->chunk_weight_bytes;
  const std::string label = label_;
  AddOwnedLoop(impl, [=](const Pointers& ptr) {
    const std::byte* x = ptr[x_id];
    std::byte* dw = ptr[dw_id];
    float* db = At<float>(ptr[db_id], 0);
    const dnnl_status_t s = RunChunks(team->chunks(), [&](int t) {
      const float* own_dz = OwnColumns(
          *team, t, dz_home, At<float>(ptr[dz_id], 0), m, oc, chunk, dz_copy);
      return call->Execute(*team, t,
                           {x, own_dz, dw + t * w_bytes, db + t * chunk});
    });
    return OwnedStatus(s, label);
  });
  return true;
}

absl::StatusOr<bool> Lowering::LowerOwnedActivationGrad(
    const Node& node, const ops::Activation& act) {
  const ValueId d_id = node.inputs[0], y_id = node.inputs[1],
                dz_id = node.outputs[0];
  // Computed by the owned input gradient that produced its input.
  if (fused_activation_grads_.contains(dz_id)) return true;
  const TensorType& dy = type(d_id);
  if (!owned_outputs_.contains(y_id) || dy.dtype != DType::kF32 ||
      dy.shape.rank() != 2) {
    return false;
  }
  const int64_t m = dy.shape[0], c = dy.shape[1];
  const int chunks = exe_.num_threads;
  const std::optional<int64_t> home = ChunkedGradient(dz_id, c);
  std::shared_ptr<OwnedTeam> team = Team();
  AddOwnedLoop("loop", [=](const Pointers& ptr) {
    const float* d = At<float>(ptr[d_id], 0);
    const float* y = At<float>(ptr[y_id], 0);
    float* dz = At<float>(ptr[dz_id], 0);
    RunChunks(chunks, [&](int t) {
      const auto [lo, hi] = ColumnChunk(c, t, chunks);
      for (int64_t r = 0; r < m; ++r) {
        float* row = home.has_value()
                         ? At<float>(team->resident(t), *home) + r * (hi - lo)
                         : dz + r * c + lo;
        ActivationGrad(act, /*from_output=*/true, DType::kF32, d + r * c + lo,
                       y + r * c + lo, row, hi - lo);
      }
      return dnnl_success;
    });
    return absl::OkStatus();
  });
  return true;
}

absl::StatusOr<bool> Lowering::LowerOwnedRowSplitInputGradient(
    const Node& node) {
  const ValueId dz_id = node.inputs[0], w_id = node.inputs[1],
                dx_id = node.outputs[0];
  const int chunks = exe_.num_threads;
  if (!owned_layers || OwnedActivationGradOf(dx_id) == nullptr ||
      type(dz_id).dtype != DType::kF32 || type(w_id).dtype != DType::kF32) {
    return false;
  }
  const int64_t m = type(dz_id).shape[0], oc = type(dz_id).shape[1],
                ic = type(dx_id).shape[1];
  if (ic % (16 * chunks) != 0 || type(w_id).shape[0] != ic) return false;
  const int64_t chunk = ic / chunks;
  const auto f32 = memory::data_type::f32;
  // dx[:, lo:hi] = dz W[lo:hi, :]^T: the rows of W read transposed.
  const memory::desc src({m, oc}, f32, tag::ab),
      weights({oc, chunk}, f32, Dims({1, oc})), dst({m, chunk}, f32, tag::ab);
  std::string impl;
  const std::shared_ptr<OwnedCall> call =
      OneThreadMatmul(src, weights, dst, Attr(), engine(), chunks, &impl);
  if (call == nullptr) return false;
  const std::optional<FusedActivationGrad> fused = FuseActivationGrad(dx_id);
  if (!fused.has_value()) return false;
  std::shared_ptr<OwnedTeam> team = Team();
  const int64_t columns = OwnedTeam::WorkspaceOffset(call->scratchpad_bytes());
  team->Reserve(columns + m * chunk * 4);
  const std::string label = label_;
  AddOwnedLoop(impl, [=](const Pointers& ptr) {
    const float* dz = At<float>(ptr[dz_id], 0);
    const float* w = At<float>(ptr[w_id], 0);
    const dnnl_status_t s = RunChunks(chunks, [&](int t) {
      float* own = At<float>(team->memory(t), columns);
      const dnnl_status_t e =
          call->Execute(*team, t, {dz, w + t * chunk * oc, own});
      if (e != dnnl_success) return e;
      for (int64_t r = 0; r < m; ++r) {
        fused->Compute(*team, ptr, t, r, t * chunk, (t + 1) * chunk,
                       own + r * chunk);
      }
      return dnnl_success;
    });
    return OwnedStatus(s, label);
  });
  return true;
}

absl::StatusOr<bool> Lowering::LowerOwnedRowSplitWeightGradient(
    const Node& node) {
  const ValueId x_id = node.inputs[0], dz_id = node.inputs[1],
                dw_id = node.outputs[0], db_id = node.outputs[1];
  const int chunks = exe_.num_threads;
  if (!owned_layers || !owned_outputs_.contains(x_id) ||
      type(x_id).dtype != DType::kF32 || type(dz_id).dtype != DType::kF32 ||
      ChunkedHome(dz_id).has_value()) {
    return false;
  }
  const int64_t m = type(x_id).shape[0], ic = type(x_id).shape[1],
                oc = type(dz_id).shape[1];
  if (ic % (16 * chunks) != 0) return false;
  const int64_t chunk = ic / chunks;
  const auto f32 = memory::data_type::f32;
  // dW[lo:hi, :] = x[:, lo:hi]^T dz, straight into W's rows.
  const memory::desc src({chunk, m}, f32, Dims({1, ic})),
      weights({m, oc}, f32, tag::ab), dst({chunk, oc}, f32, tag::ab);
  std::string impl;
  const std::shared_ptr<OwnedCall> call =
      OneThreadMatmul(src, weights, dst, Attr(), engine(), chunks, &impl);
  if (call == nullptr) return false;
  std::shared_ptr<OwnedTeam> team = Team();
  team->Reserve(call->scratchpad_bytes());
  const std::string label = label_;
  AddOwnedLoop(impl, [=](const Pointers& ptr) {
    const float* x = At<float>(ptr[x_id], 0);
    const float* dz = At<float>(ptr[dz_id], 0);
    float* dw = At<float>(ptr[dw_id], 0);
    const dnnl_status_t s = RunChunks(chunks, [&](int t) {
      // The bias gradient is small ([OC]): the last chunk sums it.
      if (t == chunks - 1) {
        ColumnSums(DType::kF32, dz, ptr[db_id], m, oc, 1.0,
                   /*scratch=*/nullptr);
      }
      return call->Execute(*team, t, {x + t * chunk, dz, dw + t * chunk * oc});
    });
    return OwnedStatus(s, label);
  });
  return true;
}

}  // namespace sequent::cpu
