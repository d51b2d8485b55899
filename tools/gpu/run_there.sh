#!/usr/bin/env bash
# Runs on the GPU machine, from a bundle made by tools/gpu/run_on_gpu_machine.sh:
# every gpu test binary, the sequent benchmark and the PyTorch eager baseline,
# Fashion-MNIST's 5-epoch MLP on the GPU and on the CPU from the same seed, then
# one table. Exit status: 0 when every test passed and nothing failed to run.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
LOGS="${OUT:-$HERE}/logs"
mkdir -p "$LOGS"
[ -d "$HERE/lib" ] || tar -C "$HERE" -xzf "$HERE/lib.tar.gz"

# CUDA libraries: the toolkit when present, then the PyTorch wheels' nvidia/*/lib,
# then our fallback copies (cudart, cudnn's loader) last.
cuda_dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && cuda_dirs="$cuda_dirs:$d"
done
wheel_dirs="$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "cu13", "lib")))
print(":".join(dict.fromkeys(dirs)))
PY
)"
LIBS="$HERE/lib$cuda_dirs${wheel_dirs:+:$wheel_dirs}:$HERE/lib/cuda-fallback"

echo "== machine"
nvidia-smi -L 2>&1 | head -4
echo "LD_LIBRARY_PATH for our binaries: $LIBS"
status=0
for b in "$HERE"/bin/*; do
  missing="$(LD_LIBRARY_PATH="$LIBS" ldd "$b" | grep 'not found' || true)"
  if [ -n "$missing" ]; then
    echo "!! $(basename "$b") is missing libraries:"; echo "$missing"; status=1
  fi
done

rows=()
for t in cuda_smoke_test cuda_backend_test; do
  echo "== $t"
  LD_LIBRARY_PATH="$LIBS" timeout 300 "$HERE/bin/$t" > "$LOGS/$t.log" 2>&1
  rc=$?
  tail -n 25 "$LOGS/$t.log"
  passed=$(grep -Eo '\[  PASSED  \] [0-9]+' "$LOGS/$t.log" | grep -Eo '[0-9]+$' || echo 0)
  skipped=$(grep -Eo '\[  SKIPPED \] [0-9]+' "$LOGS/$t.log" | grep -Eo '[0-9]+$' || echo 0)
  failed=$(grep -Eo '[0-9]+ FAILED TEST' "$LOGS/$t.log" | grep -Eo '^[0-9]+' || echo 0)
  [ "$rc" -ne 0 ] && status=1
  rows+=("$(printf '%-34s %-8s passed %-4s skipped %-4s failed %-4s rc %s' "$t" test "$passed" "$skipped" "$failed" "$rc")")
done

echo "== bench"
LD_LIBRARY_PATH="$LIBS" timeout 300 "$HERE/bin/cuda_bench" > "$LOGS/bench.log" 2>&1 || status=1
cat "$LOGS/bench.log"
timeout 300 python3 "$HERE/torch_mlp_bench.py" >> "$LOGS/bench.log" 2>&1 || echo "!! torch baseline failed"
tail -n 3 "$LOGS/bench.log"
while read -r _ name _ batch _ ms _ sps; do
  rows+=("$(printf '%-34s batch %-6s ms/step %-10s samples/s %s' "$name" "$batch" "$ms" "$sps")")
done < <(grep '^bench ' "$LOGS/bench.log")
# Issue 8's acceptance: the CNN train step at batch 256 >= 1.5x PyTorch eager.
cnn_speedup="$(awk '$1 == "bench" && $4 == 256 {
    if ($2 == "sequent_cuda_cnn_train_step") s = $6
    if ($2 == "torch_eager_cnn_train_step") t = $6 }
  END { if (s > 0 && t > 0) printf "%.2fx (torch ms / sequent ms)", t / s }' "$LOGS/bench.log")"
[ -n "$cnn_speedup" ] && rows+=("$(printf '%-34s batch %-6s %s' cnn_speedup_vs_torch 256 "$cnn_speedup")")
# Mixed precision: the MLP train step in bf16 against f32, per batch.
for b in 128 8192; do
  bf16_speedup="$(awk -v b="$b" '$1 == "bench" && $4 == b {
      if ($2 == "sequent_cuda_train_step") f = $6
      if ($2 == "sequent_cuda_bf16_train_step") h = $6 }
    END { if (f > 0 && h > 0) printf "%.2fx (f32 ms / bf16 ms)", f / h }' "$LOGS/bench.log")"
  [ -n "$bf16_speedup" ] && rows+=("$(printf '%-34s batch %-6s %s' mlp_bf16_speedup_vs_f32 "$b" "$bf16_speedup")")
done

# Issue 8's acceptance: the Fashion-MNIST MLP, 5 epochs on the GPU, reaches the
# CPU's accuracy (same seed, same data; the README's CPU run: ~89%).
for device in cuda cpu; do
  echo "== fashion_mnist_mlp --device=$device"
  LD_LIBRARY_PATH="$LIBS" timeout 300 "$HERE/bin/fashion_mnist_mlp" --device="$device" \
    --seed=0 --data="$HERE/data/fashion-mnist" > "$LOGS/fashion_$device.log" 2>&1 || status=1
  tail -n 3 "$LOGS/fashion_$device.log"
  accuracy="$(grep -Eo 'test accuracy: [0-9.]+' "$LOGS/fashion_$device.log" | grep -Eo '[0-9.]+$')"
  wall="$(grep -Eo 'wall time: [0-9.]+ s' "$LOGS/fashion_$device.log" | grep -Eo '[0-9.]+')"
  rows+=("$(printf '%-34s device %-6s test accuracy %-8s wall s %s' fashion_mnist_mlp_5_epochs "$device" "${accuracy:-n/a}" "${wall:-n/a}")")
done

echo
echo "== summary (logs: $LOGS)"
printf '%s\n' "${rows[@]}"
exit $status
