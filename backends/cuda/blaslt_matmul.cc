#include "backends/cuda/blaslt_matmul.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "backends/cuda/cuda_status.h"

namespace sequent::cuda {
namespace {

struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const {
    cublasLtMatmulDescDestroy(d);
  }
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const {
    cublasLtMatrixLayoutDestroy(l);
  }
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
  // Row-major C = A B is column-major C^T = B^T A^T: no transposes, just
  // swapped operands.
  cublasLtMatmulDesc_t op_raw = nullptr;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescCreate(&op_raw, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter> op(op_raw);
  if (bias != nullptr) {
    cublasLtEpilogue_t epilogue =
        relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        op.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        op.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  } else if (relu) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_RELU;
    SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        op.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  }
  cublasLtMatrixLayout_t lhs_raw = nullptr, rhs_raw = nullptr,
                         out_raw = nullptr;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(&lhs_raw, CUDA_R_32F, n, k, n));
  std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter> lhs(lhs_raw);
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(&rhs_raw, CUDA_R_32F, k, m, k));
  std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter> rhs(rhs_raw);
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(&out_raw, CUDA_R_32F, n, m, n));
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
      handle, op.get(), lhs.get(), rhs.get(), out.get(), out.get(), pref.get(),
      1, &heuristic, &found));
  if (found == 0) {
    return absl::UnimplementedError("[cublasLt] no algorithm for this matmul");
  }
  const float alpha = 1.0f, beta = 0.0f;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(
      handle, op.get(), &alpha, b, lhs.get(), a, rhs.get(), &beta, c, out.get(),
      c, out.get(), &heuristic.algo, workspace, workspace_bytes, stream));
  return absl::OkStatus();
}

namespace {

cublasLtEpilogue_t ToLt(Epilogue e) {
  switch (e) {
    case Epilogue::kNone:
      return CUBLASLT_EPILOGUE_DEFAULT;
    case Epilogue::kBias:
      return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::kRelu:
      return CUBLASLT_EPILOGUE_RELU;
    case Epilogue::kReluBias:
      return CUBLASLT_EPILOGUE_RELU_BIAS;
    case Epilogue::kGelu:
      return CUBLASLT_EPILOGUE_GELU;
    case Epilogue::kGeluBias:
      return CUBLASLT_EPILOGUE_GELU_BIAS;
    case Epilogue::kBGradA:
      return CUBLASLT_EPILOGUE_BGRADA;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

const char* EpilogueName(Epilogue e) {
  switch (e) {
    case Epilogue::kNone:
      return "";
    case Epilogue::kBias:
      return " BIAS";
    case Epilogue::kRelu:
      return " RELU";
    case Epilogue::kReluBias:
      return " RELU_BIAS";
    case Epilogue::kGelu:
      return " GELU";
    case Epilogue::kGeluBias:
      return " GELU_BIAS";
    case Epilogue::kBGradA:
      return " BGRADA";
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<LtMatmul>> LtMatmul::Create(
    cublasLtHandle_t handle, const LtMatmulShape& s, size_t workspace_bytes) {
  std::unique_ptr<LtMatmul> mm(new LtMatmul());
  mm->workspace_bytes_ = workspace_bytes;
  mm->description_ =
      absl::StrCat("cublasLt ", s.m, "x", s.n, "x", s.k,
                   s.transpose_a ? " Ta" : "", s.transpose_b ? " Tb" : "",
                   EpilogueName(s.epilogue), s.bf16_inputs ? " bf16" : "");
  mm->bf16_inputs_ = s.bf16_inputs;
  mm->epilogue_ = s.epilogue;
  // Row-major C[m,n] = op(A) op(B) is column-major C^T[n,m] = op(B)^T op(A)^T:
  // cuBLASLt's first operand is b's buffer, its second a's.
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescCreate(&mm->op_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = s.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = s.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      mm->op_, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      mm->op_, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
  const cublasLtEpilogue_t epilogue = ToLt(s.epilogue);
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      mm->op_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  mm->has_bias_ =
      s.epilogue == Epilogue::kBias || s.epilogue == Epilogue::kReluBias ||
      s.epilogue == Epilogue::kGeluBias || s.epilogue == Epilogue::kBGradA;
  // Stored (column-major) shapes: b is n x k (or k x n when transposed), a is
  // k x m (or m x k).
  const int64_t b_rows = s.transpose_b ? s.k : s.n;
  const int64_t b_cols = s.transpose_b ? s.n : s.k;
  const int64_t a_rows = s.transpose_a ? s.m : s.k;
  const int64_t a_cols = s.transpose_a ? s.k : s.m;
  // bf16 A/B with f32 C/D, f32 scale and CUBLAS_COMPUTE_32F is one of
  // cublasLtMatmul's documented type combinations; the bias (and BGRADA's
  // bias gradient) then takes D's type, f32
  // (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE left at its default). Leading
  // dimensions count elements, not bytes.
  const cudaDataType_t in_type = s.bf16_inputs ? CUDA_R_16BF : CUDA_R_32F;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(&mm->b_, in_type, b_rows, b_cols, b_rows));
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(&mm->a_, in_type, a_rows, a_cols, a_rows));
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(&mm->c_, CUDA_R_32F, s.n, s.m, s.n));

  cublasLtMatmulPreference_t pref_raw = nullptr;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref_raw));
  std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, DescDeleter> pref(pref_raw);
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
      sizeof(workspace_bytes)));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(
      handle, mm->op_, mm->b_, mm->a_, mm->c_, mm->c_, pref.get(), 1,
      &heuristic, &found));
  if (found == 0) {
    return absl::UnimplementedError(
        absl::StrCat("[cublasLt] no algorithm for ", mm->description_));
  }
  mm->algo_ = heuristic.algo;
  return mm;
}

LtMatmul::~LtMatmul() {
  if (c_ != nullptr) cublasLtMatrixLayoutDestroy(c_);
  if (a_ != nullptr) cublasLtMatrixLayoutDestroy(a_);
  if (b_ != nullptr) cublasLtMatrixLayoutDestroy(b_);
  if (op_ != nullptr) cublasLtMatmulDescDestroy(op_);
}

absl::Status LtMatmul::Run(cublasLtHandle_t handle, const void* a,
                           const void* b, const float* bias, float* c,
                           void* workspace, cudaStream_t stream) const {
  if (has_bias_) {
    // The bias pointer is part of the descriptor; set at capture time.
    SEQUENT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        op_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  const float alpha = 1.0f, beta = 0.0f;
  SEQUENT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmul(handle, op_, &alpha, b, b_, a, a_, &beta, c, c_, c, c_,
                     &algo_, workspace, workspace_bytes_, stream));
  return absl::OkStatus();
}

}  // namespace sequent::cuda
