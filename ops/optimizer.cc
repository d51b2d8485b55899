// Op family `optimizer`: one fused update per variable (Keras 3 optimizers) and
// per-tensor gradient clipping (Keras clipvalue / clipnorm).
//
// The updates are pure: (var, grad, slots..., learning_rate, iterations) ->
// (var', slots'...). The training graph writes the results back as variable
// updates; `inplace` lets the memory planner reuse the old buffers. Kernels
// read every input element i before writing output element i, so they stay
// correct when an output shares its buffer with the input it replaces.
//
// Arithmetic follows Keras 3 in the variable's dtype: hyperparameters are cast
// to T, and Python-side constants such as (1 - beta_1) are formed in double
// before the cast, as Keras does.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
#include "core/op_registry.h"
#include "core/status_macros.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

// ---------------------------------------------------------------------------
// Shape rules.

// var, grad and every slot share one type; learning_rate and iterations are
// scalars of var's dtype. Outputs: var and each slot, unchanged in type.
absl::StatusOr<std::vector<TensorType>> UpdateShape(
    const std::vector<std::string>& input_names,
    absl::Span<const TensorType> inputs) {
  const TensorType& var = inputs[0];
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(var, "var"));
  const size_t num_tensors = inputs.size() - 2;  // var, grad, slots
  for (size_t i = 1; i < num_tensors; ++i) {
    if (inputs[i] != var) {
      return absl::InvalidArgumentError(
          absl::StrCat(input_names[i], " ", inputs[i].ToString(),
                       " differs from var ", var.ToString()));
    }
  }
  const TensorType scalar{var.dtype, Shape{}};
  for (size_t i = num_tensors; i < inputs.size(); ++i) {
    if (inputs[i] != scalar) {
      return absl::InvalidArgumentError(
          absl::StrCat(input_names[i], " must be a scalar of var's dtype (",
                       scalar.ToString(), "), got ", inputs[i].ToString()));
    }
  }
  std::vector<TensorType> out(num_tensors - 1, var);  // var' and slots'
  return out;
}

absl::Status ExpectInRange(const Attributes& attrs, absl::string_view name,
                           double lo, double hi, bool hi_inclusive) {
  SEQUENT_ASSIGN_OR_RETURN(double v, GetFloatAttr(attrs, name));
  if (v >= lo && (hi_inclusive ? v <= hi : v < hi)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " must be in [", lo, ", ", hi,
                   hi_inclusive ? "]" : ")", ", got ", v));
}

absl::Status ExpectNonNegative(const Attributes& attrs,
                               absl::string_view name) {
  SEQUENT_ASSIGN_OR_RETURN(double v, GetFloatAttr(attrs, name));
  if (v >= 0.0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " must be >= 0, got ", v));
}

// ---------------------------------------------------------------------------
// Kernels.

// Views of one update's tensors in element type T.
template <typename T>
struct UpdateArgs {
  using Scalar = T;
  std::span<const T> var;
  std::span<const T> grad;
  std::vector<std::span<const T>> slots;
  T lr;
  T iterations;  // Steps done before this one.
  std::span<T> var_out;
  std::vector<std::span<T>> slots_out;
};

// Checks element counts (the shape rule already did; a backend calling the
// kernel with other buffers gets an error rather than an overrun), builds the
// views and runs `body(args)` for f32 or f64.
template <typename Body>
absl::Status RunUpdate(absl::string_view op,
                       absl::Span<const Tensor* const> inputs,
                       absl::Span<Tensor* const> outputs, Body&& body) {
  const size_t num_slots = outputs.size() - 1;
  if (inputs.size() != num_slots + 4) {
    return absl::InternalError(absl::StrCat(
        "[", op, "] expects ", num_slots + 4, " inputs, got ", inputs.size()));
  }
  const Tensor& var = *inputs[0];
  const int64_t n = var.num_elements();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const bool scalar = i >= num_slots + 2;
    if (inputs[i]->dtype() != var.dtype() ||
        inputs[i]->num_elements() != (scalar ? 1 : n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "[", op, "] input ", i, " is ", inputs[i]->type().ToString(),
          " next to var ", var.type().ToString()));
    }
  }
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (outputs[k]->dtype() != var.dtype() || outputs[k]->num_elements() != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "[", op, "] output ", k, " is ", outputs[k]->type().ToString(),
          " next to var ", var.type().ToString()));
    }
  }
  return DispatchFloat(var.dtype(), op, [&](auto zero) -> absl::Status {
    using T = decltype(zero);
    UpdateArgs<T> a;
    a.var = var.data<T>();
    a.grad = inputs[1]->data<T>();
    for (size_t s = 0; s < num_slots; ++s) {
      a.slots.push_back(inputs[2 + s]->data<T>());
      a.slots_out.push_back(outputs[1 + s]->data<T>());
    }
    a.lr = inputs[num_slots + 2]->data<T>()[0];
    a.iterations = inputs[num_slots + 3]->data<T>()[0];
    a.var_out = outputs[0]->data<T>();
    body(a);
    return absl::OkStatus();
  });
}

// One Adam step on element i given the already weight-decayed value w.
template <typename T>
void AdamElement(UpdateArgs<T>& a, size_t i, T w, T alpha, T one_minus_b1,
                 T one_minus_b2, T eps) {
  const T g = a.grad[i];
  const T m = a.slots[0][i] + (g - a.slots[0][i]) * one_minus_b1;
  const T v = a.slots[1][i] + (g * g - a.slots[1][i]) * one_minus_b2;
  a.slots_out[0][i] = m;
  a.slots_out[1][i] = v;
  a.var_out[i] = w - (m * alpha) / (std::sqrt(v) + eps);
}

// Adam (and AdamW when weight_decay > 0): Keras 3 adam.update_step, preceded
// for AdamW by the base optimizer's var -= var * wd * lr.
absl::Status AdamKernel(absl::string_view op, bool decoupled_decay,
                        absl::Span<const Tensor* const> inputs,
                        const Attributes& attrs,
                        absl::Span<Tensor* const> outputs) {
  const double beta_1 = FloatAttrOr(attrs, "beta_1", 0.9);
  const double beta_2 = FloatAttrOr(attrs, "beta_2", 0.999);
  const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-7);
  const double weight_decay =
      decoupled_decay ? FloatAttrOr(attrs, "weight_decay", 0.004) : 0.0;
  return RunUpdate(op, inputs, outputs, [&](auto& a) {
    using T = typename std::decay_t<decltype(a)>::Scalar;
    const T t = a.iterations + T(1);
    const T b1_power = std::pow(static_cast<T>(beta_1), t);
    const T b2_power = std::pow(static_cast<T>(beta_2), t);
    const T alpha = a.lr * std::sqrt(T(1) - b2_power) / (T(1) - b1_power);
    const T one_minus_b1 = static_cast<T>(1.0 - beta_1);
    const T one_minus_b2 = static_cast<T>(1.0 - beta_2);
    const T eps = static_cast<T>(epsilon);
    const T wd = static_cast<T>(weight_decay);
    for (size_t i = 0; i < a.var.size(); ++i) {
      T w = a.var[i];
      if (decoupled_decay) w = w - w * wd * a.lr;
      AdamElement(a, i, w, alpha, one_minus_b1, one_minus_b2, eps);
    }
  });
}

// ---------------------------------------------------------------------------
// Op definitions.

// The common schema of an update op with the given slot names.
OpDef MakeUpdateDef(std::string name, std::vector<std::string> slots,
                    std::vector<AttrSpec> attrs) {
  OpDef def;
  def.name = std::move(name);
  def.family = "optimizer";
  def.inputs = {"var", "grad"};
  def.outputs = {"var_out"};
  def.inplace = {{0, 0}};
  for (size_t s = 0; s < slots.size(); ++s) {
    def.inputs.push_back(slots[s]);
    def.outputs.push_back(absl::StrCat(slots[s], "_out"));
    def.inplace.push_back({static_cast<int>(s) + 1, static_cast<int>(s) + 2});
  }
  def.inputs.push_back("learning_rate");
  def.inputs.push_back("iterations");
  def.attrs = std::move(attrs);
  def.stateful = false;  // Pure: the graph's update list does the writing.
  return def;
}

// Infers with UpdateShape after `check_attrs`.
template <typename CheckAttrs>
ShapeFn UpdateShapeFn(std::vector<std::string> input_names,
                      CheckAttrs check_attrs) {
  return
      [input_names = std::move(input_names), check_attrs](
          absl::Span<const TensorType> inputs,
          const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
        SEQUENT_RETURN_IF_ERROR(check_attrs(attrs));
        return UpdateShape(input_names, inputs);
      };
}

absl::Status NoAttrs(const Attributes&) { return absl::OkStatus(); }

absl::Status AdamAttrs(const Attributes& attrs) {
  // beta = 1 would divide by 1 - beta^t = 0.
  SEQUENT_RETURN_IF_ERROR(ExpectInRange(attrs, "beta_1", 0.0, 1.0, false));
  SEQUENT_RETURN_IF_ERROR(ExpectInRange(attrs, "beta_2", 0.0, 1.0, false));
  return ExpectNonNegative(attrs, "epsilon");
}

absl::StatusOr<std::vector<TensorType>> ClipShape(const TensorType& x) {
  SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
  return std::vector<TensorType>{x};
}

}  // namespace

OpDef Make_sgd_update_Op() {
  OpDef def = MakeUpdateDef("sgd_update", {}, {});
  def.infer = UpdateShapeFn(def.inputs, NoAttrs);
  def.reference = [](absl::Span<const Tensor* const> inputs, const Attributes&,
                     absl::Span<Tensor* const> outputs) {
    return RunUpdate("sgd_update", inputs, outputs, [](auto& a) {
      for (size_t i = 0; i < a.var.size(); ++i) {
        a.var_out[i] = a.var[i] - a.grad[i] * a.lr;
      }
    });
  };
  return def;
}

OpDef Make_momentum_update_Op() {
  OpDef def = MakeUpdateDef(
      "momentum_update", {"velocity"},
      {{"momentum", AttrValue(0.0)}, {"nesterov", AttrValue(false)}});
  def.infer = UpdateShapeFn(def.inputs, [](const Attributes& attrs) {
    return ExpectInRange(attrs, "momentum", 0.0, 1.0, true);
  });
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    const double momentum = FloatAttrOr(attrs, "momentum", 0.0);
    const bool nesterov = BoolAttrOr(attrs, "nesterov", false);
    return RunUpdate("momentum_update", inputs, outputs, [&](auto& a) {
      using T = typename std::decay_t<decltype(a)>::Scalar;
      const T mu = static_cast<T>(momentum);
      for (size_t i = 0; i < a.var.size(); ++i) {
        const T g = a.grad[i];
        const T v = a.slots[0][i] * mu - g * a.lr;
        a.slots_out[0][i] = v;
        a.var_out[i] = a.var[i] + (nesterov ? v * mu - g * a.lr : v);
      }
    });
  };
  return def;
}

OpDef Make_adam_update_Op() {
  OpDef def = MakeUpdateDef("adam_update", {"m", "v"},
                            {{"beta_1", AttrValue(0.9)},
                             {"beta_2", AttrValue(0.999)},
                             {"epsilon", AttrValue(1e-7)}});
  def.infer = UpdateShapeFn(def.inputs, AdamAttrs);
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    return AdamKernel("adam_update", /*decoupled_decay=*/false, inputs, attrs,
                      outputs);
  };
  return def;
}

OpDef Make_adamw_update_Op() {
  OpDef def = MakeUpdateDef("adamw_update", {"m", "v"},
                            {{"beta_1", AttrValue(0.9)},
                             {"beta_2", AttrValue(0.999)},
                             {"epsilon", AttrValue(1e-7)},
                             {"weight_decay", AttrValue(0.004)}});
  def.infer = UpdateShapeFn(def.inputs, [](const Attributes& attrs) {
    SEQUENT_RETURN_IF_ERROR(AdamAttrs(attrs));
    return ExpectNonNegative(attrs, "weight_decay");
  });
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    return AdamKernel("adamw_update", /*decoupled_decay=*/true, inputs, attrs,
                      outputs);
  };
  return def;
}

// Keras 3 RMSprop (momentum 0, not centered) puts epsilon under the root:
// var -= lr * g / sqrt(ms' + epsilon).
OpDef Make_rmsprop_update_Op() {
  OpDef def =
      MakeUpdateDef("rmsprop_update", {"ms"},
                    {{"rho", AttrValue(0.9)}, {"epsilon", AttrValue(1e-7)}});
  def.infer = UpdateShapeFn(def.inputs, [](const Attributes& attrs) {
    SEQUENT_RETURN_IF_ERROR(ExpectInRange(attrs, "rho", 0.0, 1.0, true));
    return ExpectNonNegative(attrs, "epsilon");
  });
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    const double rho = FloatAttrOr(attrs, "rho", 0.9);
    const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-7);
    return RunUpdate("rmsprop_update", inputs, outputs, [&](auto& a) {
      using T = typename std::decay_t<decltype(a)>::Scalar;
      const T r = static_cast<T>(rho);
      const T one_minus_r = static_cast<T>(1.0 - rho);
      const T eps = static_cast<T>(epsilon);
      for (size_t i = 0; i < a.var.size(); ++i) {
        const T g = a.grad[i];
        const T ms = r * a.slots[0][i] + one_minus_r * (g * g);
        a.slots_out[0][i] = ms;
        a.var_out[i] = a.var[i] - (a.lr * g) / std::sqrt(ms + eps);
      }
    });
  };
  return def;
}

// Keras 3 Adagrad: var -= lr * g / sqrt(acc' + epsilon).
OpDef Make_adagrad_update_Op() {
  OpDef def = MakeUpdateDef("adagrad_update", {"accumulator"},
                            {{"epsilon", AttrValue(1e-7)}});
  def.infer = UpdateShapeFn(def.inputs, [](const Attributes& attrs) {
    return ExpectNonNegative(attrs, "epsilon");
  });
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) {
    const double epsilon = FloatAttrOr(attrs, "epsilon", 1e-7);
    return RunUpdate("adagrad_update", inputs, outputs, [&](auto& a) {
      using T = typename std::decay_t<decltype(a)>::Scalar;
      const T eps = static_cast<T>(epsilon);
      for (size_t i = 0; i < a.var.size(); ++i) {
        const T g = a.grad[i];
        const T acc = a.slots[0][i] + g * g;
        a.slots_out[0][i] = acc;
        a.var_out[i] = a.var[i] - (a.lr * g) / std::sqrt(acc + eps);
      }
    });
  };
  return def;
}

OpDef Make_clip_by_value_Op() {
  OpDef def;
  def.name = "clip_by_value";
  def.family = "optimizer";
  def.inputs = {"x"};
  def.outputs = {"y"};
  def.attrs = {{"min", std::nullopt}, {"max", std::nullopt}};
  def.inplace = {{0, 0}};
  def.infer =
      [](absl::Span<const TensorType> inputs,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_ASSIGN_OR_RETURN(double lo, GetFloatAttr(attrs, "min"));
    SEQUENT_ASSIGN_OR_RETURN(double hi, GetFloatAttr(attrs, "max"));
    if (!(lo <= hi)) {
      return absl::InvalidArgumentError(
          absl::StrCat("min must be <= max, got min ", lo, ", max ", hi));
    }
    return ClipShape(inputs[0]);
  };
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) -> absl::Status {
    const double lo = FloatAttrOr(attrs, "min", 0.0);
    const double hi = FloatAttrOr(attrs, "max", 0.0);
    if (!(lo <= hi)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "[clip_by_value] min must be <= max, got min ", lo, ", max ", hi));
    }
    const Tensor& x = *inputs[0];
    return DispatchFloat(x.dtype(), "clip_by_value", [&](auto zero) {
      using T = decltype(zero);
      auto in = x.data<T>();
      auto out = outputs[0]->data<T>();
      for (size_t i = 0; i < in.size(); ++i) {
        out[i] = std::clamp(in[i], static_cast<T>(lo), static_cast<T>(hi));
      }
      return absl::OkStatus();
    });
  };
  return def;
}

// Keras clipnorm, per tensor: x * max_norm / ||x||_2 when the norm exceeds
// max_norm, else x unchanged (Keras divides by max(norm, max_norm), the same
// up to rounding).
OpDef Make_clip_by_norm_Op() {
  OpDef def;
  def.name = "clip_by_norm";
  def.family = "optimizer";
  def.inputs = {"x"};
  def.outputs = {"y"};
  def.attrs = {{"max_norm", std::nullopt}};
  def.inplace = {{0, 0}};
  def.infer =
      [](absl::Span<const TensorType> inputs,
         const Attributes& attrs) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_ASSIGN_OR_RETURN(double max_norm, GetFloatAttr(attrs, "max_norm"));
    if (!(max_norm > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_norm must be > 0, got ", max_norm));
    }
    return ClipShape(inputs[0]);
  };
  def.reference = [](absl::Span<const Tensor* const> inputs,
                     const Attributes& attrs,
                     absl::Span<Tensor* const> outputs) -> absl::Status {
    const double max_norm = FloatAttrOr(attrs, "max_norm", 0.0);
    if (!(max_norm > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("[clip_by_norm] max_norm must be > 0, got ", max_norm));
    }
    const Tensor& x = *inputs[0];
    return DispatchFloat(x.dtype(), "clip_by_norm", [&](auto zero) {
      using T = decltype(zero);
      auto in = x.data<T>();
      auto out = outputs[0]->data<T>();
      // Summed in double so the norm does not depend on the tensor's size.
      double sum = 0.0;
      for (T v : in) sum += static_cast<double>(v) * static_cast<double>(v);
      const T norm = static_cast<T>(std::sqrt(sum));
      const T c = static_cast<T>(max_norm);
      if (norm > c) {
        for (size_t i = 0; i < in.size(); ++i) out[i] = in[i] * c / norm;
      } else if (out.data() != in.data()) {
        std::copy(in.begin(), in.end(), out.begin());
      }
      return absl::OkStatus();
    });
  };
  return def;
}

}  // namespace sequent::ops
