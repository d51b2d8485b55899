#include "core/initializers.h"

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace sequent {
namespace {

// Keras divides the truncated-normal stddev by this so that the truncated
// distribution has the intended variance (the stddev of a unit normal truncated
// to [-2, 2]).
constexpr double kTruncatedStddevCorrection = .87962566103423978;
constexpr double kPi = 3.14159265358979323846;

const std::vector<std::string>& InitializerNames() {
  static const std::vector<std::string>* names = new std::vector<std::string>{
      "zeros",          "ones",          "constant",
      "glorot_uniform", "glorot_normal", "he_uniform",
      "he_normal",      "random_normal", "random_uniform"};
  return *names;
}

// Fills every element with draw(); values go through SetFromDouble, so bf16/f16
// round.
Tensor Fill(const TensorType& type, const std::function<double()>& draw) {
  Tensor t(type);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, draw());
  return t;
}

absl::StatusOr<Tensor> ConstantFill(const Attributes& attrs,
                                    const TensorType& type) {
  auto it = attrs.find("value");
  if (it == attrs.end()) {
    return absl::InvalidArgumentError(
        "initializer \"constant\" needs a `value` attribute");
  }
  std::vector<double> values;
  if (const auto* list = std::get_if<std::vector<double>>(&it->second)) {
    values = *list;
  } else if (const auto* ints =
                 std::get_if<std::vector<int64_t>>(&it->second)) {
    values.assign(ints->begin(), ints->end());
  } else {
    SEQUENT_ASSIGN_OR_RETURN(double v, GetFloatAttr(attrs, "value"));
    values = {v};
  }
  const int64_t n = type.shape.NumElements();
  if (values.size() != 1 && static_cast<int64_t>(values.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initializer \"constant\" has ", values.size(), " values for ",
        type.ToString(), " (", n, " elements); give 1 or ", n));
  }
  Tensor t(type);
  for (int64_t i = 0; i < n; ++i)
    t.SetFromDouble(i, values.size() == 1 ? values[0] : values[i]);
  return t;
}

}  // namespace

uint64_t InitRandom::NextBits() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double InitRandom::Uniform() {
  return static_cast<double>(NextBits() >> 11) * 0x1.0p-53;
}

double InitRandom::Normal() {
  // 1 - Uniform() lies in (0, 1], so the log is finite.
  const double u1 = 1.0 - Uniform();
  const double u2 = Uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

double InitRandom::TruncatedNormal() {
  for (;;) {
    const double z = Normal();
    if (std::abs(z) <= 2.0) return z;
  }
}

Fans ComputeFans(const Shape& shape) {
  const int rank = shape.rank();
  if (rank == 0) return {1, 1};
  if (rank == 1)
    return {static_cast<double>(shape[0]), static_cast<double>(shape[0])};
  if (rank == 2)
    return {static_cast<double>(shape[0]), static_cast<double>(shape[1])};
  double receptive_field = 1;
  for (int i = 0; i < rank - 2; ++i)
    receptive_field *= static_cast<double>(shape[i]);
  return {receptive_field * static_cast<double>(shape[rank - 2]),
          receptive_field * static_cast<double>(shape[rank - 1])};
}

absl::StatusOr<Tensor> InitializeVariable(const Attributes& attrs,
                                          const TensorType& type) {
  const std::string name_for_errors = StringAttrOr(attrs, "name", "");
  auto fail = [&](absl::Status s) {
    if (name_for_errors.empty()) return s;
    return absl::Status(s.code(), absl::StrCat("variable '", name_for_errors,
                                               "': ", s.message()));
  };
  if (!type.shape.IsStatic()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("cannot initialize ", type.ToString(),
                     ": the shape depends on the batch")));
  }
  std::string initializer = "zeros";
  if (attrs.contains("initializer")) {
    auto s = GetStringAttr(attrs, "initializer");
    if (!s.ok()) return fail(s.status());
    initializer = *s;
  }
  int64_t seed = 0;
  if (attrs.contains("seed")) {
    auto s = GetIntAttr(attrs, "seed");
    if (!s.ok()) return fail(s.status());
    seed = *s;
  }
  auto float_attr = [&](absl::string_view attr,
                        double fallback) -> absl::StatusOr<double> {
    if (!attrs.contains(attr)) return fallback;
    return GetFloatAttr(attrs, attr);
  };

  if (initializer == "zeros") return Tensor(type);
  if (initializer == "ones") return Fill(type, [] { return 1.0; });
  if (initializer == "constant") {
    auto t = ConstantFill(attrs, type);
    if (!t.ok()) return fail(t.status());
    return t;
  }

  bool known = false;
  for (const std::string& n : InitializerNames()) known |= (n == initializer);
  if (!known) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("unknown initializer \"", initializer,
                     "\"; valid: ", absl::StrJoin(InitializerNames(), ", "))));
  }
  if (!IsFloating(type.dtype)) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("initializer \"", initializer,
                     "\" needs a floating-point type, got ", type.ToString())));
  }

  InitRandom rng(static_cast<uint64_t>(seed));
  const Fans fans = ComputeFans(type.shape);
  if (initializer == "glorot_uniform" || initializer == "he_uniform") {
    const double limit = initializer == "glorot_uniform"
                             ? std::sqrt(6.0 / (fans.fan_in + fans.fan_out))
                             : std::sqrt(6.0 / fans.fan_in);
    return Fill(type, [&] { return -limit + 2.0 * limit * rng.Uniform(); });
  }
  if (initializer == "glorot_normal" || initializer == "he_normal") {
    const double variance = initializer == "glorot_normal"
                                ? 2.0 / (fans.fan_in + fans.fan_out)
                                : 2.0 / fans.fan_in;
    const double stddev = std::sqrt(variance) / kTruncatedStddevCorrection;
    return Fill(type, [&] { return stddev * rng.TruncatedNormal(); });
  }
  if (initializer == "random_normal") {
    auto mean = float_attr("mean", 0.0);
    if (!mean.ok()) return fail(mean.status());
    auto stddev = float_attr("stddev", 0.05);
    if (!stddev.ok()) return fail(stddev.status());
    const double m = *mean, s = *stddev;
    return Fill(type, [&] { return m + s * rng.Normal(); });
  }
  // random_uniform
  auto minval = float_attr("minval", -0.05);
  if (!minval.ok()) return fail(minval.status());
  auto maxval = float_attr("maxval", 0.05);
  if (!maxval.ok()) return fail(maxval.status());
  const double lo = *minval, hi = *maxval;
  return Fill(type, [&] { return lo + (hi - lo) * rng.Uniform(); });
}

}  // namespace sequent
