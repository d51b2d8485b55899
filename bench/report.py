#!/usr/bin/env python3
"""Prints bench/run_all.sh's one table from the benchmarks' JSON files.

  report.py --sequent sequent.json --floor floor_t1.json [--floor floor_tN.json ...]
            --peers peers.json

Every input is optional: whatever is missing or failed prints as n/a, with the
reason under the table. Google Benchmark files: the median aggregate of each
benchmark (or its only run), counter samples_per_s. Several --floor files (one
per thread count) keep the fastest per workload: the floor is the best time the
bare primitives reach.
"""

import argparse
import json
import os

SKLEARN_EPOCH_SAMPLES = 48000

# Workload key -> (Google Benchmark name, label in the table).
WORKLOADS = [
    ("mlp_train_b32", "BM_MlpTrain/32", "MLP train b32"),
    ("mlp_train_b128", "BM_MlpTrain/128", "MLP train b128"),
    ("mlp_train_b512", "BM_MlpTrain/512", "MLP train b512"),
    ("cnn_train_b64", "BM_CnnTrain/64", "CNN train b64"),
    ("predict_b1", "BM_MlpPredict/1", "MLP predict b1"),
    ("predict_b1024", "BM_MlpPredict/1024", "MLP predict b1024"),
    ("sklearn_b200", "BM_SklearnStep/200", "(5,5,5) train b200"),
]


def load_gbench(path, notes, what):
    """{benchmark name: samples/s} and {benchmark name: error} from one file."""
    values, errors = {}, {}
    if not path:
        return values, errors
    if not os.path.exists(path):
        notes.append(f"{what}: no results ({path} missing: build or run failed)")
        return values, errors
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        notes.append(f"{what}: unreadable results {path}: {e}")
        return values, errors
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b.get("name", "")).replace("/real_time", "")
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
            continue
        if "samples_per_s" not in b:
            continue
        is_median = b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"
        if is_median or (b.get("run_type") != "aggregate" and name not in values):
            values[name] = b["samples_per_s"]
    return values, errors


def fmt_rate(v):
    if v is None:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequent", action="append", default=[],
                        help="[LABEL=]PATH; several (one per thread setting) keep the best")
    parser.add_argument("--floor", action="append", default=[],
                        help="LABEL=PATH (label names the thread setting)")
    parser.add_argument("--peers")
    args = parser.parse_args()
    notes = []

    seq, seq_err, seq_cfg = {}, {}, {}
    for spec in args.sequent:
        label, _, path = spec.rpartition("=")
        vals, errs = load_gbench(path, notes, f"sequent ({label or 'default threads'})")
        for name, v in vals.items():
            if v > seq.get(name, 0):
                seq[name], seq_cfg[name] = v, label or "default threads"
        for name, e in errs.items():
            seq_err.setdefault(name, e)
    floor, floor_cfg = {}, {}
    for spec in args.floor:
        label, _, path = spec.rpartition("=")
        vals, errs = load_gbench(path, notes, f"floor ({label or path})")
        for name, v in vals.items():
            if v > floor.get(name, 0):
                floor[name], floor_cfg[name] = v, label
        for name, e in errs.items():
            notes.append(f"floor {name} ({label}): {e}")

    peers = {}
    if args.peers and os.path.exists(args.peers):
        with open(args.peers) as f:
            peers = json.load(f).get("peers", {})
        for peer, entry in peers.items():
            for e in entry.get("errors", []):
                notes.append(f"{peer}: {e}")
    elif args.peers:
        notes.append(f"peers: no results ({args.peers} missing: peers.py failed)")

    def best_of(names, key):
        """The fastest of several peers for one workload: (samples/s, 'peer config')."""
        best = (None, "")
        for peer in names:
            r = peers.get(peer, {}).get("best", {}).get(key)
            if r and (best[0] is None or r["samples_per_s"] > best[0]):
                best = (r["samples_per_s"], f"{peer} {r['config']}")
        return best

    header = ["workload", "sequent", "PyTorch", "Keras", "sklearn", "floor", "seq/PyTorch",
              "seq/Keras", "seq/sklearn", "floor frac"]
    rows, configs = [], []
    for key, bench, label in WORKLOADS:
        s = seq.get(bench)
        if s is None and bench in seq_err:
            notes.append(f"sequent {label}: {seq_err[bench]}")
        pt, pt_cfg = best_of(["pytorch"], key)
        ke, ke_cfg = best_of(["keras-jax", "keras-torch"], key)
        sk, sk_cfg = best_of(["sklearn"], key)
        fl = floor.get(bench)
        rows.append([label, fmt_rate(s), fmt_rate(pt), fmt_rate(ke), fmt_rate(sk),
                     fmt_rate(fl), fmt_ratio(s, pt), fmt_ratio(s, ke), fmt_ratio(s, sk),
                     "n/a" if s is None or fl is None else f"{s / fl:.0%}"])
        configs.append(f"  {label:20s} sequent: {seq_cfg.get(bench, 'n/a')};  PyTorch: {pt_cfg or 'n/a'};  Keras: {ke_cfg or 'n/a'}"
                       + (f";  sklearn: {sk_cfg}" if sk_cfg else "")
                       + f";  floor: oneDNN {floor_cfg.get(bench, 'n/a')}")

    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    print("samples/s (median of repetitions); ratios > 1x: sequent faster;"
          " floor frac = floor time / sequent time")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print("\nbest configurations:")
    for c in configs:
        print(c)

    key, bench, label = WORKLOADS[-1]
    epoch = lambda v: "n/a" if v is None else f"{SKLEARN_EPOCH_SAMPLES / v:.3f} s"
    print(f"\n(5,5,5) epoch of {SKLEARN_EPOCH_SAMPLES} samples at batch 200: "
          f"sequent {epoch(seq.get(bench))}, sklearn {epoch(best_of(['sklearn'], key)[0])}, "
          f"PyTorch {epoch(best_of(['pytorch'], key)[0])}, "
          f"Keras {epoch(best_of(['keras-jax', 'keras-torch'], key)[0])}, "
          f"floor {epoch(floor.get(bench))}")
    if notes:
        print("\nnotes (n/a reasons):")
        for n in notes:
            print(f"  - {n}")


if __name__ == "__main__":
    main()
