#!/bin/sh
# The cuda backend on a GPU host, in one run: parity against the cpu
# backend (test_cuda_parity, both cuda modes, on the shipped models, the
# zoo's CNN, LSTM (NWC), BiGRU, 2-D CNN (N1WC), Transformer (NWC) and
# DeepLOB (N1WC) from both exporters, DeepLOB over 32 book columns
# (exported here with torch: bench/gpu_torch.py), and the models of
# tests/cuda_models.py when given), the replay check (tests/cuda_replay.sh),
# compute-sanitizer memcheck over the parity test (the shipped CNN and
# LSTM, the zoo's Transformer and 2-D CNN, and the first extra model), then
# bench-model (cpu at batch 1; cuda graph and persistent at batch 1; cuda
# graph at 4096 and 65536, and 1,048,576 for the shipped models, with the
# steps' kernels beside where graph mode runs a generated kernel, and that
# kernel's stamps of each step at 4096, in tf32 too; where
# persistent mode runs a cluster, one block beside it and the cluster's
# stamps per step) on the
# shipped models, the zoo's Transformer, the
# Transformer at 64 ticks and d_model 64 (transformer64, exported here) and
# DeepLOB over 32 columns, beside PyTorch eager, CUDA graph and
# torch.compile on the same models and card (bench/gpu_torch.py; a batch
# that does not fit the card's memory says so; torch.compile at 4096, and
# 65536 for the shipped models: at batch 1 its CUDA graphs cover the model
# only, and PyTorch's own CUDA graph is the faster there), and the
# Transformers' and DeepLOB's large batches in precision tf32 too (parity
# runs every model in tf32 as well). A table of the figures
# comes last, with GFLOP/s from the plan's FLOP count.
#
# Usage: [OLD=BINDIR0] [PARTS=check|bench] bench/gpu.sh BINDIR
#          [EXTRA_MODEL.onnx...]
#   BINDIR holds pattern-engine and test_cuda_parity; run from the
#   repository root. PYTHON (default python3) must have torch for the peers.
#   OLD: another build's BINDIR, whose cuda figures are taken beside these
#   in the same run (rows "before").
#   PARTS: check runs parity, replay and memcheck only; bench the timings
#   and the table only; unset, both.
set -u
bin=$1
shift
pe=$bin/pattern-engine
py=${PYTHON:-python3}
# DeepLOB over 32 columns ($dl) and transformer64 ($t64), exported here
. bench/gpu_export.sh
z=models/zoo
models="models/pattern_cnn.onnx models/pattern_lstm.onnx models/toy_cnn.onnx
models/toy_mlp.onnx $z/cnn1d.default.onnx $z/cnn1d.legacy13.onnx
$z/lstm2.default.onnx $z/lstm2.legacy13.onnx $z/bigru.default.onnx
$z/cnn2d.default.onnx $z/transformer.default.onnx $z/transformer.legacy17.onnx
$z/deeplob.default.onnx $z/deeplob.legacy13.onnx $z/mlp_ln.default.onnx $dl $t64"
fail=0
parts=${PARTS:-all}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
  --format=csv,noheader || true
"$pe" --version | grep cuda

if [ "$parts" != bench ]; then
  echo "== parity (cuda vs cpu, 10,000 windows per model and mode)"
  # one model per process, 8 at a time (the cpu reference of DeepLOB takes
  # the longest)
  # shellcheck disable=SC2086
  printf '%s\n' $models "$@" | xargs -P 8 -n 1 "$bin/test_cuda_parity" || fail=1

  echo "== replay"
  sh tests/cuda_replay.sh "$pe" . || fail=1

  echo "== compute-sanitizer memcheck"
  if command -v compute-sanitizer >/dev/null 2>&1; then
    # the generated kernels (a CNN, an LSTM), the attention heads and the
    # tiled dense steps (the Transformer), Conv2d, and the first extra
    # model, one process each
    k=0
    for m in models/pattern_cnn.onnx models/pattern_lstm.onnx \
      $z/transformer.default.onnx $z/cnn2d.default.onnx ${1:+"$1"}; do
      k=$((k + 1))
      (timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 \
        "$bin/test_cuda_parity" "$m" >/tmp/memcheck$k.log 2>&1
      echo "rc $?" >>/tmp/memcheck$k.log) &
    done
    wait
    for f in /tmp/memcheck[0-9]*.log; do
      tail -2 "$f"
      tail -1 "$f" | grep -q '^rc 0$' || { echo "memcheck: $f failed"; fail=1; }
    done
    rm -f /tmp/memcheck[0-9]*.log
  else
    echo "compute-sanitizer: not found"
  fi

fi
if [ "$parts" = check ]; then
  exit $fail
fi
echo "== bench-model"
table=/tmp/gpu_table.txt
: >"$table"
# FLOP per window of each model (the plan's count, `inspect`), for the
# GFLOP/s column and its share of the card's fp32 peak (PEAK_GFLOPS,
# default 67,000: H100 and H200 SXM without tensor cores)
flops=/tmp/gpu_flops.txt
: >"$flops"
peak=${PEAK_GFLOPS:-67000}
row() { # model label batch output-of-bench-model
  med=$(echo "$4" | sed -n 's/.*median \([0-9.]*\), p90.*/\1/p')
  p99=$(echo "$4" | sed -n 's/.*p99 \([0-9.]*\), p99.9.*/\1/p')
  tp=$(echo "$4" | sed -n 's/^throughput: \([0-9]*\) windows.*/\1/p')
  printf '%-18s %-22s %8s %10s %10s %12s\n' "$1" "$2" "$3" "$med" "$p99" "$tp" >>"$table"
}
# model:iterations at batch 1:the large batches (iterations there: 2M
# windows' worth, 10 to 200)
for spec in models/pattern_cnn.onnx:20000:4096,65536,1048576 \
  models/pattern_lstm.onnx:20000:4096,65536,1048576 \
  $z/transformer.default.onnx:3000:4096,65536 ${t64:+$t64:2000:4096,65536} \
  ${dl:+$dl:2000:4096,65536}; do
  m=${spec%%:*}
  it=${spec#*:}
  big=${it#*:}
  it=${it%%:*}
  n=$(basename "$m" .onnx)
  echo "$n $("$pe" inspect "$m" | sed -n 's/^flops *\([0-9]*\) per window.*/\1/p')" >>"$flops"
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
      # a plan persistent mode runs as a cluster: one block too, and
      # where the cluster's time goes (the kernel's stamps of each step)
      if [ "$mode" = persistent ] && echo "$o" | grep -q "a cluster of"; then
        o=$("$exe" bench-model "$m" --backend cuda --cuda-mode $mode \
          --cuda-blocks 1 --batch 1 --iterations "$it") || fail=1
        echo "$o" | grep -E "^backend|^phases"
        row "$n" "$who cuda persist 1 block" 1 "$o"
        if [ "$who" = ours ]; then
          "$exe" bench-model "$m" --backend cuda --cuda-mode $mode --batch 1 \
            --iterations 500 --cuda-stamps /tmp/stamps.txt >/dev/null || fail=1
          echo "$n: where the cluster's time goes (--cuda-stamps)"
          cat /tmp/stamps.txt
        fi
      fi
    done
    for b in $(echo "$big" | tr , ' '); do
      bi=$((2000000 / b))
      bi=$((bi < 10 ? 10 : bi > 200 ? 200 : bi))
      o=$("$exe" bench-model "$m" --backend cuda --batch $b --iterations $bi) ||
        fail=1
      echo "$o" | grep -E "^backend|^phases"
      row "$n" "$who cuda graph" $b "$o"
      # the Transformers and DeepLOB in precision tf32 too (tensor cores
      # for the dense and Conv1d steps)
      case "$who $n" in
      "ours transformer"* | "ours deeplob"*)
        o32=$("$exe" bench-model "$m" --backend cuda --batch $b \
          --iterations $bi --precision tf32) || fail=1
        echo "$o32" | grep -E "^backend|^phases"
        row "$n" "ours cuda graph tf32" $b "$o32"
        # where a generated kernel's tf32 time goes (its dense steps on
        # the tensor cores), beside the fp32 stamps below
        if [ "$b" = 4096 ] && echo "$o32" | grep -q "graphs launch one kernel"; then
          "$exe" bench-model "$m" --backend cuda --batch $b --iterations 10 \
            --precision tf32 --cuda-stamps /tmp/bstamps.txt >/dev/null || fail=1
          echo "$n: where the batch kernel's time goes at $b in tf32 (--cuda-stamps)"
          cat /tmp/bstamps.txt
        fi
        ;;
      esac
      # a plan that graph mode runs as one generated kernel: the steps'
      # kernels too (--cuda-codegen off), for the difference
      if [ "$who" = ours ] && echo "$o" | grep -q "graphs launch one kernel"; then
        o=$("$exe" bench-model "$m" --backend cuda --batch $b --iterations $bi \
          --cuda-codegen off) || fail=1
        row "$n" "ours cuda graph steps" $b "$o"
        if [ "$b" = 4096 ]; then
          "$exe" bench-model "$m" --backend cuda --batch $b --iterations 10 \
            --cuda-stamps /tmp/bstamps.txt >/dev/null || fail=1
          echo "$n: where the batch kernel's time goes at $b (--cuda-stamps)"
          cat /tmp/bstamps.txt
        fi
      fi
    done
  done
done

echo "== PyTorch"
# shellcheck disable=SC2086
{
  timeout 240 $py bench/gpu_torch.py --batches 1,4096,65536,1048576 \
    --compile-batches 4096,65536 models/pattern_cnn.onnx \
    models/pattern_lstm.onnx
  timeout 200 $py bench/gpu_torch.py --batches 1,4096,65536 \
    --compile-batches 4096 $z/transformer.default.onnx $t64 $dl
} >/tmp/torch.txt 2>&1 || fail=1
cat /tmp/torch.txt
sed -n 's/^\([a-z_0-9.]*\)\.onnx batch \([0-9]*\) \(torch [a-z]*\): median \([0-9.]*\) us, p99 \([0-9.]*\) us, \([0-9.e+]*\) windows.*/\1 \2 \3 \4 \5 \6/p' \
  /tmp/torch.txt | while read -r n b w1 w2 med p99 tp; do
  printf '%-18s %-22s %8s %10s %10s %12.0f\n' "$n" "$w1 $w2" "$b" "$med" "$p99" "$tp" >>"$table"
done

echo "== figures (latency per batch in us, host in to host out; GFLOP/s from"
echo "   the plan's FLOP per window, % of $peak GFLOP/s fp32)"
printf '%-18s %-22s %8s %10s %10s %12s %9s %6s\n' model who batch median p99 \
  windows/s GFLOP/s peak
sort -s -k1,1 "$table" | awk -v peak="$peak" 'NR == FNR { f[$1] = $2; next }
  { g = ($NF + 0) * f[$1] / 1e9
    printf "%s %9.1f %5.1f%%\n", $0, g, 100 * g / peak }' "$flops" -
exit $fail
