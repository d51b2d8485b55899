// The seed's Keras regression snippet on a real data set: the Diabetes data
// (Efron et al., "Least Angle Regression", 2004): 442 patients, 10 baseline
// variables (age, sex, BMI, blood pressure, six serum measurements), target =
// disease progression one year later.
//
//   model = Sequential([Dense(512, activation="relu") x3, Dense(1)])
//   model.compile(optimizer="adam", loss="mae")
//   model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=64,
//   epochs=100)
#include <cmath>
#include <cstdio>

#include "examples/models.h"
#include "frontend/sequent.h"

using namespace sequent;

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "examples/data/diabetes.csv";
  try {
    const CsvTable table = load_csv(path);
    const Dataset data = ValueOrThrow(SplitXY(table, "target", DType::kF32));
    auto [train, val] = train_test_split(data, 0.2, /*seed=*/42);
    StandardScaler scaler;
    train.x = ValueOrThrow(scaler.fit_transform(train.x));
    val.x = ValueOrThrow(scaler.transform(val.x));

    // Dense(512, relu) x3 - Dense(1), from examples/models.cc.
    Sequential model = examples::DiabetesRegressor();
    model.compile("adam", "mae");
    History history =
        model.fit(train.x, train.y,
                  {.batch_size = 64,
                   .epochs = 100,
                   .verbose = 2,
                   .validation_data = std::make_pair(val.x, val.y)});
    double mean = 0;
    for (int64_t i = 0; i < train.y.num_elements(); ++i)
      mean += train.y.GetAsDouble(i);
    mean /= static_cast<double>(train.y.num_elements());
    double baseline = 0;
    for (int64_t i = 0; i < val.y.num_elements(); ++i) {
      baseline += std::abs(val.y.GetAsDouble(i) - mean);
    }
    baseline /= static_cast<double>(val.y.num_elements());
    std::printf("validation MAE: %.2f (predicting the training mean: %.2f)\n",
                history.history["val_loss"].back(), baseline);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
