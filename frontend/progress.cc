#include "frontend/progress.h"

#include <unistd.h>

#include <cmath>
#include <iostream>

#include "fmt/format.h"

namespace sequent {
namespace {

constexpr int kBarWidth = 20;
constexpr const char* kBarChar = "\u2501";  // ━

std::string Repeat(const char* s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

int Digits(int64_t n) {
  return n <= 0 ? 1 : static_cast<int>(std::log10(n)) + 1;
}

std::string Metrics(const std::map<std::string, double>& logs) {
  std::string out;
  for (const auto& [name, value] : logs)
    out += fmt::format(" - {}: {}", name, ProgressBar::FormatValue(value));
  return out;
}

}  // namespace

bool IsTerminal(const std::ostream& out) {
  if (&out == &std::cout) return isatty(STDOUT_FILENO) != 0;
  if (&out == &std::cerr) return isatty(STDERR_FILENO) != 0;
  return false;
}

ProgressBar::ProgressBar(int64_t target, int verbose, bool dynamic,
                         std::ostream& out)
    : target_(target), verbose_(verbose), dynamic_(dynamic), out_(out) {
  start_ = Clock::now();
  last_update_ = start_ - std::chrono::seconds(1);
}

std::string ProgressBar::FormatValue(double value) {
  // Keras: 4 decimals, or scientific notation for tiny values.
  if (std::abs(value) > 1e-3) return fmt::format("{:.4f}", value);
  return fmt::format("{:.4e}", value);
}

std::string ProgressBar::FormatStepTime(double seconds) {
  if (seconds >= 1 || seconds == 0)
    return fmt::format(" {:.0f}s/step", seconds);
  if (seconds >= 1e-3) return fmt::format(" {:.0f}ms/step", seconds * 1e3);
  return fmt::format(" {:.0f}us/step", seconds * 1e6);
}

std::string ProgressBar::FormatLine(int64_t current, int64_t target,
                                    double elapsed_seconds,
                                    double seconds_per_step,
                                    const std::map<std::string, double>& logs) {
  const int filled =
      target > 0 ? static_cast<int>(kBarWidth * static_cast<double>(current) /
                                    static_cast<double>(target))
                 : 0;
  return fmt::format("{:>{}}/{} {}{} {:.0f}s{}{}", current, Digits(target),
                     target, Repeat(kBarChar, filled),
                     Repeat(kBarChar, kBarWidth - filled), elapsed_seconds,
                     FormatStepTime(seconds_per_step), Metrics(logs));
}

double ProgressBar::SecondsPerStep(int64_t current, Clock::time_point now) {
  if (current <= 0) return 0.0;
  // Like Keras, the first (warm-up) step is left out of the estimate once there
  // are more.
  double seconds;
  if (have_first_step_ && current > 1) {
    seconds = std::chrono::duration<double>(now - after_first_step_).count() /
              static_cast<double>(current - 1);
  } else {
    seconds = std::chrono::duration<double>(now - start_).count() /
              static_cast<double>(current);
  }
  if (current == 1 && !have_first_step_) {
    have_first_step_ = true;
    after_first_step_ = now;
  }
  return seconds;
}

void ProgressBar::Update(int64_t current,
                         const std::map<std::string, double>& logs,
                         bool finalize) {
  const Clock::time_point now = Clock::now();
  const double per_step = SecondsPerStep(current, now);
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (verbose_ == 2 || (verbose_ == 1 && !dynamic_)) {
    if (!finalize) return;
    if (verbose_ == 2) {
      out_ << fmt::format("{:>{}}/{} - {:.0f}s -{}{}\n", current,
                          Digits(target_), target_, elapsed,
                          FormatStepTime(per_step), Metrics(logs));
    } else {
      out_ << FormatLine(current, target_, elapsed, per_step, logs) << "\n";
    }
    out_.flush();
    return;
  }
  if (verbose_ != 1) return;
  if (!finalize && now - last_update_ < std::chrono::milliseconds(50)) return;
  last_update_ = now;
  const int filled =
      target_ > 0 ? static_cast<int>(kBarWidth * static_cast<double>(current) /
                                     static_cast<double>(target_))
                  : 0;
  std::string info;
  if (!finalize && target_ > 0) {
    const double eta = per_step * static_cast<double>(target_ - current);
    std::string eta_text;
    if (eta > 3600) {
      eta_text = fmt::format("{}:{:02}:{:02}", static_cast<int>(eta / 3600),
                             static_cast<int>(std::fmod(eta, 3600) / 60),
                             static_cast<int>(std::fmod(eta, 60)));
    } else if (eta > 60) {
      eta_text = fmt::format("{}:{:02}", static_cast<int>(eta / 60),
                             static_cast<int>(std::fmod(eta, 60)));
    } else {
      eta_text = fmt::format("{}s", static_cast<int>(eta));
    }
    info = fmt::format(" \x1b[1m{}\x1b[0m", eta_text);
  } else {
    info = fmt::format(" \x1b[1m{:.0f}s\x1b[0m", elapsed);
  }
  info += FormatStepTime(per_step) + Metrics(logs);
  std::string line = fmt::format("\r\x1b[1m{:>{}}/{}\x1b[0m ", current,
                                 Digits(target_), target_);
  if (filled > 0)
    line += fmt::format("\x1b[32m{}\x1b[0m", Repeat(kBarChar, filled));
  line +=
      fmt::format("\x1b[37m{}\x1b[0m", Repeat(kBarChar, kBarWidth - filled));
  line += info;
  // Visible width: digits, bar and info without escape codes.
  const size_t width = 2 * Digits(target_) + 2 + kBarWidth + info.size() - 8;
  if (previous_width_ > width)
    line += std::string(previous_width_ - width, ' ');
  previous_width_ = width;
  if (finalize) line += "\n";
  out_ << line;
  out_.flush();
}

}  // namespace sequent
