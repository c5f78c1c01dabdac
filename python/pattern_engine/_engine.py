"""The engine: per-symbol state, features, rules, a model, signals."""

from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd

from ._errors import Error, check, text
from ._pe import ffi, lib
from ._ticks import columns_of, one_tick

RULES = tuple(ffi.string(lib.pe_rule_name(i)).decode() for i in range(4))
REJECT_REASONS = tuple(ffi.string(lib.pe_reject_name(i)).decode()
                       for i in range(len(ffi.new("pe_py_result_t *").rejected)))


def _feature_names():
    names = []
    i = 0
    while True:
        p = lib.pe_feature_name(i)
        if p == ffi.NULL:
            return tuple(names)
        names.append(ffi.string(p).decode())
        i += 1


STANDARD_FEATURES = _feature_names()
FEATURE_COLUMNS = ("ema_fast", "ema_slow", "vwap", "mean", "var") + STANDARD_FEATURES
SIGNAL_COLUMNS = ("id", "ts", "symbol", "pattern", "score", "confidence", "price",
                  "fired", "model_class") + tuple(
    f"{k}_{r}" for r in RULES for k in ("value", "contribution"))

_TS_UNITS = ("auto", "s", "ms", "us", "ns")
_RULE_FIELDS = tuple(f[0] for f in ffi.typeof("pe_rules_config_t").fields)
_CONFIG_FIELDS = tuple(f[0] for f in ffi.typeof("pe_engine_config_t").fields
                       if f[0] != "rules")


def engine_config(settings: dict):
    """A pe_engine_config_t from the library's defaults and settings: any
    field of pe_engine_config_t or of its rules (pe/engine.h), plus
    session_reset="HH:MM" and signal_cooldown (seconds)."""
    c = ffi.new("pe_engine_config_t *")
    lib.pe_engine_config_init(c)
    for key, value in settings.items():
        if value is None:
            continue
        if key == "session_reset":
            hh, sep, mm = str(value).partition(":")
            if not sep or not (hh.isdigit() and mm.isdigit()) or int(hh) > 23 or int(mm) > 59:
                raise ValueError(f"session_reset: {value!r} is not a UTC time HH:MM")
            c.session_reset_minute = int(hh) * 60 + int(mm)
        elif key == "signal_cooldown":
            if not 0 <= float(value) <= 1e9:
                raise ValueError("signal_cooldown must be between 0 and 1e9 seconds")
            c.rules.signal_cooldown_ns = int(round(float(value) * 1e9))
        elif key in _RULE_FIELDS:
            setattr(c.rules, key, value)
        elif key in _CONFIG_FIELDS:
            setattr(c, key, value)
        else:
            raise TypeError(f"unknown engine setting {key!r}; known: "
                            f"{', '.join(_CONFIG_FIELDS + _RULE_FIELDS)}, "
                            "session_reset, signal_cooldown")
    return c


def ts_unit(name: str) -> int:
    unit = ffi.new("pe_ts_unit_t *")
    if lib.pe_ts_unit_parse(str(name).encode(), unit) != lib.PE_OK:
        raise ValueError(f"ts_unit: {name!r} is not one of {', '.join(_TS_UNITS)}")
    return int(unit[0])


def _on_error(on_error: str) -> int:
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error: {on_error!r} is not 'skip' or 'raise'")
    return 1 if on_error == "raise" else 0


class _Result:
    """A pe_py_result_t and what its pointers point into."""

    def __init__(self, stop_on_reject: int):
        self.c = ffi.gc(ffi.new("pe_py_result_t *"), lib.pe_py_result_free)
        self.c.stop_on_reject = stop_on_reject
        self.keep = []

    def check(self, rc: int) -> None:
        if rc != lib.PE_OK:
            raise Error(rc, text(self.c.errmsg) or
                        ffi.string(lib.pe_strerror(rc)).decode())

    def rejected(self) -> dict:
        return {name: int(self.c.rejected[i]) for i, name in enumerate(REJECT_REASONS)
                if self.c.rejected[i]}

    def signals(self, as_records: bool = False):
        return signals_frame(self.c.signals, self.c.n_signals, as_records)


def _signal_dtype() -> np.dtype:
    t = ffi.typeof("pe_signal_t")
    off = {name: f.offset for name, f in t.fields}
    n_rules = len(RULES)
    return np.dtype({
        "names": ["id", "label", "symbol", "ts_ns", "model_class", "score",
                  "confidence", "price", "fired", "value", "contribution"],
        "formats": ["S64", "S80", f"S{ffi.sizeof(t.fields[2][1].type)}", "<i8", "<i4",
                    "<f8", "<f8", "<f8", "<u4", ("<f8", n_rules), ("<f8", n_rules)],
        "offsets": [off["id"], off["label"], off["symbol"], off["ts_ns"],
                    off["model_class"], off["score"], off["confidence"], off["price"],
                    off["fired"], off["value"], off["contribution"]],
        "itemsize": ffi.sizeof(t),
    })


_SIGNAL_DTYPE = _signal_dtype()


def _c_strings(a: np.ndarray) -> list:
    """NUL-terminated char arrays (what follows the NUL is not theirs)."""
    return [b.split(b"\0", 1)[0].decode(errors="replace") for b in a.tolist()]


def signals_frame(ptr, n: int, as_records: bool = False):
    """Signals (an array of pe_signal_t) as a DataFrame with SIGNAL_COLUMNS,
    or a list of dicts. fired lists the rules that fired, ';'-joined; the
    value_* and contribution_* columns are NaN for rules that did not."""
    if n:
        raw = np.frombuffer(ffi.buffer(ptr, n * _SIGNAL_DTYPE.itemsize),
                            dtype=_SIGNAL_DTYPE)
    else:
        raw = np.zeros(0, dtype=_SIGNAL_DTYPE)
    fired = raw["fired"]
    data = {
        "id": _c_strings(raw["id"]), "ts": raw["ts_ns"].copy(),
        "symbol": _c_strings(raw["symbol"]), "pattern": _c_strings(raw["label"]),
        "score": raw["score"].copy(), "confidence": raw["confidence"].copy(),
        "price": raw["price"].copy(),
        "fired": [";".join(r for i, r in enumerate(RULES) if f >> i & 1) for f in fired],
        "model_class": raw["model_class"].copy(),
    }
    for i, r in enumerate(RULES):
        on = (fired >> i & 1).astype(bool)
        data[f"value_{r}"] = np.where(on, raw["value"][:, i], np.nan)
        data[f"contribution_{r}"] = np.where(on, raw["contribution"][:, i], np.nan)
    df = pd.DataFrame(data, columns=list(SIGNAL_COLUMNS))
    for c in ("id", "symbol", "pattern", "fired"):
        df[c] = df[c].astype(str)  # one dtype, empty or not
    if as_records:
        return df.to_dict("records")
    return df


def format_signals(ptr, n: int, fmt: str = "csv") -> str:
    """Signals as the CLI prints them (pe_signal_format), header first for
    CSV."""
    kind = {"csv": lib.PE_FORMAT_CSV, "jsonl": lib.PE_FORMAT_JSONL}.get(fmt)
    if kind is None:
        raise ValueError(f"format: {fmt!r} is not csv or jsonl")
    out = [ffi.string(lib.pe_signal_csv_header()).decode()] if fmt == "csv" else []
    buf = ffi.new("char[]", 4096)
    for i in range(n):
        m = lib.pe_signal_format(ptr + i, kind, buf, len(buf))
        if m >= len(buf):
            buf = ffi.new("char[]", m + 1)
            m = lib.pe_signal_format(ptr + i, kind, buf, len(buf))
        out.append(ffi.buffer(buf, m)[:].decode())
    return "".join(out)


class Engine:
    """An engine with its own per-symbol state.

    Engine(config=None, *, model=None, window=None, model_features=None,
    backend=None, cuda_mode=None, precision=None, **settings): config is a
    dict of settings
    (see engine_config); model is None, "stub", an .onnx path or a Model
    (its file is opened by the engine's own backend). window: the stub's
    window length (32). backend: the backend that runs the model, "cpu"
    (the default) or "cuda" where the library was built with it and a
    device is present (pattern-engine --version lists them); cuda_mode:
    the cuda backend's "graph" (default) or "persistent" (a resident
    kernel, for batch-1 latency); precision: the cuda backend's "fp32"
    (default) or "tf32" (dense and Conv1d steps on tensor cores).

    Thread safety: an Engine may be shared between threads; its calls are
    serialized by a lock (the C engine is used by one thread at a time).
    After close() every call raises Error (ESTATE).
    """

    def __init__(self, config: dict | None = None, *, model=None, window=None,
                 model_features=None, backend: str | None = None,
                 cuda_mode: str | None = None, precision: str | None = None,
                 **settings):
        merged = dict(config or {})
        merged.update(settings)
        self._lock = threading.Lock()
        self._engine = None
        self._backend = None
        cfg = engine_config(merged)
        self.config = merged
        err = ffi.new("char[]", 768)
        pe = ffi.new("pe_engine_t **")
        check(lib.pe_engine_create(cfg, pe, err, len(err)), err)
        self._engine = pe[0]
        try:
            if model is None and (backend is not None or cuda_mode is not None
                                  or precision is not None):
                raise ValueError("backend, cuda_mode and precision need a model")
            if cuda_mode is not None and backend != "cuda":
                raise ValueError("cuda_mode needs backend='cuda'")
            if precision is not None and backend != "cuda":
                raise ValueError("precision needs backend='cuda'")
            if model is not None:
                self._attach(model, window, model_features, backend, cuda_mode,
                             precision)
            elif window:
                check(lib.pe_engine_set_window(self._engine, int(window)),
                      lib.pe_engine_errmsg(self._engine))
        except BaseException:
            self.close()
            raise

    def _attach(self, model, window, model_features, backend, cuda_mode,
                precision):
        from ._model import Model, backend_for
        if isinstance(model, Model):
            name, path = model.backend, model.path
        elif model == "stub":
            name, path = "stub", None
        else:
            path = os.fspath(model)
            name = backend_for(path)
        if backend is not None:
            if path is None:
                raise ValueError("backend: the stub model has no other backend")
            name = str(backend)
        opts = ffi.new("pe_backend_options_t *")
        keep = []
        if path is not None:
            keep.append(ffi.new("char[]", path.encode()))
            opts.model_path = keep[-1]
        if cuda_mode is not None:
            keep.append(ffi.new("char[]", str(cuda_mode).encode()))
            opts.mode = keep[-1]
        if precision is not None:
            keep.append(ffi.new("char[]", str(precision).encode()))
            opts.precision = keep[-1]
        if model_features is not None:
            keep.append(ffi.new("char[]", ",".join(model_features).encode()
                                if not isinstance(model_features, str)
                                else model_features.encode()))
            opts.model_features = keep[-1]
        opts.window = int(window) if window else 32
        opts.max_batch = 1
        err = ffi.new("char[]", 512)
        be = ffi.new("pe_backend_t **")
        check(lib.pe_backend_open(name.encode(), opts, be, err, len(err)), err)
        self._backend = be[0]
        check(lib.pe_engine_set_backend(self._engine, self._backend),
              lib.pe_engine_errmsg(self._engine))

    # -- life cycle -------------------------------------------------------
    def close(self) -> None:
        """Frees the engine (and its backend). Safe to call twice."""
        with self._lock:
            if self._engine is not None:
                lib.pe_engine_destroy(self._engine)
                self._engine = None
            if self._backend is not None:
                lib.pe_backend_close(self._backend)
                self._backend = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_lock", None) is not None:
            self.close()

    def _live(self):
        if self._engine is None:
            raise Error(lib.PE_ESTATE, "the engine is closed")
        return self._engine

    # -- ticks ------------------------------------------------------------
    def _run(self, cols, res) -> int:
        with self._lock:
            return lib.pe_py_push(self._live(), cols.c, res.c)

    def push(self, ts, symbol, price, volume) -> list:
        """One tick; returns its signals as a list of dicts (often empty).
        A rejected tick raises Error with the rejection's code (EPRICE,
        EORDER, ...), the engine unchanged."""
        cols = one_tick(ts, symbol, price, volume)
        res = _Result(stop_on_reject=1)
        res.check(self._run(cols, res))
        return res.signals(as_records=True) if res.c.n_signals else []

    def push_batch(self, ticks=None, *, ts=None, symbol=None, price=None, volume=None,
                   on_error: str = "skip", as_records: bool = False):
        """Many ticks in order (a DataFrame or arrays, as features()).
        Returns their signals as a DataFrame (SIGNAL_COLUMNS) or a list of
        dicts. on_error="skip" counts rejected ticks (see stats()) and goes
        on; "raise" stops at the first with an Error whose message names the
        row (the ticks before it stay pushed)."""
        cols = columns_of(ticks, ts=ts, symbol=symbol, price=price, volume=volume)
        res = _Result(_on_error(on_error))
        res.check(self._run(cols, res))
        return res.signals(as_records)

    def replay_file(self, path, *, ts_unit_name: str = "auto", on_error: str = "skip"):
        """A tick CSV file through this engine (the CLI's reader);
        returns the raw result (used by replay() and the runner)."""
        res = _Result(_on_error(on_error))
        unit = ts_unit(ts_unit_name)
        p = os.fsencode(path)
        with self._lock:
            rc = lib.pe_py_replay_file(self._live(), p, unit, res.c)
        res.check(rc)
        return res

    # -- state ------------------------------------------------------------
    def stats(self) -> dict:
        """Counters: ticks accepted, rejected by reason, symbols, signals by
        pattern, inferences."""
        st = ffi.new("pe_engine_stats_t *")
        with self._lock:
            lib.pe_engine_stats(self._live(), st)
        return {
            "ticks": int(st.ticks),
            "rejected": {r: int(st.rejected[i]) for i, r in enumerate(REJECT_REASONS)
                         if st.rejected[i]},
            "symbols": int(st.symbols),
            "signals": {p: int(st.signals[i]) for i, p in enumerate(RULES + ("model",))},
            "inferences": int(st.inferences),
        }

    def snapshot(self) -> bytes:
        """The engine's state as the library's snapshot format (versioned,
        checksummed): what --state-out writes."""
        with self._lock:
            e = self._live()
            cap = lib.pe_engine_snapshot_size(e)
            buf = ffi.new("char[]", max(cap, 1))
            n = ffi.new("size_t *")
            check(lib.pe_engine_snapshot(e, buf, cap, n), lib.pe_engine_errmsg(e))
            return ffi.buffer(buf, n[0])[:]

    def restore(self, snapshot: bytes) -> None:
        """Replaces the state with a snapshot from an engine of the same
        configuration; Error ECORRUPT, EVERSION or EINVAL otherwise, the
        engine unchanged."""
        data = ffi.from_buffer(snapshot)
        with self._lock:
            e = self._live()
            check(lib.pe_engine_restore(e, data, len(data)), lib.pe_engine_errmsg(e))
