"""features() against pandas (the oracle of tests/test_features_pandas.py)
and against `replay --features-out`, bit for bit."""

import os
import subprocess

import numpy as np
import pandas as pd
import pytest

import pattern_engine as pe
from conftest import SAMPLE, in_threads
from test_features_pandas import TOLERANCES, TINY, pandas_features, read_ticks


def cli_features(cli, path, tmp_path, *extra):
    out = tmp_path / "features.csv"
    subprocess.run([cli, "replay", "--ticks", path, "--features-out", str(out),
                    "--out", "/dev/null", "--quiet", *extra], check=True)
    # The text reads back as the engine's double: Python's float() gives it
    # exactly (correctly rounded), whatever pandas' own parser does.
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    df = pd.DataFrame({"ts": raw["ts"].astype(np.int64), "symbol": raw["symbol"]})
    for c in raw.columns[2:]:
        df[c] = np.array([float(x) for x in raw[c]], dtype=np.float64)
    return df


def assert_bitwise(ours: pd.DataFrame, theirs: pd.DataFrame):
    assert list(ours.columns) == list(theirs.columns)
    assert len(ours) == len(theirs)
    assert np.array_equal(ours["ts"].to_numpy(), theirs["ts"].to_numpy())
    assert (ours["symbol"].astype(str).to_numpy() == theirs["symbol"].to_numpy()).all()
    for c in ours.columns[2:]:
        a = ours[c].to_numpy(dtype=np.float64)
        b = theirs[c].to_numpy(dtype=np.float64)
        same = (a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))
        bad = np.flatnonzero(~same)
        assert bad.size == 0, f"{c}: row {bad[:1]}: {a[bad[:1]]} != {b[bad[:1]]}"


def assert_matches_pandas(ours: pd.DataFrame, ticks: pd.DataFrame):
    ref = pandas_features(ticks)
    assert len(ours) == len(ref)
    assert np.array_equal(ours["ts"].to_numpy(), ticks["ts"].to_numpy())
    for col, tol in TOLERANCES:
        a, b = ours[col].to_numpy(), ref[col].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        ok = ~np.isnan(b)
        err = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), TINY)
        assert err.max(initial=0.0) <= tol, f"{col}: relative error {err.max()}"


def load(path):
    """Ticks as a user would load them: pandas, the file's own columns."""
    df = pd.read_csv(path)
    return df.rename(columns={"timestamp": "ts", "time": "ts"})


def test_sample_matches_pandas():
    ticks = read_ticks(SAMPLE)
    assert_matches_pandas(pe.features(load(SAMPLE)), ticks)


def test_sample_equals_features_out_bit_for_bit(cli, tmp_path):
    ours = pe.features(load(SAMPLE))
    assert len(ours) == 24765
    assert_bitwise(ours, cli_features(cli, SAMPLE, tmp_path))


def test_real_trades_match_pandas_and_features_out(cli, real_ticks, tmp_path):
    df = load(real_ticks)
    ours = pe.features(df)
    assert_matches_pandas(ours, read_ticks(real_ticks))
    assert_bitwise(ours, cli_features(cli, real_ticks, tmp_path))


def test_settings_reach_the_engine(cli, tmp_path):
    ours = pe.features(load(SAMPLE), ema_fast_span=5, ema_td_half_life_s=7,
                       vwap_window_s=30, session_reset="14:45")
    theirs = cli_features(cli, SAMPLE, tmp_path, "--ema-fast-span", "5",
                          "--ema-td-half-life", "7", "--vwap-window", "30",
                          "--session-reset", "14:45")
    assert_bitwise(ours, theirs)
    assert not np.array_equal(ours["ema_fast"], pe.features(load(SAMPLE))["ema_fast"])


def test_core_columns_equal_the_engine_columns():
    df = load(SAMPLE)
    core = pe.features(df, columns=["ema_fast", "ema_slow", "vwap", "mean", "var"])
    full = pe.features(df)
    assert list(core.columns) == ["ts", "symbol", "price", "volume", "ema_fast",
                                  "ema_slow", "vwap", "mean", "var"]
    assert_bitwise(core, full[core.columns])


def test_arrays_categorical_and_datetime_inputs_agree():
    df = load(SAMPLE)
    ref = pe.features(df)
    by_arrays = pe.features(ts=df["ts"].to_numpy(), symbol=df["symbol"].to_numpy(),
                            price=df["price"].to_numpy(), volume=df["volume"].to_numpy())
    assert_bitwise(by_arrays, ref)
    other = df.assign(ts=pd.to_datetime(df["ts"], unit="ns"),
                      symbol=df["symbol"].astype("category"))
    assert_bitwise(pe.features(other), ref)


BAD_ROWS = """ts,symbol,price,volume
1000000000000000000,AAA,10.0,1
1000000000000000001,AAA,-1.0,1
1000000000000000002,BBB,20.0,nan
1000000000000000003,AAA,11.0,2
1000000000000000002,AAA,12.0,2
1000000000000000004,THIS_SYMBOL_IS_FAR_TOO_LONG_FOR_IT,1.0,1
1000000000000000005,BBB,21.0,3
1000000000000000006,AAA,inf,1
1000000000000000007,AAA,13.0,0
"""


@pytest.mark.parametrize("columns", [None, ["ema_fast", "var"]])
def test_rejected_ticks_as_the_cli_rejects_them(cli, tmp_path, columns):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_ROWS)
    ours = pe.features(pd.read_csv(path), columns=columns)
    theirs = cli_features(cli, str(path), tmp_path)
    assert_bitwise(ours, theirs[ours.columns])
    assert list(ours["price"]) == [10.0, 11.0, 21.0, 13.0]
    assert ours.attrs["rejected"] == {"bad_price": 2, "bad_volume": 1,
                                      "symbol_too_long": 1, "out_of_order": 1}


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_threads_give_the_one_engine_result(cli, tmp_path, threads):
    # Symbols split over engines: the same frame, bit for bit, as one engine
    # and as the CLI, rejected rows (bad values, out of order, a symbol too
    # long) included, wherever they fall.
    df = load(SAMPLE)
    df.loc[7, "price"] = -1.0
    df.loc[4000, "volume"] = np.nan
    df.loc[9000, "ts"] = df.loc[8000, "ts"] - 1
    df.loc[12000, "symbol"] = "THIS_SYMBOL_IS_FAR_TOO_LONG_FOR_IT"
    path = tmp_path / "ticks.csv"
    df.to_csv(path, index=False)
    one = pe.features(df, threads=1)
    many = pe.features(df, threads=threads)
    assert_bitwise(many, one)
    assert many.attrs == one.attrs
    assert sum(many.attrs["rejected"].values()) >= 4
    assert_bitwise(many, cli_features(cli, str(path), tmp_path))
    bad = pd.read_csv(pd.io.common.StringIO(BAD_ROWS))
    assert_bitwise(pe.features(bad, threads=threads), pe.features(bad, threads=1))


@pytest.mark.parametrize("threads", [2, 5, 16])
def test_threads_over_several_windows(threads):
    # More rows than one window of a sharded run (65,536), rejected rows on
    # both sides of the windows' edges and as the very last row, and none
    # rejected at all: the same frame, bit for bit, as one engine.
    n = 200_000
    rng = np.random.default_rng(7)
    sym = rng.integers(0, 37, n)
    df = pd.DataFrame({"ts": 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 900, n)),
                       "symbol": [f"S{i}" for i in sym],
                       "price": 100.0 * np.exp(rng.normal(0, 1e-3, n)),
                       "volume": rng.integers(1, 500, n).astype(np.float64)})
    clean = pe.features(df, threads=threads)
    assert len(clean) == n and clean.attrs["rejected"] == {}
    assert_bitwise(clean, pe.features(df, threads=1))
    for row in (0, 65_535, 65_536, 65_537, 131_071, 131_072, 150_000, n - 1):
        df.loc[row, "price"] = -1.0
    one = pe.features(df, threads=1)
    many = pe.features(df, threads=threads)
    assert len(one) == n - 8
    assert_bitwise(many, one)
    assert many.attrs == one.attrs


def test_threads_misuse_raises():
    df = load(SAMPLE).head(100)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            pe.features(df, threads=bad)


def test_on_error_raise_names_the_row(tmp_path):
    df = pd.read_csv(pd.io.common.StringIO(BAD_ROWS))
    with pytest.raises(pe.Error) as info:
        pe.features(df, on_error="raise")
    assert info.value.name == "EPRICE"
    assert info.value.code < 0
    assert "row 1" in str(info.value)


def test_empty_input_gives_empty_frame():
    out = pe.features(ts=np.zeros(0, np.int64), symbol=np.array([], dtype=object),
                      price=np.zeros(0), volume=np.zeros(0))
    assert len(out) == 0
    assert list(out.columns) == ["ts", "symbol", "price", "volume", *pe.FEATURE_COLUMNS]


def test_misuse_raises():
    df = load(SAMPLE).head(100)
    with pytest.raises(TypeError):
        pe.features(df.assign(price=df["price"].astype(str)))
    with pytest.raises(TypeError):
        pe.features(df.assign(ts=df["ts"].astype(float)))
    with pytest.raises(TypeError):
        pe.features(df.assign(symbol=np.arange(100)))
    with pytest.raises(ValueError):
        pe.features(ts=df["ts"].to_numpy(), symbol=df["symbol"].to_numpy(),
                    price=df["price"].to_numpy()[:50], volume=df["volume"].to_numpy())
    with pytest.raises(ValueError):
        pe.features(ts=df["ts"].to_numpy().reshape(10, 10), symbol=df["symbol"],
                    price=df["price"], volume=df["volume"])
    with pytest.raises(ValueError):
        pe.features(df.drop(columns=["volume"]))
    with pytest.raises(ValueError):
        pe.features(df, columns=["no_such_feature"])
    with pytest.raises(TypeError):
        pe.features(df, no_such_setting=1)
    with pytest.raises(pe.Error) as info:
        pe.features(df, ema_fast_span=0)
    assert info.value.name == "EINVAL"


def test_strided_arrays_give_the_contiguous_result():
    df = load(SAMPLE)
    wide = np.empty((len(df), 2))
    wide[:, 0] = df["price"]
    wide[:, 1] = df["volume"]
    assert not wide[:, 0].flags.c_contiguous
    out = pe.features(ts=df["ts"].to_numpy(), symbol=df["symbol"].to_numpy(),
                      price=wide[:, 0], volume=wide[:, 1])
    assert_bitwise(out, pe.features(df))


def test_calls_from_several_threads_run_apart():
    """Each call has its own engine: threads get their own, correct results."""
    df = load(SAMPLE)
    ref = pe.features(df)
    spans = {1: 11.0, 2: 19.0, 3: 29.0}
    expected = {k: pe.features(df, ema_fast_span=s) for k, s in spans.items()}
    got = {}

    def work(k):
        got[k] = pe.features(df, ema_fast_span=spans[k]) if k in spans else pe.features(df)

    assert in_threads(work, range(4)) == []
    assert_bitwise(got[0], ref)
    for k in spans:
        assert_bitwise(got[k], expected[k])
