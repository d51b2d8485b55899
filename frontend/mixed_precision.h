#ifndef SEQUENT_FRONTEND_MIXED_PRECISION_H_
#define SEQUENT_FRONTEND_MIXED_PRECISION_H_

#include <string>

namespace sequent::mixed_precision {

// keras.mixed_precision.set_global_policy: the dtype policy of models compiled
// afterwards (Sequential::compile reads it; Sequential::dtype_policy() says
// which one a model got).
//   "float32"         everything in f32 (the default);
//   "mixed_bfloat16"  on the cpu backend, the GEMM-heavy ops (dense, matmul,
//                     conv2d and their gradients) compute with bf16 operands
//                     and f32 accumulation and outputs; weights (the master
//                     copy), optimizer state, activations, losses and
//                     everything else stay f32 (see CpuBackend). f64 models
//                     (set_floatx) ignore it.
// On the cuda backend the GEMMs (dense, matmul and their input and weight
// gradients) read bf16 copies of their operands and accumulate and write f32
// in cuBLASLt; conv2d (cuDNN) and everything else stay f32 (see
// CudaBackend). The
// reference backend ignores mixed_bfloat16 and runs f32: it is the f32
// oracle.
// Anything else throws sequent::Error naming the accepted values.
void set_global_policy(const std::string& policy);
// keras.mixed_precision.global_policy().name: "float32" or "mixed_bfloat16".
std::string global_policy();

}  // namespace sequent::mixed_precision

#endif  // SEQUENT_FRONTEND_MIXED_PRECISION_H_
