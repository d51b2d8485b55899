#ifndef SEQUENT_BACKENDS_CPU_PARALLEL_H_
#define SEQUENT_BACKENDS_CPU_PARALLEL_H_

// When our loops fork an OpenMP team. libgomp sets one up for every parallel
// region, ~0.25 us and a heap allocation even for a team of one thread or a
// false `if` clause: more than a small loop's own work, and a small model's
// step runs dozens of small loops (the (5,5,5) net: ~20 per step). So loops
// under `min_work` elements, and every loop of a one-thread executable, run
// on the calling thread without a region.

#include <omp.h>

#include <cstdint>

namespace sequent::cpu {

inline constexpr int64_t kMinParallelWork = int64_t{1} << 16;

inline bool UseTeam(int64_t work, int64_t min_work = kMinParallelWork) {
  return work >= min_work && omp_get_max_threads() > 1;
}

// body(i) for i in [0, n), independent iterations that vectorize.
template <typename Body>
void ParallelForSimd(int64_t n, const Body& body,
                     int64_t min_work = kMinParallelWork) {
  if (UseTeam(n, min_work)) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

// body(i) for i in [0, n), independent iterations; `work` is the elements
// they touch in all.
template <typename Body>
void ParallelFor(int64_t n, int64_t work, const Body& body) {
  if (UseTeam(work)) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
  } else {
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_PARALLEL_H_
