#!/usr/bin/env python3
"""`pattern-engine live` exits 1 with a message naming the file when an
output it owns cannot be written: the rejects file, the checkpoint file,
--summary-json and --state-out, on /dev/full, in a read-only directory and
on a full disk (a small tmpfs); and when the rejects file is a pipe on
resuming, whose length the next checkpoint could not record. The last two mount a tmpfs and need root;
without it they are skipped (exit 77) after the /dev/full cases ran.

    python tests/live/test_live_outputs.py --engine build/pattern-engine
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ENGINE = ""
REDIS = None


def live(*extra) -> subprocess.CompletedProcess:
    return h.run([ENGINE, "live", "--redis", REDIS.url, "--ticks-stream",
                  "ticks:out", "--signals-stream", "signals:out",
                  "--exit-on-idle", "0.3", "--quiet", *extra], check=False)


def expect(what: str, needle: str, *extra) -> None:
    r = live(*extra)
    if r.returncode != 1:
        h.fail(f"{what}: exit {r.returncode}, expected 1\n{r.stderr}")
    if needle not in r.stderr:
        h.fail(f"{what}: stderr lacks {needle!r}:\n{r.stderr}")
    line = next(x for x in r.stderr.splitlines() if needle in x)
    print(f"ok: {what}: exit 1: {line[:140]}")


def mount_tmpfs(path: str, options: str) -> bool:
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        why = r.stderr.strip() or f"mount exited {r.returncode}"
        print(f"cannot mount a tmpfs at {path} ({why}): needs root")
        return False
    return True


def umount(path: str) -> None:
    subprocess.run(["umount", path], capture_output=True)


def fill(path: str, leave: int) -> None:
    """Fills the file system of path until about `leave` bytes are free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(path, "filler"), "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def main() -> None:
    global ENGINE, REDIS
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    a = ap.parse_args()
    ENGINE = a.engine
    with tempfile.TemporaryDirectory(prefix="pe-outputs-") as tmp, \
            h.RedisServer() as redis:
        REDIS = redis
        c = redis.client()
        ticks = os.path.join(tmp, "ticks.csv")
        h.gen_ticks(ticks, 500, 5, seed=3)
        h.run([ENGINE, "publish", "--ticks", ticks, "--redis", redis.url,
               "--ticks-stream", "ticks:out", "--quiet"])
        # 3,000 rejected entries with long raw fields: 400 KB of rejects.
        pad = "x" * 100
        for i in range(30):
            c.pipeline([("XADD", "ticks:out", "*", "symbol", "BAD", "price",
                         "not-a-number", "volume", "1", "timestamp", "1",
                         "note", pad) for _ in range(100)])

        expect("--summary-json /dev/full", "cannot write '/dev/full'",
               "--summary-json", "/dev/full")
        expect("--rejects /dev/full", "'/dev/full'", "--rejects", "/dev/full")

        # A rejects path that is no longer a file when the service resumes
        # (a pipe): its offset cannot be known, so it is refused rather than
        # recorded as 0 in the next checkpoint.
        rej = os.path.join(tmp, "rejects.csv")
        h.run([ENGINE, "live", "--redis", redis.url, "--ticks-stream",
               "ticks:out", "--signals-stream", "signals:fifo", "--checkpoint",
               "redis", "--rejects", rej, "--exit-on-idle", "0.3", "--quiet",
               "--count", "100"])
        c.call("XADD", "ticks:out", "*", "symbol", "BAD", "price", "x",
               "volume", "1", "timestamp", "1")
        os.unlink(rej)
        os.mkfifo(rej)
        expect("--rejects a pipe after a checkpoint", "cannot seek in",
               "--signals-stream", "signals:fifo", "--checkpoint", "redis",
               "--rejects", rej)
        os.unlink(rej)

        ro = os.path.join(tmp, "ro")
        small = os.path.join(tmp, "small")
        if not mount_tmpfs(ro, "ro,size=1m"):
            h.skip("the read-only directory and full disk cases need root")
        try:
            for flag, name in (("--checkpoint", "ckpt"), ("--rejects", "r.csv"),
                               ("--summary-json", "s.json"),
                               ("--state-out", "state")):
                path = os.path.join(ro, name)
                expect(f"{flag} in a read-only directory", "Read-only file "
                       "system" if flag != "--state-out" else path,
                       flag, path)
        finally:
            umount(ro)
        if not mount_tmpfs(small, "size=64k"):
            h.skip("the full disk cases need root")
        try:
            # The rejects file outgrows the disk while entries are read.
            path = os.path.join(small, "r.csv")
            expect("--rejects on a full disk", "No space left on device",
                   "--rejects", path)
            os.unlink(path)
            # The same with a file checkpoint, which flushes and fsyncs the
            # rejects file on its own schedule: still exit 1.
            expect("--rejects on a full disk, with --checkpoint",
                   "No space left on device", "--rejects", path,
                   "--checkpoint", os.path.join(tmp, "rejects.ckpt"))
            os.unlink(path)
            fill(small, 512)
            for flag, name, needle in (
                    ("--checkpoint", "ckpt", "final checkpoint not written"),
                    ("--summary-json", "s.json", "No space left on device"),
                    ("--state-out", "state", "cannot write the state")):
                path = os.path.join(small, name)
                expect(f"{flag} on a full disk", needle, flag, path)
        finally:
            umount(small)


if __name__ == "__main__":
    main()
