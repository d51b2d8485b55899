#!/usr/bin/env bash
# Issue 7's speed figure: examples/sklearn_mlp's seconds per epoch against
# scikit-learn's MLPClassifier on the same data and split, side by side. Each
# round runs scikit-learn once (tools/golden/sklearn_mlp.py, its default thread
# count) and then FITS fits of ours; rounds alternate so both see the same
# machine. Prints each round's figures and ratio, then the overall medians.
#
#   bench/sklearn_epoch.sh                 # 3 rounds x 3 fits, ~2 minutes
#   ROUNDS=5 FITS=5 bench/sklearn_epoch.sh
#
# Needs scikit-learn and numpy (pip install scikit-learn numpy) and the
# Fashion-MNIST files (Debian's dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
FITS="${FITS:-3}"
python3 -c "import sklearn, numpy" 2>/dev/null ||
  { echo "needs scikit-learn and numpy: pip install scikit-learn numpy" >&2; exit 1; }
./bazelw build -c opt //examples:sklearn_mlp >&2
BIN="$(./bazelw info -c opt bazel-bin 2>/dev/null)/examples/sklearn_mlp"
TMP="$(mktemp -d /tmp/sklearn_epoch.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

for round in $(seq "$ROUNDS"); do
  python3 tools/golden/sklearn_mlp.py "$TMP" > /dev/null 2>&1
  sklearn="$(awk '$1 == "seconds_per_epoch" {print $2}' "$TMP/sklearn_mlp.txt")"
  echo "$sklearn" >> "$TMP/sklearn"
  ours=""
  for fit in $(seq "$FITS"); do
    s="$("$BIN" 2> /dev/null | sed -n 's/^fit wall time: .*(\([0-9.]*\) s per epoch).*/\1/p')"
    echo "$s" >> "$TMP/sequent"
    ours="$ours $s"
  done
  python3 - "$round" "$sklearn" $ours <<'PY'
import statistics, sys
rnd, sk, ours = sys.argv[1], float(sys.argv[2]), [float(v) for v in sys.argv[3:]]
m = statistics.median(ours)
print(f"round {rnd}: scikit-learn {sk:.4f} s/epoch; sequent {' '.join(f'{v:.4f}' for v in ours)}"
      f" (median {m:.4f}); {sk / m:.2f}x")
PY
done
python3 - "$TMP/sklearn" "$TMP/sequent" <<'PY'
import statistics, sys
sk = [float(v) for v in open(sys.argv[1])]
ours = [float(v) for v in open(sys.argv[2])]
msk, mours = statistics.median(sk), statistics.median(ours)
print(f"medians: scikit-learn {msk:.4f} s/epoch, sequent {mours:.4f} s/epoch: {msk / mours:.2f}x")
PY
