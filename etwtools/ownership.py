"""Attribute frames from connection events of Windows event logs (Sysmon 3, Security 5156/5158/5154/5157).

A connection event gives an owner (PID, process, user) to a 5-tuple, and a bind or listen event to a
local endpoint, for a period: from the event until the next event that gives the same 5-tuple (or, for
a local endpoint, the same protocol and local port) to another owner. Every frame, in either
direction, inherits the owner of its 5-tuple at its time, else of its local endpoint; the header PID
of captures converted from ETW is the weakest hint, used only where no event speaks.

Each sensor is matched on its own, with its own clock offset (capture clock minus the sensor's
clock, found from the first frame of each logged 5-tuple); where both sensors give a frame an owner
and they disagree, the reason says so and the confidence drops to medium. A 5-tuple that only one
owner ever has in the log is attributed whatever the offset error.

Steps: :func:`choose_host` (the log's host whose addresses the capture shows), :func:`prepare` (the
connection table in the form the matchers use), :func:`estimate_offset`, the matchers
(:func:`match_tuple`, :func:`match_endpoint`; the header PID last), :func:`attribute_connections`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from .attribution.constants import CONFIDENCE, FRAME_COLUMNS, KEY, KID, MEDIUM_HORIZON_NS, NS, RANK
from .attribution.prepare import local_tuples
from .attribution.result import Answered, attributed_expr, frame_bytes
from .errors import AttributionError
from .parsers import schema
from .parsers.addresses import text_address, text_address_expr
from .parsers.lifetimes import process_at

TIME = schema.TIME
CONNECTIONS = schema.CONNECTIONS
DNS = schema.DNS

#: Offset votes are binned this wide; the winning window is three bins.
BIN_NS = NS
#: Largest |capture - log| offset considered: a week (an exported log on a collector's clock, another day).
WINDOW_NS = 7 * 24 * 3600 * NS
#: Matched 5-tuples voted at most (a sample when more; the winner is then counted over all).
VOTE_SAMPLE = 50_000
#: Least slack (s) between a frame and the event that starts its owner's period, after the offset:
#: Security's EventTime has 1 s resolution and Sysmon logs a connection after its first packets.
MIN_SLACK_NS = 2 * NS
_SENSOR = {"sysmon": "Sysmon", "security": "Security"}
#: The columns of the answer: those of attribution's, with the remote name, the user and the header PID.
OUT_COLUMNS = [
    *FRAME_COLUMNS,
    "remote_name",
    "payload_len",
    "pid",
    "process",
    "services",
    "user",
    "confidence",
    "method",
    "event_time",
    "delta_s",
    "header_pid",
    "reason",
]


# ---------------------------------------------------------------------------------------------------
# addresses and hosts

#: Address text as the frame readers write it (IPv4-mapped IPv6 as IPv4, lower case, no zone id).
canonical_addr = text_address_expr


def _host_address(a: str) -> bool:
    """An address that names one host: not unspecified, loopback, multicast or broadcast."""
    try:
        ip = ipaddress.ip_address(a)
    except ValueError:
        return False
    return not (
        ip.is_unspecified
        or ip.is_loopback
        or ip.is_multicast
        or (ip.version == 4 and str(ip).endswith(".255"))
    )


@dataclass
class HostChoice:
    """The log host whose events are used, its addresses and why it was chosen."""

    host: str | None
    addresses: list[str]
    why: str


def host_addresses(conns: pl.DataFrame) -> dict[str, list[str]]:
    """Each host's own addresses: unicast addresses its connection events name more often on the local
    side than on the remote side (a reader that misreads one event kind's orientation does not give the
    host its peers' addresses)."""
    host = pl.col("host").fill_null("")
    loc = conns.select(host, canonical_addr(pl.col("local_addr")).alias("a"), pl.lit(1).alias("w"))
    rem = conns.select(host, canonical_addr(pl.col("remote_addr")).alias("a"), pl.lit(-1).alias("w"))
    rows = (
        pl.concat([loc, rem])
        .drop_nulls()
        .group_by("host", "a")
        .agg(pl.col("w").sum())
        .filter(pl.col("w") > 0)
        .sort("host", "a")
    )
    out: dict[str, list[str]] = {}
    for h, a, _ in rows.iter_rows():
        if _host_address(a):
            out.setdefault(h, []).append(a)
    return out


def choose_host(conns: pl.DataFrame, frames: pl.DataFrame, host: str | None = None) -> HostChoice:
    """The host of a (multi-host) log that the capture was taken on: the one whose addresses the most
    frames carry, or the one named by ``host`` (full or short name, any case)."""
    by_host = host_addresses(conns)
    names = sorted(conns["host"].drop_nulls().unique().to_list())
    if host is not None:
        want = host.lower()
        hit = [h for h in names if h.lower() == want or h.lower().split(".")[0] == want.split(".")[0]]
        if not hit:
            raise AttributionError(
                f"--host {host}: the logs name no such host (they have {', '.join(names) or 'no host names'})"
            )
        return HostChoice(hit[0], by_host.get(hit[0], []), "given with --host")
    if not by_host:
        return HostChoice(
            names[0] if len(names) == 1 else None,
            [],
            "the logs' connection events have no unicast local address",
        )
    fa = frames.select("src_addr", "dst_addr")
    score = {
        h: fa.filter(pl.col("src_addr").is_in(addrs) | pl.col("dst_addr").is_in(addrs)).height
        for h, addrs in by_host.items()
    }
    ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))
    best, n = ranked[0]
    if n == 0:
        return HostChoice(
            best if len(by_host) == 1 else None,
            by_host[best] if len(by_host) == 1 else [],
            "no address of the logs' hosts appears in the capture",
        )
    if len(ranked) == 1:
        why = f"the only host in the logs; its address(es) {', '.join(by_host[best][:4])} are in {n:,} frames"
    else:
        others = "; ".join(f"{h}: {k:,}" for h, k in ranked[1:4])
        why = (
            f"its address(es) {', '.join(by_host[best][:4])} are in {n:,} frames, the most of the "
            f"{len(ranked)} hosts in the logs ({others})"
        )
        if ranked[1][1] == n:
            why += "; a tie: give --host NAME to choose"
    return HostChoice(best, by_host[best], why)


# ---------------------------------------------------------------------------------------------------
# inputs


def prepare(
    conns: pl.DataFrame, processes: pl.DataFrame | None = None, own: Sequence[str] = ()
) -> pl.DataFrame:
    """Connection events with eid, ``t`` (ns on the sensor's clock), canonical protocol/addresses, an
    ``owner`` key, and PIDs filled from the processes table through ProcessGuid where the event has
    none (Sysmon events written without a ProcessId)."""
    c = _canonical(schema.conform(conns, CONNECTIONS))
    c = _local_side_first(c, own)
    c = _pids_from_guids(c, processes)
    if processes is not None and processes.height and c["process"].null_count():
        c = _names_from_processes(c, processes)
    c = _owners(c.with_columns(pl.col("process").str.replace(r"^.*[\\/]", "").alias("process")))
    usable = (
        pl.col("protocol").is_in(["TCP", "UDP"])
        & pl.col("t").is_not_null()
        & pl.col("l_port").is_not_null()
        & (pl.col("owner").is_not_null() | pl.col("no_owner"))
    )
    tuple_ok = (
        pl.col("r_addr").is_not_null()
        & (pl.col("r_port").fill_null(0) > 0)
        & ~pl.col("r_addr").is_in(["0.0.0.0", "::"])
    )
    return c.filter(usable).with_columns(tuple_ok.alias("has_tuple"))


def _canonical(c: pl.DataFrame) -> pl.DataFrame:
    """eid, canonical protocol and sensor, ``t`` on the sensor's clock (``clock`` names it), addresses and
    ports as l_/r_ columns, the ProcessGuid as ``guid``."""
    c = c.with_row_index("eid").with_columns(pl.col("eid").cast(pl.Int64))
    proto = pl.col("protocol").cast(pl.Utf8).str.to_uppercase().str.strip_chars()
    proto = pl.when(proto == "6").then(pl.lit("TCP")).when(proto == "17").then(pl.lit("UDP")).otherwise(proto)
    sensor = pl.col("sensor").fill_null("").str.to_lowercase()
    # Sysmon's own UtcTime (ms resolution) when the sensor has it for nearly every event, else the record time
    use_st = (
        c.group_by(sensor.alias("s"))
        .agg((pl.col("sensor_time").is_not_null().mean() >= 0.9).alias("u"))
        .filter(pl.col("u"))["s"]
        .to_list()
    )
    c = c.with_columns(
        proto.alias("protocol"),
        sensor.alias("sensor"),
        pl.when(sensor.is_in(use_st))
        .then(pl.col("sensor_time"))
        .otherwise(pl.col("time"))
        .cast(pl.Int64)
        .alias("t"),
        canonical_addr(pl.col("local_addr")).alias("l_addr"),
        pl.col("local_port").cast(pl.Int32).alias("l_port"),
        canonical_addr(pl.col("remote_addr")).alias("r_addr"),
        pl.col("remote_port").cast(pl.Int32).alias("r_port"),
        pl.col("process_guid").str.to_lowercase().str.strip_chars("{}").alias("guid"),
    )
    return c.with_columns(
        pl.when(sensor.is_in(use_st)).then(pl.lit("sensor_time")).otherwise(pl.lit("time")).alias("clock")
    )


def _local_side_first(c: pl.DataFrame, own: Sequence[str]) -> pl.DataFrame:
    """The host's own side as the local one, whichever way the event wrote it (``flipped`` where swapped)."""
    flip = pl.col("r_addr").is_in(list(own)) & ~pl.col("l_addr").is_in(list(own))
    c = c.with_columns(flip.fill_null(False).alias("flipped"))
    return c.with_columns(
        *[
            pl.when(pl.col("flipped")).then(pl.col(b)).otherwise(pl.col(a)).alias(a)
            for a, b in (
                ("l_addr", "r_addr"),
                ("r_addr", "l_addr"),
                ("l_port", "r_port"),
                ("r_port", "l_port"),
            )
        ]
    )


def _pids_from_guids(c: pl.DataFrame, processes: pl.DataFrame | None) -> pl.DataFrame:
    """PIDs (and images) of events without one, from the process create event of their ProcessGuid
    (``pid_from_guid`` where found)."""
    if processes is None or "process_guid" not in processes.columns or not c["pid"].null_count():
        return c.with_columns(pl.lit(False).alias("pid_from_guid"))
    g = (
        processes.select(
            pl.col("process_guid").str.to_lowercase().str.strip_chars("{}").alias("guid"),
            pl.col("pid").alias("_gpid"),
            pl.col("image").alias("_gimg"),
        )
        .drop_nulls("guid")
        .unique("guid")
    )
    return (
        c.join(g, on="guid", how="left")
        .with_columns(
            pl.coalesce("pid", "_gpid").alias("pid"),
            pl.coalesce("process", "_gimg").alias("process"),
            (pl.col("pid").is_null() & pl.col("_gpid").is_not_null()).alias("pid_from_guid"),
        )
        .drop("_gpid", "_gimg")
        .sort("eid")
    )


def _owners(c: pl.DataFrame) -> pl.DataFrame:
    """``owner``: the PID, else the process instance (ProcessGuid), else the image name; PID 0 (Idle) or -1
    owns no socket (a WFP drop logged before any socket was found, 5152 with ProcessId 0): ``no_owner``."""
    c = c.with_columns(
        pl.when(pl.col("pid").is_in([0, -1, 0xFFFFFFFF]))
        .then(pl.lit(None, pl.Int64))
        .otherwise(pl.col("pid"))
        .alias("pid"),
        pl.col("pid").is_in([0, -1, 0xFFFFFFFF]).fill_null(False).alias("no_owner"),
    )
    return c.with_columns(
        pl.coalesce(pl.col("pid").cast(pl.Utf8), pl.col("guid"), pl.col("process").str.to_lowercase()).alias(
            "owner"
        )
    )


def _names_from_processes(c: pl.DataFrame, processes: pl.DataFrame) -> pl.DataFrame:
    """Image names for events without one: the process with that PID that started last before the event
    (:func:`~etwtools.parsers.lifetimes.process_at`), among the event's host's processes first, else among
    all. Only instances with an image count, and a log's instance keeps its name after its end."""
    host = pl.col("host") if "host" in processes.columns else pl.lit(None, pl.Utf8)
    p = processes.select(
        pl.col("pid").cast(pl.Int64),
        "image",
        pl.col("start").cast(pl.Int64),
        pl.lit(None, pl.Int64).alias("end"),
        host.alias("host"),
    ).drop_nulls(["pid", "image"])
    need = c.filter(pl.col("process").is_null() & pl.col("pid").is_not_null()).select(
        "eid", "pid", "t", "host"
    )
    if not need.height or not p.height:
        return c
    found = need.select("eid", process_at(need, p, time="t")["image"].alias("_any"))
    per_host = [
        q.select("eid", process_at(q, p.filter(pl.col("host") == h), time="t")["image"].alias("_img"))
        for h in p["host"].drop_nulls().unique().sort()
        if (q := need.filter(pl.col("host") == h)).height
    ]
    if per_host:
        found = found.join(pl.concat(per_host), on="eid", how="left")
    names = found.select("eid", pl.coalesce(*(["_img"] if per_host else []), "_any").alias("_img"))
    c = c.join(names, on="eid", how="left")
    return c.with_columns(pl.coalesce("process", "_img").alias("process")).drop("_img").sort("eid")


def orient(frames: pl.DataFrame, local: Sequence[str]) -> pl.DataFrame:
    """TCP/UDP frames from or to one of ``local`` with fid, t and the (local, remote) 5-tuple; ``odir``
    out when the local address is the source. A frame between two local addresses is oriented both ways."""
    fr = (
        schema.conform(frames, schema.FRAMES).with_row_index("fid").with_columns(pl.col("fid").cast(pl.Int64))
    )
    base = fr.filter(
        pl.col("protocol").is_in(["TCP", "UDP"])
        & pl.col("src_port").is_not_null()
        & pl.col("time").is_not_null()
    )
    loc = list(local)
    cols = ["fid", pl.col("time").cast(pl.Int64).alias("t"), "protocol", "tcp_flags"]
    return local_tuples(
        base, cols, outgoing=pl.col("src_addr").is_in(loc), incoming=pl.col("dst_addr").is_in(loc)
    )


# ---------------------------------------------------------------------------------------------------
# clock offset


@dataclass
class LogOffset:
    """Capture clock minus one sensor's clock, and what supports it."""

    sensor: str
    offset_ns: int | None
    support: int = 0  # matched 5-tuples whose first frame lies within the winning window
    candidates: int = 0  # logged 5-tuples seen in the capture
    runner_up: int = 0  # support of the best window at least 5 s away
    spread_ns: int = 0  # largest |diff - offset| among the supporters
    source: str = "estimated"  # estimated / given / none
    clock: str = "time"  # the event column used: time (record time) or sensor_time (Sysmon UtcTime)

    def describe(self) -> str:
        name = _SENSOR.get(self.sensor, self.sensor)
        if self.offset_ns is None:
            return (
                f"{name}: no clock offset could be established ({self.candidates:,} logged 5-tuples seen "
                f"in the capture); only 5-tuples with a single owner in the log are attributed"
            )
        clock = "Sysmon UtcTime" if self.clock == "sensor_time" else "record time"
        if self.source == "given":
            return f"{name}: clock offset capture - log ({clock}) {_dur(self.offset_ns)} (given)"
        return (
            f"{name}: clock offset capture - log ({clock}) {_dur(self.offset_ns)} (estimated: the first "
            f"frames of {self.support:,} of {self.candidates:,} logged 5-tuples agree within "
            f"{self.spread_ns / NS:.2f} s"
            + (f"; the next best offset has {self.runner_up:,}" if self.runner_up else "")
            + ")"
        )


def _dur(ns: int) -> str:
    """``+4 h 00 min 00.214 s (+14400.214 s)``."""
    ms = round(abs(ns) / 1_000_000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    return (
        f"{'-' if ns < 0 else '+'}{h} h {m:02d} min {rem // 1000:02d}.{rem % 1000:03d} s ({ns / NS:+.3f} s)"
    )


def estimate_offset(of: pl.DataFrame, ev: pl.DataFrame, sensor: str) -> LogOffset:
    """Capture minus log clock for one sensor's events ``ev`` (prepared), from the first frame of every
    logged 5-tuple seen in the capture (its SYN for TCP when there is one): the 3 s window holding the
    most of them wins, the offset is their median. Voted on a sample of :data:`VOTE_SAMPLE`
    5-tuples at most; the support is then counted over all of them."""
    clock = ev["clock"][0] if ev.height else "time"
    key = [KID] if KID in ev.columns and KID in of.columns else KEY
    tup = ev.filter(pl.col("has_tuple"))
    first_ev = tup.group_by(key).agg(pl.col("t").min().alias("te"))
    syn = ((pl.col("tcp_flags").fill_null(0).cast(pl.Int32) & 0x12) == 0x02) & (pl.col("protocol") == "TCP")
    ff = (
        of.join(first_ev.select(key), on=key, how="semi")
        .group_by(key)
        .agg(pl.col("t").min().alias("tf"), pl.col("t").filter(syn).min().alias("ts"))
    )
    m = ff.join(first_ev, on=key).select((pl.coalesce("ts", "tf") - pl.col("te")).alias("d"))
    m = m.filter(pl.col("d").abs() <= WINDOW_NS)
    n = m.height
    if not n:
        return LogOffset(sensor, None, candidates=0, source="none", clock=clock)
    d_all = m["d"].to_numpy()
    d = d_all if n <= VOTE_SAMPLE else np.random.default_rng(0).choice(d_all, VOTE_SAMPLE, replace=False)
    bins = np.floor_divide(d, BIN_NS)
    u, cnt = np.unique(bins, return_counts=True)
    # window of three consecutive bins
    lookup = dict(zip(u.tolist(), cnt.tolist()))
    win = {b: lookup.get(b - 1, 0) + c + lookup.get(b + 1, 0) for b, c in lookup.items()}
    best = max(win, key=lambda b: (win[b], lookup[b], -abs(b)))
    lo, hi = (best - 1) * BIN_NS, (best + 2) * BIN_NS
    inl = d_all[(d_all >= lo) & (d_all < hi)]  # verify over all
    off = int(np.median(inl))
    far = [w for b, w in win.items() if abs(b - best) > 5]
    return LogOffset(
        sensor,
        off,
        support=len(inl),
        candidates=n,
        runner_up=max(far, default=0),
        spread_ns=int(np.abs(inl - off).max()),
        clock=clock,
    )


# ---------------------------------------------------------------------------------------------------
# matchers: candidate rows fid, odir, eid, rank, method, gap (frame minus event on the log's clock),
# single (the key has one owner in the log), prev_owner (the owner before, when it changed)

_CAND = {
    "fid": pl.Int64,
    "odir": pl.Utf8,
    "eid": pl.Int64,
    "rank": pl.Int8,
    "method": pl.Utf8,
    "gap": pl.Int64,
    "single": pl.Boolean,
    "changed": pl.Boolean,
}


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=_CAND)


def _owner_runs(ev: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per event: ``single`` (its key has one owner in the log) and ``until`` (the time of the next event
    of its key with another owner; null when none)."""
    e = ev.select(keys + ["eid", "t", "owner"]).sort(keys + ["t", "eid"])
    n_owner = e.group_by(keys).agg(pl.col("owner").n_unique().alias("_n"))
    new = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys + ["owner"]]).fill_null(
        True
    )
    e = e.with_columns(new.cast(pl.Int64).cum_sum().alias("_run"))
    runs = e.group_by("_run").agg(*[pl.col(k).first() for k in keys], pl.col("t").min().alias("_t0"))
    nxt = runs.select(keys + [(pl.col("_run") - 1).alias("_run"), pl.col("_t0").alias("until")])
    return (
        e.join(nxt, on=keys + ["_run"], how="left", nulls_equal=True)
        .join(n_owner, on=keys, how="left", nulls_equal=True)
        .select("eid", "until", (pl.col("_n") == 1).alias("single"))
    )


def _match(
    left: pl.DataFrame,
    ev: pl.DataFrame,
    keys: list[str],
    offset_ns: int | None,
    slack: int,
    method: str,
    rank_single: int,
    rank_near: int,
    rank_far: int,
) -> pl.DataFrame:
    """Owner of ``keys`` at each frame's time: the latest event of the key at most ``slack`` after the
    frame (on the log's clock), else the first one after; without an offset only keys with one owner."""
    if not left.height or not ev.height:
        return _empty()
    runs = _owner_runs(ev, keys)
    r = ev.select(keys + ["eid", "t"]).join(runs, on="eid").sort("t")
    if offset_ns is None:
        return _single_owners(left, r, keys, method, rank_single)
    m = _around(left.with_columns((pl.col("t") - offset_ns + slack).alias("_q")).sort("_q"), r, keys)
    m = m.filter(pl.col("p_eid").is_not_null() | pl.col("n_eid").is_not_null())
    tt = pl.col("t") - offset_ns
    take_p = pl.col("p_eid").is_not_null()
    m = m.with_columns(
        pl.when(take_p).then(pl.col("p_eid")).otherwise(pl.col("n_eid")).alias("eid"),
        pl.when(take_p).then(pl.col("p_single")).otherwise(pl.col("n_single")).alias("single"),
    )
    m = m.join(ev.select("eid", pl.col("t").alias("e_t")), on="eid", how="left")
    gap = tt - pl.col("e_t")
    # an owner taken over later (``until``) is not a concern here: the event chosen is the latest one at
    # most ``slack`` after the frame, so any other owner's event comes after the frame
    rank = (
        pl.when(pl.col("single"))
        .then(rank_single)
        .when(take_p & (gap <= MEDIUM_HORIZON_NS))
        .then(rank_near)
        .otherwise(rank_far)
    )
    return m.select(
        "fid",
        "odir",
        "eid",
        rank.cast(pl.Int8).alias("rank"),
        pl.lit(method).alias("method"),
        gap.alias("gap"),
        "single",
        (~pl.col("single")).alias("changed"),
    )


def _single_owners(
    left: pl.DataFrame, r: pl.DataFrame, keys: list[str], method: str, rank_single: int
) -> pl.DataFrame:
    """Without a clock offset: the frames whose key has one owner in the whole log, gap unknown."""
    one = r.filter(pl.col("single")).sort("t").unique(keys, keep="first")
    m = left.join(one, on=keys, how="inner").with_columns(pl.lit(None, pl.Int64).alias("gap"))
    return m.select(
        "fid",
        "odir",
        "eid",
        pl.lit(rank_single, pl.Int8).alias("rank"),
        pl.lit(method).alias("method"),
        "gap",
        "single",
        pl.lit(False).alias("changed"),
    )


def _around(lt: pl.DataFrame, r: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Each frame (sorted by ``_q``, its time on the log's clock plus the slack) with the latest event of its
    key at or before ``_q`` (``p_`` columns) and the first one after (``n_`` columns)."""
    rr = r.select(
        keys
        + [
            pl.col("t").alias("_on"),
            pl.col("eid").alias("p_eid"),
            pl.col("until").alias("p_until"),
            pl.col("single").alias("p_single"),
        ]
    )
    m = lt.join_asof(rr, left_on="_q", right_on="_on", by=keys, strategy="backward", check_sortedness=False)
    rn = r.select(
        keys + [pl.col("t").alias("_on"), pl.col("eid").alias("n_eid"), pl.col("single").alias("n_single")]
    )
    return m.join_asof(
        rn,
        left_on="_q",
        right_on="_on",
        by=keys,
        strategy="forward",
        check_sortedness=False,
        allow_exact_matches=False,
    )


def match_tuple(of: pl.DataFrame, ev: pl.DataFrame, offset_ns: int | None, slack: int) -> pl.DataFrame:
    """Frames whose 5-tuple a connection event names (joined on the tuple id ``kid`` when both have it)."""
    e = ev.filter(pl.col("has_tuple"))
    key = [KID] if KID in ev.columns and KID in of.columns else KEY
    left = of.filter(pl.col(KID).is_not_null()) if key == [KID] else of
    return _match(left.select("fid", "odir", "t", *key), e, key, offset_ns, slack, "5-tuple", 3, 3, 2)


def match_endpoint(of: pl.DataFrame, ev: pl.DataFrame, offset_ns: int | None, slack: int) -> pl.DataFrame:
    """Frames whose local endpoint (protocol, local port; the event's address may be the wildcard) an
    event names: a bind, a listen, or a connection of the same socket to another remote end."""
    keys = ["protocol", "l_port"]
    e = ev
    m = _match(
        of.select("fid", "odir", "t", *keys, "l_addr"), e, keys, offset_ns, slack, "local-endpoint", 2, 2, 1
    )
    if not m.height:
        return m
    # the event's local address must be the frame's, or the wildcard
    la = of.select("fid", "odir", pl.col("l_addr").alias("_fa"))
    m = m.join(la, on=["fid", "odir"]).join(ev.select("eid", pl.col("l_addr").alias("_ea")), on="eid")
    ok = (pl.col("_ea") == pl.col("_fa")) | pl.col("_ea").is_in(["0.0.0.0", "::"])
    return m.filter(ok).drop("_fa", "_ea")


# ---------------------------------------------------------------------------------------------------
# the answer


@dataclass
class LogAttribution(Answered):
    """Every frame's owner from the event logs, with the offsets, the host choice and notes."""

    frames: pl.DataFrame
    summary: pl.DataFrame
    offsets: list[LogOffset]
    host: HostChoice
    local_addrs: list[str]
    notes: list[str] = field(default_factory=list)
    header_pid_agreement: tuple[int, int] = (0, 0)  # (agreeing, compared)
    kernel_offset: str | None = None  # the kernel trace's offset line, when one was merged
    _sizes: pl.DataFrame | None = field(default=None, repr=False)  # wirelen, caplen per frame (summary bytes)
    _events: pl.DataFrame | None = field(default=None, repr=False)
    _match: pl.DataFrame | None = field(default=None, repr=False)

    def why_none(self) -> str:
        if not self.local_addrs:
            return f"no host of the logs could be matched to the capture ({self.host.why})"
        return (
            "no frame's 5-tuple or local endpoint appears in the logs' connection events "
            f"(host {self.host.host}: {', '.join(self.local_addrs[:4])})"
        )

    def describe_offset(self) -> str:
        """One line per sensor (and the kernel trace): the clock offset used and what supports it."""
        lines = [o.describe() for o in self.offsets] or ["event logs: no connection events"]
        return "\n".join(([self.kernel_offset] if self.kernel_offset else []) + lines)

    def describe_host(self) -> str:
        return f"host {self.host.host or '(none)'}: {self.host.why}"

    def describe_header_pid(self) -> str | None:
        agree, n = self.header_pid_agreement
        if not n:
            return None
        return (
            f"the capture's header PIDs (ETW event header, etl2pcapng/pktmon) agree with the answer for "
            f"{agree:,} of {n:,} attributed frames that carry one ({100 * agree / n:.1f} %)"
        )

    def explain(self, frame_number: int) -> str:
        row = self.frames.filter(pl.col("frame") == frame_number)
        if not row.height:
            raise AttributionError(
                f"frame {frame_number} is not in the capture (it has {self.frames.height:,} frames)"
            )
        r = row.row(0, named=True)
        lines = [
            (
                f"frame {frame_number}: {r['protocol']} {r['src_addr']}:{r['src_port']} -> "
                f"{r['dst_addr']}:{r['dst_port']} at {r['time']} ({r['direction']})"
            )
        ]
        if r["remote_name"]:
            lines.append(f"  remote name (Sysmon DNS query): {r['remote_name']}")
        lines.append(
            f"  answer: PID {r['pid']} {r['process'] or ''} user {r['user'] or '?'}, confidence "
            f"{r['confidence']}, method {r['method']}"
        )
        lines.append(f"  reason: {r['reason']}")
        lines.append(f"  {self.describe_host()}")
        for o in self.offsets:
            lines.append(f"  {o.describe()}")
        return "\n".join(lines)


def _pretty_ns(col: str) -> pl.Expr:
    v = pl.col(col).cast(pl.Float64) / NS
    return pl.format("{} s", v.round(3).cast(pl.Utf8))


def _event_text(prefix: str = "") -> pl.Expr:
    """``Sysmon event 3 (record 388222) of PID 720 lsass.exe (NT AUTHORITY\\SYSTEM)``."""
    p = prefix
    # a blocked connection or dropped packet (5157, 5152) still names the socket's process: say what it was
    blocked = pl.col(p + "action").is_in(["blocked", "dropped"]).fill_null(False)
    return pl.format(
        "{} event {} (record {}{}) of PID {} {}{}",
        pl.col(p + "sensor").replace_strict(_SENSOR, default=pl.col(p + "sensor")),
        pl.col(p + "event_id").cast(pl.Utf8),
        pl.col(p + "record").cast(pl.Utf8).fill_null("?"),
        pl.when(blocked).then(pl.format(", {}", pl.col(p + "action"))).otherwise(pl.lit("")),
        pl.col(p + "pid").cast(pl.Utf8).fill_null("?"),
        pl.col(p + "process").fill_null("?"),
        pl.when(pl.col(p + "user").is_not_null())
        .then(pl.format(" ({})", pl.col(p + "user")))
        .otherwise(pl.lit("")),
    )


def attribute_connections(
    frames: pl.DataFrame,
    connections: pl.DataFrame,
    processes: pl.DataFrame | None = None,
    dns: pl.DataFrame | None = None,
    *,
    offset_s: float | None = None,
    host: str | None = None,
    local_addrs: Sequence[str] | None = None,
) -> LogAttribution:
    """Attribute every frame (FRAMES, optionally with ``header_pid``/``header_tid``) from connection events
    (CONNECTIONS: Sysmon 3, Security 5156/5158/5154/5157), PIDs through ProcessGuid from ``processes``
    (Sysmon 1 rows with ``process_guid``) when an event has none, and remote names from ``dns`` (Sysmon 22).

    ``offset_s`` (capture minus log clock, s) overrides the estimate for every sensor; ``host`` picks
    the host of a multi-host log (default: the one whose addresses the capture shows); ``local_addrs``
    adds addresses of that host.
    """
    _check_offset(offset_s)
    frames = frames if frames is not None else schema.empty(schema.FRAMES)
    conns = schema.conform(connections if connections is not None else schema.empty(CONNECTIONS), CONNECTIONS)
    notes: list[str] = []
    choice = choose_host(conns, frames, host)
    if choice.host is not None:
        conns = conns.filter(pl.col("host").fill_null("") == choice.host)
    local = _local_addresses(choice, local_addrs)
    ev = _owning_events(prepare(conns, processes, local), notes)
    ev, of = _keyed(ev, orient(frames, local))
    fr = (
        schema.conform(frames, schema.FRAMES).with_row_index("fid").with_columns(pl.col("fid").cast(pl.Int64))
    )
    hp = "header_pid" in frames.columns
    fr = fr.with_columns(
        pl.col("header_pid").cast(pl.Int64) if hp else pl.lit(None, pl.Int64).alias("header_pid")
    )
    offsets, cand = _candidates(of, ev, offset_s, notes)
    best = _with_reasons(_best(cand, ev))
    del cand
    res, agreement = _header_pid_hint(fr, best, hp)
    out = _answer_table(fr, res, local, _dns_names(dns, choice.host), offsets, _why_nothing(choice, local))
    if not ev.height:
        notes.append("the logs hold no usable connection events (Sysmon 3, Security 5156/5158/5154/5157)")
    return LogAttribution(
        frames=out,
        summary=_summary(out, fr),
        offsets=offsets,
        host=choice,
        local_addrs=local,
        notes=notes,
        header_pid_agreement=agreement,
        _sizes=fr.select("wirelen", "caplen"),
        _events=ev,
        _match=best,
    )


def _check_offset(offset_s: float | None) -> None:
    """A given offset must be a finite number of seconds within a century."""
    import math

    if offset_s is not None and not (
        isinstance(offset_s, (int, float)) and math.isfinite(offset_s) and abs(offset_s) <= 3_155_760_000
    ):
        raise AttributionError(
            f"the clock offset must be a finite number of seconds within a century, not {offset_s!r}"
        )


def _local_addresses(choice: HostChoice, local_addrs: Sequence[str] | None) -> list[str]:
    """The chosen host's addresses, then the given ones (canonical text, each once)."""
    given = [text_address(a) for a in local_addrs or []]
    if None in given:
        bad = (local_addrs or [])[given.index(None)]
        raise AttributionError(f"local address {bad!r} is not an IPv4 or IPv6 address")
    return list(dict.fromkeys(choice.addresses + [a for a in given if a is not None]))


def _owning_events(ev: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """The prepared events that give an owner; what was read the other way round, found through the
    ProcessGuid, or left without an owner or a PID is said in ``notes``."""
    counts = {c: int(ev[c].sum()) if ev.height else 0 for c in ("flipped", "pid_from_guid", "no_owner")}
    if counts["flipped"]:
        notes.append(
            f"{counts['flipped']:,} connection events name the host's address as the remote end; read the "
            f"other way round"
        )
    if counts["pid_from_guid"]:
        notes.append(
            f"{counts['pid_from_guid']:,} connection events carry no ProcessId: their PID comes from the "
            f"Sysmon process create event with the same ProcessGuid"
        )
    if counts["no_owner"]:
        notes.append(
            f"{counts['no_owner']:,} connection events name PID 0 or -1 (no process: a packet dropped before "
            f"any socket took it) and give no owner"
        )
    ev = ev.filter(pl.col("owner").is_not_null())
    nopid = ev.filter(pl.col("pid").is_null()).height
    if nopid:
        notes.append(
            f"{nopid:,} connection events have no PID (none in the event and no process create event "
            f"with their ProcessGuid): they name the process only"
        )
    return ev


def _keyed(ev: pl.DataFrame, of: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events (in eid order) and oriented frames with the id of their logged 5-tuple (null: not logged)."""
    tuples = (
        ev.filter(pl.col("has_tuple"))
        .select(KEY)
        .unique()
        .with_row_index(KID)
        .with_columns(pl.col(KID).cast(pl.Int64))
    )
    ev = ev.join(tuples, on=KEY, how="left", nulls_equal=True).sort("eid")
    return ev, of.join(tuples, on=KEY, how="left")


def _candidates(
    of: pl.DataFrame, ev: pl.DataFrame, offset_s: float | None, notes: list[str]
) -> tuple[list[LogOffset], pl.DataFrame]:
    """Each sensor's offset, and its candidates: 5-tuple matches, then local endpoints for the rest."""
    offsets: list[LogOffset] = []
    cands = [_empty().with_columns(pl.lit(None, pl.Utf8).alias("sensor"))]
    for sensor in sorted(ev["sensor"].unique().to_list()):
        e = ev.filter(pl.col("sensor") == sensor)
        est = estimate_offset(of, e, sensor)
        off = est
        if offset_s is not None:
            off = LogOffset(
                sensor, round(offset_s * NS), source="given", clock=est.clock, candidates=est.candidates
            )
            if est.offset_ns is not None and abs(est.offset_ns - off.offset_ns) > 5 * NS:
                notes.append(
                    f"the given offset differs from the one the {_SENSOR.get(sensor, sensor)} events "
                    f"suggest: {est.describe()}"
                )
        offsets.append(off)
        slack = max(MIN_SLACK_NS, off.spread_ns + NS // 2)
        t = match_tuple(of, e, off.offset_ns, slack).with_columns(pl.lit(sensor).alias("sensor"))
        rest = of.join(t.select("fid").unique(), on="fid", how="anti")
        p = match_endpoint(rest, e, off.offset_ns, slack).with_columns(pl.lit(sensor).alias("sensor"))
        cands += [t, p]
    return offsets, pl.concat(cands, how="vertical_relaxed")


#: The events' columns a chosen candidate carries (the other sensor's with ``o_`` before them).
_EVENT_COLUMNS = [
    "eid",
    "sensor",
    "event_id",
    "record",
    "pid",
    "process",
    "user",
    "owner",
    "t",
    "action",
    "pid_from_guid",
    "l_addr",
    "l_port",
]


def _best(cand: pl.DataFrame, ev: pl.DataFrame) -> pl.DataFrame:
    """The best candidate per frame (per sensor, then across sensors) with its event, and the other
    sensor's best (``o_`` columns): ``_dis`` where they name different owners (the rank drops to 2),
    ``_borrow`` where the PID is taken from the other sensor's event of the same image."""
    order = ["fid", "rank", "_tuple", "_absgap"]
    cand = cand.with_columns(
        (pl.col("method") == "5-tuple").alias("_tuple"), pl.col("gap").abs().fill_null(0).alias("_absgap")
    )
    cand = cand.sort(order, descending=[False, True, True, False])
    per = cand.unique(["fid", "sensor"], keep="first", maintain_order=True)
    best = per.unique("fid", keep="first", maintain_order=True)
    evx = ev.select(_EVENT_COLUMNS)
    best = best.join(evx.drop("sensor"), on="eid", how="left")
    other = (
        per.join(best.select("fid", pl.col("sensor").alias("_bs")), on="fid")
        .filter(pl.col("sensor") != pl.col("_bs"))
        .join(evx.rename({c: "o_" + c for c in evx.columns}), left_on="eid", right_on="o_eid")
        .select(
            "fid",
            pl.col("eid").alias("o_eid"),
            pl.col("rank").alias("o_rank"),
            pl.col("method").alias("o_method"),
            *[
                pl.col("o_" + c)
                for c in ["sensor", "event_id", "record", "pid", "process", "user", "owner", "action"]
            ],
        )
    )
    best = best.join(other, on="fid", how="left")
    same_image = pl.col("process").str.to_lowercase() == pl.col("o_process").str.to_lowercase()
    pid_unknown = pl.col("pid").is_null() | pl.col("o_pid").is_null()
    disagree = (
        pl.col("o_owner").is_not_null()
        & (pl.col("o_rank") >= 2)
        & (pl.col("o_owner") != pl.col("owner"))
        & ~(pid_unknown & same_image.fill_null(False))
    )
    best = best.with_columns(
        disagree.fill_null(False).alias("_dis"),
        (pl.col("pid").is_null() & pl.col("o_pid").is_not_null() & same_image.fill_null(False)).alias(
            "_borrow"
        ),
    )
    best = best.with_columns(
        pl.when(pl.col("_borrow")).then(pl.col("o_pid")).otherwise(pl.col("pid")).alias("pid"),
        pl.when(~pl.col("_dis")).then(pl.coalesce("user", "o_user")).otherwise(pl.col("user")).alias("user"),
    )
    return best.with_columns(
        pl.when(pl.col("_dis") & (pl.col("rank") > 2))
        .then(pl.lit(2, pl.Int8))
        .otherwise(pl.col("rank"))
        .alias("rank")
    )


def _reason_parts() -> list[pl.Expr]:
    """The reason's text before the time gap: the event, what it gives, its scope, the PID's source and
    the other sensor's word."""
    tuple_txt = (
        pl.when(pl.col("method") == "5-tuple")
        .then(pl.lit("this 5-tuple"))
        .otherwise(pl.format("the local endpoint port {}", pl.col("l_port").cast(pl.Utf8)))
    )
    scope = (
        pl.when(pl.col("single"))
        .then(pl.lit("the only owner of it in the log"))
        .when(pl.col("_neg"))
        .then(pl.lit("the first owner of it the log shows; an earlier connection's owner is not logged"))
        .otherwise(pl.lit("the latest owner before the frame (the log shows others at other times)"))
    )
    guid_txt = (
        pl.when(pl.col("_borrow"))
        .then(
            pl.format(
                "; the PID is the {} event's (this event has none)",
                pl.col("o_sensor").replace_strict(_SENSOR, default=pl.col("o_sensor")),
            )
        )
        .when(pl.col("pid_from_guid"))
        .then(pl.lit("; PID found through the ProcessGuid's process create event"))
        .otherwise(pl.lit(""))
    )
    agree_txt = (
        pl.when(pl.col("_dis"))
        .then(pl.format("; the sensors DISAGREE: {}", _event_text("o_")))
        .when(pl.col("o_owner").is_not_null())
        .then(pl.format("; {} agrees", _event_text("o_")))
        .otherwise(pl.lit(""))
    )
    return [pl.format("{} gives {} to ", _event_text(), tuple_txt), scope, guid_txt, agree_txt, pl.lit("; ")]


def _with_reasons(best: pl.DataFrame) -> pl.DataFrame:
    """``reason`` for every chosen candidate, ``method`` prefixed with its sensor."""
    gap_txt = (
        pl.when(pl.col("gap").is_null())
        .then(pl.lit("no clock offset, so the time gap is unknown"))
        .otherwise(pl.format("the frame is {} from the event on the log's clock", _pretty_ns("gap")))
    )
    # the text before the gap depends only on these: written once per combination, joined to the frames
    combo = ["eid", "o_eid", "single", "_neg", "_dis", "_borrow", "method"]
    best = best.with_columns((pl.col("gap") < 0).fill_null(False).alias("_neg"))
    texts = best.unique(combo).select(*combo, pl.concat_str(_reason_parts()).alias("_text"))
    best = best.join(texts, on=combo, how="left", nulls_equal=True)
    return best.with_columns(
        pl.concat_str(["_text", gap_txt]).alias("reason"),
        pl.format("{}-{}", pl.col("sensor"), pl.col("method")).alias("method"),
    ).drop("_text")


def _header_pid_hint(
    fr: pl.DataFrame, best: pl.DataFrame, has_header_pid: bool
) -> tuple[pl.DataFrame, tuple[int, int]]:
    """Every frame's chosen candidate, or its capture header PID (``fr``'s, the weakest hint) where no
    event speaks; and how many attributed frames' header PIDs agree with the answer, of those compared."""
    chosen = best.select(
        "fid",
        "rank",
        "method",
        "pid",
        "process",
        "user",
        "reason",
        "sensor",
        pl.col("t").alias("e_t"),
        "gap",
        "odir",
    )
    res = fr.select("fid", "header_pid").join(chosen, on="fid", how="left")
    weak = pl.col("rank").is_null() & pl.col("header_pid").is_not_null() & (pl.col("header_pid") > 0)
    res = res.with_columns(
        pl.when(weak).then(pl.lit(1, pl.Int8)).otherwise(pl.col("rank")).alias("rank"),
        pl.when(weak).then(pl.lit("header-pid")).otherwise(pl.col("method")).alias("method"),
        pl.when(weak).then(pl.col("header_pid")).otherwise(pl.col("pid")).alias("pid"),
        pl.when(weak)
        .then(
            pl.lit(
                "no connection event names this frame's 5-tuple or local endpoint; the capture's "
                "header PID (the process whose thread logged the packet event, often not the "
                "owner) is a guess"
            )
        )
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )
    if not has_header_pid:
        return res, (0, 0)
    comp = res.filter(pl.col("rank") >= 2, pl.col("header_pid").is_not_null())
    return res, (int((comp["header_pid"] == comp["pid"]).sum()), comp.height)


def _why_nothing(choice: HostChoice, local: list[str]) -> pl.Expr:
    """Why a frame got no owner."""
    in_host = pl.col("src_addr").is_in(local) | pl.col("dst_addr").is_in(local)
    return (
        pl.when(~pl.col("protocol").is_in(["TCP", "UDP"]))
        .then(
            pl.format(
                "{} frame: connection events cover only TCP and UDP", pl.col("protocol").fill_null("non-IP")
            )
        )
        .when(~in_host)
        .then(
            pl.lit(
                f"neither address is one of host {choice.host}'s"
                if local
                else "the host's addresses are unknown"
            )
        )
        .otherwise(pl.lit("no connection event of the logs names this 5-tuple or its local endpoint"))
    )


def _answer_table(
    fr: pl.DataFrame,
    res: pl.DataFrame,
    local: list[str],
    names: pl.DataFrame,
    offsets: list[LogOffset],
    why: pl.Expr,
) -> pl.DataFrame:
    """The answer (OUT_COLUMNS), one row per frame in frame order, remote names from ``names``."""
    out = fr.join(res.drop("header_pid"), on="fid", how="left").sort("fid")
    remote = (
        pl.when(pl.col("odir") == "in")
        .then(pl.col("src_addr"))
        .when(pl.col("odir") == "out")
        .then(pl.col("dst_addr"))
        .when(pl.col("src_addr").is_in(local))
        .then(pl.col("dst_addr"))
        .otherwise(pl.col("src_addr"))
    )
    out = out.with_columns(remote.alias("_remote"))
    out = out.join(names, left_on="_remote", right_on="address", how="left").sort("fid")
    direction = (
        pl.when(pl.col("odir").is_not_null())
        .then(pl.col("odir"))
        .when(pl.col("src_addr").is_in(local))
        .then(pl.lit("out"))
        .when(pl.col("dst_addr").is_in(local))
        .then(pl.lit("in"))
        .otherwise(pl.lit("unknown"))
    )
    offset_of = pl.col("sensor").replace_strict(
        {o.sensor: o.offset_ns for o in offsets}, default=None, return_dtype=pl.Int64
    )
    return out.select(
        "frame",
        "time",
        direction.alias("direction"),
        "protocol",
        "src_addr",
        "src_port",
        "dst_addr",
        "dst_port",
        pl.col("names").alias("remote_name"),
        "payload_len",
        pl.col("pid").cast(pl.Int64),
        "process",
        pl.lit(None, pl.Utf8).alias("services"),
        "user",
        pl.col("rank").fill_null(0).replace_strict(CONFIDENCE, return_dtype=pl.Utf8).alias("confidence"),
        pl.col("method").fill_null("none"),
        pl.col("e_t").cast(TIME).alias("event_time"),
        ((pl.col("time").cast(pl.Int64) - offset_of - pl.col("e_t")) / NS).round(6).alias("delta_s"),
        "header_pid",
        pl.coalesce("reason", why).alias("reason"),
    )


def _dns_names(dns: pl.DataFrame | None, host: str | None) -> pl.DataFrame:
    """address -> the names the host's processes resolved to it (comma-separated, at most three)."""
    empty = pl.DataFrame(schema={"address": pl.Utf8, "names": pl.Utf8})
    if dns is None or not dns.height:
        return empty
    d = schema.conform(dns, DNS)
    if host is not None and d["host"].drop_nulls().len():
        d = d.filter(pl.col("host").fill_null(host) == host)
    d = (
        d.select("query_name", "time", pl.col("addresses").alias("address"))
        .explode("address")
        .with_columns(canonical_addr(pl.col("address")).alias("address"))
        .filter(pl.col("address").str.contains(r"^[0-9a-f:.]+$") & pl.col("query_name").is_not_null())
    )
    if not d.height:
        return empty
    return (
        d.sort("time")
        .group_by("address", maintain_order=True)
        .agg(
            pl.col("query_name")
            .str.to_lowercase()
            .unique(maintain_order=True)
            .head(3)
            .str.join(",")
            .alias("names")
        )
    )


def _summary(out: pl.DataFrame, fr: pl.DataFrame) -> pl.DataFrame:
    df = out.with_columns(frame_bytes(fr).alias("_bytes"))
    att = df.filter(attributed_expr())
    s = (
        att.group_by("pid", "process", "services")
        .agg(
            pl.col("user").drop_nulls().first(),
            pl.len().cast(pl.Int64).alias("frames"),
            pl.col("_bytes").sum().alias("bytes"),
            (pl.col("confidence") == "high").sum().cast(pl.Int64).alias("high"),
            pl.col("remote_name").drop_nulls().unique().sort().head(4).str.join(",").alias("remote_names"),
            pl.col("time").min().alias("first"),
            pl.col("time").max().alias("last"),
        )
        .sort(["frames", "pid", "process"], descending=[True, False, False], nulls_last=True)
    )
    rest = df.filter(~attributed_expr())
    if rest.height:
        s = pl.concat(
            [
                s,
                pl.DataFrame(
                    {
                        "pid": [None],
                        "process": ["(not attributed)"],
                        "services": [None],
                        "user": [None],
                        "frames": [rest.height],
                        "bytes": [int(rest["_bytes"].sum())],
                        "high": [0],
                        "remote_names": [None],
                        "first": [rest["time"].min()],
                        "last": [rest["time"].max()],
                    },
                    schema=s.schema,
                ),
            ]
        )
    return s.with_columns(pl.col("remote_names").replace("", None))


#: The answer's columns a kernel-trace attribution gives a merged one (its ``k_`` columns' suffixes).
_FROM_KERNEL = {
    "pid": "pid",
    "process": "process",
    "services": "services",
    "confidence": "conf",
    "method": "method",
    "event_time": "event_time",
    "delta_s": "delta",
}


def merge_kernel(kernel, logs: LogAttribution) -> LogAttribution:
    """One answer per frame from a kernel-trace attribution (:class:`etwtools.attribution.Attribution`) and
    an event-log one over the same capture: the higher confidence wins, the kernel trace's packet-level
    evidence on a tie; the reason says when the other source names another process."""
    k = kernel.frames.select(
        "frame",
        *[pl.col(c).alias("k_" + kc) for c, kc in _FROM_KERNEL.items()],
        pl.col("reason").alias("k_reason"),
    )
    f = logs.frames.join(k, on="frame", how="left")
    kr = pl.col("k_conf").replace_strict(RANK, default=0, return_dtype=pl.Int8)
    lr = pl.col("confidence").replace_strict(RANK, default=0, return_dtype=pl.Int8)
    use_k = (kr >= lr) & (kr > 0)
    differ = (
        pl.col("k_pid").is_not_null()
        & pl.col("pid").is_not_null()
        & (pl.col("k_pid") != pl.col("pid"))
        & (kr >= RANK["medium"])
        & (lr >= RANK["medium"])
    )
    other = _other_source(use_k, differ)
    pick = [
        pl.when(use_k).then(pl.col("k_" + kc)).otherwise(pl.col(c)).alias(c) for c, kc in _FROM_KERNEL.items()
    ]
    out = f.with_columns(
        *pick,
        pl.when(use_k).then(pl.lit(None, pl.Utf8)).otherwise(pl.col("user")).alias("user"),
        pl.concat_str([pl.when(use_k).then(pl.col("k_reason")).otherwise(pl.col("reason")), other]).alias(
            "reason"
        ),
    ).select(OUT_COLUMNS)
    fr = logs._sizes
    notes = logs.notes + [f"kernel trace: {n}" for n in kernel.notes]
    n_k = out.filter(
        pl.col("method").is_in(kernel.frames["method"].unique().implode())
        & ~pl.col("method").str.starts_with("sysmon")
        & ~pl.col("method").str.starts_with("security")
    ).height
    notes.append(f"{n_k:,} frames answered from the kernel trace, the others from the event logs")
    return LogAttribution(
        frames=out,
        summary=_summary(out, fr),
        offsets=logs.offsets,
        host=logs.host,
        local_addrs=logs.local_addrs,
        notes=notes,
        header_pid_agreement=logs.header_pid_agreement,
        kernel_offset=kernel.describe_offset(),
        _sizes=fr,
        _events=logs._events,
        _match=logs._match,
    )


def _other_source(use_k: pl.Expr, differ: pl.Expr) -> pl.Expr:
    """What the source not chosen says when it names another process at medium confidence or more."""

    def names(who: str, p: str) -> pl.Expr:
        return pl.format(
            f"; {who} PID {{}} {{}} ({{}})",
            pl.col(p + "pid").cast(pl.Utf8),
            pl.col(p + "process").fill_null("?"),
            pl.col(p + "method"),
        )

    return (
        pl.when(differ & use_k)
        .then(names("the event logs name", ""))
        .when(differ)
        .then(names("the kernel trace names", "k_"))
        .otherwise(pl.lit(""))
    )
