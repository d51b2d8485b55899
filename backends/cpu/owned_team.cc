#include "backends/cpu/owned_team.h"

#include <algorithm>
#include <cstring>

namespace sequent::cpu {

std::pair<int64_t, int64_t> ColumnChunk(int64_t n, int t, int chunks) {
  const int64_t lines = (n + 15) / 16;
  const int64_t per = (lines + chunks - 1) / chunks * 16;
  const int64_t lo = std::min(n, per * t);
  return {lo, std::min(n, lo + per)};
}

OwnedTeam::OwnedTeam(const dnnl::engine& engine, int chunks) : chunks_(chunks) {
  for (int t = 0; t < chunks; ++t) streams_.emplace_back(engine);
}

void OwnedTeam::Allocate() {
  buffers_.clear();
  data_.clear();
  resident_buffers_.clear();
  resident_data_.clear();
  for (int t = 0; t < chunks_; ++t) {
    buffers_.push_back(AllocateAligned(bytes_));
    data_.push_back(buffers_.back().get());
    resident_buffers_.push_back(AllocateAligned(resident_bytes_));
    resident_data_.push_back(resident_buffers_.back().get());
  }
}

OwnedCall::OwnedCall(dnnl::primitive primitive,
                     const std::vector<std::pair<int, memory::desc>>& args,
                     const memory::desc& scratchpad, const dnnl::engine& engine,
                     int chunks)
    : primitive_(std::move(primitive)),
      scratchpad_bytes_(static_cast<int64_t>(scratchpad.get_size())) {
  for (int t = 0; t < chunks; ++t) {
    std::vector<memory>& memories = memories_.emplace_back();
    std::vector<dnnl_exec_arg_t>& exec_args = exec_args_.emplace_back();
    for (const auto& [arg, desc] : args) {
      memories.push_back(memory(desc, engine, DNNL_MEMORY_NONE));
      exec_args.push_back({arg, memories.back().get()});
    }
    if (scratchpad_bytes_ > 0) {
      memories.push_back(memory(scratchpad, engine, DNNL_MEMORY_NONE));
      exec_args.push_back({DNNL_ARG_SCRATCHPAD, memories.back().get()});
    }
  }
}

dnnl_status_t OwnedCall::Execute(const OwnedTeam& team, int t,
                                 std::initializer_list<const void*> handles) {
  std::vector<memory>& memories = memories_[t];
  size_t i = 0;
  for (const void* handle : handles) {
    const dnnl_status_t s = dnnl_memory_set_data_handle_v2(
        memories[i++].get(), const_cast<void*>(handle), nullptr);
    if (s != dnnl_success) return s;
  }
  if (scratchpad_bytes_ > 0) {
    const dnnl_status_t s = dnnl_memory_set_data_handle_v2(
        memories[i].get(), team.memory(t), nullptr);
    if (s != dnnl_success) return s;
  }
  return dnnl_primitive_execute(primitive_.get(), team.stream(t).get(),
                                static_cast<int>(exec_args_[t].size()),
                                exec_args_[t].data());
}

void CopyToColumns(const float* chunk, int64_t rows, int64_t width, float* dst,
                   int64_t ld, int64_t column) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * ld + column, chunk + r * width,
                width * sizeof(float));
  }
}

void CopyFromColumns(const float* src, int64_t ld, int64_t column, int64_t rows,
                     int64_t width, float* chunk) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(chunk + r * width, src + r * ld + column,
                width * sizeof(float));
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void
SumPartialColumns(const OwnedTeam& team, int64_t offset, int64_t rows,
                  int64_t ld, int64_t lo, int64_t hi, float* out,
                  int64_t out_ld) {
  const int64_t width = hi - lo;
  const auto partial = [&](int t, int64_t r) {
    return reinterpret_cast<const float*>(team.resident(t) + offset) + r * ld +
           lo;
  };
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * out_ld;
    const float* a = partial(0, r);
#pragma omp simd
    for (int64_t c = 0; c < width; ++c) o[c] = a[c];
    for (int t = 1; t < team.chunks(); ++t) {
      const float* b = partial(t, r);
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) o[c] += b[c];
    }
  }
}

}  // namespace sequent::cpu
