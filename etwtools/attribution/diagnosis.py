"""Why nothing at all could be attributed, in one sentence that points at the cause."""

from __future__ import annotations

import polars as pl

from ..clock_offset import format_ns
from .constants import NS
from .offset import Offset
from .prepare import Prepared


def why_nothing(p: Prepared, off: Offset, tol: int) -> str:
    """The first of: no events, no frames, no TCP/UDP, no host frames, no shared 5-tuple, no timestamps,
    no agreeing offset, no plausible offset, nothing within the tolerance."""
    net, fr = p.net, p.frames
    n_tu = fr.filter(pl.col("protocol").is_in(["TCP", "UDP"])).height
    if not net.height:
        return (
            "the trace has no usable TcpIp/UdpIp network events with a PID (empty trace, or the network "
            "events were not enabled when it was recorded)"
        )
    if not fr.height:
        return "the capture has no frames"
    if not n_tu:
        return f"none of the capture's {fr.height:,} frames is TCP or UDP"
    host = fr.filter(pl.col("dir") != "unknown").height
    if p.local and not host:
        return (
            f"none of the capture's {n_tu:,} TCP/UDP frames is from or to the traced host "
            f"({', '.join(p.local[:6])}{', ...' if len(p.local) > 6 else ''}): the capture was taken "
            f"elsewhere or on another network"
        )
    if not p.keyed_frames:
        return (
            f"no frame shares a protocol and 5-tuple with any of the trace's {net.height:,} network events: "
            f"the capture and the trace do not cover the same connections (another time or another host)"
        )
    return _why_in_time(p.keyed_frames, net, fr, off, tol)


def _why_in_time(keyed: int, net: pl.DataFrame, fr: pl.DataFrame, off: Offset, tol: int) -> str:
    tr0, tr1 = net["t"].min(), net["t"].max()
    cf = fr.filter(pl.col("t").is_not_null())
    c0, c1 = cf["t"].min(), cf["t"].max()
    span = f"capture {format_ns(c0)} to {format_ns(c1)}, trace {format_ns(tr0)} to {format_ns(tr1)}"
    if c0 is None:
        return "no frame of the capture has a timestamp, so none can be matched to the trace's events in time"
    est = off.estimate
    if off.offset_ns is None and est is not None:
        return (
            f"the {est.candidates:,} candidate matches (same 5-tuple and size) do not agree on one clock "
            f"offset: the best has {est.support:,}, another has {est.runner_up:,} ({span}); give "
            f"--offset if you know it"
        )
    if off.offset_ns is None:
        days = abs((c0 + c1) / 2 - (tr0 + tr1) / 2) / 86400 / NS
        return (
            f"{keyed:,} frames share a 5-tuple with trace events, but no candidate match "
            f"(same 5-tuple and size) lies within +-14 h of each other, so no clock offset is plausible "
            f"({span}, about {days:.1f} days apart): a capture from another day?"
        )
    if off.source == "given":
        return (
            f"with the given offset {off.offset_ns / NS:+.6f} s no frame falls within {tol / NS:g} s of an "
            f"event with its 5-tuple ({span}); try without --offset to let the offset be estimated"
        )
    return (
        f"the frames that share a 5-tuple with trace events do not fall within {tol / NS:g} s of them "
        f"at the estimated offset {off.offset_ns / NS:+.6f} s ({span})"
    )
