#!/usr/bin/env python3
"""Checks `pattern-engine replay --features-out` against pandas.

    python tests/test_features_pandas.py --engine build/pattern-engine \\
        --ticks fixtures/sample_ticks.csv \\
        --optional-ticks ../shared/data/real/binance_trades.csv

For each tick file it runs

    ENGINE replay --ticks FILE --features-out TMP --out /dev/null --quiet

reads FILE again with pandas, independently of the engine, and recomputes per
symbol, in file order:

    ema_fast  price.ewm(span=19, adjust=False).mean()
    ema_slow  price.ewm(span=39, adjust=False).mean()
    vwap      cumsum(price * volume) / cumsum(volume)
    mean      price.expanding().mean()
    var       price.expanding().var()          (ddof=1, NaN on the first tick)

It requires the same rows (ts, symbol, price, volume equal, in input order)
and |engine - pandas| <= tol * max(|pandas|, 1e-300), with tol 1e-12 for
ema_fast, ema_slow, vwap, mean and 1e-9 for var; NaN must be NaN on both
sides. The columns of features-out after var are not checked here.

Rows the engine must reject are dropped on the pandas side by the same
rules, written here from their specification (not from the engine's code):
unparsable ts/price/volume, non-finite or non-positive price, negative or
non-finite volume, empty symbol or one over 31 bytes, and a ts earlier than
the symbol's previous accepted ts. Timestamps must be integer nanoseconds.
A file whose first line has no "symbol" field has no header and is read as
ts,symbol,price,volume (the prototype's layout).

--ticks FILE must exist; --optional-ticks FILE is skipped with a message
when absent. Exit status: 0 all checked files pass, 1 a check failed, 2 a
usage or engine error, 77 (ctest's skip code) when every file was skipped.
--features PATH compares an existing features-out file instead of running
the engine (one tick file only).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import pandas as pd
except ImportError as exc:
    print(f"SKIP: pandas is needed as the reference ({exc}); run scripts/install-deps.sh")
    sys.exit(77)

SKIP = 77
TOLERANCES = (("ema_fast", 1e-12), ("ema_slow", 1e-12), ("vwap", 1e-12),
              ("mean", 1e-12), ("var", 1e-9))
TINY = 1e-300
SYMBOL_MAX = 31
FEATURES_HEAD = ("ts", "symbol", "price", "volume", "ema_fast", "ema_slow",
                 "vwap", "mean", "var")
NAN_TEXT = ("nan", "-nan", "NaN", "-NaN")


class CheckError(Exception):
    pass


def _pick(columns, names, what):
    for name in names:
        if name in columns:
            return name
    raise CheckError(f"no {what} column (looked for {'|'.join(names)}) "
                     f"in header {list(columns)}")


def _to_float(text: str) -> float:
    """A decimal as C's strtod would read it; NaN when it is not one."""
    t = text.strip().strip('"')
    if not t or "_" in t:
        return math.nan
    try:
        return float(t)
    except ValueError:
        return math.nan


def _to_int(text: str):
    t = text.strip().strip('"')
    if not t or "_" in t:
        return None
    try:
        return int(t)
    except ValueError:
        return None


def read_ticks(path: str) -> pd.DataFrame:
    """The ticks the engine should accept, in file order, with columns ts
    (int64 ns), symbol, price, volume; plus attrs 'read' and 'dropped'."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                      skipinitialspace=True)
    raw.columns = [c.strip().strip('"') for c in raw.columns]
    if "symbol" not in raw.columns:
        # No header: the prototype's layout ts,symbol,price,volume.
        raw = pd.read_csv(path, dtype=str, keep_default_na=False,
                          na_filter=False, skipinitialspace=True, header=None,
                          names=["ts", "symbol", "price", "volume"])
    c_ts = _pick(raw.columns, ("ts", "timestamp", "time"), "timestamp")
    c_sym = _pick(raw.columns, ("symbol",), "symbol")
    c_px = _pick(raw.columns, ("price",), "price")
    c_vol = _pick(raw.columns, ("volume", "size", "qty"), "volume")

    ts = [_to_int(t) for t in raw[c_ts]]
    ok_ts = np.array([t is not None for t in ts])
    if ok_ts.any():
        big = max(abs(t) for t in ts if t is not None)
        if big < 10**17:
            raise CheckError(f"{path}: timestamps must be integer nanoseconds "
                             f"(largest is {big})")
    sym = raw[c_sym].str.strip().str.strip('"')
    px = np.array([_to_float(t) for t in raw[c_px]])
    vol = np.array([_to_float(t) for t in raw[c_vol]])
    sym_len = sym.map(lambda s: len(s.encode()))
    valid = (ok_ts & np.isfinite(px) & (px > 0) & np.isfinite(vol) & (vol >= 0)
             & (sym_len > 0).to_numpy() & (sym_len <= SYMBOL_MAX).to_numpy())
    df = pd.DataFrame({
        "ts": np.array([t if t is not None else 0 for t in ts], dtype=np.int64),
        "symbol": sym.to_numpy(), "price": px, "volume": vol})[valid]
    # A tick earlier than the symbol's previous accepted tick is rejected. A
    # rejected tick never raises the maximum, so the accepted ticks are those
    # that equal the running maximum of their symbol.
    in_order = df["ts"] == df.groupby("symbol", sort=False)["ts"].cummax()
    df = df[in_order].reset_index(drop=True)
    df.attrs["read"] = len(raw)
    df.attrs["dropped"] = len(raw) - len(df)
    return df


def pandas_features(df: pd.DataFrame, fast_span: float = 19.0,
                    slow_span: float = 39.0) -> pd.DataFrame:
    """The five checked features, per symbol, in df's row order."""
    g = df.groupby("symbol", sort=False)
    price = g["price"]

    def per_row(s: pd.Series) -> np.ndarray:
        # groupby-window results are indexed (symbol, row): back to rows.
        return s.reset_index(level=0, drop=True).sort_index().to_numpy()

    pv = (df["price"] * df["volume"]).groupby(df["symbol"], sort=False).cumsum()
    v = g["volume"].cumsum()
    return pd.DataFrame({
        "ema_fast": per_row(price.ewm(span=fast_span, adjust=False).mean()),
        "ema_slow": per_row(price.ewm(span=slow_span, adjust=False).mean()),
        "vwap": (pv / v).to_numpy(),
        "mean": per_row(price.expanding().mean()),
        "var": per_row(price.expanding().var()),
    })


def read_features(path: str) -> pd.DataFrame:
    head = pd.read_csv(path, nrows=0).columns
    if tuple(head[:len(FEATURES_HEAD)]) != FEATURES_HEAD:
        raise CheckError(f"{path}: header starts {list(head[:9])}, expected "
                         f"{list(FEATURES_HEAD)}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                      usecols=list(FEATURES_HEAD))
    ts = [_to_int(t) for t in raw["ts"]]
    if None in ts:
        i = ts.index(None)
        raise CheckError(f"{path}: row {i + 2}: ts {raw['ts'].iloc[i]!r} is not "
                         f"an integer")
    out = pd.DataFrame({"ts": np.array(ts, dtype=np.int64),
                        "symbol": raw["symbol"].to_numpy()})
    for c in FEATURES_HEAD[2:]:
        col = raw[c]
        bad = ~col.isin(NAN_TEXT) & col.map(lambda t: math.isnan(_to_float(t)))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise CheckError(f"{path}: row {i + 2}: {c} is {col.iloc[i]!r}, "
                             f"not a number")
        out[c] = [_to_float(t) for t in col]
    return out


def _plain(x):
    """A numpy scalar as the Python value, for readable messages."""
    return x.item() if isinstance(x, np.generic) else x


def compare(eng: pd.DataFrame, ref_ticks: pd.DataFrame, ref: pd.DataFrame,
            label: str) -> bool:
    ok = True
    if len(eng) != len(ref_ticks):
        print(f"  FAIL rows: engine wrote {len(eng)}, pandas accepts "
              f"{len(ref_ticks)}")
        return False
    for c in ("ts", "symbol", "price", "volume"):
        e = eng[c].to_numpy()
        r = ref_ticks[c].to_numpy()
        diff = np.flatnonzero(e != r)
        if len(diff):
            i = int(diff[0])
            got, want = _plain(e[i]), _plain(r[i])
            print(f"  FAIL {c}: {len(diff)} rows differ; first at data row "
                  f"{i + 1}: engine {got!r}, input {want!r}")
            ok = False
    if not ok:
        return False
    for c, tol in TOLERANCES:
        e = eng[c].to_numpy(dtype=np.float64)
        r = ref[c].to_numpy(dtype=np.float64)
        nan_e, nan_r = np.isnan(e), np.isnan(r)
        nan_bad = np.flatnonzero(nan_e != nan_r)
        both = ~nan_e & ~nan_r
        err = np.zeros(len(e))
        err[both] = np.abs(e[both] - r[both]) / np.maximum(np.abs(r[both]), TINY)
        worst = int(np.argmax(err)) if len(err) else 0
        n_bad = int((err > tol).sum())
        status = "ok" if n_bad == 0 and len(nan_bad) == 0 else "FAIL"
        print(f"  {c:<8} max rel err {err.max() if len(err) else 0.0:.3e} "
              f"(tol {tol:.0e}, {int(nan_r.sum())} NaN) {status}")
        if n_bad:
            i = int(np.flatnonzero(err > tol)[0])
            print(f"           {n_bad} rows over tol; first at data row {i + 1} "
                  f"({eng['symbol'].iloc[i]}): engine {float(e[i])!r}, pandas {float(r[i])!r}; "
                  f"worst at row {worst + 1}: engine {float(e[worst])!r}, "
                  f"pandas {float(r[worst])!r}")
        if len(nan_bad):
            i = int(nan_bad[0])
            print(f"           {len(nan_bad)} rows NaN on one side only; first at "
                  f"data row {i + 1}: engine {float(e[i])!r}, pandas {float(r[i])!r}")
        ok = ok and status == "ok"
    return ok


def run_engine(engine: str, ticks: str, features: str, extra) -> None:
    cmd = [engine, "replay", "--ticks", ticks, "--features-out", features,
           "--out", os.devnull, "--quiet", *extra]
    try:
        res = subprocess.run(cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise CheckError(f"cannot run {engine}: {exc}") from exc
    if res.returncode != 0:
        raise CheckError(f"{' '.join(cmd)} exited with {res.returncode}:\n"
                         f"{res.stderr.strip()}")


def check_file(args, ticks: str) -> bool:
    ref_ticks = read_ticks(ticks)
    ref = pandas_features(ref_ticks, args.ema_fast_span, args.ema_slow_span)
    if args.features:
        eng = read_features(args.features)
    else:
        with tempfile.TemporaryDirectory(prefix="pe-features-") as tmp:
            out = os.path.join(tmp, "features.csv")
            run_engine(args.engine, ticks, out, args.engine_arg)
            eng = read_features(out)
    print(f"{ticks}: {len(ref_ticks)} ticks accepted of {ref_ticks.attrs['read']} "
          f"rows, {ref_ticks['symbol'].nunique()} symbols")
    return compare(eng, ref_ticks, ref, ticks)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Check pattern-engine --features-out against pandas.")
    ap.add_argument("--engine", help="path of the pattern-engine binary")
    ap.add_argument("--ticks", action="append", default=[],
                    help="tick CSV file; must exist (repeatable)")
    ap.add_argument("--optional-ticks", action="append", default=[],
                    help="tick CSV file; skipped when absent (repeatable)")
    ap.add_argument("--features", help="compare this features-out file "
                    "instead of running the engine (one tick file only)")
    ap.add_argument("--engine-arg", action="append", default=[],
                    help="extra argument for `replay` (repeatable)")
    ap.add_argument("--ema-fast-span", type=float, default=19.0)
    ap.add_argument("--ema-slow-span", type=float, default=39.0)
    args = ap.parse_args(argv)

    files = [(p, False) for p in args.ticks] + [(p, True) for p in args.optional_ticks]
    if not files:
        ap.error("give at least one --ticks or --optional-ticks file")
    if args.features and len(files) != 1:
        ap.error("--features takes exactly one tick file")
    if not args.features and not args.engine:
        ap.error("--engine is required (or --features)")
    if args.engine and not args.features and not os.access(args.engine, os.X_OK):
        print(f"ERROR: engine {args.engine} not found or not executable; "
              f"build it first (cmake -S . -B build -G Ninja && ninja -C build)")
        return 2

    checked = failed = 0
    for path, optional in files:
        if not os.path.exists(path):
            if optional:
                print(f"SKIP: {path} not found")
                continue
            print(f"ERROR: {path} not found")
            return 2
        try:
            ok = check_file(args, path)
        except CheckError as exc:
            print(f"ERROR: {exc}")
            return 2
        checked += 1
        failed += not ok
        print("  PASS" if ok else "  FAIL")
    if checked == 0:
        return SKIP
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
