#!/usr/bin/env python3
"""Crash test: while a stream of ticks is being published, `pattern-engine
live` is killed with SIGKILL at random points and restarted each time. At
the end the signals stream must hold exactly the signals of one clean
replay of the same ticks (none missing, none duplicated: ids and every
field compared), the same entries (stream ids included) as one live run
that was never killed, and the final engine state must equal replay's byte
for byte.

    python tests/live/test_live_crash.py --engine build/pattern-engine \\
        [--ticks 200000 --symbols 120 --kills 10 --rate 25000 \\
         --checkpoint file|redis --seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--symbols", type=int, default=120)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--rate", type=float, default=25_000)
    ap.add_argument("--checkpoint", default="file", choices=["file", "redis"])
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
                "--checkpoint-every", "3000", "--checkpoint-interval", "0.2",
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
        while publisher.poll() is None or kills < a.kills:
            err = open(os.path.join(tmp, f"live{kills}.err"), "w")
            p = subprocess.Popen(live + ["--quiet"], stdout=subprocess.DEVNULL,
                                 stderr=err)
            time.sleep(rnd.uniform(0.02, 0.6))
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
