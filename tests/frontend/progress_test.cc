#include "frontend/progress.h"

#include <gtest/gtest.h>

#include <sstream>

namespace sequent {
namespace {

TEST(ProgressTest, FinishedLineMatchesKeras) {
  // Keras 3: "1875/1875 ━━━━━━━━━━━━━━━━━━━━ 2s 1ms/step - accuracy: 0.8812 -
  // loss: 0.3301"
  const std::string line = ProgressBar::FormatLine(
      1875, 1875, 2.4, 0.0012, {{"accuracy", 0.88123}, {"loss", 0.33009}});
  EXPECT_EQ(
      line,
      "1875/1875 "
      "\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501"
      "\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501 2s 1ms/step - "
      "accuracy: 0.8812 - "
      "loss: 0.3301");
}

TEST(ProgressTest, StepTimesAndSmallValues) {
  EXPECT_EQ(ProgressBar::FormatStepTime(2.0), " 2s/step");
  EXPECT_EQ(ProgressBar::FormatStepTime(0.0123), " 12ms/step");
  EXPECT_EQ(ProgressBar::FormatStepTime(0.000045), " 45us/step");
  EXPECT_EQ(ProgressBar::FormatValue(0.0001234), "1.2340e-04");
  EXPECT_EQ(ProgressBar::FormatValue(12.5), "12.5000");
}

TEST(ProgressTest, LogFilesGetOneLinePerEpoch) {
  std::ostringstream out;
  ProgressBar bar(10, /*verbose=*/1, /*dynamic=*/false, out);
  for (int i = 1; i < 10; ++i) bar.Update(i, {{"loss", 1.0}}, false);
  EXPECT_EQ(out.str(), "");
  bar.Update(10, {{"loss", 0.5}}, true);
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_EQ(text.find("\r"), std::string::npos);
  EXPECT_NE(text.find("10/10 "), std::string::npos);
  EXPECT_NE(text.find(" - loss: 0.5000"), std::string::npos);
}

TEST(ProgressTest, PartialBarOnATerminal) {
  std::ostringstream out;
  ProgressBar bar(4, 1, /*dynamic=*/true, out);
  bar.Update(2, {}, /*finalize=*/true);
  // Half the bar green, half grey, like Keras.
  std::string ten;
  for (int i = 0; i < 10; ++i) ten += "\u2501";
  EXPECT_NE(
      out.str().find("\x1b[32m" + ten + "\x1b[0m\x1b[37m" + ten + "\x1b[0m"),
      std::string::npos);
  EXPECT_NE(out.str().find("\r\x1b[1m2/4\x1b[0m "), std::string::npos);
}

TEST(ProgressTest, VerboseTwoIsCompact) {
  std::ostringstream out;
  ProgressBar bar(5, 2, false, out);
  bar.Update(5, {{"loss", 0.25}}, true);
  EXPECT_EQ(out.str().rfind("5/5 - ", 0), 0u);
  EXPECT_NE(out.str().find(" - loss: 0.2500\n"), std::string::npos);
}

}  // namespace
}  // namespace sequent
