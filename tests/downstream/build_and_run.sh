#!/usr/bin/env bash
# Builds and runs the downstream workspace that consumes @sequent//:sequent, as a user would.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bazel build //:uses_sequent
./bazel-bin/uses_sequent
