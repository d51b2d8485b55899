// One training step through the whole stack (frontend -> IR -> autodiff ->
// backend) against PyTorch, from the same initial weights and batch: an Adam
// step of the 784-512-512-10 MLP and an SGD step of a small CNN. Golden values
// come from tools/golden/torch_parity.py; the formulas for weights, inputs and
// labels below are the script's.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "frontend/model.h"

namespace sequent {
namespace {

struct Golden {
  double loss = 0;
  std::vector<std::vector<double>>
      weights;  // Subsample of each updated weight.
};

Golden ReadGolden(const std::string& path) {
  std::ifstream in(path);
  Golden g;
  std::string word;
  in >> word >> g.loss;
  int index;
  size_t count;
  while (in >> word >> index >> count) {
    std::vector<double> values(count);
    for (double& v : values) in >> v;
    g.weights.push_back(std::move(values));
  }
  return g;
}

std::vector<double> Pattern(int64_t n, double a, double b, double scale) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[i] = scale * std::sin(a * static_cast<double>(i) + b);
  return v;
}

Tensor PatternTensor(Shape shape, double a, double b, double scale,
                     double offset = 0) {
  Tensor t(FloatX(), shape);
  const std::vector<double> v = Pattern(t.num_elements(), a, b, scale);
  for (int64_t i = 0; i < t.num_elements(); ++i)
    t.SetFromDouble(i, v[i] + offset);
  return t;
}

Tensor Labels(int64_t n, int64_t classes, double a) {
  Tensor t(DType::kI32, Shape{n});
  for (int64_t i = 0; i < n; ++i) {
    const double v =
        std::floor(std::abs(std::sin(a * static_cast<double>(i) + 0.5)) * 1000);
    t.data<int32_t>()[i] =
        static_cast<int32_t>(std::fmod(v, static_cast<double>(classes)));
  }
  return t;
}

struct Errors {
  double elementwise =
      0;  // max |ours - golden| / max(|golden|, 1% of the largest |golden|)
  double normwise = 0;  // ||ours - golden|| / ||golden||
};

// Over the subsample the golden file holds (every step-th element, as the
// script takes it).
Errors RelativeErrors(const Tensor& ours, const std::vector<double>& golden) {
  const int64_t step = std::max<int64_t>(1, ours.num_elements() / 500);
  double scale = 0;
  for (double g : golden) scale = std::max(scale, std::abs(g));
  Errors e;
  double diff2 = 0, norm2 = 0;
  for (size_t k = 0; k < golden.size(); ++k) {
    const double got = ours.GetAsDouble(static_cast<int64_t>(k) * step);
    const double d = std::abs(got - golden[k]);
    e.elementwise = std::max(e.elementwise,
                             d / std::max(std::abs(golden[k]), 0.01 * scale));
    diff2 += d * d;
    norm2 += golden[k] * golden[k];
  }
  e.normwise = std::sqrt(diff2 / norm2);
  return e;
}

// The golden values are f64. The reference backend runs the models in f64 and
// must agree elementwise; the CPU backend computes in f32, where Adam's
// normalized step amplifies rounding for near-zero gradients, so it must agree
// normwise to 1e-5 (and elementwise to 1e-3).
struct Backend {
  const char* device;
  DType dtype;
};

class ParityTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { SetFloatX(GetParam().dtype); }
  void TearDown() override { SetFloatX(DType::kF32); }
  void ExpectMatches(const Sequential& model,
                     const std::vector<Tensor>& updated,
                     const std::vector<std::vector<double>>& golden) {
    for (size_t i = 0; i < updated.size(); ++i) {
      const Errors e = RelativeErrors(updated[i], golden[i]);
      if (GetParam().dtype == DType::kF64) {
        EXPECT_LE(e.elementwise, 1e-5) << model.weight_names()[i];
      } else {
        EXPECT_LE(e.normwise, 1e-5) << model.weight_names()[i];
        EXPECT_LE(e.elementwise, 1e-3) << model.weight_names()[i];
      }
    }
  }
};

TEST_P(ParityTest, AdamStepOfTheMlpMatchesPyTorch) {
  const Golden golden = ReadGolden("tests/frontend/golden/torch_adam_mlp.txt");
  ASSERT_EQ(golden.weights.size(), 6u);
  Sequential model(
      {Input({784}), Dense(512, "relu"), Dense(512, "relu"), Dense(10)});
  model.compile(Adam{.learning_rate = 1e-3,
                     .beta_1 = 0.9,
                     .beta_2 = 0.999,
                     .epsilon = 1e-7},
                SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device(GetParam().device));
  const int64_t sizes[3][2] = {{784, 512}, {512, 512}, {512, 10}};
  std::vector<Tensor> weights;
  for (int k = 0; k < 3; ++k) {
    weights.push_back(
        PatternTensor(Shape{sizes[k][0], sizes[k][1]}, 0.37 + 0.11 * k, 0.1 * k,
                      1.0 / std::sqrt(static_cast<double>(sizes[k][0]))));
    weights.push_back(
        PatternTensor(Shape{sizes[k][1]}, 0.23 + 0.05 * k, 0.3, 0.01));
  }
  model.set_weights(weights);
  const Tensor x = PatternTensor(Shape{16, 784}, 0.013, 0.0, 0.5, 0.5);
  const Logs logs = model.train_on_batch(x, Labels(16, 10, 0.71));
  EXPECT_NEAR(logs.at("loss"), golden.loss, 1e-5 * golden.loss);
  ExpectMatches(model, model.get_weights(), golden.weights);
}

TEST_P(ParityTest, SgdStepOfTheCnnMatchesPyTorch) {
  const Golden golden = ReadGolden("tests/frontend/golden/torch_sgd_cnn.txt");
  ASSERT_EQ(golden.weights.size(), 4u);
  Sequential model({Input({8, 8, 1}), Conv2D(4, {3, 3}, {.activation = "relu"}),
                    MaxPooling2D({2, 2}), Flatten(), Dense(10)});
  model.compile(SGD{.learning_rate = 0.1},
                SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device(GetParam().device));
  model.set_weights({PatternTensor(Shape{3, 3, 1, 4}, 0.41, 0.2, 0.3),
                     PatternTensor(Shape{4}, 0.3, 0.1, 0.05),
                     PatternTensor(Shape{36, 10}, 0.29, 0.4, 0.2),
                     PatternTensor(Shape{10}, 0.17, 0.2, 0.01)});
  const Tensor x = PatternTensor(Shape{4, 8, 8, 1}, 0.057, 0.3, 0.5, 0.5);
  const Logs logs = model.train_on_batch(x, Labels(4, 10, 0.37));
  EXPECT_NEAR(logs.at("loss"), golden.loss, 1e-5 * golden.loss);
  ExpectMatches(model, model.get_weights(), golden.weights);
}

INSTANTIATE_TEST_SUITE_P(Backends, ParityTest,
                         ::testing::Values(Backend{"reference", DType::kF64},
                                           Backend{"cpu", DType::kF32}),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(info.param.device);
                         });

}  // namespace
}  // namespace sequent
