#include "backends/cuda/blaslt_matmul.h"

#include <memory>

#include "backends/cuda/cuda_status.h"

namespace sequent::cuda {
namespace {

struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const { cublasLtMatrixLayoutDestroy(l); }
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const {
    cublasLtMatmulPreferenceDestroy(p);
  }
};

}  // namespace

absl::Status MatmulRowMajor(cublasLtHandle_t handle, const float* a,
                            const float* b, const float* bias, bool relu,
                            float* c, int64_t m, int64_t n, int64_t k,
                            void* workspace, size_t workspace_bytes,
                            cudaStream_t stream) {
  // Row-major C = A B is column-major C^T = B^T A^T: no transposes, just swapped operands.
  cublasLtMatmulDesc_t op_raw = nullptr;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescCreate(&op_raw, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter> op(op_raw);
  if (bias != nullptr) {
    cublasLtEpilogue_t epilogue = relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        op.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        op.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  } else if (relu) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_RELU;
    SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        op.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  }
  cublasLtMatrixLayout_t lhs_raw = nullptr, rhs_raw = nullptr, out_raw = nullptr;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&lhs_raw, CUDA_R_32F, n, k, n));
  std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter> lhs(lhs_raw);
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&rhs_raw, CUDA_R_32F, k, m, k));
  std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter> rhs(rhs_raw);
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&out_raw, CUDA_R_32F, n, m, n));
  std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter> out(out_raw);

  cublasLtMatmulPreference_t pref_raw = nullptr;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref_raw));
  std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, DescDeleter> pref(pref_raw);
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
      sizeof(workspace_bytes)));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(
      handle, op.get(), lhs.get(), rhs.get(), out.get(), out.get(), pref.get(), 1,
      &heuristic, &found));
  if (found == 0) {
    return absl::UnimplementedError("[cublasLt] no algorithm for this matmul");
  }
  const float alpha = 1.0f, beta = 0.0f;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(
      handle, op.get(), &alpha, b, lhs.get(), a, rhs.get(), &beta, c, out.get(), c,
      out.get(), &heuristic.algo, workspace, workspace_bytes, stream));
  return absl::OkStatus();
}

}  // namespace sequent::cuda
