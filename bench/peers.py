#!/usr/bin/env python3
"""The peers' side of bench/run_all.sh: the same workloads in PyTorch, Keras 3 and
scikit-learn, each under several thread configurations, keeping the best.

Every (framework, configuration) runs in its own child process, so thread pools,
environment variables and CPU affinity are set before the framework is imported
and no two configurations share a process. A configuration is:

  threads=1  affinity to one core, OMP/MKL/OpenBLAS = 1, torch intra-op 1, XLA's
             Eigen pool off: one thread does everything.
  threads=N  all N cores, the same pools sized N, torch inter-op 1 (one pool
             only, so nothing fights the intra-op threads for the cores).
PyTorch flushes denormals to zero in both (torch.set_flush_denormal), as sequent and
TensorFlow do by default.

Workloads (synthetic data: uniform features, uniform labels in [0, 10)):
  mlp_train_b{32,128,512}  784-512-512-10 ReLU, sparse CE from logits, Adam
  cnn_train_b64            28x28x1 conv3x3(32)-pool2-conv3x3(64)-pool2-dense128-dense10
  predict_b{1,1024}        the MLP's forward pass (logits), no gradient
  sklearn_b200             784-5-5-5-10 ReLU, Adam, batch 200; scikit-learn times
                           whole partial_fit epochs of 48000 samples

Timing: warm-up, then `--repetitions` timed runs of about `--min-time` seconds
each; the median per-step time is reported as samples/s.

Usage: python3 bench/peers.py [--json out.json] [--only torch,keras-jax,...]
Prints a human summary on stderr and, with --json, writes the results.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = [
    "mlp_train_b32",
    "mlp_train_b128",
    "mlp_train_b512",
    "cnn_train_b64",
    "predict_b1",
    "predict_b1024",
    "sklearn_b200",
]

SKLEARN_EPOCH_SAMPLES = 48000  # 60000 * 0.8, the seed's training split.

# Peers: name -> (child kind, Keras backend or None).
PEERS = {
    "pytorch": ("torch", None),
    "keras-jax": ("keras", "jax"),
    "keras-torch": ("keras", "torch"),
    "sklearn": ("sklearn", None),
}


def workload_spec(name):
    """(model kind, phase, batch) for a workload name."""
    if name.startswith("mlp_train_b"):
        return "mlp", "train", int(name[len("mlp_train_b"):])
    if name.startswith("cnn_train_b"):
        return "cnn", "train", int(name[len("cnn_train_b"):])
    if name.startswith("predict_b"):
        return "mlp", "predict", int(name[len("predict_b"):])
    if name.startswith("sklearn_b"):
        return "tiny", "train", int(name[len("sklearn_b"):])
    raise ValueError(name)


def time_steps(step, min_time, repetitions, warmup=3):
    """Median seconds per call of step() over `repetitions` runs of ~min_time s."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    calls = 0
    while True:
        step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed > 0.05 or calls >= 1000:
            break
    per_call = elapsed / calls
    n = max(1, int(min_time / per_call))
    times = []
    for _ in range(repetitions):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def synthetic(np, kind, batch, rows=None):
    rng = np.random.default_rng(7)
    rows = rows or batch
    shape = (rows, 28, 28, 1) if kind == "cnn" else (rows, 784)
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, size=rows).astype(np.int64)
    return x, y


# ----------------------------------------------------------------------------
# Children: one framework, one thread configuration, every workload.


def child_torch(args, results):
    import numpy as np
    import torch
    from torch import nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    # Denormals flushed to zero, as sequent and TensorFlow do by default: near
    # zero (a memorized batch's gradients, Adam's decaying moments) it is faster.
    torch.set_flush_denormal(True)

    def model_for(kind):
        if kind == "mlp":
            return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512),
                                 nn.ReLU(), nn.Linear(512, 10))
        if kind == "tiny":
            return nn.Sequential(nn.Linear(784, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(),
                                 nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 10))
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))

    def adam(params):
        # The fused CPU Adam kernel is the fastest PyTorch offers; older builds lack it.
        try:
            return torch.optim.Adam(params, lr=1e-3, fused=True), "fused Adam"
        except (RuntimeError, TypeError):
            return torch.optim.Adam(params, lr=1e-3, foreach=True), "foreach Adam"

    for name in args.workloads:
        kind, phase, batch = workload_spec(name)
        model = model_for(kind)
        x, y = synthetic(np, kind, batch)
        if kind == "cnn":
            x = x.transpose(0, 3, 1, 2).copy()  # PyTorch convolutions are NCHW.
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        note = ""
        if phase == "train":
            opt, note = adam(model.parameters())

            def step():
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xt), yt).backward()
                opt.step()
        else:
            model.eval()

            def step():
                with torch.inference_mode():
                    model(xt)

        sec = time_steps(step, args.min_time, args.repetitions)
        results[name] = {"step_s": sec, "samples_per_s": batch / sec, "note": note}


def child_keras(args, results):
    import numpy as np
    import keras
    from keras import layers

    def model_for(kind):
        if kind == "mlp":
            body = [keras.Input((784,)), layers.Dense(512, activation="relu"),
                    layers.Dense(512, activation="relu"), layers.Dense(10)]
        elif kind == "tiny":
            body = [keras.Input((784,)), layers.Dense(5, activation="relu"),
                    layers.Dense(5, activation="relu"), layers.Dense(5, activation="relu"),
                    layers.Dense(10)]
        else:
            body = [keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                    layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"),
                    layers.MaxPooling2D(2), layers.Flatten(),
                    layers.Dense(128, activation="relu"), layers.Dense(10)]
        model = keras.Sequential(body)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    for name in args.workloads:
        kind, phase, batch = workload_spec(name)
        model = model_for(kind)
        if phase == "train":
            # fit() over an in-memory array is Keras's fast path (one compiled train
            # function, data staged per epoch). Epochs of `steps` batches are timed
            # and divided by `steps`, so the per-epoch setup is amortized as in a
            # real run.
            probe_x, probe_y = synthetic(np, kind, batch, rows=batch * 10)
            model.fit(probe_x, probe_y, batch_size=batch, epochs=1, verbose=0,
                      shuffle=False)  # Compiles.
            t0 = time.perf_counter()
            model.fit(probe_x, probe_y, batch_size=batch, epochs=1, verbose=0,
                      shuffle=False)
            per_step = (time.perf_counter() - t0) / 10
            steps = int(min(max(10, args.min_time / per_step), 100000 // batch + 1))
            x, y = synthetic(np, kind, batch, rows=batch * steps)
            times = []
            for _ in range(args.repetitions):
                t0 = time.perf_counter()
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
                times.append((time.perf_counter() - t0) / steps)
            sec = statistics.median(times)
            note = f"fit, {steps} steps/epoch"
        else:
            x, _ = synthetic(np, kind, batch)

            def step():
                model.predict_on_batch(x)

            sec = time_steps(step, args.min_time, args.repetitions)
            note = "predict_on_batch"
        results[name] = {"step_s": sec, "samples_per_s": batch / sec, "note": note}


def child_sklearn(args, results):
    import warnings
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    for name in args.workloads:
        kind, phase, batch = workload_spec(name)
        if kind != "tiny":
            continue
        x, y = synthetic(np, kind, batch, rows=SKLEARN_EPOCH_SAMPLES)
        clf = MLPClassifier(hidden_layer_sizes=(5, 5, 5), solver="adam", batch_size=batch,
                            learning_rate_init=1e-3, random_state=0)
        classes = np.arange(10)
        clf.partial_fit(x, y, classes=classes)  # Warm-up epoch: allocates everything.
        times = []
        for _ in range(args.repetitions):
            t0 = time.perf_counter()
            clf.partial_fit(x, y)
            times.append(time.perf_counter() - t0)
        epoch = statistics.median(times)
        steps = -(-SKLEARN_EPOCH_SAMPLES // batch)
        results[name] = {
            "step_s": epoch / steps,
            "samples_per_s": SKLEARN_EPOCH_SAMPLES / epoch,
            "epoch_s": epoch,
            "note": "partial_fit epochs of 48000",
        }


def run_child(args):
    results = {}
    try:
        {"torch": child_torch, "keras": child_keras, "sklearn": child_sklearn}[args.child](
            args, results)
    except Exception as e:  # Reported, not raised: the parent prints n/a and why.
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "results": results}))
        return
    print(json.dumps({"results": results}))


# ----------------------------------------------------------------------------
# Parent: runs every configuration in a fresh process and keeps the best.


def config_env(threads, backend):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        if threads == 1:
            env["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false "
                                "intra_op_parallelism_threads=1")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--only", help="comma-separated peers: " + ",".join(PEERS))
    parser.add_argument("--threads", default=None,
                        help="comma-separated thread counts to try (default: 1,all)")
    parser.add_argument("--min-time", type=float, default=0.3)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds one configuration may take")
    args = parser.parse_args()
    args.workloads = args.workloads.split(",")
    if args.child:
        args.threads = int(args.threads)
        if args.threads == 1:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        run_child(args)
        return

    cores = len(os.sched_getaffinity(0))
    thread_counts = ([int(t) for t in args.threads.split(",")] if args.threads
                     else sorted({1, cores}))
    peers = args.only.split(",") if args.only else list(PEERS)
    out = {"cores": cores, "peers": {}}
    for peer in peers:
        kind, backend = PEERS[peer]
        entry = {"configs": {}, "best": {}, "errors": []}
        out["peers"][peer] = entry
        workloads = [w for w in args.workloads if kind != "sklearn" or w.startswith("sklearn")]
        for threads in thread_counts:
            config = f"threads={threads}"
            cmd = [sys.executable, os.path.abspath(__file__), "--child", kind,
                   "--threads", str(threads), "--min-time", str(args.min_time),
                   "--repetitions", str(args.repetitions), "--workloads", ",".join(workloads)]
            print(f"[peers] {peer} {config} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, env=config_env(threads, backend),
                                      capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                entry["errors"].append(f"{config}: timed out after {args.timeout:.0f} s")
                continue
            lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
            if not lines:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                entry["errors"].append(f"{config}: exit {proc.returncode}: {tail}")
                continue
            child = json.loads(lines[-1])
            if "error" in child:
                entry["errors"].append(f"{config}: {child['error']}")
            entry["configs"][config] = child["results"]
            for name, r in child["results"].items():
                best = entry["best"].get(name)
                if best is None or r["samples_per_s"] > best["samples_per_s"]:
                    entry["best"][name] = dict(r, config=config)
            print(f"[peers] {peer} {config}: {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
        for name, r in entry["best"].items():
            print(f"[peers] {peer:12s} {name:15s} {r['samples_per_s']:12.0f} samples/s "
                  f"({r['config']}, {r['note']})", file=sys.stderr)
        for e in entry["errors"]:
            print(f"[peers] {peer}: {e}", file=sys.stderr)
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
