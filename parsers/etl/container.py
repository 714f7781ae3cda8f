"""Navigation of an ETL file: buffers -> records, streamed with mmap into columnar :class:`RecordBatch` es.

A chunk of consecutive buffers is copied (or decompressed) into one bytearray, the record offsets
are found by one sequential walk (C when built, else Python: identical results), and every header
field is then gathered with numpy. Pages of the mapping already read are dropped (madvise), so
memory is bounded by the chunk size, not the file size. When a reader asks for a few providers, the
walk selects their records in the same pass (C), plain buffers are walked where they lie in the
mapping, and only the wanted records are copied, gathered into batches of their own size.

A record is every record of every buffer, the logfile header record included (the corpus README's
counts). MESSAGE (WPP) records get an 8-byte header; their optional fields stay in the payload and
they take the time of the record before them.

Damage costs only the damaged unit: a record with a bad header skips the bytes up to the next
position from which a valid chain of records reaches the end of the buffer; a buffer with a bad
header or undecodable compressed data is skipped whole. Everything skipped is counted in
:class:`EtlStats` and goes to the file's :class:`~..diagnostics.SkipReport` (``EtlFile.skipped``), which
the decoders of the same pass add to and which is published when the file is closed.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import sys
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from ..diagnostics import SkipReport, report_for, warn
from ..errors import EtlError
from ..units import FILETIME_MAX_NS, FILETIME_UNIX_EPOCH, Progress, filetime_to_ns
from . import guids as _guids
from .compression import DecompressionError, decompress, decompress_many
from .records import EVENT_HEADER32, EVENT_HEADER64, MESSAGE, SYSTEM32, SYSTEM64, RecordBatch
from .structs import (
    BUFFER_HEADER_SIZE,
    EH_EXTENDED_INFO,
    EXT_LINKAGE_MORE,
    FLAG_BUFFER_LOST,
    FLAG_COMPRESSED,
    FLAG_EVENTS_LOST,
    HEADER_SIZES,
    KIND_OF,
    MARKER_FLAGS,
    MESSAGE_FLAGS,
    POINTER_SIZES,
    SIZE_AT_4,
    buffer_header,
    structs_for,
)
from .timestamps import Clock

try:
    from . import _columnar
except ImportError:  # pragma: no cover - depends on the build
    _columnar = None  # type: ignore[assignment]  # the accelerator is optional
try:
    from . import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None  # type: ignore[assignment]  # the accelerator is optional


#: LogFileMode bit of files whose buffers (after the first) are compressed.
LOGFILE_MODE_COMPRESSED = 0x04000000
#: LogFileMode bit of circular files (BuffersWritten of one that wrapped around may count overwritten buffers).
LOGFILE_MODE_CIRCULAR = 0x00000002
#: Timestamps this far before the logfile header's start or after its end are damaged (ns); the corpus
#: has none before the start and rundown records up to 2.5 s after the end.
BEFORE_START_NS = 60 * 10**9
AFTER_END_NS = 3600 * 10**9
#: Largest decompressed buffer accepted (ETW buffers are at most 16 MB).
MAX_BUFFER = 16 << 20
#: Largest ratio of decompressed to compressed bytes accepted for a buffer. Real Xpress buffers stay far
#: below (the corpus's 668 compressed buffers: at most 13.6); a buffer claiming more is refused unread, so
#: the work is bounded by 128 x the file size whatever the file claims.
MAX_RATIO = 128
#: Distinct providers (GUIDs) a file may name: the event-type keys of ``columnar`` hold a provider's index + 1
#: in 16 bits. Real traces name a few hundred; records of the GUIDs past these are skipped and counted (each
#: new GUID also costs memory: a file naming millions would otherwise hold them all).
MAX_PROVIDERS = 0xFFFF
_PAST_PROVIDERS = -2  # the provider index of their records until they are taken out
#: Bytes of a candidate buffer looked at when searching for the next buffer after a bad buffer header.
PROBE_BYTES = 0x1000

# Damage reasons of the record walk (codes shared with the C walker).
DAMAGE_REASONS = {
    1: "unknown record marker",
    2: "record size smaller than its header",
    3: "record runs past the end of the buffer",
    4: "bad extended data item",
}

_HDR_LEN = np.zeros(256, np.int64)  # header bytes per header type (0: not a record type)
for _t, _n in HEADER_SIZES.items():
    _HDR_LEN[_t] = _n
_PTR = np.zeros(256, np.uint8)
for _t, _n in POINTER_SIZES.items():
    _PTR[_t] = _n
_SIZE_AT_4 = np.zeros(256, bool)
_SIZE_AT_4[list(SIZE_AT_4)] = True
# how the header gather reads each header kind of structs.HEADER_KINDS, by header type
_K_NONE, _K_SYSTEM, _K_PERFINFO, _K_CLASSIC, _K_EVENT = 0, 1, 2, 3, 4
_GATHER = {"system": _K_SYSTEM, "compact": _K_SYSTEM, "perfinfo": _K_PERFINFO}
_GATHER |= {"full": _K_CLASSIC, "instance": _K_CLASSIC, "event": _K_EVENT}
_KIND = np.zeros(256, np.uint8)
for _t, _k in KIND_OF.items():
    _KIND[_t] = _GATHER[_k]
_U64 = (1 << 64) - 1
#: Padding after a batch's data: the header gather reads 0x38 bytes from every record start.
_TAIL = 0x40
_FF = b"\xff" * (_TAIL + 8)  # the padding after a part (at most 7 bytes) or the batch (_TAIL more)


@dataclass
class LogfileHeader:
    """The TRACE_LOGFILE_HEADER of a file (payload of its first record) and that record's raw timestamp."""

    pointer_size: int
    clock_type: int
    perf_freq: int
    start_time: int  # FILETIME, UTC
    end_time: int  # FILETIME, UTC
    boot_time: int  # FILETIME
    cpu_speed_mhz: int
    number_of_processors: int
    events_lost: int
    buffers_lost: int
    buffers_written: int
    buffer_size: int
    log_file_mode: int
    timezone_bias_minutes: int
    logger_name: str
    logfile_name: str
    os_version: tuple[int, int]
    os_build: int
    header_timestamp: int  # raw clock value of the header record (anchors start_time)
    maximum_file_size_mb: int = 0

    @property
    def expected_buffers(self) -> int:
        """Buffers the file should hold per BuffersWritten; 0 when that count does not tell (a circular
        file that wrapped around)."""
        if self.log_file_mode & LOGFILE_MODE_CIRCULAR:
            capacity = (self.maximum_file_size_mb << 20) // self.buffer_size if self.buffer_size else 0
            return self.buffers_written if self.buffers_written <= capacity else 0
        return self.buffers_written

    @property
    def compressed(self) -> bool:
        """Whether the logger wrote compressed buffers."""
        return bool(self.log_file_mode & LOGFILE_MODE_COMPRESSED)


@dataclass
class EtlStats:
    """What one iteration over a file saw and skipped."""

    path: str = ""
    buffers: int = 0
    compressed_buffers: int = 0
    records: int = 0
    skipped_buffers: int = 0  # buffers skipped whole (bad header, undecodable, cut)
    skipped_bytes: int = 0
    skipped_records: int = 0  # records known lost (counted where the bytes allow)
    damaged_buffers: int = 0  # buffers with at least one skipped part
    damage_offsets: list[int] = field(default_factory=list)
    damage_reasons: list[str] = field(default_factory=list)
    damages: list[tuple[int, int, int, str]] = field(default_factory=list)  # offset, bytes, records, why
    events_lost_flag_buffers: int = 0
    buffer_lost_flag_buffers: int = 0
    header_events_lost: int = 0
    header_buffers_lost: int = 0
    trailing_bytes: int = 0  # bytes of the last, incomplete buffer (a cut file)
    uncounted_buffers: int = 0  # skipped compressed buffers whose records cannot be counted
    expected_buffers: int = 0  # BuffersWritten of the logfile header (0: not a usable count)
    bad_time_records: int = 0  # records whose timestamp is outside the trace's span (kept)
    bad_time_offsets: list[int] = field(default_factory=list)
    past_providers: int = 0  # records of the GUIDs past the file's first MAX_PROVIDERS (skipped)
    past_providers_at: int = 0  # file offset of the first one's buffer
    span: str = ""  # the span, as text, for the warning
    clock_note: str = ""  # the logfile header's times disagree with the buffers' (a damaged header)
    _damaged: set = field(default_factory=set, repr=False)

    def report(self, skipped: SkipReport) -> None:
        """Count what was skipped, missing (a cut file) and lost by the logger into ``skipped``."""
        for off, nbytes, records, reason in self.damages:
            if records >= 0:
                skipped.add("record(s) in damaged buffers", records, offset=off, size=nbytes, detail=reason)
            else:
                skipped.add(
                    "compressed buffer(s) of uncountable records", offset=off, size=nbytes, detail=reason
                )
        skipped.add(
            f"record(s) of providers past the file's first {MAX_PROVIDERS:,} (a damaged or hostile file)",
            self.past_providers,
            offset=self.past_providers_at,
        )
        found = self.buffers + self.skipped_buffers
        if self.expected_buffers > found:
            skipped.missing(
                f"of the {self.expected_buffers} buffer(s) its logfile header counts (the file is cut)",
                self.expected_buffers - found,
            )
        skipped.lost("event(s) lost (logfile header)", self.header_events_lost)
        skipped.lost("buffer(s) flagged EVENTS_LOST", self.events_lost_flag_buffers)
        skipped.lost("buffer(s) lost (logfile header)", self.header_buffers_lost)
        skipped.lost("buffer(s) flagged BUFFER_LOST", self.buffer_lost_flag_buffers)

    def notes(self) -> list[str]:
        """Warnings about records kept with doubtful times, naming the file (empty when none)."""
        out = []
        if self.bad_time_records:
            offs = ", ".join(f"{o:#x}" for o in self.bad_time_offsets[:5])
            out.append(
                f"{self.path}: {self.bad_time_records} record(s) have a timestamp outside the trace "
                f"({self.span}), so their times are wrong: damaged records, or another trace appended to this "
                f"one (buffers at offsets {offs}"
                f"{', ...' if len(self.bad_time_offsets) >= 5 else ''})"
            )
        if self.clock_note:
            out.append(f"{self.path}: {self.clock_note}")
        return out

    def _damage(
        self, buffer: int, offset: int, nbytes: int, records: int, reason: str, whole: bool = False
    ) -> None:
        if buffer not in self._damaged:
            self._damaged.add(buffer)
            self.damaged_buffers += 1
        self.skipped_bytes += nbytes
        self.skipped_records += max(records, 0)
        self.skipped_buffers += int(whole)
        self.uncounted_buffers += int(whole and records < 0)
        self.damage_offsets.append(offset)
        self.damage_reasons.append(reason)
        self.damages.append((offset, nbytes, records, reason))


# ------------------------------------------------------------------ record walk (Python reference)


def _record_at(data, p: int, end: int) -> tuple[int, int, int]:
    """(size, header length incl. extended items, damage code) of the record at ``p``; size 0: end marker."""
    if p + 4 > end:
        return 0, 0, 0
    low, ht, flags = struct.unpack_from("<HBB", data, p)
    if low == 0xFFFF and ht == 0xFF and flags == 0xFF:
        return 0, 0, 0
    if flags == MESSAGE_FLAGS:
        size, hdr = low, 8
    elif flags == MARKER_FLAGS and _HDR_LEN[ht]:
        hdr = int(_HDR_LEN[ht])
        if _SIZE_AT_4[ht]:
            if p + 8 > end:
                return 0, 0, 3
            size = struct.unpack_from("<H", data, p + 4)[0]
            if low & 0x8000:
                hdr += 8
            hdr += 8 * ((low & 0x0700) >> 8)
        else:
            size = low
    else:
        return 0, 0, 1
    if size < hdr:
        return 0, 0, 2
    if p + size > end:
        return 0, 0, 3
    if (
        (ht == EVENT_HEADER32 or ht == EVENT_HEADER64)
        and flags == MARKER_FLAGS
        and struct.unpack_from("<H", data, p + 4)[0] & EH_EXTENDED_INFO
    ):
        q, rec_end = p + hdr, p + size
        while True:
            if q + 8 > rec_end:
                return 0, 0, 4
            isz, _, link = struct.unpack_from("<HHH", data, q)
            if isz < 8 or isz & 7 or q + isz > rec_end:
                return 0, 0, 4
            q += isz
            if not link & EXT_LINKAGE_MORE:
                break
        hdr = q - p
    return size, hdr, 0


#: Valid records in a row that make a resynchronisation point even when the chain then meets more damage
#: (which is handled as damage of its own); a chain reaching the end of the buffer always does.
RESYNC_MIN_CHAIN = 16


def _resync(data, p: int, end: int, memo: list[int], base: int) -> int:
    """The first 8-aligned position after a bad record at ``p`` from which valid records run to the end of
    the segment (or its end marker), or :data:`RESYNC_MIN_CHAIN` valid records in a row; -1 when none.

    ``memo`` (one slot per 8 bytes of the segment from ``base``, shared by every resync of the segment)
    remembers what the chain from each record position does: 0 unknown, 1 reaches the end, k + 2 fails
    after k valid records. So no position is walked twice, however many candidates fail: linear work.
    """
    q = p + 8
    while q + 4 <= end:
        size, _, bad = _record_at(data, q, end)
        if bad or size == 0:  # a bad record or an end marker: no chain starts here
            q += 8
            continue
        path = [q]
        r = q + ((size + 7) & ~7)
        while True:
            if r + 4 > end:
                result = 1
                break
            result = memo[(r - base) >> 3]
            if result:
                break
            size, _, bad = _record_at(data, r, end)
            if bad:
                result = 2
                break
            if size == 0:  # the end marker: the records end here
                result = 1
                break
            path.append(r)
            r += (size + 7) & ~7
        for x in reversed(path):  # each record adds one to the chain after it
            if result != 1:
                result += 1
            memo[(x - base) >> 3] = result
        if result == 1 or result - 2 >= RESYNC_MIN_CHAIN:
            return q
        q += 8
    return -1


def _lost_records(data, p: int, stop: int, end: int) -> int:
    """Records lost in the skipped bytes [p, stop) after a bad record at ``p``: that one plus the valid
    records a walk of the skipped bytes meets (stepping 8 bytes over anything else)."""
    n, r = 1, p + 8
    while r + 4 <= stop:
        size, _, bad = _record_at(data, r, end)
        if bad or size == 0:
            r += 8
            continue
        n += 1
        r += (size + 7) & ~7
    return n


def walk_py(data, starts: np.ndarray, ends: np.ndarray):
    """Record offsets, sizes and header lengths of the segments [starts[i], ends[i]) of ``data``.

    Returns (offsets int64, sizes int64, hdr_lens int64, damages) where damages lists
    (segment, offset, resumed_at or -1, reason code, records lost).
    """
    offs, sizes, hdrs, damages = [], [], [], []
    for seg in range(len(starts)):
        p, end = int(starts[seg]), int(ends[seg])
        base, memo = p, None
        while p + 4 <= end:
            size, hdr, bad = _record_at(data, p, end)
            if bad:
                if memo is None:
                    memo = [0] * ((end - base) // 8 + 1)
                resumed = _resync(data, p, end, memo, base)
                damages.append(
                    (seg, p, resumed, bad, _lost_records(data, p, resumed if resumed >= 0 else end, end))
                )
                if resumed < 0:
                    break
                p = resumed
                continue
            if size == 0:
                break
            offs.append(p)
            sizes.append(size)
            hdrs.append(hdr)
            p += (size + 7) & ~7
    return (np.array(offs, np.int64), np.array(sizes, np.int64), np.array(hdrs, np.int64), damages)


def _starts_with_records(data: bytes, full: int) -> bool:
    """Whether ``data``, the first bytes of a buffer's ``full`` bytes of records, holds only valid records
    (the last one may run past ``data`` when it is cut short of ``full``)."""
    n = len(data)
    if n < 8:
        return False
    offs, _, _, damages = walk(data + bytes(8), np.array([0], np.int64), np.array([n], np.int64))
    if not damages:
        return len(offs) > 0
    _seg, p, _resumed, code, _lost = damages[0]
    return n < full and code == 3 and len(offs) > 0 and int(offs[0]) < p


def _file_of(offs: np.ndarray, starts: np.ndarray, files: np.ndarray) -> np.ndarray:
    """The file offset of the buffer of each record at ``offs`` (segments from ``starts``, buffers at ``files``)."""
    return files[np.searchsorted(starts, offs, side="right") - 1]


def walk_c(data, starts: np.ndarray, ends: np.ndarray):
    """The C walker (same results as :func:`walk_py`)."""
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    cap = int(((ends - starts) // 8 + 1).sum()) if len(starts) else 0
    offs = np.empty(cap, np.int64)
    sizes = np.empty(cap, np.int64)
    hdrs = np.empty(cap, np.int64)
    n, damages = _speedups.walk(data, starts, ends, offs, sizes, hdrs)
    return offs[:n], sizes[:n], hdrs[:n], damages


walk = walk_c if _speedups is not None else walk_py


def _select_py(
    data, offs: np.ndarray, wanted: _Wanted, raw_anchor: int, lo: int, hi: int
) -> tuple[np.ndarray, int]:
    """Positions of the records of the wanted providers, and the number of timed records whose raw
    timestamp is outside [lo, hi] from ``raw_anchor`` (the reference of the C ``select``)."""
    w = np.frombuffer(data, np.uint64)[(offs >> 3)[:, None] + np.arange(5)]
    flags = (w[:, 0] >> np.uint64(24)).astype(np.uint8)
    kind = _KIND[(w[:, 0] >> np.uint64(16)).astype(np.uint8)]
    timed = flags != MESSAGE_FLAGS
    raw = np.where(kind == _K_PERFINFO, w[:, 1], w[:, 2])
    delta = (raw - np.uint64(raw_anchor & _U64)).view(np.int64)
    bad = int((timed & ((delta < lo) | (delta > hi))).sum())
    groups = np.frombuffer(wanted.groups, np.uint8).astype(bool)
    keep = ((kind == _K_SYSTEM) | (kind == _K_PERFINFO)) & groups[(w[:, 0] >> np.uint64(56)).astype(np.uint8)]
    guids = np.frombuffer(wanted.guids, np.uint64).reshape(-1, 2)
    guided = kind >= _K_CLASSIC
    for g_lo, g_hi in guids:
        keep |= guided & (w[:, 3] == g_lo) & (w[:, 4] == g_hi)
    return np.flatnonzero(timed & keep), bad


#: The header fields :func:`_header_fields` gives, in order, and their types.
HEADER_OUTS = (
    ("htype", np.uint8),
    ("pointer_size", np.uint8),
    ("provider", np.int32),  # kernel groups' provider index; -1 for the others (GUIDs: lo, hi)
    ("group", np.int16),
    ("opcode", np.uint8),
    ("version", np.uint16),
    ("event_id", np.uint16),
    ("level", np.uint8),
    ("keyword", np.uint64),
    ("pid", np.uint32),
    ("tid", np.uint32),
    ("raw", np.uint64),  # raw timestamp
    ("lo", np.uint64),  # the provider GUID's halves (records with a GUID; 0 for the others)
    ("hi", np.uint64),
)


def _header_fields(data, offs: np.ndarray, group_provider: np.ndarray) -> tuple[np.ndarray, ...]:
    """The :data:`HEADER_OUTS` columns of the records at ``offs`` of ``data``, by the C accelerator in one
    pass without the GIL (the same as :func:`_header_fields_py`)."""
    offs = np.ascontiguousarray(offs, np.int64)
    outs = tuple(np.empty(len(offs), dtype) for _, dtype in HEADER_OUTS)
    _columnar.headers(data, offs, _KIND, _PTR, group_provider, MESSAGE_FLAGS, MESSAGE, outs)
    return outs


def _header_fields_py(data, offs: np.ndarray, group_provider: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_header_fields` with numpy (the reference of the C pass): the first 0x38 bytes of every record
    header, read by header kind (a record whose 0x38 bytes do not fit in ``data`` reads as zeros)."""
    n = len(offs)
    raw_bytes = np.frombuffer(data, np.uint8)
    fits = (offs >= 0) & (offs <= len(raw_bytes) - 56)
    safe = np.where(fits, offs, 0)
    idx = safe[:, None] + np.arange(56)
    w = raw_bytes[idx].view(np.uint64).reshape(n, 7) if len(raw_bytes) >= 56 else np.zeros((n, 7), np.uint64)
    w = np.where(fits[:, None], w, np.uint64(0))
    w0, w1 = w[:, 0], w[:, 1]
    flags = (w0 >> np.uint64(24)).astype(np.uint8)
    htype = np.where(flags == MESSAGE_FLAGS, np.uint8(MESSAGE), (w0 >> np.uint64(16)).astype(np.uint8))
    kind = _KIND[htype]
    kern, perf, guided, ev = kind == _K_SYSTEM, kind == _K_PERFINFO, kind >= _K_CLASSIC, kind == _K_EVENT
    kp = kern | perf
    hi32 = (w0 >> np.uint64(32)).astype(np.uint32)  # bytes 4..7
    b6 = ((hi32 >> 16) & 0xFF).astype(np.uint8)
    b7 = (hi32 >> 24).astype(np.uint8)
    group = np.where(kp, b7.astype(np.int16), np.int16(-1))
    provider = np.where(kp, group_provider[b7], np.int32(-1)).astype(np.int32)
    with_ids = kern | guided
    tid = np.where(with_ids, w1.astype(np.uint32), np.uint32(0xFFFFFFFF))
    pid = np.where(with_ids, (w1 >> np.uint64(32)).astype(np.uint32), np.uint32(0xFFFFFFFF))
    raw = np.where(perf, w1, w[:, 2])
    w5 = w[:, 5]
    # kernel: version = byte 0, opcode = byte 6; classic (FULL/INSTANCE): opcode @4, level @5,
    # version u16 @6; EVENT_HEADER: descriptor at 0x28 (word 5) and keyword at 0x30 (word 6)
    opcode = np.where(
        kp, b6, np.where(ev, (w5 >> np.uint64(40)).astype(np.uint8), (hi32 & 0xFF).astype(np.uint8))
    )
    version = np.where(
        kp,
        (w0 & np.uint64(0xFF)).astype(np.uint16),
        np.where(
            ev,
            ((w5 >> np.uint64(16)) & np.uint64(0xFF)).astype(np.uint16),
            (hi32 >> 16).astype(np.uint16),
        ),
    )
    level = np.where(
        ev,
        ((w5 >> np.uint64(32)) & np.uint64(0xFF)).astype(np.uint8),
        ((hi32 >> 8) & 0xFF).astype(np.uint8),
    )
    event_id = np.where(ev, (w5 & np.uint64(0xFFFF)).astype(np.uint16), np.uint16(0))
    keyword = np.where(ev, w[:, 6], np.uint64(0))
    classic = guided & ~ev
    version = np.where(guided | kp, version, np.uint16(0))
    opcode = np.where(guided | kp, opcode, np.uint8(0))
    level = np.where(classic | ev, level, np.uint8(0))
    lo = np.where(guided, w[:, 3], np.uint64(0))
    hi = np.where(guided, w[:, 4], np.uint64(0))
    return (
        htype,
        _PTR[htype],
        provider,
        group,
        opcode,
        version,
        event_id,
        level,
        keyword,
        pid,
        tid,
        raw,
        lo,
        hi,
    )


# ------------------------------------------------------------------ the file


def _utf16z(buf, start: int, end: int) -> tuple[str, int]:
    """The NUL-terminated UTF-16 string at ``start`` (cut at ``end``) and the position after it."""
    p = start
    while p + 2 <= end and buf[p : p + 2] != b"\0\0":
        p += 2
    text = bytes(buf[start:p]).decode("utf-16-le", errors="replace")
    return text, min(p + 2, end)


def _heap_trimmer() -> Callable[[int], object]:
    """glibc's malloc_trim, or a no-op where there is none.

    Each chunk's temporary arrays raise glibc's dynamic mmap threshold, after which freed chunk-sized
    blocks stay in the heap between long-lived small objects: RSS then grows with the file. Trimming
    hands those pages back (measured: 215 -> 118 MB after 400 MB of compressed buffers).
    """
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return _no_trim


def _no_trim(_pad: int = 0) -> None:
    """Nothing to trim without glibc."""


#: Resident bytes the process may gain after a trim before the next one. A trim hands back every free
#: page, and the next chunks fault them in again (a trim every 4 chunks: 250,000 page faults and 1.2-1.8 s
#: of system time on a 516 MB file; trimmed on growth: 66,000 and 0.8 s).
TRIM_GROWTH = 32 << 20
_trim_heap_fn = _heap_trimmer()
_PAGE = mmap.PAGESIZE


def _resident() -> int | None:
    """This process's resident bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class _Trimmer:
    """Trims the C heap when the process has grown by :data:`TRIM_GROWTH` since the last trim."""

    def __init__(self) -> None:
        self.after = _resident() if _trim_heap_fn is not _no_trim else None

    def __call__(self) -> None:
        if self.after is None:
            return
        now = _resident()
        if now is None or now - self.after < TRIM_GROWTH:
            return
        _trim_heap_fn(0)
        self.after = _resident() or now


@dataclass(frozen=True)
class _Wanted:
    """The providers a reader asks for, as the record selection needs them: a keep flag per kernel group
    and the other GUIDs' 16 bytes."""

    providers: frozenset[uuid.UUID]
    groups: bytes  # 256 flags, by kernel group
    guids: bytes  # 16 bytes (little-endian GUID) per provider

    @classmethod
    def of(cls, providers: Collection[uuid.UUID]) -> _Wanted:
        wanted = frozenset(uuid.UUID(str(p)) for p in providers)
        groups = bytearray(256)
        for grp, g in _guids.KERNEL_GROUPS.items():
            groups[grp] = g in wanted
        return cls(wanted, bytes(groups), b"".join(sorted(g.bytes_le for g in wanted)))


class _Chunk:
    """Consecutive buffers read into one batch: each one's place in the batch's bytes, and the plain
    buffers' views (copied in when the batch is made; compressed ones are decompressed there at once)."""

    def __init__(self) -> None:
        self.buf: bytearray | None = None
        self.parts: list[memoryview | None] = []
        self.files: list[int] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.pos = 0
        #: compressed buffers placed and not decompressed yet: (place in the lists, their bytes, size)
        self.pending: list[tuple[int, memoryview, int]] = []

    def add(self, off: int, view: memoryview | None, size: int) -> None:
        self.parts.append(view)
        self.files.append(off)
        self.starts.append(self.pos)
        self.ends.append(self.pos + size)
        self.pos += size + (-size & 7)


class _Picked:
    """Records picked for a reader (walked and selected in one pass), packed, waiting to fill a batch."""

    def __init__(self) -> None:
        self.parts: list[tuple] = []
        self.nbytes = self.records = 0

    def add(self, data: bytearray, offs, sizes, hdrs, file_of, records) -> None:
        if len(offs):
            self.parts.append((data, offs, sizes, hdrs, file_of, records))
            self.nbytes += len(data)
            self.records += len(offs)

    def take(self) -> tuple:
        """(data with the gather's tail, offsets into it, sizes, header lengths, buffer file offsets, record
        indexes) of every waiting record."""
        parts, self.parts, self.nbytes, self.records = self.parts, [], 0, 0
        shift = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
        data = bytearray().join(p[0] for p in parts) + _FF[:_TAIL]
        offs = np.concatenate([p[1] + k for p, k in zip(parts, shift, strict=True)])
        return (data, offs, *(np.concatenate([p[i] for p in parts]) for i in range(2, 6)))


class EtlFile:
    """An open ETL file: ``.header``, ``.batches()``, ``.stats``, ``.skipped`` (what the container and the
    decoders of the pass skipped; published when the context manager exits). Use as a context manager."""

    def __init__(
        self, path: str | os.PathLike, progress: Progress | None = None, skipped: SkipReport | None = None
    ) -> None:
        """``skipped``: a report of the file to count into, published by whoever made it (default: the
        file's own, published when the context manager exits)."""
        self.path = os.fspath(path)
        self.progress = progress
        self._fh = None
        self._mm = None
        self.stats = EtlStats(path=self.path)
        self._own_report = skipped is None
        self._passes = 0  # calls of batches()
        self.skipped = skipped if skipped is not None else report_for(path)
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - lives with the EtlFile (close())
            self.size = os.fstat(self._fh.fileno()).st_size
        except OSError as exc:
            self.close()
            raise EtlError(f"cannot open: {exc.strerror or exc}", path=self.path) from None
        if self.size == 0:
            self.close()
            raise EtlError("empty file", path=self.path, offset=0)
        try:
            self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            self.close()
            raise EtlError(f"cannot map the file: {exc}", path=self.path) from None
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            self._mm.madvise(mmap.MADV_SEQUENTIAL)
        self._released = 0
        self._spares: list[bytearray] = []  # batch buffers (see _batch_buffer)
        self._open: _Chunk | None = None  # the chunk batches() is filling (see _settle)
        self._record_base = 0  # records before the chunk being read (batches())
        self._last_stamp = 0  # the largest buffer TimeStamp seen (see _clock_note)
        try:
            self.header = self._read_header()
            self.clock = Clock.from_header(
                self.header.clock_type,
                self.header.perf_freq,
                self.header.cpu_speed_mhz,
                self.header.start_time,
                self.header.header_timestamp,
            )
        except ValueError as exc:
            self.close()
            raise EtlError(
                f"not a usable logfile header: {exc}", path=self.path, offset=BUFFER_HEADER_SIZE
            ) from None
        except EtlError:
            self.close()
            raise
        self.guids: list[uuid.UUID] = list(dict.fromkeys(_guids.KERNEL_GROUPS.values()))
        self._guid_index = {g: i for i, g in enumerate(self.guids)}
        self._group_provider = np.full(256, -1, np.int32)
        for grp, g in _guids.KERNEL_GROUPS.items():
            self._group_provider[grp] = self._guid_index[g]

    # -- context manager
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._own_report and self._passes:  # a file only opened (its header checked) reports nothing
            self.skipped.publish()

    def close(self) -> None:
        """Release the mapping and the file."""
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a consumer still holds a view; the mapping goes with it
                pass
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def _map(self) -> mmap.mmap:
        """The mapped file (None only once closed)."""
        if self._mm is None:
            raise ValueError("I/O operation on a closed EtlFile")
        return self._mm

    # -- header
    def _err(self, msg: str, offset: int) -> EtlError:
        return EtlError(msg, path=self.path, offset=offset)

    def _read_header(self) -> LogfileHeader:
        mm = self._map
        if self.size < BUFFER_HEADER_SIZE + 0x20:
            raise self._err(f"not an ETL file: {self.size} bytes is too short for a buffer header", 0)
        bh = buffer_header.parse(mm[:BUFFER_HEADER_SIZE])
        if not BUFFER_HEADER_SIZE + 0x20 <= bh.buffer_size <= MAX_BUFFER:
            raise self._err(f"not an ETL file: first buffer size {bh.buffer_size:#x} is invalid", 0)
        if bh.buffer_flag & FLAG_COMPRESSED:
            raise self._err("not an ETL file: the first (header) buffer is marked compressed", 0x34)
        end = min(bh.buffer_size, self.size, max(bh.filled_bytes, 0))
        p = BUFFER_HEADER_SIZE
        low, ht, flags, size, opcode, group = struct.unpack_from("<HBBHBB", mm, p)
        if flags != MARKER_FLAGS or ht not in (SYSTEM32, SYSTEM64):
            raise self._err(
                f"not an ETL file: first record marker {low | ht << 16 | flags << 24:#010x} "
                "is not a SYSTEM trace header",
                p,
            )
        if group != 0 or opcode != 0:
            raise self._err(
                f"not an ETL file: first record is hook {group << 8 | opcode:#06x}, "
                "not the logfile header (0x0000)",
                p + 6,
            )
        ps = 8 if ht == SYSTEM64 else 4
        s = structs_for(ps)
        if p + size > end or size < 0x20 + s.logfile_header_size:
            raise self._err(
                f"logfile header record of {size} bytes does not fit the first buffer "
                f"({end:#x} bytes filled)",
                p + 4,
            )
        sh = s.system_header.parse(mm[p : p + 0x20])
        lf = s.trace_logfile_header_fixed.parse(mm[p + 0x20 : p + 0x20 + s.logfile_header_size])
        logger_name, q = _utf16z(mm, p + 0x20 + s.logfile_header_size, p + size)
        logfile_name, _ = _utf16z(mm, q, p + size)
        if lf.pointer_size not in (4, 8):
            raise self._err(f"logfile header pointer size {lf.pointer_size} is not 4 or 8", p + 0x20 + 0x2C)
        return LogfileHeader(
            pointer_size=lf.pointer_size,
            clock_type=lf.clock_type,
            perf_freq=lf.perf_freq,
            start_time=lf.start_time,
            end_time=lf.end_time,
            boot_time=lf.boot_time,
            cpu_speed_mhz=lf.cpu_speed_mhz,
            number_of_processors=lf.number_of_processors,
            events_lost=lf.events_lost,
            buffers_lost=lf.buffers_lost,
            buffers_written=lf.buffers_written,
            buffer_size=lf.buffer_size,
            log_file_mode=lf.log_file_mode,
            timezone_bias_minutes=lf.timezone.bias,
            logger_name=logger_name,
            logfile_name=logfile_name,
            os_version=(lf.version & 0xFF, (lf.version >> 8) & 0xFF),
            os_build=lf.provider_version,
            header_timestamp=sh.timestamp,
            maximum_file_size_mb=lf.maximum_file_size,
        )

    # -- buffers
    def _buffers(self) -> Iterator[tuple[int, memoryview | tuple[memoryview, int], int]]:
        """(file offset, record bytes or (compressed bytes, their decompressed size), flags) of every
        usable buffer; damage of buffer headers goes to ``self.stats``."""
        mm, size, st = self._map, self.size, self.stats

        def damage(*args, **kwargs) -> None:  # counted in file order: after the buffers placed before it
            self._settle(self._open)
            st._damage(*args, **kwargs)

        stride = self.header.buffer_size  # plain buffers after the first all have one size
        off = 0
        while off < size:
            if off + BUFFER_HEADER_SIZE > size:
                st.trailing_bytes = size - off
                damage(off, off, size - off, 0, "file ends inside a buffer header", True)
                return
            (bsize,) = struct.unpack_from("<I", mm, off)
            filled, flag = struct.unpack_from("<IH", mm, off + 0x30)
            compressed = bool(flag & FLAG_COMPRESSED)
            ok = (
                BUFFER_HEADER_SIZE <= bsize <= MAX_BUFFER
                and BUFFER_HEADER_SIZE <= filled <= MAX_BUFFER
                and (compressed or filled <= bsize)
            )
            if not ok:
                nxt = self._next_buffer(off, stride)
                lost = -1 if compressed else self._count_plain(off + BUFFER_HEADER_SIZE, nxt)
                damage(
                    off,
                    off,
                    nxt - off,
                    lost,
                    f"bad buffer header (size {bsize:#x}, filled {filled:#x})",
                    True,
                )
                off = nxt
                continue
            st.buffers += 1
            if off:
                (stamp,) = struct.unpack_from("<Q", mm, off + 0x10)
                self._last_stamp = max(self._last_stamp, stamp)
            st.events_lost_flag_buffers += bool(flag & FLAG_EVENTS_LOST)
            st.buffer_lost_flag_buffers += bool(flag & FLAG_BUFFER_LOST)
            avail = min(bsize, size - off)
            if off and not compressed:
                stride = bsize
            if compressed:
                st.compressed_buffers += 1
                if avail < bsize:
                    st.trailing_bytes = avail
                    damage(off, off, avail, -1, "file ends inside a compressed buffer", True)
                    return
                if filled - BUFFER_HEADER_SIZE > MAX_RATIO * (bsize - BUFFER_HEADER_SIZE):
                    damage(
                        off,
                        off,
                        bsize,
                        -1,
                        f"compressed buffer claims {filled - BUFFER_HEADER_SIZE} bytes from "
                        f"{bsize - BUFFER_HEADER_SIZE}: beyond any real Xpress ratio (refused unread)",
                        True,
                    )
                    off += bsize
                    continue
                src = memoryview(mm)[off + BUFFER_HEADER_SIZE : off + bsize]
                yield off, (src, filled - BUFFER_HEADER_SIZE), flag  # decompressed by the reader, released
            else:
                end = min(filled, avail)
                view = memoryview(mm)[off + BUFFER_HEADER_SIZE : off + max(end, BUFFER_HEADER_SIZE)]
                yield off, view, flag  # copied once, into the batch, and released there
                if avail < bsize:
                    st.trailing_bytes = avail
                    missing = filled - end
                    if missing > 0:
                        damage(off, off + avail, missing, 0, "file ends inside a buffer")
                    return
            off += bsize

    def _count_plain(self, start: int, stop: int) -> int:
        """Valid records in the plain bytes [start, stop) of a buffer skipped for its header."""
        if stop - start < 4:
            return 0
        data = self._map[start:stop] + bytes(8)
        return len(walk(data, np.array([0], np.int64), np.array([stop - start], np.int64))[0])

    def _next_buffer(self, off: int, stride: int) -> int:
        """Where the buffer after a damaged buffer header at ``off`` probably starts."""
        if not self.header.compressed and 0x200 <= stride <= MAX_BUFFER:
            return min(off + stride, self.size)
        # Compressed buffers vary in size (and a bad stride is no guide): find the next plausible header.
        mm, size = self._map, self.size
        step = 1 << 20
        start = off + 1
        fails: dict[int, int] = {}  # record position -> where the chain of records from it meets a bad one
        while start + BUFFER_HEADER_SIZE + 8 <= size:
            stop = min(size, start + step + BUFFER_HEADER_SIZE + 8)
            b = np.frombuffer(mm, np.uint8, stop - start, start)
            n = len(b) - BUFFER_HEADER_SIZE - 8 + 1
            if n <= 0:
                break
            cand = np.flatnonzero(
                (b[3 : 3 + n] == 0)
                & (b[0x33 : 0x33 + n] == 0)
                & (b[0x37 : 0x37 + n] == 0)
                & (b[0x36 : 0x36 + n] < 8)
            )
            cand = cand[self._header_sane(b, cand, start)]
            del b
            for c in cand:
                q = start + int(c)
                if self._plausible_buffer(q, fails):
                    return q
            start += n
        return size

    def _header_sane(self, b: np.ndarray, cand: np.ndarray, start: int) -> np.ndarray:
        """Which candidate buffer starts ``cand`` (indexes into ``b``, the bytes from ``start``) have sizes
        :meth:`_plausible_buffer` accepts and, when plain, a record marker first: checked in bulk, so
        that the per-candidate work is spent on few."""

        def u24(k: int) -> np.ndarray:
            return (
                b[cand + k].astype(np.int64)
                | b[cand + k + 1].astype(np.int64) << 8
                | b[cand + k + 2].astype(np.int64) << 16
            )

        bsize, filled = u24(0), u24(0x30)
        compressed = (b[cand + 0x34] & FLAG_COMPRESSED) != 0
        first = b[cand + BUFFER_HEADER_SIZE + 3]
        least = BUFFER_HEADER_SIZE + 8
        ok = (bsize >= least) & (filled >= least) & (start + cand + bsize <= self.size)
        plain_ok = (filled <= bsize) & ((first == MARKER_FLAGS) | (first == MESSAGE_FLAGS))
        comp_ok = (filled >= bsize) & (
            filled - BUFFER_HEADER_SIZE <= MAX_RATIO * (bsize - BUFFER_HEADER_SIZE)
        )
        return ok & np.where(compressed, comp_ok, plain_ok)

    def _plausible_buffer(self, q: int, fails: dict[int, int] | None = None) -> bool:
        """Whether a valid buffer starts at ``q``: its first :data:`PROBE_BYTES` of records (decompressed
        when compressed) are valid records. Bounded work per candidate, whatever the header claims; for
        plain candidates ``fails`` (shared by the candidates of one search) remembers where the chain
        from each record position meets a bad record, so overlapping candidates walk each record once."""
        mm, size = self._map, self.size
        (bsize,) = struct.unpack_from("<I", mm, q)
        filled, flag = struct.unpack_from("<IH", mm, q + 0x30)
        if not (
            BUFFER_HEADER_SIZE + 8 <= bsize <= MAX_BUFFER
            and BUFFER_HEADER_SIZE + 8 <= filled
            and q + bsize <= size
        ):
            return False
        full = filled - BUFFER_HEADER_SIZE
        if flag & FLAG_COMPRESSED:
            if not (bsize <= filled <= MAX_BUFFER and full <= MAX_RATIO * (bsize - BUFFER_HEADER_SIZE)):
                return False
            try:
                data = decompress(
                    mm[q + BUFFER_HEADER_SIZE : q + bsize], min(full, PROBE_BYTES), partial=True
                )
            except DecompressionError:
                return False
            return _starts_with_records(data, full)
        if filled > bsize:
            return False
        if fails is None:
            data = mm[q + BUFFER_HEADER_SIZE : q + BUFFER_HEADER_SIZE + min(full, PROBE_BYTES)]
            return _starts_with_records(data, full)
        first = q + BUFFER_HEADER_SIZE
        limit = first + min(full, PROBE_BYTES)
        r, path, fail = first, [], -1
        while r < limit:
            known = fails.get(r)
            if known is not None:
                fail = known
                break
            rsize, _, bad = _record_at(mm, r, size)
            if bad:
                fail = r
                break
            if rsize == 0:  # the end marker: the records end well (after one at least)
                fail = size if r > first else r
                break
            path.append(r)
            r += (rsize + 7) & ~7
        else:
            return r > first
        for x in path:
            fails[x] = fail
        return fail >= limit and fail > first

    # -- records
    def batches(
        self, chunk_bytes: int = 8 << 20, providers: Collection[uuid.UUID] | None = None
    ) -> Iterator[RecordBatch]:
        """The file's records in order, in batches of about ``chunk_bytes`` of (decompressed) buffers.

        ``providers``: only the records of these providers (kernel groups by their GUID in
        :data:`~.guids.KERNEL_GROUPS`) are in the batches, picked before any header field is gathered
        (records keep their file-wide ``record`` index; the statistics still count every record).
        """
        if self._mm is None:
            raise ValueError("I/O operation on a closed EtlFile")
        self._passes += 1
        self.stats = st = EtlStats(
            path=self.path,
            header_events_lost=self.header.events_lost,
            header_buffers_lost=self.header.buffers_lost,
            expected_buffers=self.header.expected_buffers,
        )
        self._last_stamp = 0
        wanted = None if providers is None else _Wanted.of(providers)
        self._record_base = 0
        trim = _Trimmer()
        picked = _Picked()
        self._open = chunk = _Chunk()
        for off, data, _flag in self._buffers():
            if isinstance(data, memoryview):
                chunk.add(off, data, len(data))
            else:
                self._decompress(off, *data, chunk, chunk_bytes)
            if chunk.pos >= chunk_bytes:
                self._settle(chunk)
                if chunk.files:
                    yield from self._chunk(chunk, wanted, picked, chunk_bytes)
                self._open = chunk = _Chunk()
                self._release_pages(off)
                if self.progress is not None:
                    self.progress(off, self.size)
                trim()
        self._settle(chunk)
        self._open = None
        if chunk.files:
            yield from self._chunk(chunk, wanted, picked, chunk_bytes)
        if picked.records:
            yield self._picked_batch(picked)
        if self.progress is not None:
            self.progress(self.size, self.size)
        st.records = self._record_base
        st.clock_note = self._clock_note()
        st.report(self.skipped)
        for line in st.notes():
            warn(line)

    def _decompress(self, off: int, src: memoryview, size: int, chunk: _Chunk, chunk_bytes: int) -> None:
        """Place the compressed buffer at ``off`` in the chunk's bytes, to be decompressed there with the
        chunk's other compressed buffers (:meth:`_settle`)."""
        need = chunk.pos + size + 8 + _TAIL
        if chunk.buf is None:  # room for the chunk and (mostly) the buffer that crosses its end
            chunk.buf = self._batch_buffer(max(need, chunk_bytes + (1 << 20)))
        elif need > len(chunk.buf):  # nothing refers to its bytes yet: it may grow
            chunk.buf.extend(bytes(need - len(chunk.buf)))
        chunk.pending.append((len(chunk.files), src, size))
        chunk.add(off, None, size)

    def _settle(self, chunk: _Chunk | None) -> None:
        """Decompress the chunk's pending buffers (``src`` released) in one call; a buffer that does not
        decompress is counted as damage and taken out of the chunk (its place is a gap, as between
        buffers)."""
        if chunk is None or not chunk.pending:
            return
        pending, chunk.pending = chunk.pending, []
        srcs = [src for _, src, _ in pending]
        gone: set[int] = set()
        try:
            assert chunk.buf is not None  # placed by _decompress
            places = [chunk.starts[i] for i, _, _ in pending]
            fails = decompress_many(srcs, chunk.buf, places, [size for _, _, size in pending])
            for k, reason in fails:
                i, src, _ = pending[k]
                off = chunk.files[i]
                self.stats._damage(
                    off, off, len(src) + BUFFER_HEADER_SIZE, -1, f"compressed buffer: {reason}", True
                )
                gone.add(i)
        finally:
            for src in srcs:
                src.release()
        if gone:  # only the entries placed since the last settling are looked at: linear over a file
            first = pending[0][0]
            for name in ("parts", "files", "starts", "ends"):
                values = getattr(chunk, name)
                values[first:] = [v for i, v in enumerate(values[first:], first) if i not in gone]

    def _chunk(
        self, chunk: _Chunk, wanted: _Wanted | None, picked: _Picked, chunk_bytes: int
    ) -> Iterator[RecordBatch]:
        """The batches of a chunk of buffers: records picked for a reader wait in ``picked`` until they
        fill a batch of their own (a batch of few records costs the readers as much as a full one)."""
        base = self._record_base
        if wanted is not None and _speedups is not None and self._pick(chunk, wanted, picked):
            if picked.nbytes >= chunk_bytes:
                yield self._picked_batch(picked)
            return
        if picked.records:  # records stay in file order
            yield self._picked_batch(picked)
        batch, records = self._batch(chunk, base, wanted)
        self._record_base = base + records
        yield batch

    def _laid_out(self, chunk: _Chunk) -> tuple[bytearray, np.ndarray, np.ndarray]:
        """The chunk's bytes (plain buffers copied in; the gaps between buffers and a tail of
        :data:`_TAIL` bytes 0xFF, as an end-of-records marker: the fixed-width header gather never runs
        past the end) and each buffer's [start, end) in them."""
        starts, ends = np.asarray(chunk.starts, np.int64), np.asarray(chunk.ends, np.int64)
        pos, parts = chunk.pos, chunk.parts
        if chunk.buf is None:
            chunk.buf = self._batch_buffer(pos + _TAIL)
        buf = chunk.buf
        if _speedups is not None:  # the copying lets other threads run
            _speedups.lay_out(buf, parts, starts, ends, pos + _TAIL)
        for i, part in enumerate(parts):
            if _speedups is None:
                start, end = int(starts[i]), int(ends[i])
                stop = int(starts[i + 1]) if i + 1 < len(parts) else pos + _TAIL
                if part is not None:  # plain: copied; compressed ones are in place already
                    buf[start:end] = part
                buf[end:stop] = _FF[: stop - end]
            if part is not None:
                part.release()
                parts[i] = None
        return buf, starts, ends

    def _batch(
        self, chunk: _Chunk, record_base: int, wanted: _Wanted | None = None
    ) -> tuple[RecordBatch, int]:
        """The batch of the records in ``chunk`` (the wanted ones only, when given) and how many records
        it holds."""
        buf, starts, ends = self._laid_out(chunk)
        seg_files = chunk.files
        offs, sizes, hdrs, damages = walk(buf, starts, ends)
        self._count_damages(damages, seg_files, starts, ends)
        files = np.asarray(seg_files, np.int64)
        total = len(offs)
        if wanted is None:
            return self._columns(buf, offs, sizes, hdrs, _file_of(offs, starts, files), record_base), total
        lo, hi = self.clock.raw_bounds(*self._span()[:2])
        if _speedups is not None:
            keep = np.empty(total, np.int64)
            kept, bad = _speedups.select(
                buf, offs, _KIND, wanted.groups, wanted.guids, self.clock.raw_anchor & _U64, lo, hi, keep
            )
        else:
            keep, bad = _select_py(buf, offs, wanted, self.clock.raw_anchor, lo, hi)
            kept = len(keep)
        if bad:  # damaged times: counted, with their buffers, as when every header is gathered
            w = np.frombuffer(buf, np.uint64)[(offs >> 3)[:, None] + np.arange(3)]
            perf = _KIND[(w[:, 0] >> np.uint64(16)).astype(np.uint8)] == _K_PERFINFO
            timed = (w[:, 0] >> np.uint64(24)).astype(np.uint8) != MESSAGE_FLAGS
            self._check_times(np.where(perf, w[:, 1], w[:, 2]), timed, _file_of(offs, starts, files))
        keep = keep[:kept]
        offs = offs[keep]
        batch = self._columns(
            buf,
            offs,
            sizes[keep],
            hdrs[keep],
            _file_of(offs, starts, files),
            record_base,
            records=keep,
            check=False,
        )
        return batch, total

    def _pick(self, chunk: _Chunk, wanted: _Wanted, picked: _Picked) -> bool:
        """The wanted records of the chunk, found by walking and selecting in one pass and copied into
        ``picked``. Plain buffers are walked where they lie in the mapping (nothing else is copied).
        False (nothing picked) when a record's time is damaged: :meth:`_batch` counts those exactly."""
        parts, files = chunk.parts, np.asarray(chunk.files, np.int64)
        starts = files + BUFFER_HEADER_SIZE
        ends = starts + np.asarray(chunk.ends, np.int64) - np.asarray(chunk.starts, np.int64)
        in_place = chunk.buf is None and int(ends[-1]) + _TAIL <= self.size  # (0x28 header bytes read)
        if in_place:
            data: mmap.mmap | bytearray = self._map
        else:
            data, starts, ends = self._laid_out(chunk)
        cap = int(((ends - starts) // 8 + 1).sum())
        offs, sizes, hdrs, index = (np.empty(cap, np.int64) for _ in range(4))
        lo, hi = self.clock.raw_bounds(*self._span()[:2])
        kept, total, bad, damages = _speedups.walk_select(
            data, starts, ends, offs, sizes, hdrs,
            _KIND, wanted.groups, wanted.guids, self.clock.raw_anchor & _U64, lo, hi, index,
        )  # fmt: skip
        if bad:
            return False
        for part in parts:
            if part is not None:
                part.release()
        self._count_damages(damages, chunk.files, starts, ends)
        offs, sizes = offs[:kept], sizes[:kept].copy()  # copies: the chunk-sized arrays are let go
        buf = bytearray(int(((sizes + 7) & ~7).sum()))
        packed = np.empty(kept, np.int64)
        _speedups.pack(data, offs, sizes, buf, packed)
        picked.add(
            buf,
            packed,
            sizes,
            hdrs[:kept].copy(),
            _file_of(offs, starts, files),
            index[:kept] + self._record_base,
        )
        self._record_base += total
        return True

    def _picked_batch(self, picked: _Picked) -> RecordBatch:
        """The batch of the records waiting in ``picked`` (which is emptied)."""
        data, offs, sizes, hdrs, file_of, records = picked.take()
        return self._columns(data, offs, sizes, hdrs, file_of, 0, records=records, check=False)

    def _count_damages(
        self, damages: list, seg_files: list[int], starts: np.ndarray, ends: np.ndarray
    ) -> None:
        """Count the walk's damaged records in the statistics."""
        st = self.stats
        for seg, p, resumed, code, lost in damages:
            file_off = seg_files[seg] + BUFFER_HEADER_SIZE + (p - int(starts[seg]))
            stop = resumed if resumed >= 0 else int(ends[seg])
            st._damage(
                seg_files[seg],
                file_off if self._is_plain(seg_files[seg]) else seg_files[seg],
                stop - p,
                lost,
                DAMAGE_REASONS.get(code, f"damage {code}"),
            )

    def _batch_buffer(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes for a batch's data: one of the last four, when nothing
        holds it any more (no batch, array or view of it: only the list refers to it), else a new one.
        Reusing them saves the kernel zeroing fresh pages for every batch (a quarter of the time of
        ``events`` on plain buffers). Bytes past a batch's data are those of an earlier batch."""
        spares = self._spares
        for i in range(len(spares)):
            if (
                sys.getrefcount(spares[i]) == 2 and len(spares[i]) >= size
            ):  # the list's reference and the call's
                spares.append(spares.pop(i))  # the newest last
                return spares[-1]
        buf = bytearray(size + (-size & 0xFFFFF))  # whole MBs: a later, slightly larger batch fits too
        spares.append(buf)
        if len(spares) > 4:
            del spares[0]
        return buf

    def _clock_note(self) -> str:
        """A warning when the logfile header's StartTime, EndTime and clock frequency disagree with the
        buffers' own flush times: the last buffer is flushed when the session stops (within 2 s of
        EndTime in the corpus), on the trace's clock; relogged files have a FILETIME there instead (up to
        11 days after EndTime in the corpus: when they were relogged). One damaged
        byte of StartTime or PerfFreq moves every time by months; this says so instead of staying silent."""
        h, stamp = self.header, self._last_stamp
        if not stamp or not FILETIME_UNIX_EPOCH <= h.end_time <= FILETIME_MAX_NS or h.end_time < h.start_time:
            return ""
        by_header = (h.end_time - h.start_time) * 100  # ns from start to end
        by_clock = self.clock.raw_to_ns(stamp) - self.clock.anchor_ns  # ns from start to the last flush
        slack = max(60 * 10**9, by_header // 100)
        relogged = (
            h.start_time - 864_000_000_000 <= stamp <= FILETIME_MAX_NS
        )  # a FILETIME: when it was relogged
        if abs(by_clock - by_header) <= slack or relogged:
            return ""
        return (
            f"the logfile header's StartTime, EndTime or clock frequency ({self.clock.ticks_per_second:,} Hz) "
            f"is damaged: the trace lasted {by_header / 1e9:,.1f} s by StartTime..EndTime but "
            f"{by_clock / 1e9:,.1f} s by the buffers' own clock, so every time read may be off"
        )

    def _release_pages(self, upto: int) -> None:
        """Drop the mapped pages before ``upto`` from memory: RSS stays flat however big the file."""
        end = upto - upto % mmap.PAGESIZE
        if end > self._released and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            self._released = end

    def _is_plain(self, file_off: int) -> bool:
        (flag,) = struct.unpack_from("<H", self._map, file_off + 0x34)
        return not flag & FLAG_COMPRESSED

    def _columns(
        self, data, offs, sizes, hdrs, file_of, record_base, records=None, check: bool = True
    ) -> RecordBatch:
        """The header fields of the records at ``offs`` of ``data`` (``file_of``: the file offset of each
        one's buffer; ``records``: their positions among the batch's records, when only some are asked
        for; ``check``: count the records whose time is damaged)."""
        n = len(offs)
        fields = _header_fields if _columnar is not None else _header_fields_py
        htype, ptr, provider, group, opcode, version, event_id, level, keyword, pid, tid, raw, lo, hi = (
            fields(data, offs, self._group_provider)
        )
        guided = _KIND[htype] >= _K_CLASSIC
        past = None
        if guided.any():
            provider[guided] = self._provider_index(lo[guided], hi[guided])
            if len(self.guids) >= MAX_PROVIDERS:
                past = provider == _PAST_PROVIDERS
                if past.any():
                    self.stats.past_providers += int(past.sum())
                    self.stats.past_providers_at = self.stats.past_providers_at or int(file_of[past][0])
                else:
                    past = None
        time = self.clock.to_ns(raw)
        msg = htype == MESSAGE
        if check:
            self._check_times(raw, ~msg, file_of)
        if msg.any():  # WPP messages carry no fixed timestamp: use the previous record's time
            idx = np.maximum.accumulate(np.where(~msg, np.arange(n), -1))
            time = np.where(idx >= 0, time[np.maximum(idx, 0)], np.int64(self.clock.anchor_ns))
        batch = RecordBatch(
            data=data,
            record=(
                np.arange(record_base, record_base + n, dtype=np.int64)
                if records is None
                else records + record_base
            ),
            offset=offs,
            file_offset=file_of,
            htype=htype,
            pointer_size=ptr,
            provider=provider,
            group=group,
            opcode=opcode,
            version=version,
            event_id=event_id,
            level=level,
            keyword=keyword,
            pid=pid,
            tid=tid,
            time=time,
            payload_offset=offs + hdrs,
            payload_size=sizes - hdrs,
            guids=self.guids,
        )
        return batch if past is None else batch.select(~past)

    def _span(self) -> tuple[int, int, str]:
        """[lo, hi] UTC ns a record's time may take: the header's start to its end (when usable), with slack."""
        h, start = self.header, self.clock.anchor_ns
        end = filetime_to_ns(h.end_time) if FILETIME_UNIX_EPOCH <= h.end_time <= FILETIME_MAX_NS else None
        hi_max = filetime_to_ns(FILETIME_MAX_NS)
        if end is None or end < start:
            return start - BEFORE_START_NS, hi_max, "before its start, or past year 2262"
        return (
            start - BEFORE_START_NS,
            min(end + AFTER_END_NS, hi_max),
            "more than a minute before its start or an hour after its end",
        )

    def _check_times(self, raw: np.ndarray, timed: np.ndarray, file_offsets: np.ndarray) -> None:
        lo, hi, text = self._span()
        bad = timed & self.clock.outside(raw, lo, hi)
        if bad.any():
            st = self.stats
            st.span = text
            for o in np.unique(file_offsets[bad])[:5]:
                if len(st.bad_time_offsets) < 5 and int(o) not in st.bad_time_offsets:
                    st.bad_time_offsets.append(int(o))
            st.bad_time_records += int(bad.sum())

    def _provider_index(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Index into ``self.guids`` of each GUID (lo, hi u64 halves); new GUIDs are added in file order, up
        to :data:`MAX_PROVIDERS` of them (-2 for the GUIDs past those: see :meth:`_columns`)."""
        # consecutive records mostly share a provider: map only the starts of runs
        change = np.empty(len(lo), bool)
        change[0] = True
        np.not_equal(lo[1:], lo[:-1], out=change[1:])
        change[1:] |= hi[1:] != hi[:-1]
        run_starts = np.flatnonzero(change)
        pairs = np.stack([lo[run_starts], hi[run_starts]], axis=1)
        uniq, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
        table = np.empty(len(uniq), np.int32)
        for i in np.argsort(first, kind="stable"):
            a, b = uniq[i]
            g = uuid.UUID(bytes_le=struct.pack("<QQ", int(a), int(b)))
            idx = self._guid_index.get(g)
            if idx is None and len(self.guids) < MAX_PROVIDERS:
                idx = self._guid_index[g] = len(self.guids)
                self.guids.append(g)
            table[i] = _PAST_PROVIDERS if idx is None else idx
        per_run = table[inverse.reshape(-1)]
        return np.repeat(per_run, np.diff(np.append(run_starts, len(lo))))


def open_etl(path: str | os.PathLike, progress: Progress | None = None) -> EtlFile:
    """Open an ETL file (EtlError when it is not one)."""
    return EtlFile(path, progress=progress)


def count_records(path: str | os.PathLike) -> int:
    """Number of records in a file (the logfile header record included)."""
    with EtlFile(path) as f:
        return sum(len(b) for b in f.batches())
