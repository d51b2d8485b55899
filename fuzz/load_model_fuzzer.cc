// load_model on arbitrary bytes must return a status, never crash or allocate
// what the file merely claims. Random mutations almost never get past the
// CRC32 checks, so the target also rewrites the three checksums (header,
// section table, whole file; layout in frontend/SAVE_FORMAT.md) before it loads
// a second copy: that reaches the section table, the variable records, the
// config parser, the layer configs and compile.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "frontend/saving.h"
#include "fuzz/fuzz_util.h"

namespace {

void PutCrc(std::string& bytes, size_t begin, size_t end, size_t at) {
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data() + begin),
            static_cast<uInt>(end - begin)));
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>(crc >> (8 * i));
}

uint32_t GetU32(const std::string& bytes, size_t at) {
  uint32_t v;
  std::memcpy(&v, bytes.data() + at, 4);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)sequent::DecodeSaveFile(bytes);

  constexpr size_t kHeader = 32, kEntry = 24;
  if (bytes.size() >= kHeader + 4) {
    PutCrc(bytes, 0, 28, 28);
    const uint64_t count = GetU32(bytes, 24);
    const uint64_t table_end = kHeader + count * kEntry;
    if (count <= 16 && bytes.size() >= table_end + 4) {
      PutCrc(bytes, kHeader, table_end, table_end);
    }
    PutCrc(bytes, 0, bytes.size() - 4, bytes.size() - 4);
  }
  const std::string path = sequent::fuzz::WriteTemp(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ".sqm");
  (void)sequent::LoadModel(path, sequent::Device("reference"));
  return 0;
}
