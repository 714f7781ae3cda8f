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
(raw IP). pktmon logs a packet once per component it crosses (an *appearance*); PktGroupId +
PktNumber name the packet. By default the frames are the packets, each once: the first appearance's
time, bytes, direction and component (``interface``), with ``components`` (the path it took, in
order: ``Microsoft Hyper-V Network Adapter #3 [59] > XDP Lightweight Filter [61]``) and
``appearances``. ``appearances=True`` keeps one row per appearance (what pktmon's own pcapng and
etl2pcapng write), with ``component``. A nonzero DropReason becomes the note ``dropped at
<component>: <reason name> (reason N) location 0x...`` (names in :mod:`.pktmon`). Event 20
(component rundown: ComponentId u16, Type u16, driver and description as NUL-ended UTF-16) names
the components.

Microsoft-Windows-NDIS-PacketCapture (2ed6006e-4729-4609-b423-3ee7bcd678ef), event 1001:
MiniportIfIndex u32, LowerIfIndex u32, FragmentSize u32, Fragment[FragmentSize] (Windows 10 adds two
u64 Gft fields after it). Keywords: Ethernet 0x1, WirelessWAN 0x200 (raw IP), Native802.11 0x10000,
PacketTruncated 0x2000000, PacketStart 0x40000000, PacketEnd 0x80000000, SendPath 0x100000000 (out),
ReceivePath 0x200000000 (in). Fragments of one interface and thread are joined from PacketStart to
PacketEnd; the frame takes the time of its last fragment (as etl2pcapng does). ``interface`` is the
MiniportIfIndex. The header PID of these events is whichever thread ran, not the sending process.
Event 1003 (VMSwitch packet fragment, Hyper-V hosts; fields from the provider's manifest):
MiniportIfIndex u32, LowerIfIndex u32, SourcePortId u32, SourcePortName, SourceNicName,
SourceNicType (UTF-16, NUL-ended), DestinationCount u32, Destination[DestinationCount] (8 bytes each),
FragmentSize u32, Fragment, OOBDataSize u32, OOBData; same keywords and fragment joining as 1001.
Its frames get ``switch_port``, ``port_name``, ``nic_name`` and ``nic_type`` columns (no sample of it
is public: the tests build it from the manifest).

Frames are dissected batch by batch (the bytes are kept only when asked for) and returned sorted by
time (ties in file order), numbered from 1, like the captures pktmon and etl2pcapng write from them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import polars as pl

from ..diagnostics import SkipReport, report_for, warn
from ..packets import (
    DIR_IN,
    DIR_OUT,
    DIR_UNKNOWN,
    LINKTYPE_ETHERNET,
    LINKTYPE_IEEE802_11,
    LINKTYPE_RAW,
    Interface,
    Packet,
    dissect_buffer,
    finish_frames,
)
from ..schema import FRAMES, empty
from ..units import Progress
from .guids import NDIS_PACKETCAPTURE, PKTMON
from .layouts import layout
from .pktmon import component_label, drop_text
from .records import EVENT_HEADER32, EVENT_HEADER64, RecordBatch

PKTMON_PACKET_IDS = (160, 170)
PKTMON_COMPONENT_ID = 20
PKTMON_HEADER = 34
PKTMON_DIR_IN, PKTMON_DIR_OUT = 3, 4
PKTMON_LINK_TYPES = {1: LINKTYPE_ETHERNET, 2: LINKTYPE_IEEE802_11, 3: LINKTYPE_RAW}

NDIS_PACKET_ID = 1001
NDIS_VMSWITCH_ID = 1003
#: Event 1003 up to its destination array (the template of the provider's manifest).
_VMSWITCH_LAYOUT = layout(
    "miniport:u32 lower:u32 port:u32 port_name:wstring nic_name:wstring nic_type:wstring destinations:u32",
    "NDIS-PacketCapture 1003",
)
NDIS_HEADER = 12
KW_ETHERNET, KW_WWAN, KW_TUNNEL, KW_NATIVE_80211 = 0x1, 0x200, 0x8000, 0x10000
KW_TRUNCATED, KW_START, KW_END = 0x2000000, 0x40000000, 0x80000000
KW_SEND, KW_RECEIVE = 0x100000000, 0x200000000

_NOTE_TRUNCATED, _NOTE_INCOMPLETE = 1, 4


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
    drop: np.ndarray  # pktmon DropReason (0: none)
    record: np.ndarray
    pktmon: dict[str, np.ndarray] | None = None  # PktGroupId, PktNumber, DropLocation of pktmon rows


@dataclass
class _Pending:
    parts: list[bytes] = field(default_factory=list)
    record: int = 0  # record of the first fragment (orders the frame among equal times)
    start_ok: bool = True  # False: fragments without their PacketStart
    time: int = 0  # time of the latest fragment
    link: int = LINKTYPE_ETHERNET
    truncated: bool = False


#: The providers whose records hold packets (the container hands over no others).
PROVIDERS = (PKTMON, NDIS_PACKETCAPTURE)


class EtlPacketReader:
    """Collects the frames of an ETL file batch by batch (so other decoders can share the pass)."""

    #: The providers it reads (what a shared pass must ask the container for).
    PROVIDERS = PROVIDERS

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        with_data: bool = False,
        keep: pl.Expr | None = None,
        appearances: bool = False,
        spill: BinaryIO | None = None,
    ) -> None:
        """``keep`` (a polars filter on FRAMES columns) drops the frames a caller does not need as each
        chunk is dissected, so huge captures cost memory only for those kept; ``frame`` then numbers
        the kept frames. ``appearances``: one pktmon row per component a packet crossed (default:
        one row per packet). ``spill`` (a binary file open for writing and reading): with
        ``with_data``, the frames' bytes go there chunk by chunk instead of memory, and
        :meth:`packets` reads them back one by one, so memory does not grow with the packets' bytes."""
        self.path = os.fspath(path)
        self.with_data = with_data
        self.spill = spill
        self._spilled = 0  # bytes written to ``spill``
        self.keep = keep
        self.appearances = appearances
        self.parts: list[pl.DataFrame] = []
        self.count = 0  # frames found so far
        self._pending: dict[tuple, _Pending] = {}
        self.skipped = report_for(path)  # merged into the pass's report by finish()
        self.incomplete = 0
        self.bad_ifindex = 0
        self.events = 0
        self._vmswitch: list[pl.DataFrame] = []  # _record -> switch port and names of 1003 events
        #: (interface id, link type) -> Interface: one per component/ifindex and link type, as etl2pcapng
        self.interfaces: dict[tuple[int, int], Interface] = {}
        self.component_names: dict[int, str] = {}  # PktMon ComponentId -> "description (driver.sys)"

    # ------------------------------------------------------------------ batches
    def feed(self, batch: RecordBatch) -> None:
        """Take the packet (and PktMon component) events of one batch; call :meth:`finish` after the last."""
        eh = (batch.htype == EVENT_HEADER32) | (batch.htype == EVENT_HEADER64)
        pk = eh & batch.provider_mask(PKTMON) & np.isin(batch.event_id, PKTMON_PACKET_IDS)
        nd = eh & batch.provider_mask(NDIS_PACKETCAPTURE) & (batch.event_id == NDIS_PACKET_ID)
        vm = eh & batch.provider_mask(NDIS_PACKETCAPTURE) & (batch.event_id == NDIS_VMSWITCH_ID)
        comp = eh & batch.provider_mask(PKTMON) & (batch.event_id == PKTMON_COMPONENT_ID)
        if comp.any():
            self._components(batch.select(comp))
        if pk.any():
            self._pktmon(batch.select(pk))
        if nd.any():
            self._ndis(batch.select(nd))
        if vm.any():
            self._vmswitch_events(batch.select(vm))

    def _skip(self, b: RecordBatch, bad: np.ndarray) -> None:
        self.skipped.add_many(
            "packet event(s) whose frame runs past the event (offsets of their buffers)", b.file_offset[bad]
        )

    def _components(self, b: RecordBatch) -> None:
        """PktMon event 20: ComponentId u16, Type u16, driver name and description (UTF-16, NUL-ended)."""
        for i in range(len(b)):
            p = b.payload(i)
            if len(p) < 6:
                self.skipped.add(
                    "PktMon component events shorter than 6 bytes (offsets of their buffers)",
                    offset=int(b.file_offset[i]),
                )
                continue
            comp = int.from_bytes(p[0:2], "little")
            texts = _utf16z_strings(p[4:], 2)
            if len(texts) == 2:
                driver, desc = texts
                self.component_names[comp] = f"{desc} ({driver})" if desc else driver

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
        location = _le32(u8, po + 26)
        group = _le32(u8, po).astype(np.uint64) | (_le32(u8, po + 4).astype(np.uint64) << np.uint64(32))
        orig = _le16(u8, po + 30)
        dirs = np.where(dtag == PKTMON_DIR_IN, DIR_IN, np.where(dtag == PKTMON_DIR_OUT, DIR_OUT, DIR_UNKNOWN))
        link = np.array([PKTMON_LINK_TYPES.get(int(t), -1) for t in ptype], dtype=np.int32)
        unknown = link < 0
        if unknown.any():
            warn(
                f"{self.path}: {int(unknown.sum())} PktMon frame(s) of unknown PacketType "
                f"{sorted(set(ptype[unknown].tolist()))} kept undissected"
            )
        self._add(
            _Chunk(
                buf=u8,
                off=po + PKTMON_HEADER,
                cap=logged,
                wire=np.maximum(orig, logged),
                time=b.time.astype(np.int64),
                link=link,
                iface=comp.astype(np.int32),
                dirs=dirs.astype(np.int8),
                notes=np.zeros(len(b), np.uint8),  # drops: text added in frames()
                drop=drop.astype(np.int64),
                record=b.record.astype(np.int64),
                pktmon={"_pkt_group": group, "_pkt_number": _le16(u8, po + 8), "_drop_location": location},
            ),
            "PktMon component",
        )

    def _vmswitch_events(self, b: RecordBatch) -> None:
        """Event 1003: the fixed and named fields, then the fragment after the destination array."""
        from .columnar import decode_records

        ok, cols = decode_records(b, np.arange(len(b)), _VMSWITCH_LAYOUT, exact=False)
        u8 = np.frombuffer(b.data, dtype=np.uint8)
        po, ps = b.payload_offset.astype(np.int64), b.payload_size.astype(np.int64)
        decoded = ok.copy()
        end, dests, port = (np.zeros(len(b), np.int64) for _ in range(3))
        for arr, k in ((end, "_end"), (dests, "destinations"), (port, "port")):
            if decoded.any():
                arr[decoded] = cols[k].to_numpy()
        size_at = end + 8 * dests
        ok &= size_at + 4 <= ps
        fsize = np.zeros(len(b), np.int64)
        fsize[ok] = _le32(u8, po[ok] + size_at[ok])
        ok &= size_at + 4 + fsize <= ps
        rows = np.flatnonzero(ok)
        held = np.cumsum(decoded) - 1  # a kept row's place among the decoded rows
        texts = {
            k: cols[k].gather(held[rows]) if len(rows) else pl.Series([], dtype=pl.Utf8)
            for k in ("port_name", "nic_name", "nic_type")
        }
        self._vmswitch.append(
            pl.DataFrame(
                {
                    "_record": b.record[rows].astype(np.int64),
                    "switch_port": port[rows],
                    **{k: [v or None for v in texts[k].to_list()] for k in texts},
                },
                schema={
                    "_record": pl.Int64,
                    "switch_port": pl.Int64,
                    "port_name": pl.Utf8,
                    "nic_name": pl.Utf8,
                    "nic_type": pl.Utf8,
                },
            )
        )
        self._ndis(b, frag_at=np.where(ok, size_at + 4, -1), fsize=fsize)

    def _ndis(
        self, b: RecordBatch, frag_at: np.ndarray | None = None, fsize: np.ndarray | None = None
    ) -> None:
        """Events 1001 (and 1003, whose fragment starts ``frag_at`` bytes into the payload, -1: damaged)."""
        self.events += len(b)
        u8 = np.frombuffer(b.data, dtype=np.uint8)
        po, ps = b.payload_offset, b.payload_size
        if frag_at is None:
            ok = ps >= NDIS_HEADER
            fsize = np.zeros(len(b), np.int64)
            fsize[ok] = _le32(u8, po[ok] + 8)
            ok &= NDIS_HEADER + fsize <= ps
            frag_at = np.full(len(b), NDIS_HEADER, np.int64)
        else:
            ok = frag_at >= 0
        if fsize is None:
            raise ValueError("frag_at goes with fsize")
        self._skip(b, ~ok)
        b = b.select(ok)
        fsize, frag_at = fsize[ok], frag_at[ok]
        po = b.payload_offset
        kw = b.keyword.astype(np.uint64)
        miniport = _le32(u8, po).astype(np.int64)
        lower = _le32(u8, po + 4).astype(np.int64)
        huge = miniport > 0x7FFFFFFF
        if huge.any():
            self.bad_ifindex += int(huge.sum())
            miniport = np.where(huge, -1, miniport)
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
        pid, tid = b.pid.astype(np.int64), b.tid.astype(np.int64)
        # whole packets in one event go straight from the batch's bytes, unless fragments of the same
        # interface/thread/direction are being joined (then order matters: they take the slow path)
        s = single.copy()
        hot = set(self._pending)
        if (~single).any():
            frag_rows = np.flatnonzero(~single)
            hot |= set(
                zip(
                    miniport[frag_rows].tolist(),
                    lower[frag_rows].tolist(),
                    pid[frag_rows].tolist(),
                    tid[frag_rows].tolist(),
                    dirs[frag_rows].tolist(),
                )
            )
        if len(hot) > 64:
            s[:] = False
        else:
            for k in hot:
                s &= ~((miniport == k[0]) & (lower == k[1]) & (pid == k[2]) & (tid == k[3]) & (dirs == k[4]))
        if s.any():
            cap = fsize[s]
            self._add(
                _Chunk(
                    buf=u8,
                    off=po[s] + frag_at[s],
                    cap=cap,
                    wire=_wirelen(u8, po[s] + frag_at[s], cap, link[s], trunc[s]),
                    time=b.time[s].astype(np.int64),
                    link=link[s],
                    iface=miniport[s].astype(np.int32),
                    dirs=dirs[s],
                    notes=np.where(trunc[s], _NOTE_TRUNCATED, 0).astype(np.uint8),
                    drop=np.zeros(int(s.sum()), np.int64),
                    record=b.record[s].astype(np.int64),
                ),
                "NDIS ifindex",
            )
        rest = np.flatnonzero(~s)
        if not len(rest):
            return
        # fragments (and anything while fragments are open): joined per interface pair, thread, direction
        out: list[tuple] = []
        for i in rest.tolist():
            key = (int(miniport[i]), int(lower[i]), int(pid[i]), int(tid[i]), int(dirs[i]))
            at = int(po[i]) + int(frag_at[i])
            frag = bytes(b.data[at : at + int(fsize[i])])
            pend = self._pending.get(key)
            if start[i]:
                if pend is not None:
                    self._flush_incomplete(key, pend, out)
                pend = self._pending[key] = _Pending(record=int(b.record[i]))
            elif pend is None:  # continuation without its start: keep what there is, say so
                pend = self._pending[key] = _Pending(record=int(b.record[i]), start_ok=False)
            pend.parts.append(frag)
            pend.time, pend.link = int(b.time[i]), int(link[i])
            pend.truncated |= bool(trunc[i])
            if end[i]:
                del self._pending[key]
                notes = (_NOTE_TRUNCATED if pend.truncated else 0) | (
                    0 if pend.start_ok else _NOTE_INCOMPLETE
                )
                if not pend.start_ok:
                    self.incomplete += 1
                out.append(
                    (
                        b"".join(pend.parts),
                        int(b.time[i]),
                        int(link[i]),
                        int(miniport[i]),
                        int(dirs[i]),
                        notes,
                        pend.record,
                    )
                )
        if out:
            self._add_list(out)

    def _flush_incomplete(self, key: tuple, pend: _Pending, out: list) -> None:
        """A packet whose PacketEnd never came: kept with the note ``incomplete``."""
        self.incomplete += 1
        self._pending.pop(key, None)
        notes = _NOTE_INCOMPLETE | (_NOTE_TRUNCATED if pend.truncated else 0)
        out.append((b"".join(pend.parts), pend.time, pend.link, key[0], key[4], notes, pend.record))

    def _add_list(self, rows: list[tuple]) -> None:
        datas = [r[0] for r in rows]
        lens = np.fromiter((len(d) for d in datas), np.int64, len(rows))
        off = np.zeros(len(rows), np.int64)
        if len(rows) > 1:
            np.cumsum(lens[:-1], out=off[1:])
        buf = np.frombuffer(b"".join(datas), np.uint8)
        time = np.array([r[1] for r in rows], np.int64)
        link = np.array([r[2] for r in rows], np.int32)
        notes = np.array([r[5] for r in rows], np.uint8)
        trunc = (notes & _NOTE_TRUNCATED) != 0
        self._add(
            _Chunk(
                buf=buf,
                off=off,
                cap=lens,
                wire=_wirelen(buf, off, lens, link, trunc),
                time=time,
                link=link,
                iface=np.array([r[3] for r in rows], np.int32),
                dirs=np.array([r[4] for r in rows], np.int8),
                notes=notes,
                drop=np.zeros(len(rows), np.int64),
                record=np.array([r[6] for r in rows], np.int64),
            ),
            "NDIS ifindex",
        )

    def _add(self, c: _Chunk, kind: str) -> None:
        """Dissect one chunk of frames now (the bytes are not kept unless ``with_data``)."""
        if not len(c.off):
            return
        for i, lt in set(zip(c.iface.tolist(), c.link.tolist())):
            if (i, lt) not in self.interfaces:
                self.interfaces[(i, lt)] = Interface(
                    link_type=lt if lt >= 0 else LINKTYPE_ETHERNET, tsresol=9, name=f"{kind} {i}"
                )
        known = c.link >= 0
        link = np.where(known, c.link, 0xFFFF).astype(np.int32)
        spill = self.with_data and self.spill is not None
        df = dissect_buffer(
            c.buf,
            c.off,
            c.cap,
            c.time,
            link,
            wirelens=c.wire,
            interfaces=c.iface,
            directions=c.dirs,
            with_data=self.with_data and not spill,
            source=self.path,
            finish=False,
        )
        if spill:
            df = df.with_columns(*self._spill_chunk(c))
        extra = _note_labels(c.notes, c.drop)
        df = df.with_columns(
            pl.when(pl.col("notes").is_null())
            .then(extra)
            .when(extra.is_null())
            .then(pl.col("notes"))
            .otherwise(pl.concat_str([pl.col("notes"), extra], separator=","))
            .alias("notes"),
            pl.when(pl.Series(known)).then(pl.col("link_type")).otherwise(None).alias("link_type"),
            pl.Series("_record", c.record, dtype=pl.Int64),
            pl.Series("_link", c.link, dtype=pl.Int32),
        )
        if c.pktmon is not None:
            df = df.with_columns(
                pl.Series("_drop_reason", c.drop, dtype=pl.Int64),
                *(pl.Series(k, v) for k, v in c.pktmon.items()),
            )
        if self.keep is not None:
            df = df.filter(self.keep)
        self.parts.append(df)
        self.count += len(c.off)

    def _spill_chunk(self, c: _Chunk) -> list[pl.Series]:
        """Append the chunk's frame bytes to ``spill``: their (_spill_off, _spill_len) columns."""
        lens = np.asarray(c.cap, np.int64)
        ends = np.cumsum(lens)
        starts = ends - lens
        # one gather of every frame's bytes: position k of frame i is off[i] + (k - starts[i])
        idx = np.repeat(np.asarray(c.off, np.int64) - starts, lens) + np.arange(
            int(ends[-1]) if len(ends) else 0
        )
        assert self.spill is not None  # only a reader given a spill file spills
        self.spill.write(np.asarray(c.buf, np.uint8)[idx].tobytes())
        out = [
            pl.Series("_spill_off", starts + self._spilled, dtype=pl.Int64),
            pl.Series("_spill_len", lens, dtype=pl.Int64),
        ]
        self._spilled += int(ends[-1]) if len(ends) else 0
        return out

    # ------------------------------------------------------------------ results
    def finish(self, skipped: SkipReport | None = None) -> None:
        """Flush packets still open at the end of the file; what was skipped goes to ``skipped`` (the
        report of the pass that fed the batches, ``EtlFile.skipped``), else is published here."""
        if self._pending:
            out: list[tuple] = []
            for key, pend in list(self._pending.items()):
                self._flush_incomplete(key, pend, out)
            self._add_list(out)
        links: dict[int, int] = {}
        for i, _ in self.interfaces:
            links[i] = links.get(i, 0) + 1
        for (i, lt), iface in self.interfaces.items():
            if iface.name == f"PktMon component {i}" and i in self.component_names:
                iface.name = f"PktMon component {i}: {self.component_names[i]}"
            if links[i] > 1:  # one component or ifindex with frames of several link types
                iface.name = f"{iface.name} (link type {lt})"
        if skipped is not None:
            skipped.merge(self.skipped)
        else:
            self.skipped.publish()
        if self.incomplete:
            warn(
                f"{self.path}: {self.incomplete} NDIS packet(s) without their first or last fragment "
                f"kept with the note 'incomplete'"
            )
        if self.bad_ifindex:
            warn(
                f"{self.path}: {self.bad_ifindex} NDIS packet event(s) with a MiniportIfIndex above 2^31 - 1 "
                "(damaged): kept with interface -1"
            )

    def frames(self) -> pl.DataFrame:
        """The FRAMES table, time-sorted (ties in file order) and numbered from 1; ``data`` when kept.

        pktmon frames: one row per packet (``components``, ``appearances``, ``pkt_group``,
        ``pkt_number`` after the FRAMES columns), or per appearance (``component``) with ``appearances``."""
        return finish_frames([self._table().drop("_link", "_spill_off", "_spill_len", strict=False)])

    def _table(self) -> pl.DataFrame:
        if not self.parts:
            df = empty(FRAMES).with_columns(pl.lit(None, pl.Int32).alias("_link"))
            return df.with_columns(pl.lit(None, pl.Binary).alias("data")) if self.with_data else df
        df = pl.concat(self.parts, how="diagonal_relaxed").sort("time", "_record")
        if "_pkt_group" in df.columns:
            df = self._pktmon_view(df)
        if self._vmswitch:
            df = df.join(pl.concat(self._vmswitch), on="_record", how="left", maintain_order="left")
        df = df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("frame")).drop("_record")
        return df

    def _pktmon_view(self, df: pl.DataFrame) -> pl.DataFrame:
        """pktmon appearances labelled with their component and drop text; grouped into packets unless
        ``appearances``."""
        pk = pl.col("_pkt_group").is_not_null()
        ids = df.filter(pk)["interface"].unique().to_list()
        labels = {int(i): component_label(int(i), self.component_names) for i in ids if i is not None}
        df = df.with_columns(
            pl.when(pk)
            .then(pl.col("interface").replace_strict(labels, default=None, return_dtype=pl.Utf8))
            .alias("component")
        )
        dropped = df.with_row_index("_i").filter(pk & (pl.col("_drop_reason") != 0))
        if dropped.height:  # rare: one text per drop
            texts = [
                drop_text(r, loc, comp)
                for r, loc, comp in dropped.select("_drop_reason", "_drop_location", "component").iter_rows()
            ]
            note = pl.Series("_drop_note", [None] * df.height, dtype=pl.Utf8).scatter(dropped["_i"], texts)
            df = df.with_columns(
                pl.when(note.is_null())
                .then(pl.col("notes"))
                .when(pl.col("notes").is_null())
                .then(note)
                .otherwise(pl.concat_str([pl.col("notes"), note], separator=","))
                .alias("notes")
            )
        df = df.drop("_drop_reason", "_drop_location").rename(
            {"_pkt_group": "pkt_group", "_pkt_number": "pkt_number"}
        )
        pk = pl.col("pkt_group").is_not_null()
        if self.appearances:
            return df
        packets = (
            df.filter(pk)
            .group_by("pkt_group", "pkt_number", maintain_order=True)
            .agg(
                pl.exclude("notes", "component").first(),
                pl.col("component").str.join(" > ").alias("components"),
                pl.len().cast(pl.Int32).alias("appearances"),
                pl.col("notes").drop_nulls().unique(maintain_order=True).str.join(",").alias("notes"),
            )
        )
        packets = packets.with_columns(pl.when(pl.col("notes") != "").then(pl.col("notes")).alias("notes"))
        others = df.filter(~pk).drop("component")
        cols = [c for c in df.columns if c != "component"] + ["components", "appearances"]
        return pl.concat([packets.select(cols), others], how="diagonal_relaxed").sort("time", "_record")

    def _packets(self) -> Iterator[tuple[Packet, int]]:
        if not self.with_data:
            raise ValueError("EtlPacketReader(with_data=True) keeps the bytes packets need")
        df = self._table()
        # NDIS native 802.11 frames are logged decrypted with the Protected bit still set: cleared, as
        # etl2pcapng does, so that Wireshark reads their bodies
        ndis = pl.col("pkt_group").is_null() if "pkt_group" in df.columns else pl.lit(True)
        df = df.with_columns(
            (ndis & (pl.col("_link") == LINKTYPE_IEEE802_11)).fill_null(False).alias("_unprotect")
        )
        if "_spill_off" in df.columns:  # the bytes are in the spill file: read back frame by frame
            assert self.spill is not None
            self.spill.flush()
            fd = self.spill.fileno()
            data = (os.pread(fd, n, o) for o, n in zip(df["_spill_off"], df["_spill_len"]))
            df = df.drop("_spill_off", "_spill_len")
        else:
            data = iter(df["data"])
        step = 65536  # Python objects for one slice of rows at a time
        for start in range(0, df.height, step):
            part = df.slice(start, step)
            cols = [
                part[c].to_list()
                for c in ("interface", "wirelen", "direction", "notes", "_link", "_unprotect")
            ]
            times = part["time"].dt.epoch("ns").to_list()
            for t, iface, wire, direction, note, link, unprotect in zip(times, *cols):
                frame = next(data)
                if unprotect and len(frame) > 1 and frame[1] & 0x40:
                    frame = frame[:1] + bytes([frame[1] & 0xBF]) + frame[2:]
                yield (
                    Packet(
                        time_ns=t,
                        data=frame,
                        interface=iface,
                        wirelen=wire,
                        direction=direction,
                        comment=note,
                    ),
                    link,
                )

    def packets(self) -> Iterator[Packet]:
        """The frames as :class:`Packet` objects in frame order (needs ``with_data``)."""
        for p, _ in self._packets():
            yield p


def _note_labels(bits: np.ndarray, drop: np.ndarray) -> pl.Series:
    out: list[str | None] = [None] * len(bits)
    for i in np.flatnonzero(bits).tolist():  # few: truncated / incomplete frames only
        b, parts = int(bits[i]), []
        if b & _NOTE_TRUNCATED:
            parts.append("truncated")
        if b & _NOTE_INCOMPLETE:
            parts.append("incomplete")
        out[i] = ",".join(parts) or None
    return pl.Series("notes", out, dtype=pl.Utf8)


def _utf16z_strings(raw: bytes, count: int) -> list[str]:
    """Up to ``count`` NUL-terminated UTF-16LE strings from the start of ``raw``."""
    out: list[str] = []
    pos = 0
    while len(out) < count and pos + 1 < len(raw):
        end = pos
        while end + 1 < len(raw) and raw[end : end + 2] != b"\0\0":
            end += 2
        out.append(raw[pos:end].decode("utf-16-le", "replace"))
        pos = end + 2
    return out


def _le16(u8: np.ndarray, pos: np.ndarray) -> np.ndarray:
    pos = np.asarray(pos, np.int64)
    return u8[pos].astype(np.int64) | (u8[pos + 1].astype(np.int64) << 8)


def _le32(u8: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return _le16(u8, pos) | (_le16(u8, np.asarray(pos, np.int64) + 2) << 16)


def _be16(u8: np.ndarray, pos: np.ndarray) -> np.ndarray:
    pos = np.asarray(pos, np.int64)
    return (u8[pos].astype(np.int64) << 8) | u8[pos + 1].astype(np.int64)


def _wirelen(
    u8: np.ndarray, off: np.ndarray, cap: np.ndarray, link: np.ndarray, trunc: np.ndarray
) -> np.ndarray:
    """Captured length, or for truncated IP frames the length their IP header gives (one 802.1Q tag
    walked)."""
    wire = cap.astype(np.int64).copy()
    t = np.flatnonzero(trunc)
    if not len(t):
        return wire
    o, c, lt = np.asarray(off, np.int64)[t], wire[t], np.asarray(link)[t]
    eth = lt == LINKTYPE_ETHERNET
    net = np.where(eth, 14, np.where(lt == LINKTYPE_RAW, 0, -1)).astype(np.int64)
    et = np.zeros(len(t), np.int64)
    e = np.flatnonzero(eth & (c >= 18))
    et[e] = _be16(u8, o[e] + 12)
    vlan = np.flatnonzero(eth & (et == 0x8100) & (c >= 22))
    et[vlan] = _be16(u8, o[vlan] + 16)
    net[vlan] = 18
    ok = (net >= 0) & (c >= net + 6) & (~eth | (et == 0x0800) | (et == 0x86DD))
    k = np.flatnonzero(ok)
    ip = o[k] + net[k]
    ver = u8[ip] >> 4
    ln = np.where(ver == 4, _be16(u8, ip + 2), np.where(ver == 6, _be16(u8, ip + 4) + 40, -1))
    good = ln >= 0
    rows = k[good]
    wire[t[rows]] = np.maximum(c[rows], net[rows] + ln[good])
    return wire


# ---------------------------------------------------------------------- public API


def _read(
    path: str | os.PathLike,
    progress: Progress | None,
    with_data: bool,
    appearances: bool = False,
    spill: BinaryIO | None = None,
) -> EtlPacketReader:
    from .container import EtlFile

    reader = EtlPacketReader(path, with_data=with_data, appearances=appearances, spill=spill)
    with EtlFile(path, progress=progress) as etl:
        for batch in etl.batches(providers=PROVIDERS):
            reader.feed(batch)
        reader.finish(etl.skipped)
    return reader


def read_etl_frames(
    path: str | os.PathLike,
    *,
    with_data: bool = False,
    progress: Progress | None = None,
    appearances: bool = False,
) -> pl.DataFrame:
    """The frames inside an ETL file (PktMon and NDIS packet capture events) as a FRAMES table
    (pktmon: one row per packet, or per appearance with ``appearances``)."""
    return _read(path, progress, with_data, appearances).frames()


def iter_etl_packets(
    path: str | os.PathLike,
    *,
    interfaces: dict[tuple[int, int], Interface] | None = None,
    progress: Progress | None = None,
    appearances: bool = False,
) -> Iterator[Packet]:
    """The frames inside an ETL file as :class:`Packet` objects, time-sorted (ns times).

    When ``interfaces`` is given, it is filled with an :class:`Interface` (link type, ns resolution)
    per (interface id, link type) the packets use, before the first packet is yielded.
    """
    reader = _read(path, progress, True, appearances)
    if interfaces is not None:
        interfaces.update(reader.interfaces)
    yield from reader.packets()


def iter_etl_capture(
    path: str | os.PathLike,
    *,
    progress: Progress | None = None,
    appearances: bool = False,
    spill_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[Interface], Iterator[Packet]]:
    """Interfaces and packets ready for a pcapng writer (like ``captures.iter_capture_packets``).

    ``Packet.interface`` indexes the returned list: one Interface per ETL interface and link type
    (as etl2pcapng writes them: a Wi-Fi component's 802.11 frames and its Ethernet frames go to two
    interfaces, so Wireshark decodes each with its own link type), named after the ETL interface
    ("NDIS ifindex 12", "PktMon component 59") with nanosecond resolution. The packets are those of
    :meth:`EtlPacketReader.frames` in the same order, so packet i is frame i + 1.

    The frames' bytes wait in a temporary file (in ``spill_dir``, else the system's temporary
    directory) until they are read back in frame order: memory holds the frames table, not the bytes.
    """
    spill = tempfile.TemporaryFile(dir=spill_dir, prefix="etwtools-packets-")  # noqa: SIM115 (closed by packets())
    try:
        reader = _read(path, progress, True, appearances, spill=spill)
    except BaseException:
        spill.close()
        raise
    ids = sorted(reader.interfaces)
    index = {k: n for n, k in enumerate(ids)}
    interfaces = [reader.interfaces[k] for k in ids]

    def packets() -> Iterator[Packet]:
        try:
            for p, link in reader._packets():
                p.interface = index[(p.interface, link)]
                yield p
        finally:
            spill.close()

    return interfaces, packets()


def has_packets(path: str | os.PathLike) -> bool:
    """True when the ETL file holds at least one PktMon or NDIS packet event.

    Stops at the first one (packet traces have them in their first buffers); a file without any is
    walked to its end, headers only (no payload is decoded)."""
    from .container import EtlFile

    with EtlFile(path) as etl:
        for batch in etl.batches(providers=PROVIDERS):
            eh = (batch.htype == EVENT_HEADER32) | (batch.htype == EVENT_HEADER64)
            if (eh & batch.provider_mask(PKTMON) & np.isin(batch.event_id, PKTMON_PACKET_IDS)).any():
                return True
            if (
                eh
                & batch.provider_mask(NDIS_PACKETCAPTURE)
                & np.isin(batch.event_id, (NDIS_PACKET_ID, NDIS_VMSWITCH_ID))
            ).any():
                return True
    return False
