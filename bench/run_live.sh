#!/bin/sh
# The live benchmark, side by side in one run on one machine over loopback:
#   1. the ceiling: redis-benchmark's XADD rate (a tick-shaped entry), one
#      pipelined connection and 50;
#   2. sustained ticks/s through one `live` worker: N ticks already in the
#      stream (drained as fast as it can), then N ticks published while live
#      reads them (publish as fast as it can);
#   3. tick-XADD-to-signal-visible latency at RATE ticks/s for SECONDS: a
#      producer adds ticks that each make a signal, a consumer blocked on the
#      signals stream times each one (bench/live_bench.c); and the same
#      producer and consumer on the ticks stream itself, without the engine:
#      the floor Redis and the machine set.
# Prints a table and writes the raw results under OUT (default bench-out/).
#
#   bench/run_live.sh [N] [RATE] [SECONDS]     defaults 2000000 10000 10
#   BUILD=build PIN=1 bench/run_live.sh         PIN=1: redis on CPU 0, live
#                                               on CPU 1, the clients on CPU 2
#                                               (needs 3 CPUs nobody else uses)
set -eu
cd "$(dirname "$0")/.."
N=${1:-2000000}
RATE=${2:-10000}
SECONDS_LAT=${3:-10}
BUILD=${BUILD:-build}
OUT=${OUT:-bench-out}
E=$BUILD/pattern-engine
LB=$BUILD/bench/live_bench
mkdir -p "$OUT"
pin_redis=""
pin_engine=""
pin_client=""
if [ "${PIN:-0}" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 3 ]; then
  pin_redis="taskset -c 0"
  pin_engine="taskset -c 1"
  pin_client="taskset -c 2"
fi
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=redis://127.0.0.1:$port/0
$pin_redis redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" --daemonize yes --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log"
cleanup() {
  [ -f "$tmp/redis.pid" ] && kill "$(cat "$tmp/redis.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for _ in 1 2 3 4 5 6 7 8 9 10; do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
rcli() { redis-cli -p "$port" "$@"; }
json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$port; $(nproc) CPUs; PIN=${PIN:-0}"

# ---- 1. ceiling -------------------------------------------------------------
bench_xadd() { # clients pipeline
  $pin_client redis-benchmark -p "$port" -n 1000000 -c "$1" -P "$2" -q \
    XADD bench:ceiling '*' symbol AAPL price 185.64 volume 93 \
    timestamp 1704205800012482000 2>/dev/null | tr '\r' '\n' |
    grep 'requests per second' | tail -1 | sed 's/.*: \([0-9.]*\) requests.*/\1/'
}
echo "== 1. redis-benchmark XADD"
ceil1=$(bench_xadd 1 100)
rcli del bench:ceiling >/dev/null
ceil50=$(bench_xadd 50 100)
rcli del bench:ceiling >/dev/null
echo "   1 connection, pipeline 100: $ceil1 XADD/s; 50 connections: $ceil50 XADD/s"

# ---- 2. throughput ------------------------------------------------------------
echo "== 2. throughput: $N ticks over 100 symbols"
$LB gen --ticks "$N" --symbols 100 --out "$OUT/live_ticks.csv"
$E replay --ticks "$OUT/live_ticks.csv" --out "$OUT/replay_signals.csv" --quiet
want=$(($(wc -l < "$OUT/replay_signals.csv") - 1))
$pin_client $E publish --ticks "$OUT/live_ticks.csv" --redis "$URL" --ticks-stream ticks:tp \
  2> "$OUT/publish_backlog.txt"
pub_rate=$(grep throughput "$OUT/publish_backlog.txt" | awk '{print $2}')
$pin_engine $E live --redis "$URL" --ticks-stream ticks:tp --signals-stream signals:tp \
  --checkpoint "$tmp/ckpt" --exit-on-idle 1 --quiet --summary-json "$OUT/live_backlog.json"
drain=$(json "$OUT/live_backlog.json" "['entries_per_s']")
got=$(rcli xlen signals:tp)
echo "   publish: $pub_rate ticks/s; live drained the backlog at $drain ticks/s ($got signals, replay $want)"
rcli del ticks:tp signals:tp >/dev/null
$pin_engine $E live --redis "$URL" --ticks-stream ticks:tp2 --signals-stream signals:tp2 \
  --checkpoint "$tmp/ckpt2" --exit-on-idle 2 --quiet \
  --summary-json "$OUT/live_concurrent.json" &
live_pid=$!
sleep 0.3
$pin_client $E publish --ticks "$OUT/live_ticks.csv" --redis "$URL" --ticks-stream ticks:tp2 \
  2> "$OUT/publish_concurrent.txt"
wait $live_pid
conc=$(json "$OUT/live_concurrent.json" "['entries_per_s']")
conc_pub=$(grep throughput "$OUT/publish_concurrent.txt" | awk '{print $2}')
got2=$(rcli xlen signals:tp2)
echo "   concurrent: publish $conc_pub ticks/s, live kept up at $conc ticks/s ($got2 signals)"
rcli del ticks:tp2 signals:tp2 >/dev/null

# ---- 3. latency -----------------------------------------------------------------
echo "== 3. latency at $RATE ticks/s for $SECONDS_LAT s"
$pin_engine $E live --redis "$URL" --ticks-stream ticks:lat --signals-stream signals:lat \
  --signal-score-min 0 --signal-cooldown 0 --checkpoint "$tmp/ckpt3" \
  --quiet --summary-json "$OUT/live_latency_engine.json" &
live_pid=$!
sleep 0.5
$pin_client $LB latency --redis "$URL" --ticks-stream ticks:lat --signals-stream signals:lat \
  --rate "$RATE" --seconds "$SECONDS_LAT" --warmup 1 --json "$OUT/live_latency.json"
kill -TERM $live_pid
wait $live_pid
$pin_client $LB latency --redis "$URL" --ticks-stream ticks:direct --direct \
  --rate "$RATE" --seconds "$SECONDS_LAT" --warmup 1 --json "$OUT/redis_latency.json"
d50=$(json "$OUT/redis_latency.json" "['p50_us']")
d99=$(json "$OUT/redis_latency.json" "['p99_us']")
p50=$(json "$OUT/live_latency.json" "['p50_us']")
p99=$(json "$OUT/live_latency.json" "['p99_us']")
p999=$(json "$OUT/live_latency.json" "['p999_us']")
mx=$(json "$OUT/live_latency.json" "['max_us']")
sigs=$(json "$OUT/live_latency.json" "['measured']")
ep99=$(json "$OUT/live_latency_engine.json" "['latency_us']['p99']")

echo
printf '%-58s %16s %12s\n' "measure" "result" "target"
printf '%-58s %16s %12s\n' "redis-benchmark XADD, 1 conn, pipeline 100 (ceiling)" "$ceil1/s" ""
printf '%-58s %16s %12s\n' "redis-benchmark XADD, 50 conns, pipeline 100 (ceiling)" "$ceil50/s" ""
printf '%-58s %16s %12s\n' "publish (CSV -> pipelined XADD in MULTI batches)" "$pub_rate/s" ""
printf '%-58s %16s %12s\n' "live, one worker, draining a backlog" "$drain/s" ">= 500000/s"
printf '%-58s %16s %12s\n' "live, one worker, while publish runs" "$conc/s" ""
printf '%-58s %16s %12s\n' "tick XADD -> signal visible, p50 ($sigs signals)" "$p50 us" ""
printf '%-58s %16s %12s\n' "tick XADD -> signal visible, p99 at $RATE ticks/s" "$p99 us" "<= 500 us"
printf '%-58s %16s %12s\n' "tick XADD -> signal visible, p99.9 / max" "$p999 / $mx us" ""
printf '%-58s %16s %12s\n' "live's own batch-in -> signals-acked p99" "$ep99 us" ""
printf '%-58s %16s %12s\n' "floor: tick XADD -> XREAD of the ticks, no engine, p50" "$d50 us" ""
printf '%-58s %16s %12s\n' "floor: tick XADD -> XREAD of the ticks, no engine, p99" "$d99 us" ""
