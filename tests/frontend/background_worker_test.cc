#include "frontend/background_worker.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sequent {
namespace {

TEST(BackgroundWorkerTest, RunsJobsOneAfterAnotherOffTheCallingThread) {
  BackgroundWorker worker;
  std::vector<int> seen;
  std::thread::id ran_on;
  for (int i = 0; i < 100; ++i) {
    worker.Start([&seen, &ran_on, i] {
      seen.push_back(i);
      ran_on = std::this_thread::get_id();
    });
    worker.Wait();
    ASSERT_EQ(seen.size(), static_cast<size_t>(i + 1));
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(BackgroundWorkerTest, WaitBlocksUntilTheJobHasFinished) {
  BackgroundWorker worker;
  std::atomic<bool> done{false};
  worker.Start([&done] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    done = true;
  });
  worker.Wait();
  EXPECT_TRUE(done);
  worker.Wait();  // Nothing running: returns at once.
}

TEST(BackgroundWorkerTest, DestructorFinishesTheRunningJob) {
  std::atomic<bool> done{false};
  {
    BackgroundWorker worker;
    worker.Start([&done] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      done = true;
    });
  }
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace sequent
