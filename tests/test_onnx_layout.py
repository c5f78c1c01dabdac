#!/usr/bin/env python3
"""How a model's input holds a feature window: [N, C, W] (NCW), [N, W, C]
(NWC) or [N, 1, W, C] (N1WC).

    tests/test_onnx_layout.py BUILD_DIR

Small models (Flatten, Tanh, MatMul, Add: every input element weighs on
every logit, so a window fed in another order gives other numbers) in each
layout, with and without the metadata entry pe.layout:

- `inspect` names the layout, W and C, and where they come from: pe.layout,
  or the shape given pe.window and/or the count of pe.features, or the
  [N, C, W] default of a rank-3 input without either entry.
- The engine (`replay --model` on fixtures/sample_ticks.csv, every window
  scored) feeds NCW, NWC and N1WC models from its [C, W] windows: each
  signal's probability against the softmax of ONNX Runtime's logits on the
  window models/windows.py cuts there, put in the model's layout.
- Refused, by the engine and shown by `inspect` as layout none: a shape
  whose window and feature axes are equally long without pe.layout (it says
  to set pe.layout), a pe.layout that contradicts the input's rank or
  pe.window/pe.features, a pe.layout that is not NCW, NWC or N1WC, and a
  shape that holds no window of pe.window steps. `infer` still runs them.

Exit 77 with a SKIP line when onnx, onnxruntime, numpy or pandas are
missing."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# numpy, onnx and onnxruntime, or exit 77
from test_onnx_opsets import ROOT, TensorProto, helper, np, numpy_helper, onnx  # noqa
import test_zoo  # noqa: E402

FEATURES5 = ("return_z", "log_return", "volume_ratio", "ema_gap", "vwap_dev")
CLASSES = ("none", "up", "down")
FIXTURE = os.path.join(ROOT, "fixtures", "sample_ticks.csv")
failed = 0


def report(ok, label, detail=""):
    global failed
    failed += not ok
    print(f"{'ok' if ok else 'FAIL':4} {label}{': ' + detail if detail else ''}")


def window_model(tmp, name, shape, meta, seed=1):
    """input [N, *shape] -> Flatten -> Tanh -> MatMul -> Add -> y [N, 3]."""
    k = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((0.15 * rng.standard_normal((k, 3))).astype(np.float32), "w")
    b = numpy_helper.from_array(np.array([0.3, -0.1, 0.05], np.float32), "b")
    g = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["f"], axis=1),
         helper.make_node("Tanh", ["f"], ["t"]),
         helper.make_node("MatMul", ["t", "w"], ["m"]),
         helper.make_node("Add", ["m", "b"], ["y"])],
        name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for key, v in dict({"pe.classes": ",".join(CLASSES), "pe.output": "logits"},
                       **meta).items():
        e = m.metadata_props.add()
        e.key, e.value = key, v
    f = os.path.join(tmp, name + ".onnx")
    onnx.save(m, f)
    return f


def inspect_layout(exe, path):
    r = subprocess.run([exe, "inspect", path], capture_output=True, text=True)
    if r.returncode != 0:
        return f"(inspect failed: {r.stderr.strip()})"
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("layout ")]
    return lines[0] if lines else "(no layout line)"


def replay_error(exe, path, *extra):
    r = subprocess.run([exe, "replay", "--ticks", FIXTURE, "--model", path,
                        "--out", os.devnull, *extra], capture_output=True, text=True)
    return None if r.returncode == 0 else r.stderr.strip()


F5 = ",".join(FEATURES5)
# name, input shape (no batch axis), metadata, the layout line inspect prints
RECOGNISED = [
    ("ncw_shape", (5, 32), {"pe.window": "32", "pe.features": F5},
     "layout     NCW (W=32 steps, C=5 features), from the input's shape, "
     "given pe.window=32 and pe.features (5 names)"),
    ("nwc_shape", (32, 5), {"pe.window": "32", "pe.features": F5},
     "layout     NWC (W=32 steps, C=5 features), from the input's shape, "
     "given pe.window=32 and pe.features (5 names)"),
    ("nwc_window_only", (32, 5), {"pe.window": "32"},
     "layout     NWC (W=32 steps, C=5 features), from the input's shape, "
     "given pe.window=32"),
    ("nwc_features_only", (32, 5), {"pe.features": F5},
     "layout     NWC (W=32 steps, C=5 features), from the input's shape, "
     "given pe.features (5 names)"),
    ("n1wc_shape", (1, 32, 5), {"pe.window": "32", "pe.features": F5},
     "layout     N1WC (W=32 steps, C=5 features), from the input's shape, "
     "given pe.window=32 and pe.features (5 names)"),
    ("nwc_meta", (32, 5), {"pe.layout": "NWC", "pe.window": "32", "pe.features": F5},
     "layout     NWC (W=32 steps, C=5 features), from pe.layout"),
    ("n1wc_meta", (1, 32, 5), {"pe.layout": "N1WC", "pe.features": F5},
     "layout     N1WC (W=32 steps, C=5 features), from pe.layout"),
    ("ncw_meta", (5, 32), {"pe.layout": "NCW", "pe.features": F5},
     "layout     NCW (W=32 steps, C=5 features), from pe.layout"),
    ("nwc_square_meta", (5, 5), {"pe.layout": "NWC", "pe.window": "5", "pe.features": F5},
     "layout     NWC (W=5 steps, C=5 features), from pe.layout"),
    ("ncw_square_meta", (5, 5), {"pe.layout": "NCW", "pe.window": "5", "pe.features": F5},
     "layout     NCW (W=5 steps, C=5 features), from pe.layout"),
    ("ncw_flat", (160,), {"pe.window": "32", "pe.features": F5},
     "layout     NCW (W=32 steps, C=5 features), from the input's shape, "
     "given pe.window=32 and pe.features (5 names)"),
    ("default_no_meta", (4, 6), {},
     "layout     NCW (W=6 steps, C=4 features), from the input's shape, "
     "[N, C, W] being the default (no pe.layout, pe.window or pe.features)"),
    ("one_feature", (1, 32), {"pe.features": "return_z"},
     "layout     NCW (W=32 steps, C=1 feature), from the input's shape, "
     "given pe.features (1 name)"),
]

# name, input shape, metadata, what the refusal says (inspect and replay)
REFUSED = [
    ("square_ambiguous", (5, 5), {"pe.window": "5", "pe.features": F5},
     "the input 'input' [N, 5, 5] reads as [N, C, W] and as [N, W, C] with "
     "pe.window=5 and pe.features (5 names) (its window and feature axes are "
     "equally long); set the metadata pe.layout to NCW or NWC"),
    ("square_ambiguous_window", (32, 32), {"pe.window": "32"},
     "the input 'input' [N, 32, 32] reads as [N, C, W] and as [N, W, C] with "
     "pe.window=32 (its window and feature axes are equally long); set the "
     "metadata pe.layout to NCW or NWC"),
    ("layout_contradicts_window", (32, 5),
     {"pe.layout": "NCW", "pe.window": "32", "pe.features": F5},
     "metadata pe.layout=NCW reads the input 'input' [N, 32, 5] as windows of "
     "5 steps of 32 features, which contradicts pe.window=32 and pe.features "
     "(5 names)"),
    ("layout_contradicts_rank", (32, 5), {"pe.layout": "N1WC", "pe.features": F5},
     "metadata pe.layout=N1WC contradicts the input 'input' [N, 32, 5]: N1WC "
     "is [N, 1, W, C]"),
    ("layout_contradicts_rank4", (1, 32, 5), {"pe.layout": "NWC"},
     "metadata pe.layout=NWC contradicts the input 'input' [N, 1, 32, 5]: NWC "
     "is [N, W, C]"),
    ("layout_unknown", (32, 5), {"pe.layout": "NHWC", "pe.features": F5},
     "metadata pe.layout='NHWC' is not NCW, NWC or N1WC"),
    ("window_mismatch", (7, 5), {"pe.window": "32", "pe.features": F5},
     "the input 'input' [N, 7, 5] does not hold windows of pe.window=32 and "
     "pe.features (5 names) (as NCW it holds 5 steps of 7 features, as NWC 7 "
     "steps of 5)"),
    ("features_mismatch", (32, 5), {"pe.window": "32", "pe.features": "return_z,log_return"},
     "the input 'input' [N, 32, 5] does not hold windows of pe.window=32 and "
     "pe.features (2 names) (as NCW it holds 5 steps of 32 features, as NWC "
     "32 steps of 5)"),
    ("rank4_not_one", (2, 32, 5), {"pe.window": "32"},
     "the input 'input' [N, 2, 32, 5] is not a feature window: the engine "
     "feeds [N, C, W], [N, W, C], [N, 1, W, C] or [N, C*W]"),
]

# models the engine runs on the fixture, checked against ONNX Runtime
FED = {"ncw_shape": "NCW", "nwc_shape": "NWC", "n1wc_shape": "N1WC",
       "nwc_meta": "NWC", "n1wc_meta": "N1WC", "nwc_square_meta": "NWC",
       "ncw_square_meta": "NCW", "ncw_flat": "NCW"}


def main():
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[3])
        return 2
    exe = os.path.join(sys.argv[1], "pattern-engine")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, shape, meta, want in RECOGNISED:
            paths[name] = window_model(tmp, name, shape, meta)
            got = inspect_layout(exe, paths[name])
            report(got == want, f"inspect {name}", f"\n  got:  {got}\n  want: {want}"
                   if got != want else "")
        for name, shape, meta, want in REFUSED:
            path = window_model(tmp, name, shape, meta)
            got = inspect_layout(exe, path)
            line = f"layout     none: the engine cannot feed this input ({want})"
            report(got == line, f"inspect {name}", f"\n  got:  {got}\n  want: {line}"
                   if got != line else "")
            err = replay_error(exe, path, "--model-features", F5)
            ok = err is not None and err.endswith(f"{path}: {want}")
            report(ok, f"replay refuses {name}",
                   "" if ok else f"\n  got:  {err}\n  want: ...{want}")
            # infer runs it as declared all the same
            x = np.zeros((2,) + shape, np.float32)
            xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
            np.save(xin, x)
            r = subprocess.run([exe, "infer", path, "--input", xin, "--output", yout],
                               capture_output=True, text=True)
            report(r.returncode == 0 and np.load(yout).shape == (2, 3),
                   f"infer runs {name}", r.stderr.strip())
        # a model without pe.features takes them from --model-features
        err = replay_error(exe, paths["nwc_window_only"], "--model-features", F5)
        report(err is None, "replay runs nwc_window_only with --model-features", err or "")

        chk = test_zoo.Checker(exe, tmp)
        if chk.windows() is None or test_zoo.ort is None:
            print("SKIP engine feeding: pandas or onnxruntime is missing")
            return 77 if failed == 0 else 1
        chk.real_ticks = lambda: None  # the fixture is enough for these models
        for name, layout in FED.items():
            meta = {k: v for n, s, k_meta, _ in RECOGNISED if n == name
                    for k, v in k_meta.items()}
            shape = [s for n, s, _, _ in RECOGNISED if n == name][0]
            info = {"features": list(FEATURES5), "classes": list(CLASSES),
                    "window": int(meta.get("pe.window", 32)), "layout": layout}
            out = []
            try:
                if len(shape) == 1:  # [N, C*W]: the NCW window flattened
                    info["layout"] = "NCW"
                    orig = chk.ort
                    chk.ort = lambda p, x, orig=orig: orig(p, x.reshape(len(x), -1))
                    chk.check_engine(name, info, paths[name], out)
                    chk.ort = orig
                else:
                    chk.check_engine(name, info, paths[name], out)
            except test_zoo.Refused as e:
                out.append(f"FAIL {name} [engine]: refused: {e}")
            for line in out:
                report(line.startswith("ok"), line[5:])
            if not out:
                report(False, f"{name} [engine]", "nothing was checked")
    print(f"test_onnx_layout: {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
