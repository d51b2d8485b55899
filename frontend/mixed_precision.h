#ifndef SEQUENT_FRONTEND_MIXED_PRECISION_H_
#define SEQUENT_FRONTEND_MIXED_PRECISION_H_

#include <string>

namespace sequent::mixed_precision {

// keras.mixed_precision.set_global_policy: the dtype policy of models compiled
// afterwards (Sequential::compile reads it; Sequential::dtype_policy() says
// which one a model got).
//   "float32"         everything in f32 (the default);
//   "mixed_bfloat16"  on the cpu backend, the GEMM-heavy ops (dense, matmul
//                     and their gradients, conv2d and its input gradient)
//                     compute with bf16 operands
//                     and f32 accumulation and outputs; weights (the master
//                     copy), optimizer state, activations, losses and
//                     everything else stay f32 (see CpuBackend).
// Other backends ignore mixed_bfloat16 and run f32: the reference backend is
// the f32 oracle, the CUDA backend has no bf16 path yet.
// Anything else throws sequent::Error naming the accepted values.
void set_global_policy(const std::string& policy);
// keras.mixed_precision.global_policy().name: "float32" or "mixed_bfloat16".
std::string global_policy();

}  // namespace sequent::mixed_precision

#endif  // SEQUENT_FRONTEND_MIXED_PRECISION_H_
