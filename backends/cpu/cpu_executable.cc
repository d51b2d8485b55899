#include "backends/cpu/cpu_executable.h"

#include <omp.h>

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backends/cpu/denormals.h"
#include "backends/cpu/onednn_util.h"
#include "backends/feeds.h"
#include "core/status_macros.h"

namespace sequent::cpu {

absl::Status Unsupported(const Node& node, absl::string_view why) {
  return absl::UnimplementedError(
      absl::StrCat("[", node.op, "] the cpu backend ", why));
}

namespace {

// The offset, in elements, of element (i, j) of a 2-D blocked layout: the
// blocks' positions from the innermost out, then the outer strides (as
// oneDNN's own blk_off).
int64_t BlockedOffset(const memory::desc& desc, int64_t i, int64_t j) {
  const dnnl_blocking_desc_t& b = desc.data.format_desc.blocking;
  int64_t index[2] = {i, j};
  int64_t inner = 0, size = 1;
  for (int k = b.inner_nblks - 1; k >= 0; --k) {
    const int d = static_cast<int>(b.inner_idxs[k]);
    inner += index[d] % b.inner_blks[k] * size;
    index[d] /= b.inner_blks[k];
    size *= b.inner_blks[k];
  }
  return desc.data.offset0 + index[0] * b.strides[0] + index[1] * b.strides[1] +
         inner;
}

// Copies a 2-D f32 variable from layout `from_desc` to `to_desc`. A loop of
// ours rather than a oneDNN reorder: the store's conversions run in saves,
// which may run in a forked child, where starting OpenMP threads can hang.
void Convert(const memory::desc& from_desc, const void* from,
             const memory::desc& to_desc, void* to) {
  const memory::dims dims = from_desc.dims();
  const auto* src = static_cast<const float*>(from);
  auto* dst = static_cast<float*>(to);
  for (int64_t i = 0; i < dims[0]; ++i) {
    for (int64_t j = 0; j < dims[1]; ++j)
      dst[BlockedOffset(to_desc, i, j)] = src[BlockedOffset(from_desc, i, j)];
  }
}

}  // namespace

absl::StatusOr<Tensor> CpuVariableStore::Read(absl::string_view name) const {
  const Layout* layout = LayoutOf(name);
  if (layout == nullptr) return HostVariableStore::Read(name);
  // Converted straight from the stored tensor (a layout is only set on a
  // stored variable), without the base class's copy of it.
  const Tensor* stored = Find(name);
  Tensor plain(stored->dtype(), stored->shape());
  Convert(layout->blocked, stored->raw_data(), layout->plain, plain.raw_data());
  return plain;
}

absl::Status CpuVariableStore::Write(absl::string_view name,
                                     const Tensor& value) {
  if (const Layout* layout = LayoutOf(name)) {
    Tensor* stored = Find(name);
    if (stored->type() != value.type()) {
      // The base class words the error.
      return HostVariableStore::Write(name, value);
    }
    Convert(layout->plain, value.raw_data(), layout->blocked,
            stored->raw_data());
  } else {
    SEQUENT_RETURN_IF_ERROR(HostVariableStore::Write(name, value));
  }
  if (auto it = shadows_.find(name); it != shadows_.end())
    ++it->second->version;
  return absl::OkStatus();
}

absl::Status CpuVariableStore::SetLayout(absl::string_view name,
                                         const Layout& layout) {
  Tensor* stored = Find(name);
  if (stored == nullptr || IsBound(name) || LayoutOf(name) != nullptr ||
      layout.blocked.get_size() != stored->num_bytes() ||
      layout.plain.get_size() != stored->num_bytes()) {
    return absl::InternalError(absl::StrCat("variable '", std::string(name),
                                            "' cannot change its layout"));
  }
  const Tensor plain = *stored;
  Convert(layout.plain, plain.raw_data(), layout.blocked, stored->raw_data());
  layouts_.emplace(std::string(name), layout);
  return absl::OkStatus();
}

absl::Status CpuExecutable::Run(absl::Span<const Feed> feeds,
                                std::vector<Tensor>& outputs) {
  // Feeds are validated like the reference backend's, with the same messages.
  // Nothing here allocates unless there is an error to report.
  std::vector<const Tensor*>& fed = fed_scratch;
  SEQUENT_RETURN_IF_ERROR(MatchFeeds(
      feeds, [&](size_t i) -> const std::string& { return inputs[i].name; },
      [&](size_t i) -> const TensorType& { return types[inputs[i].value]; },
      expected_inputs, absl::MakeSpan(fed)));

  if (num_threads > 0 && omp_get_max_threads() != num_threads)
    omp_set_num_threads(num_threads);
  const ScopedFlushDenormals flush_denormals(FlushDenormals(), num_threads);
  // Feeds are read in place: nothing writes an input's buffer (the planner
  // never reuses it in place), so the steps may read the caller's tensor.
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto* data = static_cast<std::byte*>(const_cast<void*>(fed[i]->raw_data()));
    if (data == nullptr) continue;
    for (ValueId v : inputs[i].values) pointers[v] = data;
    for (memory* mem : inputs[i].args) mem->set_data_handle(data);
  }
  try {
    for (Step& step : steps) {
      const auto start = profile ? std::chrono::steady_clock::now()
                                 : std::chrono::steady_clock::time_point();
      if (step.loop) {
        if (absl::Status s = step.loop(pointers); !s.ok()) {
          stream.wait();
          if (step.layer.empty()) return s;
          return absl::Status(s.code(), absl::StrCat("layer '", step.layer,
                                                     "': ", s.message()));
        }
      } else {
        const dnnl_status_t status = dnnl_primitive_execute(
            step.primitive.get(), stream.get(),
            static_cast<int>(step.exec_args.size()), step.exec_args.data());
        if (status != dnnl_success)
          throw dnnl::error(status, "could not execute a primitive");
      }
      if (profile) {
        stream.wait();
        step.seconds += std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - start)
                            .count();
      }
    }
    stream.wait();
    if (profile) ++profiled_runs;
  } catch (const dnnl::error& e) {
    return DnnlError(e, "running the cpu executable");
  }

  outputs.resize(output_values.size());
  for (size_t i = 0; i < output_values.size(); ++i) {
    const TensorType& type = types[output_values[i]];
    // A default Tensor claims type f32[] but holds no buffer, hence the element
    // count.
    if (!outputs[i].HasType(type) ||
        outputs[i].num_elements() != type.shape.NumElements()) {
      outputs[i] = Tensor(type);
    }
    if (outputs[i].num_bytes() > 0) {
      std::memcpy(outputs[i].raw_data(), pointers[output_values[i]],
                  outputs[i].num_bytes());
    }
  }
  for (Update& u : updates) {
    if (u.staging != nullptr) {
      std::memcpy(u.staging, pointers[u.value], u.variable->num_bytes());
    }
  }
  for (Update& u : updates) {
    const std::byte* src = u.staging != nullptr ? u.staging : pointers[u.value];
    if (src != u.variable->raw_data() && u.variable->num_bytes() > 0) {
      std::memcpy(u.variable->raw_data(), src, u.variable->num_bytes());
    }
    if (u.shadow != nullptr) ++u.shadow->version;
  }
  return absl::OkStatus();
}

}  // namespace sequent::cpu
