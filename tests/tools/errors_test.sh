#!/bin/bash
# Bad input to sequent-graph: exit code 2 and exactly one line on stderr,
# "sequent-graph: error: ...", naming what was wrong.
#   errors_test.sh <sequent-graph> <save_example>
set -u
tool="$1"
save_example="$2"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
prefix=()  # A command to run the tool under (env ...), for the Graphviz case.

# expect_error <text the message must contain> <args...>
expect_error() {
  local want="$1"
  shift
  "${prefix[@]}" "$tool" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines="$(wc -l <"$tmp/err")"
  if [[ $rc != 2 ]]; then
    echo "FAIL: $* exited with $rc, not 2" >&2
    failures=$((failures + 1))
  elif [[ $lines != 1 ]]; then
    echo "FAIL: $* wrote $lines lines to stderr:" >&2
    cat "$tmp/err" >&2
    failures=$((failures + 1))
  elif ! grep -q "^sequent-graph: error: .*$want" "$tmp/err"; then
    echo "FAIL: $*: message does not say '$want': $(cat "$tmp/err")" >&2
    failures=$((failures + 1))
  elif [[ -s "$tmp/out" ]]; then
    echo "FAIL: $* wrote to stdout on error" >&2
    failures=$((failures + 1))
  fi
}

printf 'not a saved model, just text\n' >"$tmp/corrupt.sequent"
head -c 4096 /dev/urandom >"$tmp/random.sequent"

expect_error "no such file: $tmp/missing.sequent" --model="$tmp/missing.sequent"
expect_error "$tmp/corrupt.sequent" --model="$tmp/corrupt.sequent"
expect_error "$tmp/random.sequent" --model="$tmp/random.sequent"
# A real save file cut short, and one with a byte flipped in the middle.
"$save_example" fashion_mnist_mlp "$tmp/good.sequent"
size="$(stat -c %s "$tmp/good.sequent")"
head -c $((size / 2)) "$tmp/good.sequent" >"$tmp/truncated.sequent"
cp "$tmp/good.sequent" "$tmp/flipped.sequent"
printf '\xff' | dd of="$tmp/flipped.sequent" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
expect_error "$tmp/truncated.sequent" --model="$tmp/truncated.sequent"
expect_error "$tmp/flipped.sequent" --model="$tmp/flipped.sequent"
expect_error "no such file: $tmp" --model="$tmp"
expect_error "unknown example 'lenet'" --example=lenet
expect_error "exactly one of --model" --example=fashion_mnist_mlp --model="$tmp/corrupt.sequent"
expect_error "exactly one of --model"
expect_error "unknown stage 'trained'" --example=fashion_mnist_mlp --stage=trained
expect_error "unknown format 'pdf'" --example=fashion_mnist_mlp --format=pdf
expect_error "unknown pass 'fuse'" --example=fashion_mnist_mlp --print_after=fuse
expect_error "unknown pass 'nope'" --example=fashion_mnist_mlp --print_after=cse,nope
expect_error "write text or dot" --example=fashion_mnist_mlp --print_after_all --format=svg
expect_error "needs --out" --example=fashion_mnist_mlp --format=png
expect_error "batch_size must be positive" --example=fashion_mnist_mlp --stage=plan --batch_size=0
expect_error "cannot write" --example=fashion_mnist_mlp --out="$tmp/no/such/dir/x.txt"
expect_error "unknown flag --exampel" --exampel=fashion_mnist_mlp
expect_error "batch_size=abc" --example=fashion_mnist_mlp --batch_size=abc
expect_error "--example needs a value" --example
expect_error "unexpected argument 'extra'" --example=fashion_mnist_mlp extra
# Without Graphviz on PATH the pictures say what to install.
prefix=(env PATH=/nonexistent)
expect_error "install Graphviz" --example=fashion_mnist_mlp --format=svg --out="$tmp/x.svg"
prefix=()

if ((failures)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "PASS"
