#!/bin/sh
# Copies what the GPU-host scripts run into one folder, for a machine that
# has not got this build's Debian libraries: pattern-engine,
# test_cuda_parity, test_cuda_gen, gen_ticks and feature_core from BUILD,
# and under DIR/lib the shared libraries they load that are not the C
# runtime's (protobuf-c, hiredis, libmicrohttpd and theirs). The cuda
# runtime is linked statically; NVRTC is loaded from the machine's CUDA
# toolkit.
#
#   bench/stage.sh BUILD DIR
#   then, on the other machine, from the repository root:
#   LD_LIBRARY_PATH=$PWD/DIR/lib bench/gpu.sh DIR
set -eu
build=$1
dir=$2
mkdir -p "$dir/lib"
for f in pattern-engine tests/test_cuda_parity tests/test_cuda_gen \
  bench/gen_ticks bench/feature_core; do
  if [ ! -x "$build/$f" ]; then
    echo "stage: $build/$f is missing (build with the CUDA toolkit found)" >&2
    exit 1
  fi
  cp "$build/$f" "$dir/"
done
for f in "$dir"/pattern-engine "$dir"/test_cuda_parity; do
  ldd "$f" | awk '$3 ~ /^\// { print $3 }'
done | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so' |
  while read -r lib; do
    cp -L "$lib" "$dir/lib/"
  done
echo "stage: $(find "$dir/lib" -type f | wc -l) libraries beside the programs in $dir ($(du -sh "$dir" | cut -f1))"
