"""The result of an attribution: the answer for every frame, the clock offset used, and the evidence
behind each answer (:class:`Evidence`, read by :mod:`etwtools.evidence`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from .. import clock_offset
from ..processes import ProcessResolver
from .constants import ATTRIBUTED, DEFAULT_TOLERANCE_S, KEY, NS

if TYPE_CHECKING:
    from .deferred import DeferredReasons

#: Columns of an oriented frame that name its 5-tuple.
TUPLE = KEY


class Evidence:
    """The tables an answer rests on: the capture's frames (FRAMES, with ``fid`` = row, ``dir``), the
    usable network events (``eid``, ``t``, ``kind``, ``l_/r_`` columns), the events left out for want of
    a PID, the event chosen for each frame and where its direction came from, and the PID -> process
    resolver. Only the inputs are kept: the prepared tables are made again when first asked for (the
    attribution's own, with their key columns, are let go as soon as it has used them)."""

    def __init__(
        self,
        events: pl.DataFrame | None,
        frames: pl.DataFrame | None,
        local: list[str],
        matches: pl.DataFrame,
        resolver: ProcessResolver,
    ) -> None:
        self._inputs = (events, frames, local)
        self._matches = matches  # fid, e_eid, dir_source (an enum)
        self.resolver = resolver

    @property
    def matches(self) -> pl.DataFrame:
        """Every frame's chosen event and where its direction came from: fid, e_eid, dir_source."""
        return rendered(self._matches)

    @functools.cached_property
    def _prepared(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        from ..parsers import schema
        from .prepare import prepare_events, prepare_frames

        events, frames, local = self._inputs
        net, _, _, nopid = prepare_events(events)
        fr = prepare_frames(frames if frames is not None else schema.empty(schema.FRAMES), local)
        return rendered(fr), rendered(net), rendered(nopid)

    @property
    def frames(self) -> pl.DataFrame:
        """FRAMES with ``fid`` (row), ``t``, ``first_fid``, ``size``, ``dir`` and ``dir_source``."""
        return self._prepared[0]

    @property
    def events(self) -> pl.DataFrame:
        """The network events with a usable PID (``eid``, ``t``, ``kind``, ``odir``, ``l_/r_`` columns)."""
        return self._prepared[1]

    @property
    def events_without_pid(self) -> pl.DataFrame:
        """The network events left out for want of a usable PID (the same columns)."""
        return self._prepared[2]

    def orientations(self, fid: int) -> pl.DataFrame:
        """The frame (0-based row ``fid``) in each orientation it was matched in (none: not TCP/UDP)."""
        from .prepare import orientations

        return orientations(self.frames.filter(pl.col("fid") == fid))

    def chosen_event(self, fid: int) -> int | None:
        """The ``eid`` of the event the frame's answer rests on, or None."""
        hit = self._matches.filter(pl.col("fid") == fid)["e_eid"]
        return hit[0] if len(hit) else None

    def direction_source(self, fid: int) -> str | None:
        """``capture`` (the file says), ``local addresses`` or None (unknown)."""
        hit = self._matches.filter(pl.col("fid") == fid)["dir_source"]
        return hit[0] if len(hit) else None

    def events_like(self, row: dict, *cols: str, usable: bool = True) -> pl.DataFrame:
        """The events (``usable=False``: those without a usable PID) whose ``cols`` equal ``row``'s values
        (a missing value matches nothing)."""
        ev = self.events if usable else self.events_without_pid
        return ev.filter(pl.all_horizontal([pl.col(c).eq_missing(pl.lit(row[c])) for c in cols]))

    def process_history(self, pid: int, t_ns: int | None) -> list[str]:
        """How ``pid`` at ``t_ns`` was named: the trace's process events and the tasklist snapshots."""
        return self.resolver.describe(pid, t_ns)


class Answered:
    """What every attribution answer shares (kernel trace and event logs): ``frames`` with a
    ``confidence`` column, the frames attributed, and why none were."""

    frames: pl.DataFrame

    @property
    def attributed(self) -> pl.DataFrame:
        """Frames attributed with high or medium confidence."""
        return self.frames.filter(attributed_expr())

    def why_nothing(self) -> str | None:
        """Why no frame at all could be attributed (high or medium confidence); None when some were."""
        if self.attributed.height:
            return None
        return self.why_none()

    def why_none(self) -> str:
        """Why no frame could be attributed, given that none was."""
        return "no frame could be matched to an event"


def attributed_expr(col: str = "confidence") -> pl.Expr:
    """True for a row whose confidence counts as an answer (high or medium)."""
    return pl.col(col).is_in(ATTRIBUTED)


#: Bytes of a frame (FRAMES): its length on the wire, else the bytes captured, else 0.
FRAME_BYTES = pl.coalesce(
    pl.col("wirelen").cast(pl.Int64), pl.col("caplen").cast(pl.Int64), pl.lit(0, pl.Int64)
)


def frame_bytes(fr: pl.DataFrame) -> pl.Series:
    """Bytes of each frame (FRAMES): its length on the wire, else the bytes captured, else 0."""
    return fr.select(FRAME_BYTES.alias("bytes")).to_series()


@dataclass
class Attribution(Answered):
    """The answer for every frame, the clock offset used and everything needed to explain it."""

    frames: pl.DataFrame
    offset_ns: int | None
    offset_source: str | None  # "estimated" / "given" / None (no offset)
    offset_support: int
    local_addrs: list[str]
    local_addrs_source: str | None  # "given" / "nic events" / "inferred" / None
    summary: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    tolerance_s: float = DEFAULT_TOLERANCE_S
    estimate: clock_offset.OffsetEstimate | None = None
    evidence: Evidence | None = field(default=None, repr=False)
    why: str | None = field(default=None, repr=False)  # why nothing could be matched (None: something was)
    # the reasons not written yet (None: ``frames`` has them): see :attr:`frames`
    reasons: DeferredReasons | None = field(default=None, repr=False)

    @property
    def answers(self) -> pl.DataFrame:
        """The answer for every frame without its reason (no sentence written): :data:`OUT_COLUMNS` but
        ``reason``, or with it once written."""
        return rendered(self._frames)

    def batches(self, rows: int = 65_536) -> Iterator[pl.DataFrame]:
        """:attr:`frames` ``rows`` at a time, each slice's reasons written for it alone (while they
        are not all written)."""
        for start in range(0, self._frames.height, rows):
            yield self.rows(start, start + rows)

    def rows(self, start: int, stop: int) -> pl.DataFrame:
        """Rows ``start`` .. ``stop - 1`` of :attr:`frames`, their reasons written for them alone."""
        part = rendered(self._frames.slice(start, max(stop - start, 0)))
        if self.reasons is None:
            return part
        reason = self.reasons.write(start, start + part.height, part["process"])
        return part.with_columns(reason.alias("reason"))

    def why_none(self) -> str:
        return self.why or "no frame could be matched to an event of the trace"

    def describe_offset(self) -> str:
        """One line: the clock offset used, where it came from and what supports it."""
        if self.offset_ns is None:
            return "clock offset: none could be established (" + (self.why or "no candidate matches") + ")"
        how = "given" if self.offset_source == "given" else "estimated"
        s = (
            f"clock offset capture - trace: {self.offset_ns / NS:+.6f} s ({how}; "
            f"{self.offset_support:,} matching frame/event "
            f"{'pair supports' if self.offset_support == 1 else 'pairs support'} it"
        )
        if self.offset_support == 1:
            s += ": a single match, check it"
        if self.drift_ppm:
            s += (
                f"; the clocks drift apart by {self.drift_ppm:+.1f} ppm, this offset holds at "
                f"{clock_offset.format_ns(self.estimate.reference_ns)}"
            )
        return s + f"); tolerance {self.tolerance_s:g} s"

    @property
    def drift_ppm(self) -> float:
        """Rate difference of the two clocks applied per frame (0.0 when none was significant)."""
        if self.offset_source == "estimated" and self.estimate is not None:
            return self.estimate.drift_ppm
        return 0.0

    def trace_time(self, capture_ns: int) -> int | None:
        """A capture time (ns) on the trace's clock, with the offset (and drift) applied."""
        if self.offset_ns is None:
            return None
        if self.drift_ppm:
            e = self.estimate
            return capture_ns - (e.offset_ns + round((capture_ns - e.reference_ns) * e.drift_ppm * 1e-6))
        return capture_ns - self.offset_ns

    def explain(self, frame_number: int) -> str:
        """The whole chain of evidence for one frame, readable by a support engineer."""
        from ..evidence import explain

        return explain(self, frame_number)


def rendered(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its categorical columns (the short texts held compact until written) as text. (The
    columns are put side by side, not selected: the others are not copied.)"""
    if not any(isinstance(d, (pl.Categorical, pl.Enum)) for d in df.dtypes):
        return df
    return pl.DataFrame(
        [s.cast(pl.Utf8) if isinstance(s.dtype, (pl.Categorical, pl.Enum)) else s for s in df.iter_columns()]
    )


def _frames(self: Attribution) -> pl.DataFrame:
    self._frames = rendered(self._frames)
    if self.reasons is not None:
        reason = self.reasons.write_all(self._frames["process"])
        self._frames = pl.DataFrame([*self._frames.iter_columns(), reason.alias("reason")])
        self.reasons = None
    return self._frames


def _set_frames(self: Attribution, frames: pl.DataFrame) -> None:
    self._frames = frames


#: The answer for every frame (:data:`OUT_COLUMNS`); the reasons are written when first read (all of
#: them), or a slice at a time by :meth:`Attribution.batches`.
Attribution.frames = property(_frames, _set_frames)  # type: ignore[assignment]
