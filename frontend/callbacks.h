#ifndef SEQUENT_FRONTEND_CALLBACKS_H_
#define SEQUENT_FRONTEND_CALLBACKS_H_

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sequent {

class Sequential;
// Per-epoch (or per-batch) values by name: loss, metrics, val_*; printed
// sorted, like Keras.
using Logs = std::map<std::string, double>;

// Keras's callback hooks. fit() calls set_model first.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(const Logs&) {}
  virtual void on_train_end(const Logs&) {}
  virtual void on_epoch_begin(int /*epoch*/, const Logs&) {}
  // May add entries to `logs` (ReduceLROnPlateau adds learning_rate).
  virtual void on_epoch_end(int /*epoch*/, Logs&) {}
  virtual void on_train_batch_end(int /*batch*/, const Logs&) {}
  void set_model(Sequential* model) { model_ = model; }

 protected:
  Sequential* model_ = nullptr;
};
using CallbackPtr = std::shared_ptr<Callback>;

// "min" for losses and errors, "max" for accuracies; "auto" decides from the
// name.
bool MonitorIncreases(const std::string& monitor, const std::string& mode);

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int patience = 0;
  std::string mode = "auto";
  bool restore_best_weights = false;
  int start_from_epoch = 0;
};
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {})
      : options_(std::move(options)) {}
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  int stopped_epoch() const { return stopped_epoch_; }
  int best_epoch() const { return best_epoch_; }

 private:
  bool Improved(double current, double reference) const;
  EarlyStoppingOptions options_;
  int wait_ = 0;
  int stopped_epoch_ = 0;
  int best_epoch_ = 0;
  double best_ = 0.0;
  bool have_best_ = false;
  std::optional<std::vector<Tensor>> best_weights_;
};

struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  double factor = 0.1;
  int patience = 10;
  std::string mode = "auto";
  double min_delta = 1e-4;
  int cooldown = 0;
  double min_lr = 0.0;
};
class ReduceLROnPlateau : public Callback {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int epoch, Logs& logs) override;

 private:
  ReduceLROnPlateauOptions options_;
  int wait_ = 0;
  int cooldown_counter_ = 0;
  double best_ = 0.0;
  bool have_best_ = false;
};

// Sets the learning rate at the start of each epoch to schedule(epoch, current
// rate).
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int, double)> schedule)
      : schedule_(std::move(schedule)) {}
  void on_epoch_begin(int epoch, const Logs&) override;
  void on_epoch_end(int epoch, Logs& logs) override;

 private:
  std::function<double(int, double)> schedule_;
};

// Writes "epoch,<metrics...>" and a row per epoch.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::string filename, char separator = ',',
                     bool append = false)
      : filename_(std::move(filename)),
        separator_(separator),
        append_(append) {}
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(const Logs&) override;

 private:
  std::string filename_;
  char separator_;
  bool append_;
  std::ofstream file_;
  std::vector<std::string> keys_;
};

// Keras's ModelCheckpoint: saves the model (model.save, or save_weights with
// save_weights_only) at the end of every epoch, or with save_best_only only
// when `monitor` improved on the best value seen so far by this callback.
// `path` may hold "{epoch}" or "{epoch:02d}" (any width), formatted 1-based as
// Keras does. Defined in frontend/saving.cc (//frontend:saving, part of
// //frontend:sequent), since it saves.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string path, std::string monitor = "val_loss",
                           bool save_best_only = false,
                           std::string mode = "auto",
                           bool save_weights_only = false);
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  // The file of a (0-based) epoch.
  std::string FilePath(int epoch) const;
  // The last file written; empty if none.
  const std::string& last_saved() const { return last_saved_; }

 private:
  std::string path_;
  std::string monitor_;
  bool save_best_only_;
  std::string mode_;
  bool save_weights_only_;
  double best_ = 0.0;
  bool have_best_ = false;
  std::string last_saved_;
};

// Stops training when a batch's loss is NaN or infinite.
class TerminateOnNaN : public Callback {
 public:
  void on_train_batch_end(int batch, const Logs& logs) override;
};

// Keras's LambdaCallback: any hook as a function.
class LambdaCallback : public Callback {
 public:
  std::function<void(int, Logs&)> on_epoch_end_fn;
  std::function<void(int, const Logs&)> on_epoch_begin_fn;
  std::function<void(int, const Logs&)> on_batch_end_fn;
  std::function<void(const Logs&)> on_train_begin_fn;
  std::function<void(const Logs&)> on_train_end_fn;

  void on_epoch_end(int epoch, Logs& logs) override {
    if (on_epoch_end_fn) on_epoch_end_fn(epoch, logs);
  }
  void on_epoch_begin(int epoch, const Logs& logs) override {
    if (on_epoch_begin_fn) on_epoch_begin_fn(epoch, logs);
  }
  void on_train_batch_end(int batch, const Logs& logs) override {
    if (on_batch_end_fn) on_batch_end_fn(batch, logs);
  }
  void on_train_begin(const Logs& logs) override {
    if (on_train_begin_fn) on_train_begin_fn(logs);
  }
  void on_train_end(const Logs& logs) override {
    if (on_train_end_fn) on_train_end_fn(logs);
  }
};

// What fit() returns: per-epoch logs (loss, metrics, val_*), the epochs run and
// the params.
struct History {
  std::vector<int> epoch;
  std::map<std::string, std::vector<double>> history;
  std::map<std::string, int64_t> params;  // epochs, steps, verbose
};

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_CALLBACKS_H_
