#ifndef SEQUENT_BACKENDS_CPU_GRAPH_REWRITES_H_
#define SEQUENT_BACKENDS_CPU_GRAPH_REWRITES_H_

// Rewrites of the CPU backend's private copy of a graph into its own ops
// ("cpu.*", declared in cpu_executable.h), which run as one oneDNN primitive
// or one loop where the IR has several nodes.

#include "absl/container/flat_hash_set.h"
#include "core/graph.h"

namespace sequent::cpu {

// Makes each dense layer's weight gradient matmul(x, dz, transpose_a) and its
// bias gradient (activation_bias_grad's second output beside dz, or
// reduce_sum(dz, axes=[0])) one kDenseBackwardWeightsOp node, which oneDNN
// runs as one inner_product_backward_weights. activation_bias_grad keeps dz
// only (an activation_grad, oneDNN's eltwise backward from the output).
// Likewise a convolution's filter and bias gradients (kConvBackwardWeightsOp).
void RewriteDenseBackward(Graph& g);

// conv2d(x, k) -> bias_add(., b) -> relu, each result read only by the next
// step (the last step optional): one kConvBiasActivationOp node, so the bias
// and the activation run inside oneDNN's convolution instead of as two more
// passes over its output.
void RewriteConvBiasActivation(Graph& g);

// activation_grad(max_pool2d_grad(y, p, d), y), where p = max_pool2d(y) and
// the pool gradient has no other reader, becomes max_pool2d_grad(y, p,
// activation_grad(d, p)): the pool gradient puts each d at its window's
// maximum, whose value is p, and zeros elsewhere, so the activation's
// derivative at y is its derivative at p there and multiplies zero
// elsewhere. The activation gradient then runs over the pooled values (a
// quarter of them under 2x2 windows) instead of the layer's whole output.
void RewriteMaxPoolActivationGrad(Graph& g);

// A weight penalty's steps as single passes over the weights: the L2 term
// reduce_sum(square(w)) becomes kSumOfSquaresOp(w), and its gradient added
// to the weight gradient, add(mul(mul(w, 2), c), dw) (any number of scalar
// factors, either operand order), becomes kAddScaledOp(dw, w, 2, c), which
// w's own SGD, momentum or Adam update then computes in its pass over w
// (Lowering::penalties_in_updates). A (5,5,5) network's step ran 24 such
// nodes for its four kernels; the penalty cost 3.6 of its 38.6 us.
void RewriteWeightPenalties(Graph& g);

// The kAddScaledOp outputs g + s * w (after RewriteWeightPenalties) whose only
// reader is w's own f32 SGD, momentum or Adam update, which can add the term
// in its pass over w (ApplyUpdate's `penalty`).
absl::flat_hash_set<ValueId> PenaltiesAddedByUpdates(const Graph& g);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_GRAPH_REWRITES_H_
