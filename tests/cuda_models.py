"""Writes small ONNX models that use the step kinds the shipped models do
not (GRU with and without linear_before_reset, pooling, softmax, concat,
broadcasting binary ops, reductions over one axis and several; MatMul of
two runtime tensors with batch broadcasting, Where, Pad in each mode,
LayerNormalization, Conv2d with pads, strides, dilations and groups,
MaxPool and AveragePool 2-D (also alone with softmax steps), the parametrised element-wise ops, the fused
self-attention block with and without a mask, and a Transformer and a
DeepLOB too large for a block's shared memory; inputs as
[time][channel]),
with random weights from a fixed seed, for the cuda backend's parity test.
Exits 77 where onnx is missing.

Usage: cuda_models.py OUTDIR
"""
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

C, W = 4, 16


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def model(nodes, inits, out_dim, path, nwc=False):
    shape = ["N", W, C] if nwc else ["N", C, W]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", out_dim])
    g = helper.make_graph(nodes, "g", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    helper.set_model_props(m, {
        "pe.features": "return_z,log_return,volume_ratio,ema_gap",
        "pe.window": str(W),
        **({"pe.layout": "NWC"} if nwc else {}),
    })
    onnx.checker.check_model(m)
    onnx.save(m, path)


def gemm_head(nodes, inits, x, y, scale, rng):
    """Appends a Gemm from the [N, n] tensor x to 3 scores y, n as shape
    inference finds it over the nodes so far."""
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["N", C, W])], [helper.make_tensor_value_info(
            x, TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m = onnx.shape_inference.infer_shapes(m)
    n = m.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    inits.append(const("Wo", rng.normal(0, scale, (3, n))))
    inits.append(const("Bo", rng.normal(0, 0.1, (3,))))
    nodes.append(helper.make_node("Gemm", [x, "Wo", "Bo"], [y], transB=1))


def gru(path, lbr, rng):
    H = 24
    inits = [
        const("W", rng.normal(0, 0.3, (1, 3 * H, C))),
        const("R", rng.normal(0, 0.3, (1, 3 * H, H))),
        const("B", rng.normal(0, 0.1, (1, 6 * H))),
        const("Wo", rng.normal(0, 0.3, (3, H))),
        const("Bo", rng.normal(0, 0.1, (3,))),
        numpy_helper.from_array(np.array([-1, H], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Transpose", ["input"], ["xt"], perm=[2, 0, 1]),
        helper.make_node("GRU", ["xt", "W", "R", "B"], ["Y", "Yh"],
                         hidden_size=H, linear_before_reset=lbr),
        helper.make_node("Reshape", ["Yh", "shape"], ["h"]),  # [1, N, H] -> [N, H]
        helper.make_node("Gemm", ["h", "Wo", "Bo"], ["output"], transB=1),
    ]
    model(nodes, inits, 3, path)


def misc(path, rng):
    inits = [
        const("cw", rng.normal(0, 0.4, (6, C, 3))),
        const("cb", rng.normal(0, 0.1, (6,))),
        const("scale", rng.normal(1, 0.2, (6, 1))),
        const("tvec", rng.normal(0, 0.2, (W,))),
        const("Wo", rng.normal(0, 0.3, (4, 6 * 3 + 6))),
        const("Bo", rng.normal(0, 0.1, (4,))),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "cw", "cb"], ["c"], pads=[1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Mul", ["c", "s"], ["silu"]),
        helper.make_node("Mul", ["silu", "scale"], ["sc0"]),
        helper.make_node("Add", ["sc0", "tvec"], ["sc1"]),
        helper.make_node("ReduceMean", ["sc1"], ["mk"], axes=[2], keepdims=1),
        helper.make_node("Sub", ["sc1", "mk"], ["sc"]),
        helper.make_node("MaxPool", ["sc"], ["mp"], kernel_shape=[2], strides=[2]),
        helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[3],
                         strides=[3], pads=[1, 1], count_include_pad=1),
        helper.make_node("ReduceMean", ["sc"], ["rm"], axes=[2], keepdims=0),
        helper.make_node("Flatten", ["ap"], ["fl"]),
        helper.make_node("Concat", ["fl", "rm"], ["cat"], axis=1),
        helper.make_node("Gemm", ["cat", "Wo", "Bo"], ["z"], transB=1),
        helper.make_node("Softmax", ["z"], ["output"], axis=1),
    ]
    model(nodes, inits, 4, path)


def reduce(path, rng):
    """ReduceSum/Max/Min/Prod/Mean over one axis, two axes and the middle
    axis of a rank-3 tensor, with and without keepdims."""
    inits = [
        const("cw", rng.normal(0, 0.4, (6, C, 3))),
        const("cb", rng.normal(0, 0.1, (6,))),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "ax2"),
        numpy_helper.from_array(np.array([0, 6, 2, 8], dtype=np.int64), "shp"),
        const("Wo", rng.normal(0, 0.3, (3, 6 + 1 + 6 + 8 + 6))),
        const("Bo", rng.normal(0, 0.1, (3,))),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "cw", "cb"], ["c"], pads=[1, 1]),
        helper.make_node("Tanh", ["c"], ["t"]),
        helper.make_node("ReduceSum", ["t", "ax2"], ["rs"], keepdims=0),
        helper.make_node("ReduceMax", ["t"], ["rx3"], axes=[1, 2], keepdims=1),
        helper.make_node("Flatten", ["rx3"], ["rx"]),
        helper.make_node("ReduceMin", ["t"], ["rn"], axes=[2], keepdims=0),
        helper.make_node("Reshape", ["t", "shp"], ["t4"]),  # [N, 6, 2, 8]
        helper.make_node("ReduceMean", ["t4"], ["rm4"], axes=[1, 2], keepdims=1),
        helper.make_node("Flatten", ["rm4"], ["rmf"]),
        helper.make_node("ReduceProd", ["t"], ["rp"], axes=[2], keepdims=0),
        helper.make_node("Concat", ["rs", "rx", "rn", "rmf", "rp"], ["cat"],
                         axis=1),
        helper.make_node("Gemm", ["cat", "Wo", "Bo"], ["output"], transB=1),
    ]
    model(nodes, inits, 3, path)


def matmul_where(path, rng):
    """MatMul of two runtime tensors, the batch axes broadcast ([N, 2, 3,
    16] x [N, 1, 16, 6]), then Where on a constant condition broadcast
    against both branches; the input as [time][channel] (NWC)."""
    cond = rng.random((3, 1)) > 0.5
    inits = [
        const("cw", rng.normal(0, 0.4, (6, C, 3))),
        const("cb", rng.normal(0, 0.1, (6,))),
        numpy_helper.from_array(np.array([0, 2, 3, W], dtype=np.int64), "sa"),
        numpy_helper.from_array(np.array([0, 1, W, 6], dtype=np.int64), "sb"),
        numpy_helper.from_array(cond, "cond"),
        const("half", np.array([0.5])),
        const("Wo", rng.normal(0, 0.3, (3, 36))),
        const("Bo", rng.normal(0, 0.1, (3,))),
    ]
    nodes = [
        helper.make_node("Transpose", ["input"], ["x"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1]),
        helper.make_node("Tanh", ["c"], ["t"]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Reshape", ["t", "sa"], ["a4"]),
        helper.make_node("Transpose", ["s"], ["st"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["st", "sb"], ["b4"]),
        helper.make_node("MatMul", ["a4", "b4"], ["mm"]),  # [N, 2, 3, 6]
        helper.make_node("Mul", ["mm", "half"], ["mh"]),
        helper.make_node("Where", ["cond", "mm", "mh"], ["wh"]),
        helper.make_node("Flatten", ["wh"], ["fl"]),
        helper.make_node("Gemm", ["fl", "Wo", "Bo"], ["output"], transB=1),
    ]
    model(nodes, inits, 3, path, nwc=True)


def pad_norm(path, rng):
    """Pad in each mode (constant over two axes, reflect, edge), then
    LayerNormalization over the last axis, with and without a bias."""
    pads_c = np.array([0, 1, 2, 0, 2, 1], dtype=np.int64)
    pads_r = np.array([0, 0, 3, 0, 0, 2], dtype=np.int64)
    pads_e = np.array([0, 0, 1, 0, 0, 4], dtype=np.int64)
    n = (C + 3) * (W + 3) + C * (W + 5) + C * (W + 5)
    inits = [
        numpy_helper.from_array(pads_c, "pc"),
        numpy_helper.from_array(pads_r, "pr"),
        numpy_helper.from_array(pads_e, "pe"),
        const("v", np.array(0.25)),
        const("g1", rng.normal(1, 0.2, (W + 3,))),
        const("b1", rng.normal(0, 0.1, (W + 3,))),
        const("g2", rng.normal(1, 0.2, (W + 5,))),
        const("Wo", rng.normal(0, 0.3, (3, n))),
        const("Bo", rng.normal(0, 0.1, (3,))),
    ]
    nodes = [
        helper.make_node("Pad", ["input", "pc", "v"], ["p1"], mode="constant"),
        helper.make_node("Pad", ["input", "pr"], ["p2"], mode="reflect"),
        helper.make_node("Pad", ["input", "pe"], ["p3"], mode="edge"),
        helper.make_node("LayerNormalization", ["p1", "g1", "b1"], ["n1"],
                         axis=-1, epsilon=1e-5),
        helper.make_node("LayerNormalization", ["p2", "g2"], ["n2"], axis=-1,
                         epsilon=1e-3),
        helper.make_node("Flatten", ["n1"], ["f1"]),
        helper.make_node("Flatten", ["n2"], ["f2"]),
        helper.make_node("Flatten", ["p3"], ["f3"]),
        helper.make_node("Concat", ["f1", "f2", "f3"], ["cat"], axis=1),
        helper.make_node("Gemm", ["cat", "Wo", "Bo"], ["output"], transB=1),
    ]
    model(nodes, inits, 3, path)


def conv2d(path, rng):
    """Conv2d over the window as one [1, C, W] image and over 4 channels
    with pads, strides, dilations and groups; MaxPool and AveragePool 2-D
    (with pads, count_include_pad); the element-wise ops with parameters."""
    inits = [
        numpy_helper.from_array(np.array([0, 1, C, W], dtype=np.int64), "s4"),
        const("k1", rng.normal(0, 0.4, (4, 1, 2, 3))),
        const("c1", rng.normal(0, 0.1, (4,))),
        const("k2", rng.normal(0, 0.4, (6, 2, 2, 3))),
        const("c2", rng.normal(0, 0.1, (6,))),
    ]
    # [N,1,4,16] -> [N,4,4,16] -> (groups 2, stride (1,2), dilation (1,2),
    # pads) [N,6,5,7]
    nodes = [
        helper.make_node("Reshape", ["input", "s4"], ["x4"]),
        helper.make_node("Conv", ["x4", "k1", "c1"], ["a"], pads=[0, 1, 0, 1]),
        helper.make_node("Elu", ["a"], ["ae"], alpha=0.7),
        helper.make_node("Conv", ["ae", "k2", "c2"], ["b"], group=2,
                         strides=[1, 2], dilations=[1, 2], pads=[1, 1, 1, 2]),
        helper.make_node("HardSwish", ["b"], ["bh"]),
        helper.make_node("MaxPool", ["bh"], ["mp"], kernel_shape=[2, 2],
                         strides=[1, 2], pads=[0, 0, 1, 1]),
        helper.make_node("AveragePool", ["b"], ["ap"], kernel_shape=[3, 2],
                         strides=[2, 2], pads=[1, 0, 1, 1],
                         count_include_pad=1),
        helper.make_node("AveragePool", ["b"], ["aq"], kernel_shape=[2, 3],
                         pads=[1, 1, 0, 1]),
        helper.make_node("Clip", ["mp"], ["cl"]),
        helper.make_node("Selu", ["ap"], ["se"]),
        helper.make_node("Softplus", ["aq"], ["sp"]),
        helper.make_node("HardSigmoid", ["aq"], ["hs"], alpha=0.3, beta=0.4),
        helper.make_node("Flatten", ["cl"], ["f1"]),
        helper.make_node("Flatten", ["se"], ["f2"]),
        helper.make_node("Flatten", ["sp"], ["f3"]),
        helper.make_node("Flatten", ["hs"], ["f4"]),
        helper.make_node("Concat", ["f1", "f2", "f3", "f4"], ["cat"], axis=1),
    ]
    gemm_head(nodes, inits, "cat", "output", 0.1, rng)
    model(nodes, inits, 3, path)


def pooling(path, rng):
    """MaxPool and AveragePool 2-D (pads, strides, dilations,
    count_include_pad either way) over the window as one [1, C, W] image,
    Softmax along an inner axis and LogSoftmax over the scores: the steps
    of the generated kernels' pooling and softmax forms."""
    inits = [
        numpy_helper.from_array(np.array([0, 1, C, W], dtype=np.int64), "s4"),
    ]
    nodes = [
        helper.make_node("Reshape", ["input", "s4"], ["x4"]),
        helper.make_node("Softmax", ["x4"], ["sm"], axis=2),
        helper.make_node("MaxPool", ["x4"], ["mp"], kernel_shape=[2, 3],
                         strides=[1, 2], pads=[0, 1, 1, 1],
                         dilations=[1, 2]),
        helper.make_node("AveragePool", ["x4"], ["ap"], kernel_shape=[3, 2],
                         strides=[2, 2], pads=[1, 0, 1, 1],
                         count_include_pad=1),
        helper.make_node("AveragePool", ["sm"], ["aq"], kernel_shape=[2, 3],
                         pads=[1, 1, 0, 1]),
        helper.make_node("Flatten", ["mp"], ["f1"]),
        helper.make_node("Flatten", ["ap"], ["f2"]),
        helper.make_node("Flatten", ["aq"], ["f3"]),
        helper.make_node("Concat", ["f1", "f2", "f3"], ["cat"], axis=1),
    ]
    gemm_head(nodes, inits, "cat", "logits", 0.3, rng)
    nodes.append(helper.make_node("LogSoftmax", ["logits"], ["output"],
                                  axis=1))
    model(nodes, inits, 3, path)


def attention(path, mask, style, rng):
    """nn.TransformerEncoderLayer-like encoders (tests/models/
    attention_models.py): the fused self-attention block, LayerNorm."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "models"))
    import attention_models  # noqa: E402

    m = attention_models.encoder(C=C, W=W, E=16, H=4, layers=2, ff=24,
                                 style=style, mask=mask,
                                 seed=int(rng.integers(1 << 30)))
    helper.set_model_props(m, {
        "pe.features": "return_z,log_return,volume_ratio,ema_gap",
        "pe.window": str(W),
    })
    onnx.save(m, path)


def attention64(path, rng):
    """A Transformer of models/zoo.py's transformer64 shape (64 ticks of 8
    features, d_model 64, 8 heads, feed-forward 128, 2 layers): its
    weights and one window's activations outgrow a block's shared memory,
    so the generated batch kernel stages each step's weights in turn."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "models"))
    import attention_models  # noqa: E402

    m = attention_models.encoder(C=8, W=64, E=64, H=8, layers=2, ff=128,
                                 seed=int(rng.integers(1 << 30)))
    helper.set_model_props(m, {"pe.window": "64"})
    onnx.save(m, path)


def deeplob32(path, rng):
    """DeepLOB over 32 book columns (bench/gpu_torch.py's deeplob32 shape:
    the zoo's widths 16/32, LSTM 32, unpadded (4, 1) convolutions): one
    window's activations nearly fill a block's shared memory, so the
    generated batch kernel stages each step's weights where the arena is
    free during the step."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "models"))
    import make_conv_rnn_models  # noqa: E402
    import make_test_models  # noqa: E402

    make_test_models.rng = np.random.default_rng(int(rng.integers(1 << 30)))
    make_conv_rnn_models.save(
        make_conv_rnn_models.deeplob(16, 32, 32, L=32, same4=False), path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    gru(os.path.join(out, "gru_lbr0.onnx"), 0, rng)
    gru(os.path.join(out, "gru_lbr1.onnx"), 1, rng)
    misc(os.path.join(out, "pool_softmax.onnx"), rng)
    reduce(os.path.join(out, "reduce.onnx"), rng)
    matmul_where(os.path.join(out, "matmul_where.onnx"), rng)
    pad_norm(os.path.join(out, "pad_norm.onnx"), rng)
    conv2d(os.path.join(out, "conv2d.onnx"), rng)
    attention(os.path.join(out, "attention.onnx"), None, "separate", rng)
    attention(os.path.join(out, "attention_mask.onnx"), "add", "packed", rng)
    attention(os.path.join(out, "attention_where.onnx"), "where", "separate",
              rng)
    attention64(os.path.join(out, "transformer64.onnx"), rng)
    deeplob32(os.path.join(out, "deeplob32.onnx"), rng)
    pooling(os.path.join(out, "pooling.onnx"), rng)


if __name__ == "__main__":
    main()
