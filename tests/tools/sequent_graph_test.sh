#!/bin/bash
# sequent-graph on one example: every stage in every format is written and looks
# like its format; the optimized SVG draws the fused dense node;
# --print_after_all shows fusion changing the graph and ends at the optimized
# graph; SEQUENT_DUMP_DIR makes compile write every stage.
# With a saved copy of the example (written by save_example), --model gives the
# same graphs as --example.
#   sequent_graph_test.sh <sequent-graph> <example> <save_example>
set -u
tool="$1"
example="$2"
save_example="$3"
tmp="${TEST_TMPDIR:-$(mktemp -d)}/$example"
mkdir -p "$tmp"
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

for stage in built optimized train eval predict plan; do
  for format in text dot json svg png html; do
    file="$tmp/$stage.$format"
    if ! "$tool" --example="$example" --stage="$stage" --format="$format" \
        --out="$file" 2>"$tmp/err"; then
      fail "$stage/$format exited with $?: $(cat "$tmp/err")"
      continue
    fi
    [[ -s "$file" ]] || { fail "$stage/$format wrote nothing"; continue; }
    case "$format" in
      text)
        if [[ "$stage" == plan ]]; then
          grep -q '^value ' "$file" || fail "plan/text is not the plan table"
          grep -q 'arena @' "$file" || fail "plan/text places nothing in the arena"
        else
          head -1 "$file" | grep -q '^graph "' || fail "$stage/text is not the text IR"
        fi ;;
      dot) grep -q '^digraph ' "$file" || fail "$stage/dot is not DOT" ;;
      json)
        grep -q '"nodes": \[' "$file" || fail "$stage/json has no nodes"
        grep -q '"edges": \[' "$file" || fail "$stage/json has no edges"
        if [[ "$stage" == plan ]]; then
          grep -q '"memory": {"placement": "arena", "offset": [0-9]' "$file" ||
            fail "plan/json has no arena offsets"
        fi
        if command -v node >/dev/null; then
          node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' \
            "$file" || fail "$stage/json does not parse"
        fi ;;
      svg) grep -q '<svg' "$file" || fail "$stage/svg is not SVG" ;;
      png)
        [[ "$(head -c 4 "$file" | tail -c 3)" == PNG ]] || fail "$stage/png is not PNG" ;;
      html)
        grep -q 'id="graph-data"' "$file" || fail "$stage/html has no graph data"
        grep -q '<svg' "$file" || fail "$stage/html has no inline SVG" ;;
    esac
  done
done

# Text, DOT and JSON go to stdout without --out, the same bytes.
"$tool" --example="$example" --stage=train >"$tmp/stdout.text" ||
  fail "text to stdout failed"
cmp -s "$tmp/stdout.text" "$tmp/train.text" || fail "stdout text differs from --out"

# The fused dense node is drawn with what it computes.
grep -q 'matmul + bias_add + relu' "$tmp/optimized.svg" ||
  fail "optimized.svg does not show the fused dense node"
grep -q 'matmul + bias_add + relu' "$tmp/built.svg" &&
  fail "built.svg shows a fused node before fusion ran"

# --print_after_all: every pass, fusion changes the graph, the last dump is the
# optimized graph.
"$tool" --example="$example" --print_after_all >"$tmp/passes.txt" 2>"$tmp/err" ||
  fail "--print_after_all failed: $(cat "$tmp/err")"
grep -qx -- '// ---- after fusion (changed) ----' "$tmp/passes.txt" ||
  fail "--print_after_all does not show fusion changing the graph"
for pass in shape_inference canonicalize constant_folding cse dce; do
  grep -q -- "^// ---- after $pass (" "$tmp/passes.txt" ||
    fail "--print_after_all does not print after $pass"
done
last="$(grep -n -- '^// ---- after ' "$tmp/passes.txt" | tail -1 | cut -d: -f1)"
tail -n +"$((last + 1))" "$tmp/passes.txt" >"$tmp/last_pass.txt"
cmp -s "$tmp/last_pass.txt" "$tmp/optimized.text" ||
  fail "the graph after the last pass is not --stage=optimized"

"$tool" --example="$example" --print_after=fusion,dce >"$tmp/two.txt" ||
  fail "--print_after=fusion,dce failed"
[[ "$(grep -c -- '^// ---- after ' "$tmp/two.txt")" == 2 ]] ||
  fail "--print_after=fusion,dce does not print exactly two graphs"

# SEQUENT_DUMP_DIR: compile writes every stage as text and DOT.
SEQUENT_DUMP_DIR="$tmp/dumps" "$tool" --example="$example" --stage=built \
  >/dev/null || fail "the run with SEQUENT_DUMP_DIR failed"
for stage in built optimized train eval predict; do
  ls "$tmp/dumps"/*."$stage".txt >/dev/null 2>&1 ||
    fail "SEQUENT_DUMP_DIR has no $stage.txt"
  ls "$tmp/dumps"/*."$stage".dot >/dev/null 2>&1 ||
    fail "SEQUENT_DUMP_DIR has no $stage.dot"
done

# --model: a saved copy of the example draws the same graphs.
"$save_example" "$example" "$tmp/model.sequent" || fail "save_example failed"
for stage in built optimized train eval predict plan; do
  "$tool" --model="$tmp/model.sequent" --stage="$stage" >"$tmp/model.$stage.text" \
    2>"$tmp/err" || fail "--model --stage=$stage failed: $(cat "$tmp/err")"
  cmp -s "$tmp/model.$stage.text" "$tmp/$stage.text" ||
    fail "--model --stage=$stage differs from --example"
done
"$tool" --model="$tmp/model.sequent" --stage=optimized --format=svg \
  --out="$tmp/model.svg" --html="$tmp/model.html" ||
  fail "--model svg and html failed"
grep -q '<svg' "$tmp/model.svg" || fail "--model svg is not SVG"
grep -q 'id="graph-data"' "$tmp/model.html" || fail "--model html has no graph data"

if ((failures)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "PASS: $example"
