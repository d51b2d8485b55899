#ifndef SEQUENT_OPS_BACKWARD_ACTIVATION_H_
#define SEQUENT_OPS_BACKWARD_ACTIVATION_H_

#include "absl/status/statusor.h"
#include "core/attribute.h"
#include "ops/activation_fn.h"

namespace sequent::ops {

// The backward ops' `alpha` default, standing for the activation's own
// default (leaky_relu 0.2, elu 1.0), since one number cannot be the default of
// both. The gradient rules always write alpha out.
inline constexpr double kBackwardDefaultAlpha = -1.0;

// Whether d activation / dx is a function of the output y (monotonic
// activations with an invertible relation between y and the derivative). For
// leaky_relu this assumes alpha > 0, so that y > 0 exactly when x > 0.
bool HasOutputDerivative(ActivationKind kind);

// The activation named by a backward op's `activation` / `alpha` /
// `approximate` attributes (activation_grad, activation_input_grad,
// activation_bias_grad): the op family's rules and every backend's lowering
// read them through this. `alpha` -1 stands for the activation's own default
// (leaky_relu 0.2, elu 1.0). With `from_output`, activations whose derivative
// the output does not determine are an error.
absl::StatusOr<Activation> BackwardActivation(const Attributes& attrs,
                                              bool from_output);

}  // namespace sequent::ops

#endif  // SEQUENT_OPS_BACKWARD_ACTIVATION_H_
