"""One self-contained HTML page of an attribution: clock offset, per-process traffic timeline, top talkers,
SYN-attack intervals, and a searchable table of frames with the evidence of a chosen frame.

The page works offline: its data (JSON) and its script and styles are inline, and the drawing is plain SVG
made by a few lines of script (:mod:`etwtools.report_page`), no plotting library. The data is aggregated:
the timeline has a fixed number of time bins whatever the number of frames, the frame table and the
evidence texts are capped (the page says how many of how many it lists).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from .attribution import Attribution
from .attribution.constants import CONFIDENCE, NS, OUT_COLUMNS, RANK
from .attribution.result import attributed_expr

if TYPE_CHECKING:
    from .ownership import LogAttribution

#: Lanes drawn one by one; further processes share one lane.
MAX_LANES = 24
#: Rows of the frame table embedded in the page.
MAX_FRAMES = 5000
#: Frames whose whole chain of evidence (``--frame N``) is embedded, and the time allowed for them.
MAX_EXPLAINED = 200
EXPLAIN_BUDGET_S = 20.0
TIME_BINS = 400
TOP_TALKERS = 10
NOT_ATTRIBUTED = "(not attributed)"


@dataclass
class ReportFacts:
    """What a written report holds (for the command line's message)."""

    path: str
    bytes: int
    frames: int
    frames_listed: int
    frames_explained: int
    lanes: int
    seconds: float


def _lane_key() -> pl.Expr:
    attributed = attributed_expr() & pl.col("pid").is_not_null()
    return (
        pl.when(attributed)
        .then(pl.format("{} (PID {})", pl.col("process").fill_null("(name unknown)"), pl.col("pid")))
        .otherwise(pl.lit(NOT_ATTRIBUTED))
    )


def _table(result: Attribution | LogAttribution, frames: pl.DataFrame | None) -> pl.DataFrame:
    """The attribution's rows with the frame's bytes on the wire, the remote address and port, and a lane.
    Without ``frames``, the sizes an event-log attribution keeps (one row per frame, in frame order)."""
    if frames is None:
        sizes = getattr(result, "_sizes", None)
        if sizes is None or sizes.height != result.frames.height:
            raise ValueError("the capture's frames table is needed for the bytes of each frame")
        frames = sizes.with_columns(result.frames["frame"])
    size = frames.select(
        "frame",
        pl.col("wirelen")
        .cast(pl.Int64)
        .fill_null(pl.col("caplen").cast(pl.Int64))
        .fill_null(0)
        .alias("bytes"),
    )
    df = result.frames.join(size, on="frame", how="left")
    out = pl.col("direction") == "out"
    name_col = next((c for c in ("remote_name", "dns_name", "remote_host") if c in df.columns), None)
    return df.with_columns(
        _lane_key().alias("lane"),
        pl.col("time").cast(pl.Int64).alias("t"),
        pl.when(out).then(pl.col("dst_addr")).otherwise(pl.col("src_addr")).alias("remote"),
        pl.when(out).then(pl.col("dst_port")).otherwise(pl.col("src_port")).alias("remote_port"),
        (pl.col(name_col) if name_col else pl.lit(None, pl.Utf8)).alias("remote_name"),
        pl.col("bytes").fill_null(0),
    )


def _lanes(df: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Lanes by packets (most first), the not-attributed lane last; beyond MAX_LANES one 'other' lane."""
    counts = (
        df.group_by("lane")
        .agg(
            pl.len().alias("packets"),
            pl.col("bytes").sum(),
            pl.col("pid").first(),
            pl.col("process").first(),
            pl.col("services").drop_nulls().first(),
        )
        .with_columns((pl.col("lane") == NOT_ATTRIBUTED).alias("_na"))
        .sort(["_na", "packets", "lane"], descending=[False, True, False])
    )
    named = counts.filter(~pl.col("_na"))
    if named.height > MAX_LANES:
        keep = named["lane"].head(MAX_LANES - 1).to_list()
        other = f"{named.height - len(keep)} other processes"
        df = df.with_columns(
            pl.when(pl.col("lane").is_in(keep) | (pl.col("lane") == NOT_ATTRIBUTED))
            .then(pl.col("lane"))
            .otherwise(pl.lit(other))
            .alias("lane")
        )
        return df, keep + [other] + ([NOT_ATTRIBUTED] if counts["_na"].any() else [])
    return df, counts["lane"].to_list()


def _timeline(df: pl.DataFrame, order: list[str], bins: int) -> dict:
    t = df["t"].drop_nulls()
    if not len(t):
        return {"t0_ms": None, "bin_ms": None, "bins": 0, "lanes": []}
    t0, t1 = int(t.min()), int(t.max())
    width = max((t1 - t0) // bins + 1, 1)
    b = (
        df.filter(pl.col("t").is_not_null())
        .with_columns(((pl.col("t") - t0) // width).cast(pl.Int64).alias("bin"))
        .group_by("lane", "bin")
        .agg(pl.len().alias("packets"), pl.col("bytes").sum())
    )
    lanes = []
    meta = df.group_by("lane").agg(
        pl.len().alias("packets"),
        pl.col("bytes").sum(),
        pl.col("pid").first(),
        pl.col("process").first(),
        pl.col("services").drop_nulls().first(),
        pl.col("confidence").filter(pl.col("confidence") == "high").len().alias("high"),
    )
    info = {r["lane"]: r for r in meta.iter_rows(named=True)}
    for lane in order:
        part = b.filter(pl.col("lane") == lane)
        packets = [0] * bins
        nbytes = [0] * bins
        for k, p, n in zip(part["bin"].to_list(), part["packets"].to_list(), part["bytes"].to_list()):
            if 0 <= k < bins:
                packets[k], nbytes[k] = p, n
        r = info[lane]
        lanes.append(
            {
                "lane": lane,
                "pid": r["pid"] if lane != NOT_ATTRIBUTED else None,
                "process": r["process"] if lane != NOT_ATTRIBUTED else None,
                "services": r["services"] if lane != NOT_ATTRIBUTED else None,
                "packets": r["packets"],
                "bytes": r["bytes"],
                "high": r["high"],
                "bins_packets": packets,
                "bins_bytes": nbytes,
            }
        )
    return {"t0_ms": t0 / 1e6, "bin_ms": width / 1e6, "bins": bins, "lanes": lanes}


def _talkers(df: pl.DataFrame, order: list[str]) -> dict:
    g = (
        df.filter(pl.col("remote").is_not_null())
        .group_by("lane", "remote")
        .agg(
            pl.col("remote_name").drop_nulls().first(),
            pl.len().alias("packets"),
            pl.col("bytes").sum(),
            pl.col("remote_port")
            .drop_nulls()
            .value_counts(sort=True)
            .head(3)
            .struct.field("remote_port")
            .alias("ports"),
            pl.col("protocol").drop_nulls().unique().sort().alias("protocols"),
            pl.col("t").min().alias("first"),
            pl.col("t").max().alias("last"),
        )
        .sort(["lane", "packets", "remote"], descending=[False, True, False])
        .with_columns(pl.int_range(pl.len()).over("lane").alias("_rank"))
        .filter(pl.col("_rank") < TOP_TALKERS)
    )
    out: dict[str, list] = {lane: [] for lane in order}
    for r in g.iter_rows(named=True):
        out.setdefault(r["lane"], []).append(
            {
                "remote": r["remote"],
                "name": r["remote_name"],
                "ports": r["ports"],
                "protocols": r["protocols"],
                "packets": r["packets"],
                "bytes": r["bytes"],
                "first": _iso(r["first"]),
                "last": _iso(r["last"]),
            }
        )
    return out


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    s = dt.datetime.fromtimestamp(ns // NS, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{s}.{ns % NS:09d}"[:-3]


def _interest() -> list[pl.Expr]:
    """Sort keys, most telling first: the stronger the evidence, then TCP/UDP/ICMP before other frames."""
    rank = -pl.col("confidence").replace_strict(RANK, default=0, return_dtype=pl.Int8)
    ip = pl.col("protocol").is_in(["TCP", "UDP", "ICMP", "ICMPv6"]).not_()
    return [rank, ip, pl.col("frame")]


def _listed(df: pl.DataFrame, cap: int) -> pl.DataFrame:
    """At most ``cap`` rows: an equal share of every lane (its most telling frames: the strongest evidence,
    TCP/UDP/ICMP before other frames, then by number), the rest by the same order; in frame order."""
    if df.height <= cap:
        return df
    lanes = max(df["lane"].n_unique(), 1)
    share = max(cap // lanes, 1)
    ranked = df.sort(_interest()).with_columns(pl.int_range(pl.len()).over("lane").alias("_r"))
    first = ranked.filter(pl.col("_r") < share)
    rest = ranked.filter(pl.col("_r") >= share).head(max(cap - first.height, 0))
    return pl.concat([first, rest]).drop("_r").sort("frame")


def _frames_json(rows: pl.DataFrame) -> dict:
    # the answer's columns, but for the times, the services and the gap (the page shows them elsewhere)
    cols = [c for c in OUT_COLUMNS if c not in ("time", "services", "event_time", "delta_s")] + ["lane"]
    out = {c: rows[c].to_list() for c in cols}
    out["time"] = [_iso(t) for t in rows["t"].to_list()]
    return out


def _explained(result: Attribution, rows: pl.DataFrame, cap: int, budget_s: float) -> dict[int, str]:
    """The chain of evidence of up to ``cap`` listed frames: the first of every lane first, attributed
    ones before the rest, within ``budget_s`` seconds."""
    order = (
        rows.sort(_interest())
        .with_columns(
            pl.int_range(pl.len()).over("lane").alias("_r"), (pl.col("lane") == NOT_ATTRIBUTED).alias("_na")
        )
        .sort(["_r", "_na", "frame"])
    )["frame"].to_list()
    out: dict[int, str] = {}
    start = time.monotonic()
    for n in order[:cap]:
        out[n] = result.explain(n)
        if time.monotonic() - start > budget_s:
            break
    return out


def report_data(
    result: Attribution | LogAttribution,
    frames: pl.DataFrame | None,
    *,
    syn_intervals: pl.DataFrame | None = None,
    inputs: Sequence[str] = (),
    max_frames: int = MAX_FRAMES,
    max_explained: int = MAX_EXPLAINED,
    explain_budget_s: float = EXPLAIN_BUDGET_S,
    bins: int = TIME_BINS,
) -> dict:
    """Everything the page shows, as JSON-ready data (``frames`` is the capture's FRAMES table). ``result``
    is a kernel-trace attribution or an event-log one (with DNS names beside the remote addresses)."""
    df = _table(result, frames)
    df, order = _lanes(df)
    listed = _listed(df.sort("frame"), max_frames)
    conf = dict(df.group_by("confidence").len().iter_rows())
    syn = []
    offset_ns = getattr(result, "offset_ns", None)
    if syn_intervals is not None and syn_intervals.height and offset_ns is not None:
        # the trace's clock to the capture's: capture = trace + offset
        for r in syn_intervals.iter_rows(named=True):
            a = _ns(r["entered"]) if r["entered"] is not None else None
            b = _ns(r["left"]) if r["left"] is not None else None
            span = round((r["duration_s"] or 0) * NS)
            a = b - span if a is None and b is not None else a
            b = a + span if b is None and a is not None else b
            if a is None:
                continue
            syn.append(
                {
                    "start_ms": (a + offset_ns) / 1e6,
                    "end_ms": (b + offset_ns) / 1e6,
                    "open_at_end": bool(r["open_at_end"]),
                    "started_before_trace": bool(r["started_before_trace"]),
                    "duration_s": r["duration_s"],
                }
            )
    return {
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "inputs": [os.path.basename(os.fspath(p)) for p in inputs],
        "frames": df.height,
        "confidence": {k: conf.get(k, 0) for k in CONFIDENCE.values()},
        "offset": _offset(result),
        "local": result.local_addrs,
        "local_source": getattr(result, "local_addrs_source", None),
        "notes": list(result.notes),
        "timeline": _timeline(df, order, bins),
        "syn": syn,
        "talkers": _talkers(df, order),
        "table": _frames_json(listed),
        "listed": listed.height,
        "evidence": {
            str(k): v for k, v in _explained(result, listed, max_explained, explain_budget_s).items()
        },
    }


def _offset(result) -> dict:
    """The clock facts: a kernel trace's offset, or (event-log attributions) each sensor's line."""
    if not hasattr(result, "offset_ns"):
        return {
            "text": result.describe_offset(),
            "offset_s": None,
            "support": None,
            "source": "event logs",
            "drift_ppm": 0.0,
            "tolerance_s": None,
        }
    return {
        "text": result.describe_offset(),
        "offset_s": None if result.offset_ns is None else result.offset_ns / NS,
        "support": result.offset_support,
        "source": result.offset_source,
        "drift_ppm": result.drift_ppm,
        "tolerance_s": result.tolerance_s,
    }


def _ns(v) -> int:
    if isinstance(v, dt.datetime):
        return (int(v.replace(tzinfo=v.tzinfo or dt.UTC).timestamp()) * NS) + v.microsecond * 1000
    return int(v)


def render(data: dict, title: str = "etwtools report") -> str:
    """The HTML page of :func:`report_data`'s data: one file, scripts, styles and data inline."""
    from .report_page import PAGE

    # no "<" at all inside the script element: a name such as "<!--<script>" cannot end or bend it
    blob = json.dumps(data, separators=(",", ":"), default=str).replace("<", "\\u003c")
    return PAGE.replace("{{TITLE}}", html.escape(title)).replace("{{DATA}}", blob)


def write_report(
    result: Attribution | LogAttribution,
    frames: pl.DataFrame | None,
    out_path: str | os.PathLike,
    *,
    syn_intervals: pl.DataFrame | None = None,
    inputs: Sequence[str] = (),
    title: str | None = None,
    **limits,
) -> ReportFacts:
    """Write the report of ``result`` (with the capture's FRAMES table ``frames``) to ``out_path``."""
    start = time.monotonic()
    data = report_data(result, frames, syn_intervals=syn_intervals, inputs=inputs, **limits)
    page = render(
        data,
        title or ("etwtools report: " + ", ".join(data["inputs"]) if data["inputs"] else "etwtools report"),
    )
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(page)
    return ReportFacts(
        os.fspath(out_path),
        len(page.encode("utf-8")),
        data["frames"],
        data["listed"],
        len(data["evidence"]),
        len(data["timeline"]["lanes"]),
        time.monotonic() - start,
    )


def syn_attack_intervals(trace_path: str | os.PathLike) -> pl.DataFrame | None:
    """The SYN-attack resistance intervals of a trace whose kind can hold them (ETL: a second pass over it);
    None for other traces."""
    from .sources import KINDS, detect

    read = KINDS[detect(trace_path)].syn_attack
    return read(trace_path).intervals if read is not None else None
