#!/bin/sh
# The cuda backend's device memory budget (--cuda-memory MB) against a
# model of which one window does not fit: refused with a message naming the
# bytes one window needs, before any device is asked for, so alike with and
# without one. The bytes are worked out here from what `inspect` prints of
# the plan (an NCW model without attention: the arena, the input and the
# output per window, 4 bytes a float); a budget of exactly that many bytes
# is not refused for it. A budget of 0 is a usage error, and an unknown
# --cuda-codegen or --cuda-blocks value is refused at open, also before any
# device.
#
# Usage: cuda_memory.sh ENGINE REPO_ROOT
set -u
engine=$1
model=$2/models/pattern_cnn.onnx
fail=0
desc=$("$engine" inspect "$model") || {
  echo "FAIL: inspect $model" >&2
  exit 1
}
arena=$(printf '%s\n' "$desc" | sed -n 's/.* arena \([0-9]*\) floats per window.*/\1/p')
in=$(printf '%s\n' "$desc" | sed -n 's/^input .* \([0-9]*\) values per window.*/\1/p')
out=$(printf '%s\n' "$desc" | sed -n 's/^  0  .* \([0-9]*\) values per window.*/\1/p')
if [ -z "$arena" ] || [ -z "$in" ] || [ -z "$out" ]; then
  echo "FAIL: cannot read the plan's sizes from inspect: '$desc'" >&2
  exit 1
fi
need=$(((arena + in + out) * 4))
# MB of 10^6 bytes, as the flag takes them
mb() { awk -v b="$1" 'BEGIN { printf "%.6f", b / 1e6 }'; }

msg=$("$engine" bench-model "$model" --backend cuda --iterations 1 \
  --cuda-memory "$(mb $((need - 1)))" 2>&1 >/dev/null)
rc=$?
if [ "$rc" -ne 1 ] ||
  ! printf '%s\n' "$msg" | grep -q "one window needs $need bytes of device memory (arena $((arena * 4)), input $((in * 4)), output $((out * 4))), more than the budget of $((need - 1)) bytes"; then
  echo "FAIL: a budget of $((need - 1)) bytes: exit $rc, '$msg'" >&2
  fail=1
fi
echo "budget $((need - 1)) bytes: exit $rc, $msg"

# PE_CUDA_MEMORY is the flag's variable
msg=$(PE_CUDA_MEMORY="$(mb $((need - 1)))" "$engine" bench-model "$model" \
  --backend cuda --iterations 1 2>&1 >/dev/null)
rc=$?
if [ "$rc" -ne 1 ] || ! printf '%s\n' "$msg" | grep -q "one window needs $need bytes"; then
  echo "FAIL: PE_CUDA_MEMORY of $((need - 1)) bytes: exit $rc, '$msg'" >&2
  fail=1
fi

msg=$("$engine" bench-model "$model" --backend cuda --iterations 1 \
  --cuda-memory "$(mb $need)" 2>&1 >/dev/null)
rc=$?
if printf '%s\n' "$msg" | grep -q "one window needs"; then
  echo "FAIL: a budget of $need bytes was refused: '$msg'" >&2
  fail=1
fi
echo "budget $need bytes: exit $rc${msg:+, $msg}"

msg=$("$engine" bench-model "$model" --backend cuda --cuda-memory 0 2>&1 >/dev/null)
rc=$?
if [ "$rc" -ne 2 ] || ! printf '%s\n' "$msg" | grep -q -- "--cuda-memory: '0' is not"; then
  echo "FAIL: --cuda-memory 0: exit $rc, '$msg'" >&2
  fail=1
fi

# refused FLAG VALUE WANT: bench-model --FLAG VALUE exits 1 with WANT
refused() {
  msg=$("$engine" bench-model "$model" --backend cuda --"$1" "$2" \
    --iterations 1 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -ne 1 ] || ! printf '%s\n' "$msg" | grep -q "$3"; then
    echo "FAIL: --$1 $2: exit $rc, '$msg'" >&2
    fail=1
  fi
  echo "--$1 $2: exit $rc, $msg"
}
for v in of windows=0 windows=4097 windows=8x windows= rows=0 rows=9 sums=2 \
  windows=4,windows=5 rows=4, ,rows=4 rows=4,,sums=1; do
  refused cuda-codegen "$v" "unknown codegen '$v' (on, off, or settings"
done
for v in 0 17 -1 2x x; do
  refused cuda-blocks "$v" "persistent blocks '$v' is not auto or a number from 1 to 16"
done
exit $fail
