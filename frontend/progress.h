#ifndef SEQUENT_FRONTEND_PROGRESS_H_
#define SEQUENT_FRONTEND_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>

namespace sequent {

// Keras 3's progress bar for one epoch: "1875/1875 ━━━━━━━━━━━━━━━━━━━━ 2s
// 1ms/step - accuracy: 0.8812 - loss: 0.3301". On a terminal (verbose=1) it
// redraws in place, with Keras's colours; elsewhere it writes only the finished
// line, so log files get one line per epoch. verbose=2 writes Keras's compact
// epoch line.
class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  ProgressBar(int64_t target, int verbose, bool dynamic, std::ostream& out);

  // `logs` are running averages, printed in their (sorted) order.
  void Update(int64_t current, const std::map<std::string, double>& logs,
              bool finalize);

  // The finished line as a log file sees it, without colours: the format tests
  // compare.
  static std::string FormatLine(int64_t current, int64_t target,
                                double elapsed_seconds, double seconds_per_step,
                                const std::map<std::string, double>& logs);
  static std::string FormatStepTime(double seconds_per_step);
  static std::string FormatValue(double value);

 private:
  double SecondsPerStep(int64_t current, Clock::time_point now);

  int64_t target_;
  int verbose_;
  bool dynamic_;
  std::ostream& out_;
  Clock::time_point start_;
  Clock::time_point last_update_;
  bool have_first_step_ = false;
  Clock::time_point after_first_step_;
  size_t previous_width_ = 0;
};

// Whether `out` is a terminal (std::cout / std::cerr on a tty).
bool IsTerminal(const std::ostream& out);

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_PROGRESS_H_
