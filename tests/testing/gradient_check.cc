#include "tests/testing/gradient_check.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "backends/reference/reference_backend.h"
#include "core/autodiff.h"
#include "core/status_macros.h"
#include "ops/registry.h"

namespace sequent::testing {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

double Uniform(uint64_t seed, int64_t i) {
  return static_cast<double>(Mix(seed * 1000003u + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
}

struct Built {
  Graph graph;
  std::vector<std::string> feed_names;
  int num_grads = 0;
};

// Graph: feeds for every operand, the op (or `build`), loss = reduce_sum(out * R); outputs:
// "loss", then the gradient of each differentiable operand.
absl::StatusOr<Built> BuildCheckGraph(const GradientCase& c) {
  Built built;
  GraphBuilder b(&built.graph, &ops::DefaultRegistry());
  std::vector<ValueId> operands;
  std::vector<ValueId> wrt;
  for (size_t i = 0; i < c.operands.size(); ++i) {
    built.feed_names.push_back(absl::StrCat("in", i));
    operands.push_back(b.Input(built.feed_names.back(), c.operands[i].type));
    if (c.operands[i].differentiable) wrt.push_back(operands.back());
  }
  ValueId out;
  if (c.build) {
    out = c.build(b, operands);
  } else {
    std::vector<ValueId> outs = b.OpMulti(c.op, operands, c.attrs);
    SEQUENT_RETURN_IF_ERROR(b.status());
    if (c.output >= static_cast<int>(outs.size())) {
      return absl::InvalidArgumentError(absl::StrCat(c.op, " has no output ", c.output));
    }
    out = outs[c.output];
  }
  SEQUENT_RETURN_IF_ERROR(b.status());
  const TensorType out_type = b.type(out);
  std::vector<double> weights(static_cast<size_t>(out_type.shape.NumElements()));
  for (size_t i = 0; i < weights.size(); ++i) {
    weights[i] = 2.0 * Uniform(c.seed + 77, static_cast<int64_t>(i)) - 1.0;
  }
  const ValueId loss = b.Op("reduce_sum", {b.Op("mul", {out, b.Constant(out_type, weights)})});
  SEQUENT_RETURN_IF_ERROR(b.status());
  built.graph.AddOutput("loss", loss);
  SEQUENT_ASSIGN_OR_RETURN(std::vector<ValueId> grads, AppendGradients(b, loss, wrt));
  for (size_t i = 0; i < grads.size(); ++i) built.graph.AddOutput(absl::StrCat("grad", i), grads[i]);
  built.num_grads = static_cast<int>(grads.size());
  return built;
}

absl::StatusOr<std::vector<Tensor>> Run(const Built& built, const std::vector<Tensor>& values) {
  std::vector<Feed> feeds;
  for (size_t i = 0; i < values.size(); ++i) feeds.push_back({built.feed_names[i], &values[i]});
  return RunGraphOnce(built.graph, 1, feeds);
}

}  // namespace

std::function<void(Tensor&)> UniformFill(double lo, double hi, uint64_t seed) {
  return [=](Tensor& t) {
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      t.SetFromDouble(i, lo + (hi - lo) * Uniform(seed, i));
    }
  };
}

std::function<void(Tensor&)> AwayFromZeroFill(double lo, double hi, double gap, uint64_t seed) {
  return [=](Tensor& t) {
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      double v = lo + (hi - lo) * Uniform(seed, i);
      if (std::abs(v) < gap) v = v < 0 ? -gap - std::abs(v) : gap + v;
      t.SetFromDouble(i, v);
    }
  };
}

std::function<void(Tensor&)> IntegerFill(int64_t lo, int64_t hi_exclusive, uint64_t seed) {
  return [=](Tensor& t) {
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      const int64_t span = hi_exclusive - lo;
      t.SetFromDouble(i, static_cast<double>(
                             lo + static_cast<int64_t>(Mix(seed * 31 + static_cast<uint64_t>(i)) %
                                                       static_cast<uint64_t>(span))));
    }
  };
}

std::function<void(Tensor&)> ProbabilityFill(uint64_t seed) {
  return [=](Tensor& t) {
    const Shape& s = t.shape();
    const int64_t width = s.rank() == 0 ? 1 : s[s.rank() - 1];
    for (int64_t row = 0; row < t.num_elements() / width; ++row) {
      double sum = 0;
      for (int64_t j = 0; j < width; ++j) sum += 0.1 + Uniform(seed, row * width + j);
      for (int64_t j = 0; j < width; ++j) {
        t.SetFromDouble(row * width + j, (0.1 + Uniform(seed, row * width + j)) / sum);
      }
    }
  };
}

absl::Status CheckGradient(const GradientCase& c) {
  SEQUENT_ASSIGN_OR_RETURN(Built built, BuildCheckGraph(c));
  std::vector<Tensor> values;
  for (size_t i = 0; i < c.operands.size(); ++i) {
    Tensor t(c.operands[i].type);
    (c.operands[i].fill ? c.operands[i].fill : UniformFill(-1, 1, c.seed * 13 + i))(t);
    values.push_back(std::move(t));
  }
  SEQUENT_ASSIGN_OR_RETURN(std::vector<Tensor> analytic, Run(built, values));
  const double step = 1e-6;
  int grad_index = 0;
  for (size_t i = 0; i < c.operands.size(); ++i) {
    if (!c.operands[i].differentiable) continue;
    const Tensor& grad = analytic[1 + grad_index++];
    for (int64_t e = 0; e < values[i].num_elements(); ++e) {
      const double original = values[i].GetAsDouble(e);
      values[i].SetFromDouble(e, original + step);
      SEQUENT_ASSIGN_OR_RETURN(std::vector<Tensor> plus, Run(built, values));
      values[i].SetFromDouble(e, original - step);
      SEQUENT_ASSIGN_OR_RETURN(std::vector<Tensor> minus, Run(built, values));
      values[i].SetFromDouble(e, original);
      const double numeric = (plus[0].GetAsDouble(0) - minus[0].GetAsDouble(0)) / (2 * step);
      const double got = grad.GetAsDouble(e);
      const double error = std::abs(got - numeric) / std::max(1.0, std::abs(numeric));
      if (!(error <= c.tolerance)) {
        return absl::InternalError(absl::StrCat(c.name, ": d loss / d operand ", i, "[", e,
                                                "]: analytic ", got, ", numeric ", numeric,
                                                " (relative error ", error, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sequent::testing
