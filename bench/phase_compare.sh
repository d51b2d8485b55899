#!/usr/bin/env bash
# Owned against pooled layers and the floor, with the host's phase, over and
# over: one line per triple of the MLP b128 train step (bench/README.md, ninth
# session), then per phase the medians and the median of the per-line ratios
# to the floor. Pairing each step with a floor measured seconds apart keeps
# the host's phase flips (bench/handover_probe) out of the ratio.
#
#   bench/phase_compare.sh [seconds, default 240]
#   POOLED=0 bench/phase_compare.sh 60      # owned and floor only
#
# Build first:
#   ./bazelw build -c opt //bench:handover_probe //bench:sequent_bench //bench:gemm_floor
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-bazel-bin/bench}"
seconds="${1:-240}"
end=$((SECONDS + seconds))
median() { grep BM_ | awk '{print $2 $3}'; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
while [ "$SECONDS" -lt "$end" ]; do
  probe=$("$bin/handover_probe" | tail -1 | sed 's/.*handed over \([0-9.]*\) us.*/\1/')
  owned=$("$bin/sequent_bench" --benchmark_filter='MlpTrain/128' 2>&1 | median)
  pooled=n/a
  if [[ "${POOLED:-1}" != 0 ]]; then
    pooled=$(SEQUENT_CPU_OWNED=0 "$bin/sequent_bench" --benchmark_filter='MlpTrain/128' 2>&1 | median)
  fi
  floor=$(OMP_NUM_THREADS=2 "$bin/gemm_floor" --benchmark_filter='MlpTrain/128' 2>&1 | median)
  echo "$(date +%T) hand-over ${probe} us  owned ${owned}  pooled ${pooled}  floor ${floor}" | tee -a "$log"
done
python3 - "$log" <<'PY'
import re, statistics, sys

def us(text):
    m = re.fullmatch(r"([0-9.]+)(ms|us)", text)
    return None if m is None else float(m[1]) * (1000 if m[2] == "ms" else 1)

lines = []
for line in open(sys.argv[1]):
    f = line.split()
    # time hand-over P us owned O pooled Q floor F
    probe, owned, pooled, floor = float(f[2]), us(f[5]), us(f[7]), us(f[9])
    if owned and floor:
        lines.append((probe, owned, pooled, floor))
print("\nMLP b128 step / floor, medians of the per-line ratios (the probe's"
      " hand-over > 100 us: slow phase):")
for phase, in_phase in (("all", lambda p: True), ("quiet", lambda p: p < 100),
                        ("slow", lambda p: p >= 100)):
    rows = [r for r in lines if in_phase(r[0])]
    if not rows:
        print(f"  {phase}: no lines")
        continue
    ratios = sorted(o / f for _, o, _, f in rows)
    text = (f"  {phase}: {len(rows)} lines, owned median {statistics.median(r[1] for r in rows):.0f} us,"
            f" floor {statistics.median(r[3] for r in rows):.0f} us, owned/floor"
            f" {statistics.median(ratios):.3f} (range {ratios[0]:.2f}-{ratios[-1]:.2f})")
    pooled = [q / f for _, _, q, f in rows if q]
    if pooled:
        text += f", pooled/floor {statistics.median(pooled):.3f}"
    print(text)
PY
