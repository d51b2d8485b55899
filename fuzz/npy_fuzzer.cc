// LoadNpy on arbitrary bytes must return a status, never crash or allocate
// what a header merely claims; a tensor it returns must save and load back.
#include <cstdint>

#include "frontend/data.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = sequent::fuzz::WriteTemp(data, size, ".npy");
  absl::StatusOr<sequent::Tensor> t = sequent::LoadNpy(path);
  if (!t.ok()) return 0;
  if (!sequent::SaveNpy(path, *t).ok()) return 0;  // e.g. u1 loads as i32.
  absl::StatusOr<sequent::Tensor> again = sequent::LoadNpy(path);
  if (!again.ok() || again->shape() != t->shape()) __builtin_trap();
  return 0;
}
