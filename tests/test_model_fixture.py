"""The default model finds the fixture's planted patterns:
`replay --model MODEL` on fixtures/sample_ticks.csv must emit a model signal
of the planted class (spike_up, spike_down, breakout_up, breakout_down) at
the planted tick of every such event in fixtures/sample_ticks.events.csv,
and no model signal anywhere else.

Usage: python3 tests/test_model_fixture.py ENGINE MODEL [MODEL ...]
(standard library only)
"""
import csv
import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "fixtures", "sample_ticks.csv")
EVENTS = os.path.join(ROOT, "fixtures", "sample_ticks.events.csv")
POINT_KINDS = {"spike_up", "spike_down", "breakout_up", "breakout_down"}

engine = sys.argv[1]
failures = 0
planted = {}
for row in csv.DictReader(open(EVENTS)):
    if row["kind"] in POINT_KINDS:
        planted[(row["symbol"], int(row["ts_ns"]))] = row["kind"]
if len(planted) < 8:
    print(f"FAIL: only {len(planted)} planted point events in {EVENTS}")
    sys.exit(1)

for model in sys.argv[2:]:
    p = subprocess.run([engine, "replay", "--ticks", FIXTURE, "--model", model,
                        "--quiet"], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAIL {model}: exit {p.returncode}: {p.stderr.strip()}")
        failures += 1
        continue
    found = {}
    for sig in csv.DictReader(io.StringIO(p.stdout)):
        if sig["pattern"].startswith("model:"):
            found[(sig["symbol"], int(sig["ts"]))] = sig["pattern"][6:]
    missed = [(k, v) for k, v in planted.items() if found.get(k) != v]
    extra = [(k, v) for k, v in found.items() if k not in planted]
    name = os.path.basename(model)
    print(f"{name}: {len(planted) - len(missed)}/{len(planted)} planted patterns "
          f"found with their class; {len(extra)} model signals elsewhere")
    for (sym, ts), kind in missed:
        print(f"  FAIL missed {kind} {sym} at {ts} (got {found.get((sym, ts))})")
    for (sym, ts), kind in extra:
        print(f"  FAIL unexpected model:{kind} {sym} at {ts}")
    failures += len(missed) + len(extra)
sys.exit(1 if failures else 0)
