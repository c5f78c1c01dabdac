#!/bin/sh
# Replay throughput with a model, micro-batched or not: one tick file
# replayed with MODEL at each --max-batch in BATCHES (--max-delay-us DELAY),
# pinned to one core, input in the page cache, output to /dev/null. The
# settings take turns run by run, R runs each, so that they see the same
# machine weather. Prints ticks/s (min, median, max) per setting and the
# batch sizes that occurred (the summary's histogram, median run). The
# output is the same at every setting (tests/test_cli_batch.py); only the
# model runs differ.
#
#   bench/run_batch.sh [MODEL] [TICKS] [R] [BINARY]
#       defaults models/pattern_cnn.onnx, the real trades when they are
#       there (else the fixture), 5, build/pattern-engine
#   BATCHES="1 64 256" DELAY=200 CPU=0 BACKEND=cpu   (environment)
#   an item N:T of BATCHES runs --max-batch N with --model-threads T
#   (give CPU as many cores, CPU=0,1)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
MODEL=${1:-models/pattern_cnn.onnx}
REAL=../shared/data/real/binance_trades.csv
DEFAULT_TICKS=fixtures/sample_ticks.csv
[ -f "$REAL" ] && DEFAULT_TICKS=$REAL
TICKS=${2:-$DEFAULT_TICKS}
R=${3:-5}
BIN=${4:-build/pattern-engine}
BATCHES=${BATCHES:-1 64 256}
DELAY=${DELAY:-200}
CPU=${CPU:-0}
BACKEND=${BACKEND:-cpu}
pin="taskset -c $CPU"
command -v taskset >/dev/null 2>&1 || pin=""
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat "$TICKS" > /dev/null
echo "== $(basename "$TICKS"): $(($(wc -l < "$TICKS") - 1)) rows, model" \
  "$(basename "$MODEL") on $BACKEND, --max-delay-us $DELAY, $R runs each"
for b in $BATCHES; do
  : > "$tmp/runs_$b.txt"
done
i=0
while [ $i -lt "$R" ]; do
  for b in $BATCHES; do
    n=${b%%:*}
    t=1
    case "$b" in *:*) t=${b#*:} ;; esac
    $pin "$BIN" replay --ticks "$TICKS" --model "$MODEL" --backend "$BACKEND" \
      --max-batch "$n" --max-delay-us "$DELAY" --model-threads "$t" \
      --out /dev/null 2>&1 |
      awk '/throughput/ {t = $2} /batches/ {sub(/^ +batches +/, ""); h = $0}
           END {if (h == "") h = "unbatched"; print t " " h}' \
        >> "$tmp/runs_$b.txt"
  done
  i=$((i + 1))
done
for b in $BATCHES; do
  sort -n "$tmp/runs_$b.txt" | awk -v b="$b" '
    {t[NR] = $1; $1 = ""; h[NR] = $0}
    END {m = int((NR + 1) / 2);
         printf "  --max-batch %-5s ticks/s min %d  median %d  max %d\n",
                b, t[1], t[m], t[NR];
         printf "  %-17s batches:%s\n", "", h[m]}'
done
