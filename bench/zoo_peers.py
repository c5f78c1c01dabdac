#!/usr/bin/env python3
"""The zoo's models as PyTorch users export them: our cpu backend against
ONNX Runtime and PyTorch, each on one core, in one run.

    PYTHON_WITH_TORCH bench/zoo_peers.py [--build build] [--core 1]
        [--batches 1,256] [--families transformer64,deeplob_full]
        [--exporters default,legacy17]

For each family of models/zoo.py (by default the large Transformer encoder,
d_model 64 over 64 ticks, and DeepLOB at the paper's widths) the module is
built with the zoo's seed and exported with each exporter into a temporary
folder. Then, at each batch size, on the same core:
  - ours:  `pattern-engine bench-model MODEL --batch B` (median latency,
           throughput);
  - ONNX Runtime: one intra-op and one inter-op thread, sequential, every
           graph optimisation, on the same .onnx file;
  - PyTorch: the same module, eager, torch.inference_mode(),
           torch.set_num_threads(1).
Ratios are our throughput over the peer's; GFLOP/s is ours, from the
plan's FLOP count (`pattern-engine inspect`). A model the engine refuses is
reported with its message and the peers still run.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(ROOT / "bench"))

import bench_model_peers as peers  # noqa: E402


def torch_bench(module, shape, batch, flops):
    import torch
    torch.set_num_threads(1)
    x = torch.rand([batch] + list(shape)) * 2 - 1
    with torch.inference_mode():
        return peers.timed(lambda: module(x), batch, flops)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--core", type=int, default=1)
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--families", default="transformer64,deeplob_full")
    ap.add_argument("--exporters", default="default,legacy17")
    a = ap.parse_args()
    import torch
    import zoo

    os.sched_setaffinity(0, {a.core})
    exe = os.path.join(a.build, "pattern-engine")
    batches = [int(b) for b in a.batches.split(",")]
    wanted = a.families.split(",")
    fams = [f for f in zoo.families("all") if f.name in wanted]
    missing = set(wanted) - {f.name for f in fams}
    if missing:
        print(f"zoo_peers: no such zoo family: {', '.join(sorted(missing))}",
              file=sys.stderr)
        return 2
    print(f"{'model':<28} {'batch':>5} | {'ours us':>9} {'win/s':>10} "
          f"{'GFLOP/s':>7} | {'ORT us':>9} {'x ORT':>6} | {'torch us':>9} "
          f"{'x torch':>7}")
    with tempfile.TemporaryDirectory(prefix="pe-zoo-peers-") as tmp:
        for fam in fams:
            torch.manual_seed(0)
            module = fam.build().eval()
            for exporter in a.exporters.split(","):
                path = Path(tmp) / f"{fam.name}.{exporter}.onnx"
                with zoo.quiet([]):
                    zoo.export(module, fam, exporter, path)
                zoo.add_metadata(path, fam)
                flops = peers.model_flops(exe, str(path))
                for batch in batches:
                    name = f"{fam.name}.{exporter}"
                    try:
                        med, tput, _ = peers.ours(exe, str(path), batch,
                                                  a.core, "auto")
                        ours = f"{med:9.1f} {tput:10.0f} {flops * tput / 1e9:7.1f}"
                    except subprocess.CalledProcessError as e:
                        msg = (e.stderr or "").strip().splitlines()
                        ours = "refused: " + (msg[-1] if msg else "?")[-60:]
                        tput = 0.0
                    o_med, o_tput = peers.ort_bench(str(path), batch, flops)
                    t_med, t_tput = torch_bench(module, fam.shape, batch, flops)
                    x_ort = f"{tput / o_tput:6.2f}" if tput else "     -"
                    x_torch = f"{tput / t_tput:7.2f}" if tput else "      -"
                    print(f"{name:<28} {batch:>5} | {ours} | {o_med:9.1f} "
                          f"{x_ort} | {t_med:9.1f} {x_torch}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
