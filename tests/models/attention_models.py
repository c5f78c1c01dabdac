#!/usr/bin/env python3
"""Transformer encoder models built with onnx.helper (no PyTorch needed).

    .venv/bin/python tests/models/attention_models.py   # rewrites tests/models/transformer_*.onnx

encoder(...) returns a model of a feature window [N, C, W] -> W ticks of C
features -> a linear embedding to d_model -> `layers` post-norm encoder
layers (nn.TransformerEncoderLayer, batch_first, eval: self-attention,
residual, LayerNormalization, feed-forward with Relu, residual,
LayerNormalization) -> the mean over the ticks -> a linear head. The
attention block takes one of the spellings exporters write (`style`):

  "separate"  three MatMul+Add projections, Reshape [N, L, H, D] with a
              shape from a Shape/Gather/Concat subgraph, Transpose to heads,
              MatMul, Div by sqrt(D), Softmax, MatMul, Transpose, Reshape
  "packed"    one [E, 3E] projection cut by Split (opset >= 13: sizes as an
              input), k to heads then transposed again (k.transpose(-2, -1)),
              the scale as Mul by sqrt(1/sqrt(D)) on q and on k (the
              scaled_dot_product_attention decomposition)
and optionally a causal mask as an Add of a constant (`mask="add"`) or a
Where on a constant condition (`mask="where"`).

Fixed seeds: a rerun gives the same bytes."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


class _B:
    """Nodes and initializers of a graph being built."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, p):
        self.k += 1
        return f"{p}_{self.k}"

    def const(self, arr, p="c"):
        n = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def w(self, *shape, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        return self.const((self.rng.standard_normal(shape) * s).astype(np.float32), "w")

    def op(self, op, ins, n_out=1, **attrs):
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, ins, outs, name=self.name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def linear(self, x, fi, fo):
        y = self.op("MatMul", [x, self.w(fi, fo)])
        return self.op("Add", [y, self.const((self.rng.standard_normal(fo) * 0.1).astype(np.float32), "b")])


def _heads_shape(b, x, L, H, D, E=None, opset=17):
    """[N, L, H, D] (or [N, L, E]) as the legacy exporter computes it: from
    Shape(x), so the batch size stays symbolic."""
    shp = b.op("Shape", [x])
    n = b.op("Gather", [shp, b.const(np.array(0, dtype=np.int64), "i")], axis=0)
    if opset >= 13:
        n1 = b.op("Unsqueeze", [n, b.const(np.array([0], dtype=np.int64), "ax")])
    else:
        n1 = b.op("Unsqueeze", [n], axes=[0])
    rest = [L, H, D] if E is None else [L, E]
    return b.op("Concat", [n1, b.const(np.array(rest, dtype=np.int64), "s")], axis=0)


def attention(b, x, L, E, H, style="separate", mask=None, out_proj=True, opset=17):
    D = E // H
    if style == "packed":
        qkv = b.linear(x, E, 3 * E)
        if opset >= 13:
            q, k, v = b.op("Split", [qkv, b.const(np.array([E, E, E], dtype=np.int64), "sp")],
                           n_out=3, axis=2)
        else:
            q, k, v = b.op("Split", [qkv], n_out=3, axis=2, split=[E, E, E])
    else:
        q, k, v = b.linear(x, E, E), b.linear(x, E, E), b.linear(x, E, E)
    hs = _heads_shape(b, x, L, H, D, opset=opset)
    q = b.op("Transpose", [b.op("Reshape", [q, hs])], perm=[0, 2, 1, 3])
    if style == "packed":  # heads first, then k.transpose(-2, -1)
        k = b.op("Transpose", [b.op("Reshape", [k, hs])], perm=[0, 2, 1, 3])
        k = b.op("Transpose", [k], perm=[0, 1, 3, 2])
    else:
        k = b.op("Transpose", [b.op("Reshape", [k, hs])], perm=[0, 2, 3, 1])
    v = b.op("Transpose", [b.op("Reshape", [v, hs])], perm=[0, 2, 1, 3])
    if style == "packed":
        r = np.array(np.sqrt(1.0 / np.sqrt(D)), dtype=np.float32)
        q = b.op("Mul", [q, b.const(r, "sc")])
        k = b.op("Mul", [k, b.const(r, "sc")])
        s = b.op("MatMul", [q, k])
    else:
        s = b.op("MatMul", [q, k])
        s = b.op("Div", [s, b.const(np.array(np.sqrt(D), dtype=np.float32), "sc")])
    causal = np.triu(np.ones((L, L), dtype=bool), 1)
    if mask == "add":
        s = b.op("Add", [s, b.const(np.where(causal, -np.inf, 0).astype(np.float32), "m")])
    elif mask == "where":
        s = b.op("Where", [b.const(causal, "m"), b.const(np.array(-1e9, dtype=np.float32), "ninf"), s])
    p = b.op("Softmax", [s], axis=-1 if opset >= 13 else 3)
    c = b.op("Transpose", [b.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
    c = b.op("Reshape", [c, _heads_shape(b, x, L, H, D, E=E, opset=opset)])
    return b.linear(c, E, E) if out_proj else c


def layernorm(b, x, E, opset):
    g = b.const((1.0 + 0.1 * b.rng.standard_normal(E)).astype(np.float32), "g")
    be = b.const((0.1 * b.rng.standard_normal(E)).astype(np.float32), "be")
    if opset >= 17:
        return b.op("LayerNormalization", [x, g, be], axis=-1, epsilon=1e-5)
    mu = b.op("ReduceMean", [x], axes=[-1])
    d = b.op("Sub", [x, mu])
    var = b.op("ReduceMean", [b.op("Pow", [d, b.const(np.array(2.0, dtype=np.float32), "two")])],
               axes=[-1])
    den = b.op("Sqrt", [b.op("Add", [var, b.const(np.array(1e-5, dtype=np.float32), "eps")])])
    return b.op("Add", [b.op("Mul", [b.op("Div", [d, den]), g]), be])


def encoder(C=8, W=64, E=64, H=4, layers=2, ff=128, classes=3, style="separate",
            mask=None, opset=17, seed=7, name="transformer"):
    b = _B(seed)
    x = b.op("Transpose", ["input"], perm=[0, 2, 1])  # [N, W, C]
    h = b.linear(x, C, E)
    for _ in range(layers):
        a = attention(b, h, W, E, H, style=style, mask=mask, opset=opset)
        h = layernorm(b, b.op("Add", [h, a]), E, opset)
        f = b.linear(b.op("Relu", [b.linear(h, E, ff)]), ff, E)
        h = layernorm(b, b.op("Add", [h, f]), E, opset)
    if opset >= 18:
        pooled = b.op("ReduceMean", [h, b.const(np.array([1], dtype=np.int64), "ax")], keepdims=0)
    else:
        pooled = b.op("ReduceMean", [h], axes=[1], keepdims=0)
    y = b.op("Gemm", [pooled, b.w(classes, E), b.const(np.zeros(classes, np.float32), "b")],
             transB=1)
    b.nodes.append(helper.make_node("Identity", [y], ["output"], name="out"))
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", C, W])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", classes])
    g = helper.make_graph(b.nodes, name, [inp], [out], initializer=b.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="attention_models.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    models = {
        "transformer_tiny.onnx": encoder(C=4, W=12, E=16, H=2, layers=1, ff=24, seed=3),
        "transformer_packed_masked.onnx": encoder(C=3, W=10, E=12, H=3, layers=2, ff=20,
                                                  style="packed", mask="where", seed=4),
    }
    for fname, m in models.items():
        onnx.save(m, os.path.join(HERE, fname))
        print(f"wrote {fname}")


if __name__ == "__main__":
    main()
