#ifndef SEQUENT_OPS_OP_LIST_H_
#define SEQUENT_OPS_OP_LIST_H_

// The op list: every op of the IR, once, with the ops/ family file that defines it.
// X(family, op) expands per op; family `linear` defines `OpDef Make_matmul_Op()` in
// ops/linear.cc, and so on. The registry (ops/registry.cc) is built from this table alone,
// so an op missing here is unknown, and an op listed here without a definition fails to link.
#define SEQUENT_FORWARD_OPS(X)                                     \
  X(linear, matmul)                                                \
  X(linear, bias_add)                                              \
  X(linear, dense)                                                 \
  X(elementwise, add)                                              \
  X(elementwise, sub)                                              \
  X(elementwise, mul)                                              \
  X(elementwise, div)                                              \
  X(elementwise, maximum)                                          \
  X(elementwise, neg)                                              \
  X(elementwise, exp)                                              \
  X(elementwise, log)                                              \
  X(elementwise, sqrt)                                             \
  X(elementwise, square)                                           \
  X(elementwise, abs)                                              \
  X(activation, relu)                                              \
  X(activation, leaky_relu)                                        \
  X(activation, elu)                                               \
  X(activation, selu)                                              \
  X(activation, sigmoid)                                           \
  X(activation, tanh)                                              \
  X(activation, gelu)                                              \
  X(activation, swish)                                             \
  X(activation, softplus)                                          \
  X(activation, softmax)                                           \
  X(activation, log_softmax)                                       \
  X(reduce, reduce_sum)                                            \
  X(reduce, reduce_mean)                                           \
  X(reduce, reduce_max)                                            \
  X(shape, reshape)                                                \
  X(shape, flatten)                                                \
  X(shape, transpose)                                              \
  X(shape, concat)                                                 \
  X(shape, slice)                                                  \
  X(shape, cast)                                                   \
  X(random, dropout)                                               \
  X(conv, conv2d)                                                  \
  X(pool, max_pool2d)                                              \
  X(pool, avg_pool2d)                                              \
  X(pool, global_avg_pool2d)                                       \
  X(norm, batch_norm)                                              \
  X(norm, layer_norm)                                              \
  X(loss, mse)                                                     \
  X(loss, mae)                                                     \
  X(loss, huber)                                                   \
  X(loss, binary_crossentropy)                                     \
  X(loss, categorical_crossentropy)                                \
  X(loss, sparse_categorical_crossentropy)                         \
  X(metric, sparse_categorical_accuracy)                           \
  X(metric, categorical_accuracy)                                  \
  X(metric, binary_accuracy)

// Backward ops emitted by the gradient rules, beside their forward ops. `_A` families:
// linear, elementwise, activation, reduce, shape; `_B`: conv, pool, norm, loss.
#define SEQUENT_BACKWARD_OPS_A(X)                                  \
  X(elementwise, maximum_grad)                                     \
  X(elementwise, sign)                                             \
  X(activation, activation_grad)                                   \
  X(activation, activation_input_grad)                             \
  X(activation, activation_bias_grad)                              \
  X(activation, softmax_grad)                                      \
  X(activation, log_softmax_grad)                                  \
  X(reduce, broadcast_to)                                          \
  X(reduce, reduce_to_shape)                                       \
  X(reduce, reduce_max_grad)                                       \
  X(shape, slice_grad)

#define SEQUENT_BACKWARD_OPS_B(X)                                  \
  X(conv, conv2d_backprop_input)                                   \
  X(conv, conv2d_backprop_filter)                                  \
  X(pool, max_pool2d_grad)                                         \
  X(pool, avg_pool2d_grad)                                         \
  X(pool, global_avg_pool2d_grad)                                  \
  X(norm, batch_norm_grad)                                         \
  X(norm, layer_norm_grad)                                         \
  X(loss, mse_grad)                                                \
  X(loss, mae_grad)                                                \
  X(loss, huber_grad)                                              \
  X(loss, binary_crossentropy_grad)                                \
  X(loss, categorical_crossentropy_grad)                           \
  X(loss, sparse_categorical_crossentropy_grad)

// Optimizer updates (one fused update per variable) and gradient clipping. Every update op
// takes (var, grad, slots..., learning_rate, iterations) and returns (var', slots'...).
#define SEQUENT_OPTIMIZER_OPS(X)                                   \
  X(optimizer, sgd_update)                                         \
  X(optimizer, momentum_update)                                    \
  X(optimizer, adam_update)                                        \
  X(optimizer, adamw_update)                                       \
  X(optimizer, rmsprop_update)                                     \
  X(optimizer, adagrad_update)                                     \
  X(optimizer, clip_by_value)                                      \
  X(optimizer, clip_by_norm)

// The registry's table. A group joins once its family files define every op in it.
#define SEQUENT_ALL_OPS(X)                                                    \
  SEQUENT_FORWARD_OPS(X) SEQUENT_BACKWARD_OPS_A(X) SEQUENT_BACKWARD_OPS_B(X) \
  SEQUENT_OPTIMIZER_OPS(X)

#endif  // SEQUENT_OPS_OP_LIST_H_
