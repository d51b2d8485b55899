// The seed's PyTorch snippet, as sequent: pick "cuda" when a GPU is there, else
// "cpu"; a Flatten -> Dense 512 -> 512 -> 10 network; predictions through
// softmax + argmax.
//
//   device = "cuda" if torch.cuda.is_available() else "cpu"
//   model = NeuralNetwork().to(device)   # Flatten, Linear(784,512), ReLU, ...,
//   Linear(512,10) pred_probab = nn.Softmax(dim=1)(model(X)); y_pred =
//   pred_probab.argmax(1)
#include <cstdio>

#include "examples/models.h"
#include "frontend/sequent.h"

using namespace sequent;

int main() {
  try {
    const Device device = Device::Auto();
    std::printf("Using %s device\n", device.ToString().c_str());
    auto [train, test] = load_fashion_mnist();

    // Flatten - Dense(512, relu) x2 - Dense(10), from examples/models.cc.
    Sequential model = examples::FashionMnistMlp();
    model.compile(SGD{.learning_rate = 1e-3, .momentum = 0.9},
                  SparseCategoricalCrossentropy{.from_logits = true},
                  {"accuracy"}, device);
    model.fit(train.x, train.y, {.batch_size = 64, .epochs = 2});

    // Softmax over the logits, then argmax: the class the model predicts.
    Sequential probabilities({Input({10}), Activation("softmax")});
    probabilities.compile("sgd", "mse", {}, device);
    const Tensor logits = model.predict(test.x, {.batch_size = 256});
    const Tensor probs = probabilities.predict(logits, {.batch_size = 256});
    const Tensor predicted = argmax(probs);
    const char* names[] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                           "Coat",        "Sandal",    "Shirt",    "Sneaker",
                           "Bag",         "Ankle boot"};
    int64_t correct = 0;
    for (int64_t i = 0; i < predicted.num_elements(); ++i) {
      correct += predicted.data<int32_t>()[i] == test.y.data<int32_t>()[i];
    }
    for (int i = 0; i < 5; ++i) {
      const int p = predicted.data<int32_t>()[i];
      std::printf("image %d: predicted %-11s (p=%.3f), true %s\n", i, names[p],
                  probs.data<float>()[i * 10 + p],
                  names[test.y.data<int32_t>()[i]]);
    }
    std::printf("test accuracy from argmax: %.4f\n",
                static_cast<double>(correct) /
                    static_cast<double>(predicted.num_elements()));
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
