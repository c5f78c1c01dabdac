#!/bin/sh
# Runs every libFuzzer target of a fuzz build for SECONDS each over its
# committed corpus (fuzz/corpus/<name>/), read-only: new inputs go to a
# temporary folder. As many targets at a time as there are cores (JOBS to
# choose). Fails when any target finds a crash, leak or timeout, and
# prints that input's report.
#
#   run-fuzzers.sh BUILD SECONDS
#   run-fuzzers.sh --one BIN SECONDS   (one target; what the first form runs)
set -eu
if [ "${1:-}" = --one ]; then
  bin=$2
  seconds=$3
  name=$(basename "$bin" | sed 's/^fuzz_//')
  corpus=fuzz/corpus/$name
  work=$(mktemp -d)
  status=0
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work" "$corpus" \
    >"$work/log" 2>&1 || status=$?
  failed=0
  if [ "$status" != 0 ] || ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
    failed=1
  fi
  # one block of lines per target, so that parallel targets do not interleave
  {
    echo "fuzz: $name for ${seconds}s over $corpus"
    grep -E '^(stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' "$work/log" || true
    if [ "$failed" = 1 ]; then
      echo "fuzz: $name failed (exit $status); the input and its report:"
      ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null || true
      tail -40 "$work/log"
    fi
  } >"$work/report"
  cat "$work/report"
  rm -rf "$work"
  exit "$failed"
fi
build=${1:?usage: run-fuzzers.sh BUILD SECONDS}
seconds=${2:-60}
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc 2>/dev/null || echo 1)}
bins=$(find "$build/fuzz" -maxdepth 1 -name 'fuzz_*' -type f -perm -u+x 2>/dev/null | sort)
[ -n "$bins" ] || { echo "fuzz: no fuzz_* targets in $build/fuzz"; exit 1; }
# xargs exits non-zero when any target did
# shellcheck disable=SC2086
printf '%s\n' $bins | xargs -P "$jobs" -I{} sh scripts/run-fuzzers.sh --one {} "$seconds" ||
  { echo "fuzz: a target failed (its report is above)"; exit 1; }
