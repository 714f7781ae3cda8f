"""The chain of evidence behind one frame's attribution, as text for a support engineer (``--frame N``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from .attribution.constants import NS
from .attribution.matchers import MATCHERS

if TYPE_CHECKING:
    from .attribution import Attribution

_SHOW = 6


def _t(ns: int | None) -> str:
    from .clock_offset import format_ns

    return format_ns(ns)


def _ms(ns: float) -> str:
    return f"{ns / 1e6:+.3f} ms" if abs(ns) < NS else f"{ns / NS:+.3f} s"


def _event_lines(ev: pl.DataFrame, tt: int | None, chosen: int | None) -> list[str]:
    if tt is not None:
        ev = ev.with_columns((pl.lit(tt) - pl.col("t")).alias("_d")).sort(pl.col("_d").abs())
    lines = []
    for r in ev.head(_SHOW).sort("t").iter_rows(named=True):
        d = f"  frame - event {_ms(r['_d'])}" if tt is not None else ""
        mark = "   <- the event used" if chosen is not None and r["eid"] == chosen else ""
        rec = f"record {r['record']}" if r.get("record") is not None else f"event #{r['eid']}"
        lines.append(
            f"      {rec}: {_t(r['t'])} {r['provider'] or ''} {r['event']} PID {r['pid']} "
            f"size {r['size']} {r['l_addr']}:{r['l_port']} <-> {r['r_addr']}:{r['r_port']}{d}{mark}"
        )
    if ev.height > _SHOW:
        lines.append(f"      ... and {ev.height - _SHOW:,} more (the {_SHOW} nearest in time are shown)")
    return lines


def _owner_runs(ev: pl.DataFrame) -> list[str]:
    """Who owned a 4-tuple when: runs of consecutive events with the same PID."""
    ev = ev.sort("t").with_columns(
        (pl.col("pid") != pl.col("pid").shift(1)).fill_null(True).cum_sum().alias("_run")
    )
    runs = ev.group_by("_run", maintain_order=True).agg(
        pl.col("pid").first(),
        pl.col("t").min().alias("t0"),
        pl.col("t").max().alias("t1"),
        pl.len().alias("n"),
        pl.col("kind").unique().sort().str.join(", ").alias("kinds"),
    )
    return [
        f"      PID {r['pid']}: {r['n']:,} events ({r['kinds']}) from {_t(r['t0'])} to {_t(r['t1'])}"
        for r in runs.iter_rows(named=True)
    ]


def explain(attr: Attribution, frame_number: int) -> str:
    """Readable explanation of how ``frame_number`` was (or was not) attributed."""
    table = attr.answers  # (the reason of this frame alone is written below)
    out = table.with_row_index("fid").filter(pl.col("frame") == frame_number)
    if not out.height:
        n = table.height
        first = table["frame"].min() if n else None
        last = table["frame"].max() if n else None
        return f"Frame {frame_number}: not in the capture (it has {n:,} frames, numbered {first} to {last})."
    out = out.with_columns(
        pl.col("time").cast(pl.Int64).alias("_t_ns"), pl.col("event_time").cast(pl.Int64).alias("_et_ns")
    )
    row = out.row(0, named=True)
    fid = int(row["fid"])
    row["reason"] = attr.rows(fid, fid + 1)["reason"][0]
    lines = _answer_lines(row, frame_number) + _direction_lines(attr, row, fid)
    if attr.offset_ns is None:
        lines.append(
            "2. Clock: no offset between capture and trace could be established, so no time-based "
            "match was tried."
        )
        return "\n".join(lines + _pid_lines(attr, row, None))
    tt = attr.trace_time(row["_t_ns"]) if row["_t_ns"] is not None else None
    lines += _clock_lines(attr, tt)
    evidence = attr.evidence
    rows = evidence.orientations(fid) if evidence is not None else pl.DataFrame()
    if evidence is None or not rows.height or not evidence.events.height:
        lines.append("3. Events: the frame is not TCP/UDP with ports, or the trace has no network events.")
        return "\n".join(lines + _pid_lines(attr, row, tt))
    chosen = evidence.chosen_event(fid)
    n = 3
    for o in rows.iter_rows(named=True):
        orient = "" if rows.height == 1 else f" (taking the frame as {o['odir']})"
        lines += _five_tuple_lines(evidence, o, n, orient, tt, chosen)
        n += 1
    lines.append(f"{n}. Rule applied: {_RULES.get(row['method'], 'no rule matched')}")
    return "\n".join(lines + _pid_lines(attr, row, tt, n + 1))


def _answer_lines(row: dict, frame_number: int) -> list[str]:
    """The frame, the answer and its reason."""
    ports = (
        f"{row['src_addr']}:{row['src_port']} -> {row['dst_addr']}:{row['dst_port']}"
        if row["src_port"] is not None
        else f"{row['src_addr']} -> {row['dst_addr']}"
    )
    captured = f"captured {_t(row['_t_ns'])}"
    lines = [
        f"Frame {frame_number}: {row['protocol']} {ports}, {row['payload_len']} bytes of payload, {captured}"
    ]
    if row["pid"] is not None:
        who = f"PID {row['pid']} {row['process'] or '(name unknown)'}"
        if row["services"]:
            who += f" (services: {row['services']})"
        lines.append(f"Answer: {who}, confidence {row['confidence']} (method {row['method']}).")
    else:
        lines.append("Answer: not attributed (confidence none).")
    return lines + [f"Why: {row['reason']}.", ""]


def _direction_lines(attr: Attribution, row: dict, fid: int) -> list[str]:
    """Step 1: the traced host's addresses, and the frame's direction from them."""
    local = attr.local_addrs
    src = attr.local_addrs_source or "none known"
    shown = ", ".join(local[:8]) + (" ..." if len(local) > 8 else "") if local else "unknown"
    fr_in = row["direction"]
    if attr.evidence is not None and attr.evidence.direction_source(fid) == "capture":
        how = "as the capture file records it"
    elif row["src_addr"] in local and row["dst_addr"] in local:
        how = "both addresses are local (loopback or host-internal)"
    elif row["src_addr"] in local:
        how = f"the source {row['src_addr']} is local"
    elif row["dst_addr"] in local:
        how = f"the destination {row['dst_addr']} is local"
    elif fr_in in ("in", "out"):
        how = f"neither address is local; the matching events show the frame {'leaving' if fr_in == 'out' else 'arriving'}"
    else:
        how = "neither address is local"
    return [f"1. Traced host's addresses ({src}): {shown}.", f"   Direction: {fr_in} ({how})."]


def _clock_lines(attr: Attribution, tt: int | None) -> list[str]:
    """Step 2: the clock offset between capture and trace (``attr`` has one), and the frame's trace time."""
    assert attr.offset_ns is not None
    if attr.offset_source == "given":
        agree = f"{attr.offset_support:,} candidate matches agree with it"
        lines = [f"2. Clock: capture - trace = {attr.offset_ns / NS:+.6f} s (given by the user; {agree})."]
    else:
        how = "estimated from candidate matches (same protocol, 5-tuple and size) voted over +-14 h"
        lines = [f"2. Clock: capture - trace = {attr.estimate.describe()}, {how}."]
        if attr.offset_support == 1:
            lines.append(
                "   Only one frame/event pair supports this offset: the answer rests on that single match."
            )
    lines.append(
        f"   The frame on the trace's clock: {_t(tt)}. Tolerance for a match: {attr.tolerance_s:g} s."
    )
    return lines


def _five_tuple_lines(
    evidence, o: dict, n: int, orient: str, tt: int | None, chosen: int | None
) -> list[str]:
    """Step ``n``: the events with the frame's 5-tuple taken one way (``o``), else the weaker evidence."""
    key = f"{o['protocol']} local {o['l_addr']}:{o['l_port']} remote {o['r_addr']}:{o['r_port']}"
    same = evidence.events_like(o, "protocol", "l_addr", "l_port", "r_addr", "r_port")
    lines = [f"{n}. Events with this 5-tuple{orient}, {key}: {same.height:,}"]
    if same.height:
        lines += _event_lines(same, tt, chosen)
        if o["protocol"] == "TCP":
            return lines + ["   Owners of this 4-tuple over time:"] + _owner_runs(same)
        sized = same.filter(pl.col("size").eq_missing(pl.lit(o["size"])))
        return lines + [f"   Of these, {sized.height:,} have the frame's size ({o['size']} bytes)."]
    nopid = evidence.events_like(o, "protocol", "l_addr", "l_port", "r_addr", "r_port", usable=False)
    if nopid.height:
        lines.append(
            f"   {nopid.height:,} event(s) with this 5-tuple carry no usable PID (0 or -1) and were left out:"
        )
        lines += _event_lines(nopid, tt, None)
    port = evidence.events_like(o, "protocol", "l_port")
    addrs = evidence.events_like(o, "l_addr", "r_addr")
    lines.append(
        f"   Weaker evidence: {port.height:,} events use local {o['protocol']} port {o['l_port']}; "
        f"{addrs.height:,} events are between {o['l_addr']} and {o['r_addr']}."
    )
    if port.height:
        lines += ["   Same local port:"] + _event_lines(port, tt, chosen)
    elif addrs.height:
        lines += ["   Same addresses:"] + _event_lines(addrs, tt, chosen)
    return lines


_RULES = {
    **{m.method: m.rule for m in MATCHERS},
    "fragment": "a later IP fragment follows its first fragment.",
}


def _pid_lines(attr: Attribution, row: dict, tt: int | None, n: int = 4) -> list[str]:
    if row["pid"] is None or attr.evidence is None:
        return []
    pid = int(row["pid"])
    t = row["_et_ns"] if row["_et_ns"] is not None else tt
    lines = [f"{n}. PID {pid} -> process at {_t(t)}:"]
    lines += ["   " + s for s in attr.evidence.process_history(pid, t)]
    lines.append(
        f"   Result: {row['process'] or 'unknown'}"
        f"{', services ' + row['services'] if row['services'] else ''}."
    )
    mine = [s for s in attr.notes if s.startswith(f"PID {pid}:")]
    for s in mine:
        lines.append(f"   Note: {s}")
    return lines
