#!/usr/bin/env python3
"""Trains and exports the pattern models (the default model of `make demo`
and its LSTM twin) on windows of engine-computed features.

    /work/venv-train/bin/python models/train_pattern.py   # from the repo root

Needs the engine binary (build/pattern-engine or $PE_ENGINE). Steps:

1. generate N_SERIES synthetic symbols with fixtures/gen_sample_ticks.py's
   functions (windows.make_synthetic): the fixture's point patterns
   (spike_up/down: a jump of ~8 sigma with a trade ~10x the usual size;
   breakout_up/down: the jump with an ordinary size) and its look-alikes
   (volume_only, trends, VWAP excursions), at random places;
2. `pattern-engine replay --features-out` computes the features per tick;
3. windows of 32 ticks are cut as the engine cuts them; a window's label is
   the point pattern planted at its last tick, else `none`; all pattern
   windows are kept, with the hard negatives (the ticks just after a
   pattern, the size spikes without a jump, windows inside trends and VWAP
   excursions) and a sample of the background;
4. train both models; export to models/pattern_cnn.onnx and
   models/pattern_lstm.onnx with metadata; write test vectors; evaluate
   through ONNX Runtime (evaluate_pattern.py).

Both models read [N, C, 32] (channel-major, as the engine lays out every
window) and start with the same fixed input layer: tanh((x - mean) /
(4 std)) per channel, the mean and std of the training windows, so raw
features of any size (a real trade 1000x the usual size) stay bounded.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import evaluate_pattern as E
import export_common as X
import windows as W

SEED = 20240422
FEATURES = ("return_z", "log_return", "volume_ratio", "ema_gap", "vwap_dev")
CLASSES = W.PATTERN_CLASSES
N_SERIES = 100           # x 6000 ticks, 16 point patterns each
BACKGROUND_PER_POSITIVE = 4
CONTEXT_SAMPLES = 3000   # windows ending inside trends and VWAP excursions
SOFT_CLIP = 4.0          # input layer: tanh((x - mean) / (SOFT_CLIP * std))
EPOCHS_CNN, EPOCHS_LSTM = 30, 30
# Smoothed targets: a sure window gets p ~0.98 (logit gap ~5.5), above the
# engine's 0.9 threshold, with logits that stay small.
LABEL_SMOOTHING = 0.02


class InputLayer(nn.Module):
    """tanh(x * scale + shift) per channel: a fixed standardisation with a
    soft clip. Exports as Mul, Add, Tanh."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        c = len(mean)
        scale = 1.0 / (SOFT_CLIP * std)
        self.register_buffer("scale", torch.tensor(
            scale, dtype=torch.float32).reshape(1, c, 1))
        self.register_buffer("shift", torch.tensor(
            -mean * scale, dtype=torch.float32).reshape(1, c, 1))

    def forward(self, x):
        return torch.tanh(x * self.scale + self.shift)


class PatternCNN(nn.Module):
    """[N,C,32] -> input layer -> Conv1d C->16 k5 p2, BN, ReLU -> Conv1d
    16->16 k3 p1, BN, ReLU -> Flatten -> Linear 512->32, ReLU -> Linear
    32->5 (logits). No pooling: the pattern must sit at the last tick, so
    position matters."""

    def __init__(self, mean, std):
        super().__init__()
        c = len(mean)
        self.inp = InputLayer(mean, std)
        self.net = nn.Sequential(
            nn.Conv1d(c, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Flatten(), nn.Linear(16 * W.WINDOW, 32), nn.ReLU(),
            nn.Linear(32, len(CLASSES)))

    def forward(self, x):
        return self.net(self.inp(x))


class PatternLSTM(nn.Module):
    """[N,C,32] -> input layer -> transpose to [N,32,C] -> LSTM (one layer,
    forward, hidden 32, zero initial state) -> last hidden state -> Linear
    32->5 (logits)."""

    def __init__(self, mean, std, hidden: int = 32):
        super().__init__()
        c = len(mean)
        self.inp = InputLayer(mean, std)
        self.lstm = nn.LSTM(c, hidden, num_layers=1, batch_first=True)
        self.fc = nn.Linear(hidden, len(CLASSES))

    def forward(self, x):
        seq = self.inp(x).transpose(1, 2)
        _, (h, _) = self.lstm(seq)
        return self.fc(h[-1])


def training_windows(rng: np.random.Generator, tmp: Path):
    """The sampled training windows and labels (see the module doc)."""
    t0 = time.time()
    syn = W.make_synthetic(rng, N_SERIES, tmp / "train.csv")
    df = W.engine_features(syn.ticks_csv)
    assert len(df) == len(syn.kind), "the engine rejected generated ticks"
    label = W.pattern_labels(syn.kind, syn.kinds)
    kind = syn.kind
    kinds = syn.kinds
    n = len(df)
    pos_rows = np.flatnonzero(label > 0)
    # Series are written one after the other, so row + d is the same
    # symbol's tick d later (checked below).
    sym = df["symbol"].to_numpy()
    hard = []
    for d in (1, 2, 3):
        r = pos_rows + d
        hard.append(r[(r < n)])
    vol = np.flatnonzero(kind == 1 + kinds.index("volume_only"))
    for d in (-1, 0, 1, 2):
        r = vol + d
        hard.append(r[(r >= 0) & (r < n)])
    hard = np.concatenate(hard)
    hard = hard[(label[hard] == 0) & (sym[hard] == sym[np.clip(hard - 1, 0, n - 1)])]
    context = np.flatnonzero((kind > 0) & (label == 0))
    context = rng.choice(context, size=min(CONTEXT_SAMPLES, len(context)),
                         replace=False)
    background = np.flatnonzero(kind == 0)
    background = rng.choice(background, size=BACKGROUND_PER_POSITIVE * len(pos_rows),
                            replace=False)
    rows = np.unique(np.concatenate([pos_rows, hard, context, background]))
    win = W.cut_windows(df, FEATURES, rows=rows)
    y = label[win.row]
    print(f"training set: {N_SERIES} series, {n} ticks, {len(y)} windows "
          f"(per class {np.bincount(y, minlength=len(CLASSES)).tolist()}; "
          f"{len(hard)} hard negatives, {len(context)} inside look-alikes), "
          f"{time.time() - t0:.1f} s")
    return win.x, y


def main() -> int:
    X.set_determinism(SEED)
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        x, y = training_windows(rng, Path(tmp))
    v = x.transpose(1, 0, 2).reshape(len(FEATURES), -1).astype(np.float64)
    mean, std = v.mean(axis=1), np.maximum(v.std(axis=1), 1e-12)
    print("input layer: mean " + ", ".join(f"{f} {a:.4g}" for f, a in zip(FEATURES, mean)))
    print("             std  " + ", ".join(f"{f} {a:.4g}" for f, a in zip(FEATURES, std)))

    # Test vectors shared by both models: Gaussian windows on the features'
    # own scale, held-out generated windows (all pattern windows first),
    # real windows.
    x_gauss = (mean[None, :, None] + std[None, :, None] *
               rng.standard_normal((128, len(FEATURES), W.WINDOW))).astype(np.float32)
    hwin, hy, _, _ = E.heldout_set(FEATURES)
    pick = np.concatenate([np.flatnonzero(hy > 0)[:64],
                           rng.choice(np.flatnonzero(hy == 0), 64, replace=False)])
    parts = [("gaussian", x_gauss, dict(note="mean + std * N(0,1) per channel "
                                                "(the input layer's mean and std)")),
             ("synthetic", hwin.x[pick], dict(
                 note="held-out generated windows (evaluate_pattern.EVAL_SEED)",
                 labels=[CLASSES[c] for c in hy[pick]]))]
    # Real windows are not committed (the trades stay in ../shared): the
    # parity tests cut them from ../shared/data/real at test time instead.
    more = rng.choice(np.flatnonzero(hy == 0), 256, replace=False)
    parts.append(("synthetic_more", hwin.x[more], dict(
        note="more held-out generated windows of class none",
        labels=[CLASSES[c] for c in hy[more]])))

    specs = (("pattern_cnn", PatternCNN, EPOCHS_CNN,
              torch.onnx.TrainingMode.PRESERVE, 3e-3),
             ("pattern_lstm", PatternLSTM, EPOCHS_LSTM,
              torch.onnx.TrainingMode.EVAL, 1e-2))
    for name, cls, epochs, mode, lr in specs:
        torch.manual_seed(SEED)
        model = cls(mean, std)
        t0 = time.time()
        print(f"{name}: training")
        X.train(model, x, y, np.random.default_rng(SEED + 1), epochs=epochs,
                lr=lr, label_smoothing=LABEL_SMOOTHING)
        print(f"  {time.time() - t0:.1f} s")
        # PRESERVE keeps the CNN's BatchNormalization nodes in the graph
        # (the default EVAL export folds them into the Convs), so the
        # importer's folding is exercised by a shipped model.
        path = X.export(model, name, len(FEATURES), FEATURES, CLASSES,
                        doc=f"{name}: point patterns at the window's last "
                            f"tick (models/train_pattern.py, seed {SEED})",
                        training=mode)
        print("  " + X.model_summary(path))
        X.write_vectors(model, name, parts, FEATURES, CLASSES)
        m = E.OrtModel(path)
        print(E.report(m, E.evaluate_heldout(m), E.evaluate_fixture(m),
                       E.evaluate_real(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
