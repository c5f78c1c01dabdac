"""Hostile and careless input to `pattern-engine replay`: values that are
not finite, timestamps at the edge of int64, NUL bytes in symbols, outputs
that are devices, FIFOs, symlinks or the input itself, an input truncated
underneath, RFC 4180 quoting, cut last lines. docs/security.md says what
the engine guarantees for each class; each test here checks one promise.

Usage: python3 tests/test_cli_hostile.py ENGINE   (standard library only)
"""
import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

ENGINE = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="pe-hostile-")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, stdin=None, timeout=60):
    p = subprocess.run([ENGINE, *args], input=stdin, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def tmp(name):
    return os.path.join(TMP, name)


def write(name, data):
    path = tmp(name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def strict_json(line):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def bad(name):
        raise ValueError("not JSON: " + name)
    return json.loads(line, parse_constant=bad)


HEADER = "ts,symbol,price,volume\n"


# ---- values that are not finite -------------------------------------------

def test_subnormal_prices_make_no_inf_or_nan():
    """Finite (subnormal) prices and sizes: valid JSON out, no inf or nan in
    any signal, and the features file spells what is undefined as nan."""
    rows = HEADER + ("1704205800000000000,INF,1e-320,1e-10\n"
                     "1704205801000000000,INF,1e-300,1\n"
                     "1704205802000000000,INF,1e300,0\n"
                     "1704205803000000000,INF,1e-310,1e300\n"
                     "1704205804000000000,INF,1e300,1e-300\n")
    for fmt in ("jsonl", "csv"):
        rc, out, err = run("replay", "--format", fmt, "--quiet",
                           "--features-out", tmp("feat.csv"),
                           stdin=rows.encode())
        check(rc == 0, f"{fmt}: subnormal rows replay (rc {rc}: {err})")
        text = out.decode()
        check("inf" not in text.replace("INF", "") and "nan" not in text,
              f"{fmt}: no inf or nan in signals: {text!r}")
        if fmt == "jsonl":
            for line in text.splitlines():
                try:
                    strict_json(line)
                except ValueError as e:
                    check(False, f"signal is not JSON ({e}): {line}")
        feats = open(tmp("feat.csv")).read().splitlines()
        check(len(feats) == 6, f"{fmt}: a feature row per tick")
        for row in feats[1:]:
            cells = row.split(",")
            check(all(c not in ("inf", "-inf") for c in cells),
                  f"features spell every undefined value nan: {row}")


# ---- timestamps at the edge of int64 --------------------------------------

def features(path, *extra):
    rc, out, err = run("replay", "--ticks", path, "--quiet", "--out",
                       os.devnull, "--features-out", tmp("edge_feat.csv"),
                       *extra)
    rows = []
    if os.path.exists(tmp("edge_feat.csv")):
        rows = list(csv.DictReader(open(tmp("edge_feat.csv"))))
        os.unlink(tmp("edge_feat.csv"))
    return rc, rows, err


def test_timestamps_at_the_int64_edges():
    """The cumulative VWAP does not reset at INT64_MAX (the mean of every
    tick), a session VWAP near 2262 keeps its session, and a sanitizer build
    reports no overflow (any runtime error fails the run)."""
    path = write("edge.csv", HEADER +
                 "-9223372036854775807,A,100,1\n"
                 "9223372036854775000,A,100,1\n"
                 "9223372036854775807,A,200,1\n"
                 "9223372036854775807,A,300,2\n")
    rc, rows, err = features(path, "--ts-unit", "ns")
    check(rc == 0 and "runtime error" not in err,
          f"edge timestamps replay cleanly (rc {rc}: {err})")
    vwaps = [float(r["vwap"]) for r in rows]
    check(vwaps == [100.0, 100.0, 400.0 / 3, 1000.0 / 5],
          f"cumulative VWAP never resets: {vwaps}")
    check(all(r["log_dt"] != "nan" for r in rows[1:]),
          "the time step of each later tick is defined")
    # Sessions at 13:30 UTC: the last ISO second int64 holds, 23:47:15 on
    # 2262-04-11, is in the session that began at 13:30 that day.
    path = write("edge_iso.csv", HEADER +
                 "2262-04-11T13:00:00Z,B,10,1\n"
                 "2262-04-11T14:00:00Z,B,20,1\n"
                 "2262-04-11T23:47:15.999999999Z,B,40,1\n")
    rc, rows, err = features(path, "--session-reset", "13:30")
    check(rc == 0 and "runtime error" not in err,
          f"ISO times in 2262 replay cleanly (rc {rc}: {err})")
    vwaps = [float(r["vwap"]) for r in rows]
    check(vwaps == [10.0, 20.0, 30.0], f"session VWAP near 2262: {vwaps}")


# ---- NUL bytes in symbols -------------------------------------------------

def test_nul_in_a_symbol_is_a_reject():
    """A\\0B and A\\0C are not A: each is rejected as symbol_nul, counted and
    recorded, and only A makes a symbol and signals."""
    rows = HEADER.encode()
    for i in range(40):
        for sym in (b"A\0B", b"A\0C", b"A"):
            price = 100 + (i % 7) * 3 + (sym == b"A\0C") * 50
            rows += b"%d,%s,%d,%d\n" % (1704205800 + i, sym, price, 1 + i % 5)
    path = write("nul.csv", rows)
    rc, out, err = run("replay", "--ticks", path, "--quiet", "--out",
                       tmp("nul_sig.csv"), "--rejects", tmp("nul_rej.csv"),
                       "--summary-json", tmp("nul_sum.json"))
    check(rc == 0, f"NUL symbols replay (rc {rc}: {err})")
    summary = json.load(open(tmp("nul_sum.json")))
    check(summary["symbols"] == 1, f"one symbol, got {summary['symbols']}")
    check(summary["rejected"].get("symbol_nul") == 80,
          f"80 symbol_nul rejects: {summary['rejected']}")
    check(summary["accepted"] == 40, f"40 accepted: {summary['accepted']}")
    rej = list(csv.reader(open(tmp("nul_rej.csv"), newline="")))
    check(len(rej) == 81 and all(r[1] == "symbol_nul" for r in rej[1:]),
          "each NUL row is recorded as symbol_nul")
    ids = [r[0] for r in csv.reader(open(tmp("nul_sig.csv")))][1:]
    check(len(ids) == len(set(ids)), f"signal ids are unique: {ids}")


# ---- outputs: the input itself, devices, FIFOs, links ----------------------

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "fixtures", "sample_ticks.csv")
OUTPUT_FLAGS = ["--out", "--features-out", "--rejects", "--state-out",
                "--summary-json"]


def test_an_output_that_is_the_input_is_refused():
    """Refused before anything is truncated: the same file by its name, by a
    link, as standard input, and as standard output."""
    data = open(FIXTURE, "rb").read()
    path = write("self.csv", data)
    link = tmp("self_link.csv")
    os.symlink(path, link)
    for flag in OUTPUT_FLAGS:
        for out in (path, link):
            rc, _, err = run("replay", "--ticks", path, flag, out, "--quiet")
            check(rc != 0 and "is both the input" in err,
                  f"replay --ticks F {flag} {out}: refused ({rc}: {err})")
            check(open(path, "rb").read() == data,
                  f"{flag} {out}: the input is intact")
    with open(path, "rb") as f:
        p = subprocess.run([ENGINE, "replay", "--out", path, "--quiet"],
                           stdin=f, capture_output=True)
    check(p.returncode != 0 and b"is both the input" in p.stderr,
          f"stdin and --out one file: refused ({p.stderr!r})")
    with open(path, "ab") as f:
        p = subprocess.run([ENGINE, "replay", "--ticks", path, "--quiet"],
                           stdout=f, stderr=subprocess.PIPE)
    check(p.returncode != 0 and open(path, "rb").read() == data,
          "standard output appended to the input: refused")
    rc, _, err = run("replay", "--ticks", path, "--out", tmp("two.csv"),
                     "--rejects", tmp("two.csv"), "--quiet")
    check(rc != 0 and "is both" in err, f"two outputs, one file: {err}")


def test_input_truncated_underneath_is_an_error():
    """The input shrinks while replay reads it (held at a full FIFO): an
    error naming the file, exit 1, never SIGBUS. replay maps a regular
    file, so the cut is met as SIGBUS and handled; the signals output
    written before the cut keeps its old content."""
    rows = [HEADER]
    for i in range(300000):
        rows.append(f"{1704205800000 + i},S{i % 50},{100 + i % 13},1\n")
    path = write("shrink.csv", "".join(rows))
    signals = write("shrink_signals.csv", "old\n")
    fifo = tmp("shrink.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    proc = subprocess.Popen([ENGINE, "replay", "--ticks", path, "--quiet",
                             "--read-size", "65536", "--out", signals,
                             "--features-out", fifo],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # the FIFO fills, the replay waits on it
    os.truncate(path, 1000)
    os.set_blocking(reader, True)
    drained = threading.Thread(target=lambda: [None for _ in iter(
        lambda: os.read(reader, 65536), b"")])
    drained.start()
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "timeout"
    drained.join(timeout=10)
    os.close(reader)
    err = proc.stderr.read().decode()
    check(rc == 1 and "truncated while it was read" in err and path in err,
          f"a shrunk input is an error (rc {rc}: {err})")
    check(open(signals).read() == "old\n",
          "a shrunk input leaves the signals output as it was")
    # Standard input read from the middle of a file is not a shrunk file.
    path = write("middle.csv", "".join(rows[:1000]))
    fd = os.open(path, os.O_RDONLY)
    os.lseek(fd, len(rows[0]) + len(rows[1]), os.SEEK_SET)  # read already
    p = subprocess.run([ENGINE, "replay", "--quiet", "--out", os.devnull,
                        "--summary-json", tmp("middle.json")],
                       stdin=fd, stderr=subprocess.PIPE)
    os.close(fd)
    check(p.returncode == 0 and
          json.load(open(tmp("middle.json")))["rows"] == 998,
          f"stdin from the middle of a file ({p.stderr!r})")


def test_state_and_outputs_to_devices_fifos_links():
    path = write("small.csv", open(FIXTURE, "rb").read())
    # A device is written in place, never replaced.
    rc, _, err = run("replay", "--ticks", path, "--quiet", "--out", os.devnull,
                     "--state-out", os.devnull, "--summary-json", os.devnull)
    check(rc == 0 and stat.S_ISCHR(os.stat(os.devnull).st_mode),
          f"/dev/null stays a device ({rc}: {err})")
    # A link is followed: its target gets the file, the link stays a link.
    for flag in OUTPUT_FLAGS:
        target = tmp("target" + flag)
        link = tmp("link" + flag)
        open(target, "w").write("old")
        os.symlink(os.path.basename(target), link)  # relative
        rc, _, err = run("replay", "--ticks", path, "--quiet", flag, link)
        body = open(target, "rb").read()
        check(rc == 0 and os.path.islink(link) and body != b"old"
              and len(body) > 10,
              f"{flag} through a link writes its target ({rc}: {err})")
        dangling = tmp("dangling" + flag)
        os.symlink(tmp("nowhere" + flag), dangling)
        rc, _, err = run("replay", "--ticks", path, "--quiet", flag, dangling)
        check(rc == 1 and "does not exist" in err
              and not os.path.exists(tmp("nowhere" + flag)),
              f"{flag} to a dangling link is refused ({rc}: {err})")
    # /dev/stdout is a /proc link that no path resolves (pipe:[N]): written
    # in place, to a pipe and to a file alike.
    rc, out, err = run("replay", "--ticks", path, "--quiet", "--out",
                       "/dev/stdout")
    check(rc == 0 and out.startswith(b"id,ts,symbol"),
          f"--out /dev/stdout into a pipe ({rc}: {err})")
    with open(tmp("stdout.csv"), "wb") as f:
        p = subprocess.run([ENGINE, "replay", "--ticks", path, "--quiet",
                            "--out", "/dev/stdout"], stdout=f,
                           stderr=subprocess.PIPE)
    check(p.returncode == 0 and
          open(tmp("stdout.csv"), "rb").read() == out,
          f"--out /dev/stdout into a file ({p.stderr!r})")
    rc, _, err = run("replay", "--ticks", path, "--quiet", "--state-out", TMP)
    check(rc == 1 and "directory" in err, f"a folder is refused: {err}")
    # A FIFO nobody reads: refused at once, not a wait.
    fifo = tmp("state.fifo")
    os.mkfifo(fifo)
    for flag in OUTPUT_FLAGS:
        try:
            rc, _, err = run("replay", "--ticks", path, "--quiet", flag, fifo,
                             timeout=20)
        except subprocess.TimeoutExpired:
            rc, err = "timeout", ""
        check(rc == 1 and "no reader" in err,
              f"{flag} to a FIFO without a reader fails fast ({rc}: {err})")
    # A FIFO with a reader gets the state in place.
    got = []
    def read_fifo():
        with open(fifo, "rb") as f:
            got.append(f.read())
    t = threading.Thread(target=read_fifo)
    t.start()
    time.sleep(0.2)
    rc, _, err = run("replay", "--ticks", path, "--quiet", "--state-out",
                     fifo, "--out", os.devnull, timeout=20)
    t.join(timeout=20)
    check(rc == 0 and got and got[0][:6] == b"PESNAP"
          and stat.S_ISFIFO(os.stat(fifo).st_mode),
          f"the state through a FIFO ({rc}: {err})")


def test_summary_to_a_full_device_fails_with_a_message():
    if not os.path.exists("/dev/full"):
        return
    path = write("small2.csv", open(FIXTURE, "rb").read())
    rc, _, err = run("replay", "--ticks", path, "--quiet", "--out", os.devnull,
                     "--summary-json", "/dev/full")
    check(rc == 1 and "/dev/full" in err and "No space" in err,
          f"--summary-json /dev/full: exit 1 with a message ({rc}: {err})")


# ---- RFC 4180 quoting, and a last line cut on a pipe -------------------------

def test_quoted_fields_and_cut_last_lines():
    """"A""B" is the symbol A"B (and a CSV reader reads it back from the
    features file); a quoted field may hold commas and line breaks; each
    rejects record, raw lines with quotes, commas and breaks included, has
    three columns; from a pipe, a last line without LF is a tick when its
    fields parse, and a reject when cut inside quotes or short of fields."""
    rows = (HEADER + '1704205800,"A""B",100,1\n'
            '1704205801,"C,D",101,1\n'
            '1704205802,"E\nF",102,1\n'
            '1704205803,"G"x,103,1\n'
            '1704205804,"H,I",104,1')
    rc, out, err = run("replay", "--quiet", "--out", os.devnull,
                       "--features-out", tmp("q_feat.csv"), "--rejects",
                       tmp("q_rej.csv"), stdin=rows.encode())
    check(rc == 0, f"quoted rows replay ({rc}: {err})")
    feats = list(csv.DictReader(open(tmp("q_feat.csv"), newline="")))
    check([r["symbol"] for r in feats] == ['A"B', "C,D", "E\nF", "H,I"],
          f"quoted symbols read back: {[r['symbol'] for r in feats]}")
    rej = list(csv.reader(open(tmp("q_rej.csv"), newline="")))
    check(rej == [["line", "reason", "raw"],
                  ["6", "bad_quoting", '1704205803,"G"x,103,1']],
          f"rejects records: {rej}")
    for cut, reason in (('1704205805,"J', "bad_quoting"),
                        ("1704205805,J,105", "field_count"),
                        ('1704205805,"J\n,1', "bad_quoting")):
        rc, out, err = run("replay", "--quiet", "--out", os.devnull,
                           "--rejects", tmp("cut_rej.csv"),
                           stdin=(HEADER + "1704205800,A,100,1\n" + cut)
                           .encode())
        rej = list(csv.reader(open(tmp("cut_rej.csv"), newline="")))
        check(rc == 0 and len(rej) == 2 and rej[1][1] == reason
              and rej[1][2] == cut, f"cut last line {cut!r}: {rej} {err}")


def main():
    tests = [v for k, v in sorted(globals().items())
             if k.startswith("test_") and callable(v)]
    for t in tests:
        try:
            t()
        except Exception as e:  # a crash of the test is a failure too
            check(False, f"{t.__name__} raised {type(e).__name__}: {e}")
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print(f"{len(tests)} tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
