#ifndef SEQUENT_FRONTEND_ERROR_H_
#define SEQUENT_FRONTEND_ERROR_H_

#include <stdexcept>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sequent {

// The one exception type of the Keras-style API (Keras raises ValueError): its
// message says what to fix, with the layer, argument and shapes the user wrote.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) throw Error(std::string(status.message()));
}

template <typename T>
T ValueOrThrow(absl::StatusOr<T> value) {
  ThrowIfError(value.status());
  return std::move(value).value();
}

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_ERROR_H_
