#!/usr/bin/env python3
"""The Dask backfill recipe's aggregate rate with 1 and 2 workers:

    .venv/bin/python bench/python_dask.py [--ticks 4000000] [--symbols 200]
        [--workers 1 2] [--dir /tmp/pe_dask_bench]

Writes synthetic ticks as Parquet partitioned by symbol, then times
pattern_engine.backfill.backfill on a LocalCluster of N single-threaded
worker processes (the cluster started before the clock) two ways: each task
writing its features to Parquet (out=, what a backfill does), and the
features gathered into this process as one DataFrame (checked against
features() in one process). Prints ticks/s for each N.
"""

import argparse
import os
import shutil
import sys
import time

import numpy as np

import pattern_engine as pe
from pattern_engine.backfill import backfill

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_features import make_ticks  # noqa: E402


def main():
    from dask.distributed import Client, LocalCluster
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=4_000_000)
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dir", default="/tmp/pe_dask_bench")
    a = ap.parse_args()
    df = make_ticks(a.ticks, a.symbols, 1)
    df["symbol"] = df["symbol"].astype(str)
    shutil.rmtree(a.dir, ignore_errors=True)
    df.to_parquet(a.dir, partition_cols=["symbol"])
    t = time.perf_counter()
    ref = pe.features(df)
    one = time.perf_counter() - t
    print(f"{len(df)} ticks over {a.symbols} symbols, Parquet by symbol in {a.dir}; "
          f"{os.cpu_count()} CPUs")
    print(f"  features() in one process, from memory: {len(df) / one / 1e6:.2f} M ticks/s")
    ref_sorted = np.sort(ref["ema_slow"].to_numpy())
    for n in a.workers:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("pattern_engine"))
            out = a.dir + ".out"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            rows = backfill(a.dir, client, out=out)
            secs = time.perf_counter() - t
            assert rows == len(df)
            shutil.rmtree(out, ignore_errors=True)
            print(f"  backfill, {n} worker(s), written by the workers: {secs:.2f} s, "
                  f"{len(df) / secs / 1e6:.2f} M ticks/s")
            t = time.perf_counter()
            got = backfill(a.dir, client)
            secs = time.perf_counter() - t
        assert np.array_equal(np.sort(got["ema_slow"].to_numpy()), ref_sorted, equal_nan=True)
        print(f"  backfill, {n} worker(s), gathered here: {secs:.2f} s, "
              f"{len(df) / secs / 1e6:.2f} M ticks/s")
    shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
