"""Engine and replay() against the CLI's replay, snapshots, misuse,
threads."""

import subprocess
import threading

import numpy as np
import pandas as pd
import pytest

import pattern_engine as pe
from conftest import MODELS, SAMPLE, in_threads


def cli_signals(cli, *args):
    out = subprocess.run([cli, "replay", "--quiet", *args], check=True,
                         capture_output=True, text=True).stdout
    return pd.read_csv(pd.io.common.StringIO(out), dtype={"id": str, "symbol": str,
                                                          "fired": str},
                       keep_default_na=False)


def assert_same_signals(ours: pd.DataFrame, cli: pd.DataFrame):
    assert len(ours) == len(cli) > 0
    assert list(ours["id"]) == list(cli["id"])
    assert list(ours["ts"]) == list(cli["ts"])
    assert list(ours["symbol"]) == list(cli["symbol"])
    assert list(ours["pattern"]) == list(cli["pattern"])
    # The CLI prints the shortest text that reads back: the same doubles.
    for c in ("score", "confidence", "price"):
        assert list(ours[c]) == [float(x) for x in cli[c]], c
    # fired: rule=value pairs in the CLI, the rule names here.
    names = [";".join(p.split("=")[0] for p in f.split(";") if p) for f in cli["fired"]]
    assert list(ours["fired"]) == names


def test_replay_file_equals_cli(cli):
    assert_same_signals(pe.replay(SAMPLE), cli_signals(cli, "--ticks", SAMPLE))


def test_replay_frame_with_the_stub_equals_cli(cli):
    ours = pe.replay(pd.read_csv(SAMPLE), model="stub")
    theirs = cli_signals(cli, "--ticks", SAMPLE, "--backend", "stub")
    assert_same_signals(ours, theirs)
    assert (ours["pattern"].str.startswith("model:")).any()
    assert ours.attrs["stats"]["inferences"] > 0


def test_settings_change_the_signals(cli):
    ours = pe.replay(SAMPLE, breakout_sigma=1.5, signal_cooldown=1.5)
    theirs = cli_signals(cli, "--ticks", SAMPLE, "--breakout-sigma", "1.5",
                         "--signal-cooldown", "1.5")
    assert_same_signals(ours, theirs)
    assert len(ours) != len(pe.replay(SAMPLE))


def test_push_one_at_a_time_equals_push_batch():
    df = pd.read_csv(SAMPLE)
    with pe.Engine(model="stub") as one, pe.Engine(model="stub") as batch:
        records = []
        for row in df.itertuples(index=False):
            records.extend(one.push(row.ts, row.symbol, row.price, row.volume))
        frame = batch.push_batch(df)
        assert one.stats() == batch.stats()
    assert len(frame) > 0
    ones = pd.DataFrame(records, columns=pe.SIGNAL_COLUMNS).astype(frame.dtypes.to_dict())
    pd.testing.assert_frame_equal(ones, frame)


def test_snapshot_is_the_cli_state_and_restores(cli, tmp_path):
    df = pd.read_csv(SAMPLE)
    state = tmp_path / "state.bin"
    subprocess.run([cli, "replay", "--quiet", "--ticks", SAMPLE, "--out", "/dev/null",
                    "--state-out", str(state)], check=True)
    # replay computes only the rules' features unless asked for all.
    with pe.Engine(all_features=0) as e:
        e.push_batch(df)
        snap = e.snapshot()
    assert snap == state.read_bytes()

    half = len(df) // 2
    with pe.Engine() as whole:
        whole.push_batch(df.iloc[:half])
        mid = whole.snapshot()
        rest = whole.push_batch(df.iloc[half:])
        end = whole.snapshot()
    with pe.Engine() as resumed:
        resumed.restore(mid)
        again = resumed.push_batch(df.iloc[half:])
        assert resumed.snapshot() == end
    assert len(rest) > 0
    pd.testing.assert_frame_equal(rest, again)


def test_restore_refuses_bad_snapshots():
    with pe.Engine() as e:
        e.push(1, "A", 1.0, 1.0)
        snap = bytearray(e.snapshot())
        before = e.snapshot()
        broken = bytes(snap[:-1] + bytes([snap[-1] ^ 1]))
        with pytest.raises(pe.Error) as info:
            e.restore(broken)
        assert info.value.name == "ECORRUPT"
        with pytest.raises(pe.Error) as info:
            e.restore(bytes(snap[: len(snap) // 2]))
        assert info.value.name == "ECORRUPT"
        assert e.snapshot() == before
    with pe.Engine(ema_fast_span=5) as other:
        with pytest.raises(pe.Error) as info:
            other.restore(bytes(snap))
        assert info.value.name == "EINVAL"


def test_rejections_raise_with_code_and_message():
    with pe.Engine() as e:
        e.push(10, "A", 1.0, 1.0)
        cases = [((5, "A", 1.0, 1.0), "EORDER"), ((11, "A", -1.0, 1.0), "EPRICE"),
                 ((11, "A", 1.0, float("nan")), "EVOLUME"), ((11, "", 1.0, 1.0), "ESYMBOL"),
                 ((11, "X" * 32, 1.0, 1.0), "ESYMLEN")]
        for args, name in cases:
            with pytest.raises(pe.Error) as info:
                e.push(*args)
            assert info.value.name == name
            assert str(info.value)
        assert e.stats()["ticks"] == 1
    with pe.Engine(max_symbols=2) as e:
        e.push_batch(ts=[1, 2], symbol=["A", "B"], price=[1.0, 1.0], volume=[1.0, 1.0])
        with pytest.raises(pe.Error) as info:
            e.push(3, "C", 1.0, 1.0)
        assert info.value.name == "EFULL"
        assert "symbol table full" in str(info.value)


def test_misuse_raises_and_close_is_final():
    e = pe.Engine()
    with pytest.raises(TypeError):
        e.push_batch(ts=["a"], symbol=["A"], price=[1.0], volume=[1.0])
    with pytest.raises(ValueError):
        e.push_batch(ts=[1, 2], symbol=["A"], price=[1.0, 1.0], volume=[1.0, 1.0])
    with pytest.raises(ValueError):
        e.push_batch(ts=np.ones((2, 2), np.int64), symbol=["A"] * 4, price=np.ones(4),
                     volume=np.ones(4))
    with pytest.raises(ValueError):
        e.push_batch(pd.DataFrame({"ts": [1]}))
    with pytest.raises(ValueError):
        e.push_batch(ts=[1], symbol=["A"], price=[1.0], volume=[1.0], on_error="ignore")
    with pytest.raises(TypeError):
        pe.Engine(no_such_setting=1)
    with pytest.raises(pe.Error) as info:
        pe.Engine(model="/no/such/model.onnx")
    assert "/no/such/model.onnx" in str(info.value)
    with pytest.raises(pe.Error) as info:
        pe.Engine(model="plan.engine")
    assert info.value.name == "EUNSUPPORTED" and "TensorRT" in str(info.value)
    e.close()
    e.close()
    for call in (lambda: e.push(1, "A", 1.0, 1.0), e.snapshot, e.stats,
                 lambda: e.restore(b"x"), lambda: e.push_batch(pd.read_csv(SAMPLE))):
        with pytest.raises(pe.Error) as info:
            call()
        assert info.value.name == "ESTATE"


def test_one_engine_shared_by_threads():
    """Documented thread-safe: calls are serialized. Each thread pushes one
    symbol's ticks in chunks; per-symbol state makes the result independent
    of how the threads interleave."""
    df = pd.read_csv(SAMPLE)
    with pe.Engine(model="stub") as serial:
        expected = serial.push_batch(df)
    with pe.Engine(model="stub") as shared:
        got = []

        def work(frame):
            for i in range(0, len(frame), 500):
                got.append(shared.push_batch(frame.iloc[i:i + 500]))

        assert in_threads(work, [g for _, g in df.groupby("symbol", sort=False)]) == []
        assert shared.stats()["ticks"] == len(df)
    key = ["id", "pattern"]
    a = pd.concat(got).sort_values(key).reset_index(drop=True)
    b = expected.sort_values(key).reset_index(drop=True)
    assert len(b) > 0
    pd.testing.assert_frame_equal(a, b)


def test_the_gil_is_released_while_c_runs():
    """A Python thread keeps running while another thread is inside one
    long C call: the longest pause between its steps is a small part of
    the call's time (with the GIL held it would be all of it)."""
    import time
    from pattern_engine._engine import _Result
    from pattern_engine._ticks import columns_of
    n = 3_000_000
    rng = np.random.default_rng(7)
    cols = columns_of(ts=np.arange(n, dtype=np.int64),
                      symbol=pd.Categorical.from_codes(rng.integers(0, 50, n),
                                                       [f"S{i}" for i in range(50)]),
                      price=100 + rng.random(n), volume=rng.random(n))
    with pe.Engine() as eng:
        done = threading.Event()
        span = {}

        def call():
            res = _Result(0)
            t = time.perf_counter()
            res.check(eng._run(cols, res))
            span["c"] = (t, time.perf_counter())
            done.set()

        worker = threading.Thread(target=call)
        stamps = []
        worker.start()
        while not done.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)
        worker.join()
    start, end = span["c"]
    inside = [s for s in stamps if start <= s <= end]
    assert end - start > 0.05, "the call was too short to tell"
    gaps = np.diff([start, *inside, end])
    assert len(inside) >= 5 and gaps.max() < 0.5 * (end - start), \
        f"longest pause {gaps.max():.3f} s of a {end - start:.3f} s call"


def test_backend_argument():
    model = f"{MODELS}/pattern_cnn.onnx"
    with pe.Engine(model=model, backend="cpu") as e:
        assert e.replay_file(SAMPLE).c.n_signals > 0
    with pytest.raises(pe.Error, match="unknown backend 'gpu'"):
        pe.Engine(model=model, backend="gpu")
    with pytest.raises(ValueError, match="need a model"):
        pe.Engine(backend="cpu")
    with pytest.raises(ValueError, match="need a model"):
        pe.Engine(precision="tf32")
    with pytest.raises(ValueError, match="precision needs backend='cuda'"):
        pe.Engine(model=model, precision="tf32")
    with pytest.raises(ValueError, match="cuda_mode needs backend='cuda'"):
        pe.Engine(model=model, backend="cpu", cuda_mode="persistent")
    with pytest.raises(ValueError, match="stub model has no other backend"):
        pe.Engine(model="stub", backend="cuda")
    try:
        pe.Engine(model=model, backend="cuda", cuda_mode="persistent").close()
    except pe.Error as exc:
        # no device here, or no cuda backend in this build
        assert "no CUDA device" in str(exc) or "unknown backend 'cuda'" in str(exc)
    with pytest.raises(pe.Error, match="unknown mode 'fast'|unknown backend 'cuda'"):
        pe.Engine(model=model, backend="cuda", cuda_mode="fast")
    with pytest.raises(pe.Error,
                       match="unknown precision 'fp16'|unknown backend 'cuda'"):
        pe.Engine(model=model, backend="cuda", precision="fp16")
