#ifndef SEQUENT_OPS_ACTIVATION_FN_H_
#define SEQUENT_OPS_ACTIVATION_FN_H_

// The scalar activation functions, defined once for the activation ops, the
// fused `dense` op and their gradient rules. Values and derivatives are
// templates over float and double.

#include <cmath>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sequent::ops {

enum class ActivationKind {
  kLinear,
  kRelu,
  kLeakyRelu,
  kElu,
  kSelu,
  kSigmoid,
  kTanh,
  kGelu,
  kSwish,
  kSoftplus,
};

// An activation with its parameters. `alpha` is used by leaky_relu and elu;
// `approximate` selects gelu's tanh form.
struct Activation {
  ActivationKind kind = ActivationKind::kLinear;
  double alpha = 0.0;
  bool approximate = false;
};

// The names accepted by `dense {activation = ...}`, in a fixed order for error
// messages.
const std::vector<std::string>& ActivationNames();

// Looks up an activation by name with its default parameters (leaky_relu alpha
// 0.2, elu alpha 1.0, exact gelu). An unknown name is an error that lists the
// valid ones.
absl::StatusOr<Activation> ParseActivation(absl::string_view name);

// Keras's selu constants (Klambauer et al. 2017).
inline constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
inline constexpr double kSeluScale = 1.0507009873554804934193349852946;

// Written so that exp never overflows, whatever the sign of x.
template <typename T>
T StableSigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <typename T>
T ActivationValue(const Activation& act, T x) {
  const T alpha = static_cast<T>(act.alpha);
  switch (act.kind) {
    case ActivationKind::kLinear:
      return x;
    case ActivationKind::kRelu:
      return x > T(0) ? x : T(0);
    case ActivationKind::kLeakyRelu:
      return x > T(0) ? x : alpha * x;
    case ActivationKind::kElu:
      return x > T(0) ? x : alpha * std::expm1(x);
    case ActivationKind::kSelu:
      return static_cast<T>(kSeluScale) *
             (x > T(0) ? x : static_cast<T>(kSeluAlpha) * std::expm1(x));
    case ActivationKind::kSigmoid:
      return StableSigmoid(x);
    case ActivationKind::kTanh:
      return std::tanh(x);
    case ActivationKind::kGelu:
      if (act.approximate) {
        const T c =
            static_cast<T>(0.79788456080286535587989211986876);  // sqrt(2/pi)
        return T(0.5) * x *
               (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
      }
      return T(0.5) * x *
             (T(1) +
              std::erf(x * static_cast<T>(0.70710678118654752440084436210485)));
    case ActivationKind::kSwish:
      return x * StableSigmoid(x);
    case ActivationKind::kSoftplus:
      // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), which neither overflows nor
      // loses small x.
      return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
  }
  return x;
}

// d activation(x) / dx. At relu's kink the derivative is taken as 0, as
// TensorFlow does.
template <typename T>
T ActivationDerivative(const Activation& act, T x) {
  const T alpha = static_cast<T>(act.alpha);
  switch (act.kind) {
    case ActivationKind::kLinear:
      return T(1);
    case ActivationKind::kRelu:
      return x > T(0) ? T(1) : T(0);
    case ActivationKind::kLeakyRelu:
      return x > T(0) ? T(1) : alpha;
    case ActivationKind::kElu:
      return x > T(0) ? T(1) : alpha * std::exp(x);
    case ActivationKind::kSelu:
      return static_cast<T>(kSeluScale) *
             (x > T(0) ? T(1) : static_cast<T>(kSeluAlpha) * std::exp(x));
    case ActivationKind::kSigmoid: {
      const T s = StableSigmoid(x);
      return s * (T(1) - s);
    }
    case ActivationKind::kTanh: {
      const T t = std::tanh(x);
      return T(1) - t * t;
    }
    case ActivationKind::kGelu: {
      if (act.approximate) {
        const T c = static_cast<T>(0.79788456080286535587989211986876);
        const T k = T(0.044715);
        const T t = std::tanh(c * (x + k * x * x * x));
        return T(0.5) * (T(1) + t) +
               T(0.5) * x * (T(1) - t * t) * c * (T(1) + T(3) * k * x * x);
      }
      const T cdf =
          T(0.5) *
          (T(1) +
           std::erf(x * static_cast<T>(0.70710678118654752440084436210485)));
      const T pdf = std::exp(T(-0.5) * x * x) *
                    static_cast<T>(0.39894228040143267793994605993438);
      return cdf + x * pdf;
    }
    case ActivationKind::kSwish: {
      const T s = StableSigmoid(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case ActivationKind::kSoftplus:
      return StableSigmoid(x);
  }
  return T(1);
}

}  // namespace sequent::ops

#endif  // SEQUENT_OPS_ACTIVATION_FN_H_
