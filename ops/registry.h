#ifndef SEQUENT_OPS_REGISTRY_H_
#define SEQUENT_OPS_REGISTRY_H_

#include "core/op_registry.h"

namespace sequent::ops {

// Every op of ops/op_list.h, built once on first use.
const OpRegistry& DefaultRegistry();

}  // namespace sequent::ops

#endif  // SEQUENT_OPS_REGISTRY_H_
