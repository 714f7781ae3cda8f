"""Which process a PID named at a given time: the one rule every reader and the attribution use.

A process instance (a PROCESSES row) holds its PID from ``start`` (null: from before anything was
recorded) to ``end`` (null: still alive); PIDs are reused, so the instance of a PID at time t is the
last one that started at or before t, if it had not ended more than a grace period before t (its
name is kept :data:`PROCESS_GRACE_S` after its End by default: a socket's last segments, and the network
events about them, can follow the process's exit).
"""
from __future__ import annotations

from collections.abc import Sequence

import polars as pl

_MIN, _MAX = -(2**63), 2**63 - 1
#: Seconds a process keeps its name after its End event.
PROCESS_GRACE_S = 5.0


def process_at(queries: pl.DataFrame, processes: pl.DataFrame, *, pid: str = "pid", time: str = "time",
               columns: Sequence[str] = ("image",), grace_s: float = PROCESS_GRACE_S,
               after_end: bool = False) -> pl.DataFrame:
    """``columns`` of the process instance of ``queries[pid]`` alive at ``queries[time]`` (int64 ns or
    Datetime), or ended at most ``grace_s`` before it (and no later instance started), one row per query
    in the queries' order; null where no instance covers it (or the PID or time is null). Instances
    whose PID is null are ignored. ``after_end`` adds ``after_end_ns``: how long after the instance's
    End the query is, where the grace period named it."""
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
    grace = max(0, round(grace_s * 1_000_000_000))
    late = (pl.col("_t") > pl.col("_until")) & (pl.col("_until") < _MAX - grace) \
        & (pl.col("_t") <= pl.col("_until") + grace)
    alive = (pl.col("_t") <= pl.col("_until")) | late
    extra = [pl.when(alive & late).then(pl.col("_t") - pl.col("_until")).alias("after_end_ns")] if after_end else []
    out = joined.select(*([] if in_order else ["_row"]),
                        *[pl.when(alive).then(pl.col(f"_{c}")).alias(c) for c in columns], *extra)
    return out if in_order else out.sort("_row").drop("_row")
