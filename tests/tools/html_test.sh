#!/bin/bash
# The HTML page of sequent-graph in headless Chromium: opened as page#selftest it
# counts its SVG nodes against its JSON, clicks a node and checks the side panel
# shows it, and zooms with the wheel; this test reads the verdict from the DOM.
# Skips (exit 0) when Chromium is not installed.
#   html_test.sh <sequent-graph>
set -u
tool="$1"
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null; then
    browser="$(command -v "$b")"
    break
  fi
done
if [[ -z "$browser" ]]; then
  echo "SKIP: no chromium on PATH (apt-get install chromium); html_test not run"
  exit 0
fi
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
for case in fashion_mnist_mlp:optimized fashion_mnist_cnn:train fashion_mnist_mlp:plan; do
  example="${case%%:*}"
  stage="${case##*:}"
  page="$tmp/$example.$stage.html"
  if ! "$tool" --example="$example" --stage="$stage" --html="$page"; then
    echo "FAIL: writing $page" >&2
    failures=$((failures + 1))
    continue
  fi
  json_nodes="$(grep -o '{"id": [0-9]*, "op"' "$page" | wc -l)"
  HOME="$tmp" timeout 60 "$browser" --headless --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --user-data-dir="$tmp/profile" \
    --dump-dom "file://$page#selftest" >"$tmp/dom.html" 2>"$tmp/chromium.log"
  verdict="$(grep -o '<pre id="selftest">[^<]*' "$tmp/dom.html" | sed 's/.*>//')"
  echo "$example/$stage: $verdict"
  if [[ "$verdict" != "selftest: PASS nodes=$json_nodes json_nodes=$json_nodes "* ]] ||
      ((json_nodes == 0)); then
    echo "FAIL: $example/$stage: expected PASS with $json_nodes nodes" >&2
    tail -5 "$tmp/chromium.log" >&2
    failures=$((failures + 1))
  fi
  grep -q '<h2>' "$tmp/dom.html" ||
    { echo "FAIL: $example/$stage: no node details after the click" >&2; failures=$((failures + 1)); }
done
if ((failures)); then
  exit 1
fi
echo "PASS"
