#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "backends/cuda/blaslt_matmul.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/device_kernels.h"

namespace sequent::cuda {
namespace {

class CudaSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!DeviceAvailable()) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

TEST_F(CudaSmokeTest, AxpyKernelRuns) {
  const int n = 1000;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i);
    y[i] = 1.0f;
  }
  float *dx = nullptr, *dy = nullptr;
  ASSERT_TRUE(FromCuda(cudaMalloc(&dx, n * sizeof(float)), "cudaMalloc").ok());
  ASSERT_TRUE(FromCuda(cudaMalloc(&dy, n * sizeof(float)), "cudaMalloc").ok());
  cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  ASSERT_TRUE(FromCuda(LaunchAxpy(2.0f, dx, dy, n, nullptr), "LaunchAxpy").ok());
  cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost);
  for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(y[i], 2.0f * i + 1.0f);
  cudaFree(dx);
  cudaFree(dy);
}

TEST_F(CudaSmokeTest, CublasLtMatmulWithReluBias) {
  const int m = 3, n = 4, k = 5;
  std::vector<float> a(m * k), b(k * n), bias(n), c(m * n), expected(m * n);
  for (int i = 0; i < m * k; ++i) a[i] = 0.1f * (i % 7) - 0.3f;
  for (int i = 0; i < k * n; ++i) b[i] = 0.2f * (i % 5) - 0.4f;
  for (int j = 0; j < n; ++j) bias[j] = 0.05f * j - 0.1f;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float acc = bias[j];
      for (int p = 0; p < k; ++p) acc += a[i * k + p] * b[p * n + j];
      expected[i * n + j] = acc > 0 ? acc : 0;
    }
  float *da, *db, *dbias, *dc;
  void* workspace;
  const size_t workspace_bytes = 1 << 22;
  cudaMalloc(&da, a.size() * 4);
  cudaMalloc(&db, b.size() * 4);
  cudaMalloc(&dbias, bias.size() * 4);
  cudaMalloc(&dc, c.size() * 4);
  cudaMalloc(&workspace, workspace_bytes);
  cudaMemcpy(da, a.data(), a.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dbias, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice);
  cublasLtHandle_t handle;
  ASSERT_TRUE(FromCublas(cublasLtCreate(&handle), "cublasLtCreate").ok());
  absl::Status status = MatmulRowMajor(handle, da, db, dbias, /*relu=*/true, dc, m, n, k,
                                       workspace, workspace_bytes, nullptr);
  ASSERT_TRUE(status.ok()) << status;
  cudaMemcpy(c.data(), dc, c.size() * 4, cudaMemcpyDeviceToHost);
  for (int i = 0; i < m * n; ++i) EXPECT_NEAR(c[i], expected[i], 1e-5) << i;
  cublasLtDestroy(handle);
  for (void* p : {static_cast<void*>(da), static_cast<void*>(db), static_cast<void*>(dbias),
                  static_cast<void*>(dc), workspace})
    cudaFree(p);
}

}  // namespace
}  // namespace sequent::cuda
