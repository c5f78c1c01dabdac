"""Writes small ONNX models that use the step kinds the shipped models do
not (GRU with and without linear_before_reset, pooling, softmax, concat,
broadcasting binary ops, reductions over one axis and several), with random weights from a fixed
seed, for the cuda backend's parity test. Exits 77 where onnx is missing.

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


def model(nodes, inits, out_dim, path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", C, W])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", out_dim])
    g = helper.make_graph(nodes, "g", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    helper.set_model_props(m, {
        "pe.features": "return_z,log_return,volume_ratio,ema_gap",
        "pe.window": str(W),
    })
    onnx.checker.check_model(m)
    onnx.save(m, path)


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


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    gru(os.path.join(out, "gru_lbr0.onnx"), 0, rng)
    gru(os.path.join(out, "gru_lbr1.onnx"), 1, rng)
    misc(os.path.join(out, "pool_softmax.onnx"), rng)
    reduce(os.path.join(out, "reduce.onnx"), rng)


if __name__ == "__main__":
    main()
