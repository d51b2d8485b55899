#include "backends/host_variable_store.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace sequent {
namespace {

absl::Status CheckType(absl::string_view name, const Tensor& stored,
                       const Tensor& value) {
  if (stored.type() == value.type()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "variable '", std::string(name), "' has type ", stored.type().ToString(),
      "; cannot write ", value.type().ToString()));
}

}  // namespace

bool HostVariableStore::Contains(absl::string_view name) const {
  return variables_.find(name) != variables_.end();
}

absl::StatusOr<Tensor> HostVariableStore::Read(absl::string_view name) const {
  const Tensor* t = Find(name);
  if (t == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no variable '", std::string(name), "'"));
  }
  return *t;
}

absl::Status HostVariableStore::Write(absl::string_view name,
                                      const Tensor& value) {
  if (Tensor* t = Find(name)) {
    if (absl::Status s = CheckType(name, *t, value); !s.ok()) return s;
    // Copy into the existing buffer so that pointers held by executables stay
    // valid.
    if (value.num_bytes() > 0)
      std::memcpy(t->raw_data(), value.raw_data(), value.num_bytes());
    return absl::OkStatus();
  }
  variables_.emplace(std::string(name), value);
  return absl::OkStatus();
}

absl::Status HostVariableStore::Set(absl::string_view name, Tensor value) {
  if (Contains(name)) return Write(name, value);
  variables_.emplace(std::string(name), std::move(value));
  return absl::OkStatus();
}

std::vector<std::string> HostVariableStore::Names() const {
  std::vector<std::string> names;
  names.reserve(variables_.size());
  for (const auto& [name, tensor] : variables_) names.push_back(name);
  return names;
}

Tensor* HostVariableStore::Find(absl::string_view name) {
  auto it = variables_.find(name);
  return it == variables_.end() ? nullptr : &it->second;
}

const Tensor* HostVariableStore::Find(absl::string_view name) const {
  auto it = variables_.find(name);
  return it == variables_.end() ? nullptr : &it->second;
}

absl::StatusOr<Tensor*> HostVariableStore::GetMutable(absl::string_view name) {
  if (Tensor* t = Find(name)) return t;
  return absl::NotFoundError(
      absl::StrCat("no variable '", std::string(name), "'"));
}

absl::StatusOr<HostVariableStore*> HostVariableStore::FromStore(
    VariableStore* store, absl::string_view backend) {
  if (store == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", std::string(backend), " backend needs a variable store"));
  }
  auto* host = dynamic_cast<HostVariableStore*>(store);
  if (host == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the variable store was not created by the ", std::string(backend),
        " backend (use its CreateVariableStore())"));
  }
  return host;
}

}  // namespace sequent
