// LoadIdx on arbitrary bytes (raw or gzipped) must return a status, never
// crash or allocate more than the bytes justify.
#include <cstdint>

#include "frontend/data.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = sequent::fuzz::WriteTemp(data, size, ".idx");
  absl::StatusOr<sequent::Tensor> t = sequent::LoadIdx(path);
  if (t.ok() && t->shape().rank() < 1) __builtin_trap();
  return 0;
}
