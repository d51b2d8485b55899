// MLPClassifier / MLPRegressor semantics on small data: label types, classes_,
// probabilities, partial_fit, warm_start, early stopping, the reported loss's
// scale, learning-rate schedules and errors. The Fashion-MNIST comparison with
// scikit-learn is examples/sklearn_mlp (it needs minutes, not a unit test).
#include "frontend/sklearn.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sequent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// SEQUENT_TEST_DEVICE=reference runs the same checks on the oracle backend.
const char* Backend() {
  const char* env = std::getenv("SEQUENT_TEST_DEVICE");
  return env != nullptr ? env : "cpu";
}

// Three Gaussian blobs in 2-D, `per_class` points each, labelled by `labels`.
struct Blobs {
  Tensor x;
  std::vector<int64_t> y;
};
Blobs MakeBlobs(int64_t per_class, const std::vector<int64_t>& labels,
                uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.4);
  const double centers[3][2] = {{0, 0}, {3, 0}, {0, 3}};
  const int64_t n = per_class * static_cast<int64_t>(labels.size());
  Blobs b{Tensor(DType::kF32, Shape{n, 2}), {}};
  auto x = b.x.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const size_t c =
        static_cast<size_t>(i % static_cast<int64_t>(labels.size()));
    x[2 * i] = static_cast<float>(centers[c][0] + noise(rng));
    x[2 * i + 1] = static_cast<float>(centers[c][1] + noise(rng));
    b.y.push_back(labels[c]);
  }
  return b;
}

// n rows of 2 features uniform in [-1, 1] and the exact target
// 2*x0 - x1 + 0.5.
std::pair<Tensor, std::vector<double>> LinearTarget(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor x(DType::kF32, Shape{n, 2});
  std::vector<double> y;
  for (int64_t i = 0; i < n; ++i) {
    const double a = u(rng), c = u(rng);
    x.data<float>()[2 * i] = static_cast<float>(a);
    x.data<float>()[2 * i + 1] = static_cast<float>(c);
    y.push_back(2.0 * a - c + 0.5);
  }
  return {std::move(x), std::move(y)};
}

MLPOptions Small(int max_iter = 60) {
  MLPOptions o;
  o.hidden_layer_sizes = {8};
  o.learning_rate_init = 0.05;
  o.max_iter = max_iter;
  o.random_state = 0;
  o.device = Device(Backend());
  return o;
}

double Sum(const std::vector<Tensor>& tensors) {
  double s = 0.0;
  for (const Tensor& t : tensors)
    for (int64_t i = 0; i < t.num_elements(); ++i)
      s += t.GetAsDouble(i) * t.GetAsDouble(i);
  return s;
}

TEST(MLPClassifierTest, IntegerLabelsSortedClassesAndProbabilities) {
  Blobs b = MakeBlobs(30, {7, -2, 5});
  std::ostringstream warnings;
  MLPOptions o = Small();
  o.warnings = &warnings;
  MLPClassifier clf(o);
  clf.fit(b.x, b.y);
  EXPECT_FALSE(clf.classes_.is_string);
  EXPECT_THAT(clf.classes_.ints, ElementsAre(-2, 5, 7));
  EXPECT_EQ(clf.n_outputs_, 3);
  EXPECT_EQ(clf.out_activation_, "softmax");
  EXPECT_EQ(clf.n_features_in_, 2);
  EXPECT_EQ(clf.n_layers_, 3);
  EXPECT_GT(clf.score(b.x, b.y), 0.95);
  EXPECT_EQ(clf.loss_curve_.size(), static_cast<size_t>(clf.n_iter_));
  EXPECT_EQ(clf.t_, 90 * clf.n_iter_);
  EXPECT_LT(clf.loss_curve_.back(), clf.loss_curve_.front());

  const std::vector<int64_t> predicted = clf.predict<std::vector<int64_t>>(b.x);
  for (int64_t label : predicted)
    EXPECT_TRUE(label == -2 || label == 5 || label == 7);
  const Tensor proba = clf.predict_proba(b.x);
  ASSERT_EQ(proba.shape(), Shape({90, 3}));
  for (int64_t i = 0; i < 90; ++i) {
    double row = 0.0;
    int64_t best = 0;
    for (int64_t j = 0; j < 3; ++j) {
      row += proba.GetAsDouble(i * 3 + j);
      if (proba.GetAsDouble(i * 3 + j) > proba.GetAsDouble(i * 3 + best))
        best = j;
    }
    EXPECT_NEAR(row, 1.0, 1e-9);
    EXPECT_EQ(predicted[i], clf.classes_.ints[best]);  // predict = argmax proba
  }
  // Strings of integer classes are their decimal forms.
  const auto as_strings = clf.predict<std::vector<std::string>>(b.x);
  EXPECT_EQ(as_strings[0], std::to_string(predicted[0]));
}

TEST(MLPClassifierTest, TensorLabelsKeepTheirDtype) {
  Blobs b = MakeBlobs(20, {0, 1, 2});
  std::vector<int32_t> y32(b.y.begin(), b.y.end());
  MLPClassifier clf(Small());
  clf.fit(b.x, Tensor::FromVector<int32_t>(y32, Shape{60}));
  const Tensor predicted = clf.predict(b.x);
  EXPECT_EQ(predicted.dtype(), DType::kI32);
  EXPECT_EQ(predicted.shape(), Shape({60}));
  EXPECT_GT(clf.score(b.x, Tensor::FromVector<int32_t>(y32, Shape{60})), 0.9);

  MLPClassifier clf64(Small());
  clf64.fit(b.x, Tensor::FromVector<int64_t>(b.y, Shape{60, 1}));
  EXPECT_EQ(clf64.predict(b.x).dtype(), DType::kI64);
}

TEST(MLPClassifierTest, StringLabelsBinaryLogisticOutput) {
  Blobs b = MakeBlobs(25, {0, 1});
  std::vector<std::string> y;
  for (int64_t label : b.y) y.push_back(label == 0 ? "dog" : "cat");
  MLPClassifier clf(Small());
  clf.fit(b.x, y);
  EXPECT_TRUE(clf.classes_.is_string);
  EXPECT_THAT(clf.classes_.strings, ElementsAre("cat", "dog"));
  EXPECT_EQ(clf.n_outputs_, 1);
  EXPECT_EQ(clf.out_activation_, "logistic");
  const auto predicted = clf.predict<std::vector<std::string>>(b.x);
  ASSERT_EQ(predicted.size(), 50u);
  EXPECT_GT(clf.score(b.x, y), 0.95);
  const Tensor proba = clf.predict_proba(b.x);
  ASSERT_EQ(proba.shape(), Shape({50, 2}));
  for (int64_t i = 0; i < 50; ++i) {
    EXPECT_NEAR(proba.GetAsDouble(2 * i) + proba.GetAsDouble(2 * i + 1), 1.0,
                1e-12);
    EXPECT_EQ(predicted[i], proba.GetAsDouble(2 * i + 1) > 0.5 ? "dog" : "cat");
  }
  // Integer outputs do not exist for string classes.
  EXPECT_THROW(clf.predict(b.x), Error);
  EXPECT_EQ(clf.score(b.x, b.y), 0.0);  // integers never equal string classes
}

TEST(MLPClassifierTest, PartialFit) {
  Blobs b = MakeBlobs(20, {0, 1, 2});
  MLPClassifier clf(Small());
  try {
    clf.partial_fit(b.x, b.y);
    FAIL() << "partial_fit without classes on the first call";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("classes must be passed on the first call"));
  }
  clf.partial_fit(b.x, b.y, std::vector<int64_t>{0, 1, 2, 3});
  EXPECT_THAT(clf.classes_.ints, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(clf.n_iter_, 1);
  EXPECT_EQ(clf.t_, 60);
  for (int i = 0; i < 30; ++i) clf.partial_fit(b.x, b.y);
  EXPECT_EQ(clf.n_iter_, 1);
  EXPECT_EQ(clf.t_, 31 * 60);
  EXPECT_EQ(clf.loss_curve_.size(), 31u);
  EXPECT_LT(clf.loss_curve_.back(), clf.loss_curve_.front());
  EXPECT_GT(clf.score(b.x, b.y), 0.9);
  EXPECT_THROW(clf.partial_fit(b.x, std::vector<int64_t>(60, 9)), Error);
  EXPECT_THROW(clf.partial_fit(b.x, b.y, std::vector<int64_t>{0, 1}), Error);
}

TEST(MLPClassifierTest, WarmStartContinues) {
  Blobs b = MakeBlobs(20, {0, 1, 2});
  std::ostringstream warnings;
  MLPOptions o = Small(5);
  o.warnings = &warnings;
  MLPClassifier cold(o);
  cold.fit(b.x, b.y);
  const double after_five = cold.loss_curve_.back();
  cold.fit(b.x, b.y);  // Starts over.
  EXPECT_EQ(cold.loss_curve_.size(), 5u);
  EXPECT_NEAR(cold.loss_curve_.back(), after_five,
              1e-6);  // Same seed, same run.

  o.warm_start = true;
  MLPClassifier warm(o);
  warm.fit(b.x, b.y);
  warm.fit(b.x, b.y);
  EXPECT_EQ(warm.loss_curve_.size(), 10u);
  EXPECT_EQ(warm.n_iter_, 5);
  EXPECT_EQ(warm.t_, 10 * 60);
  EXPECT_LT(warm.loss_curve_[5], warm.loss_curve_[0]);
  // A warm start must see the same classes.
  EXPECT_THROW(warm.fit(b.x, std::vector<int64_t>(60, 0)), Error);
  // max_iter reached: scikit-learn's ConvergenceWarning.
  EXPECT_THAT(warnings.str(),
              HasSubstr("ConvergenceWarning: Stochastic Optimizer: Maximum "
                        "iterations (5) reached and the optimization hasn't "
                        "converged yet."));
}

TEST(MLPClassifierTest, EarlyStoppingRestoresTheBestWeights) {
  Blobs b = MakeBlobs(40, {0, 1, 2}, /*seed=*/3);
  MLPOptions o = Small(40);
  o.early_stopping = true;
  o.validation_fraction = 0.25;
  o.learning_rate_init = 0.2;  // Noisy on purpose, so the scores move.
  o.n_iter_no_change = 4;
  std::ostringstream warnings;
  o.warnings = &warnings;
  MLPClassifier clf(o);
  clf.fit(b.x, b.y);
  ASSERT_EQ(clf.validation_scores_.size(), static_cast<size_t>(clf.n_iter_));
  EXPECT_TRUE(std::isnan(clf.best_loss_));
  size_t best = 0;
  for (size_t i = 0; i < clf.validation_scores_.size(); ++i)
    if (clf.validation_scores_[i] > clf.validation_scores_[best]) best = i;
  EXPECT_EQ(clf.best_validation_score_, clf.validation_scores_[best]);
  // Rerun with the same seed up to the best epoch: its weights at that epoch
  // are what the first run must have restored.
  o.max_iter = static_cast<int>(best) + 1;
  MLPClassifier upto_best(o);
  upto_best.fit(b.x, b.y);
  EXPECT_EQ(upto_best.best_validation_score_, clf.best_validation_score_);
  const auto a = clf.coefs_(), c = upto_best.coefs_();
  ASSERT_EQ(a.size(), c.size());
  for (size_t l = 0; l < a.size(); ++l)
    for (int64_t i = 0; i < a[l].num_elements(); ++i)
      EXPECT_NEAR(a[l].GetAsDouble(i), c[l].GetAsDouble(i), 1e-6);
  if (clf.n_iter_ < 40) {
    EXPECT_EQ(clf.n_iter_, static_cast<int>(best) + 1 + 5);
  }
}

// Early stopping validates an epoch while the next one trains ahead (on a
// CPU with a core to spare) and rolls that epoch back when training stops:
// the optimizer state must be the one the last counted epoch left, as in a
// run that was never ahead.
TEST(MLPClassifierTest, EarlyStoppingLeavesTheStateOfTheLastCountedEpoch) {
  Blobs b = MakeBlobs(40, {0, 1, 2}, /*seed=*/3);
  MLPOptions o = Small(60);
  o.early_stopping = true;
  o.validation_fraction = 0.25;
  o.learning_rate_init = 0.2;
  o.n_iter_no_change = 2;
  std::ostringstream warnings;
  o.warnings = &warnings;
  MLPClassifier stopped(o);
  stopped.fit(b.x, b.y);
  ASSERT_LT(stopped.n_iter_, o.max_iter) << "the fit must stop early";

  o.max_iter = stopped.n_iter_;
  o.n_iter_no_change = 1000;
  MLPClassifier reference(o);
  reference.fit(b.x, b.y);
  EXPECT_EQ(reference.validation_scores_, stopped.validation_scores_);
  EXPECT_EQ(reference.loss_curve_, stopped.loss_curve_);

  // Adam's moments of each weight (named after its layer, which differs
  // between the two models) and its step count.
  const VariableStore& got = stopped.model().variables();
  const VariableStore& want = reference.model().variables();
  std::vector<std::pair<std::string, std::string>> pairs = {
      {"optimizer/iterations", "optimizer/iterations"}};
  const std::vector<std::string> a = stopped.model().weight_names();
  const std::vector<std::string> c = reference.model().weight_names();
  ASSERT_EQ(a.size(), c.size());
  for (size_t i = 0; i < a.size(); ++i)
    for (const char* slot : {"/m", "/v"})
      pairs.emplace_back(a[i] + slot, c[i] + slot);
  int optimizer_variables = 0;
  for (const auto& [got_name, want_name] : pairs) {
    ASSERT_TRUE(got.Contains(got_name)) << got_name;
    ++optimizer_variables;
    const Tensor g = got.Read(got_name).value();
    const Tensor w = want.Read(want_name).value();
    ASSERT_EQ(g.num_elements(), w.num_elements()) << got_name;
    for (int64_t i = 0; i < g.num_elements(); ++i)
      ASSERT_EQ(g.GetAsDouble(i), w.GetAsDouble(i))
          << got_name << "[" << i << "]";
  }
  EXPECT_EQ(optimizer_variables, 1 + 2 * static_cast<int>(a.size()));
}

// A validation set of several thousand rows is predicted in pieces between
// the gathers (on a CPU with a core to spare): every row's prediction must
// land in its place. The restored best weights classify every row of these
// (separated) blobs, the validation rows among them, so their validation
// score was 1.
TEST(MLPClassifierTest, LargeValidationSetsAreScoredWhole) {
  Blobs b = MakeBlobs(1500, {0, 1, 2}, /*seed=*/5);
  // Halve the noise around MakeBlobs' centers, so no two blobs overlap.
  const float centers[3][2] = {{0, 0}, {3, 0}, {0, 3}};
  auto x = b.x.data<float>();
  for (int64_t i = 0; i < b.x.shape()[0]; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      const float center = centers[b.y[static_cast<size_t>(i)]][j];
      x[2 * i + j] = center + 0.5f * (x[2 * i + j] - center);
    }
  }
  MLPOptions o = Small(30);
  o.early_stopping = true;
  o.validation_fraction = 0.5;  // 2250 rows.
  std::ostringstream warnings;
  o.warnings = &warnings;
  MLPClassifier clf(o);
  clf.fit(b.x, b.y);
  ASSERT_EQ(clf.score(b.x, b.y), 1.0) << "the blobs must be separated";
  EXPECT_EQ(clf.best_validation_score_, 1.0);
}

// Pixels scaled from bytes (x / 255) train from their bytes when the input is
// large (byte_rows.h): the same batches, so the same weights, bit for bit,
// as training from the floats (SEQUENT_BYTE_ROWS=0), with and without a
// validation split.
TEST(MLPClassifierTest, PixelsScaledFromBytesTrainAsTheirFloats) {
  constexpr int64_t kRows = 1400, kFeatures = 784;  // > 2^20 values
  std::mt19937 rng(3);
  Tensor x(DType::kF32, Shape{kRows, kFeatures});
  std::vector<int64_t> y;
  for (int64_t i = 0; i < kRows; ++i) {
    const int64_t label = i % 3;
    y.push_back(label);
    for (int64_t j = 0; j < kFeatures; ++j) {
      // Brighter pixels in the label's third of the image.
      const uint32_t k = rng() % 128 + (j * 3 / kFeatures == label ? 127 : 0);
      x.data<float>()[i * kFeatures + j] = static_cast<float>(k) / 255.0f;
    }
  }
  for (bool early_stopping : {false, true}) {
    MLPOptions o = Small(3);
    o.hidden_layer_sizes = {5, 5};
    o.early_stopping = early_stopping;
    std::vector<std::vector<Tensor>> coefs;
    std::vector<std::vector<double>> curves;
    for (const char* setting : {"1", "0"}) {
      setenv("SEQUENT_BYTE_ROWS", setting, 1);
      MLPClassifier clf(o);
      clf.fit(x, y);
      coefs.push_back(clf.coefs_());
      curves.push_back(clf.loss_curve_);
    }
    unsetenv("SEQUENT_BYTE_ROWS");
    EXPECT_EQ(curves[0], curves[1]) << "early_stopping " << early_stopping;
    ASSERT_EQ(coefs[0].size(), coefs[1].size());
    for (size_t i = 0; i < coefs[0].size(); ++i) {
      EXPECT_EQ(coefs[0][i].ToVector<float>(), coefs[1][i].ToVector<float>())
          << "early_stopping " << early_stopping << " layer " << i;
    }
  }
}

TEST(MLPClassifierTest, ReportedLossIsScikitLearnsLogLossPlusPenalty) {
  // One full-batch epoch at a tiny learning rate: the reported loss is the
  // log-loss at the initial weights plus 0.5 * alpha * |W|^2 / n.
  Blobs b = MakeBlobs(10, {0, 1, 2});
  MLPOptions o = Small();
  o.learning_rate_init = 1e-9;
  o.alpha = 0.5;
  o.batch_size = 30;
  MLPClassifier clf(o);
  clf.partial_fit(b.x, b.y, std::vector<int64_t>{0, 1, 2});
  const Tensor proba = clf.predict_proba(b.x);
  double log_loss = 0.0;
  for (int64_t i = 0; i < 30; ++i)
    log_loss -= std::log(proba.GetAsDouble(i * 3 + b.y[i]));
  log_loss /= 30.0;
  const double expected = log_loss + 0.5 * 0.5 * Sum(clf.coefs_()) / 30.0;
  EXPECT_NEAR(clf.loss_, expected, 1e-5 * expected);
}

TEST(MLPRegressorTest, BackgroundGatherPairsEveryRowWithItsTarget) {
  // On the CPU a small net trains on one thread while a second one gathers
  // the next batch (double-buffered; the short last batch has buffers of its
  // own); the reference device gathers in line. An exact linear target is
  // fitted to a tiny error only if every batch pairs its rows with their own
  // targets, and both devices must see the same batches (same weights).
  const int64_t n = 69;  // Batches of 16 and a last one of 5.
  const auto [x, y] = LinearTarget(n, 9);
  std::vector<std::vector<Tensor>> coefs;
  for (const char* device : {"cpu", "reference"}) {
    MLPOptions o = Small(150);
    o.activation = "identity";
    o.alpha = 0.0;
    o.learning_rate_init = 0.02;
    o.batch_size = 16;
    o.tol = 0.0;
    o.device = Device(device);
    std::ostringstream warnings;
    o.warnings = &warnings;
    MLPRegressor reg(o);
    reg.fit(x, y);
    EXPECT_LT(reg.loss_, 1e-4) << device;
    coefs.push_back(reg.coefs_());
  }
  for (size_t l = 0; l < coefs[0].size(); ++l) {
    for (int64_t i = 0; i < coefs[0][l].num_elements(); ++i) {
      EXPECT_NEAR(coefs[0][l].GetAsDouble(i), coefs[1][l].GetAsDouble(i), 1e-3)
          << "layer " << l << " element " << i;
    }
  }
}

TEST(MLPRegressorTest, FitsALinearTargetAndReportsHalfTheMse) {
  const int64_t n = 200;
  const auto [x, y] = LinearTarget(n, 5);
  MLPOptions o = Small(300);
  o.learning_rate_init = 0.01;
  std::ostringstream warnings;
  o.warnings = &warnings;
  MLPRegressor reg(o);
  reg.fit(x, y);
  EXPECT_EQ(reg.out_activation_, "identity");
  const Tensor predicted = reg.predict(x);
  EXPECT_EQ(predicted.shape(), Shape({n}));
  EXPECT_GT(reg.score(x, Tensor::FromVector<double>(y, Shape{n})), 0.95);

  // Reported loss at (almost) fixed weights: 0.5 * MSE + 0.5*alpha*|W|^2/n.
  o.learning_rate_init = 1e-9;
  o.alpha = 0.3;
  o.batch_size = n;
  MLPRegressor still(o);
  still.partial_fit(x, Tensor::FromVector<double>(y, Shape{n}));
  const Tensor p = still.predict(x);
  double mse = 0.0;
  for (int64_t i = 0; i < n; ++i) mse += std::pow(p.GetAsDouble(i) - y[i], 2);
  mse /= static_cast<double>(n);
  const double expected = 0.5 * mse + 0.5 * 0.3 * Sum(still.coefs_()) / n;
  EXPECT_NEAR(still.loss_, expected, 1e-5 * expected);
}

TEST(MLPRegressorTest, MultiOutputShapes) {
  Tensor x(DType::kF32, Shape{40, 3});
  Tensor y(DType::kF32, Shape{40, 2});
  for (int64_t i = 0; i < 120; ++i)
    x.data<float>()[i] = static_cast<float>(std::sin(i));
  for (int64_t i = 0; i < 80; ++i)
    y.data<float>()[i] = static_cast<float>(std::cos(i));
  std::ostringstream warnings;
  MLPOptions o = Small(5);
  o.warnings = &warnings;
  MLPRegressor reg(o);
  reg.fit(x, y);
  EXPECT_EQ(reg.n_outputs_, 2);
  EXPECT_EQ(reg.predict(x).shape(), Shape({40, 2}));
  EXPECT_THROW(reg.partial_fit(x, Tensor(DType::kF32, Shape{40, 3})), Error);
}

TEST(MLPTest, AdaptiveLearningRateDividesByFive) {
  Blobs b = MakeBlobs(10, {0, 1});
  MLPOptions o = Small(4);
  o.solver = "sgd";
  o.learning_rate = "adaptive";
  o.learning_rate_init = 0.001;
  o.tol = 100.0;  // Nothing counts as an improvement.
  o.n_iter_no_change = 1;
  o.verbose = true;
  std::ostringstream out, warnings;
  o.out = &out;
  o.warnings = &warnings;
  MLPClassifier clf(o);
  clf.fit(b.x, b.y);
  EXPECT_THAT(out.str(), HasSubstr("Iteration 1, loss = "));
  EXPECT_THAT(
      out.str(),
      HasSubstr("Training loss did not improve more than tol=100.000000 "
                "for 1 consecutive epochs. Setting learning rate to "
                "0.000200"));
  EXPECT_EQ(clf.n_iter_, 4);

  // Without the adaptive schedule the same stall stops training: epoch 1 sets
  // best_loss_, epochs 2 and 3 count, and 2 > n_iter_no_change.
  o.learning_rate = "constant";
  MLPClassifier stops(o);
  stops.fit(b.x, b.y);
  EXPECT_EQ(stops.n_iter_, 3);
  EXPECT_THAT(out.str(), HasSubstr("for 1 consecutive epochs. Stopping."));
}

// One optimizer step from fixed weights against scikit-learn
// (tools/golden/sklearn_mlp.py writes golden/sklearn_step.txt the same way):
// the loss's scale, the L2 mapping, the output layers and the Adam / SGD
// (Nesterov) steps, including the multi-output regressor's factor.
std::vector<double> Pattern(int64_t n, double a, double b, double scale) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(scale * std::sin(a * i + b));
  return v;
}

struct StepCase {
  std::string name;
  bool classifier;
  std::vector<int64_t> hidden;
  std::string activation, solver;
  double alpha;
  int64_t k;  // classes or outputs
};

// "<case> <what>" -> values, from golden/sklearn_step.txt.
std::map<std::string, std::vector<double>> ReadStepGolden() {
  std::ifstream in("tests/frontend/golden/sklearn_step.txt");
  EXPECT_TRUE(in.good()) << "golden/sklearn_step.txt missing";
  std::map<std::string, std::vector<double>> golden;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, what;
    fields >> name >> what;
    double v;
    while (fields >> v) golden[name + " " + what].push_back(v);
  }
  return golden;
}

std::vector<double> FlatWeights(const BaseMultilayerPerceptron& est) {
  std::vector<double> flat;
  const auto coefs = est.coefs_();
  const auto intercepts = est.intercepts_();
  for (size_t l = 0; l < coefs.size(); ++l) {
    for (int64_t i = 0; i < coefs[l].num_elements(); ++i)
      flat.push_back(coefs[l].GetAsDouble(i));
    for (int64_t i = 0; i < intercepts[l].num_elements(); ++i)
      flat.push_back(intercepts[l].GetAsDouble(i));
  }
  return flat;
}

TEST(MLPTest, OneStepMatchesScikitLearn) {
  auto golden = ReadStepGolden();
  const std::vector<StepCase> cases = {
      {"multiclass_relu_adam", true, {4, 3}, "relu", "adam", 0.01, 3},
      {"binary_tanh_sgd", true, {4}, "tanh", "sgd", 0.1, 2},
      {"regress2_logistic_sgd", false, {4}, "logistic", "sgd", 0.05, 2},
      {"regress1_identity_adam", false, {3}, "identity", "adam", 0.1, 1},
  };
  const int64_t rows = 12, features = 3;
  const std::vector<double> xv = Pattern(rows * features, 0.7, 0.3, 1.0);
  const Tensor x = Tensor::FromVector<double>(xv, Shape{rows, features});
  for (const StepCase& c : cases) {
    SCOPED_TRACE(c.name);
    MLPOptions o;
    o.hidden_layer_sizes = c.hidden;
    o.activation = c.activation;
    o.solver = c.solver;
    o.alpha = c.alpha;
    o.batch_size = rows;
    o.shuffle = false;
    o.max_iter = 1;
    o.warm_start = true;
    o.random_state = 0;
    o.learning_rate_init = 0.05;
    o.device = Device(Backend());
    std::ostringstream warnings;
    o.warnings = &warnings;
    // Pattern weights, Keras order (kernel [fan_in, fan_out] row-major as
    // scikit-learn's coef_, then bias).
    const auto pattern_weights = [&](int64_t outputs) {
      std::vector<int64_t> units = {features};
      units.insert(units.end(), c.hidden.begin(), c.hidden.end());
      units.push_back(outputs);
      std::vector<Tensor> w;
      for (size_t l = 0; l + 1 < units.size(); ++l) {
        w.push_back(Tensor::FromVector<double>(
            Pattern(units[l] * units[l + 1], 0.37 + l, 0.5, 0.6),
            Shape{units[l], units[l + 1]}));
        w.push_back(Tensor::FromVector<double>(
            Pattern(units[l + 1], 1.3 + l, 0.2, 0.1), Shape{units[l + 1]}));
      }
      return w;
    };
    std::unique_ptr<BaseMultilayerPerceptron> est;
    if (c.classifier) {
      std::vector<int64_t> y;
      for (int64_t i = 0; i < rows; ++i) y.push_back(i * 7 % c.k);
      auto clf = std::make_unique<MLPClassifier>(o);
      clf->fit(x, y);
      clf->model().set_weights(pattern_weights(clf->n_outputs_));
      clf->fit(x, y);
      est = std::move(clf);
    } else {
      const Tensor y =
          Tensor::FromVector<double>(Pattern(rows * c.k, 0.9, 0.1, 2.0),
                                     c.k == 1 ? Shape{rows} : Shape{rows, c.k});
      auto reg = std::make_unique<MLPRegressor>(o);
      reg->fit(x, y);
      reg->model().set_weights(pattern_weights(c.k));
      reg->fit(x, y);
      est = std::move(reg);
    }
    const std::vector<double>& want = golden[c.name + " weights"];
    const std::vector<double> got = FlatWeights(*est);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 2e-5) << "weight " << i;
    // The multi-output regressor reports (n_outputs / 2) * MSE + penalty, the
    // objective scikit-learn's gradient follows, where scikit-learn prints
    // MSE / 2 + penalty (see sklearn.h).
    if (c.classifier || c.k == 1) {
      EXPECT_NEAR(est->loss_, golden[c.name + " loss"][0], 1e-5);
    }
  }
}

// random_state reproduces scikit-learn's draws (numpy's RandomState): short
// fits whose result depends on the initial weights, the stratified or plain
// early-stopping split and every epoch's shuffle match scikit-learn's.
TEST(MLPTest, RandomStateDrawsAsScikitLearn) {
  auto golden = ReadStepGolden();
  const int64_t n = 40, features = 3;
  const Tensor x = Tensor::FromVector<double>(
      Pattern(n * features, 0.61, 0.2, 1.0), Shape{n, features});
  for (const auto& [name, k] : std::vector<std::pair<std::string, int64_t>>{
           {"rng_multiclass", 3}, {"rng_binary", 2}, {"rng_regressor", 1}}) {
    SCOPED_TRACE(name);
    MLPOptions o;
    o.hidden_layer_sizes = {4};
    o.activation = "tanh";
    o.batch_size = 3;
    o.max_iter = 4;
    o.early_stopping = true;
    o.validation_fraction = 0.3;
    o.random_state = 3;
    o.learning_rate_init = 0.01;
    o.n_iter_no_change = 100;
    o.device = Device(Backend());
    std::ostringstream warnings;
    o.warnings = &warnings;
    std::unique_ptr<BaseMultilayerPerceptron> est;
    if (name == "rng_regressor") {
      auto reg = std::make_unique<MLPRegressor>(o);
      reg->fit(x,
               Tensor::FromVector<double>(Pattern(n, 0.9, 0.1, 2.0), Shape{n}));
      est = std::move(reg);
    } else {
      std::vector<int64_t> y;
      for (int64_t i = 0; i < n; ++i) y.push_back(i * 5 % 7 % k);
      auto clf = std::make_unique<MLPClassifier>(o);
      clf->fit(x, y);
      est = std::move(clf);
    }
    const auto& loss = golden[name + " loss_curve"];
    const auto& scores = golden[name + " validation_scores"];
    const auto& weights = golden[name + " weights"];
    ASSERT_EQ(est->loss_curve_.size(), loss.size());
    for (size_t i = 0; i < loss.size(); ++i)
      EXPECT_NEAR(est->loss_curve_[i], loss[i], 1e-5) << "epoch " << i;
    ASSERT_EQ(est->validation_scores_.size(), scores.size());
    for (size_t i = 0; i < scores.size(); ++i)
      EXPECT_NEAR(est->validation_scores_[i], scores[i], 1e-4) << "epoch " << i;
    const std::vector<double> got = FlatWeights(*est);
    ASSERT_EQ(got.size(), weights.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], weights[i], 1e-4) << "weight " << i;
  }
}

TEST(MLPTest, BadInputsRaise) {
  Blobs b = MakeBlobs(10, {0, 1, 2});
  const auto message = [&](auto&& call) -> std::string {
    try {
      call();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  MLPOptions lbfgs = Small();
  lbfgs.solver = "lbfgs";
  EXPECT_THAT(message([&] { MLPClassifier(lbfgs).fit(b.x, b.y); }),
              HasSubstr("solver='lbfgs' is not supported"));
  MLPOptions zero = Small();
  zero.hidden_layer_sizes = {4, 0};
  EXPECT_THAT(message([&] { MLPClassifier(zero).fit(b.x, b.y); }),
              HasSubstr("hidden_layer_sizes must be > 0"));
  MLPOptions act = Small();
  act.activation = "softmax";
  EXPECT_THAT(message([&] {
                MLPRegressor(act).fit(b.x, Tensor(DType::kF32, Shape{30}));
              }),
              HasSubstr("activation must be one of"));

  MLPClassifier clf(Small(3));
  EXPECT_THAT(message([&] { clf.predict(b.x); }),
              HasSubstr("is not fitted yet"));
  EXPECT_THAT(message([&] {
                clf.fit(Tensor(DType::kF32, Shape{30, 2, 1}), b.y);
              }),
              HasSubstr("expected a 2D array"));
  EXPECT_THAT(message([&] { clf.fit(b.x, std::vector<int64_t>(29, 0)); }),
              HasSubstr("inconsistent numbers of samples: [30, 29]"));
  EXPECT_THAT(message([&] { clf.fit(b.x, std::vector<int64_t>(30, 4)); }),
              HasSubstr("at least 2 classes"));
  EXPECT_THAT(message([&] { clf.fit(b.x, Tensor(DType::kF32, Shape{30})); }),
              HasSubstr("class labels must be integers"));
  Tensor nan_x = b.x;
  nan_x.data<float>()[7] = NAN;
  EXPECT_THAT(message([&] { clf.fit(nan_x, b.y); }),
              HasSubstr("contains NaN (sample 3)"));
  // Past the first block of the vectorized scan, in f64 too.
  Tensor wide_x(DType::kF64, Shape{3000, 3});
  std::vector<int64_t> wide_y(3000);
  for (int64_t i = 0; i < 3000; ++i) wide_y[i] = i % 2;
  wide_x.data<double>()[3 * 2500 + 1] = -INFINITY;
  EXPECT_THAT(message([&] { clf.fit(wide_x, wide_y); }),
              HasSubstr("contains infinity (sample 2500)"));

  std::ostringstream warnings;
  MLPOptions quiet = Small(3);
  quiet.warnings = &warnings;
  MLPClassifier fitted(quiet);
  fitted.fit(b.x, b.y);
  EXPECT_THAT(
      message([&] {
        fitted.predict(Tensor(DType::kF32, Shape{4, 3}));
      }),
      HasSubstr("X has 3 features, but MLPClassifier is expecting 2 features"));
  MLPOptions early = quiet;
  early.early_stopping = true;
  MLPClassifier es(early);
  EXPECT_THAT(message([&] {
                es.partial_fit(b.x, b.y, std::vector<int64_t>{0, 1, 2});
              }),
              HasSubstr("partial_fit does not support early_stopping=True"));
  MLPOptions tiny = quiet;
  tiny.early_stopping = true;
  tiny.validation_fraction = 0.01;
  EXPECT_THAT(message([&] {
                MLPRegressor(tiny).fit(b.x, Tensor(DType::kF32, Shape{30}));
              }),
              HasSubstr("The validation set is too small"));
}

}  // namespace
}  // namespace sequent
