#!/usr/bin/env python3
"""2-D convolution, 2-D pooling and the recurrent layers against ONNX Runtime.

    tests/test_ops_conv_rnn.py BUILD_DIR [-k SUBSTRING]

One small model per op and variant, built here with onnx.helper (opsets 11,
13 and 17 in turn), odd sizes on purpose:
  Conv over [N, C, W] with groups of an odd channel count, depthwise;
  Conv over [N, C, H, W]: bias or none, strides, dilations, explicit pads,
    auto_pad SAME_UPPER / SAME_LOWER / VALID, groups (odd channels per
    group, depthwise), fused BatchNormalization and activations, a
    DeepLOB-sized first layer;
  MaxPool / AveragePool over [N, C, H, W]: strides, pads, dilations,
    ceil_mode, count_include_pad, auto_pad; GlobalAveragePool and
    GlobalMaxPool ([N, C, H, W] and [N, C, W]);
  LSTM and GRU: forward, reverse, bidirectional; layout 0 and 1; each output
    (Y, Y_h, Y_c) as the model's output; initial states (computed from the
    input, so they differ per window) or none; GRU linear_before_reset 0
    and 1; stacks of two layers; sequence_lens equal to the length (and a
    refusal when they differ).
Each model runs 64 random windows through `pattern-engine infer` with the
kernels auto, avx2 and generic, and through ONNX Runtime (one thread); max
|diff| must be <= 1e-5. ONNX Runtime refuses layout = 1, so a layout-1 model
is compared with ONNX Runtime's output for its twin: the same weights with
layout 0 and Transposes around it (what the ONNX spec defines layout 1 to
mean).

Exit 77 with a SKIP line when onnxruntime or numpy are missing."""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

TOL = 1e-5
KERNELS = ("auto", "avx2", "generic")
N_WINDOWS = 64
OPSETS = (11, 13, 17)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "models"))
from make_test_models import W, i64, init  # noqa: E402 (weights: its fixed seed)
from test_onnx_parity import run_engine, session  # noqa: E402


def make(nodes, inits, in_shape, opset, batch="N"):
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch] + list(in_shape))
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "g", [inp], [out], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="test_ops_conv_rnn.py")
    m.ir_version = 8
    return m


def unsqueeze(x, y, axis, opset, inits):
    if opset >= 13:
        inits.append(i64(y + "_axes", [axis]))
        return helper.make_node("Unsqueeze", [x, y + "_axes"], [y])
    return helper.make_node("Unsqueeze", [x], [y], axes=[axis])


def squeeze(x, y, axis, opset, inits):
    if opset >= 13:
        inits.append(i64(y + "_axes", [axis]))
        return helper.make_node("Squeeze", [x, y + "_axes"], [y])
    return helper.make_node("Squeeze", [x], [y], axes=[axis])


# ---- cases ------------------------------------------------------------------
CASES = []  # (name, model, in_shape, oracle model or None, batch)


def conv_case(name, cin, cout, hw, k, opset, bias=True, after=None, batch=None, **attrs):
    group = attrs.get("group", 1)
    inits = [init("w", W(cout, cin // group, *k))]
    ins = ["input", "w"]
    if bias:
        inits.append(init("b", W(cout, scale=0.5)))
        ins.append("b")
    last = "output" if after is None else "c"
    nodes = [helper.make_node("Conv", ins, [last], kernel_shape=list(k), **attrs)]
    if after == "bn_relu":
        inits += [init("s", 1 + W(cout, scale=0.2)), init("t", W(cout, scale=0.2)),
                  init("mu", W(cout, scale=0.2)), init("var", 0.5 + np.abs(W(cout)))]
        nodes += [helper.make_node("BatchNormalization", ["c", "s", "t", "mu", "var"], ["bn"]),
                  helper.make_node("Relu", ["bn"], ["output"])]
    elif after == "leaky":
        nodes.append(helper.make_node("LeakyRelu", ["c"], ["output"], alpha=0.01))
    elif after is not None:
        nodes.append(helper.make_node(after, ["c"], ["output"]))
    CASES.append((name, make(nodes, inits, [cin] + list(hw), opset), [cin] + list(hw), None))


def pool_case(name, op, c, hw, opset, **attrs):
    nodes = [helper.make_node(op, ["input"], ["output"], **attrs)]
    CASES.append((name, make(nodes, [], [c] + list(hw), opset), [c] + list(hw), None))


def conv_cases():
    o = iter(OPSETS * 20)
    # 1-D, grouped with an odd count of output channels per group and
    # depthwise (the AVX2 kernel once left a channel of each pair unwritten)
    conv_case("conv1d groups 3 (3 out per group)", 6, 9, (29,), (3,), next(o), group=3,
              pads=[1, 1])
    conv_case("conv1d depthwise 5", 5, 5, (40,), (4,), next(o), group=5, strides=[2],
              dilations=[2])
    conv_case("conv1d groups 2 (5 out per group) + Relu", 4, 10, (33,), (2,), next(o),
              group=2, after="Relu")
    conv_case("conv 3x3 pads 1", 3, 5, (9, 11), (3, 3), next(o), pads=[1, 1, 1, 1])
    conv_case("conv strides 2x3 dil 2x1 pads 0,2,1,0 no bias", 2, 4, (13, 17), (3, 2),
              next(o), bias=False, strides=[2, 3], dilations=[2, 1], pads=[0, 2, 1, 0])
    conv_case("conv groups 3 (3 out per group)", 6, 9, (8, 10), (2, 3), next(o), group=3)
    conv_case("conv groups 2 odd in/out", 2 * 3, 2 * 5, (7, 9), (3, 1), next(o), group=2,
              pads=[1, 0, 1, 0])
    conv_case("conv depthwise 5", 5, 5, (7, 7), (3, 3), next(o), group=5, pads=[1, 1, 1, 1])
    conv_case("conv depthwise x2 stride 2", 3, 6, (11, 8), (3, 3), next(o), group=3,
              strides=[2, 2])
    conv_case("conv SAME_UPPER stride 2", 3, 4, (10, 9), (4, 3), next(o), auto_pad="SAME_UPPER",
              strides=[2, 2])
    conv_case("conv SAME_LOWER", 2, 3, (7, 8), (4, 2), next(o), auto_pad="SAME_LOWER")
    conv_case("conv VALID", 2, 3, (7, 8), (3, 3), next(o), auto_pad="VALID")
    conv_case("conv + BatchNormalization + Relu", 3, 7, (9, 6), (3, 3), next(o),
              after="bn_relu", pads=[1, 1, 1, 1])
    conv_case("conv + LeakyRelu", 4, 6, (10, 5), (4, 1), next(o), after="leaky",
              pads=[1, 0, 2, 0])
    conv_case("conv + Sigmoid", 2, 3, (6, 6), (2, 2), next(o), after="Sigmoid")
    conv_case("conv + Tanh groups 2", 4, 6, (6, 9), (1, 3), next(o), after="Tanh", group=2)
    conv_case("conv DeepLOB first layer", 1, 16, (100, 40), (1, 2), next(o), after="leaky",
              strides=[1, 2])
    conv_case("conv DeepLOB (4,1) same", 16, 16, (100, 20), (4, 1), next(o), after="leaky",
              auto_pad="SAME_UPPER")
    conv_case("conv DeepLOB (1,10)", 16, 16, (100, 10), (1, 10), next(o), after="leaky")
    pool_case("maxpool 3x2 stride 2x1 pads", "MaxPool", 3, (9, 8), next(o), kernel_shape=[3, 2],
              strides=[2, 1], pads=[1, 0, 1, 1])
    pool_case("maxpool ceil_mode", "MaxPool", 2, (10, 7), next(o), kernel_shape=[3, 3],
              strides=[2, 2], ceil_mode=1)
    pool_case("maxpool dilations", "MaxPool", 2, (11, 9), next(o), kernel_shape=[2, 3],
              dilations=[2, 1], pads=[1, 1, 0, 1])
    pool_case("maxpool SAME_UPPER", "MaxPool", 3, (8, 7), next(o), kernel_shape=[3, 2],
              strides=[2, 2], auto_pad="SAME_UPPER")
    pool_case("maxpool (3,1) stride 1 pads 1 (inception)", "MaxPool", 4, (20, 1), next(o),
              kernel_shape=[3, 1], pads=[1, 0, 1, 0])
    pool_case("maxpool (3,1) over 5 columns, dilation 2, pads 2", "MaxPool", 3, (12, 5), next(o),
              kernel_shape=[3, 1], dilations=[2, 1], pads=[2, 0, 2, 0])
    for cip in (0, 1):
        for ceil in (0, 1):
            pool_case(f"avgpool count_include_pad {cip} ceil_mode {ceil}", "AveragePool", 3,
                      (10, 9), next(o), kernel_shape=[3, 2], strides=[2, 2],
                      pads=[1, 0, 1, 1], count_include_pad=cip, ceil_mode=ceil)
    pool_case("avgpool SAME_LOWER", "AveragePool", 2, (7, 8), next(o), kernel_shape=[2, 3],
              auto_pad="SAME_LOWER")
    pool_case("avgpool VALID stride 3", "AveragePool", 2, (11, 10), next(o), kernel_shape=[3, 3],
              strides=[3, 3], auto_pad="VALID")
    pool_case("GlobalAveragePool 4-D", "GlobalAveragePool", 5, (7, 9), next(o))
    pool_case("GlobalMaxPool 4-D", "GlobalMaxPool", 5, (7, 9), next(o))
    pool_case("GlobalMaxPool 3-D", "GlobalMaxPool", 4, (13,), next(o))


def rnn_model(op, H, I, S, direction, layout, use, state, lbr, opset, stack=False):
    """[N, S, I] -> (Transpose for layout 0) -> op -> the output `use`
    (0 Y, 1 Y_h, 2 Y_c) with its batch moved to axis 0. Weights are drawn
    by the caller's rng state so the two layouts of one case share them."""
    G = 4 if op == "LSTM" else 3
    D = 2 if direction == "bidirectional" else 1
    inits = []
    nodes = []
    x = "input"
    if layout == 0:
        nodes.append(helper.make_node("Transpose", ["input"], ["xt"], perm=[1, 0, 2]))
        x = "xt"
    wts = {k: v for k, v in state["w"].items()}
    inits += [init("W", wts["W"]), init("R", wts["R"]), init("B", wts["B"])]
    ins = [x, "W", "R", "B", "", "", ""]
    if state["init"]:
        # initial states from the window: tanh(x[:, 0, :] @ Wd) per direction
        nodes.append(helper.make_node("Gather", ["input", "t0"], ["x0"], axis=1))
        inits.append(i64("t0", 0))
        for k, name in enumerate(["h0", "c0"][: 2 if op == "LSTM" else 1]):
            parts = []
            for d in range(D):
                p = f"{name}_{d}"
                inits.append(init(p + "_w", wts[p]))
                nodes += [helper.make_node("MatMul", ["x0", p + "_w"], [p + "_mm"]),
                          helper.make_node("Tanh", [p + "_mm"], [p + "_t"]),
                          unsqueeze(p + "_t", p + "_u", 0 if layout == 0 else 1, opset, inits)]
                parts.append(p + "_u")
            if D == 1:
                nodes.append(helper.make_node("Identity", parts, [name]))
            else:
                nodes.append(helper.make_node("Concat", parts, [name], axis=0 if layout == 0 else 1))
            ins[5 + k] = name
    attrs = dict(hidden_size=H, direction=direction)
    if layout:
        attrs["layout"] = 1
    if op == "GRU" and lbr is not None:
        attrs["linear_before_reset"] = lbr
    outs = ["Y", "Yh", "Yc"][: 3 if op == "LSTM" else 2]
    while ins and ins[-1] == "":
        ins.pop()
    nodes.append(helper.make_node(op, ins, outs, **attrs))
    src = outs[use]
    if stack:
        # a second layer on Y: [S, D, N, H] -> [S, N, D*H] (layout 0) or
        # [N, S, D, H] -> [N, S, D*H] (layout 1)
        if layout == 0:
            nodes.append(helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]))
            y = "Yt"
        else:
            y = "Y"
        inits.append(i64("shp", [0, 0, -1]))
        nodes.append(helper.make_node("Reshape", [y, "shp"], ["x2"]))
        inits += [init("W2", wts["W2"]), init("R2", wts["R2"])]
        nodes.append(helper.make_node(op, ["x2", "W2", "R2"], ["Y2", "Yh2"], **attrs))
        src = "Yh2" if use else "Y2"
    if src.startswith("Y") and not src.startswith("Yh") and not src.startswith("Yc"):
        perm = [2, 0, 1, 3] if layout == 0 else None
    else:
        perm = [1, 0, 2] if layout == 0 else None
    if perm is None:
        nodes.append(helper.make_node("Identity", [src], ["output"]))
    else:
        nodes.append(helper.make_node("Transpose", [src], ["output"], perm=perm))
    return make(nodes, inits, [S, I], opset)


def rnn_weights(op, H, I, direction, stack):
    G = 4 if op == "LSTM" else 3
    D = 2 if direction == "bidirectional" else 1
    w = {"W": W(D, G * H, I), "R": W(D, G * H, H), "B": W(D, 2 * G * H)}
    for name in ("h0", "c0"):
        for d in range(D):
            w[f"{name}_{d}"] = W(I, H, scale=1.0)
    if stack:
        w["W2"] = W(D, G * H, D * H)
        w["R2"] = W(D, G * H, H)
    return w


def rnn_cases():
    o = iter(OPSETS * 100)
    for op in ("LSTM", "GRU"):
        for direction in ("forward", "reverse", "bidirectional"):
            for with_state in (0, 1):
                for lbr in ((None,) if op == "LSTM" else (0, 1)):
                    H, I, S = (7, 3, 9) if with_state else (13, 5, 6)
                    w = rnn_weights(op, H, I, direction, False)
                    st = {"w": w, "init": with_state}
                    opset = next(o)
                    for use in range(3 if op == "LSTM" else 2):
                        for layout in (0, 1):
                            name = (f"{op} {direction} layout {layout} output {['Y', 'Y_h', 'Y_c'][use]}"
                                    f"{' initial states' if with_state else ''}"
                                    f"{'' if lbr is None else f' linear_before_reset {lbr}'}"
                                    f" opset {opset}")
                            m = rnn_model(op, H, I, S, direction, layout, use, st, lbr, opset)
                            twin = (rnn_model(op, H, I, S, direction, 0, use, st, lbr, opset)
                                    if layout else None)
                            CASES.append((name, m, [S, I], twin))
    for op in ("LSTM", "GRU"):
        for direction in ("forward", "bidirectional"):
            for layout in (0, 1):
                H, I, S = 6, 4, 8
                st = {"w": rnn_weights(op, H, I, direction, True), "init": 0}
                for use in (0, 1):
                    name = f"{op} {direction} 2 layers layout {layout} output {['Y', 'Y_h'][use]}"
                    m = rnn_model(op, H, I, S, direction, layout, use, st, 1, 17, stack=True)
                    twin = (rnn_model(op, H, I, S, direction, 0, use, st, 1, 17, stack=True)
                            if layout else None)
                    CASES.append((name, m, [S, I], twin))


def seq_lens_model(lens, S=5, I=3, H=4):
    nodes = [helper.make_node("Transpose", ["input"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W", "R", "B", "sl"], ["", "Yh"], hidden_size=H,
                              name="lstm_lens"),
             helper.make_node("Transpose", ["Yh"], ["output"], perm=[1, 0, 2])]
    inits = [init("W", W(1, 4 * H, I)), init("R", W(1, 4 * H, H)), init("B", W(1, 8 * H)),
             numpy_helper.from_array(np.asarray(lens, dtype=np.int32), "sl")]
    return make(nodes, inits, [S, I], 17)


def fixed_batch_model(op, direction, use, lbr, S=5, NB=3, I=4, H=6):
    """A graph without a batch dimension whose X holds NB sequences:
    input [S, NB, I] (layout 0), initial states given, output `use`."""
    G = 4 if op == "LSTM" else 3
    D = 2 if direction == "bidirectional" else 1
    inits = [init("W", W(D, G * H, I)), init("R", W(D, G * H, H)),
             init("B", W(D, 2 * G * H)), init("h0", W(D, NB, H, scale=1.0))]
    ins = ["input", "W", "R", "B", "", "h0"]
    attrs = {"hidden_size": H, "direction": direction}
    if op == "LSTM":
        inits.append(init("c0", W(D, NB, H, scale=1.0)))
        ins.append("c0")
    else:
        attrs["linear_before_reset"] = lbr
    outs = ["Y", "Yh", "Yc"][: 3 if op == "LSTM" else 2]
    outs[use] = "output"
    m = make([helper.make_node(op, ins, outs, **attrs)], inits, [NB, I], 17, batch=S)
    return m


def fixed_batch_cases():
    """(name, model): every op, direction and output over a fixed batch."""
    out = []
    for op in ("LSTM", "GRU"):
        for direction in ("forward", "reverse", "bidirectional"):
            for lbr in ((0,) if op == "LSTM" else (0, 1)):
                for use in range(3 if op == "LSTM" else 2):
                    name = (f"{op} {direction}{' lbr' if lbr else ''} fixed batch 3 "
                            f"output {['Y', 'Y_h', 'Y_c'][use]}")
                    out.append((name, fixed_batch_model(op, direction, use, lbr)))
    return out


# ---- running ------------------------------------------------------------------
def check(exe, name, model, in_shape, twin, tmp, batch=N_WINDOWS):
    path = os.path.join(tmp, "m.onnx")
    onnx.save(model, path)
    x = np.random.default_rng(5).standard_normal([batch] + list(in_shape)).astype(np.float32)
    ref = session((twin if twin is not None else model).SerializeToString()).run(
        None, {"input": x})[0]
    ok = True
    for kernels in KERNELS:
        try:
            y = run_engine(exe, path, x, kernels, tmp)
        except RuntimeError as e:
            print(f"FAIL {name} [{kernels}]: {e}")
            return False
        if y.size != ref.size:
            print(f"FAIL {name} [{kernels}]: {y.shape} vs ONNX Runtime {ref.shape}")
            ok = False
            continue
        d = float(np.max(np.abs(y.reshape(ref.shape).astype(np.float64) - ref)))
        good = d <= TOL
        ok &= good
        print(f"{'ok' if good else 'FAIL':4} {name} [{kernels}]: max abs diff {d:.3g}")
    return ok


def main():
    if len(sys.argv) < 2:
        print("usage: test_ops_conv_rnn.py BUILD_DIR [-k SUBSTRING]")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    pick = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "-k" else ""
    conv_cases()
    rnn_cases()
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, m, shape, twin in CASES:
            if pick and pick not in name:
                continue
            ok = check(exe, name, m, shape, twin, tmp)
            passed += ok
            failed += not ok
        for name, m in fixed_batch_cases():
            if pick and pick not in name:
                continue
            # the declared shape itself: X [5, 3, 4], one window
            ok = check(exe, name, m, [3, 4], None, tmp, batch=5)
            passed += ok
            failed += not ok
        if not pick or "sequence_lens" in pick:
            # sequence_lens: equal to the length runs (fed a batch of 3, as
            # the constant has 3 lengths; the batch axis stays symbolic, a
            # fixed batch of 3 would make a graph without a batch
            # dimension); shorter ones are refused by name
            ok = check(exe, "LSTM sequence_lens all equal", seq_lens_model([5, 5, 5]), [5, 3],
                       None, tmp, batch=3)
            path = os.path.join(tmp, "lens.onnx")
            onnx.save(seq_lens_model([5, 3, 5]), path)
            r = subprocess.run([exe, "inspect", path], capture_output=True, text=True)
            refused = (r.returncode != 0 and "lstm_lens" in r.stderr
                       and "sequence_lens" in r.stderr)
            print(f"{'ok' if refused else 'FAIL':4} LSTM sequence_lens 5,3,5 refused: "
                  f"exit {r.returncode}: {r.stderr.strip()}")
            ok &= refused
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
