#!/usr/bin/env python3
"""Our cpu backend against ONNX Runtime by CPU time and minimum latency.

    .venv/bin/python bench/model_cpu_time.py MODEL.onnx [--batch 1] [--runs 10000]
        [--core 1] [--build build]

On a shared machine the wall-clock medians of bench_model_peers.py move with
the load (a run that is descheduled counts in full). This measures what
descheduling does not touch: the minimum latency over the runs, and the
CPU time per run (ours: `perf stat -e task-clock` around `pattern-engine
bench-model`, less a one-run invocation for the load and plan; ONNX
Runtime: time.thread_time() around its runs, one intra-op thread, all
graph optimizations). Both pinned to one core. Needs perf."""
import argparse
import os
import re
import subprocess
import time

import numpy as np

from bench_model_peers import ROOT, ort_session


def ort_times(model, batch, runs):
    s, feed = ort_session(model, batch)
    for _ in range(max(1, runs // 10)):
        s.run(None, feed)
    t = np.empty(runs)
    c0 = time.thread_time()
    for k in range(runs):
        t0 = time.perf_counter_ns()
        s.run(None, feed)
        t[k] = time.perf_counter_ns() - t0
    return t.min() / 1e3, np.median(t) / 1e3, (time.thread_time() - c0) / runs * 1e6


def ours_times(exe, model, batch, runs, core):
    def one(iters, warm):
        r = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "taskset", "-c", str(core),
                            exe, "bench-model", model, "--batch", str(batch), "--iterations",
                            str(iters), "--warmup", str(warm)],
                           capture_output=True, text=True, check=True)
        return r.stdout, float(r.stderr.strip().splitlines()[-1].split(",")[0]) / 1e3
    out, cpu = one(runs, runs // 10)
    _, cpu0 = one(1, 0)
    mn = float(re.search(r"min ([0-9.]+)", out).group(1))
    md = float(re.search(r"median ([0-9.]+)", out).group(1))
    return mn, md, (cpu - cpu0) / (runs + runs // 10 - 1) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--core", type=int, default=1)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    os.sched_setaffinity(0, {a.core})
    o = ort_times(a.model, a.batch, a.runs)
    u = ours_times(os.path.join(a.build, "pattern-engine"), a.model, a.batch, a.runs, a.core)
    print(f"{os.path.basename(a.model)} batch {a.batch}, {a.runs} runs, core {a.core}")
    print(f"{'':6} {'min us':>10} {'median us':>10} {'cpu us/run':>11}")
    print(f"{'ours':6} {u[0]:10.1f} {u[1]:10.1f} {u[2]:11.1f}")
    print(f"{'ORT':6} {o[0]:10.1f} {o[1]:10.1f} {o[2]:11.1f}")
    print(f"x ORT: {o[0] / u[0]:.2f} by min latency, {o[2] / u[2]:.2f} by CPU time")


if __name__ == "__main__":
    main()
