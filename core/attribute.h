#ifndef SEQUENT_CORE_ATTRIBUTE_H_
#define SEQUENT_CORE_ATTRIBUTE_H_

#include <cstdint>
#include <map>
#include <string>
#include "absl/strings/string_view.h"
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace sequent {

// A typed node attribute. Text forms: 3, 0.5, true, "relu", [1, 2], [0.5, 1.0].
// Floats always print with a '.' or exponent so that they parse back as floats.
using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>,
                               std::vector<double>>;

// Sorted by name, so printing and hashing are deterministic.
using Attributes = std::map<std::string, AttrValue, std::less<>>;

std::string AttrValueToString(const AttrValue& value);
std::string AttrTypeName(const AttrValue& value);

// Typed lookups with defaults; a present attribute of the wrong type is an error that names
// the attribute.
absl::StatusOr<int64_t> GetIntAttr(const Attributes& attrs, absl::string_view name);
absl::StatusOr<double> GetFloatAttr(const Attributes& attrs, absl::string_view name);
absl::StatusOr<bool> GetBoolAttr(const Attributes& attrs, absl::string_view name);
absl::StatusOr<std::string> GetStringAttr(const Attributes& attrs, absl::string_view name);
absl::StatusOr<std::vector<int64_t>> GetIntListAttr(const Attributes& attrs,
                                                    absl::string_view name);
absl::StatusOr<std::vector<double>> GetFloatListAttr(const Attributes& attrs,
                                                     absl::string_view name);

// Convenience forms for attributes that the schema guarantees (defaults already applied);
// they return `fallback` when the attribute is missing or mistyped.
int64_t IntAttrOr(const Attributes& attrs, absl::string_view name, int64_t fallback);
double FloatAttrOr(const Attributes& attrs, absl::string_view name, double fallback);
bool BoolAttrOr(const Attributes& attrs, absl::string_view name, bool fallback);
std::string StringAttrOr(const Attributes& attrs, absl::string_view name,
                         absl::string_view fallback);
std::vector<int64_t> IntListAttrOr(const Attributes& attrs, absl::string_view name,
                                   std::vector<int64_t> fallback);

}  // namespace sequent

#endif  // SEQUENT_CORE_ATTRIBUTE_H_
