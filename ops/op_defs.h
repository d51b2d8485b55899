#ifndef SEQUENT_OPS_OP_DEFS_H_
#define SEQUENT_OPS_OP_DEFS_H_

#include "core/op_registry.h"
#include "ops/op_list.h"

namespace sequent::ops {

// Declares OpDef Make_<op>_Op() for every op in the table.
#define SEQUENT_DECLARE_OP_MAKER(family, op) OpDef Make_##op##_Op();
SEQUENT_ALL_OPS(SEQUENT_DECLARE_OP_MAKER)
#undef SEQUENT_DECLARE_OP_MAKER

}  // namespace sequent::ops

#endif  // SEQUENT_OPS_OP_DEFS_H_
