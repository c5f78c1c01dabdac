#!/usr/bin/env python3
"""Writes the ONNX test models of the importer and the cpu backend.

    .venv/bin/python tests/models/make_test_models.py   # rewrites tests/models/*.onnx

Built with onnx.helper (no PyTorch needed) with a fixed seed, so a rerun gives
the same bytes. Two kinds:

  *.onnx       models the engine must run with ONNX Runtime's numbers
               (tests/test_onnx_parity.py): odd shapes on purpose (Conv groups,
               dilation, stride 2, BatchNorm, pooling, GRU, LSTM with the
               PyTorch-style shape subgraph for the initial state (zeros, or
               other values in lstm_state.onnx, H = 20), a MLP
               with MatMul+Add, a decomposed Gelu and LayerNorm, Transpose,
               Slice, Gather, Concat...), opsets 11, 13 and 17.
  bad/*.onnx   one model per rejection path; tests/test_model.c asserts the
               message names the node and the reason.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240601)


def W(*shape, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    s = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
    return (rng.standard_normal(shape) * s).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def i64(name, vals):
    return numpy_helper.from_array(np.asarray(vals, dtype=np.int64), name)


def model(nodes, inits, inp_shape, out_name, opset, name, meta=None,
          out_shape=None, ir=8, in_name="input", batch="N"):
    inp = helper.make_tensor_value_info(in_name, TensorProto.FLOAT,
                                        [batch] + list(inp_shape))
    out = helper.make_tensor_value_info(
        out_name, TensorProto.FLOAT, None if out_shape is None else [batch, out_shape])
    g = helper.make_graph(nodes, name, [inp], [out], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="make_test_models.py")
    m.ir_version = ir
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    return m


def save(m, fname, check=True):
    if check:
        onnx.checker.check_model(m)
    path = os.path.join(HERE, fname)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(m, path)
    return path


def shape_state(prefix, x, batch_axis, dims_before, dims_after, value=0.0):
    """PyTorch's initial-state subgraph: Shape -> Gather(batch) -> Unsqueeze
    -> Concat with constants -> ConstantOfShape(value, 0 as PyTorch has it)."""
    nodes = [
        helper.make_node("Shape", [x], [prefix + "_shape"]),
        helper.make_node("Constant", [], [prefix + "_bidx"],
                         value=helper.make_tensor("v", TensorProto.INT64, [], [batch_axis])),
        helper.make_node("Gather", [prefix + "_shape", prefix + "_bidx"], [prefix + "_n"], axis=0),
        helper.make_node("Unsqueeze", [prefix + "_n", prefix + "_ax0"], [prefix + "_n1"]),
        helper.make_node("Concat", [prefix + "_pre", prefix + "_n1", prefix + "_post"],
                         [prefix + "_dims"], axis=0),
        helper.make_node("ConstantOfShape", [prefix + "_dims"], [prefix + "_zeros"],
                         value=helper.make_tensor("z", TensorProto.FLOAT, [1], [value])),
    ]
    inits = [i64(prefix + "_ax0", [0]), i64(prefix + "_pre", dims_before),
             i64(prefix + "_post", dims_after)]
    return nodes, inits, prefix + "_zeros"


def cnn_toy():
    nodes = [
        helper.make_node("Conv", ["input", "c1w", "c1b"], ["c1"], kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2w", "c2b"], ["c2"], kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["output"], transB=1),
    ]
    inits = [init("c1w", W(8, 1, 3)), init("c1b", W(8)), init("c2w", W(16, 8, 3)),
             init("c2b", W(16)), init("fw", W(2, 512)), init("fb", W(2))]
    return model(nodes, inits, [1, 32], "output", 17, "cnn_toy",
                 {"pe.features": "return_z", "pe.window": "32",
                  "pe.classes": "none,spike", "pe.output": "logits"}, out_shape=2)


def mlp_gemm():
    nodes = [
        helper.make_node("Flatten", ["input"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["output"], transB=1),
    ]
    inits = [init("w1", W(64, 32)), init("b1", W(64)), init("w2", W(2, 64)), init("b2", W(2))]
    return model(nodes, inits, [1, 32], "output", 13, "mlp_gemm", out_shape=2)


def conv_odd():
    """groups, dilation, stride 2, BatchNorm (folded), LeakyRelu, pools."""
    C = 4
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["c1"], kernel_shape=[3], pads=[2, 2],
                         dilations=[2], group=2),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["bn1"],
                         epsilon=1e-3),
        helper.make_node("LeakyRelu", ["bn1"], ["a1"], alpha=0.1),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], kernel_shape=[5], strides=[2],
                         pads=[1, 2]),
        helper.make_node("BatchNormalization", ["c2", "g2", "be2", "m2", "v2"], ["bn2"]),
        helper.make_node("Relu", ["bn2"], ["a2"]),
        helper.make_node("MaxPool", ["a2"], ["p1"], kernel_shape=[3], strides=[2], pads=[1, 1]),
        helper.make_node("AveragePool", ["a2"], ["p2"], kernel_shape=[4], strides=[3],
                         pads=[1, 1], count_include_pad=1, ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["a2"], ["gp"]),
        helper.make_node("Flatten", ["p1"], ["f1"]),
        helper.make_node("Flatten", ["p2"], ["f2"]),
        helper.make_node("Flatten", ["gp"], ["f3"]),
        helper.make_node("Concat", ["f1", "f2", "f3"], ["cat"], axis=1),
        helper.make_node("Gemm", ["cat", "fw", "fb"], ["logits"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    # shapes: in [4, 37]; c1 [8, 37]; c2 [12, (37+3-5)//2+1=18]; p1 [12, 9];
    # p2: ceil((18+2-4)/3)+1 = 7 (the last window starts inside the input,
    # so both ceil_mode rules agree) -> [12, 7]; gp [12, 1]
    inits = [init("w1", W(8, 2, 3)),
             init("g1", rng.uniform(0.5, 1.5, 8).astype(np.float32)), init("be1", W(8)),
             init("m1", W(8)), init("v1", rng.uniform(0.5, 2, 8).astype(np.float32)),
             init("w2", W(12, 8, 5)), init("b2", W(12)),
             init("g2", rng.uniform(0.5, 1.5, 12).astype(np.float32)), init("be2", W(12)),
             init("m2", W(12)), init("v2", rng.uniform(0.5, 2, 12).astype(np.float32)),
             init("fw", W(5, 12 * 9 + 12 * 7 + 12)), init("fb", W(5))]
    return model(nodes, inits, [C, 37], "output", 13, "conv_odd",
                 {"pe.features": "return_z,log_volume,ema_gap,vwap_dev",
                  "pe.classes": "a,b,c,d,e", "pe.output": "probs"}, out_shape=5)


def gru():
    """[N, 3, 32] -> Transpose to [32, N, 3] -> GRU (PyTorch style:
    linear_before_reset=1, initial state from a shape subgraph) -> Y_h."""
    H, I, S = 24, 3, 32
    sn, si, h0 = shape_state("h0", "input", 0, [1], [H])
    nodes = [helper.make_node("Transpose", ["input"], ["xt"], perm=[2, 0, 1])] + sn + [
        helper.make_node("GRU", ["xt", "W", "R", "B", "", h0], ["Y", "Yh"], hidden_size=H,
                         linear_before_reset=1),
        helper.make_node("Squeeze", ["Yh", "ax0"], ["h"]),
        helper.make_node("Gemm", ["h", "fw", "fb"], ["output"], transB=1),
    ]
    inits = si + [init("W", W(1, 3 * H, I)), init("R", W(1, 3 * H, H)),
                  init("B", W(1, 6 * H)), i64("ax0", [0]),
                  init("fw", W(3, H)), init("fb", W(3))]
    return model(nodes, inits, [I, S], "output", 14, "gru", out_shape=3)


def gru_lbr0():
    """GRU with linear_before_reset=0 and an explicit zero state, opset 11."""
    H, I, S = 8, 2, 12
    nodes = [
        helper.make_node("Transpose", ["input"], ["xt"], perm=[2, 0, 1]),
        helper.make_node("GRU", ["xt", "W", "R", "B"], ["Y"], hidden_size=H),
        # Y [S, 1, N, H] -> last step
        helper.make_node("Slice", ["Y", "st", "en", "ax"], ["ylast"]),
        helper.make_node("Squeeze", ["ylast"], ["y2"], axes=[0, 1]),
        helper.make_node("Gemm", ["y2", "fw", "fb"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["output"]),
    ]
    inits = [init("W", W(1, 3 * H, I)), init("R", W(1, 3 * H, H)), init("B", W(1, 6 * H)),
             i64("st", [-1]), i64("en", [2 ** 62]), i64("ax", [0]),
             init("fw", W(4, H)), init("fb", W(4))]
    return model(nodes, inits, [I, S], "output", 11, "gru_lbr0", out_shape=4)


def lstm():
    """[N, 4, 16] -> LSTM with h0/c0 from the shape subgraph, all of Y used:
    Y[-1] via Gather, MatMul + Add, LogSoftmax."""
    H, I, S = 16, 4, 16
    sn, si, h0 = shape_state("h0", "input", 0, [1], [H])
    cn, ci, c0 = shape_state("c0", "input", 0, [1], [H])
    nodes = [helper.make_node("Transpose", ["input"], ["xt"], perm=[2, 0, 1])] + sn + cn + [
        helper.make_node("LSTM", ["xt", "W", "R", "B", "", h0, c0], ["Y", "Yh", "Yc"],
                         hidden_size=H),
        helper.make_node("Gather", ["Y", "last"], ["ylast"], axis=0),   # [1, N, H]
        helper.make_node("Squeeze", ["ylast", "ax0"], ["y2"]),         # [N, H]
        helper.make_node("Squeeze", ["Yc", "ax0"], ["c2"]),
        helper.make_node("Concat", ["y2", "c2"], ["hc"], axis=1),      # [N, 2H]
        helper.make_node("MatMul", ["hc", "fw"], ["mm"]),
        helper.make_node("Add", ["mm", "fb"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["output"], axis=-1),
    ]
    inits = si + ci + [init("W", W(1, 4 * H, I)), init("R", W(1, 4 * H, H)),
                       init("B", W(1, 8 * H)), i64("last", S - 1), i64("ax0", [0]),
                       init("fw", W(2 * H, 5)), init("fb", W(5))]
    return model(nodes, inits, [I, S], "output", 17, "lstm", out_shape=5)


def lstm_state():
    """An LSTM with 16 < H < 32 (the pattern model's kernel, with a partial
    second block of 16 units), an odd sequence, a non-zero initial state
    (h0 and c0 from the shape subgraph with other values than PyTorch's
    zeros) and Y_h and Y_c as the outputs used."""
    H, I, S = 20, 3, 7
    sn, si, h0 = shape_state("h0", "input", 0, [1], [H], value=0.25)
    cn, ci, c0 = shape_state("c0", "input", 0, [1], [H], value=-0.6)
    nodes = [helper.make_node("Transpose", ["input"], ["xt"], perm=[2, 0, 1])] + sn + cn + [
        helper.make_node("LSTM", ["xt", "W", "R", "B", "", h0, c0], ["", "Yh", "Yc"],
                         hidden_size=H),
        helper.make_node("Concat", ["Yh", "Yc"], ["hc"], axis=2),     # [1, N, 2H]
        helper.make_node("Squeeze", ["hc", "ax0"], ["hc2"]),          # [N, 2H]
        helper.make_node("Gemm", ["hc2", "fw", "fb"], ["output"], transB=1),
    ]
    inits = si + ci + [init("W", W(1, 4 * H, I, scale=0.8)), init("R", W(1, 4 * H, H)),
                       init("B", W(1, 8 * H)), i64("ax0", [0]),
                       init("fw", W(3, 2 * H)), init("fb", W(3))]
    return model(nodes, inits, [I, S], "output", 17, "lstm_state", out_shape=3)


def lstm_batch_first():
    """A batch-first PyTorch LSTM (Transpose to [S, N, I]) that outputs only
    Y_h (Y left empty), opset 17. (ONNX Runtime has no layout=1 LSTM, so the
    layout=1 path is not checked against it.)"""
    H, I, S = 12, 3, 10
    nodes = [
        helper.make_node("Transpose", ["input"], ["xt"], perm=[2, 0, 1]),  # [S, N, I]
        helper.make_node("LSTM", ["xt", "W", "R", "B"], ["", "Yh"], hidden_size=H),
        helper.make_node("Transpose", ["Yh"], ["yt"], perm=[1, 0, 2]),     # [N, 1, H]
        helper.make_node("Flatten", ["yt"], ["h"]),
        helper.make_node("Gemm", ["h", "fw", "fb"], ["output"], transB=1),
    ]
    inits = [init("W", W(1, 4 * H, I)), init("R", W(1, 4 * H, H)), init("B", W(1, 8 * H)),
             init("fw", W(2, H)), init("fb", W(2))]
    return model(nodes, inits, [I, S], "output", 17, "lstm_batch_first", out_shape=2)


def mlp_matmul():
    """x.view(x.size(0), -1) via a shape subgraph, MatMul+Add, Gelu as its Erf
    decomposition, LayerNorm decomposed (ReduceMean, Sub, Pow, Sqrt, Div),
    Sigmoid, Tanh, Mul broadcasting, Slice with step, Gather of a vector."""
    D, Hd = 2 * 24, 40
    nodes = [
        helper.make_node("Shape", ["input"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shp"], axis=0),
        helper.make_node("Reshape", ["input", "shp"], ["x"]),
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["b1", "m1"], ["a1"]),
        # gelu(x) = x * 0.5 * (1 + erf(x / sqrt(2)))
        helper.make_node("Div", ["a1", "sqrt2"], ["g0"]),
        helper.make_node("Erf", ["g0"], ["g1"]),
        helper.make_node("Add", ["g1", "one"], ["g2"]),
        helper.make_node("Mul", ["a1", "g2"], ["g3"]),
        helper.make_node("Mul", ["g3", "half"], ["g"]),
        # layer norm over the last axis
        helper.make_node("ReduceMean", ["g"], ["mu"], axes=[-1]),
        helper.make_node("Sub", ["g", "mu"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["nrm"]),
        helper.make_node("Mul", ["nrm", "gamma"], ["ln0"]),
        helper.make_node("Add", ["ln0", "beta"], ["ln"]),
        helper.make_node("Sigmoid", ["ln"], ["sg"]),
        helper.make_node("Tanh", ["ln"], ["th"]),
        helper.make_node("Mul", ["sg", "th"], ["st"]),
        helper.make_node("Slice", ["st", "ss", "se", "sa", "sp"], ["sl"]),   # every 2nd
        helper.make_node("Gather", ["st", "gidx"], ["ga"], axis=1),
        helper.make_node("Concat", ["sl", "ga"], ["cat"], axis=1),
        helper.make_node("MatMul", ["cat", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["output"]),
    ]
    gidx = np.array([3, 0, 7, 7, 39, -1], dtype=np.int64)
    inits = [i64("zero", 0), i64("ax0", [0]), i64("minus1", [-1]),
             init("w1", W(D, Hd)), init("b1", W(Hd)),
             init("sqrt2", np.float32(np.sqrt(2))), init("one", np.float32(1)),
             init("half", np.float32(0.5)), init("two", np.float32(2)),
             init("eps", np.float32(1e-5)),
             init("gamma", rng.uniform(0.5, 1.5, Hd).astype(np.float32)), init("beta", W(Hd)),
             i64("ss", [1]), i64("se", [Hd]), i64("sa", [1]), i64("sp", [2]),
             init("gidx", gidx) if False else i64("gidx", gidx),
             init("w2", W(Hd // 2 + len(gidx), 3)), init("b2", W(3))]
    return model(nodes, inits, [2, 24], "output", 13, "mlp_matmul", out_shape=3)


def misc_ops():
    """Transposes that move data, Unsqueeze (opset 11 attribute), Identity,
    Cast, a Constant node, Softmax over channels of [N, C, W], Sub/Div with
    broadcasting over channels, ReduceMean keepdims=0, Neg/Abs/Exp."""
    C, Wd = 3, 10
    nodes = [
        helper.make_node("Constant", [], ["k"], value=helper.make_tensor(
            "k", TensorProto.FLOAT, [C, 1], rng.standard_normal(C).tolist())),
        helper.make_node("Sub", ["input", "k"], ["s1"]),
        helper.make_node("Identity", ["s1"], ["s2"]),
        helper.make_node("Cast", ["s2"], ["s3"], to=TensorProto.FLOAT),
        helper.make_node("Softmax", ["s3"], ["sm"], axis=1),           # opset 11: over C*W
        helper.make_node("Transpose", ["s3"], ["t1"], perm=[0, 2, 1]),  # [N, W, C]
        helper.make_node("Abs", ["t1"], ["ab"]),
        helper.make_node("Neg", ["ab"], ["ng"]),
        helper.make_node("Exp", ["ng"], ["ex"]),
        helper.make_node("ReduceMean", ["ex"], ["rm"], axes=[2], keepdims=0),   # [N, W]
        helper.make_node("Unsqueeze", ["rm"], ["u"], axes=[1]),                 # [N, 1, W]
        helper.make_node("Mul", ["sm", "u"], ["dv"]),                           # [N, C, W]
        helper.make_node("Flatten", ["dv"], ["f"]),
        helper.make_node("Gemm", ["f", "fw"], ["output"]),
    ]
    inits = [init("fw", W(C * Wd, 4))]
    return model(nodes, inits, [C, Wd], "output", 11, "misc_ops", out_shape=4)


# ---- rejection paths -----------------------------------------------------------
def bad_models():
    base_inits = [init("w1", W(4, 8))]
    out = {}
    out["bad/unknown_op.onnx"] = model(
        [helper.make_node("Flatten", ["input"], ["f"]),
         helper.make_node("Hardmax", ["f"], ["output"], name="act0")],
        [], [1, 8], "output", 17, "bad")
    out["bad/bad_attr.onnx"] = model(
        [helper.make_node("Conv", ["input", "cw"], ["output"], name="conv0",
                          kernel_shape=[3], foo=1)],
        [init("cw", W(2, 1, 3))], [1, 8], "output", 17, "bad")
    w2d = W(2, 1, 3, 3)  # drawn as before, so that later models keep their weights
    out["bad/conv3d.onnx"] = model(
        [helper.make_node("Conv", ["input", "cw"], ["output"], name="conv3d")],
        [init("cw", np.stack([w2d] * 3, axis=-1))], [1, 8, 8, 8], "output", 17, "bad")
    m = model([helper.make_node("Flatten", ["input"], ["f"], name="flat"),
               helper.make_node("MatMul", ["f", "w1"], ["output"], name="mm")],
              base_inits, [8], "output", 17, "bad")
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    out["bad/dynamic_dim.onnx"] = m
    m = model([helper.make_node("Flatten", ["input"], ["output"], name="flat")],
              [], [8], "output", 17, "bad")
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    out["bad/wrong_dtype.onnx"] = m
    out["bad/double_weight.onnx"] = model(
        [helper.make_node("MatMul", ["input", "wd"], ["output"], name="mm64")],
        [numpy_helper.from_array(W(8, 4).astype(np.float64), "wd")], [8], "output", 17, "bad")
    out["bad/dangling.onnx"] = model(
        [helper.make_node("Add", ["input", "ghost"], ["output"], name="add0")],
        [], [8], "output", 17, "bad")
    out["bad/opset.onnx"] = model(
        [helper.make_node("Relu", ["input"], ["output"], name="r")], [], [8], "output", 9, "bad")
    out["bad/ir_version.onnx"] = model(
        [helper.make_node("Relu", ["input"], ["output"], name="r")], [], [8], "output", 17,
        "bad", ir=15)
    m = model([helper.make_node("MatMul", ["input", "wx"], ["output"], name="mm_ext")],
              [init("wx", W(8, 4))], [8], "output", 17, "bad")
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "weights.bin"
    out["bad/external_data.onnx"] = m
    out["bad/batch_reshape.onnx"] = model(
        [helper.make_node("Reshape", ["input", "shp"], ["output"], name="reshape_all")],
        [i64("shp", [-1])], [8], "output", 17, "bad")
    out["bad/lstm_clip.onnx"] = model(
        [helper.make_node("Transpose", ["input"], ["xt"], perm=[2, 0, 1]),
         helper.make_node("LSTM", ["xt", "W", "R"], ["", "output"], name="lstm_clip",
                          hidden_size=2, direction="bidirectional", clip=3.0)],
        [init("W", W(2, 8, 1)), init("R", W(2, 8, 2))], [1, 4], "output", 17, "bad")
    # pe.window must be the whole of a count that fits the window: "32abc"
    # and 2^32 + 32 are refused, not read as 32
    for fname, window in (("bad/window_suffix.onnx", "32abc"),
                          ("bad/window_wraps.onnx", str((1 << 32) + 32))):
        out[fname] = model(
            [helper.make_node("ReduceMean", ["input"], ["r"], axes=[1, 2],
                              keepdims=1, name="mean"),
             helper.make_node("Flatten", ["r"], ["output"], name="flat")],
            [], [1, 32], "output", 17, "bad",
            meta={"pe.features": "return_z", "pe.window": window})
    return out


def two_inputs():
    """y = a + 2 * b over two runtime inputs [N, 4] (tests/test_model.c)."""
    g = helper.make_graph(
        [helper.make_node("Mul", ["b", "two"], ["b2"]),
         helper.make_node("Add", ["a", "b2"], ["y"])], "two_inputs",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)],
                          producer_name="make_test_models.py")
    m.ir_version = 9
    return m


def mixed_inputs():
    """y = x * mask + mean over L of table[ids]: float32 x [N, 4], bool mask
    [N, 4], int64 ids [N, 3] (tests/test_model_alloc.c)."""
    table = np.random.default_rng(21).standard_normal((8, 4)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["x", "mf"], ["xm"]),
         helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
         helper.make_node("ReduceMean", ["emb"], ["em"], axes=[1], keepdims=0),
         helper.make_node("Add", ["xm", "em"], ["y"])], "mixed_inputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", 4]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(table, "table")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="make_test_models.py")
    m.ir_version = 8
    return m


def main():
    good = {"cnn_toy.onnx": cnn_toy(), "mlp_gemm.onnx": mlp_gemm(),
            "conv_odd.onnx": conv_odd(), "gru.onnx": gru(), "gru_lbr0.onnx": gru_lbr0(),
            "lstm.onnx": lstm(), "lstm_batch_first.onnx": lstm_batch_first(),
            "mlp_matmul.onnx": mlp_matmul(), "misc_ops.onnx": misc_ops()}
    for f, m in good.items():
        print(save(m, f))
    for f, m in bad_models().items():
        print(save(m, f, check=False))
    # added later: made last so that the models above keep their weights
    print(save(lstm_state(), "lstm_state.onnx"))
    print(save(two_inputs(), "multi/two_inputs.onnx"))
    print(save(mixed_inputs(), "multi/mixed_inputs.onnx"))


if __name__ == "__main__":
    main()
