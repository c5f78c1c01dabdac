"""Ticks from pandas or numpy into the columns the C side reads.

Columns are passed to C without a copy when they already are contiguous
arrays of the right type (int64 ns, float64); anything else convertible is
converted once. Symbols become int32 codes into a table of their UTF-8
bytes (a Categorical's own codes when given one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._pe import ffi, lib

TS_NAMES = ("ts", "timestamp", "time")
VOLUME_NAMES = ("volume", "size", "qty")


class Columns:
    """n ticks as C columns; keeps every array the C struct points into."""

    def __init__(self, ts, symbol, price, volume):
        self.ts = _ts_array(ts)
        n = len(self.ts)
        self.price = _float_array(price, "price", n)
        self.volume = _float_array(volume, "volume", n)
        self.codes, self.symbols = _symbol_codes(symbol, n)
        self.n = n
        stride = lib.PE_PY_SYMBOL_STRIDE
        table = np.zeros((max(len(self.symbols), 1), stride), dtype=np.uint8)
        lens = np.zeros(max(len(self.symbols), 1), dtype=np.uint32)
        for i, s in enumerate(self.symbols):
            b = str(s).encode()
            lens[i] = len(b)
            b = b[:stride - 1]
            table[i, :len(b)] = np.frombuffer(b, dtype=np.uint8)
        self.table = table
        self.lens = lens
        self.c = ffi.new("pe_py_columns_t *")
        self.c.n = n
        self.c.ts_ns = ffi.from_buffer("int64_t[]", self.ts)
        self.c.sym = ffi.from_buffer("int32_t[]", self.codes)
        self.c.price = ffi.from_buffer("double[]", self.price)
        self.c.volume = ffi.from_buffer("double[]", self.volume)
        self.c.symtab = ffi.from_buffer("char[]", self.table)
        self.c.symlen = ffi.from_buffer("uint32_t[]", self.lens)
        self.c.n_symtab = len(self.symbols)

    def symbol_column(self, codes) -> pd.Categorical:
        """Symbol codes of these columns (valid ones: accepted ticks') as a
        Categorical of their symbols."""
        return pd.Categorical.from_codes(codes, categories=self.symbols, validate=False)


def columns_of(ticks=None, *, ts=None, symbol=None, price=None, volume=None) -> Columns:
    """ticks: a DataFrame (columns found by name as the CSV reader finds
    them: ts|timestamp|time, symbol, price, volume|size|qty) or a dict of
    arrays; or the four arrays by keyword."""
    if ticks is not None:
        if any(x is not None for x in (ts, symbol, price, volume)):
            raise TypeError("give ticks or the arrays ts, symbol, price, volume, not both")
        if not isinstance(ticks, (pd.DataFrame, dict)):
            raise TypeError("ticks must be a pandas DataFrame or a dict of arrays, "
                            f"not {type(ticks).__name__}")
        names = list(ticks.keys())
        ts = ticks[_pick(names, TS_NAMES, "timestamp")]
        symbol = ticks[_pick(names, ("symbol",), "symbol")]
        price = ticks[_pick(names, ("price",), "price")]
        volume = ticks[_pick(names, VOLUME_NAMES, "volume")]
    elif any(x is None for x in (ts, symbol, price, volume)):
        raise TypeError("give ticks (a DataFrame) or all of ts, symbol, price, volume")
    return Columns(ts, symbol, price, volume)


def _pick(names, wanted, what):
    for w in wanted:
        if w in names:
            return w
    raise ValueError(f"no {what} column: looked for {'|'.join(wanted)} in {names}")


def _one_dim(x, what):
    a = x.to_numpy() if isinstance(x, (pd.Series, pd.Index)) else x
    a = np.asarray(a) if not isinstance(a, np.ndarray) else a
    if a.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, not of shape {a.shape}")
    return a


def _ts_array(ts) -> np.ndarray:
    if isinstance(ts, pd.Series) and isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    a = _one_dim(ts, "ts")
    if a.dtype.kind == "M":
        a = a.astype("datetime64[ns]").view(np.int64)
    elif a.dtype.kind not in "iu":
        raise TypeError(f"ts must be integer nanoseconds since the epoch or datetime64, "
                        f"not {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def _float_array(x, what, n) -> np.ndarray:
    a = _one_dim(x, what)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{what} must be numeric, not {a.dtype}")
    if len(a) != n:
        raise ValueError(f"{what} has {len(a)} values, ts has {n}")
    return np.ascontiguousarray(a, dtype=np.float64)


def _symbol_codes(symbol, n):
    if isinstance(symbol, pd.Series) and isinstance(symbol.dtype, pd.CategoricalDtype):
        symbol = symbol.array
    if isinstance(symbol, pd.Categorical):
        codes, cats = symbol.codes, symbol.categories
    else:
        a = _one_dim(symbol, "symbol")
        if a.dtype.kind not in "OUS" and not isinstance(a.dtype, pd.StringDtype):
            raise TypeError(f"symbol must hold strings, not {a.dtype}")
        codes, cats = pd.factorize(a)
    if len(codes) != n:
        raise ValueError(f"symbol has {len(codes)} values, ts has {n}")
    symbols = [s.decode() if isinstance(s, bytes) else str(s) for s in cats]
    return np.ascontiguousarray(codes, dtype=np.int32), pd.Index(symbols, dtype=object)


class _OneTick:
    """One tick as C columns, without pandas: the per-call cost of push()."""

    def __init__(self, ts, symbol, price, volume):
        if isinstance(ts, (bool, float)) or not isinstance(ts, (int, np.integer)):
            raise TypeError(f"ts must be integer nanoseconds, not {type(ts).__name__}")
        if not isinstance(symbol, (str, bytes)):
            raise TypeError(f"symbol must be a string, not {type(symbol).__name__}")
        for what, x in (("price", price), ("volume", volume)):
            if isinstance(x, bool) or not isinstance(x, (int, float, np.number)):
                raise TypeError(f"{what} must be a number, not {type(x).__name__}")
        sym = symbol.encode() if isinstance(symbol, str) else symbol
        stride = lib.PE_PY_SYMBOL_STRIDE
        self.keep = (ffi.new("int64_t[1]", [int(ts)]), ffi.new("int32_t[1]", [0]),
                     ffi.new("double[1]", [float(price)]),
                     ffi.new("double[1]", [float(volume)]),
                     ffi.new("char[]", sym[:stride - 1].ljust(stride, b"\0")),
                     ffi.new("uint32_t[1]", [len(sym)]))
        self.c = ffi.new("pe_py_columns_t *")
        self.c.n = 1
        (self.c.ts_ns, self.c.sym, self.c.price, self.c.volume, self.c.symtab,
         self.c.symlen) = self.keep
        self.c.n_symtab = 1


def one_tick(ts, symbol, price, volume) -> _OneTick:
    return _OneTick(ts, symbol, price, volume)
