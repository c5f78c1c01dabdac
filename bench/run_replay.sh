#!/bin/sh
# End-to-end replay throughput, default settings (rules only, no
# --features-out), on one core (taskset), from CSV files in the page cache:
#   1. M synthetic ticks over 500 symbols (bench/gen_ticks M 500);
#   2. the real trades repeated K times with shifted timestamps
#      (bench/repeat_ticks.py), when REAL exists.
# Each binary runs R times per file, the binaries taking turns run by run, so
# that a before/after comparison sees the same machine weather. Prints
# ticks/s (min, median, max) and the median run's latency line per binary.
#
#   bench/run_replay.sh [M] [K] [R] [BINARY...]
#       defaults 20000000 20 5 build/pattern-engine
#   REAL=path/to/trades.csv  (default ../shared/data/real/binance_trades.csv)
#   OUT=dir (default bench-out/), CPU=n (default 0),
#   GEN=path/to/gen_ticks (default build/bench/gen_ticks)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
M=${1:-20000000}
K=${2:-20}
R=${3:-5}
[ $# -ge 3 ] && shift 3 || shift $#
[ $# -gt 0 ] || set -- build/pattern-engine
REAL=${REAL:-../shared/data/real/binance_trades.csv}
OUT=${OUT:-bench-out}
CPU=${CPU:-0}
GEN=${GEN:-build/bench/gen_ticks}
mkdir -p "$OUT"
pin="taskset -c $CPU"
command -v taskset >/dev/null 2>&1 || pin=""

files="$OUT/replay_synthetic.csv"
"$GEN" "$M" 500 > "$OUT/replay_synthetic.csv"
if [ -f "$REAL" ]; then
  python3 "$here/repeat_ticks.py" "$REAL" "$OUT/replay_real.csv" "$K"
  files="$files $OUT/replay_real.csv"
fi
for f in $files; do
  cat "$f" > /dev/null
  echo "== $(basename "$f"): $(($(wc -l < "$f") - 1)) ticks"
  n=0
  for bin in "$@"; do
    n=$((n + 1))
    : > "$OUT/replay_runs_$n.txt"
  done
  i=0
  while [ $i -lt "$R" ]; do
    n=0
    for bin in "$@"; do
      n=$((n + 1))
      $pin "$bin" replay --ticks "$f" --out /dev/null 2>&1 |
        awk '/throughput/ {t = $2} /latency/ {sub(/^ +/, ""); l = $0}
             END {print t " " l}' >> "$OUT/replay_runs_$n.txt"
    done
    i=$((i + 1))
  done
  n=0
  for bin in "$@"; do
    n=$((n + 1))
    sort -n "$OUT/replay_runs_$n.txt" | awk -v bin="$bin" '
      {t[NR] = $1; $1 = ""; l[NR] = $0}
      END {m = int((NR + 1) / 2);
           printf "  %-32s ticks/s min %d  median %d  max %d (%d runs)\n",
                  bin, t[1], t[m], t[NR], NR;
           printf "  %-32s median run:%s\n", "", l[m]}'
  done
done
rm -f $files "$OUT"/replay_runs_*.txt
