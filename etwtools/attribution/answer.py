"""From the chosen candidates to the answer: later fragments follow their first fragment, PIDs get their
process names, every frame gets its row in :data:`OUT_COLUMNS` with a reason, and the summary."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from ..parsers import schema
from ..processes import PROCESS_GRACE_S, ProcessResolver
from .constants import CONFIDENCE, CONFIDENCES, DIRECTIONS, NS, OUT_COLUMNS
from .prepare import Prepared
from .result import FRAME_BYTES, attributed_expr


def follow_fragments(res: pl.DataFrame) -> pl.DataFrame:
    """Later IP fragments take their first fragment's answer (method ``fragment``; ``f_frame``: the
    first fragment's frame number)."""
    later = res.select("fid", "first_fid", "ip_id").filter(pl.col("first_fid").is_not_null())
    if not later.height:
        return res
    first = res.select(
        pl.col("fid").alias("first_fid"),
        pl.col("frame").alias("f_frame"),
        pl.col("rank").alias("f_rank"),
        pl.col("e_eid").alias("f_eid"),
        pl.col("odir").alias("f_odir"),
        pl.col("dist").alias("f_dist"),
    )
    m = later.join(first, on="first_fid", how="inner").filter(pl.col("f_eid").is_not_null())
    upd = m.select(
        "fid",
        pl.col("f_rank").alias("rank"),
        pl.col("f_eid").alias("e_eid"),
        pl.col("f_odir").alias("odir"),
        pl.lit("fragment", pl.Categorical).alias("method"),
        pl.col("f_dist").alias("dist"),
        "f_frame",
    )
    return res.update(upd, on="fid", how="left")


def name_processes(
    res: pl.DataFrame,
    events: pl.DataFrame | None,
    processes: pl.DataFrame | None,
    grace_s: float = PROCESS_GRACE_S,
) -> tuple[pl.DataFrame, ProcessResolver, list[str]]:
    """``res`` with pid, e_t, process and services of its event (``_after_end``: ns since the process's
    End when its name was kept for the grace period; names as categoricals); the resolver; notes on
    disagreements. ``events``: the input events (EVENTS), an event's row being its eid (gathered by
    eid, not joined)."""
    events = schema.conform(events if events is not None else schema.empty(schema.EVENTS), schema.EVENTS)
    eid = res["e_eid"]
    own = events["process"]
    res = res.with_columns(
        events["time"].cast(pl.Int64).gather(eid).alias("e_t"),
        events["pid"].gather(eid).alias("pid"),
        own.gather(eid).cast(pl.Categorical).alias("e_process")
        if own.null_count() < len(own)
        else pl.lit(None, pl.Categorical).alias("e_process"),
    )
    resolver = ProcessResolver(
        processes if processes is not None else schema.empty(schema.PROCESSES), grace_s=grace_s
    )
    if not (resolver.trace.height or resolver.snapshots.height):  # nothing to resolve against
        return res.with_columns(*_UNRESOLVED, pl.col("e_process").alias("process")), resolver, []
    used = np.zeros(events.height, bool)
    used[eid.drop_nulls().to_numpy()] = True
    # one query per event used (the answer depends only on the event's PID and time)
    q = events.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("qid"),
        "pid",
        pl.col("time").cast(pl.Int64).alias("t"),
        pl.col("process").cast(pl.Categorical).alias("e_process"),
    )[np.flatnonzero(used)].filter(pl.col("pid").is_not_null())
    names = resolver.resolve(q.select("qid", "pid", "t")) if q.height else _NO_NAMES.clear()
    gathered = _names_by_event(names, events.height)
    res = pl.concat([res, gathered(eid)], how="horizontal").with_columns(_PROCESS)
    notes = resolver.disagreements(set(q["pid"].unique().to_list()))
    # the events' names against the tables', once per event used (the same as once per frame)
    q = q.filter(pl.col("e_process").is_not_null())
    named = pl.concat([q, gathered(q["qid"])], how="horizontal").with_columns(_PROCESS)
    return res, resolver, notes + _name_disagreements(named)


#: The names of a frame's event when no process table has any: its own.
_UNRESOLVED = [
    pl.lit(None, pl.Categorical).alias("services"),
    pl.lit(None, pl.Int64).alias("_after_end"),
    pl.lit(None, pl.Boolean).alias("_in_trace"),
]
_NO_NAMES = pl.DataFrame(
    schema={
        "qid": pl.Int64,
        "process": pl.Utf8,
        "services": pl.Utf8,
        "after_end_ns": pl.Int64,
        "in_trace": pl.Boolean,
    }
)
#: The events' own names only for PIDs the process tables do not know (the grace period decides the rest).
_PROCESS = (
    pl.when(pl.col("_in_trace").fill_null(False))
    .then(pl.col("process"))
    .otherwise(pl.coalesce("process", "e_process"))
    .alias("process")
)


def _names_by_event(names: pl.DataFrame, n_events: int) -> Callable[[pl.Series], pl.DataFrame]:
    """A function giving the resolved names (process, services, _after_end, _in_trace; names as
    categoricals) of events by eid (null: none)."""
    row_of = np.full(n_events + 1, -1, np.int64)  # (the last: no event)
    row_of[names["qid"].to_numpy()] = np.arange(names.height)
    names = names.with_columns(pl.col("process", "services").cast(pl.Categorical))

    def gathered(eids: pl.Series) -> pl.DataFrame:
        at = pl.Series(row_of[eids.fill_null(n_events).to_numpy()])
        at = at.set(at < 0, None)
        return names.select(
            pl.col("process").gather(at),
            pl.col("services").gather(at),
            pl.col("after_end_ns").gather(at).alias("_after_end"),
            pl.col("in_trace").gather(at).alias("_in_trace"),
        )

    return gathered


def _name_disagreements(named: pl.DataFrame) -> list[str]:
    """Notes on the events whose own process name differs from the process tables' (the first ten)."""
    mism = (
        named.select("pid", pl.col("e_process", "process").cast(pl.Utf8))
        .filter(
            pl.col("process").is_not_null()
            & (pl.col("e_process").str.to_lowercase() != pl.col("process").str.to_lowercase())
        )
        .unique()
    )
    return [
        f"PID {r['pid']}: the trace's events name it {r['e_process']}, the process tables say {r['process']}"
        for r in mism.head(10).iter_rows(named=True)
    ]


def without_pid(p: Prepared) -> pl.Series:
    """fids of frames whose 5-tuple only events without a usable PID have."""
    return p.nopid_fids


def answers(res: pl.DataFrame, shift: pl.Expr | None) -> pl.DataFrame:
    """fid and the answer columns of every frame, in fid order; the short texts as they are held until
    written (direction, confidence: :data:`DIRECTIONS`, :data:`CONFIDENCES`; method, process, services:
    categoricals)."""
    tt = pl.col("t") - (shift if shift is not None else 0)
    ours = res.select(
        "fid",
        _direction().alias("direction"),
        pl.col("pid").cast(pl.Int64),
        pl.col("process").cast(pl.Categorical),
        pl.col("services").cast(pl.Categorical),
        pl.col("rank")
        .fill_null(0)
        .replace_strict(CONFIDENCE, default="none", return_dtype=CONFIDENCES)
        .alias("confidence"),
        pl.col("method").fill_null("none"),
        pl.col("e_t").cast(pl.Datetime("ns", "UTC")).alias("event_time"),
        ((tt - pl.col("e_t")) / NS).round(9).alias("delta_s"),
    )
    return ours if ours["fid"].is_sorted() else ours.sort("fid")


def _direction() -> pl.Expr:
    """The frame's direction (``dir``) when known, else its chosen candidate's orientation (``odir``),
    else unknown."""
    d = {v: pl.lit(v, DIRECTIONS) for v in DIRECTIONS.categories}
    return (
        pl.when(pl.col("dir") == "in")
        .then(d["in"])
        .when(pl.col("dir") == "out")
        .then(d["out"])
        .when(pl.col("odir") == "in")
        .then(d["in"])
        .when(pl.col("odir") == "out")
        .then(d["out"])
        .otherwise(d["unknown"])
    )


def finish(tables: list[pl.DataFrame], p: Prepared, shift: pl.Expr | None) -> pl.DataFrame:
    """The output table, :data:`OUT_COLUMNS` but the reason (written when read: :mod:`.deferred`), from
    ``tables`` = [res] (every frame in fid order with its chosen candidate and process; emptied here so
    that it goes as soon as it has been used). The short texts are held as in :func:`answers`."""
    fr = p.frames
    ours = answers(tables.pop(), shift)
    if not ours["fid"].equals(pl.Series("fid", np.arange(fr.height, dtype=np.int64))):
        raise AssertionError("one result row per frame expected")
    # the frame's own columns come straight from the (fid-ordered) frames table, uncopied (put side by
    # side, not selected: a selection would join the chunks of every column into one, a copy)
    return pl.DataFrame([(ours if c in ours.columns else fr)[c] for c in OUT_COLUMNS if c != "reason"])


#: Bytes of a frame (FRAMES), as :func:`~.result.frame_bytes`.
_FRAME_BYTES = pl.coalesce(
    pl.col("wirelen").cast(pl.Int64), pl.col("caplen").cast(pl.Int64), pl.lit(0, pl.Int64)
)


def summary(out: pl.DataFrame, fr: pl.DataFrame) -> pl.DataFrame:
    """Frames, bytes and first/last time per process; the frames not attributed in one row. (Grouped
    once by process and confidence over the whole table, then the groups combined: no filtered copy.)"""
    # (side by side, not selected: no copy of the columns; grouped lazily: the streaming group-by holds
    # no per-row keys)
    df = pl.DataFrame(
        [out[c] for c in ("pid", "process", "services", "confidence", "time")] + [fr["wirelen"], fr["caplen"]]
    )
    n_low = int((df["confidence"] == "low").sum())
    g = (
        df.lazy()
        .group_by("pid", "process", "services", "confidence")
        .agg(
            pl.len().cast(pl.Int64).alias("frames"),
            FRAME_BYTES.sum().alias("bytes"),
            pl.col("time").min().alias("first"),
            pl.col("time").max().alias("last"),
        )
        .with_columns(pl.col("process", "services", "confidence").cast(pl.Utf8))
        .collect()
    )
    df = None
    agg = [
        pl.col("frames").sum(),
        pl.col("bytes").sum(),
        pl.col("first").min(),
        pl.col("last").max(),
        pl.col("frames").filter(pl.col("confidence") == "high").sum().cast(pl.UInt32).alias("high"),
    ]
    s = (
        g.filter(attributed_expr())
        .group_by("pid", "process", "services")
        .agg(agg)
        .sort(
            ["frames", "pid", "process", "services"], descending=[True, False, False, False], nulls_last=True
        )
    )
    non = g.filter(~attributed_expr())
    rest = non.select(
        pl.lit(None, pl.Int64).alias("pid"),
        pl.lit("(not attributed)").alias("process"),
        pl.lit(None, pl.Utf8).alias("services"),
        "frames",
        "bytes",
        "first",
        "last",
        pl.lit(0, pl.UInt32).alias("high"),
    )
    if non.height:
        rest = rest.group_by("pid", "process", "services").agg(agg[:4] + [pl.lit(0, pl.UInt32).alias("high")])
    s = pl.concat([s, rest], how="vertical_relaxed")
    s = s.with_columns(pl.col("frames").cast(pl.Int64), pl.col("bytes").cast(pl.Int64))
    if n_low:
        s = s.with_columns(
            pl.when(pl.col("pid").is_null())
            .then(pl.lit(f"(not attributed; {n_low:,} with a low-confidence candidate)"))
            .otherwise(pl.col("process"))
            .alias("process")
        )
    return s.select("pid", "process", "services", "frames", "bytes", "first", "last")
