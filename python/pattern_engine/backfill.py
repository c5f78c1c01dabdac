"""Backfills on Dask: features() over a partitioned Parquet data set.

Per-symbol state makes a symbol the unit of work: the features of a
symbol's ticks depend on that symbol's earlier ticks only. So the recipe is
one task per group of symbols, each reading its symbols' rows (in the data
set's order) and running features() on them; the result is the one-process
result, symbol by symbol. It works for a data set partitioned by symbol
(symbol=S/...: a task reads only its folders) and for one partitioned by
day (day=D/...: a task reads its symbols' rows of every day; name the
partitions so that they sort in time order, e.g. ISO dates).

    from dask.distributed import Client, LocalCluster
    from pattern_engine.backfill import backfill

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, \\
            Client(cluster) as client:
        feats = backfill("trades/", client)          # a pandas DataFrame

Workers need pattern_engine installed (pip install ./python).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from . import features


def symbols_of(path) -> list:
    """Every symbol of the data set, sorted (reads the symbol column only)."""
    col = pd.read_parquet(path, columns=["symbol"])["symbol"]
    return sorted(str(s) for s in col.unique())


def symbol_features(path, symbols, columns=None, settings=None, categories=None,
                    out=None):
    """One task: the features of the given symbols' ticks, read from the
    data set at path in its order; the symbol column categorical over
    `categories`. With out, written to the Parquet file out instead and
    the row count returned."""
    ticks = pd.read_parquet(path, filters=[("symbol", "in", list(symbols))])
    # One engine a task: the cluster's workers are the parallelism.
    feats = features(ticks, columns=columns, threads=1, **(settings or {}))
    if categories is not None:
        feats["symbol"] = pd.Categorical(feats["symbol"].astype(str),
                                         categories=categories)
    if out is None:
        return feats
    feats.to_parquet(out, index=False)
    return len(feats)


def backfill(path, client, *, out=None, symbols=None, tasks=None, columns=None,
             **settings):
    """features() of every tick of a Parquet data set, computed on a Dask
    cluster. symbols: those to compute (default: all); tasks: how many
    groups of symbols (default: four per worker).

    Without out, returns a pandas DataFrame of the rows grouped by symbol
    (symbols in sorted order, each symbol's rows in data set order; the
    symbol column categorical). With out (a folder), each task writes its
    rows to out/part-N.parquet, nothing travels back but counts, and the
    total row count is returned: the shape of a backfill too large for one
    machine's memory."""
    symbols = symbols_of(path) if symbols is None else sorted(symbols)
    if tasks is None:
        tasks = 4 * max(len(client.scheduler_info().get("workers", {})), 1)
    tasks = max(1, min(tasks, len(symbols)))
    groups = [symbols[i::tasks] for i in range(tasks)]
    if out is not None:
        os.makedirs(out, exist_ok=True)
        files = [os.path.join(out, f"part-{i}.parquet") for i in range(tasks)]
    else:
        files = [None] * tasks
    futures = [client.submit(symbol_features, path, group, columns=columns,
                             settings=settings, categories=symbols, out=file,
                             pure=False)
               for group, file in zip(groups, files)]
    parts = client.gather(futures)
    if out is not None:
        return int(sum(parts))
    result = pd.concat(parts, ignore_index=True)
    order = result["symbol"].cat.codes.to_numpy()
    return result.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
