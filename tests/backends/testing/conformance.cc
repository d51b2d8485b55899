#include "tests/backends/testing/conformance.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "backends/reference/reference_backend.h"
#include "core/graph_builder.h"
#include "gtest/gtest.h"
#include "ops/registry.h"

namespace sequent::conformance {

InputSpec F32(std::vector<int64_t> dims, Fill fill) {
  return {{DType::kF32, Shape(std::move(dims))}, fill};
}
InputSpec F64(std::vector<int64_t> dims, Fill fill) {
  return {{DType::kF64, Shape(std::move(dims))}, fill};
}
InputSpec Labels(DType dtype, std::vector<int64_t> dims, int classes) {
  return {{dtype, Shape(std::move(dims))}, Fill::kLabels, classes};
}

std::ostream& operator<<(std::ostream& os, const OpCase& c) {
  return os << c.name;
}

Tensor RandomTensor(const InputSpec& spec, std::mt19937& rng) {
  Tensor t(spec.type);
  std::uniform_real_distribution<double> normal(-2.0, 2.0), positive(0.1, 3.0),
      prob(0.05, 0.95);
  const int64_t n = t.num_elements();
  const int64_t last =
      spec.type.shape.rank() > 0 ? spec.type.shape.dims().back() : 1;
  for (int64_t i = 0; i < n; ++i) {
    double v = 0;
    switch (spec.fill) {
      case Fill::kNormal:
        v = normal(rng);
        break;
      case Fill::kWide:
        v = 75.0 * normal(rng);
        break;
      case Fill::kPositive:
        v = positive(rng);
        break;
      case Fill::kProb:
        v = prob(rng);
        break;
      case Fill::kLabels:
        v = static_cast<double>(rng() % spec.classes);
        break;
      case Fill::kOneHot:
        v = 0;
        break;
      case Fill::kStep:
        v = 7;
        break;
      case Fill::kSmallInt:
        v = static_cast<double>(rng() % 3);
        break;
    }
    t.SetFromDouble(i, v);
  }
  if (spec.fill == Fill::kOneHot) {
    for (int64_t r = 0; r < n / last; ++r)
      t.SetFromDouble(r * last + rng() % last, 1.0);
  }
  return t;
}

void ExpectClose(const Tensor& got, const Tensor& ref, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.type(), ref.type()) << what;
  int misses = 0;
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    const double g = got.GetAsDouble(i), r = ref.GetAsDouble(i);
    if (!(std::abs(g - r) <= tol * (1.0 + std::abs(r))) && misses++ < 5) {
      ADD_FAILURE() << what << " element " << i << ": got " << g
                    << " vs reference " << r;
    }
  }
}

void CompareBackends(const Backend& backend, const Graph& graph, int64_t batch,
                     const std::vector<Feed>& feeds, double tol,
                     const std::string& what) {
  ReferenceBackend reference;
  auto ref_store = reference.CreateVariableStore();
  auto store = backend.CreateVariableStore();
  auto ref_exe = reference.Compile(graph, batch, ref_store.get());
  ASSERT_TRUE(ref_exe.ok()) << what << ": " << ref_exe.status();
  auto exe = backend.Compile(graph, batch, store.get());
  ASSERT_TRUE(exe.ok()) << what << ": " << exe.status();
  std::vector<Tensor> ref_out, out;
  // The reference backend copies a scalar output into a default Tensor (type
  // f32[], no buffer) without allocating, so its outputs start allocated.
  for (const GraphOutput& output : graph.outputs()) {
    TensorType t = graph.type(output.value);
    t.shape = t.shape.WithBatch(batch);
    ref_out.emplace_back(t);
  }
  ASSERT_TRUE((*ref_exe)->Run(feeds, ref_out).ok());
  absl::Status run = (*exe)->Run(feeds, out);
  ASSERT_TRUE(run.ok()) << what << ": " << run;
  ASSERT_EQ(out.size(), ref_out.size());
  for (size_t i = 0; i < ref_out.size(); ++i) {
    ExpectClose(out[i], ref_out[i], tol,
                absl::StrCat(what, " output ", (*exe)->output_names()[i]));
  }
  std::vector<Tensor> again;
  ASSERT_TRUE((*exe)->Run(feeds, again).ok());
  for (size_t i = 0; i < again.size(); ++i)
    ExpectClose(again[i], out[i], 0, absl::StrCat(what, " (second run)"));
}

void ExpectOpMatchesReference(const Backend& backend, const OpCase& c) {
  Graph graph(c.name);
  GraphBuilder b(&graph, &ops::DefaultRegistry());
  std::vector<ValueId> inputs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    inputs.push_back(b.Input(absl::StrCat("in", i), c.inputs[i].type));
  }
  std::vector<ValueId> outs = b.OpMulti(c.op, inputs, c.attrs);
  ASSERT_TRUE(b.ok()) << b.status();
  for (size_t i = 0; i < outs.size(); ++i)
    graph.AddOutput(absl::StrCat("out", i), outs[i]);

  constexpr int64_t kBatch = 3;
  std::mt19937 rng(42);
  std::vector<Tensor> tensors;
  for (const InputSpec& spec : c.inputs) {
    InputSpec bound = spec;
    bound.type.shape = spec.type.shape.WithBatch(kBatch);
    tensors.push_back(RandomTensor(bound, rng));
  }
  std::vector<Feed> feeds;
  for (size_t i = 0; i < tensors.size(); ++i)
    feeds.push_back({absl::StrCat("in", i), &tensors[i]});
  CompareBackends(backend, graph, kBatch, feeds, c.tolerance, c.name);
}

}  // namespace sequent::conformance
