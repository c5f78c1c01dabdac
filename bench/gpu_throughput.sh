#!/bin/sh
# Throughput of the cuda backend's graph mode against PyTorch on the same
# card, in one run: bench-model at batches of 4096, 65536 and 1,048,576
# windows (the shipped pattern_cnn and pattern_lstm) or 4096 and 65536
# (the zoo's Transformer, the Transformer at 64 ticks and d_model 64, and
# DeepLOB over 32 book columns, each in precision fp32 and tf32), with the
# median host-to-device, compute and device-to-host times, then
# bench/gpu_torch.py (eager, a CUDA graph, torch.compile) on the same
# models and batches. Each model's FLOP per window (the plan's count) is
# printed first, for FLOP/s.
#
# Usage: bench/gpu_throughput.sh BINDIR   (from the repository root; BINDIR
#   holds pattern-engine; PYTHON, default python3, must have torch and
#   onnxscript)
set -u
pe=$1/pattern-engine
py=${PYTHON:-python3}
z=models/zoo
# DeepLOB over 32 columns ($dl) and transformer64 ($t64), exported here
. bench/gpu_export.sh
for spec in models/pattern_cnn.onnx:4096,65536,1048576 \
  models/pattern_lstm.onnx:4096,65536,1048576 \
  $z/transformer.default.onnx:4096,65536 $t64:4096,65536 $dl:4096,65536; do
  m=${spec%%:*}
  n=$(basename "$m" .onnx)
  [ -f "$m" ] || continue
  echo "flops $n $("$pe" inspect "$m" | sed -n 's/^flops *\([0-9]*\) per window.*/\1/p')"
  for b in $(echo "${spec#*:}" | tr , ' '); do
    # about 2M windows' worth of runs, 10 to 100
    bi=$((2000000 / b))
    bi=$((bi < 10 ? 10 : bi > 100 ? 100 : bi))
    for p in fp32 tf32; do
      case "$p $n" in "tf32 pattern"*) continue ;; esac
      o=$(timeout 120 "$pe" bench-model "$m" --backend cuda --batch "$b" \
        --iterations $bi --precision $p 2>&1)
      echo "ours $n $p $b: $(echo "$o" | grep -E '^latency per batch|^throughput|^phases|rror' |
        sed 's/latency per batch (us): //' | tr '\n' ' ')"
    done
  done
done
timeout 240 "$py" bench/gpu_torch.py --batches 4096,65536,1048576 \
  --compile-batches 4096,65536 models/pattern_cnn.onnx models/pattern_lstm.onnx
made=
for m in $t64 $dl; do
  [ -f "$m" ] && made="$made $m"
done
# shellcheck disable=SC2086
timeout 240 "$py" bench/gpu_torch.py --batches 4096,65536 --compile-batches 4096 \
  $z/transformer.default.onnx $made
