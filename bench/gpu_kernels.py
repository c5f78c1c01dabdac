#!/usr/bin/env python3
"""Where a batch's GPU time goes, kernel by kernel, by Nsight Compute.

    python3 bench/gpu_kernels.py BINDIR MODEL.onnx [--batch 4096]
        [--precision fp32|tf32] [--codegen SETTING] [--ncu ncu]
    python3 bench/gpu_kernels.py --csv FILE     (a saved `ncu --csv` output)

Runs `ncu --csv --metrics gpu__time_duration.sum` over one
`pattern-engine bench-model MODEL --backend cuda --batch B --iterations 1
--warmup 1` (graph mode; ncu times each kernel of the graphs on its own,
serialised, so the sum is the kernels' time without overlap or launch
gaps) and prints, per kernel (its name and template arguments), its
launches, total and mean µs and share of the total, largest first. The
warm-up run and bench-model's phase series count too: the shares are
what matters. Needs a GPU and ncu on PATH (the GPU host has both); --csv
parses a file instead, with no GPU.
"""
import argparse
import collections
import csv
import io
import os
import subprocess
import sys

UNITS = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}


def short(name):
    """A kernel's name with its template arguments, without its return
    type and parameters."""
    name = name.strip()
    if name.startswith("void "):
        name = name[5:]
    depth = 0
    for i, ch in enumerate(name):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            return name[:i]
    return name


def parse(text):
    """{kernel: [launches, total µs]} from ncu's CSV of
    gpu__time_duration.sum; lines before the header (the program's own
    output, ncu's ==PROF== lines) are skipped."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines)
                  if ln.startswith('"ID"') and "Metric Value" in ln), None)
    if start is None:
        raise ValueError("no ncu CSV header in the output")
    out = collections.OrderedDict()
    for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = row.get("Metric Unit", "")
        if unit not in UNITS:
            raise ValueError("unknown unit %r" % unit)
        us = float(row["Metric Value"].replace(",", "")) * UNITS[unit]
        k = short(row["Kernel Name"])
        n, t = out.get(k, (0, 0.0))
        out[k] = (n + 1, t + us)
    if not out:
        raise ValueError("no gpu__time_duration.sum rows")
    return out


def report(kernels, title):
    total = sum(t for _, t in kernels.values())
    print(title)
    print("%-44s %8s %12s %10s %7s" % ("kernel", "launches", "total us",
                                       "mean us", "share"))
    for k, (n, t) in sorted(kernels.items(), key=lambda kv: -kv[1][1]):
        print("%-44s %8d %12.1f %10.2f %6.1f%%" % (k[:44], n, t, t / n,
                                                   100.0 * t / total))
    print("%-44s %8d %12.1f" % ("all", sum(n for n, _ in kernels.values()),
                                total))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bindir", nargs="?")
    ap.add_argument("model", nargs="?")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--codegen", default=None)
    ap.add_argument("--ncu", default="ncu")
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    if a.csv is not None:
        with open(a.csv) as f:
            report(parse(f.read()), a.csv)
        return 0
    if a.bindir is None or a.model is None:
        ap.error("BINDIR and MODEL, or --csv FILE")
    cmd = [a.ncu, "--csv", "--metrics", "gpu__time_duration.sum",
           os.path.join(a.bindir, "pattern-engine"), "bench-model", a.model,
           "--backend", "cuda", "--batch", str(a.batch), "--iterations", "1",
           "--warmup", "1", "--precision", a.precision]
    if a.codegen is not None:
        cmd += ["--cuda-codegen", a.codegen]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-2000:])
        print("FAIL: %s exited %d" % (" ".join(cmd), p.returncode))
        return 1
    report(parse(p.stdout), "%s, batch %d, %s%s" % (
        a.model, a.batch, a.precision,
        ", codegen " + a.codegen if a.codegen else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
