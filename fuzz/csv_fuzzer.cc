// LoadCsv (and SplitXY on what it returns) on arbitrary bytes must return a
// status, never crash. The first byte picks the options.
#include <cstdint>

#include "frontend/data.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  sequent::CsvOptions options;
  options.header = (data[0] & 1) != 0;
  options.delimiter = (data[0] & 2) ? ';' : ((data[0] & 4) ? '\t' : ',');
  const std::string path = sequent::fuzz::WriteTemp(data + 1, size - 1, ".csv");
  absl::StatusOr<sequent::CsvTable> table = sequent::LoadCsv(path, options);
  if (!table.ok()) return 0;
  if (table->values.shape().rank() != 2 ||
      table->values.shape()[1] != static_cast<int64_t>(table->columns.size())) {
    __builtin_trap();
  }
  if (!table->columns.empty()) {
    (void)sequent::SplitXY(
        *table, table->columns.back(),
        (data[0] & 8) ? sequent::DType::kF32 : sequent::DType::kI32);
  }
  return 0;
}
