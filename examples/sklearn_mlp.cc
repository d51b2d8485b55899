// scikit-learn's MLPClassifier on Fashion-MNIST, as the seed script writes it:
//   MLPClassifier(hidden_layer_sizes=(5, 5, 5), activation="relu",
//                 max_iter=100, validation_fraction=0.2, early_stopping=True)
// trained through sequent. Prints test accuracy, epochs run (n_iter_) and wall
// time, and, when tools/golden/sklearn_mlp.py has written its numbers, the
// comparison with scikit-learn's run on the same data.
//   ./bazelw run //examples:sklearn_mlp [-- cpu|cuda|reference [random_state
//   [max_iter [verbose]]]]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "frontend/sequent.h"

using namespace sequent;

namespace {

// [n, 28, 28] -> [n, 784].
Tensor Flatten(const Tensor& images) {
  const int64_t n = images.shape()[0];
  Tensor flat(images.dtype(), Shape{n, images.num_elements() / n});
  std::memcpy(flat.raw_data(), images.raw_data(), images.num_bytes());
  return flat;
}

// "name value" lines of the golden file; empty when it is missing.
std::map<std::string, double> ReadGolden(const std::string& path) {
  std::map<std::string, double> values;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name;
    double value;
    if (fields >> name >> value) values[name] = value;
  }
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto [train, test] = load_fashion_mnist();
    const Tensor x_train = Flatten(train.x), x_test = Flatten(test.x);

    MLPOptions options;
    options.hidden_layer_sizes = {5, 5, 5};
    options.activation = "relu";
    options.max_iter = argc > 3 ? std::stoi(argv[3]) : 100;
    options.verbose = argc > 4 && std::string(argv[4]) == "verbose";
    options.validation_fraction = 0.2;
    options.early_stopping = true;
    options.random_state = argc > 2 ? std::stoull(argv[2]) : 0;
    if (argc > 1) options.device = Device(argv[1]);
    MLPClassifier clf(options);

    const auto start = std::chrono::steady_clock::now();
    clf.fit(x_train, train.y);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    const double accuracy = clf.score(x_test, test.y);
    std::printf("device: %s\n", clf.model().device().ToString().c_str());
    std::printf("test accuracy: %.4f\n", accuracy);
    std::printf("epochs run (n_iter_): %d\n", clf.n_iter_);
    std::printf("best validation accuracy: %.4f\n", clf.best_validation_score_);
    std::printf("fit wall time: %.2f s (%.4f s per epoch)\n", seconds,
                seconds / clf.n_iter_);

    const auto golden = ReadGolden("tests/frontend/golden/sklearn_mlp.txt");
    if (golden.count("test_accuracy") && golden.count("seconds_per_epoch")) {
      std::printf(
          "scikit-learn (golden): test accuracy %.4f, n_iter_ %.0f, %.4f s per "
          "epoch\n",
          golden.at("test_accuracy"), golden.at("n_iter"),
          golden.at("seconds_per_epoch"));
      const double per_epoch = seconds / clf.n_iter_;
      std::printf(
          "accuracy difference: %+.2f points; speed-up per epoch: %.1fx\n",
          100.0 * (accuracy - golden.at("test_accuracy")),
          golden.at("seconds_per_epoch") / per_epoch);
      if (golden.count("one_thread_seconds_per_epoch")) {
        std::printf(
            "scikit-learn with one BLAS thread: %.4f s per epoch (%.1fx)\n",
            golden.at("one_thread_seconds_per_epoch"),
            golden.at("one_thread_seconds_per_epoch") / per_epoch);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
