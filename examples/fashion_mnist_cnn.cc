// A small convnet on Fashion-MNIST: conv32-pool-conv64-pool-dense128-dense10.
//   ./bazelw run //examples:fashion_mnist_cnn
#include <chrono>
#include <cstdio>
#include <cstring>

#include "examples/models.h"
#include "frontend/sequent.h"

using namespace sequent;

// [n, 28, 28] images to [n, 28, 28, 1] (NHWC with one channel); the bytes are
// the same.
Tensor WithChannel(const Tensor& images) {
  Tensor out(images.dtype(), Shape{images.shape()[0], 28, 28, 1});
  std::memcpy(out.raw_data(), images.raw_data(), images.num_bytes());
  return out;
}

int main() {
  const auto start = std::chrono::steady_clock::now();
  try {
    auto [train, test] = load_fashion_mnist();
    // Conv2D(32, 3x3, relu) - MaxPooling2D - Conv2D(64, 3x3, relu) -
    // MaxPooling2D - Flatten - Dense(128, relu) - Dense(10), from
    // examples/models.cc (sequent-graph --example draws the same model).
    Sequential model = examples::FashionMnistCnn();
    model.summary();
    model.compile(Adam{.learning_rate = 1e-3},
                  SparseCategoricalCrossentropy{.from_logits = true},
                  {"accuracy"});
    model.fit(WithChannel(train.x), train.y, {.batch_size = 64, .epochs = 2});
    const Logs result =
        model.evaluate(WithChannel(test.x), test.y, {.verbose = 0});
    std::printf("test accuracy: %.4f - test loss: %.4f\n",
                result.at("accuracy"), result.at("loss"));
    std::printf(
        "wall time: %.1f s\n",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
