"""ONNX models on the CPU (pe/model.h): load, describe, run batches."""

from __future__ import annotations

import os
import threading

import numpy as np

from ._errors import Error, check
from ._pe import ffi, lib

_KERNELS = {"auto": 0, "generic": 1, "avx2": 2, "avx512": 3}


def backend_for(path: str) -> str:
    """The backend a model file needs: "cpu" for ONNX; a TensorRT plan
    (.engine, .plan) raises Error EUNSUPPORTED, as this build has no
    TensorRT."""
    if path.endswith((".engine", ".plan", ".trt")):
        raise Error(lib.PE_EUNSUPPORTED,
                    f"{path}: a TensorRT engine plan; TensorRT is not in this build "
                    "(only ONNX models run here, on the cpu backend)")
    return "cpu"


# ONNX's element type numbers, as pe/model.h gives them.
_DTYPES = {1: np.dtype(np.float32), 7: np.dtype(np.int64), 9: np.dtype(np.bool_)}


def _tensor(t, is_input: bool) -> dict:
    dims = [int(t.dims[i]) for i in range(t.rank)]
    if t.batch_axis >= 0:
        dims[t.batch_axis] = -1
    return {"name": ffi.string(t.name).decode(),
            "shape": tuple(None if d < 0 else d for d in dims),
            "batch_axis": int(t.batch_axis) if t.batch_axis >= 0 else None,
            # an output's type as the graph gives it: pe_model_run writes
            # floats, and run() converts an int64 or bool output back
            "dtype": _DTYPES.get(int(t.dtype), None if is_input else np.dtype(np.float32)),
            "size": int(t.numel)}


class Model:
    """Model(path, backend="cpu", kernels="auto"): an ONNX model, loaded,
    validated and planned once.

    inputs, outputs: lists of dicts (name, shape with None for the batch
    axis, batch_axis, dtype, size per window); metadata: the model's
    metadata_props; producer, opset, kernels.

    run(x): x of the input's shape and dtype (float32 for most models),
    with or without the batch axis in front; run(x1, x2, ...) or
    run({name: x}) for a model with several inputs (float32, int64, bool).
    Returns [batch, *first output's shape without batch], float32, or
    int64 or bool where the graph's output is (a constant such as Shape's).

    Thread safety: a Model may be shared; run() from several threads runs
    concurrently, each thread with its own context. close() waits for runs
    in progress; afterwards every call raises Error (ESTATE).
    """

    def __init__(self, path, backend: str = "cpu", kernels: str = "auto"):
        self._model = None
        self._cond = threading.Condition()
        self._active = 0
        self._local = threading.local()
        self._ctxs = []
        self.path = os.fspath(path)
        if backend != "cpu":
            if backend in ("tensorrt", "trt"):
                raise Error(lib.PE_EUNSUPPORTED, "backend 'tensorrt': TensorRT is not "
                            "in this build; backends here: cpu")
            raise Error(lib.PE_ENOENT, f"backend {backend!r}: no such model backend; "
                        "Model runs ONNX files on 'cpu'")
        backend_for(self.path)
        if kernels not in _KERNELS:
            raise ValueError(f"kernels: {kernels!r} is not one of {', '.join(_KERNELS)}")
        self.backend = backend
        err = ffi.new("char[]", 1024)
        out = ffi.new("pe_model_t **")
        check(lib.pe_py_model_load(os.fsencode(self.path), _KERNELS[kernels], out, err,
                                   len(err)), err)
        self._model = out[0]
        d = lib.pe_py_model_desc(self._model)
        self.inputs = [_tensor(d.inputs[i], True) for i in range(d.n_inputs)]
        self.outputs = [_tensor(d.outputs[i], False) for i in range(d.n_outputs)]
        self.metadata = {ffi.string(d.meta_key[i]).decode(): ffi.string(d.meta_value[i]).decode()
                         for i in range(d.n_meta)}
        self.producer = ffi.string(d.producer).decode() if d.producer != ffi.NULL else ""
        self.opset = int(d.opset)
        self.ir_version = int(d.ir_version)
        self.kernels = ffi.string(d.kernels).decode()

    def __repr__(self) -> str:
        o = self.outputs[0]
        i = (f"input {self.inputs[0]['name']}{list(self.inputs[0]['shape'])}"
             if self.inputs else "no input")
        return f"Model({self.path!r}, {i}, output {o['name']}{list(o['shape'])})"

    def _batch_of(self, t: dict, x: np.ndarray) -> int:
        """Windows in x for input t: x has t's shape with the batch axis in
        front, or without it (one window)."""
        window = [d for d in t["shape"] if d is not None]
        if t["batch_axis"] is not None and list(x.shape) == window:
            return 1
        if x.ndim == len(window) + 1 and list(x.shape[1:]) == window:
            return int(x.shape[0])
        if t["batch_axis"] is None and list(x.shape) == window:
            return 1
        raise ValueError(f"input {t['name']!r} has shape {list(t['shape'])} "
                         f"(None: the batch), not {list(x.shape)}")

    def run(self, *xs) -> np.ndarray:
        """run(x) for a model with one input; run(x1, x2, ...) or
        run({name: x, ...}) for one with several, each of its input's dtype
        (float32, int64 or bool) and all with the same batch."""
        if len(xs) == 1 and isinstance(xs[0], dict):
            given = xs[0]
            names = [t["name"] for t in self.inputs]
            if sorted(given) != sorted(names):
                raise ValueError(f"inputs {sorted(given)} given; the model's are {names}")
            xs = tuple(given[n] for n in names)
        if len(xs) != len(self.inputs):
            raise TypeError(f"the model has {len(self.inputs)} input(s) "
                            f"({', '.join(t['name'] for t in self.inputs)}); "
                            f"{len(xs)} given")
        arrays, batches = [], set()
        for t, x in zip(self.inputs, xs):
            if not isinstance(x, np.ndarray):
                raise TypeError(f"input {t['name']!r}: a numpy array, not {type(x).__name__}")
            if t["dtype"] is None or x.dtype != t["dtype"]:
                raise TypeError(f"input {t['name']!r} is {t['dtype']}, not {x.dtype}; "
                                f"convert with x.astype(np.{t['dtype']})")
            batches.add(self._batch_of(t, x))
            arrays.append(np.ascontiguousarray(x))  # a copy only for a strided array
        if len(batches) > 1:
            raise ValueError(f"the inputs hold different batches: {sorted(batches)}")
        batch = batches.pop() if batches else 1  # a model without input: one run
        if batch == 0 or batch >= 2**32:
            raise ValueError(f"batch of {batch} windows: 1 to 2^32-1 are accepted")
        out_shape = [d for d in self.outputs[0]["shape"] if d is not None]
        y = np.empty([batch] + out_shape, dtype=np.float32)
        with self._cond:
            if self._model is None:
                raise Error(lib.PE_ESTATE, "the model is closed")
            self._active += 1
        try:
            ctx = self._context()
            out = ffi.from_buffer("float[]", y)
            if len(arrays) == 1 and arrays[0].dtype == np.float32:
                rc = lib.pe_py_model_run(ctx, ffi.from_buffer("float[]", arrays[0]), batch, out)
            else:
                ptrs = ffi.new("void *[]", [ffi.from_buffer(a) for a in arrays])
                rc = lib.pe_py_model_run_inputs(ctx, ptrs, len(arrays), batch, out)
            check(rc, "")
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()
        want = self.outputs[0]["dtype"]
        return y if want == np.float32 else y.astype(want)

    def _context(self):
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            out = ffi.new("pe_model_ctx_t **")
            check(lib.pe_py_model_ctx_create(self._model, 64, out), "")
            ctx = out[0]
            with self._cond:
                self._ctxs.append(ctx)
            self._local.ctx = ctx
        return ctx

    def close(self) -> None:
        """Frees the model once no run is in progress. Safe to call twice."""
        with self._cond:
            while self._active:
                self._cond.wait()
            for ctx in self._ctxs:
                lib.pe_py_model_ctx_destroy(ctx)
            self._ctxs = []
            if self._model is not None:
                lib.pe_py_model_destroy(self._model)
                self._model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_cond", None) is not None:
            self.close()
