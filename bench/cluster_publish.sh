#!/bin/sh
# `publish` throughput, side by side in one run on one machine over loopback:
#   1. a single redis-server, one stream (ticks:global);
#   2. the same server, --partitions P (P streams ticks:{pN}, one
#      MULTI/EXEC per partition a round, no replica so no WAIT);
#   3. a Redis Cluster of three masters and three replicas
#      (tests/cluster/cluster.py: redis-cli --cluster create), --partitions
#      P: pipelined per master, WAIT 1 1000 after each master's batches.
# Each is run RUNS times on a fresh server (or cluster) and the median and
# the best are printed. Every redis-server shares the machine with publish:
# on a small VM the cluster's six servers compete with it for the cores.
#
#   bench/cluster_publish.sh [N] [P] [PIPELINE] [RUNS]   defaults 1000000 16 - 3
# PIPELINE "-" leaves --pipeline at publish's defaults (1000 ticks a batch
# for one stream, 10000 a round with --partitions).
set -eu
cd "$(dirname "$0")/.."
N=${1:-1000000}
P=${2:-16}
PIPE=${3:--}
RUNS=${4:-3}
BUILD=${BUILD:-build}
OUT=${OUT:-bench-out}
E=$BUILD/pattern-engine
mkdir -p "$OUT"
tmp=$(mktemp -d)
hold=""
cleanup() {
  [ -n "$hold" ] && kill "$hold" 2>/dev/null && wait "$hold" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); $(nproc) CPUs;" \
  "$N ticks over 500 symbols; P=$P; --pipeline $PIPE; $RUNS runs each"
$BUILD/bench/live_bench gen --ticks "$N" --symbols 500 --out "$OUT/cluster_ticks.csv"

# Starts a cluster (--hold) or a single node (--hold-single) in the
# background; sets URL.
start() {
  rm -f "$tmp/url"
  python3 tests/cluster/cluster.py "$1" "$tmp/url" &
  hold=$!
  for _ in $(seq 1 600); do
    [ -f "$tmp/url" ] && break
    sleep 0.1
  done
  [ -f "$tmp/url" ] || { echo "Redis did not start" >&2; exit 1; }
  URL=$(cat "$tmp/url")
}
stop() {
  kill "$hold"
  wait "$hold" || true
  hold=""
}
# One measurement: $1 = label file, then publish's extra flags.
measure() {
  name=$1
  shift
  : > "$OUT/cluster_$name.txt"
  for run in $(seq 1 "$RUNS"); do
    start "$MODE"
    if [ "$PIPE" = - ]; then
      $E publish --ticks "$OUT/cluster_ticks.csv" --redis "$URL" "$@" 2> "$tmp/pub.txt"
    else
      $E publish --ticks "$OUT/cluster_ticks.csv" --redis "$URL" --pipeline "$PIPE" "$@" \
        2> "$tmp/pub.txt"
    fi
    grep -q "published    $N" "$tmp/pub.txt" || { cat "$tmp/pub.txt" >&2; exit 1; }
    grep throughput "$tmp/pub.txt" | awk '{print $2}' >> "$OUT/cluster_$name.txt"
    stop
  done
  sort -n "$OUT/cluster_$name.txt" | awk -v name="$name" '
    { v[NR] = $1 } END { printf "%-34s median %9d  best %9d ticks/s\n", name, v[int((NR + 1) / 2)], v[NR] }'
}
MODE=--hold-single measure single_stream
MODE=--hold-single measure single_partitions_$P --partitions "$P"
MODE=--hold measure cluster_3x2_partitions_$P --partitions "$P"
