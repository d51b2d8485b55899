"""System libraries (Debian packages) as Bazel repositories.

Downstream workspaces call sequent_system_deps(sequent_path) after declaring @sequent, so they
see the same targets sequent was built against.
"""

_LIBS = ["absl", "fmt", "dnnl", "gtest", "benchmark", "zlib"]

def sequent_system_deps(sequent_repo = "@sequent"):
    """Declares @absl, @fmt, @dnnl, @gtest, @benchmark, @zlib over /usr and @cuda."""
    for lib in _LIBS:
        if lib not in native.existing_rules():
            native.new_local_repository(
                name = lib,
                path = "/usr",
                build_file = "%s//third_party/system:%s.BUILD" % (sequent_repo, lib),
            )
    if "cuda" not in native.existing_rules():
        native.new_local_repository(
            name = "cuda",
            path = "/usr/local/cuda",
            build_file = "%s//third_party/system:cuda.BUILD" % sequent_repo,
        )
