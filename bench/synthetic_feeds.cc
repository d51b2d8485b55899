#include "bench/synthetic_feeds.h"

#include <random>

#include "core/training_graph.h"

namespace sequent::bench {

std::unique_ptr<SyntheticFeeds> MakeSyntheticFeeds(const Shape& x, bool train) {
  auto f = std::make_unique<SyntheticFeeds>();
  std::mt19937 rng(7);
  f->x = Tensor(DType::kF32, x);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  for (float& v : f->x.data<float>()) v = pixel(rng);
  f->list.push_back({kFeatureFeed, &f->x});
  if (!train) return f;
  const int64_t batch = x[0];
  f->y = Tensor(DType::kI32, Shape{batch});
  std::uniform_int_distribution<int32_t> label(0, 9);
  for (int32_t& v : f->y.data<int32_t>()) v = label(rng);
  f->sample_weight = Tensor(DType::kF32, Shape{batch});
  for (float& v : f->sample_weight.data<float>()) v = 1.0f;
  f->learning_rate = Tensor::Scalar<float>(1e-3f);
  f->list.push_back({kLabelFeed, &f->y});
  f->list.push_back({kSampleWeightFeed, &f->sample_weight});
  f->list.push_back({kLearningRateFeed, &f->learning_rate});
  return f;
}

}  // namespace sequent::bench
