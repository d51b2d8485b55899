#ifndef SEQUENT_FRONTEND_BACKGROUND_WORKER_H_
#define SEQUENT_FRONTEND_BACKGROUND_WORKER_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace sequent {

// One persistent thread that runs one job at a time: the input pipeline uses
// it to gather batch i+1 while step i runs on the other core. A thread per
// batch would cost more than the gather it hides.
class BackgroundWorker {
 public:
  BackgroundWorker();
  // Waits for the running job, then stops the thread.
  ~BackgroundWorker();
  BackgroundWorker(const BackgroundWorker&) = delete;
  BackgroundWorker& operator=(const BackgroundWorker&) = delete;

  // Starts `job`; the previous one must have been waited for.
  void Start(std::function<void()> job);
  // Blocks until the started job has finished (at once when none runs).
  void Wait();

 private:
  void Loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::function<void()> job_;
  bool pending_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_BACKGROUND_WORKER_H_
