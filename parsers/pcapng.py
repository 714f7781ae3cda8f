"""pcapng files: reader (several sections in either byte order, several interfaces each with its own
if_tsresol and if_tsoffset; enhanced, simple and obsolete packet blocks; comments and epb_flags) and writer.

Block: type u32, total length u32, body, total length u32 again; lengths are multiples of 4.
Section header (0x0A0D0D0A): byte-order magic 0x1A2B3C4D, version, section length. Interface description
(1): link type u16, reserved u16, snaplen u32, options (2 if_name, 9 if_tsresol, 14 if_tsoffset).
Enhanced packet (6): interface u32, timestamp hi/lo u32, caplen, wirelen, data, options (1 comment,
2 flags: direction in bits 0-1, 8 process id u32 + thread id u32: etl2pcapng's ETW header PID/TID). Obsolete packet (2): the same with interface u16 + drops u16. Simple
packet (3): wirelen, data; no interface (0) nor timestamp. systemd Journal Export (9): one journal entry;
no packet, but Wireshark numbers it as a frame, so the readers count it in the frame numbers (the
frames table skips its number; :func:`iter_packets` gives it back, for the writer to keep).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from .diagnostics import info, report_for, warn
from .errors import CaptureError
from .packets import (
    DIR_IN,
    DIR_NONE,
    DIR_OUT,
    DIR_UNKNOWN,
    DIRECTIONS,
    WINDOW,
    Interface,
    Packet,
    _distinct,
    dissect_buffer,
    finish_frames,
    ns_to_ticks,
    store_walk,
    ticks_fit,
    ticks_to_ns,
    tsresol_supported,
)
from .pcap import map_file
from .recordwalk import ST_BAD_CAPLEN, ST_END, ST_FULL, ST_TRUNCATED, find_start, walk_stop
from .units import PathLike, Progress

SHB, IDB, PB, SPB, NRB, ISB, EPB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6
#: systemd Journal Export block: a frame in Wireshark's numbering, though no packet.
SJE = 9
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_COMMENT, OPT_FLAGS = 0, 1, 2
#: epb_processid_threadid (pcapng draft): process id and thread id, two u32 in the section's byte order.
OPT_PROCESSID_THREADID = 8
#: Custom block whose copying is allowed (a rewriting tool keeps it).
CB_COPY = 0x00000BAD
IF_NAME, IF_TSRESOL, IF_TSOFFSET = 2, 9, 14
# Block types a resynchronisation after damage accepts as the next block start.
_KNOWN_BLOCKS = (SHB, IDB, PB, SPB, NRB, ISB, EPB, 7, 8, 9, 10, 0xBAD, 0x40000BAD)

#: Status codes of the pcapng walk beyond recordwalk's (the C walk returns the same numbers).
ST_STOP_BLOCK, ST_BAD_LENGTH, ST_BAD_TRAILER = 5, 6, 7
#: One walked packet block (native byte order; the C walk fills the same layout).
ENTRY = np.dtype(
    [
        ("block", "=i8"),
        ("data", "=i8"),
        ("comment", "=i8"),
        ("iface", "=u4"),
        ("ts_hi", "=u4"),
        ("ts_lo", "=u4"),
        ("caplen", "=u4"),
        ("wirelen", "=u4"),
        ("flags", "=u4"),
        ("comment_len", "=u4"),
        ("btype", "=u4"),
        ("has_flags", "=u4"),
        ("spare", "=u4"),
    ]
)
CHUNK = 1 << 18

try:
    from ._capwalk import pcapng_walk as _c_pcapng_walk
except ImportError:  # no compiler at install time: the pure-Python walk below
    _c_pcapng_walk = None  # type: ignore[assignment]  # the accelerator is optional


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def walk_py(
    buf, pos: int, big: bool, out: np.ndarray, windows: np.ndarray, window: int
) -> tuple[int, int, int]:
    """Fill ``out`` (ENTRY rows) with the packet blocks from ``pos`` of one section, skipping other
    blocks, until a section or interface block, damage, or the end, and ``windows`` (count x window
    bytes) with their first bytes as :func:`header_windows` gives them: (count, next offset, status). The
    C walk ``_capwalk.pcapng_walk`` gives the same results."""
    size = len(buf)
    e = ">" if big else "<"
    u32 = struct.Struct(e + "I").unpack_from
    u16 = struct.Struct(e + "H").unpack_from
    hdr = struct.Struct(e + "IIIIIII").unpack_from
    rows: list[tuple[int, ...]] = []
    limit = min(len(out), len(windows) // window) if window > 0 else len(out)
    while True:
        stop = walk_stop(pos, size, len(rows), limit, 12)
        if stop is not None:
            status = stop
            break
        btype = u32(buf, pos)[0]
        if btype in (SHB, IDB):
            status = ST_STOP_BLOCK
            break
        blen = u32(buf, pos + 4)[0]
        if blen < 12 or blen % 4:
            status = ST_BAD_LENGTH
            break
        if blen > size - pos:
            status = ST_TRUNCATED
            break
        if u32(buf, pos + blen - 4)[0] != blen:
            status = ST_BAD_TRAILER
            break
        if btype in (EPB, PB):
            if blen < 32:
                status = ST_BAD_CAPLEN
                break
            _, _, iface, ts_hi, ts_lo, caplen, wirelen = hdr(buf, pos)
            if caplen > blen - 32:
                status = ST_BAD_CAPLEN
                break
            if btype == PB:
                iface = u16(buf, pos + 8)[0]
            comment, comment_len, flags, has_flags = -1, 0, 0, 0
            o, end = 28 + _pad4(caplen), blen - 4
            while o + 4 <= end:
                code, olen = u16(buf, pos + o)[0], u16(buf, pos + o + 2)[0]
                if code == OPT_END or o + 4 + olen > end:
                    break
                if code == OPT_COMMENT and comment < 0:
                    comment, comment_len = pos + o + 4, olen
                elif code == OPT_FLAGS and olen == 4 and not has_flags:
                    flags, has_flags = u32(buf, pos + o + 4)[0], 1
                o += 4 + _pad4(olen)
            rows.append(
                (
                    pos,
                    pos + 28,
                    comment,
                    iface,
                    ts_hi,
                    ts_lo,
                    caplen,
                    wirelen,
                    flags,
                    comment_len,
                    btype,
                    has_flags,
                    0,
                )
            )
        elif btype == SPB:
            if blen < 16:
                status = ST_BAD_CAPLEN
                break
            wirelen = u32(buf, pos + 8)[0]
            rows.append((pos, pos + 12, -1, 0, 0, 0, min(wirelen, blen - 16), wirelen, 0, 0, SPB, 0, 0))
        elif btype == SJE:  # its body (the entry and padding) as the data
            rows.append((pos, pos + 8, -1, 0, 0, 0, blen - 12, blen - 12, 0, 0, SJE, 0, 0))
        pos += blen
    return store_walk(rows, out, windows, buf, "data", window), pos, status


_REASONS = {
    ST_TRUNCATED: "block runs past the end of the file",
    ST_BAD_LENGTH: "block length not a multiple of 4 or below 12",
    ST_BAD_TRAILER: "trailing block length differs",
    ST_BAD_CAPLEN: "caplen larger than the block",
}


@dataclass
class Chunk:
    """Consecutive packet blocks of a pcapng with their global interface numbers (numbered across
    sections) and header windows."""

    entries: np.ndarray  # ENTRY rows
    iface: np.ndarray  # int32 global interface
    windows: np.ndarray  # (rows, window) uint8
    big: bool  # byte order of the chunk's section

    def packets(self) -> tuple[Chunk, np.ndarray]:
        """The chunk without its systemd Journal Export blocks, and the rows (of this chunk) it keeps."""
        keep = self.entries["btype"] != SJE
        if keep.all():
            return self, np.arange(len(keep))
        rows = np.flatnonzero(keep)
        return Chunk(self.entries[rows], self.iface[rows], self.windows[rows], self.big), rows

    def times(self, interfaces: list[Interface]) -> tuple[np.ndarray, np.ndarray]:
        """(UTC ns, valid): simple packet blocks have no time, and a timestamp beyond what int64 ns hold
        (after 2262, a damaged block) is not one either (see :meth:`out_of_range`)."""
        ticks = (self.entries["ts_hi"].astype(np.uint64) << np.uint64(32)) | self.entries["ts_lo"]
        valid = self.entries["btype"] != SPB
        kinds = _distinct(self.iface)
        if len(kinds) == 1:
            ns = ticks_to_ns(ticks, interfaces[kinds[0]])
            fit = ticks_fit(ticks, interfaces[kinds[0]])
        else:
            # interfaces differ in unit and offset: convert per unit (a few kinds at most), add the
            # offsets in bulk; many interfaces (concatenated captures) cost no more than one
            uniq, inv = np.unique(self.iface, return_inverse=True)
            res = np.array([interfaces[i].tsresol for i in uniq.tolist()], np.int64)[inv]
            off = np.array([interfaces[i].tsoffset for i in uniq.tolist()], np.int64)[inv]
            ns = np.zeros(len(ticks), np.int64)
            fit = np.ones(len(ticks), bool)
            for r in np.unique(res).tolist():
                m = res == r
                ns[m] = ticks_to_ns(ticks[m], Interface(0, tsresol=r))
                fit[m] = ticks_fit(ticks[m], Interface(0, tsresol=r))
            shift = off * 1_000_000_000  # |tsoffset| <= 2^33 s: fits an int64
            fit &= ~((shift > 0) & (ns > np.iinfo(np.int64).max - shift))
            ns = ns + np.where(fit, shift, 0)
        if not fit.all():
            ns = np.where(fit, ns, 0)
            valid = valid & fit
        return ns, valid

    def out_of_range(self, valid: np.ndarray) -> int:
        """How many timed packet blocks :meth:`times` found with an unusable timestamp."""
        return int(((self.entries["btype"] != SPB) & ~valid).sum())

    def directions(self) -> np.ndarray:
        bits = self.entries["flags"] & 3
        code = np.where(bits == 1, DIR_IN, np.where(bits == 2, DIR_OUT, DIR_UNKNOWN)).astype(np.int8)
        return np.where(self.entries["has_flags"] != 0, code, DIR_NONE).astype(np.int8)

    def comments(self, buf: np.ndarray) -> list[str | None]:
        """Each packet's opt_comment; several comments on one packet are joined with newlines."""
        out: list[str | None] = [None] * len(self.entries)
        e = ">" if self.big else "<"
        for i in np.flatnonzero(self.entries["comment"] >= 0).tolist():
            block, caplen = int(self.entries["block"][i]), int(self.entries["caplen"][i])
            end = block + struct.unpack_from(e + "I", buf, block + 4)[0] - 4
            o = block + 28 + _pad4(caplen)
            texts = []
            while o + 4 <= end:
                code, olen = struct.unpack_from(e + "HH", buf, o)
                if code == OPT_END or o + 4 + olen > end:
                    break
                if code == OPT_COMMENT:
                    texts.append(bytes(buf[o + 4 : o + 4 + olen]).decode("utf-8", "replace"))
                o += 4 + _pad4(olen)
            out[i] = "\n".join(texts)
        return out

    def process_ids(self, buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each packet's epb_processid_threadid option (code 8: PID u32, TID u32, as etl2pcapng writes the
        ETW event header's): (pid, tid, present). The options of all packets are walked together, one
        option per step, so the steps are as many as the most options one packet has."""
        n = len(self.entries)
        pid, tid, found = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
        if not n:
            return pid, tid, found
        e = self.entries
        block = e["block"].astype(np.int64)
        cur = block + 28 + ((e["caplen"].astype(np.int64) + 3) & ~3)
        end = block + _u32_at(buf, block + 4, self.big) - 4
        active = np.flatnonzero((e["btype"] != SPB) & (cur + 4 <= end))
        while len(active):
            c = cur[active]
            code, olen = _u16_at(buf, c, self.big), _u16_at(buf, c + 2, self.big)
            ok = (code != OPT_END) & (c + 4 + olen <= end[active])
            hit = ok & (code == OPT_PROCESSID_THREADID) & (olen >= 8) & ~found[active]
            if hit.any():
                rows = active[hit]
                pid[rows] = _u32_at(buf, c[hit] + 4, self.big)
                tid[rows] = _u32_at(buf, c[hit] + 8, self.big)
                found[rows] = True
            cur[active] = c + 4 + ((olen + 3) & ~3)
            active = active[ok & (cur[active] + 4 <= end[active])]
        return pid, tid, found


def _u16_at(buf: np.ndarray, pos: np.ndarray, big: bool) -> np.ndarray:
    a, b = buf[pos].astype(np.int64), buf[pos + 1].astype(np.int64)
    return (a << 8 | b) if big else (b << 8 | a)


def _u32_at(buf: np.ndarray, pos: np.ndarray, big: bool) -> np.ndarray:
    hi, lo = _u16_at(buf, pos, big), _u16_at(buf, pos + 2, big)
    return (hi << 16 | lo) if big else (lo << 16 | hi)


def header_ids(frames: pl.DataFrame, pid: np.ndarray, tid: np.ndarray, found: np.ndarray) -> pl.DataFrame:
    """``header_pid``/``header_tid`` from option 8, else from a ``PID=n`` / ``PID=n TID=m`` comment."""
    opt_pid = pl.Series("_op", pid).set(pl.Series(~found), None)
    opt_tid = pl.Series("_ot", tid).set(pl.Series(~found), None)
    comment = pl.col("comment") if "comment" in frames.columns else pl.lit(None, pl.Utf8)
    from_comment = [
        comment.str.extract(r"(?:^|\s)PID=(\d{1,10})\b", 1).cast(pl.Int64, strict=False),
        comment.str.extract(r"(?:^|\s)TID=(\d{1,10})\b", 1).cast(pl.Int64, strict=False),
    ]
    return frames.with_columns(
        pl.coalesce(opt_pid, from_comment[0]).alias("header_pid"),
        pl.coalesce(opt_tid, from_comment[1]).alias("header_tid"),
    )


class _Scanner:
    def __init__(
        self,
        buf: np.ndarray,
        path: PathLike,
        progress: Progress | None = None,
        window: int = WINDOW,
        quiet: bool = False,
    ) -> None:
        self.buf, self.path, self.progress, self.window, self.quiet = buf, path, progress, window, quiet
        self.name = os.fspath(path)
        self.size = len(buf)
        self.interfaces: list[Interface] = []
        self.big = False
        self.base = 0  # global number of the current section's first interface
        self.skipped = report_for(path)  # published by the reader once the blocks are read

    def _u32(self, pos: int) -> int:
        return struct.unpack_from(">I" if self.big else "<I", self.buf, pos)[0]

    def chunks(self) -> Iterator[Chunk]:
        """The packet blocks chunk by chunk; damage goes to ``self.skipped``."""
        self._first_section()
        pos = self._section(0)
        out: np.ndarray | None = None  # the chunk being filled (None: start a new one)
        win = np.empty((0, 1), np.uint8)
        iface = np.empty(0, np.int32)
        filled = 0
        big = self.big
        walk = walk_py if _c_pcapng_walk is None else _c_pcapng_walk
        while pos is not None and pos < self.size:
            if out is not None and big != self.big and filled:  # a chunk holds one byte order
                yield Chunk(out[:filled], iface[:filled], win[:filled], big)
                out = None
            big = self.big
            if out is None:  # blocks after damage or an interface block join the chunk: one per CHUNK
                count = min(CHUNK, max(1, (self.size - pos) // 16 + 1))
                out = np.empty(count, ENTRY)
                win = np.empty((count, max(self.window, 1)), np.uint8)
                iface = np.empty(count, np.int32)
                filled = 0
            assert out is not None
            n, at, status = walk(self.buf, pos, self.big, out[filled:], win[filled:].reshape(-1), self.window)
            if n:
                filled += self._keep(out, win, iface, filled, n)
            if self.progress is not None:
                self.progress(at, self.size)
            if status == ST_FULL or status == ST_END:
                if filled:
                    yield Chunk(out[:filled], iface[:filled], win[:filled], big)
                out = None
            if status == ST_END:
                break
            if status == ST_FULL:
                pos = at
            elif status == ST_STOP_BLOCK:
                pos = self._section(at) if self._u32(at) == SHB else self._interface(at)
            elif status == ST_BAD_CAPLEN:
                blen = self._u32(at + 4)
                self.skipped.add("damaged block(s)", offset=at, size=blen, detail=_REASONS[status])
                pos = at + blen
            else:
                pos = self._resync(at, _REASONS[status])
        if out is not None and filled:
            yield Chunk(out[:filled], iface[:filled], win[:filled], big)

    def _first_section(self) -> None:
        head = bytes(self.buf[:12])
        if len(head) < 12 or head[:4] != b"\x0a\x0d\x0d\x0a":
            raise CaptureError(
                f"not a pcapng file: first block type {head[:4].hex() or '(empty)'}", path=self.path, offset=0
            )

    def _block_length(self, pos: int, minimum: int) -> int | None:
        """The block's length when it is consistent, else None."""
        if self.size - pos < minimum:
            return None
        blen = self._u32(pos + 4)
        if blen < minimum or blen % 4 or blen > self.size - pos or self._u32(pos + blen - 4) != blen:
            return None
        return blen

    def _section(self, pos: int) -> int | None:
        magic = bytes(self.buf[pos + 8 : pos + 12])
        if magic == struct.pack("<I", BYTE_ORDER_MAGIC):
            self.big = False
        elif magic == struct.pack(">I", BYTE_ORDER_MAGIC):
            self.big = True
        else:
            if pos == 0:
                raise CaptureError(
                    f"not a pcapng file: bad byte-order magic {magic.hex()}", path=self.path, offset=8
                )
            return self._resync(pos, "section header with a bad byte-order magic")
        blen = self._block_length(pos, 28)
        if blen is None:
            if pos == 0:
                raise CaptureError(
                    "damaged section header block (bad or truncated length)", path=self.path, offset=0
                )
            return self._resync(pos, "damaged section header")
        self.base = len(self.interfaces)
        major, minor = struct.unpack_from(">HH" if self.big else "<HH", self.buf, pos + 12)
        if major != 1 and not self.quiet:  # the specification's only version is 1.0 (1.2 in older writers)
            warn(
                f"{self.name}: section at offset {pos:#x} has pcapng version {major}.{minor}, not 1.x; "
                "its blocks are read as version 1 blocks"
            )
        return pos + blen

    def _interface(self, pos: int) -> int | None:
        blen = self._block_length(pos, 20)
        if blen is None:
            return self._resync(pos, "damaged interface description block")
        e = ">" if self.big else "<"
        link_type, _, snaplen = struct.unpack_from(e + "HHI", self.buf, pos + 8)
        iface = Interface(link_type, snaplen=snaplen)
        o, end = pos + 16, pos + blen - 4
        while o + 4 <= end:
            code, olen = struct.unpack_from(e + "HH", self.buf, o)
            if code == OPT_END or o + 4 + olen > end:
                break
            value = bytes(self.buf[o + 4 : o + 4 + olen])
            if code == IF_NAME:
                iface.name = value.decode("utf-8", "replace").rstrip("\x00")
            elif code == IF_TSRESOL and olen >= 1:
                if tsresol_supported(value[0]):
                    iface.tsresol = value[0]
                elif not self.quiet:  # a unit no 64-bit count can use: a damaged option
                    warn(
                        f"{self.name}: interface {len(self.interfaces)} at offset {pos:#x}: ignored "
                        f"if_tsresol {value[0]:#04x} (finer than 10^-19 s or 2^-63 s); microseconds assumed"
                    )
            elif code == IF_TSOFFSET and olen == 8:
                iface.tsoffset = struct.unpack(e + "q", value)[0]
                if abs(iface.tsoffset) > 1 << 33:  # beyond +-272 years: a damaged option
                    if not self.quiet:
                        warn(
                            f"{self.name}: interface {len(self.interfaces)} at offset {pos:#x}: ignored "
                            f"if_tsoffset {iface.tsoffset}"
                        )
                    iface.tsoffset = 0
            o += 4 + _pad4(olen)
        self.interfaces.append(iface)
        return pos + blen

    def _keep(self, out: np.ndarray, win: np.ndarray, iface: np.ndarray, at: int, n: int) -> int:
        """Check the ``n`` rows walked into ``out[at:]``: rows naming an undefined interface are dropped
        (the rest moved up), global interface numbers go to ``iface[at:]``; returns the rows kept."""
        count = len(self.interfaces) - self.base
        entries = out[at : at + n]
        journal = entries["btype"] == SJE  # no interface
        ok = (entries["iface"] < count) | journal
        if not ok.all():
            self.skipped.add_many("packet block(s) naming an undefined interface", entries["block"][~ok])
            k = int(ok.sum())
            out[at : at + k] = entries[ok]
            win[at : at + k] = win[at : at + n][ok]
            n = k
            entries = out[at : at + n]
        iface[at : at + n] = np.where(
            entries["btype"] == SJE, -1, entries["iface"].astype(np.int32) + self.base
        )
        spb = np.flatnonzero(entries["btype"] == SPB)
        if len(spb):  # a simple packet's caplen is also bounded by the interface's snaplen
            snap = np.array(
                [self.interfaces[i].snaplen or 0xFFFFFFFF for i in iface[at + spb].tolist()], np.int64
            )
            entries["caplen"][spb] = np.minimum(entries["caplen"][spb], snap)
        return n

    def _resync(self, pos: int, reason: str) -> int | None:
        """The next offset after ``pos`` where a consistent block starts; records what was skipped."""
        nxt = self._find_block(pos + 1)
        self.skipped.add(
            "damaged block(s)", offset=pos, size=(nxt if nxt is not None else self.size) - pos, detail=reason
        )
        return nxt

    def _find_block(self, start: int) -> int | None:
        """The first offset from ``start`` (any alignment) where a consistent block starts."""
        return find_start(
            self.buf,
            start,
            self.size - 11,
            self.big,
            lambda words, k: np.isin(words, _KNOWN_BLOCKS),
            self._block_at,
        )

    def _block_at(self, p: int) -> bool:
        """A consistent block starts at ``p`` (a section header in either byte order)."""
        if self._u32(p) == SHB:
            magic = bytes(self.buf[p + 8 : p + 12])
            bom = (struct.pack("<I", BYTE_ORDER_MAGIC), struct.pack(">I", BYTE_ORDER_MAGIC))
            if magic not in bom:
                return False
            saved, self.big = self.big, magic == bom[1]
            ok = self._block_length(p, 28) is not None
            self.big = saved
            return ok
        blen = self._block_length(p, 12)
        if blen is None:
            return False
        return not (self._u32(p) in (EPB, PB) and (blen < 32 or self._u32(p + 20) > blen - 32))


def read_pcapng(path: PathLike, *, with_data: bool = False, progress: Progress | None = None) -> pl.DataFrame:
    """Frames (FRAMES schema plus ``comment``) of a pcapng file; ``with_data`` adds a ``data`` column."""
    buf = map_file(path)
    scanner = _Scanner(buf, path, progress)
    parts = []
    ids: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    first = 1
    bad_times = journal = 0
    for whole in scanner.chunks():
        c, rows = whole.packets()
        ids.append(c.process_ids(buf))
        times, valid = c.times(scanner.interfaces)
        bad_times += c.out_of_range(valid)
        link = np.array([i.link_type for i in scanner.interfaces], np.int32)[c.iface]
        part = dissect_buffer(
            buf,
            c.entries["data"],
            c.entries["caplen"],
            times,
            link,
            wirelens=c.entries["wirelen"],
            interfaces=c.iface,
            directions=c.directions(),
            time_valid=None if valid.all() else valid,
            comments=c.comments(buf),
            with_data=with_data,
            source=os.fspath(path),
            windows=c.windows,
            first_frame=first,
            finish=False,
        )
        if len(rows) < len(whole.entries):  # journal blocks take frame numbers, as in Wireshark
            journal += len(whole.entries) - len(rows)
            part = part.with_columns(pl.Series("frame", first + rows, pl.Int64))
        parts.append(part)
        first += len(whole.entries)
    scanner.skipped.publish()
    _report_times(path, bad_times)
    if journal:
        info(
            f"{os.fspath(path)}: {journal:,} systemd Journal Export block(s) (log entries, not packets) "
            "left out; frame numbers count them, as Wireshark does"
        )
    if not parts:
        z = np.zeros(0, np.int64)
        parts.append(dissect_buffer(buf, z, z, z, 0, comments=[], with_data=with_data, finish=False))
    frames = finish_frames(parts, source=os.fspath(path))
    if not ids:
        ids.append((np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)))
    return header_ids(frames, *(np.concatenate(x) for x in zip(*ids)))


def _report_times(path: PathLike, count: int) -> None:
    if count:
        warn(
            f"{os.fspath(path)}: {count:,} packet(s) with a timestamp beyond the year 2262 (damaged?) "
            "kept without a time"
        )


def read_interfaces(path: PathLike) -> list[Interface]:
    """Every interface of a pcapng, numbered across sections as the readers number them."""
    scanner = _Scanner(map_file(path), path, window=0, quiet=True)
    for _ in scanner.chunks():
        pass
    return scanner.interfaces


def iter_packets(path: PathLike) -> tuple[list[Interface], Iterator[Packet]]:
    """All interfaces (numbered across sections) and an iterator over the packets in file order."""
    interfaces = read_interfaces(path)
    buf = map_file(path)
    scanner = _Scanner(buf, path, window=0)

    def packets() -> Iterator[Packet]:
        bad_times = 0
        with scanner.skipped:  # published when the packets run out (or the iterator is closed)
            for whole in scanner.chunks():
                c, kept = whole.packets()
                times, valid = c.times(scanner.interfaces)
                bad_times += c.out_of_range(valid)
                e = c.entries
                rows = zip(
                    e["data"].tolist(),
                    e["caplen"].tolist(),
                    e["wirelen"].tolist(),
                    c.iface.tolist(),
                    times.tolist(),
                    valid.tolist(),
                    c.directions().tolist(),
                    c.comments(buf),
                )
                at = 0  # the next row of ``whole``
                for row, (off, caplen, wirelen, iface, t, ok, d, text) in zip(kept.tolist(), rows):
                    yield from _journal(buf, whole.entries[at:row])
                    at = row + 1
                    yield Packet(
                        t if ok else None,
                        buf[off : off + caplen].tobytes(),
                        iface,
                        wirelen,
                        DIRECTIONS[d],
                        text,
                    )
                yield from _journal(buf, whole.entries[at:])
        _report_times(path, bad_times)

    return interfaces, packets()


def _journal(buf: np.ndarray, entries: np.ndarray) -> Iterator[Packet]:
    """systemd Journal Export blocks (ENTRY rows that are all such blocks) as records for the writer."""
    for off, size in zip(entries["data"].tolist(), entries["caplen"].tolist()):
        yield Packet(None, buf[off : off + size].tobytes(), block=SJE)


def _option(code: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError(f"option {code}: {len(value)} bytes, more than an option holds (65535)")
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (_pad4(len(value)) - len(value))


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def custom_block(pen: int, data: bytes) -> bytes:
    """A little-endian custom block (copying allowed) of the enterprise ``pen`` holding ``data``."""
    return _block(CB_COPY, struct.pack("<I", pen) + data + b"\0" * (_pad4(len(data)) - len(data)))


_FLAG_BITS = {"in": 1, "out": 2, "unknown": 0}


def write_pcapng(
    path: PathLike,
    interfaces: list[Interface],
    packets: Iterable[Packet],
    *,
    simple_untimed: bool = False,
    blocks: Iterable[bytes] = (),
    options: Callable[[int], list[tuple[int, bytes]] | None] | None = None,
) -> int:
    """Write a little-endian pcapng (one section): an interface block per ``interfaces`` entry, the raw
    ``blocks`` (e.g. :func:`custom_block`), then an enhanced packet block per packet with its comment
    (opt_comment) and direction (epb_flags) when set, and the (code, value) options that
    ``options(i)`` gives for packet i (0-based), in that order. Times are floored to the interface's
    resolution. A packet with ``block`` set is written back as that block (a systemd Journal Export
    block: a frame in Wireshark's numbering, so ``options(i)`` stays frame i + 1). Returns the number of
    packets (and such records) written.

    A packet without a time is an error, unless ``simple_untimed`` and it can be a simple packet block
    (interface 0, no comment, no direction, no options), which is how the readers give simple packet
    blocks back.
    """
    for k, iface in enumerate(interfaces):
        if not 0 <= iface.link_type <= 0xFFFF:
            raise ValueError(f"interface {k}: link type {iface.link_type} does not fit pcapng's 16 bits")
    count = 0
    with open(path, "wb") as f:
        f.write(_block(SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _option(OPT_END, b"")))
        for iface in interfaces:
            opts = b""
            if iface.name is not None:
                opts += _option(IF_NAME, iface.name.encode("utf-8"))
            if iface.tsresol != 6:
                opts += _option(IF_TSRESOL, bytes([iface.tsresol]))
            if iface.tsoffset:
                opts += _option(IF_TSOFFSET, struct.pack("<q", iface.tsoffset))
            if opts:
                opts += _option(OPT_END, b"")
            f.write(_block(IDB, struct.pack("<HHI", iface.link_type, 0, iface.snaplen) + opts))
        f.writelines(blocks)
        out: list[bytes] = []
        for p in packets:
            if len(out) >= 8192:
                f.write(b"".join(out))
                out.clear()
            if p.block is not None:  # a record kept as its block (it has a frame number in Wireshark)
                body = bytes(p.data)
                out.append(_block(p.block, body + b"\0" * (_pad4(len(body)) - len(body))))
                count += 1
                continue
            if not 0 <= p.interface < len(interfaces):
                raise ValueError(
                    f"packet {count + 1}: interface {p.interface} not among the {len(interfaces)} given"
                )
            more = options(count) if options is not None else None
            if p.time_ns is None:
                if (
                    simple_untimed
                    and p.interface == 0
                    and p.comment is None
                    and p.direction is None
                    and not more
                ):
                    data = bytes(p.data)
                    wirelen = len(data) if p.wirelen is None else p.wirelen
                    pad = b"\0" * (_pad4(len(data)) - len(data))
                    out.append(_block(SPB, struct.pack("<I", wirelen) + data + pad))
                    count += 1
                    continue
                raise ValueError(f"packet {count + 1}: no time (an enhanced packet block needs one)")
            ticks = ns_to_ticks(p.time_ns, interfaces[p.interface])
            if not 0 <= ticks < 1 << 64:
                raise ValueError(f"packet {count + 1}: time {p.time_ns} outside the interface's range")
            data = bytes(p.data)
            wirelen = len(data) if p.wirelen is None else p.wirelen
            opts = b""
            if p.comment is not None:
                opts += _option(OPT_COMMENT, p.comment.encode("utf-8"))
            if p.direction is not None:
                if p.direction not in _FLAG_BITS:
                    raise ValueError(f"packet {count + 1}: direction {p.direction!r} is not in/out/unknown")
                opts += _option(OPT_FLAGS, struct.pack("<I", _FLAG_BITS[p.direction]))
            for code, value in more or ():
                opts += _option(code, value)
            if opts:
                opts += _option(OPT_END, b"")
            body = (
                struct.pack("<IIIII", p.interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wirelen)
                + data
                + b"\0" * (_pad4(len(data)) - len(data))
                + opts
            )
            out.append(_block(EPB, body))
            count += 1
        f.write(b"".join(out))
    return count
