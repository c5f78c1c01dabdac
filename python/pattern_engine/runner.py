"""The prototype's command: replay a tick file and print its signals.

    python -m pattern_engine.runner --ticks FILE [--model-engine PATH]
        [--backend cpu|cuda] [--cuda-mode graph|persistent]
        [--precision fp32|tf32]

Replays FILE with per-symbol state through the rules and a model (an ONNX
file; the stub model when none is given) and prints the signals as
`pattern-engine replay` prints them: `runner --ticks F` matches `replay
--ticks F --backend stub`, and `runner --ticks F --model-engine M.onnx`
matches `replay --ticks F --model M.onnx`; `--backend cuda` runs the
model on the GPU as `replay --backend cuda` does (`--cuda-mode persistent`
for a resident kernel, `--precision tf32` for tensor cores). A TensorRT plan (.engine) is refused: TensorRT is
not in this build. Errors go to standard error with
exit status 1 (2 for a usage error).
"""

from __future__ import annotations

import argparse
import sys

from . import Engine, Error
from ._engine import format_signals
from ._pe import lib


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pattern_engine.runner",
                                 description="Replay a tick file and print its signals.")
    ap.add_argument("--ticks", required=True, metavar="FILE", help="tick CSV file")
    ap.add_argument("--model-engine", metavar="PATH",
                    help="ONNX model run on every ready window (default: the stub model)")
    ap.add_argument("--backend", choices=("cpu", "cuda"), default=None,
                    help="backend that runs --model-engine (default cpu)")
    ap.add_argument("--cuda-mode", choices=("graph", "persistent"), default=None,
                    help="with --backend cuda: CUDA graphs (default) or a resident "
                         "kernel for batch-1 latency")
    ap.add_argument("--precision", choices=("fp32", "tf32"), default=None,
                    help="with --backend cuda: the dense and Conv1d steps' "
                         "arithmetic, fp32 (default) or tf32 on tensor cores")
    ap.add_argument("--window", type=int, default=32, metavar="N",
                    help="the stub model's window length (default 32)")
    ap.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                    help="signal format (default csv)")
    ap.add_argument("--ts-unit", default="auto", metavar="UNIT",
                    help="epoch timestamp unit: auto, s, ms, us or ns")
    args = ap.parse_args(argv)
    if args.window < 1:
        ap.error("--window must be at least 1")
    if args.model_engine is None and (args.backend or args.cuda_mode
                                      or args.precision):
        ap.error("--backend, --cuda-mode and --precision need --model-engine")
    if args.cuda_mode is not None and args.backend != "cuda":
        ap.error("--cuda-mode needs --backend cuda")
    if args.precision is not None and args.backend != "cuda":
        ap.error("--precision needs --backend cuda")
    model = args.model_engine if args.model_engine is not None else "stub"
    try:
        with Engine(model=model, window=args.window, all_features=0,
                    backend=args.backend, cuda_mode=args.cuda_mode,
                    precision=args.precision) as engine:
            res = engine.replay_file(args.ticks, ts_unit_name=args.ts_unit)
            accepted = engine.stats()["ticks"]
        if accepted == 0:
            raise Error(lib.PE_ENODATA, f"{args.ticks}: no valid tick among its {res.c.rows} rows; "
                        "expected CSV lines ts,symbol,price,volume")
        text = format_signals(res.c.signals, res.c.n_signals, args.format)
    except Error as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        print(f"runner: cannot write the signals: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
