#!/usr/bin/env python3
"""Hostile model files cost the importer memory and time in proportion to
their size, not to what they claim:
  - 10 million empty nodes (20 MB on disk, over a gigabyte once unpacked
    into message structs) are refused by the unpacking budget;
  - a 3 GiB file (sparse) is refused by its size before it is read.
Each is checked for its message, its exit code and the peak resident memory
of the process (getrusage of the child).

    test_model_hostile.py ENGINE"""
import os
import resource
import subprocess
import sys
import tempfile
import time


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def field(num: int, wire: int, payload: bytes) -> bytes:
    return varint(num << 3 | wire) + payload


def length_delimited(num: int, payload: bytes) -> bytes:
    return field(num, 2, varint(len(payload)) + payload)


def run(engine: str, path: str):
    """Exit code, stderr, seconds and the child's peak RSS in MiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    p = subprocess.run([engine, "inspect", path], capture_output=True,
                       text=True, timeout=120)
    secs = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest of any child so far: each
    # case runs after the smaller one, so a growth is this child's.
    return p.returncode, p.stderr.strip(), secs, max(peak, before) / 1024


def main() -> int:
    engine = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="pe-hostile-model-") as tmp:
        big = os.path.join(tmp, "sparse3g.onnx")
        with open(big, "wb") as f:
            f.truncate(3 << 30)
        rc, err, secs, rss = run(engine, big)
        ok = rc == 1 and "larger than 2 GiB" in err and secs < 5 and rss < 64
        print(f"{'ok' if ok else 'FAIL'}: 3 GiB file: exit {rc}, {secs:.2f} s, "
              f"peak {rss:.0f} MiB: {err}")
        failures += not ok

        opset = length_delimited(8, field(2, 0, varint(17)))
        graph = b"\x0a\x00" * 10_000_000  # 10 M empty NodeProto
        bomb = os.path.join(tmp, "nodes.onnx")
        with open(bomb, "wb") as f:
            f.write(field(1, 0, varint(8)) + opset + length_delimited(7, graph))
        rc, err, secs, rss = run(engine, bomb)
        ok = rc == 1 and "unpacking the file would take more than" in err \
            and rss < 400
        print(f"{'ok' if ok else 'FAIL'}: 10 M empty nodes (20 MB): exit {rc}, "
              f"{secs:.2f} s, peak {rss:.0f} MiB: {err}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
