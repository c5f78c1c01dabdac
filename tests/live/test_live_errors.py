#!/usr/bin/env python3
"""The documented errors and edge cases of `pattern-engine live`, against a
real redis-server:

- malformed entries: every reject reason counted exactly, recorded in the
  rejects file and stream with the entry id, and the rejects file cut back
  to the checkpoint on restart (no line twice);
- a corrupt, truncated or foreign checkpoint (file or Redis key), and one
  made with other settings: exit 1 with a message, nothing loaded;
- a stream trimmed past the checkpoint, at start or while running: exit 1
  naming the gap, or with --on-gap skip the gap counted and the rest read;
- a stream that went back behind the checkpoint: exit 1;
- --start-id $ and an explicit id.

    python tests/live/test_live_errors.py --engine build/pattern-engine
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ENGINE = ""


def live(redis, ticks, signals, *extra, check=True):
    return h.run([ENGINE, "live", "--redis", redis.url, "--ticks-stream", ticks,
                  "--signals-stream", signals, "--exit-on-idle", "0.3",
                  *extra], check=check)


def expect_fail(r, needle: str, what: str, code: int = 1) -> None:
    if r.returncode != code:
        h.fail(f"{what}: exit {r.returncode}, expected {code}\n{r.stderr}")
    line = next(x for x in r.stderr.splitlines() if needle in x) \
        if needle in r.stderr else None
    if line is None:
        h.fail(f"{what}: stderr lacks {needle!r}:\n{r.stderr}")
    print(f"ok: {what}: exit {code}: {line[:150]}")


def summary(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def test_rejects(redis, tmp: str) -> None:
    c = redis.client()
    T = 1_700_000_000
    good = ["symbol", "A", "price", "10", "volume", "1"]
    entries = [
        ("accepted", ["symbol", "A", "price", "10", "volume", "1",
                      "timestamp", f"{T}.5"]),
        ("accepted", ["data", json.dumps({"symbol": "J", "price": 10.25,
                                          "volume": "3", "ts": T + 1})]),
        ("missing_field", ["symbol", "A", "volume", "1", "timestamp", str(T)]),
        ("duplicate_field", ["symbol", "A", "symbol", "B", "price", "1",
                             "volume", "1", "timestamp", str(T)]),
        ("duplicate_field", ["data", "{}", *good, "timestamp", str(T)]),
        ("bad_json", ["data", '{"symbol": "A", "price": '],
         ),
        ("bad_number", ["symbol", "A", "price", "ten", "volume", "1",
                        "timestamp", str(T + 2)]),
        ("bad_timestamp", [*good, "timestamp", "yesterday"]),
        ("bad_price", ["symbol", "A", "price", "-1", "volume", "1",
                       "timestamp", str(T + 3)]),
        ("bad_volume", ["symbol", "A", "price", "1", "volume", "-5",
                        "timestamp", str(T + 3)]),
        ("empty_symbol", ["symbol", " ", "price", "1", "volume", "1",
                          "timestamp", str(T + 3)]),
        ("symbol_too_long", ["symbol", "X" * 40, "price", "1", "volume", "1",
                             "timestamp", str(T + 3)]),
        ("too_many_fields", [x for i in range(70) for x in (f"f{i}", "v")]),
        ("accepted", [*good, "timestamp", str(T + 10)]),
        ("out_of_order", [*good, "timestamp", str(T + 5)]),
    ]
    want = {}
    ids = []
    for reason, fields in entries:
        ids.append(c.call("XADD", "ticks:bad", "*", *fields).decode())
        want[reason] = want.get(reason, 0) + 1
    rej_file = os.path.join(tmp, "rejects.csv")
    ckpt = os.path.join(tmp, "bad.ckpt")
    sj = os.path.join(tmp, "bad.json")
    live(redis, "ticks:bad", "signals:bad", "--checkpoint", ckpt, "--rejects",
         rej_file, "--rejects-stream", "rejects:bad", "--summary-json", sj)
    s = summary(sj)
    if s["accepted"] != want.pop("accepted"):
        h.fail(f"accepted {s['accepted']}")
    for reason, n in want.items():
        if s["rejected"].get(reason) != n:
            h.fail(f"rejected[{reason}] = {s['rejected'].get(reason)}, want {n}")
    if sum(s["rejected"].values()) != sum(want.values()):
        h.fail(f"rejections by reason: {s['rejected']}")
    with open(rej_file) as f:
        lines = f.read().splitlines()
    if lines[0] != "tick_id,reason,field,raw" or len(lines) != 1 + sum(want.values()):
        h.fail(f"rejects file:\n" + "\n".join(lines))
    bad = [(eid, r) for eid, (r, _) in zip(ids, entries) if r != "accepted"]
    for line, (eid, reason) in zip(lines[1:], bad):
        if not line.startswith(f"{eid},{reason},"):
            h.fail(f"rejects file line {line!r}, want id {eid} reason {reason}")
    if "missing_field,price," not in lines[1]:
        h.fail(f"the missing field is not named: {lines[1]}")
    stream = c.xrange_all("rejects:bad")
    if [(e, f["reason"]) for e, f in stream] != bad:
        h.fail(f"rejects stream: {[(e, f['reason']) for e, f in stream]}")
    if stream[0][1].get("raw:symbol") != "A" or stream[0][1]["tick_id"] != bad[0][0]:
        h.fail(f"rejects stream entry lacks the raw fields: {stream[0]}")
    print(f"ok: {sum(want.values())} bad entries counted by reason, in the "
          f"rejects file and stream under their entry ids")

    # Lines written after the last checkpoint (a crash before it) are cut.
    with open(rej_file, "a") as f:
        f.write("9-9,left_by_a_crash,,\n")
    c.call("XADD", "ticks:bad", "*", "symbol", "A", "price", "x", "volume",
           "1", "timestamp", str(T + 20))
    live(redis, "ticks:bad", "signals:bad", "--checkpoint", ckpt, "--rejects",
         rej_file, "--rejects-stream", "rejects:bad", "--quiet")
    with open(rej_file) as f:
        again = f.read().splitlines()
    if again[:-1] != lines or ",bad_number,price," not in again[-1]:
        h.fail("the rejects file was not cut back to the checkpoint:\n" +
               "\n".join(again))
    if len(c.xrange_all("rejects:bad")) != len(bad) + 1:
        h.fail("the rejects stream got duplicates after a restart")
    print("ok: after a restart the rejects file is cut back to the checkpoint "
          "and no reject is recorded twice")


def test_checkpoints(redis, tmp: str) -> None:
    c = redis.client()
    ticks = os.path.join(tmp, "small.csv")
    h.gen_ticks(ticks, 3000, 10, seed=5)
    h.run([ENGINE, "publish", "--ticks", ticks, "--redis", redis.url,
           "--ticks-stream", "ticks:ck", "--quiet"])
    ckpt = os.path.join(tmp, "good.ckpt")
    live(redis, "ticks:ck", "signals:ck", "--checkpoint", ckpt, "--quiet")
    with open(ckpt, "rb") as f:
        good = f.read()

    def with_file(data: bytes, needle: str, what: str, *extra) -> None:
        path = os.path.join(tmp, "bad.ckpt")
        with open(path, "wb") as f:
            f.write(data)
        r = live(redis, "ticks:ck", "signals:ck", "--checkpoint", path, *extra,
                 check=False)
        expect_fail(r, needle, what)
        with open(path, "rb") as f:
            if f.read() != data:
                h.fail(f"{what}: the refused checkpoint was overwritten")

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40
    with_file(bytes(flipped), "checksum mismatch", "a flipped byte")
    with_file(good[: len(good) // 2], "truncated", "a checkpoint cut in half")
    with_file(good[:20], "truncated", "a checkpoint cut to 20 bytes")
    with_file(b"hello world\n" * 10, "not a pattern-engine checkpoint",
              "a file that is no checkpoint")
    bumped = bytearray(good)
    bumped[8] = 9
    with_file(bytes(bumped), "layout version 9", "a checkpoint of another version")
    with_file(good, "other settings", "other engine settings",
              "--ema-fast-span", "5")
    r = h.run([ENGINE, "live", "--redis", redis.url, "--ticks-stream", "ticks:ck",
               "--signals-stream", "signals:other", "--checkpoint", ckpt,
               "--exit-on-idle", "0.3"], check=False)
    expect_fail(r, "belongs to ticks stream", "a checkpoint of other streams")

    # The same in a Redis key.
    live(redis, "ticks:ck", "signals:ckr", "--checkpoint", "redis", "--quiet")
    key = "signals:ckr:checkpoint"
    blob = c.call("GET", key)
    c.call("SETRANGE", key, len(blob) // 2, b"\x00\xff")
    r = live(redis, "ticks:ck", "signals:ckr", "--checkpoint", "redis",
             check=False)
    expect_fail(r, "checksum mismatch", "a corrupt checkpoint key")
    c.call("SET", key, blob[:100])
    r = live(redis, "ticks:ck", "signals:ckr", "--checkpoint", "redis",
             check=False)
    expect_fail(r, "truncated", "a truncated checkpoint key")


def test_gaps(redis, tmp: str) -> None:
    c = redis.client()
    first = os.path.join(tmp, "first.csv")
    h.gen_ticks(first, 1000, 5, seed=8)
    h.run([ENGINE, "publish", "--ticks", first, "--redis", redis.url,
           "--ticks-stream", "ticks:gap", "--quiet"])
    ckpt = os.path.join(tmp, "gap.ckpt")
    live(redis, "ticks:gap", "signals:gap", "--checkpoint", ckpt, "--quiet")
    # 1000 more, then the stream is trimmed to its last 100 entries: 900 of
    # the new ones are gone before live read them.
    for i in range(10):
        c.pipeline([("XADD", "ticks:gap", "*", "symbol", "G", "price", 10 + j % 7,
                     "volume", 1, "timestamp",
                     1_800_000_000_000_000_000 + (i * 100 + j) * 1_000_000)
                    for j in range(100)])
    c.call("XTRIM", "ticks:gap", "MAXLEN", "100")
    r = live(redis, "ticks:gap", "signals:gap", "--checkpoint", ckpt, check=False)
    expect_fail(r, "gap: 900 entries", "a stream trimmed past the checkpoint")
    r = live(redis, "ticks:gap", "signals:gap", "--checkpoint", ckpt, check=False)
    expect_fail(r, "gap: 900 entries", "the same gap at the next start")
    sj = os.path.join(tmp, "gap.json")
    live(redis, "ticks:gap", "signals:gap", "--checkpoint", ckpt, "--on-gap",
         "skip", "--summary-json", sj, "--quiet")
    s = summary(sj)
    if (s["gaps"], s["gap_entries"], s["entries"], s["entries_run"]) != \
            (1, 900, 1100, 100):
        h.fail(f"--on-gap skip: {s}")
    print("ok: --on-gap skip counts the 900 missing entries and reads the 100 left")
    # Running again: the gap was counted once, it is not a new one.
    live(redis, "ticks:gap", "signals:gap", "--checkpoint", ckpt,
         "--summary-json", sj, "--quiet")
    if summary(sj)["gaps"] != 1:
        h.fail("the same gap was counted again after a restart")

    c.call("DEL", "ticks:gap")
    c.call("XADD", "ticks:gap", "1-1", "symbol", "G", "price", "1", "volume",
           "1", "timestamp", "1")
    r = live(redis, "ticks:gap", "signals:gap", "--checkpoint", ckpt, check=False)
    expect_fail(r, "Redis lost data or the stream was recreated",
                "a stream behind its checkpoint")


def test_runtime_gap(redis, tmp: str, mode: str) -> None:
    """Entries trimmed while live runs: 1000 added and all but 10 trimmed
    in one transaction, so live never sees 990 of them."""
    c = redis.client()
    key = f"ticks:rgap:{mode}"
    for i in range(5):
        c.call("XADD", key, "*", "symbol", "R", "price", 10 + i, "volume", 1,
               "timestamp", 1_700_000_000 + i)
    sj = os.path.join(tmp, f"rgap-{mode}.json")
    err = open(os.path.join(tmp, f"rgap-{mode}.err"), "w+")
    p = subprocess.Popen([ENGINE, "live", "--redis", redis.url, "--ticks-stream",
                          key, "--signals-stream", f"signals:rgap:{mode}",
                          "--checkpoint", os.path.join(tmp, f"rgap-{mode}.ckpt"),
                          "--on-gap", mode, "--summary-json", sj],
                         stdout=subprocess.DEVNULL, stderr=err)
    time.sleep(0.7)
    cmds = [("MULTI",)]
    cmds += [("XADD", key, "*", "symbol", "R", "price", 20, "volume", 1,
              "timestamp", 1_700_000_100 + i) for i in range(1000)]
    cmds += [("XTRIM", key, "MAXLEN", "10"), ("EXEC",)]
    c.pipeline(cmds)
    time.sleep(2.5)
    if mode == "skip":
        p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        h.fail(f"live --on-gap {mode} did not stop")
    err.seek(0)
    log = err.read()
    h.check_sanitizers(log, "live")
    if "gap: 990 entries" not in log:
        h.fail(f"--on-gap {mode}: the gap was not reported:\n{log}")
    if mode == "fail":
        if rc != 1:
            h.fail(f"--on-gap fail: exit {rc} on a gap found while running")
        print("ok: a gap while running stops live (--on-gap fail), exit 1")
        return
    s = summary(sj)
    if rc != 0 or (s["gaps"], s["gap_entries"], s["entries"]) != (1, 990, 15):
        h.fail(f"--on-gap skip while running: exit {rc}, {s}")
    print("ok: a gap while running is counted (990 entries) and skipped")


def test_start_ids(redis, tmp: str) -> None:
    c = redis.client()
    ids = [c.call("XADD", "ticks:start", "*", "symbol", "S", "price", 10 + i,
                  "volume", 1, "timestamp", 1_700_000_000 + i).decode()
           for i in range(5)]
    sj = os.path.join(tmp, "start.json")
    live(redis, "ticks:start", "signals:start", "--start-id", ids[1],
         "--summary-json", sj, "--quiet")
    if summary(sj)["entries"] != 3:
        h.fail(f"--start-id {ids[1]} read {summary(sj)['entries']} entries, not 3")
    live(redis, "ticks:start", "signals:start", "--start-id", "$",
         "--summary-json", sj, "--quiet")
    if summary(sj)["entries"] != 0:
        h.fail("--start-id $ read old entries")
    r = live(redis, "ticks:start", "signals:start", "--start-id", "yesterday",
             check=False)
    expect_fail(r, "--start-id", "a bad --start-id", code=2)
    print("ok: --start-id ID reads after ID, $ reads only new entries")


def main() -> None:
    global ENGINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    a = ap.parse_args()
    ENGINE = a.engine
    with tempfile.TemporaryDirectory(prefix="pe-errors-") as tmp, \
            h.RedisServer() as redis:
        test_rejects(redis, tmp)
        test_checkpoints(redis, tmp)
        test_gaps(redis, tmp)
        test_runtime_gap(redis, tmp, "skip")
        test_runtime_gap(redis, tmp, "fail")
        test_start_ids(redis, tmp)


if __name__ == "__main__":
    main()
