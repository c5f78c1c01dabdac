#!/usr/bin/env python3
"""Writes the test models of 2-D convolution and the recurrent directions.

    .venv/bin/python tests/models/make_conv_rnn_models.py   # rewrites them

With onnx.helper and the helpers of make_test_models.py, from a seed of its
own (the models of make_test_models.py keep their bytes):

  deeplob.onnx        a DeepLOB-style model as PyTorch exports it, opset 17:
                      input [N, 1, 100, 40] (100 snapshots of a 10-level
                      book); three conv blocks ((1,2) stride (1,2), (4,1)
                      same, (4,1) same; again; then (1,10)), each conv
                      followed by LeakyRelu(0.01) and BatchNormalization; an
                      inception module (1x1 -> (3,1); 1x1 -> (5,1); MaxPool
                      (3,1) -> 1x1), concatenated on channels; then
                      [N, 100, C] through an LSTM (batch first, zero initial
                      state from the shape subgraph), the last step, Gemm
                      and Softmax over 3 classes. deeplob(32, 64, 64) is the
                      paper's size; the committed file is deeplob(16, 32, 32).
  conv2d_pool.onnx    Conv2d with groups + BatchNormalization + Relu, MaxPool
                      with ceil_mode, Conv2d SAME_UPPER stride (1, 2),
                      AveragePool with count_include_pad,
                      GlobalAveragePool, Gemm: input [N, 4, 12, 10].
  bilstm_stack.onnx   two bidirectional LSTM layers (the second on the first's
                      Y as PyTorch writes it: Transpose + Reshape), initial
                      states from the shape subgraph, Y_h of both directions
                      of the last layer into a Gemm: input [N, 16, 5]
                      (batch first).
  bn_conv.onnx        Conv -> LeakyRelu -> BatchNormalization blocks whose
                      BatchNormalization folds into the unpadded convolution
                      after it (a (3,1) one, a grouped (2,2) one of stride
                      (1,2)) and one that does not (a padded (3,1)): input
                      [N, 4, 12, 6], Flatten, Gemm.
"""
import os
import sys

import numpy as np
from onnx import helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_test_models as mt  # noqa: E402
from make_test_models import W, i64, init, model, save, shape_state  # noqa: E402


def conv_block(nodes, inits, x, prefix, cin, cout, k, strides=(1, 1), same=False):
    """Conv -> LeakyRelu(0.01) -> BatchNormalization, as nn.Sequential
    exports them; returns the output name."""
    attrs = dict(kernel_shape=list(k), strides=list(strides))
    if same:
        total = k[0] - 1  # PyTorch padding='same': the extra row at the end
        attrs["pads"] = [total // 2, 0, total - total // 2, 0]
    inits += [init(prefix + "_w", W(cout, cin, *k)), init(prefix + "_b", W(cout, scale=0.1)),
              init(prefix + "_s", 1 + W(cout, scale=0.1)), init(prefix + "_t", W(cout, scale=0.1)),
              init(prefix + "_mu", W(cout, scale=0.1)),
              init(prefix + "_var", (0.5 + np.abs(W(cout, scale=0.3))).astype(np.float32))]
    nodes += [
        helper.make_node("Conv", [x, prefix + "_w", prefix + "_b"], [prefix + "_c"], **attrs),
        helper.make_node("LeakyRelu", [prefix + "_c"], [prefix + "_a"], alpha=0.01),
        helper.make_node("BatchNormalization",
                         [prefix + "_a", prefix + "_s", prefix + "_t", prefix + "_mu",
                          prefix + "_var"], [prefix + "_o"], epsilon=1e-5),
    ]
    return prefix + "_o"


def deeplob(F=16, I=32, H=32, T=100, L=40, same4=True):
    """same4=False leaves the six (4,1) convolutions unpadded, as nn.Conv2d
    does (the zoo's deeplob_full): T - 18 steps reach the LSTM."""
    nodes, inits = [], []
    S = T if same4 else T - 18
    x = "input"
    x = conv_block(nodes, inits, x, "c1a", 1, F, (1, 2), (1, 2))
    x = conv_block(nodes, inits, x, "c1b", F, F, (4, 1), same=same4)
    x = conv_block(nodes, inits, x, "c1c", F, F, (4, 1), same=same4)
    x = conv_block(nodes, inits, x, "c2a", F, F, (1, 2), (1, 2))
    x = conv_block(nodes, inits, x, "c2b", F, F, (4, 1), same=same4)
    x = conv_block(nodes, inits, x, "c2c", F, F, (4, 1), same=same4)
    x = conv_block(nodes, inits, x, "c3a", F, F, (1, L // 4))
    x = conv_block(nodes, inits, x, "c3b", F, F, (4, 1), same=same4)
    x = conv_block(nodes, inits, x, "c3c", F, F, (4, 1), same=same4)
    b1 = conv_block(nodes, inits, x, "i1a", F, I, (1, 1))
    b1 = conv_block(nodes, inits, b1, "i1b", I, I, (3, 1), same=True)
    b2 = conv_block(nodes, inits, x, "i2a", F, I, (1, 1))
    b2 = conv_block(nodes, inits, b2, "i2b", I, I, (5, 1), same=True)
    nodes.append(helper.make_node("MaxPool", [x], ["i3p"], kernel_shape=[3, 1], strides=[1, 1],
                                  pads=[1, 0, 1, 0]))
    b3 = conv_block(nodes, inits, "i3p", "i3a", F, I, (1, 1))
    C = 3 * I
    nodes += [
        helper.make_node("Concat", [b1, b2, b3], ["inc"], axis=1),           # [N, C, T, 1]
        helper.make_node("Transpose", ["inc"], ["perm"], perm=[0, 2, 1, 3]),  # [N, T, C, 1]
        helper.make_node("Reshape", ["perm", "seq_shape"], ["seq"]),          # [N, T, C]
        helper.make_node("Transpose", ["seq"], ["xt"], perm=[1, 0, 2]),       # [T, N, C]
    ]
    inits.append(i64("seq_shape", [-1, S, C]))
    sn, si, h0 = shape_state("h0", "input", 0, [1], [H])
    cn, ci, c0 = shape_state("c0", "input", 0, [1], [H])
    nodes += sn + cn + [
        helper.make_node("LSTM", ["xt", "lw", "lr", "lb", "", h0, c0], ["Y", "Yh", "Yc"],
                         hidden_size=H),
        helper.make_node("Squeeze", ["Y", "ax1"], ["ys"]),                    # [T, N, H]
        helper.make_node("Transpose", ["ys"], ["yb"], perm=[1, 0, 2]),        # [N, T, H]
        helper.make_node("Gather", ["yb", "last"], ["ylast"], axis=1),        # [N, H]
        helper.make_node("Gemm", ["ylast", "fw", "fb"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    inits += si + ci + [init("lw", W(1, 4 * H, C)), init("lr", W(1, 4 * H, H)),
                        init("lb", W(1, 8 * H, scale=0.1)), i64("ax1", [1]), i64("last", S - 1),
                        init("fw", W(3, H)), init("fb", W(3, scale=0.1))]
    meta = {"pe.window": str(T)}
    m = model(nodes, inits, [1, T, L], "output", 17, "deeplob", meta=meta, out_shape=3)
    return m


def conv2d_pool():
    cin, cout = 4, 6
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[3, 3], group=2,
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "t", "mu", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["mp"], kernel_shape=[3, 2], strides=[2, 2],
                         ceil_mode=1),
        helper.make_node("Conv", ["mp", "w2"], ["c2"], kernel_shape=[2, 2], strides=[1, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("AveragePool", ["c2"], ["ap"], kernel_shape=[2, 2], pads=[1, 1, 0, 0],
                         count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["ap"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["output"], transB=1),
    ]
    inits = [init("w", W(cout, cin // 2, 3, 3)), init("b", W(cout, scale=0.2)),
             init("s", 1 + W(cout, scale=0.2)), init("t", W(cout, scale=0.2)),
             init("mu", W(cout, scale=0.2)),
             init("var", (0.5 + np.abs(W(cout))).astype(np.float32)),
             init("w2", W(5, cout, 2, 2)), init("fw", W(3, 5)), init("fb", W(3))]
    return model(nodes, inits, [cin, 12, 10], "output", 13, "conv2d_pool", out_shape=3)


def bilstm_stack():
    H, I, S = 9, 5, 16
    sn, si, h0 = shape_state("h0", "input", 0, [2], [H], value=0.1)
    cn, ci, c0 = shape_state("c0", "input", 0, [2], [H], value=-0.2)
    nodes = [helper.make_node("Transpose", ["input"], ["xt"], perm=[1, 0, 2])] + sn + cn + [
        helper.make_node("LSTM", ["xt", "W1", "R1", "B1", "", h0, c0], ["Y1"], hidden_size=H,
                         direction="bidirectional"),                           # [S, 2, N, H]
        helper.make_node("Transpose", ["Y1"], ["Y1t"], perm=[0, 2, 1, 3]),     # [S, N, 2, H]
        helper.make_node("Reshape", ["Y1t", "shp"], ["x2"]),                   # [S, N, 2H]
        helper.make_node("LSTM", ["x2", "W2", "R2", "B2"], ["", "Yh2"], hidden_size=H,
                         direction="bidirectional"),                           # [2, N, H]
        helper.make_node("Transpose", ["Yh2"], ["hb"], perm=[1, 0, 2]),       # [N, 2, H]
        helper.make_node("Flatten", ["hb"], ["hf"]),
        helper.make_node("Gemm", ["hf", "fw", "fb"], ["output"], transB=1),
    ]
    inits = si + ci + [init("W1", W(2, 4 * H, I)), init("R1", W(2, 4 * H, H)),
                       init("B1", W(2, 8 * H)), i64("shp", [0, 0, -1]),
                       init("W2", W(2, 4 * H, 2 * H)), init("R2", W(2, 4 * H, H)),
                       init("B2", W(2, 8 * H)), init("fw", W(4, 2 * H)), init("fb", W(4))]
    return model(nodes, inits, [S, I], "output", 17, "bilstm_stack", out_shape=4)


def bn_conv():
    nodes, inits = [], []
    x = conv_block(nodes, inits, "input", "b1", 4, 6, (3, 1))             # [N, 6, 10, 6]
    x = conv_block(nodes, inits, x, "b2", 6, 6, (3, 1))                    # [N, 6, 8, 6]
    inits += [init("g_w", W(4, 3, 2, 2)), init("g_b", W(4, scale=0.1))]
    nodes.append(helper.make_node("Conv", [x, "g_w", "g_b"], ["g"], kernel_shape=[2, 2],
                                  strides=[1, 2], group=2))                # [N, 4, 7, 3]
    nodes.append(helper.make_node("LeakyRelu", ["g"], ["ga"], alpha=0.01))
    inits += [init("gs", 1 + W(4, scale=0.1)), init("gt", W(4, scale=0.1)),
              init("gmu", W(4, scale=0.1)),
              init("gvar", (0.5 + np.abs(W(4, scale=0.3))).astype(np.float32))]
    nodes.append(helper.make_node("BatchNormalization", ["ga", "gs", "gt", "gmu", "gvar"],
                                  ["gn"], epsilon=1e-5))
    x = conv_block(nodes, inits, "gn", "b3", 4, 5, (3, 1), same=True)      # [N, 5, 7, 3]
    inits += [i64("flat", [0, -1]), init("fw", W(3, 5 * 7 * 3)), init("fb", W(3))]
    nodes += [helper.make_node("Reshape", [x, "flat"], ["f"]),
              helper.make_node("Gemm", ["f", "fw", "fb"], ["output"], transB=1)]
    return model(nodes, inits, [4, 12, 6], "output", 17, "bn_conv", out_shape=3)


def main():
    mt.rng = np.random.default_rng(20261205)
    print(save(deeplob(), "deeplob.onnx"))
    print(save(conv2d_pool(), "conv2d_pool.onnx"))
    print(save(bilstm_stack(), "bilstm_stack.onnx"))
    print(save(bn_conv(), "bn_conv.onnx"))


if __name__ == "__main__":
    main()
