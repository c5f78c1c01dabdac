#!/usr/bin/env python3
"""PyTorch on the GPU, the peer of `bench-model --backend cuda`: the shipped
models' PyTorch modules (models/train_*.py, the .onnx weights loaded, as in
bench/bench_model_peers.py) and the zoo's (models/zoo.py, for
models/zoo/NAME.EXPORTER.onnx: the family's module at its seed; timing does
not depend on the weights' values), fp32, timed host window in to host
scores out as our backend is: the batch in pinned host memory, copied to the
device, the model, the scores copied back, then a synchronisation.

    python3 bench/gpu_torch.py [--batches 1,4096,65536]
        [--compile-batches 1,4096] MODEL.onnx ...
    python3 bench/gpu_torch.py --export-deeplob32 PATH.onnx

The second form writes deeplob32: the zoo's DeepLOB over 32 book columns
(8 levels x price/size x bid/ask) instead of 40, the third convolution
block (1, 8) wide, exported with the TorchScript exporter (opset 17,
pe.window 100): the engine takes at most 32 channels per window, so this
is the DeepLOB shape that `bench-model --backend cuda` runs. A path named
deeplob32.onnx is timed with that module.

Three ways per model and batch: eager (inference_mode), a CUDA graph of
the copy in, the model and the copy out (torch.cuda.CUDAGraph, replayed),
and torch.compile(mode="reduce-overhead", dynamic=False) (Inductor's
kernels replayed as CUDA graphs; the copies outside) for the batches of
--compile-batches, each batch compiled once before its warm-up, the
compile time printed apart).
Prints one line per measurement: median and p99 latency per batch (us) and
windows/s from the median; each run timed with perf_counter_ns after a
warm-up."""
import argparse
import os
import sys
import time
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))


def module(path):
    try:
        import pandas  # noqa: F401  (models/windows.py imports it)
    except ImportError:
        # the module classes do not use it; the device image may lack it
        sys.modules["pandas"] = types.ModuleType("pandas")
    if os.path.basename(path) == "deeplob32.onnx":
        return deeplob32()
    name = os.path.basename(path).split(".")
    if os.path.basename(os.path.dirname(path)) == "zoo" and len(name) == 3:
        return zoo_module(name[0], os.path.dirname(path))
    from bench_model_peers import torch_module
    return torch_module(path)


def deeplob32():
    """The zoo's DeepLob with its (1, 10) convolution (40 columns folded to
    one) made (1, 8), for 32 columns; fixed seed."""
    import torch
    sys.path.insert(0, os.path.join(ROOT, "models"))
    try:
        import onnxscript  # noqa: F401  (models/zoo.py imports it)
    except ImportError:
        sys.modules["onnxscript"] = types.ModuleType("onnxscript")
    import zoo
    torch.manual_seed(1050)
    m = zoo.DeepLob(3)
    for i, layer in enumerate(m.conv):
        if isinstance(layer, torch.nn.Conv2d) and layer.kernel_size == (1, 10):
            m.conv[i] = torch.nn.Conv2d(layer.in_channels, layer.out_channels,
                                        (1, 8))
    zoo.randomize_batchnorm(m, torch.Generator().manual_seed(1051))
    return m.eval()


def export_deeplob32(path):
    import onnx
    import torch
    m = deeplob32()
    x = torch.randn(2, 1, 100, 32)
    try:
        torch.onnx.export(m, x, path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    except Exception as e:  # a torch without the TorchScript exporter
        print(f"TorchScript exporter: {e}; the torch.export-based one")
        n = torch.export.Dim("N", min=1)
        torch.onnx.export(m, (x,), path, input_names=["input"],
                          output_names=["output"],
                          dynamic_shapes={"x": {0: n}}, external_data=False)
    import zoo
    mp = onnx.load(path)
    # the engine's handle needs a feature per channel: the zoo's eight
    # names four times over (the values do not matter to the timing)
    meta = {"pe.window": "100", "pe.features": ",".join(list(zoo.FEATURES8) * 4)}
    for k, v in meta.items():
        e = mp.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(mp, path)
    print(f"wrote {path}")


def zoo_module(family, zoo_dir):
    """The zoo family's nn.Module, built at its manifest seed."""
    import json
    import torch
    try:
        import onnxscript  # noqa: F401  (models/zoo.py imports it)
    except ImportError:
        sys.modules["onnxscript"] = types.ModuleType("onnxscript")
    sys.path.insert(0, os.path.join(ROOT, "models"))
    import zoo
    fams = {f.name: f for f in zoo.families("all")}
    if family not in fams:
        return None
    # the manifest's seed where the folder has one (models/zoo); else 0, as
    # bench/bench_model_peers.py --zoo exports them (timing does not depend
    # on the weights)
    seed = 0
    manifest = os.path.join(zoo_dir, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            seed = json.load(f)["models"].get(family, {}).get("seed", 0)
    torch.manual_seed(seed)
    m = fams[family].build()
    zoo.randomize_batchnorm(m, torch.Generator().manual_seed(seed + 1))
    return m.eval()


def timed(fn, iters, warm):
    for _ in range(warm):
        fn()
    t = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        fn()
        t[i] = time.perf_counter_ns() - t0
    return np.median(t) / 1e3, np.percentile(t, 99) / 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,4096,65536")
    ap.add_argument("--compile-batches", default="1,4096")
    ap.add_argument("--export-deeplob32", metavar="PATH")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    if a.export_deeplob32:
        export_deeplob32(a.export_deeplob32)
        return
    import torch
    import onnxruntime as ort
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    for path in a.models:
        name = os.path.basename(path)
        m = module(path)
        if m is None:
            print(f"{name}: no PyTorch definition")
            continue
        m = m.to(dev).eval()
        shape = [int(d) for d in
                 ort.InferenceSession(path).get_inputs()[0].shape[1:]]
        for b in [int(x) for x in a.batches.split(",")]:
            try:
                one_batch(a, name, m, shape, b, dev)
            except torch.cuda.OutOfMemoryError:
                print(f"{name} batch {b}: out of device memory")
                torch._dynamo.reset()
                torch.cuda.empty_cache()


def one_batch(a, name, m, shape, b, dev):
    """Eager, CUDA graph and (for --compile-batches) torch.compile at batch
    b, a line each."""
    import torch
    iters = max(30, min(3000, 400000 // b))
    warm = max(5, iters // 10)
    h_in = (torch.rand([b] + shape) * 2 - 1).pin_memory()
    with torch.inference_mode():
        n_out = m(h_in[:1].to(dev)).shape[1]
        h_out = torch.empty((b, n_out)).pin_memory()

        def eager():
            y = m(h_in.to(dev, non_blocking=True))
            h_out.copy_(y, non_blocking=True)
            torch.cuda.synchronize()

        med, p99 = timed(eager, iters, warm)
        print(f"{name} batch {b} torch eager: median {med:.1f} us, "
              f"p99 {p99:.1f} us, {b / med * 1e6:.4g} windows/s")
        d_in = torch.empty_like(h_in, device=dev)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):  # warm-up before capture
                d_in.copy_(h_in, non_blocking=True)
                h_out.copy_(m(d_in), non_blocking=True)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            d_in.copy_(h_in, non_blocking=True)
            h_out.copy_(m(d_in), non_blocking=True)

        def graph():
            g.replay()
            torch.cuda.synchronize()

        med, p99 = timed(graph, iters, warm)
        print(f"{name} batch {b} torch graph: median {med:.1f} us, "
              f"p99 {p99:.1f} us, {b / med * 1e6:.4g} windows/s")
        del g
    if str(b) not in a.compile_batches.split(","):
        return
    torch._dynamo.reset()
    cm = torch.compile(m, mode="reduce-overhead", dynamic=False)
    with torch.inference_mode():
        def compiled():
            y = cm(h_in.to(dev, non_blocking=True))
            h_out.copy_(y, non_blocking=True)
            torch.cuda.synchronize()

        t0 = time.perf_counter()
        compiled()
        print(f"{name} batch {b} torch compile: compiled in "
              f"{time.perf_counter() - t0:.1f} s")
        med, p99 = timed(compiled, iters, warm)
        print(f"{name} batch {b} torch compile: median {med:.1f} us, "
              f"p99 {p99:.1f} us, {b / med * 1e6:.4g} windows/s")


if __name__ == "__main__":
    main()
