#ifndef SEQUENT_BACKENDS_CPU_WEIGHT_LAYOUT_H_
#define SEQUENT_BACKENDS_CPU_WEIGHT_LAYOUT_H_

// Dense kernels in the blocked layout oneDNN's inner products prefer
// (format_tag::any: 16x64 blocks on AVX-512), with the values that share it.
//
// A kernel's "group" is every value joined to it by elementwise work: its
// gradient, the gradient's L2 and clipping terms, the optimizer's slots and
// updates. Elementwise loops and primitives do not care how the elements are
// ordered as long as all operands share the order, so a group can live in
// the blocked layout from end to end when each of its values is only
// produced and read by layout-aware steps: the dense forward (weights), the
// input gradient (matmul dz W^T, lowered as an inner_product_backward_data),
// the weight gradient (cpu.dense_backward_weights: the inner product's
// diff_weights), elementwise ops with operands of the same shape or scalars,
// and full reductions. The variables then stay blocked in the store, whose
// Read and Write convert (get_weights, set_weights, save and load see
// row-major data), and no step reorders weights.
//
// A layout is chosen at the first compile that reads the kernel (f32
// compute, no padding in the blocked layout, and oneDNN must have a
// non-reference kernel for each aware step), and kept: later compiles read
// the variable as it is. Where a later graph uses a blocked variable in some
// other way (or computes in bf16), it reads a row-major copy and writes its
// update back through a conversion (cpu.from_blocked, cpu.to_blocked).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "backends/cpu/cpu_executable.h"
#include "core/graph.h"

namespace sequent::cpu {

// Reorders a blocked variable's data into a row-major value of its type:
// (blocked) -> (row-major).
inline constexpr absl::string_view kFromBlockedOp = "cpu.from_blocked";
// The other way, for a variable's update: (row-major) -> (blocked).
inline constexpr absl::string_view kToBlockedOp = "cpu.to_blocked";

struct WeightLayoutPlan {
  // Every value held in a blocked layout, with that layout (the inputs of
  // cpu.from_blocked and the outputs of cpu.to_blocked included).
  absl::flat_hash_map<ValueId, CpuVariableStore::Layout> blocked;
  // Layouts this compile chose for variables stored row-major so far: the
  // store converts them once the compile has succeeded.
  std::vector<std::pair<std::string, CpuVariableStore::Layout>> chosen;
};

// A kernel [k, p] with a few outputs over many inputs (scikit-learn's
// 784x5; p <= 8, k >= 64): oneDNN's blocks would pad its outputs to 16, so
// it is stored transposed, TransposedKernel: {OC = p, IC = k} as `oi`, the
// kernel's transpose row-major. The thin-layer forms of the forward (z^T = W^T
// x^T) and of the weight gradient (dW^T = dz^T x) then read and write it as it
// is, without the transposing reorders the row-major kernel needs.
bool IsThinKernel(int64_t k, int64_t p);
memory::desc TransposedKernel(int64_t k, int64_t p);

// Plans the layouts of `graph` (the backend's private copy, after
// RewriteDenseBackward) compiled at `batch_size` on `store`, inserting the
// conversions a blocked variable needs where this graph cannot read it as it
// is stored. `bf16`: the executable computes GEMMs in bf16 (nothing is blocked
// then).
WeightLayoutPlan PlanWeightLayouts(Graph& graph, int64_t batch_size,
                                   const CpuVariableStore& store, bool bf16);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_WEIGHT_LAYOUT_H_
