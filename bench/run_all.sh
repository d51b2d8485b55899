#!/usr/bin/env bash
# One run, one table: sequent's CPU train/predict steps, PyTorch, Keras 3,
# scikit-learn and the oneDNN GEMM floor. See bench/README.md.
#
#   bench/run_all.sh                  # everything (< 10 minutes on 2 cores)
#   MIN_TIME=0.2 REPS=3 bench/run_all.sh      # quicker, noisier
#   PEERS=pytorch,sklearn bench/run_all.sh    # a subset of peers; PEERS=none skips them
#   BENCH_OUT=/tmp/b bench/run_all.sh         # keep the JSON files there
#   SEQUENT_THREADS="1 2" bench/run_all.sh    # sequent at each thread count, best kept
#   PAIRED_SECONDS=0 bench/run_all.sh         # skip the paired MLP b128 / floor minute
#
# Every stage may fail on its own (no peer installed, sequent's training path not
# lowered yet): the table then says n/a and why.
set -uo pipefail
cd "$(dirname "$0")/.."

MIN_TIME="${MIN_TIME:-0.5}"
REPS="${REPS:-5}"
OUT="${BENCH_OUT:-$(mktemp -d /tmp/sequent_bench.XXXXXX)}"
mkdir -p "$OUT"
CORES="$(nproc)"
LOAD="$(cut -d' ' -f1 /proc/loadavg)"
echo "== load average $LOAD on $CORES cores" >&2
if python3 -c "import sys; sys.exit(0 if $LOAD > 0.5 else 1)"; then
  echo "WARNING: the machine is busy (load $LOAD): every number will be low and noisy" >&2
fi
GBENCH_FLAGS=(--benchmark_min_time="$MIN_TIME" --benchmark_repetitions="$REPS"
              --benchmark_report_aggregates_only=true --benchmark_out_format=json)

echo "== building (bazel -c opt)" >&2
bazel build -c opt //bench:gemm_floor >&2 || echo "gemm_floor: build failed" >&2
bazel build -c opt //bench:sequent_bench >&2 || echo "sequent_bench: build failed" >&2
bazel build -c opt //bench:handover_probe >&2 || echo "handover_probe: build failed" >&2
BIN="$(bazel info -c opt bazel-bin 2>/dev/null)/bench"

# The host's phase (bench/README.md, eighth session): in its slow phase a cache
# line the other core read costs ~5x to take over, and sequent's memory-bound
# steps slow down while the floor does not. Probed around sequent's runs.
probe() {
  [[ -x "$BIN/handover_probe" ]] && "$BIN/handover_probe" || echo "handover probe: not built"
}

# The floor at each thread count (oneDNN's OpenMP pool); report.py keeps the best.
FLOORS=()
for t in $(printf '%s\n' 1 "$CORES" | sort -un); do
  if [[ -x "$BIN/gemm_floor" ]]; then
    echo "== oneDNN GEMM floor, OMP_NUM_THREADS=$t" >&2
    OMP_NUM_THREADS="$t" "$BIN/gemm_floor" "${GBENCH_FLAGS[@]}" \
      --benchmark_out="$OUT/floor_t$t.json" >&2
  fi
  FLOORS+=(--floor "threads=$t=$OUT/floor_t$t.json")
done

PROBE_BEFORE="$(probe)"
echo "== $PROBE_BEFORE" >&2
# sequent at the CPU backend's default (all cores, or SEQUENT_NUM_THREADS), or at
# each count in SEQUENT_THREADS (e.g. "1 2"), keeping the best per row.
SEQS=()
if [[ -z "${SEQUENT_THREADS:-}" ]]; then
  if [[ -x "$BIN/sequent_bench" ]]; then
    echo "== sequent (threads: ${SEQUENT_NUM_THREADS:-all $CORES cores})" >&2
    "$BIN/sequent_bench" "${GBENCH_FLAGS[@]}" --benchmark_out="$OUT/sequent.json" >&2
  fi
  SEQS+=(--sequent "threads=${SEQUENT_NUM_THREADS:-$CORES}=$OUT/sequent.json")
else
  for t in $SEQUENT_THREADS; do
    if [[ -x "$BIN/sequent_bench" ]]; then
      echo "== sequent, SEQUENT_NUM_THREADS=$t" >&2
      SEQUENT_NUM_THREADS="$t" "$BIN/sequent_bench" "${GBENCH_FLAGS[@]}" \
        --benchmark_out="$OUT/sequent_t$t.json" >&2
    fi
    SEQS+=(--sequent "threads=$t=$OUT/sequent_t$t.json")
  done
fi

PROBE_AFTER="$(probe)"
echo "== $PROBE_AFTER" >&2

# The MLP b128 step and its floor alternated for PAIRED_SECONDS (default 60):
# the table's floor fractions pair medians taken a minute or more apart, and
# the host's phase can flip in between (bench/README.md, tenth session).
PAIRED=""
if [[ "${PAIRED_SECONDS:-60}" != 0 && -x "$BIN/sequent_bench" && -x "$BIN/gemm_floor" \
      && -x "$BIN/handover_probe" ]]; then
  echo "== MLP b128 and its floor, alternated for ${PAIRED_SECONDS:-60} s" >&2
  PAIRED="$(BIN="$BIN" POOLED=0 bash bench/phase_compare.sh "${PAIRED_SECONDS:-60}" 2>&1 \
            | sed -n '/^MLP b128 step/,$p')"
fi

PEER_ARGS=()
if [[ "${PEERS:-}" != "none" ]]; then
  [[ -n "${PEERS:-}" ]] && PEER_ARGS+=(--only "$PEERS")
  echo "== peers (bench/peers.py)" >&2
  python3 bench/peers.py "${PEER_ARGS[@]}" --min-time "$(python3 -c "print(min($MIN_TIME, 0.3))")" \
    --repetitions "$REPS" --json "$OUT/peers.json" || echo "peers.py failed" >&2
fi

echo >&2
echo "== results ($OUT)" >&2
echo "host phase before sequent's runs: $PROBE_BEFORE"
echo "host phase after sequent's runs:  $PROBE_AFTER"
python3 bench/report.py "${SEQS[@]}" "${FLOORS[@]}" \
  $([[ "${PEERS:-}" != "none" ]] && echo --peers "$OUT/peers.json")
if [[ -n "$PAIRED" ]]; then
  echo
  echo "$PAIRED" | sed '1s/^/paired, sequent at the default threads: /'
fi
