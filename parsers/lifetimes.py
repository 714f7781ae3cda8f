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

#: The open ends of a lifetime (int64 ns): started before anything was recorded / still alive.
OPEN_BEGIN, OPEN_END = -(2**63), 2**63 - 1
#: Seconds a process keeps its name after its End event.
PROCESS_GRACE_S = 5.0


def process_instances(events: list[dict], source: str) -> list[dict]:
    """One row per process instance from Process events, the one state machine of every reader (ETL
    kernel and Kernel-Process events, tracerpt Process lines).

    Events are dicts with ``time`` (ns), ``record``, ``pid``, ``event`` (Start, DCStart, End, DCEnd,
    Defunct, Terminate), ``ppid``, ``image``, ``command_line``, ``session``, ``user`` and, where the
    source has them, ``unique_key``, ``flags``, ``exit_status``, ``create_time``. In time order: Start
    and DCStart open an instance (a DCStart of an open one is its rundown again), End/DCEnd/Defunct close
    it (an End with no open instance: it ran before the trace began); a later event fills the fields an
    instance lacks. Rows also carry ``begin``/``until`` (ns, open ends at the int64 limits),
    ``exit_status``, ``alive_at_end``, ``defunct``, ``source`` and a ``_services`` list to fill.
    """
    rows: list[dict] = []
    open_rows: dict[int, int] = {}
    for ev in sorted(events, key=lambda e: (e["time"], e["record"])):
        pid, kind = ev["pid"], ev["event"]
        if kind == "Terminate":  # ProcessId only, followed by the instance's End
            continue
        cur = open_rows.get(pid)
        if cur is not None and not _same(rows[cur], ev):
            cur = None
        if kind in ("Start", "DCStart"):
            if cur is not None and kind == "DCStart":
                continue  # the same instance, rundown again
            row = _new_row(ev, source)
            row["start"] = ev["time"] if kind == "Start" else None
            row["begin"] = ev["time"] if kind == "Start" else OPEN_BEGIN
            open_rows[pid] = len(rows)
            rows.append(row)
            continue
        if cur is None and ev.get("unique_key"):  # an instance already closed (Defunct after End)
            cur = next(
                (
                    j
                    for j in range(len(rows) - 1, -1, -1)
                    if rows[j]["pid"] == pid and rows[j]["unique_key"] == ev.get("unique_key")
                ),
                None,
            )
            if cur is not None:
                row = rows[cur]
                row["defunct"] = row["defunct"] or kind == "Defunct"
                row["alive_at_end"] = row["alive_at_end"] or kind == "DCEnd"
                continue
        if cur is None:  # first seen at its end: alive before the trace started
            row = _new_row(ev, source)
            # Kernel-Process events give the creation time (UTC, system clock) of such a process
            row["start"] = row["begin"] = ev.get("create_time") if kind == "End" else None
            if row["begin"] is None:
                row["begin"] = OPEN_BEGIN
            rows.append(row)
            cur = len(rows) - 1
        row = rows[cur]
        _fill(row, ev)
        if kind == "DCEnd":
            row["alive_at_end"] = True
        else:
            # ev["exit_time"] (Defunct v5) is system time, not the trace clock: the event time is used
            row["end"] = row["until"] = ev["time"]
            row["exit_status"] = ev.get("exit_status")
            row["defunct"] = kind == "Defunct"
        open_rows.pop(pid, None)
    return rows


def _same(row: dict, ev: dict) -> bool:
    """Whether an event belongs to an open instance (same UniqueProcessKey when both have one)."""
    return not (row["unique_key"] and ev["unique_key"] and row["unique_key"] != ev["unique_key"])


def _new_row(ev: dict, source: str) -> dict:
    return {
        "pid": ev["pid"],
        "ppid": ev["ppid"],
        "image": ev["image"],
        "command_line": ev["command_line"],
        "session": ev["session"],
        "start": None,
        "end": None,
        "user": ev["user"],
        "source": source,
        "begin": OPEN_BEGIN,
        "until": OPEN_END,
        "exit_status": None,
        "alive_at_end": False,
        "defunct": False,
        "unique_key": ev.get("unique_key"),
        "flags": ev.get("flags"),
        "record": ev["record"],
        "_services": [],
    }


def _fill(row: dict, ev: dict) -> None:
    """Complete a row's missing fields from a later event of the same instance."""
    for key in ("ppid", "image", "command_line", "session", "user", "unique_key", "flags"):
        if row.get(key) in (None, "") and ev.get(key) not in (None, ""):
            row[key] = ev[key]


def lifetime(begin: str = "_begin", until: str = "_until") -> tuple[pl.Expr, pl.Expr]:
    """A PROCESSES row's life in int64 ns: ``start`` as ``begin`` and ``end`` as ``until``, their nulls
    as the open ends :data:`OPEN_BEGIN` and :data:`OPEN_END`."""
    return (
        pl.col("start").cast(pl.Int64).fill_null(OPEN_BEGIN).alias(begin),
        pl.col("end").cast(pl.Int64).fill_null(OPEN_END).alias(until),
    )


def process_at(
    queries: pl.DataFrame,
    processes: pl.DataFrame,
    *,
    pid: str = "pid",
    time: str = "time",
    columns: Sequence[str] = ("image",),
    grace_s: float = PROCESS_GRACE_S,
    after_end: bool = False,
) -> pl.DataFrame:
    """``columns`` of the process instance of ``queries[pid]`` alive at ``queries[time]`` (int64 ns or
    Datetime), or ended at most ``grace_s`` before it (and no later instance started), one row per query
    in the queries' order; null where no instance covers it (or the PID or time is null). Instances
    whose PID is null are ignored. ``after_end`` adds ``after_end_ns``: how long after the instance's
    End the query is, where the grace period named it."""
    lives = (
        processes.select(
            pl.col("pid").cast(pl.Int64).alias("_pid"),
            *lifetime(),
            *[pl.col(c).alias(f"_{c}") for c in columns],
        )
        .drop_nulls("_pid")
        .sort("_begin", maintain_order=True)
    )
    left = queries.select(pl.col(pid).cast(pl.Int64).alias("_pid"), pl.col(time).cast(pl.Int64).alias("_t"))
    in_order = left["_t"].is_sorted()  # a trace's events usually are: no sorting needed
    if not in_order:
        left = left.with_row_index("_row").sort("_t")
    joined = left.join_asof(
        lives, left_on="_t", right_on="_begin", by="_pid", strategy="backward", check_sortedness=False
    )
    grace = max(0, round(grace_s * 1_000_000_000))
    late = (
        (pl.col("_t") > pl.col("_until"))
        & (pl.col("_until") < OPEN_END - grace)
        & (pl.col("_t") <= pl.col("_until") + grace)
    )
    alive = (pl.col("_t") <= pl.col("_until")) | late
    extra = (
        [pl.when(alive & late).then(pl.col("_t") - pl.col("_until")).alias("after_end_ns")]
        if after_end
        else []
    )
    out = joined.select(
        *([] if in_order else ["_row"]),
        *[pl.when(alive).then(pl.col(f"_{c}")).alias(c) for c in columns],
        *extra,
    )
    return out if in_order else out.sort("_row").drop("_row")
