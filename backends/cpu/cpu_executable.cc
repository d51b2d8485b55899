#include "backends/cpu/cpu_executable.h"

#include <omp.h>

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backends/cpu/onednn_util.h"
#include "backends/feeds.h"
#include "core/status_macros.h"

namespace sequent::cpu {

absl::Status Unsupported(const Node& node, absl::string_view why) {
  return absl::UnimplementedError(
      absl::StrCat("[", node.op, "] the cpu backend ", why));
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
