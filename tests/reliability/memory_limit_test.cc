// A model whose planned memory exceeds what is available fails when its
// executable is compiled, with the bytes it needs, before anything is
// allocated.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "frontend/sequent.h"

namespace sequent {
namespace {

TEST(MemoryLimitTest, TooLargeAModelFailsWithTheBytesItNeeds) {
  ASSERT_EQ(::setenv("SEQUENT_MEMORY_LIMIT_BYTES", "100000000", 1), 0);
  // Two 100000-unit layers: a 100000 x 100000 f32 kernel alone is 40 GB.
  Sequential model({Input({8}), Dense(100000, "relu"), Dense(100000)});
  model.compile("sgd", "mse", {}, Device::CPU());
  Tensor x(DType::kF32, Shape{2, 8});
  try {
    model.predict(x);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    // Variables: 8*100000 + 100000 + 100000*100000 + 100000 floats.
    EXPECT_NE(m.find("needs 4000"), std::string::npos) << m;
    EXPECT_NE(m.find("only 100000000 are available"), std::string::npos) << m;
  }
  ::unsetenv("SEQUENT_MEMORY_LIMIT_BYTES");
}

TEST(MemoryLimitTest, AModelThatFitsRuns) {
  ASSERT_EQ(::setenv("SEQUENT_MEMORY_LIMIT_BYTES", "100000000", 1), 0);
  Sequential model({Input({8}), Dense(16, "relu"), Dense(2)});
  model.compile("sgd", "mse", {}, Device::CPU());
  EXPECT_EQ(model.predict(Tensor(DType::kF32, Shape{4, 8})).shape(),
            (Shape{4, 2}));
  ::unsetenv("SEQUENT_MEMORY_LIMIT_BYTES");
}

}  // namespace
}  // namespace sequent
