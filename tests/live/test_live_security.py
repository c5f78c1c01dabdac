#!/usr/bin/env python3
"""Faults of configuration and of neighbours, against a real redis-server:

- credentials: a wrong password, a missing one, a bad database index are
  fatal at once (exit 1 with the server's own words), for live and publish,
  while a server that is not there yet is waited for; no message, log line
  or summary ever shows the password of the URL;
- two workers on one checkpoint (a file, or the Redis key): the second is
  refused with a message naming the holder (host:pid); a holder killed with
  SIGKILL does not block the next start;
- /health under slow clients: connections that send one header line a
  second, more of them than the server's connection limit, do not stop
  /health from answering; the startup line says which interfaces the HTTP
  server binds.

    python tests/live/test_live_security.py --engine build/pattern-engine \\
        [--only credentials|lock|http]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ENGINE = ""
PASSWORD = "s3cret-Pw_42"


def expect_fail(r, needles, what: str, timeout_s: float = None) -> None:
    if r.returncode != 1:
        h.fail(f"{what}: exit {r.returncode}, expected 1\n{r.stderr}")
    for needle in needles:
        if needle not in r.stderr:
            h.fail(f"{what}: stderr lacks {needle!r}:\n{r.stderr}")
    if PASSWORD in r.stderr or PASSWORD in r.stdout:
        h.fail(f"{what}: the password appears in the output:\n{r.stderr}")
    print(f"ok: {what}: exit 1: {r.stderr.strip().splitlines()[-1][:160]}")


def timed(cmd, timeout: float = 20, env=None):
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        h.fail(f"{' '.join(cmd[:2])} still running after {timeout} s: "
               f"a fatal error is being retried")
    h.check_sanitizers(r.stderr, " ".join(cmd[:2]))
    return r, time.time() - t0


def test_credentials(tmp: str) -> None:
    ticks = os.path.join(tmp, "t.csv")
    h.gen_ticks(ticks, 200, 3)
    with h.RedisServer(extra=["--requirepass", PASSWORD]) as redis:
        base = f"127.0.0.1:{redis.port}"
        good = f"redis://:{PASSWORD}@{base}/0"
        cases = [
            ("a wrong password", f"redis://:wrong-{PASSWORD}@{base}/0",
             ["WRONGPASS"]),
            ("a wrong user", f"redis://nobody:{PASSWORD}@{base}/0",
             ["WRONGPASS"]),
            ("no password", f"redis://{base}/0", ["NOAUTH"]),
            ("a database index out of range", f"redis://:{PASSWORD}@{base}/99",
             ["DB index is out of range"]),
        ]
        for what, url, needles in cases:
            r, took = timed([ENGINE, "live", "--redis", url, "--ticks-stream",
                             "t", "--signals-stream", "s", "--exit-on-idle",
                             "0.3"])
            expect_fail(r, needles, f"live with {what} ({took:.1f} s)")
            r, took = timed([ENGINE, "publish", "--ticks", ticks, "--redis",
                             url, "--ticks-stream", "t", "--quiet"])
            expect_fail(r, needles, f"publish with {what} ({took:.1f} s)")

        # The good password works, and shows nowhere: not in the log, the
        # summary, /health or /metrics.
        r = h.run([ENGINE, "publish", "--ticks", ticks, "--redis", good,
                   "--ticks-stream", "t"])
        summary = os.path.join(tmp, "summary.json")
        port = h.free_port()
        p = subprocess.Popen(
            [ENGINE, "live", "--redis", good, "--ticks-stream", "t",
             "--signals-stream", "s", "--http", f"127.0.0.1:{port}",
             "--summary-json", summary],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        bodies = []
        deadline = time.time() + 10
        while time.time() < deadline and len(bodies) < 2:
            try:
                for path in ("/health", "/metrics"):
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}{path}", timeout=2) as u:
                        bodies.append(u.read().decode())
            except OSError:
                time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        if p.returncode != 0 or len(bodies) < 2:
            h.fail(f"live with the right password: exit {p.returncode}, "
                   f"{len(bodies)} HTTP answers\n{err}")
        with open(summary) as f:
            text = f.read()
        json.loads(text)
        for where, t in (("stderr", err), ("stdout", out), ("summary", text),
                         ("/health", bodies[0]), ("/metrics", bodies[1]),
                         ("publish's output", r.stdout + r.stderr)):
            if PASSWORD in t:
                h.fail(f"the password appears in {where}")
        print("ok: the right password works and appears in no output, "
              "summary, /health or /metrics")

    # A URL that does not parse is quoted without its password.
    for url in (f"redis://user:{PASSWORD}@host:99999/0",
                f"redis://:{PASSWORD}@host/notadb",
                f"redis://{PASSWORD}@[::1/0"):
        for cmd in ([ENGINE, "live", "--redis", url],
                    [ENGINE, "publish", "--ticks", ticks, "--redis", url]):
            r, _ = timed(cmd)
            if r.returncode == 0 or "bad Redis URL" not in r.stderr:
                h.fail(f"{cmd[1]} with a bad URL: exit {r.returncode}\n"
                       f"{r.stderr}")
            if PASSWORD in r.stderr or "***" not in r.stderr:
                h.fail(f"{cmd[1]}: the bad URL is not redacted:\n{r.stderr}")
        env = dict(os.environ, REDIS_URL=url)
        r, _ = timed([ENGINE, "live"], env=env)
        if r.returncode == 0 or PASSWORD in r.stderr:
            h.fail(f"live with REDIS_URL={url!r}: exit {r.returncode}, "
                   f"stderr:\n{r.stderr}")
    print("ok: bad URLs are quoted with the password as ***")

    # Nobody listening yet is not fatal: live waits and logs its retries.
    port = h.free_port()
    p = subprocess.Popen(
        [ENGINE, "live", "--redis", f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
         "--ticks-stream", "t", "--signals-stream", "s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    if p.poll() is not None:
        h.fail(f"live gave up on a Redis that is not up yet: exit "
               f"{p.returncode}\n{p.stderr.read()}")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=20)
    if "retrying" not in err or PASSWORD in err:
        h.fail(f"live waiting for Redis: stderr:\n{err}")
    print("ok: a Redis not up yet is retried (refused connections are "
          "transient)")


def test_lock(tmp: str) -> None:
    host = socket.gethostname()
    with h.RedisServer() as redis:
        c = redis.client()
        for kind in ("file", "redis"):
            ckpt = os.path.join(tmp, "lock.ckpt") if kind == "file" else "redis"
            cmd = [ENGINE, "live", "--redis", redis.url, "--ticks-stream",
                   f"t{kind}", "--signals-stream", f"s{kind}",
                   "--checkpoint", ckpt, "--checkpoint-every", "1"]
            first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
            time.sleep(0.7)
            if first.poll() is not None:
                h.fail(f"{kind}: the first worker exited {first.returncode}:"
                       f"\n{first.stderr.read()}")
            r, _ = timed(cmd + ["--exit-on-idle", "0.3"])
            expect_fail(r, ["in use by another worker",
                            f"{host}:{first.pid}"],
                        f"{kind} checkpoint: a second worker")
            if kind == "redis":
                # The lease is renewed while its holder runs: 4.5 s in, well
                # past a third of it, it still has most of its 10 s.
                time.sleep(4.5)
                ttl = c.call("PTTL", "sredis:checkpoint:lock")
                if not 7000 < ttl <= 10000:
                    h.fail(f"the lease is not renewed: PTTL {ttl} ms")
                print(f"ok: the lease is renewed while its holder runs "
                      f"(PTTL {ttl} ms after 4.5 s)")
            first.kill()
            first.wait()
            r, took = timed(cmd + ["--exit-on-idle", "0.3"])
            if r.returncode != 0:
                h.fail(f"{kind}: after the holder was killed, a new worker "
                       f"exited {r.returncode}:\n{r.stderr}")
            print(f"ok: {kind} checkpoint: a holder killed with SIGKILL does "
                  f"not block the next start ({took:.1f} s)")
        # A holder on another host cannot be seen dying: its lease expires.
        c.call("SET", "sredis:checkpoint:lock",
               "otherhost:4242 ns=pid:[1] token=1", "PX", "1500")
        cmd = [ENGINE, "live", "--redis", redis.url, "--ticks-stream",
               "tredis", "--signals-stream", "sredis", "--checkpoint", "redis",
               "--exit-on-idle", "0.3"]
        r, _ = timed(cmd)
        expect_fail(r, ["otherhost:4242"], "a lease held on another host")
        time.sleep(1.6)
        r, _ = timed(cmd)
        if r.returncode != 0:
            h.fail(f"after the lease expired: exit {r.returncode}\n{r.stderr}")
        if c.call("EXISTS", "sredis:checkpoint:lock") != 0:
            h.fail("a clean stop left its lease behind")
        print("ok: a lease of another host blocks until it expires, then the "
              "next start takes it; a clean stop releases it")


def slow_client(port: int, stop: threading.Event, counts: dict) -> None:
    """Opens a connection, sends a request line and then one header line a
    second, never finishing; opens another when the server cuts it."""
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.1)
            continue
        counts["opened"] += 1
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                s.sendall(b"X-Slow: 1\r\n")
                stop.wait(1.0)
        except OSError:
            counts["cut"] += 1
        finally:
            s.close()


def health(port: int, timeout: float):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health",
                                timeout=timeout) as u:
        return u.status, json.loads(u.read())


def test_http(tmp: str) -> None:
    with h.RedisServer() as redis:
        port = h.free_port()
        p = subprocess.Popen(
            [ENGINE, "live", "--redis", redis.url, "--ticks-stream", "t",
             "--signals-stream", "s", "--http", f":{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    status, _ = health(port, 2)
                    break
                except OSError:
                    if time.time() > deadline or p.poll() is not None:
                        h.fail("live's /health never answered")
                    time.sleep(0.1)
            # ":PORT" is loopback only: nothing listens on another address.
            others = [a for a in socket.gethostbyname_ex(
                socket.gethostname())[2] if not a.startswith("127.")]
            for addr in others[:1]:
                try:
                    socket.create_connection((addr, port), timeout=1).close()
                    h.fail(f":{port} is reachable on {addr}")
                except OSError:
                    print(f"ok: :{port} is not reachable on {addr}")
            stop = threading.Event()
            counts = {"opened": 0, "cut": 0}
            threads = [threading.Thread(target=slow_client,
                                        args=(port, stop, counts), daemon=True)
                       for _ in range(120)]
            for t in threads:
                t.start()
            time.sleep(2.0)  # every slot taken, the clients trickling
            worst = 0.0
            for i in range(20):
                t0 = time.time()
                try:
                    status, body = health(port, 2.0)
                except OSError as e:
                    h.fail(f"/health under 120 slow clients: request {i + 1} "
                           f"failed after {time.time() - t0:.2f} s: {e}")
                worst = max(worst, time.time() - t0)
                if status != 200 or body.get("status") != "ok":
                    h.fail(f"/health: {status} {body}")
                time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join(timeout=5)
            if worst > 1.0:
                h.fail(f"/health took {worst:.2f} s under slow clients")
            print(f"ok: /health answered 20 of 20 times under 120 slow "
                  f"clients, slowest {worst * 1000:.0f} ms "
                  f"({counts['opened']} slow connections opened, "
                  f"{counts['cut']} cut by the server)")
        finally:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=20)
        want = f"serving /health and /metrics on http://127.0.0.1:{port} " \
               f"(loopback only)"
        if want not in err:
            h.fail(f"the startup line does not say what is bound:\n{err}")
        print(f"ok: the log says: {want}")
        if p.returncode != 0:
            h.fail(f"live exited {p.returncode}:\n{err}")


def test_fifo(tmp: str) -> None:
    """A checkpoint path that is a FIFO is refused at once, not read (a
    read would wait for a writer for ever)."""
    fifo = os.path.join(tmp, "fifo.ckpt")
    os.mkfifo(fifo)
    with h.RedisServer() as redis:
        r, secs = timed([ENGINE, "live", "--redis", redis.url, "--checkpoint",
                         fifo, "--exit-on-idle", "0.3"], timeout=10)
        expect_fail(r, ["not a regular file", fifo], "a FIFO as checkpoint")
        if secs > 5:
            h.fail(f"a FIFO as checkpoint took {secs:.1f} s to refuse")


def main() -> None:
    global ENGINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    ENGINE = a.engine
    with tempfile.TemporaryDirectory(prefix="pe-sec-") as tmp:
        for name, fn in (("credentials", test_credentials),
                         ("lock", test_lock), ("fifo", test_fifo),
                         ("http", test_http)):
            if not a.only or a.only == name:
                fn(tmp)


if __name__ == "__main__":
    main()
