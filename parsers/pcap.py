"""Classic pcap files: reader (micro/nanosecond magics, both byte orders) and writer.

File header (24 bytes): magic u32, version u16 u16, thiszone i32, sigfigs u32, snaplen u32, linktype u32
(LINKTYPE in bits 0-15, FCS information above). Record header (16 bytes): ts_sec, ts_frac (us or ns per
the magic), caplen, wirelen; then caplen bytes. The "modified" format of Alexey Kuznetsov's patched
libpcap (magic 0xA1B2CD34, microseconds) adds 8 bytes to every record header (ifindex u32, protocol
u16, pkt_type u8, pad), as Wireshark reads it by default.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Iterator

import numpy as np
import polars as pl

from .diagnostics import SkipReport, report_for, warn
from .errors import CaptureError
from .packets import WINDOW, Interface, Packet, dissect_buffer, finish_frames, store_walk
from .recordwalk import ST_BAD_CAPLEN, ST_END, ST_FULL, ST_TRUNCATED, find_start, walk_stop
from .units import PathLike, Progress

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
MAGIC_MODIFIED = 0xA1B2CD34
HEADER = 24
RECORD_HEADER = 16
MODIFIED_RECORD_HEADER = 24
#: Largest caplen taken as real whatever the header's snaplen says (Wireshark's standard maximum).
MAX_CAPLEN = 262144

#: One walked record (native byte order; the C walk fills the same layout).
RECORD = np.dtype([("off", "=i8"), ("sec", "=u4"), ("frac", "=u4"), ("caplen", "=u4"), ("wirelen", "=u4")])
CHUNK = 1 << 18

try:
    from ._capwalk import pcap_walk as _c_pcap_walk
except ImportError:  # no compiler at install time: the pure-Python walk below
    _c_pcap_walk = None  # type: ignore[assignment]  # the accelerator is optional


def walk_py(
    buf,
    pos: int,
    big: bool,
    maxcap: int,
    out: np.ndarray,
    windows: np.ndarray,
    window: int,
    record_header: int = RECORD_HEADER,
) -> tuple[int, int, int]:
    """Fill ``out`` (RECORD entries) with the records from ``pos``, and ``windows`` (count x window bytes)
    with their first bytes as :func:`header_windows` gives them: (count, next offset, status). The C
    walk ``_capwalk.pcap_walk`` gives the same results."""
    size = len(buf)
    unpack = struct.Struct(">IIII" if big else "<IIII").unpack_from
    rows: list[tuple[int, ...]] = []
    limit = min(len(out), len(windows) // window) if window > 0 else len(out)
    while True:
        stop = walk_stop(pos, size, len(rows), limit, record_header)
        if stop is not None:
            status = stop
            break
        sec, frac, caplen, wirelen = unpack(buf, pos)
        if caplen > maxcap:
            status = ST_BAD_CAPLEN
            break
        if caplen > size - pos - record_header:
            status = ST_TRUNCATED
            break
        rows.append((pos + record_header, sec, frac, caplen, wirelen))
        pos += record_header + caplen
    return store_walk(rows, out, windows, buf, "off", window), pos, status


def map_file(path: PathLike) -> np.ndarray:
    """The file's bytes as a read-only uint8 array (memory-mapped; unmapped when the array is freed)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return np.zeros(0, np.uint8)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise CaptureError(f"cannot read: {e.strerror}", path=path) from None
    return np.frombuffer(mm, dtype=np.uint8)


class PcapHeader:
    """The parsed file header."""

    def __init__(self, buf: np.ndarray, path: PathLike) -> None:
        if len(buf) < HEADER:
            raise CaptureError(
                f"not a pcap file: {len(buf)} bytes, shorter than the 24-byte header", path=path, offset=0
            )
        head = bytes(buf[:HEADER])
        for big in (False, True):
            magic = struct.unpack_from(">I" if big else "<I", head)[0]
            if magic in (MAGIC_US, MAGIC_NS, MAGIC_MODIFIED):
                break
        else:
            raise CaptureError(f"not a pcap file: bad magic {head[:4].hex()}", path=path, offset=0)
        e = ">" if big else "<"
        self.big = big
        self.nanosecond = magic == MAGIC_NS
        self.record_header = MODIFIED_RECORD_HEADER if magic == MAGIC_MODIFIED else RECORD_HEADER
        self.version = struct.unpack_from(e + "HH", head, 4)
        self.snaplen, linktype = struct.unpack_from(e + "II", head, 16)
        self.link_type = linktype & 0xFFFF

    def interface(self) -> Interface:
        return Interface(self.link_type, tsresol=9 if self.nanosecond else 6, snaplen=self.snaplen)

    @property
    def maxcap(self) -> int:
        return max(MAX_CAPLEN, min(self.snaplen, 1 << 24))


def chunks(
    buf: np.ndarray,
    path: PathLike,
    progress: Progress | None = None,
    window: int = WINDOW,
    report: SkipReport | None = None,
) -> tuple[PcapHeader, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """The header and an iterator over (RECORD array, header windows) chunks of a mapped pcap. A damaged
    record is skipped up to the next run of plausible records; what was skipped goes to ``report``
    (the caller publishes it)."""
    hdr = PcapHeader(buf, path)
    name = os.fspath(path)
    skipped = report if report is not None else report_for(path)

    def walker() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        walk = walk_py if _c_pcap_walk is None else _c_pcap_walk
        size = len(buf)
        pos = HEADER
        last_sec = None
        out: np.ndarray | None = None  # the chunk being filled (None: start a new one)
        win = np.empty((0, 1), np.uint8)
        filled = over_frac = 0
        frac_limit = 1_000_000_000 if hdr.nanosecond else 1_000_000
        while True:
            if out is None:  # records after damage join the same chunk: one chunk per CHUNK records
                count = min(CHUNK, max(1, (size - pos) // RECORD_HEADER + 1))
                out = np.empty(count, RECORD)
                win = np.empty((count, max(window, 1)), np.uint8)
                filled = 0
            assert out is not None
            n, pos, status = walk(
                buf,
                pos,
                hdr.big,
                hdr.maxcap,
                out[filled:],
                win[filled:].reshape(-1),
                window,
                hdr.record_header,
            )
            if n:
                last_sec = int(out["sec"][filled + n - 1])
                over_frac += int((out["frac"][filled : filled + n] >= frac_limit).sum())
                filled += n
            if progress is not None:
                progress(pos, size)
            if status == ST_FULL or (status == ST_END and filled):
                if filled:
                    yield out[:filled], win[:filled]
                out = None
            if status == ST_FULL:
                continue
            if status == ST_END:
                break
            nxt = find_record(buf, pos + 1, hdr, last_sec)
            if status == ST_TRUNCATED and nxt is None:
                skipped.add("truncated record(s) at the end of the file", offset=pos, size=size - pos)
                break
            caplen = struct.unpack_from(">I" if hdr.big else "<I", buf, pos + 8)[0] if size - pos >= 16 else 0
            skipped.add(
                "damaged record(s)",
                offset=pos,
                size=(size if nxt is None else nxt) - pos,
                detail=f"caplen {caplen}",
            )
            if nxt is None:
                break
            pos = nxt
        if out is not None and filled:
            yield out[:filled], win[:filled]
        if over_frac:
            unit = "nanoseconds" if hdr.nanosecond else "microseconds"
            warn(
                f"{name}: {over_frac:,} record(s) with {unit} of a second of {frac_limit:,} or more (a "
                "damaged or odd writer): their times carry the excess into the seconds, as Wireshark shows them"
            )

    return hdr, walker()


#: A resynchronisation accepts an offset when this many records in a row are plausible from it (or
#: fewer that end exactly at the end of the file).
RESYNC_RUN = 3


def find_record(buf: np.ndarray, start: int, hdr: PcapHeader, near_sec: int | None) -> int | None:
    """The first offset from ``start`` where a run of plausible records begins: caplen within the
    maximum and not above wirelen, a fraction below one second, and (when known) seconds within a day
    of ``near_sec``."""
    frac_limit = 1_000_000_000 if hdr.nanosecond else 1_000_000

    def plausible(words: np.ndarray, k: int) -> np.ndarray:
        sec, frac, cap, wire = words[:k], words[4 : 4 + k], words[8 : 8 + k], words[12 : 12 + k]
        ok = (cap <= hdr.maxcap) & (cap <= wire) & (frac < frac_limit)
        if near_sec is not None:
            ok &= np.abs(sec.astype(np.int64) - near_sec) <= 86400
        return ok

    return find_start(
        buf,
        start,
        len(buf) - hdr.record_header + 1,
        hdr.big,
        plausible,
        lambda p: _plausible_run(buf, p, hdr, frac_limit),
        reach=RECORD_HEADER - 4,
    )


def _plausible_run(buf: np.ndarray, pos: int, hdr: PcapHeader, frac_limit: int) -> bool:
    unpack = struct.Struct(">IIII" if hdr.big else "<IIII").unpack_from
    size = len(buf)
    for _ in range(RESYNC_RUN):
        if pos == size:
            return True
        if size - pos < hdr.record_header:
            return False
        _, frac, caplen, wirelen = unpack(buf, pos)
        if (
            caplen > hdr.maxcap
            or caplen > wirelen
            or frac >= frac_limit
            or caplen > size - pos - hdr.record_header
        ):
            return False
        pos += hdr.record_header + caplen
    return True


def _times(hdr: PcapHeader, rec: np.ndarray) -> np.ndarray:
    return rec["sec"].astype(np.int64) * 1_000_000_000 + rec["frac"].astype(np.int64) * (
        1 if hdr.nanosecond else 1000
    )


def read_pcap(path: PathLike, *, with_data: bool = False, progress: Progress | None = None) -> pl.DataFrame:
    """Frames (FRAMES schema) of a pcap file; ``with_data`` adds the raw bytes as a ``data`` column."""
    buf = map_file(path)
    report = report_for(path)
    hdr, walker = chunks(buf, path, progress, report=report)
    parts = []
    first = 1
    for rec, win in walker:
        parts.append(
            dissect_buffer(
                buf,
                rec["off"],
                rec["caplen"],
                _times(hdr, rec),
                hdr.link_type,
                wirelens=rec["wirelen"],
                with_data=with_data,
                source=os.fspath(path),
                windows=win,
                first_frame=first,
                finish=False,
            )
        )
        first += len(rec)
    if not parts:
        parts.append(
            dissect_buffer(
                buf,
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                hdr.link_type,
                with_data=with_data,
                finish=False,
            )
        )
    report.publish()
    return finish_frames(parts, source=os.fspath(path))


def iter_packets(path: PathLike) -> tuple[list[Interface], Iterator[Packet]]:
    """The file's single interface and an iterator over its packets, in file order."""
    buf = map_file(path)
    report = report_for(path)
    hdr, walker = chunks(buf, path, window=0, report=report)

    def packets() -> Iterator[Packet]:
        with report:  # published when the packets run out (or the iterator is closed)
            for rec, _ in walker:
                times = _times(hdr, rec).tolist()
                for (off, caplen, wirelen), t in zip(rec[["off", "caplen", "wirelen"]].tolist(), times):
                    yield Packet(t, buf[off : off + caplen].tobytes(), 0, wirelen)

    return [hdr.interface()], packets()


def write_pcap(
    path: PathLike,
    packets: Iterable[Packet],
    link_type: int = 1,
    nanosecond: bool = False,
    snaplen: int = 262144,
    *,
    modified: bool = False,
) -> int:
    """Write packets as a little-endian pcap (data cut to ``snaplen``); returns the number written.

    ``time_ns`` must lie between 1970 and 2106 (pcap's unsigned 32-bit seconds); sub-unit fractions are
    floored to the resolution (us, or ns with ``nanosecond``). ``modified`` writes the patched-libpcap
    format (magic 0xA1B2CD34, microseconds; ifindex = the packet's interface, pkt_type 4 for "out",
    else 0).
    """
    if modified and nanosecond:
        raise ValueError("the modified pcap format has microsecond times only")
    magic = MAGIC_MODIFIED if modified else MAGIC_NS if nanosecond else MAGIC_US
    head = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type)
    rec = struct.Struct("<IIII")
    extra = struct.Struct("<IHBx")
    div = 1 if nanosecond else 1000
    count = 0
    with open(path, "wb") as f:
        f.write(head)
        out = []
        for p in packets:
            if p.time_ns is None or not 0 <= p.time_ns < (1 << 32) * 1_000_000_000:
                raise ValueError(f"packet {count + 1}: time {p.time_ns} outside pcap's range")
            sec, ns = divmod(p.time_ns, 1_000_000_000)
            data = bytes(p.data[:snaplen])
            wirelen = len(p.data) if p.wirelen is None else p.wirelen
            out.append(rec.pack(sec, ns // div, len(data), wirelen))
            if modified:
                out.append(extra.pack(p.interface, 0, 4 if p.direction == "out" else 0))
            out.append(data)
            count += 1
            if len(out) >= 8192:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return count
