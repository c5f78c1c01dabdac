#!/usr/bin/env python3
"""publish and live over a Unix socket (unix:///path/redis.sock): the
signals stream equals replay's signals, as over TCP."""
import argparse
import os
import tempfile

import harness as h


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--ticks", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pe-live-") as tmp, \
            h.RedisServer() as redis:
        expected, _ = h.replay_signals(a.engine, a.ticks, tmp)
        if not expected:
            h.fail(f"replay found no signals in {a.ticks}: nothing to compare")
        h.run([a.engine, "publish", "--ticks", a.ticks, "--redis",
               redis.unix_url, "--ticks-stream", "ticks:unix"], timeout=60)
        c = redis.client()
        n_ticks = len(c.xrange_all("ticks:unix"))
        with open(a.ticks) as f:
            n_rows = sum(1 for _ in f) - 1
        if n_ticks != n_rows:
            h.fail(f"publish over the Unix socket wrote {n_ticks} entries "
                   f"for {n_rows} rows")
        h.run([a.engine, "live", "--redis", redis.unix_url, "--ticks-stream",
               "ticks:unix", "--signals-stream", "signals:unix", "--checkpoint",
               os.path.join(tmp, "ckpt"), "--exit-on-idle", "0.5", "--quiet"],
              timeout=60)
        entries = c.xrange_all("signals:unix")
        h.check_signal_ids(entries)
        h.compare_signals(entries, expected, os.path.basename(a.ticks))
        print(f"ok: {n_ticks} ticks and {len(entries)} signals over "
              f"{redis.unix_url}")


if __name__ == "__main__":
    main()
