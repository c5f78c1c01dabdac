#!/bin/sh
# The generated kernels' dense forms on a GPU host, in one run: for each
# setting of the codegen option's rows and sums (the default; rows=4;
# rows=4,sums=1; rows=8,sums=1; sums=1), the zoo Transformer's parity
# against the cpu backend (test_cuda_parity --codegen, both modes, and
# graph mode in tf32), then graph mode's
# throughput at 4096 and 65536 windows and persistent mode's batch-1
# latency (the resident kernel takes sums, not rows), all settings one
# after the other and precision tf32 (the dense steps on the tensor cores)
# beside them, twice, and the batch kernel's stamps of each step at 4096
# for each.
#
# Usage: bench/gpu_dense.sh BINDIR [MODEL.onnx]   (from the repository
#   root; BINDIR holds pattern-engine and test_cuda_parity; MODEL defaults
#   to models/zoo/transformer.default.onnx). SETTINGS, a list separated by
#   spaces, replaces the settings timed (the Conv 1-D form of a
#   convolutional model, say: SETTINGS="on conv=1").
set -u
bin=$1
pe=$bin/pattern-engine
m=${2:-models/zoo/transformer.default.onnx}
settings=${SETTINGS:-"on rows=4 rows=4,sums=1 rows=8,sums=1 sums=1"}
# one item of a list: a codegen setting in fp32, or tf32 (the default
# setting in precision tf32), into s and p
item() {
  s=$1
  p=fp32
  if [ "$1" = tf32 ]; then
    s=on
    p=tf32
  fi
}
fail=0
"$pe" --version | grep cuda
if "$pe" --version | grep -q "no CUDA device"; then
  echo "no CUDA device: nothing to time"
  exit 77
fi
echo "== parity, $m"
for s in $settings; do
  "$bin/test_cuda_parity" --codegen "$s" "$m" >/tmp/dense_parity.txt 2>&1 ||
    { echo "$s: parity FAILED"; fail=1; }
  grep -E 'FAIL|max abs' /tmp/dense_parity.txt | sed "s|^|$s: |"
done
echo "== graph mode, windows/s (median latency µs a batch)"
for round in 1 2; do
  for b in 4096 65536; do
    for i in $settings tf32; do
      item "$i"
      out=$(taskset -c 8-15 "$pe" bench-model "$m" --backend cuda --batch $b \
        --iterations $((b > 4096 ? 20 : 100)) --cuda-codegen "$s" \
        --precision $p) || {
        echo "$s batch $b: failed"
        fail=1
        continue
      }
      printf 'round %d batch %6d %s %-16s %s | %s\n' $round $b $p "$s" \
        "$(printf '%s\n' "$out" | sed -n 's/^throughput: \([0-9]*\) windows.*/\1/p')" \
        "$(printf '%s\n' "$out" | sed -n 's/.*median \([0-9.]*\),.*/\1/p' | head -1)"
    done
  done
done
echo "== persistent mode, batch 1 (median / p99 µs)"
for round in 1 2; do
  for i in on sums=1 tf32; do
    item "$i"
    out=$(taskset -c 9 "$pe" bench-model "$m" --backend cuda --cuda-mode \
      persistent --batch 1 --iterations 5000 --cuda-codegen "$s" \
      --precision $p) || {
      echo "$s persistent: failed"
      fail=1
      continue
    }
    printf 'round %d %s %-8s %s\n' $round $p "$s" \
      "$(printf '%s\n' "$out" | sed -n 's/.*median \([0-9.]*\),.*p99 \([0-9.]*\),.*/\1 \/ \2/p' | head -1)"
  done
done
echo "== the batch kernel's stamps at 4096, per setting"
for i in $settings tf32; do
  item "$i"
  rm -f /tmp/dense_stamps.txt
  taskset -c 8-15 "$pe" bench-model "$m" --backend cuda --batch 4096 \
    --iterations 20 --cuda-codegen "$s" --precision $p \
    --cuda-stamps /tmp/dense_stamps.txt >/dev/null || fail=1
  echo "-- $p $s"
  sed -n '/batch kernel/,$p' /tmp/dense_stamps.txt
done
exit $fail
