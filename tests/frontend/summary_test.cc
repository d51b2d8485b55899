// model.summary() against Keras 3's own output for the same two models
// (tests/frontend/golden/keras_summary.txt, made by
// tools/golden/keras_summary.py). Its own binary: layer names come from
// process-wide counters, as in Keras.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "frontend/model.h"

namespace sequent {
namespace {

std::string ReadGolden() {
  std::ifstream in("tests/frontend/golden/keras_summary.txt");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(SummaryTest, MatchesKeras) {
  Sequential mlp({Input({28, 28}), Flatten(), Dense(512, "relu"),
                  Dense(512, "relu"), Dense(10)});
  Sequential cnn({Input({28, 28, 1}),
                  Conv2D(32, {3, 3}, {.activation = "relu"}),
                  MaxPooling2D({2, 2}), BatchNormalization(), Dropout(0.2),
                  Flatten(), Dense(10)});
  const std::string golden = ReadGolden();
  ASSERT_FALSE(golden.empty());
  EXPECT_EQ(mlp.summary_string() + cnn.summary_string(), golden);
}

}  // namespace
}  // namespace sequent
