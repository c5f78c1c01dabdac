#!/usr/bin/env python3
"""Cluster workers: `live --cluster` workers sharing symbol partitions
through leases produce exactly the signals of one `replay`.

    python tests/live/test_live_workers.py --engine build/pattern-engine \\
        --case exact|kill|pause|failover [--redis single|cluster]
        [--ticks 200000 --symbols 500 --partitions 12] [-- ENGINE OPTIONS]

Ticks are generated (500 symbols) and published by `publish --partitions`
into ticks:{pN} at a steady rate while three workers run, against a real
redis-server or a real Redis Cluster of three masters and three replicas
(tests/cluster/cluster.py). Each signal's partition is checked against
FNV-1a 64 of its symbol mod P, computed here.

  exact  three workers from the start to the end;
  kill   one worker SIGKILLed mid-stream: its partitions move to the other
         two within the lease and a round (the time is measured and
         printed); then a fourth worker joins and gets its share;
  pause  one worker SIGSTOPped past its lease, then SIGCONTed: its late
         writes are refused by the fence (its log says so), it rejoins;
  failover (cluster) the master of a partition SIGKILLed mid-stream: its
         replica takes over (the time is printed), the workers follow;
  usage  bad command lines: exit 2 with a message, before any connection.

Every case then checks, against the signals of `replay` on the whole file:
every signal once (ids and every field), none missing, none extra, each
signal in the partition stream its symbol maps to, each signal's stream id
derived from its tick's id, and per-symbol order as replay's.
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
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import harness as h  # noqa: E402

LEASE_MS = 1500
STARTED: list = []  # every process a case starts; none outlives the test


def fnv1a64(data: bytes) -> int:
    x = 0xcbf29ce484222325
    for c in data:
        x ^= c
        x = (x * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return x


class Single:
    """One redis-server, with the cluster harness's calls."""

    def __init__(self):
        self.server = h.RedisServer()
        self.url = self.server.url
        self.c = self.server.client()

    def client_for_key(self, key: str):
        return self.c

    def done_with(self, c) -> None:
        pass

    def close(self) -> None:
        self.c.close()
        self.server.close()


class Multi:
    """A 3-master, 3-replica Redis Cluster."""

    def __init__(self):
        import cluster  # noqa: E402  (tests/cluster/cluster.py)
        self.cl = cluster.Cluster()
        self.url = self.cl.url

    def client_for_key(self, key: str):
        return self.cl.client_for_key(key)

    def done_with(self, c) -> None:
        c.close()

    def close(self) -> None:
        self.cl.close()


def call(redis, key: str, *args):
    c = redis.client_for_key(key)
    try:
        return c.call(*args)
    finally:
        redis.done_with(c)


class Worker:
    def __init__(self, engine: str, url: str, wid: str, parts: int, tmp: str,
                 extra=()):
        self.wid = wid
        self.port = h.free_port()
        self.log_path = os.path.join(tmp, f"{wid}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [engine, "live", "--cluster", "--partitions", str(parts),
             "--worker-id", wid, "--lease-ms", str(LEASE_MS), "--redis", url,
             "--checkpoint-every", "2000", "--http", f"127.0.0.1:{self.port}",
             *extra],
            stdout=subprocess.DEVNULL, stderr=self.log)
        STARTED.append(self.proc)

    def health(self) -> dict:
        url = f"http://127.0.0.1:{self.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:  # 503 while starting
            return json.loads(e.read())

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()

    def text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                h.fail(f"worker {self.wid} did not stop within 30 s of SIGTERM")
        self.log.close()
        h.check_sanitizers(self.text(), f"worker {self.wid}")
        return self.proc.returncode


def lease_holders(redis, parts: int) -> list:
    out = []
    for p in range(parts):
        key = f"lease:{{p{p}}}"
        try:
            v = call(redis, key, "GET", key)
        except (OSError, ConnectionError, h.RedisError):
            v = None  # a failover under way
        out.append(v.decode().split(" ")[0] if isinstance(v, bytes) else None)
    return out


def signal_total(redis, parts: int) -> int:
    n = 0
    for p in range(parts):
        key = f"signals:{{p{p}}}"
        try:
            n += call(redis, key, "XLEN", key)
        except (OSError, ConnectionError, h.RedisError):
            return -1
    return n


def check_result(redis, parts: int, expected: list) -> None:
    """Every signal once; per-symbol order; each in its symbol's partition."""
    got = []
    per_symbol_got: dict = {}
    for p in range(parts):
        c = redis.client_for_key(f"signals:{{p{p}}}")
        entries = c.xrange_all(f"signals:{{p{p}}}")
        redis.done_with(c)
        h.check_signal_ids(entries)
        for _, f in entries:
            if fnv1a64(f["symbol"].encode()) % parts != p:
                h.fail(f"signal {f['id']} of {f['symbol']} is in partition {p}")
            line = h.signal_csv_line(f)
            got.append(line)
            per_symbol_got.setdefault(f["symbol"], []).append(line)
    if sorted(got) != sorted(expected):
        seen: set = set()
        dups = [g for g in got if g in seen or seen.add(g)]
        exp = set(expected)
        missing = [e for e in expected if e not in set(got)]
        extra = [g for g in got if g not in exp]
        h.fail(f"{len(got)} signals from the workers, {len(expected)} from "
               f"replay: {len(dups)} doubled, {len(missing)} missing, "
               f"{len(extra)} extra; first missing {missing[:2]}, first extra "
               f"{extra[:2]}, first doubled {dups[:2]}")
    per_symbol_exp: dict = {}
    for line in expected:
        sym = line.split(",")[2]
        per_symbol_exp.setdefault(sym, []).append(line)
    for sym, lines in per_symbol_exp.items():
        if per_symbol_got.get(sym) != lines:
            h.fail(f"symbol {sym}: its signals are not in replay's order")
    print(f"ok: {len(got)} signals over {len(per_symbol_exp)} symbols equal "
          f"replay's: none missing, none doubled, per-symbol order on every "
          f"symbol")


def usage(engine: str) -> None:
    """Command lines --cluster refuses, each with its reason."""
    url = f"redis://127.0.0.1:{h.free_port()}/0"  # nothing listens there
    base = [engine, "live", "--cluster", "--redis", url]
    cases = [
        ([], "needs --partitions"),
        (["--partitions", "0"], "partitions must be 1..65536"),
        (["--partitions", "4", "--lease-ms", "100"], "300..600000"),
        (["--partitions", "4", "--worker-id", "a b"], "without spaces"),
        (["--partitions", "4", "--ticks-stream", "t"],
         "--ticks-stream does not apply with --cluster"),
        (["--partitions", "4", "--checkpoint", "redis"],
         "--checkpoint does not apply with --cluster"),
        (["--partitions", "4", "--summary-json", "s.json"],
         "--summary-json does not apply with --cluster"),
    ]
    for args, want in cases:
        r = h.run(base + args, check=False, timeout=20)
        if r.returncode != 2 or want not in r.stderr:
            h.fail(f"live --cluster {' '.join(args)}: exit {r.returncode}, "
                   f"wanted 2 and '{want}':\n{r.stderr}")
    print(f"ok: {len(cases)} bad command lines refused with exit 2 and "
          f"their reasons")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--case", required=True,
                    choices=["exact", "kill", "pause", "failover", "usage"])
    ap.add_argument("--redis", default="single", choices=["single", "cluster"])
    ap.add_argument("--ticks", type=int, default=200000)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="how long publishing takes")
    ap.add_argument("extra", nargs="*",
                    help="engine options (after --) for replay and workers")
    a = ap.parse_args()
    P = a.partitions

    if a.case == "usage":
        usage(a.engine)
        return
    if a.case == "failover" and a.redis != "cluster":
        h.fail("--case failover needs --redis cluster")
    with tempfile.TemporaryDirectory(prefix="pe-workers-") as tmp:
        redis = Multi() if a.redis == "cluster" else Single()
        try:
            run_case(a, tmp, redis)
        finally:
            for proc in STARTED:
                if proc.poll() is None:
                    proc.kill()  # a failed case: SIGKILL works on SIGSTOP too
                    proc.wait()
            redis.close()


def run_case(a, tmp: str, redis) -> None:
    P = a.partitions
    ticks = os.path.join(tmp, "ticks.csv")
    h.gen_ticks(ticks, a.ticks, a.symbols, seed=11)
    expected, _ = h.replay_signals(a.engine, ticks, tmp, a.extra)
    print(f"replay: {len(expected)} signals from {a.ticks} ticks over "
          f"{a.symbols} symbols")
    if "--backend" in a.extra:
        n_model = sum(1 for x in expected if x.split(",")[3].startswith("model"))
        if n_model == 0:
            h.fail("the backend made no model signal: nothing to compare")
        print(f"  {n_model} of them from the model")

    workers = [Worker(a.engine, redis.url, f"w{i}", P, tmp, a.extra)
               for i in (1, 2, 3)]
    # Wait for the three to share the partitions before publishing.
    deadline = time.time() + 15
    while time.time() < deadline:
        held = lease_holders(redis, P)
        share = -(-P // 3)
        if all(held) and len(set(held)) == 3 and \
                max(held.count(w.wid) for w in workers) <= share:
            break
        time.sleep(0.05)
    else:
        h.fail(f"the workers did not share the partitions: {held}")
    print(f"ok: three workers share {P} partitions: "
          f"{[held.count(w.wid) for w in workers]}")
    if a.case == "exact":
        # A worker with another partition count refuses to start.
        r = h.run([a.engine, "live", "--cluster", "--partitions",
                   str(P + 1), "--worker-id", "odd", "--redis", redis.url],
                  check=False, timeout=20)
        if r.returncode != 1 or "every process must use the same" \
                not in r.stderr:
            h.fail(f"a worker with {P + 1} partitions: exit "
                   f"{r.returncode}: {r.stderr}")
        print(f"ok: a worker with {P + 1} partitions exits 1: "
              f"{r.stderr.strip()}")

    rate = max(1, int(a.ticks / a.seconds))
    pubs = [subprocess.Popen(
        [a.engine, "publish", "--ticks", ticks, "--redis", redis.url,
         "--partitions", str(P), "--rate", str(rate)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)]
    STARTED.extend(pubs)
    t0 = time.time()
    if a.case == "failover":
        time.sleep(a.seconds * 0.35)
        key = "ticks:{p0}"
        victim_node = redis.cl.kill_master_of(key)
        t_kill = time.time()
        redis.cl.wait_ok(masters=3, replicas=0, timeout=30)
        print(f"ok: failover: master {victim_node.port} of {key} "
              f"SIGKILLed mid-stream; its replica served the slot "
              f"{time.time() - t_kill:.2f} s later")

    victim = workers[1]
    if a.case in ("kill", "pause"):
        time.sleep(a.seconds * 0.35)
        mine = [p for p, w in enumerate(lease_holders(redis, P))
                if w == victim.wid]
        if not mine:
            h.fail(f"{victim.wid} owns no partition mid-stream")
        t_sig = time.time()
        victim.proc.send_signal(
            signal.SIGKILL if a.case == "kill" else signal.SIGSTOP)
        moved = None
        while time.time() - t_sig < 10:
            held = lease_holders(redis, P)
            if all(held[p] not in (None, victim.wid) for p in mine):
                moved = time.time() - t_sig
                break
            time.sleep(0.01)
        if moved is None:
            h.fail(f"partitions {mine} of {victim.wid} did not move "
                   f"within 10 s")
        print(f"ok: {a.case}: partitions {mine} of {victim.wid} moved to "
              f"the others {moved:.2f} s after SIG"
              f"{'KILL' if a.case == 'kill' else 'STOP'} (lease "
              f"{LEASE_MS / 1000:.1f} s)")
        if moved > 2 * LEASE_MS / 1000:
            h.fail(f"takeover took {moved:.2f} s, over twice the lease")
        if a.case == "pause":
            time.sleep(max(0.0, 2.5 * LEASE_MS / 1000 - moved))
            victim.proc.send_signal(signal.SIGCONT)
        if a.case == "kill":
            # A worker joins in its place: the two survivors give back
            # partitions until each of the three has its share.
            t_join = time.time()
            joiner = Worker(a.engine, redis.url, "w4", P, tmp, a.extra)
            workers.append(joiner)
            share = -(-P // 3)
            while time.time() - t_join < 10:
                held = lease_holders(redis, P)
                if all(held) and held.count("w4") >= P - 2 * share:
                    break
                time.sleep(0.01)
            else:
                h.fail(f"w4 did not get its share after joining: {held}")
            print(f"ok: join: w4 owned {held.count('w4')} partitions "
                  f"{time.time() - t_join:.2f} s after it started: "
                  f"{[held.count(w.wid) for w in workers if w is not victim]}")

    for p in pubs:
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            h.fail(f"publish exited {p.returncode}: {err}")
    print(f"published {a.ticks} ticks in {time.time() - t0:.1f} s")

    # Wait for the last signals, and for a partition's health to show.
    deadline = time.time() + 60
    last, stable_since = -1, time.time()
    while time.time() < deadline:
        n = signal_total(redis, P)
        if n != last:
            last, stable_since = n, time.time()
        if n >= len(expected) and time.time() - stable_since > 1.0:
            break
        time.sleep(0.1)
    for w in workers:
        if w.proc.poll() is not None and not (a.case == "kill" and
                                              w is victim):
            h.fail(f"worker {w.wid} exited {w.proc.returncode}:\n{w.text()}")
    alive = [w for w in workers if w.proc.poll() is None]
    doc = alive[0].health()
    wk = doc.get("worker", {})
    if wk.get("id") != alive[0].wid or wk.get("partitions") != P or \
            not wk.get("owned_partitions") or \
            "lag" not in wk["owned_partitions"][0]:
        h.fail(f"/health does not show the worker's partitions: {doc}")
    text = alive[0].metrics()
    first = wk["owned_partitions"][0]["partition"]
    for name in ("pe_live_worker_owned", "pe_live_partition_lag_entries"
                 f"{{partition=\"{first}\"}}",
                 "pe_live_worker_leases_total{event=\"acquired\"}"):
        if name not in text:
            h.fail(f"/metrics of {alive[0].wid} lacks {name}:\n{text}")
    print(f"ok: /health of {alive[0].wid}: owns "
          f"{[x['partition'] for x in wk['owned_partitions']]}, lag "
          f"{[x['lag']['entries'] for x in wk['owned_partitions']]}")

    if a.case == "pause":
        # Its late writes met the fence; it took partitions again later.
        deadline = time.time() + 5
        while "write refused by the fence" not in victim.text() and \
                time.time() < deadline:
            time.sleep(0.1)
        text = victim.text()
        if "write refused by the fence" not in text:
            h.fail(f"{victim.wid} resumed without meeting the fence:\n"
                   f"{text}")
        print(f"ok: pause: {victim.wid}'s late writes were refused by the "
              f"fence ({text.count('write refused by the fence')} "
              f"partitions)")
    for w in workers:
        if a.case == "kill" and w is victim:
            continue
        rc = w.stop()
        if rc != 0:
            h.fail(f"worker {w.wid} exited {rc}:\n{w.text()}")
    if a.case == "kill":
        victim.log.close()
    # A clean stop gives every lease back and leaves the heartbeats.
    held = lease_holders(redis, P)
    gone = [w.wid for w in workers if not (a.case == "kill" and w is victim)]
    if any(x in gone for x in held):
        h.fail(f"leases still held after the workers stopped: {held}")
    beats = call(redis, "pe:workers", "HKEYS", "pe:workers")
    if any(b.decode() in gone for b in beats):
        h.fail(f"heartbeats left after the workers stopped: {beats}")
    print("ok: stopped workers gave their leases back and left pe:workers")
    check_result(redis, P, expected)


if __name__ == "__main__":
    main()
