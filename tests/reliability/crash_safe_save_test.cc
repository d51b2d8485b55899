// Crash safety of model.save: a child process saves in a loop and is SIGKILLed
// at random points; after every kill load_model must read a whole checkpoint
// (the one before, or the one being written), never a torn or missing file once
// one save completed. That a loaded checkpoint resumes training bit for bit is
// tests/frontend/saving_test.cc's
// ResumeTest.TwoPlusTwoEpochsEqualFourBitForBit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "frontend/sequent.h"

namespace sequent {
namespace {

constexpr int kKills = 30;

TEST(CrashSafeSaveTest, KilledSavesNeverLeaveATornCheckpoint) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/ckpt.sqm";
  ::unlink(path.c_str());

  Sequential model(
      {Input({8}), Dense(64, "relu"), Dense(64, "relu"), Dense(3)});
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true}, {},
                Device::CPU());
  Tensor x(DType::kF32, Shape{32, 8});
  Tensor y(DType::kI32, Shape{32});
  for (int64_t i = 0; i < 32; ++i) y.data<int32_t>()[i] = i % 3;
  model.fit(x, y, {.verbose = 0});
  const std::vector<Tensor> weights = model.get_weights();

  std::mt19937 rng(2026);
  std::uniform_int_distribution<int> delay_us(0, 20000);
  int completed_total = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    int pipe_fd[2];
    ASSERT_EQ(::pipe(pipe_fd), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // The child only encodes and writes files: no OpenMP work after fork.
      ::close(pipe_fd[0]);
      for (int i = 1;; ++i) {
        model.set_learning_rate(0.001 * i);  // Every save differs.
        model.save(path);
        const char done = 1;
        if (::write(pipe_fd[1], &done, 1) != 1) ::_exit(1);
      }
    }
    ::close(pipe_fd[1]);
    if (kill == 0) {  // Until one save completed there is nothing to load.
      char done = 0;
      ASSERT_EQ(::read(pipe_fd[0], &done, 1), 1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    char buf[4096];
    for (ssize_t n; (n = ::read(pipe_fd[0], buf, sizeof buf)) > 0;)
      completed_total += static_cast<int>(n);
    ::close(pipe_fd[0]);

    try {
      Sequential loaded = load_model(path);
      const std::vector<Tensor> got = loaded.get_weights();
      ASSERT_EQ(got.size(), weights.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(std::memcmp(got[i].raw_data(), weights[i].raw_data(),
                              got[i].num_elements() * sizeof(float)),
                  0);
      }
      EXPECT_GT(loaded.learning_rate(), 0.0);
    } catch (const Error& e) {
      FAIL() << "after kill " << kill << ": " << e.what();
    }
  }
  // The kills landed between and inside saves, not only before the first.
  EXPECT_GT(completed_total, kKills);
}

}  // namespace
}  // namespace sequent
