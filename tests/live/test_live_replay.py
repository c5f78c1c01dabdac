#!/usr/bin/env python3
"""Live equals replay: a tick file published into a real redis-server and
read by `pattern-engine live` gives exactly the signals `replay` gives on
the same file, and the same final engine state byte for byte.

    python tests/live/test_live_replay.py --engine build/pattern-engine \\
        --ticks fixtures/sample_ticks.csv [--optional] [--checkpoint redis]

--optional: a missing tick file is a skip (exit 77), not a failure. The
engine options after -- go to both replay and live; --live-max-batch N
(with --live-max-delay-us) micro-batches live's model runs only, so that
batched live is held to unbatched replay.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--ticks", required=True)
    ap.add_argument("--optional", action="store_true")
    ap.add_argument("--checkpoint", default="file", choices=["file", "redis"])
    ap.add_argument("--live-max-batch", type=int)
    ap.add_argument("--live-max-delay-us", type=int, default=1000000)
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    live_extra = list(a.extra)
    if a.live_max_batch is not None:
        live_extra += ["--max-batch", str(a.live_max_batch),
                       "--max-delay-us", str(a.live_max_delay_us)]
    if not os.path.exists(a.ticks):
        if a.optional:
            h.skip(f"{a.ticks} is not there (it lives outside the repository)")
        h.fail(f"{a.ticks} does not exist")

    with tempfile.TemporaryDirectory(prefix="pe-live-") as tmp, \
            h.RedisServer() as redis:
        expected, replay_state = h.replay_signals(a.engine, a.ticks, tmp, a.extra)
        if not expected:
            h.fail(f"replay found no signals in {a.ticks}: nothing to compare")
        pub = h.run([a.engine, "publish", "--ticks", a.ticks, "--redis", redis.url,
                     "--ticks-stream", "ticks:test"])
        print(pub.stderr.strip())
        ckpt = "redis" if a.checkpoint == "redis" else os.path.join(tmp, "ckpt")
        state = os.path.join(tmp, "live.state")
        summary = os.path.join(tmp, "summary.json")
        live = h.run([a.engine, "live", "--redis", redis.url,
                      "--ticks-stream", "ticks:test",
                      "--signals-stream", "signals:test",
                      "--checkpoint", ckpt, "--checkpoint-every", "5000",
                      "--exit-on-idle", "0.5", "--state-out", state,
                      "--summary-json", summary, *live_extra])
        print(live.stderr.strip())
        c = redis.client()
        entries = c.xrange_all("signals:test")
        h.check_signal_ids(entries)
        h.compare_signals(entries, expected, os.path.basename(a.ticks))
        if not h.same_file(state, replay_state):
            h.fail("the final engine state differs from replay's --state-out")
        print("ok: final state equals replay's byte for byte")

        # A second run resumes from the final checkpoint: nothing new to
        # read, nothing written again.
        h.run([a.engine, "live", "--redis", redis.url, "--ticks-stream",
               "ticks:test", "--signals-stream", "signals:test", "--checkpoint",
               ckpt, "--exit-on-idle", "0.3", "--state-out", state, "--quiet",
               *live_extra])
        if len(c.xrange_all("signals:test")) != len(expected):
            h.fail("a restart after the end wrote signals again")
        if not h.same_file(state, replay_state):
            h.fail("a restart from the final checkpoint changed the state")
        print("ok: restart from the final checkpoint changes nothing")


if __name__ == "__main__":
    main()
