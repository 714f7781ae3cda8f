"""Frames carried inside ETL files: Packet Monitor (pktmon) and NDIS packet capture (``netsh trace capture=yes``).

Microsoft-Windows-PktMon (4d4f80d9-c8bd-4d73-bb5b-19c90402c5ac), events 160 (packet) and 170 (drop,
same template), EVENT_HEADER, 34 bytes before the frame (checked on ../corpus/pktmon against the pcapng
pktmon wrote from the same ETL)::

    @0  PktGroupId u64       @8  PktNumber u16        @10 AppearanceCount u16
    @12 DirTag u16           @14 PacketType u16       @16 ComponentId u16
    @18 EdgeId u16           @20 FilterId u16         @22 DropReason u32
    @26 DropLocation u32     @30 OriginalPayloadSize u16
    @32 LoggedPayloadSize u16  @34 Payload[LoggedPayloadSize]

DirTag 3 is a frame coming in (every frame to the traced host in the corpus file) and 4 one going out;
other values give direction "unknown". PacketType 1 Ethernet, 2 Wi-Fi (802.11), 3 mobile broadband
(raw IP). ``interface`` is the ComponentId (the same frame appears once per component it crossed,
as pktmon's own pcapng shows it). A nonzero DropReason is noted as ``dropped``.

Microsoft-Windows-NDIS-PacketCapture (2ed6006e-4729-4609-b423-3ee7bcd678ef), event 1001:
MiniportIfIndex u32, LowerIfIndex u32, FragmentSize u32, Fragment[FragmentSize] (Windows 10 adds two
u64 Gft fields after it). Keywords: Ethernet 0x1, WirelessWAN 0x200 (raw IP), Native802.11 0x10000,
PacketTruncated 0x2000000, PacketStart 0x40000000, PacketEnd 0x80000000, SendPath 0x100000000 (out),
ReceivePath 0x200000000 (in). Fragments of one interface and thread are joined from PacketStart to
PacketEnd; the frame takes the time of its last fragment (as etl2pcapng does). ``interface`` is the
MiniportIfIndex. The header PID of these events is whichever thread ran, not the sending process.

Frames are returned sorted by time (ties in file order), numbered from 1, like the captures that
pktmon and etl2pcapng write from the same files.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ...diagnostics import warn
from ..packets import (
    DIR_IN,
    DIR_OUT,
    DIR_UNKNOWN,
    DIRECTIONS,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    Interface,
    Packet,
    dissect_buffer,
)
from ..schema import FRAMES, empty
from .guids import NDIS_PACKETCAPTURE, PKTMON
from .records import EVENT_HEADER32, EVENT_HEADER64, RecordBatch

LINKTYPE_IEEE802_11 = 105

PKTMON_PACKET_IDS = (160, 170)
PKTMON_HEADER = 34
PKTMON_DIR_IN, PKTMON_DIR_OUT = 3, 4
PKTMON_LINK_TYPES = {1: LINKTYPE_ETHERNET, 2: LINKTYPE_IEEE802_11, 3: LINKTYPE_RAW}

NDIS_PACKET_ID = 1001
NDIS_HEADER = 12
KW_ETHERNET, KW_WWAN, KW_TUNNEL, KW_NATIVE_80211 = 0x1, 0x200, 0x8000, 0x10000
KW_TRUNCATED, KW_START, KW_END = 0x2000000, 0x40000000, 0x80000000
KW_SEND, KW_RECEIVE = 0x100000000, 0x200000000

_NOTE_TRUNCATED, _NOTE_DROPPED, _NOTE_INCOMPLETE = 1, 2, 4

Progress = Callable[[int, int], None]


@dataclass
class _Chunk:
    """The frames found in one batch, columnar; frame i is ``buf[off[i]:off[i] + cap[i]]``."""

    buf: np.ndarray
    off: np.ndarray
    cap: np.ndarray
    wire: np.ndarray
    time: np.ndarray
    link: np.ndarray
    iface: np.ndarray
    dirs: np.ndarray
    notes: np.ndarray
    drop: np.ndarray          # pktmon DropReason (0: none)
    record: np.ndarray


@dataclass
class _Pending:
    parts: list[bytes] = field(default_factory=list)
    record: int = 0
    start_ok: bool = True


class EtlPacketReader:
    """Collects the frames of an ETL file batch by batch (so other decoders can share the pass)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.chunks: list[_Chunk] = []
        self._pending: dict[tuple, _Pending] = {}
        self.skipped = 0
        self.skipped_offsets: set[int] = set()
        self.incomplete = 0
        self.events = 0
        self.interfaces: dict[int, Interface] = {}
        self._mixed: set[int] = set()

    # ------------------------------------------------------------------ batches
    def feed(self, batch: RecordBatch) -> None:
        eh = (batch.htype == EVENT_HEADER32) | (batch.htype == EVENT_HEADER64)
        pk = eh & batch.provider_mask(PKTMON) & np.isin(batch.event_id, PKTMON_PACKET_IDS)
        nd = eh & batch.provider_mask(NDIS_PACKETCAPTURE) & (batch.event_id == NDIS_PACKET_ID)
        if pk.any():
            self._pktmon(batch.select(pk))
        if nd.any():
            self._ndis(batch.select(nd))

    def _skip(self, b: RecordBatch, bad: np.ndarray) -> None:
        self.skipped += int(bad.sum())
        self.skipped_offsets.update(int(o) for o in b.file_offset[bad][:20])

    def _pktmon(self, b: RecordBatch) -> None:
        self.events += len(b)
        u8 = np.frombuffer(b.data, dtype=np.uint8)
        po, ps = b.payload_offset, b.payload_size
        ok = ps >= PKTMON_HEADER
        logged = np.zeros(len(b), np.int64)
        logged[ok] = _le16(u8, po[ok] + 32)
        ok &= PKTMON_HEADER + logged <= ps
        self._skip(b, ~ok)
        b = b.select(ok)
        po, logged = b.payload_offset, logged[ok]
        dtag = _le16(u8, po + 12)
        ptype = _le16(u8, po + 14)
        comp = _le16(u8, po + 16)
        drop = _le16(u8, po + 22) | (_le16(u8, po + 24) << 16)
        orig = _le16(u8, po + 30)
        dirs = np.where(dtag == PKTMON_DIR_IN, DIR_IN, np.where(dtag == PKTMON_DIR_OUT, DIR_OUT, DIR_UNKNOWN))
        link = np.array([PKTMON_LINK_TYPES.get(int(t), -1) for t in ptype], dtype=np.int32)
        unknown = link < 0
        if unknown.any():
            warn(f"{self.path}: {int(unknown.sum())} PktMon frame(s) of unknown PacketType "
                 f"{sorted(set(ptype[unknown].tolist()))} kept undissected")
        self._add(_Chunk(buf=u8, off=po + PKTMON_HEADER, cap=logged, wire=np.maximum(orig, logged),
                         time=b.time.astype(np.int64), link=link, iface=comp.astype(np.int32),
                         dirs=dirs.astype(np.int8),
                         notes=np.where(drop != 0, _NOTE_DROPPED, 0).astype(np.uint8),
                         drop=drop.astype(np.int64), record=b.record.astype(np.int64)), "PktMon component")

    def _ndis(self, b: RecordBatch) -> None:
        self.events += len(b)
        u8 = np.frombuffer(b.data, dtype=np.uint8)
        po, ps = b.payload_offset, b.payload_size
        ok = ps >= NDIS_HEADER
        fsize = np.zeros(len(b), np.int64)
        fsize[ok] = _le32(u8, po[ok] + 8)
        ok &= NDIS_HEADER + fsize <= ps
        self._skip(b, ~ok)
        b = b.select(ok)
        fsize = fsize[ok]
        po = b.payload_offset
        kw = b.keyword.astype(np.uint64)
        miniport = _le32(u8, po).astype(np.int64)
        lower = _le32(u8, po + 4).astype(np.int64)
        link = np.full(len(b), LINKTYPE_ETHERNET, np.int32)  # no media keyword: Ethernet, as etl2pcapng
        link[(kw & KW_WWAN) != 0] = LINKTYPE_RAW
        link[(kw & KW_NATIVE_80211) != 0] = LINKTYPE_IEEE802_11
        dirs = np.full(len(b), DIR_UNKNOWN, np.int8)
        dirs[(kw & KW_SEND) != 0] = DIR_OUT
        dirs[(kw & KW_RECEIVE) != 0] = DIR_IN
        trunc = (kw & KW_TRUNCATED) != 0
        start = (kw & KW_START) != 0
        end = (kw & KW_END) != 0
        single = start & end
        keys_open = bool(self._pending)
        # whole packets in one event: straight from the batch's bytes
        s = single if not keys_open else np.zeros(len(b), bool)
        if s.any():
            cap = fsize[s]
            self._add(_Chunk(buf=u8, off=po[s] + NDIS_HEADER, cap=cap,
                             wire=_wirelen(u8, po[s] + NDIS_HEADER, cap, link[s], trunc[s]),
                             time=b.time[s].astype(np.int64), link=link[s], iface=miniport[s].astype(np.int32),
                             dirs=dirs[s], notes=np.where(trunc[s], _NOTE_TRUNCATED, 0).astype(np.uint8),
                             drop=np.zeros(int(s.sum()), np.int64), record=b.record[s].astype(np.int64)),
                      "NDIS ifindex")
        rest = np.flatnonzero(~s)
        if not len(rest):
            return
        # fragments (and anything while fragments are open): joined per interface pair, thread, direction
        out: list[tuple] = []
        for i in rest.tolist():
            key = (int(miniport[i]), int(lower[i]), int(b.pid[i]), int(b.tid[i]), int(dirs[i]))
            frag = bytes(b.data[int(po[i]) + NDIS_HEADER:int(po[i]) + NDIS_HEADER + int(fsize[i])])
            pend = self._pending.get(key)
            if start[i]:
                if pend is not None:
                    self._flush_incomplete(key, pend, out)
                pend = self._pending[key] = _Pending(record=int(b.record[i]))
            elif pend is None:  # continuation without its start: keep what there is, say so
                pend = self._pending[key] = _Pending(record=int(b.record[i]), start_ok=False)
            pend.parts.append(frag)
            if end[i]:
                del self._pending[key]
                notes = (_NOTE_TRUNCATED if trunc[i] else 0) | (0 if pend.start_ok else _NOTE_INCOMPLETE)
                if not pend.start_ok:
                    self.incomplete += 1
                out.append((b"".join(pend.parts), int(b.time[i]), int(link[i]), int(miniport[i]),
                            int(dirs[i]), notes, pend.record))
        if out:
            self._add_list(out)

    def _flush_incomplete(self, key: tuple, pend: _Pending, out: list) -> None:
        """A packet whose PacketEnd never came: kept with the note ``incomplete``."""
        self.incomplete += 1
        self._pending.pop(key, None)
        # its time is unknown beyond its fragments' record order; the caller's time is close enough
        out.append((b"".join(pend.parts), None, None, key[0], key[4], _NOTE_INCOMPLETE, pend.record))

    def _add_list(self, rows: list[tuple]) -> None:
        datas = [r[0] for r in rows]
        lens = np.fromiter((len(d) for d in datas), np.int64, len(rows))
        off = np.zeros(len(rows), np.int64)
        if len(rows) > 1:
            np.cumsum(lens[:-1], out=off[1:])
        buf = np.frombuffer(b"".join(datas), np.uint8)
        # incomplete packets flushed on a new start take the time/link type of the event that replaced them
        time = np.array([r[1] if r[1] is not None else -1 for r in rows], np.int64)
        link = np.array([r[2] if r[2] is not None else -1 for r in rows], np.int32)
        for j in range(len(rows)):
            if time[j] < 0:
                nxt = next((k for k in range(j + 1, len(rows)) if time[k] >= 0), None)
                time[j] = time[nxt] if nxt is not None else (self._last_time() or 0)
                link[j] = link[nxt] if nxt is not None else LINKTYPE_ETHERNET
        notes = np.array([r[5] for r in rows], np.uint8)
        trunc = (notes & _NOTE_TRUNCATED) != 0
        self._add(_Chunk(buf=buf, off=off, cap=lens, wire=_wirelen(buf, off, lens, link, trunc), time=time,
                         link=link, iface=np.array([r[3] for r in rows], np.int32),
                         dirs=np.array([r[4] for r in rows], np.int8), notes=notes,
                         drop=np.zeros(len(rows), np.int64), record=np.array([r[6] for r in rows], np.int64)),
                  "NDIS ifindex")

    def _last_time(self) -> int | None:
        return int(self.chunks[-1].time[-1]) if self.chunks and len(self.chunks[-1].time) else None

    def _add(self, c: _Chunk, kind: str) -> None:
        if not len(c.off):
            return
        # copy the frames out of the batch's buffer (the batch's memory is not kept)
        ends = np.zeros(len(c.off) + 1, np.int64)
        np.cumsum(c.cap, out=ends[1:])
        total = int(ends[-1])
        idx = np.repeat(c.off - ends[:-1], c.cap) + np.arange(total)
        c.buf = c.buf[idx] if total else np.zeros(0, np.uint8)
        c.off = ends[:-1]
        for i, lt in set(zip(c.iface.tolist(), c.link.tolist())):
            known = self.interfaces.get(i)
            if known is None:
                self.interfaces[i] = Interface(link_type=lt if lt >= 0 else LINKTYPE_ETHERNET, tsresol=9,
                                               name=f"{kind} {i}")
            elif lt >= 0 and known.link_type != lt and i not in self._mixed:
                self._mixed.add(i)
                warn(f"{self.path}: interface {i} carries frames of link types {known.link_type} and {lt}")
        self.chunks.append(c)

    # ------------------------------------------------------------------ results
    def finish(self) -> None:
        """Flush packets still open at the end of the file and report what was skipped."""
        if self._pending:
            out: list[tuple] = []
            for key, pend in list(self._pending.items()):
                self._flush_incomplete(key, pend, out)
            self._add_list(out)
        if self.skipped:
            offs = ", ".join(hex(o) for o in sorted(self.skipped_offsets)[:10])
            warn(f"{self.path}: skipped {self.skipped} packet event(s) whose frame runs past the event "
                 f"(buffers at offsets {offs})")
        if self.incomplete:
            warn(f"{self.path}: {self.incomplete} NDIS packet(s) without their first or last fragment "
                 f"kept with the note 'incomplete'")

    def _merged(self) -> _Chunk | None:
        if not self.chunks:
            return None
        bases = np.cumsum([0] + [len(c.buf) for c in self.chunks[:-1]])
        cat = {name: np.concatenate([getattr(c, name) for c in self.chunks])
               for name in ("cap", "wire", "time", "link", "iface", "dirs", "notes", "drop", "record")}
        off = np.concatenate([c.off + base for c, base in zip(self.chunks, bases)])
        buf = np.concatenate([c.buf for c in self.chunks])
        order = np.lexsort((cat["record"], cat["time"]))
        return _Chunk(buf=buf, off=off[order], **{k: v[order] for k, v in cat.items()})

    def frames(self, *, with_data: bool = False) -> pl.DataFrame:
        """The FRAMES table (time-sorted, numbered from 1), with a ``data`` column when asked."""
        m = self._merged()
        if m is None:
            df = empty(FRAMES)
            return df.with_columns(pl.lit(None, pl.Binary).alias("data")) if with_data else df
        known = m.link >= 0
        link = np.where(known, m.link, 0xFFFF).astype(np.int32)
        df = dissect_buffer(m.buf, m.off, m.cap, m.time, link, wirelens=m.wire, interfaces=m.iface,
                            directions=m.dirs, with_data=with_data, source=self.path)
        extra = _note_labels(m.notes, m.drop)
        return df.with_columns(
            pl.when(pl.col("notes").is_null()).then(extra)
            .when(extra.is_null()).then(pl.col("notes"))
            .otherwise(pl.concat_str([pl.col("notes"), extra], separator=",")).alias("notes"),
            pl.when(pl.Series(known)).then(pl.col("link_type")).otherwise(None).alias("link_type"),
        )

    def packets(self) -> Iterator[Packet]:
        """The frames as :class:`Packet` objects (time-sorted); interfaces in ``self.interfaces``."""
        m = self._merged()
        if m is None:
            return
        notes = _note_labels(m.notes, m.drop).to_list()
        for i in range(len(m.off)):
            o, c = int(m.off[i]), int(m.cap[i])
            yield Packet(time_ns=int(m.time[i]), data=m.buf[o:o + c].tobytes(), interface=int(m.iface[i]),
                         wirelen=int(m.wire[i]), direction=DIRECTIONS[int(m.dirs[i])], comment=notes[i])


def _note_labels(bits: np.ndarray, drop: np.ndarray) -> pl.Series:
    out = []
    for b, d in zip(bits.tolist(), drop.tolist()):
        parts = []
        if b & _NOTE_TRUNCATED:
            parts.append("truncated")
        if b & _NOTE_DROPPED:
            parts.append(f"dropped (reason {d})")
        if b & _NOTE_INCOMPLETE:
            parts.append("incomplete")
        out.append(",".join(parts) if parts else None)
    return pl.Series("notes", out, dtype=pl.Utf8)


def _le16(u8: np.ndarray, pos: np.ndarray) -> np.ndarray:
    pos = np.asarray(pos, np.int64)
    return u8[pos].astype(np.int64) | (u8[pos + 1].astype(np.int64) << 8)


def _le32(u8: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return _le16(u8, pos) | (_le16(u8, np.asarray(pos, np.int64) + 2) << 16)


def _be16(u8: np.ndarray, pos: np.ndarray) -> np.ndarray:
    pos = np.asarray(pos, np.int64)
    return (u8[pos].astype(np.int64) << 8) | u8[pos + 1].astype(np.int64)


def _wirelen(u8: np.ndarray, off: np.ndarray, cap: np.ndarray, link: np.ndarray, trunc: np.ndarray) -> np.ndarray:
    """Captured length, or for truncated IP frames the length their IP header gives."""
    wire = cap.astype(np.int64).copy()
    t = np.flatnonzero(trunc)
    if not len(t):
        return wire
    for i in t.tolist():
        o, c, lt = int(off[i]), int(cap[i]), int(link[i])
        net = 14 if lt == LINKTYPE_ETHERNET else 0 if lt == LINKTYPE_RAW else -1
        if net < 0 or c < net + 6:
            continue
        if lt == LINKTYPE_ETHERNET and int(_be16(u8, np.array([o + 12]))[0]) not in (0x0800, 0x86DD):
            continue
        ver = int(u8[o + net]) >> 4
        if ver == 4:
            ln = int(_be16(u8, np.array([o + net + 2]))[0])
        elif ver == 6:
            ln = int(_be16(u8, np.array([o + net + 4]))[0]) + 40
        else:
            continue
        wire[i] = max(c, net + ln)
    return wire


# ---------------------------------------------------------------------- public API

def _read(path: str | os.PathLike, progress: Progress | None) -> EtlPacketReader:
    from .container import EtlFile

    reader = EtlPacketReader(path)
    with EtlFile(path, progress=progress) as etl:
        for batch in etl.batches():
            reader.feed(batch)
    reader.finish()
    return reader


def read_etl_frames(path: str | os.PathLike, *, with_data: bool = False,
                    progress: Progress | None = None) -> pl.DataFrame:
    """The frames inside an ETL file (PktMon and NDIS packet capture events) as a FRAMES table."""
    return _read(path, progress).frames(with_data=with_data)


def iter_etl_packets(path: str | os.PathLike, *, interfaces: dict[int, Interface] | None = None,
                     progress: Progress | None = None) -> Iterator[Packet]:
    """The frames inside an ETL file as :class:`Packet` objects, time-sorted (ns times).

    When ``interfaces`` is given, it is filled with an :class:`Interface` (link type, ns resolution)
    per interface id the packets use, before the first packet is yielded.
    """
    reader = _read(path, progress)
    if interfaces is not None:
        interfaces.update(reader.interfaces)
    yield from reader.packets()


def iter_etl_capture(path: str | os.PathLike, *, progress: Progress | None = None
                     ) -> tuple[list[Interface], Iterator[Packet]]:
    """Interfaces and packets ready for a pcapng writer (like ``captures.iter_capture_packets``).

    ``Packet.interface`` indexes the returned list; each Interface is named after its ETL interface
    ("NDIS ifindex 12", "PktMon component 59") and has nanosecond resolution.
    """
    reader = _read(path, progress)
    ids = sorted(reader.interfaces)
    index = {k: n for n, k in enumerate(ids)}
    interfaces = [reader.interfaces[k] for k in ids]

    def packets() -> Iterator[Packet]:
        for p in reader.packets():
            p.interface = index[p.interface]
            yield p

    return interfaces, packets()


def has_packets(path: str | os.PathLike) -> bool:
    """True when the ETL file holds at least one PktMon or NDIS packet event (stops at the first)."""
    from .container import EtlFile

    with EtlFile(path) as etl:
        for batch in etl.batches():
            eh = (batch.htype == EVENT_HEADER32) | (batch.htype == EVENT_HEADER64)
            if (eh & batch.provider_mask(PKTMON) & np.isin(batch.event_id, PKTMON_PACKET_IDS)).any():
                return True
            if (eh & batch.provider_mask(NDIS_PACKETCAPTURE) & (batch.event_id == NDIS_PACKET_ID)).any():
                return True
    return False
