#!/bin/sh
# The cuda backend on a GPU host, in one run: parity against the cpu
# backend (test_cuda_parity, both cuda modes, on the shipped models, the
# zoo's CNN and the models of tests/cuda_models.py when given), the replay
# check (tests/cuda_replay.sh), compute-sanitizer memcheck over the parity
# test, then bench-model (cpu at batch 1; cuda graph and persistent at batch
# 1; cuda graph at 4096 and 65536) beside PyTorch eager and CUDA graph on
# the same models and card (bench/gpu_torch.py). A table of the figures
# comes last.
#
# Usage: [OLD=BINDIR0] bench/gpu.sh BINDIR [EXTRA_MODEL.onnx...]
#   BINDIR holds pattern-engine and test_cuda_parity; run from the
#   repository root. PYTHON (default python3) must have torch for the peers.
#   OLD: another build's BINDIR, whose cuda figures are taken beside these
#   in the same run (rows "before").
set -u
bin=$1
shift
pe=$bin/pattern-engine
py=${PYTHON:-python3}
models="models/pattern_cnn.onnx models/pattern_lstm.onnx models/toy_cnn.onnx
models/toy_mlp.onnx models/zoo/cnn1d.default.onnx models/zoo/cnn1d.legacy13.onnx"
fail=0
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
  --format=csv,noheader || true
"$pe" --version | grep cuda

echo "== parity (cuda vs cpu, 10,000 windows per model and mode)"
# shellcheck disable=SC2086
"$bin/test_cuda_parity" $models "$@" || fail=1

echo "== replay"
sh tests/cuda_replay.sh "$pe" . || fail=1

echo "== compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null 2>&1; then
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$bin/test_cuda_parity" models/pattern_cnn.onnx models/pattern_lstm.onnx \
    "$@" >/tmp/memcheck.log 2>&1
  rc=$?
  tail -3 /tmp/memcheck.log
  [ $rc -eq 0 ] || { echo "memcheck: exit $rc"; fail=1; }
else
  echo "compute-sanitizer: not found"
fi

echo "== bench-model"
table=/tmp/gpu_table.txt
: >"$table"
row() { # model label batch output-of-bench-model
  med=$(echo "$4" | sed -n 's/.*median \([0-9.]*\), p90.*/\1/p')
  p99=$(echo "$4" | sed -n 's/.*p99 \([0-9.]*\), p99.9.*/\1/p')
  tp=$(echo "$4" | sed -n 's/^throughput: \([0-9]*\) windows.*/\1/p')
  printf '%-18s %-22s %6s %10s %10s %12s\n' "$1" "$2" "$3" "$med" "$p99" "$tp" >>"$table"
}
for m in models/pattern_cnn.onnx models/pattern_lstm.onnx; do
  n=$(basename "$m" .onnx)
  o=$("$pe" bench-model "$m" --batch 1 --iterations 20000)
  row "$n" "ours cpu" 1 "$o"
  for who in ours ${OLD:+before}; do
    exe=$pe
    [ "$who" = before ] && exe=$OLD/pattern-engine
    for mode in graph persistent; do
      o=$("$exe" bench-model "$m" --backend cuda --cuda-mode $mode --batch 1 \
        --iterations 20000) || fail=1
      echo "$o" | grep -E "^backend|^phases"
      row "$n" "$who cuda $mode" 1 "$o"
    done
    for b in 4096 65536; do
      o=$("$exe" bench-model "$m" --backend cuda --batch $b --iterations 200) ||
        fail=1
      echo "$o" | grep -E "^phases"
      row "$n" "$who cuda graph" $b "$o"
    done
  done
done

echo "== PyTorch"
# shellcheck disable=SC2086
$py bench/gpu_torch.py --batches 1,4096,65536 models/pattern_cnn.onnx \
  models/pattern_lstm.onnx >/tmp/torch.txt 2>&1 || fail=1
cat /tmp/torch.txt
sed -n 's/^\([a-z_]*\)\.onnx batch \([0-9]*\) \(torch [a-z]*\): median \([0-9.]*\) us, p99 \([0-9.]*\) us, \([0-9.e+]*\) windows.*/\1 \2 \3 \4 \5 \6/p' \
  /tmp/torch.txt | while read -r n b w1 w2 med p99 tp; do
  printf '%-18s %-22s %6s %10s %10s %12.0f\n' "$n" "$w1 $w2" "$b" "$med" "$p99" "$tp" >>"$table"
done

echo "== figures (latency per batch in us, host in to host out)"
printf '%-18s %-22s %6s %10s %10s %12s\n' model who batch median p99 windows/s
sort -s -k1,1 "$table"
exit $fail
