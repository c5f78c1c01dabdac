#!/bin/sh
# Compiles tests/cuda_emu/tiled_emu.cpp (the kernels of src/cuda/tiled.cuh
# and src/cuda/lstm_rec.cuh with shim.h in place of CUDA) with a C++
# compiler and runs it.
#   run.sh CXX SOURCE_DIR WORK_DIR
set -eu
cxx=$1
src=$2
work=$3
mkdir -p "$work"
"$cxx" -std=c++17 -O1 -ffp-contract=off -Wall -Wno-unknown-pragmas \
  -I"$src/include" -I"$src/src" -I"$src/tests" \
  -include "$src/tests/cuda_emu/shim.h" "$src/tests/cuda_emu/tiled_emu.cpp" \
  -o "$work/tiled_emu" -lpthread
"$work/tiled_emu"
