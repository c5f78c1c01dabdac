#!/usr/bin/env python3
"""Micro-batching leaves `replay`'s output alone: with the shipped models, the
signals (JSONL) and the feature rows of a run with --max-batch N and
--max-delay-us US (and --model-threads T, each batch split over T threads)
are byte for byte those of the unbatched run, while the summary shows the
model running in batches of the sizes the settings allow.

    test_cli_batch.py ENGINE [REAL_TRADES_CSV]

The real trades (../shared/data/real/binance_trades.csv) are checked too
where the file is there; where it is not, that part is skipped with a
message.
"""
import json
import os
import subprocess
import sys
import tempfile

ENGINE = sys.argv[1]
REAL = sys.argv[2] if len(sys.argv) > 2 else None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "fixtures", "sample_ticks.csv")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


def replay(tmp, ticks, model, batch, delay_us, tag, threads=1):
    """Runs replay; returns (signals bytes, features bytes, summary dict)."""
    sig = os.path.join(tmp, f"{tag}.jsonl")
    feat = os.path.join(tmp, f"{tag}.features.csv")
    summ = os.path.join(tmp, f"{tag}.json")
    args = [ENGINE, "replay", "--ticks", ticks, "--model", model,
            "--format", "jsonl", "--out", sig, "--features-out", feat,
            "--summary-json", summ]
    if batch is not None:
        args += ["--max-batch", str(batch), "--max-delay-us", str(delay_us)]
    if threads > 1:
        args += ["--model-threads", str(threads)]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        check(f"{tag} runs", False, r.stderr)
        return None
    with open(sig, "rb") as f:
        s = f.read()
    with open(feat, "rb") as f:
        fe = f.read()
    with open(summ) as f:
        js = json.load(f)
    if batch is not None and batch > 1:
        check(f"{tag} summary names its batches",
              "  batches      " in r.stderr, r.stderr)
    return s, fe, js


def compare(tmp, ticks, model, settings, what):
    name = os.path.basename(model)
    want = replay(tmp, ticks, model, None, 0, "want")
    if want is None:
        return
    w_sig, w_feat, w_js = want
    check(f"{what} {name}: the model signals at all",
          w_js["signals"]["model"] > 0, w_js)
    check(f"{what} {name}: unbatched runs no batches",
          w_js["batches"]["runs"] == 0, w_js["batches"])
    for batch, delay, *more in settings:
        threads = more[0] if more else 1
        tag = f"{what} {name} --max-batch {batch} --max-delay-us {delay}"
        if threads > 1:
            tag += f" --model-threads {threads}"
        got = replay(tmp, ticks, model, batch, delay, "got", threads)
        if got is None:
            continue
        g_sig, g_feat, g_js = got
        check(f"{tag}: signals byte-identical", g_sig == w_sig,
              f"{len(g_sig)} bytes against {len(w_sig)}")
        check(f"{tag}: features byte-identical", g_feat == w_feat,
              f"{len(g_feat)} bytes against {len(w_feat)}")
        check(f"{tag}: same counts", g_js["signals"] == w_js["signals"] and
              g_js["inferences"] == w_js["inferences"], (g_js, w_js))
        b = g_js["batches"]
        if batch == 1:
            check(f"{tag}: unbatched", b["runs"] == 0, b)
            continue
        check(f"{tag}: every window in a batch",
              b["windows"] == w_js["inferences"], b)
        check(f"{tag}: histogram sums to the runs",
              sum(b["by_size"]) == b["runs"], b)
        check(f"{tag}: no batch over --max-batch", b["largest"] <= batch, b)
        if delay >= 10**9:
            # Nothing but the size limit closes a batch early.
            check(f"{tag}: full batches", b["largest"] == batch and
                  b["runs"] <= w_js["inferences"] // batch + 1, b)


GRID = [(1, 200), (2, 0), (2, 10**9), (7, 200), (64, 0), (64, 200),
        (64, 10**9), (256, 5000), (256, 10**9), (2, 10**9, 3), (7, 200, 4),
        (256, 10**9, 3)]
SHORT = [(7, 200), (64, 10**9), (256, 10**9), (64, 10**9, 2)]

with tempfile.TemporaryDirectory(prefix="pe-batch-") as tmp:
    compare(tmp, FIXTURE, os.path.join(ROOT, "models", "pattern_cnn.onnx"),
            GRID, "fixture")
    for m in ("pattern_lstm", "toy_cnn", "toy_mlp"):
        compare(tmp, FIXTURE, os.path.join(ROOT, "models", m + ".onnx"),
                SHORT, "fixture")
    if REAL is not None and os.path.exists(REAL):
        compare(tmp, REAL, os.path.join(ROOT, "models", "pattern_cnn.onnx"),
                [(64, 200), (256, 10**9)], "real trades")
    else:
        print(f"skip: real trades not found at {REAL} (they live outside the "
              "repository); the fixture was checked")

    # Usage errors: a clear message and exit status 2.
    for bad in ("0", "4097", "x"):
        r = subprocess.run([ENGINE, "replay", "--ticks", FIXTURE, "--max-batch",
                            bad, "--out", os.path.join(tmp, "bad.csv")],
                           capture_output=True, text=True)
        check(f"--max-batch {bad} refused", r.returncode == 2 and
              "--max-batch" in r.stderr, (r.returncode, r.stderr))
    for bad in ("0", "65", "x"):
        r = subprocess.run([ENGINE, "replay", "--ticks", FIXTURE, "--model",
                            os.path.join(ROOT, "models", "pattern_cnn.onnx"),
                            "--model-threads", bad, "--out",
                            os.path.join(tmp, "bad.csv")],
                           capture_output=True, text=True)
        check(f"--model-threads {bad} refused", r.returncode == 2 and
              "--model-threads" in r.stderr, (r.returncode, r.stderr))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
