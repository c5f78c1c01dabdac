"""Real Redis Clusters for the tests and benchmarks: three masters and three replicas from
Debian's redis-server on free loopback ports, made with
`redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, or a
single node, each in its own temporary directory and torn down at the end.

    with Cluster() as c:          # 3 masters + 3 replicas, state ok
        c.url                     # redis://127.0.0.1:PORT/0 of one master
        c.client_for_key("ticks:{p3}")
        c.kill_master_of("ticks:{p3}")   # SIGKILL; its replica takes over
        c.wait_ok()

    python3 tests/cluster/cluster.py --hold URLFILE   # until SIGTERM

Nothing here talks to a Redis the test did not start. Uses only the
standard library and tests/live/harness.py (the RESP client).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "live"))
import harness  # noqa: E402
from harness import Client, RedisError, fail, free_port, skip  # noqa: E402,F401


class FastClient(Client):
    """The harness's client, reading replies by position instead of slicing
    the buffer at every line, so that reading back streams of hundreds of
    thousands of entries takes seconds, not minutes."""

    def __init__(self, port: int, timeout: float = 10.0):
        super().__init__(port, timeout)
        self.pos = 0

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed")
        if self.pos > (1 << 20):
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = self.buf[self.pos:self.pos + n]
        self.pos += n + 2
        return data


def _exe(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        skip(f"{name} is not installed (apt-get install redis-server redis-tools)")
    return exe


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(1000):
        port = rnd.randrange(20000, 45000)
        if _port_free(port) and _port_free(port + 10000):
            return port
    fail("no free pair of loopback ports for a cluster node")


class Node:
    """One redis-server with cluster support on a free port."""

    def __init__(self, root: str, cluster: bool, node_timeout_ms: int):
        self.port = free_cluster_port() if cluster else free_port()
        self.dir = os.path.join(root, str(self.port))
        os.makedirs(self.dir)
        args = [_exe("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--protected-mode", "yes",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if cluster:
            args += ["--cluster-enabled", "yes",
                     "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                     "--cluster-node-timeout", str(node_timeout_ms),
                     # A replica may be promoted however long it was cut off.
                     "--cluster-replica-validity-factor", "0",
                     # Replicas sync at once, not after the default 5 s.
                     "--repl-diskless-sync-delay", "0",
                     "--repl-ping-replica-period", "1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = FastClient(self.port, timeout=1)
                try:
                    if c.call("PING") == "PONG":
                        return
                finally:
                    c.close()
            except (OSError, RedisError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        fail(f"redis-server did not start on port {self.port}; see {self.dir}/redis.log")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> Client:
        return FastClient(self.port)

    def call(self, *args):
        """One command on a connection of its own."""
        c = self.client()
        try:
            return c.call(*args)
        finally:
            c.close()

    def node_id(self) -> str:
        return self.call("CLUSTER", "MYID").decode()

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Teardown: nothing is kept, so no clean shutdown is waited for
        (a master would wait for its replicas to catch up)."""
        self.kill()


class Cluster:
    """masters + masters * replicas nodes made into one cluster; or, with
    single=True, one plain redis-server (cluster support off)."""

    def __init__(self, masters: int = 3, replicas: int = 1, single: bool = False,
                 node_timeout_ms: int = 1000):
        self.root = tempfile.mkdtemp(prefix="pe-cluster-")
        self.single = single
        self.nodes: list[Node] = []
        try:
            if single:
                self.nodes.append(Node(self.root, False, node_timeout_ms))
                return
            for _ in range(masters * (1 + replicas)):
                self.nodes.append(Node(self.root, True, node_timeout_ms))
            addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
            r = subprocess.run([_exe("redis-cli"), "--cluster", "create", *addrs,
                                "--cluster-replicas", str(replicas), "--cluster-yes"],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                fail(f"redis-cli --cluster create failed:\n{r.stdout}\n{r.stderr}")
            self.wait_ok(masters=masters, replicas=replicas)
        except BaseException:
            self.close()
            raise

    # ---- state -------------------------------------------------------------

    def _info(self, node: Node) -> dict:
        c = node.client()
        try:
            text = c.call("CLUSTER", "INFO").decode()
        finally:
            c.close()
        out = {}
        for line in text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out

    def _replicas_online(self, node: Node) -> int:
        c = node.client()
        try:
            text = c.call("INFO", "replication").decode()
        finally:
            c.close()
        return sum(1 for line in text.splitlines()
                   if line.startswith("slave") and "state=online" in line)

    def shards(self, node: Node | None = None) -> list:
        """CLUSTER SHARDS as a list of {slots: [(lo, hi)], nodes: [{...}]}."""
        node = node or next(n for n in self.nodes if n.alive)
        c = node.client()
        try:
            raw = c.call("CLUSTER", "SHARDS")
        finally:
            c.close()
        out = []
        for shard in raw:
            d = {shard[i].decode(): shard[i + 1] for i in range(0, len(shard), 2)}
            slots = [(d["slots"][i], d["slots"][i + 1])
                     for i in range(0, len(d["slots"]), 2)]
            nodes = []
            for n in d["nodes"]:
                nd = {}
                for i in range(0, len(n), 2):
                    v = n[i + 1]
                    nd[n[i].decode()] = v.decode() if isinstance(v, bytes) else v
                nodes.append(nd)
            out.append({"slots": slots, "nodes": nodes})
        return out

    def wait_ok(self, masters: int = 3, replicas: int = 1, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok with all slots served
        by `masters` online masters, each with `replicas` online replicas
        in sync (replicas=0 after a failover that left a shard without)."""
        if self.single:
            return
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            try:
                ok = True
                for n in self.nodes:
                    if not n.alive:
                        continue
                    info = self._info(n)
                    if info.get("cluster_state") != "ok" or \
                            info.get("cluster_slots_ok") != "16384":
                        ok = False
                        last = f"{n.port}: {info.get('cluster_state')}"
                        break
                if ok:
                    ready = 0
                    for m in self.masters():
                        if self._replicas_online(m) >= replicas:
                            ready += 1
                    if ready == masters:
                        return
                    last = f"{ready} of {masters} masters with replicas in sync"
            except (OSError, RedisError, ConnectionError) as e:
                last = str(e)
            time.sleep(0.1)
        fail(f"the cluster did not become ok in {timeout:.0f} s ({last})")

    # ---- access ------------------------------------------------------------

    @property
    def url(self) -> str:
        n = next(n for n in self.nodes if n.alive)
        return f"redis://127.0.0.1:{n.port}/0"

    def node_by_port(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def master_of(self, key: str) -> Node:
        """The live master serving key's slot."""
        if self.single:
            return self.nodes[0]
        live = next(n for n in self.nodes if n.alive)
        c = live.client()
        try:
            slot = c.call("CLUSTER", "KEYSLOT", key)
        finally:
            c.close()
        for s in self.shards():
            if any(lo <= slot <= hi for lo, hi in s["slots"]):
                for x in s["nodes"]:
                    if x["role"] == "master" and x.get("health") == "online":
                        return self.node_by_port(int(x["port"]))
        fail(f"no online master serves {key} (slot {slot})")

    def client_for_key(self, key: str) -> Client:
        return self.master_of(key).client()

    def masters(self) -> list[Node]:
        if self.single:
            return list(self.nodes)
        out = []
        for s in self.shards():
            for x in s["nodes"]:
                if x["role"] == "master" and x.get("health") == "online" and s["slots"]:
                    out.append(self.node_by_port(int(x["port"])))
        return out

    def keys(self, pattern: str) -> list[str]:
        """Every key matching pattern over all live masters."""
        out = []
        for m in self.masters():
            c = m.client()
            try:
                cursor = b"0"
                while True:
                    cursor, part = c.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                    out += [k.decode() for k in part]
                    if cursor in (b"0", 0):
                        break
            finally:
                c.close()
        return sorted(set(out))

    def tick_entries(self, key: str) -> list:
        """The entries of a tick stream as (id, symbol, price, volume,
        timestamp) strings, read with redis-cli from the master serving it
        (C-speed for hundreds of thousands of entries). Fails on an entry
        whose fields are not exactly those four."""
        node = self.master_of(key)
        r = subprocess.run([_exe("redis-cli"), "-p", str(node.port), "--raw",
                            "XRANGE", key, "-", "+"], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            fail(f"redis-cli XRANGE {key}: {r.stderr}")
        lines = r.stdout.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) % 9:
            fail(f"XRANGE {key}: {len(lines)} lines, not 9 an entry")
        out = []
        for i in range(0, len(lines), 9):
            e = lines[i:i + 9]
            if e[1::2] != ["symbol", "price", "volume", "timestamp"]:
                fail(f"XRANGE {key}: entry {e[0]} has fields {e[1::2]}")
            out.append((e[0], e[2], e[4], e[6], e[8]))
        return out

    def replica_of(self, master: Node) -> Node:
        for s in self.shards():
            if any(x["port"] == master.port for x in s["nodes"]):
                for x in s["nodes"]:
                    if x["role"] == "replica":
                        return self.node_by_port(int(x["port"]))
        fail(f"no replica of {master.port}")

    def key_slot(self, key: str) -> int:
        return self.masters()[0].call("CLUSTER", "KEYSLOT", key)

    @staticmethod
    def migrate_slot(src: Node, dst: Node, slot: int, keys=None) -> None:
        """Starts moving slot from src to dst (IMPORTING on dst, MIGRATING on
        src), then MIGRATEs the given keys, or all of the slot's keys when
        keys is None; the slot stays half migrated until finish_slot."""
        dst.call("CLUSTER", "SETSLOT", slot, "IMPORTING", src.node_id())
        src.call("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.node_id())
        while True:
            batch = keys if keys is not None else \
                src.call("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if batch:
                src.call("MIGRATE", "127.0.0.1", dst.port, "", 0, 10000, "KEYS", *batch)
            if keys is not None or not batch:
                return

    def finish_slot(self, dst: Node, slot: int) -> None:
        """Hands slot to dst on every master (SETSLOT NODE)."""
        for m in self.masters():
            m.call("CLUSTER", "SETSLOT", slot, "NODE", dst.node_id())

    def kill_master_of(self, key: str) -> Node:
        m = self.master_of(key)
        m.kill()
        return m

    # ---- teardown ----------------------------------------------------------

    def close(self) -> None:
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _hold(path: str, single: bool) -> None:
    """Makes a cluster (or a single node), writes its URL to path, and keeps
    it until SIGTERM or SIGINT: for benchmarks driven from a shell."""
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(1))
    signal.signal(signal.SIGINT, lambda *_: done.append(1))
    with Cluster(single=single) as c:
        with open(path + ".tmp", "w") as f:
            f.write(c.url + "\n")
        os.rename(path + ".tmp", path)
        while not done:
            time.sleep(0.1)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] in ("--hold", "--hold-single"):
        _hold(sys.argv[2], sys.argv[1] == "--hold-single")
        sys.exit(0)
    # A smoke run: make a cluster, print its shards, tear it down.
    t0 = time.time()
    with Cluster() as c:
        print(f"cluster ok in {time.time() - t0:.1f} s at {c.url}")
        for s in c.shards():
            print(s["slots"], [(x["port"], x["role"], x.get("health")) for x in s["nodes"]])
    _ = harness
