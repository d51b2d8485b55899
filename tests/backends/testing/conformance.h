// The conformance harness every backend's tests share: random inputs for one
// op, the same graph run on the backend under test and on the reference
// backend (the oracle), outputs compared element by element.

#ifndef SEQUENT_TESTS_BACKENDS_TESTING_CONFORMANCE_H_
#define SEQUENT_TESTS_BACKENDS_TESTING_CONFORMANCE_H_

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/attribute.h"
#include "core/graph.h"
#include "core/tensor.h"

namespace sequent::conformance {

inline constexpr int64_t N = Shape::kBatch;

enum class Fill {
  kNormal,    // Uniform in [-2, 2].
  kWide,      // Uniform in [-150, 150]: softmaxes underflow.
  kPositive,  // Uniform in [0.1, 3].
  kProb,      // Uniform in [0.05, 0.95].
  kLabels,    // Integers in [0, classes).
  kOneHot,    // Rows with a single 1 in the last axis.
  kStep,      // A fixed scalar step (7).
  kSmallInt,  // Integers in [0, 3): ties for max-style ops.
};

struct InputSpec {
  TensorType type;
  Fill fill = Fill::kNormal;
  int classes = 0;
};

InputSpec F32(std::vector<int64_t> dims, Fill fill = Fill::kNormal);
InputSpec F64(std::vector<int64_t> dims, Fill fill = Fill::kNormal);
InputSpec Labels(DType dtype, std::vector<int64_t> dims, int classes);

// One row of a conformance table.
struct OpCase {
  std::string name;  // Test name: unique, [A-Za-z0-9_].
  std::string op;
  std::vector<InputSpec> inputs;
  Attributes attrs;
  double tolerance = 1e-5;
};
std::ostream& operator<<(std::ostream& os, const OpCase& c);

Tensor RandomTensor(const InputSpec& spec, std::mt19937& rng);

// |got - ref| <= tol * (1 + |ref|) for every element; the first misses are
// reported naming `what` and the element.
void ExpectClose(const Tensor& got, const Tensor& ref, double tol,
                 const std::string& what);

// Compiles `graph` on `backend` and on the reference backend (each with its
// own store, so variables initialize from the same attributes), runs the
// feeds, compares every output, then runs `backend` again: reused buffers
// must give the same answer bit for bit.
void CompareBackends(const Backend& backend, const Graph& graph, int64_t batch,
                     const std::vector<Feed>& feeds, double tol,
                     const std::string& what);

// The case's op alone in a graph (inputs "in0", "in1", ..., outputs "out0",
// ...), at batch 3 on random inputs, through CompareBackends.
void ExpectOpMatchesReference(const Backend& backend, const OpCase& c);

}  // namespace sequent::conformance

#endif  // SEQUENT_TESTS_BACKENDS_TESTING_CONFORMANCE_H_
