// Gradient-check rows of the families linear, elementwise, activation, reduce
// and shape.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/graph_builder.h"
#include "tests/ops/gradients/rows.h"

namespace sequent::testing {
namespace {

using Ints = std::vector<int64_t>;

TensorType F64(Shape shape) { return {DType::kF64, std::move(shape)}; }

Operand Diff(Shape shape, std::function<void(Tensor&)> fill = nullptr) {
  return {F64(std::move(shape)), true, std::move(fill)};
}

// Inputs kept at least 0.1 from the kink at 0 (relu, abs, leaky_relu, ...).
Operand OffKink(Shape shape, uint64_t seed) {
  return Diff(std::move(shape), AwayFromZeroFill(-1, 1, 0.1, seed));
}

// Every element distinct and far apart, so that maxima have no ties.
std::function<void(Tensor&)> DistinctFill() {
  return [](Tensor& t) {
    const int64_t n = t.num_elements();
    for (int64_t i = 0; i < n; ++i) {
      t.SetFromDouble(
          i,
          2.0 * static_cast<double>((i * 37) % n) / static_cast<double>(n) - 1);
    }
  };
}

GradientCase Row(std::string name, std::string op,
                 std::vector<Operand> operands, Attributes attrs = {}) {
  GradientCase c;
  c.name = std::move(name);
  c.op = std::move(op);
  c.operands = std::move(operands);
  c.attrs = std::move(attrs);
  return c;
}

Attributes Transposes(bool a, bool b) {
  return {{"transpose_a", a}, {"transpose_b", b}};
}

void LinearRows(std::vector<GradientCase>& rows) {
  rows.push_back(Row("matmul", "matmul", {Diff({3, 4}), Diff({4, 2})}));
  rows.push_back(Row("matmul_ta", "matmul", {Diff({4, 3}), Diff({4, 2})},
                     Transposes(true, false)));
  rows.push_back(Row("matmul_tb", "matmul", {Diff({3, 4}), Diff({2, 4})},
                     Transposes(false, true)));
  rows.push_back(Row("matmul_ta_tb", "matmul", {Diff({4, 3}), Diff({2, 4})},
                     Transposes(true, true)));
  rows.push_back(Row("bias_add", "bias_add", {Diff({3, 4}), Diff({4})}));
  rows.push_back(
      Row("bias_add_rank3", "bias_add", {Diff({2, 3, 4}), Diff({4})}));
  rows.push_back(Row("dense_no_bias", "dense", {Diff({3, 4}), Diff({4, 2})}));
  rows.push_back(
      Row("dense_linear", "dense", {Diff({3, 4}), Diff({4, 2}), Diff({2})}));
  // Activations whose derivative the fused node reads from its output. The
  // pre-activation must stay off relu's kink: x and the kernel are positive
  // and the bias fixes the sign, far from 0.
  for (const char* act :
       {"relu", "sigmoid", "tanh", "elu", "selu", "leaky_relu"}) {
    rows.push_back(Row(std::string("dense_") + act, "dense",
                       {Diff({3, 4}, UniformFill(0.5, 1, 3)),
                        Diff({4, 2}, UniformFill(0.5, 1, 4)),
                        Diff({2},
                             [](Tensor& t) {
                               t.SetFromDouble(0, -5);  // Column 0 negative.
                               t.SetFromDouble(1, 0.5);
                             })},
                       {{"activation", std::string(act)}}));
  }
}

void ElementwiseRows(std::vector<GradientCase>& rows) {
  for (const char* op : {"add", "sub", "mul"}) {
    rows.push_back(Row(op, op, {Diff({3, 4}), Diff({3, 4})}));
    rows.push_back(
        Row(std::string(op) + "_broadcast_row", op, {Diff({3, 4}), Diff({4})}));
    rows.push_back(Row(std::string(op) + "_broadcast_both", op,
                       {Diff({3, 1}), Diff({1, 4})}));
  }
  rows.push_back(Row("mul_scalar", "mul", {Diff({}), Diff({2, 3})}));
  auto away = [](uint64_t seed) { return AwayFromZeroFill(-2, 2, 0.5, seed); };
  rows.push_back(Row("div", "div", {Diff({3, 4}), Diff({3, 4}, away(5))}));
  rows.push_back(
      Row("div_broadcast", "div", {Diff({3, 4}), Diff({3, 1}, away(6))}));
  rows.push_back(Row("div_broadcast_numerator", "div",
                     {Diff({4}), Diff({3, 4}, away(7))}));
  // x - y stays at least 0.2 from 0: no ties.
  rows.push_back(
      Row("maximum", "maximum",
          {Diff({3, 4}, UniformFill(-1, 1, 8)), Diff({3, 4}, [](Tensor& t) {
             for (int64_t i = 0; i < t.num_elements(); ++i)
               t.SetFromDouble(i, i % 2 == 0 ? -1.5 : 1.5);
           })}));
  rows.push_back(Row("maximum_broadcast", "maximum",
                     {OffKink({3, 4}, 9), Diff({4}, [](Tensor& t) {
                        t.SetFromDouble(0, 0.0);
                        t.SetFromDouble(1, 0.05);
                        t.SetFromDouble(2, -0.05);
                        t.SetFromDouble(3, 0.0);
                      })}));
  rows.push_back(Row("neg", "neg", {Diff({3, 4})}));
  rows.push_back(Row("exp", "exp", {Diff({3, 4})}));
  rows.push_back(Row("log", "log", {Diff({3, 4}, UniformFill(0.5, 2, 10))}));
  rows.push_back(Row("sqrt", "sqrt", {Diff({3, 4}, UniformFill(0.5, 2, 11))}));
  rows.push_back(Row("square", "square", {Diff({3, 4})}));
  rows.push_back(Row("abs", "abs", {OffKink({3, 4}, 12)}));
}

void ActivationRows(std::vector<GradientCase>& rows) {
  rows.push_back(Row("relu", "relu", {OffKink({3, 4}, 20)}));
  rows.push_back(Row("leaky_relu", "leaky_relu", {OffKink({3, 4}, 21)}));
  rows.push_back(Row("leaky_relu_alpha", "leaky_relu", {OffKink({3, 4}, 22)},
                     {{"alpha", 0.05}}));
  rows.push_back(Row("elu", "elu", {OffKink({3, 4}, 23)}));
  rows.push_back(
      Row("elu_alpha", "elu", {OffKink({3, 4}, 24)}, {{"alpha", 0.5}}));
  rows.push_back(Row("selu", "selu", {OffKink({3, 4}, 25)}));
  rows.push_back(Row("sigmoid", "sigmoid", {Diff({3, 4})}));
  rows.push_back(Row("tanh", "tanh", {Diff({3, 4})}));
  rows.push_back(Row("gelu", "gelu", {Diff({3, 4}, UniformFill(-3, 3, 26))}));
  rows.push_back(Row("gelu_tanh", "gelu",
                     {Diff({3, 4}, UniformFill(-3, 3, 27))},
                     {{"approximate", true}}));
  rows.push_back(Row("swish", "swish", {Diff({3, 4}, UniformFill(-3, 3, 28))}));
  rows.push_back(
      Row("softplus", "softplus", {Diff({3, 4}, UniformFill(-3, 3, 29))}));
  rows.push_back(Row("softmax", "softmax", {Diff({3, 4})}));
  rows.push_back(
      Row("softmax_axis0", "softmax", {Diff({3, 4})}, {{"axis", int64_t{0}}}));
  rows.push_back(Row("softmax_rank3_axis1", "softmax", {Diff({2, 3, 2})},
                     {{"axis", int64_t{1}}}));
  rows.push_back(Row("log_softmax", "log_softmax", {Diff({3, 4})}));
  rows.push_back(Row("log_softmax_axis0", "log_softmax", {Diff({3, 4})},
                     {{"axis", int64_t{0}}}));
}

void ReduceRows(std::vector<GradientCase>& rows) {
  struct Variant {
    const char* name;
    Ints axes;
    bool keepdims;
  };
  const std::vector<Variant> variants = {
      {"all", {}, false},
      {"axis0", {0}, false},
      {"axis1_keepdims", {1}, true},
      {"axes02", {0, 2}, false},
      {"axes_neg1", {-1}, false},
      {"all_keepdims", {}, true},
  };
  for (const char* op : {"reduce_sum", "reduce_mean", "reduce_max"}) {
    for (const Variant& v : variants) {
      rows.push_back(Row(
          absl::StrCat(op, "_", v.name), op, {Diff({2, 3, 4}, DistinctFill())},
          {{"axes", AttrValue(v.axes)}, {"keepdims", AttrValue(v.keepdims)}}));
    }
  }
}

void ShapeRows(std::vector<GradientCase>& rows) {
  rows.push_back(Row("reshape", "reshape", {Diff({3, 4})},
                     {{"shape", AttrValue(Ints{2, 6})}}));
  rows.push_back(Row("reshape_rank3", "reshape", {Diff({2, 3, 4})},
                     {{"shape", AttrValue(Ints{4, 3, 2})}}));
  rows.push_back(Row("flatten", "flatten", {Diff({2, 3, 2})}));
  rows.push_back(Row("transpose", "transpose", {Diff({3, 4})},
                     {{"perm", AttrValue(Ints{1, 0})}}));
  rows.push_back(Row("transpose_rank3", "transpose", {Diff({2, 3, 4})},
                     {{"perm", AttrValue(Ints{2, 0, 1})}}));
  rows.push_back(Row("concat_last", "concat", {Diff({3, 2}), Diff({3, 4})}));
  rows.push_back(Row("concat_axis0_three", "concat",
                     {Diff({1, 4}), Diff({2, 4}), Diff({3, 4})},
                     {{"axis", int64_t{0}}}));
  rows.push_back(Row("concat_middle", "concat",
                     {Diff({2, 1, 3}), Diff({2, 2, 3})},
                     {{"axis", int64_t{1}}}));
  rows.push_back(
      Row("slice", "slice", {Diff({3, 4})},
          {{"begin", AttrValue(Ints{1, 1})}, {"size", AttrValue(Ints{2, 2})}}));
  rows.push_back(Row("slice_to_end", "slice", {Diff({2, 3, 4})},
                     {{"begin", AttrValue(Ints{0, 1, 2})},
                      {"size", AttrValue(Ints{-1, 1, -1})}}));
  // f64 is the only dtype a finite-difference check resolves, so the cast
  // checked here is f64 -> f64; the rule still emits a cast of the gradient.
  rows.push_back(Row("cast_identity", "cast", {Diff({3, 4})},
                     {{"to", std::string("f64")}}));
}

}  // namespace

std::vector<GradientCase> GradientRowsA() {
  std::vector<GradientCase> rows;
  LinearRows(rows);
  ElementwiseRows(rows);
  ActivationRows(rows);
  ReduceRows(rows);
  ShapeRows(rows);
  return rows;
}

}  // namespace sequent::testing
