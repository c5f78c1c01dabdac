#!/bin/sh
# Rows per second of `replay --features-out`, CSV text and .npy, beside
# `replay` without features, on M synthetic ticks over 500 symbols
# (bench/gen_ticks M 500), the input in the page cache and the outputs on
# a tmpfs. Each case runs R times, the cases taking turns; prints the
# median and best of the whole command's wall time (the outputs' final
# flush, fsync and rename included) as M ticks / time; then, from one more
# run of each case with --features-threads N > 0, where its threads' time
# went.
#
#   bench/features_out.sh [M] [R] [THREADS...]
#       defaults 10000000 3 and THREADS "0 auto": --features-threads values
#   RESERVE_AB=1 also runs each split case with PE_FEATURES_RESERVE=0 (its
#   output's blocks not allocated ahead; name suffix -noreserve),
#   OUT=dir for the outputs (default /dev/shm/pe-features-out, else
#   bench-out), BIN=path/to/pattern-engine (default build/pattern-engine),
#   GEN=path/to/gen_ticks (default build/bench/gen_ticks)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
M=${1:-10000000}
R=${2:-3}
[ $# -ge 2 ] && shift 2 || shift $#
[ $# -gt 0 ] || set -- 0 auto
BIN=${BIN:-build/pattern-engine}
GEN=${GEN:-build/bench/gen_ticks}
if [ -z "${OUT:-}" ]; then
  if [ -d /dev/shm ]; then OUT=/dev/shm/pe-features-out; else OUT=bench-out; fi
fi
mkdir -p "$OUT"
ticks="$OUT/ticks.csv"
"$GEN" "$M" 500 > "$ticks"
cat "$ticks" > /dev/null
echo "== $M ticks, 500 symbols; $(nproc) CPUs; outputs in $OUT"

# case name, its environment, then the replay flags
cases="none|PE_FEATURES_RESERVE=1|"
for t in "$@"; do
  for e in $([ "${RESERVE_AB:-0}" = 1 ] && [ "$t" != 0 ] && echo 1 0 || echo 1); do
    suffix=
    if [ "$e" = 0 ]; then suffix=-noreserve; fi
    cases="$cases
csv-threads-$t$suffix|PE_FEATURES_RESERVE=$e|--features-out $OUT/f.csv --features-threads $t
npy-threads-$t$suffix|PE_FEATURES_RESERVE=$e|--features-out $OUT/f.npy --features-threads $t"
  done
done

now_ns() { date +%s%N; }
i=0
while [ $i -lt "$R" ]; do
  echo "$cases" | while IFS='|' read -r name envs flags; do
    t0=$(now_ns)
    # shellcheck disable=SC2086
    env $envs "$BIN" replay --ticks "$ticks" --out /dev/null --quiet $flags
    t1=$(now_ns)
    echo "$name $((t1 - t0))" >> "$OUT/runs.txt.$i"
    rm -f "$OUT"/f.csv "$OUT"/f.npy "$OUT"/f.columns.txt "$OUT"/f.symbols.csv
  done
  i=$((i + 1))
done
cat "$OUT"/runs.txt.* | awk -v m="$M" '
  { t[$1] = t[$1] " " $2; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
  END {
    printf "%-22s %12s %12s\n", "case", "median M/s", "best M/s"
    for (k = 0; k < n; k++) {
      c = split(substr(t[order[k]], 2), v, " ")
      for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++)
        if (v[b] < v[a]) { x = v[a]; v[a] = v[b]; v[b] = x }
      med = v[int((c + 1) / 2)]
      printf "%-22s %12.2f %12.2f\n", order[k], m / med * 1e3, m / v[1] * 1e3
    }
  }'
# Where the threads' time went, from one more run of each split case (the
# replay summary's `threads` lines: CPU and waiting of the parsing and
# admitting threads, the engines' push, format, write and waiting).
echo "$cases" | while IFS='|' read -r name envs flags; do
  case "$flags" in *"--features-threads 0"|"") continue ;; esac
  echo "-- $name"
  # shellcheck disable=SC2086
  env $envs "$BIN" replay --ticks "$ticks" --out /dev/null $flags 2>&1 |
    sed -n '/^  threads/,/^  wall time/p'
  rm -f "$OUT"/f.csv "$OUT"/f.npy "$OUT"/f.columns.txt "$OUT"/f.symbols.csv
done
rm -f "$OUT"/runs.txt.* "$ticks"
