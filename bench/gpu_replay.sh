#!/bin/sh
# End to end on a GPU host: `replay` of M synthetic ticks over S symbols
# with a model on every ready window, micro-batched across symbols
# (--max-batch B --max-delay-us D), on the cuda backend (graph mode) and on
# the cpu backend with the same batching. Prints each run's ticks per
# second, inferences and the batch sizes that occurred (from
# --summary-json), and whether the two backends' signals agree on the cpu
# run's ticks.
#
#   bench/gpu_replay.sh BINDIR MODEL [M] [S] [CPU_M]
#       defaults 20000000 5000 2000000; BINDIR holds pattern-engine and
#       gen_ticks. CPU_M: the cpu backend replays the first CPU_M ticks
#       only (it is the slower one by far on a large model); its rate is
#       per tick like the cuda run's, and inferences per second beside it.
#       CPU_M / S ticks a symbol must exceed the model's window for the
#       cpu run to infer at all (64 ticks for the 64-tick Transformer).
#   BATCHES="B:D ..." (default "256:100000 4096:1000000"): the
#       --max-batch:--max-delay-us settings, one run each per backend.
#   CPU_THREADS=T (default 1): the cpu backend's --model-threads, each
#       batch split over T threads (run it with as many cores, taskset).
#   WORK=dir for the inputs and outputs (default /tmp/pe-gpu-replay).
set -eu
bin=$1
model=$2
M=${3:-20000000}
S=${4:-5000}
CM=${5:-2000000}
WORK=${WORK:-/tmp/pe-gpu-replay}
py=${PYTHON:-python3}
mkdir -p "$WORK"
"$bin/gen_ticks" "$M" "$S" > "$WORK/ticks.csv"
head -n $((CM + 1)) "$WORK/ticks.csv" > "$WORK/ticks_cpu.csv"
echo "== $M ticks over $S symbols (cpu: the first $CM), model $model"

# one replay; prints "backend batch delay ticks/s inferences batches
# largest mean" and keeps the signals
run() {
  backend=$1 ticks=$2 batch=$3 delay=$4 tag=$5
  threads=1
  [ "$backend" = cpu ] && threads=${CPU_THREADS:-1}
  "$bin/pattern-engine" replay --ticks "$ticks" --model "$model" \
    --backend "$backend" --max-batch "$batch" --max-delay-us "$delay" \
    --model-threads "$threads" \
    --out "$WORK/$tag.signals.csv" --summary-json "$WORK/$tag.json" --quiet
  "$py" - "$WORK/$tag.json" "$backend" "$batch" "$delay" "$threads" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
b = s["batches"]
mean = b["windows"] / b["runs"] if b["runs"] else 0
print(f"{sys.argv[2]:5s} max-batch {sys.argv[3]:>5s} delay {sys.argv[4]:>8s} us"
      f"{', ' + sys.argv[5] + ' threads' if sys.argv[5] != '1' else ''}: "
      f"{s['accepted'] / s['wall_s'] / 1e6:6.2f} M ticks/s, {s['inferences']} inferences "
      f"({s['inferences'] / s['wall_s'] / 1e3:.1f} k/s) in {b['runs']} batches "
      f"(mean {mean:.1f}, largest {b['largest']})")
if s["inferences"] < 1000:
    print("      too few inferences for a rate: each symbol needs a window's "
          "ticks first; raise CPU_M or lower S")
EOF
}

for bd in ${BATCHES:-256:100000 4096:1000000}; do
  batch=${bd%%:*} delay=${bd#*:}
  run cuda "$WORK/ticks.csv" "$batch" "$delay" "cuda-$batch"
  run cpu "$WORK/ticks_cpu.csv" "$batch" "$delay" "cpu-$batch"
  run cuda "$WORK/ticks_cpu.csv" "$batch" "$delay" "cuda-small-$batch" > /dev/null
  if cmp -s "$WORK/cpu-$batch.signals.csv" "$WORK/cuda-small-$batch.signals.csv"; then
    echo "      signals on the first $CM ticks: cuda and cpu identical" \
      "($(wc -l < "$WORK/cpu-$batch.signals.csv") lines)"
  else
    echo "      signals on the first $CM ticks: cuda and cpu differ in" \
      "$(diff "$WORK/cpu-$batch.signals.csv" "$WORK/cuda-small-$batch.signals.csv" |
        grep -c '^[<>]') lines"
  fi
done
