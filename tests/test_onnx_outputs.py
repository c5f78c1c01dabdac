#!/usr/bin/env python3
"""Graph outputs of every kind the importer takes, against ONNX Runtime:

    tests/test_onnx_outputs.py BUILD_DIR

- an int64 output that is a constant (Shape of a fixed input) and a bool one
  (Dropout's mask): `infer` writes them as int64 and bool .npy arrays;
- a graph without a runtime input (everything constant, folded at load):
  `infer` runs it without --input;
- a Where whose condition is a runtime bool input;
- tensors with a zero-size dimension (a reduction over an empty axis, a
  Concat with an empty part);
- the refusals that remain: int64 arithmetic on a runtime tensor, and a
  constant output of a model with a batch dimension.

Every case runs with each kernel set (generic, avx2, auto); values must be
within 1e-6 of ONNX Runtime's (int64 and bool: equal), shapes and types
equal. Exit 77 with a SKIP line when onnxruntime or numpy are missing."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE]
from test_onnx_parity import np, session  # noqa: E402  (exits 77 without them)

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

KERNELS = ("generic", "avx2", "auto")
F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(
        [helper.make_node(op, ins, outs, **attrs) for op, ins, outs, attrs in nodes],
        "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def infer(exe, path, feeds, kernels, tmp, all_outputs):
    args = [exe, "infer", path, "--kernels", kernels]
    for name, x in feeds.items():
        p = os.path.join(tmp, f"in_{name}.npy")
        np.save(p, x)
        args += ["--input", f"{name}={p}"]
    out = os.path.join(tmp, "out")
    if all_outputs:
        os.makedirs(out, exist_ok=True)
        args += ["--all-outputs"]
    else:
        out += ".npy"
    r = subprocess.run(args + ["--output", out], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"infer failed ({r.returncode}): {r.stderr.strip()}")
    if not all_outputs:
        return [np.load(out)]
    return [np.load(os.path.join(out, f"output_{k}.npy"))
            for k in range(len(os.listdir(out)))]


def cases():
    rng = np.random.default_rng(11)
    x345 = rng.standard_normal((3, 4, 5)).astype(np.float32)
    out = []
    out.append(("Shape of a fixed input (int64 output)",
                model([("Shape", ["x"], ["y"], {})], [("x", F, [3, 4, 5])], [("y", I64, [3])]),
                {"x": x345}, False))
    out.append(("Shape with start and end (opset 15)",
                model([("Shape", ["x"], ["y"], {"start": 1, "end": -1})],
                      [("x", F, [3, 4, 5])], [("y", I64, None)], opset=15),
                {"x": x345}, False))
    out.append(("Dropout's mask (bool output)",
                model([("Dropout", ["x"], ["y", "z"], {})], [("x", F, [3, 4, 5])],
                      [("y", F, [3, 4, 5]), ("z", B, [3, 4, 5])]),
                {"x": x345}, True))
    out.append(("no runtime input: a folded constant",
                model([("Constant", [], ["c"], {"value": numpy_helper.from_array(
                    rng.standard_normal((2, 3)).astype(np.float32), "v")}),
                       ("Relu", ["c"], ["y"], {})], [], [("y", F, [2, 3])]),
                {}, False))
    out.append(("Where with a runtime bool condition",
                model([("Where", ["c", "x", "k"], ["y"], {})],
                      [("c", B, ["N", 4, 5]), ("x", F, ["N", 4, 5])], [("y", F, None)],
                      [("k", np.array([-2.5], np.float32))]),
                {"c": rng.random((6, 4, 5)) > 0.5,
                 "x": rng.standard_normal((6, 4, 5)).astype(np.float32)}, False))
    out.append(("Where with a broadcast runtime condition",
                model([("Where", ["c", "x", "k"], ["y"], {})],
                      [("c", B, ["N", 1, 5]), ("x", F, ["N", 4, 5])], [("y", F, None)],
                      [("k", rng.standard_normal((4, 1)).astype(np.float32))]),
                {"c": rng.random((3, 1, 5)) > 0.5,
                 "x": rng.standard_normal((3, 4, 5)).astype(np.float32)}, False))
    e = np.zeros((2, 0, 4), np.float32)
    for op in ("ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin"):
        out.append((f"{op} over an empty axis",
                    model([(op, ["x"], ["y"], {"axes": [1], "keepdims": 1})],
                          [("x", F, [2, 0, 4])], [("y", F, [2, 1, 4])], opset=11),
                    {"x": e}, False))
    out.append(("Concat with an empty part",
                model([("Concat", ["x", "z"], ["y"], {"axis": 1}), ],
                      [("x", F, [2, 3, 4])], [("y", F, None)],
                      [("z", np.zeros((2, 0, 4), np.float32))]),
                {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)}, False))
    return out


def refusals():
    """(name, model, words the message must hold)."""
    return [
        ("int64 arithmetic on a runtime input",
         model([("Add", ["x", "x"], ["y"], {})], [("x", I64, ["N", 3])], [("y", I64, None)]),
         ["runtime int64 tensor", "arithmetic is float32 only"]),
        ("a constant output of a model with a batch dimension",
         model([("Shape", ["x"], ["s"], {}), ("Relu", ["x"], ["y"], {})],
               [("x", F, ["N", 3])], [("s", I64, [2])]),
         ["is a constant", "batch dimension"]),
    ]


def check(exe, name, m, feeds, all_outputs, tmp):
    path = os.path.join(tmp, "m.onnx")
    onnx.save(m, path)
    ref = session(path).run(None, feeds)
    if not all_outputs:
        ref = ref[:1]
    for k in KERNELS:
        got = infer(exe, path, feeds, k, tmp, all_outputs)
        if len(got) != len(ref):
            return f"{name} [{k}]: {len(got)} outputs, ONNX Runtime {len(ref)}"
        for j, (g, r) in enumerate(zip(got, ref)):
            r = np.asarray(r)
            if g.dtype != r.dtype or g.shape != r.shape:
                return (f"{name} [{k}] output {j}: {g.dtype}{list(g.shape)}, "
                        f"ONNX Runtime {r.dtype}{list(r.shape)}")
            if r.dtype == np.float32:
                same = (g == r) | (np.isnan(g) & np.isnan(r))  # infinities too
                with np.errstate(invalid="ignore"):
                    diff = np.abs(g.astype(np.float64) - r)
                d = float(np.max(np.where(same, 0.0, diff), initial=0.0))
                if not d <= 1e-6:
                    return f"{name} [{k}] output {j}: max abs diff {d:.3g}"
            elif not np.array_equal(g, r):
                return f"{name} [{k}] output {j}: {g.tolist()} vs {r.tolist()}"
    return None


def main():
    if len(sys.argv) != 2:
        print("usage: test_onnx_outputs.py BUILD_DIR")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    failed, passed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, m, feeds, all_outputs in cases():
            why = check(exe, name, m, feeds, all_outputs, tmp)
            if why:
                failed.append(why)
            else:
                passed += 1
                print(f"ok   {name}")
        for name, m, words in refusals():
            path = os.path.join(tmp, "bad.onnx")
            onnx.save(m, path)
            r = subprocess.run([exe, "inspect", path], capture_output=True, text=True)
            if r.returncode == 0 or not all(w in r.stderr for w in words):
                failed.append(f"refusal '{name}': exit {r.returncode}, {r.stderr.strip()}")
            else:
                passed += 1
                print(f"ok   refusal '{name}': {r.stderr.strip()}")
    for f in failed:
        print(f"FAIL {f}")
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
