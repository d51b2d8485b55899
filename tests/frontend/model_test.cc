// End-to-end tests of the Keras-style API on small data: training works, every
// bad input raises sequent::Error with a message that says what to fix.
#include "frontend/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

namespace sequent {
namespace {

// Two Gaussian-ish blobs, linearly separable: label = (x0 + x1 > 0).
std::pair<Tensor, Tensor> Blobs(int64_t n, uint64_t seed = 1) {
  Tensor x(DType::kF32, Shape{n, 4});
  Tensor y(DType::kI32, Shape{n});
  uint64_t state = seed;
  const auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  };
  for (int64_t i = 0; i < n; ++i) {
    const int label = static_cast<int>(i % 2);
    for (int j = 0; j < 4; ++j) {
      x.data<float>()[i * 4 + j] =
          static_cast<float>(next() + (label ? 1.5 : -1.5));
    }
    y.data<int32_t>()[i] = label;
  }
  return {x, y};
}

Sequential SmallClassifier() {
  return Sequential({Input({4}), Dense(8, "relu"), Dense(2)});
}

void CompileSmall(Sequential& model, Device device = Device::CPU()) {
  model.compile(Adam{.learning_rate = 0.01},
                SparseCategoricalCrossentropy{.from_logits = true},
                {"accuracy"}, device);
}

// Asserts that `fn` throws sequent::Error whose message contains `needle`.
void ExpectError(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << needle;
  }
}

class ModelTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ModelTest, TrainsASeparableProblem) {
  auto [x, y] = Blobs(256);
  Sequential model = SmallClassifier();
  CompileSmall(model, Device(GetParam()));
  std::ostringstream log;
  History h = model.fit(x, y,
                        {.batch_size = 32,
                         .epochs = 5,
                         .verbose = 2,
                         .validation_split = 0.25,
                         .out = &log});
  ASSERT_EQ(h.epoch.size(), 5u);
  EXPECT_LT(h.history["loss"].back(), h.history["loss"].front());
  EXPECT_GT(h.history["val_accuracy"].back(), 0.95);
  EXPECT_EQ(h.params["steps"], 6);  // 192 training samples in batches of 32.
  const Logs eval = model.evaluate(x, y, {.verbose = 0});
  EXPECT_GT(eval.at("accuracy"), 0.95);
  const Tensor p = model.predict(x);
  EXPECT_EQ(p.shape(), (Shape{256, 2}));
  EXPECT_NE(log.str().find("Epoch 5/5"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Devices, ModelTest,
                         ::testing::Values("cpu", "reference"));

TEST(ModelApiTest, LastShortBatchAndTrainOnBatch) {
  auto [x, y] = Blobs(70);
  Sequential model = SmallClassifier();
  CompileSmall(model);
  History h = model.fit(x, y, {.batch_size = 32, .epochs = 1, .verbose = 0});
  EXPECT_EQ(h.params["steps"], 3);  // 32 + 32 + 6.
  const Logs logs = model.train_on_batch(x, y);
  EXPECT_TRUE(logs.contains("loss"));
  EXPECT_TRUE(logs.contains("accuracy"));
  EXPECT_EQ(model.predict_on_batch(x).shape(), (Shape{70, 2}));
}

TEST(ModelApiTest, WeightsRoundTrip) {
  Sequential model = SmallClassifier();
  CompileSmall(model);
  std::vector<Tensor> w = model.get_weights();
  ASSERT_EQ(w.size(), 4u);  // kernel, bias per Dense, like Keras.
  EXPECT_EQ(w[0].shape(), (Shape{4, 8}));
  w[1].data<float>()[0] = 42.0f;
  model.set_weights(w);
  EXPECT_EQ(model.get_weights()[1].data<float>()[0], 42.0f);
  ExpectError([&] { model.set_weights({w[0]}); },
              "the model has 4 weights, got 1");
  std::vector<Tensor> bad = w;
  bad[0] = Tensor(DType::kF32, Shape{3, 8});
  ExpectError([&] { model.set_weights(bad); },
              "must have shape (4, 8), got (3, 8)");
}

TEST(ModelApiTest, CallbacksDriveTraining) {
  auto [x, y] = Blobs(128);
  Sequential model = SmallClassifier();
  CompileSmall(model);
  const std::string csv = ::testing::TempDir() + "/log.csv";
  std::vector<double> rates;
  auto record = std::make_shared<LambdaCallback>();
  record->on_epoch_end_fn = [&](int, Logs&) {
    rates.push_back(model.learning_rate());
  };
  History h = model.fit(
      x, y,
      {.batch_size = 16,
       .epochs = 50,
       .verbose = 0,
       .validation_split = 0.25,
       .callbacks = {
           std::make_shared<LearningRateScheduler>(
               [](int epoch, double lr) { return epoch == 0 ? lr : lr * 0.5; }),
           std::make_shared<EarlyStopping>(
               EarlyStoppingOptions{.monitor = "val_loss",
                                    .patience = 1,
                                    .restore_best_weights = true}),
           std::make_shared<CSVLogger>(csv), record}});
  EXPECT_LT(h.epoch.size(),
            50u);  // Stopped early: the halving rate stalls progress.
  ASSERT_GE(rates.size(), 2u);
  EXPECT_DOUBLE_EQ(rates[1], rates[0] * 0.5);
  std::ifstream in(csv);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header, "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss");
}

TEST(ModelApiTest, TerminateOnNaNStops) {
  auto [x, y] = Blobs(64);
  Sequential model = SmallClassifier();
  model.compile(SGD{.learning_rate = 1e30},
                SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  History h = model.fit(x, y,
                        {.batch_size = 8,
                         .epochs = 20,
                         .verbose = 0,
                         .callbacks = {std::make_shared<TerminateOnNaN>()}});
  EXPECT_LT(h.epoch.size(), 20u);
}

// The bad-input table: one row per mistake, each checked for the text that says
// what to fix.
struct BadInput {
  const char* name;
  std::function<void()> action;
  const char* message;
};

std::vector<BadInput> BadInputs() {
  static auto [x, y] = Blobs(16);
  const auto compiled = [] {
    auto model = std::make_shared<Sequential>(SmallClassifier());
    CompileSmall(*model);
    return model;
  };
  std::vector<BadInput> inputs = {
      {"wrong_x_shape",
       [=] {
         compiled()->fit(Tensor(DType::kF32, Shape{16, 5}), y, {.verbose = 0});
       },
       "x has shape (16, 5), but the model's Input expects (None, 4)"},
      {"labels_out_of_range",
       [=] {
         Tensor bad = y;
         bad.data<int32_t>()[3] = 7;
         compiled()->fit(x, bad, {.verbose = 0});
       },
       "label 7 at sample 3 is out of range: the model has 2 outputs"},
      {"xy_length_mismatch",
       [=] {
         compiled()->fit(x, Tensor(DType::kI32, Shape{15}), {.verbose = 0});
       },
       "x and y have different numbers of samples: x has 16, y has 15"},
      {"unknown_optimizer", [] { SmallClassifier().compile("adamm", "mse"); },
       "unknown optimizer 'adamm' (valid: adagrad, adam, adamw, rmsprop, sgd)"},
      {"unknown_loss",
       [] { SmallClassifier().compile("adam", "crossentropy"); },
       "unknown loss 'crossentropy'"},
      {"unknown_metric",
       [] {
         SmallClassifier().compile("adam", "mse", {"precision"}, Device::CPU());
       },
       "unknown metric 'precision'"},
      {"unknown_activation",
       [] {
         Sequential({Input({4}), Dense(2, "relux")})
             .compile("adam", "mse", {}, Device::CPU());
       },
       "layer 'dense_"},
      {"nan_in_x",
       [=] {
         Tensor bad = x;
         bad.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
         compiled()->fit(bad, y, {.verbose = 0});
       },
       "x contains NaN (sample 1)"},
      {"empty_data",
       [] {
         auto model = std::make_shared<Sequential>(SmallClassifier());
         CompileSmall(*model);
         model->fit(Tensor(DType::kF32, Shape{0, 4}),
                    Tensor(DType::kI32, Shape{0}), {.verbose = 0});
       },
       "x is empty (0 samples)"},
      {"validation_split_too_big",
       [=] { compiled()->fit(x, y, {.verbose = 0, .validation_split = 1.0}); },
       "validation_split must be in [0, 1), got 1"},
      {"validation_split_negative",
       [=] { compiled()->fit(x, y, {.verbose = 0, .validation_split = -0.1}); },
       "validation_split must be in [0, 1), got -0.1"},
      {"batch_size_zero",
       [=] { compiled()->fit(x, y, {.batch_size = 0, .verbose = 0}); },
       "batch_size must be a positive integer, got 0"},
      {"not_compiled", [=] { SmallClassifier().fit(x, y); },
       "must be compiled first"},
      {"no_input", [] { Sequential({Dense(3)}).summary_string(); },
       "has no input shape: start it with Input({...})"},
      {"dense_needs_flatten",
       [] {
         Sequential({Input({28, 28}), Dense(10)}).summary_string();
       },
       "Dense expects a 2-D input (batch, features), got f32[N,28,28]; add a "
       "Flatten() layer"},
      {"nothing_to_train",
       [=] {
         Sequential head({Input({4}), Activation("softmax")});
         head.compile("adam", "mse", {}, Device::CPU());
         EXPECT_EQ(head.predict(x, {.verbose = 0}).shape(), (Shape{16, 4}));
         head.fit(x, Tensor(DType::kF32, Shape{16, 4}), {.verbose = 0});
       },
       "has no trainable variables to train; it can still predict"},
      {"unknown_device", [] { Device("tpu"); }, "unknown device 'tpu'"},
      {"one_hot_with_sparse_loss",
       [=] {
         compiled()->fit(x, Tensor(DType::kF32, Shape{16, 2}), {.verbose = 0});
       },
       "sparse_categorical_crossentropy wants integer labels of shape "
       "(samples,)"},
  };
  // A CUDA request fails unless a GPU is usable: in a plain build there is no
  // CUDA backend; a --config=cuda build needs a visible GPU.
  if (!CudaAvailable()) {
    inputs.push_back(
        {"cuda_unavailable",
         [] { SmallClassifier().compile("adam", "mse", {}, Device::CUDA()); },
         CudaBuilt() ? "CUDA requested but no GPU is visible: "
                     : "has no CUDA backend"});
  }
  return inputs;
}

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, RaisesOneErrorTypeSayingWhatToFix) {
  ExpectError(GetParam().action, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(Table, BadInputTest, ::testing::ValuesIn(BadInputs()),
                         [](const ::testing::TestParamInfo<BadInput>& info) {
                           return std::string(info.param.name);
                         });

TEST(DeviceTest, ScopedDeviceAndAuto) {
  // CUDA when this build has the CUDA backend and a GPU is visible.
  EXPECT_EQ(Device::Auto().type(), CudaAvailable() ? "cuda" : "cpu");
  if (!CudaBuilt()) {
    EXPECT_FALSE(CudaAvailable());
  }
  {
    WithDevice scope("reference");
    EXPECT_EQ(WithDevice::Current().type(), "reference");
    Sequential model = SmallClassifier();
    model.compile("adam", SparseCategoricalCrossentropy{.from_logits = true});
    EXPECT_EQ(model.device().type(), "reference");
  }
  EXPECT_EQ(WithDevice::Current().type(), "cpu");
  EXPECT_EQ(Device("cuda:1").ToString(), "cuda:1");
}

}  // namespace
}  // namespace sequent
