#!/usr/bin/env python3
"""Redis goes away mid-stream: redis-server (AOF, appendfsync always) is
killed with SIGKILL twice while ticks are being published and `live` is
running, and started again on the same port and directory. Publish and live
reconnect; in the end the ticks stream holds every tick once, the signals
stream exactly replay's signals, and the state equals replay's. Along the
way /health and /metrics are read over HTTP, and live is stopped with
SIGTERM, which must drain, checkpoint and exit 0.

    python tests/live/test_live_redis_restart.py --engine build/pattern-engine
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def http_get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                    timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    h.fail(f"/metrics has no {name}")
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--ticks", type=int, default=60_000)
    ap.add_argument("--rate", type=float, default=15_000)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="pe-restart-") as tmp, \
            h.RedisServer(persistence=True) as redis:
        ticks = os.path.join(tmp, "ticks.csv")
        h.gen_ticks(ticks, a.ticks, 40, seed=11)
        expected, replay_state = h.replay_signals(a.engine, ticks, tmp)
        http_port = h.free_port()
        state = os.path.join(tmp, "live.state")
        summary = os.path.join(tmp, "summary.json")
        live_err = open(os.path.join(tmp, "live.err"), "w+")
        live = subprocess.Popen(
            [a.engine, "live", "--redis", redis.url, "--ticks-stream", "ticks:r",
             "--signals-stream", "signals:r", "--checkpoint", "redis",
             "--checkpoint-every", "2000", "--http", f"127.0.0.1:{http_port}",
             "--state-out", state, "--summary-json", summary],
            stdout=subprocess.DEVNULL, stderr=live_err)
        pub_err = open(os.path.join(tmp, "publish.err"), "w+")
        publisher = subprocess.Popen(
            [a.engine, "publish", "--ticks", ticks, "--redis", redis.url,
             "--ticks-stream", "ticks:r", "--rate", str(a.rate),
             "--pipeline", "100"],
            stdout=subprocess.DEVNULL, stderr=pub_err)

        time.sleep(0.5)
        status, body = http_get(http_port, "/health")
        health = json.loads(body)
        if status != 200 or health["status"] != "ok":
            h.fail(f"/health while running: {status} {body}")
        print(f"ok: /health while running: {body.strip()}")

        for i in range(2):
            time.sleep(1.0)
            redis.kill()
            print(f"redis-server killed (SIGKILL), restart {i + 1}")
            time.sleep(0.3)
            status, body = http_get(http_port, "/health")
            if status != 503 or json.loads(body)["status"] != "disconnected":
                h.fail(f"/health with Redis down should be 503 disconnected: "
                       f"{status} {body}")
            time.sleep(0.4)
            redis.start()

        if publisher.wait(timeout=120) != 0:
            pub_err.seek(0)
            h.fail(f"publish failed: {pub_err.read()}")
        pub_err.seek(0)
        print(pub_err.read().strip())
        c = redis.client()
        if c.call("XLEN", "ticks:r") != a.ticks:
            h.fail(f"the ticks stream holds {c.call('XLEN', 'ticks:r')} "
                   f"entries, not {a.ticks}")
        last = c.info_stream("ticks:r")["last-generated-id"].decode()
        deadline = time.time() + 60
        while True:
            status, body = http_get(http_port, "/health")
            health = json.loads(body)
            if health["last_entry_id"] == last and health["status"] == "ok":
                break
            if time.time() > deadline or live.poll() is not None:
                h.fail(f"live did not catch up: {body}")
            time.sleep(0.1)
        status, text = http_get(http_port, "/metrics")
        if metric(text, "pe_live_entries_total") != a.ticks:
            h.fail("pe_live_entries_total is not the number of ticks")
        if metric(text, "pe_live_reconnects_total") < 2:
            h.fail("pe_live_reconnects_total should count both restarts")
        if 'pe_live_rejections_total{reason="bad_price"} 0' not in text or \
                "pe_live_tick_to_signal_latency_seconds_bucket{le=\"+Inf\"}" \
                not in text:
            h.fail("/metrics lacks the rejection or latency series")
        status, _ = http_get(http_port, "/nope")
        if status != 404:
            h.fail(f"/nope should be 404, got {status}")
        print("ok: /health and /metrics report the catch-up and the reconnects")

        live.send_signal(signal.SIGTERM)
        try:
            rc = live.wait(timeout=20)
        except subprocess.TimeoutExpired:
            live.kill()
            h.fail("live did not stop within 20 s of SIGTERM")
        live_err.seek(0)
        log = live_err.read()
        print(log.strip())
        h.check_sanitizers(log, "live")
        pub_err.seek(0)
        h.check_sanitizers(pub_err.read(), "publish")
        if rc != 0:
            h.fail(f"live exited {rc} after SIGTERM")
        with open(summary) as f:
            s = json.load(f)
        if s["reconnects"] < 2:
            h.fail(f"summary counts {s['reconnects']} reconnects, expected 2+")
        entries = c.xrange_all("signals:r")
        h.check_signal_ids(entries)
        h.compare_signals(entries, expected, "across two Redis restarts")
        if not h.same_file(state, replay_state):
            h.fail("the final engine state differs from replay's")
        print("ok: final state equals replay's byte for byte")


if __name__ == "__main__":
    main()
