"""`replay --features-out`: CSV rows and .npy arrays.

- The CSV rows are the same bytes whatever --features-threads is (0, 1, 3, 8).
- A PATH.npy output loads with numpy.load as one C-order float64 array of
  rows x columns, its columns named in PATH.columns.txt and its symbols in
  PATH.symbols.csv; every value is bit for bit the one the CSV row holds
  (read back with Python's float(), not our parser), with ts = ts_s * 10^9 +
  ts_ns and the symbol by its index. Threads give the same file.
- A .npy path that cannot be seeked (a FIFO with a reader) is refused with
  a message saying why; one that refuses writes (a link to /dev/full) fails
  the run with exit status 1, the reason, and no files beside it.

Usage: test_features_out.py ENGINE FIXTURE   (numpy, from the project's .venv)
"""
import math
import os
import stat
import subprocess
import sys
import tempfile

import numpy as np

ENGINE, FIXTURE = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="pe-features-out-")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def replay(*args):
    p = subprocess.run([ENGINE, "replay", "--ticks", FIXTURE, "--out", os.devnull,
                        "--quiet", *args], capture_output=True, text=True)
    return p.returncode, p.stderr


def tmp(name):
    return os.path.join(TMP, name)


def test_csv_same_bytes_whatever_the_threads():
    ref = None
    for n in (0, 1, 3, 8):
        rc, err = replay("--features-out", tmp(f"t{n}.csv"), "--features-threads", str(n))
        check(rc == 0, f"threads {n}: exit {rc}: {err}")
        data = open(tmp(f"t{n}.csv"), "rb").read()
        ref = data if ref is None else ref
        check(data == ref, f"threads {n}: CSV differs from threads 0")
    check(ref.count(b"\n") == 24765 + 1, "one row per accepted tick and a header")


def test_npy_equals_csv():
    rc, err = replay("--features-out", tmp("f.csv"), "--features-threads", "0")
    check(rc == 0, f"csv: {err}")
    for n in (0, 2):
        rc, err = replay("--features-out", tmp(f"f{n}.npy"), "--features-threads", str(n))
        check(rc == 0, f"npy threads {n}: exit {rc}: {err}")
    check(open(tmp("f0.npy"), "rb").read() == open(tmp("f2.npy"), "rb").read(),
          ".npy differs with threads")
    a = np.load(tmp("f0.npy"))
    cols = open(tmp("f0.columns.txt")).read().split("\n")[:-1]
    lines = open(tmp("f0.symbols.csv")).read().split("\n")[:-1]
    check(lines[0] == "index,symbol", "symbols header")
    symbols = {int(i): s for i, s in (ln.split(",", 1) for ln in lines[1:])}
    with open(tmp("f.csv")) as f:
        header = f.readline().rstrip("\n").split(",")
        rows = [ln.rstrip("\n").split(",") for ln in f]
    check(a.dtype == np.float64 and a.flags["C_CONTIGUOUS"], "float64, C order")
    check(a.shape == (len(rows), len(cols)), f"shape {a.shape}, {len(rows)} rows, {len(cols)} columns")
    check(cols[:3] == ["ts_s", "ts_ns", "symbol"] and cols[3:] == header[2:],
          f"columns {cols}")
    bad = 0
    for i, r in enumerate(rows):
        v = a[i]
        ts = int(v[0]) * 10**9 + int(v[1])
        ok = ts == int(r[0]) and 0 <= v[1] < 1e9 and symbols[int(v[2])] == r[1]
        for text, x in zip(r[2:], v[3:]):
            want = float(text)
            ok = ok and (math.isnan(want) and math.isnan(x) or
                         np.float64(want).tobytes() == np.float64(x).tobytes())
        if not ok:
            bad += 1
            if bad < 5:
                print("row", i, r, v)
    check(bad == 0, f"{bad} rows of the .npy differ from the CSV")


def test_npy_needs_a_seekable_path():
    fifo = tmp("fifo.npy")
    os.mkfifo(fifo)
    # A reader holds it open, so the writer can open it, then refuses it.
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    rc, err = replay("--features-out", fifo)
    os.close(rfd)
    check(rc != 0 and "seek" in err and fifo in err, f"FIFO: exit {rc}: {err}")
    check(not os.path.exists(tmp("fifo.columns.txt")), "FIFO: a columns file was written")


def test_npy_write_failure():
    if not os.access("/dev/full", os.W_OK):
        print("skip: no /dev/full")
        return
    link = tmp("full.npy")
    os.symlink("/dev/full", link)
    rc, err = replay("--features-out", link)
    check(rc == 1 and os.strerror(28) in err and "features" in err,
          f"/dev/full: exit {rc}: {err}")
    check(not os.path.exists(tmp("full.columns.txt")) and
          not os.path.exists(tmp("full.symbols.csv")), "/dev/full: files beside it were written")
    check(stat.S_ISLNK(os.lstat(link).st_mode), "the link is left a link")


for t in (test_csv_same_bytes_whatever_the_threads, test_npy_equals_csv,
          test_npy_needs_a_seekable_path, test_npy_write_failure):
    before = len(failures)
    t()
    print("ok  " if len(failures) == before else "FAIL", t.__name__)
sys.exit(1 if failures else 0)
