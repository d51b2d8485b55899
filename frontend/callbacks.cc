#include "frontend/callbacks.h"

#include <cmath>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "frontend/error.h"
#include "frontend/model.h"

namespace sequent {
namespace {

std::optional<double> Monitored(const Logs& logs, const std::string& monitor,
                                const char* callback) {
  auto it = logs.find(monitor);
  if (it != logs.end()) return it->second;
  std::string available;
  for (const auto& [name, value] : logs)
    absl::StrAppend(&available, available.empty() ? "" : ", ", name);
  std::cerr << "WARNING: " << callback << " is conditioned on metric '"
            << monitor
            << "' which is not available. Available metrics are: " << available
            << "\n";
  return std::nullopt;
}

}  // namespace

bool MonitorIncreases(const std::string& monitor, const std::string& mode) {
  if (mode == "max") return true;
  if (mode == "min") return false;
  if (mode != "auto") {
    throw Error(absl::StrCat(
        "callback mode must be 'auto', 'min' or 'max', got '", mode, "'"));
  }
  return absl::StrContains(monitor, "acc") || absl::StrContains(monitor, "auc");
}

void EarlyStopping::on_train_begin(const Logs&) {
  MonitorIncreases(options_.monitor,
                   options_.mode);  // Validates the mode early.
  wait_ = 0;
  stopped_epoch_ = 0;
  best_epoch_ = 0;
  have_best_ = false;
  best_weights_.reset();
}

bool EarlyStopping::Improved(double current, double reference) const {
  const double delta = std::abs(options_.min_delta);
  return MonitorIncreases(options_.monitor, options_.mode)
             ? current - delta > reference
             : current + delta < reference;
}

void EarlyStopping::on_epoch_end(int epoch, Logs& logs) {
  const std::optional<double> current =
      Monitored(logs, options_.monitor, "EarlyStopping");
  if (!current || epoch < options_.start_from_epoch) return;
  if (options_.restore_best_weights && !best_weights_)
    best_weights_ = model_->get_weights();
  ++wait_;
  if (!have_best_ || Improved(*current, best_)) {
    best_ = *current;
    have_best_ = true;
    best_epoch_ = epoch;
    if (options_.restore_best_weights) best_weights_ = model_->get_weights();
    wait_ = 0;
    return;
  }
  if (wait_ >= options_.patience && epoch > 0) {
    stopped_epoch_ = epoch;
    model_->stop_training = true;
    if (options_.restore_best_weights && best_weights_)
      model_->set_weights(*best_weights_);
  }
}

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options)
    : options_(std::move(options)) {
  if (options_.factor >= 1.0 || options_.factor <= 0.0) {
    throw Error(absl::StrCat(
        "ReduceLROnPlateau: factor must be in (0, 1), got ", options_.factor));
  }
}

void ReduceLROnPlateau::on_train_begin(const Logs&) {
  wait_ = 0;
  cooldown_counter_ = 0;
  have_best_ = false;
}

void ReduceLROnPlateau::on_epoch_end(int, Logs& logs) {
  logs["learning_rate"] = model_->learning_rate();
  const std::optional<double> current =
      Monitored(logs, options_.monitor, "ReduceLROnPlateau");
  if (!current) return;
  const bool increases = MonitorIncreases(options_.monitor, options_.mode);
  const bool improved =
      !have_best_ || (increases ? *current > best_ + options_.min_delta
                                : *current < best_ - options_.min_delta);
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  if (improved) {
    best_ = *current;
    have_best_ = true;
    wait_ = 0;
  } else if (cooldown_counter_ == 0) {
    if (++wait_ >= options_.patience) {
      const double old_lr = model_->learning_rate();
      if (old_lr > options_.min_lr) {
        model_->set_learning_rate(
            std::max(old_lr * options_.factor, options_.min_lr));
        cooldown_counter_ = options_.cooldown;
        wait_ = 0;
      }
    }
  }
}

void LearningRateScheduler::on_epoch_begin(int epoch, const Logs&) {
  model_->set_learning_rate(schedule_(epoch, model_->learning_rate()));
}

void LearningRateScheduler::on_epoch_end(int, Logs& logs) {
  logs["learning_rate"] = model_->learning_rate();
}

void CSVLogger::on_train_begin(const Logs&) {
  file_.open(filename_, append_ ? std::ios::app : std::ios::trunc);
  if (!file_)
    throw Error(
        absl::StrCat("CSVLogger: cannot open '", filename_, "' for writing"));
  keys_.clear();
}

void CSVLogger::on_epoch_end(int epoch, Logs& logs) {
  if (keys_.empty()) {
    for (const auto& [name, value] : logs) keys_.push_back(name);
    if (!append_ || file_.tellp() == 0) {
      file_ << "epoch";
      for (const std::string& k : keys_) file_ << separator_ << k;
      file_ << "\n";
    }
  }
  file_ << epoch;
  for (const std::string& k : keys_) {
    auto it = logs.find(k);
    file_ << separator_;
    if (it != logs.end()) file_ << absl::StrCat(it->second);
  }
  file_ << "\n";
  file_.flush();
}

void CSVLogger::on_train_end(const Logs&) { file_.close(); }

void TerminateOnNaN::on_train_batch_end(int batch, const Logs& logs) {
  auto it = logs.find("loss");
  if (it != logs.end() && !std::isfinite(it->second)) {
    std::cout << "Batch " << batch << ": Invalid loss, terminating training\n";
    model_->stop_training = true;
  }
}

}  // namespace sequent
