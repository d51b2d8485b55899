// keras.mixed_precision's global policy: its values and errors, that compile()
// records it, and which backends act on it.

#include "frontend/mixed_precision.h"

#include <string>

#include "backends/cpu/cpu_backend.h"
#include "frontend/compile_options.h"
#include "frontend/device.h"
#include "frontend/error.h"
#include "frontend/layers.h"
#include "frontend/model.h"
#include "gtest/gtest.h"

namespace sequent {
namespace {

class MixedPrecisionTest : public ::testing::Test {
 protected:
  void TearDown() override { mixed_precision::set_global_policy("float32"); }
};

Sequential Mlp() {
  return Sequential({Input({8}), Dense(16, "relu"), Dense(3)});
}

void Compile(Sequential& model, const Device& device) {
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                device);
}

TEST_F(MixedPrecisionTest, DefaultsToFloat32) {
  EXPECT_EQ(mixed_precision::global_policy(), "float32");
  Sequential model = Mlp();
  EXPECT_EQ(model.dtype_policy(), "float32");
  Compile(model, Device::CPU());
  EXPECT_EQ(model.dtype_policy(), "float32");
  EXPECT_EQ(dynamic_cast<CpuBackend&>(model.backend()).compute_dtype(),
            DType::kF32);
}

TEST_F(MixedPrecisionTest, UnknownPolicyNamesTheAcceptedOnes) {
  mixed_precision::set_global_policy("mixed_bfloat16");
  try {
    mixed_precision::set_global_policy("mixed_float16");
    FAIL() << "mixed_float16 was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'mixed_float16'"), std::string::npos) << message;
    EXPECT_NE(message.find("\"float32\" and \"mixed_bfloat16\""),
              std::string::npos)
        << message;
  }
  EXPECT_EQ(mixed_precision::global_policy(), "mixed_bfloat16");
}

TEST_F(MixedPrecisionTest, CompileRecordsThePolicyAndSetsTheCpuComputeType) {
  Sequential before = Mlp();
  Compile(before, Device::CPU());
  mixed_precision::set_global_policy("mixed_bfloat16");
  EXPECT_EQ(mixed_precision::global_policy(), "mixed_bfloat16");
  Sequential model = Mlp();
  Compile(model, Device::CPU());
  EXPECT_EQ(model.dtype_policy(), "mixed_bfloat16");
  EXPECT_EQ(dynamic_cast<CpuBackend&>(model.backend()).compute_dtype(),
            DType::kBF16);
  // A model compiled earlier keeps its policy.
  EXPECT_EQ(before.dtype_policy(), "float32");
  EXPECT_EQ(dynamic_cast<CpuBackend&>(before.backend()).compute_dtype(),
            DType::kF32);
  mixed_precision::set_global_policy("float32");
  EXPECT_EQ(model.dtype_policy(), "mixed_bfloat16");
}

// The reference backend (the oracle) ignores mixed_bfloat16: its predictions
// equal a float32 model's bit for bit.
TEST_F(MixedPrecisionTest, ReferenceBackendIgnoresThePolicy) {
  Tensor x(DType::kF32, Shape{4, 8});
  for (int64_t i = 0; i < x.num_elements(); ++i)
    x.SetFromDouble(i, 0.37 * static_cast<double>(i % 7) - 1.1);
  Sequential plain = Mlp();
  Compile(plain, Device("reference"));
  mixed_precision::set_global_policy("mixed_bfloat16");
  Sequential mixed = Mlp();
  Compile(mixed, Device("reference"));
  EXPECT_EQ(mixed.dtype_policy(), "mixed_bfloat16");
  mixed.set_weights(plain.get_weights());
  const Tensor a = plain.predict(x), b = mixed.predict(x);
  for (int64_t i = 0; i < a.num_elements(); ++i)
    EXPECT_EQ(a.GetAsDouble(i), b.GetAsDouble(i)) << i;
}

}  // namespace
}  // namespace sequent
