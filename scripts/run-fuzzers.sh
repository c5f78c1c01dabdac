#!/bin/sh
# Runs every libFuzzer target of a fuzz build for SECONDS each over its
# committed corpus (fuzz/corpus/<name>/), read-only: new inputs go to a
# temporary folder. Fails on the first crash, leak or timeout.
set -eu
build=${1:?usage: run-fuzzers.sh BUILD SECONDS}
seconds=${2:-60}
cd "$(dirname "$0")/.."
found=0
for bin in "$build"/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  found=1
  name=$(basename "$bin" | sed 's/^fuzz_//')
  corpus=fuzz/corpus/$name
  work=$(mktemp -d)
  echo "fuzz: $name for ${seconds}s over $corpus"
  status=0
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work" "$corpus" \
    >"$work/log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' "$work/log" || true
  if [ "$status" != 0 ] || ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $name failed (exit $status); the input and its report:"
    ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null || true
    tail -40 "$work/log"
    exit 1
  fi
  rm -rf "$work"
done
[ "$found" = 1 ] || { echo "fuzz: no fuzz_* targets in $build/fuzz"; exit 1; }
