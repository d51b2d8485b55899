#ifndef SEQUENT_TESTS_TESTING_OP_HARNESS_H_
#define SEQUENT_TESTS_TESTING_OP_HARNESS_H_

// Shared by the op-family tests: runs shape rules and reference kernels of a
// few OpDefs through a local registry, and checks values and error messages.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/op_registry.h"
#include "core/tensor.h"

namespace sequent::ops {

// Registers `def` in a local registry so that shape rules run with defaults
// filled and the
// "[op] " prefix, exactly as graphs see them.
class OpHarness {
 public:
  explicit OpHarness(std::vector<OpDef> defs) {
    for (OpDef& def : defs) {
      const std::string name = def.name;
      EXPECT_TRUE(registry_.Register(std::move(def)).ok()) << name;
    }
  }

  absl::StatusOr<std::vector<TensorType>> Infer(absl::string_view op,
                                                std::vector<TensorType> inputs,
                                                Attributes attrs = {}) const {
    return registry_.InferTypes(op, inputs, attrs);
  }

  // Infers the output types from the inputs' (static) types, allocates the
  // outputs and runs the reference kernel.
  absl::StatusOr<std::vector<Tensor>> Run(
      absl::string_view op, const std::vector<const Tensor*>& inputs,
      Attributes attrs = {}) const {
    std::vector<TensorType> types;
    for (const Tensor* t : inputs) types.push_back(t->type());
    auto out_types = registry_.InferTypes(op, types, attrs);
    if (!out_types.ok()) return out_types.status();
    std::vector<Tensor> outputs;
    for (const TensorType& t : *out_types) outputs.emplace_back(t);
    std::vector<Tensor*> out_ptrs;
    for (Tensor& t : outputs) out_ptrs.push_back(&t);
    const OpDef* def = registry_.Find(op);
    absl::Status status = def->reference(inputs, attrs, out_ptrs);
    if (!status.ok()) return status;
    return outputs;
  }

 private:
  OpRegistry registry_;
};

inline constexpr int64_t N = Shape::kBatch;

inline TensorType F32(Shape shape) { return {DType::kF32, std::move(shape)}; }

inline void ExpectValues(const Tensor& t, const std::vector<double>& expected,
                         double tol = 1e-5) {
  ASSERT_EQ(t.num_elements(), static_cast<int64_t>(expected.size()))
      << t.ToString();
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(t.GetAsDouble(i), expected[i], tol)
        << "element " << i << " of " << t.ToString();
  }
}

inline void ExpectError(const absl::StatusOr<std::vector<TensorType>>& result,
                        const std::vector<std::string>& fragments) {
  ASSERT_FALSE(result.ok())
      << "expected an error, got " << (*result)[0].ToString();
  for (const std::string& f : fragments) {
    EXPECT_NE(result.status().message().find(f), std::string::npos)
        << "message \"" << result.status().message() << "\" lacks \"" << f
        << "\"";
  }
}

}  // namespace sequent::ops

#endif  // SEQUENT_TESTS_TESTING_OP_HARNESS_H_
