"""Attribution's inputs made ready to join: usable network events, the traced host's addresses, frames
with their direction, and every frame in each orientation it may have, keyed by its 5-tuple's id."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from ..errors import AttributionError
from ..parsers import schema
from ..parsers.addresses import text_address
from ..parsers.packets import first_fragments
from .constants import KEY, KID, NO_PID


@dataclass
class Prepared:
    """The tables every later step reads."""

    net: pl.DataFrame  # network events with a usable PID: eid, t, kind, odir, l_/r_ columns, kid
    nopid: pl.DataFrame  # network events left out for want of a usable PID (same columns)
    frames: pl.DataFrame  # FRAMES + fid, t, first_fid, size, dir, dir_source
    oriented: pl.DataFrame  # one row per frame and orientation: fid, odir, l_/r_ columns, kid
    local: list[str]
    local_source: str | None  # "given" / "nic events" / "nic events + inferred" / "inferred" / None
    notes: list[str] = field(default_factory=list)


def prepare(
    events: pl.DataFrame | None,
    frames: pl.DataFrame | None,
    local_addrs: Sequence[str] | None,
    nic_addrs: Sequence[str] | None,
) -> Prepared:
    """Events, local addresses, frames and their orientations, with the notes on what was left out."""
    net, nic, notes, nopid = prepare_events(events)
    local, local_src, more = local_addresses(net, nic, local_addrs, nic_addrs)
    fr = prepare_frames(frames if frames is not None else schema.empty(schema.FRAMES), local)
    if local_src == "given":
        more += _absent_locals(fr, local)
    net, of = tuple_ids(net, orient(fr))
    return Prepared(net, nopid, fr, of, local, local_src, notes + more)


def event_kind(col: str = "event") -> pl.Expr:
    """The kind of a network event name (``SendIPV4`` -> ``send``, ``TCPCopy`` -> ``copy``)."""
    e = pl.col(col).fill_null("").str.to_lowercase().str.replace_all(r"[^a-z]", "")
    e = e.str.replace(r"(ipv4|ipv6|v4|v6)$", "")
    return (
        pl.when(e.str.starts_with("send"))
        .then(pl.lit("send"))
        .when(e.str.starts_with("recv") | e.str.starts_with("receive"))
        .then(pl.lit("recv"))
        .when(e.str.starts_with("connect"))
        .then(pl.lit("connect"))
        .when(e.str.starts_with("accept"))
        .then(pl.lit("accept"))
        .when(e.str.starts_with("disconnect"))
        .then(pl.lit("disconnect"))
        .when(e.str.starts_with("retransmit"))
        .then(pl.lit("retransmit"))
        .when(e.str.starts_with("reconnect"))
        .then(pl.lit("reconnect"))
        .when(e.str.starts_with("tcpcopy") | e.str.starts_with("copy"))
        .then(pl.lit("copy"))
        .when(e.str.starts_with("fail"))
        .then(pl.lit("fail"))
        .otherwise(e)
    )


def prepare_events(events: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame, list[str], pl.DataFrame]:
    """Network events with eid, t (ns), kind, orientation columns; plus NIC-like rows; plus notes; plus
    the network events left out for want of a usable PID (same columns)."""
    ev = schema.conform(events if events is not None else schema.empty(schema.EVENTS), schema.EVENTS)
    ev = ev.with_row_index("eid").with_columns(pl.col("eid").cast(pl.Int64))
    provider = pl.col("provider").fill_null("").str.to_lowercase()
    proto = (
        pl.when(pl.col("protocol").is_not_null())
        .then(pl.col("protocol").str.to_uppercase())
        .when(provider.str.contains("tcp"))
        .then(pl.lit("TCP"))
        .when(provider.str.contains("udp"))
        .then(pl.lit("UDP"))
    )
    names = ev.select(pl.col("event").unique()).with_columns(event_kind().alias("kind"))
    ev = ev.with_columns(
        proto.alias("protocol"),
        pl.col("event")
        .replace_strict(names["event"], names["kind"], default=None, return_dtype=pl.Utf8)
        .alias("kind"),
        pl.col("time").cast(pl.Int64).alias("t"),
    )
    nic = ev.filter(
        provider.str.contains("systemconfig") | (pl.col("event").fill_null("").str.to_lowercase() == "nic")
    )
    notes = []
    usable = (
        pl.col("protocol").is_in(["TCP", "UDP"])
        & pl.col("t").is_not_null()
        & pl.col("local_addr").is_not_null()
        & pl.col("remote_addr").is_not_null()
        & pl.col("local_port").is_not_null()
        & pl.col("remote_port").is_not_null()
    )
    net = ev.filter(usable)
    bad_pid = pl.col("pid").is_null() | pl.col("pid").is_in(NO_PID)
    n_bad = net.filter(bad_pid).height
    if n_bad:
        notes.append(f"{n_bad:,} network events carry no usable PID (0, -1 or none) and were not used")
    net = net.rename(
        {"local_addr": "l_addr", "local_port": "l_port", "remote_addr": "r_addr", "remote_port": "r_port"}
    )
    net = net.with_columns(
        pl.col("l_port").cast(pl.Int32),
        pl.col("r_port").cast(pl.Int32),
        pl.when(pl.col("kind") == "send")
        .then(pl.lit("out"))
        .when(pl.col("kind") == "recv")
        .then(pl.lit("in"))
        .alias("odir"),
    )
    return net.filter(~bad_pid), nic, notes, net.filter(bad_pid)


def _unicast(addr: str) -> bool:
    """A host's own address: not multicast, broadcast (x.x.x.255) or unspecified. Receive events of
    multicast and broadcast datagrams carry the group as their local address."""
    try:
        a = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return True
    if a.is_multicast or a.is_unspecified:
        return False
    return not (a.version == 4 and addr.endswith(".255"))


def canonical_address(addr: str) -> str:
    """A user-given address in the text form the readers use (``2001:DB8:0::1`` -> ``2001:db8::1``)."""
    text = text_address(addr)
    if text is not None:
        return text
    raise AttributionError(f"local address {addr!r} is not an IPv4 or IPv6 address")


def local_addresses(
    net: pl.DataFrame, nic: pl.DataFrame, given: Sequence[str] | None, nic_addrs: Sequence[str] | None
) -> tuple[list[str], str | None, list[str]]:
    """The traced host's addresses, where they come from, and notes: given, else NIC events (plus the
    unicast local addresses of the events), else those addresses alone."""
    notes: list[str] = []
    inferred = (
        sorted(a for a in set(net["l_addr"].drop_nulls().unique().to_list()) if _unicast(a))
        if net.height
        else []
    )
    if given:
        given = [canonical_address(a) for a in given]
        extra = sorted(set(inferred) - set(given))
        if extra:
            notes.append(
                f"the trace's events also use local address(es) {', '.join(extra[:8])} "
                f"that were not given as local"
            )
        return list(dict.fromkeys(given)), "given", notes
    nics = list(nic_addrs or []) + (nic["local_addr"].drop_nulls().to_list() if nic.height else [])
    if nics:
        addrs = list(dict.fromkeys(nics))
        extra = [a for a in inferred if a not in addrs]
        if extra:
            notes.append(
                f"local address(es) {', '.join(extra[:8])} appear in the events but not in the "
                f"trace's NIC events; used as local too"
            )
            return addrs + extra, "nic events + inferred", notes
        return addrs, "nic events", notes
    if inferred:
        return inferred, "inferred", notes
    return [], None, notes


def _absent_locals(fr: pl.DataFrame, local: list[str]) -> list[str]:
    seen = set(pl.concat([fr["src_addr"], fr["dst_addr"]]).drop_nulls().unique().to_list())
    absent = [a for a in local if a not in seen]
    if absent:
        return [f"the given local address(es) {', '.join(absent[:8])} appear in no frame of the capture"]
    return []


def prepare_frames(frames: pl.DataFrame, local: list[str]) -> pl.DataFrame:
    """Frames with fid, t (ns), their first fragment and datagram size, and their direction (``dir``:
    in/out/both/unknown) with where it comes from (``dir_source``)."""
    fr = schema.conform(frames, schema.FRAMES)
    fr = fr.with_row_index("fid").with_columns(
        pl.col("fid").cast(pl.Int64), pl.col("time").cast(pl.Int64).alias("t")
    )
    fr = fragments(fr)
    src_l = pl.col("src_addr").is_in(local)
    dst_l = pl.col("dst_addr").is_in(local)
    given = pl.col("direction").fill_null("unknown").str.to_lowercase()
    return fr.with_columns(
        pl.when(given.is_in(["in", "out"]))
        .then(given)
        .when(src_l & dst_l)
        .then(pl.lit("both"))
        .when(src_l)
        .then(pl.lit("out"))
        .when(dst_l)
        .then(pl.lit("in"))
        .otherwise(pl.lit("unknown"))
        .alias("dir"),
        pl.when(given.is_in(["in", "out"]))
        .then(pl.lit("capture"))
        .when(src_l | dst_l)
        .then(pl.lit("local addresses"))
        .otherwise(pl.lit(None, pl.Utf8))
        .alias("dir_source"),
    )


def fragments(fr: pl.DataFrame) -> pl.DataFrame:
    """``first_fid``: for a later IP fragment, its first fragment (the readers' rule,
    :func:`~etwtools.parsers.packets.first_fragments`); ``size``: the transport payload of the whole
    datagram (a first fragment adds the payloads of its later fragments)."""
    fr = fr.with_columns(
        pl.lit(None, pl.Int64).alias("first_fid"), pl.col("payload_len").cast(pl.Int64).alias("size")
    )
    if not fr.filter(pl.col("fragment") == "later").height:
        return fr
    m = (
        first_fragments(fr, order="fid", time="t")
        .rename({"first_of": "_first"})
        .join(fr.select("fid", "payload_len"), on="fid", how="left")
    )
    extra = m.group_by("_first").agg(pl.col("payload_len").cast(pl.Int64).sum().alias("_extra"))
    fr = (
        fr.join(m.select("fid", "_first"), on="fid", how="left")
        .join(extra, left_on="fid", right_on="_first", how="left")
        .with_columns(
            pl.col("_first").alias("first_fid"),
            (pl.col("size") + pl.col("_extra").fill_null(0)).alias("size"),
        )
        .drop("_first", "_extra")
        .sort("fid")
    )
    return fr


def orient(fr: pl.DataFrame) -> pl.DataFrame:
    """One row per frame and possible orientation (two when the direction is unknown)."""
    cols = ["fid", "t", "protocol", "payload_len", "size", "tcp_flags", "fragment"]
    base = fr.select(cols + ["src_addr", "src_port", "dst_addr", "dst_port", "dir"]).filter(
        pl.col("protocol").is_in(["TCP", "UDP"])
        & pl.col("src_addr").is_not_null()
        & pl.col("src_port").is_not_null()
    )
    return local_tuples(base, cols, outgoing=pl.col("dir") != "in", incoming=pl.col("dir") != "out")


def local_tuples(frames: pl.DataFrame, cols: list, *, outgoing: pl.Expr, incoming: pl.Expr) -> pl.DataFrame:
    """``cols`` of the frames with their (local, remote) 5-tuple and ``odir``: the source is local where
    ``outgoing`` (out), the destination where ``incoming`` (in); a frame both ways gives two rows."""

    def side(where: pl.Expr, local: str, remote: str, odir: str) -> pl.DataFrame:
        return frames.filter(where).select(
            *cols,
            pl.col(f"{local}_addr").alias("l_addr"),
            pl.col(f"{local}_port").cast(pl.Int32).alias("l_port"),
            pl.col(f"{remote}_addr").alias("r_addr"),
            pl.col(f"{remote}_port").cast(pl.Int32).alias("r_port"),
            pl.lit(odir).alias("odir"),
        )

    return pl.concat([side(outgoing, "src", "dst", "out"), side(incoming, "dst", "src", "in")])


def tuple_ids(net: pl.DataFrame, of: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events and oriented frames with ``kid``, the id of their 5-tuple among the events' (null for a
    frame whose 5-tuple no event has)."""
    tuples = net.select(KEY).unique().with_row_index(KID).with_columns(pl.col(KID).cast(pl.Int64))
    net = net.join(tuples, on=KEY, how="left")
    # the tuple id as a new column (joining the whole table would copy every column)
    of = of.with_columns(of.select(KEY).join(tuples, on=KEY, how="left", maintain_order="left")[KID])
    return net, of
