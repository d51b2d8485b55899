#include "examples/models.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sequent::examples {

Sequential FashionMnistMlp() {
  return Sequential({Input({28, 28}), Flatten(), Dense(512, "relu"),
                     Dense(512, "relu"), Dense(10)});
}

Sequential FashionMnistCnn() {
  return Sequential(
      {Input({28, 28, 1}), Conv2D(32, {3, 3}, {.activation = "relu"}),
       MaxPooling2D({2, 2}), Conv2D(64, {3, 3}, {.activation = "relu"}),
       MaxPooling2D({2, 2}), Flatten(), Dense(128, "relu"), Dense(10)});
}

Sequential DiabetesRegressor() {
  return Sequential({Input({10}), Dense(512, "relu"), Dense(512, "relu"),
                     Dense(512, "relu"), Dense(1)});
}

std::vector<std::string> ExampleNames() {
  return {"fashion_mnist_mlp", "fashion_mnist_cnn", "pytorch_style_mlp",
          "keras_regression"};
}

// The compile calls below mirror examples/<name>.cc.
Sequential CompiledExample(absl::string_view name,
                           std::optional<Device> device) {
  if (name == "fashion_mnist_mlp") {
    Sequential model = FashionMnistMlp();
    model.compile(Adam{.learning_rate = 1e-3},
                  SparseCategoricalCrossentropy{.from_logits = true},
                  {"accuracy"}, device);
    return model;
  }
  if (name == "fashion_mnist_cnn") {
    Sequential model = FashionMnistCnn();
    model.compile(Adam{.learning_rate = 1e-3},
                  SparseCategoricalCrossentropy{.from_logits = true},
                  {"accuracy"}, device);
    return model;
  }
  if (name == "pytorch_style_mlp") {
    Sequential model = FashionMnistMlp();
    model.compile(SGD{.learning_rate = 1e-3, .momentum = 0.9},
                  SparseCategoricalCrossentropy{.from_logits = true},
                  {"accuracy"}, device);
    return model;
  }
  if (name == "keras_regression") {
    Sequential model = DiabetesRegressor();
    model.compile("adam", "mae", {}, device);
    return model;
  }
  throw Error(
      absl::StrCat("unknown example '", std::string(name),
                   "'; known examples: ", absl::StrJoin(ExampleNames(), ", ")));
}

}  // namespace sequent::examples
