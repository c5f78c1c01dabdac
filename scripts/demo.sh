#!/bin/sh
# `make demo`: replays the sample fixture with the default settings and the
# default model, printing the signals and the end-of-run summary.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
engine="$build/pattern-engine"
model=models/pattern_cnn.onnx
set -- --ticks fixtures/sample_ticks.csv
if [ -f "$model" ] && "$engine" --version | grep -q '^  cpu '; then
  set -- "$@" --model "$model"
fi
echo "\$ pattern-engine replay $*"
"$engine" replay "$@"
