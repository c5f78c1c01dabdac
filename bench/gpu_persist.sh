#!/bin/sh
# The cuda backend's persistent mode at batch 1, two builds side by side on
# one GPU in one run: bench-model on MODEL (default pattern_cnn) with each
# build in turn, three rounds, pinned to one core; then where the new
# build's time goes (PE_CUDA_STAMPS: the kernel's phases and the host's
# wait, kernels.h); then the new build's parity against the cpu backend on
# the shipped and zoo models and the extra ones given (test_cuda_parity,
# both modes), and compute-sanitizer memcheck over the parity test on
# MODEL. A table of medians and p99s comes last.
#
# Usage: bench/gpu_persist.sh OLD_BINDIR NEW_BINDIR [MODEL [EXTRA.onnx...]]
#   Each BINDIR holds pattern-engine (NEW_BINDIR test_cuda_parity too);
#   run from the repository root. OUT (default /tmp/gpu_persist) receives
#   the logs.
set -u
old=$1
new=$2
m=${3:-models/pattern_cnn.onnx}
if [ $# -ge 3 ]; then shift 3; else shift $#; fi
out=${OUT:-/tmp/gpu_persist}
mkdir -p "$out"
args="--backend cuda --cuda-mode persistent --batch 1 --iterations 20000 --warmup 2000"
fail=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm \
  --format=csv,noheader || true
: >"$out/table.txt"
for r in 1 2 3; do
  for who in old new; do
    bin=$old
    [ $who = new ] && bin=$new
    # shellcheck disable=SC2086
    o=$(taskset -c 2 "$bin/pattern-engine" bench-model "$m" $args 2>&1) ||
      fail=1
    med=$(echo "$o" | sed -n 's/.*median \([0-9.]*\), p90.*/\1/p')
    p99=$(echo "$o" | sed -n 's/.*p99 \([0-9.]*\), p99.9.*/\1/p')
    printf '%-4s round %d  median %8s us  p99 %8s us\n' "$who" $r "$med" \
      "$p99" >>"$out/table.txt"
  done
done

echo "== where the time goes (new build, PE_CUDA_STAMPS)"
# shellcheck disable=SC2086
PE_CUDA_STAMPS=$out/stamps.txt taskset -c 2 "$new/pattern-engine" \
  bench-model "$m" $args >/dev/null 2>&1 || fail=1
cat "$out/stamps.txt" 2>/dev/null

echo "== parity (new build)"
z=models/zoo
# shellcheck disable=SC2086
printf '%s\n' models/pattern_cnn.onnx models/pattern_lstm.onnx \
  models/toy_cnn.onnx models/toy_mlp.onnx $z/cnn1d.default.onnx \
  $z/lstm2.default.onnx $z/bigru.default.onnx $z/cnn2d.default.onnx \
  $z/transformer.default.onnx $z/mlp_ln.default.onnx $z/deeplob.default.onnx \
  "$@" | xargs -P 8 -n 1 "$new/test_cuda_parity" >"$out/parity.txt" 2>&1 ||
  fail=1
grep -E "FAIL|persistent" "$out/parity.txt"

echo "== compute-sanitizer memcheck (new build, $m)"
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
  "$new/test_cuda_parity" "$m" >"$out/memcheck.txt" 2>&1 || fail=1
tail -2 "$out/memcheck.txt"

echo "== persistent mode, batch 1, $m (latency per request)"
cat "$out/table.txt"
exit $fail
