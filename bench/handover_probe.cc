// Whether this host is in its "slow phase" right now (bench/README.md, eighth
// session): how long two threads take to update their halves of four
// 1.6 MB buffers (the 784x512 kernel's weights, gradient and Adam slots) when
// each thread alone touched its half before ("own"), and when the other
// thread read that half first ("handed over", as when oneDNN's GEMMs and our
// loops split a step's data differently). On this 2-vCPU host the hand-over
// costs ~1.3x in the quiet phase and ~5x in the slow one, and sequent's
// memory-bound steps (Adam, ReLU gradients, small GEMMs) slow down with it;
// bench/run_all.sh prints this before and after its runs to tag the table.

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace {

constexpr int64_t kElements = 784 * 512;
constexpr int kRounds = 150;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Array = std::unique_ptr<float[], FreeDeleter>;

// 64-byte aligned like sequent's buffers (vectors of this size start 16 bytes
// into a page, and every AVX-512 access would then straddle two lines).
Array Filled(float value) {
  Array a(
      static_cast<float*>(std::aligned_alloc(64, kElements * sizeof(float))));
  std::fill(a.get(), a.get() + kElements, value);
  return a;
}

struct Buffers {
  Array weight = Filled(0.5f), gradient = Filled(0.01f), first = Filled(0.0f),
        second = Filled(0.0f);
};

// An Adam-like pass over [lo, hi) that reads and writes each line once: the
// traffic of a real update without its divisions. Compiled for AVX-512 and
// AVX2 like sequent's loops (the build targets baseline x86-64).
__attribute__((target_clones("avx512f", "avx2", "default"))) void Update(
    Buffers& b, int64_t lo, int64_t hi) {
  float* w = b.weight.get();
  const float* g = b.gradient.get();
  float* m = b.first.get();
  float* v = b.second.get();
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) {
    m[i] += (g[i] - m[i]) * 0.1f;
    v[i] += (g[i] * g[i] - v[i]) * 0.001f;
    w[i] -= m[i] * 0.001f + v[i];
  }
}

// Median microseconds of the two-thread update, each thread on its own half,
// after each thread read the weights of its own half or, `handed_over`, of the
// other thread's half.
double MedianMicros(Buffers& b, bool handed_over) {
  std::vector<double> times;
  float sink = 0.0f;
  for (int round = 0; round < kRounds; ++round) {
#pragma omp parallel num_threads(2) reduction(+ : sink)
    {
      const int thread = omp_get_thread_num();
      const int half = handed_over ? 1 - thread : thread;
      for (int64_t i = half * kElements / 2; i < (half + 1) * kElements / 2;
           i += 16) {
        sink += b.weight[i];
      }
    }
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(2)
    {
      const int thread = omp_get_thread_num();
      Update(b, thread * kElements / 2, (thread + 1) * kElements / 2);
    }
    times.push_back(std::chrono::duration<double, std::micro>(
                        std::chrono::steady_clock::now() - start)
                        .count());
  }
  if (sink == 42.0f) std::printf(" ");  // Keeps the reads.
  std::nth_element(times.begin(), times.begin() + kRounds / 2, times.end());
  return times[kRounds / 2];
}

}  // namespace

int main() {
  auto buffers = std::make_unique<Buffers>();
  // Alternated, and the fastest median of each kept: a spell of noise then
  // spoils neither side alone.
  double own = 1e30, handed_over = 1e30;
  for (int repeat = 0; repeat < 3; ++repeat) {
    own = std::min(own, MedianMicros(*buffers, false));
    handed_over = std::min(handed_over, MedianMicros(*buffers, true));
  }
  const double ratio = handed_over / own;
  std::printf(
      "cache-line hand-over probe: own %.1f us, handed over %.1f us (%.1fx): "
      "%s\n",
      own, handed_over, ratio,
      ratio > 2.5 ? "SLOW phase (cross-core hand-overs expensive: sequent's "
                    "memory-bound steps run slow)"
                  : "quiet");
  return 0;
}
