"""Which process a PID named at a given time: the one rule every reader and the attribution use.

A process instance (a PROCESSES row) holds its PID from ``start`` (null: from before anything was
recorded) to ``end`` (null: still alive); PIDs are reused, so the instance of a PID at time t is the
last one that started at or before t, if it had not ended before t.
"""
from __future__ import annotations

from collections.abc import Sequence

import polars as pl

_MIN, _MAX = -(2**63), 2**63 - 1


def process_at(queries: pl.DataFrame, processes: pl.DataFrame, *, pid: str = "pid", time: str = "time",
               columns: Sequence[str] = ("image",)) -> pl.DataFrame:
    """``columns`` of the process instance of ``queries[pid]`` alive at ``queries[time]`` (int64 ns or
    Datetime), one row per query in the queries' order; null where no instance covers it (or the PID or
    time is null). Instances whose PID is null are ignored."""
    lives = (processes.select(pl.col("pid").cast(pl.Int64).alias("_pid"),
                              pl.col("start").cast(pl.Int64).fill_null(_MIN).alias("_begin"),
                              pl.col("end").cast(pl.Int64).fill_null(_MAX).alias("_until"),
                              *[pl.col(c).alias(f"_{c}") for c in columns])
             .drop_nulls("_pid").sort("_begin", maintain_order=True))
    left = queries.select(pl.col(pid).cast(pl.Int64).alias("_pid"), pl.col(time).cast(pl.Int64).alias("_t"))
    in_order = left["_t"].is_sorted()           # a trace's events usually are: no sorting needed
    if not in_order:
        left = left.with_row_index("_row").sort("_t")
    joined = left.join_asof(lives, left_on="_t", right_on="_begin", by="_pid", strategy="backward",
                            check_sortedness=False)
    alive = pl.col("_t") <= pl.col("_until")
    out = joined.select(*([] if in_order else ["_row"]),
                        *[pl.when(alive).then(pl.col(f"_{c}")).alias(c) for c in columns])
    return out if in_order else out.sort("_row").drop("_row")
