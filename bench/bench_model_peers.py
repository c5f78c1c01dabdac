#!/usr/bin/env python3
"""Our cpu backend against ONNX Runtime and PyTorch, same models, same core.

    .venv/bin/python bench/bench_model_peers.py [--build build] [--core 1]
        [--batches 1,4096] [--deeplob] [MODEL.onnx ...]

Everything runs pinned to one core (taskset for `pattern-engine bench-model`,
sched_setaffinity for this process), in one run of this script:
  - ours:  `pattern-engine bench-model MODEL --batch B` (median latency and
           throughput over the timed runs);
  - ONNX Runtime (Python): intra_op_num_threads=1, inter_op_num_threads=1,
           sequential execution, all graph optimizations on; the same timing
           (each run timed with perf_counter_ns, warm-up first);
  - PyTorch CPU (eager, inference_mode, torch.set_num_threads(1)), when
           torch is importable, for the shipped models: the module class of
           models/train_*.py with the .onnx weights.
Ratios are our throughput over the peer's. Defaults: models/*.onnx when there
are any, else the toy models in tests/models/. --deeplob adds a DeepLOB-style
model of the paper's size (input [N, 1, 100, 40]: conv blocks of 32 filters,
an inception module of 3 x 64, LSTM 64; tests/models/make_conv_rnn_models.py,
79 MFLOP per window), written to a temporary folder. The timed runs of one
measurement are capped to about 100 GFLOP of work (at least 20 runs), so
large models finish in seconds.
Then, unless --no-transformer, a Transformer encoder
(tests/models/attention_models.py: windows of 8 features x 64 ticks, d_model
64, 4 heads, 2 post-norm layers, feed-forward 128, mean over the ticks, 3
outputs; made at run time with a fixed seed).

--zoo FAMILIES takes models as PyTorch users write and export them instead:
each family of models/zoo.py (transformer64: nn.TransformerEncoderLayer x 2,
d_model 64, 8 heads, GELU, 64 ticks x 8 features; deeplob_full: DeepLOB at
the paper's widths over [N, 1, 100, 40]) built with the zoo's seed, exported
with each of --exporters (legacy17: the TorchScript exporter at opset 17;
default: torch.onnx.export's own exporter, which needs onnxscript), and the
same module is PyTorch's contender (eager, inference_mode, one thread). With
--zoo only the zoo's models run, and those named on the command line.
GFLOP/s is ours, from the plan's FLOP count over our throughput; --peak
GFLOPS adds it as a share of the core's peak. A contender whose calls take
seconds runs fewer times (at least 5 timed, about 10 s in all).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def iterations(batch, flops=0):
    n = max(50, min(20000, 200000 // batch))
    if flops > 0:
        n = min(n, max(20, int(1e11 / (batch * flops))))
    return n


def model_flops(exe, model):
    out = subprocess.run([exe, "inspect", model], capture_output=True, text=True).stdout
    m = re.search(r"^flops\s+([0-9]+) per window", out, re.M)
    return int(m.group(1)) if m else 0


def deeplob_model(tmp):
    sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
    import make_test_models as mt
    import make_conv_rnn_models as mc
    import onnx
    mt.rng = np.random.default_rng(1)
    path = os.path.join(tmp, "deeplob_paper.onnx")
    onnx.save(mc.deeplob(32, 64, 64), path)
    return path


def ours(exe, model, batch, core, kernels):
    n = iterations(batch, model_flops(exe, model))
    cmd = ["taskset", "-c", str(core), exe, "bench-model", model, "--batch", str(batch),
           "--kernels", kernels, "--iterations", str(n), "--warmup", str(max(2, n // 10))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    med = float(re.search(r"median ([0-9.]+)", out).group(1))
    tput = float(re.search(r"throughput: ([0-9.]+) windows/s", out).group(1))
    kern = re.search(r"kernels (\S+)", out).group(1)
    return med, tput, kern


# A contender's seconds of timed calls beyond which it runs fewer of them.
SLOW_BUDGET_S = 10.0


def timed(fn, batch, flops=0):
    n = iterations(batch, flops)
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    warm = max(5, n // 10) - 1
    if first * n > SLOW_BUDGET_S:
        n = max(5, int(SLOW_BUDGET_S / first))
        warm = min(warm, 1)
    for _ in range(warm):
        fn()
    t = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn()
        t[i] = time.perf_counter_ns() - t0
    med_us = float(np.median(t)) / 1e3
    tput = batch * n / (t.sum() / 1e9)
    return med_us, tput


def ort_session(model, batch):
    """ONNX Runtime on one thread, all graph optimizations: the session and
    a feed of `batch` uniform random windows."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    shape = [batch] + [int(d) for d in inp.shape[1:]]
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    return s, {inp.name: x}


def ort_bench(model, batch, flops=0):
    s, feed = ort_session(model, batch)
    return timed(lambda: s.run(None, feed), batch, flops)


def torch_module(model):
    """The PyTorch module of a shipped model: its class from the training
    scripts (models/train_*.py), with the weights of the .onnx loaded where
    the initializer names match the state dict (timing does not depend on
    the values). None for models without a PyTorch definition."""
    import torch
    import onnx
    from onnx import numpy_helper
    sys.path.insert(0, os.path.join(ROOT, "models"))
    name = os.path.basename(model)[:-5]
    if name in ("toy_cnn", "toy_mlp"):
        import train_toy as T
        m = T.ToyCNN() if name == "toy_cnn" else T.ToyMLP()
    elif name in ("pattern_cnn", "pattern_lstm"):
        import train_pattern as T
        c = int(onnx.load(model).graph.input[0].type.tensor_type.shape.dim[1].dim_value)
        cls = T.PatternCNN if name == "pattern_cnn" else T.PatternLSTM
        m = cls(np.zeros(c), np.ones(c))
    else:
        return None
    sd = m.state_dict()
    for t in onnx.load(model).graph.initializer:
        if t.name in sd and tuple(sd[t.name].shape) == tuple(t.dims):
            sd[t.name] = torch.from_numpy(numpy_helper.to_array(t).copy())
    m.load_state_dict(sd)
    return m.eval()


def zoo_models(tmp, families, exporters):
    """The zoo families named, each built with the zoo's seed and exported
    with each exporter into tmp: a list of (path, module, input shape), the
    module shared by a family's exports."""
    try:
        import torch
    except ImportError as e:
        sys.exit(f"bench_model_peers: --zoo needs torch ({e}); run with a "
                 f"python that has torch, onnx and onnxscript")
    sys.path.insert(0, os.path.join(ROOT, "models"))
    import zoo  # exits with its own message when onnx or onnxscript is absent
    fams = {f.name: f for f in zoo.families("all")}
    out = []
    for name in families:
        if name not in fams:
            sys.exit(f"bench_model_peers: no zoo family '{name}' "
                     f"(models/zoo.py has {', '.join(sorted(fams))})")
        fam = fams[name]
        torch.manual_seed(0)
        module = fam.build().eval()
        for exporter in exporters:
            if exporter not in zoo.EXPORTERS:
                sys.exit(f"bench_model_peers: no exporter '{exporter}' "
                         f"(models/zoo.py has {', '.join(zoo.EXPORTERS)})")
            path = os.path.join(tmp, f"{name}.{exporter}.onnx")
            with zoo.quiet([]):
                zoo.export(module, fam, exporter, path)
            zoo.add_metadata(path, fam)
            out.append((path, module, fam.shape))
    return out


def torch_bench_module(module, shape, batch, flops):
    import torch
    torch.set_num_threads(1)
    x = torch.rand([batch] + list(shape)) * 2 - 1
    with torch.inference_mode():
        return timed(lambda: module(x), batch, flops)


def torch_bench(model, batch):
    try:
        import torch
    except ImportError:
        return None, "torch not importable (run with a python that has it, e.g. /work/venv-train)"
    try:
        m = torch_module(model)
    except Exception as e:  # a training script that does not import here
        return None, f"no PyTorch module ({e})"
    if m is None:
        return None, "no PyTorch definition for this model"
    torch.set_num_threads(1)
    import onnxruntime as ort
    shape = [int(d) for d in ort.InferenceSession(model).get_inputs()[0].shape[1:]]
    x = torch.rand([batch] + shape) * 2 - 1
    with torch.inference_mode():
        return timed(lambda: m(x), batch), ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--core", type=int, default=1)
    ap.add_argument("--batches", default="1,4096")
    ap.add_argument("--kernels", default="auto", help="our kernels: auto, avx2, generic")
    ap.add_argument("--deeplob", action="store_true",
                    help="add a DeepLOB-style model of the paper's size")
    ap.add_argument("--no-transformer", action="store_true",
                    help="leave out the generated Transformer encoder")
    ap.add_argument("--zoo", default="",
                    help="models/zoo.py families as exported by PyTorch, "
                         "e.g. transformer64,deeplob_full")
    ap.add_argument("--exporters", default="legacy17,default",
                    help="with --zoo: legacy13, legacy17, default")
    ap.add_argument("--peak", type=float, default=0.0,
                    help="the core's peak GFLOP/s, to print ours as a share of it")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_peers_")
    exe = os.path.join(a.build, "pattern-engine")
    if not os.access(exe, os.X_OK):
        sys.exit(f"bench_model_peers: no pattern-engine in {a.build} (--build DIR)")
    zoo_mod = {}
    if a.zoo:
        for path, module, shape in zoo_models(tmp, a.zoo.split(","),
                                              a.exporters.split(",")):
            zoo_mod[path] = (module, shape)
    extra = [deeplob_model(tmp)] if a.deeplob else []
    extra += list(zoo_mod)
    models = extra + a.models if (a.models or extra) else sorted(
        glob.glob(os.path.join(ROOT, "models", "*.onnx"))) or [
        os.path.join(ROOT, "tests", "models", f)
        for f in ("mlp_gemm.onnx", "cnn_toy.onnx", "conv_odd.onnx", "lstm.onnx", "gru.onnx")]
    if not a.no_transformer and not a.zoo:
        import onnx
        sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
        import attention_models
        path = os.path.join(tmp, "transformer_enc.onnx")
        onnx.save(attention_models.encoder(C=8, W=64, E=64, H=4, layers=2, ff=128), path)
        models = list(models) + [path]
    os.sched_setaffinity(0, {a.core})
    import onnxruntime
    print(f"one core (cpu {a.core}); onnxruntime {onnxruntime.__version__}, numpy {np.__version__}")
    peak = f" {'% peak':>6}" if a.peak > 0 else ""
    hdr = (f"{'model':28} {'batch':>5} | {'ours med us':>11} {'ours win/s':>11} "
           f"{'GFLOP/s':>7}{peak} | {'ORT med us':>10} {'ORT win/s':>11} {'x ORT':>6} | "
           f"{'torch med us':>12} {'torch win/s':>11} {'x torch':>7}")
    print(hdr)
    print("-" * len(hdr))
    why = ""
    torch_cache = {}
    for m in models:
        flops = model_flops(exe, m)
        for b in [int(v) for v in a.batches.split(",")]:
            med, tput, kern = ours(exe, m, b, a.core, a.kernels)
            omed, otput = ort_bench(m, b, flops)
            if m in zoo_mod:
                module, shape = zoo_mod[m]
                key = (id(module), b)
                if key not in torch_cache:
                    torch_cache[key] = torch_bench_module(module, shape, b, flops)
                tres, why_m = torch_cache[key], ""
            else:
                tres, why_m = torch_bench(m, b)
            why = why_m or why
            ts = (f"{tres[0]:12.3f} {tres[1]:11.0f} {tput / tres[1]:7.2f}" if tres
                  else f"{'-':>12} {'-':>11} {'-':>7}")
            gf = flops * tput / 1e9
            pk = f" {100 * gf / a.peak:5.1f}%" if a.peak > 0 else ""
            print(f"{os.path.basename(m):28} {b:5d} | {med:11.3f} {tput:11.0f} {gf:7.1f}{pk} | "
                  f"{omed:10.3f} {otput:11.0f} {tput / otput:6.2f} | {ts}", flush=True)
    try:
        import torch
        tv = f"torch {torch.__version__}"
    except ImportError:
        tv = "torch absent"
    print(f"our kernels: {kern}; {tv}; PyTorch: {why or 'measured'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
