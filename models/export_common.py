"""PyTorch side shared by train_toy.py and train_pattern.py: determinism,
the training loop, ONNX export with the engine's metadata, test vectors and
the ONNX Runtime cross-check. Needs torch, onnx and onnxruntime (see
requirements-train.txt); nothing in the build or the tests imports it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

MODELS = Path(__file__).resolve().parent
OPSET = 17


def set_determinism(seed: int) -> None:
    """One thread, deterministic kernels, fixed seeds: a rerun on the same
    versions gives the same weights and the same .onnx bytes."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray,
          rng: np.random.Generator, epochs: int, batch: int = 256,
          lr: float = 3e-3, weight_decay: float = 0.0,
          label_smoothing: float = 0.0, log=print) -> None:
    """Adam (cosine schedule) on cross-entropy over logits; batches drawn
    by a permutation of the numpy Generator (so batch order is part of the
    seed). Label smoothing bounds the logits' spread (a certain window
    scores a few units, not tens), which keeps float32 rounding differences
    between implementations far below 1e-5."""
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(x)))
        total, n = 0.0, 0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        sched.step()
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            log(f"  epoch {epoch + 1:3d}/{epochs}: loss {total / n:.5f}")
    model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(x[i:i + batch])).numpy()
           for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def export(model: nn.Module, name: str, channels: int,
           features: Sequence[str], classes: Sequence[str], doc: str,
           output: str = "logits", window: int = 32,
           training=torch.onnx.TrainingMode.EVAL) -> Path:
    """Exports with the TorchScript exporter (the classic graph: an LSTM's
    initial state is built at run time from the input's shape), opset 17,
    input `input` [N, channels, window] and output `output` with a dynamic
    batch, then adds the engine's metadata_props."""
    path = MODELS / f"{name}.onnx"
    model.eval()
    dummy = torch.zeros(2, channels, window)
    torch.onnx.export(
        model, (dummy,), str(path), dynamo=False, opset_version=OPSET,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
        training=training, do_constant_folding=True)
    m = onnx.load(str(path))
    meta = {"pe.features": ",".join(features), "pe.window": str(window),
            "pe.classes": ",".join(classes), "pe.output": output}
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.doc_string = doc
    m.producer_name = "pytorch"
    m.producer_version = torch.__version__.split("+")[0]
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    return path


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]


def write_vectors(model: nn.Module, name: str, parts: list,
                  features: Sequence[str], classes: Sequence[str],
                  log=print) -> dict:
    """Writes models/<name>.inputs.npy, <name>.outputs.npy (PyTorch's
    outputs) and <name>.vectors.json, which says where each block of rows
    came from. parts: [(source, x, info dict)]. Returns the JSON, with the
    max |ORT - PyTorch| over all rows."""
    x = np.ascontiguousarray(np.concatenate([p[1] for p in parts]), np.float32)
    y = predict(model, x)
    np.save(MODELS / f"{name}.inputs.npy", x)
    np.save(MODELS / f"{name}.outputs.npy", y)
    y_ort = ort_outputs(MODELS / f"{name}.onnx", x)
    diff = float(np.max(np.abs(y_ort - y)))
    rows, start = [], 0
    for source, xs, info in parts:
        rows.append(dict(start=start, stop=start + len(xs), source=source,
                         **info))
        start += len(xs)
    meta = dict(model=f"{name}.onnx", inputs=f"{name}.inputs.npy",
                outputs=f"{name}.outputs.npy", shape=list(x.shape),
                output_shape=list(y.shape), features=list(features),
                classes=list(classes), rows=rows,
                max_abs_diff_onnxruntime_vs_pytorch=diff,
                versions=dict(torch=torch.__version__.split("+")[0],
                              onnx=onnx.__version__,
                              onnxruntime=ort.__version__,
                              numpy=np.__version__))
    with open(MODELS / f"{name}.vectors.json", "w", encoding="ascii") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    log(f"  {name}: {x.shape[0]} test vectors; max |ORT - PyTorch| = {diff:.3g}")
    return meta


def model_summary(path: Path) -> str:
    m = onnx.load(str(path))
    ops = [n.op_type for n in m.graph.node]
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    return (f"{path.name}: {os.path.getsize(path)} bytes, {params} parameters, "
            f"ir {m.ir_version}, opset {m.opset_import[0].version}, "
            f"ops {' '.join(ops)}")
