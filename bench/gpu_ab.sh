#!/bin/sh
# Two builds of the cuda backend side by side on one GPU, in a few minutes:
# for each model, graph mode at 4096 windows in fp32 and in tf32, and
# persistent mode at batch 1, each build in turn, two rounds; then the new
# build's stamps of its generated batch kernel at 4096 in both precisions
# (where graph mode runs one). A table of each figure per build and round,
# and new over old, comes last.
#
# Usage: bench/gpu_ab.sh OLD_BINDIR NEW_BINDIR [MODEL.onnx...]
#   Each BINDIR holds pattern-engine; run from the repository root. The
#   models default to the zoo's Transformer, the Transformer at 64 ticks
#   and d_model 64 and DeepLOB over 32 book columns (the last two exported
#   here with torch, as bench/gpu.sh does; skipped where that fails).
#   Exits 77 where there is no CUDA device.
set -u
old=$1
new=$2
shift 2
if ! "$new/pattern-engine" --version | grep -q "cuda .*; device 0 of"; then
  echo "gpu_ab: no CUDA device: nothing to time"
  exit 77
fi
if [ $# -eq 0 ]; then
  # DeepLOB over 32 columns ($dl) and transformer64 ($t64), exported here
  . bench/gpu_export.sh
  set -- models/zoo/transformer.default.onnx $t64 $dl
fi
"$new/pattern-engine" --version | grep cuda
table=/tmp/gpu_ab_table.txt
: >"$table"
fail=0
# one figure: windows/s of graph mode, or the median µs of persistent mode
one() { # exe model what
  case $3 in
  persistent)
    o=$(taskset -c 9 "$1" bench-model "$2" --backend cuda --cuda-mode \
      persistent --batch 1 --iterations 3000) || return 1
    echo "$o" | sed -n 's/.*median \([0-9.]*\), p90.*/\1/p' | head -1
    ;;
  *)
    o=$(taskset -c 8-15 "$1" bench-model "$2" --backend cuda --batch 4096 \
      --iterations 30 --precision "$3") || return 1
    echo "$o" | sed -n 's/^throughput: \([0-9]*\) windows.*/\1/p'
    ;;
  esac
}
for m in "$@"; do
  n=$(basename "$m" .onnx)
  for what in fp32 tf32 persistent; do
    line="$n $what"
    for _ in 1 2; do
      for bin in "$old" "$new"; do
        v=$(one "$bin/pattern-engine" "$m" $what) || {
          v=failed
          fail=1
        }
        line="$line $v"
      done
    done
    echo "$line" >>"$table"
  done
  for p in fp32 tf32; do
    rm -f /tmp/gpu_ab_stamps.txt
    o=$("$new/pattern-engine" bench-model "$m" --backend cuda --batch 4096 \
      --iterations 10 --precision $p --cuda-stamps /tmp/gpu_ab_stamps.txt) ||
      fail=1
    if echo "$o" | grep -q "graphs launch one kernel"; then
      echo "$n, new build, $p: where the batch kernel's time goes at 4096"
      sed -n '/batch kernel/,$p' /tmp/gpu_ab_stamps.txt
    fi
  done
done
echo "== graph mode at 4096 (windows/s) and persistent mode at batch 1"
echo "   (median us), old and new build, two rounds; new / old of the sums"
printf '%-26s %-10s %10s %10s %10s %10s %8s\n' model what old new old new \
  "new/old"
awk '{ ok = 1
  for (i = 3; i <= 6; i++) if ($i !~ /^[0-9.]+$/) ok = 0
  o = $3 + $5; w = $4 + $6
  printf "%-26s %-10s %10s %10s %10s %10s %8s\n", $1, $2, $3, $4, $5, $6,
    (ok && o > 0 ? sprintf("%.3f", w / o) : "-") }' "$table"
exit $fail
