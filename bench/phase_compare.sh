#!/usr/bin/env bash
# Owned against pooled layers and the floor, with the host's phase, over and
# over: one line per triple of the MLP b128 train step (bench/README.md, ninth
# session). Usage: bench/phase_compare.sh [seconds, default 240]. Build first:
#   ./bazelw build -c opt //bench:handover_probe //bench:sequent_bench //bench:gemm_floor
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bazel-bin/bench
seconds="${1:-240}"
end=$((SECONDS + seconds))
median() { grep BM_ | awk '{print $2 $3}'; }
while [ "$SECONDS" -lt "$end" ]; do
  probe=$("$bin/handover_probe" | tail -1 | sed 's/.*handed over \([0-9.]*\) us.*/\1/')
  owned=$("$bin/sequent_bench" --benchmark_filter='MlpTrain/128' 2>&1 | median)
  pooled=$(SEQUENT_CPU_OWNED=0 "$bin/sequent_bench" --benchmark_filter='MlpTrain/128' 2>&1 | median)
  floor=$(OMP_NUM_THREADS=2 "$bin/gemm_floor" --benchmark_filter='MlpTrain/128' 2>&1 | median)
  echo "$(date +%T) hand-over ${probe} us  owned ${owned}  pooled ${pooled}  floor ${floor}"
done
