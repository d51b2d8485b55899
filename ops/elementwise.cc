// Op family `elementwise`: numpy-broadcasting binary ops and unary math.

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
#include "core/graph_builder.h"
#include "core/status_macros.h"
#include "ops/op_defs.h"
#include "ops/op_util.h"

namespace sequent::ops {
namespace {

// Which element types an op accepts. Arithmetic that stays exact on integers
// (add, mul, maximum, abs, ...) takes i32/i64 as well, so that counts and
// indices can use it; ops whose result is not an integer (div, exp, log, sqrt)
// are floating-point only.
enum class Domain { kNumeric, kFloat };

absl::Status CheckDomain(const TensorType& type, absl::string_view what,
                         Domain domain) {
  if (domain == Domain::kFloat) return ExpectFloating(type, what);
  if (IsFloating(type.dtype) || IsInteger(type.dtype)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must be a numeric tensor, got ", type.ToString()));
}

// Calls f(T{}) for f32, f64 and, in the numeric domain, i32 and i64.
template <typename F>
absl::Status Dispatch(DType dtype, absl::string_view op, Domain domain, F&& f) {
  if (domain == Domain::kNumeric) {
    if (dtype == DType::kI32) return f(int32_t{});
    if (dtype == DType::kI64) return f(int64_t{});
  }
  return DispatchFloat(dtype, op, std::forward<F>(f));
}

template <typename Fn>
OpDef MakeBinary(std::string name, Domain domain, Fn fn) {
  OpDef def;
  def.name = name;
  def.inputs = {"x", "y"};
  def.outputs = {"out"};
  // Each output element reads only the same element of x when x has the output's shape.
  def.inplace = {{0, 0}};
  def.infer =
      [domain](absl::Span<const TensorType> in,
               const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    const TensorType& y = in[1];
    if (x.dtype != y.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("dtypes differ: ", x.ToString(), " vs ", y.ToString()));
    }
    SEQUENT_RETURN_IF_ERROR(CheckDomain(x, "x", domain));
    auto shape = BroadcastShapes(x.shape, y.shape);
    if (!shape.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shapes do not broadcast: ", x.ToString(), " vs ", y.ToString()));
    }
    return std::vector<TensorType>{{x.dtype, *std::move(shape)}};
  };
  def.reference = [name, domain, fn](
                      absl::Span<const Tensor* const> in, const Attributes&,
                      absl::Span<Tensor* const> out) -> absl::Status {
    return Dispatch(in[0]->dtype(), name, domain, [&](auto t) -> absl::Status {
      using T = decltype(t);
      const Shape& out_shape = out[0]->shape();
      const std::vector<int64_t> xs =
          BroadcastStrides(in[0]->shape(), out_shape);
      const std::vector<int64_t> ys =
          BroadcastStrides(in[1]->shape(), out_shape);
      auto x = in[0]->data<T>();
      auto y = in[1]->data<T>();
      auto o = out[0]->data<T>();
      for (size_t i = 0; i < o.size(); ++i) {
        o[i] = fn(x[BroadcastSourceIndex(i, out_shape, xs)],
                  y[BroadcastSourceIndex(i, out_shape, ys)]);
      }
      return absl::OkStatus();
    });
  };
  return def;
}

template <typename Fn>
OpDef MakeUnary(std::string name, Domain domain, Fn fn) {
  OpDef def;
  def.name = name;
  def.inputs = {"x"};
  def.outputs = {"out"};
  def.inplace = {{0, 0}};
  def.infer =
      [domain](absl::Span<const TensorType> in,
               const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    SEQUENT_RETURN_IF_ERROR(CheckDomain(in[0], "x", domain));
    return std::vector<TensorType>{in[0]};
  };
  def.reference = [name, domain, fn](
                      absl::Span<const Tensor* const> in, const Attributes&,
                      absl::Span<Tensor* const> out) -> absl::Status {
    return Dispatch(in[0]->dtype(), name, domain, [&](auto t) -> absl::Status {
      using T = decltype(t);
      auto x = in[0]->data<T>();
      auto o = out[0]->data<T>();
      for (size_t i = 0; i < o.size(); ++i) o[i] = fn(x[i]);
      return absl::OkStatus();
    });
  };
  return def;
}

// The gradient of a binary op's input `input` from `grad`, which has the
// broadcast (output) shape: broadcast dimensions are summed back.
ValueId ReduceToInput(GraphBuilder& b, const Node& node, int input,
                      ValueId grad) {
  const TensorType& type = b.type(node.inputs[input]);
  if (grad == kNoValue || b.type(grad).shape == type.shape) return grad;
  return b.Op("reduce_to_shape", {grad},
              {{"shape", AttrValue(type.shape.dims())}});
}

// Integer inputs get no gradient (their ops are piecewise constant in them or
// not differentiable at all), and nothing flows without an output gradient.
bool NoGradient(const GraphBuilder& b, const Node& node,
                absl::Span<const ValueId> dys) {
  return dys.empty() || dys[0] == kNoValue ||
         !IsFloating(b.type(node.outputs[0]).dtype);
}

std::vector<ValueId> NoGradients(const Node& node) {
  return std::vector<ValueId>(node.inputs.size(), kNoValue);
}

// Binary-op gradient rule from per-input gradients at the broadcast shape.
template <typename Rule>
GradientFn BinaryGradient(Rule rule) {
  return
      [rule](GraphBuilder& b, const Node& node, absl::Span<const ValueId> dys)
          -> absl::StatusOr<std::vector<ValueId>> {
        if (NoGradient(b, node, dys)) return NoGradients(node);
        const ValueId x = node.inputs[0];
        const ValueId y = node.inputs[1];
        auto [dx, dy] = rule(b, node, x, y, dys[0]);
        return std::vector<ValueId>{ReduceToInput(b, node, 0, dx),
                                    ReduceToInput(b, node, 1, dy)};
      };
}

template <typename Rule>
GradientFn UnaryGradient(Rule rule) {
  return
      [rule](GraphBuilder& b, const Node& node, absl::Span<const ValueId> dys)
          -> absl::StatusOr<std::vector<ValueId>> {
        if (NoGradient(b, node, dys)) return NoGradients(node);
        return std::vector<ValueId>{
            rule(b, node.inputs[0], node.outputs[0], dys[0])};
      };
}

ValueId Scalar(GraphBuilder& b, double value, ValueId like) {
  return b.ScalarConstant(value, b.type(like).dtype);
}

}  // namespace

OpDef Make_add_Op() {
  OpDef def =
      MakeBinary("add", Domain::kNumeric, [](auto a, auto b) { return a + b; });
  def.gradient = BinaryGradient(
      [](GraphBuilder&, const Node&, ValueId, ValueId, ValueId dy) {
        return std::pair<ValueId, ValueId>{dy, dy};
      });
  return def;
}
OpDef Make_sub_Op() {
  OpDef def =
      MakeBinary("sub", Domain::kNumeric, [](auto a, auto b) { return a - b; });
  def.gradient = BinaryGradient(
      [](GraphBuilder& b, const Node&, ValueId, ValueId, ValueId dy) {
        return std::pair<ValueId, ValueId>{dy, b.Op("neg", {dy})};
      });
  return def;
}
OpDef Make_mul_Op() {
  OpDef def =
      MakeBinary("mul", Domain::kNumeric, [](auto a, auto b) { return a * b; });
  def.gradient = BinaryGradient(
      [](GraphBuilder& b, const Node&, ValueId x, ValueId y, ValueId dy) {
        return std::pair<ValueId, ValueId>{b.Op("mul", {dy, y}),
                                           b.Op("mul", {dy, x})};
      });
  return def;
}
// Floating-point only: IEEE division by zero gives inf/nan instead of undefined
// behavior.
OpDef Make_div_Op() {
  OpDef def =
      MakeBinary("div", Domain::kFloat, [](auto a, auto b) { return a / b; });
  // d(x/y)/dy = -x/y^2.
  def.gradient = BinaryGradient([](GraphBuilder& b, const Node&, ValueId x,
                                   ValueId y, ValueId dy) {
    const ValueId dx = b.Op("div", {dy, y});
    const ValueId dyy =
        b.Op("neg", {b.Op("div", {b.Op("mul", {dy, x}), b.Op("square", {y})})});
    return std::pair<ValueId, ValueId>{dx, dyy};
  });
  return def;
}
// NaN propagates, as in numpy.maximum and tf.maximum.
OpDef Make_maximum_Op() {
  OpDef def = MakeBinary("maximum", Domain::kNumeric, [](auto a, auto b) {
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
  });
  def.gradient = BinaryGradient(
      [](GraphBuilder& b, const Node&, ValueId x, ValueId y, ValueId dy) {
        std::vector<ValueId> grads = b.OpMulti("maximum_grad", {x, y, dy});
        if (grads.size() != 2)
          return std::pair<ValueId, ValueId>{kNoValue, kNoValue};
        return std::pair<ValueId, ValueId>{grads[0], grads[1]};
      });
  return def;
}

OpDef Make_neg_Op() {
  OpDef def = MakeUnary("neg", Domain::kNumeric,
                        [](auto x) { return static_cast<decltype(x)>(-x); });
  def.gradient = UnaryGradient([](GraphBuilder& b, ValueId, ValueId,
                                  ValueId dy) { return b.Op("neg", {dy}); });
  return def;
}
OpDef Make_exp_Op() {
  OpDef def =
      MakeUnary("exp", Domain::kFloat, [](auto x) { return std::exp(x); });
  def.gradient =
      UnaryGradient([](GraphBuilder& b, ValueId, ValueId y, ValueId dy) {
        return b.Op("mul", {dy, y});
      });
  return def;
}
OpDef Make_log_Op() {
  OpDef def =
      MakeUnary("log", Domain::kFloat, [](auto x) { return std::log(x); });
  def.gradient =
      UnaryGradient([](GraphBuilder& b, ValueId x, ValueId, ValueId dy) {
        return b.Op("div", {dy, x});
      });
  return def;
}
OpDef Make_sqrt_Op() {
  OpDef def =
      MakeUnary("sqrt", Domain::kFloat, [](auto x) { return std::sqrt(x); });
  // d sqrt(x) = 0.5 / sqrt(x), read from the output.
  def.gradient =
      UnaryGradient([](GraphBuilder& b, ValueId, ValueId y, ValueId dy) {
        return b.Op("div", {b.Op("mul", {dy, Scalar(b, 0.5, dy)}), y});
      });
  return def;
}
OpDef Make_square_Op() {
  OpDef def = MakeUnary("square", Domain::kNumeric,
                        [](auto x) { return static_cast<decltype(x)>(x * x); });
  def.gradient =
      UnaryGradient([](GraphBuilder& b, ValueId x, ValueId, ValueId dy) {
        return b.Op("mul", {b.Op("mul", {x, Scalar(b, 2.0, x)}), dy});
      });
  return def;
}
OpDef Make_abs_Op() {
  OpDef def = MakeUnary("abs", Domain::kNumeric, [](auto x) {
    using T = decltype(x);
    if constexpr (std::is_floating_point_v<T>) {
      return std::abs(x);  // Also clears the sign of -0.0.
    } else {
      return static_cast<T>(x < 0 ? -x : x);
    }
  });
  // At 0 the derivative is taken as 0 (sign(0)), as TensorFlow does.
  def.gradient =
      UnaryGradient([](GraphBuilder& b, ValueId x, ValueId, ValueId dy) {
        return b.Op("mul", {dy, b.Op("sign", {x})});
      });
  return def;
}

// -1, 0 or 1 (NaN stays NaN); the derivative of abs.
OpDef Make_sign_Op() {
  OpDef def = MakeUnary("sign", Domain::kNumeric, [](auto x) {
    using T = decltype(x);
    if (x != x) return x;
    return static_cast<T>(x > T(0) ? 1 : (x < T(0) ? -1 : 0));
  });
  // Piecewise constant: its derivative is zero wherever it exists, so nothing
  // flows back (rather than failing autodiff through it).
  def.gradient = [](GraphBuilder&, const Node& node, absl::Span<const ValueId>)
      -> absl::StatusOr<std::vector<ValueId>> { return NoGradients(node); };
  return def;
}

OpDef Make_maximum_grad_Op() {
  OpDef def;
  def.name = "maximum_grad";
  def.inputs = {"x", "y", "dout"};
  def.outputs = {"dx", "dy"};
  def.infer = [](absl::Span<const TensorType> in,
                 const Attributes&) -> absl::StatusOr<std::vector<TensorType>> {
    const TensorType& x = in[0];
    const TensorType& y = in[1];
    const TensorType& dout = in[2];
    SEQUENT_RETURN_IF_ERROR(ExpectFloating(x, "x"));
    if (x.dtype != y.dtype || x.dtype != dout.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("dtypes differ: ", x.ToString(), ", ", y.ToString(),
                       ", ", dout.ToString()));
    }
    auto shape = BroadcastShapes(x.shape, y.shape);
    if (!shape.ok() || *shape != dout.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dout ", dout.ToString(), " is not the broadcast shape of ",
          x.ToString(), " and ", y.ToString()));
    }
    return std::vector<TensorType>{dout, dout};
  };
  def.reference = [](absl::Span<const Tensor* const> in, const Attributes&,
                     absl::Span<Tensor* const> out) -> absl::Status {
    return DispatchFloat(in[0]->dtype(), "maximum_grad", [&](auto t) {
      using T = decltype(t);
      const Shape& shape = out[0]->shape();
      const std::vector<int64_t> xs = BroadcastStrides(in[0]->shape(), shape);
      const std::vector<int64_t> ys = BroadcastStrides(in[1]->shape(), shape);
      auto x = in[0]->data<T>();
      auto y = in[1]->data<T>();
      auto dout = in[2]->data<T>();
      auto dx = out[0]->data<T>();
      auto dy = out[1]->data<T>();
      for (size_t i = 0; i < dout.size(); ++i) {
        const T a = x[BroadcastSourceIndex(i, shape, xs)];
        const T c = y[BroadcastSourceIndex(i, shape, ys)];
        // The gradient follows the value maximum returned: ties and a NaN in
        // x go to x, a NaN in y to y.
        const bool to_x = c == c && !(a < c);
        dx[i] = to_x ? dout[i] : T(0);
        dy[i] = to_x ? T(0) : dout[i];
      }
      return absl::OkStatus();
    });
  };
  return def;
}

}  // namespace sequent::ops
