"""Reasons: one sentence per frame saying what its answer rests on, written from the chosen candidate's
named columns by the renderer of its method (:data:`RENDERERS`), only for the rows that need one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from .constants import LOW_HORIZON_NS, NS
from .prepare import event_protocol

_Branch = tuple[pl.Expr, pl.Expr]
#: A sentence built from parts, each ``([(when, text), ...], otherwise)``.
Parts = list[tuple[list[_Branch], pl.Expr]]
#: rows whose reasons are written at once (bounds the intermediate text columns)
_SLICE = 200_000
_KEEP = ["fid"]


def ms_text(expr: pl.Expr) -> pl.Expr:
    """Text of a ns duration in ms (three decimals), or in s from 1 s on. (Multiplied by the reciprocal,
    as polars divides a column of several rows: a one-row column divided exactly could round a
    half-way value the other way, and the text would depend on how the rows are sliced.)"""
    v = expr.cast(pl.Float64)
    big = v.abs() >= NS
    return pl.format(
        "{} {}",
        pl.when(big).then(v * (1 / NS)).otherwise(v * (1 / 1e6)).round(3).cast(pl.Utf8),
        pl.when(big).then(pl.lit("s")).otherwise(pl.lit("ms")),
    )


def _codes(parts: Parts) -> list[pl.Expr]:
    """Per part, the index of its first true branch (``len(branches)``: the otherwise)."""
    codes = []
    for i, (branches, _) in enumerate(parts):
        code = pl.lit(len(branches))
        for k in range(len(branches) - 1, -1, -1):
            code = pl.when(branches[k][0]).then(pl.lit(k)).otherwise(code)
        codes.append(code.cast(pl.Int8).alias(f"_b{i}"))
    return codes


def render(df: pl.DataFrame, parts: Parts, keep: list[str], name: str = "reason") -> list[pl.DataFrame]:
    """``keep`` and the concatenation of ``parts`` for every row of ``df``, as frames in no particular row
    order: the text of each part's first true condition, as ``pl.when(...).then(...)...otherwise(...)``
    would give, but each text is computed only for the rows that take it, a slice at a time."""
    if not df.height:
        return []
    names = [f"_b{i}" for i in range(len(parts))]
    # (the row index keeps one row per row of df even when every code is a literal)
    runs = (
        df.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), *_codes(parts))
        .group_by(names, maintain_order=True)
        .agg(pl.col("_i"))
    )
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


class Lookup:
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


#: The prepared events' columns (:func:`~.prepare.prepare_events`) from the input events' (conformed).
EVENT_COLUMNS: dict[str, pl.Expr] = {
    "pid": pl.col("pid"),
    "event": pl.col("event"),
    "size": pl.col("size"),
    "t": pl.col("time").cast(pl.Int64),
    "protocol": event_protocol(),
    "l_addr": pl.col("local_addr"),
    "l_port": pl.col("local_port").cast(pl.Int32),
    "r_addr": pl.col("remote_addr"),
    "r_port": pl.col("remote_port").cast(pl.Int32),
}


class Sources:
    """The chosen rows' frame and event columns, gathered from the input tables (conformed to their
    schemas) by row: a frame's row is its ``fid``, an event's its ``eid``; ``shift``: the clock offset of
    a frame (an expression of its capture time ``t``, :meth:`~.offset.Offset.shift`)."""

    def __init__(self, events: pl.DataFrame, frames: pl.DataFrame, shift: pl.Expr | None) -> None:
        self.ev, self.fr, self.shift = events, frames, shift

    def events(self, b: pl.DataFrame, key: str, cols: dict[str, str]) -> pl.DataFrame:
        """``b`` with the columns ``cols`` (new name: prepared event column) of the event whose eid is in
        ``key``."""
        exprs = [EVENT_COLUMNS[c] for c in cols.values()]
        inputs = sorted({n for e in exprs for n in e.meta.root_names()})
        pos = b[key]
        got = self.ev.select(pl.col(inputs).gather(pos)) if len(pos) else self.ev.select(inputs).clear()
        return b.with_columns(got.select([e.alias(name) for name, e in zip(cols, exprs)]))

    def rows(self, b: pl.DataFrame, of_cols: list[str]) -> pl.DataFrame:
        """``b`` with its oriented frame's columns ``of_cols`` and its event's e_pid, e_event, e_t. A
        frame's ``size`` is its event's: the one method that shows it matched them on it."""
        if "size" in of_cols:
            b = self.events(b, "e_eid", {"size": "size"}).with_columns(pl.col("size").cast(pl.Int64))
        cols = [c for c in of_cols if c != "size"]
        if cols:
            out = pl.col("odir") == "out"
            f = self.fr.select(
                pl.col(
                    "time", "protocol", "payload_len", "src_addr", "src_port", "dst_addr", "dst_port"
                ).gather(b["fid"])
            ).with_columns(pl.col("time").cast(pl.Int64).alias("t"), b["odir"])
            shift = self.shift if self.shift is not None else pl.lit(0, pl.Int64)
            of = f.select(
                (pl.col("t") - shift).alias("tt"),
                "protocol",
                "payload_len",
                pl.when(out).then(pl.col("src_addr")).otherwise(pl.col("dst_addr")).alias("l_addr"),
                pl.when(out)
                .then(pl.col("src_port"))
                .otherwise(pl.col("dst_port"))
                .cast(pl.Int32)
                .alias("l_port"),
                pl.when(out).then(pl.col("dst_addr")).otherwise(pl.col("src_addr")).alias("r_addr"),
            )
            b = b.with_columns(of.select(cols))
        return self.events(b, "e_eid", {"e_pid": "pid", "e_event": "event", "e_t": "t"})


def udp_exact(b: pl.DataFrame, src: Sources) -> list[pl.DataFrame]:
    """udp-5tuple-size: the event with the same 5-tuple and size, and the other PID's when ambiguous."""
    b = src.rows(b, ["size"])
    return render(
        b,
        keep=_KEEP,
        parts=[
            (
                [],
                pl.format(
                    "UDP {} event of PID {} has the same 5-tuple and size ({} bytes), {} from the frame "
                    "after the clock offset",
                    pl.col("e_event"),
                    pl.col("e_pid").cast(pl.Utf8),
                    pl.col("size").cast(pl.Utf8),
                    ms_text(pl.col("event_dt")),
                ),
            ),
            (
                [
                    (
                        pl.col("ambiguous"),
                        pl.format(
                            "; but an event of PID {} with the same 5-tuple and size is {} from it too: ambiguous, {}",
                            pl.col("other_pid").cast(pl.Utf8),
                            ms_text(pl.col("other_dt")),
                            pl.when(pl.col("odir") == "out")
                            .then(pl.lit("either process may have sent it"))
                            .otherwise(
                                pl.lit(
                                    "either or both processes may have received it (a multicast or broadcast "
                                    "datagram reaches every socket bound to its port)"
                                )
                            ),
                        ),
                    )
                ],
                pl.lit(""),
            ),
        ],
    )


def _owner_context(tuple_txt: str, tcp: bool) -> tuple[list[_Branch], pl.Expr]:
    """The second half of an owner reason: how the events around the frame decide."""
    dp, dn, tup = ms_text(pl.col("prev_dt")), ms_text(pl.col("next_dt")), pl.lit(tuple_txt)
    same, both, before_start = pl.col("same"), pl.col("both"), pl.col("before_start")
    no_prev, p_pid, n_pid = (
        pl.col("prev_eid").is_null(),
        pl.col("p_pid").cast(pl.Utf8),
        pl.col("n_pid").cast(pl.Utf8),
    )
    return (
        [
            (
                same,
                pl.format(
                    "the frame lies between two events of PID {} on this {} ({} before, {} after), "
                    "so the connection is the same",
                    pl.col("e_pid").cast(pl.Utf8),
                    tup,
                    dp,
                    dn,
                ),
            ),
            (
                before_start & both & ~same,
                pl.format(
                    "the {} changed owner around this time (PID {} until {} before, PID {} from its {} event "
                    "{} after); this frame is not a SYN and precedes that new connection, so it belongs to the "
                    "previous one",
                    tup,
                    p_pid,
                    dp,
                    n_pid,
                    pl.col("n_event"),
                    dn,
                ),
            ),
            (
                before_start & no_prev,
                pl.format(
                    "no event of this {} precedes the frame; the first one, a {} {} later, starts a new "
                    "connection, and this frame is not a SYN: it belongs to an earlier connection whose owner "
                    "the trace does not show",
                    tup,
                    pl.col("n_event"),
                    dn,
                ),
            ),
            (
                both & pl.col("syn") & pl.lit(tcp),
                pl.format(
                    "the {} changed owner around this time (PID {} before, PID {} after) and this SYN opens "
                    "the new connection",
                    tup,
                    p_pid,
                    n_pid,
                ),
            ),
            (
                both,
                pl.format(
                    "the {} changed owner around this time (PID {} until {} before, PID {} from {} "
                    "after); the nearer event decides",
                    tup,
                    p_pid,
                    dp,
                    n_pid,
                    dn,
                ),
            ),
            (
                no_prev,
                pl.format("no event of this {} precedes the frame; the first one follows {} later", tup, dn),
            ),
        ],
        pl.format("no event of this {} follows the frame; the last one was {} earlier", tup, dp),
    )


def _owner_rows(b: pl.DataFrame, src: Sources, of_cols: list[str]) -> pl.DataFrame:
    b = src.rows(b, of_cols)
    return src.events(
        src.events(b, "prev_eid", {"p_pid": "pid"}), "next_eid", {"n_pid": "pid", "n_event": "event"}
    )


def tcp_owner(b: pl.DataFrame, src: Sources) -> list[pl.DataFrame]:
    """tcp-connection: the connection's owner and how the events around the frame decide."""
    b = _owner_rows(b, src, [])
    away = ms_text(pl.col("dist"))
    lead = (
        [
            (
                pl.col("prev_eid").is_null() & pl.col("before_start"),
                pl.format(
                    "a guess: PID {} uses this TCP 4-tuple next ({} event, {} away), but ",
                    pl.col("e_pid").cast(pl.Utf8),
                    pl.col("e_event"),
                    away,
                ),
            )
        ],
        pl.format(
            "TCP connection owned by PID {} ({} event nearest, {} away): ",
            pl.col("e_pid").cast(pl.Utf8),
            pl.col("e_event"),
            away,
        ),
    )
    return render(b, keep=_KEEP, parts=[lead, _owner_context("4-tuple", tcp=True)])


def udp_owner(b: pl.DataFrame, src: Sources) -> list[pl.DataFrame]:
    """udp-5tuple: the 5-tuple's owner, no event of the frame's size."""
    b = _owner_rows(b, src, ["payload_len"])
    lead = (
        [],
        pl.format(
            "UDP 5-tuple used by PID {} ({} event nearest, {} away) but no event with this "
            "size ({} bytes) within the tolerance: ",
            pl.col("e_pid").cast(pl.Utf8),
            pl.col("e_event"),
            ms_text(pl.col("dist")),
            pl.col("payload_len").cast(pl.Utf8),
        ),
    )
    return render(b, keep=_KEEP, parts=[lead, _owner_context("5-tuple", tcp=False)])


def _weak_rows(b: pl.DataFrame, src: Sources) -> pl.DataFrame:
    b = src.rows(b, ["tt", "protocol", "l_addr", "l_port", "r_addr"])
    b = src.events(
        b,
        "e_eid",
        {"e_proto": "protocol", "_la": "l_addr", "_lp": "l_port", "_ra": "r_addr", "_rp": "r_port"},
    )
    return b.with_columns(pl.format("{}:{} - {}:{}", "_la", "_lp", "_ra", "_rp").alias("e_tuple"))


def local_port(b: pl.DataFrame, src: Sources) -> list[pl.DataFrame]:
    """local-port: only the protocol and local port match."""
    b = _weak_rows(b, src)
    return render(
        b,
        keep=_KEEP,
        parts=[
            (
                [],
                pl.format(
                    "only the local port matches: {} port {} was used by PID {} ({} {} event, {} away); the addresses or "
                    "the remote port differ, so this is a guess",
                    pl.col("protocol"),
                    pl.col("l_port").cast(pl.Utf8),
                    pl.col("e_pid").cast(pl.Utf8),
                    pl.col("e_tuple"),
                    pl.col("e_event"),
                    ms_text((pl.col("tt") - pl.col("e_t")).abs()),
                ),
            )
        ],
    )


def addresses(b: pl.DataFrame, src: Sources) -> list[pl.DataFrame]:
    """addresses: only the local and remote addresses match."""
    b = _weak_rows(b, src)
    return render(
        b,
        keep=_KEEP,
        parts=[
            (
                [],
                pl.format(
                    "only the addresses match: PID {} exchanged {} traffic between {} and {} ({} {} event, {} away); the "
                    "ports differ, so this is a guess",
                    pl.col("e_pid").cast(pl.Utf8),
                    pl.col("e_proto"),
                    pl.col("l_addr"),
                    pl.col("r_addr"),
                    pl.col("e_tuple"),
                    pl.col("e_event"),
                    ms_text((pl.col("tt") - pl.col("e_t")).abs()),
                ),
            )
        ],
    )


#: The reason renderer of every method a matcher gives.
RENDERERS: dict[str, Callable[[pl.DataFrame, Sources], list[pl.DataFrame]]] = {
    "udp-5tuple-size": udp_exact,
    "tcp-connection": tcp_owner,
    "udp-5tuple": udp_owner,
    "local-port": local_port,
    "addresses": addresses,
}


def fragment_reason() -> pl.Expr:
    """The reason of a later IP fragment that follows its first fragment (columns f_frame, ip_id)."""
    return pl.format(
        "later IP fragment of frame {} (IP id {}), attributed with the same evidence as that frame",
        pl.col("f_frame").cast(pl.Utf8),
        pl.col("ip_id").cast(pl.Utf8),
    )


def unmatched_reason(
    t0: int | None, t1: int | None, tt: pl.Expr, offset_known: bool, why: str | None, local: list[str]
) -> tuple[list[_Branch], pl.Expr]:
    """Why a frame has no candidate at all (columns protocol, t, dir, fragment, _nopid); ``tt`` its time on
    the trace's clock, ``t0``/``t1`` the first and last network event."""
    frag = pl.col("fragment").fill_null("none")
    locals_txt = ", ".join(local[:4]) + (", ..." if len(local) > 4 else "")
    return (
        [
            (
                ~pl.col("protocol").is_in(["TCP", "UDP"]),
                pl.format(
                    "{} frame: the trace's network events cover only TCP and UDP",
                    pl.col("protocol").fill_null("non-IP"),
                ),
            ),
            (pl.col("t").is_null(), pl.lit("the frame has no timestamp, so it cannot be matched in time")),
            (
                pl.lit(not offset_known),
                pl.lit(
                    "no clock offset between capture and trace could be established, so no frame can be matched"
                    + (f" ({why})" if why else "")
                ),
            ),
            (
                pl.col("dir") == "unknown",
                pl.lit(
                    f"neither address is one of the traced host's ({locals_txt})"
                    if local
                    else "the traced host's addresses are unknown and no event has this 5-tuple"
                ),
            ),
            (frag == "later", pl.lit("later IP fragment whose first fragment is not attributed")),
            (
                pl.lit(t0 is not None) & (tt < (t0 or 0) - LOW_HORIZON_NS),
                pl.format(
                    "the frame is {} before the trace's first network event (after the clock offset)",
                    ms_text(pl.lit(t0 or 0) - tt),
                ),
            ),
            (
                pl.lit(t1 is not None) & (tt > (t1 or 0) + LOW_HORIZON_NS),
                pl.format(
                    "the frame is {} after the trace's last network event (after the clock offset)",
                    ms_text(tt - pl.lit(t1 or 0)),
                ),
            ),
            (
                pl.col("_nopid"),
                pl.lit(
                    "the trace's only events with this 5-tuple carry no usable PID (0 or -1), so no process can be named"
                ),
            ),
        ],
        pl.lit("no TcpIp/UdpIp event has this 5-tuple, its local port or its addresses within 10 minutes"),
    )
