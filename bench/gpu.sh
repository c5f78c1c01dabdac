#!/bin/sh
# The cuda backend on a GPU host, in one run: parity against the cpu
# backend (test_cuda_parity, both cuda modes, on the shipped models, the
# zoo's CNN, LSTM (NWC), BiGRU, 2-D CNN (N1WC), Transformer (NWC) and
# DeepLOB (N1WC) from both exporters, DeepLOB over 32 book columns
# (exported here with torch: bench/gpu_torch.py), and the models of
# tests/cuda_models.py when given), the replay check (tests/cuda_replay.sh),
# compute-sanitizer memcheck over the parity test (the shipped CNN and the
# first extra model), then bench-model (cpu at batch 1; cuda graph and
# persistent at batch 1; cuda graph at 4096, and 65536 for the shipped
# models) beside PyTorch eager, CUDA graph and torch.compile on the same
# models and card (bench/gpu_torch.py). A table of the figures comes last.
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
# DeepLOB over 32 book columns (the engine's most channels per window),
# exported here with torch; the zoo's at 40 goes through the parity test
# only (its cuda kernels run there; the engine's handle refuses it)
dl=/tmp/deeplob32.onnx
rm -f $dl
$py bench/gpu_torch.py --export-deeplob32 $dl >/tmp/export.log 2>&1 ||
  { echo "deeplob32: export failed"; tail -5 /tmp/export.log; }
[ -f $dl ] || dl=
z=models/zoo
models="models/pattern_cnn.onnx models/pattern_lstm.onnx models/toy_cnn.onnx
models/toy_mlp.onnx $z/cnn1d.default.onnx $z/cnn1d.legacy13.onnx
$z/lstm2.default.onnx $z/lstm2.legacy13.onnx $z/bigru.default.onnx
$z/cnn2d.default.onnx $z/transformer.default.onnx $z/transformer.legacy17.onnx
$z/deeplob.default.onnx $z/deeplob.legacy13.onnx $z/mlp_ln.default.onnx $dl"
fail=0
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
  --format=csv,noheader || true
"$pe" --version | grep cuda

echo "== parity (cuda vs cpu, 10,000 windows per model and mode)"
# one model per process, 8 at a time (the cpu reference of DeepLOB takes
# the longest)
# shellcheck disable=SC2086
printf '%s\n' $models "$@" | xargs -P 8 -n 1 "$bin/test_cuda_parity" || fail=1

echo "== replay"
sh tests/cuda_replay.sh "$pe" . || fail=1

echo "== compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null 2>&1; then
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$bin/test_cuda_parity" models/pattern_cnn.onnx ${1:+"$1"} \
    >/tmp/memcheck.log 2>&1
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
# model:iterations at batch 1:the large batches
for spec in models/pattern_cnn.onnx:20000:4096,65536 \
  models/pattern_lstm.onnx:20000:4096,65536 $z/transformer.default.onnx:3000:4096 \
  ${dl:+$dl:2000:4096}; do
  m=${spec%%:*}
  it=${spec#*:}
  big=${it#*:}
  it=${it%%:*}
  n=$(basename "$m" .onnx)
  o=$("$pe" bench-model "$m" --batch 1 --iterations "$it")
  row "$n" "ours cpu" 1 "$o"
  for who in ours ${OLD:+before}; do
    exe=$pe
    [ "$who" = before ] && exe=$OLD/pattern-engine
    for mode in graph persistent; do
      o=$("$exe" bench-model "$m" --backend cuda --cuda-mode $mode --batch 1 \
        --iterations "$it") || fail=1
      echo "$o" | grep -E "^backend|^phases"
      row "$n" "$who cuda $mode" 1 "$o"
    done
    for b in $(echo "$big" | tr , ' '); do
      o=$("$exe" bench-model "$m" --backend cuda --batch $b --iterations 200) ||
        fail=1
      echo "$o" | grep -E "^backend|^phases"
      row "$n" "$who cuda graph" $b "$o"
    done
  done
done

echo "== PyTorch"
# shellcheck disable=SC2086
{
  timeout 100 $py bench/gpu_torch.py --batches 1,4096,65536 \
    --compile-batches 1,4096 models/pattern_cnn.onnx models/pattern_lstm.onnx
  timeout 100 $py bench/gpu_torch.py --batches 1,4096 --compile-batches 1,4096 \
    $z/transformer.default.onnx $dl
} >/tmp/torch.txt 2>&1 || fail=1
cat /tmp/torch.txt
sed -n 's/^\([a-z_0-9.]*\)\.onnx batch \([0-9]*\) \(torch [a-z]*\): median \([0-9.]*\) us, p99 \([0-9.]*\) us, \([0-9.e+]*\) windows.*/\1 \2 \3 \4 \5 \6/p' \
  /tmp/torch.txt | while read -r n b w1 w2 med p99 tp; do
  printf '%-18s %-22s %6s %10s %10s %12.0f\n' "$n" "$w1 $w2" "$b" "$med" "$p99" "$tp" >>"$table"
done

echo "== figures (latency per batch in us, host in to host out)"
printf '%-18s %-22s %6s %10s %10s %12s\n' model who batch median p99 windows/s
sort -s -k1,1 "$table"
exit $fail
