"""The Dask backfill recipe: two workers give the one-process features, on
Parquet data sets partitioned by symbol and by day."""

import numpy as np
import pandas as pd
import pytest

import pattern_engine as pe
from conftest import SAMPLE

pytest.importorskip("pyarrow", reason="Parquet needs pyarrow")
distributed = pytest.importorskip("dask.distributed", reason="the recipe runs on Dask")
from pattern_engine.backfill import backfill  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        assert len(c.scheduler_info()["workers"]) == 2
        yield c


@pytest.fixture(scope="module")
def ticks():
    """The sample fixture over more days: each day's ticks shifted a day
    later, so one symbol's state runs across the day partitions."""
    base = pd.read_csv(SAMPLE)
    day = 86_400 * 10**9
    df = pd.concat([base.assign(ts=base["ts"] + k * day) for k in range(3)],
                   ignore_index=True)
    df["day"] = pd.to_datetime(df["ts"], unit="ns").dt.strftime("%Y-%m-%d")
    return df


def one_process(df):
    ref = pe.features(df.drop(columns=["day"]))
    ref["symbol"] = ref["symbol"].astype(str)
    return ref


def assert_same(got, ref):
    assert len(got) == len(ref) > 0
    for sym, part in ref.groupby("symbol", sort=True):
        mine = got[got["symbol"].astype(str) == sym].reset_index(drop=True)
        theirs = part.reset_index(drop=True)
        assert np.array_equal(mine["ts"].to_numpy(), theirs["ts"].to_numpy()), sym
        for c in pe.FEATURE_COLUMNS + ("price", "volume"):
            a, b = mine[c].to_numpy(), theirs[c].to_numpy()
            assert np.array_equal(a, b, equal_nan=True), (sym, c)


def test_partitioned_by_symbol(client, ticks, tmp_path):
    path = tmp_path / "by_symbol"
    ticks.drop(columns=["day"]).to_parquet(path, partition_cols=["symbol"])
    got = backfill(str(path), client)
    assert list(got.columns) == ["ts", "symbol", "price", "volume", *pe.FEATURE_COLUMNS]
    assert_same(got, one_process(ticks))


def test_partitioned_by_day(client, ticks, tmp_path):
    path = tmp_path / "by_day"
    ticks.to_parquet(path, partition_cols=["day"])
    assert len(list(path.iterdir())) == 3
    got = backfill(str(path), client, tasks=3)
    assert_same(got, one_process(ticks))
    # The state runs across days: day two alone would restart every symbol
    # (its first ema_slow the price), the backfill carries it on.
    day2 = ticks["day"] == sorted(ticks["day"].unique())[1]
    alone = pe.features(ticks[day2].drop(columns=["day"]))
    sym = str(alone["symbol"].iloc[0])
    first_ts = alone["ts"].iloc[0]
    carried = got[(got["symbol"] == sym) & (got["ts"] == first_ts)]
    assert alone["ema_slow"].iloc[0] == alone["price"].iloc[0]
    assert carried["ema_slow"].iloc[0] != alone["ema_slow"].iloc[0]


def test_core_columns_and_settings_reach_the_workers(client, ticks, tmp_path):
    path = tmp_path / "by_symbol_core"
    ticks.drop(columns=["day"]).to_parquet(path, partition_cols=["symbol"])
    got = backfill(str(path), client, columns=["ema_fast", "var"], ema_fast_span=7)
    ref = pe.features(ticks.drop(columns=["day"]), columns=["ema_fast", "var"],
                      ema_fast_span=7)
    ref["symbol"] = ref["symbol"].astype(str)
    for sym, part in ref.groupby("symbol"):
        mine = got[got["symbol"].astype(str) == sym]
        assert np.array_equal(mine["ema_fast"].to_numpy(), part["ema_fast"].to_numpy())
        assert np.array_equal(mine["var"].to_numpy(), part["var"].to_numpy(), equal_nan=True)


def test_written_to_parquet_by_the_workers(client, ticks, tmp_path):
    path = tmp_path / "by_symbol_out"
    ticks.drop(columns=["day"]).to_parquet(path, partition_cols=["symbol"])
    n = backfill(str(path), client, out=str(tmp_path / "features"), tasks=3)
    assert n == len(ticks)
    files = sorted((tmp_path / "features").iterdir())
    assert len(files) == 3
    got = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    got["symbol"] = got["symbol"].astype(str)
    got = got.iloc[np.argsort(got["symbol"].to_numpy(), kind="stable")]
    assert_same(got.reset_index(drop=True), one_process(ticks))
