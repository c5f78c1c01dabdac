"""Test harness for `pattern-engine live`: a real redis-server on a free
loopback port in its own temporary directory, a small RESP client (standard
library only), and helpers to run the engine and compare its signals with
replay's.

Nothing here talks to a Redis the test did not start: every server gets a
fresh port and directory and is stopped when the test ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77  # ctest's SKIP_RETURN_CODE


def skip(msg: str) -> None:
    print(f"SKIP: {msg}", flush=True)
    sys.exit(SKIP)


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- RESP ----------------------------------------------------------------------


class RedisError(Exception):
    pass


class Client:
    """A blocking RESP2 client: enough for the tests' commands."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def encode(*args) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, (int, float)):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"bad reply line {line!r}")

    def call(self, *args):
        self.sock.sendall(self.encode(*args))
        r = self.read()
        if isinstance(r, RedisError):
            raise r
        return r

    def pipeline(self, commands) -> list:
        self.sock.sendall(b"".join(self.encode(*c) for c in commands))
        return [self.read() for _ in commands]

    def xrange_all(self, key: str, batch: int = 10000) -> list:
        """Every entry of a stream as (id, {field: value}) with str values."""
        out = []
        start = "-"
        while True:
            part = self.call("XRANGE", key, start, "+", "COUNT", batch)
            for eid, fields in part:
                d = {}
                for i in range(0, len(fields), 2):
                    d[fields[i].decode()] = fields[i + 1].decode()
                out.append((eid.decode(), d))
            if len(part) < batch:
                return out
            start = "(" + part[-1][0].decode()

    def info_stream(self, key: str) -> dict:
        r = self.call("XINFO", "STREAM", key)
        d = {}
        for i in range(0, len(r), 2):
            k = r[i].decode() if isinstance(r[i], bytes) else r[i]
            d[k] = r[i + 1]
        return d


# ---- redis-server ------------------------------------------------------------------


class RedisServer:
    """redis-server on a free loopback port with its own directory."""

    def __init__(self, persistence: bool = False, extra=()):
        exe = shutil.which("redis-server")
        if exe is None:
            skip("redis-server is not installed (apt-get install redis-server)")
        self.exe = exe
        self.dir = tempfile.mkdtemp(prefix="pe-redis-")
        self.port = free_port()
        self.persistence = persistence
        self.extra = list(extra)  # more redis-server options
        self.proc = None
        self.start()

    def start(self) -> None:
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log"),
                "--protected-mode", "yes",
                "--unixsocket", os.path.join(self.dir, "redis.sock")]
        if self.persistence:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = Client(self.port, timeout=1)
                try:
                    if c.call("PING") == "PONG":
                        return
                except RedisError as e:  # LOADING; NOAUTH: it is up
                    if str(e).startswith("NOAUTH"):
                        return
                finally:
                    c.close()
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        fail(f"redis-server did not start on port {self.port}; see "
             f"{self.dir}/redis.log")

    def kill(self) -> None:
        """Stops the server the hard way (SIGKILL): only fsynced data survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> Client:
        return Client(self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """The same server through its Unix socket."""
        return f"unix://{self.dir}/redis.sock"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the engine ---------------------------------------------------------------------


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")


def check_sanitizers(stderr: str, what: str) -> None:
    """In a sanitizer build a report fails the test even when the exit
    status was the one expected (an expected failure exits 1 too)."""
    for mark in SANITIZER_MARKS:
        if mark in stderr:
            fail(f"{what}: sanitizer report:\n{stderr}")


def run(cmd: list, check: bool = True, timeout: float = 300, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    check_sanitizers(r.stderr, " ".join(cmd[:2]))
    if check and r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def replay_signals(engine: str, ticks: str, out_dir: str, extra=()) -> tuple:
    """Replays a file; returns (signal CSV lines without header, state path)."""
    out = os.path.join(out_dir, "replay_signals.csv")
    state = os.path.join(out_dir, "replay.state")
    run([engine, "replay", "--ticks", ticks, "--out", out, "--state-out", state,
         "--quiet", *extra])
    with open(out) as f:
        lines = f.read().splitlines()
    return lines[1:], state


RULES = ["ema_crossover", "vwap_deviation", "volume_spike", "volatility_breakout"]


def _csv_field(s: str) -> str:
    if any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def signal_csv_line(fields: dict) -> str:
    """A signal stream entry as replay's CSV line
    (id,ts,symbol,pattern,score,confidence,price,fired)."""
    fired = [r for r in fields["fired"].split(",") if r]
    fired_text = ";".join(f"{r}={fields[r]}" for r in RULES if r in fired)
    return ",".join([
        _csv_field(fields["id"]), fields["timestamp"], _csv_field(fields["symbol"]),
        _csv_field(fields["pattern"]), fields["score"], fields["confidence"],
        fields["price"], fired_text,
    ])


def check_signal_ids(entries: list) -> None:
    """Each signal's stream id is derived from its tick's entry id."""
    for sid, f in entries:
        ms, seq = (int(x) for x in sid.split("-"))
        tms, tseq = (int(x) for x in f["tick_id"].split("-"))
        if ms != tms or seq // 4 != tseq:
            fail(f"signal {sid} is not derived from its tick id {f['tick_id']}")


def compare_signals(entries: list, expected: list, what: str) -> None:
    got = [signal_csv_line(f) for _, f in entries]
    if got == expected:
        print(f"ok: {what}: {len(got)} signals equal replay's")
        return
    seen = set()
    dups = [g for g in got if g in seen or seen.add(g)]
    missing = [e for e in expected if e not in set(got)]
    extra = [g for g in got if g not in set(expected)]
    for i, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            print(f"first difference at signal {i}:\n  live   {a}\n  replay {b}")
            break
    fail(f"{what}: {len(got)} signals from live, {len(expected)} from replay; "
         f"{len(dups)} duplicated, {len(missing)} missing, {len(extra)} extra")


def same_file(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def gen_ticks(path: str, n: int, n_symbols: int, seed: int = 7) -> None:
    """A tick CSV with n ticks over n_symbols symbols: random walks with
    jumps and size spikes, so every rule fires now and then; irregular
    integer-ns timestamps, increasing per symbol. Deterministic."""
    import random
    rnd = random.Random(seed)
    price = [50.0 + 10 * rnd.random() for _ in range(n_symbols)]
    ts = 1_700_000_000_000_000_000
    with open(path, "w") as f:
        f.write("ts,symbol,price,volume\n")
        for _ in range(n):
            s = rnd.randrange(n_symbols)
            ts += rnd.randrange(1_000_000, 400_000_000)
            r = rnd.random()
            step = rnd.gauss(0, 0.002)
            if r < 0.01:
                step += rnd.choice((-1, 1)) * 0.03
            price[s] = max(1.0, price[s] * (1 + step))
            vol = rnd.randrange(1, 200)
            if rnd.random() < 0.02:
                vol *= 20
            f.write(f"{ts},S{s:03d},{price[s]:.4f},{vol}\n")
