"""`publish --partitions` against real Redis: a 3-master + 3-replica cluster
(--mode cluster), a single node (--mode single), and a cluster disturbed
while the ticks are being published: a master killed with SIGKILL, so that
its replica takes over (--mode failover); a replica killed, so that WAIT
times out until the cluster marks it failed (--mode replica); the slot of
a partition moved to another master, its stream migrated (MIGRATING /
IMPORTING, MIGRATE, SETSLOT NODE) under the publisher, which meets ASK and
then MOVED (--mode reshard).

Each partition's stream, read back with XRANGE from the node serving it,
must hold exactly the input ticks of the symbols of that partition, in the
input's order, each once: symbol, price and volume bit for bit,
timestamps equal. The partition of a symbol is computed here from the
FNV-1a 64 definition (or, with weights, by greedy packing written out here
from its description), not taken from the engine. The map stored in
pe:partitions is checked, and a publisher with another map is refused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, fail  # noqa: E402
import harness  # noqa: E402

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


# The published test vectors of FNV-1a 64: a wrong oracle would fail here.
assert fnv1a64(b"") == 0xCBF29CE484222325
assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
assert fnv1a64(b"foobar") == 0x85944171F73967E8


def packed(weights: dict, hot: list, parts: int) -> dict:
    """Greedy packing: hot symbols in their order, then heaviest first
    (ties in byte order), each onto the lightest partition (ties: lowest)."""
    heaviest = max(weights.values()) if weights else 1.0
    w = dict(weights)
    for h in hot:
        w.setdefault(h, heaviest)
    order = hot + sorted((s for s in w if s not in hot),
                         key=lambda s: (-w[s], s.encode()))
    load = [0.0] * parts
    out = {}
    for s in order:
        p = min(range(parts), key=lambda i: (load[i], i))
        out[s] = p
        load[p] += w[s]
    return out


def canonical_text(parts: int, placed: dict) -> str:
    lines = ["pe-partitions 1", f"count {parts}", "hash fnv1a64"]
    for s in sorted(placed, key=lambda x: x.encode()):
        lines.append(f"{placed[s]} {s}")
    return "\n".join(lines) + "\n"


def read_ticks(path: str) -> list:
    with open(path) as f:
        next(f)
        return [tuple(line.rstrip("\n").split(",")) for line in f]


def expected_streams(ticks: list, parts: int, placed: dict) -> dict:
    part = dict(placed)
    out: dict = {}
    for ts, sym, price, vol in ticks:
        p = part.get(sym)
        if p is None:
            p = part[sym] = fnv1a64(sym.encode()) % parts
        out.setdefault(p, []).append((sym, float(price), float(vol), int(ts)))
    return out


def check_streams(c: Cluster, ticks: list, parts: int, placed: dict) -> None:
    want = expected_streams(ticks, parts, placed)
    keys = c.keys("ticks:*")
    want_keys = sorted(f"ticks:{{p{p}}}" for p in want)
    if keys != want_keys:
        fail(f"stream keys {keys[:8]}... differ from the partitions' {want_keys[:8]}...")
    total = 0
    for p, rows in sorted(want.items()):
        key = f"ticks:{{p{p}}}"
        entries = c.tick_entries(key)
        got = [(sym, float(price), float(vol), int(ts))
               for _, sym, price, vol, ts in entries]
        if got != rows:
            seen, dups = set(), 0
            for g in got:
                dups += g in seen
                seen.add(g)
            missing = sum(1 for r in rows if r not in seen)
            first = next((i for i, (a, b) in enumerate(zip(got, rows)) if a != b),
                         min(len(got), len(rows)))
            fail(f"{key}: {len(got)} entries, {len(rows)} expected; {dups} doubled, "
                 f"{missing} missing; first difference at entry {first}")
        ids = [tuple(int(x) for x in e[0].split("-")) for e in entries]
        if any(a >= b for a, b in zip(ids, ids[1:])):
            fail(f"{key}: ids do not grow")
        total += len(got)
    # Per-symbol order, asserted on every symbol over all streams.
    by_sym: dict = {}
    for ts, sym, price, vol in ticks:
        by_sym.setdefault(sym, []).append(int(ts))
    print(f"ok: {total} ticks of {len(by_sym)} symbols in {len(want)} partition "
          f"streams, each exactly its symbols' ticks in input order")


def check_map(c: Cluster, text: str) -> None:
    cl = c.client_for_key("pe:partitions")
    try:
        stored = cl.call("GET", "pe:partitions")
    finally:
        cl.close()
    if stored is None or stored.decode() != text:
        fail(f"pe:partitions holds {stored!r}, expected {text!r}")
    print("ok: pe:partitions holds the canonical map")


def publish(engine: str, url: str, ticks: str, extra=(), check=True):
    cmd = [engine, "publish", "--ticks", ticks, "--redis", url, *extra]
    r = harness.run(cmd, check=check, timeout=120)
    return r


def refused_other_map(engine: str, url: str, ticks: str, parts: int, text: str) -> None:
    r = publish(engine, url, ticks, ["--partitions", str(parts + 1)], check=False)
    digest = "%016x" % fnv1a64(text.encode())
    other = "%016x" % fnv1a64(canonical_text(parts + 1, {}).encode())
    if r.returncode != 1 or digest not in r.stderr or other not in r.stderr:
        fail(f"a publisher with {parts + 1} partitions: exit {r.returncode}, "
             f"expected 1 naming {digest} and {other}:\n{r.stderr}")
    print("ok: a publisher with another map is refused, naming both digests")


def total_len(c: Cluster, parts: int) -> int:
    n = 0
    for p in range(parts):
        try:
            cl = c.client_for_key(f"ticks:{{p{p}}}")
            try:
                n += cl.call("XLEN", f"ticks:{{p{p}}}")
            finally:
                cl.close()
        except Exception:  # the node is going away: count what answers
            pass
    return n


def reshard(c: Cluster, key: str) -> str:
    """Moves key's slot to another master as redis-cli --cluster reshard
    does, while the publisher keeps writing to it."""
    slot = c.key_slot(key)
    src = c.master_of(key)
    dst = next(m for m in c.masters() if m.port != src.port)
    c.migrate_slot(src, dst, slot)
    time.sleep(0.3)  # ASK for the moved stream until the slot is handed over
    c.finish_slot(dst, slot)
    return f"moved slot {slot} from {src.port} to {dst.port}"


def disturbed(args, c: Cluster, path: str, extra: list, parts: int) -> None:
    """Publishes in the background and, once a quarter of the ticks are in,
    disturbs the cluster as --mode says; publish must finish with exit 0."""
    key = "ticks:{p0}"
    proc = subprocess.Popen([args.engine, "publish", "--ticks", path,
                             "--redis", c.url, *extra, "--rate", "60000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out: dict = {}

    def drain():
        out["stderr"] = proc.stderr.read()
    th = threading.Thread(target=drain)
    th.start()
    deadline = time.time() + 30
    while total_len(c, parts) < args.ticks // 4:
        if proc.poll() is not None or time.time() > deadline:
            break
        time.sleep(0.05)
    master = c.master_of(key)
    if args.mode == "failover":
        master.kill()
        what = f"killed the master on port {master.port}"
    elif args.mode == "replica":
        rep = c.replica_of(master)
        rep.kill()
        what = f"killed the replica on port {rep.port}"
    else:
        what = reshard(c, key)
    print(f"{what} after {total_len(c, parts)} ticks")
    try:
        proc.wait(timeout=100)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("publish did not finish within 100 s")
    th.join()
    sys.stdout.write(out["stderr"])
    harness.check_sanitizers(out["stderr"], "publish")
    if proc.returncode != 0:
        fail(f"publish exited {proc.returncode} ({args.mode})")
    if "resent" not in out["stderr"]:
        fail("no summary from publish")
    if args.mode == "failover":
        c.wait_ok(masters=3, replicas=0)
        if c.master_of(key).port == master.port:
            fail("the killed master still serves the slot")
    elif args.mode == "reshard" and c.master_of(key).port == master.port:
        fail("the slot was not moved")
    if args.mode != "replica" and "sending" not in out["stderr"]:
        fail("publish never had to send a batch again: the disturbance "
             "came too late to test anything")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--mode", choices=("cluster", "single", "failover", "replica",
                                       "reshard"), required=True)
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--symbols", type=int, default=600)
    ap.add_argument("--partitions", type=int, default=16)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="pe-publish-parts-")
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: str) -> None:
    path = os.path.join(tmp, "ticks.csv")
    harness.gen_ticks(path, args.ticks, args.symbols, seed=11)
    ticks = read_ticks(path)
    parts = args.partitions
    t0 = time.time()
    with Cluster(single=args.mode == "single") as c:
        print(f"{args.mode}: Redis up in {time.time() - t0:.1f} s")
        extra = ["--partitions", str(parts)]
        placed: dict = {}
        if args.mode == "single":
            # Weights for a third of the symbols, two of them hot.
            weights = {f"S{i:03d}": float((i * 37) % 101 + 1)
                       for i in range(0, args.symbols, 3)}
            hot = ["S001", "S002"]
            wpath = os.path.join(tmp, "weights.csv")
            with open(wpath, "w") as f:
                f.write("symbol,weight\n")
                for s, w in weights.items():
                    f.write(f"{s},{w:g}\n")
            extra += ["--partition-weights", wpath, "--hot-symbols", ",".join(hot)]
            placed = packed(weights, hot, parts)
        text = canonical_text(parts, placed)

        if args.mode in ("cluster", "single"):
            t1 = time.time()
            r = publish(args.engine, c.url, path, extra)
            print(f"published in {time.time() - t1:.2f} s")
            sys.stdout.write(r.stderr)
        else:
            disturbed(args, c, path, extra, parts)
        t2 = time.time()
        check_streams(c, ticks, parts, placed)
        print(f"read back and compared in {time.time() - t2:.1f} s")
        check_map(c, text)
        refused_other_map(args.engine, c.url, path, parts, text)
        # Publishing again with the same map appends the same ticks again.
        if args.mode == "single":
            r = publish(args.engine, c.url, path, extra)
            if f"published    {args.ticks}" not in r.stderr:
                fail(f"a second publish with the same map:\n{r.stderr}")
            print("ok: a second publisher with the same map is accepted")
    print(f"ok: {args.mode} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
