#!/bin/sh
# The feature-core and replay benchmarks, side by side in one run:
#   1. the feature core (EMAs, VWAP, Welford) over N synthetic ticks across
#      500 symbols: bench/feature_core (C) against a pure-Python loop,
#      pandas and numba on the same ticks (bench/feature_core_peers.py).
#      C, numba and Python take turns for ROUNDS rounds (default 3), each
#      the best of 3 runs, so that all see the same machine weather; a
#      ratio is the median of the rounds' ratios. pandas, slow, runs once
#      after the rounds, against the median C time;
#   2. end-to-end `replay` of a CSV file of M ticks in the page cache, on
#      one core (taskset), three runs; first, as once on the GPU host it
#      ran 25 % slower right after pandas than in a run of its own;
#   3. memory per symbol at W = 32.
# C is the columnar core (pe/core.h); a loop over pe/state.h's streaming
# structs is timed beside it. With them come the memory floors
# (feature_core's run_floor and run_floor_stream: the same arrays read and
# written, one operation each, with ordinary and with streaming stores).
# Prints a table and writes everything under OUT (default bench-out/).
#
#   bench/run_core.sh [N] [M] [PYTHON_N]    defaults 50000000 20000000 2000000
#   BUILD=build PYTHON=.venv/bin/python ROUNDS=3 CPU=0 bench/run_core.sh
set -eu
cd "$(dirname "$0")/.."
N=${1:-50000000}
M=${2:-20000000}
PY_N=${3:-2000000}
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench-out}
CPU=${CPU:-0}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
pin="taskset -c $CPU"
command -v taskset >/dev/null 2>&1 || pin=""

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

echo "== feature core: $N ticks, 500 symbols, $ROUNDS rounds of C, numba and Python"
$PYTHON bench/feature_core_peers.py --n "$N" --peers none --write-bin "$OUT/ticks.petk" >/dev/null
rm -f "$OUT"/core_c_*.json "$OUT"/core_numba_*.json
r=1
while [ "$r" -le "$ROUNDS" ]; do
  $pin "$BUILD/bench/feature_core" "$OUT/ticks.petk" --repeat 3 > "$OUT/core_c_$r.json"
  $pin $PYTHON bench/feature_core_peers.py --read-bin "$OUT/ticks.petk" --peers numba,python \
    --python-n "$PY_N" --repeat 3 --json "$OUT/core_numba_$r.json" > "$OUT/core_numba_$r.txt"
  r=$((r + 1))
done
$pin $PYTHON bench/feature_core_peers.py --read-bin "$OUT/ticks.petk" --peers pandas \
  --repeat 1 --json "$OUT/core_peers.json" > "$OUT/core_peers.txt"
rm -f "$OUT/ticks.petk"

$PYTHON - "$OUT" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
load = lambda name: json.load(open(os.path.join(out, name)))
cs = [load(f"core_c_{r}.json") for r in range(1, rounds + 1)]
rd = [load(f"core_numba_{r}.json")["peers"] for r in range(1, rounds + 1)]
nb = [x["numba"] for x in rd]
py = [x["python"] for x in rd]
p = load("core_peers.json")
c_ns = [c["columns_ns_per_tick"] for c in cs]
c_med = statistics.median(c_ns)
n = cs[0]["n"]
rounds_of = lambda xs, f="{:.2f}": ", ".join(f.format(x) for x in xs)
print(f"\nfeature core, {n} ticks, {cs[0]['symbols']} symbols (ns/tick, lower is better)")
print(f"  {'C, pe/core.h':<22} {c_med:8.2f}   rounds: {rounds_of(c_ns)} "
      f"(pe_core_run, {cs[0]['columns_isa']} path)")
for isa in cs[0]["isa"]:
    xs = [c["isa"][isa]["ns_per_tick"] for c in cs]
    rs = [b["ns_per_tick"] / x for b, x in zip(nb, xs)]
    print(f"  {'  its ' + isa + ' path':<22} {statistics.median(xs):8.2f}   rounds: {rounds_of(xs)} "
          f"({statistics.median(rs):.2f}x numba)")
same = all(q["checksums"] == c["columns_checksums"] for c in cs for q in c["isa"].values())
print(f"  every path's sums the same as the default path's, every round: {'yes' if same else 'NO'}")
st_ns = [c["ns_per_tick"] for c in cs]
print(f"  {'C, pe/state.h structs':<22} {statistics.median(st_ns):8.2f}   rounds: {rounds_of(st_ns)}")
nb_ns = [b["ns_per_tick"] for b in nb]
print(f"  {'numba':<22} {statistics.median(nb_ns):8.2f}   rounds: {rounds_of(nb_ns)}")
ratios = [b / c for b, c in zip(nb_ns, c_ns)]
ratio = statistics.median(ratios)
mark = "meets" if ratio >= 1.5 else "BELOW"
print(f"  pe/core.h is {ratio:.2f}x faster than numba (median of rounds "
      f"{rounds_of(ratios)}; target 1.5x: {mark})")
st_ratios = [b / c for b, c in zip(nb_ns, st_ns)]
print(f"  the pe/state.h structs are {statistics.median(st_ratios):.2f}x numba "
      f"(rounds {rounds_of(st_ratios)})")
floor = [c["floor_ns_per_tick"] for c in cs]
print(f"  {'floor, ordinary stores':<22} {statistics.median(floor):8.2f}   rounds: {rounds_of(floor)} "
      f"(read the inputs, write the outputs, nothing else)")
if "floor_stream_ns_per_tick" in cs[0]:
    fs = [c["floor_stream_ns_per_tick"] for c in cs]
    print(f"  {'floor, streaming':<22} {statistics.median(fs):8.2f}   rounds: {rounds_of(fs)} "
          f"(the same with streaming stores: the least memory traffic)")
    over = [c / f for c, f in zip(c_ns, fs)]
    print(f"  pe/core.h runs at {statistics.median(over):.2f}x the streaming floor "
          f"(rounds {rounds_of(over)})")
nb_ref = load("core_numba_1.json")["checksums"]
worst = max(abs(c["columns_checksums"][k] - nb_ref[k]) / abs(nb_ref[k])
            for c in cs for k in nb_ref)
c_sum = [c["summed_ns_per_tick"] for c in cs]
nb_sum = [b["summed_ns_per_tick"] for b in nb]
sum_ratio = statistics.median(b / c for b, c in zip(nb_sum, c_sum))
print(f"  structs, features summed, not stored: C {statistics.median(c_sum):.2f}, numba "
      f"{statistics.median(nb_sum):.2f} ns/tick; C is {sum_ratio:.2f}x faster (median of rounds "
      f"{rounds_of([b / c for b, c in zip(nb_sum, c_sum)])})")
py_ns = [x["ns_per_tick"] for x in py]
py_ratios = [a["ns_per_tick"] / c for a, c in zip(py, c_ns)]
ratio = statistics.median(py_ratios)
mark = "meets" if ratio >= 100 else "BELOW"
print(f"  {'python':<22} {statistics.median(py_ns):8.2f}   rounds: {rounds_of(py_ns)} (n={py[0]['n']})")
print(f"  pe/core.h is {ratio:.1f}x faster than Python (median of rounds "
      f"{rounds_of(py_ratios, '{:.1f}')}; target 100x: {mark})")
r = p["peers"]["pandas"]
ratio = r["ns_per_tick"] / c_med
mark = "meets" if ratio >= 20 else "BELOW"
print(f"  {'pandas':<22} {r['ns_per_tick']:8.2f}   pe/core.h is {ratio:7.1f}x faster "
      f"(target 20x: {mark}; one run after the rounds, against the median C)")
for k, v in cs[0]["columns_checksums"].items():
    print(f"  checksum {k:<8} C {v:.12e}  numba {nb_ref[k]:.12e}  rel {abs(v - nb_ref[k]) / abs(nb_ref[k]):.1e}")
print(f"  checksums, every round, C against numba: max relative difference {worst:.1e}")
runs = [load(f"replay_{i}.json") for i in (1, 2, 3)]
full = load("replay_full.json")
rates = sorted(r["rows"] / r["wall_s"] for r in runs)
print(f"\nreplay, {runs[0]['rows']} ticks from a CSV in the page cache, one core:")
print(f"  ticks/s  median {rates[1]:,.0f}  (runs {', '.join(f'{x:,.0f}' for x in rates)}; target 10,000,000)")
print(f"  with --features-out /dev/null (all features, formatted): {full['rows'] / full['wall_s']:,.0f}")
lat = runs[0]["latency_ns"]
print(f"  latency/tick p50 {lat['p50']:.0f} ns, p99 {lat['p99']:.0f} ns, p99.9 {lat['p999']:.0f} ns")
print(f"\nmemory per symbol at W = {cs[0]['window']}: {cs[0]['engine_bytes_per_symbol']} bytes (target <= 4096)")
PY
