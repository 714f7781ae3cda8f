"""Attribution's inputs made ready to join: usable network events, the traced host's addresses, frames
with their direction, and every frame in each orientation it may have, keyed by its 5-tuple's id."""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..errors import AttributionError
from ..parsers import schema
from ..parsers.addresses import text_address
from ..parsers.packets import first_fragments
from .constants import DIRECTION_SOURCES, FRAME_DIRECTIONS, KID, NO_PID, ODIRS


@dataclass
class Prepared:
    """The tables every later step reads."""

    net: (
        pl.DataFrame
    )  # network events with a usable PID: eid, t, kind, odir, l_/r_ columns, l_aid, r_aid, kid
    nopid: pl.DataFrame  # network events left out for want of a usable PID (same columns but kid)
    frames: pl.DataFrame  # FRAMES + fid, t, first_fid, size, dir, dir_source
    oriented: pl.DataFrame  # one row per frame and orientation, key columns only (see :func:`orient`)
    local: list[str]
    local_source: str | None  # "given" / "nic events" / "nic events + inferred" / "inferred" / None
    notes: list[str] = field(default_factory=list)
    addresses: pl.Series = field(default_factory=lambda: pl.Series("address", [], pl.Utf8))  # text by aid
    nopid_fids: pl.Series = field(default_factory=lambda: pl.Series("fid", [], pl.Int64))  # see without_pid
    keyed_frames: int = 0  # frames whose 5-tuple (in an orientation) some usable event has

    def release(self) -> None:
        """Let the event and orientation tables go (emptied); the frames keep only their input columns."""
        self.net, self.nopid, self.oriented = self.net.clear(), self.nopid.clear(), self.oriented.clear()
        self.frames = self.frames.select(list(schema.FRAMES))


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
    codes = AddressCodes(net, nopid, fr)
    net, nopid = codes.events(net), codes.events(nopid)
    of = orient(fr, codes)
    net, of, nopid_fids = tuple_ids(net, of, nopid)
    keyed = np.zeros(fr.height, bool)
    keyed[of.select(pl.col("fid").filter(pl.col(KID).is_not_null())).to_series().to_numpy()] = True
    of = of.select(MATCHED)  # (the rest of the tuple is in kid)
    trim_heap()  # (the numbering's temporary arrays)
    p = Prepared(net, nopid, fr, of, local, local_src, notes + more, codes.text, nopid_fids)
    p.keyed_frames = int(keyed.sum())
    return p


#: The oriented frames' columns the offset and the matchers read.
MATCHED = ["fid", "t", "protocol", "size", "tcp_flags", "fragment", "l_aid", "l_port", "r_aid", "odir", KID]


def trim_heap() -> None:
    """Hand the C heap's free pages back (glibc's malloc_trim; nothing elsewhere): numpy's temporary arrays
    raise glibc's dynamic mmap threshold, after which freed arrays stay in the heap between live ones."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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


def event_protocol() -> pl.Expr:
    """An event's protocol: its own (upper case), else its provider's (TcpIp: TCP, UdpIp: UDP)."""
    provider = pl.col("provider").fill_null("").str.to_lowercase()
    return (
        pl.when(pl.col("protocol").is_not_null())
        .then(pl.col("protocol").str.to_uppercase())
        .when(provider.str.contains("tcp"))
        .then(pl.lit("TCP"))
        .when(provider.str.contains("udp"))
        .then(pl.lit("UDP"))
    )


def prepare_events(events: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame, list[str], pl.DataFrame]:
    """Network events with eid, t (ns), kind, orientation columns; plus NIC-like rows; plus notes; plus
    the network events left out for want of a usable PID (same columns). The short texts protocol,
    kind and odir are categoricals (4 bytes a row), worked out once per distinct text."""
    ev = schema.conform(events if events is not None else schema.empty(schema.EVENTS), schema.EVENTS)
    ev = ev.with_row_index("eid").with_columns(
        pl.col("eid").cast(pl.Int64),
        _protocol(ev).alias("protocol"),
        _per_text(ev, "event", event_kind()).alias("kind"),
        pl.col("time").cast(pl.Int64).alias("t"),
    )
    nic = ev.filter(_nic_rows(ev))
    notes = []
    usable = (
        pl.col("protocol").is_in(["TCP", "UDP"])
        & pl.col("t").is_not_null()
        & pl.col("local_addr").is_not_null()
        & pl.col("remote_addr").is_not_null()
        & pl.col("local_port").is_not_null()
        & pl.col("remote_port").is_not_null()
    )
    net = keep_rows(ev, usable)
    bad_pid = pl.col("pid").is_null() | pl.col("pid").is_in(NO_PID)
    n_bad = int(net.select(bad_pid.sum()).item())
    if n_bad:
        notes.append(f"{n_bad:,} network events carry no usable PID (0, -1 or none) and were not used")
    net = net.rename(
        {"local_addr": "l_addr", "local_port": "l_port", "remote_addr": "r_addr", "remote_port": "r_port"}
    )
    net = net.with_columns(
        pl.col("l_port").cast(pl.Int32),
        pl.col("r_port").cast(pl.Int32),
        pl.when(pl.col("kind") == "send")
        .then(pl.lit("out", ODIRS))
        .when(pl.col("kind") == "recv")
        .then(pl.lit("in", ODIRS))
        .alias("odir"),
    )
    return keep_rows(net, ~bad_pid), nic, notes, net.filter(bad_pid) if n_bad else net.clear()


def _per_text(df: pl.DataFrame, col: str, expr: pl.Expr) -> pl.Expr:
    """``expr`` (of column ``col`` alone, giving a text) for every row of ``df``, as a categorical:
    worked out once per distinct text of the column and mapped (no text column per row)."""
    texts = df.select(pl.col(col).unique().drop_nulls())
    mapped = texts.select(expr.cast(pl.Utf8)).to_series()
    out = pl.col(col).replace_strict(texts[col], mapped, default=None, return_dtype=pl.Categorical)
    null = texts.clear(1).select(expr.cast(pl.Utf8)).item()  # (what expr gives for a missing text)
    return out if null is None else out.fill_null(pl.lit(null, pl.Categorical))


def _protocol(ev: pl.DataFrame) -> pl.Expr:
    """:func:`event_protocol` as a categorical, worked out once per distinct protocol and provider."""
    own = _per_text(ev, "protocol", pl.col("protocol").str.to_uppercase())
    provider = pl.col("provider").fill_null("").str.to_lowercase()
    by_provider = (
        pl.when(provider.str.contains("tcp"))
        .then(pl.lit("TCP"))
        .when(provider.str.contains("udp"))
        .then(pl.lit("UDP"))
    )
    return (
        pl.when(pl.col("protocol").is_not_null()).then(own).otherwise(_per_text(ev, "provider", by_provider))
    )


def _nic_rows(ev: pl.DataFrame) -> pl.Expr:
    """True for the NIC-like rows (provider SystemConfig, or event NIC)."""
    providers = ev.select(pl.col("provider").unique().drop_nulls()).to_series()
    events = ev.select(pl.col("event").unique().drop_nulls()).to_series()
    return pl.col("provider").is_in(
        providers.filter(providers.str.to_lowercase().str.contains("systemconfig"))
    ) | pl.col("event").is_in(events.filter(events.str.to_lowercase() == "nic"))


def keep_rows(df: pl.DataFrame, mask: pl.Expr) -> pl.DataFrame:
    """``df.filter(mask)``, but ``df`` itself (its columns shared, not copied) when every row is kept."""
    m = df.select(mask.fill_null(False)).to_series()
    return df if m.all() else df.filter(m)


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
    in/out/both/unknown) with where it comes from (``dir_source``: capture, local addresses or null),
    these two as enums (a byte a row)."""
    fr = schema.conform(frames, schema.FRAMES)
    fr = fr.with_row_index("fid").with_columns(
        pl.col("fid").cast(pl.Int64), pl.col("time").cast(pl.Int64).alias("t")
    )
    fr = fragments(fr)
    src_l = pl.col("src_addr").is_in(local)
    dst_l = pl.col("dst_addr").is_in(local)
    given = _per_text(fr, "direction", pl.col("direction").str.to_lowercase())
    d = {v: pl.lit(v, FRAME_DIRECTIONS) for v in FRAME_DIRECTIONS.categories}
    s = {v: pl.lit(v, DIRECTION_SOURCES) for v in DIRECTION_SOURCES.categories}
    return fr.with_columns(
        pl.when(given == "in")
        .then(d["in"])
        .when(given == "out")
        .then(d["out"])
        .when(src_l & dst_l)
        .then(d["both"])
        .when(src_l)
        .then(d["out"])
        .when(dst_l)
        .then(d["in"])
        .otherwise(d["unknown"])
        .alias("dir"),
        pl.when(given.is_in(["in", "out"]))
        .then(s["capture"])
        .when(src_l | dst_l)
        .then(s["local addresses"])
        .otherwise(pl.lit(None, DIRECTION_SOURCES))
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


class AddressCodes:
    """One integer per address text (``aid``, UInt32), shared by the events and the frames: the key
    columns compare integers, never texts. ``text`` gives the address of every aid."""

    def __init__(self, net: pl.DataFrame, nopid: pl.DataFrame, fr: pl.DataFrame) -> None:
        dtype = pl.Categorical(pl.Categories.random())  # fresh codes 0.. for this call only
        # every categorical series stays alive until all are cast: their categories are shared
        cats = [
            df[c].cast(dtype)
            for df, cols in (
                (net, ("l_addr", "r_addr")),
                (nopid, ("l_addr", "r_addr")),
                (fr, ("src_addr", "dst_addr")),
            )
            for c in cols
        ]
        seen = pl.concat([c.drop_nulls().unique() for c in cats])
        code, text = seen.to_physical().to_numpy(), seen.cast(pl.Utf8).to_numpy()
        by_code = np.full(int(code.max()) + 1 if len(code) else 0, None, dtype=object)
        by_code[code] = text
        self.text = pl.Series("address", by_code, pl.Utf8)
        phys = [c.to_physical() for c in cats]
        self._events = {id(net): phys[0:2], id(nopid): phys[2:4]}
        self.src, self.dst = phys[4], phys[5]

    def events(self, ev: pl.DataFrame) -> pl.DataFrame:
        """``ev`` (net or nopid as given to the constructor) with ``l_aid`` and ``r_aid``."""
        la, ra = self._events[id(ev)]
        return ev.with_columns(la.alias("l_aid"), ra.alias("r_aid"))


#: Columns of a frame kept in each of its orientations.
_ORIENTED = ["fid", "t", "protocol", "payload_len", "size", "tcp_flags", "fragment"]


def local_tuples(
    frames: pl.DataFrame,
    cols: list,
    *,
    outgoing: pl.Expr,
    incoming: pl.Expr,
    addr: str = "addr",
    in_time: bool = False,
) -> pl.DataFrame:
    """``cols`` of the frames with their (local, remote) 5-tuple and ``odir``: the source is local where
    ``outgoing`` (out), the destination where ``incoming`` (in); a frame both ways gives two rows.
    ``addr``: the address columns' suffix (``addr``: texts, ``aid``: integer codes); ``in_time``: the
    frames are in time order (column ``t``, no nulls), and so are the rows returned."""

    def side(where: pl.Expr, local: str, remote: str, odir: str) -> pl.DataFrame:
        return frames.filter(where).select(
            *cols,
            pl.col(f"{local}_{addr}").alias(f"l_{addr}"),
            pl.col(f"{local}_port").cast(pl.Int32).alias("l_port"),
            pl.col(f"{remote}_{addr}").alias(f"r_{addr}"),
            pl.col(f"{remote}_port").cast(pl.Int32).alias("r_port"),
            pl.lit(odir).alias("odir"),
        )

    out, inn = side(outgoing, "src", "dst", "out"), side(incoming, "dst", "src", "in")
    if not in_time:
        return pl.concat([out, inn])
    if not inn.height or not out.height:
        return out if not inn.height else inn
    return out.set_sorted("t").merge_sorted(inn.set_sorted("t"), key="t")


#: Columns of a frame kept in each of its orientations.
_ORIENTED = ["fid", "t", "protocol", "payload_len", "size", "tcp_flags", "fragment"]
_OUT, _IN = pl.col("dir") != "in", pl.col("dir") != "out"


def orient(fr: pl.DataFrame, codes: AddressCodes) -> pl.DataFrame:
    """One row per frame and possible orientation (two when the direction is unknown), in time order, key
    columns only: fid, t, protocol, payload_len, size, tcp_flags, fragment, l_aid, l_port, r_aid, r_port,
    odir (its short texts protocol and fragment as categoricals, 4 bytes a row, odir an enum)."""
    short = ["protocol", "fragment"]
    base = keep_rows(
        fr.select(
            *[c for c in _ORIENTED if c not in short],
            pl.col(short).cast(pl.Categorical),
            "dir",
            "src_port",
            "dst_port",
            codes.src.alias("src_aid"),
            codes.dst.alias("dst_aid"),
        ),
        pl.col("protocol").is_in(["TCP", "UDP"])
        & fr["src_addr"].is_not_null()
        & pl.col("src_port").is_not_null(),
    )
    if base["t"].null_count():
        of = local_tuples(base, _ORIENTED, outgoing=_OUT, incoming=_IN, addr="aid").sort(
            "t", maintain_order=True
        )
    else:
        if not base["t"].is_sorted():
            base = base.sort("t", maintain_order=True)
        of = _orient_in_time(base)
    return of.with_columns(pl.col("odir").cast(ODIRS))


def _orient_in_time(base: pl.DataFrame) -> pl.DataFrame:
    """:func:`local_tuples` of frames in time order (``in_time``), built without copying the frames'
    columns when no two frames have the same time: every frame once (out, unless it is incoming), then
    the frames of both directions once more (in) merged in after themselves (the same rows in the same
    order as :func:`local_tuples`' merge of the outgoing and incoming rows)."""
    if base.select((pl.col("t").diff() == 0).any()).item():
        return local_tuples(base, _ORIENTED, outgoing=_OUT, incoming=_IN, addr="aid", in_time=True)
    first = _oriented_as(base, _OUT)
    both = base.filter(_OUT & _IN)
    if not both.height:
        return first
    return first.set_sorted("t").merge_sorted(_oriented_as(both, pl.lit(False)).set_sorted("t"), key="t")


def _oriented_as(frames: pl.DataFrame, out: pl.Expr) -> pl.DataFrame:
    """The frames' :data:`_ORIENTED` columns with their 5-tuple (integer addresses) and ``odir``, out where
    ``out`` is true, else in."""

    def side(src: str, dst: str) -> pl.Expr:
        return pl.when(out).then(pl.col(src)).otherwise(pl.col(dst))

    return frames.select(
        *_ORIENTED,
        side("src_aid", "dst_aid").alias("l_aid"),
        side("src_port", "dst_port").cast(pl.Int32).alias("l_port"),
        side("dst_aid", "src_aid").alias("r_aid"),
        side("dst_port", "src_port").cast(pl.Int32).alias("r_port"),
        pl.when(out).then(pl.lit("out", ODIRS)).otherwise(pl.lit("in", ODIRS)).alias("odir"),
    )


def orientations(fr: pl.DataFrame) -> pl.DataFrame:
    """The frames ``fr`` (prepared) in each orientation, with their address texts (to explain one)."""
    base = fr.filter(
        pl.col("protocol").is_in(["TCP", "UDP"])
        & pl.col("src_addr").is_not_null()
        & pl.col("src_port").is_not_null()
    )
    return local_tuples(base, _ORIENTED, outgoing=_OUT, incoming=_IN)


#: The integer columns of a 5-tuple (protocol as 0 TCP / 1 UDP).
TUPLE_INTS = ["_udp", "l_aid", "l_port", "r_aid", "r_port"]


def _tuple_columns(df: pl.DataFrame) -> list[np.ndarray]:
    """The 5-tuple of every row as integer arrays in their own widths (protocol: 0 TCP, 1 UDP), with a
    mask of missing parts."""
    udp = pl.when(pl.col("protocol") == "UDP").then(1).when(pl.col("protocol") == "TCP").then(0)
    t = df.select(
        udp.cast(pl.Int8).alias("_udp"),
        pl.col("l_aid"),
        pl.col("l_port").cast(pl.Int32),
        pl.col("r_aid"),
        pl.col("r_port").cast(pl.Int32),
    )
    missing = t.select(pl.any_horizontal(pl.all().is_null())).to_series().to_numpy()
    return [t.to_series(i).fill_null(0).to_numpy() for i in range(t.width)] + [missing]


def dense_ids(keys: list[np.ndarray], others: list[list[np.ndarray]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact ids of the tuples ``keys`` (integer columns, then a mask of rows missing a part), 0 .. n-1,
    and for each table of ``others`` (the same columns) the id of its rows' tuples among them (-1: not
    among them, or missing). Columns are packed into one int64 while they fit (each by its range in
    ``keys``), then numbered (a hash join) and packed on."""
    *cols, miss = keys
    live = ~miss
    omiss = [o[-1].copy() for o in others]
    acc, oacc, n = np.zeros(len(miss), np.int64), [np.zeros(len(o[0]), np.int64) for o in others], 1
    for j, col in enumerate(cols):
        lo, hi = (int(col[live].min()), int(col[live].max())) if live.any() else (0, 0)
        span = hi - lo + 1
        if n * span > 2**62:
            acc, oacc, n = _number(acc, live, oacc, omiss)
        # (rows missing a part, or out of range, pack to anything: they are never numbered)
        acc = acc * span + (col.astype(np.int64) - lo)
        for i, o in enumerate(others):
            oj = o[j].astype(np.int64)
            omiss[i] |= (oj < lo) | (oj > hi)
            oacc[i] = oacc[i] * span + (oj - lo)
        n *= span
    ids, oids, _ = _number(acc, live, oacc, omiss)
    return ids, oids


def _number(
    acc: np.ndarray, live: np.ndarray, others: list[np.ndarray], omiss: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], int]:
    """acc's values numbered 0 .. n-1 in order of first appearance (rows not ``live``: -1); others'
    values by the same numbers (-1: absent, or missing per ``omiss``, which is updated). (Sorted
    with numpy, found by binary search: no hash join.)"""
    uniq, first, inv = np.unique(acc[live], return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    ids = np.full(len(acc), -1, np.int64)
    ids[live] = rank[inv.reshape(-1)]
    out = []
    for i, o in enumerate(others):
        oid = np.full(len(o), -1, np.int64)
        if len(uniq):
            order = np.argsort(o)  # (a binary search of values in order is several times faster)
            pos = np.empty(len(o), np.int64)
            pos[order] = np.minimum(np.searchsorted(uniq, o[order]), len(uniq) - 1)
            hit = uniq[pos] == o
            oid[hit] = rank[pos[hit]]
        oid[omiss[i]] = -1
        omiss[i] |= oid < 0
        out.append(oid)
    return ids, out, max(len(uniq), 1)


def tuple_ids(
    net: pl.DataFrame, of: pl.DataFrame, nopid: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """Events and oriented frames with ``kid``, the id of their 5-tuple among the events' (null for a
    frame whose 5-tuple no event has); and the fids of frames whose 5-tuple only events without a
    usable PID have."""
    ev_t, of_t = _tuple_columns(net), _tuple_columns(of)
    kid, (fkid,) = dense_ids(ev_t, [of_t])
    net = net.with_columns(pl.Series(KID, kid, pl.Int32))  # (ids of at most as many tuples as events)
    of = of.with_columns(pl.Series(KID, fkid, pl.Int32).set(pl.Series(fkid < 0), None))
    nopid_fids = pl.Series("fid", [], pl.Int64)
    if nopid.height and (fkid < 0).any():
        # the same numbering over the tuples of the events without a usable PID
        _, (hit,) = dense_ids(_tuple_columns(nopid), [[c[fkid < 0] for c in of_t]])
        nopid_fids = of["fid"].filter(pl.Series(fkid < 0)).filter(pl.Series(hit >= 0))
    return net, of, nopid_fids
