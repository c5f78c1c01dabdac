"""Pattern Engine from Python: the C library's features, engine, models and
replays over pandas and numpy. docs/python.md describes the API."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ._engine import (FEATURE_COLUMNS, SIGNAL_COLUMNS, STANDARD_FEATURES, Engine,
                      _on_error, _Result, engine_config)
from ._errors import Error
from ._model import Model
from ._pe import ffi, lib
from ._ticks import columns_of

__all__ = ["Engine", "Error", "Model", "features", "replay", "FEATURE_COLUMNS",
           "SIGNAL_COLUMNS", "STANDARD_FEATURES"]
__version__ = "0.1.0"

_CORE_COLUMNS = ("ema_fast", "ema_slow", "vwap", "mean", "var")


def _shards(threads, n: int, n_symbols: int, stop: int, settings: dict) -> int:
    """How many engines features() runs at once (see its threads)."""
    if threads is None:
        threads = (os.cpu_count() or 1) if n >= 1_000_000 else 1
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads: {threads!r} is not None or an integer >= 1")
    if stop or n_symbols > engine_config(settings).max_symbols:
        return 1
    return int(max(1, min(threads, n_symbols, lib.PE_PY_FEATURE_COLUMNS)))


def features(ticks=None, *, ts=None, symbol=None, price=None, volume=None,
             columns=None, on_error: str = "skip", config: dict | None = None,
             threads: int | None = None, **settings) -> pd.DataFrame:
    """Every standard feature of every accepted tick, as `replay
    --features-out` writes them (the same numbers, bit for bit).

    ticks: a DataFrame with columns ts|timestamp|time (int64 ns or
    datetime64), symbol, price, volume|size|qty; or the four arrays by
    keyword. Returns a DataFrame with ts, symbol (categorical), price,
    volume, then FEATURE_COLUMNS (or only `columns`, a subset of them), one
    row per accepted tick in input order; attrs["rejected"] counts the
    others by reason, attrs["rows"] the input's rows.

    on_error: "skip" (count rejected ticks, as replay does) or "raise"
    (Error at the first). config / settings: engine settings (Engine).

    When every column asked for is one of the columnar core's (ema_fast,
    ema_slow, vwap, mean, var), the core (pe/core.h) computes them with the
    engine's checks of each tick; otherwise the engine does, with all
    features on. The GIL is released while C runs.

    threads: engines run at once, the symbols split between them (each
    symbol's ticks meet one engine, in order, so the result is the same
    whatever the count). None: one per CPU (at most one per feature
    column) for a million ticks or more, else 1. One engine is used anyway
    with on_error="raise" or more symbols than the engine's max_symbols.
    """
    cols = columns_of(ticks, ts=ts, symbol=symbol, price=price, volume=volume)
    stop = _on_error(on_error)
    merged = dict(config or {})
    merged.update(settings)
    wanted = tuple(FEATURE_COLUMNS) if columns is None else tuple(columns)
    unknown = [c for c in wanted if c not in FEATURE_COLUMNS]
    if unknown:
        raise ValueError(f"unknown feature columns {unknown}; known: {list(FEATURE_COLUMNS)}")
    n = cols.n
    res = _Result(stop)
    accepted = np.empty(n, dtype=np.int64)
    res.c.accepted = ffi.from_buffer("int64_t[]", accepted)
    # The accepted ticks' ts and symbol codes, written by the C side as it
    # places each row (by the engines' threads when sharded): the frame
    # takes them as they are, with no gather or copy here.
    ts_out = np.empty(n, dtype=np.int64)
    codes_out = np.empty(n, dtype=np.int32)
    res.c.ts_out = ffi.from_buffer("int64_t[]", ts_out)
    res.c.codes_out = ffi.from_buffer("int32_t[]", codes_out)
    use_core = set(wanted) <= set(_CORE_COLUMNS) and _core_applies(merged, len(cols.symbols))
    # One float64 block, column by column: price, volume, then the features;
    # the C side writes it and the DataFrame takes it as its one float block.
    names = ("price", "volume") + (_CORE_COLUMNS if use_core else FEATURE_COLUMNS)
    block = np.empty((len(names), max(n, 1)), dtype=np.float64)
    res.c.features = ffi.from_buffer("double[]", block)
    if use_core:
        ec = engine_config(merged)
        cc = ffi.new("pe_core_config_t *")
        lib.pe_core_config_init(cc)
        cc.ema_fast_span = ec.ema_fast_span
        cc.ema_slow_span = ec.ema_slow_span
        res.check(lib.pe_py_core_features(cc, cols.c, res.c))
    else:
        merged["all_features"] = 1
        shards = _shards(threads, n, len(cols.symbols), stop, merged)
        if shards > 1:
            res.check(lib.pe_py_push_sharded(engine_config(merged), shards, cols.c, res.c))
        else:
            with Engine(merged) as engine:
                res.check(engine._run(cols, res))
    k = int(res.c.n_accepted)
    whole = k == n
    values = block if whole and n else block[:, :k]
    feats = pd.DataFrame(values.T, columns=list(names), copy=False)
    if tuple(names[2:]) != wanted:
        feats = feats[["price", "volume", *wanted]]
    # A Series of an array of this call's own: pandas keeps it, uncopied.
    feats.insert(0, "ts", pd.Series(ts_out[:k], index=feats.index, copy=False))
    feats.insert(1, "symbol", cols.symbol_column(codes_out[:k]))
    feats.attrs["rows"] = n
    feats.attrs["rejected"] = res.rejected()
    return feats


def _core_applies(settings: dict, n_symbols: int) -> bool:
    """The core computes what the engine would when sessions are off and the
    symbols fit the table."""
    ec = engine_config(settings)
    return ec.session_reset_minute < 0 and n_symbols <= ec.max_symbols


def replay(path_or_df, model=None, *, window=None, model_features=None,
           ts_unit: str = "auto", on_error: str = "skip", as_records: bool = False,
           config: dict | None = None, **settings):
    """Replays ticks through a fresh engine and returns its signals as a
    DataFrame (SIGNAL_COLUMNS), as `pattern-engine replay` prints them.

    path_or_df: a tick CSV file (read by the library's CSV reader, as
    `replay --ticks`; ts_unit as --ts-unit) or ticks as features() takes.
    model: None, "stub", an .onnx path or a Model. attrs["stats"] holds the
    engine's counters. As replay, only the features the rules (and a
    model) read are computed unless all_features=1 is given.
    """
    settings.setdefault("all_features", 0)
    with Engine(config, model=model, window=window, model_features=model_features,
                **settings) as engine:
        if isinstance(path_or_df, (str, bytes, os.PathLike)):
            res = engine.replay_file(path_or_df, ts_unit_name=ts_unit, on_error=on_error)
            out = res.signals(as_records)
        else:
            out = engine.push_batch(path_or_df, on_error=on_error, as_records=as_records)
        stats = engine.stats()
    if not as_records:
        out.attrs["stats"] = stats
    return out
