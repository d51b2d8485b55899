#include "backends/host_variable_store.h"

#include <gtest/gtest.h>

namespace sequent {
namespace {

TEST(HostVariableStoreTest, WriteCreatesThenTypeChecks) {
  HostVariableStore store;
  EXPECT_FALSE(store.Contains("w"));
  ASSERT_TRUE(
      store.Write("w", Tensor::FromVector<float>({1, 2, 3}, Shape{3})).ok());
  EXPECT_TRUE(store.Contains("w"));
  auto read = store.Read("w");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->ToVector<float>(), (std::vector<float>{1, 2, 3}));

  absl::Status bad =
      store.Write("w", Tensor::FromVector<float>({1, 2}, Shape{2}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message(), "variable 'w' has type f32[3]; cannot write f32[2]");
  EXPECT_FALSE(
      store.Write("w", Tensor::FromVector<double>({1, 2, 3}, Shape{3})).ok());

  auto missing = store.Read("v");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "no variable 'v'");
  EXPECT_FALSE(store.GetMutable("v").ok());
}

TEST(HostVariableStoreTest, PointersStayValidAndSeeWrites) {
  HostVariableStore store;
  ASSERT_TRUE(store.Set("b", Tensor::FromVector<float>({1, 2}, Shape{2})).ok());
  Tensor* b = store.Find("b");
  ASSERT_NE(b, nullptr);
  const void* data = b->raw_data();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(
        store.Set("v" + std::to_string(i), Tensor(DType::kF32, Shape{4})).ok());
  }
  ASSERT_TRUE(
      store.Write("b", Tensor::FromVector<float>({5, 6}, Shape{2})).ok());
  EXPECT_EQ(store.Find("b"), b);
  EXPECT_EQ(b->raw_data(), data);  // Written in place, not reallocated.
  EXPECT_EQ(b->ToVector<float>(), (std::vector<float>{5, 6}));

  // Writing through the mutable pointer is what a backend does.
  auto mut = store.GetMutable("b");
  ASSERT_TRUE(mut.ok());
  (*mut)->data<float>()[0] = 9;
  EXPECT_EQ(store.Read("b")->ToVector<float>(), (std::vector<float>{9, 6}));
}

TEST(HostVariableStoreTest, NamesAreSorted) {
  HostVariableStore store;
  ASSERT_TRUE(store.Set("dense_2/kernel", Tensor(DType::kF32, Shape{1})).ok());
  ASSERT_TRUE(store.Set("dense_1/bias", Tensor(DType::kF32, Shape{1})).ok());
  ASSERT_TRUE(store.Set("dense_1/kernel", Tensor(DType::kF32, Shape{1})).ok());
  EXPECT_EQ(store.Names(),
            (std::vector<std::string>{"dense_1/bias", "dense_1/kernel",
                                      "dense_2/kernel"}));
}

class OtherStore : public VariableStore {
 public:
  bool Contains(absl::string_view) const override { return false; }
  absl::StatusOr<Tensor> Read(absl::string_view) const override {
    return absl::NotFoundError("none");
  }
  absl::Status Write(absl::string_view, const Tensor&) override {
    return absl::OkStatus();
  }
  std::vector<std::string> Names() const override { return {}; }
};

TEST(HostVariableStoreTest, FromStoreRejectsForeignStores) {
  HostVariableStore host;
  auto ok = HostVariableStore::FromStore(&host, "cpu");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, &host);

  OtherStore other;
  auto foreign = HostVariableStore::FromStore(&other, "cpu");
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("not created by the cpu backend"),
            std::string::npos);
  EXPECT_FALSE(HostVariableStore::FromStore(nullptr, "cpu").ok());
}

}  // namespace
}  // namespace sequent
