#ifndef SEQUENT_CORE_STATUS_MACROS_H_
#define SEQUENT_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Abseil's LTS 20220623 ships no RETURN_IF_ERROR / ASSIGN_OR_RETURN; these are ours.
#define SEQUENT_RETURN_IF_ERROR(expr)                \
  do {                                               \
    if (::absl::Status _st = (expr); !_st.ok()) {    \
      return _st;                                    \
    }                                                \
  } while (0)

#define SEQUENT_CONCAT_INNER_(a, b) a##b
#define SEQUENT_CONCAT_(a, b) SEQUENT_CONCAT_INNER_(a, b)

#define SEQUENT_ASSIGN_OR_RETURN(lhs, expr) \
  SEQUENT_ASSIGN_OR_RETURN_IMPL_(SEQUENT_CONCAT_(_statusor_, __LINE__), lhs, expr)

#define SEQUENT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // SEQUENT_CORE_STATUS_MACROS_H_
