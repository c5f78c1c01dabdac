"""End-to-end tests of `pattern-engine replay`: the bad-input corpus with
exact counts and line numbers, both --on-error modes, file-level errors,
and byte-identical outputs whatever the chunking or the run.

Usage: python3 tests/test_cli_replay.py ENGINE   (standard library only)
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENGINE = os.path.abspath(sys.argv[1])
CORPUS = os.path.join(HERE, "bad_input", "bad_rows.csv")
FIXTURE = os.path.join(ROOT, "fixtures", "sample_ticks.csv")
TMP = tempfile.mkdtemp(prefix="pe-cli-")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, stdin=None):
    p = subprocess.run([ENGINE, *args], input=stdin, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def tmp(name):
    return os.path.join(TMP, name)


# Line numbers and reasons of the corpus, one entry per bad row. Line 23 is
# blank (skipped, not a row); lines 2, 3, 20, 24 and 25 are good.
EXPECTED_REJECTS = [
    (4, "field_count"), (5, "field_count"), (6, "bad_number"),
    (7, "bad_number"), (8, "bad_timestamp"), (9, "bad_timestamp"),
    (10, "bad_price"), (11, "bad_price"), (12, "bad_price"),
    (13, "bad_price"), (14, "bad_volume"), (15, "bad_volume"),
    (16, "empty_symbol"), (17, "empty_symbol"), (18, "symbol_too_long"),
    (19, "out_of_order"), (21, "out_of_order"), (22, "line_too_long"),
]


def test_corpus_skip_mode():
    rc, out, err = run("replay", "--ticks", CORPUS, "--rejects", tmp("rej.csv"),
                       "--summary-json", tmp("sum.json"), "--out", tmp("sig.csv"))
    check(rc == 0, f"skip mode exits 0 (got {rc}: {err})")
    summary = json.load(open(tmp("sum.json")))
    check(summary["rows"] == 23, f"23 rows, got {summary['rows']}")
    check(summary["accepted"] == 5, f"5 accepted, got {summary['accepted']}")
    counts = {}
    for _, reason in EXPECTED_REJECTS:
        counts[reason] = counts.get(reason, 0) + 1
    for reason, n in summary["rejected"].items():
        check(n == counts.get(reason, 0),
              f"{reason}: {n} rejected, expected {counts.get(reason, 0)}")
    check(set(counts) <= set(summary["rejected"]), "every reason is counted")
    records = list(csv.reader(open(tmp("rej.csv"), newline="")))
    check(records[0] == ["line", "reason", "raw"], "rejects header")
    check(all(len(r) == 3 for r in records),
          "every rejects record has the header's three columns")
    got = [(int(r[0]), r[1]) for r in records[1:]]
    check(got == EXPECTED_REJECTS, f"reject lines and reasons: {got}")
    raw_rows = open(CORPUS).read().split("\n")
    for no, reason, raw in records[1:]:
        want = raw_rows[int(no) - 1]
        if reason == "line_too_long":
            want = want[:4096]
        check(raw == want, f"line {no}: raw line recorded as read")
    check("out_of_order 2" in err and "bad_price 4" in err,
          "the summary on stderr counts by reason")


def test_corpus_fail_mode():
    rc, out, err = run("replay", "--ticks", CORPUS, "--on-error", "fail",
                       "--out", tmp("sig.csv"))
    check(rc == 1, f"fail mode exits 1 (got {rc})")
    check(f"{CORPUS}:4: field_count" in err,
          f"fail mode names file, line and reason: {err!r}")
    rc, out, err = run("replay", "--ticks", CORPUS, "--on-error", "fail",
                       "--out", tmp("sig.csv"), stdin=None)
    # An out-of-order row stops it too.
    body = "ts,symbol,price,volume\n5,A,1,1\n4,A,1,1\n6,A,1,1\n"
    rc, out, err = run("replay", "--on-error", "fail", "--out", tmp("s.csv"),
                       stdin=body.encode())
    check(rc == 1 and "<stdin>:3: out_of_order" in err,
          f"fail mode on out_of_order: {rc} {err!r}")


def test_file_errors():
    rc, _, err = run("replay", "--ticks", tmp("missing.csv"))
    check(rc == 1 and "cannot read" in err and "missing.csv" in err,
          f"missing file: {rc} {err!r}")
    open(tmp("empty.csv"), "w").close()
    rc, _, err = run("replay", "--ticks", tmp("empty.csv"), "--quiet")
    check(rc == 1 and "holds no tick rows" in err, f"empty file: {err!r}")
    open(tmp("allbad.csv"), "w").write("ts,symbol,price,volume\nx,A,1,1\ny,B,1,1\n")
    rc, _, err = run("replay", "--ticks", tmp("allbad.csv"), "--quiet")
    check(rc == 1 and "none of its 2 rows" in err and "--rejects" in err,
          f"no valid row: {err!r}")
    open(tmp("nocol.csv"), "w").write("ts,symbol,volume\n1,A,1\n")
    rc, _, err = run("replay", "--ticks", tmp("nocol.csv"), "--quiet")
    check(rc == 1 and "lacks a price column" in err,
          f"header without price: {err!r}")
    open(tmp("many.csv"), "w").write(
        "".join(f"{i + 1},S{i},1,1\n" for i in range(5)))
    rc, _, err = run("replay", "--ticks", tmp("many.csv"), "--max-symbols", "3",
                     "--quiet")
    check(rc == 1 and ":4: the symbol table is full" in err
          and "--max-symbols" in err, f"full symbol table: {err!r}")
    rc, _, err = run("replay", "--bogus")
    check(rc == 2 and "unknown flag --bogus" in err, f"bad flag: {err!r}")
    rc, _, err = run("replay", "--ticks", CORPUS, "--ema-fast-span", "abc")
    check(rc == 2 and "--ema-fast-span" in err, f"bad number flag: {err!r}")
    env = dict(os.environ, SIGNAL_SCORE_MIN="lots")
    p = subprocess.run([ENGINE, "replay", "--ticks", CORPUS], env=env,
                       capture_output=True, text=True)
    check(p.returncode == 2 and "SIGNAL_SCORE_MIN='lots'" in p.stderr,
          f"bad environment variable: {p.stderr!r}")


def test_layouts():
    iso = ("symbol,time,qty,price\n"
           "A,2024-01-02T14:30:00Z,1,10\n"
           "A,2024-01-02T15:30:00.5+01:00,2,11\n")
    epoch = "1704205800,A,1,10\n1704205800.5,A,11,2\n"
    open(tmp("iso.csv"), "w").write(iso)
    open(tmp("epoch.csv"), "w").write(epoch)
    for name in ("iso.csv", "epoch.csv"):
        rc, _, err = run("replay", "--ticks", tmp(name), "--quiet",
                         "--features-out", tmp(name + ".f"), "--out", os.devnull)
        check(rc == 0, f"{name} replays: {err}")
        rows = open(tmp(name + ".f")).read().splitlines()[1:]
        ts = [r.split(",")[0] for r in rows]
        check(ts == ["1704205800000000000", "1704205800500000000"],
              f"{name}: timestamps {ts}")
    rc, _, err = run("replay", "--ticks", tmp("epoch.csv"), "--ts-unit", "ms",
                     "--quiet", "--features-out", tmp("ms.f"), "--out", os.devnull)
    rows = open(tmp("ms.f")).read().splitlines()[1:]
    check(rows[0].startswith("1704205800000000,"), "--ts-unit ms scales")


def outputs(*args, stdin=None):
    rc, out, err = run("replay", *args, "--quiet", "--features-out",
                       tmp("f.csv"), "--format", "jsonl", stdin=stdin)
    check(rc == 0, f"replay {args}: {err}")
    return out, open(tmp("f.csv"), "rb").read()


def test_deterministic_and_chunking_free():
    if not os.path.exists(FIXTURE):
        print("SKIP part: fixtures/sample_ticks.csv missing")
        return
    data = open(FIXTURE, "rb").read()
    ref = outputs("--ticks", FIXTURE)
    check(len(ref[0]) > 0 and ref[0].count(b"\n") >= 10,
          "the fixture yields signals")
    check(outputs("--ticks", FIXTURE) == ref, "two runs: byte-identical")
    for size in ("1", "7", "4096", "65536"):
        check(outputs("--ticks", FIXTURE, "--read-size", size) == ref,
              f"--read-size {size}: byte-identical")
    check(outputs(stdin=data) == ref, "stdin in one piece: byte-identical")
    # One line per write, through a pipe, as a live feed would come.
    p = subprocess.Popen([ENGINE, "replay", "--quiet", "--format", "jsonl",
                          "--features-out", tmp("f.csv")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    import threading
    got = []
    reader = threading.Thread(target=lambda: got.append(p.stdout.read()))
    reader.start()
    for line in data.splitlines(keepends=True):
        p.stdin.write(line)
        p.stdin.flush()
    p.stdin.close()
    reader.join()
    p.wait()
    check((got[0], open(tmp("f.csv"), "rb").read()) == ref,
          "one line at a time through a pipe: byte-identical")


def test_signals_do_not_depend_on_features_out():
    if not os.path.exists(FIXTURE):
        return
    rc, plain, err = run("replay", "--ticks", FIXTURE, "--quiet")
    check(rc == 0, f"plain replay: {err}")
    rc, full, err = run("replay", "--ticks", FIXTURE, "--quiet",
                        "--features-out", tmp("full.csv"))
    check(rc == 0 and plain == full and plain.count(b"\n") > 5,
          "signals are the same with the full feature set computed")


def test_latency_sampling():
    """The histogram holds every tick with --latency-sample 1, and one batch
    of 16 in N otherwise; the signals do not depend on it."""
    if not os.path.exists(FIXTURE):
        return
    outs = {}
    for sample in ("1", "16", "5"):
        rc, out, err = run("replay", "--ticks", FIXTURE, "--quiet",
                           "--latency-sample", sample,
                           "--summary-json", tmp(f"lat{sample}.json"))
        check(rc == 0, f"--latency-sample {sample}: {err}")
        outs[sample] = out
        s = json.load(open(tmp(f"lat{sample}.json")))
        n = int(sample)
        check(s["latency_sample"] == n, f"summary names sample {n}")
        timed = s["latency_timed"]
        if n == 1:
            check(timed == s["accepted"],
                  f"every tick timed: {timed} of {s['accepted']}")
        else:
            batches = s["rows"] // 16
            want = batches // n * 16
            check(abs(timed - want) <= 16,
                  f"one batch in {n}: {timed} timed, about {want} expected")
        check(s["latency_ns"]["p50"] > 0 and
              s["latency_ns"]["max"] >= s["latency_ns"]["p999"] >=
              s["latency_ns"]["p99"] >= s["latency_ns"]["p50"],
              f"latency quantiles ordered with sample {n}: {s['latency_ns']}")
    rc, out, _ = run("replay", "--ticks", FIXTURE, "--quiet",
                     "--summary-json", tmp("latdefault.json"))
    check(json.load(open(tmp("latdefault.json")))["latency_sample"] == 16,
          "16 is the default --latency-sample")
    check(outs["1"] == outs["16"] == outs["5"] == out,
          "signals do not depend on --latency-sample")
    rc, _, err = run("replay", "--ticks", FIXTURE, "--latency-sample", "0")
    check(rc != 0 and "latency-sample" in err, "--latency-sample 0 refused")
    # A file of fewer than 16 batches still has its first batch timed.
    short = tmp("short.csv")
    with open(FIXTURE) as src, open(short, "w") as dst:
        for _ in range(1 + 40):
            dst.write(src.readline())
    rc, _, err = run("replay", "--ticks", short, "--quiet",
                     "--summary-json", tmp("latshort.json"))
    s = json.load(open(tmp("latshort.json")))
    check(rc == 0 and s["latency_timed"] == 16 and s["latency_ns"]["p50"] > 0,
          f"the first batch of a short file is timed: {s['latency_timed']}")


def test_help_documents_every_flag():
    rc, out, _ = run("help", "replay")
    text = out.decode()
    check(rc == 0, "help replay exits 0")
    for flag in ("--ticks", "--ts-unit", "--out", "--format", "--features-out",
                 "--rejects", "--on-error", "--max-symbols", "--session-reset",
                 "--ema-fast-span", "--ema-slow-span", "--signal-cooldown",
                 "--backend", "--model", "--infer-every", "--quiet",
                 "--latency-sample",
                 "EMA_DIFF_THRESHOLD", "VWAP_DIFF_THRESHOLD", "VOLUME_EMA_ALPHA",
                 "VOLUME_SPIKE_MULTIPLIER", "SIGNAL_SCORE_MIN", "SIGNAL_COOLDOWN",
                 "example"):
        check(flag in text, f"help replay mentions {flag}")
    rc2, out2, _ = run("replay", "--help")
    check(rc2 == 0 and out2 == out, "replay --help equals help replay")
    rc, out, _ = run("--version")
    check(rc == 0 and b"stub" in out and b"backends:" in out,
          "--version lists the backends")


for name, fn in list(globals().items()):
    if name.startswith("test_") and callable(fn):
        before = len(failures)
        fn()
        print(("FAIL " if len(failures) > before else "ok   ") + name)
if failures:
    print(f"{len(failures)} checks failed")
    sys.exit(1)
