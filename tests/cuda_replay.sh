#!/bin/sh
# replay of the fixture with --backend cuda against --backend cpu, for the
# shipped pattern models: the same signal rows (ids, timestamps, symbols,
# patterns, prices, fired rules) byte for byte, and scores and confidences
# within 1e-5 of the cpu backend's, with the kernels the CPU picks and with
# the portable ones. Says whether the whole output is byte-identical to
# each. The persistent mode (PE_CUDA_MODE=persistent) and micro-batched
# runs (--max-batch 64 and 256) must give the signals of cpu, as above, and
# the micro-batched runs the unbatched run's output byte for byte; a
# plan file of the model made by build-engine must print exactly what the
# ONNX model prints in the same mode. Then models whose input holds
# windows as [time][channel] (NWC, N1WC), which the backend transposes on
# the device: they must open and run. Exits 77 (skipped) where there is no
# CUDA device.
#
# Usage: cuda_replay.sh ENGINE REPO_ROOT
set -eu
engine=$1
root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ticks=$root/fixtures/sample_ticks.csv
# same_signals REF GOT: the same rows, field for field, but scores and
# confidences (fields 5 and 6) within 1e-5; prints what differs.
same_signals() {
  awk -F, -v tol=1e-5 '
    NR == FNR { a[FNR] = $0; n = FNR; next }
    {
      if (!(FNR in a)) { print "extra line " FNR ": " $0; bad = 1; next }
      split(a[FNR], x, ",")
      for (i = 1; i <= NF; i++) {
        if (i == 5 || i == 6) {
          d = x[i] - $i
          if (d > tol || -d > tol) { print "line " FNR " field " i ": " x[i] " vs " $i; bad = 1 }
        } else if (x[i] != $i) { print "line " FNR " field " i ": " x[i] " vs " $i; bad = 1 }
      }
      m = FNR
    }
    END { if (m != n) { print "line counts " n " vs " m; bad = 1 } exit bad }
  ' "$1" "$2"
}
for m in pattern_cnn pattern_lstm; do
  model=$root/models/$m.onnx
  if ! "$engine" replay --ticks "$ticks" --backend cuda --model "$model" \
    >"$tmp/cuda.csv" 2>"$tmp/err"; then
    if grep -q "no CUDA device" "$tmp/err"; then
      echo "SKIP: $(cat "$tmp/err")"
      exit 77
    fi
    cat "$tmp/err" >&2
    exit 1
  fi
  "$engine" replay --ticks "$ticks" --backend cpu --model "$model" \
    >"$tmp/cpu.csv" 2>/dev/null
  PE_CPU_KERNELS=generic "$engine" replay --ticks "$ticks" --backend cpu \
    --model "$model" >"$tmp/generic.csv" 2>/dev/null
  models=$(grep -c -- '-model,' "$tmp/cuda.csv" || true)
  if [ "$models" -lt 1 ]; then
    echo "FAIL: $m: no model signal in the cuda replay" >&2
    exit 1
  fi
  for ref in cpu generic; do
    if ! same_signals "$tmp/$ref.csv" "$tmp/cuda.csv"; then
      echo "FAIL: $m: replay --backend cuda differs from cpu ($ref kernels)" >&2
      exit 1
    fi
    if cmp -s "$tmp/$ref.csv" "$tmp/cuda.csv"; then
      same=byte-identical
    else
      same="the same signals, scores within 1e-5 (not byte-identical)"
    fi
    echo "$m: cuda vs cpu ($ref kernels): $(wc -l <"$tmp/cuda.csv") lines, $models model signals, $same"
  done
  if ! PE_CUDA_MODE=persistent "$engine" replay --ticks "$ticks" \
    --backend cuda --model "$model" >"$tmp/persist.csv" 2>"$tmp/err"; then
    cat "$tmp/err" >&2
    exit 1
  fi
  if ! same_signals "$tmp/cpu.csv" "$tmp/persist.csv"; then
    echo "FAIL: $m: replay --cuda-mode persistent differs from cpu" >&2
    exit 1
  fi
  same="not byte-identical (its sums in another order)"
  if cmp -s "$tmp/cuda.csv" "$tmp/persist.csv"; then
    same=byte-identical
  fi
  echo "$m: cuda persistent mode: the signals of cpu; $same to graph mode"
  "$engine" build-engine "$model" --backend cuda -o "$tmp/$m.peplan" >/dev/null
  for mode in graph:cuda persistent:persist; do
    if ! "$engine" replay --ticks "$ticks" --backend cuda \
      --cuda-mode "${mode%%:*}" --model "$tmp/$m.peplan" \
      >"$tmp/plan.csv" 2>"$tmp/err"; then
      cat "$tmp/err" >&2
      exit 1
    fi
    if ! cmp -s "$tmp/${mode#*:}.csv" "$tmp/plan.csv"; then
      echo "FAIL: $m: the plan file (${mode%%:*}) differs from the ONNX model" >&2
      exit 1
    fi
  done
  echo "$m: plan file of build-engine ($(wc -c <"$tmp/$m.peplan") bytes): byte-identical to the ONNX model in both modes"
  # Micro-batched: model runs of up to N windows across symbols.
  for b in 64:200 256:1000000000; do
    if ! "$engine" replay --ticks "$ticks" --backend cuda --model "$model" \
      --max-batch "${b%%:*}" --max-delay-us "${b#*:}" \
      >"$tmp/batched.csv" 2>"$tmp/err"; then
      cat "$tmp/err" >&2
      exit 1
    fi
    if ! same_signals "$tmp/cpu.csv" "$tmp/batched.csv"; then
      echo "FAIL: $m: replay --backend cuda --max-batch ${b%%:*} differs from cpu" >&2
      exit 1
    fi
    if ! cmp -s "$tmp/cuda.csv" "$tmp/batched.csv"; then
      echo "FAIL: $m: replay --backend cuda --max-batch ${b%%:*} is not byte-identical to unbatched cuda" >&2
      exit 1
    fi
    echo "$m: cuda --max-batch ${b%%:*} --max-delay-us ${b#*:}: the signals of cpu; byte-identical to unbatched cuda"
  done
done
# Models whose input holds windows as [time][channel] (NWC, N1WC): the
# backend transposes the engine's [channel][time] windows on the device;
# they open and run (test_cuda_parity checks their scores).
for m in lstm2:NWC cnn2d:N1WC; do
  model=$root/models/zoo/${m%%:*}.default.onnx
  if ! "$engine" bench-model "$model" --backend cuda --iterations 10 \
    >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL: ${m%%:*}: --backend cuda did not run a ${m#*:} model: $(cat "$tmp/err")" >&2
    exit 1
  fi
  echo "${m%%:*} (${m#*:}): runs on cuda: $(grep -m1 '^latency' "$tmp/out")"
done
