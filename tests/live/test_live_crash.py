#!/usr/bin/env python3
"""Crash test: while a stream of ticks is being published, `pattern-engine
live` is killed with SIGKILL at random points and restarted each time. At
the end the signals stream must hold exactly the signals of one clean
replay of the same ticks (none missing, none duplicated: ids and every
field compared), the same entries (stream ids included) as one live run
that was never killed, and the final engine state must equal replay's byte
for byte.

With --contend two workers are started at once on the same checkpoint
each time: one must hold it and run, the other be refused at once (exit 1,
naming the holder), and the result must be the same.

    python tests/live/test_live_crash.py --engine build/pattern-engine \\
        [--ticks 200000 --symbols 120 --kills 10 --rate 25000 \\
         --checkpoint file|redis --every 3000 --contend --seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def contend(p, rival, err_path: str, k: int):
    """Of two workers started on one checkpoint, one must be refused at
    once (exit 1 naming the other as holder) while the other runs. Returns
    (the one running, the one refused)."""
    deadline = time.time() + 5
    while p.poll() is None and rival.poll() is None:
        if time.time() > deadline:
            h.fail(f"run {k + 1}: two workers run on one checkpoint")
        time.sleep(0.01)
    if rival.poll() is not None:
        loser_err = rival.stderr.read()
        winner, loser = p, rival
    else:
        with open(err_path) as f:
            loser_err = f.read()
        winner, loser = rival, p
    if loser.returncode != 1 or "in use by another worker" not in loser_err \
            or f":{winner.pid}" not in loser_err:
        h.fail(f"run {k + 1}: the second worker exited {loser.returncode} "
               f"without naming the holder {winner.pid}:\n{loser_err}")
    if winner is rival:  # the survivor's stderr is checked with the others
        threading.Thread(target=rival.stderr.read, daemon=True).start()
    return winner, loser


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--symbols", type=int, default=120)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--rate", type=float, default=25_000)
    ap.add_argument("--checkpoint", default="file", choices=["file", "redis"])
    ap.add_argument("--every", type=int, default=3000,
                    help="--checkpoint-every of the killed runs")
    ap.add_argument("--contend", action="store_true",
                    help="start two workers at once on one checkpoint")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)

    with tempfile.TemporaryDirectory(prefix="pe-crash-") as tmp, \
            h.RedisServer() as redis:
        ticks = os.path.join(tmp, "ticks.csv")
        h.gen_ticks(ticks, a.ticks, a.symbols, seed=a.seed)
        expected, replay_state = h.replay_signals(a.engine, ticks, tmp)
        print(f"clean replay: {a.ticks} ticks, {a.symbols} symbols, "
              f"{len(expected)} signals")
        if len(expected) < 100:
            h.fail("too few signals for a meaningful crash test")

        ckpt = "redis" if a.checkpoint == "redis" else os.path.join(tmp, "ckpt")
        live = [a.engine, "live", "--redis", redis.url,
                "--ticks-stream", "ticks:crash", "--signals-stream",
                "signals:crash", "--checkpoint", ckpt,
                "--checkpoint-every", str(a.every),
                "--checkpoint-interval", "0.2",
                "--count", "500"]
        publisher = subprocess.Popen(
            [a.engine, "publish", "--ticks", ticks, "--redis", redis.url,
             "--ticks-stream", "ticks:crash", "--rate", str(a.rate),
             "--pipeline", "200", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        c = redis.client()
        kills = 0
        positions = []
        t0 = time.time()
        refused = 0
        while publisher.poll() is None or kills < a.kills:
            err = open(os.path.join(tmp, f"live{kills}.err"), "w")
            p = subprocess.Popen(live + ["--quiet"], stdout=subprocess.DEVNULL,
                                 stderr=err)
            rival = None
            if a.contend:
                time.sleep(rnd.uniform(0, 0.05))
                rival = subprocess.Popen(live + ["--quiet"],
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
            time.sleep(rnd.uniform(0.02, 0.6))
            if rival is not None:
                p, rival = contend(p, rival, err.name, kills)
                refused += 1
            if p.poll() is not None:
                err.close()
                h.fail(f"live exited {p.returncode} by itself before kill "
                       f"{kills + 1}: {open(err.name).read()}")
            p.kill()
            p.wait()
            err.close()
            kills += 1
            positions.append(c.call("XLEN", "signals:crash"))
            if time.time() - t0 > 120:
                h.fail("the crash loop ran over two minutes")
        pub_err = publisher.stderr.read()
        h.check_sanitizers(pub_err, "publish")
        for i in range(kills):
            with open(os.path.join(tmp, f"live{i}.err")) as f:
                h.check_sanitizers(f.read(), f"live run {i + 1}")
        if publisher.wait() != 0:
            h.fail(f"publish failed: {pub_err}")
        print(f"killed live {kills} times with SIGKILL; signals in the stream "
              f"at each kill: {positions}")
        if a.contend:
            print(f"ok: each of {refused} times two workers were started, one "
                  f"ran and the other was refused, naming the holder")
        if c.call("XLEN", "ticks:crash") != a.ticks:
            h.fail("the ticks stream does not hold every tick exactly once")

        state = os.path.join(tmp, "live.state")
        summary = os.path.join(tmp, "summary.json")
        r = h.run(live + ["--exit-on-idle", "1", "--state-out", state,
                          "--summary-json", summary])
        print(r.stderr.strip())
        entries = c.xrange_all("signals:crash")
        h.check_signal_ids(entries)
        h.compare_signals(entries, expected, "after the kills")
        if not h.same_file(state, replay_state):
            h.fail("the final engine state differs from the clean replay's")
        print("ok: final state equals the clean replay's byte for byte")

        clean = [a.engine, "live", "--redis", redis.url, "--ticks-stream",
                 "ticks:crash", "--signals-stream", "signals:clean",
                 "--checkpoint", os.path.join(tmp, "clean.ckpt")
                 if a.checkpoint == "file" else "redis",
                 "--exit-on-idle", "0.5", "--quiet"]
        h.run(clean)
        clean_entries = c.xrange_all("signals:clean")
        if clean_entries != entries:
            h.fail("the killed run's signals stream differs from an unkilled "
                   "live run's (stream ids or fields)")
        print(f"ok: {len(entries)} entries identical to an unkilled live "
              f"run's, stream ids included")


if __name__ == "__main__":
    main()
