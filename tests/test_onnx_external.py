#!/usr/bin/env python3
"""Initializers stored outside the .onnx file (external data).

    tests/test_onnx_external.py BUILD_DIR

Every shipped model (models/*.onnx) is saved by onnx's own writer with its
weights in a separate file (onnx.save_model(..., save_as_external_data=True):
one shared data file, and one file per tensor in a subfolder); each must load
in `pattern-engine infer` and match ONNX Runtime, which reads the same files,
within 1e-5 on 500 random windows at the model's scale.

Then hostile references, each written into a fresh folder: an absolute
location, a '..' location, a symbolic link leading out of the folder, an
offset past the end of the file, a range running past it, a length that
disagrees with the tensor's shape, an offset that is not a number, a missing
file. Each must be refused (non-zero exit) with a message naming the tensor
and the reason. A symbolic link that stays inside the folder is accepted.

Exit 77 with a SKIP line when onnx, onnxruntime or numpy are missing."""
import glob
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# numpy, onnx and onnxruntime, or exit 77
from test_onnx_opsets import (ROOT, TOL, TensorProto, helper, infer, np,  # noqa: E402
                              numpy_helper, onnx, session, windows)

failed = 0


def report(ok, label, detail=""):
    global failed
    failed += not ok
    print(f"{'ok' if ok else 'FAIL':4} {label}{': ' + detail if detail else ''}")


def check_shipped(exe, tmp):
    rng = np.random.default_rng(5)
    for path in sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx"))):
        name = os.path.basename(path)
        for one_file in (True, False):
            d = tempfile.mkdtemp(dir=tmp)
            m = onnx.load(path)
            f = os.path.join(d, name)
            onnx.save_model(m, f, save_as_external_data=True,
                            all_tensors_to_one_file=one_file,
                            location=name + ".data" if one_file else None,
                            size_threshold=0)
            if not one_file:  # onnx writes each tensor next to the model:
                # move them into a subfolder to check a relative path with '/'
                m2 = onnx.load(f, load_external_data=False)
                os.mkdir(os.path.join(d, "w"))
                for t in m2.graph.initializer:
                    for e in t.external_data:
                        if e.key == "location":
                            os.rename(os.path.join(d, e.value), os.path.join(d, "w", e.value))
                            e.value = "w/" + e.value
                onnx.save_model(m2, f)
            n_ext = sum(1 for t in onnx.load(f, load_external_data=False).graph.initializer
                        if t.data_location == TensorProto.EXTERNAL)
            sess = session(f)
            inp = sess.get_inputs()[0]
            x = windows(path, 500, (int(s) for s in inp.shape[1:]), rng)
            ref = sess.run(None, {inp.name: x})[0]
            label = f"{name} weights in {'one file' if one_file else 'a file per tensor'}"
            try:
                y = infer(exe, f, x, tmp)
            except RuntimeError as e:
                report(False, label, str(e))
                continue
            diff = float(np.max(np.abs(y.astype(np.float64) - ref)))
            tol = TOL * max(1.0, float(np.abs(ref).max()))
            report(n_ext > 0 and y.shape == ref.shape and diff <= tol, label,
                   f"{n_ext} external tensors, max abs diff {diff:.3g} vs onnxruntime")


def hostile_model(folder, loc, offset=None, length=None, data=None):
    """Gemm(x[8] -> 4) whose weight 'wx' (4x8 float32, 128 bytes) is external."""
    w = numpy_helper.from_array(np.ones((4, 8), dtype=np.float32), "wx")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", loc), ("offset", offset), ("length", length)):
        if v is not None:
            e = w.external_data.add()
            e.key, e.value = k, str(v)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["input", "wx"], ["output"], name="gemm_ext", transB=1)],
        "ext", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    os.makedirs(folder, exist_ok=True)
    f = os.path.join(folder, "model.onnx")
    with open(f, "wb") as fh:
        fh.write(m.SerializeToString())
    if data is not None:
        with open(os.path.join(folder, "w.bin"), "wb") as fh:
            fh.write(data)
    return f


def check_hostile(exe, tmp):
    blob = np.arange(32, dtype=np.float32).tobytes()  # 128 bytes: exactly wx
    outside = os.path.join(tmp, "outside.bin")
    with open(outside, "wb") as fh:
        fh.write(blob)
    cases = [
        ("absolute location", dict(loc=outside), "must be a relative path"),
        ("'..' location", dict(loc="../outside.bin"), "must be a relative path"),
        ("'..' inside a path", dict(loc="sub/../../outside.bin"), "must be a relative path"),
        ("offset past the end", dict(loc="w.bin", offset=200, data=blob), "past the end"),
        ("range past the end", dict(loc="w.bin", offset=64, length=128, data=blob),
         "runs past the end"),
        ("length unlike the shape", dict(loc="w.bin", offset=0, length=64, data=blob),
         "holds 64 bytes, its shape and type need 128"),
        ("file larger than the tensor", dict(loc="w.bin", data=blob + blob),
         "holds 256 bytes, its shape and type need 128"),
        ("offset not a number", dict(loc="w.bin", offset="12abc", data=blob),
         "is not a byte count"),
        ("negative offset", dict(loc="w.bin", offset=-8, data=blob), "is not a byte count"),
        ("missing file", dict(loc="nowhere.bin"), "cannot open it"),
    ]
    for i, (label, kw, want) in enumerate(cases):
        f = hostile_model(os.path.join(tmp, f"h{i}"), **kw)
        r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
        ok = (r.returncode != 0 and "initializer 'wx'" in r.stderr and want in r.stderr
              and "used by node 0 (gemm_ext, Gemm)" in r.stderr)
        report(ok, f"refused: {label}", r.stderr.strip())
    # a symbolic link out of the folder is refused; one inside it is followed
    f = hostile_model(os.path.join(tmp, "ln_out"), loc="w.bin")
    os.symlink(outside, os.path.join(tmp, "ln_out", "w.bin"))
    r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
    report(r.returncode != 0 and "initializer 'wx'" in r.stderr
           and "outside the model's folder" in r.stderr,
           "refused: symbolic link out of the folder", r.stderr.strip())
    f = hostile_model(os.path.join(tmp, "ln_in"), loc="link.bin", data=blob)
    os.symlink("w.bin", os.path.join(tmp, "ln_in", "link.bin"))
    x = np.random.default_rng(3).standard_normal((10, 8)).astype(np.float32)
    try:
        y = infer(exe, f, x, tmp)
        ref = session(f).run(None, {"input": x})[0]
        diff = float(np.max(np.abs(y - ref)))
        report(diff <= TOL, "symbolic link inside the folder", f"max abs diff {diff:.3g}")
    except RuntimeError as e:
        report(False, "symbolic link inside the folder", str(e))


def main():
    if len(sys.argv) != 2:
        print("usage: test_onnx_external.py BUILD_DIR")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    with tempfile.TemporaryDirectory() as tmp:
        check_shipped(exe, tmp)
        check_hostile(exe, tmp)
    print(f"{failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
