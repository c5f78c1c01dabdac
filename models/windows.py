"""Feature windows for training and testing the shipped models.

Everything a model sees is computed by the engine itself: tick series are
written as CSV, `pattern-engine replay --features-out` turns them into one row
of standard features per tick, and windows are cut from those rows exactly as
the engine builds them (src/core/engine.c):

  - a symbol's window holds the features of its ticks from its second tick on
    (the first tick has no return; PE_FEATURE_WARMUP = 2);
  - a window is ready once it holds WINDOW rows, i.e. from the symbol's
    (WINDOW + 1)-th tick on, and then ends at the current tick;
  - values are the engine's doubles rounded to float32, laid out channel-major
    [channel][time], oldest tick first.

So a window here is bit-identical to what the engine hands the model at that
tick, and a model trained on these windows sees at inference what it saw in
training.

Only numpy and pandas are needed here (no PyTorch); the engine binary is
found at $PE_ENGINE or build/pattern-engine.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
WINDOW = 32
# Columns of --features-out before the standard features.
STATE_COLUMNS = ("ts", "symbol", "price", "volume", "ema_fast", "ema_slow",
                 "vwap", "mean", "var")
REAL_TRADES = REPO.parent / "shared" / "data" / "real" / "binance_trades.csv"
FIXTURE_TICKS = REPO / "fixtures" / "sample_ticks.csv"
FIXTURE_EVENTS = REPO / "fixtures" / "sample_ticks.events.csv"

# Output classes of the pattern models; the first is the background class
# (the engine never signals it).
PATTERN_CLASSES = ("none", "spike_up", "spike_down", "breakout_up",
                   "breakout_down")


# ---- the engine -----------------------------------------------------------

def engine_binary() -> Path:
    path = Path(os.environ.get("PE_ENGINE", REPO / "build" / "pattern-engine"))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: engine binary not found; build it first "
            f"(cmake -S . -B build -G Ninja && ninja -C build) or set PE_ENGINE")
    return path


def engine_features(ticks_csv: Path | str) -> pd.DataFrame:
    """Runs `pattern-engine replay --features-out` on a tick CSV and returns
    its rows (one per accepted tick, in file order)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "features.csv"
        subprocess.run(
            [str(engine_binary()), "replay", "--ticks", str(ticks_csv),
             "--features-out", str(out), "--out", os.devnull, "--quiet"],
            check=True)
        df = pd.read_csv(out, dtype={"symbol": str, "ts": np.int64},
                         keep_default_na=False, na_values=["nan"])
    return df


def feature_names(df: pd.DataFrame) -> list:
    """The standard feature columns of a --features-out frame, in order."""
    cols = list(df.columns)
    assert tuple(cols[:len(STATE_COLUMNS)]) == STATE_COLUMNS, cols
    return cols[len(STATE_COLUMNS):]


@dataclasses.dataclass
class Windows:
    """Windows cut from a features frame. x: [M, C, WINDOW] float32; row: the
    frame row (0-based) of each window's last tick; symbol: its symbol;
    pos: that tick's index within its symbol's ticks (0-based)."""
    x: np.ndarray
    row: np.ndarray
    symbol: np.ndarray
    pos: np.ndarray


def cut_windows(df: pd.DataFrame, features: Sequence[str],
                window: int = WINDOW, rows: np.ndarray | None = None) -> Windows:
    """The windows the engine would run a model on, with the given feature
    channels: all of them, or only those ending at the frame rows in `rows`
    (rows whose symbol has no ready window yet are dropped). Windows of one
    symbol are in tick order; symbols in order of first appearance."""
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise KeyError(f"not standard features: {missing}")
    values = df[list(features)].to_numpy(np.float64).astype(np.float32)
    sym = df["symbol"].to_numpy()
    want = None
    if rows is not None:
        want = np.zeros(len(df), bool)
        want[np.asarray(rows, np.int64)] = True
    xs, out_rows, syms, poss = [], [], [], []
    for s in pd.unique(sym):
        idx = np.flatnonzero(sym == s)
        ready = idx[1:]  # stored from the symbol's second tick on
        if len(ready) < window:
            continue
        v = values[ready]                                   # [T, C]
        w = np.lib.stride_tricks.sliding_window_view(v, window, axis=0)
        last = ready[window - 1:]                           # [M]
        pos = np.arange(window, len(idx))
        k = np.arange(len(last)) if want is None else np.flatnonzero(want[last])
        xs.append(w[k])                                     # [m, C, W] copy
        out_rows.append(last[k])
        syms.append(np.full(len(k), s, dtype=object))
        poss.append(pos[k])
    c = len(features)
    if not xs:
        return Windows(np.zeros((0, c, window), np.float32), np.zeros(0, np.int64),
                       np.zeros(0, object), np.zeros(0, np.int64))
    out = Windows(np.ascontiguousarray(np.concatenate(xs)),
                  np.concatenate(out_rows).astype(np.int64),
                  np.concatenate(syms), np.concatenate(poss).astype(np.int64))
    if not np.isfinite(out.x).all():
        raise ValueError("a window holds NaN or inf: a feature is undefined "
                         "after the engine's warm-up")
    return out


# ---- the fixture generator's series ---------------------------------------

def fixture_generator():
    """fixtures/gen_sample_ticks.py as a module (its functions plant the
    fixture's patterns)."""
    sys.path.insert(0, str(REPO / "fixtures"))
    try:
        import gen_sample_ticks  # noqa: E402
    finally:
        sys.path.pop(0)
    return gen_sample_ticks


# Events planted in one training series: each point pattern several times,
# and the look-alikes that must stay `none` (a size spike on an ordinary
# return, trends, VWAP excursions).
SERIES_KINDS = (("spike_up", 4), ("spike_down", 4), ("breakout_up", 4),
                ("breakout_down", 4), ("volume_only", 3), ("trend_up", 1),
                ("trend_down", 1), ("vwap_dev", 1))
SERIES_TICKS = 6000


@dataclasses.dataclass
class SyntheticSet:
    """Generated series written as one tick CSV, with per-row labels.
    kind: per features row, 1 + the generator's KINDS index of the event
    covering that tick, 0 for background."""
    ticks_csv: Path
    kind: np.ndarray
    kinds: tuple  # the generator's KINDS


# Magnitudes of the planted point patterns are scaled per event by factors
# uniform in these ranges (the fixture plants a jump of 8 sigma and a trade
# of 10x the size EMA; scaled: 4 to 10.4 sigma, 5x to 15x), so a model learns
# the pattern rather than one magnitude.
JUMP_SCALE = (0.5, 1.3)
SIZE_SCALE = (0.5, 1.5)


def make_synthetic(rng: np.random.Generator, n_series: int, out_csv: Path,
                   n_ticks: int = SERIES_TICKS, vary: bool = True) -> SyntheticSet:
    """n_series symbols generated with the fixture's functions, one after the
    other in time (so the file is in timestamp order), each with a symbol
    spec drawn around one of the fixture's symbols (volatility, rate and size
    scaled) and the events of SERIES_KINDS at random places; with `vary`,
    each jump and size spike scaled by JUMP_SCALE and SIZE_SCALE."""
    g = fixture_generator()
    kinds = [k for k, n in SERIES_KINDS for _ in range(n)]
    labels = []
    start_ns = g.START_NS
    plain = getattr(g, "_event_schedules", None)

    def scaled(*args, **kwargs):
        drift, volm, jump, size_mult, force_sign = plain(*args, **kwargs)
        j = np.flatnonzero(jump)
        jump[j] *= rng.uniform(*JUMP_SCALE, size=len(j))
        k = np.flatnonzero(size_mult)
        size_mult[k] *= rng.uniform(*SIZE_SCALE, size=len(k))
        return drift, volm, jump, size_mult, force_sign

    if vary:
        if not callable(plain):
            raise RuntimeError("fixtures/gen_sample_ticks.py has no "
                               "_event_schedules to scale the patterns with")
        g._event_schedules = scaled
    try:
        with open(out_csv, "w", encoding="ascii", newline="") as fh:
            fh.write("ts,symbol,price,volume\n")
            for i in range(n_series):
                base = g.SPECS[int(rng.integers(len(g.SPECS)))]
                spec = dataclasses.replace(
                    base, name=f"SYN{i:03d}",
                    sigma=base.sigma * float(rng.uniform(0.6, 1.5)),
                    rate_hz=base.rate_hz * float(rng.uniform(0.5, 2.0)),
                    size_median=base.size_median * float(rng.uniform(0.5, 2.0)))
                s = g.random_series(rng, n_ticks, kinds, spec=spec,
                                    start_ns=start_ns)
                for t, p, v in zip(s.ts_ns, s.price_str, s.volume_str):
                    fh.write(f"{int(t)},{s.symbol},{p},{v}\n")
                labels.append(s.label.astype(np.int64))
                start_ns = int(s.ts_ns[-1]) + 10**9
    finally:
        g._event_schedules = plain
    return SyntheticSet(Path(out_csv), np.concatenate(labels), tuple(g.KINDS))


def pattern_labels(kind: np.ndarray, kinds: Sequence[str],
                   classes: Sequence[str] = PATTERN_CLASSES) -> np.ndarray:
    """Class index per row: the planted point pattern at that tick, or 0."""
    lut = np.zeros(len(kinds) + 1, np.int64)
    for j, k in enumerate(kinds):
        if k in classes:
            lut[j + 1] = classes.index(k)
    return lut[kind]


def fixture_rows(df: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Features row of each planted fixture event's peak tick (file line - 2),
    checked against the event's symbol."""
    rows = events["peak_line"].to_numpy(np.int64) - 2
    if len(df) != sum(1 for _ in open(FIXTURE_TICKS)) - 1:
        raise ValueError("the engine rejected fixture rows; lines do not map "
                         "to features rows")
    bad = df["symbol"].to_numpy()[rows] != events["symbol"].to_numpy()
    if bad.any():
        raise ValueError("fixture events do not match the ticks file")
    return rows


# ---- real trades ------------------------------------------------------------

def real_windows(features: Sequence[str], count: int,
                 path: Path = REAL_TRADES, window: int = WINDOW):
    """`count` windows of `window` ticks of real trades (None when the file
    is absent): half spread evenly over all ready windows of all symbols,
    half those whose last tick has the largest |return_z| (the interesting
    ones). Returns (Windows, the frame's ts and symbol of each window's last
    tick)."""
    if not Path(path).is_file():
        return None
    df = engine_features(path)
    w = cut_windows(df, features, window=window)
    even = np.linspace(0, len(w.row) - 1, count - count // 2).round().astype(int)
    z = np.abs(df["return_z"].to_numpy()[w.row])
    z[even] = -1.0
    top = np.argsort(-z, kind="stable")[:count // 2]
    pick = np.sort(np.concatenate([even, top]))
    sel = Windows(w.x[pick], w.row[pick], w.symbol[pick], w.pos[pick])
    ts = df["ts"].to_numpy()[sel.row]
    return sel, ts


# ---- the toy task -------------------------------------------------------------

def spike_task(rng: np.random.Generator, n: int, window: int = WINDOW):
    """The prototype's synthetic spike task, on the return_z scale: unit
    Gaussian noise, and with probability 0.5 a spike of 3 to 6 sigma (either
    sign) added at a uniformly random position; clipped to +-10 like
    return_z. Returns (x [n, 1, window] float32, y [n] int64: 1 = spike)."""
    x = rng.standard_normal((n, window))
    y = (rng.random(n) < 0.5).astype(np.int64)
    pos = rng.integers(0, window, size=n)
    height = rng.uniform(3.0, 6.0, size=n) * rng.choice((-1.0, 1.0), size=n)
    x[np.arange(n), pos] += np.where(y == 1, height, 0.0)
    x = np.clip(x, -10.0, 10.0)
    return x[:, None, :].astype(np.float32), y


# ---- metrics ------------------------------------------------------------------

def precision_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int):
    """Per class (precision, recall, support, predicted count)."""
    out = []
    for c in range(n_classes):
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        pred = int(np.sum(y_pred == c))
        sup = int(np.sum(y_true == c))
        out.append((tp / pred if pred else float("nan"),
                    tp / sup if sup else float("nan"), sup, pred))
    return out


def format_pr(title: str, classes: Sequence[str], pr) -> str:
    lines = [title, f"  {'class':<14} {'precision':>9} {'recall':>7} "
                    f"{'support':>8} {'predicted':>9}"]
    for name, (p, r, s, n) in zip(classes, pr):
        lines.append(f"  {name:<14} {p:9.4f} {r:7.4f} {s:8d} {n:9d}")
    return "\n".join(lines)
