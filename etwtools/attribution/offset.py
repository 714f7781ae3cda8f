"""The clock offset capture - trace that attribution applies: estimated from candidate matches (see
:mod:`etwtools.clock_offset`) or given, with the notes that qualify it."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from .. import clock_offset
from .constants import AGREE_MIN, KID, NS
from .matchers import size_key

#: Frames past which the offset is voted on a sample of them and verified on all (see clock_offset.estimate_sampled).
SAMPLE_FRAMES = 200_000


@dataclass
class Offset:
    """The offset used (None: none could be established), where it comes from and what supports it."""

    offset_ns: int | None
    source: str | None  # "estimated" / "given" / None
    support: int
    estimate: clock_offset.OffsetEstimate | None
    pairs: int  # candidate frame/event pairs considered
    notes: list[str] = field(default_factory=list)

    @property
    def drifting(self) -> bool:
        """The estimated clocks drift apart: the offset is applied per frame."""
        return self.source == "estimated" and self.estimate is not None and bool(self.estimate.drift_ppm)

    def shift(self) -> pl.Expr | None:
        """The offset of each frame (column ``t``, capture clock), or None without an offset."""
        if self.offset_ns is None:
            return None
        return self.estimate.at(pl.col("t")) if self.drifting else pl.lit(self.offset_ns, pl.Int64)


def candidate_estimate(
    of: pl.DataFrame, net: pl.DataFrame
) -> tuple[clock_offset.OffsetEstimate | None, pl.DataFrame]:
    """The estimate voted from frames and events with the same 5-tuple, direction and size (one integer
    key, :func:`~.matchers.size_key`), and the pairs."""
    # (lazily: only the columns selected are filtered)
    f = (
        of.lazy()
        .filter(
            (pl.col("size").fill_null(0) > 0)
            & pl.col(KID).is_not_null()
            & (pl.col("fragment").fill_null("none") != "later")
            & pl.col("t").is_not_null()
        )
        .select("fid", "t", size_key())
        .filter(pl.col("sk").is_not_null())
        .collect()
    )
    e = (
        net.lazy()
        .filter(pl.col("odir").is_not_null() & (pl.col("size").fill_null(0) > 0))
        .select("eid", "t", size_key())
        .filter(pl.col("sk").is_not_null())
        .collect()
    )
    return clock_offset.estimate_sampled(f, e, ["sk"], SAMPLE_FRAMES)


def choose_offset(of: pl.DataFrame, net: pl.DataFrame, offset_s: float | None, tol: int) -> Offset:
    """The given offset (checked against the data), else the estimate when the candidates agree."""
    estimate, pairs = candidate_estimate(of, net)
    notes: list[str] = []
    if offset_s is not None:
        offset_ns = round(offset_s * NS)
        support = (
            pairs.filter((pl.col("diff") - offset_ns).abs() <= clock_offset.BIN_NS)["eid"].n_unique()
            if pairs.height
            else 0
        )
        if estimate is not None and abs(estimate.offset_ns - offset_ns) > max(tol, clock_offset.BIN_NS):
            notes.append(
                f"the given offset {offset_s:+.6f} s differs from the one the data suggest: "
                f"{estimate.describe()}"
            )
        return Offset(offset_ns, "given", int(support), estimate, pairs.height, notes)
    if estimate is None:
        return Offset(None, None, 0, None, pairs.height)
    if estimate.runner_up >= estimate.support and estimate.support < AGREE_MIN:
        # a few coincidental matches that point to different offsets: nothing to stand on
        notes.append(f"no clock offset: the candidate matches do not agree ({estimate.describe()})")
        return Offset(None, None, 0, estimate, pairs.height, notes)
    if estimate.runner_up and estimate.runner_up * 2 > estimate.support:
        notes.append(f"the clock offset is ambiguous: {estimate.describe()}")
    found = Offset(estimate.offset_ns, "estimated", int(estimate.support), estimate, pairs.height, notes)
    if found.drifting:
        notes.append(
            f"the capture and trace clocks drift apart by {estimate.drift_ppm:+.1f} ppm; the offset "
            f"is applied per frame ({estimate.describe()})"
        )
    return found
