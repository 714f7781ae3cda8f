"""Packets and interfaces of a capture, and the bulk dissection of raw frames into the FRAMES table.

Link layers: Ethernet (802.1Q / 802.1ad / QinQ tags), raw IP (LINKTYPE_RAW 101, IPV4 228, IPV6 229),
Linux cooked SLL (113) and SLL2 (276), BSD null (0) and OpenBSD loop (108), IEEE 802.11 (105) and
802.11 behind a radiotap header (127). Network layer: IPv4 and IPv6 (extension headers walked to the
transport header). Transport: TCP, UDP, ICMP, ICMPv6.

802.11 (IEEE 802.11-2020 clause 9.2): the frame control field gives the type (data 2) and subtype
(bit 3: QoS, bit 2: no frame body); the MAC header is 24 bytes, + 6 (Address 4) when both ToDS and
FromDS are set, + 2 (QoS Control) for QoS subtypes, + 4 (HT Control) for QoS frames with the +HTC/Order
bit. The body of a data frame starts with LLC/SNAP (AA AA 03, OUI 00-00-00 or 00-00-F8, EtherType);
an A-MSDU (QoS Control bit 7) is read through its first subframe (14-byte subheader). Radiotap
(radiotap.org): version 0, length u16 little-endian at offset 2, then the 802.11 frame. Notes say why
an 802.11 frame has no IP: ``802.11-management``, ``802.11-control``, ``802.11-unknown-type``
(reserved type or protocol version), ``802.11-no-body`` (Null data), ``802.11-protected`` (encrypted
body; Windows captures hold decrypted bodies, read when they start with LLC/SNAP).

Dissection is columnar: every frame's bytes sit in one uint8 buffer at known offsets, their first
WINDOW bytes are copied to a compact matrix, and each header field is one numpy gather (or strided
view) for all frames that have it; rare cases (VLAN tags, IPv6 extension headers, fragments) are
handled in small masked passes.

Table conventions: ``payload_len`` is the transport payload carried by the frame (a later fragment's
whole payload); ``ip_id`` is the IPv4 identification, or the IPv6 fragment header's 32-bit
identification; ``notes`` lists ``ip-length-0`` (IPv4 total length or IPv6
payload length 0, as TSO senders capture: the captured length is used), ``truncated`` (caplen ends
inside a header) and ``bad-length`` (header lengths that contradict each other); Linux cooked captures
give ``direction`` from their packet type when the file says nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import polars as pl

from . import schema
from .addresses import ipv4_text, packed_text
from .diagnostics import warn

# LINKTYPE_* values (tcpdump.org link-layer header types).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_IEEE802_11 = 105
LINKTYPE_IEEE802_11_RADIOTAP = 127
#: DLT_RAW as some systems write it in place of LINKTYPE_RAW (12 on most BSDs, 14 on OpenBSD).
_RAW_ALIASES = (12, 14)
#: Link types the dissector reads; frames of others are kept with protocol "other" and reported.
SUPPORTED_LINK_TYPES = (
    LINKTYPE_NULL,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    LINKTYPE_LOOP,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_IEEE802_11,
    LINKTYPE_IEEE802_11_RADIOTAP,
    *_RAW_ALIASES,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
# Address families carried by null/loop headers: AF_INET is 2 everywhere, AF_INET6 differs by OS.
_AF_INET = 2
_AF_INET6 = (10, 23, 24, 28, 30)  # Linux, Windows, NetBSD/OpenBSD, FreeBSD, macOS

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
# IPv6 extension headers walked to the transport header (hop-by-hop, routing, fragment, destination
# options, AH, mobility, HIP, shim6); fragment and AH have their own length rules.
_IPV6_EXT = (0, 43, 44, 60, 51, 135, 139, 140)
_IPV6_FRAGMENT, _IPV6_AH = 44, 51
_MAX_VLAN_TAGS = 4
_MAX_IPV6_EXT = 8

#: Direction codes used by the readers' columnar paths.
DIR_NONE, DIR_IN, DIR_OUT, DIR_UNKNOWN = 0, 1, 2, 3
DIRECTIONS = (None, "in", "out", "unknown")
_DIR_CODE = {None: DIR_NONE, "in": DIR_IN, "out": DIR_OUT, "unknown": DIR_UNKNOWN}

_PROTO_LABELS = ("TCP", "UDP", "ICMP", "ICMPv6", "other")
_DIR_LABELS = pl.Series(DIRECTIONS[1:], dtype=pl.Utf8)
_FRAG_LABELS = ("none", "first", "later")
_NOTE_IPLEN0, _NOTE_TRUNC, _NOTE_BADLEN = 1, 2, 4
_NOTE_WLAN_MGMT, _NOTE_WLAN_CTRL, _NOTE_WLAN_UNKNOWN, _NOTE_WLAN_NOBODY, _NOTE_WLAN_PROTECTED = (
    8,
    16,
    32,
    64,
    128,
)
_NOTE_LABELS = (
    (_NOTE_IPLEN0, "ip-length-0"),
    (_NOTE_TRUNC, "truncated"),
    (_NOTE_BADLEN, "bad-length"),
    (_NOTE_WLAN_MGMT, "802.11-management"),
    (_NOTE_WLAN_CTRL, "802.11-control"),
    (_NOTE_WLAN_UNKNOWN, "802.11-unknown-type"),
    (_NOTE_WLAN_NOBODY, "802.11-no-body"),
    (_NOTE_WLAN_PROTECTED, "802.11-protected"),
)
# Python formats the distinct addresses when there are few of them; polars string ops otherwise.


@dataclass
class Packet:
    """One captured frame: UTC time in ns, the captured bytes and what the capture file says about it."""

    time_ns: int | None
    data: bytes
    interface: int = 0
    wirelen: int | None = None
    direction: str | None = None  # "in" / "out" / "unknown" (pcapng flags present, direction not given)
    comment: str | None = None
    #: Not a packet: a pcapng block Wireshark numbers as a frame (pcapng.SJE, a systemd Journal Export
    #: block), ``data`` its body; kept so that the frames after it keep their numbers.
    block: int | None = None


@dataclass
class Interface:
    """A capture interface. ``tsresol``: decimal exponent (6 = us, 9 = ns), or pcapng's raw if_tsresol
    byte (high bit set: binary exponent). ``tsoffset``: seconds added to every timestamp."""

    link_type: int
    tsresol: int = 6
    tsoffset: int = 0
    snaplen: int = 262144
    name: str | None = None


def ticks_to_ns(ticks: np.ndarray, iface: Interface) -> np.ndarray:
    """Timestamps in interface units (uint64) to UTC ns (int64), flooring sub-ns fractions."""
    ticks = np.asarray(ticks, dtype=np.uint64)
    r = iface.tsresol
    if r & 0x80:
        b = r & 0x7F
        if b <= 33:
            whole = (ticks >> np.uint64(b)).astype(np.int64) * 1_000_000_000
            frac = ((ticks & np.uint64((1 << b) - 1)) * np.uint64(1_000_000_000)) >> np.uint64(b)
            ns = whole + frac.astype(np.int64)
        else:  # rare: exact integer arithmetic in Python
            ns = np.array([(int(t) * 1_000_000_000) >> b for t in ticks], dtype=np.int64)
    elif r <= 9:
        ns = ticks.astype(np.int64) * (10 ** (9 - r))
    elif r <= 28:
        ns = (ticks // np.uint64(10 ** (r - 9))).astype(np.int64)
    else:  # finer than 1e-28 s: every 64-bit count is below a nanosecond
        ns = np.zeros(len(ticks), np.int64)
    return ns + iface.tsoffset * 1_000_000_000


def tsresol_supported(tsresol: int) -> bool:
    """An if_tsresol whose unit a 64-bit count can use: 10^-0 .. 10^-19 s or 2^-0 .. 2^-63 s."""
    return (tsresol & 0x7F) < 64 if tsresol & 0x80 else tsresol < 20


def ticks_fit(ticks: np.ndarray, iface: Interface) -> np.ndarray:
    """Which timestamps (interface units) :func:`ticks_to_ns` can give as int64 ns (years 1678 to 2262,
    ``tsoffset`` included); beyond that the arithmetic would wrap around."""
    ticks = np.asarray(ticks, dtype=np.uint64)
    limit = (1 << 63) - 1 - iface.tsoffset * 1_000_000_000  # largest ns before the offset is added
    r = iface.tsresol
    if limit < 0:
        return np.zeros(len(ticks), bool)
    if r & 0x80:
        b = r & 0x7F
        top = (((limit + 1) << b) - 1) // 1_000_000_000
    elif r <= 9:
        top = limit // 10 ** (9 - r)
    else:
        top = (limit + 1) * 10 ** (r - 9) - 1
    if top >= (1 << 64) - 1:
        return np.ones(len(ticks), bool)
    return ticks <= np.uint64(top)


def ns_to_ticks(time_ns: int, iface: Interface) -> int:
    """A UTC time in ns to interface units (floor), the inverse of :func:`ticks_to_ns` where exact."""
    t = time_ns - iface.tsoffset * 1_000_000_000
    r = iface.tsresol
    if r & 0x80:
        return (t << (r & 0x7F)) // 1_000_000_000
    if r <= 9:
        return t // 10 ** (9 - r)
    return t * 10 ** (r - 9)


#: Bytes of every frame's start copied to a compact (frames x WINDOW) matrix: enough for Ethernet + QinQ
#: + IPv6 + TCP, so that the common fields are read from one small array instead of the whole file.
WINDOW = 96


def store_walk(
    rows: list[tuple], out: np.ndarray, windows: np.ndarray, buf, data_field: str, window: int
) -> int:
    """Put the rows a pure-Python record walk found into ``out`` and their first bytes into ``windows``
    (as the C walk fills them); returns how many rows."""
    n = len(rows)
    if n:
        out[:n] = np.array(rows, dtype=out.dtype)
        if window > 0:
            w = header_windows(np.asarray(buf, np.uint8), out[data_field][:n], out["caplen"][:n], window)
            windows[: n * window] = w.reshape(-1)
    return n


def header_windows(buf: np.ndarray, off: np.ndarray, cap: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The first ``window`` bytes of every frame, zero-padded past its caplen: a (frames, window) array."""
    n = len(off)
    out = np.zeros((n, window), np.uint8)
    if not n or not len(buf):
        return out
    cols = np.arange(window)
    step = max(1, (1 << 20) // window)
    for s in range(0, n, step):
        valid = cols < np.asarray(cap[s : s + step], np.int64)[:, None]
        idx = np.where(valid, np.asarray(off[s : s + step], np.int64)[:, None] + cols, 0)
        block = buf[idx]
        block[~valid] = 0
        out[s : s + step] = block
    return out


_KINDS = {
    "u8": (1, "u1", np.uint8),
    "be16": (2, ">u2", np.uint16),
    "be32": (4, ">u4", np.uint32),
    "le32": (4, "<u4", np.uint32),
    "be64": (8, ">u8", np.uint64),
}


def _view(flat: np.ndarray, kind: str, start: int = 0) -> np.ndarray:
    """Field ``kind`` at every byte position from ``start`` of a flat uint8 array (unaligned, no copy)."""
    size, dt, _ = _KINDS[kind]
    count = max(0, len(flat) - start - size + 1)
    return np.ndarray((count,), dtype=dt, buffer=flat, offset=start, strides=(1,))


class _Fields:
    """The frames' bytes: their header windows, and the whole buffer for what lies past a window."""

    def __init__(self, buf: np.ndarray, off: np.ndarray, windows: np.ndarray) -> None:
        self.buf, self.off = buf, off
        self.windows = np.ascontiguousarray(windows)
        self.n, self.width = self.windows.shape
        self.flat = self.windows.reshape(-1)
        self.all = np.arange(self.n)  # "every frame": callers pass this very array to skip a gather
        self._views: dict = {}

    def column(self, kind: str, pos: int) -> np.ndarray:
        """Field ``kind`` at offset ``pos`` of every frame's window: a strided view, no copy."""
        return np.ndarray(
            (self.n,), dtype=_KINDS[kind][1], buffer=self.windows, offset=pos, strides=(self.width,)
        )

    def window_view(self, kind: str, start: int) -> np.ndarray:
        key = (kind, start)
        if key not in self._views:
            self._views[key] = _view(self.flat, kind, start)
        return self._views[key]

    def buffer_view(self, kind: str) -> np.ndarray:
        key = (kind, None)
        if key not in self._views:
            self._views[key] = _view(self.buf, kind)
        return self._views[key]

    def at(self, rows: np.ndarray, pos, extent: int) -> _Header:
        """The header at offset ``pos`` (per frame or one for all) of the frames ``rows``, ``extent``
        bytes long (every field read through it lies within those bytes)."""
        return _Header(self, rows, pos, extent)

    def u8(self, rows: np.ndarray, pos) -> np.ndarray:
        return _Header(self, rows, pos, 1).get("u8", 0)

    def be16(self, rows: np.ndarray, pos) -> np.ndarray:
        return _Header(self, rows, pos, 2).get("be16", 0)

    def be32(self, rows: np.ndarray, pos) -> np.ndarray:
        return _Header(self, rows, pos, 4).get("be32", 0)

    def le32(self, rows: np.ndarray, pos) -> np.ndarray:
        return _Header(self, rows, pos, 4).get("le32", 0)


class _Header:
    """Where one header starts in a set of frames; fields are read by their offset in the header.

    Three cases, cheapest first: one offset for every frame inside the windows (strided column views),
    per-frame offsets inside the windows (one flat gather per field), and some headers past the
    window (those few read from the whole buffer).
    """

    def __init__(self, f: _Fields, rows: np.ndarray, pos, extent: int) -> None:
        self.f, self.rows = f, rows
        w = f.width
        if not np.isscalar(pos) and len(pos) and pos[0] + extent <= w and (pos == pos[0]).all():
            pos = int(pos[0])
        self.const = None
        if np.isscalar(pos):
            start = cast(int, pos)  # an int or numpy integer (numpy's stub narrows to any scalar)
            if start + extent <= w:
                self.const = int(start)
                return
            pos = np.full(len(rows), start, np.int64)
        fits = pos + extent <= w
        self.fits = None if fits.all() else fits
        if self.fits is None:
            self.flat = rows * w + pos
        else:
            self.flat = rows[fits] * w + pos[fits]
            self.outside = f.off[rows[~fits]] + pos[~fits]

    def get(self, kind: str, k: int) -> np.ndarray:
        """Field ``kind`` at offset ``k`` of the header, as a native array."""
        dtype = _KINDS[kind][2]
        f = self.f
        if self.const is not None:
            col = f.column(kind, self.const + k)
            return (col if self.rows is f.all else col[self.rows]).astype(dtype)
        inside = f.window_view(kind, k)[self.flat].astype(dtype)
        if self.fits is None:
            return inside
        out = np.empty(len(self.rows), dtype)
        out[self.fits] = inside
        out[~self.fits] = f.buffer_view(kind)[self.outside + k]
        return out

    def u8(self, k: int) -> np.ndarray:
        return self.get("u8", k)

    def be16(self, k: int) -> np.ndarray:
        return self.get("be16", k)

    def be32(self, k: int) -> np.ndarray:
        return self.get("be32", k)

    def be64(self, k: int) -> np.ndarray:
        return self.get("be64", k)


def _as_array(values, n: int, dtype, default=0) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=dtype)
    if np.isscalar(values):
        return np.full(n, values, dtype=dtype)
    return np.asarray(values, dtype=dtype)


def direction_codes(directions: Sequence[str | None]) -> np.ndarray:
    """Direction strings (in/out/unknown/None) to the int8 codes of the columnar API."""
    try:
        return np.fromiter((_DIR_CODE[d] for d in directions), dtype=np.int8, count=len(directions))
    except KeyError as e:
        raise ValueError(f"direction must be 'in', 'out', 'unknown' or None, not {e.args[0]!r}") from None


def dissect(
    times_ns: Sequence[int | None],
    datas: Sequence[bytes],
    link_types: int | Sequence[int],
    caplens: Sequence[int] | None = None,
    wirelens: Sequence[int | None] | None = None,
    interfaces: int | Sequence[int] | None = None,
    directions: Sequence[str | None] | None = None,
    *,
    comments: Sequence[str | None] | None = None,
    with_data: bool = False,
    source: str | None = None,
) -> pl.DataFrame:
    """Frames (FRAMES schema, ``frame`` 1-based in input order) from per-frame times, bytes and link types.

    ``caplens`` defaults to ``len(data)``; ``wirelens`` to the caplen; ``directions`` are "in", "out",
    "unknown" or None; ``comments`` adds a ``comment`` column; ``with_data`` a ``data`` Binary column.
    ``source`` names the input in warnings.
    """
    n = len(datas)
    lens = np.fromiter((len(d) for d in datas), dtype=np.int64, count=n)
    offsets = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(lens[:-1], out=offsets[1:])
    buf = np.frombuffer(b"".join(datas), dtype=np.uint8)
    caps = lens if caplens is None else np.minimum(np.asarray(caplens, dtype=np.int64), lens)
    tvalid = None
    if not isinstance(times_ns, np.ndarray) and any(t is None for t in times_ns):
        tvalid = np.fromiter((t is not None for t in times_ns), dtype=bool, count=n)
        times = np.fromiter((t or 0 for t in times_ns), dtype=np.int64, count=n)
    else:
        times = np.asarray(times_ns, dtype=np.int64).reshape(n)
    if isinstance(wirelens, np.ndarray):
        wl = wirelens.astype(np.int64)
    elif wirelens is not None:
        wl = np.fromiter(
            (c if w is None else w for w, c in zip(wirelens, caps.tolist())), dtype=np.int64, count=n
        )
    else:
        wl = None
    dirs = direction_codes(directions) if directions is not None else None
    return dissect_buffer(
        buf,
        offsets,
        caps,
        times,
        link_types,
        wirelens=wl,
        interfaces=interfaces,
        directions=dirs,
        time_valid=tvalid,
        comments=comments,
        with_data=with_data,
        source=source,
    )


def dissect_buffer(
    buf: np.ndarray,
    offsets: np.ndarray,
    caplens: np.ndarray,
    times_ns: np.ndarray,
    link_types: int | np.ndarray | Sequence[int],
    *,
    wirelens: np.ndarray | None = None,
    interfaces: int | np.ndarray | Sequence[int] | None = None,
    directions: np.ndarray | None = None,
    time_valid: np.ndarray | None = None,
    comments: Sequence[str | None] | None = None,
    with_data: bool = False,
    source: str | None = None,
    windows: np.ndarray | None = None,
    first_frame: int = 1,
    finish: bool = True,
) -> pl.DataFrame:
    """The columnar form of :func:`dissect`: frame i is ``buf[offsets[i] : offsets[i] + caplens[i]]``.

    ``directions`` are int8 codes (0 none, 1 in, 2 out, 3 unknown); ``time_valid`` marks frames that have
    a time (pcapng simple packet blocks have none); ``windows`` are the frames' first bytes as
    :func:`header_windows` makes them (the readers' C walk copies them on the way). Readers dissect
    chunk by chunk with ``first_frame`` and ``finish=False``, then call :func:`finish_frames` once.
    """
    n = len(offsets)
    off = np.asarray(offsets, dtype=np.int64)
    cap = np.asarray(caplens, dtype=np.int64)
    lt = _as_array(link_types, n, np.int32)
    wl = cap if wirelens is None else np.asarray(wirelens, dtype=np.int64)
    ifc = _as_array(interfaces, n, np.int32)
    dirs = _as_array(directions, n, np.int8, DIR_NONE).copy()
    buf = np.asarray(buf, dtype=np.uint8)
    if n and (int((off + cap).max()) > len(buf) or int(off.min()) < 0):
        raise ValueError("a frame lies outside the buffer")
    if windows is None:
        windows = header_windows(buf, off, cap)
    d = _Dissection(_Fields(buf, off, windows), cap, n)
    d.link_layer(lt, dirs)
    d.network_layer()
    d.transport_layer()
    df = d.table(times_ns, time_valid, wl, ifc, lt, dirs, first_frame)
    if comments is not None:
        df = df.with_columns(pl.Series("comment", comments, dtype=pl.Utf8))
    if with_data:
        df = df.with_columns(_binary(buf, off, cap).alias("data"))
    return finish_frames([df], source=source) if finish else df


def finish_frames(parts: list[pl.DataFrame], *, source: str | None = None) -> pl.DataFrame:
    """Chunks dissected with ``finish=False`` as one FRAMES table: later fragments get their ports, and
    frames of unsupported link types are reported once (``source`` names the input)."""
    df = pl.concat(parts, how="vertical") if len(parts) != 1 else parts[0]
    df = schema.conform(df, schema.FRAMES)
    unsupported = (
        df.filter(pl.col("link_type").is_not_null() & ~pl.col("link_type").is_in(SUPPORTED_LINK_TYPES))
        .group_by("link_type")
        .len()
    )
    for kind, count in sorted(unsupported.rows()):
        warn(
            f"{source or 'frames'}: {count:,} frame(s) of unsupported link type {kind} kept without "
            f"dissection (protocol 'other')"
        )
    if df.height and (df["fragment"] == "later").any():
        df = _ports_from_first_fragments(df)
    return df


class _Dissection:
    """Per-frame header fields, filled layer by layer over masked subsets."""

    def __init__(self, f: _Fields, cap: np.ndarray, n: int) -> None:
        self.f, self.cap, self.n = f, cap, n
        self.all = f.all
        self.net = np.full(n, -1, np.int64)  # network header offset in the frame, -1: none
        self.etype = np.zeros(n, np.int32)  # 0x0800 / 0x86DD / other
        self.ipver = np.zeros(n, np.int8)  # 0: not IP
        self.proto = np.full(n, -1, np.int16)  # IP protocol of the transport header, -1: unknown
        self.l4 = np.full(n, -1, np.int64)  # transport header offset in the frame
        self.l4len = np.full(n, -1, np.int64)  # bytes from the transport header to the IP end
        self.frag = np.zeros(n, np.int8)  # 0 none, 1 first, 2 later
        self.ipid = np.zeros(n, np.int64)
        self.has_ipid = np.zeros(n, bool)
        self.has_addr = np.zeros(n, bool)
        self.src4 = np.zeros(n, np.uint32)
        self.dst4 = np.zeros(n, np.uint32)
        self.v6rows = np.zeros(0, np.int64)
        self.src6 = np.zeros((0, 16), np.uint8)
        self.dst6 = np.zeros((0, 16), np.uint8)
        self.sport = np.zeros(n, np.int32)
        self.dport = np.zeros(n, np.int32)
        self.has_ports = np.zeros(n, bool)
        self.seq = np.zeros(n, np.uint32)
        self.flags = np.zeros(n, np.uint8)
        self.has_tcp = np.zeros(n, bool)
        self.payload = np.zeros(n, np.int64)
        self.has_payload = np.zeros(n, bool)
        self.notes = np.zeros(n, np.uint8)

    # -- link layer ------------------------------------------------------------------------------
    def link_layer(self, lt: np.ndarray, dirs: np.ndarray) -> None:
        f, cap = self.f, self.cap
        kinds = _distinct(lt)
        for kind in kinds:
            rows = np.flatnonzero(lt == kind) if len(kinds) > 1 else self.all
            if kind == LINKTYPE_ETHERNET:
                self._ethernet(rows)
            elif kind in (LINKTYPE_RAW, *_RAW_ALIASES):
                rows = rows[cap[rows] >= 1]
                ver = f.u8(rows, 0) >> 4
                self.net[rows] = 0
                self.etype[rows] = np.where(ver == 4, ETH_IPV4, np.where(ver == 6, ETH_IPV6, 0))
            elif kind in (LINKTYPE_IPV4, LINKTYPE_IPV6):
                self.net[rows] = 0
                self.etype[rows] = ETH_IPV4 if kind == LINKTYPE_IPV4 else ETH_IPV6
            elif kind == LINKTYPE_LINUX_SLL:
                rows = rows[cap[rows] >= 16]
                self.net[rows] = 16
                self.etype[rows] = f.be16(rows, 14)
                self._sll_direction(rows, f.be16(rows, 0), dirs)
            elif kind == LINKTYPE_LINUX_SLL2:
                rows = rows[cap[rows] >= 20]
                self.net[rows] = 20
                self.etype[rows] = f.be16(rows, 0)
                self._sll_direction(rows, f.u8(rows, 10), dirs)
            elif kind == LINKTYPE_IEEE802_11:
                self._ieee80211(rows, np.zeros(len(rows), np.int64))
            elif kind == LINKTYPE_IEEE802_11_RADIOTAP:
                self._radiotap(rows)
            elif kind in (LINKTYPE_NULL, LINKTYPE_LOOP):
                rows = rows[cap[rows] >= 4]
                if kind == LINKTYPE_LOOP:
                    af = f.be32(rows, 0)
                else:  # host byte order of the writer: the family is small, so whichever order fits
                    af = f.le32(rows, 0)
                    af = np.where(af > 0xFFFF, af.byteswap(), af)
                self.net[rows] = 4
                self.etype[rows] = np.where(
                    af == _AF_INET, ETH_IPV4, np.where(np.isin(af, _AF_INET6), ETH_IPV6, 0)
                )
            # other link types: nothing dissected; finish_frames reports them once for the whole input

    def _ethernet(self, rows: np.ndarray) -> None:
        f, cap = self.f, self.cap
        keep = cap[rows] >= 14
        if not keep.all():
            rows = rows[keep]
        et = f.be16(rows, 12).astype(np.int32)
        pos = np.full(len(rows), 14, np.int64)
        for _ in range(_MAX_VLAN_TAGS):
            # 802.1Q, 802.1ad, and the pre-standard QinQ TPIDs
            tagged = (et == 0x8100) | (et == 0x88A8) | (et == 0x9100) | (et == 0x9200)
            tagged &= cap[rows] >= pos + 4
            if not tagged.any():
                break
            t = np.flatnonzero(tagged)
            et[t] = f.be16(rows[t], pos[t] + 2)
            pos[t] += 4
        self.net[rows] = pos
        self.etype[rows] = et

    def _radiotap(self, rows: np.ndarray) -> None:
        f, cap = self.f, self.cap
        short = cap[rows] < 8
        self.notes[rows[short]] |= _NOTE_TRUNC
        rows = rows[~short]
        length = f.u8(rows, 2).astype(np.int64) | (f.u8(rows, 3).astype(np.int64) << 8)
        good = (f.u8(rows, 0) == 0) & (length >= 8) & (length <= cap[rows])
        self.notes[rows[~good]] |= _NOTE_BADLEN
        self._ieee80211(rows[good], length[good])

    def _ieee80211(self, rows: np.ndarray, base: np.ndarray) -> None:
        """802.11 frames whose MAC header starts at ``base``: data frames to their LLC/SNAP EtherType."""
        f, cap = self.f, self.cap
        short = cap[rows] < base + 2  # control frames are as short as 10 bytes: data ones need 24
        self.notes[rows[short]] |= _NOTE_TRUNC
        rows, base = rows[~short], base[~short]
        fc0, fc1 = f.u8(rows, base), f.u8(rows, base + 1)
        ftype, subtype = (fc0 >> 2) & 3, (fc0 >> 4) & 0xF
        unknown = ((fc0 & 3) != 0) | (ftype == 3)
        self.notes[rows[unknown]] |= _NOTE_WLAN_UNKNOWN
        self.notes[rows[~unknown & (ftype == 0)]] |= _NOTE_WLAN_MGMT
        self.notes[rows[~unknown & (ftype == 1)]] |= _NOTE_WLAN_CTRL
        data = ~unknown & (ftype == 2)
        nobody = data & ((subtype & 4) != 0)
        self.notes[rows[nobody]] |= _NOTE_WLAN_NOBODY
        keep = data & ~nobody
        short = keep & (cap[rows] < base + 24)
        self.notes[rows[short]] |= _NOTE_TRUNC
        keep &= ~short
        rows, base, fc1, subtype = rows[keep], base[keep], fc1[keep], subtype[keep]
        qos = (subtype & 8) != 0
        four = (fc1 & 3) == 3
        qos_at = base + 24 + np.where(four, 6, 0)
        hdr = qos_at - base + np.where(qos, 2, 0) + np.where(qos & ((fc1 & 0x80) != 0), 4, 0)
        ok = cap[rows] >= base + hdr
        self.notes[rows[~ok]] |= _NOTE_TRUNC
        rows, base, fc1, qos, qos_at, hdr = rows[ok], base[ok], fc1[ok], qos[ok], qos_at[ok], hdr[ok]
        llc = base + hdr
        q = np.flatnonzero(qos)
        amsdu = np.zeros(len(rows), bool)
        amsdu[q] = (f.u8(rows[q], qos_at[q]) & 0x80) != 0
        llc = llc + np.where(amsdu, 14, 0)  # first A-MSDU subframe: DA, SA, length
        ok = cap[rows] >= llc + 8
        self.notes[rows[~ok]] |= _NOTE_TRUNC
        rows, llc, fc1 = rows[ok], llc[ok], fc1[ok]
        h = f.at(rows, llc, 8)
        oui = h.u8(5)
        snap = (
            (h.u8(0) == 0xAA)
            & (h.u8(1) == 0xAA)
            & (h.u8(2) == 3)
            & (h.u8(3) == 0)
            & (h.u8(4) == 0)
            & ((oui == 0) | (oui == 0xF8))
        )
        self.notes[rows[~snap & ((fc1 & 0x40) != 0)]] |= _NOTE_WLAN_PROTECTED
        self.net[rows[snap]] = llc[snap] + 8
        self.etype[rows[snap]] = h.be16(6)[snap]

    @staticmethod
    def _sll_direction(rows: np.ndarray, pkttype: np.ndarray, dirs: np.ndarray) -> None:
        # Linux packet types: 0 to us, 1 broadcast, 2 multicast, 3 to someone else, 4 sent by us.
        unset = dirs[rows] == DIR_NONE
        code = np.where(pkttype == 4, DIR_OUT, np.where(pkttype <= 3, DIR_IN, DIR_UNKNOWN)).astype(np.int8)
        dirs[rows[unset]] = code[unset]

    # -- network layer ---------------------------------------------------------------------------
    def network_layer(self) -> None:
        f, cap, net = self.f, self.cap, self.net
        has_net = (net >= 0) & (cap > net)
        v4 = np.flatnonzero(has_net & (self.etype == ETH_IPV4))
        v6 = np.flatnonzero(has_net & (self.etype == ETH_IPV6))
        if len(v4):
            self._ipv4(v4[(f.u8(v4, net[v4]) >> 4) == 4])
        if len(v6):
            self._ipv6(v6[(f.u8(v6, net[v6]) >> 4) == 6])

    def _ipv4(self, rows: np.ndarray) -> None:
        f, cap = self.f, self.cap
        self.ipver[rows] = 4
        short = cap[rows] < self.net[rows] + 20
        if short.any():
            self.notes[rows[short]] |= _NOTE_TRUNC
            rows = rows[~short]
        net = self.net[rows]
        h = f.at(rows, net, 20)
        ihl = (h.u8(0) & 0x0F).astype(np.int64) * 4
        total = h.be16(2).astype(np.int64)
        ff = h.be16(6)
        self.ipid[rows] = h.be16(4)
        self.has_ipid[rows] = True
        self.has_addr[rows] = True
        self.src4[rows] = h.be32(12)
        self.dst4[rows] = h.be32(16)
        proto = h.u8(9).astype(np.int16)
        zero = total == 0
        if zero.any():  # TSO: the sender's capture shows total length 0; trust the captured length
            total[zero] = cap[rows[zero]] - net[zero]
            self.notes[rows[zero]] |= _NOTE_IPLEN0
        bad = (ihl < 20) | (total < ihl)
        if bad.any():
            self.notes[rows[bad]] |= _NOTE_BADLEN
            good = ~bad
            rows, net, ihl = rows[good], net[good], ihl[good]
            total, ff, proto = total[good], ff[good], proto[good]
        fo = ff & 0x1FFF
        mf = (ff & 0x2000) != 0
        self.frag[rows] = np.where(fo > 0, 2, np.where(mf, 1, 0))
        self.proto[rows] = proto
        self.l4[rows] = net + ihl
        self.l4len[rows] = total - ihl

    def _ipv6(self, rows: np.ndarray) -> None:
        f, cap = self.f, self.cap
        self.ipver[rows] = 6
        short = cap[rows] < self.net[rows] + 40
        self.notes[rows[short]] |= _NOTE_TRUNC
        rows = rows[~short]
        net = self.net[rows]
        h = f.at(rows, net, 40)
        plen = h.be16(4).astype(np.int64)
        nh = h.u8(6).astype(np.int16)
        self.v6rows = rows
        self.has_addr[rows] = True
        self.src6 = np.stack([h.be64(8), h.be64(16)], axis=1).astype(">u8").view(np.uint8)
        self.dst6 = np.stack([h.be64(24), h.be64(32)], axis=1).astype(">u8").view(np.uint8)
        zero = plen == 0
        if zero.any():  # TSO (or a jumbogram): use the captured length
            plen[zero] = cap[rows[zero]] - net[zero] - 40
            self.notes[rows[zero]] |= _NOTE_IPLEN0
        pos = net + 40  # offset of the current header in the frame
        end = net + 40 + plen
        frag = np.zeros(len(rows), np.int8)
        walking = np.isin(nh, _IPV6_EXT)
        for _ in range(_MAX_IPV6_EXT):
            w = np.flatnonzero(walking)
            if not len(w):
                break
            fits = cap[rows[w]] >= pos[w] + 8
            self.notes[rows[w[~fits]]] |= _NOTE_TRUNC
            walking[w[~fits]] = False
            nh[w[~fits]] = -1
            w = w[fits]
            x = f.at(rows[w], pos[w], 8)
            cur = nh[w]
            nxt = x.u8(0).astype(np.int16)
            hl = x.u8(1).astype(np.int64)
            hlen = np.where(cur == _IPV6_AH, (hl + 2) * 4, np.where(cur == _IPV6_FRAGMENT, 8, (hl + 1) * 8))
            isfrag = cur == _IPV6_FRAGMENT
            if isfrag.any():
                fw = w[isfrag]
                fo = x.be16(2)[isfrag]
                frag[fw] = np.where((fo >> 3) > 0, 2, np.where((fo & 1) != 0, 1, 0))
                self.ipid[rows[fw]] = x.be32(4)[isfrag].astype(np.int64)
                self.has_ipid[rows[fw]] = True
            nh[w] = nxt
            pos[w] += hlen
            # a later fragment carries data, not headers, after its fragment header
            walking[w] = np.isin(nxt, _IPV6_EXT) & (frag[w] != 2)
        self.frag[rows] = frag
        ok = nh >= 0
        bad = ok & (pos > end)
        self.notes[rows[bad]] |= _NOTE_BADLEN
        ok &= ~bad
        self.proto[rows[ok]] = nh[ok]
        self.l4[rows[ok]] = pos[ok]
        self.l4len[rows[ok]] = (end - pos)[ok]

    # -- transport layer -------------------------------------------------------------------------
    def transport_layer(self) -> None:
        f, cap = self.f, self.cap
        known = self.proto >= 0
        later = known & (self.frag == 2)
        self.payload[later] = self.l4len[later]
        self.has_payload[later] = True
        head = known & ~later
        proto = self.proto
        for p, hdr in ((IPPROTO_TCP, 20), (IPPROTO_UDP, 8)):
            rows = np.flatnonzero(head & (proto == p))
            if not len(rows):
                continue
            l4 = self.l4[rows]
            ported = cap[rows] >= l4 + 4
            pr = rows[ported] if not ported.all() else rows
            h = f.at(pr, l4[ported], 14 if p == IPPROTO_TCP else 4)
            self.sport[pr] = h.be16(0)
            self.dport[pr] = h.be16(2)
            self.has_ports[pr] = True
            if p == IPPROTO_TCP:
                full = cap[rows] >= l4 + 14
                if not full.all():
                    h = f.at(rows[full], l4[full], 14)
                fr = h.rows
                self.seq[fr] = h.be32(4)
                self.flags[fr] = h.u8(13)
                self.has_tcp[fr] = True
                doff = (h.u8(12) >> 4).astype(np.int64) * 4
                # a data offset below 5 words is no TCP header: the payload length is unknown
                self.payload[fr] = np.where(doff < 20, -1, self.l4len[fr] - doff)
                self.has_payload[fr] = True
                self.notes[rows[~full]] |= _NOTE_TRUNC
            else:
                self.payload[rows] = self.l4len[rows] - hdr
                self.has_payload[rows] = True
                self.notes[rows[~ported]] |= _NOTE_TRUNC
        icmp = head & ((proto == IPPROTO_ICMP) | (proto == IPPROTO_ICMPV6))
        self.payload[icmp] = self.l4len[icmp] - 8
        self.has_payload[icmp] = True
        other = (
            head
            & (proto != IPPROTO_TCP)
            & (proto != IPPROTO_UDP)
            & (proto != IPPROTO_ICMP)
            & (proto != IPPROTO_ICMPV6)
        )
        self.payload[other] = self.l4len[other]
        self.has_payload[other] = True
        negative = self.has_payload & (self.payload < 0)
        self.has_payload[negative] = False
        self.notes[negative] |= _NOTE_BADLEN

    # -- the table -------------------------------------------------------------------------------
    def _addresses(self) -> tuple[pl.Series, pl.Series]:
        import pyarrow as pa  # imported when a frames table is built (not by every command)

        n = self.n
        v4 = np.flatnonzero((self.ipver == 4) & self.has_addr)
        labels: list[pl.Series] = []
        src_code = np.full(n, -1, np.int64)
        dst_code = np.full(n, -1, np.int64)
        base = 0
        if len(v4):
            uniq, code = _factorize_u32(np.concatenate([self.src4[v4], self.dst4[v4]]))
            labels.append(ipv4_text(uniq))
            src_code[v4] = code[: len(v4)]
            dst_code[v4] = code[len(v4) :]
            base = len(uniq)
        if len(self.v6rows):
            k = len(self.v6rows)
            both6 = np.ascontiguousarray(np.concatenate([self.src6, self.dst6]))
            arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), 2 * k, [None, pa.py_buffer(both6)])
            s6 = pl.Series(arr).cast(pl.Binary)
            uniq6 = s6.unique()
            code = s6.replace_strict(uniq6, pl.int_range(len(uniq6), dtype=pl.Int64, eager=True)).to_numpy()
            labels.append(pl.Series([packed_text(u) for u in uniq6.to_list()], dtype=pl.Utf8))
            src_code[self.v6rows] = code[:k] + base
            dst_code[self.v6rows] = code[k:] + base
        table = pl.concat(labels) if labels else pl.Series([], dtype=pl.Utf8)
        return _lookup(table, src_code), _lookup(table, dst_code)

    def table(self, times, time_valid, wl, ifc, lt, dirs, first_frame: int) -> pl.DataFrame:
        import pyarrow as pa  # imported when a frames table is built (not by every command)

        n = self.n
        src, dst = self._addresses()
        p = self.proto
        proto_code = np.full(n, 4, np.int64)  # not IP, IP without a usable header, other protocols
        proto_code[p == IPPROTO_TCP] = 0
        proto_code[p == IPPROTO_UDP] = 1
        proto_code[(p == IPPROTO_ICMP) & (self.ipver == 4)] = 2
        proto_code[(p == IPPROTO_ICMPV6) & (self.ipver == 6)] = 3
        ip = self.ipver > 0
        frag_code = np.where(p >= 0, self.frag.astype(np.int64), -1)
        t = np.asarray(times, dtype=np.int64)
        cols = {
            "frame": pa.array(np.arange(first_frame, first_frame + n, dtype=np.int64)),
            "time": pa.array(t, mask=None if time_valid is None else ~np.asarray(time_valid, bool)),
            "caplen": pa.array(self.cap.astype(np.int32)),
            "wirelen": pa.array(np.asarray(wl, dtype=np.int64).astype(np.int32)),
            "interface": pa.array(ifc.astype(np.int32)),
            "link_type": pa.array(lt.astype(np.int32)),
            "ip_version": pa.array(self.ipver, mask=~ip),
            "src_port": pa.array(self.sport, mask=~self.has_ports),
            "dst_port": pa.array(self.dport, mask=~self.has_ports),
            "payload_len": pa.array(self.payload.astype(np.int32), mask=~self.has_payload),
            "tcp_flags": pa.array(self.flags, mask=~self.has_tcp),
            "tcp_seq": pa.array(self.seq, mask=~self.has_tcp),
            "ip_id": pa.array(self.ipid, mask=~self.has_ipid),
        }
        df = pl.from_arrow(pa.table(cols))
        assert isinstance(df, pl.DataFrame)
        df = df.with_columns(
            pl.col("time").cast(schema.TIME),
            _lookup(_DIR_LABELS, dirs.astype(np.int64) - 1).alias("direction"),
            _lookup(pl.Series(_PROTO_LABELS), proto_code).alias("protocol"),
            src.alias("src_addr"),
            dst.alias("dst_addr"),
            _lookup(pl.Series(_FRAG_LABELS), frag_code).alias("fragment"),
            _notes(self.notes).alias("notes"),
        )
        return schema.conform(df, schema.FRAMES)


def _distinct(values: np.ndarray) -> list[int]:
    """The distinct values of a (usually constant) integer array."""
    if not len(values):
        return []
    lo, hi = int(values.min()), int(values.max())
    return [lo] if lo == hi else np.unique(values).tolist()


def _lookup(labels: pl.Series, codes: np.ndarray) -> pl.Series:
    """labels[codes], null where the code is negative."""
    import pyarrow as pa  # imported when a frames table is built (not by every command)

    if len(codes):
        lo, hi = int(codes.min()), int(codes.max())
        if lo == hi:  # one value for every frame (no direction in a pcap, no fragments...): no gather
            return pl.repeat(None if lo < 0 else labels[lo], len(codes), dtype=pl.Utf8, eager=True)
    missing = codes < 0
    idx = pl.Series(pa.array(codes.astype(np.int64), mask=missing if missing.any() else None))
    return labels.gather(idx)


def _factorize_u32(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each value among them). Addresses cluster in few /16 prefixes: then a
    lookup table over those prefixes does it in a few linear passes; otherwise a polars hash."""
    hi = (values >> 16).astype(np.intp)
    present = np.zeros(1 << 16, bool)
    present[hi] = True
    prefixes = np.flatnonzero(present)
    if len(prefixes) <= 256:
        slot = np.zeros(1 << 16, np.intp)
        slot[prefixes] = np.arange(len(prefixes))
        key = (slot[hi] << 16) | (values & 0xFFFF)
        seen = np.zeros(len(prefixes) << 16, bool)
        seen[key] = True
        keys = np.flatnonzero(seen)
        index = np.empty(len(prefixes) << 16, np.int64)
        index[keys] = np.arange(len(keys))
        return ((prefixes[keys >> 16] << 16) | (keys & 0xFFFF)).astype(np.uint32), index[key]
    s = pl.Series(values)
    uniq = s.unique()
    codes = s.replace_strict(uniq, pl.int_range(len(uniq), dtype=pl.Int64, eager=True))
    return uniq.to_numpy(), codes.to_numpy()


_NOTE_NAMES = [",".join(label for bit, label in _NOTE_LABELS if code & bit) or None for code in range(256)]


def _notes(bits: np.ndarray) -> pl.Series:
    return pl.Series(_NOTE_NAMES, dtype=pl.Utf8).gather(pl.Series(bits.astype(np.int64)))


def _binary(buf: np.ndarray, off: np.ndarray, cap: np.ndarray) -> pl.Series:
    """The frames' bytes as one Binary column, gathered into a single contiguous buffer."""
    import pyarrow as pa  # imported when a frames table is built (not by every command)

    n = len(off)
    ends = np.zeros(n + 1, np.int64)
    np.cumsum(cap, out=ends[1:])
    total = int(ends[-1])
    if total and n:
        starts = np.repeat(off - ends[:-1], cap)
        data = buf[starts + np.arange(total)]
    else:
        data = np.zeros(0, np.uint8)
    arr = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(ends), pa.py_buffer(data)]
    )
    return pl.Series("data", arr).cast(pl.Binary)


#: A later IP fragment belongs to the first fragment with the same values of these columns ...
FRAGMENT_KEY = ("ip_version", "src_addr", "dst_addr", "ip_id", "protocol")
#: ... nearest to it in capture order and at most this far from it in time (ns; the longest IP reassembly
#: timeout in use, Windows' and Linux's 60 s: an IP id reused later is another datagram).
FRAGMENT_TOLERANCE_NS = 60 * 1_000_000_000


def first_fragments(
    df: pl.DataFrame, *, order: str = "frame", time: str = "time", tolerance_ns: int = FRAGMENT_TOLERANCE_NS
) -> pl.DataFrame:
    """(``order``, ``first_of``): for each later IP fragment of a frames table, the ``order`` value (frame
    number or row index) of its first fragment: same :data:`FRAGMENT_KEY`, nearest in capture order, not
    more than ``tolerance_ns`` apart when both times are known. Later fragments without one are absent."""
    key = list(FRAGMENT_KEY)
    frag = pl.col("fragment")
    first = (
        df.filter(frag == "first")
        .select(
            pl.col(order).alias("_o"),
            pl.col(order).alias("first_of"),
            *key,
            pl.col(time).cast(pl.Int64).alias("_t_first"),
        )
        .sort("_o")
    )
    later = (
        df.filter(frag == "later")
        .select(pl.col(order).alias("_o"), order, *key, pl.col(time).cast(pl.Int64).alias("_t_later"))
        .sort("_o")
    )
    if not first.height or not later.height:
        return pl.DataFrame(
            {order: [], "first_of": []}, schema={order: df.schema[order], "first_of": df.schema[order]}
        )
    m = later.join_asof(first, on="_o", by=key, strategy="nearest", check_sortedness=False)
    far = ((pl.col("_t_later") - pl.col("_t_first")).abs() > tolerance_ns).fill_null(False)
    return m.filter(pl.col("first_of").is_not_null() & ~far).select(order, "first_of")


def _ports_from_first_fragments(df: pl.DataFrame) -> pl.DataFrame:
    """Later IP fragments take the ports of their first fragment (:func:`first_fragments`)."""
    ports = df.select(
        pl.col("frame").alias("first_of"), pl.col("src_port").alias("_sp"), pl.col("dst_port").alias("_dp")
    )
    found = first_fragments(df).join(ports, on="first_of", how="left").drop("first_of")
    out = df.join(found, on="frame", how="left", maintain_order="left")
    return out.with_columns(
        pl.coalesce("src_port", "_sp").alias("src_port"), pl.coalesce("dst_port", "_dp").alias("dst_port")
    ).drop("_sp", "_dp")
