#!/usr/bin/env python3
"""Writes a tick CSV repeated K times, each copy's ts (and recv_ts) shifted
past the previous copy's last tick, so that every copy replays in order: more
volume from a real file with the same rows and symbols.

    bench/repeat_ticks.py IN OUT K
"""
import sys


def main():
    src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(src) as f:
        lines = f.read().splitlines()
    header, rows = lines[0], lines[1:]
    cols = header.split(",")
    shift = [i for i, c in enumerate(cols) if c in ("ts", "timestamp", "time", "recv_ts")]
    ts = cols.index("ts") if "ts" in cols else shift[0]
    stamps = [int(r.split(",")[ts]) for r in rows]
    span = max(stamps) - min(stamps) + 1_000_000_000
    with open(dst, "w") as out:
        out.write(header + "\n")
        for copy in range(k):
            for r in rows:
                c = r.split(",")
                for i in shift:
                    if c[i]:
                        c[i] = str(int(c[i]) + copy * span)
                out.write(",".join(c) + "\n")


if __name__ == "__main__":
    main()
