#!/usr/bin/env python3
"""Evaluates the pattern models as exported, through ONNX Runtime (no PyTorch
needed), on windows of engine-computed features:

    python3 models/evaluate_pattern.py [MODEL.onnx ...] [--json OUT]

(default: models/pattern_cnn.onnx and models/pattern_lstm.onnx). Checks:

1. held out: every window of a generated set (seed EVAL_SEED, independent
   of training), per-class precision and recall of the argmax, and of the
   engine's rule (a class other than the first fires when its softmax
   probability reaches THRESHOLD, else `none`); the false alarms of the rule
   by what the generator planted at that tick (look-alikes: volume_only,
   trend_*, vwap_dev) or background.
2. fixture: every window of fixtures/sample_ticks.csv; for each planted event
   of fixtures/sample_ticks.events.csv, the rule's fires within +-TOLERANCE
   ticks of the symbol's peak tick, and every fire away from a planted point
   pattern;
3. real trades (when ../shared/data/real/binance_trades.csv is there): how
   often the rule fires, by class (no labels: a sanity figure).

Reads the features and classes from the model's metadata_props.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

import windows as W

EVAL_SEED = 77001
N_EVAL_SERIES = 30
THRESHOLD = 0.9
TOLERANCE = 2


class OrtModel:
    def __init__(self, path: Path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so,
                                         providers=["CPUExecutionProvider"])
        meta = self.sess.get_modelmeta().custom_metadata_map
        self.path = Path(path)
        self.features = meta["pe.features"].split(",")
        self.classes = meta["pe.classes"].split(",")
        self.output = meta["pe.output"]
        assert int(meta["pe.window"]) == W.WINDOW

    def probs(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        out = np.concatenate([
            self.sess.run(["output"], {"input": x[i:i + batch]})[0]
            for i in range(0, len(x), batch)])
        if self.output == "probs":
            return out.astype(np.float64)
        z = out.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def engine_rule(p: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The class the engine signals per window (0: none)."""
    best = 1 + p[:, 1:].argmax(axis=1)
    return np.where(p[np.arange(len(p)), best] >= threshold, best, 0)


_HELDOUT = {}


def heldout_set(features):
    """(windows, labels, planted kind per window) of the held-out generated
    set, for the given feature channels."""
    key = tuple(features)
    if key not in _HELDOUT:
        with tempfile.TemporaryDirectory() as tmp:
            syn = W.make_synthetic(np.random.default_rng(EVAL_SEED),
                                   N_EVAL_SERIES, Path(tmp) / "heldout.csv")
            df = W.engine_features(syn.ticks_csv)
        assert len(df) == len(syn.kind)
        win = W.cut_windows(df, features)
        y = W.pattern_labels(syn.kind, syn.kinds)[win.row]
        _HELDOUT[key] = (win, y, syn.kind[win.row], syn.kinds)
    return _HELDOUT[key]


def evaluate_heldout(m: OrtModel) -> dict:
    win, y, kind, kinds = heldout_set(m.features)
    p = m.probs(win.x)
    n = len(m.classes)
    am = W.precision_recall(y, p.argmax(axis=1), n)
    rule = engine_rule(p)
    ru = W.precision_recall(y, rule, n)
    false = (rule != 0) & (rule != y)
    where = {}
    for k in np.unique(kind[false]):
        name = "background" if k == 0 else kinds[k - 1]
        where[name] = int(np.sum(false & (kind == k)))
    return dict(windows=int(len(y)), argmax=am, rule=ru, false_alarms=where,
                n_false=int(false.sum()))


def evaluate_fixture(m: OrtModel) -> dict:
    df = W.engine_features(W.FIXTURE_TICKS)
    events = pd.read_csv(W.FIXTURE_EVENTS, keep_default_na=False)
    rows = W.fixture_rows(df, events)
    win = W.cut_windows(df, m.features)
    p = m.probs(win.x)
    rule = engine_rule(p)
    at = {(s, int(q)): i for i, (s, q) in enumerate(zip(win.symbol, win.pos))}
    # Position of each event's peak tick within its symbol.
    sym = df["symbol"].to_numpy()
    pos_of_row = np.zeros(len(df), np.int64)
    for s in pd.unique(sym):
        idx = np.flatnonzero(sym == s)
        pos_of_row[idx] = np.arange(len(idx))
    out_events, near = [], set()
    for e, r in zip(events.to_dict("records"), rows):
        s, q = e["symbol"], int(pos_of_row[r])
        fires, pmax = [], 0.0
        for d in range(-TOLERANCE, TOLERANCE + 1):
            i = at.get((s, q + d))
            if i is None:
                continue
            if e["kind"] in m.classes:
                pmax = max(pmax, float(p[i, m.classes.index(e["kind"])]))
            if rule[i]:
                fires.append(dict(offset=d, cls=m.classes[rule[i]],
                                  prob=round(float(p[i, rule[i]]), 4)))
            if e["kind"] in m.classes:
                near.add(i)
        expect = e["kind"] if e["kind"] in m.classes else "none"
        out_events.append(dict(
            id=int(e["id"]), kind=e["kind"], symbol=s, line=int(e["peak_line"]),
            expect=expect, fires=fires,
            prob_of_kind_max=round(pmax, 4) if expect != "none" else None,
            ok=(any(f["cls"] == expect and f["offset"] == 0 for f in fires)
                and all(f["cls"] == expect for f in fires))
            if expect != "none" else not fires))
    # Fires away from any planted point pattern.
    spans = [(e["symbol"], e["line"], e["end_line"], e["kind"])
             for e in events.to_dict("records")]
    others = []
    for i in np.flatnonzero(rule):
        if i in near:
            continue
        line = int(win.row[i]) + 2
        inside = [k for s, a, b, k in spans if s == win.symbol[i]
                  and a - TOLERANCE <= line <= b + TOLERANCE]
        others.append(dict(line=line, symbol=str(win.symbol[i]),
                           cls=m.classes[rule[i]],
                           prob=round(float(p[i, rule[i]]), 4),
                           inside="|".join(inside) or "background"))
    return dict(windows=int(len(win.row)), events=out_events,
                other_fires=others)


def evaluate_real(m: OrtModel):
    """How often the rule fires on every window of the real trades, by class
    (None when the file is absent). There are no labels: this is a sanity
    figure (a model that fires on every other real trade is broken)."""
    if not W.REAL_TRADES.is_file():
        return None
    df = W.engine_features(W.REAL_TRADES)
    win = W.cut_windows(df, m.features)
    rule = engine_rule(m.probs(win.x))
    z = df["return_z"].to_numpy()[win.row]
    vr = df["volume_ratio"].to_numpy()[win.row]
    fired = rule > 0
    return dict(windows=int(len(rule)),
                fires={m.classes[c]: int(np.sum(rule == c))
                       for c in range(1, len(m.classes))},
                median_abs_return_z_at_fires=float(np.median(np.abs(z[fired])))
                if fired.any() else None,
                median_volume_ratio_at_fires=float(np.median(vr[fired]))
                if fired.any() else None)


def report(m: OrtModel, held: dict, fix: dict, real=None) -> str:
    lines = [f"== {m.path.name}: features {','.join(m.features)}"]
    lines.append(W.format_pr(
        f"held out ({held['windows']} windows, seed {EVAL_SEED}), argmax:",
        m.classes, held["argmax"]))
    lines.append(W.format_pr(
        f"held out, engine rule (p >= {THRESHOLD}):", m.classes, held["rule"]))
    lines.append(f"  false alarms of the rule: {held['n_false']} "
                 f"({', '.join(f'{k} {v}' for k, v in held['false_alarms'].items()) or 'none'})")
    lines.append(f"fixture ({fix['windows']} windows): planted events, fires "
                 f"within +-{TOLERANCE} ticks of the peak")
    for e in fix["events"]:
        f = ", ".join(f"{x['cls']}@{x['offset']:+d} p={x['prob']}"
                      for x in e["fires"]) or "-"
        pk = "" if e["prob_of_kind_max"] is None else f" (max p {e['prob_of_kind_max']})"
        lines.append(f"  {'ok ' if e['ok'] else 'BAD'} #{e['id']:<2} "
                     f"{e['kind']:<13} {e['symbol']:<6} line {e['line']:<6} "
                     f"fires: {f}{pk}")
    n_pt = [e for e in fix["events"] if e["expect"] != "none"]
    lines.append(f"  point patterns detected at their tick: "
                 f"{sum(e['ok'] for e in n_pt)}/{len(n_pt)}; look-alikes "
                 f"quiet: {sum(e['ok'] for e in fix['events'] if e['expect'] == 'none')}"
                 f"/{len(fix['events']) - len(n_pt)}")
    lines.append(f"  other fires: {len(fix['other_fires'])}")
    for o in fix["other_fires"]:
        lines.append(f"    line {o['line']} {o['symbol']} {o['cls']} p={o['prob']} "
                     f"({o['inside']})")
    if real is not None:
        n = sum(real["fires"].values())
        lines.append(f"real trades ({real['windows']} windows, no labels): the rule "
                     f"fires {n} times ({', '.join(f'{k} {v}' for k, v in real['fires'].items())})"
                     + (f"; at those ticks median |return_z| "
                        f"{real['median_abs_return_z_at_fires']:.2f}, median "
                        f"volume_ratio {real['median_volume_ratio_at_fires']:.2f}"
                        if n else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path,
                    default=[Path(__file__).parent / "pattern_cnn.onnx",
                             Path(__file__).parent / "pattern_lstm.onnx"])
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)
    result = {}
    for path in args.models:
        m = OrtModel(path)
        held, fix, real = evaluate_heldout(m), evaluate_fixture(m), evaluate_real(m)
        print(report(m, held, fix, real))
        result[path.name] = dict(heldout=held, fixture=fix, real=real)
    if args.json:
        with open(args.json, "w", encoding="ascii") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
