"""Attribute every frame of a capture to the process that sent or received it.

Inputs are the three tables of :mod:`etwtools.parsers.schema`: network events with PIDs (EVENTS),
frames (FRAMES) and processes (PROCESSES). The steps, all bulk polars joins:

1. local addresses of the traced host (given, NIC events, or inferred from the events), hence the
   direction of each frame and its (local, remote) 5-tuple;
2. the clock offset capture - trace, voted from candidate matches (see :mod:`etwtools.clock`);
3. UDP: datagram = Send/Recv event with the same 5-tuple and size, nearest in time within the tolerance;
   TCP: frame = owner of its 4-tuple at that time (the PID of the events around it), so a 4-tuple
   reused by another process changes owner at that process's first event; later IP fragments follow
   their first fragment;
4. weaker evidence (same local port; same addresses) at low confidence, saying what it rests on;
5. PID -> process name and services (:mod:`etwtools.processes`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from . import clock
from .errors import AttributionError
from .parsers import schema
from .processes import ProcessResolver
from .progress import Progress

NS = 1_000_000_000
#: Default tolerance (s) between a frame and its event once the offset is applied. A packet's ETW
#: event and its capture timestamp differ by the stack's latency (microseconds to milliseconds), the
#: clock granularity of older Windows (15.6 ms) and the drift between the two clocks over a long trace
#: (tens of ms per hour). 0.5 s covers all three; a UDP match also needs the same 5-tuple AND size, so a
#: wider window costs little precision, while a second datagram of the same flow and size inside it
#: would still be resolved by taking the nearest event.
DEFAULT_TOLERANCE_S = 0.5
#: A 4-tuple (TCP) or 5-tuple (UDP) seen within this time of the frame keeps medium confidence:
#: 240 s is TCP's TIME_WAIT (2 MSL) on Windows, before which the tuple cannot start a new connection.
MEDIUM_HORIZON_NS = 240 * NS
#: Evidence further away than this is not offered at all.
LOW_HORIZON_NS = 600 * NS
#: Fewer matches than this cannot establish an offset when another offset has as many.
AGREE_MIN = 5
#: PIDs that never own a socket (Idle, and -1 / 0xFFFFFFFF for "unknown").
_NO_PID = [0, -1, 0xFFFFFFFF]
#: Event kinds that show a PID owns a TCP 4-tuple ("rundown": Microsoft-Windows-TCPIP 1300, a connection
#: alive when a netsh trace started).
_TCP_OWNER_EVENTS = ["send", "recv", "connect", "accept", "disconnect", "retransmit", "reconnect", "copy",
                     "rundown"]
_SYN = 0x02

KEY = ["protocol", "l_addr", "l_port", "r_addr", "r_port"]
#: Exact integer id of a KEY tuple seen in the events (joins on it are cheaper than on five columns).
KID = "kid"
OUT_COLUMNS = ["frame", "time", "direction", "protocol", "src_addr", "src_port", "dst_addr", "dst_port",
               "payload_len", "pid", "process", "services", "confidence", "method", "event_time",
               "delta_s", "reason"]


def _event_kind(col: str = "event") -> pl.Expr:
    e = pl.col(col).fill_null("").str.to_lowercase().str.replace_all(r"[^a-z]", "")
    e = e.str.replace(r"(ipv4|ipv6|v4|v6)$", "")
    return (pl.when(e.str.starts_with("send")).then(pl.lit("send"))
            .when(e.str.starts_with("recv") | e.str.starts_with("receive")).then(pl.lit("recv"))
            .when(e.str.starts_with("connect")).then(pl.lit("connect"))
            .when(e.str.starts_with("accept")).then(pl.lit("accept"))
            .when(e.str.starts_with("disconnect")).then(pl.lit("disconnect"))
            .when(e.str.starts_with("retransmit")).then(pl.lit("retransmit"))
            .when(e.str.starts_with("reconnect")).then(pl.lit("reconnect"))
            .when(e.str.starts_with("tcpcopy") | e.str.starts_with("copy")).then(pl.lit("copy"))
            .when(e.str.starts_with("fail")).then(pl.lit("fail"))
            .otherwise(e))


def _fmt_time(ns: int | None) -> str:
    from .clock import format_ns

    return format_ns(ns)


def _ms(expr: pl.Expr) -> pl.Expr:
    """Text of a ns duration in ms (three decimals), or in s from 1 s on."""
    v = expr.cast(pl.Float64)
    big = v.abs() >= NS
    return pl.format("{} {}", pl.when(big).then(v / NS).otherwise(v / 1e6).round(3).cast(pl.Utf8),
                     pl.when(big).then(pl.lit("s")).otherwise(pl.lit("ms")))


def _ev_text() -> pl.Expr:
    """`Send (PID 2136)` for the matched event columns e_kind/e_pid."""
    return pl.format("{} event of PID {}", pl.col("e_event"), pl.col("e_pid").cast(pl.Utf8))


@dataclass
class Attribution:
    """The answer for every frame, the clock offset used and everything needed to explain it."""

    frames: pl.DataFrame
    offset_ns: int | None
    offset_source: str | None            # "estimated" / "given" / None (no offset)
    offset_support: int
    local_addrs: list[str]
    local_addrs_source: str | None       # "given" / "nic events" / "inferred" / None
    summary: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    tolerance_s: float = DEFAULT_TOLERANCE_S
    estimate: clock.OffsetEstimate | None = None
    _events: pl.DataFrame | None = field(default=None, repr=False)
    _oriented: pl.DataFrame | None = field(default=None, repr=False)
    _resolver: ProcessResolver | None = field(default=None, repr=False)
    _why: str | None = field(default=None, repr=False)
    _match: pl.DataFrame | None = field(default=None, repr=False)
    _counts: dict = field(default_factory=dict, repr=False)
    _nopid: pl.DataFrame | None = field(default=None, repr=False)   # network events without a usable PID

    # -- answers -----------------------------------------------------------------------------------
    @property
    def attributed(self) -> pl.DataFrame:
        """Frames attributed with high or medium confidence."""
        return self.frames.filter(pl.col("confidence").is_in(["high", "medium"]))

    def why_nothing(self) -> str | None:
        """Why no frame at all could be attributed (high or medium confidence); None when some were."""
        if self.attributed.height:
            return None
        return self._why or "no frame could be matched to an event of the trace"

    def describe_offset(self) -> str:
        """One line: the clock offset used, where it came from and what supports it."""
        if self.offset_ns is None:
            return "clock offset: none could be established (" + (self._why or "no candidate matches") + ")"
        how = "given" if self.offset_source == "given" else "estimated"
        s = (f"clock offset capture - trace: {self.offset_ns / NS:+.6f} s ({how}; "
             f"{self.offset_support:,} matching frame/event "
             f"{'pair supports' if self.offset_support == 1 else 'pairs support'} it")
        if self.offset_support == 1:
            s += ": a single match, check it"
        if self.drift_ppm:
            s += (f"; the clocks drift apart by {self.drift_ppm:+.1f} ppm, this offset holds at "
                  f"{_fmt_time(self.estimate.reference_ns)}")
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
        from .evidence import explain

        return explain(self, frame_number)


# ---------------------------------------------------------------------------------------------------
# inputs

def _prepare_events(events: pl.DataFrame | None
                    ) -> tuple[pl.DataFrame, pl.DataFrame, list[str], pl.DataFrame]:
    """Network events with eid, t (ns), kind, orientation columns; plus NIC-like rows; plus notes; plus
    the network events left out for want of a usable PID (same columns)."""
    ev = schema.conform(events if events is not None else schema.empty(schema.EVENTS), schema.EVENTS)
    ev = ev.with_row_index("eid").with_columns(pl.col("eid").cast(pl.Int64))
    provider = pl.col("provider").fill_null("").str.to_lowercase()
    proto = (pl.when(pl.col("protocol").is_not_null()).then(pl.col("protocol").str.to_uppercase())
             .when(provider.str.contains("tcp")).then(pl.lit("TCP"))
             .when(provider.str.contains("udp")).then(pl.lit("UDP")))
    names = ev.select(pl.col("event").unique()).with_columns(_event_kind().alias("kind"))
    ev = ev.with_columns(proto.alias("protocol"),
                         pl.col("event").replace_strict(names["event"], names["kind"], default=None,
                                                        return_dtype=pl.Utf8).alias("kind"),
                         pl.col("time").cast(pl.Int64).alias("t"))
    nic = ev.filter(provider.str.contains("systemconfig") | (pl.col("event").fill_null("").str.to_lowercase() == "nic"))
    notes = []
    usable = (pl.col("protocol").is_in(["TCP", "UDP"]) & pl.col("t").is_not_null()
              & pl.col("local_addr").is_not_null() & pl.col("remote_addr").is_not_null()
              & pl.col("local_port").is_not_null() & pl.col("remote_port").is_not_null())
    net = ev.filter(usable)
    bad_pid = pl.col("pid").is_null() | pl.col("pid").is_in(_NO_PID)
    n_bad = net.filter(bad_pid).height
    if n_bad:
        notes.append(f"{n_bad:,} network events carry no usable PID (0, -1 or none) and were not used")
    net = net.rename({"local_addr": "l_addr", "local_port": "l_port",
                      "remote_addr": "r_addr", "remote_port": "r_port"})
    net = net.with_columns(pl.col("l_port").cast(pl.Int32), pl.col("r_port").cast(pl.Int32),
                           pl.when(pl.col("kind") == "send").then(pl.lit("out"))
                           .when(pl.col("kind") == "recv").then(pl.lit("in")).alias("odir"))
    return net.filter(~bad_pid), nic, notes, net.filter(bad_pid)


def _unicast(addr: str) -> bool:
    """A host's own address: not multicast, broadcast (x.x.x.255) or unspecified. Receive events of
    multicast and broadcast datagrams carry the group as their local address."""
    import ipaddress

    try:
        a = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return True
    if a.is_multicast or a.is_unspecified:
        return False
    return not (a.version == 4 and addr.endswith(".255"))


def _canonical(addr: str) -> str:
    """A user-given address in the text form the readers use (``2001:DB8:0::1`` -> ``2001:db8::1``)."""
    import ipaddress

    text = str(addr).strip().strip("[]").split("%")[0]     # the readers drop IPv6 zone ids
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:  # tracerpt-style zero-padded IPv4 (010.001.001.001)
        parts = [int(p, 10) for p in text.split(".")]
        if len(parts) == 4 and all(0 <= p <= 255 for p in parts):
            return ".".join(map(str, parts))
    except ValueError:
        pass
    raise AttributionError(f"local address {addr!r} is not an IPv4 or IPv6 address")


def _local_addresses(net: pl.DataFrame, nic: pl.DataFrame, given: Sequence[str] | None,
                     nic_addrs: Sequence[str] | None) -> tuple[list[str], str | None, list[str]]:
    notes: list[str] = []
    if given:
        given = [_canonical(a) for a in given]
    inferred = sorted(a for a in set(net["l_addr"].drop_nulls().unique().to_list()) if _unicast(a)) \
        if net.height else []
    if given:
        extra = sorted(set(inferred) - set(given))
        if extra:
            notes.append(f"the trace's events also use local address(es) {', '.join(extra[:8])} "
                         f"that were not given as local")
        return list(dict.fromkeys(given)), "given", notes
    nics = list(nic_addrs or []) + (nic["local_addr"].drop_nulls().to_list() if nic.height else [])
    if nics:
        addrs = list(dict.fromkeys(nics))
        extra = [a for a in inferred if a not in addrs]
        if extra:
            notes.append(f"local address(es) {', '.join(extra[:8])} appear in the events but not in the "
                         f"trace's NIC events; used as local too")
            return addrs + extra, "nic events + inferred", notes
        return addrs, "nic events", notes
    if inferred:
        return inferred, "inferred", notes
    return [], None, notes


def _prepare_frames(frames: pl.DataFrame, local: list[str]) -> pl.DataFrame:
    fr = schema.conform(frames, schema.FRAMES)
    fr = fr.with_row_index("fid").with_columns(pl.col("fid").cast(pl.Int64),
                                               pl.col("time").cast(pl.Int64).alias("t"))
    fr = _fragments(fr)
    src_l = pl.col("src_addr").is_in(local)
    dst_l = pl.col("dst_addr").is_in(local)
    given = pl.col("direction").fill_null("unknown").str.to_lowercase()
    return fr.with_columns(
        pl.when(given.is_in(["in", "out"])).then(given)
        .when(src_l & dst_l).then(pl.lit("both"))
        .when(src_l).then(pl.lit("out"))
        .when(dst_l).then(pl.lit("in"))
        .otherwise(pl.lit("unknown")).alias("dir"),
        pl.when(given.is_in(["in", "out"])).then(pl.lit("capture"))
        .when(src_l | dst_l).then(pl.lit("local addresses"))
        .otherwise(pl.lit(None, pl.Utf8)).alias("dir_source"),
    )


def _fragments(fr: pl.DataFrame) -> pl.DataFrame:
    """``first_fid``: for a later IP fragment, its first fragment (same src, dst, IP id, protocol, nearest
    within 60 s); ``size``: the transport payload of the whole datagram (a first fragment adds the
    payloads of its later fragments)."""
    frag = pl.col("fragment").fill_null("none")
    fr = fr.with_columns(pl.lit(None, pl.Int64).alias("first_fid"),
                         pl.col("payload_len").cast(pl.Int64).alias("size"))
    later = fr.filter(frag == "later")
    first = fr.filter(frag == "first")
    if not later.height or not first.height:
        return fr
    key = ["src_addr", "dst_addr", "ip_id", "protocol"]
    m = (later.select(key + ["fid", "t", "payload_len"]).filter(pl.col("t").is_not_null()).sort("t")
         .join_asof(first.select(key + [pl.col("fid").alias("_first"), pl.col("t").alias("_on")])
                    .filter(pl.col("_on").is_not_null()).sort("_on"),
                    left_on="t", right_on="_on", by=key, strategy="nearest", tolerance=60 * NS,
                    check_sortedness=False)
         .filter(pl.col("_first").is_not_null()))
    extra = m.group_by("_first").agg(pl.col("payload_len").cast(pl.Int64).sum().alias("_extra"))
    fr = (fr.join(m.select("fid", "_first"), on="fid", how="left")
          .join(extra, left_on="fid", right_on="_first", how="left")
          .with_columns(pl.col("_first").alias("first_fid"),
                        (pl.col("size") + pl.col("_extra").fill_null(0)).alias("size"))
          .drop("_first", "_extra").sort("fid"))
    return fr


def _orient(fr: pl.DataFrame) -> pl.DataFrame:
    """One row per frame and possible orientation (two when the direction is unknown)."""
    cols = ["fid", "t", "protocol", "payload_len", "size", "tcp_flags", "fragment"]
    base = (fr.select(cols + ["src_addr", "src_port", "dst_addr", "dst_port", "dir"])
            .filter(pl.col("protocol").is_in(["TCP", "UDP"]) & pl.col("src_addr").is_not_null()
                    & pl.col("src_port").is_not_null()))
    out = base.filter(pl.col("dir") != "in").select(
        cols + [pl.col("src_addr").alias("l_addr"), pl.col("src_port").cast(pl.Int32).alias("l_port"),
                pl.col("dst_addr").alias("r_addr"), pl.col("dst_port").cast(pl.Int32).alias("r_port"),
                pl.lit("out").alias("odir")])
    inn = base.filter(pl.col("dir") != "out").select(
        cols + [pl.col("dst_addr").alias("l_addr"), pl.col("dst_port").cast(pl.Int32).alias("l_port"),
                pl.col("src_addr").alias("r_addr"), pl.col("src_port").cast(pl.Int32).alias("r_port"),
                pl.lit("in").alias("odir")])
    return pl.concat([out, inn])


# ---------------------------------------------------------------------------------------------------
# matchers: each returns candidate rows fid, odir, rank, e_eid, method, dist and the numbers its reason is
# written from (x1..x4, flags; see :func:`_reasons`): the text is written only for the candidate chosen

_CAND = {"fid": pl.Int64, "odir": pl.Utf8, "rank": pl.Int8, "e_eid": pl.Int64, "method": pl.Utf8,
         "dist": pl.Int64, "x1": pl.Int64, "x2": pl.Int64, "x3": pl.Int64, "x4": pl.Int64, "flags": pl.Int8}
#: flags bits: udp-5tuple-size: ambiguous; owner matches: same, both, syn, before_start
_AMBIGUOUS, _SAME, _BOTH, _SYN_BIT, _BEFORE_START = 1, 1, 2, 4, 8


def _empty_cand() -> pl.DataFrame:
    return pl.DataFrame(schema=_CAND)


def _cand(m: pl.DataFrame, rank: pl.Expr, method: str, dist: pl.Expr, x1: pl.Expr | None = None,
          x2: pl.Expr | None = None, x3: pl.Expr | None = None, x4: pl.Expr | None = None,
          flags: pl.Expr | None = None) -> pl.DataFrame:
    """Candidate rows in the :data:`_CAND` layout."""
    none = pl.lit(None, pl.Int64)
    return m.select("fid", "odir", rank.cast(pl.Int8).alias("rank"), pl.col("e_eid").cast(pl.Int64),
                    pl.lit(method).alias("method"), dist.cast(pl.Int64).alias("dist"),
                    *[(x if x is not None else none).cast(pl.Int64).alias(f"x{i}")
                      for i, x in enumerate([x1, x2, x3, x4], 1)],
                    (flags if flags is not None else pl.lit(0)).cast(pl.Int8).alias("flags"))


def _asof(left: pl.DataFrame, right: pl.DataFrame, keys: list[str], strategy: str, tolerance: int,
          prefix: str) -> pl.DataFrame:
    """join_asof of left (column tt) to right events (column t) by keys; right columns prefixed."""
    r = right.select(keys + [pl.col("t").alias(f"{prefix}t"), pl.col("t").alias(f"{prefix}t_on"),
                             pl.col("eid").alias(f"{prefix}eid"), pl.col("pid").alias(f"{prefix}pid"),
                             pl.col("kind").alias(f"{prefix}kind")]
                     ).sort(f"{prefix}t_on")
    left = left.sort("tt")
    return left.join_asof(r, left_on="tt", right_on=f"{prefix}t_on", by=keys, strategy=strategy,
                          tolerance=tolerance, check_sortedness=False).drop(f"{prefix}t_on")


def _match_udp_exact(of: pl.DataFrame, net: pl.DataFrame, tol: int) -> pl.DataFrame:
    keys = [KID, "odir", "size"]
    left = (of.select("fid", "tt", *keys, "protocol", "fragment")
            .filter((pl.col("protocol") == "UDP") & (pl.col("fragment").fill_null("none") != "later")
                    & pl.col(KID).is_not_null()).select("fid", "tt", *keys))
    right = net.filter((pl.col("protocol") == "UDP") & pl.col("odir").is_not_null())
    if not left.height or not right.height:
        return _empty_cand()
    right = right.with_columns(pl.col("size").cast(pl.Int64))
    m = _asof(left, right, keys, "nearest", tol, "e_").filter(pl.col("e_eid").is_not_null())
    # another PID's event of the same 5-tuple and size also within the tolerance: the datagram is ambiguous
    m = m.join(_other_pid_neighbours(right, keys), left_on="e_eid", right_on="eid", how="left")
    d_po, d_no = (pl.col("tt") - pl.col("po_t")).abs(), (pl.col("no_t") - pl.col("tt")).abs()
    use_next = pl.col("po_t").is_null() | (pl.col("no_t").is_not_null() & (d_no < d_po))
    m = m.with_columns(pl.when(use_next).then(pl.col("no_pid")).otherwise(pl.col("po_pid")).alias("o_pid"),
                       pl.when(use_next).then(pl.col("no_t")).otherwise(pl.col("po_t")).alias("o_t"),
                       pl.when(use_next).then(d_no).otherwise(d_po).alias("o_dist"))
    ambiguous = pl.col("o_dist").is_not_null() & (pl.col("o_dist") <= tol)
    return _cand(m, pl.when(ambiguous).then(2).otherwise(3), "udp-5tuple-size",
                 (pl.col("tt") - pl.col("e_t")).abs(), x1=pl.col("o_pid"), x2=pl.col("tt") - pl.col("o_t"),
                 x3=pl.col("tt") - pl.col("e_t"), flags=pl.when(ambiguous).then(_AMBIGUOUS).otherwise(0))


def _other_pid_neighbours(ev: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """For every event (``eid``) of a ``keys`` group used by several PIDs: the nearest earlier (``po_t``,
    ``po_pid``) and later (``no_t``, ``no_pid``) event of the group with another PID, i.e. the ends of the
    neighbouring runs of same-PID events."""
    shared = ev.group_by(keys).agg(pl.col("pid").n_unique().alias("_n")).filter(pl.col("_n") > 1)
    e = ev.join(shared.select(keys), on=keys, how="semi", nulls_equal=True).select(keys + ["eid", "t", "pid"])
    if not e.height:
        return pl.DataFrame(schema={"eid": pl.Int64, "po_t": pl.Int64, "po_pid": pl.Int64, "no_t": pl.Int64,
                                    "no_pid": pl.Int64})
    new_run = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in keys + ["pid"]])
    e = e.sort(keys + ["t"]).with_columns(new_run.fill_null(True).cast(pl.Int64).cum_sum().alias("_run"))
    runs = e.group_by("_run").agg(*[pl.col(k).first() for k in keys], pl.col("t").min().alias("_t0"),
                                  pl.col("t").max().alias("_t1"), pl.col("pid").first().alias("_pid"))
    prev = runs.select(keys + [(pl.col("_run") + 1).alias("_run"), pl.col("_t1").alias("po_t"),
                               pl.col("_pid").alias("po_pid")])
    nxt = runs.select(keys + [(pl.col("_run") - 1).alias("_run"), pl.col("_t0").alias("no_t"),
                              pl.col("_pid").alias("no_pid")])
    return (e.join(prev, on=keys + ["_run"], how="left", nulls_equal=True)
            .join(nxt, on=keys + ["_run"], how="left", nulls_equal=True)
            .select("eid", "po_t", "po_pid", "no_t", "no_pid"))


def _match_owner(of: pl.DataFrame, net: pl.DataFrame, proto: str, tol: int) -> pl.DataFrame:
    """Owner of the frame's 4-tuple (TCP) / 5-tuple (UDP) at its time, from the events around it."""
    left = (of.select("fid", "odir", "tt", KID, "tcp_flags", "protocol")
            .filter((pl.col("protocol") == proto) & pl.col(KID).is_not_null())
            .select("fid", "odir", "tt", KID, "tcp_flags"))
    kinds = _TCP_OWNER_EVENTS if proto == "TCP" else ["send", "recv"]
    right = net.filter((pl.col("protocol") == proto) & pl.col("kind").is_in(kinds))
    if not left.height or not right.height:
        return _empty_cand()
    m = _asof(left, right, [KID], "backward", LOW_HORIZON_NS, "p_")
    m = _asof(m, right, [KID], "forward", LOW_HORIZON_NS, "n_")
    m = m.filter(pl.col("p_eid").is_not_null() | pl.col("n_eid").is_not_null())
    if not m.height:
        return _empty_cand()
    dp = pl.col("tt") - pl.col("p_t")
    dn = pl.col("n_t") - pl.col("tt")
    both = pl.col("p_eid").is_not_null() & pl.col("n_eid").is_not_null()
    same = both & (pl.col("p_pid") == pl.col("n_pid"))
    syn = (pl.col("tcp_flags").fill_null(0).cast(pl.Int32) & _SYN) != 0
    # a TCP frame that is not a SYN, further than the tolerance before a Connect/Accept, cannot belong to
    # the connection that event starts
    before_start = (pl.lit(proto == "TCP") & ~syn & pl.col("n_kind").is_in(["connect", "accept"])
                    & (dn > tol)).fill_null(False)
    take_next = (pl.col("p_eid").is_null()
                 | (both & ~same & syn & pl.lit(proto == "TCP"))
                 | (both & ~same & ~(syn & pl.lit(proto == "TCP")) & ~before_start & (dn < dp))
                 | (same & (dn < dp)))
    m = m.with_columns(
        pl.when(take_next).then(pl.col("n_eid")).otherwise(pl.col("p_eid")).alias("e_eid"),
        pl.when(take_next).then(dn).otherwise(dp).alias("dist"),
        same.alias("same"), both.alias("both"), syn.alias("syn"), before_start.alias("before_start"),
    )
    near = pl.col("dist") <= tol
    medium = pl.col("dist") <= MEDIUM_HORIZON_NS
    if proto == "TCP":
        rank = (pl.when(pl.col("p_eid").is_null() & pl.col("before_start")).then(1)
                .when(pl.col("same") | near).then(3).when(medium).then(2).otherwise(1))
    else:
        rank = pl.when(pl.col("same") | medium).then(2).otherwise(1)
    flags = (pl.col("same").cast(pl.Int8) * _SAME + pl.col("both").cast(pl.Int8) * _BOTH
             + pl.col("syn").cast(pl.Int8) * _SYN_BIT + pl.col("before_start").cast(pl.Int8) * _BEFORE_START)
    return _cand(m, rank, "tcp-connection" if proto == "TCP" else "udp-5tuple", pl.col("dist"),
                 x1=pl.col("p_eid"), x2=pl.col("n_eid"), x3=dp, x4=dn, flags=flags)


def _match_weak(of: pl.DataFrame, net: pl.DataFrame, keys: list[str], method: str) -> pl.DataFrame:
    right = net.filter(pl.col("protocol").is_in(["TCP", "UDP"]))
    if not of.height or not right.height:
        return _empty_cand()
    r = right.select(keys + [pl.col("t").alias("e_t"), pl.col("t").alias("_on"), pl.col("eid").alias("e_eid")]
                     ).sort("_on")
    m = of.select("fid", "odir", "tt", *keys).sort("tt").join_asof(
        r, left_on="tt", right_on="_on", by=keys, strategy="nearest", tolerance=LOW_HORIZON_NS,
        check_sortedness=False)
    m = m.filter(pl.col("e_eid").is_not_null())
    return _cand(m, pl.lit(1), method, (pl.col("tt") - pl.col("e_t")).abs())


# ---------------------------------------------------------------------------------------------------
# reasons: written only for the rows that need one, one branch at a time

_Branch = tuple[pl.Expr, pl.Expr]


def _render(df: pl.DataFrame, parts: list[tuple[list[_Branch], pl.Expr]], keep: list[str],
            name: str = "reason") -> list[pl.DataFrame]:
    """``keep`` and the concatenation of ``parts`` for every row of ``df``, as frames in no particular row
    order; each part is ``([(when, text), ...], otherwise)``: the text of its first true condition, as
    ``pl.when(...).then(...)...otherwise(...)`` would give, but each text is computed only for the rows
    that take it, a slice at a time."""
    if not df.height:
        return []
    codes = []
    for i, (branches, _) in enumerate(parts):
        code = pl.lit(len(branches))
        for k in range(len(branches) - 1, -1, -1):
            code = pl.when(branches[k][0]).then(pl.lit(k)).otherwise(code)
        codes.append(code.cast(pl.Int8).alias(f"_b{i}"))
    names = [f"_b{i}" for i in range(len(parts))]
    runs = (df.select(codes).with_row_index("_i")
            .group_by(names, maintain_order=True).agg(pl.col("_i")))
    pieces = []
    for k in range(runs.height):
        combo = [runs[n][k] for n in names]
        texts = [(parts[i][0][c][1] if c < len(parts[i][0]) else parts[i][1]) for i, c in enumerate(combo)]
        text = (texts[0] if len(texts) == 1 else pl.concat_str(texts)).cast(pl.Utf8).alias(name)
        rows: pl.Series = runs["_i"][k]
        whole = len(rows) == df.height
        for off in range(0, len(rows), _SLICE):
            sub = df.slice(off, _SLICE) if whole else df[rows.slice(off, _SLICE)]
            pieces.append(sub.select(*keep, text))
    return pieces


#: rows whose reasons are written at once (bounds the intermediate text columns)
_SLICE = 200_000


class _Lookup:
    """Row positions of integer keys in a column of distinct non-negative integers (eid, fid)."""

    def __init__(self, index: pl.Series) -> None:
        idx = index.cast(pl.Int64).to_numpy()
        self.lut = np.full(int(idx.max()) + 1 if len(idx) else 0, -1, np.int64)
        self.lut[idx] = np.arange(len(idx), dtype=np.int64)

    def positions(self, keys: pl.Series) -> pl.Series:
        """The row of every key; null for a null key or one not in the column."""
        k = keys.cast(pl.Int64).fill_null(-1).to_numpy()
        ok = (k >= 0) & (k < len(self.lut))
        pos = np.where(ok, self.lut[np.where(ok, k, 0)] if len(self.lut) else -1, -1)
        return pl.Series("pos", pos, pl.Int64).set(pl.Series(pos < 0), None)


def _reasons(best: pl.DataFrame, of: pl.DataFrame, net: pl.DataFrame) -> pl.DataFrame:
    """The chosen candidates (:data:`_CAND`) as fid, odir, rank, e_eid, method, dist, reason."""
    cols = ["fid", "odir", "rank", "e_eid", "method", "dist"]
    if not best.height:
        return best.select(cols).with_columns(pl.lit(None, pl.Utf8).alias("reason"))
    # lookups by row position (cheaper than joins): events by eid, oriented frames by (fid, odir)
    by_eid = _Lookup(net["eid"])
    of_key = pl.col("fid") * 2 + (pl.col("odir") == "in").cast(pl.Int64)
    by_fo = _Lookup(of.select(of_key).to_series())

    def ev_cols(b: pl.DataFrame, key: str, cols: dict[str, str]) -> pl.DataFrame:
        pos = by_eid.positions(b[key])
        return b.with_columns([net[c].gather(pos).alias(name) for name, c in cols.items()])

    def part(cond: pl.Expr, of_cols: list[str]) -> pl.DataFrame:
        """The chosen rows of one method, with the frame's columns (``of_cols``) and the event's."""
        b = best.filter(cond)
        if not b.height:
            return b
        if of_cols:
            pos = by_fo.positions(b.select(of_key).to_series())
            b = b.with_columns([of[c].gather(pos) for c in of_cols])
        return ev_cols(b, "e_eid", {"e_pid": "pid", "e_event": "event", "e_t": "t"})

    pieces: list[pl.DataFrame] = []
    method = pl.col("method")

    def flag(bit: int) -> pl.Expr:
        return (pl.col("flags") & bit) != 0

    exact = part(method == "udp-5tuple-size", ["size"])
    if exact.height:
        ambiguous = flag(_AMBIGUOUS)
        pieces += _render(exact, keep=cols, parts=[
            ([], pl.format("UDP {} event of PID {} has the same 5-tuple and size ({} bytes), {} from the frame "
                           "after the clock offset", pl.col("e_event"), pl.col("e_pid").cast(pl.Utf8),
                           pl.col("size").cast(pl.Utf8), _ms(pl.col("x3")))),
            ([(ambiguous, pl.format(
                "; but an event of PID {} with the same 5-tuple and size is {} from it too: ambiguous, {}",
                pl.col("x1").cast(pl.Utf8), _ms(pl.col("x2")),
                pl.when(pl.col("odir") == "out").then(pl.lit("either process may have sent it"))
                .otherwise(pl.lit("either or both processes may have received it (a multicast or broadcast "
                                  "datagram reaches every socket bound to its port)"))))], pl.lit("")),
        ])

    for proto, name in (("TCP", "tcp-connection"), ("UDP", "udp-5tuple")):
        own = part(method == name, ["payload_len"] if proto == "UDP" else [])
        if not own.height:
            continue
        own = ev_cols(ev_cols(own, "x1", {"p_pid": "pid"}), "x2", {"n_pid": "pid", "n_event": "event"})
        tuple_txt = "4-tuple" if proto == "TCP" else "5-tuple"
        dp, dn = pl.col("x3"), pl.col("x4")
        same, both, syn, before_start = flag(_SAME), flag(_BOTH), flag(_SYN_BIT), flag(_BEFORE_START)
        no_prev = pl.col("x1").is_null()
        ctx = ([
            (same, pl.format("the frame lies between two events of PID {} on this {} ({} before, {} after), "
                             "so the connection is the same", pl.col("e_pid").cast(pl.Utf8), pl.lit(tuple_txt),
                             _ms(dp), _ms(dn))),
            (before_start & both & ~same,
             pl.format("the {} changed owner around this time (PID {} until {} before, PID {} from its "
                       "{} event {} after); this frame is not a SYN and precedes that new connection, so "
                       "it belongs to the previous one", pl.lit(tuple_txt), pl.col("p_pid").cast(pl.Utf8),
                       _ms(dp), pl.col("n_pid").cast(pl.Utf8), pl.col("n_event"), _ms(dn))),
            (before_start & no_prev,
             pl.format("no event of this {} precedes the frame; the first one, a {} {} later, starts a "
                       "new connection, and this frame is not a SYN: it belongs to an earlier connection "
                       "whose owner the trace does not show", pl.lit(tuple_txt), pl.col("n_event"), _ms(dn))),
            (both & syn & pl.lit(proto == "TCP"),
             pl.format("the {} changed owner around this time (PID {} before, PID {} after) and this SYN "
                       "opens the new connection", pl.lit(tuple_txt), pl.col("p_pid").cast(pl.Utf8),
                       pl.col("n_pid").cast(pl.Utf8))),
            (both,
             pl.format("the {} changed owner around this time (PID {} until {} before, PID {} from {} "
                       "after); the nearer event decides", pl.lit(tuple_txt), pl.col("p_pid").cast(pl.Utf8),
                       _ms(dp), pl.col("n_pid").cast(pl.Utf8), _ms(dn))),
            (no_prev,
             pl.format("no event of this {} precedes the frame; the first one follows {} later",
                       pl.lit(tuple_txt), _ms(dn))),
        ], pl.format("no event of this {} follows the frame; the last one was {} earlier", pl.lit(tuple_txt),
                     _ms(dp)))
        if proto == "TCP":
            lead = ([(no_prev & before_start,
                      pl.format("a guess: PID {} uses this TCP 4-tuple next ({} event, {} away), but ",
                                pl.col("e_pid").cast(pl.Utf8), pl.col("e_event"), _ms(pl.col("dist"))))],
                    pl.format("TCP connection owned by PID {} ({} event nearest, {} away): ",
                              pl.col("e_pid").cast(pl.Utf8), pl.col("e_event"), _ms(pl.col("dist"))))
        else:
            lead = ([], pl.format("UDP 5-tuple used by PID {} ({} event nearest, {} away) but no event with this "
                                  "size ({} bytes) within the tolerance: ", pl.col("e_pid").cast(pl.Utf8),
                                  pl.col("e_event"), _ms(pl.col("dist")), pl.col("payload_len").cast(pl.Utf8)))
        pieces += _render(own, keep=cols, parts=[lead, ctx])

    weak = part(method.is_in(["local-port", "addresses"]), ["tt", "protocol", "l_addr", "l_port", "r_addr"])
    if weak.height:
        weak = ev_cols(weak, "e_eid", {"e_proto": "protocol", "_la": "l_addr", "_lp": "l_port", "_ra": "r_addr",
                                       "_rp": "r_port"})
        weak = weak.with_columns(pl.format("{}:{} - {}:{}", "_la", "_lp", "_ra", "_rp").alias("e_tuple"))
        away = _ms((pl.col("tt") - pl.col("e_t")).abs())
        pieces += _render(weak, keep=cols, parts=[([
            (method == "local-port",
             pl.format("only the local port matches: {} port {} was used by PID {} ({} {} event, {} away); "
                       "the addresses or the remote port differ, so this is a guess", pl.col("protocol"),
                       pl.col("l_port").cast(pl.Utf8), pl.col("e_pid").cast(pl.Utf8), pl.col("e_tuple"),
                       pl.col("e_event"), away))],
            pl.format("only the addresses match: PID {} exchanged {} traffic between {} and {} ({} {} event, "
                      "{} away); the ports differ, so this is a guess", pl.col("e_pid").cast(pl.Utf8),
                      pl.col("e_proto"), pl.col("l_addr"), pl.col("r_addr"), pl.col("e_tuple"),
                      pl.col("e_event"), away))])
    out = pl.concat(pieces, rechunk=False)
    if out.height != best.height:
        raise AssertionError(f"reasons written for {out.height} of {best.height} chosen candidates")
    return out


# ---------------------------------------------------------------------------------------------------

def _estimate(of: pl.DataFrame, net: pl.DataFrame) -> tuple[clock.OffsetEstimate | None, pl.DataFrame]:
    keys = [KID, "odir", "size"]
    f = (of.select(KID, "odir", "fid", "t", "size", "fragment")
         .filter((pl.col("size").fill_null(0) > 0) & pl.col(KID).is_not_null()
                 & (pl.col("fragment").fill_null("none") != "later") & pl.col("t").is_not_null())
         .select(keys[:-1] + ["fid", "t", "size"]))
    e = (net.filter(pl.col("odir").is_not_null() & (pl.col("size").fill_null(0) > 0))
         .select(keys[:-1] + ["eid", "t", pl.col("size").cast(pl.Int64)]))
    return clock.estimate(f, e, keys)


def _why_nothing(net, fr, of, pairs, local, offset_ns, offset_source, estimate, tol) -> str:
    n_tu = fr.filter(pl.col("protocol").is_in(["TCP", "UDP"])).height
    if not net.height:
        return ("the trace has no usable TcpIp/UdpIp network events with a PID (empty trace, or the network "
                "events were not enabled when it was recorded)")
    if not fr.height:
        return "the capture has no frames"
    if not n_tu:
        return f"none of the capture's {fr.height:,} frames is TCP or UDP"
    host = fr.filter(pl.col("dir") != "unknown").height
    if local and not host:
        return (f"none of the capture's {n_tu:,} TCP/UDP frames is from or to the traced host "
                f"({', '.join(local[:6])}{', ...' if len(local) > 6 else ''}): the capture was taken elsewhere "
                f"or on another network")
    keyed = of.filter(pl.col(KID).is_not_null())
    if not keyed.height:
        return (f"no frame shares a protocol and 5-tuple with any of the trace's {net.height:,} network events: "
                f"the capture and the trace do not cover the same connections (another time or another host)")
    tr0, tr1 = net["t"].min(), net["t"].max()
    cf = fr.filter(pl.col("t").is_not_null())
    c0, c1 = cf["t"].min(), cf["t"].max()
    span = f"capture {_fmt_time(c0)} to {_fmt_time(c1)}, trace {_fmt_time(tr0)} to {_fmt_time(tr1)}"
    if c0 is None:
        return "no frame of the capture has a timestamp, so none can be matched to the trace's events in time"
    if offset_ns is None and estimate is not None:
        return (f"the {estimate.candidates:,} candidate matches (same 5-tuple and size) do not agree on one clock "
                f"offset: the best has {estimate.support:,}, another has {estimate.runner_up:,} ({span}); give "
                f"--offset if you know it")
    if offset_ns is None:
        days = abs((c0 + c1) / 2 - (tr0 + tr1) / 2) / 86400 / NS
        return (f"{keyed['fid'].n_unique():,} frames share a 5-tuple with trace events, but no candidate match "
                f"(same 5-tuple and size) lies within +-14 h of each other, so no clock offset is plausible "
                f"({span}, about {days:.1f} days apart): a capture from another day?")
    if offset_source == "given":
        return (f"with the given offset {offset_ns / NS:+.6f} s no frame falls within {tol / NS:g} s of an event "
                f"with its 5-tuple ({span}); try without --offset to let the offset be estimated")
    return (f"the frames that share a 5-tuple with trace events do not fall within {tol / NS:g} s of them "
            f"at the estimated offset {offset_ns / NS:+.6f} s ({span})")


def attribute(events: pl.DataFrame, frames: pl.DataFrame, processes: pl.DataFrame | None = None, *,
              offset_s: float | None = None, tolerance_s: float = DEFAULT_TOLERANCE_S,
              local_addrs: Sequence[str] | None = None, nic_addrs: Sequence[str] | None = None,
              progress: Progress | None = None) -> Attribution:
    """Attribute every frame (FRAMES) to a PID and process using network events (EVENTS) and processes.

    ``offset_s`` (capture clock minus trace clock) overrides the estimate; ``tolerance_s`` is the largest
    frame-event time difference for a UDP match and for TCP high confidence; ``local_addrs`` are the
    traced host's addresses as given by the user (default: ``nic_addrs`` from the trace's NIC events
    plus the unicast local addresses the events use); ``progress(done, total)`` is called between steps.
    Returns an :class:`Attribution`; when nothing at all could be attributed (inputs with nothing in
    common), :meth:`Attribution.why_nothing` says why. Raises :class:`AttributionError` only for
    unusable parameters (a negative tolerance, an infinite offset).
    """
    n_total = frames.height if frames is not None else 0
    step = [0]

    def tick() -> None:
        step[0] += 1
        if progress is not None:
            progress(min(n_total, n_total * step[0] // 7), n_total)

    import math

    if not (isinstance(tolerance_s, (int, float)) and math.isfinite(tolerance_s) and tolerance_s >= 0):
        raise AttributionError(f"the tolerance must be a number of seconds >= 0, not {tolerance_s!r}")
    if offset_s is not None and not (isinstance(offset_s, (int, float)) and math.isfinite(offset_s)):
        raise AttributionError(f"the clock offset must be a finite number of seconds, not {offset_s!r}")
    tol = round(tolerance_s * NS)
    net, nic, notes, nopid = _prepare_events(events)
    local, local_src, more = _local_addresses(net, nic, local_addrs, nic_addrs)
    notes += more
    fr = _prepare_frames(frames if frames is not None else schema.empty(schema.FRAMES), local)
    if local_src == "given":
        seen = set(pl.concat([fr["src_addr"], fr["dst_addr"]]).drop_nulls().unique().to_list())
        absent = [a for a in local if a not in seen]
        if absent:
            notes.append(f"the given local address(es) {', '.join(absent[:8])} appear in no frame of the "
                         "capture")
    of = _orient(fr)
    tuples = net.select(KEY).unique().with_row_index(KID).with_columns(pl.col(KID).cast(pl.Int64))
    net = net.join(tuples, on=KEY, how="left")
    # the tuple id as a new column (joining the whole table would copy every column)
    of = of.with_columns(of.select(KEY).join(tuples, on=KEY, how="left", maintain_order="left")[KID])
    tick()

    # clock offset
    estimate, pairs = _estimate(of, net)
    tick()
    if offset_s is not None:
        offset_ns, offset_source = round(offset_s * NS), "given"
        support = (pairs.filter((pl.col("diff") - offset_ns).abs() <= clock.BIN_NS)["eid"].n_unique()
                   if pairs.height else 0)
        if estimate is not None and abs(estimate.offset_ns - offset_ns) > max(tol, clock.BIN_NS):
            notes.append(f"the given offset {offset_s:+.6f} s differs from the one the data suggest: "
                         f"{estimate.describe()}")
    elif estimate is not None and estimate.runner_up >= estimate.support and estimate.support < AGREE_MIN:
        # a few coincidental matches that point to different offsets: nothing to stand on
        offset_ns, offset_source, support = None, None, 0
        notes.append(f"no clock offset: the candidate matches do not agree ({estimate.describe()})")
    elif estimate is not None:
        offset_ns, offset_source, support = estimate.offset_ns, "estimated", estimate.support
        if estimate.runner_up and estimate.runner_up * 2 > estimate.support:
            notes.append(f"the clock offset is ambiguous: {estimate.describe()}")
    else:
        offset_ns, offset_source, support = None, None, 0
    n_pairs, pairs = pairs.height, None     # not needed any more: let it go

    cands = [_empty_cand()]
    drifting = offset_source == "estimated" and estimate is not None and bool(estimate.drift_ppm)
    shift = estimate.at(pl.col("t")) if drifting else pl.lit(offset_ns, pl.Int64)
    if drifting:
        notes.append(f"the capture and trace clocks drift apart by {estimate.drift_ppm:+.1f} ppm; the offset "
                     f"is applied per frame ({estimate.describe()})")
    if offset_ns is not None:
        of = of.with_columns((pl.col("t") - shift).alias("tt"))
        exact = _match_udp_exact(of, net, tol)
        cands.append(exact)
        tick()
        cands.append(_match_owner(of, net, "TCP", tol))
        udp = of.select("fid", "odir", "tt", KID, "tcp_flags", "protocol").filter(pl.col("protocol") == "UDP")
        cands.append(_match_owner(udp.join(exact.select("fid"), on="fid", how="anti"), net, "UDP", tol))
        udp = None
        tick()
        found = pl.concat(cands).select("fid").unique()
        rest = of.select("fid", "odir", "tt", "protocol", "l_port", "l_addr", "r_addr").join(found, on="fid",
                                                                                            how="anti")
        if local:  # another host's frame (neither address local) shares a port with this one only by chance
            rest = rest.join(fr.filter(pl.col("dir") == "unknown").select("fid"), on="fid", how="anti")
        cands.append(_match_weak(rest, net, ["protocol", "l_port"], "local-port"))
        found = pl.concat(cands).select("fid").unique()
        rest = rest.join(found, on="fid", how="anti")
        cands.append(_match_weak(rest, net, ["l_addr", "r_addr"], "addresses"))
        tick()
    # best evidence per frame: highest rank, then (a loopback frame seen both ways) its sender, then nearest
    cands = pl.concat(cands)
    pick = (cands.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_r"), "fid", "rank",
                         (pl.col("odir") != "out").alias("_in"), "dist")
            .sort(["fid", "rank", "_in", "dist"], descending=[False, True, False, False])
            .unique("fid", keep="first", maintain_order=True))
    best = cands[pick["_r"]]
    pick = None
    cands = exact = found = rest = None     # let the candidates go before the result is built
    best = _reasons(best, of, net)
    # the texts join the result only at the end (a column of long strings is costly to carry through joins)
    texts = best.select("fid", "reason")
    best = best.with_columns(pl.lit(None, pl.Utf8).alias("reason"))

    # later IP fragments follow their first fragment
    res = fr.select("fid", "frame", "t", "protocol", "dir", "dir_source", "fragment", "first_fid", "ip_id"
                    ).join(best, on="fid", how="left")
    best = None
    res = _follow_fragments(res)
    tick()

    # PID -> process
    res = res.join(net.select(pl.col("eid").alias("e_eid"), pl.col("t").alias("e_t"), pl.col("pid").alias("pid"),
                              pl.col("process").alias("e_process")), on="e_eid", how="left")
    resolver = ProcessResolver(processes if processes is not None else schema.empty(schema.PROCESSES))
    # one query per event used (the answer depends only on the event's PID and time)
    q = (res.select(pl.col("e_eid").alias("qid"), "pid", pl.col("e_t").alias("t")).filter(pl.col("pid").is_not_null())
         .unique("qid"))
    names = resolver.resolve(q) if q.height else pl.DataFrame(
        schema={"qid": pl.Int64, "process": pl.Utf8, "services": pl.Utf8, "process_source": pl.Utf8,
                "tasklist_image": pl.Utf8})
    res = res.join(names.select(pl.col("qid").alias("e_eid"), "process", "services"), on="e_eid", how="left")
    q = names = None
    res = res.with_columns(pl.coalesce("process", "e_process").alias("process"))
    used = set(res["pid"].drop_nulls().unique().to_list())
    notes += resolver.disagreements(used)
    mism = (res.select("pid", "e_process", "process")
            .filter(pl.col("e_process").is_not_null() & pl.col("process").is_not_null()
                       & (pl.col("e_process").str.to_lowercase() != pl.col("process").str.to_lowercase()))
            .select("pid", "e_process", "process").unique())
    for r in mism.head(10).iter_rows(named=True):
        notes.append(f"PID {r['pid']}: the trace's events name it {r['e_process']}, the process tables say "
                     f"{r['process']}")
    tick()

    why = None
    if not (res["rank"] >= 2).any():
        why = _why_nothing(net, fr, of, None, local, offset_ns, offset_source, estimate, tol)
    # frames whose 5-tuple only events without a usable PID have: the reason says so
    only_nopid = (of.select("fid", KID, *KEY).filter(pl.col(KID).is_null())
                  .join(nopid.select(KEY).unique(), on=KEY, how="semi"))
    match = res.select("fid", "e_eid", "dir_source").sort("fid")
    res = res.select("fid", "protocol", "t", "dir", "fragment", "reason", "odir", "rank", "pid", "process",
                     "services", "method", "e_t",
                     pl.col("fid").is_in(only_nopid["fid"].implode()).alias("_nopid"))
    only_nopid = None
    tables, res, texts = [res, texts], None, None
    out = _finish(tables, fr, net, offset_ns, shift if offset_ns is not None else None, local, why)
    summary = _summary(out, fr)
    tick()
    result = Attribution(frames=out, offset_ns=offset_ns, offset_source=offset_source,
                         offset_support=int(support), local_addrs=local, local_addrs_source=local_src,
                         summary=summary, notes=notes, tolerance_s=tolerance_s, estimate=estimate,
                         _events=net, _oriented=of, _resolver=resolver, _why=why,
                         _match=match,
                         _counts={"pairs": n_pairs}, _nopid=nopid)
    return result


def _follow_fragments(res: pl.DataFrame) -> pl.DataFrame:
    later = res.select("fid", "first_fid", "ip_id").filter(pl.col("first_fid").is_not_null())
    if not later.height:
        return res
    first = res.select(pl.col("fid").alias("first_fid"), pl.col("frame").alias("f_frame"),
                       pl.col("rank").alias("f_rank"), pl.col("e_eid").alias("f_eid"),
                       pl.col("odir").alias("f_odir"), pl.col("dist").alias("f_dist"))
    m = later.select("fid", "first_fid", "ip_id").join(first, on="first_fid", how="inner")
    m = m.filter(pl.col("f_eid").is_not_null())
    upd = m.select(
        "fid", pl.col("f_rank").alias("rank"), pl.col("f_eid").alias("e_eid"), pl.col("f_odir").alias("odir"),
        pl.lit("fragment").alias("method"), pl.col("f_dist").alias("dist"),
        pl.format("later IP fragment of frame {} (IP id {}), attributed with the same evidence as that frame",
                  pl.col("f_frame").cast(pl.Utf8), pl.col("ip_id").cast(pl.Utf8)).alias("reason"))
    return res.update(upd, on="fid", how="left")


def _finish(tables: list[pl.DataFrame], fr: pl.DataFrame, net: pl.DataFrame, offset_ns: int | None,
            shift: pl.Expr | None, local: list[str], why: str | None) -> pl.DataFrame:
    """The output table from ``tables`` = [res, texts], emptied here so that each goes as soon as it has
    been used: ``texts`` (fid, reason) are the chosen candidates' reasons, ``res.reason`` those of later
    fragments that follow their first fragment."""
    res, texts = tables
    tables.clear()
    tu = pl.col("protocol").is_in(["TCP", "UDP"])
    frag = pl.col("fragment").fill_null("none")
    if net.height:
        t0, t1 = net["t"].min(), net["t"].max()
    else:
        t0 = t1 = None
    tt = pl.col("t") - (shift if shift is not None else 0)
    locals_txt = ", ".join(local[:4]) + (", ..." if len(local) > 4 else "")
    none_reason = ([
        (~tu, pl.format("{} frame: the trace's network events cover only TCP and UDP",
                        pl.col("protocol").fill_null("non-IP"))),
        (pl.col("t").is_null(), pl.lit("the frame has no timestamp, so it cannot be matched in time")),
        (pl.lit(offset_ns is None), pl.lit(
            "no clock offset between capture and trace could be established, so no frame can be matched"
            + (f" ({why})" if why else ""))),
        (pl.col("dir") == "unknown", pl.lit(
            f"neither address is one of the traced host's ({locals_txt})" if local
            else "the traced host's addresses are unknown and no event has this 5-tuple")),
        (frag == "later", pl.lit("later IP fragment whose first fragment is not attributed")),
        (pl.lit(t0 is not None) & (tt < (t0 or 0) - LOW_HORIZON_NS),
         pl.format("the frame is {} before the trace's first network event (after the clock offset)",
                   _ms(pl.lit(t0 or 0) - tt))),
        (pl.lit(t1 is not None) & (tt > (t1 or 0) + LOW_HORIZON_NS),
         pl.format("the frame is {} after the trace's last network event (after the clock offset)",
                   _ms(tt - pl.lit(t1 or 0)))),
        (pl.col("_nopid"), pl.lit(
            "the trace's only events with this 5-tuple carry no usable PID (0 or -1), so no process can be named")),
    ], pl.lit("no TcpIp/UdpIp event has this 5-tuple, its local port or its addresses within 10 minutes"))
    dirn = (pl.when(pl.col("dir").is_in(["in", "out"])).then(pl.col("dir"))
            .when(pl.col("odir").is_not_null()).then(pl.col("odir"))
            .otherwise(pl.lit("unknown")))
    rank = pl.col("rank").fill_null(0)
    conf = (pl.when(rank == 3).then(pl.lit("high")).when(rank == 2).then(pl.lit("medium"))
            .when(rank == 1).then(pl.lit("low")).otherwise(pl.lit("none")))
    ours = res.select(
        "fid", dirn.alias("direction"), pl.col("pid").cast(pl.Int64), pl.col("process"), pl.col("services"),
        conf.alias("confidence"), pl.col("method").fill_null("none"),
        pl.col("e_t").cast(pl.Datetime("ns", "UTC")).alias("event_time"),
        ((tt - pl.col("e_t")) / NS).round(9).alias("delta_s"))
    if not ours["fid"].is_sorted():
        ours = ours.sort("fid")
    frag_txt = res.select("fid", "reason").filter(pl.col("reason").is_not_null())
    cand = texts.join(frag_txt, on="fid", how="anti") if frag_txt.height else texts
    if cand["reason"].null_count():
        cand = cand.filter(pl.col("reason").is_not_null())
    have = [frag_txt, cand]
    texts = cand = None
    need = (res.select("fid", "protocol", "t", "dir", "fragment", "_nopid")
            .join(pl.concat(have).select("fid"), on="fid", how="anti"))
    res = None
    reasons = pl.concat(have + _render(need, [none_reason], keep=["fid"]), rechunk=False).sort("fid")
    have = need = None
    # the frame's own columns come straight from the (fid-ordered) frames table, uncopied
    if not (ours["fid"].equals(fr["fid"]) and reasons["fid"].equals(fr["fid"])):
        raise AssertionError("one result row and one reason per frame expected")
    return pl.concat([fr.select("frame", "time", "protocol", "src_addr", "src_port", "dst_addr", "dst_port",
                                "payload_len"), ours.drop("fid"), reasons.select("reason")],
                     how="horizontal").select(OUT_COLUMNS)


def _summary(out: pl.DataFrame, fr: pl.DataFrame) -> pl.DataFrame:
    wl = fr.select(pl.col("wirelen").cast(pl.Int64), pl.col("caplen").cast(pl.Int64))
    b = pl.Series("bytes", wl["wirelen"].fill_null(wl["caplen"]).fill_null(0))
    df = out.select("pid", "process", "services", "confidence", "time").with_columns(b.alias("_bytes"))
    att = df.filter(pl.col("confidence").is_in(["high", "medium"]))
    low = df.filter(pl.col("confidence") == "low")
    non = df.filter(pl.col("confidence").is_in(["low", "none"]))

    def agg(d: pl.DataFrame) -> list[pl.Expr]:
        return [pl.len().alias("frames"), pl.col("_bytes").sum().alias("bytes"),
                pl.col("time").min().alias("first"), pl.col("time").max().alias("last")]

    s = (att.group_by("pid", "process", "services")
         .agg(agg(att) + [(pl.col("confidence") == "high").sum().alias("high")])
         .sort(["frames", "pid", "process", "services"], descending=[True, False, False, False],
               nulls_last=True))
    rest = (non.select(pl.lit(None, pl.Int64).alias("pid"), pl.lit("(not attributed)").alias("process"),
                       pl.lit(None, pl.Utf8).alias("services"), "_bytes", "time", "confidence")
            .group_by("pid", "process", "services").agg(agg(non) + [pl.lit(0, pl.UInt32).alias("high")]))
    s = pl.concat([s.with_columns(pl.col("high").cast(pl.UInt32)), rest], how="vertical_relaxed")
    s = s.with_columns(pl.col("frames").cast(pl.Int64), pl.col("bytes").cast(pl.Int64))
    if low.height:
        s = s.with_columns(pl.when(pl.col("pid").is_null())
                           .then(pl.lit(f"(not attributed; {low.height:,} with a low-confidence candidate)"))
                           .otherwise(pl.col("process")).alias("process"))
    return s.select("pid", "process", "services", "frames", "bytes", "first", "last")
