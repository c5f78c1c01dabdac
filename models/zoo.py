#!/usr/bin/env python3
"""A zoo of models as people train them on tick windows, exported the ways
PyTorch exports them today, for the importer's tests.

    python models/zoo.py --out models/zoo                # the committed set
    python models/zoo.py --out DIR --set large           # bigger ones, made at test time
    python models/zoo.py --out DIR --only lstm2,tcn      # some families

Random weights (fixed seeds): the tests compare our numbers with ONNX
Runtime's, so what the models compute does not matter, only how they are
built and exported. Each family is exported three ways:

  default   torch.onnx.export as a user calls it today: the torch.export-based
            exporter, its default opset, weights in MODEL.onnx.data beside
            the model (external data);
  legacy13  the TorchScript exporter (dynamo=False), opset 13;
  legacy17  the same at opset 17.

All have a dynamic batch dimension `N`, input `input`, output `output`.
For each family the script writes NAME.inputs.npy (random windows at the
model's scale, float32), and for each export NAME.EXPORTER.onnx (and .data)
and NAME.EXPORTER.outputs.npy (ONNX Runtime's outputs on those inputs, one
thread); manifest.json says what each file is, with the versions used and
ONNX Runtime's distance to PyTorch on the same windows.

Needs torch, onnx, onnxscript and onnxruntime. Runs unattended, prints what it
wrote and exits non-zero on any failure (an export that fails, or ONNX
Runtime disagreeing with PyTorch by more than TOLERANCE).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

try:
    import onnx
    import onnxruntime as ort
    import onnxscript
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:  # pragma: no cover
    sys.exit(f"zoo.py: {e}; needs torch, onnx, onnxscript and onnxruntime "
             f"(pip install torch onnx onnxscript onnxruntime)")

EXPORTERS = ("default", "legacy13", "legacy17")
# ONNX Runtime against PyTorch on the written inputs: beyond this the export
# is wrong, not rounded differently.
TOLERANCE = 1e-4
# Exports PyTorch itself refuses, by (family, exporter): the reason must
# appear in its error; the manifest records it and no file is written.
UNEXPORTABLE = {
    ("transformer", "legacy13"): "scaled_dot_product_attention",
    ("transformer64", "legacy13"): "scaled_dot_product_attention",
}
CLASSES = ("none", "spike_up", "spike_down", "breakout_up", "breakout_down")

# Typical magnitude of each standard feature on real trades (docs/features.md).
# Models start with tanh(x / scale), as people normalise raw features, and
# random windows are drawn as scale * N(0, 1) per channel, so both random and
# real windows give outputs of order 1.
FEATURE_SCALE = {
    "log_return": 3e-4, "return_z": 3.0, "ema_gap": 3e-4, "vwap_dev": 1e-3,
    "vwap_roll_dev": 1e-3, "log_volume": 3.0, "volume_ratio": 5.0,
    "ret_vol": 3e-4, "log_dt": 0.5, "ema_fast_dev": 3e-4, "ema_td_dev": 1e-3,
    "signed_volume": 3.0,
}
FEATURES5 = ("return_z", "log_return", "volume_ratio", "ema_gap", "vwap_dev")
FEATURES8 = ("return_z", "log_return", "ema_gap", "vwap_dev", "vwap_roll_dev",
             "log_volume", "volume_ratio", "log_dt")


# ---- the families -------------------------------------------------------------

class Normalize(nn.Module):
    """tanh(x / scale) per feature channel; `axis` is the channel axis of the
    input (1 for [N, C, W], -1 for [N, W, C] and [N, 1, W, C])."""

    def __init__(self, features: Sequence[str], rank: int, axis: int):
        super().__init__()
        inv = torch.tensor([1.0 / FEATURE_SCALE[f] for f in features])
        shape = [1] * (rank - 1)
        shape[axis - 1 if axis > 0 else axis] = len(features)
        self.register_buffer("inv_scale", inv.reshape(shape))

    def forward(self, x):
        return torch.tanh(x * self.inv_scale)


def scale_head(model: nn.Module, x: torch.Tensor) -> None:
    """Scales the last Linear layer so that the outputs on x have unit
    standard deviation: logits of order 1, as a trained classifier gives,
    whatever the random weights before it do to the scale."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        s = float(model(x).std())
        head.weight /= s
        head.bias /= s


def randomize_batchnorm(model: nn.Module, gen: torch.Generator) -> None:
    """Eval-mode BatchNorm with the running statistics and affine parameters
    a trained model has, rather than the identity of a fresh one."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))


class Cnn1d(nn.Module):
    """pattern_cnn-like: two Conv1d + BatchNorm + ReLU blocks over [N, C, W],
    flatten, two Linear layers."""

    def __init__(self, features, window, n_out):
        super().__init__()
        c = len(features)
        self.norm = Normalize(features, 3, 1)
        self.body = nn.Sequential(
            nn.Conv1d(c, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Flatten(), nn.Linear(16 * window, 32), nn.ReLU(),
            nn.Linear(32, n_out))

    def forward(self, x):
        return self.body(self.norm(x))


class Lstm2(nn.Module):
    """Two stacked LSTM layers, batch_first, over [N, W, C]; the last time
    step's output into a Linear head."""

    def __init__(self, features, window, n_out, hidden=32):
        super().__init__()
        self.norm = Normalize(features, 3, -1)
        self.lstm = nn.LSTM(len(features), hidden, num_layers=2,
                            batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        y, _ = self.lstm(self.norm(x))
        return self.head(y[:, -1, :])


class BiGru(nn.Module):
    """A bidirectional GRU, batch_first, over [N, W, C]; both directions'
    final hidden states concatenated into a Linear head."""

    def __init__(self, features, window, n_out, hidden=24):
        super().__init__()
        self.norm = Normalize(features, 3, -1)
        self.gru = nn.GRU(len(features), hidden, batch_first=True,
                          bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_out)

    def forward(self, x):
        _, h = self.gru(self.norm(x))
        return self.head(torch.cat([h[0], h[1]], dim=1))


class CausalBlock(nn.Module):
    """TCN residual block: left-padded (causal) dilated Conv1d twice, ReLU,
    and a 1x1 Conv on the skip path when the widths differ."""

    def __init__(self, c_in, c_out, kernel, dilation):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, dilation=dilation)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):
        y = F.relu(self.conv1(F.pad(x, (self.pad, 0))))
        y = F.relu(self.conv2(F.pad(y, (self.pad, 0))))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class Tcn(nn.Module):
    """Temporal convolutional network over [N, C, W]: causal blocks with
    dilations 1, 2, 4; the last time step into a Linear head."""

    def __init__(self, features, window, n_out, width=16):
        super().__init__()
        self.norm = Normalize(features, 3, 1)
        c = len(features)
        self.blocks = nn.Sequential(CausalBlock(c, width, 3, 1),
                                    CausalBlock(width, width, 3, 2),
                                    CausalBlock(width, width, 3, 4))
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        return self.head(self.blocks(self.norm(x))[:, :, -1])


class Transformer(nn.Module):
    """Input projection and a learnt position embedding, two
    nn.TransformerEncoderLayer (batch_first, GELU), mean over time, a Linear
    head; over [N, W, C]."""

    def __init__(self, features, window, n_out, d_model=32, heads=4):
        super().__init__()
        self.norm = Normalize(features, 3, -1)
        self.proj = nn.Linear(len(features), d_model)
        self.pos = nn.Parameter(0.1 * torch.randn(1, window, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=0.0,
            activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_out)

    def forward(self, x):
        h = self.encoder(self.proj(self.norm(x)) + self.pos)
        return self.head(h.mean(dim=1))


class Mlp(nn.Module):
    """Flatten [N, C, W], then Linear, LayerNorm, ReLU twice and a Linear
    head."""

    def __init__(self, features, window, n_out, hidden=64):
        super().__init__()
        self.norm = Normalize(features, 3, 1)
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(len(features) * window, hidden),
            nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.body(self.norm(x))


class Cnn2d(nn.Module):
    """A 2-D CNN over a feature window as an image [N, 1, W, C]: a Conv2d
    along time, one across all features, pooling over time, a Linear head."""

    def __init__(self, features, window, n_out, width=8):
        super().__init__()
        c = len(features)
        self.norm = Normalize(features, 4, -1)
        self.body = nn.Sequential(
            nn.Conv2d(1, width, (3, 1), padding=(1, 0)), nn.ReLU(),
            nn.Conv2d(width, width, (1, c)), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d((2, 1)), nn.Flatten(),
            nn.Linear(width * (window // 2), n_out))

    def forward(self, x):
        return self.body(self.norm(x))


def conv_block(c_in, c_out, kernel, stride=1):
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride),
            nn.LeakyReLU(0.01), nn.BatchNorm2d(c_out)]


class DeepLob(nn.Module):
    """DeepLOB-style (Zhang, Zohren and Roberts, 2019) over a limit order book
    [N, 1, 100, 40] (100 snapshots of 10 levels x price/size x bid/ask):
    three Conv2d blocks that fold the 40 columns to 1, an inception module
    (1x1 then 3x1, 1x1 then 5x1, 3x1 max-pool then 1x1), an LSTM over time
    and a Linear head. `conv` and `inception` widths are 32 and 64 in the
    paper."""

    def __init__(self, n_out, conv=16, inception=32, hidden=32):
        super().__init__()
        c = conv
        self.conv = nn.Sequential(
            *conv_block(1, c, (1, 2), (1, 2)), *conv_block(c, c, (4, 1)),
            *conv_block(c, c, (4, 1)),
            *conv_block(c, c, (1, 2), (1, 2)), *conv_block(c, c, (4, 1)),
            *conv_block(c, c, (4, 1)),
            *conv_block(c, c, (1, 10)), *conv_block(c, c, (4, 1)),
            *conv_block(c, c, (4, 1)))
        i = inception
        self.branch3 = nn.Sequential(
            nn.Conv2d(c, i, 1, padding="same"), nn.LeakyReLU(0.01),
            nn.BatchNorm2d(i), nn.Conv2d(i, i, (3, 1), padding="same"),
            nn.LeakyReLU(0.01), nn.BatchNorm2d(i))
        self.branch5 = nn.Sequential(
            nn.Conv2d(c, i, 1, padding="same"), nn.LeakyReLU(0.01),
            nn.BatchNorm2d(i), nn.Conv2d(i, i, (5, 1), padding="same"),
            nn.LeakyReLU(0.01), nn.BatchNorm2d(i))
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d((3, 1), stride=1, padding=(1, 0)),
            nn.Conv2d(c, i, 1, padding="same"), nn.LeakyReLU(0.01),
            nn.BatchNorm2d(i))
        self.lstm = nn.LSTM(3 * i, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        h = self.conv(x)                                     # [N, c, T, 1]
        h = torch.cat([self.branch3(h), self.branch5(h), self.branch_pool(h)],
                      dim=1)                                 # [N, 3i, T, 1]
        h = h.permute(0, 2, 1, 3)                            # [N, T, 3i, 1]
        h = torch.reshape(h, (-1, h.shape[1], h.shape[2]))   # [N, T, 3i]
        y, _ = self.lstm(h)
        return self.head(y[:, -1, :])


@dataclasses.dataclass
class Family:
    name: str
    doc: str
    build: Callable[[], nn.Module]
    shape: tuple            # input without the batch axis
    layout: str             # NCW, NWC or N1WC
    features: tuple         # pe.features ('' for a raw, non-feature input)
    window: int
    classes: tuple
    rows: int               # committed input windows
    layout_meta: bool = True  # write pe.layout (else inferred from shape)

    def scale(self) -> np.ndarray:
        """Per-element std of the random windows, broadcastable to shape."""
        if not self.features:
            return np.ones(self.shape, np.float32)
        s = np.array([FEATURE_SCALE[f] for f in self.features], np.float32)
        if self.layout == "NCW":
            return np.broadcast_to(s[:, None], self.shape)
        return np.broadcast_to(s, self.shape)


W = 32
LOB = ("down", "stationary", "up")


def families(which: str) -> list:
    small = [
        Family("cnn1d", "1-D CNN (pattern_cnn-like): Conv1d, BatchNorm, ReLU x2, Linear x2",
               lambda: Cnn1d(FEATURES5, W, 5), (5, W), "NCW", FEATURES5, W,
               CLASSES, 100),
        Family("lstm2", "2-layer LSTM, batch_first, hidden 32, last step, Linear",
               lambda: Lstm2(FEATURES5, W, 5), (W, 5), "NWC", FEATURES5, W,
               CLASSES, 100),
        Family("bigru", "bidirectional GRU, batch_first, hidden 24, both final states, Linear",
               lambda: BiGru(FEATURES5, W, 5), (W, 5), "NWC", FEATURES5, W,
               CLASSES, 100, layout_meta=False),
        Family("tcn", "TCN: dilated causal Conv1d (F.pad on the left), residual blocks, dilations 1, 2, 4",
               lambda: Tcn(FEATURES5, W, 5), (5, W), "NCW", FEATURES5, W,
               CLASSES, 100),
        Family("transformer", "Transformer encoder: 2 nn.TransformerEncoderLayer, batch_first, d_model 32, 4 heads, GELU, mean over time",
               lambda: Transformer(FEATURES8, W, 5), (W, 8), "NWC", FEATURES8,
               W, CLASSES, 100),
        Family("deeplob", "DeepLOB-style: Conv2d blocks over [N,1,100,40], inception branches, LSTM (widths 16/32/32)",
               lambda: DeepLob(3), (1, 100, 40), "N1WC", (), 100, LOB, 10),
        Family("mlp_ln", "MLP with nn.LayerNorm: Flatten, (Linear, LayerNorm, ReLU) x2, Linear",
               lambda: Mlp(FEATURES5, W, 5), (5, W), "NCW", FEATURES5, W,
               CLASSES, 100),
        Family("cnn2d", "2-D CNN over a feature window as an image [N,1,W,C]: Conv2d along time, across features, MaxPool, Linear",
               lambda: Cnn2d(FEATURES8, W, 5), (1, W, 8), "N1WC", FEATURES8, W,
               CLASSES, 100),
    ]
    large = [
        Family("deeplob_full", "DeepLOB at the paper's widths (32/64, LSTM 64)",
               lambda: DeepLob(3, conv=32, inception=64, hidden=64),
               (1, 100, 40), "N1WC", (), 100, LOB, 10),
        Family("transformer64", "Transformer encoder, d_model 64, 8 heads, window 64",
               lambda: Transformer(FEATURES8, 64, 5, d_model=64, heads=8),
               (64, 8), "NWC", FEATURES8, 64, CLASSES, 100),
    ]
    return {"small": small, "large": large, "all": small + large}[which]


# ---- export -------------------------------------------------------------------

def export(model: nn.Module, fam: Family, exporter: str, path: Path) -> None:
    dummy = torch.zeros((2,) + fam.shape)
    names = dict(input_names=["input"], output_names=["output"])
    if exporter == "default":
        # As a user calls it: the torch.export-based exporter, its own
        # opset; external_data=True is its default, passed so that the
        # external-data path stays covered if that default changes.
        torch.onnx.export(model, (dummy,), str(path), dynamo=True,
                          external_data=True,
                          dynamic_shapes=({0: torch.export.Dim("N")},),
                          **names)
    else:
        opset = int(exporter[len("legacy"):])
        torch.onnx.export(model, (dummy,), str(path), dynamo=False,
                          opset_version=opset,
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                          **names)


def add_metadata(path: Path, fam: Family) -> onnx.ModelProto:
    """The engine's metadata_props, written without touching the weights
    (an external data file stays as the exporter wrote it)."""
    m = onnx.load(str(path), load_external_data=False)
    meta = {"pe.window": str(fam.window), "pe.classes": ",".join(fam.classes),
            "pe.output": "logits"}
    if fam.features:
        meta["pe.features"] = ",".join(fam.features)
    if fam.layout != "NCW" and fam.layout_meta:
        meta["pe.layout"] = fam.layout
    for p in m.metadata_props:
        meta.setdefault(p.key, p.value)
    # The default exporter keeps each node's Python stack trace; cut the
    # folders of this machine out of its file names.
    roots = [str(Path(torch.__file__).resolve().parent.parent) + os.sep,
             str(Path(__file__).resolve().parent.parent) + os.sep]
    for node in m.graph.node:
        for p in node.metadata_props:
            for r in roots:
                p.value = p.value.replace(r, "")
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.doc_string = fam.doc
    onnx.save(m, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return m


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]


def external_files(path: Path, m: onnx.ModelProto) -> list:
    locs = set()
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                locs.add(e.value)
    return sorted(locs)


@contextlib.contextmanager
def quiet(chatter: list):
    """Sends what is written to file descriptors 1 and 2 meanwhile (the
    exporters' progress lines, and the graph the TorchScript exporter dumps
    from C++ when it fails) to a temporary file, appended to `chatter` at the
    end."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile(mode="w+") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            chatter.append(tmp.read())


def build_family(fam: Family, seed: int, out: Path, exporters, log) -> dict:
    torch.manual_seed(seed)
    model = fam.build()
    randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    model.eval()
    rng = np.random.default_rng(seed)
    x = (fam.scale() * rng.standard_normal((fam.rows,) + fam.shape)).astype(
        np.float32)
    np.save(out / f"{fam.name}.inputs.npy", x)
    scale_head(model, torch.from_numpy(x))
    with torch.no_grad():
        y_torch = model(torch.from_numpy(x)).numpy()
    entry = dict(doc=fam.doc, input_shape=["N", *fam.shape],
                 layout=fam.layout, features=list(fam.features),
                 window=fam.window, classes=list(fam.classes),
                 inputs=f"{fam.name}.inputs.npy", rows=fam.rows,
                 input_std=[FEATURE_SCALE[f] for f in fam.features]
                 if fam.features else 1.0,
                 params=int(sum(p.numel() for p in model.parameters())),
                 seed=seed, exports={})
    for exporter in exporters:
        path = out / f"{fam.name}.{exporter}.onnx"
        for old in out.glob(f"{fam.name}.{exporter}.onnx*"):
            old.unlink()
        chatter = []
        try:
            with warnings.catch_warnings(), quiet(chatter):
                warnings.simplefilter("ignore")
                export(model, fam, exporter, path)
        except Exception as e:
            why = UNEXPORTABLE.get((fam.name, exporter))
            if why is None or why not in str(e):
                print("".join(chatter)[-20000:], file=sys.stderr)
                raise
            msg = str(e).strip().splitlines()[0]
            entry["exports"][exporter] = dict(unexportable=msg)
            log(f"  {path.name}: not written, PyTorch cannot export it: {msg}")
            continue
        m = add_metadata(path, fam)
        y = ort_run(path, x)
        diff = float(np.max(np.abs(y.astype(np.float64) - y_torch)))
        if y.shape != y_torch.shape or not diff <= TOLERANCE:
            raise RuntimeError(f"{path.name}: ONNX Runtime differs from "
                               f"PyTorch by {diff:.3g} (shape {y.shape} vs "
                               f"{y_torch.shape})")
        np.save(out / f"{fam.name}.{exporter}.outputs.npy", y)
        data = external_files(path, m)
        size = path.stat().st_size + sum((out / d).stat().st_size for d in data)
        opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
        ops = sorted({n.op_type for n in m.graph.node})
        entry["exports"][exporter] = dict(
            model=path.name, external_data=data, opset=opset,
            ir_version=m.ir_version, bytes=size, ops=ops,
            outputs=f"{fam.name}.{exporter}.outputs.npy",
            max_abs_diff_onnxruntime_vs_pytorch=diff)
        log(f"  {path.name}{' + ' + ', '.join(data) if data else ''}: "
            f"{size} bytes, opset {opset}, IR {m.ir_version}, "
            f"|ORT - torch| {diff:.2g}; ops {' '.join(ops)}")
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path,
                    help="output directory (created if absent)")
    ap.add_argument("--set", default="small", choices=("small", "large", "all"),
                    help="small: the committed zoo; large: bigger models made "
                         "at test time")
    ap.add_argument("--only", default="",
                    help="comma-separated family names (default: all of the set)")
    ap.add_argument("--exporters", default=",".join(EXPORTERS),
                    help=f"comma-separated subset of {','.join(EXPORTERS)}")
    args = ap.parse_args()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    exporters = [e for e in args.exporters.split(",") if e]
    bad = [e for e in exporters if e not in EXPORTERS]
    fams = families(args.set)
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in {f.name for f in families("all")}]
    if bad or unknown:
        print(f"zoo.py: unknown exporter(s) {bad} or family(ies) {unknown}",
              file=sys.stderr)
        return 2
    if only:
        fams = [f for f in families("all") if f.name in only]
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = {"models": {}}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    print(f"zoo: torch {torch.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {ort.__version__}, numpy {np.__version__} -> {args.out}")
    failed = []
    seeds = {f.name: 1000 + 10 * i for i, f in enumerate(families("all"))}
    for fam in fams:
        print(f"{fam.name}: {fam.doc}")
        try:
            manifest["models"][fam.name] = build_family(
                fam, seeds[fam.name], args.out, exporters, print)
        except Exception:  # report every family, then fail
            traceback.print_exc()
            failed.append(fam.name)
    manifest["versions"] = dict(
        torch=torch.__version__.split("+")[0], onnx=onnx.__version__,
        onnxscript=onnxscript.__version__, onnxruntime=ort.__version__,
        numpy=np.__version__)
    manifest["exporters"] = {
        "default": "torch.onnx.export(..., dynamo=True, external_data=True), "
                   "the exporter's default opset",
        "legacy13": "torch.onnx.export(..., dynamo=False, opset_version=13)",
        "legacy17": "torch.onnx.export(..., dynamo=False, opset_version=17)"}
    manifest["models"] = dict(sorted(manifest["models"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"wrote {manifest_path} ({len(manifest['models'])} families); "
          f"{total} bytes in {args.out}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
