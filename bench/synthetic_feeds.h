#ifndef SEQUENT_BENCH_SYNTHETIC_FEEDS_H_
#define SEQUENT_BENCH_SYNTHETIC_FEEDS_H_

#include <memory>
#include <vector>

#include "backends/backend.h"
#include "core/tensor.h"

namespace sequent::bench {

// The feeds of one benchmarked step: uniform features in [0, 1) of shape `x`
// (batch first), and for a train step random labels in [0, 10), unit sample
// weights and Adam's default learning rate. Speed does not depend on the
// values; the seed is fixed so runs see the same data.
struct SyntheticFeeds {
  Tensor x, y, sample_weight, learning_rate;
  std::vector<Feed> list;
};
std::unique_ptr<SyntheticFeeds> MakeSyntheticFeeds(const Shape& x, bool train);

}  // namespace sequent::bench

#endif  // SEQUENT_BENCH_SYNTHETIC_FEEDS_H_
