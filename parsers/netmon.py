"""Microsoft Network Monitor 2.x capture files (.cap, signature ``GMBU``): reader and a small writer.

Sources: CAPTUREFILE_HEADER_VALUES (learn.microsoft.com, windows/win32/netmon2/capturefile-header-values),
the "Network Monitor Capture File Format" document of Network Monitor 3.x (frame layout, media types,
process and comment tables), and Wireshark's notes on how the versions differ (bug 10190).

File header (128 bytes, little-endian; offsets in brackets): signature 'GMBU' [0], BCD version minor [4]
and major (2) [5], MacType u16 [6], capture start as a SYSTEMTIME (eight u16: year, month, day of week,
day, hour, minute, second, millisecond) in the capturing machine's LOCAL time [8], frame table offset
and length [24, 28], user data [32, 36], comment table [40, 44], process info table offset and count
[48, 52] (2.2 and later; statistics before), extended info offset and length [56, 60] (2.3; network
info before), conversation statistics [64, 68]; zero padding to 128.

Frame table: one u32 file offset per frame, in frame order (records need not be contiguous nor in order).
Frame record: TimeOffsetLocal u64 (microseconds since the capture start; read as Wireshark does: times
10, as a signed 100 ns count, so a frame may precede the start), FrameLengthWire u32, FrameLength u32
(captured), the captured bytes, then a trailer from version 2.1 on: MediaType u16 (2.1), + process info
index u32 (2.2), + UTC time stamp as a FILETIME u64 and a time zone index u8 (2.3; used only when the
header's extended info offset is not 0).

Time: version 2.3 frames carry UTC FILETIMEs (100 ns). Earlier versions only have the local start time
plus offsets (1 us): pass ``utc_offset_minutes`` (local minus UTC of the capturing machine) to get UTC;
without it the local time is taken as UTC and a warning says so.

Media types (MacType for 2.0, per frame from 2.1) map to LINKTYPE values: 1 Ethernet (and 0, which
NetMon 3.4 writes for VPN frames with Ethernet headers), 2 Token Ring (6), 3 FDDI (10), 7 tunnel / 8
wireless WAN / 9 raw IP frames (101, raw IP); 0xE000 | LINKTYPE for frames converted from pcap. Media
types without a LINKTYPE (4 ATM/NDIS WAN, 5 IEEE 1394, 6 802.11 with NetMon's radio header, 0xFFE0 ETW
event, 0xFFFB network info, 0xFFFF capture filter, ...) become ``NETMON_LINK_BASE + media type`` and are
kept undissected (reported as unsupported link types). 0xFFFC payload header, 0xFFFD network info and
0xFFFE DNS cache records are NetMon metadata, not frames: they are left out of the table (and the
frame numbers), as Wireshark does. Network Monitor 1.x files ('RTSS') are not read.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from .diagnostics import SkipReport, report_for, warn
from .errors import CaptureError
from .packets import WINDOW, Interface, Packet, dissect_buffer, finish_frames, header_windows
from .pcap import map_file
from .units import FILETIME_UNIX_EPOCH, MAX_T100, PathLike, Progress

SIGNATURE = b"GMBU"
SIGNATURE_1X = b"RTSS"
HEADER = 128
RECORD_HEADER = 16
#: Trailer bytes after the frame data, by minor version (2.3 and later versions share the 2.3 layout).
TRAILER = {0: 0, 1: 2, 2: 6, 3: 15}
#: Largest captured length taken as real.
MAX_CAPLEN = 262144
#: link_type given to frames whose media type has no LINKTYPE equivalent (pcap link types are 16-bit).
NETMON_LINK_BASE = 0x10000
#: Media types of NetMon metadata records, which are not frames.
METADATA_MEDIA = (0xFFFC, 0xFFFD, 0xFFFE)
MEDIA_TO_LINKTYPE = {0: 1, 1: 1, 2: 6, 3: 10, 7: 101, 8: 101, 9: 101}
#: FILETIMEs whose ns since the epoch fit in an int64 (years 1678 to 2262); others count as missing.
FILETIME_MIN, FILETIME_MAX = FILETIME_UNIX_EPOCH - MAX_T100 + 1, FILETIME_UNIX_EPOCH + MAX_T100
CHUNK = 1 << 18

_HEAD = struct.Struct("<4sBBH8H12I")


@dataclass
class NetmonHeader:
    """The fields of the file header a reader uses."""

    minor: int
    mac_type: int
    start: tuple[int, ...]  # SYSTEMTIME: year, month, day of week, day, hour, minute, second, ms
    frame_table_offset: int
    frame_table_length: int
    comment_offset: int
    comment_length: int
    process_offset: int
    process_count: int
    extended_offset: int

    @property
    def trailer(self) -> int:
        return TRAILER[min(self.minor, 3)]

    @property
    def utc_stamps(self) -> bool:
        """Frames carry UTC FILETIMEs that are to be used (2.3, extended info present)."""
        return self.minor >= 3 and self.extended_offset != 0


def _bcd(b: int) -> int:
    return (b >> 4) * 10 + (b & 0x0F)


def read_header(buf: np.ndarray, path: PathLike) -> NetmonHeader:
    """The parsed and checked file header."""
    size = len(buf)
    head = bytes(buf[:HEADER])
    if head[:4] == SIGNATURE_1X:
        raise CaptureError(
            "Network Monitor 1.x capture files are not supported (only 2.x)", path=path, offset=0
        )
    if head[:4] != SIGNATURE:
        raise CaptureError(
            f"not a Network Monitor capture: bad signature {head[:4].hex() or 'nothing'}", path=path, offset=0
        )
    if size < HEADER:
        raise CaptureError(
            f"truncated Network Monitor header: {size} bytes, shorter than {HEADER}", path=path, offset=0
        )
    _sig, minor, major, mac, *rest = _HEAD.unpack_from(head)
    start, words = tuple(rest[:8]), rest[8:]
    if _bcd(major) != 2:
        raise CaptureError(
            f"unsupported Network Monitor format version {_bcd(major)}.{_bcd(minor)} (only 2.x)",
            path=path,
            offset=5,
        )
    hdr = NetmonHeader(
        minor=_bcd(minor),
        mac_type=mac,
        start=start,
        frame_table_offset=words[0],
        frame_table_length=words[1],
        comment_offset=words[4],
        comment_length=words[5],
        process_offset=words[6] if _bcd(minor) >= 2 else 0,
        process_count=words[7] if _bcd(minor) >= 2 else 0,
        extended_offset=words[8] if _bcd(minor) >= 3 else 0,
    )
    if hdr.frame_table_length % 4:
        raise CaptureError(
            f"frame table length {hdr.frame_table_length} is not a multiple of 4", path=path, offset=28
        )
    end = hdr.frame_table_offset + hdr.frame_table_length
    if hdr.frame_table_length and (hdr.frame_table_offset < HEADER or end > size):
        raise CaptureError(
            f"frame table ({hdr.frame_table_offset:#x}..{end:#x}) lies outside the frame "
            f"data of the file ({size:#x} bytes): truncated capture?",
            path=path,
            offset=24,
        )
    return hdr


def start_ns(hdr: NetmonHeader, path: PathLike) -> int:
    """The header's capture start (a local time) as ns since the epoch, as if it were UTC."""
    year, month, _dow, day, hour, minute, second, ms = hdr.start
    try:
        if ms > 999:
            raise ValueError("millisecond above 999")
        t = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as e:
        raise CaptureError(f"bad capture start time {hdr.start} ({e})", path=path, offset=8) from None
    ns = (int(t.timestamp()) * 1000 + ms) * 1_000_000
    if not -(1 << 63) < ns < (1 << 63):  # UTC ns in an int64: years 1678 to 2262
        raise CaptureError(
            f"bad capture start time {hdr.start} (outside the years 1678 to 2262)", path=path, offset=8
        )
    return ns


_COMMENT_HEAD = struct.Struct("<III")


def read_comments(
    buf: np.ndarray, path: PathLike, hdr: NetmonHeader, report: SkipReport | None = None
) -> dict[int, str]:
    """Frame comment titles by the frame's record offset (comment table of 2.2 and later: frames per
    comment u32, record offset u32, title length u32, UTF-16LE title, description length u32, RTF
    description). A damaged table keeps the comments before the damage; what is skipped goes to
    ``report``."""
    if hdr.minor < 2 or not hdr.comment_length:
        return {}
    report = report if report is not None else report_for(path)
    start, end = hdr.comment_offset, hdr.comment_offset + hdr.comment_length
    if start < HEADER or end > len(buf):
        report.add("comment table(s) outside the file", offset=start, detail=f"{start:#x}..{end:#x}")
        return {}
    raw = bytes(buf[start:end])
    out: dict[int, str] = {}
    pos = 0
    while pos < len(raw):
        if len(raw) - pos < 16:
            break
        _, frame, tlen = _COMMENT_HEAD.unpack_from(raw, pos)
        if tlen == 0 or pos + 12 + tlen + 4 > len(raw):
            break
        title = raw[pos + 12 : pos + 12 + tlen].decode("utf-16-le", "replace").split("\0", 1)[0]
        dlen = struct.unpack_from("<I", raw, pos + 12 + tlen)[0]
        if pos + 16 + tlen + dlen > len(raw):
            break
        out[frame] = title
        pos += 16 + tlen + dlen
    if pos < len(raw):
        report.add(
            "damaged comment(s) ending the comment table",
            offset=start + pos,
            size=len(raw) - pos,
            detail=f"{len(out)} comment(s) before it kept",
        )
    return out


def media_link_types(media: np.ndarray) -> np.ndarray:
    """NetMon media types (u16) to LINKTYPE values (int32), ``NETMON_LINK_BASE + type`` when none."""
    media = np.asarray(media, dtype=np.int32)
    out = media + NETMON_LINK_BASE
    for mt, lt in MEDIA_TO_LINKTYPE.items():
        out[media == mt] = lt
    pcap = ((media & 0xF000) == 0xE000) & ~((media >= 0xE080) & (media <= 0xE08A))
    out[pcap] = media[pcap] & 0x0FFF
    return out


def _le(buf: np.ndarray, dtype: str) -> np.ndarray:
    """Field ``dtype`` at every byte position of ``buf`` (an unaligned view, no copy)."""
    width = np.dtype(dtype).itemsize
    return np.ndarray((max(0, len(buf) - width + 1),), dtype=dtype, buffer=buf, strides=(1,))


def windows(buf: np.ndarray, off: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """The frames' first WINDOW bytes, zero-padded past their caplen, as :func:`header_windows` gives
    them: whole rows of a sliding-window view are copied, then the few short frames are cleared."""
    n = len(off)
    if len(buf) < WINDOW or not n:
        return header_windows(buf, off, cap)
    rows = np.lib.stride_tricks.as_strided(
        buf, shape=(len(buf) - WINDOW + 1, WINDOW), strides=(1, 1), writeable=False
    )
    inside = off + WINDOW <= len(buf)
    if inside.all():
        out = rows[off]
    else:
        out = np.empty((n, WINDOW), np.uint8)
        out[inside] = rows[off[inside]]
        out[~inside] = header_windows(buf, off[~inside], cap[~inside])
    short = np.flatnonzero(cap < WINDOW)
    if len(short):
        out[short] *= np.arange(WINDOW) < cap[short, None]
    return out


@dataclass
class Chunk:
    """Frames of one stretch of the frame table, as columns: record and data offsets, lengths, UTC ns,
    link type."""

    record: np.ndarray
    data: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray
    time_ns: np.ndarray
    link_type: np.ndarray
    time_valid: np.ndarray  # False: a time offset too large for int64 ns (a damaged record)


def chunks(
    buf: np.ndarray,
    path: PathLike,
    hdr: NetmonHeader,
    utc_offset_minutes: int | None = None,
    progress: Progress | None = None,
    report: SkipReport | None = None,
) -> Iterator[Chunk]:
    """The frames, in frame-table order, chunk by chunk. Damaged frame records (outside the file, a
    captured length above the maximum or past the end of the file) are skipped and counted in
    ``report`` (the caller publishes it)."""
    report = report if report is not None else report_for(path)
    size = len(buf)
    name = os.fspath(path)
    count = hdr.frame_table_length // 4
    table = (
        np.frombuffer(buf, dtype="<u4", count=count, offset=hdr.frame_table_offset)
        if count
        else np.zeros(0, "<u4")
    )
    u16, u32, u64 = _le(buf, "<u2"), _le(buf, "<u4"), _le(buf, "<u8")
    trailer = hdr.trailer
    if not count:
        table = _walk_records(buf, hdr, u32)
        count = len(table)
        if count:
            warn(
                f"{name}: the frame table is empty (length 0) but {count:,} frame record(s) follow the header: "
                "read in file order"
            )
    aliased = _aliases(table.astype(np.int64), size, u32, trailer)
    report.add_many("frame-table entries pointing into a frame record listed before", table[aliased])
    check_local = True
    start: int | None = None
    local_frames = 0
    bad_times = 0
    odd_stamps = 0
    n_aliased = int(aliased.sum())

    def note(bad_off: np.ndarray, bad_cap: np.ndarray | None = None) -> None:
        def why(i: int) -> str:
            if bad_cap is None:
                return "outside the file or in its header"
            if bad_cap[i] > MAX_CAPLEN:
                return f"captured length {bad_cap[i]:,} above {MAX_CAPLEN:,}"
            return f"{bad_cap[i]:,} bytes running past the end of the file"

        report.add_many("damaged frame record(s)", bad_off, detail=why)

    for s in range(0, count, CHUNK):
        off = table[s : s + CHUNK].astype(np.int64)
        if n_aliased:
            off = off[~aliased[s : s + CHUNK]]
        ok = (off >= HEADER) & (off + RECORD_HEADER <= size)
        if not ok.all():
            note(off[~ok])
            off = off[ok]
        cap = u32[off + 12].astype(np.int64)
        end = off + RECORD_HEADER + cap + trailer
        good = (cap <= MAX_CAPLEN) & (end <= size)
        if not good.all():
            note(off[~good], cap[~good])
            off, cap = off[good], cap[good]
        data = off + RECORD_HEADER
        wire = u32[off + 8].astype(np.int64)
        if trailer:
            media = u16[data + cap]
            keep = ~np.isin(media, METADATA_MEDIA)
            if not keep.all():
                off, cap, data, wire, media = off[keep], cap[keep], data[keep], wire[keep], media[keep]
            link = media_link_types(media)
        else:
            link = media_link_types(np.full(len(off), hdr.mac_type, np.int32))
        times = np.zeros(len(off), np.int64)
        tvalid = np.ones(len(off), bool)
        utc = np.zeros(len(off), bool)
        if hdr.utc_stamps and len(off):
            ft = u64[data + cap + 6]
            utc = (ft >= FILETIME_MIN) & (ft < FILETIME_MAX)  # 0 or out of range: use the local time
            times[utc] = (ft[utc].astype(np.int64) - FILETIME_UNIX_EPOCH) * 100
            if check_local and utc.sum() > 1:
                try:
                    local0 = start_ns(hdr, path)
                except CaptureError:
                    check_local = False
                else:
                    bad_utc = _odd_stamps(times, utc, local0, u64[off])
                    if bad_utc.any():
                        odd_stamps += int(bad_utc.sum())
                        utc &= ~bad_utc
        if not utc.all():
            if start is None:
                start = start_ns(hdr, path) - (utc_offset_minutes or 0) * 60_000_000_000
            loc = ~utc
            t100 = (u64[off[loc]] * np.uint64(10)).view(np.int64)  # signed 100 ns count
            # beyond about 292 years from the start the ns would wrap around: a damaged record, no time
            limit = ((1 << 63) - 1 - abs(start)) // 100
            fit = (t100 >= -limit) & (t100 <= limit)
            times[loc] = np.where(fit, start + np.where(fit, t100, 0) * 100, 0)
            tvalid[np.flatnonzero(loc)[~fit]] = False
            bad_times += int((~fit).sum())
            local_frames += int(loc.sum())
        if progress is not None:
            progress(int(off.max()) if len(off) else hdr.frame_table_offset, size)
        yield Chunk(off, data, cap, wire, times, link, tvalid)
    if bad_times:
        warn(
            f"{name}: {bad_times:,} frame(s) with a time offset of centuries (damaged records) kept without "
            "a time"
        )
    if odd_stamps:
        warn(
            f"{name}: {odd_stamps:,} frame(s) whose UTC time stamp is more than a day from their time offset "
            "and from the other frames (damaged): their time comes from the offset"
        )
    if local_frames and utc_offset_minutes is None:
        warn(
            f"{name}: Network Monitor 2.{hdr.minor} times are the capturing machine's local time without "
            f"a time zone; {local_frames:,} frame time(s) taken as UTC (give the UTC offset to correct)"
        )


def _walk_records(buf: np.ndarray, hdr: NetmonHeader, u32: np.ndarray) -> np.ndarray:
    """Offsets of the frame records that follow the header one after another, up to the frame table
    (or the end): for a file whose frame table is empty."""
    size = len(buf)
    end = hdr.frame_table_offset if HEADER < hdr.frame_table_offset <= size else size
    out: list[int] = []
    pos = HEADER
    while pos + RECORD_HEADER <= end:
        cap = int(u32[pos + 12])
        nxt = pos + RECORD_HEADER + cap + hdr.trailer
        if cap > MAX_CAPLEN or nxt > end:
            break
        out.append(pos)
        pos = nxt
    return np.array(out, np.uint32)


def _aliases(off: np.ndarray, size: int, u32: np.ndarray, trailer: int) -> np.ndarray:
    """Frame-table entries whose record starts inside a record listed before it: one frame counted twice
    (20,000 entries pointing at one 256 KB frame would be 5 GB of frames). The first entry is kept."""
    if len(off) < 2:
        return np.zeros(len(off), bool)
    inside = (off >= HEADER) & (off + RECORD_HEADER <= size)
    cap = np.where(inside, u32[np.where(inside, off + 12, HEADER)].astype(np.int64), 0)
    end = off + RECORD_HEADER + cap + trailer
    inside &= (cap <= MAX_CAPLEN) & (end <= size)  # damaged records are reported as such, not here
    end = np.where(inside, end, off)
    order = np.argsort(off, kind="stable")
    so, se = off[order], end[order]
    reach = np.maximum.accumulate(se)
    dup = np.zeros(len(off), bool)
    dup[1:] = so[1:] < reach[:-1]
    out = np.zeros(len(off), bool)
    out[order[dup & inside[order]]] = True
    return out


def _odd_stamps(times: np.ndarray, utc: np.ndarray, local0: int, offset_us: np.ndarray) -> np.ndarray:
    """UTC-stamped frames whose stamp is over a day from their local time offset (time zones differ by
    at most 14 hours) and further from the other frames' median than the offset is: a damaged stamp."""
    local = local0 + offset_us.astype(np.int64) * 1000
    diff = times - local
    shift = int(np.median(diff[utc]))
    odd = utc & (np.abs(diff - shift) > 86_400 * 10**9)
    if not odd.any():
        return odd
    med = int(np.median(times[utc & ~odd])) if (utc & ~odd).any() else int(np.median(times[utc]))
    by_offset = local + shift
    odd &= np.abs(by_offset - med) < np.abs(times - med)
    times[odd] = by_offset[odd]
    return odd


def read_netmon(
    path: PathLike,
    *,
    with_data: bool = False,
    progress: Progress | None = None,
    utc_offset_minutes: int | None = None,
) -> pl.DataFrame:
    """Frames (FRAMES schema, plus a ``comment`` column: the frame comment titles of 2.2 and later) of
    a Network Monitor 2.x capture; ``with_data`` adds the raw bytes as a ``data`` column.
    ``utc_offset_minutes``: the capturing machine's local time minus UTC, for files without UTC time
    stamps (before 2.3)."""
    buf = map_file(path)
    hdr = read_header(buf, path)
    name = os.fspath(path)
    report = report_for(path)
    comments = read_comments(buf, path, hdr, report)
    parts = []
    first = 1
    for c in chunks(buf, path, hdr, utc_offset_minutes, progress, report):
        notes = [comments.get(o) for o in c.record.tolist()] if comments else [None] * len(c.record)
        parts.append(
            dissect_buffer(
                buf,
                c.data,
                c.caplen,
                c.time_ns,
                c.link_type,
                wirelens=c.wirelen,
                time_valid=None if c.time_valid.all() else c.time_valid,
                with_data=with_data,
                source=name,
                first_frame=first,
                finish=False,
                windows=windows(buf, c.data, c.caplen),
                comments=notes,
            )
        )
        first += len(c.data)
    report.publish()
    if not parts:
        zero = np.zeros(0, np.int64)
        parts.append(dissect_buffer(buf, zero, zero, zero, 1, with_data=with_data, finish=False, comments=[]))
    return finish_frames(parts, source=name)


def iter_packets(
    path: PathLike, *, utc_offset_minutes: int | None = None
) -> tuple[list[Interface], Iterator[Packet]]:
    """One interface per link type (in order of first use, ns resolution) and the packets in frame
    order (packet i is frame i + 1 of :func:`read_netmon`)."""
    buf = map_file(path)
    hdr = read_header(buf, path)
    with report_for(path) as report:  # the frame table is read here, before the packets
        comments = read_comments(buf, path, hdr, report)
        parts = list(chunks(buf, path, hdr, utc_offset_minutes, report=report))
    links = np.concatenate([c.link_type for c in parts]) if parts else np.zeros(0, np.int32)
    order: dict[int, int] = {}
    for lt in pl.Series(links).unique(maintain_order=True).to_list():
        order[lt] = len(order)
    interfaces = [Interface(lt, tsresol=9, snaplen=MAX_CAPLEN) for lt in order]

    def packets() -> Iterator[Packet]:
        for c in parts:
            rows = zip(
                c.record.tolist(),
                c.data.tolist(),
                c.caplen.tolist(),
                c.wirelen.tolist(),
                c.time_ns.tolist(),
                c.link_type.tolist(),
                c.time_valid.tolist(),
            )
            for rec, off, cap, wire, t, lt, ok in rows:
                yield Packet(
                    t if ok else None,
                    buf[off : off + cap].tobytes(),
                    order[lt],
                    wire,
                    comment=comments.get(rec),
                )

    return interfaces, packets()


def _systemtime(local_ns: int) -> bytes:
    t = dt.datetime.fromtimestamp(local_ns // 1_000_000_000, dt.UTC)
    ms = local_ns // 1_000_000 % 1000
    return struct.pack("<8H", t.year, t.month, (t.weekday() + 1) % 7, t.day, t.hour, t.minute, t.second, ms)


def write_netmon(
    path: PathLike,
    packets: Iterable[Packet],
    mac_type: int = 1,
    *,
    version: tuple[int, int] = (2, 3),
    media_types: Sequence[int] | None = None,
    utc_offset_minutes: int = 0,
) -> int:
    """Write packets as a Network Monitor 2.x capture; returns the number written.

    ``mac_type`` goes in the header and, from version 2.1, in every frame's trailer unless
    ``media_types`` gives one per packet. The header's start time is the first packet's time (to the
    millisecond) in local time, ``utc_offset_minutes`` east of UTC. Version 2.3 also writes every
    frame's UTC FILETIME and a non-zero extended info offset (an empty extended info area: its layout
    is not described publicly), so that readers use those UTC stamps. From 2.2, packet comments go in
    the comment table (as titles, with empty descriptions). Directions and interfaces are not written.
    """
    major, minor = version
    if major != 2 or not 0 <= minor <= 3:
        raise ValueError(f"version must be 2.0 to 2.3, not {major}.{minor}")
    trailer = TRAILER[minor]
    rec = struct.Struct("<QII")
    offsets: list[int] = []
    notes: list[bytes] = []
    out: list[bytes] = []
    pos = HEADER
    first: int | None = None
    shift = utc_offset_minutes * 60_000_000_000
    with open(path, "wb") as f:
        f.write(bytes(HEADER))
        for i, p in enumerate(packets):
            if p.time_ns is None:
                raise ValueError(f"packet {i + 1}: no time")
            if first is None:
                first = p.time_ns // 1_000_000 * 1_000_000
            data = bytes(p.data)
            wirelen = len(data) if p.wirelen is None else p.wirelen
            delta_us = (p.time_ns - first) // 1000
            parts = [rec.pack(delta_us & 0xFFFFFFFFFFFFFFFF, wirelen, len(data)), data]
            if trailer:
                media = mac_type if media_types is None else media_types[i]
                tail = struct.pack("<H", media)
                if minor >= 2:
                    tail += struct.pack("<I", 0xFFFFFFFF)  # no process info
                if minor >= 3:
                    tail += struct.pack("<QB", p.time_ns // 100 + FILETIME_UNIX_EPOCH, 0)
                parts.append(tail)
            if p.comment and minor >= 2:
                title = p.comment.encode("utf-16-le")
                notes.append(struct.pack("<III", 1, pos, len(title)) + title + struct.pack("<I", 0))
            offsets.append(pos)
            for b in parts:
                pos += len(b)
            out.extend(parts)
            if len(out) >= 8192:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
        if pos + 4 * len(offsets) > 0xFFFFFFFF:
            raise ValueError("capture too large for Network Monitor's 32-bit offsets")
        table_offset = pos
        f.write(np.asarray(offsets, dtype="<u4").tobytes())
        note_bytes = b"".join(notes)
        f.write(note_bytes)
        note_offset = table_offset + 4 * len(offsets)
        end = note_offset + len(note_bytes)
        start = _systemtime((first or 0) + shift)
        words = [
            table_offset,
            4 * len(offsets),
            0,
            0,
            note_offset if notes else 0,
            len(note_bytes),
            0,
            0,
            end if minor >= 3 else 0,
            0,
            0,
            0,
        ]
        head = struct.pack("<4sBBH", SIGNATURE, minor, major, mac_type) + start + struct.pack("<12I", *words)
        f.seek(0)
        f.write(head)
    return len(offsets)
