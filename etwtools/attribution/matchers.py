"""Matchers: each turns frames into candidate (frame, event) pairs by one method, with a rank
(3 high, 2 medium, 1 low) and the numbers its reason is written from, in columns named for them.

Every candidate table has the :data:`COMMON` columns; the rest are the method's own (see each matcher).
:data:`MATCHERS` lists the matchers in the order they run: each sees only the frames no earlier one
matched. A new evidence source is one function and one entry there (plus its reason renderer in
:mod:`.reasons`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from .constants import KID, LOW_HORIZON_NS, MEDIUM_HORIZON_NS, SYN, TCP_OWNER_EVENTS
from .prepare import keep_rows

#: Columns every candidate table has.
COMMON = {
    "fid": pl.Int64,
    "odir": pl.Utf8,
    "rank": pl.Int8,
    "e_eid": pl.Int64,
    "method": pl.Categorical,
    "dist": pl.Int64,
}


#: Key columns of the events the matchers read (the events in time order, :attr:`Context.by_time`).
EVENT_KEYS = ["eid", "t", "pid", "kind", "protocol", "odir", "size", "kid", "l_port", "l_aid", "r_aid"]


@dataclass
class Context:
    """What the matchers read: oriented frames with ``tt`` (capture time on the trace's clock), usable
    network events, the tolerance (ns), the frames table and the traced host's addresses; ``by_time``:
    the events' key columns in time order (sorted once for every matcher)."""

    oriented: pl.DataFrame
    net: pl.DataFrame
    tol: int
    frames: pl.DataFrame
    local: list[str]
    by_time: pl.DataFrame | None = None

    def __post_init__(self) -> None:
        if self.by_time is None:
            self.by_time = events_by_time(self.net)


def events_by_time(net: pl.DataFrame, more: list[str] | None = None) -> pl.DataFrame:
    """The events' key columns (:data:`EVENT_KEYS`, and ``more``) in time order."""
    short = ["kind", "protocol", "odir"]  # (categoricals: 4 bytes a row, where still texts)
    text = [c for c in short if net.schema[c] == pl.Utf8]
    keys = net.select(
        [pl.col(c).cast(pl.Categorical) if c in text else pl.col(c) for c in EVENT_KEYS + (more or [])]
    )
    return keys if keys["t"].is_sorted() else keys.sort("t", maintain_order=True)


def size_key() -> pl.Expr:
    """One Int64 per (5-tuple id, direction, size) of a frame or event (``kid``, ``odir``, ``size``):
    null without all three, or for a size outside 0 .. 2**31 (no datagram is that long)."""
    size = pl.col("size").cast(pl.Int64)
    ok = (size >= 0) & (size < 2**31) & pl.col("odir").is_in(["in", "out"])
    kd = pl.col(KID).cast(pl.Int64) * 2 + (pl.col("odir") == "in").cast(pl.Int64)
    return pl.when(ok).then(kd * 2**31 + size).alias("sk")


@dataclass(frozen=True)
class Matcher:
    """One method: ``match(context, pending)`` gives candidates for ``pending``, the oriented frames
    (with ``tt``) that no earlier matcher found; ``rule`` says in one sentence what it rests on."""

    method: str
    match: Callable[[Context, pl.DataFrame], pl.DataFrame]
    rule: str


def empty(extra: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """A candidate table without rows."""
    return pl.DataFrame(schema={**COMMON, **(extra or {})})


def candidates(m: pl.DataFrame, rank: pl.Expr, method: str, dist: pl.Expr, **named: pl.Expr) -> pl.DataFrame:
    """Candidate rows: :data:`COMMON` and the method's ``named`` columns."""
    return m.select(
        "fid",
        "odir",
        rank.cast(pl.Int8).alias("rank"),
        pl.col("e_eid").cast(pl.Int64),
        pl.lit(method, pl.Categorical).alias("method"),
        dist.cast(pl.Int64).alias("dist"),
        *[expr.alias(name) for name, expr in named.items()],
    )


def _asof(
    left: pl.DataFrame,
    right: pl.DataFrame,
    keys: list[str],
    strategy: str,
    tolerance: int,
    prefix: str,
    cols: tuple[str, ...] = ("t", "eid", "pid", "kind"),
) -> pl.DataFrame:
    """join_asof of left (column tt) to right events (column t, in time order) by keys; right columns
    ``cols`` prefixed."""
    r = right.select(keys + [pl.col(c).alias(f"{prefix}{c}") for c in cols])
    left = left if left["tt"].is_sorted() else left.sort("tt")
    return left.join_asof(
        r,
        left_on="tt",
        right_on=f"{prefix}t",
        by=keys,
        strategy=strategy,
        tolerance=tolerance,
        check_sortedness=False,
        coalesce=False,  # (the events' times are kept: one column, not a copy for the join)
    )


# -- udp-5tuple-size ---------------------------------------------------------------------------------
#: other_pid / other_dt: the nearest event of another PID with the same 5-tuple and size, frame minus its
#: time; event_dt: frame minus the event's time; ambiguous: that other event is within the tolerance too.
UDP_EXACT = {"other_pid": pl.Int64, "other_dt": pl.Int64, "event_dt": pl.Int64, "ambiguous": pl.Boolean}


def match_udp_exact(ctx: Context, pending: pl.DataFrame) -> pl.DataFrame:
    """A UDP datagram is the Send/Recv event with the same 5-tuple, direction and size, nearest in time
    within the tolerance; ambiguous (medium) when another PID's such event is within it too."""
    keys = ["sk"]
    # (lazily: only the columns selected are filtered)
    left = (
        pending.lazy()
        .filter(
            (pl.col("protocol") == "UDP")
            & (pl.col("fragment").fill_null("none") != "later")
            & pl.col(KID).is_not_null()
        )
        .select("fid", "odir", "tt", size_key())
        .filter(pl.col("sk").is_not_null())
        .collect()
    )
    right = (
        ctx.by_time.lazy()
        .filter((pl.col("protocol") == "UDP") & pl.col("odir").is_not_null())
        .select("eid", "t", "pid", "kind", size_key())
        .filter(pl.col("sk").is_not_null())
        .collect()
    )
    if not left.height or not right.height:
        return empty(UDP_EXACT)
    m = _asof(left, right, keys, "nearest", ctx.tol, "e_").filter(pl.col("e_eid").is_not_null())
    # another PID's event of the same 5-tuple and size also within the tolerance: the datagram is ambiguous
    m = m.join(_other_pid_neighbours(right, keys), left_on="e_eid", right_on="eid", how="left")
    d_po, d_no = (pl.col("tt") - pl.col("po_t")).abs(), (pl.col("no_t") - pl.col("tt")).abs()
    use_next = pl.col("po_t").is_null() | (pl.col("no_t").is_not_null() & (d_no < d_po))
    m = m.with_columns(
        pl.when(use_next).then(pl.col("no_pid")).otherwise(pl.col("po_pid")).alias("o_pid"),
        pl.when(use_next).then(pl.col("no_t")).otherwise(pl.col("po_t")).alias("o_t"),
        pl.when(use_next).then(d_no).otherwise(d_po).alias("o_dist"),
    )
    ambiguous = (pl.col("o_dist").is_not_null() & (pl.col("o_dist") <= ctx.tol)).fill_null(False)
    return candidates(
        m,
        pl.when(ambiguous).then(2).otherwise(3),
        "udp-5tuple-size",
        (pl.col("tt") - pl.col("e_t")).abs(),
        other_pid=pl.col("o_pid").cast(pl.Int64),
        other_dt=(pl.col("tt") - pl.col("o_t")).cast(pl.Int64),
        event_dt=(pl.col("tt") - pl.col("e_t")).cast(pl.Int64),
        ambiguous=ambiguous,
    )


def _other_pid_neighbours(ev: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """For every event (``eid``) of a ``keys`` group used by several PIDs: the nearest earlier (``po_t``,
    ``po_pid``) and later (``no_t``, ``no_pid``) event of the group with another PID, i.e. the ends of the
    neighbouring runs of same-PID events."""
    shared = ev.group_by(keys).agg(pl.col("pid").n_unique().alias("_n")).filter(pl.col("_n") > 1)
    e = ev.join(shared.select(keys), on=keys, how="semi", nulls_equal=True).select(keys + ["eid", "t", "pid"])
    if not e.height:
        return pl.DataFrame(
            schema={
                "eid": pl.Int64,
                "po_t": pl.Int64,
                "po_pid": pl.Int64,
                "no_t": pl.Int64,
                "no_pid": pl.Int64,
            }
        )
    new_run = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in keys + ["pid"]])
    e = e.sort(keys + ["t"]).with_columns(new_run.fill_null(True).cast(pl.Int64).cum_sum().alias("_run"))
    runs = e.group_by("_run").agg(
        *[pl.col(k).first() for k in keys],
        pl.col("t").min().alias("_t0"),
        pl.col("t").max().alias("_t1"),
        pl.col("pid").first().alias("_pid"),
    )
    prev = runs.select(
        keys
        + [(pl.col("_run") + 1).alias("_run"), pl.col("_t1").alias("po_t"), pl.col("_pid").alias("po_pid")]
    )
    nxt = runs.select(
        keys
        + [(pl.col("_run") - 1).alias("_run"), pl.col("_t0").alias("no_t"), pl.col("_pid").alias("no_pid")]
    )
    return (
        e.join(prev, on=keys + ["_run"], how="left", nulls_equal=True)
        .join(nxt, on=keys + ["_run"], how="left", nulls_equal=True)
        .select("eid", "po_t", "po_pid", "no_t", "no_pid")
    )


# -- tcp-connection, udp-5tuple ----------------------------------------------------------------------
#: prev_eid / next_eid: the tuple's events before and after the frame; prev_dt / next_dt: how far;
#: same: both are of one PID; both: there are both; syn: the frame is a TCP SYN; before_start: a TCP
#: non-SYN frame further than the tolerance before a Connect/Accept (it belongs to an older connection).
OWNER = {
    "prev_eid": pl.Int64,
    "next_eid": pl.Int64,
    "prev_dt": pl.Int64,
    "next_dt": pl.Int64,
    "same": pl.Boolean,
    "both": pl.Boolean,
    "syn": pl.Boolean,
    "before_start": pl.Boolean,
}


def _owner_around(pending: pl.DataFrame, by_time: pl.DataFrame, proto: str) -> pl.DataFrame:
    """The frames of ``proto`` with the tuple's nearest events before (``p_``) and after (``n_``)."""
    left = (
        pending.lazy()
        .filter((pl.col("protocol") == proto) & pl.col(KID).is_not_null())
        .select("fid", "odir", "tt", KID, "tcp_flags")
        .collect()
    )
    kinds = TCP_OWNER_EVENTS if proto == "TCP" else ["send", "recv"]
    right = (
        by_time.lazy()
        .filter((pl.col("protocol") == proto) & pl.col("kind").is_in(kinds))
        .select(KID, "t", "eid", "pid", "kind")
        .collect()
    )
    if not left.height or not right.height:
        return left.clear()
    m = _asof(left, right, [KID], "backward", LOW_HORIZON_NS, "p_", ("t", "eid", "pid"))
    m = _asof(m, right, [KID], "forward", LOW_HORIZON_NS, "n_")
    return keep_rows(m, pl.col("p_eid").is_not_null() | pl.col("n_eid").is_not_null())


def match_owner(ctx: Context, pending: pl.DataFrame, proto: str) -> pl.DataFrame:
    """Owner of the frame's 4-tuple (TCP) / 5-tuple (UDP) at its time, from the events around it."""
    m = _owner_around(pending, ctx.by_time, proto)
    if not m.height:
        return empty(OWNER)
    tcp = pl.lit(proto == "TCP")
    dp, dn = pl.col("tt") - pl.col("p_t"), pl.col("n_t") - pl.col("tt")
    both = pl.col("p_eid").is_not_null() & pl.col("n_eid").is_not_null()
    same = both & (pl.col("p_pid") == pl.col("n_pid"))
    syn = (pl.col("tcp_flags").fill_null(0).cast(pl.Int32) & SYN) != 0
    # a TCP frame that is not a SYN, further than the tolerance before a Connect/Accept, cannot belong to
    # the connection that event starts
    before_start = (tcp & ~syn & pl.col("n_kind").is_in(["connect", "accept"]) & (dn > ctx.tol)).fill_null(
        False
    )
    take_next = (
        pl.col("p_eid").is_null()
        | (both & ~same & syn & tcp)
        | (both & ~same & ~(syn & tcp) & ~before_start & (dn < dp))
        | (same & (dn < dp))
    )
    m = m.with_columns(
        pl.when(take_next).then(pl.col("n_eid")).otherwise(pl.col("p_eid")).alias("e_eid"),
        pl.when(take_next).then(dn).otherwise(dp).alias("dist"),
        same.fill_null(False).alias("same"),
        both.alias("both"),
        syn.fill_null(False).alias("syn"),
        before_start.alias("before_start"),
    )
    near, medium = pl.col("dist") <= ctx.tol, pl.col("dist") <= MEDIUM_HORIZON_NS
    if proto == "TCP":
        rank = (
            pl.when(pl.col("p_eid").is_null() & pl.col("before_start"))
            .then(1)
            .when(pl.col("same") | near)
            .then(3)
            .when(medium)
            .then(2)
            .otherwise(1)
        )
    else:
        rank = pl.when(pl.col("same") | medium).then(2).otherwise(1)
    return candidates(
        m,
        rank,
        "tcp-connection" if proto == "TCP" else "udp-5tuple",
        pl.col("dist"),
        prev_eid=pl.col("p_eid").cast(pl.Int64),
        next_eid=pl.col("n_eid").cast(pl.Int64),
        prev_dt=dp.cast(pl.Int64),
        next_dt=dn.cast(pl.Int64),
        same=pl.col("same"),
        both=pl.col("both"),
        syn=pl.col("syn"),
        before_start=pl.col("before_start"),
    )


def match_tcp_owner(ctx: Context, pending: pl.DataFrame) -> pl.DataFrame:
    """A TCP frame belongs to the owner of its 4-tuple at that time."""
    return match_owner(ctx, pending, "TCP")


def match_udp_owner(ctx: Context, pending: pl.DataFrame) -> pl.DataFrame:
    """A UDP frame without an event of its size: the owner of its 5-tuple around that time."""
    return match_owner(ctx, pending, "UDP")


# -- local-port, addresses (low confidence) ----------------------------------------------------------
def _host_frames(ctx: Context, pending: pl.DataFrame) -> pl.DataFrame:
    """Pending frames that may be the traced host's: another host's frame (neither address local)
    shares a port with this one only by chance."""
    if not ctx.local:
        return pending
    elsewhere = ctx.frames.lazy().filter(pl.col("dir") == "unknown").select("fid").collect()
    return pending.join(elsewhere, on="fid", how="anti")


def _match_weak(ctx: Context, pending: pl.DataFrame, key: pl.Expr, method: str) -> pl.DataFrame:
    """The nearest event (within :data:`LOW_HORIZON_NS`) whose ``key`` (an Int64 expression of the key
    columns, null: no match) is the frame's."""
    of = _host_frames(ctx, pending)
    right = ctx.by_time  # (every usable event is TCP or UDP)
    if not of.height or not right.height:
        return empty()
    left = of.select("fid", "odir", "tt", key.alias("_key"))
    # only the events of keys a pending frame has (few frames are left this late; order kept)
    r = (
        right.lazy()
        .select(key.alias("_key"), pl.col("t").alias("e_t"), pl.col("eid").alias("e_eid"))
        .filter(pl.col("_key").is_not_null())
        .join(left.lazy().select("_key").unique(), on="_key", how="semi", maintain_order="left")
        .collect()
    )
    m = (left if left["tt"].is_sorted() else left.sort("tt")).join_asof(
        r,
        left_on="tt",
        right_on="e_t",
        by="_key",
        strategy="nearest",
        tolerance=LOW_HORIZON_NS,
        check_sortedness=False,
        coalesce=False,
    )
    m = m.filter(pl.col("e_eid").is_not_null())
    return candidates(m, pl.lit(1), method, (pl.col("tt") - pl.col("e_t")).abs())


def match_local_port(ctx: Context, pending: pl.DataFrame) -> pl.DataFrame:
    """Only the protocol and local port match an event (low confidence)."""
    udp = (pl.col("protocol") == "UDP").cast(pl.Int64)
    return _match_weak(ctx, pending, udp * 2**32 + pl.col("l_port").cast(pl.Int64) + 2**31, "local-port")


def match_addresses(ctx: Context, pending: pl.DataFrame) -> pl.DataFrame:
    """Only the local and remote addresses match an event (low confidence)."""
    return _match_weak(ctx, pending, pl.col("l_aid").cast(pl.Int64) * 2**32 + pl.col("r_aid"), "addresses")


#: The matchers, in the order they run.
MATCHERS: list[Matcher] = [
    Matcher(
        "udp-5tuple-size",
        match_udp_exact,
        "a UDP datagram is the Send (outgoing) or Recv (incoming) event with the same 5-tuple and the "
        "same size, nearest in time within the tolerance (high confidence).",
    ),
    Matcher(
        "tcp-connection",
        match_tcp_owner,
        "a TCP frame belongs to its connection (4-tuple); the owner is the PID of the events around the "
        "frame (high inside the connection's events or within the tolerance, medium within 240 s, low "
        "beyond); a SYN opens a new owner's connection.",
    ),
    Matcher(
        "udp-5tuple",
        match_udp_owner,
        "no event of the same size within the tolerance; the 5-tuple's owner around that time is taken "
        "(medium confidence near its events, low beyond 240 s).",
    ),
    Matcher(
        "local-port", match_local_port, "only the protocol and local port match an event (low confidence)."
    ),
    Matcher(
        "addresses", match_addresses, "only the local and remote addresses match an event (low confidence)."
    ),
]


def run_matchers(ctx: Context, matchers: list[Matcher] | None = None) -> list[pl.DataFrame]:
    """The candidates of every matcher, in order; each runs on the frames no earlier one matched
    (``ctx.oriented`` is emptied)."""
    out: list[pl.DataFrame] = []
    # (the oriented frames are handed over: ctx.oriented is emptied, so that each pending table, a
    # shorter copy, replaces the last one)
    pending, ctx.oriented = ctx.oriented, ctx.oriented.clear()
    found_fid = np.zeros(int(pending["fid"].max()) + 1 if pending.height else 0, bool)
    for matcher in matchers if matchers is not None else MATCHERS:
        found = matcher.match(ctx, pending)
        out.append(found)
        if found.height:
            found_fid[found["fid"].to_numpy()] = True
            pending = pending.filter(pl.Series(~found_fid[pending["fid"].to_numpy()]))
    return out


def pick_best(cands: list[pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The best candidate of every frame, by method: highest rank, then (a loopback frame seen both ways)
    its sender, then nearest. A frame's candidates all come from one matcher (each sees only the frames
    no earlier one matched), so only frames with several rows in one table need choosing."""
    best: dict[str, pl.DataFrame] = {}
    for c in cands:
        if not c.height:
            continue
        fid = c["fid"].to_numpy()  # (counted by value: fids are rows of the frames table)
        several = pl.Series(np.bincount(fid)[fid] > 1)
        if several.any():
            pick = (
                c.filter(several)
                .with_columns((pl.col("odir") != "out").alias("_in"))
                .sort(["fid", "rank", "_in", "dist"], descending=[False, True, False, False])
                .unique("fid", keep="first", maintain_order=True)
                .drop("_in")
            )
            c = pl.concat([c.filter(~several), pick])
        best[c["method"][0]] = c
    return best
