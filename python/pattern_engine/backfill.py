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

import pandas as pd

from . import features


def symbols_of(path) -> list:
    """Every symbol of the data set, sorted (reads the symbol column only)."""
    col = pd.read_parquet(path, columns=["symbol"])["symbol"]
    return sorted(str(s) for s in col.unique())


def symbol_features(path, symbols, columns=None, settings=None) -> pd.DataFrame:
    """One task: the features of the given symbols' ticks, read from the
    data set at path in its order."""
    ticks = pd.read_parquet(path, filters=[("symbol", "in", list(symbols))])
    ticks["symbol"] = ticks["symbol"].astype(str)
    return features(ticks, columns=columns, **(settings or {}))


def backfill(path, client, *, symbols=None, tasks=None, columns=None,
             **settings) -> pd.DataFrame:
    """features() of every tick of a Parquet data set, computed on a Dask
    cluster. symbols: those to compute (default: all); tasks: how many
    groups of symbols (default: four per worker). Returns the rows grouped
    by symbol (symbols in sorted order; each symbol's rows in data set
    order), with the symbol column as strings."""
    symbols = symbols_of(path) if symbols is None else sorted(symbols)
    if tasks is None:
        tasks = 4 * max(len(client.scheduler_info().get("workers", {})), 1)
    tasks = max(1, min(tasks, len(symbols)))
    groups = [symbols[i::tasks] for i in range(tasks)]
    futures = client.map(symbol_features, [path] * len(groups), groups,
                         columns=columns, settings=settings, pure=False)
    parts = client.gather(futures)
    out = pd.concat([p.assign(symbol=p["symbol"].astype(str)) for p in parts],
                    ignore_index=True)
    order = pd.Categorical(out["symbol"], categories=symbols, ordered=True)
    return out.iloc[pd.Series(order.codes).argsort(kind="stable").to_numpy()] \
        .reset_index(drop=True)
