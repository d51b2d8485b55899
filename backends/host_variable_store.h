#ifndef SEQUENT_BACKENDS_HOST_VARIABLE_STORE_H_
#define SEQUENT_BACKENDS_HOST_VARIABLE_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "backends/backend.h"
#include "core/tensor.h"

namespace sequent {

// Variables kept as plain host tensors (reference and CPU backends). Variables
// are never removed, and each lives in its own map node, so a Tensor* handed
// out stays valid for the store's lifetime: executables may keep pointers from
// Compile to Run.
class HostVariableStore : public VariableStore {
 public:
  bool Contains(absl::string_view name) const override;
  absl::StatusOr<Tensor> Read(absl::string_view name) const override;
  absl::Status Write(absl::string_view name, const Tensor& value) override;
  std::vector<std::string> Names() const override;

  // Like Write, but takes ownership of `value` (no copy when the variable is
  // new).
  absl::Status Set(absl::string_view name, Tensor value);

  // The stored tensor, or nullptr when absent. Writing through the pointer
  // updates the variable in place; its type must not be changed.
  Tensor* Find(absl::string_view name);
  const Tensor* Find(absl::string_view name) const;
  // As Find, with an error naming the variable when absent.
  absl::StatusOr<Tensor*> GetMutable(absl::string_view name);

  // The store as a HostVariableStore; an error naming `backend` when it is
  // missing or belongs to another backend (a store is only valid with the
  // backend that created it).
  static absl::StatusOr<HostVariableStore*> FromStore(
      VariableStore* store, absl::string_view backend);

 private:
  std::map<std::string, Tensor, std::less<>> variables_;
};

}  // namespace sequent

#endif  // SEQUENT_BACKENDS_HOST_VARIABLE_STORE_H_
