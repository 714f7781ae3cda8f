"""``attribute``: events x frames x processes -> one answer per frame, in named steps."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from ..errors import AttributionError
from ..parsers.units import Progress
from .answer import finish, follow_fragments, name_processes, summary, without_pid
from .constants import DEFAULT_TOLERANCE_S, NS

#: Largest clock offset or tolerance taken, in seconds (a century: times are int64 ns, +-292 years).
MAX_SECONDS = 3_155_760_000
from ..processes import PROCESS_GRACE_S
from .deferred import DeferredReasons
from .diagnosis import why_nothing
from .matchers import COMMON, Context, events_by_time, pick_best, run_matchers
from .offset import Offset, choose_offset
from .prepare import Prepared, prepare, trim_heap
from .reasons import unmatched_reason
from .result import Attribution, Evidence

#: Steps reported to the progress callback.
_STEPS = 7


def attribute(
    events: pl.DataFrame,
    frames: pl.DataFrame,
    processes: pl.DataFrame | None = None,
    *,
    offset_s: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    local_addrs: Sequence[str] | None = None,
    nic_addrs: Sequence[str] | None = None,
    progress: Progress | None = None,
    grace_s: float = PROCESS_GRACE_S,
) -> Attribution:
    """Attribute every frame (FRAMES) to a PID and process using network events (EVENTS) and processes.

    ``offset_s`` (capture clock minus trace clock) overrides the estimate; ``tolerance_s`` is the largest
    frame-event time difference for a UDP match and for TCP high confidence; ``local_addrs`` are the
    traced host's addresses as given by the user (default: ``nic_addrs`` from the trace's NIC events
    plus the unicast local addresses the events use); ``progress(done, total)`` is called between steps;
    ``grace_s``: how long after its End event a process keeps its name (the reason says when it was used).
    Returns an :class:`Attribution`; when nothing at all could be attributed (inputs with nothing in
    common), :meth:`Attribution.why_nothing` says why. Raises :class:`AttributionError` only for
    unusable parameters (a negative tolerance, an infinite offset, a grace period outside 0..86400 s).
    """
    tol = _check_parameters(tolerance_s, offset_s, grace_s)
    tick = _ticker(progress, frames.height if frames is not None else 0)
    p = prepare(events, frames, local_addrs, nic_addrs)
    # the events' key columns in time order, sorted once for the offset and every matcher: from here on
    # the only events table (the prepared one's own columns go)
    p.net = by_time = events_by_time(p.net)
    tick()
    off = choose_offset(p.oriented, by_time, offset_s, tol)
    tick()
    res, best = match_frames(p, off, tol, tick, by_time)
    by_time = None
    why = None if (res["rank"] >= 2).any() else why_nothing(p, off, tol)
    p.oriented = p.oriented.clear()  # (matched: the orientations go)
    res, resolver, process_notes = name_processes(res, events, processes, grace_s)
    tick()
    tables = [res, best]
    res = best = None  # (used up by _answer)
    out, matches, reasons = _answer(tables, p, off, why, (events, frames), grace_s)
    tick()
    return Attribution(
        frames=out,
        offset_ns=off.offset_ns,
        offset_source=off.source,
        offset_support=off.support,
        local_addrs=p.local,
        local_addrs_source=p.local_source,
        summary=summary(out, p.frames),
        notes=p.notes + off.notes + process_notes,
        tolerance_s=tolerance_s,
        estimate=off.estimate,
        evidence=Evidence(events, frames, p.local, matches, resolver),
        why=why,
        reasons=reasons,
    )


def _answer(
    tables: list,
    p: Prepared,
    off: Offset,
    why: str | None,
    inputs: tuple[pl.DataFrame | None, pl.DataFrame | None],
    grace_s: float,
) -> tuple[pl.DataFrame, pl.DataFrame, DeferredReasons]:
    """From ``tables`` = [res, best] (emptied here: each goes once used): the output table without the
    reasons, the evidence's matches (fid, e_eid, dir_source) and the reasons, written when read from
    ``inputs`` (events, frames). Lets the prepared key tables go."""
    res, best = tables
    tables.clear()
    if not res["fid"].is_sorted():
        res = res.sort("fid")
    matches = res.select("fid", "e_eid", "dir_source")
    frags = res.filter(pl.col("f_frame").is_not_null()).select("fid", "f_frame", "ip_id")
    span = (p.net["t"].min(), p.net["t"].max()) if p.net.height else (None, None)
    p.release()  # the key tables: the evidence makes its own when asked
    after_end, cols = res["_after_end"], [_output_columns(res)]
    res = None
    out = finish(cols, p, off.shift())  # (the columns go as soon as used)
    none_reason = unmatched_reason(*span, _trace_time(off), off.offset_ns is not None, why, p.local)
    reasons = DeferredReasons(
        best,
        frags,
        (*inputs, off.shift()),
        matches["dir_source"],
        without_pid(p),
        none_reason,
        after_end,
        grace_s,
    )
    return out, matches, reasons


def _trace_time(off: Offset) -> pl.Expr:
    """A frame's time (column ``t``) on the trace's clock."""
    shift = off.shift()
    return pl.col("t") - (shift if shift is not None else 0)


def _check_parameters(tolerance_s: float, offset_s: float | None, grace_s: float) -> int:
    """The tolerance in ns; AttributionError for a tolerance, offset or grace period that is not a usable
    number."""
    if not (
        isinstance(tolerance_s, (int, float))
        and math.isfinite(tolerance_s)
        and 0 <= tolerance_s <= MAX_SECONDS
    ):
        raise AttributionError(
            f"the tolerance must be a number of seconds from 0 to {MAX_SECONDS:,} (a century), "
            f"not {tolerance_s!r}"
        )
    if offset_s is not None and not (
        isinstance(offset_s, (int, float)) and math.isfinite(offset_s) and abs(offset_s) <= MAX_SECONDS
    ):
        raise AttributionError(
            f"the clock offset must be a finite number of seconds within +-{MAX_SECONDS:,} (a "
            f"century), not {offset_s!r}"
        )
    if not (isinstance(grace_s, (int, float)) and math.isfinite(grace_s) and 0 <= grace_s <= 86400):
        raise AttributionError(
            f"the grace period must be a number of seconds from 0 to 86400, not {grace_s!r}"
        )
    return round(tolerance_s * NS)


def _ticker(progress: Progress | None, total: int) -> Callable[[], None]:
    """A function to call after each step: reports the share of steps done as frames."""
    step = [0]

    def tick() -> None:
        step[0] += 1
        if progress is not None:
            progress(min(total, total * step[0] // _STEPS), total)

    return tick


def match_frames(
    p: Prepared, off: Offset, tol: int, tick: Callable[[], None], by_time: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """Every frame with its chosen candidate (later fragments: their first fragment's), and the chosen
    candidates by method with the columns their reasons are written from (:mod:`.deferred`).
    ``by_time``: the events' key columns in time order (:func:`~.matchers.events_by_time`)."""
    best = {}
    if off.offset_ns is not None:
        # (t in order, so is tt: the offset's drift is far below 1 ns per ns)
        oriented = p.oriented.with_columns((pl.col("t") - off.shift()).alias("tt")).drop("t")
        p.oriented = p.oriented.clear()
        ctx = Context(oriented, p.net, tol, p.frames, p.local, by_time)
        oriented = None  # (the matchers let each pending table go once used)
        best = pick_best(run_matchers(ctx))
        ctx = None
    tick()
    tables = [b.select(list(COMMON)) for b in best.values() if b.height]
    chosen = pl.concat(tables) if tables else pl.DataFrame(schema=COMMON)
    best = {m: b.drop("rank", "method") for m, b in best.items()}
    tick()
    # every frame (fid = row) with its chosen candidate's columns, gathered by fid (no join, no copy
    # of the frames' own columns)
    row = np.full(p.frames.height, -1, np.int64)
    row[chosen["fid"].to_numpy()] = np.arange(chosen.height)
    at = pl.Series(row)
    at = at.set(at < 0, None)
    res = p.frames.select(
        "fid", "frame", "t", "protocol", "dir", "dir_source", "fragment", "first_fid", "ip_id"
    ).with_columns(
        *[chosen[c].gather(at) for c in chosen.columns if c != "fid"],
        pl.lit(None, pl.Int64).alias("f_frame"),
    )
    chosen = row = at = None
    trim_heap()  # (the matchers' and this gathering's temporary arrays)
    res = follow_fragments(res)
    tick()
    return res, best


def _output_columns(res: pl.DataFrame) -> pl.DataFrame:
    """The columns :func:`finish` reads."""
    return res.select("fid", "t", "dir", "odir", "rank", "pid", "process", "services", "method", "e_t")
