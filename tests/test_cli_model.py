#!/usr/bin/env python3
"""End-to-end checks of `inspect`, `infer` and `bench-model` (no numpy:
.npy files are written and read by hand). Usage: test_cli_model.py ENGINE"""
import os
import subprocess
import sys
import tempfile

from npyfile import read_npy, write_npy

ENGINE = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "models")
passed = failed = 0


def run(*args):
    r = subprocess.run([ENGINE, *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


rc, out, err = run("--version")
check("version", rc == 0 and "cpu" in out and "kernels" in out, out)

m = os.path.join(MODELS, "cnn_toy.onnx")
rc, out, err = run("inspect", m)
check("inspect ok", rc == 0, err)
for frag in ("input      input [N, 1, 32]", "pe.features = return_z", "Conv+Relu",
             "layout     NCW (W=32 steps, C=1 feature), from the input's shape, "
             "given pe.window=32 and pe.features (1 name)\n",
             "flops      28928 per window", "plan       3 steps"):
    check("inspect shows " + frag, frag in out, out)

# a batch_first LSTM's input [N, W, C], named so by its pe.layout
rc, out, err = run("inspect", os.path.join(ROOT, "models", "zoo", "lstm2.legacy17.onnx"))
check("inspect NWC", rc == 0 and "input      input [N, 32, 5] float32" in out and
      "\nlayout     NWC (W=32 steps, C=5 features), from pe.layout\n" in out, out + err)
# nn.TransformerEncoderLayer as the legacy exporter writes it (opset 17: Erf
# GELU, Gather-picked q, k, v) plans the very steps of the default export's
# (Gelu node, Split): same kinds, fusions, shapes and flops
plans = []
for exp in ("default", "legacy17"):
    rc, out, err = run("inspect", os.path.join(ROOT, "models", "zoo", f"transformer.{exp}.onnx"))
    plans.append(out[out.find("\nplan "):] if rc == 0 else err)
check("transformer exports plan alike", plans[0] == plans[1] and "Attention" in plans[0] and
      "MatMul+Add+Gelu" in plans[0], "\n".join(plans))
# a graph whose input is no feature window loads, and says why the engine
# cannot feed it
rc, out, err = run("inspect", os.path.join(MODELS, "regress", "fuzz_output_is_input.onnx"))
check("inspect layout none", rc == 0 and
      "\nlayout     none: the engine cannot feed this input (the input 'input' [N] is "
      "not a feature window: the engine feeds [N, C, W], [N, W, C], [N, 1, W, C] or "
      "[N, C*W])\n" in out, out + err)

rc, out, err = run("inspect", os.path.join(MODELS, "bad", "unknown_op.onnx"))
check("inspect bad exit", rc == 1, rc)
check("inspect bad message", "node 1 (act0, Hardmax): unsupported op 'Hardmax'" in err, err)
rc, out, err = run("inspect", "/nonexistent.onnx")
check("inspect missing", rc == 1 and "/nonexistent.onnx: cannot read the model" in err, err)
rc, out, err = run("inspect")
check("inspect usage", rc == 2, rc)

with tempfile.TemporaryDirectory() as tmp:
    x = os.path.join(tmp, "x.npy")
    y = os.path.join(tmp, "y.npy")
    vals = [((i * 37) % 11) / 5.0 - 1.0 for i in range(3 * 32)]
    write_npy(x, (3, 1, 32), vals)
    rc, out, err = run("infer", m, "--input", x, "--output", y)
    check("infer ok", rc == 0, err)
    if rc == 0:
        shape, ys = read_npy(y)
        check("infer shape", shape == (3, 2), shape)
        check("infer finite", all(v == v and abs(v) < 1e6 for v in ys), ys)
        rc, out, err = run("infer", m, "--input", x, "--output", y, "--kernels", "generic")
        shape2, ys2 = read_npy(y)
        check("generic close", max(abs(a - b) for a, b in zip(ys, ys2)) < 1e-5, (ys, ys2))
    write_npy(x, (3, 31), [0.0] * 93)
    rc, out, err = run("infer", m, "--input", x, "--output", y)
    check("infer wrong shape", rc == 1 and "32 values per window" in err, err)
    write_npy(x, (2, 32), [0.5] * 64)
    rc, out, err = run("infer", "none", "--backend", "stub", "--input", x, "--output", y)
    check("infer stub", rc == 0 and read_npy(y)[0] == (2, 3), err)

rc, out, err = run("bench-model", m, "--batch", "2", "--iterations", "50", "--warmup", "5")
check("bench ok", rc == 0, err)
for frag in ("min ", "mean ", "median ", "p90 ", "p95 ", "p99 ", "p99.9 ", "max ",
             "windows/s", "samples: 50"):
    check("bench shows " + frag, frag in out, out)
rc, out, err = run("bench-model", m, "--batch", "3", "--iterations", "20", "--threads", "2")
check("bench threads", rc == 0 and "samples: 40" in out, out + err)

for cmd in ("inspect", "infer", "bench-model"):
    rc, out, err = run("help", cmd)
    check("help " + cmd, rc == 0 and "examples:" in out, out)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
