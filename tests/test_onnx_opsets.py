#!/usr/bin/env python3
"""Every opset the importer claims, on real models.

    tests/test_onnx_opsets.py BUILD_DIR

Each test model (tests/models/*.onnx) and shipped model (models/*.onnx) is
re-exported with onnx's version_converter to opsets 13, 18, 20 and the
newest the installed onnx defines (those above its own opset), and once more with the newest IR version
stamped on it. Every converted file must load in `pattern-engine infer` and
match ONNX Runtime (on the converted file when ONNX Runtime takes it, else on
the original: the converter keeps the function) within 1e-5 relative to the
largest output (1e-5 absolute for outputs of order 1) on 300 random windows at
the model's scale. The importer's claimed range must end at the installed onnx's
newest opset and IR version, and a model one opset past it is refused.

Exit 77 with a SKIP line when onnx, onnxruntime or numpy are missing."""
import glob
import os
import subprocess
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_onnx_parity import ROOT, TOL, np, run_engine, session  # noqa: E402

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper, version_converter
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

NEWEST = onnx.defs.onnx_opset_version()


def windows(path, count, shape, rng):
    """count random windows for the model at path: N(0, 1), or at the scale
    of its committed inputs (NAME.inputs.npy, per channel) when there are."""
    shape = (count,) + tuple(shape)
    vin = path[:-5] + ".inputs.npy"
    if not os.path.exists(vin):
        return rng.standard_normal(shape).astype(np.float32)
    v = np.load(vin).astype(np.float64)
    x = v.mean(axis=(0, 2), keepdims=True) + v.std(axis=(0, 2), keepdims=True) * (
        rng.standard_normal(shape))
    return x.astype(np.float32)


def infer(exe, model, x, tmp):
    return run_engine(exe, model, x, "auto", tmp)


def main():
    if len(sys.argv) != 2:
        print("usage: test_onnx_opsets.py BUILD_DIR")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    models = (sorted(glob.glob(os.path.join(ROOT, "tests", "models", "*.onnx")))
              + sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx"))))
    failed = checked = 0
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as tmp:
        for path in models:
            orig = onnx.load(path)
            ref_sess = session(orig.SerializeToString())
            inp = ref_sess.get_inputs()[0]
            x = windows(path, 300, (int(d) for d in inp.shape[1:]), rng)
            ref_orig = ref_sess.run(None, {inp.name: x})[0]
            for target, ir in ((13, None), (18, None), (20, None), (NEWEST, None),
                               (NEWEST, onnx.IR_VERSION)):
                if target < orig.opset_import[0].version:
                    continue  # the converter goes up only
                label = f"{os.path.relpath(path, ROOT)} opset {target}" + (
                    f" IR {ir}" if ir else "")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    conv = version_converter.convert_version(orig, target)
                if ir:
                    conv.ir_version = ir
                got = [o.version for o in conv.opset_import if o.domain in ("", "ai.onnx")]
                if got != [target]:
                    print(f"FAIL {label}: converter wrote opset {got}")
                    failed += 1
                    continue
                f = os.path.join(tmp, "conv.onnx")
                onnx.save(conv, f)
                try:
                    ref = session(conv.SerializeToString()).run(None, {inp.name: x})[0]
                    oracle = "onnxruntime"
                except Exception:  # ONNX Runtime does not take this IR/opset
                    ref, oracle = ref_orig, "onnxruntime on the original"
                try:
                    y = infer(exe, f, x, tmp)
                except RuntimeError as e:
                    print(f"FAIL {label}: {e}")
                    failed += 1
                    continue
                d = float(np.max(np.abs(y.astype(np.float64) - ref)))
                tol = TOL * max(1.0, float(np.abs(ref).max()))
                ok = y.shape == ref.shape and d <= tol
                failed += not ok
                checked += 1
                print(f"{'ok' if ok else 'FAIL':4} {label}: max abs diff {d:.3g} vs {oracle}")
        # the claimed range ends where the installed onnx does
        m = onnx.load(os.path.join(ROOT, "tests", "models", "mlp_gemm.onnx"))
        del m.opset_import[:]
        m.opset_import.extend([helper.make_opsetid("", NEWEST + 1)])
        f = os.path.join(tmp, "future.onnx")
        onnx.save(m, f)
        r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
        want = f"opsets 11 to {NEWEST} are supported"
        ok = r.returncode != 0 and f"opset {NEWEST + 1}" in r.stderr and want in r.stderr
        print(f"{'ok' if ok else 'FAIL':4} opset {NEWEST + 1} refused: {r.stderr.strip()}")
        failed += not ok
        m.ir_version = onnx.IR_VERSION + 1
        del m.opset_import[:]
        m.opset_import.extend([helper.make_opsetid("", NEWEST)])
        onnx.save(m, f)
        r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
        ok = (r.returncode != 0 and f"IR version {onnx.IR_VERSION + 1}" in r.stderr
              and f"versions 3 to {onnx.IR_VERSION} are supported" in r.stderr)
        print(f"{'ok' if ok else 'FAIL':4} IR {onnx.IR_VERSION + 1} refused: {r.stderr.strip()}")
        failed += not ok
    print(f"{checked} conversions checked, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
