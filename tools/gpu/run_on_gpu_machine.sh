#!/usr/bin/env bash
# Builds the CUDA tests and benchmark here (no GPU needed) and packages them,
# with the shared libraries a GPU machine may lack, into one folder to carry:
#
#   tools/gpu/run_on_gpu_machine.sh [FOLDER]     # default: bazel-gpu-bundle
#
# FOLDER holds bin/ (cuda_smoke_test, cuda_backend_test, cuda_bench,
# fashion_mnist_mlp), lib.tar.gz (lib/: every library ldd resolves outside
# /usr/local/cuda and glibc/libstdc++ — the build's own solibs, oneDNN, Abseil,
# fmt, gtest, libgomp, ... — and lib/cuda-fallback/ with libcudart and
# libcudnn's loader, used only when the machine has neither; packed because
# oneDNN alone is 38 MB and the carry limit is 64 MiB), data/fashion-mnist/
# (Debian's four IDX files, for the 5-epoch accuracy check), torch_mlp_bench.py
# and run_there.sh. On the GPU machine, from the repository root:
#
#   bash bazel-gpu-bundle/run_there.sh
#
# With the device tool: run(command="bash bazel-gpu-bundle/run_there.sh",
# carry=["bazel-gpu-bundle"]) — the default name matches .gitignore's /bazel-*,
# so the folder travels only through `carry` (64 MiB at most; the script
# prints the size).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
OUT="${1:-bazel-gpu-bundle}"
TARGETS=(//tests/backends/cuda:cuda_smoke_test //tests/backends/cuda:cuda_backend_test
         //tools/gpu:cuda_bench //examples:fashion_mnist_mlp)
BINARIES=(tests/backends/cuda/cuda_smoke_test tests/backends/cuda/cuda_backend_test
          tools/gpu/cuda_bench examples/fashion_mnist_mlp)

bazel build --config=cuda "${TARGETS[@]}"
BIN="$(bazel info --config=cuda bazel-bin 2>/dev/null)"

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib/cuda-fallback"
for b in "${BINARIES[@]}"; do
  cp -L "$BIN/$b" "$OUT/bin/"
  chmod u+w "$OUT/bin/$(basename "$b")"
  strip --strip-debug "$OUT/bin/$(basename "$b")"
done

# The GPU machine is newer (glibc 2.39): its own glibc, libstdc++ and libgcc_s
# serve; CUDA comes from its toolkit or its PyTorch wheels.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libstdc\+\+\.so|libgcc_s\.so)'
for b in "${BINARIES[@]}"; do
  ldd "$BIN/$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ "$name" =~ $skip ]]; then continue; fi
  if [[ "$path" == /usr/local/cuda* ]]; then continue; fi
  cp -L "$path" "$OUT/lib/$name"
  chmod u+w "$OUT/lib/$name"
  strip --strip-debug "$OUT/lib/$name" 2>/dev/null || true
done
for f in libcudart.so.13 libcudnn.so.9; do
  cp -L "/usr/local/cuda/lib64/$f" "$OUT/lib/cuda-fallback/$f"
done
tar -C "$OUT" -czf "$OUT/lib.tar.gz" lib
rm -rf "$OUT/lib"
mkdir -p "$OUT/data/fashion-mnist"
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz "$OUT/data/fashion-mnist/"
cp tools/gpu/run_there.sh tools/gpu/torch_mlp_bench.py "$OUT/"
chmod +x "$OUT/run_there.sh"

echo "bundle: $OUT ($(du -sh "$OUT" | cut -f1)); on the GPU machine: bash $OUT/run_there.sh"
