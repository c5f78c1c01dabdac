#!/usr/bin/env python3
"""features() from Python against pandas and against the C library's own
time, on synthetic ticks (random walks, symbols interleaved at random):

    .venv/bin/python bench/python_features.py [--ticks 20000000] [--symbols 500]
        [--pandas-ticks N] [--repeat 3] [--seed 1]

Prints, in one run on one machine, each contender's best wall time of
--repeat runs (pandas: one run) and the CPU time of that run (the machine
may be shared: CPU time is the steadier figure):
  features(df)                 every standard feature (the engine path),
                               symbol as a categorical and as strings, with
                               the default threads (one engine per CPU) and with
                               threads=1 (one engine);
  C library alone              the same pushes timed around the one C call
                               (the GIL released), no Python work;
  features(df, columns=core5)  the columnar core's five columns;
  pandas                       the five core columns by groupby ewm /
                               expanding / cumsum (tests/test_features_pandas.py),
                               on --pandas-ticks ticks (default: all), its
                               rate scaled to the full count.
"""

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

import pattern_engine as pe
from pattern_engine._engine import Engine, _Result
from pattern_engine._pe import ffi, lib
from pattern_engine._ticks import columns_of

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from test_features_pandas import pandas_features  # noqa: E402

CORE = ["ema_fast", "ema_slow", "vwap", "mean", "var"]


def make_ticks(n, n_sym, seed):
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, n_sym, n).astype(np.int32)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 2000, n))
    steps = rng.normal(0, 1e-3, n)
    price = 100.0 * np.exp(steps)  # per-tick noise around 100: no drift needed
    volume = rng.integers(1, 1000, n).astype(np.float64)
    names = np.array([f"SYM{i:04d}" for i in range(n_sym)], dtype=object)
    return pd.DataFrame({"ts": ts, "symbol": pd.Categorical.from_codes(sym, names),
                         "price": price, "volume": volume})


def timed(fn, repeat=1):
    """Best (wall, cpu) of repeat runs of fn()."""
    best = None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        del out
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return best


def c_alone(df):
    """The engine pushes and feature writes of features(), timed around the
    C call only: (wall, cpu)."""
    cols = columns_of(df)
    res = _Result(0)
    n = cols.n
    block = np.empty((2 + len(pe.FEATURE_COLUMNS), n))
    acc = np.empty(n, np.int64)
    res.c.features = ffi.from_buffer("double[]", block)
    res.c.accepted = ffi.from_buffer("int64_t[]", acc)
    with Engine(all_features=1) as e:
        t, c = time.perf_counter(), time.process_time()
        rc = lib.pe_py_push(e._engine, cols.c, res.c)
        dt = (time.perf_counter() - t, time.process_time() - c)
    res.check(rc)
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=20_000_000)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--pandas-ticks", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    df = make_ticks(a.ticks, a.symbols, a.seed)
    n = len(df)
    print(f"{n} ticks over {a.symbols} symbols; pattern_engine {pe.__version__}")

    def report(what, t, count=n):
        wall, cpu = t
        print(f"  {what:<40} {wall:8.3f} s wall {count / wall / 1e6:7.2f} M ticks/s"
              f"   {cpu:8.3f} s CPU {count / cpu / 1e6:7.2f} M ticks/s")

    r = a.repeat
    t_cat = timed(lambda: pe.features(df), r)
    report("features(df), symbol categorical", t_cat)
    t_one = timed(lambda: pe.features(df, threads=1), r)
    report("features(df, threads=1)", t_one)
    t_c = min((c_alone(df) for _ in range(r)), key=lambda x: x[0])
    report("C library alone (engine, all features)", t_c)
    strings = df.assign(symbol=df["symbol"].astype(str))
    report("features(df), symbol as strings", timed(lambda: pe.features(strings), r))
    del strings
    t_core = timed(lambda: pe.features(df, columns=CORE), r)
    report("features(df, columns=core 5)", t_core)
    m = a.pandas_ticks or n
    sub = df.iloc[:m].assign(symbol=df["symbol"].iloc[:m].astype(str))
    t_pd = timed(lambda: pandas_features(sub))
    report(f"pandas, core 5 ({m} ticks)", t_pd, m)
    for i, what in ((0, "wall"), (1, "CPU")):
        pd_rate = m / t_pd[i]
        print(f"  {what}: features(df) vs pandas {n / t_cat[i] / pd_rate:.1f}x "
              f"(threads=1 {n / t_one[i] / pd_rate:.1f}x, "
              f"core path {n / t_core[i] / pd_rate:.1f}x); "
              f"features(df) / C alone {t_cat[i] / t_c[i]:.2f} "
              f"(threads=1 {t_one[i] / t_c[i]:.2f})")


if __name__ == "__main__":
    main()
