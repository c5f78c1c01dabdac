"""The Redis Cluster router (pe/rcluster.h) against a real 3-master +
3-replica cluster, through tests/cluster/rcluster_probe.c:

  - key slots equal redis-server's CLUSTER KEYSLOT for 3,000 keys, with and
    without hash tags;
  - keys SET through the router are found on the master serving their slot;
  - a slot moved to another master under the router's feet: the router's
    next command meets MOVED, follows it and reloads its map;
  - a slot half migrated: ASK followed with ASKING, for a key already moved
    and for a new key;
  - the master of a key killed with SIGKILL: the router waits out the
    failover and reads the key from the promoted replica;
  - and a single node (cluster support off) behind the same calls.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, RedisError, fail  # noqa: E402


class Probe:
    def __init__(self, exe: str, url: str):
        self.proc = subprocess.Popen([exe, url, "30000"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self.proc.stdout.readline().strip()

    def ask(self, *lines: str) -> list:
        self.proc.stdin.write("".join(line + "\n" for line in lines))
        self.proc.stdin.flush()
        return [self.proc.stdout.readline().rstrip("\n") for _ in lines]

    def one(self, line: str) -> str:
        return self.ask(line)[0]

    def close(self) -> None:
        self.proc.stdin.close()
        if self.proc.wait(timeout=10) != 0:
            fail(f"rcluster_probe exited {self.proc.returncode}")


def slots_equal_server(c: Cluster, p: Probe) -> None:
    rnd = random.Random(5)
    alphabet = "abcxyz{}:._-0123456789"
    keys = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 24)))
            for _ in range(3000)]
    cl = c.masters()[0].client()
    try:
        want = cl.pipeline([("CLUSTER", "KEYSLOT", k) for k in keys])
    finally:
        cl.close()
    got = [int(x) for x in p.ask(*(f"slot {k}" for k in keys))]
    bad = [(k, g, w) for k, g, w in zip(keys, got, want) if g != w]
    if bad:
        fail(f"{len(bad)} key slots differ from CLUSTER KEYSLOT, first {bad[0]}")
    print(f"ok: {len(keys)} key slots equal redis-server's CLUSTER KEYSLOT")


def sets_land_on_their_master(c: Cluster, p: Probe) -> None:
    keys = [f"k{i}" for i in range(300)] + [f"{{tag}}k{i}" for i in range(20)]
    replies = p.ask(*(f"set {k} v{k}" for k in keys))
    if any(r != "OK" for r in replies):
        fail(f"SET through the router: {[r for r in replies if r != 'OK'][:3]}")
    for k in keys:
        if c.master_of(k).call("GET", k) != f"v{k}".encode():
            fail(f"{k} is not on the master serving its slot")
    print(f"ok: {len(keys)} keys SET through the router sit on their slots' masters")


def follows_moved(c: Cluster, p: Probe) -> None:
    key = "{moved}key"
    if p.one(f"set {key} before") != "OK":
        fail("SET before the move")
    epoch0 = int(p.one("epoch").split()[0])
    slot = c.key_slot(key)
    src = c.master_of(key)
    dst = next(m for m in c.masters() if m.port != src.port)
    c.migrate_slot(src, dst, slot, [key])
    c.finish_slot(dst, slot)
    got = p.one(f"get {key}")
    if got != "before":
        fail(f"GET after the slot moved: {got!r}")
    epoch1 = int(p.one("epoch").split()[0])
    if epoch1 <= epoch0:
        fail("the slot map was not reloaded after MOVED")
    if p.one(f"set {key} after") != "OK" or dst.call("GET", key) != b"after":
        fail("SET after the move did not reach the new master")
    print(f"ok: MOVED followed (slot {slot} from {src.port} to {dst.port}), map reloaded")


def follows_ask(c: Cluster, p: Probe) -> None:
    moved, new = "{ask}moved", "{ask}new"
    if p.one(f"set {moved} m") != "OK":
        fail("SET before the migration")
    slot = c.key_slot(moved)
    src = c.master_of(moved)
    dst = next(m for m in c.masters() if m.port != src.port)
    c.migrate_slot(src, dst, slot, [moved])
    # The router still sends the slot to src, which answers ASK for a key
    # it no longer has (and for a new one).
    got = p.one(f"get {moved}")
    if got != "m":
        fail(f"GET during the migration: {got!r}")
    if p.one(f"set {new} n") != "OK":
        fail("SET of a new key during the migration")
    cl = dst.client()
    try:
        r = cl.pipeline([("ASKING",), ("GET", new)])
    finally:
        cl.close()
    if r[1] != b"n":
        fail(f"the new key is not on the importing node: {r!r}")
    # The migrating node answers ASK for a key it does not have.
    try:
        on_src = src.call("EXISTS", new)
    except RedisError as e:
        on_src = 0 if str(e).startswith("ASK ") else str(e)
    if on_src != 0:
        fail(f"the new key was written to the migrating node ({on_src})")
    c.finish_slot(dst, slot)
    if p.one(f"get {new}") != "n":
        fail("GET after the migration finished")
    print(f"ok: ASK followed with ASKING (slot {slot} migrating {src.port} -> {dst.port})")


def waits_out_failover(c: Cluster, p: Probe) -> None:
    key = "{failover}key"
    if p.one(f"set {key} kept") != "OK":
        fail("SET before the failover")
    master = c.master_of(key)
    # Until its replica has it.
    rep = c.replica_of(master)
    replica = None
    deadline = time.time() + 10
    while replica is None and time.time() < deadline:
        cl = rep.client()
        try:
            if cl.pipeline([("READONLY",), ("GET", key)])[1] == b"kept":
                replica = rep
        except (RedisError, OSError):
            pass
        finally:
            cl.close()
        time.sleep(0.05)
    if replica is None:
        fail("the key never reached the replica")
    master.kill()
    t0 = time.time()
    got = p.one(f"get {key}")
    took = time.time() - t0
    if got != "kept":
        fail(f"GET across the failover: {got!r}")
    if c.master_of(key).port != replica.port:
        fail("the key is not served by the promoted replica")
    print(f"ok: the router waited out the failover ({took:.1f} s) and read the "
          f"key from the promoted replica")


def single_node(exe: str) -> None:
    with Cluster(single=True) as c:
        p = Probe(exe, c.url)
        if p.hello != "connected single 1":
            fail(f"single node: {p.hello!r}")
        if p.one("set a 1") != "OK" or p.one("get a") != "1" or \
                p.one("get {x}missing") != "(nil)":
            fail("SET and GET on a single node")
        p.close()
    print("ok: a single node behind the same calls")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True)
    args = ap.parse_args()
    t0 = time.time()
    with Cluster() as c:
        p = Probe(args.probe, c.url)
        if p.hello != "connected cluster 3":
            fail(f"the router says {p.hello!r}")
        slots_equal_server(c, p)
        sets_land_on_their_master(c, p)
        follows_moved(c, p)
        follows_ask(c, p)
        waits_out_failover(c, p)
        p.close()
    single_node(args.probe)
    print(f"ok: in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
