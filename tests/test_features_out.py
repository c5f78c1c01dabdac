"""`replay --features-out`: CSV rows and .npy arrays.

- The CSV rows are the same bytes whatever --features-threads is (0, 1, 3, 8).
- A PATH.npy output loads with numpy.load as one C-order float64 array of
  rows x columns, its columns named in PATH.columns.txt and its symbols in
  PATH.symbols.csv; every value is bit for bit the one the CSV row holds
  (read back with Python's float(), not our parser), with ts = ts_s * 10^9 +
  ts_ns and the symbol by its index. Threads give the same file.
- With threads the symbols are split between engines: on ticks with rows
  of every kind of rejection (out of order ones among them), across many
  windows of rows, the features (CSV and .npy), signals, rejected rows and
  summary counts are those of threads 0, also written in order to an
  appended standard output; /dev/full fails the run as with threads 0.
- A .npy path that cannot be seeked (a FIFO with a reader) is refused with
  a message saying why; one that refuses writes (a link to /dev/full) fails
  the run with exit status 1, the reason, and no files beside it.

Usage: test_features_out.py ENGINE FIXTURE   (numpy, from the project's .venv)
"""
import math
import os
import shutil
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


def messy_ticks(path, n=120000, n_sym=37, seed=7):
    """Ticks over n_sym symbols, one in 50 a step back in time (rejected as
    out of order unless it is its symbol's first), and a bad row of each
    kind now and then."""
    import random
    rnd = random.Random(seed)
    bad = ["{ts},SYM1,-1,1", "{ts},SYM2,1,nan", "{ts},,1,1", "{ts}," + "L" * 40 + ",1,1",
           "{ts},SYM3,1", "x{ts},SYM4,1,1", '{ts},"a,b",2,1']
    ts = 1_700_000_000_000_000_000
    with open(path, "w") as f:
        f.write("ts,symbol,price,volume\n")
        for i in range(n):
            ts += rnd.randrange(0, 3000)
            t = ts - 10**7 if rnd.random() < 0.02 else ts
            if rnd.random() < 0.001:
                f.write(bad[rnd.randrange(len(bad))].format(ts=t) + "\n")
                continue
            sym = f"S{rnd.randrange(n_sym)}"
            f.write(f"{t},{sym},{100 + rnd.gauss(0, 1):.4f},{rnd.randrange(1, 500)}\n")


def test_split_engines_same_outputs():
    ticks = tmp("messy.csv")
    messy_ticks(ticks)
    def run(n, ext):
        p = subprocess.run([ENGINE, "replay", "--ticks", ticks, "--quiet",
                            "--out", tmp(f"s{n}{ext}.csv"), "--rejects", tmp(f"r{n}{ext}.csv"),
                            "--summary-json", tmp(f"j{n}{ext}.json"),
                            "--features-out", tmp(f"m{n}.{ext}"), "--features-threads", str(n)],
                           capture_output=True, text=True)
        check(p.returncode == 0, f"threads {n} {ext}: exit {p.returncode}: {p.stderr}")
        # The blocks allocated ahead of the writes past the end are given
        # back: the file holds about its size, not what was reserved.
        st = os.stat(tmp(f"m{n}.{ext}"))
        check(st.st_blocks * 512 <= st.st_size + (64 << 10),
              f"threads {n} {ext}: {st.st_blocks * 512} bytes allocated for {st.st_size}")
        import json
        j = json.load(open(tmp(f"j{n}{ext}.json")))
        for k in ("wall_s", "latency_ns", "latency_timed"):
            j.pop(k)
        return [open(tmp(name), "rb").read() for name in
                (f"m{n}.{ext}", f"s{n}{ext}.csv", f"r{n}{ext}.csv")], j
    for ext in ("csv", "npy"):
        ref, jref = run(0, ext)
        check(jref["rejected"]["out_of_order"] > 1000 and jref["rejected_total"] >
              jref["rejected"]["out_of_order"] and sum(jref["signals"].values()) > 0,
              f"the input has rejections of several kinds and signals: {jref}")
        for n in (1, 3, 8):
            got, j = run(n, ext)
            for what, a, b in zip(("features", "signals", "rejects"), ref, got):
                check(a == b, f"threads {n}: {ext} {what} differ from threads 0")
            check(j == jref, f"threads {n}: summary {j} differs from {jref}")
    # Standard input (read, not mapped: the rows are admitted on the
    # parser's thread) gives the same rows.
    with open(ticks, "rb") as f:
        p = subprocess.run([ENGINE, "replay", "--ticks", "-", "--quiet", "--out", os.devnull,
                            "--features-out", tmp("in3.csv"), "--features-threads", "3"], stdin=f)
    check(p.returncode == 0 and open(tmp("in3.csv"), "rb").read() == open(tmp("m0.csv"), "rb").read(),
          f"ticks from standard input, threads 3: exit {p.returncode} or rows differ")
    # Standard output opened for appending takes the rows in order.
    for n in (0, 3):
        with open(tmp(f"app{n}.csv"), "w") as f:
            f.write("before\n")
        with open(tmp(f"app{n}.csv"), "a") as f:
            p = subprocess.run([ENGINE, "replay", "--ticks", ticks, "--quiet", "--out", os.devnull,
                                "--features-out", "-", "--features-threads", str(n)], stdout=f)
        check(p.returncode == 0, f"appended stdout, threads {n}: exit {p.returncode}")
    check(open(tmp("app0.csv"), "rb").read() == open(tmp("app3.csv"), "rb").read(),
          "appended standard output differs with threads")
    check(open(tmp("app0.csv"), "rb").read() == b"before\n" + open(tmp("m0.csv"), "rb").read(),
          "appended standard output is not the file's rows after what was there")
    if os.access("/dev/full", os.W_OK):
        for n in (0, 3):
            rc, err = replay("--features-out", "/dev/full", "--features-threads", str(n))
            check(rc == 1 and "cannot write features to '/dev/full'" in err and
                  os.strerror(28) in err, f"/dev/full, threads {n}: exit {rc}: {err}")


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


def test_split_summary_says_where_the_time_went():
    # The summary of a split run has the threads' times, each a number of
    # seconds; a run on one thread has none.
    for n, ext in ((3, "csv"), (2, "npy"), (0, "csv")):
        p = subprocess.run([ENGINE, "replay", "--ticks", FIXTURE, "--out", os.devnull,
                            "--features-out", tmp(f"sum{n}.{ext}"), "--features-threads", str(n)],
                           capture_output=True, text=True)
        check(p.returncode == 0, f"summary, threads {n}: exit {p.returncode}: {p.stderr}")
        lines = [ln for ln in p.stderr.splitlines() + p.stdout.splitlines()
                 if ln.startswith("  threads ") or " engines " in ln]
        if n == 0:
            check(lines == [], f"threads 0: no threads' times expected: {lines}")
            continue
        text = " ".join(lines)
        check(len(lines) == 2 and f" {n} engines " in text and "parse " in text and
              "admit " in text and "waiting" in text,
              f"threads {n}: the threads' times: {lines}")
        secs = [float(w) for w in text.replace("(", " ").split() if w[:1].isdigit() and "." in w]
        check(len(secs) == 12 and all(x >= 0 and math.isfinite(x) for x in secs),
              f"threads {n}: twelve times in seconds: {secs}")


for t in (test_csv_same_bytes_whatever_the_threads, test_npy_equals_csv,
          test_split_engines_same_outputs, test_split_summary_says_where_the_time_went,
          test_npy_needs_a_seekable_path, test_npy_write_failure):
    before = len(failures)
    t()
    print("ok  " if len(failures) == before else "FAIL", t.__name__)
shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if failures else 0)
