#include "core/attribute.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace sequent {
namespace {

std::string FormatFloat(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // %.17g round-trips every double; add ".0" when it would read back as an integer.
  std::string s = absl::StrFormat("%.17g", v);
  // Prefer the shortest form that round-trips.
  for (int precision = 1; precision < 17; ++precision) {
    std::string shorter = absl::StrFormat("%.*g", precision, v);
    if (std::strtod(shorter.c_str(), nullptr) == v) {
      s = shorter;
      break;
    }
  }
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string QuoteString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\x%02x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

template <typename T>
absl::StatusOr<T> GetTyped(const Attributes& attrs, absl::string_view name,
                           absl::string_view type_name) {
  auto it = attrs.find(name);
  if (it == attrs.end()) {
    return absl::NotFoundError(absl::StrCat("missing attribute '", name, "'"));
  }
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' must be ", type_name,
                                                 ", got ", AttrTypeName(it->second), " ",
                                                 AttrValueToString(it->second)));
}

}  // namespace

std::string AttrValueToString(const AttrValue& value) {
  struct Visitor {
    std::string operator()(int64_t v) const { return absl::StrCat(v); }
    std::string operator()(double v) const { return FormatFloat(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return QuoteString(v); }
    std::string operator()(const std::vector<int64_t>& v) const {
      return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
    }
    std::string operator()(const std::vector<double>& v) const {
      return absl::StrCat("[",
                          absl::StrJoin(v, ", ",
                                        [](std::string* out, double d) {
                                          out->append(FormatFloat(d));
                                        }),
                          "]");
    }
  };
  return std::visit(Visitor{}, value);
}

std::string AttrTypeName(const AttrValue& value) {
  switch (value.index()) {
    case 0:
      return "int";
    case 1:
      return "float";
    case 2:
      return "bool";
    case 3:
      return "string";
    case 4:
      return "int list";
    case 5:
      return "float list";
  }
  return "?";
}

absl::StatusOr<int64_t> GetIntAttr(const Attributes& attrs, absl::string_view name) {
  return GetTyped<int64_t>(attrs, name, "an int");
}

absl::StatusOr<double> GetFloatAttr(const Attributes& attrs, absl::string_view name) {
  auto it = attrs.find(name);
  // An integer literal is accepted where a float is wanted ({alpha = 1}).
  if (it != attrs.end()) {
    if (const int64_t* v = std::get_if<int64_t>(&it->second)) return static_cast<double>(*v);
  }
  return GetTyped<double>(attrs, name, "a float");
}

absl::StatusOr<bool> GetBoolAttr(const Attributes& attrs, absl::string_view name) {
  return GetTyped<bool>(attrs, name, "a bool");
}

absl::StatusOr<std::string> GetStringAttr(const Attributes& attrs, absl::string_view name) {
  return GetTyped<std::string>(attrs, name, "a string");
}

absl::StatusOr<std::vector<int64_t>> GetIntListAttr(const Attributes& attrs,
                                                    absl::string_view name) {
  return GetTyped<std::vector<int64_t>>(attrs, name, "an int list");
}

absl::StatusOr<std::vector<double>> GetFloatListAttr(const Attributes& attrs,
                                                     absl::string_view name) {
  return GetTyped<std::vector<double>>(attrs, name, "a float list");
}

int64_t IntAttrOr(const Attributes& attrs, absl::string_view name, int64_t fallback) {
  auto v = GetIntAttr(attrs, name);
  return v.ok() ? *v : fallback;
}

double FloatAttrOr(const Attributes& attrs, absl::string_view name, double fallback) {
  auto v = GetFloatAttr(attrs, name);
  return v.ok() ? *v : fallback;
}

bool BoolAttrOr(const Attributes& attrs, absl::string_view name, bool fallback) {
  auto v = GetBoolAttr(attrs, name);
  return v.ok() ? *v : fallback;
}

std::string StringAttrOr(const Attributes& attrs, absl::string_view name,
                         absl::string_view fallback) {
  auto v = GetStringAttr(attrs, name);
  return v.ok() ? *v : std::string(fallback);
}

std::vector<int64_t> IntListAttrOr(const Attributes& attrs, absl::string_view name,
                                   std::vector<int64_t> fallback) {
  auto v = GetIntListAttr(attrs, name);
  return v.ok() ? *v : std::move(fallback);
}

}  // namespace sequent
