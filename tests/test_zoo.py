#!/usr/bin/env python3
"""The model zoo (models/zoo/, made by models/zoo.py) through the engine,
against ONNX Runtime.

    tests/test_zoo.py BUILD_DIR [--update-refusals] [MODEL ...]

MODEL is NAME.EXPORTER as in models/zoo/manifest.json (default: all). For
every exported file, with the `auto` and `generic` kernels:

  vectors   `pattern-engine infer` on the committed inputs against the
            committed ONNX Runtime outputs (max |diff| <= 1e-5), as one
            batch and the first alone (batch 1);
  random    1,000 random windows at the model's scale (seeded) against ONNX
            Runtime now;
  real      where the input is a feature window (pe.features) and
            ../shared/data/real/binance_trades.csv is there ($PE_REAL_TRADES
            names another place): 1,000 windows of
            its trades, cut from the engine's own features
            (models/windows.py), in the model's layout, against ONNX Runtime;
  engine    where the input is a feature window: `pattern-engine replay
            --model` on fixtures/sample_ticks.csv (and the first 20,000 real
            trades when present), every window scored (threshold 0, no
            cooldown); each model signal's class and probability against the
            softmax of ONNX Runtime's logits on the window models/windows.py
            cuts at that tick. This checks how the engine feeds the model
            (layout included), not only the model.

A model the engine refuses fails the test unless tests/zoo_refusals.txt lists
it, for that stage (infer or engine), with the message it gives now (less the
list of supported ops). A listed model that loads, or is refused with another
message, fails too: the list shrinks as support lands. --update-refusals
rewrites the list from what the engine says now (and still fails on wrong
numbers).

Larger models (models/zoo.py --set large) are made at test time when PyTorch
is there: in this Python, or in the one $PE_ZOO_PYTHON names. Otherwise that
part is skipped with a message.

Exit 77 with a SKIP line when numpy is missing."""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "models", "zoo")
REFUSALS = os.path.join(ROOT, "tests", "zoo_refusals.txt")
REAL = os.environ.get("PE_REAL_TRADES", os.path.join(
    os.path.dirname(ROOT), "shared", "data", "real", "binance_trades.csv"))
FIXTURE = os.path.join(ROOT, "fixtures", "sample_ticks.csv")
TOL = 1e-5
KERNELS = ("auto", "generic")
N_RANDOM = 1000
N_REAL = 1000
REAL_TICKS = 20000
SUPPORTED_OPS = "; supported ops:"
# Families of models/zoo.py --set large (not committed; built here only where
# PyTorch is): their lines in the refusal list stand while they are not built.
LARGE = ("deeplob_full", "transformer64")


def optional(module):
    try:
        return __import__(module)
    except ImportError:
        return None


ort = optional("onnxruntime")


class Refused(Exception):
    """The engine refused the model; str() is its message."""


def engine_message(stderr, path):
    """The engine's one-line refusal, with the model's path as its file name
    and without the list of supported ops (it grows with every op)."""
    line = stderr.strip().splitlines()[-1] if stderr.strip() else "(no message)"
    for prefix in ("pattern-engine infer: ", "pattern-engine replay: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    line = line.replace(path, os.path.basename(path))
    return line.split(SUPPORTED_OPS)[0]


def infer(exe, model, x, kernels, tmp):
    xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
    np.save(xin, np.ascontiguousarray(x, np.float32))
    r = subprocess.run([exe, "infer", model, "--input", xin, "--output", yout,
                        "--kernels", kernels], capture_output=True, text=True)
    if r.returncode != 0:
        raise Refused(engine_message(r.stderr, model))
    return np.load(yout)


def to_layout(x_ncw, layout):
    """Windows [M, C, W] as the engine builds them, in the model's layout."""
    if layout == "NCW":
        return x_ncw
    nwc = np.ascontiguousarray(x_ncw.transpose(0, 2, 1))
    return nwc if layout == "NWC" else nwc[:, None]


def random_windows(info, count, seed):
    """`count` windows of N(0, std^2), std per feature channel."""
    shape = tuple(info["input_shape"][1:])
    std = np.asarray(info["input_std"], np.float32)
    if std.ndim == 1:
        std = std[:, None] if info["layout"] == "NCW" else std
    rng = np.random.default_rng(seed)
    return (std * rng.standard_normal((count,) + shape)).astype(np.float32)


def softmax64(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Checker:
    def __init__(self, exe, tmp):
        self.exe, self.tmp = exe, tmp
        self.sessions = {}
        self._windows = None
        self._real = None
        self._frames = {}

    # ---- oracles and inputs -------------------------------------------------

    def ort(self, path, x):
        if path not in self.sessions:
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            self.sessions[path] = ort.InferenceSession(
                path, so, providers=["CPUExecutionProvider"])
        s = self.sessions[path]
        return s.run(None, {s.get_inputs()[0].name: x})[0]

    def windows(self):
        """models/windows.py, or None (with the reason printed once) when
        pandas is missing."""
        if self._windows is None:
            os.environ["PE_ENGINE"] = self.exe
            sys.path.insert(0, os.path.join(ROOT, "models"))
            try:
                import windows
                self._windows = windows
            except ImportError as e:
                print(f"SKIP real and engine windows: {e}")
                self._windows = False
        return self._windows or None

    def real_ticks(self):
        """The first REAL_TICKS real trades as a tick file, or None."""
        if self._real is None:
            self._real = False
            if not os.path.isfile(REAL):
                print(f"SKIP real-trade windows: {REAL} is absent")
            else:
                path = os.path.join(self.tmp, "real_prefix.csv")
                with open(REAL) as src, open(path, "w") as dst:
                    for i, line in enumerate(src):
                        if i > REAL_TICKS:
                            break
                        dst.write(line)
                self._real = path
        return self._real or None

    def frame(self, ticks):
        if ticks not in self._frames:
            self._frames[ticks] = self.windows().engine_features(ticks)
        return self._frames[ticks]

    # ---- the checks ---------------------------------------------------------

    def compare(self, key, label, path, x, ref, out):
        for kernels in KERNELS:
            y = infer(self.exe, path, x, kernels, self.tmp)
            if y.shape != ref.shape:
                out.append(f"FAIL {key} [{label}, {kernels}]: output shape "
                           f"{y.shape}, ONNX Runtime {ref.shape}")
                continue
            d = float(np.max(np.abs(y.astype(np.float64) - ref)))
            ok = d <= TOL
            out.append(f"{'ok  ' if ok else 'FAIL'} {key} [{label} x{len(x)}, "
                       f"{kernels}]: max abs diff {d:.3g}")

    def check_infer(self, key, info, exp, path, out):
        x = np.load(os.path.join(ZOO, info["inputs"]))
        ref = np.load(os.path.join(ZOO, exp["outputs"]))
        self.compare(key, "vectors", path, x, ref, out)
        self.compare(key, "batch 1", path, x[:1], ref[:1], out)
        if ort is None:
            out.append(f"SKIP {key} [random, real]: onnxruntime is not installed")
            return
        x = random_windows(info, N_RANDOM, seed=7)
        self.compare(key, "random", path, x, self.ort(path, x), out)
        if not info["features"] or self.windows() is None:
            return
        if self.real_ticks() is None:
            return
        got = self.windows().real_windows(info["features"], N_REAL, path=REAL,
                                          window=info["window"])
        x = to_layout(got[0].x, info["layout"])
        self.compare(key, "real", path, x, self.ort(path, x), out)

    def check_engine(self, key, info, path, out):
        """replay --model on tick files: the engine's class and probability
        at every window against ONNX Runtime on the window windows.py cuts
        there."""
        if not info["features"] or ort is None or self.windows() is None:
            return
        W = self.windows()
        for label, ticks in (("fixture", FIXTURE), ("real", self.real_ticks())):
            if ticks is None:
                continue
            r = subprocess.run(
                [self.exe, "replay", "--ticks", ticks, "--model", path,
                 "--model-threshold", "0", "--signal-cooldown", "0", "--quiet",
                 "--format", "jsonl"], capture_output=True, text=True)
            if r.returncode != 0:
                raise Refused(engine_message(r.stderr, path))
            sigs = [s for s in map(json.loads, r.stdout.splitlines())
                    if s["pattern"].startswith("model:")]
            df = self.frame(ticks)
            w = W.cut_windows(df, info["features"], window=info["window"])
            order = np.argsort(w.row, kind="stable")
            rows = w.row[order]
            problems = []
            if len(sigs) != len(rows):
                problems.append(f"{len(sigs)} model signals for {len(rows)} windows")
            else:
                ts = df["ts"].to_numpy()[rows]
                sym = df["symbol"].to_numpy()[rows]
                bad = [i for i, s in enumerate(sigs)
                       if s["ts"] != ts[i] or s["symbol"] != sym[i]]
                if bad:
                    problems.append(f"signal {bad[0]} is at {sigs[bad[0]]['ts']} "
                                    f"{sigs[bad[0]]['symbol']}, its window ends "
                                    f"at {ts[bad[0]]} {sym[bad[0]]}")
            if problems:
                out.append(f"FAIL {key} [engine {label}]: {'; '.join(problems)}")
                continue
            x = to_layout(w.x[order], info["layout"])
            p = softmax64(self.ort(path, x))[:, 1:]   # the engine never signals class 0
            conf = np.array([s["confidence"] for s in sigs])
            cls = np.array([info["classes"].index(s["pattern"][6:]) - 1 for s in sigs])
            d = float(np.max(np.abs(conf - p.max(axis=1))))
            top2 = np.sort(p, axis=1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 2 * TOL
            wrong = int(np.sum(clear & (cls != p.argmax(axis=1))))
            ok = d <= TOL and wrong == 0
            out.append(f"{'ok  ' if ok else 'FAIL'} {key} [engine {label} "
                       f"x{len(sigs)}]: max abs diff of the probability {d:.3g}, "
                       f"{wrong} windows of another class")


def read_refusals():
    expected = {}
    if os.path.exists(REFUSALS):
        for line in open(REFUSALS, encoding="utf-8"):
            if line.strip() and not line.startswith("#"):
                key, msg = line.rstrip("\n").split("\t", 1)
                expected[key] = msg
    return expected


def write_refusals(refused):
    with open(REFUSALS, "w", encoding="utf-8") as f:
        f.write("# Zoo models the engine refuses today, one per line:\n"
                "# NAME.EXPORTER STAGE<TAB>the engine's message (less its list "
                "of supported ops).\n"
                "# STAGE infer: pattern-engine infer; engine: replay --model.\n"
                "# tests/test_zoo.py fails for a refusal not listed here, and "
                "for a listed one\n# that now loads or says something else. "
                "Regenerate with\n#   tests/test_zoo.py BUILD_DIR "
                "--update-refusals\n")
        for key in sorted(refused):
            f.write(f"{key}\t{refused[key]}\n")


def large_zoo(tmp):
    """Builds models/zoo.py --set large into tmp when PyTorch is there;
    returns (manifest, folder) or None."""
    py = os.environ.get("PE_ZOO_PYTHON", sys.executable)
    probe = subprocess.run([py, "-c", "import torch, onnx, onnxscript, onnxruntime"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["?"])[-1]
        print(f"SKIP large zoo models (models/zoo.py --set large): no PyTorch "
              f"in {py} ({why}); set PE_ZOO_PYTHON to a Python with torch, "
              f"onnx, onnxscript and onnxruntime to build and check them")
        return None
    out = os.path.join(tmp, "zoo-large")
    r = subprocess.run([py, os.path.join(ROOT, "models", "zoo.py"), "--set",
                        "large", "--out", out], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:] + r.stderr[-3000:])
        raise RuntimeError("models/zoo.py --set large failed")
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f), out


class Verdicts:
    """Holds the refusal list against what the engine does: every stage
    tried, the refusals seen, one summary line per stage."""

    def __init__(self, expected, update):
        self.expected, self.update = expected, update
        self.refused, self.seen, self.summary = {}, set(), []

    def judge(self, k, got):
        """Whether stage k's outcome (got: the refusal, or None when it
        loaded) agrees with the list; prints why not."""
        want = self.expected.get(k)
        listed = os.path.relpath(REFUSALS, ROOT)
        if got is not None:
            self.refused[k] = got
            self.summary.append(f"  {k:32} refused: {got}")
        if self.update or got == want:
            if got is not None:
                print(f"refused (listed) {k}: {got}")
            return True
        if got is None:
            print(f"FAIL {k}: loads now; remove it from {listed}")
        elif want is None:
            print(f"FAIL {k}: refused: {got}")
        else:
            print(f"FAIL {k}: refused with another message than {listed}'s:"
                  f"\n  now:  {got}\n  list: {want}")
        return False

    def check_export(self, chk, key, info, exp, path):
        """Both stages of one exported file; True when all agree."""
        ok = True
        stages = (("infer", lambda out: chk.check_infer(key, info, exp, path, out)),
                  ("engine", lambda out: chk.check_engine(key, info, path, out)))
        for stage, run in stages:
            k = f"{key} {stage}"
            self.seen.add(k)
            out, got = [], None
            try:
                run(out)
            except Refused as e:
                got = str(e)
            except Exception as e:  # report it for this file and go on
                out.append(f"FAIL {k}: {type(e).__name__}: {e}")
            for line in out:
                print(line)
            numbers = not any(line.startswith("FAIL") for line in out)
            ok &= self.judge(k, got) and numbers
            if got is not None:
                break  # refused by infer: the engine's loader says the same
            self.summary.append(f"  {k:32} loads, numbers "
                                f"{'match' if numbers else 'WRONG'}")
        return ok

    def stale(self):
        """Listed stages of models that were checked and not tried (a large
        model's lines stand while it is not built)."""
        built = {k.split(".")[0] for k in self.seen}
        return sorted(k for k in self.expected if k not in self.seen and
                      (k.split(".")[0] in built or k.split(".")[0] not in LARGE))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    update = "--update-refusals" in sys.argv[1:]
    if not args:
        print(__doc__.splitlines()[3])
        return 2
    exe = os.path.join(args[0], "pattern-engine")
    only = set(args[1:])
    with open(os.path.join(ZOO, "manifest.json")) as f:
        manifest = json.load(f)
    v = Verdicts(read_refusals(), update)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        sets = [(manifest, ZOO)]
        large = large_zoo(tmp) if not only else None
        if large is not None:
            sets.append(large)
        chk = Checker(exe, tmp)
        for man, folder in sets:
            for name, info in man["models"].items():
                for exporter, exp in info["exports"].items():
                    key = f"{name}.{exporter}"
                    if only and key not in only:
                        continue
                    if "unexportable" in exp:
                        print(f"note {key}: not in the zoo, PyTorch cannot "
                              f"export it: {exp['unexportable']}")
                        continue
                    if folder != ZOO:  # made at test time: its own vectors
                        info = dict(info, inputs=os.path.join(folder, info["inputs"]))
                        exp = dict(exp, outputs=os.path.join(folder, exp["outputs"]))
                    ok = v.check_export(chk, key, info, exp,
                                        os.path.join(folder, exp["model"]))
                    passed += ok
                    failed += not ok
    if not only and not update:
        for k in v.stale():
            print(f"FAIL {k}: listed in {os.path.relpath(REFUSALS, ROOT)} "
                  f"but not in the zoo")
            failed += 1
    if update:
        refused = v.refused
        if only:  # keep the lines of the models not tried
            refused = {**{k: m for k, m in v.expected.items() if k not in v.seen},
                       **refused}
        write_refusals(refused)
        print(f"wrote {len(refused)} refusals to {REFUSALS}")
    loads = sum("loads" in line for line in v.summary)
    print(f"zoo summary ({loads} stages load, {len(v.refused)} refused):")
    print("\n".join(v.summary))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
