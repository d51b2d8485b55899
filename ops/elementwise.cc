// Op family `elementwise`: numpy-broadcasting binary ops and unary math.

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/attribute.h"
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

}  // namespace

OpDef Make_add_Op() {
  return MakeBinary("add", Domain::kNumeric,
                    [](auto a, auto b) { return a + b; });
}
OpDef Make_sub_Op() {
  return MakeBinary("sub", Domain::kNumeric,
                    [](auto a, auto b) { return a - b; });
}
OpDef Make_mul_Op() {
  return MakeBinary("mul", Domain::kNumeric,
                    [](auto a, auto b) { return a * b; });
}
// Floating-point only: IEEE division by zero gives inf/nan instead of undefined
// behavior.
OpDef Make_div_Op() {
  return MakeBinary("div", Domain::kFloat,
                    [](auto a, auto b) { return a / b; });
}
// NaN propagates, as in numpy.maximum and tf.maximum.
OpDef Make_maximum_Op() {
  return MakeBinary("maximum", Domain::kNumeric, [](auto a, auto b) {
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
  });
}

OpDef Make_neg_Op() {
  return MakeUnary("neg", Domain::kNumeric,
                   [](auto x) { return static_cast<decltype(x)>(-x); });
}
OpDef Make_exp_Op() {
  return MakeUnary("exp", Domain::kFloat, [](auto x) { return std::exp(x); });
}
OpDef Make_log_Op() {
  return MakeUnary("log", Domain::kFloat, [](auto x) { return std::log(x); });
}
OpDef Make_sqrt_Op() {
  return MakeUnary("sqrt", Domain::kFloat, [](auto x) { return std::sqrt(x); });
}
OpDef Make_square_Op() {
  return MakeUnary("square", Domain::kNumeric,
                   [](auto x) { return static_cast<decltype(x)>(x * x); });
}
OpDef Make_abs_Op() {
  return MakeUnary("abs", Domain::kNumeric, [](auto x) {
    using T = decltype(x);
    if constexpr (std::is_floating_point_v<T>) {
      return std::abs(x);  // Also clears the sign of -0.0.
    } else {
      return static_cast<T>(x < 0 ? -x : x);
    }
  });
}

}  // namespace sequent::ops
