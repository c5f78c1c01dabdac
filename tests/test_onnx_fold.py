#!/usr/bin/env python3
"""Shape and mask computations folded at load.

    tests/test_onnx_fold.py BUILD_DIR

Graphs of the kinds exporters write around a runtime tensor (the shape read
with Shape, cut with Gather/Slice, recombined with Concat, Unsqueeze, Mul,
Div, Mod, Min, Max, compared with Equal/Less/Greater, selected with Where,
broadcast with Expand, Range, Cast, Transpose of int64 and bool masks with
Not/And/Or/Xor), each ending in ops that run at run time. Every model must
load in `pattern-engine infer` with a dynamic batch and match ONNX Runtime
within 1e-5 on random windows at batch sizes 1 and 37. Computations whose
result would depend on the batch size (N * 8, a Range of N elements), and
fold-only ops fed a runtime tensor, must be refused naming the node. The
exact GELU written out in Erf (the legacy exporter's spelling) must become
one activation in the plan unless an intermediate is used elsewhere.

Exit 77 with a SKIP line when onnx, onnxruntime or numpy are missing."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# numpy, onnx and onnxruntime, or exit 77
from test_onnx_opsets import TensorProto, helper, infer, np, numpy_helper, onnx, session  # noqa

import onnxruntime  # noqa: E402

onnxruntime.set_default_logger_severity(3)  # unused initializers are fine here
N = helper.make_node
C, W = 3, 10


def i64(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.int64), name)


def f32(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.float32), name)


def graph(nodes, inits, in_shape, out_shape, opset=17, name="fold"):
    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"] + out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def shape_of_x():
    """s = Shape(x) = [N, C, W]; w = s[2] (a scalar); c = s[1:2]."""
    return [N("Shape", ["x"], ["s"]),
            N("Gather", ["s", "two"], ["w"], axis=0),
            N("Slice", ["s", "one1", "two1"], ["c"])]


SHAPE_INITS = [i64("two", 2), i64("one1", [1]), i64("two1", [2]), i64("zero1", [0])]


def models():
    out = {}
    # a length mask over the window: Range(0, W) < 6, as float, times x
    out["range_less_mask"] = graph(shape_of_x() + [
        N("Range", ["z", "w", "o"], ["r"]),
        N("Less", ["r", "six"], ["lt"]),
        N("Cast", ["lt"], ["ltf"], to=TensorProto.FLOAT),
        N("Mul", ["x", "ltf"], ["y"])],
        SHAPE_INITS + [i64("z", 0), i64("o", 1), i64("six", 6)], [C, W], [C, W])
    # the legacy exporter's Reshape target: Where(Equal(t, -1), 1, t)
    out["where_equal_reshape"] = graph(shape_of_x() + [
        N("Slice", ["s", "zero1", "one1"], ["n1"]),
        N("Concat", ["n1", "cw"], ["t"], axis=0),
        N("Equal", ["t", "m1"], ["eq"]),
        N("Where", ["eq", "ones", "t"], ["t2"]),
        N("Reshape", ["x", "t2"], ["flat"]),
        N("Gemm", ["flat", "wg"], ["y"], transB=1)],
        SHAPE_INITS + [i64("cw", [C * W]), i64("m1", -1), i64("ones", [1, 1]),
                       f32("wg", np.random.default_rng(1).standard_normal((4, C * W)))],
        [C, W], [4])
    # causal mask over a [N, L, L] score tensor: Where(j <= i, 0, -inf)
    L = 6
    out["causal_mask_softmax"] = graph([
        N("Shape", ["x"], ["s"]),
        N("Gather", ["s", "one"], ["l"], axis=0),
        N("Range", ["z", "l", "o"], ["r"]),
        N("Unsqueeze", ["r", "ax1"], ["col"]),
        N("Unsqueeze", ["r", "ax0"], ["row"]),
        N("LessOrEqual", ["row", "col"], ["keep"]),
        N("Not", ["keep"], ["drop"]),
        N("Where", ["drop", "ninf", "zero"], ["mask"]),
        N("Add", ["x", "mask"], ["xm"]),
        N("Softmax", ["xm"], ["y"], axis=-1)],
        [i64("one", 1), i64("z", 0), i64("o", 1), i64("ax1", [1]), i64("ax0", [0]),
         f32("ninf", -np.inf), f32("zero", 0.0)], [L, L], [L, L], opset=17)
    # integer arithmetic: Slice end = W // 2 + Mod(-7, 3) (= 2, the divisor's
    # sign) + Max(Min(W, 4), 1) - Abs(-4), start from a Transposed int64 pair
    out["div_mod_slice"] = graph(shape_of_x() + [
        N("Div", ["w", "two"], ["h"]),
        N("Mod", ["m7", "three"], ["md"]),
        N("Add", ["h", "md"], ["e0"]),
        N("Min", ["w", "four"], ["mn"]),
        N("Max", ["mn", "onei"], ["mx"]),
        N("Add", ["e0", "mx"], ["e1"]),
        N("Abs", ["m4"], ["a4"]),
        N("Sub", ["e1", "a4"], ["e2"]),
        N("Unsqueeze", ["e2"], ["end"], axes=[0]),
        N("Transpose", ["pair"], ["pt"], perm=[1, 0]),
        N("Reshape", ["pt", "m1v"], ["pf"]),
        N("Gather", ["pf", "one"], ["st0"], axis=0),
        N("Unsqueeze", ["st0"], ["start"], axes=[0]),
        N("Slice", ["x", "start", "end", "axis2"], ["y"])],
        SHAPE_INITS + [i64("m7", -7), i64("three", 3), i64("four", 4), i64("onei", 1),
                       i64("m4", -4), i64("pair", [[0], [1]]), i64("m1v", [-1]),
                       i64("one", 1), i64("axis2", [2])],
        [C, W], [C, 6], opset=12)
    # a per-channel float constant expanded to x's (batch-marked) shape
    out["expand_marked"] = graph([
        N("Shape", ["x"], ["s"]),
        N("Expand", ["bias", "s"], ["be"]),
        N("Add", ["x", "be"], ["y"])],
        [f32("bias", np.arange(C, dtype=np.float32).reshape(C, 1) - 1.0)], [C, W], [C, W])
    # a per-layer initial state: ConstantOfShape([2, N, C, 1]) -> Gather(1)
    out["state_gather"] = graph(shape_of_x() + [
        N("Slice", ["s", "zero1", "one1"], ["n1"]),
        N("Concat", ["two1", "n1", "c", "one1"], ["sh"], axis=0),
        N("ConstantOfShape", ["sh"], ["z"],
          value=numpy_helper.from_array(np.array([0.25], np.float32))),
        N("Gather", ["z", "onei"], ["g"], axis=0),
        N("Add", ["x", "g"], ["y"])],
        SHAPE_INITS + [i64("onei", 1)], [C, W], [C, W])
    # a Linear over [N * L, E] rows and back to [N, L, M]: the batch merged
    # with the rows, as the default exporter writes nn.Linear on 3-D input
    L, E, M, H = 5, 6, 4, 2
    out["rows_gemm"] = graph([
        N("Shape", ["x"], ["s"]),
        N("Slice", ["s", "zero1", "one1"], ["n1"]),
        N("Slice", ["s", "one1", "two1"], ["l1"]),
        N("Mul", ["n1", "l1"], ["nl"]),
        N("Concat", ["nl", "e1"], ["t1"], axis=0),
        N("Reshape", ["x", "t1"], ["rows"]),
        N("Gemm", ["rows", "wg"], ["g"], transB=1),
        N("Concat", ["n1", "l1", "m1"], ["t2"], axis=0),
        N("Reshape", ["g", "t2"], ["y"])],
        SHAPE_INITS + [i64("e1", [E]), i64("m1", [M]), f32(
            "wg", np.random.default_rng(3).standard_normal((M, E)))], [L, E], [L, M])
    # heads as the legacy exporter splits them: [L, N, E] -> [L, N*H, E/H]
    # -> [N*H, L, E/H], a softmax per head, and back to [N, L, E]
    out["heads_split"] = graph([
        N("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        N("Shape", ["xt"], ["s"]),
        N("Slice", ["s", "zero1", "one1"], ["l1"]),
        N("Slice", ["s", "one1", "two1"], ["n1"]),
        N("Mul", ["n1", "h1"], ["nh"]),
        N("Concat", ["l1", "nh", "d1"], ["t1"], axis=0),
        N("Reshape", ["xt", "t1"], ["q"]),
        N("Transpose", ["q"], ["qt"], perm=[1, 0, 2]),
        N("Softmax", ["qt"], ["sm"], axis=-1),
        N("Transpose", ["sm"], ["st"], perm=[1, 0, 2]),
        N("Concat", ["l1", "n1", "e1"], ["t2"], axis=0),
        N("Reshape", ["st", "t2"], ["back"]),
        N("Transpose", ["back"], ["y"], perm=[1, 0, 2])],
        SHAPE_INITS + [i64("h1", [H]), i64("d1", [E // H]), i64("e1", [E])],
        [L, E], [L, E])
    # nn.MultiheadAttention's output projection: [N, L, E] -> [L, N, E] ->
    # [L * N, E] (the batch inside the merged axis) -> Gemm -> [L, N, M]
    wo = np.random.default_rng(3).standard_normal((M, E))
    out["batch_inner_merge"] = graph([
        N("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
        N("Reshape", ["t", "m1e"], ["rows"]),
        N("Gemm", ["rows", "wo", "bo"], ["g"], transB=1),
        N("Relu", ["g"], ["gr"]),
        N("Reshape", ["gr", "lm1m"], ["back"]),
        N("Transpose", ["back"], ["y"], perm=[1, 0, 2])],
        [i64("m1e", [-1, E]), i64("lm1m", [L, -1, M]), f32("wo", wo),
         f32("bo", np.arange(M) * 0.1)], [L, E], [L, M])
    # the exact GELU as the legacy exporter writes it after a Linear:
    # x * (erf(x / sqrt 2) + 1) * 0.5, one `Gelu` activation in the plan;
    # and the same with the erf term used twice, which stays unfused
    wl = f32("wl", np.random.default_rng(4).standard_normal((W, 2 * W)) * 0.5)
    gelu = [N("MatMul", ["x", "wl"], ["h"]),
            N("Div", ["h", "sqrt2"], ["hd"]),
            N("Erf", ["hd"], ["he"]),
            N("Add", ["he", "onef"], ["h1"]),
            N("Mul", ["h", "h1"], ["hm"])]
    ginits = [wl, f32("sqrt2", 1.4142135381698608), f32("onef", 1.0), f32("half", 0.5)]
    out["gelu_erf"] = graph(gelu + [N("Mul", ["hm", "half"], ["y"])], ginits,
                            [C, W], [C, 2 * W])
    out["gelu_erf_shared"] = graph(gelu + [N("Mul", ["hm", "half"], ["g"]),
                                           N("Add", ["g", "h1"], ["y"])], ginits,
                                   [C, W], [C, 2 * W])
    # bool logic: (r < 3 or r >= 7) xor (r == 5), and not... as a float mask
    out["bool_logic"] = graph(shape_of_x() + [
        N("Range", ["z", "w", "o"], ["r"]),
        N("Less", ["r", "three"], ["a"]),
        N("GreaterOrEqual", ["r", "seven"], ["b"]),
        N("Or", ["a", "b"], ["ab"]),
        N("Equal", ["r", "five"], ["e"]),
        N("Xor", ["ab", "e"], ["x1"]),
        N("Greater", ["r", "zero"], ["g"]),
        N("And", ["x1", "g"], ["m"]),
        N("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
        N("Mul", ["x", "mf"], ["y"])],
        SHAPE_INITS + [i64("z", 0), i64("o", 1), i64("three", 3), i64("seven", 7),
                       i64("five", 5), i64("zero", 0)], [C, W], [C, W])
    return out


def refused():
    out = {}
    # the batch size plus 1
    out["batch_plus_1"] = (graph(shape_of_x() + [
        N("Slice", ["s", "zero1", "one1"], ["n1"]),
        N("Add", ["n1", "one1"], ["n8"], name="batch_add"),
        N("Concat", ["n8", "m1"], ["t"], axis=0),
        N("Reshape", ["x", "t"], ["y"])],
        SHAPE_INITS + [i64("m1", [-1])], [C, W], [C * W]),
        "node 4 (batch_add, Add): Add of the batch size and a constant depends on the "
        "batch size")
    # a Reshape that would put other elements before the batch
    out["batch_moved"] = (graph(shape_of_x() + [
        N("Slice", ["s", "zero1", "one1"], ["n1"]),
        N("Concat", ["c", "n1", "w1"], ["t"], axis=0),
        N("Reshape", ["x", "t"], ["y"], name="reshape_moved")],
        SHAPE_INITS + [i64("w1", [W])], [C, W], [C, W]),
        "node 5 (reshape_moved, Reshape): Reshape would move the batch dimension")
    # [L * N, E] with the batch inner added to [N * L, E] with it outer
    L, E = 4, 3
    out["batch_orders_mixed"] = (graph([
        N("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
        N("Reshape", ["t", "m1e"], ["inner"]),
        N("Reshape", ["x", "m1e"], ["outer"]),
        N("Add", ["inner", "outer"], ["s"], name="add_mixed"),
        N("Reshape", ["s", "lm1e"], ["y"])],
        [i64("m1e", [-1, E]), i64("lm1e", [L, -1, E])], [L, E], [L, E]),
        "node 3 (add_mixed, Add): inputs merge the batch dimension with another axis "
        "in different orders")
    # an op that is not row-wise on [L * N, E] with the batch inner
    out["batch_inner_reduce"] = (graph([
        N("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
        N("Reshape", ["t", "m1e"], ["inner"]),
        N("ReduceSum", ["inner", "one1"], ["r"], name="reduce_inner"),
        N("Reshape", ["r", "lm1"], ["y"])],
        [i64("m1e", [-1, E]), i64("one1", [1]), i64("lm1", [L, -1])], [L, E], [L]),
        "node 2 (reduce_inner, ReduceSum): ReduceSum of a tensor whose batch dimension "
        "a Reshape merged inside another axis")
    # a Range of N elements
    out["range_of_batch"] = (graph([
        N("Shape", ["x"], ["s"]),
        N("Gather", ["s", "zero"], ["n"], axis=0),
        N("Range", ["zero", "n", "one"], ["r"], name="range_n"),
        N("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
        N("Add", ["x", "rf"], ["y"])],
        [i64("zero", 0), i64("one", 1)], [C, W], [C, W]),
        "node 2 (range_n, Range): a Range over the batch size")
    # Where on a runtime tensor
    out["where_runtime"] = (graph([
        N("Greater", ["x", "zf"], ["pos"], name="cmp_runtime"),
        N("Cast", ["pos"], ["y"], to=TensorProto.FLOAT)],
        [f32("zf", 0.0)], [C, W], [C, W]),
        "node 0 (cmp_runtime, Greater): Greater is supported on constant inputs only")
    return out


def main():
    if len(sys.argv) != 2:
        print("usage: test_onnx_fold.py BUILD_DIR")
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    failed = 0
    rng = np.random.default_rng(17)
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in models().items():
            f = os.path.join(tmp, name + ".onnx")
            onnx.save(m, f)
            sess = session(f)
            shape = [int(d) for d in sess.get_inputs()[0].shape[1:]]
            for batch in (1, 37):
                x = rng.standard_normal([batch] + shape).astype(np.float32)
                ref = sess.run(None, {"x": x})[0]
                try:
                    y = infer(exe, f, x, tmp)
                except RuntimeError as e:
                    print(f"FAIL {name} [batch {batch}]: {e}")
                    failed += 1
                    continue
                d = float(np.max(np.abs(y.astype(np.float64) - ref)))
                ok = y.shape == ref.shape and d <= 1e-5
                failed += not ok
                print(f"{'ok' if ok else 'FAIL':4} {name} [batch {batch}]: max abs diff "
                      f"{d:.3g} vs onnxruntime")
        # the GELU block fused into the MatMul's epilogue, unless shared
        for name, fused in (("gelu_erf", True), ("gelu_erf_shared", False)):
            r = subprocess.run([exe, "inspect", os.path.join(tmp, name + ".onnx")],
                               capture_output=True, text=True)
            got = "MatMul+Gelu" in r.stdout and "Erf" not in r.stdout
            ok = r.returncode == 0 and got == fused
            failed += not ok
            print(f"{'ok' if ok else 'FAIL':4} {name}: the plan has "
                  f"{'a' if got else 'no'} fused Gelu step")
        for name, (m, want) in refused().items():
            f = os.path.join(tmp, name + ".onnx")
            onnx.save(m, f)
            r = subprocess.run([exe, "inspect", f], capture_output=True, text=True)
            ok = r.returncode != 0 and want in r.stderr
            failed += not ok
            print(f"{'ok' if ok else 'FAIL':4} {name} refused: {r.stderr.strip()}")
    print(f"{failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
