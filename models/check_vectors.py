#!/usr/bin/env python3
"""Checks the shipped models against their committed test vectors, without
PyTorch:

    python3 models/check_vectors.py [NAME ...]     # default: all four

For each models/NAME.onnx: the metadata_props the engine reads (pe.features,
pe.window, pe.classes, pe.output) and the input/output names and shapes; ONNX
Runtime's outputs on NAME.inputs.npy against NAME.outputs.npy (PyTorch's),
max |diff| <= TOLERANCE; and, when the engine binary and
../shared/data/real/binance_trades.csv are there, that the rows marked
`real` in NAME.vectors.json are exactly the windows the engine builds at
those ticks. Exit status 0 when all hold.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

import windows as W

MODELS = Path(__file__).resolve().parent
NAMES = ("toy_cnn", "toy_mlp", "pattern_cnn", "pattern_lstm")
TOLERANCE = 1e-5


def check(name: str) -> list:
    bad = []
    meta = json.loads((MODELS / f"{name}.vectors.json").read_text())
    x = np.load(MODELS / f"{name}.inputs.npy")
    y = np.load(MODELS / f"{name}.outputs.npy")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(MODELS / f"{name}.onnx"), so,
                                providers=["CPUExecutionProvider"])
    props = sess.get_modelmeta().custom_metadata_map
    want = {"pe.features": ",".join(meta["features"]), "pe.window": str(W.WINDOW),
            "pe.classes": ",".join(meta["classes"]), "pe.output": "logits"}
    for k, v in want.items():
        if props.get(k) != v:
            bad.append(f"{name}: metadata {k} = {props.get(k)!r}, want {v!r}")
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    if inp.name != "input" or out.name != "output":
        bad.append(f"{name}: names {inp.name}/{out.name}")
    if inp.shape[1:] != [len(meta["features"]), W.WINDOW] or isinstance(inp.shape[0], int):
        bad.append(f"{name}: input shape {inp.shape}")
    if x.dtype != np.float32 or y.dtype != np.float32 or list(x.shape) != meta["shape"]:
        bad.append(f"{name}: vectors {x.dtype} {x.shape}, {y.dtype} {y.shape}")
    got = sess.run(["output"], {"input": x})[0]
    diff = float(np.max(np.abs(got - y)))
    print(f"{name}: {len(x)} vectors, max |ORT - PyTorch| = {diff:.3g}")
    if not diff <= TOLERANCE:
        bad.append(f"{name}: max diff {diff} > {TOLERANCE}")
    for part in meta["rows"]:
        if part["source"] != "real":
            continue
        try:
            W.engine_binary()
        except FileNotFoundError as exc:
            print(f"  real rows not re-derived: {exc}")
            continue
        if not W.REAL_TRADES.is_file():
            print(f"  real rows not re-derived: {W.REAL_TRADES} absent")
            continue
        df = W.engine_features(W.REAL_TRADES)
        win = W.cut_windows(df, meta["features"])
        at = {(s, int(p)): i for i, (s, p) in enumerate(zip(win.symbol, win.pos))}
        idx = [at[(d["symbol"], d["pos"])] for d in part["windows"]]
        same = np.array_equal(win.x[idx], x[part["start"]:part["stop"]])
        print(f"  {len(idx)} real rows equal the engine's windows: {same}")
        if not same:
            bad.append(f"{name}: real rows differ from the engine's windows")
    return bad


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or NAMES
    bad = [b for n in names for b in check(n)]
    for b in bad:
        print("FAIL", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
