// The floor: only the GEMMs (and convolutions) of each benchmarked step, as
// plain oneDNN primitives created once, on buffers allocated once. No
// activations, losses, optimizer updates, bias adds or reorders: whatever a
// framework does beyond these primitives is overhead above this time.
//
// Every benchmark is named like its counterpart in sequent_bench.cc so that
// bench/report.py can pair them; `samples_per_s` is the counter it reads.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "benchmark/benchmark.h"
#include "dnnl.hpp"

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DT = memory::data_type;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A primitive with its arguments bound, ready to execute.
struct Call {
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
  std::string label;  // For SEQUENT_FLOOR_PROFILE.
};

// Owns every memory of one step and the calls over them.
class Step {
 public:
  // A buffer of `desc`, filled with small random numbers so that no denormal
  // or zero fast path distorts the timing.
  memory Buffer(const memory::desc& desc) {
    memory m(desc, Engine());
    float* p = static_cast<float*>(m.get_data_handle());
    const size_t n = desc.get_size() / sizeof(float);
    std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
    for (size_t i = 0; i < n; ++i) p[i] = dist(rng_);
    return m;
  }

  // dst[m,n] = a[m,k] x b[k,n], where a may be read transposed in place (xᵀ:
  // a strided view of a row-major activation). The floor is the fastest of the
  // formulations a backend could choose: a matmul with b in either layout (a
  // backend may store or pass Wᵀ as it likes), when a is transposed the
  // transposed product, and when a is plain an inner product (oneDNN's
  // GEMV-friendly path at small batch).
  void MatMul(int64_t m, int64_t k, int64_t n, bool transpose_a) {
    const memory::desc a({m, k}, DT::f32, transpose_a ? Tag::ba : Tag::ab);
    const memory::desc c({m, n}, DT::f32, Tag::ab);
    std::vector<Call> candidates;
    for (Tag b_tag : {Tag::ab, Tag::ba}) {
      const memory::desc b({k, n}, DT::f32, b_tag);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c),
                                            Engine());
      candidates.push_back({dnnl::matmul(pd),
                            {{DNNL_ARG_SRC, Buffer(a)},
                             {DNNL_ARG_WEIGHTS, Buffer(b)},
                             {DNNL_ARG_DST, Buffer(c)}}});
    }
    if (transpose_a) {
      // A weight gradient computed transposed, c^T = b^T a^T, with b^T read
      // through swapped strides: the CPU backend picks it for thin layers
      // (its transposing reorder of c is left out: GEMMs only).
      const memory::desc bt({n, k}, DT::f32, Tag::ba);
      const memory::desc at({k, m}, DT::f32, Tag::ab);
      const memory::desc ct({n, m}, DT::f32, Tag::ab);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(bt, at, ct),
                                            Engine());
      candidates.push_back({dnnl::matmul(pd),
                            {{DNNL_ARG_SRC, Buffer(bt)},
                             {DNNL_ARG_WEIGHTS, Buffer(at)},
                             {DNNL_ARG_DST, Buffer(ct)}}});
    }
    if (!transpose_a) {
      const memory::desc w({n, k}, DT::f32, Tag::any);
      const dnnl::inner_product_forward::primitive_desc pd(
          dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                            a, w, c),
          Engine());
      candidates.push_back({dnnl::inner_product_forward(pd),
                            {{DNNL_ARG_SRC, Buffer(pd.src_desc())},
                             {DNNL_ARG_WEIGHTS, Buffer(pd.weights_desc())},
                             {DNNL_ARG_DST, Buffer(pd.dst_desc())}}});
      // Transposed, c^T = b^T a^T, as an inner product whose weights are a
      // ([m, k] as `oi`) and whose source is b^T: the CPU backend picks it
      // for thin layers' forward (its transposes are left out: GEMMs only).
      const memory::desc src_t({n, k}, DT::f32, Tag::ab);
      const memory::desc a_as_weights({m, k}, DT::f32, Tag::oi);
      const memory::desc c_t({n, m}, DT::f32, Tag::ab);
      const dnnl::inner_product_forward::primitive_desc t_pd(
          dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                            src_t, a_as_weights, c_t),
          Engine());
      candidates.push_back({dnnl::inner_product_forward(t_pd),
                            {{DNNL_ARG_SRC, Buffer(src_t)},
                             {DNNL_ARG_WEIGHTS, Buffer(a_as_weights)},
                             {DNNL_ARG_DST, Buffer(c_t)}}});
    }
    calls_.push_back(Fastest(candidates));
    char label[96];
    std::snprintf(label, sizeof(label), "%s [%lld, %lld] x [%lld, %lld]",
                  transpose_a ? "weight gradient" : "forward or dx",
                  static_cast<long long>(m), static_cast<long long>(k),
                  static_cast<long long>(k), static_cast<long long>(n));
    calls_.back().label = label;
  }

  // One valid, stride-1 convolution layer: forward, optionally backward-data,
  // and backward-weights. Layouts are oneDNN's choice (format_tag::any), the
  // best case a backend could reach.
  void Conv(int64_t batch, int64_t in_c, int64_t out_c, int64_t hw,
            int64_t kernel, bool backward_data) {
    const int64_t out_hw = hw - kernel + 1;
    const memory::desc src({batch, in_c, hw, hw}, DT::f32, Tag::any);
    const memory::desc wei({out_c, in_c, kernel, kernel}, DT::f32, Tag::any);
    const memory::desc dst({batch, out_c, out_hw, out_hw}, DT::f32, Tag::any);
    const memory::dims strides = {1, 1}, pad = {0, 0};
    const dnnl::convolution_forward::primitive_desc fwd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::convolution_direct,
                                        src, wei, dst, strides, pad, pad),
        Engine());
    calls_.push_back({dnnl::convolution_forward(fwd),
                      {{DNNL_ARG_SRC, Buffer(fwd.src_desc())},
                       {DNNL_ARG_WEIGHTS, Buffer(fwd.weights_desc())},
                       {DNNL_ARG_DST, Buffer(fwd.dst_desc())}}});
    if (backward_data) {
      const dnnl::convolution_backward_data::primitive_desc bwd(
          dnnl::convolution_backward_data::desc(
              dnnl::algorithm::convolution_direct, src, wei, dst, strides, pad,
              pad),
          Engine(), fwd);
      calls_.push_back({dnnl::convolution_backward_data(bwd),
                        {{DNNL_ARG_DIFF_DST, Buffer(bwd.diff_dst_desc())},
                         {DNNL_ARG_WEIGHTS, Buffer(bwd.weights_desc())},
                         {DNNL_ARG_DIFF_SRC, Buffer(bwd.diff_src_desc())}}});
    }
    const dnnl::convolution_backward_weights::primitive_desc bww(
        dnnl::convolution_backward_weights::desc(
            dnnl::algorithm::convolution_direct, src, wei, dst, strides, pad,
            pad),
        Engine(), fwd);
    calls_.push_back(
        {dnnl::convolution_backward_weights(bww),
         {{DNNL_ARG_SRC, Buffer(bww.src_desc())},
          {DNNL_ARG_DIFF_DST, Buffer(bww.diff_dst_desc())},
          {DNNL_ARG_DIFF_WEIGHTS, Buffer(bww.diff_weights_desc())}}});
  }

  // The candidate with the lowest best-of-15 time (after warm-up).
  static Call Fastest(std::vector<Call>& candidates) {
    dnnl::stream stream(Engine());
    size_t best = 0;
    double best_time = 1e30;
    for (size_t i = 0; i < candidates.size(); ++i) {
      Call& call = candidates[i];
      for (int r = 0; r < 3; ++r) call.primitive.execute(stream, call.args);
      stream.wait();
      double fastest = 1e30;
      for (int r = 0; r < 15; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        call.primitive.execute(stream, call.args);
        stream.wait();
        fastest = std::min(fastest, std::chrono::duration<double>(
                                        std::chrono::steady_clock::now() - t0)
                                        .count());
      }
      if (fastest < best_time) best_time = fastest, best = i;
    }
    return std::move(candidates[best]);
  }

  void ResetProfile() {
    seconds_.clear();
    runs_ = 0;
  }

  void Run(dnnl::stream& stream) {
    if (!profile_) {
      for (Call& call : calls_) call.primitive.execute(stream, call.args);
      stream.wait();
      return;
    }
    seconds_.resize(calls_.size());
    for (size_t i = 0; i < calls_.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      calls_[i].primitive.execute(stream, calls_[i].args);
      stream.wait();
      seconds_[i] +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
    }
    ++runs_;
  }

  // With SEQUENT_FLOOR_PROFILE set, each primitive is timed on its own (a
  // stream wait after each: ~1 us more per call) and this lists their mean
  // times in step order (forward, backward-data, backward-weights), to set
  // beside the CPU backend's SEQUENT_CPU_PROFILE.
  std::string Profile() const {
    std::string out;
    for (size_t i = 0; i < seconds_.size(); ++i) {
      char line[160];
      std::snprintf(
          line, sizeof(line), "  %8.1f us  %s\n",
          seconds_[i] / std::max<int64_t>(runs_, 1) * 1e6,
          calls_[i].label.empty() ? "convolution" : calls_[i].label.c_str());
      out += line;
    }
    return out;
  }

 private:
  std::mt19937 rng_{42};
  std::vector<Call> calls_;
  const bool profile_ = std::getenv("SEQUENT_FLOOR_PROFILE") != nullptr;
  std::vector<double> seconds_;
  int64_t runs_ = 0;
};

// The GEMMs of a dense stack `widths` (input first) at `batch`: forward, and
// for training dy·Wᵀ for every layer but the first (its dx is not needed) and
// xᵀ·dy for every layer.
std::unique_ptr<Step> DenseStack(const std::vector<int64_t>& widths,
                                 int64_t batch, bool train,
                                 std::unique_ptr<Step> step = nullptr) {
  if (step == nullptr) step = std::make_unique<Step>();
  const size_t layers = widths.size() - 1;
  for (size_t l = 0; l < layers; ++l) {
    step->MatMul(batch, widths[l], widths[l + 1], false);
  }
  if (!train) return step;
  for (size_t l = layers; l-- > 1;) {
    step->MatMul(batch, widths[l + 1], widths[l], false);  // dy·Wᵀ
  }
  for (size_t l = 0; l < layers; ++l) {
    step->MatMul(widths[l], batch, widths[l + 1], true);  // xᵀ·dy
  }
  return step;
}

// Google Benchmark calls each function several times per repetition; building
// a step (buffers, primitive choice) once per benchmark keeps the run short.
template <typename Build>
Step& Cached(const std::string& workload, int64_t batch, Build build) {
  static std::map<std::string, std::unique_ptr<Step>> steps;
  auto& slot = steps[workload + "/" + std::to_string(batch)];
  if (slot == nullptr) slot = build();
  return *slot;
}

void RunStep(benchmark::State& state, Step& step, int64_t batch) {
  dnnl::stream stream(Engine());
  step.Run(stream);  // Warm-up: first-touch pages and JIT caches.
  step.ResetProfile();
  for (auto _ : state) step.Run(stream);
  if (std::getenv("SEQUENT_FLOOR_PROFILE") != nullptr) {
    std::fprintf(stderr, "floor at batch %lld, by primitive:\n%s\n",
                 static_cast<long long>(batch), step.Profile().c_str());
  }
  state.counters["samples_per_s"] =
      benchmark::Counter(static_cast<double>(batch),
                         benchmark::Counter::kIsIterationInvariantRate);
}

const std::vector<int64_t> kMlp = {784, 512, 512, 10};

// MLP 784-512-512-10, one train step (3 forward + 2 backward-data + 3
// backward-weights GEMMs).
void BM_MlpTrain(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Step& step = Cached("mlp_train", batch,
                      [&] { return DenseStack(kMlp, batch, /*train=*/true); });
  RunStep(state, step, batch);
}
BENCHMARK(BM_MlpTrain)
    ->Arg(32)
    ->Arg(128)
    ->Arg(512)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// MLP forward only: the 3 GEMMs of predict.
void BM_MlpPredict(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Step& step = Cached("mlp_predict", batch,
                      [&] { return DenseStack(kMlp, batch, /*train=*/false); });
  RunStep(state, step, batch);
}
BENCHMARK(BM_MlpPredict)
    ->Arg(1)
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// CNN on 28x28x1: conv3x3(32) - pool2 - conv3x3(64) - pool2 - dense128 -
// dense10. Convolutions: forward + backward-weights for both, backward-data for
// the second only; then the dense GEMMs of a 1600-128-10 stack.
void BM_CnnTrain(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Step& step = Cached("cnn_train", batch, [&] {
    auto step = std::make_unique<Step>();
    step->Conv(batch, 1, 32, 28, 3, /*backward_data=*/false);  // -> 26, pool 13
    step->Conv(batch, 32, 64, 13, 3, /*backward_data=*/true);  // -> 11, pool 5
    // The dense stack's first layer does need dx here (it feeds the pool), so
    // add it explicitly: dy·Wᵀ of dense128.
    step = DenseStack({5 * 5 * 64, 128, 10}, batch, /*train=*/true,
                      std::move(step));
    step->MatMul(batch, 128, 5 * 5 * 64, false);
    return step;
  });
  RunStep(state, step, batch);
}
BENCHMARK(BM_CnnTrain)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

// scikit-learn's MLPClassifier(hidden_layer_sizes=(5,5,5)) on 784 features, 10
// classes: one train step at batch 200 (report.py scales to an epoch).
void BM_SklearnStep(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Step& step = Cached("sklearn", batch, [&] {
    return DenseStack({784, 5, 5, 5, 10}, batch, /*train=*/true);
  });
  RunStep(state, step, batch);
}
BENCHMARK(BM_SklearnStep)
    ->Arg(200)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
