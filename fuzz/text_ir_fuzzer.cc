// ParseGraph on arbitrary text must return a status, never crash; a graph it
// accepts must print and parse back to the same text (print -> parse -> print
// is the identity).
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "core/text_ir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<sequent::Graph> g = sequent::ParseGraph(text);
  if (!g.ok()) return 0;
  const std::string printed = sequent::PrintGraph(*g);
  absl::StatusOr<sequent::Graph> again = sequent::ParseGraph(printed);
  if (!again.ok() || sequent::PrintGraph(*again) != printed) __builtin_trap();
  return 0;
}
