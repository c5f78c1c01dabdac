#!/usr/bin/env python3
"""Parity of the cpu backend with ONNX Runtime.

    tests/test_onnx_parity.py BUILD_DIR [MODEL.onnx ...]

For every test model (tests/models/*.onnx) and every shipped model
(models/*.onnx), with both kernel sets (auto = AVX2/FMA where the CPU has it,
and generic): 1000 random windows at the model's scale (max |diff| <= 1e-5),
200 wide ones (N(0, 8^2): <= 1e-5 relative to the largest output),
and, when ../shared/data/real/binance_trades.csv is there, 500 real windows
of its trades' features from `pattern-engine replay --features-out` (the
model's pe.features in channel order, else the standard features in turn). Both go through
`pattern-engine infer` and onnxruntime; max |diff| must be <= 1e-5.
Shipped models with committed test vectors (models/NAME.inputs.npy and
NAME.outputs.npy, the exporting framework's outputs) are checked against
those too.

Exit 77 with a SKIP line when onnxruntime or numpy are missing."""
import glob
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-5
KERNELS = ("auto", "avx2", "generic")  # auto is avx512 where the CPU has it
N_RANDOM = 1000


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_engine(exe, model, x, kernels, tmp):
    xin = os.path.join(tmp, "x.npy")
    yout = os.path.join(tmp, "y.npy")
    np.save(xin, x)
    r = subprocess.run([exe, "infer", model, "--input", xin, "--output", yout,
                        "--kernels", kernels], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"infer failed ({r.returncode}): {r.stderr.strip()}")
    return np.load(yout)


_real_cache = {}


def real_features(exe, tmp):
    """Standard features of the real trades, one row per accepted tick."""
    if "f" in _real_cache:
        return _real_cache["f"]
    csv = os.path.join(os.path.dirname(ROOT), "shared", "data", "real", "binance_trades.csv")
    if not os.path.exists(csv):
        csv = "/work/shared/data/real/binance_trades.csv"
    if not os.path.exists(csv):
        _real_cache["f"] = None
        return None
    out = os.path.join(tmp, "features.csv")
    r = subprocess.run([exe, "replay", "--ticks", csv, "--features-out", out, "--quiet",
                        "--out", os.devnull], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"note: replay failed, no real windows: {r.stderr.strip()}")
        _real_cache["f"] = None
        return None
    with open(out) as f:
        header = f.readline().strip().split(",")
    cols = header[9:]  # after ts,symbol,price,volume,ema_fast,ema_slow,vwap,mean,var
    data = np.genfromtxt(out, delimiter=",", skip_header=1,
                         usecols=range(9, 9 + len(cols)), max_rows=20000)
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    _real_cache["f"] = (cols, data)
    return _real_cache["f"]


def real_windows(real, shape, names, count=500):
    """Windows of the real trades' features: the model's declared features
    (pe.features) in channel order, else the standard ones in turn."""
    if real is None:
        return None
    cols, feats = real
    per = int(np.prod(shape))
    if feats.shape[0] < 64:
        return None
    pick = [cols.index(n) for n in names] if names and all(n in cols for n in names) else None
    c, w = (shape[0], int(np.prod(shape[1:]))) if len(shape) >= 2 else (1, shape[0])
    starts = np.linspace(0, feats.shape[0] - w - 1, count).astype(int)
    x = np.empty((count, c, w), dtype=np.float32)
    for i, s in enumerate(starts):
        for ch in range(c):
            col = pick[ch % len(pick)] if pick else ch % feats.shape[1]
            x[i, ch] = feats[s:s + w, col]
    return x.reshape((count,) + tuple(shape)) if per == c * w else None


def check_model(exe, path, tmp):
    sess = session(path)
    inp = sess.get_inputs()[0]
    shape = [int(d) for d in inp.shape[1:]]
    rng = np.random.default_rng(7)
    # Random windows at the scale the model was trained for: per channel
    # mean + std * N(0, 1) from the exporter's committed inputs when there
    # are any, else N(0, 1).
    mean, std = 0.0, 1.0
    vin = path[:-5] + ".inputs.npy"
    if os.path.exists(vin):
        v = np.load(vin).astype(np.float64)
        mean, std = v.mean(axis=(0, 2), keepdims=True)[0], v.std(axis=(0, 2), keepdims=True)[0]
    x = (mean + std * rng.standard_normal((N_RANDOM,) + tuple(shape))).astype(np.float32)
    # Wide windows, N(0, 8^2) on every channel: logits reach 100 where one
    # float32 ulp is 8e-6, so these are held to 1e-5 relative to max |output|.
    wide = (8.0 * rng.standard_normal((200,) + tuple(shape))).astype(np.float32)
    sets = [("random", x, False), ("wide", wide, True)]
    meta = sess.get_modelmeta().custom_metadata_map
    names = [n.strip() for n in meta.get("pe.features", "").split(",") if n.strip()]
    rw = real_windows(real_features(exe, tmp), shape, names)
    if rw is not None:
        sets.append(("real", rw, False))
    worst = 0.0
    ok = True
    for label, xs, relative in sets:
        ref = sess.run(None, {inp.name: xs})[0]
        tol = TOL * max(1.0, float(np.abs(ref).max())) if relative else TOL
        for kernels in KERNELS:
            y = run_engine(exe, path, xs, kernels, tmp)
            if y.shape != ref.shape:
                print(f"FAIL {path} [{label}, {kernels}]: shape {y.shape} vs {ref.shape}")
                ok = False
                continue
            d = float(np.max(np.abs(y.astype(np.float64) - ref)))
            if not relative:
                worst = max(worst, d)
            status = "ok" if d <= tol else "FAIL"
            ok &= d <= tol
            print(f"{status:4} {os.path.relpath(path, ROOT)} [{label} x{len(xs)}, {kernels}]: "
                  f"max abs diff {d:.3g} (tolerance {tol:.3g})")
    vin, vout = path[:-5] + ".inputs.npy", path[:-5] + ".outputs.npy"
    if os.path.exists(vin) and os.path.exists(vout):
        xv = np.load(vin).astype(np.float32)
        ref = np.load(vout)
        for kernels in KERNELS:
            y = run_engine(exe, path, xv, kernels, tmp)
            d = float(np.max(np.abs(y - ref)))
            status = "ok" if d <= TOL else "FAIL"
            ok &= d <= TOL
            print(f"{status:4} {os.path.relpath(path, ROOT)} [exporter's vectors x{len(y)}, "
                  f"{kernels}]: max abs diff vs PyTorch {d:.3g}")
    return ok, worst


def main():
    if len(sys.argv) < 2:
        print("usage: test_onnx_parity.py BUILD_DIR [MODEL ...]")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    models = sys.argv[2:] or (sorted(glob.glob(os.path.join(ROOT, "tests", "models", "*.onnx")))
                              + sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx"))))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            try:
                ok, _ = check_model(exe, m, tmp)
            except Exception as e:  # report and go on
                print(f"FAIL {m}: {e}")
                ok = False
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
