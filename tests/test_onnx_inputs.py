#!/usr/bin/env python3
"""Models with several inputs, int64 and bool inputs, and graphs without a
batch dimension.

    tests/test_onnx_inputs.py BUILD_DIR

- A model with four runtime inputs (two float32, an int64 index tensor and
  a bool mask, both cast to float32) runs through `pattern-engine infer
  --input NAME=FILE.npy ...` and matches ONNX Runtime at batch 1 and 23.
- Runtime int64 indices into float32 tables (Gather on axis 0 and 1,
  negative indices) match ONNX Runtime.
- Graphs whose input declares a fixed first dimension (the ONNX node tests'
  kind, batch 1 exports) have no batch axis, so ops on axis 0 run: Softmax,
  ReduceMean, Concat, Gather, Slice, Transpose, a Gemm over all rows. Each
  matches ONNX Runtime given the declared shape itself, and given [N, ...]
  (N windows, each against ONNX Runtime on that window).
- A batch-1 export of a shipped model ([1, C, W] fixed) still runs any
  number of windows and matches the dynamic-batch original.
- --bind gives runtime inputs (Conv weights, a Reshape target) their value
  at load; --all-outputs writes every output (a Split's parts, an LSTM's Y,
  Y_h and Y_c, batch first); both against ONNX Runtime, and their refusals.
- Conv and pooling over a fixed first dimension of 3 (three items per
  window), and a Conv1d over rows a Reshape merged with the batch.
- Refusals: a missing or unknown --input name, a dtype that is not the
  input's, a bad pe.batch, and the engine (replay --model) given a model
  with several inputs.

Exit 77 with a SKIP line when onnx, onnxruntime or numpy are missing."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# numpy, onnx and onnxruntime, or exit 77
from test_onnx_opsets import ROOT, TensorProto, helper, np, numpy_helper, onnx, session  # noqa

N = helper.make_node
TOL = 1e-5
failed = 0


def report(ok, label, detail=""):
    global failed
    failed += not ok
    print(f"{'ok' if ok else 'FAIL':4} {label}{': ' + detail if detail else ''}")


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def save(tmp, name, nodes, inputs, out_shape, inits=(), meta=None):
    g = helper.make_graph(nodes, name, inputs, [vi("y", TensorProto.FLOAT, out_shape)],
                          list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    f = os.path.join(tmp, name + ".onnx")
    onnx.save(m, f)
    return f


def infer(exe, model, feeds, tmp, named=True):
    args = [exe, "infer", model, "--output", os.path.join(tmp, "y.npy")]
    for name, x in feeds.items():
        p = os.path.join(tmp, f"in_{name}.npy")
        np.save(p, x)
        args += ["--input", f"{name}={p}" if named else p]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return np.load(os.path.join(tmp, "y.npy"))


def compare(label, y, ref):
    d = float(np.max(np.abs(y.astype(np.float64) - ref))) if y.shape == ref.shape else -1
    report(y.shape == ref.shape and 0 <= d <= TOL, label,
           f"shape {y.shape} vs {ref.shape}, max abs diff {d:.3g} vs onnxruntime")


def check_multi(exe, tmp):
    C, W = 3, 8
    f = save(tmp, "multi", [
        N("Mul", ["a", "b"], ["ab"]),
        N("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
        N("Unsqueeze", ["mf", "ax1"], ["mu"]),
        N("Cast", ["ids"], ["idf"], to=TensorProto.FLOAT),
        N("Unsqueeze", ["idf", "ax2"], ["iu"]),
        N("Add", ["ab", "mu"], ["s1"]),
        N("Add", ["s1", "iu"], ["y"])],
        [vi("a", TensorProto.FLOAT, ["N", C, W]), vi("b", TensorProto.FLOAT, ["N", C, W]),
         vi("mask", TensorProto.BOOL, ["N", W]), vi("ids", TensorProto.INT64, ["N", C])],
        ["N", C, W], [numpy_helper.from_array(np.array([1], np.int64), "ax1"),
                      numpy_helper.from_array(np.array([2], np.int64), "ax2")])
    r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
    report(r.returncode == 0 and "  2  mask [N, 8] bool, 8 values per window" in r.stdout
           and "  3  ids [N, 3] int64, 3 values per window" in r.stdout,
           "inspect lists the four inputs with their types")
    rng = np.random.default_rng(2)
    sess = session(f)
    for batch in (1, 23):
        feeds = {"a": rng.standard_normal((batch, C, W)).astype(np.float32),
                 "b": rng.standard_normal((batch, C, W)).astype(np.float32),
                 "mask": rng.random((batch, W)) < 0.5,
                 "ids": rng.integers(-1000, 1000, (batch, C)).astype(np.int64)}
        try:
            compare(f"four inputs (float32, float32, bool, int64) [batch {batch}]",
                    infer(exe, f, feeds, tmp), sess.run(None, feeds)[0])
        except RuntimeError as e:
            report(False, f"four inputs [batch {batch}]", str(e))
    feeds = {"a": np.zeros((2, C, W), np.float32), "b": np.zeros((2, C, W), np.float32),
             "mask": np.zeros((2, W), bool)}
    for label, fd, want in (
            ("a missing input", feeds, "the model input 'ids' is not given"),
            ("a wrong dtype", dict(feeds, ids=np.zeros((2, C), np.float32)),
             "the model input 'ids' takes int64"),
            ("unnamed inputs", dict(feeds, ids=np.zeros((2, C), np.int64)),
             "the model's inputs are a, b, mask, ids")):
        try:
            infer(exe, f, fd, tmp, named=label != "unnamed inputs")
            report(False, f"refused: {label}", "it ran")
        except RuntimeError as e:
            report(want in str(e), f"refused: {label}", str(e))
    r = subprocess.run([exe, "replay", "--ticks", os.path.join(ROOT, "fixtures", "sample_ticks.csv"),
                        "--model", f, "--out", os.devnull], capture_output=True, text=True)
    report(r.returncode != 0 and "the model takes 4 inputs" in r.stderr
           and "the engine feeds one float32 window input" in r.stderr,
           "refused by the engine: several inputs", r.stderr.strip())


def check_embedding(exe, tmp):
    """Runtime int64 indices into float32 tables: axis 0 (an embedding) and
    axis 1 (outer rows), negative indices counting from the end."""
    V, E, L = 11, 4, 6
    rng = np.random.default_rng(8)
    f = save(tmp, "embedding", [
        N("Gather", ["table", "ids"], ["emb"], axis=0),
        N("Gather", ["table2", "ids"], ["g2"], axis=1),
        N("Transpose", ["g2"], ["g2t"], perm=[1, 2, 0]),
        N("Concat", ["emb", "g2t"], ["y"], axis=2)],
        [vi("ids", TensorProto.INT64, ["N", L])], ["N", L, E + 3],
        [numpy_helper.from_array(rng.standard_normal((V, E)).astype(np.float32), "table"),
         numpy_helper.from_array(rng.standard_normal((3, V)).astype(np.float32), "table2")])
    sess = session(f)
    for batch in (1, 19):
        ids = rng.integers(-V, V, (batch, L)).astype(np.int64)
        try:
            compare(f"Gather by runtime int64 indices [batch {batch}]",
                    infer(exe, f, {"ids": ids}, tmp, named=False),
                    sess.run(None, {"ids": ids})[0])
        except RuntimeError as e:
            report(False, f"Gather by runtime indices [batch {batch}]", str(e))


def check_unbatched(exe, tmp):
    S = [3, 4, 5]
    x_in = [vi("x", TensorProto.FLOAT, S)]
    i64 = lambda n, v: numpy_helper.from_array(np.array(v, np.int64), n)  # noqa: E731
    rng = np.random.default_rng(9)
    cases = {
        "softmax_axis0": ([N("Softmax", ["x"], ["y"], axis=0)], S, []),
        "reduce_mean_axis0": ([N("ReduceMean", ["x"], ["y"], axes=[0], keepdims=1)],
                              [1, 4, 5], []),
        "concat_axis0": ([N("Concat", ["x", "c"], ["y"], axis=0)], [5, 4, 5],
                         [numpy_helper.from_array(
                             rng.standard_normal((2, 4, 5)).astype(np.float32), "c")]),
        "gather_axis0": ([N("Gather", ["x", "idx"], ["y"], axis=0)], [2, 4, 5],
                         [i64("idx", [2, 0])]),
        "slice_axis0": ([N("Slice", ["x", "s", "e", "a"], ["y"])], [2, 4, 5],
                        [i64("s", [1]), i64("e", [3]), i64("a", [0])]),
        "transpose_201": ([N("Transpose", ["x"], ["y"], perm=[2, 0, 1])], [5, 3, 4], []),
        "gemm_rows": ([N("Reshape", ["x", "sh"], ["x2"]),
                       N("Gemm", ["x2", "w"], ["y"], transB=1)], [3, 6],
                      [i64("sh", [3, 20]), numpy_helper.from_array(
                          rng.standard_normal((6, 20)).astype(np.float32), "w")]),
        # one sequence of 12 steps, both directions
        "bilstm_seq12": ([N("Reshape", ["x", "sh"], ["x2"]),
                          N("LSTM", ["x2", "lw", "lr"], ["y"], hidden_size=4,
                            direction="bidirectional")], [12, 2, 1, 4],
                         [i64("sh", [12, 1, 5]),
                          numpy_helper.from_array(
                              rng.standard_normal((2, 16, 5)).astype(np.float32), "lw"),
                          numpy_helper.from_array(
                              rng.standard_normal((2, 16, 4)).astype(np.float32), "lr")]),
        # one image [1, C, H, W]
        "conv2d_one_image": ([N("Reshape", ["x", "sh"], ["x2"]),
                              N("Conv", ["x2", "cw"], ["y"], pads=[1, 0, 0, 1])],
                             [1, 2, 4, 5],
                             [i64("sh", [1, 3, 4, 5]), numpy_helper.from_array(
                                 rng.standard_normal((2, 3, 2, 2)).astype(np.float32),
                                 "cw")]),
    }
    for name, (nodes, out_shape, inits) in cases.items():
        f = save(tmp, name, nodes, x_in, out_shape, inits)
        sess = session(f)
        x = rng.standard_normal(S).astype(np.float32)
        try:
            compare(f"{name} (no batch dimension), one window as declared",
                    infer(exe, f, {"x": x}, tmp, named=False), sess.run(None, {"x": x})[0])
            xs = rng.standard_normal([7] + S).astype(np.float32)
            ref = np.stack([sess.run(None, {"x": w})[0] for w in xs])
            compare(f"{name} (no batch dimension), 7 windows",
                    infer(exe, f, {"x": xs}, tmp, named=False), ref)
        except RuntimeError as e:
            report(False, name, str(e))
    # Conv and pooling over a fixed first dimension of 3: three items per
    # window, each convolved in turn
    cw = rng.standard_normal((2, 4, 3)).astype(np.float32)
    cw2 = rng.standard_normal((2, 1, 2, 2)).astype(np.float32)
    items = {
        "conv_first3": ([N("Conv", ["x", "cw"], ["y"], pads=[1, 1])], [3, 2, 5],
                        [numpy_helper.from_array(cw, "cw")]),
        "conv2d_first3": ([N("Reshape", ["x", "sh"], ["x2"]),
                           N("Conv", ["x2", "cw2"], ["c"], strides=[1, 2]),
                           N("MaxPool", ["c"], ["y"], kernel_shape=[2, 1])],
                          [3, 2, 2, 2], [i64("sh", [3, 1, 4, 5]),
                                         numpy_helper.from_array(cw2, "cw2")]),
        "pool_first3": ([N("AveragePool", ["x"], ["y"], kernel_shape=[2], strides=[2])],
                        [3, 4, 2], []),
    }
    for name, (nodes, out_shape, inits) in items.items():
        f = save(tmp, name, nodes, x_in, out_shape, inits)
        sess = session(f)
        xs = rng.standard_normal([7] + S).astype(np.float32)
        ref = np.stack([sess.run(None, {"x": w})[0] for w in xs])
        try:
            compare(f"{name} (items on a fixed first dimension), 7 windows",
                    infer(exe, f, {"x": xs}, tmp, named=False), ref)
        except RuntimeError as e:
            report(False, name, str(e))
    # rows merged with the batch ([N, T, C, W] -> [N * T, C, W]) into a
    # Conv1d, then back: T items per window
    f = save(tmp, "conv_merged_rows", [
        N("Reshape", ["xm", "m1cw"], ["r"]),
        N("Conv", ["r", "cw"], ["c"], pads=[1, 1]),
        N("Reshape", ["c", "back"], ["y"])],
        [vi("xm", TensorProto.FLOAT, ["N", 3, 4, 5])], ["N", 3 * 2 * 5],
        [i64("m1cw", [-1, 4, 5]), i64("back", [-1, 3 * 2 * 5]),
         numpy_helper.from_array(cw, "cw")])
    sess = session(f)
    for batch in (1, 6):
        xm = rng.standard_normal((batch, 3, 4, 5)).astype(np.float32)
        try:
            compare(f"Conv1d over rows merged with the batch [batch {batch}]",
                    infer(exe, f, {"xm": xm}, tmp, named=False),
                    sess.run(None, {"xm": xm})[0])
        except RuntimeError as e:
            report(False, "Conv1d over rows merged with the batch", str(e))
    f = save(tmp, "bad_meta", [N("Relu", ["x"], ["y"])], x_in, S, meta={"pe.batch": "1"})
    r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
    report(r.returncode != 0 and "metadata pe.batch is '1'" in r.stderr,
           "refused: a bad pe.batch", r.stderr.strip())
    # pe.batch=0 makes a fixed axis 0 the batch again
    f = save(tmp, "meta_batch", [N("Softmax", ["x"], ["y"], axis=0)], x_in, S,
             meta={"pe.batch": "0"})
    r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
    report(r.returncode != 0 and "Softmax over the batch dimension (axis 0)" in r.stderr,
           "pe.batch=0 makes axis 0 the batch", r.stderr.strip())


def check_batch1_export(exe, tmp):
    for name in ("toy_cnn", "pattern_lstm", "toy_mlp"):
        path = os.path.join(ROOT, "models", name + ".onnx")
        m = onnx.load(path)
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
        for o in m.graph.output:
            o.type.tensor_type.shape.dim[0].dim_value = 1
        f = os.path.join(tmp, name + "_b1.onnx")
        onnx.save(m, f)
        sess = session(path)
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(4).standard_normal(
            [40] + [int(d) for d in inp.shape[1:]]).astype(np.float32)
        try:
            compare(f"{name} exported with a fixed batch of 1, 40 windows",
                    infer(exe, f, {inp.name: x}, tmp, named=False),
                    sess.run(None, {inp.name: x})[0])
        except RuntimeError as e:
            report(False, f"{name} fixed batch 1", str(e))


def check_bind_outputs(exe, tmp):
    """--bind: a Reshape target and a Conv's weights given as runtime inputs
    run once bound at load; --all-outputs: every output of a Split and of an
    LSTM (Y, Y_h, Y_c) against ONNX Runtime."""
    C, W, M = 4, 10, 6
    f = save(tmp, "bind_shape_weights", [
        N("Conv", ["x", "w"], ["c"], pads=[1, 1]),
        N("Reshape", ["c", "shape"], ["y"])],
        [vi("x", TensorProto.FLOAT, ["N", C, W]), vi("w", TensorProto.FLOAT, [M, C, 3]),
         vi("shape", TensorProto.INT64, [2])], ["N", M * W])
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, C, W)).astype(np.float32)
    w = rng.standard_normal((M, C, 3)).astype(np.float32)
    shape = np.array([-1, M * W], np.int64)
    ref = session(f).run(None, {"x": x, "w": w, "shape": shape})[0]
    np.save(os.path.join(tmp, "w.npy"), w)
    np.save(os.path.join(tmp, "shape.npy"), shape)
    np.save(os.path.join(tmp, "x.npy"), x)
    out = os.path.join(tmp, "y.npy")
    base = [exe, "infer", f, "--input", os.path.join(tmp, "x.npy"), "--output", out]
    r = subprocess.run(base + ["--bind", "w=" + os.path.join(tmp, "w.npy"),
                               "--bind", "shape=" + os.path.join(tmp, "shape.npy")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        report(False, "--bind: Conv weights and a Reshape target", r.stderr.strip())
    else:
        compare("--bind: Conv weights and a Reshape target", np.load(out), ref)
    r = subprocess.run(base + ["--bind", "shape=" + os.path.join(tmp, "shape.npy")],
                       capture_output=True, text=True)
    report(r.returncode != 0 and "graph input 'w' lacks a batch dimension" in r.stderr,
           "refused unbound: Conv weights as a runtime input", r.stderr.strip())
    np.save(os.path.join(tmp, "w_bad.npy"), w[:, :, :2])
    for label, extra, want in (
            ("a bound shape the graph does not declare",
             ["--bind", "w=" + os.path.join(tmp, "w_bad.npy")],
             "bound input 'w': dimension 2 is 2, which the graph does not declare"),
            ("a bound name that is no input", ["--bind", "nope=" + os.path.join(tmp, "w.npy")],
             "bound input 'nope' is not a runtime graph input"),
            ("a bound dtype that is not the input's",
             ["--bind", "shape=" + os.path.join(tmp, "w.npy"),
              "--bind", "w=" + os.path.join(tmp, "w.npy")],
             "bound input 'shape': the graph declares int64; the value given is float32")):
        r = subprocess.run(base + extra, capture_output=True, text=True)
        report(r.returncode != 0 and want in r.stderr, f"refused: {label}", r.stderr.strip())

    # every output: a Split in three and an LSTM's Y, Y_h, Y_c
    H, L, I = 5, 6, 3
    wl = (rng.standard_normal((1, 4 * H, I)) * 0.5).astype(np.float32)
    rl = (rng.standard_normal((1, 4 * H, H)) * 0.5).astype(np.float32)
    g = helper.make_graph(
        [N("Split", ["x", "sp"], ["a", "b", "c"], axis=2),
         N("Transpose", ["x"], ["xt"], perm=[2, 0, 1]),
         N("LSTM", ["xt", "wl", "rl"], ["Y", "Yh", "Yc"], hidden_size=H)],
        "outs", [vi("x", TensorProto.FLOAT, ["N", I, L])],
        [vi("a", TensorProto.FLOAT, ["N", I, 1]), vi("b", TensorProto.FLOAT, ["N", I, 2]),
         vi("c", TensorProto.FLOAT, ["N", I, 3]), vi("Y", TensorProto.FLOAT, [L, 1, "N", H]),
         vi("Yh", TensorProto.FLOAT, [1, "N", H]), vi("Yc", TensorProto.FLOAT, [1, "N", H])],
        [numpy_helper.from_array(np.array([1, 2, 3], np.int64), "sp"),
         numpy_helper.from_array(wl, "wl"), numpy_helper.from_array(rl, "rl")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    f = os.path.join(tmp, "outs.onnx")
    onnx.save(m, f)
    x = rng.standard_normal((4, I, L)).astype(np.float32)
    np.save(os.path.join(tmp, "x.npy"), x)
    refs = session(f).run(None, {"x": x})
    od = os.path.join(tmp, "outs")
    os.makedirs(od, exist_ok=True)
    r = subprocess.run([exe, "infer", f, "--input", os.path.join(tmp, "x.npy"), "--output", od,
                        "--all-outputs"], capture_output=True, text=True)
    if r.returncode != 0:
        report(False, "--all-outputs: Split and LSTM outputs", r.stderr.strip())
        return
    batch_axis = [0, 0, 0, 2, 1, 1]
    for k, ref in enumerate(refs):
        y = np.load(os.path.join(od, f"output_{k}.npy"))
        compare(f"--all-outputs: output {k} (batch first)", y,
                np.moveaxis(ref, batch_axis[k], 0))
    r = subprocess.run([exe, "infer", f, "--input", os.path.join(tmp, "x.npy"), "--output",
                        os.path.join(tmp, "y.npy"), "--all-outputs"], capture_output=True, text=True)
    report(r.returncode != 0 and "must be a folder" in r.stderr,
           "refused: --all-outputs to a file", r.stderr.strip())


def main():
    if len(sys.argv) != 2:
        print("usage: test_onnx_inputs.py BUILD_DIR")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    with tempfile.TemporaryDirectory() as tmp:
        check_multi(exe, tmp)
        check_embedding(exe, tmp)
        check_unbatched(exe, tmp)
        check_batch1_export(exe, tmp)
        check_bind_outputs(exe, tmp)
    print(f"{failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
