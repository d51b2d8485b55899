#!/usr/bin/env bash
# Builds a libFuzzer target with clang (ASan + libFuzzer) outside Bazel and runs it
# on its seed corpus. Bazel 4 fixes the C++ compiler when it configures the
# workspace, so switching to clang there would rebuild everything for everyone.
#
#   fuzz/run_fuzzer.sh TARGET [SECONDS] [extra libFuzzer flags...]
#   fuzz/run_fuzzer.sh build        # only build every target
#
#   fuzz/run_fuzzer.sh seeds        # rewrite the seed corpora in fuzz/corpus/
#
# TARGET: text_ir_fuzzer, load_model_fuzzer, idx_fuzzer, csv_fuzzer, npy_fuzzer.
# Objects are cached in fuzz/build/ (ignored by git); new inputs the fuzzer finds
# go to fuzz/build/corpus/TARGET, crashes to fuzz/build/artifacts/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=$root/fuzz/build
mkdir -p "$build/obj" "$build/artifacts"
CXX=${CXX:-clang++-14}
cxxflags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fopenmp
  -fsanitize=fuzzer-no-link,address -I"$root" -w)
absl_libs=$(pkg-config --libs absl_statusor absl_status absl_strings \
  absl_str_format absl_hash absl_raw_hash_set absl_synchronization absl_time \
  absl_random_random absl_cord absl_flags_parse 2>/dev/null)

# The library: everything but tests, tools and the CUDA backend.
srcs=$(ls core/*.cc core/passes/*.cc ops/*.cc backends/host_variable_store.cc \
  backends/cpu/*.cc backends/reference/*.cc frontend/*.cc)

objs=()
stale=()
for src in $srcs; do
  obj=$build/obj/${src//\//_}.o
  objs+=("$obj")
  [[ -f $obj && $obj -nt $src ]] || stale+=("$src")
done
if (( ${#stale[@]} )); then
  printf '%s\n' "${stale[@]}" | xargs -P "${FUZZ_JOBS:-2}" -I{} sh -c \
    'o="$1/obj/$(echo "$2" | tr / _).o"; '"$CXX ${cxxflags[*]}"' -c "$2" -o "$o"' \
    _ "$build" {}
fi

link() {
  local t=$1
  if [[ ! -f $build/$t || fuzz/$t.cc -nt $build/$t || -n $(find "$build/obj" -newer "$build/$t" -name '*.o' | head -1) ]]; then
    "$CXX" "${cxxflags[@]}" -fsanitize=fuzzer "fuzz/$t.cc" "${objs[@]}" \
      $absl_libs -ldnnl -lfmt -lz -o "$build/$t"
  fi
}

target=${1:?usage: fuzz/run_fuzzer.sh TARGET|build|seeds [SECONDS] [libFuzzer flags]}
if [[ $target == seeds ]]; then
  "$CXX" "${cxxflags[@]}" fuzz/make_seeds.cc "${objs[@]}" $absl_libs -ldnnl \
    -lfmt -lz -o "$build/make_seeds"
  for t in text_ir_fuzzer load_model_fuzzer idx_fuzzer csv_fuzzer npy_fuzzer; do
    mkdir -p "fuzz/corpus/$t"
  done
  exec "$build/make_seeds"
fi
if [[ $target == build ]]; then
  for f in fuzz/*_fuzzer.cc; do link "$(basename "$f" .cc)"; done
  exit 0
fi
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
link "$target"
mkdir -p "$build/corpus/$target"
# -rss_limit_mb: a loader that allocates what a header claims fails here.
exec "$build/$target" -max_total_time="$seconds" -rss_limit_mb=2048 \
  -malloc_limit_mb=1024 -timeout=10 -artifact_prefix="$build/artifacts/$target-" \
  -print_final_stats=1 "$@" "$build/corpus/$target" "fuzz/corpus/$target"
