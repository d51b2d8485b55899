// A user's program, built in its own Bazel workspace against @sequent//:sequent.
#include <cstdio>

#include "frontend/sequent.h"

int main() {
  using namespace sequent;
  Sequential model({Input({4}), Dense(8, "relu"), Dense(2)});
  model.compile("adam", SparseCategoricalCrossentropy{.from_logits = true}, {"accuracy"});
  const Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, -1, -2, -3, -4}, Shape{2, 4});
  const Tensor y = Tensor::FromVector<int32_t>({0, 1}, Shape{2});
  const Logs logs = model.train_on_batch(x, y);
  std::printf("downstream: trained one step on %s, loss %.4f\n",
              model.device().ToString().c_str(), logs.at("loss"));
  std::printf("%s\n", model.predict(x, {.verbose = 0}).ToString().c_str());
  return 0;
}
