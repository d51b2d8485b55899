#include "ops/registry.h"

#include <cstdio>
#include <cstdlib>

#include "ops/op_defs.h"

namespace sequent::ops {
namespace {

OpRegistry BuildRegistry() {
  OpRegistry registry;
#define SEQUENT_REGISTER_OP(family_name, op)                                  \
  {                                                                      \
    OpDef def = Make_##op##_Op();                                        \
    def.family = #family_name;                                                \
    if (absl::Status s = registry.Register(std::move(def)); !s.ok()) {   \
      /* A programming error in the op table, never user input. */       \
      std::fprintf(stderr, "sequent: bad op table: %s\n", s.ToString().c_str()); \
      std::abort();                                                      \
    }                                                                    \
  }
  SEQUENT_ALL_OPS(SEQUENT_REGISTER_OP)
#undef SEQUENT_REGISTER_OP
  return registry;
}

}  // namespace

const OpRegistry& DefaultRegistry() {
  static const OpRegistry* registry = new OpRegistry(BuildRegistry());
  return *registry;
}

}  // namespace sequent::ops
