#ifndef SEQUENT_FRONTEND_SKLEARN_H_
#define SEQUENT_FRONTEND_SKLEARN_H_

// scikit-learn's MLPClassifier and MLPRegressor
// (sklearn.neural_network), trained through a Sequential model. The
// parameters, attributes and stopping rules follow scikit-learn: the options
// struct holds the constructor's keyword arguments with the same names and
// defaults, and the public members ending in '_' are the fitted attributes.
// Errors throw sequent::Error.

#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "frontend/byte_rows.h"
#include "frontend/device.h"
#include "frontend/error.h"
#include "frontend/model.h"

namespace sequent {

// The keyword arguments of MLPClassifier / MLPRegressor.
struct MLPOptions {
  std::vector<int64_t> hidden_layer_sizes = {100};
  // "identity", "logistic", "tanh" or "relu".
  std::string activation = "relu";
  // "adam" or "sgd" ("lbfgs" is not supported).
  std::string solver = "adam";
  double alpha = 0.0001;   // L2 penalty on the weights (not the biases).
  int64_t batch_size = 0;  // 0 is scikit-learn's "auto": min(200, n_samples).
  // For solver="sgd": "constant", "invscaling" or "adaptive".
  std::string learning_rate = "constant";
  double learning_rate_init = 0.001;
  double power_t = 0.5;
  int max_iter = 200;  // Epochs.
  bool shuffle = true;
  // Seeds weight initialization, the early-stopping split and shuffling, as
  // numpy.random.RandomState(random_state) does for scikit-learn (the same
  // draws; 0 <= random_state < 2**32); unset draws a fresh seed.
  std::optional<uint64_t> random_state;
  double tol = 1e-4;
  bool verbose = false;
  bool warm_start = false;
  double momentum = 0.9;
  bool nesterovs_momentum = true;
  bool early_stopping = false;
  double validation_fraction = 0.1;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-8;
  int n_iter_no_change = 10;

  // Not in scikit-learn: where the network runs (default: the WithDevice
  // scope, else Device::Auto()), where verbose output goes and where warnings
  // (ConvergenceWarning, ...) go.
  std::optional<Device> device;
  // CPU threads: 0 picks one thread for networks whose training step is
  // small (under ~64 MFLOP: OpenMP's fork/join and spinning then cost more
  // than the work) and all cores otherwise; n > 0 uses n.
  int num_threads = 0;
  std::ostream* out = &std::cout;
  std::ostream* warnings = &std::cerr;
};

// What the two estimators share: the network, the epoch loop and the fitted
// attributes.
class BaseMultilayerPerceptron {
 public:
  virtual ~BaseMultilayerPerceptron();
  BaseMultilayerPerceptron(BaseMultilayerPerceptron&&) noexcept;
  BaseMultilayerPerceptron& operator=(BaseMultilayerPerceptron&&) noexcept;

  const MLPOptions& options() const { return options_; }
  // Changing options between fits is allowed (set_params); they are checked
  // at the next fit.
  MLPOptions& mutable_options() { return options_; }
  bool fitted() const { return model_ != nullptr; }

  // coefs_[i] is the [fan_in, fan_out] weight matrix of layer i,
  // intercepts_[i] its bias; host copies.
  std::vector<Tensor> coefs_() const;
  std::vector<Tensor> intercepts_() const;
  // The Sequential that holds the network (for summary(), the IR, ...).
  Sequential& model() const;

  // Fitted attributes, named as in scikit-learn.
  // Loss of the last epoch, scikit-learn's: the data term (mean log-loss, or
  // 0.5 * MSE) + 0.5 * alpha * |W|^2 / batch, averaged over the epoch's
  // batches by size. For a regressor with k > 1 outputs the data term is
  // (k / 2) * MSE, the objective whose gradient scikit-learn follows (it
  // prints 0.5 * MSE).
  double loss_ = 0.0;
  std::vector<double> loss_curve_;
  // best_loss_ is NaN with early stopping (scikit-learn's None);
  // validation_scores_ and best_validation_score_ are only set with it (NaN
  // otherwise).
  double best_loss_ = 0.0;
  std::vector<double> validation_scores_;
  double best_validation_score_ = 0.0;
  int n_iter_ = 0;
  int64_t n_features_in_ = 0;
  int64_t n_outputs_ = 0;
  int n_layers_ = 0;
  int64_t t_ = 0;               // Training samples seen, over all fits.
  std::string out_activation_;  // "softmax", "logistic" or "identity".

 protected:
  BaseMultilayerPerceptron(MLPOptions options, bool classifier);

  // x as the model's float dtype, checked: rank 2, finite, n_features_in_
  // columns once fitted unless `reset` (a first pass, which may change them).
  // x itself when it has that dtype (no copy), else its converted copy,
  // kept in `converted`. With `bytes` (fit), a large x of pixels scaled from
  // bytes is also coded into *bytes (byte_rows.h), which proves it finite.
  const Tensor& CheckX(const Tensor& x, const char* what, Tensor& converted,
                       bool reset = false,
                       std::optional<ByteRows>* bytes = nullptr) const;
  // Trains on y: i32 [n] class indices for the classifier (stratifying the
  // early-stopping split), [n, outputs] floats for the regressor.
  // `first_pass` initializes the network and the attributes. `x_bytes`,
  // when set, is x in bytes: the epochs gather from it.
  void FitPrepared(const Tensor& x, const ByteRows* x_bytes,
                   const Tensor& targets, int64_t n_outputs, bool incremental,
                   bool first_pass);
  // The network's raw output (logits, or regression values) for checked x.
  Tensor Forward(const Tensor& x) const;
  void RequireFitted(const char* what) const;
  // Validation score of the network's raw outputs against FitPrepared-style
  // y: accuracy or R^2.
  virtual double ScoreOutputs(const Tensor& outputs,
                              const Tensor& targets) const = 0;
  virtual const char* class_name() const = 0;

  // Throws for options scikit-learn's parameter validation rejects.
  void CheckOptions() const;

  MLPOptions options_;
  bool classifier_;

 private:
  // The network of this estimator's options, compiled for `device` (as
  // Sequential::compile takes it) with a fresh optimizer; sets
  // *single_threaded when its CPU steps run on one thread.
  std::unique_ptr<Sequential> CompiledNetwork(int64_t n_features,
                                              int64_t n_outputs,
                                              std::optional<Device> device,
                                              bool* single_threaded) const;
  // Compiles the network with a fresh optimizer and the given weights.
  void BuildModel(int64_t n_features, int64_t n_outputs,
                  const std::vector<Tensor>& weights);
  struct Staging;
  // Forward on `model`, whose feeds are kept in `staging`; `compile_only`
  // compiles what it would run and returns no rows.
  Tensor Forward(const Tensor& x, Sequential& model, Staging& staging,
                 bool compile_only = false) const;
  std::vector<Tensor> InitialWeights(int64_t n_features, int64_t n_outputs);
  // Rows of the early-stopping split {train, validation}, drawn as
  // scikit-learn's train_test_split (stratified for two classes only, as
  // scikit-learn does).
  std::pair<std::vector<int64_t>, std::vector<int64_t>> ValidationSplit(
      const Tensor& y);
  // The factor between the graph's objective and scikit-learn's (see
  // sklearn.cc).
  double LossScale() const;
  // The train executables and feeds of an epoch of n rows in batches of
  // batch_size (a full and a last batch size), compiled once.
  void CompileTrainSteps(int64_t n, int64_t batch_size);
  // One epoch over the rows of (x, targets) that `rows` names, in its
  // order, gathering x's rows from `x_bytes` when set (x in bytes);
  // returns scikit-learn's loss (the mean over samples of the per-batch
  // losses). `side_work`, when set, runs one short piece of other
  // work and returns the fraction of it done (1 once nothing is left): the
  // gathering worker runs its pieces between gathers, at the pace of the
  // steps, to be done before the epoch ends (without a worker this thread
  // runs it all first).
  double RunEpoch(const Tensor& x, const ByteRows* x_bytes,
                  const Tensor& targets, const std::vector<int64_t>& rows,
                  int64_t batch_size,
                  const std::function<double()>& side_work = nullptr);
  // The graph's targets for FitPrepared's y: class indices stay i32 for a
  // softmax output, become 0/1 [n, 1] for a logistic one; regression targets
  // take the label feed's dtype.
  Tensor GraphTargets(const Tensor& y) const;
  // Early stopping: `score` is the validation score of `scored_weights`
  // (empty: the model's current weights), kept as the best when it is.
  void UpdateNoImprovementCount(bool early_stopping, double score,
                                std::vector<Tensor> scored_weights);

  std::unique_ptr<Sequential> model_;
  std::mt19937 rng_;  // numpy's RandomState stream (see sklearn.cc).
  bool has_optimizer_ = false;
  double learning_rate_ = 0.0;  // scikit-learn's current (sgd schedules).
  int64_t l2_batch_ = 0;  // The batch size the graph's L2 coefficient assumes.
  int no_improvement_count_ = 0;
  std::vector<Tensor> best_weights_;
  std::unique_ptr<Staging> staging_;
};

// Class labels as fit saw them: integers (from std::vector<int64_t> or an
// integer Tensor) or strings, sorted like numpy.unique.
struct ClassLabels {
  bool is_string = false;
  DType dtype = DType::kI64;  // Of an integer Tensor given to fit.
  std::vector<int64_t> ints;
  std::vector<std::string> strings;

  size_t size() const { return is_string ? strings.size() : ints.size(); }
  std::string ToString(size_t i) const;
  std::string ToString() const;  // "[0 1 2]" or "['a' 'b']", numpy-style.
};

// sklearn.neural_network.MLPClassifier: softmax output with log-loss for
// multiclass labels, one logistic unit for two classes.
class MLPClassifier : public BaseMultilayerPerceptron {
 public:
  explicit MLPClassifier(MLPOptions options = {});

  // y: one label per row of x (a [n, features] tensor).
  MLPClassifier& fit(const Tensor& x, const Tensor& y);
  MLPClassifier& fit(const Tensor& x, const std::vector<int64_t>& y);
  MLPClassifier& fit(const Tensor& x, const std::vector<std::string>& y);
  // One epoch. The first call must name every class (`classes`); later calls
  // may leave it out.
  MLPClassifier& partial_fit(const Tensor& x, const Tensor& y,
                             std::optional<Tensor> classes = std::nullopt);
  MLPClassifier& partial_fit(
      const Tensor& x, const std::vector<int64_t>& y,
      std::optional<std::vector<int64_t>> classes = std::nullopt);
  MLPClassifier& partial_fit(
      const Tensor& x, const std::vector<std::string>& y,
      std::optional<std::vector<std::string>> classes = std::nullopt);

  // Labels of the type fit saw: Tensor (integer labels, in the dtype fit got
  // them as: i32 or i64), std::vector<int64_t> or std::vector<std::string>
  // (integer classes come out as their decimal strings).
  template <typename Labels = Tensor>
  Labels predict(const Tensor& x) const;
  // [n, n_classes] probabilities, columns in classes_ order (f64).
  Tensor predict_proba(const Tensor& x) const;
  Tensor predict_log_proba(const Tensor& x) const;
  // Mean accuracy.
  double score(const Tensor& x, const Tensor& y) const;
  double score(const Tensor& x, const std::vector<int64_t>& y) const;
  double score(const Tensor& x, const std::vector<std::string>& y) const;

  ClassLabels classes_;

 private:
  struct RawLabels;
  MLPClassifier& Fit(const Tensor& x, const RawLabels& y, bool incremental,
                     const RawLabels* classes);
  // Class indices (i32 [n]) of labels that must all be in classes_.
  Tensor Encode(const RawLabels& y, const char* what) const;
  std::vector<int32_t> PredictIndices(const Tensor& x) const;
  // The class index of each row of the network's raw outputs.
  std::vector<int32_t> IndicesOf(const Tensor& outputs) const;
  double Score(const Tensor& x, const RawLabels& y) const;
  double ScoreOutputs(const Tensor& outputs,
                      const Tensor& targets) const override;
  const char* class_name() const override { return "MLPClassifier"; }
};

template <>
Tensor MLPClassifier::predict<Tensor>(const Tensor& x) const;
template <>
std::vector<int64_t> MLPClassifier::predict<std::vector<int64_t>>(
    const Tensor& x) const;
template <>
std::vector<std::string> MLPClassifier::predict<std::vector<std::string>>(
    const Tensor& x) const;

// sklearn.neural_network.MLPRegressor: identity output, squared error (the
// reported loss is scikit-learn's 0.5 * mean squared error).
class MLPRegressor : public BaseMultilayerPerceptron {
 public:
  explicit MLPRegressor(MLPOptions options = {});

  // y: [n] or [n, outputs], any numeric dtype.
  MLPRegressor& fit(const Tensor& x, const Tensor& y);
  MLPRegressor& fit(const Tensor& x, const std::vector<double>& y);
  MLPRegressor& partial_fit(const Tensor& x, const Tensor& y);
  // f64 [n] for one output, else [n, outputs] (as scikit-learn ravels).
  Tensor predict(const Tensor& x) const;
  // R^2, averaged uniformly over outputs.
  double score(const Tensor& x, const Tensor& y) const;

 private:
  MLPRegressor& Fit(const Tensor& x, const Tensor& y, bool incremental);
  Tensor Targets(const Tensor& y, int64_t rows, const char* what) const;
  double ScoreOutputs(const Tensor& outputs,
                      const Tensor& targets) const override;
  const char* class_name() const override { return "MLPRegressor"; }
};

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_SKLEARN_H_
