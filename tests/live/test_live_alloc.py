#!/usr/bin/env python3
"""`live` allocates nothing per tick or per batch once warmed up: the same
run over 20,000 and over 200,000 entries (100 symbols, signals, rejects to
a file and a stream, a checkpoint every 5,000 entries) must make the same
number of heap allocations, within a small slack for buffers that grow to
their final size. Counted with an LD_PRELOAD shim (malloc_count.c).

    python tests/live/test_live_alloc.py --engine build/pattern-engine \\
        --shim build/tests/libpe_malloc_count.so
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SLACK = 16


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--shim", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pe-alloc-") as tmp, \
            h.RedisServer() as redis:
        big = os.path.join(tmp, "big.csv")
        h.gen_ticks(big, 200_000, 100, seed=4)
        small = os.path.join(tmp, "small.csv")
        with open(big) as f, open(small, "w") as g:
            for i, line in enumerate(f):
                if i > 20_000:
                    break
                g.write(line)
        c = redis.client()
        counts = {}
        for name, path in (("small", small), ("big", big)):
            h.run([a.engine, "publish", "--ticks", path, "--redis", redis.url,
                   "--ticks-stream", f"ticks:{name}", "--quiet"])
            # A few bad entries, so the reject path runs in both.
            for i in range(5):
                c.call("XADD", f"ticks:{name}", "*", "symbol", "Z", "price", "x")
            out = os.path.join(tmp, f"{name}.count")
            env = dict(os.environ, LD_PRELOAD=os.path.abspath(a.shim),
                       PE_MALLOC_COUNT_OUT=out)
            h.run([a.engine, "live", "--redis", redis.url,
                   "--ticks-stream", f"ticks:{name}",
                   "--signals-stream", f"signals:{name}",
                   "--checkpoint", os.path.join(tmp, f"{name}.ckpt"),
                   "--checkpoint-every", "5000", "--rejects",
                   os.path.join(tmp, f"{name}.rej"), "--rejects-stream",
                   f"rejects:{name}", "--exit-on-idle", "0.3", "--quiet"],
                  env=env)
            with open(out) as f:
                counts[name] = int(f.read())
            signals = c.call("XLEN", f"signals:{name}")
            print(f"{name}: {c.call('XLEN', f'ticks:{name}')} entries, "
                  f"{signals} signals, {counts[name]} allocations")
        extra = counts["big"] - counts["small"]
        if extra > SLACK:
            h.fail(f"180,000 more entries cost {extra} more allocations "
                   f"(slack {SLACK}): something allocates per tick or batch")
        print(f"ok: 180,000 more entries, {extra} more allocations")


if __name__ == "__main__":
    main()
