#!/usr/bin/env python3
"""Two or more builds side by side in one run, on the same machine: the
feature core (bench/feature_core, every ISA path it has) and `bench-model`
on the shipped models at batch 1 and 256. Each measurement runs on every
build back to back, the order reversed every other round, for R rounds, so
that all see the same machine weather and none always runs second; each
figure is the median of the rounds, and each build after the first is given
as a ratio to the first (above 1: faster). Replay has its own: bench/run_replay.sh.

    bench/run_builds.py OLD_BUILD NEW_BUILD [...] [--ticks N] [--rounds R]
        [--cpu C] [--models a.onnx,b.onnx] [--batches 1,256]

A BUILD is a CMake build folder (pattern-engine and bench/feature_core in
it) or any folder holding those two files. The synthetic ticks come from
bench/feature_core_peers.py --write-bin (numpy).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ["toy_mlp", "toy_cnn", "pattern_cnn", "pattern_lstm"]


def binaries(build):
    engine = os.path.join(build, "pattern-engine")
    for core in (os.path.join(build, "bench", "feature_core"), os.path.join(build, "feature_core")):
        if os.path.exists(core):
            break
    else:
        sys.exit(f"run_builds: no feature_core under {build}")
    if not os.path.exists(engine):
        sys.exit(f"run_builds: no pattern-engine in {build}")
    return engine, core


def pinned(cpu, argv):
    if cpu is not None and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)] + argv
    return argv


def run(argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"run_builds: {' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def core_figures(core, ticks, cpu):
    out = json.loads(run(pinned(cpu, [core, ticks, "--repeat", "3"])))
    figs = {"core: columns, default path": out["columns_ns_per_tick"],
            "core: pe/state.h structs": out["ns_per_tick"]}
    for isa, v in out.get("isa", {}).items():
        figs[f"core: columns, {isa}"] = v["ns_per_tick"]
    return figs, out.get("columns_checksums")


def model_figures(engine, models, batches, cpu):
    figs = {}
    for model in models:
        for b in batches:
            text = run(pinned(cpu, [engine, "bench-model", model, "--batch", str(b)]))
            m = re.search(r"latency per window \(us\): median ([0-9.]+)", text)
            if not m:
                sys.exit(f"run_builds: no median in bench-model's output:\n{text}")
            name = os.path.splitext(os.path.basename(model))[0]
            figs[f"model: {name}, batch {b}"] = float(m.group(1)) * 1000.0
    return figs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--ticks", type=int, default=20_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--models", default=",".join(os.path.join(ROOT, "models", m + ".onnx")
                                                for m in MODELS))
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    if len(a.builds) < 2:
        sys.exit("run_builds: give at least two builds")
    bins = [binaries(b) for b in a.builds]
    models = a.models.split(",")
    batches = [int(x) for x in a.batches.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        ticks = os.path.join(tmp, "ticks.petk")
        run([a.python, os.path.join(HERE, "feature_core_peers.py"), "--n", str(a.ticks),
             "--peers", "none", "--write-bin", ticks])
        rounds = [[] for _ in bins]
        sums = [None for _ in bins]
        for r in range(a.rounds):
            # Each measurement runs on every build back to back, the order
            # reversed every other round: a build is not always the one
            # that runs after the other.
            order = list(range(len(bins)))
            if r % 2:
                order.reverse()
            figs = [{} for _ in bins]
            for i in order:
                figs[i], sums[i] = core_figures(bins[i][1], ticks, a.cpu)
            for model in models:
                for b in batches:
                    for i in order:
                        figs[i].update(model_figures(bins[i][0], [model], [b], a.cpu))
            for i in range(len(bins)):
                rounds[i].append(figs[i])
            print(f"round {r + 1} of {a.rounds} done", file=sys.stderr)
    names = [k for k in rounds[0][0] if all(k in rs[0] for rs in rounds)]
    med = [{k: statistics.median(f[k] for f in rs) for k in names} for rs in rounds]
    print(f"ns per tick (core) or per window (model), median of {a.rounds} rounds, "
          f"{a.ticks} ticks over 500 symbols, core {a.cpu}")
    head = f"{'figure':<34}" + "".join(f"{'build ' + str(i):>12}" for i in range(len(bins)))
    head += "".join(f"{'0/' + str(i):>8}" for i in range(1, len(bins)))
    print(head)
    for k in names:
        row = f"{k:<34}" + "".join(f"{m[k]:12.2f}" for m in med)
        row += "".join(f"{med[0][k] / m[k]:8.3f}" for m in med[1:])
        print(row)
    for i, b in enumerate(a.builds):
        print(f"build {i}: {b}")
    same = all(s == sums[0] for s in sums)
    print(f"feature-core checksums equal across builds: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
