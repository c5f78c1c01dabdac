#!/usr/bin/env python3
"""Op-by-op parity with ONNX Runtime for the attention family and the
element-wise, reduction and padding ops.

    tests/test_onnx_ops.py BUILD_DIR

Each case is a small model built here with onnx.helper (one float32 input
[N, ...], odd sizes), at every opset it is valid for from 11 to the newest
both the installed onnx and onnxruntime run (ORT_MAX). Random inputs (a batch of 7 and a batch of 1)
go through `pattern-engine infer` with each kernel set (generic, avx2,
auto = AVX-512 where the CPU has it) and through ONNX Runtime (one thread);
every output must be within 1e-5 of ONNX Runtime's, and the kernel sets
within 1e-5 of each other. Any refusal fails (the importer takes opsets
11 to 28). Attention blocks are also checked to load
as one fused `attention` step (or, where an intermediate is used elsewhere,
not to). A few refusals are checked for their message.

Exit 77 with a SKIP line when onnxruntime or numpy are missing."""
import os
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "models")]
# numpy and onnxruntime first: that module exits 77 without them
from test_onnx_parity import np, run_engine, session  # noqa: E402

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)
import attention_models as am  # noqa: E402

TOL = 1e-5
KERNELS = ("generic", "avx2", "auto")
NEWEST = onnx.defs.onnx_opset_version()
ORT_MAX = 21  # the newest opset this onnxruntime runs every case at


def c(arr, dtype=np.float32):
    return np.asarray(arr, dtype=dtype)


class Case:
    """nodes: list of (op, inputs, outputs, attrs); consts: name -> array."""

    def __init__(self, name, opset, shape, nodes, consts=None, fused=None, scale=1.0):
        self.name, self.opset, self.shape = name, opset, shape
        self.nodes, self.consts = nodes, consts or {}
        self.fused, self.scale = fused, scale

    def model(self):
        nodes = [helper.make_node(op, ins, outs, name=f"n{k}_{op}", **attrs)
                 for k, (op, ins, outs, attrs) in enumerate(self.nodes)]
        used = {i for _, ins, _, _ in self.nodes for i in ins}
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.consts.items()
                 if k in used]
        g = helper.make_graph(nodes, self.name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N"] + list(self.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)],
                              producer_name="test_onnx_ops.py")
        m.ir_version = 8
        return m


def N(op, ins, outs, **attrs):
    return (op, ins, outs if isinstance(outs, list) else [outs], attrs)


def opsets(lo, hi=None):
    return range(max(lo, 11), min(hi or NEWEST, NEWEST, ORT_MAX) + 1)


def elementwise_cases():
    out = []
    for o in opsets(11):
        mn, mx = c(-0.4), c(0.7)
        for label, ins in (("min,max", ["x", "mn", "mx"]), ("min", ["x", "mn"]),
                           ("max", ["x", "", "mx"]), ("none", ["x"])):
            out.append(Case(f"Clip[{label}]", o, [3, 5], [N("Clip", ins, "y")],
                            {"mn": mn, "mx": mx}))
    for o in opsets(11, 13):
        out.append(Case("Elu", o, [4, 7], [N("Elu", ["x"], "y")], scale=3))
        out.append(Case("Elu[alpha]", o, [4, 7], [N("Elu", ["x"], "y", alpha=0.7)], scale=3))
        out.append(Case("Selu", o, [5], [N("Selu", ["x"], "y")], scale=3))
        out.append(Case("Selu[alpha,gamma]", o, [5],
                        [N("Selu", ["x"], "y", alpha=1.2, gamma=0.9)], scale=3))
        out.append(Case("Softplus", o, [3, 3, 3], [N("Softplus", ["x"], "y")], scale=20))
        out.append(Case("HardSigmoid", o, [9], [N("HardSigmoid", ["x"], "y")], scale=4))
        out.append(Case("HardSigmoid[alpha,beta]", o, [9],
                        [N("HardSigmoid", ["x"], "y", alpha=0.3, beta=0.4)], scale=4))
    for o in opsets(14):
        out.append(Case("HardSwish", o, [2, 11], [N("HardSwish", ["x"], "y")], scale=5))
    cst = {"b": c(np.linspace(-1, 1, 5).reshape(1, 5)), "s": c(0.25)}
    for o in opsets(11, 13):
        for op in ("Min", "Max", "Sum", "Mean"):
            out.append(Case(f"{op}[1]", o, [3, 5], [N(op, ["x"], "y")]))
            out.append(Case(f"{op}[x,const]", o, [3, 5], [N(op, ["x", "b"], "y")], cst))
            out.append(Case(f"{op}[x,neg x,const,scalar]", o, [3, 5],
                            [N("Neg", ["x"], "nx"), N(op, ["x", "nx", "b", "s"], "y")], cst))
            out.append(Case(f"{op}[const,x]", o, [3, 5], [N(op, ["b", "x"], "y")], cst))
    return out


def reduce_cases():
    out = []
    for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean"):
        as_input = 13 if op == "ReduceSum" else 18
        for o in opsets(11):
            for axes in ([1], [-1], [1, 2], [2, 3]):
                for keep in (0, 1):
                    if o >= as_input:
                        nodes = [N(op, ["x", "ax"], "y", keepdims=keep)]
                        cs = {"ax": c(axes, np.int64)}
                    else:
                        nodes = [N(op, ["x"], "y", axes=axes, keepdims=keep)]
                        cs = {}
                    out.append(Case(f"{op}[axes={axes},keepdims={keep}]", o, [3, 4, 5],
                                    nodes, cs, scale=0.8))
            if o >= as_input:
                out.append(Case(f"{op}[no axes, noop]", o, [3, 4],
                                [N(op, ["x"], "y", noop_with_empty_axes=1)]))
                out.append(Case(f"{op}[empty axes, noop]", o, [3, 4],
                                [N(op, ["x", "ax"], "y", noop_with_empty_axes=1)],
                                {"ax": c([], np.int64)}))
    return out


def pad_cases():
    out = []
    for o in opsets(11):
        for mode in ("constant", "reflect", "edge"):
            for pads in ([0, 1, 2, 0, 2, 1], [0, 0, 3, 0, 0, 0], [0, 2, 0, 0, 1, 4],
                         [0, -1, 1, 0, 1, -2]):
                cs = {"p": c(pads, np.int64), "v": c(1.5)}
                ins = ["x", "p", "v"] if mode == "constant" else ["x", "p"]
                out.append(Case(f"Pad[{mode},{pads}]", o, [3, 5], [N("Pad", ins, "y", mode=mode)], cs))
        out.append(Case("Pad[default mode, no value]", o, [2, 3, 4],
                        [N("Pad", ["x", "p"], "y")], {"p": c([0, 1, 0, 1, 0, 0, 2, 3], np.int64)}))
        if o >= 18:
            out.append(Case("Pad[axes]", o, [3, 5], [N("Pad", ["x", "p", "", "a"], "y", mode="reflect")],
                            {"p": c([2, 1, 0, 1], np.int64), "a": c([-1, 1], np.int64)}))
    return out


def where_cases():
    out = []
    rng = np.random.default_rng(5)
    cond = rng.random((3, 5)) > 0.5
    for o in opsets(11):
        cs = {"c": cond, "k": c(-2.0), "k2": c(rng.standard_normal((1, 5)))}
        out.append(Case("Where[mask, x, scalar]", o, [3, 5], [N("Where", ["c", "x", "k"], "y")], cs))
        out.append(Case("Where[mask, const, x]", o, [3, 5], [N("Where", ["c", "k2", "x"], "y")], cs))
        out.append(Case("Where[mask row, x, -x]", o, [3, 5],
                        [N("Neg", ["x"], "nx"), N("Where", ["c1", "x", "nx"], "y")],
                        {"c1": cond[:1]}))
        out.append(Case("Where[mask, x4, scalar]", o, [2, 3, 5], [N("Where", ["c", "x", "k"], "y")], cs))
    return out


def split_cases():
    out = []
    for o in opsets(11):
        for sizes in ([2, 3], [1, 1, 3], [5]):
            n = len(sizes)
            parts = [f"p{k}" for k in range(n)]
            if o >= 13:
                sp = N("Split", ["x", "s"], parts, axis=2)
                cs = {"s": c(sizes, np.int64)}
            else:
                sp = N("Split", ["x"], parts, axis=2, split=sizes)
                cs = {}
            out.append(Case(f"Split[{sizes}]", o, [2, 5], [sp, N("Concat", parts[::-1], "y", axis=2)], cs))
        parts = ["p0", "p1", "p2"]
        if o >= 18:
            sp = N("Split", ["x"], parts, axis=-1, num_outputs=3)
            out.append(Case("Split[num_outputs=3 of 7]", o, [2, 7],
                            [sp, N("Concat", ["p2", "p0", "p1"], "y", axis=-1)]))
        else:
            sp = N("Split", ["x"], parts, axis=1)
            out.append(Case("Split[equal]", o, [6, 2],
                            [sp, N("Concat", ["p2", "p0", "p1"], "y", axis=1)]))
    return out


def softmax_cases():
    out = []
    for o in opsets(11):
        for axis in (1, 2, -1, 3):
            for op in ("Softmax", "LogSoftmax"):
                out.append(Case(f"{op}[axis={axis}]", o, [3, 4, 5], [N(op, ["x"], "y", axis=axis)],
                                scale=3))
    return out


def layernorm_cases():
    out = []
    rng = np.random.default_rng(9)
    for o in opsets(17):
        for axis, sshape in ((-1, [7]), (-2, [5, 7]), (2, [1, 7]), (1, [7])):
            cs = {"g": c(1 + 0.2 * rng.standard_normal(sshape)),
                  "b": c(0.3 * rng.standard_normal(sshape))}
            out.append(Case(f"LayerNormalization[axis={axis},scale {sshape}]", o, [3, 5, 7],
                            [N("LayerNormalization", ["x", "g", "b"], "y", axis=axis)], cs, scale=2))
        cs = {"g": c(1 + 0.2 * rng.standard_normal([7]))}
        out.append(Case("LayerNormalization[no bias, eps]", o, [4, 7],
                        [N("LayerNormalization", ["x", "g"], "y", epsilon=1e-2)], cs))
        out.append(Case("LayerNormalization[Mean, InvStdDev used]", o, [4, 7],
                        [N("LayerNormalization", ["x", "g"], ["n", "mu", "inv"]),
                         N("Add", ["n", "mu"], "t"), N("Mul", ["t", "inv"], "y")], cs))
        out.append(Case("LayerNormalization[Mean unused]", o, [4, 7],
                        [N("LayerNormalization", ["x", "g"], ["y", "mu"])], cs))
    return out


def matmul_cases():
    out = []
    rng = np.random.default_rng(11)
    for o in opsets(11, 13):
        out.append(Case("MatMul[x, x^T]", o, [5, 6],
                        [N("Transpose", ["x"], "xt", perm=[0, 2, 1]), N("MatMul", ["x", "xt"], "y")]))
        out.append(Case("MatMul[x^T, x]", o, [5, 6],
                        [N("Transpose", ["x"], "xt", perm=[0, 2, 1]), N("MatMul", ["xt", "x"], "y")]))
        out.append(Case("MatMul[batched const weight]", o, [2, 5, 6],
                        [N("MatMul", ["x", "w"], "y")], {"w": c(rng.standard_normal((2, 6, 3)))}))
        out.append(Case("MatMul[const, x]", o, [5, 6],
                        [N("MatMul", ["a", "x"], "y")], {"a": c(rng.standard_normal((4, 5)))}))
        out.append(Case("MatMul[x, vector]", o, [6],
                        [N("MatMul", ["x", "v"], "y")], {"v": c(rng.standard_normal(6))}))
        out.append(Case("MatMul[x3, vector]", o, [5, 6],
                        [N("MatMul", ["x", "v"], "y")], {"v": c(rng.standard_normal(6))}))
        out.append(Case("MatMul[vector, x]", o, [5, 6],
                        [N("MatMul", ["v", "x"], "y")], {"v": c(rng.standard_normal(5))}))
        out.append(Case("MatMul[broadcast heads]", o, [3, 5, 17],
                        [N("Slice", ["x", "s0", "s1", "s2"], "x1"),
                         N("Transpose", ["x1"], "x1t", perm=[0, 1, 3, 2]),
                         N("MatMul", ["x", "x1t"], "y")],
                        {"s0": c([0], np.int64), "s1": c([1], np.int64), "s2": c([1], np.int64)}))
        out.append(Case("MatMul[wide, 37 columns]", o, [3, 37],
                        [N("Transpose", ["x"], "xt", perm=[0, 2, 1]), N("MatMul", ["xt", "x"], "y")]))
    return out


def dropout_cases():
    out = []
    for o in opsets(12):
        out.append(Case("Dropout[ratio, mask unused]", o, [3, 5],
                        [N("Dropout", ["x", "r"], ["d", "mask"]), N("Relu", ["d"], "y")],
                        {"r": c(0.3)}))
        out.append(Case("Dropout[training_mode false]", o, [3, 5],
                        [N("Dropout", ["x", "r", "t"], "y")], {"r": c(0.3), "t": np.array(False)}))
        out.append(Case("Identity", o, [3, 5], [N("Identity", ["x"], "h"), N("Relu", ["h"], "y")]))
    return out


class ModelCase:
    """A whole model (an attention block) instead of a node list."""

    def __init__(self, name, opset, m, shape, fused):
        self.name, self.opset, self._m, self.shape = name, opset, m, shape
        self.fused, self.scale = fused, 1.0

    def model(self):
        return self._m


def attention_cases():
    out = []
    for o in opsets(13):
        for style in ("separate", "packed"):
            for mask in (None, "add", "where"):
                m = am.encoder(C=5, W=9, E=12, H=3, layers=2, ff=14, style=style, mask=mask,
                               opset=o, seed=o)
                out.append(ModelCase(f"encoder[{style}, mask {mask}]", o, m, [5, 9], True))
    # a block without the output projection, with one head, and a block whose
    # scores are also used elsewhere (so it must run unfused)
    for o in opsets(13, 17):
        for name, E, H, out_proj, leak in (("no output projection", 8, 2, False, False),
                                           ("one head", 6, 1, True, False),
                                           ("scores used elsewhere", 8, 2, True, True)):
            b = am._B(o)
            x = b.op("Transpose", ["input"], perm=[0, 2, 1])
            a = am.attention(b, x, 7, E, H, out_proj=out_proj, opset=o)
            if leak:
                p = [n for n in b.nodes if n.op_type == "Softmax"][0].output[0]
                r = b.op("ReduceMax", [p], axes=[1, 3], keepdims=0)  # [N, L]
                r = b.op("Unsqueeze", [r, b.const(np.array([2], dtype=np.int64), "ax")])
                a = b.op("Add", [a, r])
            b.nodes.append(helper.make_node("Identity", [a], ["output"], name="out"))
            g = helper.make_graph(b.nodes, "att",
                                  [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", E, 7])],
                                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
                                  initializer=b.inits)
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", o)])
            m.ir_version = 8
            out.append(ModelCase(f"attention[{name}]", o, m, [E, 7], not leak))
    return out


def refusal_cases():
    """(name, case, words the message must hold)."""
    return [
        ("Split of the batch axis",
         Case("s", 13, [3], [N("Split", ["x"], ["y", "y2"], axis=0)]),
         ["Split along the batch dimension"]),
        ("Pad of the batch axis",
         Case("p", 13, [3], [N("Pad", ["x", "p"], "y")], {"p": c([1, 0, 0, 0], np.int64)}),
         ["Pad along the batch dimension"]),
        ("ReduceSum over everything",
         Case("r", 13, [3], [N("ReduceSum", ["x"], "y")]), ["over the batch dimension"]),
        ("Clip with a runtime bound",
         Case("c", 13, [3], [N("Neg", ["x"], "m"), N("Clip", ["x", "m"], "y")]),
         ["min (input 1", "constant scalar"]),
        ("LayerNormalization over the batch",
         Case("l", 17, [3], [N("LayerNormalization", ["x", "g"], "y", axis=0)], {"g": c(np.ones((1, 3)))}),
         ["over the batch dimension"]),
    ]


def engine(exe, path, x, kernels, tmp):
    """The engine's output, or None and its message when it refuses."""
    try:
        return run_engine(exe, path, x, kernels, tmp), None
    except RuntimeError as e:
        return None, str(e)


def run_case(exe, case, tmp, stats):
    label = f"{case.name} @opset {case.opset}"
    path = os.path.join(tmp, "m.onnx")
    onnx.save(case.model(), path)
    sess = session(path)
    inp = sess.get_inputs()[0]
    rng = np.random.default_rng(zlib.crc32(label.encode()))
    worst = 0.0
    for n in (7, 1):
        x = (case.scale * rng.standard_normal([n] + list(case.shape))).astype(np.float32)
        ref = sess.run(None, {inp.name: x})[0]
        got = {}
        for k in KERNELS:
            y, err = engine(exe, path, x, k, tmp)
            if y is None:
                stats["failed"].append(f"{label} [{k}]: refused: {err}")
                return
            if y.shape != ref.shape:
                stats["failed"].append(f"{label} [{k}]: shape {y.shape} vs {ref.shape}")
                return
            d = float(np.max(np.abs(y.astype(np.float64) - ref))) if y.size else 0.0
            if not d <= TOL:
                stats["failed"].append(f"{label} [{k}, batch {n}]: max abs diff {d:.3g}")
                return
            worst = max(worst, d)
            got[k] = y
        for k in KERNELS[1:]:
            d = float(np.max(np.abs(got[k] - got["generic"]))) if ref.size else 0.0
            if not d <= TOL:
                stats["failed"].append(f"{label}: {k} vs generic differ by {d:.3g}")
                return
    if case.fused is not None:
        r = subprocess.run([exe, "inspect", path], capture_output=True, text=True)
        fused = " attention " in r.stdout
        if fused != case.fused:
            stats["failed"].append(f"{label}: fused attention step {'missing' if case.fused else 'present'}")
            return
    stats["passed"] += 1
    stats["worst"] = max(stats["worst"], worst)
    print(f"ok   {label}: max abs diff {worst:.3g}")


def main():
    if len(sys.argv) != 2:
        print("usage: test_onnx_ops.py BUILD_DIR")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    stats = {"passed": 0, "failed": [], "worst": 0.0}
    cases = (elementwise_cases() + reduce_cases() + pad_cases() + where_cases() + split_cases()
             + softmax_cases() + layernorm_cases() + matmul_cases() + dropout_cases()
             + attention_cases())
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            run_case(exe, case, tmp, stats)
        for name, case, words in refusal_cases():
            path = os.path.join(tmp, "bad.onnx")
            onnx.save(case.model(), path)
            r = subprocess.run([exe, "inspect", path], capture_output=True, text=True)
            if r.returncode == 0 or not all(w in r.stderr for w in words):
                stats["failed"].append(f"refusal '{name}': exit {r.returncode}, {r.stderr.strip()}")
            else:
                stats["passed"] += 1
                print(f"ok   refusal '{name}': {r.stderr.strip()}")
    for f in stats["failed"]:
        print(f"FAIL {f}")
    print(f"{stats['passed']} passed, {len(stats['failed'])} failed; "
          f"worst max abs diff {stats['worst']:.3g}")
    return 1 if stats["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
