#!/usr/bin/env python3
"""Fault injection, as SQLite tests it: every allocation, and every write,
fsync, rename, close, ftruncate and stdio write of `replay` and `live`,
made to fail at the Nth call, for every N up to the count of a clean run
on a small input (fault_shim.c, preloaded, does the failing). replay is
also run with every call from the Nth on failing (a disk that stays full).

    python tests/faults/test_faults.py --engine build/pattern-engine \\
        --shim build/tests/libpe_fault_shim.so [--only replay|live] [-v]

Each run with a fault must end in one of two ways, never another:
  - exit 0 with every output equal, byte for byte, to the clean run's
    (signals, features, rejects, state, summary): the fault was recovered
    from (a Redis write retried on a new connection, say);
  - a non-zero exit (not a signal) with a message on standard error.
It must never die of a signal, hang (a timeout), or exit 0 with an output
that differs. One exception, outside the engine's code: hiredis 0.14
calls abort() when one of its own allocations fails (HIREDIS_OOM_HANDLER),
so a failed allocation made by hiredis (the shim names the caller's
object) may end live with SIGABRT; the restart below must then recover
as after a kill. An output written whole or not at all (--state-out) is,
after a failed run, either absent or the clean run's. For live, after
each run with a fault, live is started again without one on the same
checkpoint, streams and rejects file (a restart after a failure): its
signals stream must then equal replay's signals, ids included, nothing
lost or doubled, its state replay's state and its rejects file the clean
run's. Needs redis-server for live (skipped without it, exit 77).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "live"))
import harness as h  # noqa: E402

TIMEOUT = 30  # seconds: a run this slow is a hang (a clean one takes < 1)
CLASSES = ["alloc", "write"]
PRELOAD_FIRST = ""  # --preload-first: a sanitizer runtime, then the shim
# A failure's first line: the command, then what failed, in words.
MESSAGE = re.compile(r"^pattern-engine [a-z-]+: \S.{8,}")
LIBRARY_ABORT = "(from libhiredis"
ALLOC_CALLS = ("malloc", "calloc", "realloc", "aligned_alloc",
               "posix_memalign")
TIMINGS = ("wall_s", "latency_ns", "latency_timed")


def make_ticks(path: str) -> None:
    """200 ticks over 4 symbols (every rule fires) and three bad rows, so
    that every output of replay and live has something in it."""
    h.gen_ticks(path, 200, 4, seed=11)
    with open(path) as f:
        lines = f.read().splitlines()
    lines.insert(50, "1700000000000000000,S000,abc,10")
    lines.insert(120, "1700000000000000000,S001,-5,10")
    lines.insert(170, "not,a,tick")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read(path: str):
    """A file's bytes (None when absent); a JSON summary without its
    timings, which differ from run to run."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if path.endswith(".json"):
        try:
            doc = json.loads(data)
        except ValueError:
            return data
        for key in TIMINGS:
            doc.pop(key, None)
        return json.dumps(doc, sort_keys=True).encode()
    return data


class Problems:
    def __init__(self):
        self.items = []

    def add(self, what: str) -> None:
        self.items.append(what)
        print(f"FAIL: {what}", flush=True)


def run_shim(cmd, shim, cls, at, work, call=None, persist=False):
    """Runs cmd under the shim, failing the at-th call of the class (of the
    function `call` when given); returns (CompletedProcess, or None on a
    hang; {function or 'total': calls}; the failed call, or '')."""
    env = dict(os.environ, LD_PRELOAD=PRELOAD_FIRST + shim, PE_FAULT_CLASS=cls,
               PE_FAULT_AT=str(at),
               PE_FAULT_COUNT_OUT=os.path.join(work, "fault.count"),
               PE_FAULT_HIT_OUT=os.path.join(work, "fault.hit"),
               PE_FAULT_LAST_OUT=os.path.join(work, "fault.last"))
    env.pop("PE_FAULT_CALL", None)
    env.pop("PE_FAULT_PERSIST", None)
    if persist:
        env["PE_FAULT_PERSIST"] = "1"
    if call is not None:
        env["PE_FAULT_CALL"] = call
    for name in ("fault.count", "fault.hit", "fault.last"):
        if os.path.exists(os.path.join(work, name)):
            os.unlink(os.path.join(work, name))
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT, cwd=work)
    except subprocess.TimeoutExpired:
        return None, {}, read_text(os.path.join(work, "fault.hit"))
    counts = {}
    for line in read_text(os.path.join(work, "fault.count")).splitlines():
        name, n = line.split()
        counts[name] = int(n)
    hit = read_text(os.path.join(work, "fault.hit"))
    last = read_text(os.path.join(work, "fault.last"))
    return r, counts, f"{hit}, the last {last}" if last else hit


def read_text(path: str) -> str:
    b = read(path)
    return b.decode().strip() if b is not None else ""


def judge(what: str, r, hit: str, problems: Problems, verbose: bool) -> str:
    """'ok' (exit 0), 'failed' (a non-zero exit with a message),
    'library-abort' (SIGABRT from a failed allocation inside hiredis) or
    'bad'."""
    where = f"{what} ({hit or 'no call failed'})"
    if r is None:
        problems.add(f"{where}: no exit after {TIMEOUT} s (a hang)")
        return "bad"
    last = hit.split(", the last ")[-1]  # the call just before an abort
    if (r.returncode == -signal.SIGABRT and LIBRARY_ABORT in last
            and last.split()[1] in ALLOC_CALLS):
        # hiredis 0.14 aborts when its own allocation fails (its
        # HIREDIS_OOM_HANDLER): like a kill, which the checkpoint survives.
        if verbose:
            print(f"  {where}: SIGABRT in hiredis")
        return "library-abort"
    if r.returncode < 0:
        problems.add(f"{where}: killed by {signal.Signals(-r.returncode).name}"
                     f"\n{r.stderr}")
        return "bad"
    for mark in h.SANITIZER_MARKS:
        if mark in r.stderr:
            problems.add(f"{where}: sanitizer report\n{r.stderr}")
            return "bad"
    if r.returncode == 0:
        if verbose:
            print(f"  {where}: exit 0")
        return "ok"
    if r.returncode == 2:
        problems.add(f"{where}: exit 2, which says usage error: a fault is "
                     f"not one\n{r.stderr}")
        return "bad"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if not lines or not MESSAGE.match(lines[0]):
        problems.add(f"{where}: exit {r.returncode} without a message "
                     f"(stderr {r.stderr!r})")
        return "bad"
    if verbose:
        print(f"  {where}: exit {r.returncode}: {lines[0]}")
    return "failed"


# ---- replay -------------------------------------------------------------------

REPLAY_OUTPUTS = ("signals.csv", "features.csv", "rejects.csv", "state",
                  "summary.json")


def replay_cmd(engine: str, ticks: str) -> list:
    return [engine, "replay", "--ticks", ticks, "--out", "signals.csv",
            "--features-out", "features.csv", "--rejects", "rejects.csv",
            "--state-out", "state", "--summary-json", "summary.json", "--quiet"]


def replay_case(a, ticks, clean, cls, n, persist, root, problems) -> str:
    """replay with the nth call of the class failing (and, with persist,
    every later one)."""
    work = tempfile.mkdtemp(prefix=f"replay-{cls}-{n}-", dir=root)
    r, _, hit = run_shim(replay_cmd(a.engine, ticks), a.shim, cls, n, work,
                         persist=persist)
    what = f"replay, {cls} #{n}{' on' if persist else ''}"
    verdict = judge(what, r, hit, problems, a.verbose)
    if verdict == "library-abort":
        problems.add(f"{what} ({hit}): killed by SIGABRT")
        verdict = "bad"
    if verdict == "ok":
        for name in REPLAY_OUTPUTS:
            if read(os.path.join(work, name)) != clean[name]:
                problems.add(f"{what} ({hit}): exit 0 but {name} differs from "
                             "the clean run's")
                verdict = "bad"
    elif verdict == "failed":
        state = read(os.path.join(work, "state"))
        if state is not None and state != clean["state"]:
            problems.add(f"{what} ({hit}): a partial --state-out was left")
            verdict = "bad"
    shutil.rmtree(work, ignore_errors=True)
    return verdict


def check_replay(a, ticks, root, problems, pool) -> None:
    work = os.path.join(root, "replay-clean")
    os.mkdir(work)
    counts = {}
    for cls in CLASSES:
        r, c, _ = run_shim(replay_cmd(a.engine, ticks), a.shim, cls, 0, work)
        counts[cls] = c.get("total", 0)
        if r is None or r.returncode != 0:
            h.fail(f"replay without a fault failed: {r and r.stderr}")
    clean = {name: read(os.path.join(work, name)) for name in REPLAY_OUTPUTS}
    for name, data in clean.items():
        if not data:
            h.fail(f"the clean replay wrote no {name}: nothing to compare")
    # The Nth call alone, then every call from the Nth on (a disk that
    # stays full, memory that stays short).
    jobs = [(cls, n, persist) for persist in (False, True) for cls in CLASSES
            for n in range(1, counts[cls] + 1)]
    verdicts = list(pool.map(
        lambda j: replay_case(a, ticks, clean, *j, root, problems), jobs))
    summary("replay (" + ", ".join(f"{c} {cls} calls" for cls, c in
                                   counts.items()) + ")",
            verdicts)


def summary(what: str, verdicts: list) -> None:
    print(f"{what}: {len(verdicts)} runs with a fault: "
          f"{verdicts.count('ok')} exit 0 with the clean outputs, "
          f"{verdicts.count('failed')} failed with a message, "
          f"{verdicts.count('library-abort')} aborted in hiredis, "
          f"{verdicts.count('bad')} wrong", flush=True)


# ---- live -----------------------------------------------------------------------


def live_cmd(engine: str, redis, key: str, work: str, ckpt: str) -> list:
    """live on the published ticks; checkpoints in a file of work or, with
    ckpt 'redis', in the key KEY:checkpoint."""
    where = "redis" if ckpt == "redis" else os.path.join(work, "ckpt")
    return [engine, "live", "--redis", redis.url, "--ticks-stream", "ticks",
            "--signals-stream", key, "--checkpoint", where,
            "--checkpoint-every", "20", "--count", "20", "--block-ms", "10",
            "--exit-on-idle", "0.05", "--rejects", os.path.join(work, "rejects"),
            "--state-out", os.path.join(work, "state"), "--quiet"]


def live_outputs_equal(redis, key, work, expected, replay_state, clean_rejects):
    """'' when the signals stream, state and rejects equal the references,
    else what differs."""
    c = redis.client()
    try:
        entries = c.xrange_all(key)
    finally:
        c.close()
    got = [h.signal_csv_line(f) for _, f in entries]
    for sid, f in entries:
        ms, seq = (int(x) for x in sid.split("-"))
        tms, tseq = (int(x) for x in f["tick_id"].split("-"))
        if ms != tms or seq // 4 != tseq:
            return f"signal {sid} is not derived from its tick id"
    if got != expected:
        return (f"{len(got)} signals in the stream, {len(expected)} from "
                f"replay, {len(got) - len(set(got))} doubled, "
                f"{len(set(expected) - set(got))} missing")
    if read(os.path.join(work, "state")) != replay_state:
        return "the final state differs from replay's"
    if read(os.path.join(work, "rejects")) != clean_rejects:
        return "the rejects file differs from the clean run's"
    return ""


def live_case(a, redis, ref, ckpt, cls, call, n, persist, root,
              problems) -> str:
    """Live with the nth call of the class (of `call`, when not None)
    failing (with persist, every one from the nth on), then restarted
    without a fault."""
    expected, replay_state, clean_rejects = ref
    name = call or cls
    on = "-on" if persist else ""
    work = tempfile.mkdtemp(prefix=f"live-{ckpt}-{name}-{n}{on}-", dir=root)
    key = f"signals:{ckpt}:{name}:{n}{on}"
    what = f"live --checkpoint {ckpt}, {name} #{n}{' on' if persist else ''}"
    r, _, hit = run_shim(live_cmd(a.engine, redis, key, work, ckpt), a.shim,
                         cls, n, work, call, persist)
    verdict = judge(what, r, hit, problems, a.verbose)
    if verdict == "ok":
        diff = live_outputs_equal(redis, key, work, expected, replay_state,
                                  clean_rejects)
        if diff:
            problems.add(f"{what} ({hit}): exit 0 but {diff}")
            return "bad"
    if verdict == "bad":
        return verdict
    # A restart without a fault completes the work, exactly once.
    try:
        again = subprocess.run(live_cmd(a.engine, redis, key, work, ckpt),
                               capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        problems.add(f"{what} ({hit}): the restart without a fault hung")
        return "bad"
    if again.returncode != 0:
        problems.add(f"{what} ({hit}): the restart without a fault exited "
                     f"{again.returncode}: {again.stderr.strip()}")
        return "bad"
    diff = live_outputs_equal(redis, key, work, expected, replay_state,
                              clean_rejects)
    if diff:
        problems.add(f"{what} ({hit}): after a restart without a fault, {diff}")
        return "bad"
    shutil.rmtree(work, ignore_errors=True)
    return verdict


def check_live(a, ticks, root, problems, pool) -> None:
    with h.RedisServer() as redis:
        pub = subprocess.run([a.engine, "publish", "--ticks", ticks, "--redis",
                              redis.url, "--ticks-stream", "ticks"],
                             capture_output=True, text=True, timeout=60)
        if pub.returncode != 0:
            h.fail(f"publish failed: {pub.stderr}")
        ref_dir = os.path.join(root, "replay-ref")
        os.mkdir(ref_dir)
        expected, replay_state_path = h.replay_signals(a.engine, ticks, ref_dir)
        replay_state = read(replay_state_path)
        for ckpt in ("file", "redis"):
            check_live_setup(a, redis, ckpt, expected, replay_state, root,
                             problems, pool)


def check_live_setup(a, redis, ckpt, expected, replay_state, root, problems,
                     pool) -> None:
    counts = {}
    clean_rejects = None
    for cls in CLASSES:
        work = os.path.join(root, f"live-clean-{ckpt}-{cls}")
        os.mkdir(work)
        key = f"signals:clean:{ckpt}:{cls}"
        r, counts[cls], _ = run_shim(live_cmd(a.engine, redis, key, work, ckpt),
                                     a.shim, cls, 0, work)
        if r is None or r.returncode != 0:
            h.fail(f"live without a fault failed: {r and r.stderr}")
        clean_rejects = read(os.path.join(work, "rejects"))
        if not clean_rejects:
            h.fail("the clean live run wrote no rejects: nothing to compare")
        diff = live_outputs_equal(redis, key, work, expected, replay_state,
                                  clean_rejects)
        if diff:
            h.fail(f"live without a fault: {diff}")
    ref = (expected, replay_state, clean_rejects)
    # Every N of each class; with file checkpoints also every N of each
    # function: live's threads (the checkpoint writer) interleave the calls
    # of a class differently from run to run, calls of one function much
    # less. And every N of each function with every call from the Nth on
    # failing (a disk that stays full), but for send: a Redis that can never
    # be written to is waited for (retried), by design. Counts vary a little
    # with timing (idle polls): a margin of 10%.
    jobs = []
    for cls in CLASSES:
        for call, c in counts[cls].items():
            if call != "total" and ckpt != "file":
                continue
            fn = None if call == "total" else call
            ns = range(1, c + 2 + c // 10)
            jobs += [(cls, fn, n, False) for n in ns]
            if fn is not None and fn != "send":
                jobs += [(cls, fn, n, True) for n in ns]
    verdicts = list(pool.map(
        lambda j: live_case(a, redis, ref, ckpt, *j, root, problems), jobs))
    summary(f"live --checkpoint {ckpt} (" + ", ".join(
        f"{c['total']} {cls} calls" for cls, c in counts.items()) + ")",
        verdicts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--only", choices=["replay", "live"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--classes", default="alloc,write",
                    help="comma-separated: alloc, write")
    ap.add_argument("--preload-first", default="",
                    help="a library to preload before the shim (the "
                         "sanitizer runtime of a sanitizer build)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    global PRELOAD_FIRST
    CLASSES[:] = a.classes.split(",")
    if a.preload_first:
        if not os.path.exists(a.preload_first):
            h.skip(f"{a.preload_first} is not there")
        PRELOAD_FIRST = a.preload_first + " "
    a.engine = os.path.abspath(a.engine)
    a.shim = os.path.abspath(a.shim)
    problems = Problems()
    with tempfile.TemporaryDirectory(prefix="pe-faults-") as root, \
            concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        ticks = os.path.join(root, "ticks.csv")
        make_ticks(ticks)
        if a.only in (None, "replay"):
            check_replay(a, ticks, root, problems, pool)
        if a.only in (None, "live"):
            if shutil.which("redis-server") is None:
                if a.only == "live":
                    h.skip("redis-server is not installed")
                print("live skipped: redis-server is not installed")
            else:
                check_live(a, ticks, root, problems, pool)
    if problems.items:
        h.fail(f"{len(problems.items)} runs with a fault ended wrongly")
    print("ok: every run with a fault recovered or failed with a message")


if __name__ == "__main__":
    main()
