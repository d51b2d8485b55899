#ifndef SEQUENT_FRONTEND_SEQUENT_H_
#define SEQUENT_FRONTEND_SEQUENT_H_

// The one header a model script includes: Sequential, layers, optimizers,
// losses, callbacks, devices, mixed precision and data loading, Keras-style (errors throw
// sequent::Error).

#include <string>
#include <utility>

#include "frontend/callbacks.h"
#include "frontend/compile_options.h"
#include "frontend/data.h"
#include "frontend/device.h"
#include "frontend/error.h"
#include "frontend/layers.h"
#include "frontend/mixed_precision.h"
#include "frontend/model.h"
#include "frontend/saving.h"
#include "frontend/sklearn.h"

namespace sequent {

// keras.datasets.fashion_mnist.load_data(), scaled to [0, 1]: {train, test}.
inline std::pair<Dataset, Dataset> load_fashion_mnist(
    const std::string& dir = kFashionMnistDir) {
  return ValueOrThrow(LoadFashionMnist(dir, /*scale=*/true));
}

inline CsvTable load_csv(const std::string& path, CsvOptions options = {}) {
  return ValueOrThrow(LoadCsv(path, options));
}

inline Tensor load_npy(const std::string& path) {
  return ValueOrThrow(LoadNpy(path));
}

// sklearn.model_selection.train_test_split: {train, test}.
inline std::pair<Dataset, Dataset> train_test_split(const Dataset& data,
                                                    double test_size,
                                                    uint64_t seed = 0,
                                                    bool shuffle = true,
                                                    bool stratify = false) {
  return ValueOrThrow(TrainTestSplit(data, test_size, seed, shuffle, stratify));
}

// Index of the largest value in each row of a [n, classes] tensor (numpy's
// argmax(axis=1)).
Tensor argmax(const Tensor& x);

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_SEQUENT_H_
