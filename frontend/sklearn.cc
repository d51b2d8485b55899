#include "frontend/sklearn.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backends/cpu/cpu_backend.h"
#include "core/training_graph.h"
#include "fmt/format.h"
#include "frontend/background_worker.h"
#include "frontend/byte_rows.h"
#include "frontend/compile_options.h"
#include "frontend/data.h"
#include "frontend/layers.h"

namespace sequent {

// How the graph's objective J relates to scikit-learn's S (whose gradient
// scikit-learn follows):
//  - log-loss (softmax or logistic output): the graph's mean cross-entropy is
//    scikit-learn's loss, so J = S with the kernel L2 coefficient
//    0.5 * alpha / batch_size.
//  - squared error: scikit-learn's output delta is (y_pred - y) summed over
//    outputs, the gradient of (n_outputs / 2) * MSE, while the graph's MSE
//    loss is the plain mean. So J = c * S with c = 2 / n_outputs: the L2
//    coefficient is scaled by c, SGD runs at learning_rate / c (the same
//    steps, velocity included) and Adam, invariant to the gradient's scale but
//    for epsilon, at epsilon * c.
// The per-epoch loss reported in loss_curve_ is J / c.

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// numpy.random.RandomState, which scikit-learn draws from: an integer seed
// initializes MT19937 exactly as std::mt19937 does (init_genrand), so the
// functions below reproduce numpy's draws bit for bit, and random_state=k gives
// scikit-learn's initial weights, early-stopping split and epoch orders.

// random_sample(): 53 random bits from two 32-bit outputs.
double RandomSample(std::mt19937& rng) {
  const uint32_t a = static_cast<uint32_t>(rng()) >> 5;
  const uint32_t b = static_cast<uint32_t>(rng()) >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

// random_interval(max): uniform in [0, max] by masked rejection.
uint64_t RandomInterval(std::mt19937& rng, uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int shift = 1; shift <= 32; shift *= 2) mask |= mask >> shift;
  uint64_t value;
  if (max <= 0xffffffffULL) {
    do {
      value = static_cast<uint64_t>(rng()) & mask;
    } while (value > max);
  } else {
    do {
      const uint64_t high = rng();
      value = ((high << 32) | static_cast<uint64_t>(rng())) & mask;
    } while (value > max);
  }
  return value;
}

// RandomState.shuffle of a 1-D array (Fisher-Yates from the back), from
// index i down, for at most `steps` swaps: it resumes where it stopped (i
// starts at size - 1).
template <typename T>
void NumpyShuffleSteps(std::vector<T>& values, std::mt19937& rng, int64_t& i,
                       int64_t steps) {
  for (; i > 0 && steps > 0; --i, --steps) {
    const auto j =
        static_cast<int64_t>(RandomInterval(rng, static_cast<uint64_t>(i)));
    std::swap(values[i], values[j]);
  }
}

// RandomState.shuffle, all of it.
template <typename T>
void NumpyShuffle(std::vector<T>& values, std::mt19937& rng) {
  auto i = static_cast<int64_t>(values.size()) - 1;
  NumpyShuffleSteps(values, rng, i, i);
}

// Work cut into short pieces, for a loop that runs them one at a time
// between its own (RunEpoch's side_work).
class PieceQueue {
 public:
  void Add(std::function<void()> piece) { pieces_.push_back(std::move(piece)); }
  // Runs the next piece, if any; the fraction of the pieces run so far.
  double RunNext() {
    if (next_ < pieces_.size()) pieces_[next_++]();
    return pieces_.empty() ? 1.0
                           : static_cast<double>(next_) /
                                 static_cast<double>(pieces_.size());
  }
  void RunAll() {
    while (RunNext() < 1.0) {
    }
  }

 private:
  std::vector<std::function<void()>> pieces_;
  size_t next_ = 0;
};

// Returns once `value` differs from `old`: spinning first, for up to
// kSpinMicros, then sleeping. The steps and the gatherer wait on each other
// for less than a step at a time; with std::atomic::wait alone (16 spins,
// then a futex) the waiter slept and every step's notify_one paid a futex
// wake, ~1.7 us of a ~33 us step.
void SpinThenWait(const std::atomic<int>& value, int old) {
  constexpr auto kSpinMicros = std::chrono::microseconds(200);
  const auto deadline = std::chrono::steady_clock::now() + kSpinMicros;
  for (int spins = 1; value.load(std::memory_order_acquire) == old; ++spins) {
    if (spins % 64 == 0 && std::chrono::steady_clock::now() > deadline) {
      while (value.load() == old) value.wait(old);
      return;
    }
    __builtin_ia32_pause();
  }
}

// RandomState.permutation(n).
std::vector<int64_t> NumpyPermutation(int64_t n, std::mt19937& rng) {
  std::vector<int64_t> values(static_cast<size_t>(n));
  std::iota(values.begin(), values.end(), 0);
  NumpyShuffle(values, rng);
  return values;
}

// sklearn.utils.extmath._approximate_mode: per-stratum draws summing to
// n_draws, ties in the rounding broken at random.
std::vector<int64_t> ApproximateMode(const std::vector<int64_t>& counts,
                                     int64_t n_draws, std::mt19937& rng) {
  double total = 0.0;
  for (int64_t c : counts) total += static_cast<double>(c);
  const size_t k = counts.size();
  std::vector<double> continuous(k), floored(k);
  double floored_sum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    continuous[i] =
        static_cast<double>(counts[i]) / total * static_cast<double>(n_draws);
    floored[i] = std::floor(continuous[i]);
    floored_sum += floored[i];
  }
  auto need = static_cast<int64_t>(static_cast<double>(n_draws) - floored_sum);
  if (need > 0) {
    std::vector<double> remainder(k);
    for (size_t i = 0; i < k; ++i) remainder[i] = continuous[i] - floored[i];
    std::vector<double> values = remainder;
    std::sort(values.begin(), values.end(), std::greater<double>());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    for (double value : values) {
      std::vector<int64_t> inds;
      for (size_t i = 0; i < k; ++i)
        if (remainder[i] == value) inds.push_back(static_cast<int64_t>(i));
      const int64_t add_now = std::min(static_cast<int64_t>(inds.size()), need);
      // rng.choice(inds, add_now, replace=False) = inds[permutation[:add_now]].
      const std::vector<int64_t> perm =
          NumpyPermutation(static_cast<int64_t>(inds.size()), rng);
      for (int64_t j = 0; j < add_now; ++j) floored[inds[perm[j]]] += 1.0;
      need -= add_now;
      if (need == 0) break;
    }
  }
  std::vector<int64_t> result(k);
  for (size_t i = 0; i < k; ++i) result[i] = static_cast<int64_t>(floored[i]);
  return result;
}

std::string ActivationFor(const std::string& sklearn_name) {
  if (sklearn_name == "identity") return "linear";
  if (sklearn_name == "logistic") return "sigmoid";
  return sklearn_name;  // "tanh", "relu"
}

TensorType FeedType(const Graph& graph, const char* name) {
  const NodeId id = graph.FindInput(name);
  return graph.type(graph.node(id).outputs[0]);
}

// "%f" as Python prints it.
std::string PyF(double value) { return fmt::format("{:f}", value); }

std::string ShapeString(const Tensor& t) {
  std::vector<std::string> dims;
  for (int i = 0; i < t.shape().rank(); ++i)
    dims.push_back(std::to_string(t.shape()[i]));
  return absl::StrCat("(", absl::StrJoin(dims, ", "),
                      t.shape().rank() == 1 ? ",)" : ")");
}

}  // namespace

// Per-batch-size feeds of the train and predict executables, so an epoch
// allocates nothing and skips Sequential's per-call checks (the data was
// checked once by fit).
struct BaseMultilayerPerceptron::Staging {
  // Training batches in flight: the worker gathers up to kSlots batches
  // ahead of the step that trains on them.
  static constexpr int kSlots = 4;
  struct Step {
    Executable* executable = nullptr;
    Tensor x;  // Predict: a chunk of rows copied out of the input.
    Tensor sample_weight, learning_rate;  // Training.
    // Training: batch b of this size is in slot b % slots.size() (one slot
    // for the short last batch, which comes once per epoch).
    struct Slot {
      Tensor x, y;
      std::vector<Feed> feeds;
    };
    std::vector<Slot> slots;
    std::vector<Tensor> outputs;
    size_t loss_index = 0;
  };
  std::map<int64_t, Step> train;
  std::map<int64_t, Step> predict;
  // Set when the steps run on one thread and another core is free.
  std::unique_ptr<BackgroundWorker> gatherer;
  // Early stopping with a gatherer: an epoch's weights are validated on a
  // copy of the network, on the gatherer's thread, while the next epoch
  // trains (speculatively: it is rolled back when that validation stops
  // training).
  struct Validation;
  std::unique_ptr<Validation> validation;
};

struct BaseMultilayerPerceptron::Staging::Validation {
  // Rows per piece of a validation pass: the worker runs one between two
  // gathers, while the steps have batches enough not to wait. A piece of 128
  // rows of 784 features takes less than a small-net step, so the worker is
  // soon back to gathering (with 1024-row pieces, about four steps long, the
  // steps gathered a sixth of their batches themselves; per epoch of
  // examples/sklearn_mlp: 1024 rows 12.1 ms, 256 11.6, 128 11.2, 64 11.4,
  // 32 12.2).
  static constexpr int64_t kChunkRows = 128;
  std::unique_ptr<Sequential> network;
  Staging staging;  // Its predict feeds.
  // The validation rows, kChunkRows a chunk: copied out of x, or with x in
  // bytes decoded from them chunk by chunk (a quarter of the reading each
  // epoch, and no copy of the set).
  std::vector<Tensor> x_chunks;
  const ByteRows* x_bytes = nullptr;
  std::vector<int64_t> rows;  // of x, with x_bytes
  Tensor chunk, last_chunk;   // decoded, with x_bytes
  Tensor outputs;             // Of all the rows, filled chunk by chunk.

  int64_t num_chunks() const {
    const auto n = static_cast<int64_t>(rows.size());
    return x_bytes == nullptr ? static_cast<int64_t>(x_chunks.size())
                              : (n + kChunkRows - 1) / kChunkRows;
  }
  // Chunk c's rows, decoded first with x_bytes (valid until the next call).
  const Tensor& Chunk(int64_t c) {
    if (x_bytes == nullptr) return x_chunks[static_cast<size_t>(c)];
    const int64_t begin = c * kChunkRows;
    const int64_t count =
        std::min(kChunkRows, static_cast<int64_t>(rows.size()) - begin);
    Tensor& out = count == kChunkRows ? chunk : last_chunk;
    x_bytes->GatherRows(rows.data() + begin, count, out);
    return out;
  }
};

BaseMultilayerPerceptron::BaseMultilayerPerceptron(MLPOptions options,
                                                   bool classifier)
    : options_(std::move(options)),
      classifier_(classifier),
      rng_(options_.random_state ? static_cast<uint32_t>(*options_.random_state)
                                 : std::random_device{}()),
      staging_(std::make_unique<Staging>()) {}

BaseMultilayerPerceptron::~BaseMultilayerPerceptron() = default;
BaseMultilayerPerceptron::BaseMultilayerPerceptron(
    BaseMultilayerPerceptron&&) noexcept = default;
BaseMultilayerPerceptron& BaseMultilayerPerceptron::operator=(
    BaseMultilayerPerceptron&&) noexcept = default;

void BaseMultilayerPerceptron::CheckOptions() const {
  const MLPOptions& o = options_;
  const auto bad = [&](const std::string& what) {
    throw Error(absl::StrCat(class_name(), ": ", what));
  };
  for (int64_t units : o.hidden_layer_sizes) {
    if (units <= 0) {
      bad(absl::StrCat("hidden_layer_sizes must be > 0, got (",
                       absl::StrJoin(o.hidden_layer_sizes, ", "), ")"));
    }
  }
  if (o.activation != "identity" && o.activation != "logistic" &&
      o.activation != "tanh" && o.activation != "relu") {
    bad(
        absl::StrCat("activation must be one of 'identity', 'logistic', "
                     "'tanh', 'relu'; got '",
                     o.activation, "'"));
  }
  if (o.solver == "lbfgs") {
    bad("solver='lbfgs' is not supported: sequent trains MLPs with the "
        "stochastic solvers 'adam' and 'sgd' only");
  }
  if (o.solver != "adam" && o.solver != "sgd") {
    bad(absl::StrCat("solver must be 'adam' or 'sgd', got '", o.solver, "'"));
  }
  if (o.learning_rate != "constant" && o.learning_rate != "invscaling" &&
      o.learning_rate != "adaptive") {
    bad(
        absl::StrCat("learning_rate must be one of 'constant', 'invscaling', "
                     "'adaptive'; got '",
                     o.learning_rate, "'"));
  }
  if (!(o.alpha >= 0.0)) bad(absl::StrCat("alpha must be >= 0, got ", o.alpha));
  if (o.batch_size < 0) {
    bad(absl::StrCat("batch_size must be >= 1 (or 0 for 'auto'), got ",
                     o.batch_size));
  }
  if (!(o.learning_rate_init > 0.0)) {
    bad(absl::StrCat("learning_rate_init must be > 0, got ",
                     o.learning_rate_init));
  }
  if (!(o.power_t >= 0.0))
    bad(absl::StrCat("power_t must be >= 0, got ", o.power_t));
  if (o.max_iter < 1)
    bad(absl::StrCat("max_iter must be >= 1, got ", o.max_iter));
  if (!(o.tol >= 0.0)) bad(absl::StrCat("tol must be >= 0, got ", o.tol));
  if (!(o.momentum >= 0.0 && o.momentum <= 1.0))
    bad(absl::StrCat("momentum must be in [0, 1], got ", o.momentum));
  if (!(o.validation_fraction > 0.0 && o.validation_fraction < 1.0)) {
    bad(absl::StrCat("validation_fraction must be in (0, 1), got ",
                     o.validation_fraction));
  }
  if (!(o.beta_1 >= 0.0 && o.beta_1 < 1.0))
    bad(absl::StrCat("beta_1 must be in [0, 1), got ", o.beta_1));
  if (!(o.beta_2 >= 0.0 && o.beta_2 < 1.0))
    bad(absl::StrCat("beta_2 must be in [0, 1), got ", o.beta_2));
  if (!(o.epsilon > 0.0))
    bad(absl::StrCat("epsilon must be > 0, got ", o.epsilon));
  if (o.random_state && *o.random_state > 0xffffffffULL) {
    bad(absl::StrCat("random_state must be between 0 and 2**32 - 1, got ",
                     *o.random_state));
  }
  if (o.n_iter_no_change < 1) {
    bad(absl::StrCat("n_iter_no_change must be >= 1, got ",
                     o.n_iter_no_change));
  }
}

void BaseMultilayerPerceptron::RequireFitted(const char* what) const {
  if (model_ == nullptr) {
    throw Error(absl::StrCat(
        "This ", class_name(),
        " instance is not fitted yet. Call 'fit' with appropriate arguments "
        "before using ",
        what, "."));
  }
}

Sequential& BaseMultilayerPerceptron::model() const {
  RequireFitted("model()");
  return *model_;
}

std::vector<Tensor> BaseMultilayerPerceptron::coefs_() const {
  RequireFitted("coefs_");
  std::vector<Tensor> weights = model_->get_weights();
  std::vector<Tensor> coefs;
  for (size_t i = 0; i < weights.size(); i += 2) coefs.push_back(weights[i]);
  return coefs;
}

std::vector<Tensor> BaseMultilayerPerceptron::intercepts_() const {
  RequireFitted("intercepts_");
  std::vector<Tensor> weights = model_->get_weights();
  std::vector<Tensor> intercepts;
  for (size_t i = 1; i < weights.size(); i += 2)
    intercepts.push_back(weights[i]);
  return intercepts;
}

namespace {

// Index of the first NaN or infinity among values[0, n), else n: their
// exponent bits are all ones, tested a block at a time in a loop that
// vectorizes (an early-exit std::isfinite loop took 94 ms over
// Fashion-MNIST's 47M values, more than a training epoch).
template <typename Float>
size_t FirstNonFinite(const Float* values, size_t n) {
  using Bits = std::conditional_t<sizeof(Float) == 4, uint32_t, uint64_t>;
  constexpr Bits kExponent = sizeof(Float) == 4
                                 ? static_cast<Bits>(0x7F800000u)
                                 : static_cast<Bits>(0x7FF0000000000000u);
  constexpr size_t kBlock = 4096;
  for (size_t begin = 0; begin < n; begin += kBlock) {
    const size_t end = std::min(n, begin + kBlock);
    Bits bad = 0;
#pragma omp simd reduction(| : bad)
    for (size_t i = begin; i < end; ++i) {
      bad |= (std::bit_cast<Bits>(values[i]) & kExponent) == kExponent;
    }
    if (bad == 0) continue;
    for (size_t i = begin; i < end; ++i) {
      if (!std::isfinite(values[i])) return i;
    }
  }
  return n;
}

}  // namespace

const Tensor& BaseMultilayerPerceptron::CheckX(
    const Tensor& x, const char* what, Tensor& converted, bool reset,
    std::optional<ByteRows>* bytes) const {
  if (x.shape().rank() != 2) {
    throw Error(absl::StrCat(
        class_name(), ".", what, ": expected a 2D array of shape (n_samples, ",
        "n_features), got shape ", ShapeString(x),
        x.shape().rank() > 2 ? "; flatten the samples first (reshape to "
                               "[n, features])"
                             : ""));
  }
  if (x.shape()[0] == 0 || x.shape()[1] == 0) {
    throw Error(absl::StrCat(class_name(), ".", what, ": X has shape ",
                             ShapeString(x),
                             "; at least 1 sample and 1 feature are required"));
  }
  if (x.dtype() == DType::kBool) {
    throw Error(
        absl::StrCat(class_name(), ".", what, ": X must be numeric, got bool"));
  }
  if (!reset && model_ != nullptr && x.shape()[1] != n_features_in_) {
    throw Error(absl::StrCat("X has ", x.shape()[1], " features, but ",
                             class_name(), " is expecting ", n_features_in_,
                             " features as input."));
  }
  const DType dtype = !reset && model_ != nullptr ? model_->dtype() : FloatX();
  if (x.dtype() != dtype) converted = x.CastTo(dtype);
  const Tensor& checked = x.dtype() == dtype ? x : converted;
  // Small inputs stay in the caches: their gathers gain nothing from bytes.
  constexpr int64_t kByteRowsMinValues = int64_t{1} << 20;
  if (bytes != nullptr) {
    bytes->reset();
    if (checked.num_elements() >= kByteRowsMinValues)
      *bytes = ByteRows::FromScaledFloats(checked);
    if (bytes->has_value()) return checked;
  }
  const auto check = [&](auto values) {
    const size_t i = FirstNonFinite(values.data(), values.size());
    if (i == values.size()) return;
    throw Error(absl::StrCat(class_name(), ".", what, ": input X contains ",
                             std::isnan(values[i]) ? "NaN" : "infinity",
                             " (sample ", i / static_cast<size_t>(x.shape()[1]),
                             "); clean or impute the data first"));
  };
  if (dtype == DType::kF64) {
    check(checked.data<double>());
  } else {
    check(checked.data<float>());
  }
  return checked;
}

double BaseMultilayerPerceptron::LossScale() const {
  return classifier_ ? 1.0 : 2.0 / static_cast<double>(n_outputs_);
}

std::vector<Tensor> BaseMultilayerPerceptron::InitialWeights(
    int64_t n_features, int64_t n_outputs) {
  // scikit-learn's _init_coef: Glorot uniform for weights and biases alike,
  // with factor 2 instead of 6 for the logistic activation, drawn layer by
  // layer (coef row-major, then intercept) as RandomState.uniform does.
  const double factor = options_.activation == "logistic" ? 2.0 : 6.0;
  std::vector<int64_t> units = {n_features};
  units.insert(units.end(), options_.hidden_layer_sizes.begin(),
               options_.hidden_layer_sizes.end());
  units.push_back(n_outputs);
  std::vector<Tensor> init;
  for (size_t i = 0; i + 1 < units.size(); ++i) {
    const int64_t fan_in = units[i], fan_out = units[i + 1];
    const double bound =
        std::sqrt(factor / static_cast<double>(fan_in + fan_out));
    Tensor kernel(DType::kF64, Shape{fan_in, fan_out});
    for (double& v : kernel.data<double>())
      v = -bound + 2.0 * bound * RandomSample(rng_);
    Tensor bias(DType::kF64, Shape{fan_out});
    for (double& v : bias.data<double>())
      v = -bound + 2.0 * bound * RandomSample(rng_);
    init.push_back(std::move(kernel));
    init.push_back(std::move(bias));
  }
  return init;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>>
BaseMultilayerPerceptron::ValidationSplit(const Tensor& y) {
  const int64_t n = y.shape()[0];
  const auto n_test = static_cast<int64_t>(
      std::ceil(options_.validation_fraction * static_cast<double>(n)));
  const int64_t n_train = n - n_test;
  if (n_train <= 0) {
    throw Error(absl::StrCat(
        "With n_samples=", n, ", test_size=", options_.validation_fraction,
        " and train_size=None, the resulting train set will be empty. "
        "Adjust any of the aforementioned parameters."));
  }
  if (!classifier_ || n_outputs_ != 1) {
    // ShuffleSplit: the first n_test rows of a permutation validate.
    // scikit-learn stratifies only when its binarized y has one column (two
    // classes), so a multiclass split is plain too.
    const std::vector<int64_t> perm = NumpyPermutation(n, rng_);
    return {std::vector<int64_t>(perm.begin() + n_test, perm.end()),
            std::vector<int64_t>(perm.begin(), perm.begin() + n_test)};
  }
  // StratifiedShuffleSplit on scikit-learn's binarized y ("False"/"True"
  // strata, in class order).
  std::vector<std::vector<int64_t>> members(2);
  for (int64_t i = 0; i < n; ++i)
    members[y.GetAsDouble(i) != 0.0 ? 1 : 0].push_back(i);
  std::vector<int64_t> counts;
  std::vector<std::vector<int64_t>> strata;
  for (auto& m : members) {
    if (m.empty()) continue;  // np.unique sees only the classes in y.
    counts.push_back(static_cast<int64_t>(m.size()));
    strata.push_back(std::move(m));
  }
  for (int64_t c : counts) {
    if (c < 2) {
      throw Error(
          "The least populated class in y has only 1 member, which is too "
          "few. The minimum number of groups for any class cannot be less "
          "than 2 (early stopping's stratified validation split).");
    }
  }
  const auto n_strata = static_cast<int64_t>(counts.size());
  if (n_train < n_strata || n_test < n_strata) {
    throw Error(absl::StrCat(
        "The ", n_train < n_strata ? "train" : "test",
        "_size = ", n_train < n_strata ? n_train : n_test,
        " should be greater or equal to the number of classes = ", n_strata,
        " (early stopping's stratified validation split)"));
  }
  const std::vector<int64_t> n_i = ApproximateMode(counts, n_train, rng_);
  std::vector<int64_t> remaining(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) remaining[i] = counts[i] - n_i[i];
  const std::vector<int64_t> t_i = ApproximateMode(remaining, n_test, rng_);
  std::vector<int64_t> train, test;
  for (size_t i = 0; i < strata.size(); ++i) {
    const std::vector<int64_t> perm = NumpyPermutation(counts[i], rng_);
    for (int64_t j = 0; j < n_i[i]; ++j) train.push_back(strata[i][perm[j]]);
    for (int64_t j = n_i[i]; j < n_i[i] + t_i[i]; ++j)
      test.push_back(strata[i][perm[j]]);
  }
  NumpyShuffle(train, rng_);
  NumpyShuffle(test, rng_);
  return {train, test};
}

std::unique_ptr<Sequential> BaseMultilayerPerceptron::CompiledNetwork(
    int64_t n_features, int64_t n_outputs, std::optional<Device> device,
    bool* single_threaded) const {
  const double c = LossScale();
  const double l2 = c * 0.5 * options_.alpha / static_cast<double>(l2_batch_);
  const std::string activation = ActivationFor(options_.activation);
  std::vector<LayerPtr> layers = {Input({n_features})};
  DenseOptions dense;
  dense.kernel_regularizer.l2 = l2;
  for (int64_t units : options_.hidden_layer_sizes)
    layers.push_back(Dense(units, activation, dense));
  layers.push_back(Dense(n_outputs, "linear", dense));
  auto model = std::make_unique<Sequential>(std::move(layers));

  Optimizer optimizer;
  if (options_.solver == "adam") {
    optimizer = Adam{.learning_rate = options_.learning_rate_init,
                     .beta_1 = options_.beta_1,
                     .beta_2 = options_.beta_2,
                     .epsilon = options_.epsilon * c};
  } else {
    optimizer = SGD{.learning_rate = options_.learning_rate_init / c,
                    .momentum = options_.momentum,
                    .nesterov = options_.nesterovs_momentum};
  }
  Loss loss;
  if (!classifier_) {
    loss = MeanSquaredError{};
  } else if (n_outputs == 1) {
    loss = BinaryCrossentropy{.from_logits = true};
  } else {
    loss = SparseCategoricalCrossentropy{.from_logits = true};
  }
  model->compile(optimizer, loss, {}, std::move(device));
  *single_threaded = false;
  if (auto* cpu = dynamic_cast<CpuBackend*>(&model->backend())) {
    int threads = options_.num_threads;
    if (threads <= 0) {
      int64_t params = 0;
      int64_t fan_in = n_features;
      for (int64_t units : options_.hidden_layer_sizes) {
        params += (fan_in + 1) * units;
        fan_in = units;
      }
      params += (fan_in + 1) * n_outputs;
      // Forward, and backward for inputs and weights: ~6 flops per weight
      // and sample.
      const double flops =
          6.0 * static_cast<double>(params) * static_cast<double>(l2_batch_);
      threads = flops < 64e6 ? 1 : 0;
    }
    // Applies to the executables compiled from here on, which is all of them:
    // they are compiled on first use.
    cpu->SetNumThreads(threads);
    *single_threaded = threads == 1;
  }
  return model;
}

void BaseMultilayerPerceptron::BuildModel(int64_t n_features, int64_t n_outputs,
                                          const std::vector<Tensor>& weights) {
  bool single_threaded = false;
  std::unique_ptr<Sequential> model =
      CompiledNetwork(n_features, n_outputs, options_.device, &single_threaded);
  model->set_weights(weights);
  model_ = std::move(model);
  staging_ = std::make_unique<Staging>();
  if (single_threaded && std::thread::hardware_concurrency() > 1)
    staging_->gatherer = std::make_unique<BackgroundWorker>();
  has_optimizer_ = true;
  learning_rate_ = options_.learning_rate_init;
}

Tensor BaseMultilayerPerceptron::GraphTargets(const Tensor& y) const {
  const TensorType type =
      FeedType(model_->graph(GraphStage::kTrain), kLabelFeed);
  const int64_t n = y.shape()[0];
  if (classifier_ && n_outputs_ == 1) {
    Tensor targets(type.dtype, Shape{n, 1});
    for (int64_t i = 0; i < n; ++i) targets.SetFromDouble(i, y.GetAsDouble(i));
    return targets;
  }
  return y.dtype() == type.dtype ? y : y.CastTo(type.dtype);
}

void BaseMultilayerPerceptron::CompileTrainSteps(int64_t n,
                                                 int64_t batch_size) {
  const bool sgd = options_.solver == "sgd";
  const auto step_for = [&](int64_t count) {
    auto [it, inserted] = staging_->train.try_emplace(count);
    Staging::Step& step = it->second;
    if (!inserted) return;
    step.executable = &model_->executable(GraphStage::kTrain, count);
    const Graph& graph = model_->graph(GraphStage::kTrain);
    const TensorType x_type = FeedType(graph, kFeatureFeed);
    const TensorType y_type = FeedType(graph, kLabelFeed);
    step.sample_weight = Tensor(x_type.dtype, Shape{count});
    step.learning_rate = Tensor(x_type.dtype, Shape{});
    step.slots.resize(count == batch_size ? Staging::kSlots : 1);
    for (Staging::Step::Slot& slot : step.slots) {
      slot.x = Tensor(x_type.dtype, x_type.shape.WithBatch(count));
      slot.y = Tensor(y_type.dtype, y_type.shape.WithBatch(count));
      slot.feeds = {{kFeatureFeed, &slot.x},
                    {kLabelFeed, &slot.y},
                    {kSampleWeightFeed, &step.sample_weight},
                    {kLearningRateFeed, &step.learning_rate}};
    }
    const auto& names = step.executable->output_names();
    step.loss_index = static_cast<size_t>(
        std::find(names.begin(), names.end(), kLossOutput) - names.begin());
    // The graph's penalty is c * 0.5*alpha/l2_batch_ * |W|^2, scikit-learn's
    // divides by the batch's own size, which differs for a short last
    // batch. For SGD, weighting the mean data loss by count / l2_batch_
    // makes the objective (count / l2_batch_) * c * scikit-learn's, and the
    // learning rate divides that factor out: exact. Adam's moments would
    // carry the factor into later steps, so it keeps weight 1: exact but for
    // the penalty of a short batch, which is l2_batch_ / count too small.
    const double weight =
        sgd ? static_cast<double>(count) / static_cast<double>(l2_batch_) : 1.0;
    for (int64_t i = 0; i < count; ++i)
      step.sample_weight.SetFromDouble(i, weight);
  };
  // The full batch and a shorter last one (n > 0: fit checked it).
  step_for(std::min(batch_size, n));
  if (n % batch_size != 0) step_for(n % batch_size);
}

double BaseMultilayerPerceptron::RunEpoch(
    const Tensor& x, const ByteRows* x_bytes, const Tensor& targets,
    const std::vector<int64_t>& rows, int64_t batch_size,
    const std::function<double()>& side_work) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const double c = LossScale();
  const bool sgd = options_.solver == "sgd";
  const int batches = static_cast<int>((n + batch_size - 1) / batch_size);
  const auto count_of = [&](int b) {
    return std::min<int64_t>(batch_size, n - b * batch_size);
  };
  // Both executables compile here (when fit has not yet), on this thread,
  // before any gathering.
  CompileTrainSteps(n, batch_size);
  const auto slot_of = [&](int b) -> Staging::Step::Slot& {
    Staging::Step& step = staging_->train.at(count_of(b));
    return step.slots[static_cast<size_t>(b) % step.slots.size()];
  };
  const auto gather = [&](int b) {
    Staging::Step::Slot& slot = slot_of(b);
    const int64_t begin = b * batch_size;
    if (x_bytes != nullptr) {
      x_bytes->GatherRows(rows.data() + begin, count_of(b), slot.x);
    } else {
      GatherRows(x, rows.data() + begin, count_of(b), slot.x);
    }
    GatherRows(targets, rows.data() + begin, count_of(b), slot.y);
  };

  // With a worker, it claims and gathers batch b once the step of batch
  // b - kSlots has released that slot, and runs ahead of the steps through
  // the epoch: one hand-off per epoch, not one per batch (a thread's wake-up
  // costs about as much as a small net's step). Whoever reaches a batch first
  // claims it: the steps gather their own batches when the worker falls
  // behind. The worker runs `side_work`'s pieces when its batches are kSlots
  // ahead, and whenever the pieces lag behind the steps (they are paced to be
  // done at 90% of the epoch): the steps then gather their batches
  // themselves, and both threads finish about together.
  std::atomic<int> claimed{0}, trained{0};
  constexpr double kSidePace = 0.9;
  // ready[b % kSlots] is b + 1 once batch b is gathered.
  std::array<std::atomic<int>, Staging::kSlots> ready{};
  BackgroundWorker* gatherer = staging_->gatherer.get();
  if (gatherer != nullptr && batches > 0) {
    gatherer->Start([&] {
      double side_done = side_work ? 0.0 : 1.0;
      for (int b = claimed.load(); b < batches; b = claimed.load()) {
        const int done = trained.load();
        const bool side_lags =
            side_done < 1.0 &&
            side_done * kSidePace * batches < static_cast<double>(done + 1);
        if (!side_lags && b - done < Staging::kSlots) {
          if (!claimed.compare_exchange_strong(b, b + 1)) continue;
          gather(b);
          std::atomic<int>& flag = ready[b % Staging::kSlots];
          flag.store(b + 1);
          flag.notify_one();
        } else if (side_done < 1.0) {
          side_done = side_work();
        } else {
          SpinThenWait(trained, done);
        }
      }
      while (side_done < 1.0) side_done = side_work();
    });
  } else if (side_work) {
    while (side_work() < 1.0) {
    }
  }
  double accumulated = 0.0;
  for (int b = 0; b < batches; ++b) {
    const int64_t count = count_of(b);
    Staging::Step& step = staging_->train.at(count);
    int unclaimed = b;
    if (gatherer == nullptr ||
        claimed.compare_exchange_strong(unclaimed, b + 1)) {
      gather(b);
    } else {
      // While the worker gathers batch b, this thread gathers a later one
      // whose slot is free instead of idling (~15% of the steps' thread's
      // time when the worker's gathers and side work outlast the steps).
      std::atomic<int>& flag = ready[b % Staging::kSlots];
      for (int done = flag.load(); done != b + 1; done = flag.load()) {
        int next = claimed.load();
        if (next < batches && next < b + Staging::kSlots &&
            claimed.compare_exchange_strong(next, next + 1)) {
          gather(next);
          // Only this thread waits on the ready flags: no notify.
          ready[next % Staging::kSlots].store(next + 1);
        } else {
          SpinThenWait(flag, done);
        }
      }
    }
    const double scale =
        sgd ? c * static_cast<double>(count) / static_cast<double>(l2_batch_)
            : c;
    // Adam is invariant to the gradient's scale but for epsilon, which was
    // scaled by c.
    step.learning_rate.SetFromDouble(
        0, sgd ? learning_rate_ / scale : options_.learning_rate_init);
    const absl::Status status =
        step.executable->Run(slot_of(b).feeds, step.outputs);
    trained.store(b + 1);
    trained.notify_one();
    if (!status.ok()) {
      // Stop the worker's gathering, and let it finish its job before x goes
      // away.
      claimed.store(batches);
      trained.store(batches);
      trained.notify_one();
      if (gatherer != nullptr) gatherer->Wait();
      ThrowIfError(status);
    }
    const double batch_loss =
        step.outputs[step.loss_index].GetAsDouble(0) / scale;
    accumulated += batch_loss * static_cast<double>(count);
  }
  if (gatherer != nullptr && batches > 0) gatherer->Wait();
  return accumulated / static_cast<double>(n);
}

Tensor BaseMultilayerPerceptron::Forward(const Tensor& x) const {
  return Forward(x, *model_, *staging_);
}

Tensor BaseMultilayerPerceptron::Forward(const Tensor& x, Sequential& model,
                                         Staging& staging,
                                         bool compile_only) const {
  const int64_t n = x.shape()[0];
  const Graph& graph = model.graph(GraphStage::kPredict);
  const TensorType x_type = FeedType(graph, kFeatureFeed);
  Tensor result(DType::kF64, Shape{compile_only ? 0 : n, n_outputs_});
  // Up to kWhole rows in the feed's type run as one batch reading x in place
  // (validation sets); other inputs go in chunks copied out of x.
  constexpr int64_t kWhole = 16384, kChunk = 4096;
  const bool in_place = n <= kWhole && x.dtype() == x_type.dtype &&
                        x.shape() == x_type.shape.WithBatch(n);
  const int64_t chunk = in_place ? n : kChunk;
  std::vector<int64_t> rows;
  if (!in_place) {
    rows.resize(static_cast<size_t>(n));
    std::iota(rows.begin(), rows.end(), 0);
  }
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t count = std::min(chunk, n - begin);
    auto [it, inserted] = staging.predict.try_emplace(count);
    Staging::Step& step = it->second;
    if (inserted)
      step.executable = &model.executable(GraphStage::kPredict, count);
    if (compile_only) continue;
    const Tensor* batch = &x;
    if (!in_place) {
      const Shape shape = x_type.shape.WithBatch(count);
      if (step.x.dtype() != x_type.dtype || step.x.shape() != shape)
        step.x = Tensor(x_type.dtype, shape);
      GatherRows(x, rows.data() + begin, count, step.x);
      batch = &step.x;
    }
    ThrowIfError(step.executable->Run({{kFeatureFeed, batch}}, step.outputs));
    const Tensor& out = step.outputs[0];
    double* dst = result.data<double>().data() + begin * n_outputs_;
    if (out.dtype() == DType::kF32) {
      // Typed: a validation pass converts 120,000 outputs an epoch, and a
      // GetAsDouble call per element made the pass 2.2 ms instead of 2.05.
      const float* src = out.data<float>().data();
      for (int64_t i = 0; i < out.num_elements(); ++i) dst[i] = src[i];
    } else {
      for (int64_t i = 0; i < out.num_elements(); ++i)
        dst[i] = out.GetAsDouble(i);
    }
  }
  return result;
}

void BaseMultilayerPerceptron::UpdateNoImprovementCount(
    bool early_stopping, double score, std::vector<Tensor> scored_weights) {
  if (early_stopping) {
    validation_scores_.push_back(score);
    if (options_.verbose)
      *options_.out << "Validation score: " << PyF(score) << "\n";
    if (score < best_validation_score_ + options_.tol) {
      ++no_improvement_count_;
    } else {
      no_improvement_count_ = 0;
    }
    if (score > best_validation_score_) {
      best_validation_score_ = score;
      best_weights_ = scored_weights.empty() ? model_->get_weights()
                                             : std::move(scored_weights);
    }
  } else {
    if (loss_curve_.back() > best_loss_ - options_.tol) {
      ++no_improvement_count_;
    } else {
      no_improvement_count_ = 0;
    }
    if (loss_curve_.back() < best_loss_) best_loss_ = loss_curve_.back();
  }
}

void BaseMultilayerPerceptron::FitPrepared(const Tensor& x,
                                           const ByteRows* x_bytes,
                                           const Tensor& y, int64_t n_outputs,
                                           bool incremental, bool first_pass) {
  const bool early_stopping = options_.early_stopping;
  if (early_stopping && incremental)
    throw Error("partial_fit does not support early_stopping=True");
  // scikit-learn re-creates its RandomState from an integer random_state on
  // every fit; without one the generator runs on.
  if (options_.random_state)
    rng_.seed(static_cast<uint32_t>(*options_.random_state));

  if (first_pass) {
    n_features_in_ = x.shape()[1];
    n_outputs_ = n_outputs;
    n_layers_ = static_cast<int>(options_.hidden_layer_sizes.size()) + 2;
    out_activation_ = !classifier_     ? "identity"
                      : n_outputs == 1 ? "logistic"
                                       : "softmax";
    n_iter_ = 0;
    t_ = 0;
    loss_curve_.clear();
    no_improvement_count_ = 0;
    best_weights_.clear();
    if (early_stopping) {
      validation_scores_.clear();
      best_validation_score_ = -kInf;
      best_loss_ = kNaN;
    } else {
      best_loss_ = kInf;
      validation_scores_.clear();
      best_validation_score_ = kNaN;
    }
    model_.reset();
  }

  // scikit-learn draws the initial weights first, then the split, then the
  // epoch orders.
  std::vector<Tensor> init;
  if (first_pass) init = InitialWeights(n_features_in_, n_outputs_);

  // The training rows stay in x: each epoch gathers its batches from x
  // through train_rows (no copy of the training set).
  std::vector<int64_t> train_rows, val_rows;
  if (early_stopping) {
    std::tie(train_rows, val_rows) = ValidationSplit(y);
    if (val_rows.size() < 2) {
      throw Error(
          "The validation set is too small. Increase 'validation_fraction' or "
          "the size of your dataset.");
    }
  }
  const int64_t n =
      early_stopping ? static_cast<int64_t>(train_rows.size()) : x.shape()[0];
  int64_t batch_size = options_.batch_size == 0 ? std::min<int64_t>(200, n)
                                                : options_.batch_size;
  if (batch_size > n) {
    *options_.warnings << "UserWarning: Got `batch_size` less than 1 or larger "
                          "than sample size. It is going to be clipped\n";
    batch_size = n;
  }

  if (model_ == nullptr) {
    l2_batch_ = batch_size;
    BuildModel(n_features_in_, n_outputs_, init);
  } else if (!incremental || !has_optimizer_) {
    // A new optimizer (scikit-learn builds one per fit): same weights, fresh
    // Adam moments or SGD velocities.
    const std::vector<Tensor> weights = model_->get_weights();
    BuildModel(n_features_in_, n_outputs_, weights);
  }

  // order: scikit-learn's permutation of the training set; rows: the rows
  // of x it names. The next epoch's are drawn ahead (next_*) on a worker
  // thread, from a copy of the generator that replaces rng_ only if that
  // epoch runs.
  std::vector<int64_t> order(static_cast<size_t>(n)), rows;
  std::iota(order.begin(), order.end(), 0);
  std::vector<int64_t> next_order, next_rows;
  std::mt19937 next_rng;
  int64_t shuffled_down_to = 0;  // NumpyShuffleSteps' index.
  bool next_drawn = false;       // The draw has run for the next epoch.
  // The draw in pieces of ~0.1 ms (48,000 rows take ~0.8 ms in all).
  const auto add_draw_next = [&](PieceQueue& queue) {
    queue.Add([&] {
      next_rng = rng_;
      next_order = order;
      shuffled_down_to = n - 1;
    });
    constexpr int64_t kShuffleSteps = 6000;
    for (int64_t i = 0; options_.shuffle && i < n - 1; i += kShuffleSteps) {
      queue.Add([&] {
        NumpyShuffleSteps(next_order, next_rng, shuffled_down_to,
                          kShuffleSteps);
      });
    }
    queue.Add([&] {
      if (early_stopping) {
        next_rows.resize(next_order.size());
        for (size_t i = 0; i < next_order.size(); ++i)
          next_rows[i] = train_rows[static_cast<size_t>(next_order[i])];
      }
      next_drawn = true;
    });
  };
  const auto draw_next = [&] {
    PieceQueue queue;
    add_draw_next(queue);
    queue.RunAll();
  };
  BackgroundWorker* worker = staging_->gatherer.get();
  bool drawing = false;  // draw_next runs on the worker.
  const auto begin_epoch = [&] {
    if (drawing) {
      worker->Wait();
      drawing = false;
    } else if (!next_drawn) {
      draw_next();
    }
    next_drawn = false;
    order.swap(next_order);
    rows.swap(next_rows);
    rng_ = next_rng;
  };
  const std::vector<int64_t>& epoch_rows = early_stopping ? rows : order;

  // Validating epoch `it` while epoch it + 1 trains on the copy of the
  // generator and variables gives what validating first gives, unless the
  // score changes how it + 1 trains (the adaptive learning rate); when the
  // score stops training, that epoch is rolled back.
  Staging::Validation* validation = nullptr;
  if (early_stopping && !incremental && worker != nullptr &&
      !(options_.solver == "sgd" && options_.learning_rate == "adaptive")) {
    // BuildModel made staging_ for this fit (a fit that is not incremental
    // always builds a fresh optimizer).
    staging_->validation = std::make_unique<Staging::Validation>();
    validation = staging_->validation.get();
  }
  bool ahead = false;  // The epoch after the last one counted has run.
  double loss_ahead = 0.0;
  std::exception_ptr error_ahead;
  // Every variable (weights and optimizer state) and the generator as the
  // last epoch counted left them, while the next one runs ahead.
  std::vector<std::pair<std::string, Tensor>> variables_behind;
  std::mt19937 rng_behind;

  // The worker's job reads this frame: it must end before the frame does,
  // on every path out. The validation network and rows go with the fit (they
  // may point into the caller's x_bytes).
  struct WaitAtExit {
    BackgroundWorker* worker;
    std::unique_ptr<Staging::Validation>& validation;
    ~WaitAtExit() {
      if (worker != nullptr) worker->Wait();
      validation.reset();
    }
  } wait_at_exit{worker, staging_->validation};

  // The validation set is copied out of x (or read from x_bytes), and the
  // validation network built and compiled, on the worker while this thread
  // compiles the train steps.
  Tensor x_val, y_val;
  std::exception_ptr setup_error;
  const auto prepare_validation = [&] {
    y_val = TakeRows(y, val_rows);
    if (validation == nullptr) {
      x_val = TakeRows(x, val_rows);
      return;
    }
    try {
      const auto val_n = static_cast<int64_t>(val_rows.size());
      constexpr int64_t kChunk = Staging::Validation::kChunkRows;
      if (x_bytes != nullptr) {
        validation->x_bytes = x_bytes;
        validation->rows = val_rows;
        validation->chunk = Tensor(DType::kF32, Shape{kChunk, x.shape()[1]});
        validation->last_chunk =
            Tensor(DType::kF32, Shape{val_n % kChunk, x.shape()[1]});
      } else {
        for (int64_t begin = 0; begin < val_n; begin += kChunk) {
          validation->x_chunks.push_back(TakeRows(
              x, absl::MakeConstSpan(val_rows).subspan(
                     static_cast<size_t>(begin),
                     static_cast<size_t>(std::min(kChunk, val_n - begin)))));
        }
      }
      validation->outputs = Tensor(DType::kF64, Shape{val_n, n_outputs_});
      bool single_threaded = false;
      // On the training network's device: a WithDevice scope of the
      // caller's does not reach this thread.
      validation->network = CompiledNetwork(n_features_in_, n_outputs_,
                                            model_->device(), &single_threaded);
      if (x_bytes != nullptr) {
        // The shapes of the chunks, without decoding them.
        for (const Tensor* chunk :
             {&validation->chunk, &validation->last_chunk}) {
          if (chunk->shape()[0] > 0) {
            Forward(*chunk, *validation->network, validation->staging,
                    /*compile_only=*/true);
          }
        }
      } else {
        for (const Tensor& chunk : validation->x_chunks) {
          Forward(chunk, *validation->network, validation->staging,
                  /*compile_only=*/true);
        }
      }
    } catch (...) {
      setup_error = std::current_exception();
    }
  };
  if (early_stopping) {
    if (worker != nullptr) {
      worker->Start(prepare_validation);
    } else {
      prepare_validation();
    }
  }
  CompileTrainSteps(n, batch_size);
  const Tensor targets = GraphTargets(y);
  if (worker != nullptr) worker->Wait();
  if (setup_error) std::rethrow_exception(setup_error);
  n_iter_ = 0;
  for (int it = 0; it < options_.max_iter; ++it) {
    if (ahead) {
      ahead = false;
      if (error_ahead) std::rethrow_exception(error_ahead);
      loss_ = loss_ahead;
    } else {
      begin_epoch();
      loss_ = RunEpoch(x, x_bytes, targets, epoch_rows, batch_size);
      if (worker != nullptr && validation == nullptr &&
          it + 1 < options_.max_iter) {
        worker->Start(draw_next);
        drawing = true;
      }
    }
    ++n_iter_;
    t_ += n;
    loss_curve_.push_back(loss_);
    if (options_.verbose) {
      *options_.out << fmt::format("Iteration {}, loss = {:.8f}\n", n_iter_,
                                   loss_);
    }
    if (options_.solver == "sgd" && options_.learning_rate == "invscaling") {
      learning_rate_ = options_.learning_rate_init /
                       std::pow(static_cast<double>(t_ + 1), options_.power_t);
    }
    if (!early_stopping) {
      UpdateNoImprovementCount(false, kNaN, {});
    } else if (validation == nullptr) {
      UpdateNoImprovementCount(true, ScoreOutputs(Forward(x_val), y_val), {});
    } else {
      std::vector<Tensor> scored = model_->get_weights();
      validation->network->set_weights(scored);
      double score = kNaN;
      std::exception_ptr validation_error;
      // The validation pass in pieces of a chunk of rows each, then the
      // score.
      PieceQueue pieces;
      for (int64_t c = 0; c < validation->num_chunks(); ++c) {
        pieces.Add([&, c] {
          if (validation_error) return;
          try {
            const Tensor out =
                Forward(validation->Chunk(c), *validation->network,
                        validation->staging);
            std::copy_n(out.data<double>().data(), out.num_elements(),
                        validation->outputs.data<double>().data() +
                            c * Staging::Validation::kChunkRows * n_outputs_);
          } catch (...) {
            validation_error = std::current_exception();
          }
        });
      }
      pieces.Add([&] {
        if (validation_error) return;
        try {
          score = ScoreOutputs(validation->outputs, y_val);
        } catch (...) {
          validation_error = std::current_exception();
        }
      });
      if (it + 1 == options_.max_iter) {
        pieces.RunAll();  // The last epoch: nothing to run ahead.
      } else {
        VariableStore& store = model_->variables();
        variables_behind.clear();
        for (const std::string& name : store.Names())
          variables_behind.emplace_back(name, ValueOrThrow(store.Read(name)));
        rng_behind = rng_;
        begin_epoch();
        add_draw_next(pieces);
        try {
          loss_ahead = RunEpoch(x, x_bytes, targets, epoch_rows, batch_size,
                                [&] { return pieces.RunNext(); });
          error_ahead = nullptr;
        } catch (...) {
          error_ahead = std::current_exception();
        }
        ahead = true;
      }
      if (validation_error) std::rethrow_exception(validation_error);
      UpdateNoImprovementCount(true, score, std::move(scored));
    }
    if (no_improvement_count_ > options_.n_iter_no_change) {
      const std::string message =
          early_stopping
              ? fmt::format(
                    "Validation score did not improve more than "
                    "tol={:f} for {} consecutive epochs.",
                    options_.tol, options_.n_iter_no_change)
              : fmt::format(
                    "Training loss did not improve more than tol={:f} "
                    "for {} consecutive epochs.",
                    options_.tol, options_.n_iter_no_change);
      bool stopping = true;
      if (options_.solver == "sgd" && options_.learning_rate == "adaptive") {
        if (learning_rate_ <= 1e-6) {
          if (options_.verbose)
            *options_.out << message << " Learning rate too small. Stopping.\n";
        } else {
          learning_rate_ /= 5.0;
          stopping = false;
          if (options_.verbose) {
            *options_.out << message << " Setting learning rate to "
                          << PyF(learning_rate_) << "\n";
          }
        }
      } else if (options_.verbose) {
        *options_.out << message << " Stopping.\n";
      }
      if (stopping) {
        if (ahead) {
          VariableStore& store = model_->variables();
          for (const auto& [name, value] : variables_behind)
            ThrowIfError(store.Write(name, value));
          rng_ = rng_behind;
        }
        break;
      }
      no_improvement_count_ = 0;
    }
    if (incremental) break;
    if (n_iter_ == options_.max_iter) {
      *options_.warnings << fmt::format(
          "ConvergenceWarning: Stochastic Optimizer: Maximum iterations ({}) "
          "reached and the optimization hasn't converged yet.\n",
          options_.max_iter);
    }
  }
  if (early_stopping && !best_weights_.empty())
    model_->set_weights(best_weights_);
  for (const Tensor& w : model_->get_weights()) {
    for (int64_t i = 0; i < w.num_elements(); ++i) {
      if (!std::isfinite(w.GetAsDouble(i))) {
        throw Error(
            "Solver produced non-finite parameter weights. The input data may "
            "contain large values and need to be preprocessed.");
      }
    }
  }
}

// ---------------------------------------------------------------------------
// MLPClassifier

struct MLPClassifier::RawLabels {
  bool is_string = false;
  DType dtype = DType::kI64;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  size_t size() const { return is_string ? strings.size() : ints.size(); }

  static RawLabels From(const std::vector<int64_t>& y) {
    RawLabels r;
    r.ints = y;
    return r;
  }
  static RawLabels From(const std::vector<std::string>& y) {
    RawLabels r;
    r.is_string = true;
    r.strings = y;
    return r;
  }
  static RawLabels From(const Tensor& y, const char* what) {
    if (!IsInteger(y.dtype())) {
      throw Error(absl::StrCat(
          "MLPClassifier.", what, ": class labels must be integers (i32 or ",
          "i64) or strings, got a ", DTypeName(y.dtype()),
          " tensor; for continuous targets use MLPRegressor"));
    }
    const bool column = y.shape().rank() == 2 && y.shape()[1] == 1;
    if (y.shape().rank() != 1 && !column) {
      throw Error(absl::StrCat(
          "MLPClassifier.", what, ": y must have shape (n_samples,), got ",
          ShapeString(y),
          y.shape().rank() == 2 ? " (multilabel targets are not supported)"
                                : ""));
    }
    RawLabels r;
    r.dtype = y.dtype();
    r.ints.resize(static_cast<size_t>(y.num_elements()));
    for (int64_t i = 0; i < y.num_elements(); ++i) {
      r.ints[i] = y.dtype() == DType::kI64 ? y.data<int64_t>()[i]
                                           : y.data<int32_t>()[i];
    }
    return r;
  }
  ClassLabels Unique() const {
    ClassLabels classes;
    classes.is_string = is_string;
    classes.dtype = dtype;
    if (is_string) {
      classes.strings = strings;
      std::sort(classes.strings.begin(), classes.strings.end());
      classes.strings.erase(
          std::unique(classes.strings.begin(), classes.strings.end()),
          classes.strings.end());
    } else {
      classes.ints = ints;
      std::sort(classes.ints.begin(), classes.ints.end());
      classes.ints.erase(std::unique(classes.ints.begin(), classes.ints.end()),
                         classes.ints.end());
    }
    return classes;
  }
};

std::string ClassLabels::ToString(size_t i) const {
  return is_string ? strings[i] : std::to_string(ints[i]);
}

std::string ClassLabels::ToString() const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < size(); ++i)
    parts.push_back(is_string ? absl::StrCat("'", strings[i], "'")
                              : ToString(i));
  return absl::StrCat("[", absl::StrJoin(parts, " "), "]");
}

namespace {

bool SameClasses(const ClassLabels& a, const ClassLabels& b) {
  return a.is_string == b.is_string && a.ints == b.ints &&
         a.strings == b.strings;
}

}  // namespace

MLPClassifier::MLPClassifier(MLPOptions options)
    : BaseMultilayerPerceptron(std::move(options), /*classifier=*/true) {}

MLPClassifier& MLPClassifier::fit(const Tensor& x, const Tensor& y) {
  return Fit(x, RawLabels::From(y, "fit"), false, nullptr);
}
MLPClassifier& MLPClassifier::fit(const Tensor& x,
                                  const std::vector<int64_t>& y) {
  return Fit(x, RawLabels::From(y), false, nullptr);
}
MLPClassifier& MLPClassifier::fit(const Tensor& x,
                                  const std::vector<std::string>& y) {
  return Fit(x, RawLabels::From(y), false, nullptr);
}

MLPClassifier& MLPClassifier::partial_fit(const Tensor& x, const Tensor& y,
                                          std::optional<Tensor> classes) {
  if (!classes) return Fit(x, RawLabels::From(y, "partial_fit"), true, nullptr);
  const RawLabels c = RawLabels::From(*classes, "partial_fit(classes)");
  return Fit(x, RawLabels::From(y, "partial_fit"), true, &c);
}
MLPClassifier& MLPClassifier::partial_fit(
    const Tensor& x, const std::vector<int64_t>& y,
    std::optional<std::vector<int64_t>> classes) {
  if (!classes) return Fit(x, RawLabels::From(y), true, nullptr);
  const RawLabels c = RawLabels::From(*classes);
  return Fit(x, RawLabels::From(y), true, &c);
}
MLPClassifier& MLPClassifier::partial_fit(
    const Tensor& x, const std::vector<std::string>& y,
    std::optional<std::vector<std::string>> classes) {
  if (!classes) return Fit(x, RawLabels::From(y), true, nullptr);
  const RawLabels c = RawLabels::From(*classes);
  return Fit(x, RawLabels::From(y), true, &c);
}

Tensor MLPClassifier::Encode(const RawLabels& y, const char* what) const {
  if (y.is_string != classes_.is_string) {
    throw Error(absl::StrCat(
        "MLPClassifier.", what, ": y has ", y.is_string ? "string" : "integer",
        " labels but the classes are ",
        classes_.is_string ? "strings " : "integers ", classes_.ToString()));
  }
  const int64_t n = static_cast<int64_t>(y.size());
  Tensor indices(DType::kI32, Shape{n});
  auto out = indices.data<int32_t>();
  std::set<std::string> unknown;
  for (int64_t i = 0; i < n; ++i) {
    size_t index;
    bool found;
    if (y.is_string) {
      auto it = std::lower_bound(classes_.strings.begin(),
                                 classes_.strings.end(), y.strings[i]);
      index = static_cast<size_t>(it - classes_.strings.begin());
      found = it != classes_.strings.end() && *it == y.strings[i];
    } else {
      auto it = std::lower_bound(classes_.ints.begin(), classes_.ints.end(),
                                 y.ints[i]);
      index = static_cast<size_t>(it - classes_.ints.begin());
      found = it != classes_.ints.end() && *it == y.ints[i];
    }
    if (!found) {
      unknown.insert(y.is_string ? absl::StrCat("'", y.strings[i], "'")
                                 : std::to_string(y.ints[i]));
      continue;
    }
    out[i] = static_cast<int32_t>(index);
  }
  if (!unknown.empty()) {
    throw Error(absl::StrCat(
        "MLPClassifier.", what, ": y contains labels not in classes_ ",
        classes_.ToString(), ": ", absl::StrJoin(unknown, ", ")));
  }
  return indices;
}

MLPClassifier& MLPClassifier::Fit(const Tensor& x_in, const RawLabels& y,
                                  bool incremental, const RawLabels* classes) {
  const char* what = incremental ? "partial_fit" : "fit";
  CheckOptions();
  const bool first_pass = !fitted() || (!options_.warm_start && !incremental);
  // Checked before anything changes, so a failed call leaves a fitted model
  // as it was.
  Tensor converted;
  std::optional<ByteRows> x_bytes;
  const Tensor& x =
      CheckX(x_in, what, converted, /*reset=*/first_pass, &x_bytes);
  if (static_cast<int64_t>(y.size()) != x.shape()[0]) {
    throw Error(absl::StrCat(
        "Found input variables with inconsistent numbers of samples: [",
        x.shape()[0], ", ", y.size(), "]"));
  }
  ClassLabels seen = y.Unique();
  ClassLabels new_classes = classes_;
  if (incremental) {
    if (classes != nullptr) {
      const ClassLabels given = classes->Unique();
      if (fitted() && !SameClasses(given, classes_)) {
        throw Error(absl::StrCat("`classes=", given.ToString(),
                                 "` is not the same as on last call to "
                                 "partial_fit, was: ",
                                 classes_.ToString()));
      }
      if (!fitted()) new_classes = given;
    } else if (!fitted()) {
      throw Error("classes must be passed on the first call to partial_fit.");
    }
  } else if (first_pass) {
    new_classes = seen;
  } else if (!SameClasses(seen, classes_)) {
    throw Error(absl::StrCat(
        "warm_start can only be used where `y` has the same classes as in the "
        "previous call to fit. Previously got ",
        classes_.ToString(), ", `y` has ", seen.ToString()));
  }
  if (new_classes.size() < 2) {
    throw Error(
        absl::StrCat("MLPClassifier.", what,
                     ": needs samples of at least 2 classes; got one class: ",
                     new_classes.ToString()));
  }
  ClassLabels old = std::move(classes_);
  classes_ = std::move(new_classes);
  Tensor indices;
  try {
    indices = Encode(y, what);
  } catch (const Error&) {
    classes_ = std::move(old);
    throw;
  }
  const int64_t n_outputs =
      classes_.size() == 2 ? 1 : static_cast<int64_t>(classes_.size());
  FitPrepared(x, x_bytes ? &*x_bytes : nullptr, indices, n_outputs, incremental,
              first_pass);
  return *this;
}

std::vector<int32_t> MLPClassifier::PredictIndices(const Tensor& x) const {
  return IndicesOf(Forward(x));
}

std::vector<int32_t> MLPClassifier::IndicesOf(const Tensor& outputs) const {
  const int64_t n = outputs.shape()[0];
  std::vector<int32_t> indices(static_cast<size_t>(n));
  auto values = outputs.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    if (n_outputs_ == 1) {
      indices[i] = values[i] > 0.0 ? 1 : 0;  // sigmoid(logit) > 0.5
    } else {
      const double* row = values.data() + i * n_outputs_;
      indices[i] =
          static_cast<int32_t>(std::max_element(row, row + n_outputs_) - row);
    }
  }
  return indices;
}

template <>
Tensor MLPClassifier::predict<Tensor>(const Tensor& x_in) const {
  RequireFitted("predict");
  if (classes_.is_string) {
    throw Error(
        "MLPClassifier.predict: the classes are strings; call "
        "predict<std::vector<std::string>>(x)");
  }
  Tensor converted;
  const std::vector<int32_t> indices =
      PredictIndices(CheckX(x_in, "predict", converted));
  const int64_t n = static_cast<int64_t>(indices.size());
  const DType dtype = classes_.dtype == DType::kI32 ? DType::kI32 : DType::kI64;
  Tensor labels(dtype, Shape{n});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = classes_.ints[indices[i]];
    if (dtype == DType::kI32) {
      labels.data<int32_t>()[i] = static_cast<int32_t>(label);
    } else {
      labels.data<int64_t>()[i] = label;
    }
  }
  return labels;
}

template <>
std::vector<int64_t> MLPClassifier::predict<std::vector<int64_t>>(
    const Tensor& x_in) const {
  RequireFitted("predict");
  if (classes_.is_string) {
    throw Error(
        "MLPClassifier.predict: the classes are strings; call "
        "predict<std::vector<std::string>>(x)");
  }
  std::vector<int64_t> labels;
  Tensor converted;
  for (int32_t i : PredictIndices(CheckX(x_in, "predict", converted)))
    labels.push_back(classes_.ints[i]);
  return labels;
}

template <>
std::vector<std::string> MLPClassifier::predict<std::vector<std::string>>(
    const Tensor& x_in) const {
  RequireFitted("predict");
  std::vector<std::string> labels;
  Tensor converted;
  for (int32_t i : PredictIndices(CheckX(x_in, "predict", converted)))
    labels.push_back(classes_.ToString(static_cast<size_t>(i)));
  return labels;
}

Tensor MLPClassifier::predict_proba(const Tensor& x_in) const {
  RequireFitted("predict_proba");
  Tensor converted;
  const Tensor out = Forward(CheckX(x_in, "predict_proba", converted));
  const int64_t n = out.shape()[0];
  const int64_t k = static_cast<int64_t>(classes_.size());
  Tensor proba(DType::kF64, Shape{n, k});
  auto values = out.data<double>();
  auto p = proba.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    if (n_outputs_ == 1) {
      const double positive = 1.0 / (1.0 + std::exp(-values[i]));
      p[2 * i] = 1.0 - positive;
      p[2 * i + 1] = positive;
      continue;
    }
    const double* row = values.data() + i * k;
    const double max = *std::max_element(row, row + k);
    double sum = 0.0;
    for (int64_t j = 0; j < k; ++j)
      sum += p[i * k + j] = std::exp(row[j] - max);
    for (int64_t j = 0; j < k; ++j) p[i * k + j] /= sum;
  }
  return proba;
}

Tensor MLPClassifier::predict_log_proba(const Tensor& x) const {
  Tensor proba = predict_proba(x);
  for (double& v : proba.data<double>()) v = std::log(v);
  return proba;
}

double MLPClassifier::Score(const Tensor& x_in, const RawLabels& y) const {
  RequireFitted("score");
  Tensor converted;
  const Tensor& x = CheckX(x_in, "score", converted);
  if (static_cast<int64_t>(y.size()) != x.shape()[0]) {
    throw Error(absl::StrCat(
        "Found input variables with inconsistent numbers of samples: [",
        x.shape()[0], ", ", y.size(), "]"));
  }
  const std::vector<int32_t> predicted = PredictIndices(x);
  int64_t correct = 0;
  for (size_t i = 0; i < predicted.size(); ++i) {
    const size_t k = static_cast<size_t>(predicted[i]);
    if (y.is_string ? classes_.is_string && classes_.strings[k] == y.strings[i]
                    : !classes_.is_string && classes_.ints[k] == y.ints[i])
      ++correct;
  }
  return static_cast<double>(correct) / static_cast<double>(predicted.size());
}

double MLPClassifier::score(const Tensor& x, const Tensor& y) const {
  return Score(x, RawLabels::From(y, "score"));
}
double MLPClassifier::score(const Tensor& x,
                            const std::vector<int64_t>& y) const {
  return Score(x, RawLabels::From(y));
}
double MLPClassifier::score(const Tensor& x,
                            const std::vector<std::string>& y) const {
  return Score(x, RawLabels::From(y));
}

double MLPClassifier::ScoreOutputs(const Tensor& outputs,
                                   const Tensor& targets) const {
  const std::vector<int32_t> predicted = IndicesOf(outputs);
  auto truth = targets.data<int32_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < predicted.size(); ++i)
    correct += predicted[i] == truth[i] ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(predicted.size());
}

// ---------------------------------------------------------------------------
// MLPRegressor

namespace {

// Uniformly averaged R^2 over the columns of [n, outputs] y and predictions
// (sklearn.metrics.r2_score with force_finite).
double R2(const Tensor& y, const Tensor& predicted) {
  const int64_t n = predicted.shape()[0];
  const int64_t k = predicted.shape()[1];
  double total = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    double mean = 0.0;
    for (int64_t i = 0; i < n; ++i) mean += y.GetAsDouble(i * k + j);
    mean /= static_cast<double>(n);
    double residual = 0.0, spread = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double truth = y.GetAsDouble(i * k + j);
      const double d = truth - predicted.data<double>()[i * k + j];
      residual += d * d;
      spread += (truth - mean) * (truth - mean);
    }
    total +=
        spread == 0.0 ? (residual == 0.0 ? 1.0 : 0.0) : 1.0 - residual / spread;
  }
  return total / static_cast<double>(k);
}

}  // namespace

MLPRegressor::MLPRegressor(MLPOptions options)
    : BaseMultilayerPerceptron(std::move(options), /*classifier=*/false) {}

Tensor MLPRegressor::Targets(const Tensor& y, int64_t rows,
                             const char* what) const {
  if (y.dtype() == DType::kBool) {
    throw Error(
        absl::StrCat("MLPRegressor.", what, ": y must be numeric, got bool"));
  }
  if (y.shape().rank() < 1 || y.shape().rank() > 2) {
    throw Error(absl::StrCat("MLPRegressor.", what,
                             ": y must have shape (n_samples,) or (n_samples, "
                             "n_outputs), got ",
                             ShapeString(y)));
  }
  if (y.shape()[0] != rows) {
    throw Error(absl::StrCat(
        "Found input variables with inconsistent numbers of samples: [", rows,
        ", ", y.shape()[0], "]"));
  }
  const int64_t k = y.shape().rank() == 2 ? y.shape()[1] : 1;
  Tensor targets(DType::kF64, Shape{rows, k});
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    const double v = y.GetAsDouble(i);
    if (!std::isfinite(v)) {
      throw Error(absl::StrCat("MLPRegressor.", what, ": y contains ",
                               std::isnan(v) ? "NaN" : "infinity", " (element ",
                               i, ")"));
    }
    targets.data<double>()[i] = v;
  }
  return targets;
}

MLPRegressor& MLPRegressor::Fit(const Tensor& x_in, const Tensor& y,
                                bool incremental) {
  const char* what = incremental ? "partial_fit" : "fit";
  CheckOptions();
  const bool first_pass = !fitted() || (!options_.warm_start && !incremental);
  Tensor converted;
  std::optional<ByteRows> x_bytes;
  const Tensor& x =
      CheckX(x_in, what, converted, /*reset=*/first_pass, &x_bytes);
  const Tensor targets = Targets(y, x.shape()[0], what);
  if (!first_pass && targets.shape()[1] != n_outputs_) {
    throw Error(
        absl::StrCat("MLPRegressor.", what, ": y has ", targets.shape()[1],
                     " outputs, but the fitted model has ", n_outputs_));
  }
  FitPrepared(x, x_bytes ? &*x_bytes : nullptr, targets, targets.shape()[1],
              incremental, first_pass);
  return *this;
}

MLPRegressor& MLPRegressor::fit(const Tensor& x, const Tensor& y) {
  return Fit(x, y, false);
}
MLPRegressor& MLPRegressor::fit(const Tensor& x, const std::vector<double>& y) {
  return Fit(
      x, Tensor::FromVector<double>(y, Shape{static_cast<int64_t>(y.size())}),
      false);
}
MLPRegressor& MLPRegressor::partial_fit(const Tensor& x, const Tensor& y) {
  return Fit(x, y, true);
}

Tensor MLPRegressor::predict(const Tensor& x_in) const {
  RequireFitted("predict");
  Tensor converted;
  Tensor out = Forward(CheckX(x_in, "predict", converted));
  if (n_outputs_ != 1) return out;
  Tensor flat(DType::kF64, Shape{out.shape()[0]});
  std::memcpy(flat.raw_data(), out.raw_data(), out.num_bytes());
  return flat;
}

double MLPRegressor::score(const Tensor& x_in, const Tensor& y) const {
  RequireFitted("score");
  Tensor converted;
  const Tensor& x = CheckX(x_in, "score", converted);
  const Tensor targets = Targets(y, x.shape()[0], "score");
  const Tensor predicted = Forward(x);
  if (targets.shape()[1] != n_outputs_) {
    throw Error(absl::StrCat("MLPRegressor.score: y has ", targets.shape()[1],
                             " outputs, but the model predicts ", n_outputs_));
  }
  return R2(targets, predicted);
}

double MLPRegressor::ScoreOutputs(const Tensor& outputs,
                                  const Tensor& targets) const {
  return R2(targets, outputs);
}

}  // namespace sequent
