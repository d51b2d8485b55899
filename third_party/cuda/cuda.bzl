"""nvcc under Bazel 4.2.3 without rules_cuda: one genrule per .cu file, linked as a cc_library.

Targets made here exist only with --config=cuda; otherwise they are incompatible and
`bazel build //...` skips them, so a machine without CUDA never needs nvcc.
"""

NVCC = "/usr/local/cuda/bin/nvcc"

# sm_90 machine code for Hopper plus compute_90 PTX so newer GPUs can JIT it.
NVCC_ARCH = "-gencode arch=compute_90,code=[sm_90,compute_90]"

def cuda_only():
    """target_compatible_with value: compatible only under --config=cuda."""
    return select({
        "//:cuda_enabled": [],
        "//conditions:default": ["//third_party/cuda:incompatible"],
    })

def cuda_library(name, srcs, hdrs = [], deps = [], **kwargs):
    """Compiles .cu files with nvcc and wraps the objects in a cc_library."""
    objects = []
    for src in srcs:
        obj = name + "_" + src.replace("/", "_").replace(".cu", ".o")
        native.genrule(
            name = obj + "_nvcc",
            srcs = [src] + hdrs,
            outs = [obj],
            cmd = (NVCC + " -O3 -std=c++20 " + NVCC_ARCH +
                   " -Xcompiler -fPIC -I. -I$(GENDIR) -Iexternal/sequent" +
                   " -c $(location " + src + ") -o $@"),
            target_compatible_with = cuda_only(),
        )
        objects.append(obj)
    native.cc_library(
        name = name,
        srcs = objects,
        hdrs = hdrs,
        deps = deps + ["@cuda"],
        target_compatible_with = cuda_only(),
        **kwargs
    )
