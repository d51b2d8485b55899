#ifndef SEQUENT_CORE_MEMORY_PLANNER_H_
#define SEQUENT_CORE_MEMORY_PLANNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/graph.h"
#include "core/op_registry.h"

namespace sequent {

// Where one value lives during a run.
struct BufferAssignment {
  enum class Kind {
    kArena,     // An interval of the shared arena.
    kVariable,  // The persistent storage of variable `variable` (a variable, or an update
                // written in place into it).
    kAlias,     // The same buffer as `alias_of` (an in-place op).
  };
  Kind kind = Kind::kArena;
  int64_t offset = -1;  // Arena offset for kArena (and for kAlias, resolved).
  int64_t bytes = 0;
  int first_step = 0;  // Schedule index of the defining node.
  int last_step = 0;   // Schedule index of the last reader (end of schedule for outputs).
  ValueId alias_of = kNoValue;
  std::string variable;
};

// The memory plan of a batch-bound graph: liveness of every value over the schedule, and
// offsets in one arena, reused when lifetimes do not overlap, in place where the op allows
// (OpDef::inplace). Variables (weights, optimizer slots) are persistent and outside the arena;
// a variable update produced in place over its variable writes straight into it.
struct MemoryPlan {
  std::vector<NodeId> schedule;             // Topological order the plan assumes.
  std::vector<BufferAssignment> buffers;    // Indexed by ValueId.
  int64_t arena_bytes = 0;                  // Planned peak: the arena's size.
  int64_t total_intermediate_bytes = 0;     // Every arena value with its own buffer.
  int64_t persistent_bytes = 0;             // Variables.
  int64_t alignment = 64;

  // A table: value, type, bytes, [first,last], placement; then the totals.
  std::string ToString(const Graph& graph) const;
};

// `graph` must have static shapes (bind the batch first). Feeds (inputs) are arena values
// live from the start; graph outputs live to the end.
absl::StatusOr<MemoryPlan> PlanMemory(const Graph& graph, const OpRegistry& registry,
                                      int64_t alignment = 64);

// A copy of `graph` with the symbolic batch dimension bound to `batch_size` everywhere.
Graph BindBatch(const Graph& graph, int64_t batch_size);

}  // namespace sequent

#endif  // SEQUENT_CORE_MEMORY_PLANNER_H_
