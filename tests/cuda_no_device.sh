#!/bin/sh
# Without a CUDA device, the cuda backend refuses to open with a message
# that says so, and the command exits non-zero; --version still lists the
# backend and says why it has no device. Options that cannot be right are
# refused before the device is looked for, and the valid ones get as far
# as the device. Exits 77 (skipped) where there is a device.
#
# Usage: cuda_no_device.sh ENGINE REPO_ROOT
set -u
engine=$1
root=$2
if "$engine" --version | grep -q "cuda .*compute capability"; then
  echo "SKIP: a CUDA device is present"
  exit 77
fi
"$engine" --version | grep -q "^  cuda .*no CUDA device" || {
  echo "FAIL: --version does not list the cuda backend without a device" >&2
  exit 1
}
out=$("$engine" replay --ticks "$root/fixtures/sample_ticks.csv" --backend cuda \
  --model "$root/models/pattern_cnn.onnx" 2>&1 >/dev/null)
rc=$?
if [ "$rc" -eq 0 ] || ! printf '%s\n' "$out" | grep -q "cuda backend: no CUDA device"; then
  echo "FAIL: replay --backend cuda without a device: exit $rc, '$out'" >&2
  exit 1
fi
echo "no device: exit $rc, $out"

# codegen settings: the bad ones refused by name, good ones past that, to
# the device. codegen VALUE WANT: bench-model --cuda-codegen VALUE fails
# with WANT
codegen() {
  out=$("$engine" bench-model "$root/models/pattern_cnn.onnx" --backend cuda \
    --cuda-codegen "$1" --iterations 1 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq 0 ] || ! printf '%s\n' "$out" | grep -q "$2"; then
    echo "FAIL: --cuda-codegen $1: exit $rc, '$out'" >&2
    exit 1
  fi
}
for v in rows=9 sums=2 windows=4,windows=5 rows=4, foo=1; do
  codegen "$v" "unknown codegen '$v'"
done
for v in windows=8,rows=4,sums=1 sums=4 rows=2,windows=16; do
  codegen "$v" "cuda backend: no CUDA device"
done
echo "codegen settings: refused and taken as they should be"
