"""``attribute``: events x frames x processes -> one answer per frame, in named steps."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import polars as pl

from ..errors import AttributionError
from ..parsers.units import Progress
from .answer import finish, follow_fragments, name_processes, summary, without_pid
from .constants import DEFAULT_TOLERANCE_S, NS

#: Largest clock offset or tolerance taken, in seconds (a century: times are int64 ns, +-292 years).
MAX_SECONDS = 3_155_760_000
from ..processes import PROCESS_GRACE_S
from .diagnosis import why_nothing
from .matchers import Context, pick_best, run_matchers
from .offset import Offset, choose_offset
from .prepare import Prepared, prepare
from .reasons import write_reasons
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
    tol = _check_parameters(tolerance_s, offset_s)
    if not (isinstance(grace_s, (int, float)) and math.isfinite(grace_s) and 0 <= grace_s <= 86400):
        raise AttributionError(
            f"the grace period must be a number of seconds from 0 to 86400, not {grace_s!r}"
        )
    tick = _ticker(progress, frames.height if frames is not None else 0)
    p = prepare(events, frames, local_addrs, nic_addrs)
    tick()
    off = choose_offset(p.oriented, p.net, offset_s, tol)
    tick()
    res, texts = match_frames(p, off, tol, tick)
    res, resolver, process_notes = name_processes(res, p.net, processes, grace_s)
    tick()
    why = None if (res["rank"] >= 2).any() else why_nothing(p, off, tol)
    matches = res.select("fid", "e_eid", "dir_source").sort("fid")
    after_end = res.select("fid", "_after_end").sort("fid")["_after_end"]
    tables = [_output_columns(res, without_pid(p)), texts]
    res = texts = None  # finish() lets each table go as soon as it has used it
    out = _grace_reasons(finish(tables, p, off.offset_ns, off.shift(), why), after_end, grace_s)
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
        evidence=Evidence(p.frames, p.net, p.nopid, p.oriented, matches, resolver),
        why=why,
    )


def _grace_reasons(out: pl.DataFrame, after_end: pl.Series, grace_s: float) -> pl.DataFrame:
    """Reasons of the frames named through the grace period say so (``after_end``: per frame, in order)."""
    if not after_end.is_not_null().any():
        return out
    late = (after_end / NS).round(3)
    return out.with_columns(
        pl.when(late.is_not_null() & pl.col("process").is_not_null())
        .then(
            pl.format(
                "{}; {} had ended {} s before the event: its name is kept for {} s after its End "
                "(grace period)",
                pl.col("reason"),
                pl.col("process"),
                late.cast(pl.Utf8),
                pl.lit(f"{grace_s:g}"),
            )
        )
        .otherwise(pl.col("reason"))
        .alias("reason")
    )


def _check_parameters(tolerance_s: float, offset_s: float | None) -> int:
    """The tolerance in ns; AttributionError for a tolerance or offset that is not a usable number."""
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
    p: Prepared, off: Offset, tol: int, tick: Callable[[], None]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every frame with its chosen candidate (later fragments: their first fragment's), and the chosen
    candidates' reasons (fid, reason; kept apart: long strings are costly to carry through joins)."""
    best = {}
    if off.offset_ns is not None:
        p.oriented = p.oriented.with_columns((pl.col("t") - off.shift()).alias("tt"))
        best = pick_best(run_matchers(Context(p.oriented, p.net, tol, p.frames, p.local)))
    tick()
    chosen = write_reasons(best, p.oriented, p.net)
    best = None
    tick()
    texts = chosen.select("fid", "reason")
    res = p.frames.select(
        "fid", "frame", "t", "protocol", "dir", "dir_source", "fragment", "first_fid", "ip_id"
    ).join(chosen.with_columns(pl.lit(None, pl.Utf8).alias("reason")), on="fid", how="left")
    chosen = None
    res = follow_fragments(res)
    tick()
    return res, texts


def _output_columns(res: pl.DataFrame, nopid_fids: pl.Series) -> pl.DataFrame:
    """The columns :func:`finish` reads, with ``_nopid``: only events without a usable PID have the 5-tuple."""
    return res.select(
        "fid",
        "protocol",
        "t",
        "dir",
        "fragment",
        "reason",
        "odir",
        "rank",
        "pid",
        "process",
        "services",
        "method",
        "e_t",
        pl.col("fid").is_in(nopid_fids.implode()).alias("_nopid"),
    )
