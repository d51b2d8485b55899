// The finite-difference gradient check of every differentiable op: a table of rows
// (rows_a.cc, rows_b.cc), each run through AppendGradients on the reference backend in f64.
// A forward op without a row fails the coverage test, so a new op must add one.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "ops/op_list.h"
#include "ops/registry.h"
#include "tests/ops/gradients/rows.h"

namespace sequent::testing {
namespace {

std::vector<GradientCase> AllRows() {
  std::vector<GradientCase> rows = GradientRowsA();
  for (GradientCase& c : GradientRowsB()) rows.push_back(std::move(c));
  return rows;
}

// Forward ops that have no gradient by design.
const std::set<std::string>& NotDifferentiable() {
  static const std::set<std::string> ops = {"sparse_categorical_accuracy",
                                            "categorical_accuracy", "binary_accuracy"};
  return ops;
}

class GradientCheck : public ::testing::TestWithParam<GradientCase> {};

TEST_P(GradientCheck, MatchesFiniteDifferences) {
  const absl::Status status = CheckGradient(GetParam());
  EXPECT_TRUE(status.ok()) << status;
}

INSTANTIATE_TEST_SUITE_P(Ops, GradientCheck, ::testing::ValuesIn(AllRows()),
                         [](const ::testing::TestParamInfo<GradientCase>& info) {
                           std::string name = info.param.name;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(GradientCoverage, EveryForwardOpHasARuleAndARow) {
  std::set<std::string> covered;
  for (const GradientCase& c : AllRows()) covered.insert(c.op);
  std::vector<std::string> forward;
#define SEQUENT_COLLECT_OP(family, op) forward.push_back(#op);
  SEQUENT_FORWARD_OPS(SEQUENT_COLLECT_OP)
#undef SEQUENT_COLLECT_OP
  for (const std::string& op : forward) {
    if (NotDifferentiable().contains(op)) continue;
    const OpDef* def = ops::DefaultRegistry().Find(op);
    ASSERT_NE(def, nullptr) << op;
    EXPECT_TRUE(static_cast<bool>(def->gradient)) << "op '" << op << "' has no gradient rule";
    EXPECT_TRUE(covered.contains(op)) << "op '" << op << "' has no gradient-check row";
  }
}

}  // namespace
}  // namespace sequent::testing
