#include <fmt/core.h>

#include <dnnl.hpp>

int main() {
  const dnnl_version_t* v = dnnl::version();
  fmt::print("oneDNN {}.{}.{} (cpu runtime {})\n", v->major, v->minor, v->patch,
             v->cpu_runtime);
  return 0;
}
