#ifndef SEQUENT_FUZZ_FUZZ_UTIL_H_
#define SEQUENT_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace sequent::fuzz {

// The loaders take paths: each input goes through one file per process.
inline std::string WriteTemp(const uint8_t* data, size_t size,
                             const char* suffix) {
  const std::string path =
      "/tmp/sequent_fuzz_" + std::to_string(::getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace sequent::fuzz

#endif  // SEQUENT_FUZZ_FUZZ_UTIL_H_
