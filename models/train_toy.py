#!/usr/bin/env python3
"""Trains and exports the two toy models on the prototype's spike task.

    /work/venv-train/bin/python models/train_toy.py     # from the repo root

Writes models/toy_cnn.onnx and models/toy_mlp.onnx, each with its test
vectors (<name>.inputs.npy, <name>.outputs.npy, <name>.vectors.json). The
task (windows.spike_task): 32 values of unit noise on the return_z scale,
and with probability 0.5 a spike of 3 to 6 sigma at a random position;
class 1 (spike) when the spike is there. The models read the engine's
return_z channel.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

import export_common as X
import windows as W

SEED = 20240317
FEATURES = ("return_z",)
CLASSES = ("none", "spike")
N_TRAIN, N_TEST = 50000, 10000
EPOCHS = 20
# Smoothed targets keep the logits to a few units (see export_common.train).
LABEL_SMOOTHING = 0.05


class ToyCNN(nn.Module):
    """The prototype's architecture: [N,1,32] -> Conv1d 1->8 k3 p1, ReLU,
    Conv1d 8->16 k3 p1, ReLU, Flatten, Linear 512->2 (logits)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(),
            nn.Conv1d(8, 16, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(16 * W.WINDOW, 2))

    def forward(self, x):
        return self.net(x)


class ToyMLP(nn.Module):
    """[N,1,32] -> Flatten, Linear 32->64, ReLU, Linear 64->2 (logits)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(W.WINDOW, 64),
                                 nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x):
        return self.net(x)


def main() -> int:
    X.set_determinism(SEED)
    rng = np.random.default_rng(SEED)
    x_train, y_train = W.spike_task(rng, N_TRAIN)
    x_test, y_test = W.spike_task(rng, N_TEST)
    # Test vectors: task windows and wider Gaussian noise.
    # (Uniform noise over return_z's whole +-10 range gives logits of ~100,
    # where float32 rounding alone differs by more than 1e-5 between two
    # correct implementations; real windows stay well below that.)
    x_task, _ = W.spike_task(rng, 128)
    x_unif = (2.0 * rng.standard_normal((128, 1, W.WINDOW))).astype(np.float32)
    # Real windows are not committed (the trades stay in ../shared): the
    # parity tests cut them from ../shared/data/real at test time instead.
    x_more, _ = W.spike_task(rng, 256)
    parts = [("spike_task", x_task, dict(note="windows.spike_task, held out")),
             ("gaussian", x_unif, dict(note="N(0, 2^2) noise")),
             ("spike_task_more", x_more,
              dict(note="windows.spike_task, held out, second draw"))]

    report = []
    for name, cls in (("toy_cnn", ToyCNN), ("toy_mlp", ToyMLP)):
        torch.manual_seed(SEED)
        model = cls()
        print(f"{name}: training on {N_TRAIN} windows")
        X.train(model, x_train, y_train, np.random.default_rng(SEED + 1),
                epochs=EPOCHS, label_smoothing=LABEL_SMOOTHING)
        pred = X.predict(model, x_test).argmax(axis=1)
        pr = W.precision_recall(y_test, pred, 2)
        acc = float(np.mean(pred == y_test))
        text = W.format_pr(f"{name}: held-out spike task ({N_TEST} windows), "
                           f"accuracy {acc:.4f}", CLASSES, pr)
        print(text)
        report.append(text)
        path = X.export(model, name, 1, FEATURES, CLASSES,
                        doc=f"{name}: the prototype's spike task on return_z "
                            f"(models/train_toy.py, seed {SEED})")
        print("  " + X.model_summary(path))
        X.write_vectors(model, name, parts, FEATURES, CLASSES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
