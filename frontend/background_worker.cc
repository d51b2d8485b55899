#include "frontend/background_worker.h"

#include <utility>

namespace sequent {

BackgroundWorker::BackgroundWorker() : thread_([this] { Loop(); }) {}

BackgroundWorker::~BackgroundWorker() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return !pending_; });
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void BackgroundWorker::Start(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = std::move(job);
    pending_ = true;
  }
  wake_.notify_one();
}

void BackgroundWorker::Wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return !pending_; });
}

void BackgroundWorker::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return pending_ || stop_; });
    if (pending_) {
      std::function<void()> job = std::move(job_);
      lock.unlock();
      job();
      lock.lock();
      pending_ = false;
      done_.notify_all();
      continue;
    }
    if (stop_) return;
  }
}

}  // namespace sequent
