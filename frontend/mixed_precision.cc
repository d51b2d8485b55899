#include "frontend/mixed_precision.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "frontend/error.h"

namespace sequent::mixed_precision {
namespace {

std::mutex policy_mutex;
std::string& Policy() {
  static auto* policy = new std::string("float32");
  return *policy;
}

}  // namespace

void set_global_policy(const std::string& policy) {
  if (policy != "float32" && policy != "mixed_bfloat16") {
    throw Error(absl::StrCat(
        "set_global_policy: unknown dtype policy '", policy,
        "'; the accepted policies are \"float32\" and \"mixed_bfloat16\""));
  }
  std::lock_guard<std::mutex> lock(policy_mutex);
  Policy() = policy;
}

std::string global_policy() {
  std::lock_guard<std::mutex> lock(policy_mutex);
  return Policy();
}

}  // namespace sequent::mixed_precision
