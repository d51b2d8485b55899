#include "core/op_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sequent {

absl::Status OpRegistry::Register(OpDef def) {
  if (def.name.empty()) return absl::InvalidArgumentError("op with an empty name");
  if (!def.infer) {
    return absl::InvalidArgumentError(absl::StrCat("[", def.name, "] has no shape rule"));
  }
  const std::string name = def.name;
  if (!ops_.emplace(name, std::move(def)).second) {
    return absl::AlreadyExistsError(absl::StrCat("op '", name, "' registered twice"));
  }
  return absl::OkStatus();
}

const OpDef* OpRegistry::Find(absl::string_view op) const {
  auto it = ops_.find(op);
  return it == ops_.end() ? nullptr : &it->second;
}

OpDef* OpRegistry::FindMutable(absl::string_view op) {
  auto it = ops_.find(op);
  return it == ops_.end() ? nullptr : &it->second;
}

absl::StatusOr<const OpDef*> OpRegistry::Get(absl::string_view op) const {
  if (const OpDef* def = Find(op)) return def;
  return absl::NotFoundError(absl::StrCat("unknown op '", op, "'"));
}

std::vector<std::string> OpRegistry::OpNames() const {
  std::vector<std::string> names;
  for (const auto& [name, def] : ops_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<TensorType>> OpRegistry::InferTypes(
    absl::string_view op, absl::Span<const TensorType> inputs, Attributes& attrs) const {
  const OpDef* def = Find(op);
  if (def == nullptr) return absl::NotFoundError(absl::StrCat("unknown op '", op, "'"));
  const int declared = static_cast<int>(def->inputs.size());
  const int required = def->num_required_inputs < 0 ? declared : def->num_required_inputs;
  const int given = static_cast<int>(inputs.size());
  if (given < required || (!def->variadic && given > declared)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[", op, "] expects ", def->variadic ? "at least " : "",
        required == declared || def->variadic ? absl::StrCat(required)
                                              : absl::StrCat(required, " to ", declared),
        " inputs (", absl::StrJoin(def->inputs, ", "), "), got ", given));
  }
  for (auto& [name, value] : attrs) {
    auto spec = std::find_if(def->attrs.begin(), def->attrs.end(),
                             [&name = name](const AttrSpec& s) { return s.name == name; });
    if (spec == def->attrs.end()) {
      std::vector<std::string> known;
      for (const AttrSpec& s : def->attrs) known.push_back(s.name);
      return absl::InvalidArgumentError(
          absl::StrCat("[", op, "] has no attribute '", name, "'",
                       known.empty() ? " (it takes none)"
                                     : absl::StrCat(" (valid: ", absl::StrJoin(known, ", "), ")")));
    }
    if (spec->default_value && spec->default_value->index() != value.index()) {
      const bool int_for_float = spec->default_value->index() == 1 && value.index() == 0;
      if (int_for_float) {
        // Canonicalize {alpha = 1} to a float so printing round-trips as the schema says.
        value = static_cast<double>(std::get<int64_t>(value));
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "[", op, "] attribute '", name, "' must be ", AttrTypeName(*spec->default_value),
            ", got ", AttrTypeName(value), " ", AttrValueToString(value)));
      }
    }
  }
  for (const AttrSpec& spec : def->attrs) {
    if (attrs.contains(spec.name)) continue;
    if (!spec.default_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("[", op, "] missing required attribute '", spec.name, "'"));
    }
    attrs.emplace(spec.name, *spec.default_value);
  }
  auto types = def->infer(inputs, attrs);
  if (!types.ok()) {
    return absl::Status(types.status().code(),
                        absl::StrCat("[", op, "] ", types.status().message()));
  }
  if (types->size() != def->outputs.size() && !def->outputs.empty()) {
    return absl::InternalError(absl::StrCat("[", op, "] shape rule returned ", types->size(),
                                            " types for ", def->outputs.size(), " outputs"));
  }
  return types;
}

}  // namespace sequent
