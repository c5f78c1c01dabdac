#!/usr/bin/env python3
"""Aggregate ticks/s of `live --cluster` workers, side by side in one run.

For each worker count K: a fresh Redis (one redis-server, or with
--masters 3 a Redis Cluster of three masters and three replicas from
tests/cluster/cluster.py), N ticks over S symbols published by partition
before the workers start, then K workers started together drain them. The
rate is N over the time from the first entry read to the last (summed from
the workers' /health every 20 ms), so start-up is not counted. Also
printed: the CPU seconds the workers and the Redis servers spent per million
ticks over that time (from /proc), the figures a capacity model is built from
(docs/scaling.md), and a check that the signals equal replay's count.

    bench/cluster_scale.py [--workers 1,2,4] [--masters 0|3] [--ticks 1000000]
        [--symbols 500] [--partitions 16] [--engine build/pattern-engine]

PE_REDIS_BIN=/path/to/redis-server takes redis-server (and redis-cli next
to it, with the libraries of a lib/ folder beside them) from there instead
of PATH: how the run goes on a host without Debian's packages.
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
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "live"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))


def use_redis_bin() -> None:
    exe = os.environ.get("PE_REDIS_BIN")
    if not exe:
        return
    d = os.path.dirname(os.path.abspath(exe))
    os.environ["PATH"] = d + os.pathsep + os.environ.get("PATH", "")
    lib = os.path.join(d, "lib")
    if os.path.isdir(lib):
        old = os.environ.get("LD_LIBRARY_PATH")
        os.environ["LD_LIBRARY_PATH"] = lib + (os.pathsep + old if old else "")


use_redis_bin()
import harness as h  # noqa: E402


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class Single:
    """One redis-server."""

    def __init__(self):
        self.server = h.RedisServer()
        self.url = self.server.url

    def pids(self) -> list:
        return [self.server.proc.pid]

    def client_for_key(self, key: str) -> h.Client:
        return self.server.client()

    def close(self) -> None:
        self.server.close()


class Multi:
    """A Redis Cluster from tests/cluster/cluster.py."""

    def __init__(self, masters: int):
        import cluster  # noqa: E402  (tests/cluster/cluster.py)
        self.c = cluster.Cluster(masters=masters)
        self.c.__enter__()
        self.url = self.c.url

    def pids(self) -> list:
        return [n.proc.pid for n in self.c.nodes if n.proc is not None]

    def client_for_key(self, key: str) -> h.Client:
        return self.c.client_for_key(key)

    def close(self) -> None:
        self.c.__exit__(None, None, None)


def publish(engine: str, redis, ticks: str, parts: int) -> None:
    """The ticks into ticks:{pN}, routed by publish itself."""
    h.run([engine, "publish", "--ticks", ticks, "--redis", redis.url,
           "--partitions", str(parts), "--quiet"])


def entries(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health",
                                    timeout=2) as r:
            doc = json.loads(r.read())
    except urllib.error.HTTPError as e:
        doc = json.loads(e.read())
    except (OSError, ValueError):
        return 0
    return int(doc.get("entries", 0))


def run_one(a, k: int, ticks: str, expected: int, tmp: str) -> dict:
    redis = Multi(a.masters) if a.masters else Single()
    procs: list = []
    try:
        pub_cpu0 = sum(cpu_s(p) for p in redis.pids())
        publish(a.engine, redis, ticks, a.partitions)
        pub_cpu = sum(cpu_s(p) for p in redis.pids()) - pub_cpu0
        worker_cpu0 = redis_cpu0 = 0.0
        ports = [h.free_port() for _ in range(k)]
        procs = [subprocess.Popen(
            [a.engine, "live", "--cluster", "--partitions", str(a.partitions),
             "--worker-id", f"w{i}", "--lease-ms", str(a.lease_ms), "--redis",
             redis.url, "--http", f"127.0.0.1:{ports[i]}", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in range(k)]
        t_first = t_done = None
        deadline = time.time() + a.timeout
        while time.time() < deadline:
            n = sum(entries(p) for p in ports)
            now = time.time()
            if n > 0 and t_first is None:
                t_first = now
                worker_cpu0 = sum(cpu_s(p.pid) for p in procs)
                redis_cpu0 = sum(cpu_s(p) for p in redis.pids())
            if n >= a.ticks:
                t_done = now
                break
            time.sleep(0.02)
        worker_cpu = sum(cpu_s(p.pid) for p in procs) - worker_cpu0
        redis_cpu = sum(cpu_s(p) for p in redis.pids()) - redis_cpu0
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            _, err = p.communicate(timeout=60)
            if p.returncode != 0:
                h.fail(f"a worker exited {p.returncode}: {err}")
        if t_done is None:
            h.fail(f"{k} workers did not drain {a.ticks} ticks in {a.timeout} s")
        signals = 0
        for p in range(a.partitions):
            key = f"signals:{{p{p}}}"
            c = redis.client_for_key(key)
            signals += c.call("XLEN", key)
            c.close()
        secs = max(t_done - t_first, 1e-3)
        return {"workers": k, "seconds": secs, "rate": a.ticks / secs,
                "worker_cpu_per_m": worker_cpu / a.ticks * 1e6,
                "redis_cpu_per_m": redis_cpu / a.ticks * 1e6,
                "publish_cpu_per_m": pub_cpu / a.ticks * 1e6,
                "signals": signals, "signals_ok": signals == expected}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        redis.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", default=os.path.join(ROOT, "build",
                                                     "pattern-engine"))
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--masters", type=int, default=0,
                    help="0: one redis-server; 3: a 3+3 Redis Cluster")
    ap.add_argument("--ticks", type=int, default=1000000)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--lease-ms", type=int, default=1500)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    counts = [int(x) for x in a.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="pe-scale-") as tmp:
        ticks = os.path.join(tmp, "ticks.csv")
        h.gen_ticks(ticks, a.ticks, a.symbols, seed=5)
        expected, _ = h.replay_signals(a.engine, ticks, tmp)
        where = (f"a {a.masters}-master Redis Cluster (+{a.masters} replicas)"
                 if a.masters else "one redis-server")
        print(f"{a.ticks} ticks over {a.symbols} symbols, {a.partitions} "
              f"partitions, {where}; {os.cpu_count()} CPUs; replay: "
              f"{len(expected)} signals")
        print("CPU s/M: CPU seconds per million ticks; redis: every "
              "redis-server (replicas too) while the workers drain, and while "
              "publish loads the ticks")
        print(f"{'workers':>7} {'drain s':>8} {'ticks/s':>10} "
              f"{'per worker':>10} {'worker CPU s/M':>14} "
              f"{'redis CPU s/M':>13} {'publish redis':>13} {'signals':>8}")
        for k in counts:
            r = run_one(a, k, ticks, len(expected), tmp)
            print(f"{r['workers']:>7} {r['seconds']:>8.2f} {r['rate']:>10,.0f} "
                  f"{r['rate'] / k:>10,.0f} {r['worker_cpu_per_m']:>14.2f} "
                  f"{r['redis_cpu_per_m']:>13.2f} "
                  f"{r['publish_cpu_per_m']:>13.2f} "
                  f"{'= replay' if r['signals_ok'] else 'DIFFERS'}", flush=True)
            if not r["signals_ok"]:
                h.fail(f"{r['signals']} signals, replay made {len(expected)}")


if __name__ == "__main__":
    main()
