#ifndef SEQUENT_BACKENDS_CPU_OWNED_TEAM_H_
#define SEQUENT_BACKENDS_CPU_OWNED_TEAM_H_

// Owned layers: in a training executable on T threads, thread t owns outputs
// [t * OC / T, (t + 1) * OC / T) of every wide dense layer, from op to op:
// it computes those columns of the forward, the matching rows of the blocked
// kernel's gradient, and Adam's update of them (whose ThreadChunk halves are
// the same rows: the blocked layout keeps output blocks outermost). Each step
// runs one-thread oneDNN primitives on the thread's share, so weights,
// gradients and optimizer slots never move between cores.
//
// Why: two-thread primitives and our loops split the same data differently
// (oneDNN by its own blocking, our loops by rows or memory halves), so every
// op hands the other core cache lines the previous op wrote. On some hosts
// that hand-over costs ~5x more at times (bench/handover_probe: 40 -> 170 us
// for 6.4 MB), and the MLP b128 step went from 0.95 to 1.4-1.5 ms while one
// thread's own work stayed as fast (bench/README.md, sessions 8 and 9).
//
// The pieces here are the runtime side: per-chunk streams, private memory
// (each primitive's scratchpad: oneDNN 2.6's library scratchpad is one
// buffer shared by all primitives, so concurrent primitives need their own)
// and a primitive run once per chunk. lowering_owned.cc lowers the ops.

#include <algorithm>
#include <cstdint>
#include <dnnl.hpp>
#include <initializer_list>
#include <utility>
#include <vector>

#include "backends/cpu/cpu_executable.h"

namespace sequent::cpu {

// Columns [first, second) of chunk t of n columns split into `chunks`, in
// whole 16-float lines (so chunks never share a cache line of a row).
std::pair<int64_t, int64_t> ColumnChunk(int64_t n, int t, int chunks);

// The streams and private memory of an executable's owned steps, shared by
// its steps (the loops hold it).
class OwnedTeam {
 public:
  OwnedTeam(const dnnl::engine& engine, int chunks);

  int chunks() const { return chunks_; }
  const dnnl::stream& stream(int t) const { return streams_[t]; }
  // Chunk t's private memory: its primitive's scratchpad, then the step's
  // workspace at WorkspaceOffset(scratchpad bytes).
  std::byte* memory(int t) const { return data_[t]; }
  static int64_t WorkspaceOffset(int64_t scratchpad_bytes) {
    return (scratchpad_bytes + 4095) / 4096 * 4096;
  }
  // Each chunk's memory will hold at least `bytes` (after Allocate).
  void Reserve(int64_t bytes) { bytes_ = std::max(bytes_, bytes); }
  // Chunk t's resident memory holds what other steps or other chunks read:
  // chunked gradients, which live from step to step, and the partial sums
  // the other chunks add up. A slot of `bytes` per chunk, at the offset
  // returned, never reused, so that no scratchpad write has to take back
  // lines another core has read (it costs ~5x in the slow phase).
  int64_t AddResident(int64_t bytes) {
    const int64_t offset = resident_bytes_;
    resident_bytes_ += AlignUp(bytes);
    return offset;
  }
  std::byte* resident(int t) const { return resident_data_[t]; }
  // At the end of lowering: no step runs before it.
  void Allocate();

 private:
  int chunks_;
  std::vector<dnnl::stream> streams_;
  std::vector<AlignedBuffer> buffers_;
  std::vector<std::byte*> data_;
  int64_t bytes_ = 0;
  std::vector<AlignedBuffer> resident_buffers_;
  std::vector<std::byte*> resident_data_;
  int64_t resident_bytes_ = 0;
};

// One primitive, created for one thread, that every chunk runs over its own
// operands. Memories are per chunk: chunks run concurrently.
class OwnedCall {
 public:
  // `args`: the primitive's arguments but the scratchpad, in the order
  // Execute's handles come in.
  OwnedCall(dnnl::primitive primitive,
            const std::vector<std::pair<int, memory::desc>>& args,
            const memory::desc& scratchpad, const dnnl::engine& engine,
            int chunks);

  int64_t scratchpad_bytes() const { return scratchpad_bytes_; }
  // Chunk t's run over `handles` (one per argument) with its scratchpad in
  // the team's memory of chunk t. No exceptions: it runs inside an OpenMP
  // region.
  dnnl_status_t Execute(const OwnedTeam& team, int t,
                        std::initializer_list<const void*> handles);

 private:
  dnnl::primitive primitive_;
  int64_t scratchpad_bytes_ = 0;
  std::vector<std::vector<memory>> memories_;  // [chunk][argument]
  std::vector<std::vector<dnnl_exec_arg_t>> exec_args_;
};

// body(t) for every chunk t, the team's threads taking chunks in turn (thread
// t takes chunk t when the region has a thread per chunk, as it does unless
// OpenMP gives fewer).
template <typename Body>
void ForEachChunk(int t0, int threads, int chunks, const Body& body) {
  for (int t = t0; t < chunks; t += threads) body(t);
}

// Copies `rows` x `width` floats, row-major, into columns [column, column +
// width) of the rows of `dst` (`ld` floats per row), and back.
void CopyToColumns(const float* chunk, int64_t rows, int64_t width, float* dst,
                   int64_t ld, int64_t column);
void CopyFromColumns(const float* src, int64_t ld, int64_t column, int64_t rows,
                     int64_t width, float* chunk);
// The sum over chunks t of the partials [rows, ld] at `offset` in chunk t's
// resident memory, columns [lo, hi): row r into out + r * out_ld.
void SumPartialColumns(const OwnedTeam& team, int64_t offset, int64_t rows,
                       int64_t ld, int64_t lo, int64_t hi, float* out,
                       int64_t out_ld);

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_OWNED_TEAM_H_
