#!/bin/sh
# Issue 2's benchmarks, side by side in one run:
#   1. the feature core (EMAs, VWAP, Welford) over N synthetic ticks across
#      500 symbols: bench/feature_core (C) against a pure-Python loop,
#      pandas and numba on the same ticks (bench/feature_core_peers.py);
#   2. end-to-end `replay` of a CSV file of M ticks in the page cache, on
#      one core (taskset), three runs;
#   3. memory per symbol at W = 32.
# Prints a table and writes everything under OUT (default bench-out/).
#
#   bench/run_core.sh [N] [M] [PYTHON_N]    defaults 50000000 20000000 2000000
#   BUILD=build PYTHON=.venv/bin/python bench/run_core.sh
set -eu
cd "$(dirname "$0")/.."
N=${1:-50000000}
M=${2:-20000000}
PY_N=${3:-2000000}
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench-out}
CPU=${CPU:-0}
mkdir -p "$OUT"
pin="taskset -c $CPU"
command -v taskset >/dev/null 2>&1 || pin=""

echo "== feature core: $N ticks, 500 symbols"
$PYTHON bench/feature_core_peers.py --n "$N" --peers none --write-bin "$OUT/ticks.petk" >/dev/null
$pin "$BUILD/bench/feature_core" "$OUT/ticks.petk" --repeat 3 > "$OUT/core_c.json"
$pin $PYTHON bench/feature_core_peers.py --read-bin "$OUT/ticks.petk" --python-n "$PY_N" \
  --peers python,pandas,numba --json "$OUT/core_peers.json" > "$OUT/core_peers.txt"
rm -f "$OUT/ticks.petk"

echo "== replay: $M ticks"
"$BUILD/bench/gen_ticks" "$M" 500 > "$OUT/ticks.csv"
cat "$OUT/ticks.csv" > /dev/null
for run in 1 2 3; do
  $pin "$BUILD/pattern-engine" replay --ticks "$OUT/ticks.csv" --out /dev/null --quiet \
    --summary-json "$OUT/replay_$run.json"
done
$pin "$BUILD/pattern-engine" replay --ticks "$OUT/ticks.csv" --out /dev/null --quiet \
  --features-out /dev/null --summary-json "$OUT/replay_full.json"
rm -f "$OUT/ticks.csv"

$PYTHON - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
c = json.load(open(os.path.join(out, "core_c.json")))
p = json.load(open(os.path.join(out, "core_peers.json")))
print(f"\nfeature core, {c['n']} ticks, {c['symbols']} symbols (ns/tick, lower is better)")
print(f"  {'C (pe/state.h)':<16} {c['ns_per_tick']:8.2f}")
for name, want in (("python", 100), ("pandas", 20), ("numba", 1.5)):
    r = p["peers"].get(name)
    if not r:
        continue
    ratio = r["ns_per_tick"] / c["ns_per_tick"]
    mark = "meets" if ratio >= want else "BELOW"
    print(f"  {name:<16} {r['ns_per_tick']:8.2f}   C is {ratio:7.1f}x faster "
          f"(target {want}x: {mark}; peer n={r['n']})")
for k, v in c["checksums"].items():
    ref = p["checksums"][k]
    print(f"  checksum {k:<8} C {v:.12e}  numba {ref:.12e}  rel {abs(v - ref) / abs(ref):.1e}")
runs = [json.load(open(os.path.join(out, f"replay_{i}.json"))) for i in (1, 2, 3)]
full = json.load(open(os.path.join(out, "replay_full.json")))
rates = sorted(r["rows"] / r["wall_s"] for r in runs)
print(f"\nreplay, {runs[0]['rows']} ticks from a CSV in the page cache, one core:")
print(f"  ticks/s  median {rates[1]:,.0f}  (runs {', '.join(f'{x:,.0f}' for x in rates)}; target 10,000,000)")
print(f"  with --features-out /dev/null (all features, formatted): {full['rows'] / full['wall_s']:,.0f}")
print(f"  engine push latency p50 {runs[0]['latency_ns']['p50']:.0f} ns, p99 {runs[0]['latency_ns']['p99']:.0f} ns")
print(f"\nmemory per symbol at W = {c['window']}: {c['engine_bytes_per_symbol']} bytes (target <= 4096)")
PY
