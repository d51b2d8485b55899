#ifndef SEQUENT_BACKENDS_FEEDS_H_
#define SEQUENT_BACKENDS_FEEDS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "backends/backend.h"
#include "core/tensor.h"

namespace sequent {

// Matches `feeds` to a graph's inputs by name, the one way every backend
// checks them (same checks, same order, same messages): input i is called
// `name_of(i)` and takes a tensor of type `type_of(i)`; `fed` (one entry per
// input) receives the tensor of each. `expected` lists the input names ("x, y",
// or "none") for the messages. Allocates nothing unless it reports an error,
// so it may run on every step.
template <typename NameOf, typename TypeOf>
absl::Status MatchFeeds(absl::Span<const Feed> feeds, NameOf name_of,
                        TypeOf type_of, absl::string_view expected,
                        absl::Span<const Tensor*> fed) {
  for (const Tensor*& slot : fed) slot = nullptr;
  for (const Feed& feed : feeds) {
    size_t i = 0;
    while (i < fed.size() && name_of(i) != feed.name) ++i;
    if (i == fed.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown feed '", feed.name,
                       "'; the graph's inputs are: ", expected));
    }
    if (feed.tensor == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("feed '", feed.name, "' has no tensor"));
    }
    if (fed[i] != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("feed '", feed.name, "' is given twice"));
    }
    const TensorType& want = type_of(i);
    if (!feed.tensor->HasType(want)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "feed '", feed.name, "' has type ", feed.tensor->type().ToString(),
          ", the graph expects ", want.ToString()));
    }
    fed[i] = feed.tensor;
  }
  for (size_t i = 0; i < fed.size(); ++i) {
    if (fed[i] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing feed '", name_of(i),
                       "'; the graph's inputs are: ", expected));
    }
  }
  return absl::OkStatus();
}

}  // namespace sequent

#endif  // SEQUENT_BACKENDS_FEEDS_H_
