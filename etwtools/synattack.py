"""When Windows entered and left SYN-attack resistance mode, and what traffic came with it.

Windows (Vista and later) protects itself against SYN floods with thresholds it derives from CPU and
memory; it cannot be turned off and writes no event log entry. The only record is the
Microsoft-Windows-TCPIP provider: event 1055 (TcpGlobalSynAttackEntry, "entering SYN attack resistance
mode") and 1063 (TcpGlobalSynAttackExit), both carrying six counters, plus the rate-limit and
land-attack events 1025 and 1056-1058 with the same counters. Collect them with::

    netsh trace start capture=yes provider=Microsoft-Windows-TCPIP level=0x05 tracefile=TCPIP.etl
    netsh trace stop

``capture=yes`` adds the packets (NDIS packet capture) to the same file; :func:`synattack` then
summarizes the SYN traffic before, during and after each interval. A separate capture (pcap/pcapng)
of the same period can be given instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from .diagnostics import warn
from .parsers.etl.captured_frames import EtlPacketReader
from .parsers.etl.tcpip import COUNTERS, SECURITY_SCHEMA, SYN_ATTACK_ENTRY, SYN_ATTACK_EXIT, TcpipCollector
from .parsers.schema import TIME
from .parsers.units import Progress

#: Snake-case column names of the six counters (template TcpSecurityRateLimitArgs).
COUNTER_COLUMNS = {
    "SynAttacksDetected": "syn_attacks_detected",
    "ReassemblyLimitViolations": "reassembly_limit_violations",
    "ConnectionRateLimitBacklog": "connection_rate_limit_backlog",
    "ConnectionRateLimitViolations": "connection_rate_limit_violations",
    "LandAttackSegmentsDropped": "land_attack_segments_dropped",
    "ConnectionRateLimitDepth": "connection_rate_limit_depth",
}
_OTHER_COUNTERS = [COUNTER_COLUMNS[c] for c in COUNTERS[1:]]
#: Rows of SYNs read, over all windows, to count and rank their sources (at least 4 x the SYNs).
_SOURCES_BUDGET = 2_000_000

INTERVALS_SCHEMA = {
    "interval": pl.Int32,
    "entered": TIME,  # null: the mode was already on when the trace started
    "left": TIME,  # null: still on when the trace ended
    "duration_s": pl.Float64,  # from trace start / to trace end where entered / left is null
    "open_at_end": pl.Boolean,
    "started_before_trace": pl.Boolean,
    "syn_attacks_detected_at_entry": pl.UInt32,
    "syn_attacks_detected_at_exit": pl.UInt32,
    **{c: pl.UInt32 for c in _OTHER_COUNTERS},  # from the exit event (the entry event when still open)
    "entry_record": pl.Int64,
    "exit_record": pl.Int64,
    "note": pl.Utf8,
}

OTHER_EVENTS_SCHEMA = {
    "time": TIME,
    "event_id": pl.Int32,
    "name": pl.Utf8,
    "level": pl.Int8,
    **{COUNTER_COLUMNS[c]: pl.UInt32 for c in COUNTERS},
    "interval": pl.Int32,  # the SYN-attack interval the event fell in, null if none
    "record": pl.Int64,
}

PACKETS_SCHEMA = {
    "interval": pl.Int32,
    "phase": pl.Utf8,  # before / during / after
    "start": TIME,
    "end": TIME,
    "seconds": pl.Float64,
    "syns": pl.Int64,  # SYN (no ACK) frames not sent by the traced host
    "syn_per_s": pl.Float64,
    "syn_acks": pl.Int64,
    "answered_share": pl.Float64,  # share of those SYNs whose 4-tuple got a SYN-ACK after them
    "sources": pl.Int64,  # distinct source addresses of the SYNs
    "top_sources": pl.Utf8,  # "addr (count), ..." top 5
    "attacked_ports": pl.Utf8,  # "port (count), ..." top 5 destination ports of the SYNs
}

#: Length of the "before" and "after" windows: the interval's own length, within these bounds (and
#: within the data: a window is cut where the trace or capture starts or ends).
MIN_WINDOW = timedelta(seconds=10)
MAX_WINDOW = timedelta(minutes=5)
#: How long after a SYN its SYN-ACK may come and still count as the answer.
ANSWER_WINDOW_NS = 3_000_000_000
TOP = 5


@dataclass
class SynAttackReport:
    """What :func:`synattack` found in one trace."""

    path: str
    intervals: pl.DataFrame  # INTERVALS_SCHEMA, one row per interval
    other_events: pl.DataFrame  # OTHER_EVENTS_SCHEMA: 1025, 1056, 1057, 1058
    tcpip_events_read: int  # every Microsoft-Windows-TCPIP event in the file
    packets: pl.DataFrame | None  # PACKETS_SCHEMA when frames were available, else None
    message: str
    trace_start: object = None  # datetime (UTC) of the first record, when known
    trace_end: object = None
    frames_source: str | None = None  # "etl", the capture's path, or None
    frames: int = 0
    notes: list[str] = field(default_factory=list)


def synattack(
    etl_path: str | os.PathLike,
    pcap_path: str | os.PathLike | None = None,
    *,
    progress: Progress | None = None,
) -> SynAttackReport:
    """SYN-attack resistance intervals of a Microsoft-Windows-TCPIP trace, with the SYN traffic around them.

    Frames come from ``pcap_path`` when given, else from the packets inside the ETL file (netsh
    ``capture=yes``), if any.
    """
    from .parsers.etl.container import EtlFile

    path = os.fspath(etl_path)
    # only TCP segments with SYN set matter here: the rest of a big capture is dropped chunk by chunk
    syn_only = (pl.col("protocol") == "TCP") & ((pl.col("tcp_flags").cast(pl.Int32) & 0x02) != 0)
    pkts = EtlPacketReader(path, keep=syn_only) if pcap_path is None else None
    tmin = tmax = None
    with EtlFile(path, progress=progress) as etl:  # one report for the file: container and decoders
        tcpip = TcpipCollector(path, pid_events=False, skipped=etl.skipped)
        for batch in etl.batches():
            tcpip.feed(batch)
            if pkts is not None:
                pkts.feed(batch)
            if len(batch):
                lo, hi = int(batch.time.min()), int(batch.time.max())
                tmin = lo if tmin is None else min(tmin, lo)
                tmax = hi if tmax is None else max(tmax, hi)
        if pkts is not None:
            pkts.finish(etl.skipped)
    found = tcpip.result()
    frames = None
    source = None
    if pcap_path is not None:
        from .sources import read_frames

        frames = read_frames(pcap_path)
        source = os.fspath(pcap_path)
    elif pkts is not None and pkts.count:
        frames = pkts.frames()
        source = "etl"
    return build_report(
        path,
        found.security,
        found.events_read,
        frames,
        tmin,
        tmax,
        source,
        n_frames=pkts.count if pkts is not None else None,
    )


def build_report(
    path: str,
    security: pl.DataFrame,
    events_read: int,
    frames: pl.DataFrame | None,
    trace_start_ns: int | None,
    trace_end_ns: int | None,
    frames_source: str | None = None,
    *,
    n_frames: int | None = None,
) -> SynAttackReport:
    """The report from decoded TCPIP counter events (SECURITY_SCHEMA) and optional frames (FRAMES).

    ``frames`` may hold only the TCP segments with SYN set; ``n_frames`` is then the number of all
    frames (default: the rows of ``frames``)."""
    security = security.sort("time", "record")
    cover = None  # the span the frames cover: the trace for packets inside it, else first to last frame
    if frames is not None and frames_source == "etl" and trace_start_ns is not None:
        cover = (trace_start_ns, trace_end_ns)
    elif frames is not None and frames.height:
        ft = frames["time"].dt.epoch("ns")
        cover = (int(ft.min()), int(ft.max()))
    if trace_start_ns is None and cover is not None:
        trace_start_ns, trace_end_ns = cover
    intervals, notes = _intervals(security, trace_start_ns, trace_end_ns)
    other = _other_events(security, intervals)
    packets = None
    uncovered: list[int] = []
    if frames is not None and intervals.height and cover is not None:
        packets, uncovered = _packet_summary(intervals, frames, trace_start_ns, trace_end_ns, cover)
    if n_frames is None:
        n_frames = frames.height if frames is not None else 0
    message = _message(path, intervals, other, events_read, frames_source, n_frames)
    if uncovered:
        note = (
            f"the frames ({_clock(cover[0])} to {_clock(cover[1])} UTC) do not cover interval"
            f"{'s' if len(uncovered) > 1 else ''} {', '.join(map(str, uncovered))}"
        )
        notes.append(note)
        message += "; " + note
    return SynAttackReport(
        path=path,
        intervals=intervals,
        other_events=other,
        tcpip_events_read=events_read,
        packets=packets,
        message=message,
        trace_start=_dt(trace_start_ns),
        trace_end=_dt(trace_end_ns),
        frames_source=frames_source,
        frames=n_frames,
        notes=notes,
    )


# ---------------------------------------------------------------------- intervals


def _intervals(sec: pl.DataFrame, t0: int | None, t1: int | None) -> tuple[pl.DataFrame, list[str]]:
    marks = sec.filter(pl.col("event_id").is_in([SYN_ATTACK_ENTRY, SYN_ATTACK_EXIT])).with_columns(
        pl.col("time").dt.epoch("ns").alias("t")
    )
    rows: list[dict] = []
    notes: list[str] = []
    open_row: dict | None = None
    for ev in marks.iter_rows(named=True):
        t = ev["t"]
        if ev["event_id"] == SYN_ATTACK_ENTRY:
            if open_row is not None:  # a second entry without an exit between: events were lost
                open_row["note"] = "entered again before an exit was seen (events lost?): end unknown"
                open_row["_lost"] = True
                rows.append(open_row)
                notes.append(open_row["note"])
            open_row = {
                "entered": t,
                "left": None,
                "started_before_trace": False,
                "syn_attacks_detected_at_entry": ev["SynAttacksDetected"],
                "syn_attacks_detected_at_exit": None,
                **{COUNTER_COLUMNS[c]: ev[c] for c in COUNTERS[1:]},
                "entry_record": ev["record"],
                "exit_record": None,
                "note": None,
            }
        else:
            if open_row is None:
                row = {
                    "entered": None,
                    "started_before_trace": True,
                    "syn_attacks_detected_at_entry": None,
                    "entry_record": None,
                    "note": "exit with no entry in the trace: the mode was on when tracing started",
                }
            else:
                row = open_row
                open_row = None
            row.update(
                {
                    "left": t,
                    "syn_attacks_detected_at_exit": ev["SynAttacksDetected"],
                    **{COUNTER_COLUMNS[c]: ev[c] for c in COUNTERS[1:]},
                    "exit_record": ev["record"],
                }
            )
            rows.append(row)
    if open_row is not None:
        open_row["note"] = "still on when the trace ended"
        rows.append(open_row)
    out = []
    for i, r in enumerate(rows, 1):
        lost = r.pop("_lost", False)
        start = r["entered"] if r["entered"] is not None else t0
        end = r["left"] if r["left"] is not None else (None if lost else t1)
        dur = (end - start) / 1e9 if start is not None and end is not None else None
        out.append({"interval": i, **r, "duration_s": dur, "open_at_end": r["left"] is None and not lost})
    df = (
        pl.DataFrame(
            out, schema={k: (pl.Int64 if v == TIME else v) for k, v in INTERVALS_SCHEMA.items()}, orient="row"
        )
        if out
        else pl.DataFrame(schema=INTERVALS_SCHEMA)
    )
    df = df.with_columns(pl.col("entered").cast(TIME), pl.col("left").cast(TIME))
    return df.select(list(INTERVALS_SCHEMA)), notes


def _other_events(sec: pl.DataFrame, intervals: pl.DataFrame) -> pl.DataFrame:
    other = sec.filter(~pl.col("event_id").is_in([SYN_ATTACK_ENTRY, SYN_ATTACK_EXIT]))
    other = other.rename({c: COUNTER_COLUMNS[c] for c in COUNTERS})
    if other.height and intervals.height:
        times = other["time"].dt.epoch("ns").to_list()
        spans = [(k, a, b) for k, a, b, _, _ in _spans(intervals, None, None)]
        other = other.with_columns(pl.Series("interval", _first_span(times, spans), dtype=pl.Int32))
    else:
        other = other.with_columns(pl.lit(None, pl.Int32).alias("interval"))
    return other.select(list(OTHER_EVENTS_SCHEMA))


def _first_span(times: list[int | None], spans: list[tuple]) -> list[int | None]:
    """For each time, the number of the first span (in list order) holding it, or None; spans are
    (number, start or None, end or None), both ends included.

    One sweep in time order with a heap of the open spans keyed by list position: O((times + spans)
    log spans), not times x spans (80,000 intervals and 160,000 events: seconds instead of hours).
    """
    import heapq

    lo = -(1 << 63)
    order = sorted(range(len(spans)), key=lambda i: lo if spans[i][1] is None else spans[i][1])
    timed = sorted((t, j) for j, t in enumerate(times) if t is not None)
    out: list[int | None] = [None] * len(times)
    heap: list[tuple[int, int | None]] = []  # (position in spans, end)
    k = 0
    for t, j in timed:
        while k < len(order) and (spans[order[k]][1] is None or spans[order[k]][1] <= t):
            i = order[k]
            heapq.heappush(heap, (i, spans[i][2]))
            k += 1
        while heap and heap[0][1] is not None and heap[0][1] < t:  # ended before t: never needed again
            heapq.heappop(heap)
        if heap:
            out[j] = spans[heap[0][0]][0]
    return out


# ---------------------------------------------------------------------- packets


def _spans(intervals: pl.DataFrame, t0: int | None, t1: int | None) -> list[tuple]:
    """(interval, start ns, end ns, entry seen, exit seen) per interval: a missing entry starts at ``t0``,
    a missing exit ends at ``t1`` when still on at the end, else (exit lost) where the next interval begins."""
    entered = intervals["entered"].dt.epoch("ns").to_list()
    left = intervals["left"].dt.epoch("ns").to_list()
    still = intervals["open_at_end"].to_list()
    out = []
    for k, number in enumerate(intervals["interval"].to_list()):
        a = entered[k] if entered[k] is not None else t0
        if left[k] is not None:
            b = left[k]
        elif still[k]:
            b = t1
        else:
            b = entered[k + 1] if k + 1 < len(entered) else t1
        out.append((number, a, b, entered[k] is not None, left[k] is not None))
    return out


def _packet_summary(
    intervals: pl.DataFrame, frames: pl.DataFrame, t0: int | None, t1: int | None, cover: tuple[int, int]
) -> tuple[pl.DataFrame, list[int]]:
    """Rows per interval and phase, each phase cut to the span the frames cover; intervals not covered."""
    tcp = frames.filter(pl.col("protocol") == "TCP", pl.col("tcp_flags").is_not_null())
    flags = pl.col("tcp_flags").cast(pl.Int32)
    not_out = pl.col("direction").is_null() | (pl.col("direction") != "out")
    not_in = pl.col("direction").is_null() | (pl.col("direction") != "in")
    syns = tcp.filter((flags & 0x12) == 0x02, not_out).select(
        "frame", pl.col("time").dt.epoch("ns").alias("t"), "src_addr", "src_port", "dst_addr", "dst_port"
    )
    acks = tcp.filter((flags & 0x12) == 0x12, not_in).select(
        pl.col("time").dt.epoch("ns").alias("ta"),
        pl.col("dst_addr").alias("src_addr"),
        pl.col("dst_port").alias("src_port"),
        pl.col("src_addr").alias("dst_addr"),
        pl.col("src_port").alias("dst_port"),
    )
    answered = (
        syns.join(acks, on=["src_addr", "src_port", "dst_addr", "dst_port"], how="inner")
        .filter((pl.col("ta") >= pl.col("t")) & (pl.col("ta") <= pl.col("t") + ANSWER_WINDOW_NS))
        .select("frame")
        .unique()
    )
    syns = syns.with_columns(pl.col("frame").is_in(answered["frame"].implode()).alias("answered")).sort(
        "t", "frame"
    )
    ack_t = np.sort(acks["ta"].to_numpy())
    syn_t = syns["t"].to_numpy()
    answered_sum = np.concatenate([[0], np.cumsum(syns["answered"].to_numpy().astype(np.int64))])
    # who sent the SYNs of each window is read from that window's rows only, up to a budget of rows in all
    # (hostile traces: many intervals over the same flood would make it intervals x SYNs)
    budget = max(_SOURCES_BUDGET, 4 * len(syn_t))
    rows: list[dict] = []
    windows: list[tuple[int, int, int]] = []  # (row, first SYN, SYNs) of the windows whose sources count
    uncovered = []
    skipped_sources = 0
    c0, c1 = cover
    for number, a, b, entered_known, left_known in _spans(intervals, t0, t1):
        if a is None or b is None:
            continue
        w = int(min(max(b - a, _td_ns(MIN_WINDOW)), _td_ns(MAX_WINDOW)))
        phases = [
            ("before", a - w, a, entered_known),
            ("during", a, b, True),
            ("after", b, b + w, left_known),
        ]
        if c1 < a or c0 > b:
            uncovered.append(number)
        for name, lo, hi, known in phases:
            lo, hi = max(lo, c0), min(hi, c1)  # windows stop where the frames do
            if not known or hi <= lo:
                continue
            # before: [lo, hi); during: [lo, hi]; after: (lo, hi]
            left = "left" if name in ("before", "during") else "right"
            right = "left" if name == "before" else "right"
            i0, i1 = int(np.searchsorted(syn_t, lo, left)), int(np.searchsorted(syn_t, hi, right))
            a0, a1 = int(np.searchsorted(ack_t, lo, left)), int(np.searchsorted(ack_t, hi, right))
            secs = (hi - lo) / 1e9
            n = i1 - i0
            if n <= budget:
                budget -= n
                windows.append((len(rows), i0, n))
                who = {"sources": 0, "top_sources": None, "attacked_ports": None}
            else:
                skipped_sources += 1
                who = {"sources": None, "top_sources": None, "attacked_ports": None}
            rows.append(
                {
                    "interval": number,
                    "phase": name,
                    "start": lo,
                    "end": hi,
                    "seconds": secs,
                    "syns": n,
                    "syn_per_s": n / secs if secs > 0 else None,
                    "syn_acks": a1 - a0,
                    "answered_share": (int(answered_sum[i1] - answered_sum[i0]) / n) if n else None,
                    **who,
                }
            )
    _sources(rows, windows, syns)
    if skipped_sources:
        warn(
            f"{skipped_sources:,} window(s) of SYN traffic overlap so much that their sources were not "
            "counted (sources, top_sources and attacked_ports left empty); the counts and rates are "
            "complete"
        )
    schema = {k: (pl.Int64 if v == TIME else v) for k, v in PACKETS_SCHEMA.items()}
    df = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return df.with_columns(pl.col("start").cast(TIME), pl.col("end").cast(TIME)), uncovered


def _sources(rows: list[dict], windows: list[tuple[int, int, int]], syns: pl.DataFrame) -> None:
    """Fill ``sources``, ``top_sources`` and ``attacked_ports`` of the rows of ``windows`` (row, first SYN
    of the time-sorted ``syns``, count): every window's SYNs in one table, counted in bulk."""
    spans = [(r, i0, n) for r, i0, n in windows if n]
    if not spans:
        return
    row, first, count = (np.array(c, np.int64) for c in zip(*spans))
    starts = np.repeat(np.cumsum(count) - count, count)
    idx = np.arange(int(count.sum()), dtype=np.int64) - starts + np.repeat(first, count)
    m = syns.select("src_addr", "dst_port")[idx].with_columns(pl.Series("w", np.repeat(row, count)))
    for r, k in m.group_by("w").agg(pl.col("src_addr").n_unique()).iter_rows():
        rows[r]["sources"] = k
    for col, key in (("src_addr", "top_sources"), ("dst_port", "attacked_ports")):
        top = (
            m.group_by("w", col)
            .len()
            .sort(["w", "len", col], descending=[False, True, False])
            .group_by("w", maintain_order=True)
            .head(TOP)
            .group_by("w", maintain_order=True)
            .agg(col, "len")
        )
        for r, values, lens in top.iter_rows():
            rows[r][key] = ", ".join(f"{v} ({n:,})" for v, n in zip(values, lens))


# ---------------------------------------------------------------------- words


def _message(
    path: str,
    intervals: pl.DataFrame,
    other: pl.DataFrame,
    events_read: int,
    source: str | None,
    n_frames: int,
) -> str:
    name = os.path.basename(path)
    read = f"{events_read:,} TCPIP event{'s' if events_read != 1 else ''} read"
    if not intervals.height:
        msg = f"no SYN-attack events in {name} ({read})"
        if other.height:
            msg += f"; {other.height:,} rate-limit or land-attack event{'s' if other.height != 1 else ''}"
        if events_read == 0:
            msg += (
                "; the file has no Microsoft-Windows-TCPIP events at all: collect with netsh trace "
                "start capture=yes provider=Microsoft-Windows-TCPIP level=0x05"
            )
        return msg
    n = intervals.height
    parts = [f"{n} SYN-attack resistance interval{'s' if n != 1 else ''} in {name} ({read})"]
    still = int(intervals["open_at_end"].sum())
    before = int(intervals["started_before_trace"].sum())
    if still:
        parts.append(f"{still} still on when the trace ended")
    if before:
        parts.append(f"{before} already on when the trace started")
    if other.height:
        parts.append(f"{other.height:,} rate-limit or land-attack event{'s' if other.height != 1 else ''}")
    if source is None:
        parts.append("no packets to summarize (trace without capture=yes and no --pcap)")
    else:
        where = "in the ETL file" if source == "etl" else f"from {os.path.basename(source)}"
        parts.append(f"{n_frames:,} frames {where}")
    return "; ".join(parts)


def _clock(ns: int) -> str:
    return _dt(ns).strftime("%Y-%m-%d %H:%M:%S")


def _dt(ns: int | None):
    if ns is None:
        return None
    return pl.Series([ns], dtype=pl.Int64).cast(TIME).item()


def _td_ns(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * 1_000_000_000 + td.microseconds * 1000


__all__ = [
    "INTERVALS_SCHEMA",
    "OTHER_EVENTS_SCHEMA",
    "PACKETS_SCHEMA",
    "SECURITY_SCHEMA",
    "SynAttackReport",
    "build_report",
    "synattack",
]
