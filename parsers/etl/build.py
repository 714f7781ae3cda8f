"""An ETL writer for tests and fixtures: real-shaped files for inputs no public file has.

Built on the construct definitions of :mod:`.structs` (``build_record``, ``build_buffer`` and the
header structs): a header buffer with a real TRACE_LOGFILE_HEADER (QPC clock), then
buffers of records. Output is deterministic: the same calls give the same bytes.

Example::

    from datetime import datetime, timezone
    from etwtools.parsers.etl.build import EtlWriter
    from etwtools.parsers.etl.guids import TCPIP

    w = EtlWriter(pointer_size=8, start=datetime(2024, 6, 10, 20, 0, tzinfo=timezone.utc))
    w.event(TCPIP, 1055, struct.pack("<6I", 1, 0, 0, 0, 0, 0), level=3, keyword=0x8000000080,
            task=1055, time=w.start + timedelta(seconds=5))
    w.kernel_event(group=0x06, opcode=10, payload=..., time=..., pid=4)
    w.write(tmp_path / "built.etl")

Times: a ``time`` is an aware ``datetime``, a ``timedelta`` after ``start``, or an ``int`` of UTC
nanoseconds since 1970. Each becomes a raw QPC value ``qpc_start + delta * perf_freq``, rounded down
to a clock tick; :meth:`EtlWriter.decoded_ns` gives the nanoseconds a correct reader returns for it
(exactly the input when the time falls on a tick: every 100 ns at the default 10 MHz). ``start``
has microsecond resolution (a datetime), so the header's FILETIME StartTime holds it exactly.

Shaped events for the formats etwtools reads from such files: :meth:`EtlWriter.ndis_packet`
(Microsoft-Windows-NDIS-PacketCapture 1001, as ``netsh trace capture=yes``, optionally fragmented or
truncated), :meth:`EtlWriter.pktmon_packet` (Microsoft-Windows-PktMon 160/170) and
:meth:`EtlWriter.tcpip_counters` (Microsoft-Windows-TCPIP 1025, 1055-1058, 1063 with the manifest's
level, keywords and task).

Records go to per-processor buffers (``processor=``, like the real per-CPU buffers); a buffer is
written to the file when it is full, the rest at the end in processor order. So records of
different processors can appear out of time order in the file, as they do in real traces.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..units import FILETIME_UNIX_EPOCH
from .guids import NDIS_PACKETCAPTURE, PKTMON, TCPIP
from .structs import (
    BUFFER_HEADER,
    BUFFER_HEADER_SIZE,
    FLAG_FLUSH_MARKER,
    HEADER_KINDS,
    KERNEL_KINDS,
    build_buffer,
    build_record,
    structs_for,
)

_NS = 1_000_000_000

Time = datetime | timedelta | int


class EtlWriter:
    """Collects records and writes an uncompressed ETL file.

    ``pointer_size`` (4 or 8) picks the 32- or 64-bit header types (EVENT_HEADER32/64, SYSTEM32/64...)
    and the TRACE_LOGFILE_HEADER layout. ``start`` is the UTC time of the logfile header record (raw
    clock ``qpc_start``); ``perf_freq`` the QPC frequency in Hz.
    """

    def __init__(
        self,
        pointer_size: int = 8,
        start: datetime | None = None,
        perf_freq: int = 10_000_000,
        *,
        qpc_start: int = 2_499_822_000_000,
        buffer_size: int = 0x10000,
        number_of_processors: int = 2,
        os_version: tuple[int, int] = (10, 0),
        provider_version: int = 19041,
        cpu_speed_mhz: int = 2594,
        timezone_bias: int = 0,
        logger_name: str = "NetTrace",
        logfile_name: str = r"C:\Windows\Temp\NetTraces\NetTrace.etl",
        header_pid: int = 4,
        header_tid: int = 8,
    ) -> None:
        if pointer_size not in (4, 8):
            raise ValueError(f"pointer size must be 4 or 8, not {pointer_size}")
        if perf_freq <= 0:
            raise ValueError("perf_freq must be positive")
        self.pointer_size = pointer_size
        self.structs = structs_for(pointer_size)
        self.start = start or datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)
        if self.start.tzinfo is None:
            raise ValueError("start must be an aware datetime (UTC)")
        self.start_ns = _dt_ns(self.start)
        self.perf_freq = perf_freq
        self.qpc_start = qpc_start
        self.buffer_size = buffer_size
        self.number_of_processors = number_of_processors
        self.os_version = os_version
        self.provider_version = provider_version
        self.cpu_speed_mhz = cpu_speed_mhz
        self.timezone_bias = timezone_bias
        self.logger_name = logger_name
        self.logfile_name = logfile_name
        self.header_pid, self.header_tid = header_pid, header_tid
        self._open: dict[int, list[bytes]] = {}  # processor -> records of its current buffer
        self._used: dict[int, int] = {}
        self._full: list[tuple[int, list[bytes]]] = []  # (processor, records) in flush order
        self._last_raw = qpc_start
        self.records = 0

    # ------------------------------------------------------------------ time
    def raw(self, time: Time) -> int:
        """The raw QPC value of ``time`` (rounded down to a clock tick)."""
        ns = self.to_ns(time)
        delta = ns - self.start_ns
        if delta < 0:
            raise ValueError("event time before the trace start")
        return self.qpc_start + delta * self.perf_freq // _NS

    def to_ns(self, time: Time) -> int:
        """UTC nanoseconds since 1970 of a datetime, timedelta after start, or int."""
        if isinstance(time, datetime):
            if time.tzinfo is None:
                raise ValueError("event times must be aware datetimes (UTC)")
            return _dt_ns(time)
        if isinstance(time, timedelta):
            return self.start_ns + _td_ns(time)
        return int(time)

    def decoded_ns(self, time: Time) -> int:
        """What a correct reader decodes for ``time``: StartTime + (raw - raw_header) / perf_freq, in ns."""
        return self.start_ns + (self.raw(time) - self.qpc_start) * _NS // self.perf_freq

    # ------------------------------------------------------------------ records
    def event(
        self,
        provider: uuid.UUID | str,
        id: int,
        payload: bytes = b"",
        *,
        time: Time | None = None,
        level: int = 4,
        keyword: int = 0,
        opcode: int = 0,
        version: int = 0,
        pid: int = 0,
        tid: int = 0,
        task: int = 0,
        channel: int = 0,
        flags: int = 0,
        processor: int = 0,
        processor_time: int = 0,
        activity_id: uuid.UUID | None = None,
        ext_items: Iterable[tuple[int, bytes]] = (),
    ) -> None:
        """Add one EVENT_HEADER record (manifest/TraceLogging event) of ``provider``."""
        raw = self.raw(self.start if time is None else time)
        fields = {
            "flags": flags,
            "thread_id": tid,
            "process_id": pid,
            "timestamp": raw,
            "provider_id": uuid.UUID(str(provider)),
            "id": id,
            "version": version,
            "channel": channel,
            "level": level,
            "opcode": opcode,
            "task": task,
            "keyword": keyword,
            "processor_time": processor_time,
        }
        if activity_id is not None:
            fields["activity_id"] = activity_id
        self._add(
            build_record(self.structs.event_header, bytes(payload), ext_items, **fields), processor, raw
        )

    def kernel_event(
        self,
        group: int,
        opcode: int,
        payload: bytes = b"",
        *,
        time: Time | None = None,
        version: int = 2,
        pid: int = 0xFFFFFFFF,
        tid: int = 0xFFFFFFFF,
        header: str = "system",
        processor: int = 0,
    ) -> None:
        """Add one classic kernel record: ``header`` "system" (SYSTEM_TRACE_HEADER), "compact" or "perfinfo".

        ``group`` is the kernel group (hook id >> 8: 0x06 TcpIp, 0x08 UdpIp, 0x03 Process...),
        ``opcode`` the event type. PERFINFO headers carry no pid/tid.
        """
        raw = self.raw(self.start if time is None else time)
        s = self.structs
        fields = {"version": version, "opcode": opcode, "group": group, "timestamp": raw}
        if header == "system":
            st = s.system_header
            fields.update(thread_id=tid, process_id=pid)
        elif header == "compact":
            st = s.compact_header
            fields.update(thread_id=tid, process_id=pid)
        elif header == "perfinfo":
            st = s.perfinfo_header
        else:
            raise ValueError(f"unknown kernel header kind {header!r} (system, compact, perfinfo)")
        self._add(build_record(st, bytes(payload), (), **fields), processor, raw)

    # ------------------------------------------------------------------ netsh / pktmon shaped events
    def ndis_packet(
        self,
        frame: bytes,
        *,
        time: Time | None = None,
        ifindex: int = 12,
        lower_ifindex: int | None = None,
        direction: str | None = "in",
        link: str = "ethernet",
        fragment_size: int | None = None,
        truncated_to: int | None = None,
        pid: int = 0,
        tid: int = 0,
        processor: int = 0,
        gft: bool = True,
    ) -> int:
        """Log ``frame`` as Microsoft-Windows-NDIS-PacketCapture event(s) 1001, as ``netsh trace capture=yes``.

        ``direction`` "out" sets SendPath, "in" ReceivePath; ``link`` "ethernet", "wwan" (raw IP) or
        "802.11"; ``fragment_size`` splits the frame into several events (PacketStart on the first,
        PacketEnd on the last); ``truncated_to`` keeps that many bytes and sets PacketTruncated.
        ``gft`` appends the two u64 Gft fields of the Windows 10 template. Returns the events written.
        """
        from .captured_frames import (
            KW_END,
            KW_ETHERNET,
            KW_NATIVE_80211,
            KW_RECEIVE,
            KW_SEND,
            KW_START,
            KW_TRUNCATED,
            KW_WWAN,
            NDIS_PACKET_ID,
        )

        media = {"ethernet": KW_ETHERNET, "wwan": KW_WWAN, "802.11": KW_NATIVE_80211}[link]
        kw = media | {"out": KW_SEND, "in": KW_RECEIVE, None: 0}[direction]
        data = bytes(frame)
        if truncated_to is not None:
            data = data[:truncated_to]
            kw |= KW_TRUNCATED
        size = fragment_size or max(len(data), 1)
        parts = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        lower = ifindex if lower_ifindex is None else lower_ifindex
        for i, part in enumerate(parts):
            k = kw | (KW_START if i == 0 else 0) | (KW_END if i == len(parts) - 1 else 0)
            payload = struct.pack("<III", ifindex, lower, len(part)) + part + (bytes(16) if gft else b"")
            self.event(
                NDIS_PACKETCAPTURE,
                NDIS_PACKET_ID,
                payload,
                time=time,
                level=4,
                keyword=k,
                pid=pid,
                tid=tid,
                processor=processor,
            )
        return len(parts)

    def pktmon_packet(
        self,
        frame: bytes,
        *,
        time: Time | None = None,
        component: int = 1,
        edge: int = 1,
        direction: str | None = "in",
        packet_type: int = 1,
        group_id: int = 1,
        number: int = 1,
        appearance: int = 1,
        filter_id: int = 1,
        drop_reason: int = 0,
        drop_location: int = 0,
        original_size: int | None = None,
        event_id: int = 160,
        processor: int = 0,
    ) -> None:
        """Log ``frame`` as a Microsoft-Windows-PktMon packet event (160; 170 for a drop), as pktmon does."""
        from .captured_frames import PKTMON_DIR_IN, PKTMON_DIR_OUT

        dtag = {"in": PKTMON_DIR_IN, "out": PKTMON_DIR_OUT, None: 0}[direction]
        data = bytes(frame)
        head = struct.pack(
            "<QHHHHHHHIIHH",
            group_id,
            number,
            appearance,
            dtag,
            packet_type,
            component,
            edge,
            filter_id,
            drop_reason,
            drop_location,
            len(data) if original_size is None else original_size,
            len(data),
        )
        self.event(PKTMON, event_id, head + data, time=time, level=4, keyword=0x10, processor=processor)

    def tcpip_counters(
        self,
        event_id: int,
        counters: tuple[int, ...] | list[int],
        *,
        time: Time | None = None,
        pid: int = 0,
        tid: int = 0,
        processor: int = 0,
    ) -> None:
        """Log a Microsoft-Windows-TCPIP six-counter event (1025, 1055-1058, 1063) with its manifest
        level, keywords and task."""
        from .tcpip import SECURITY_KEYWORDS, SECURITY_LEVELS

        if len(counters) != 6:
            raise ValueError("the TcpSecurityRateLimitArgs template has six counters")
        self.event(
            TCPIP,
            event_id,
            struct.pack("<6I", *counters),
            time=time,
            level=SECURITY_LEVELS[event_id],
            keyword=SECURITY_KEYWORDS[event_id],
            task=event_id,
            pid=pid,
            tid=tid,
            processor=processor,
        )

    def raw_record(self, record: bytes, *, processor: int = 0, raw_time: int | None = None) -> None:
        """Add a record built elsewhere (already 8-byte aligned), e.g. a deliberately damaged one."""
        self._add(bytes(record), processor, raw_time if raw_time is not None else self._last_raw)

    def _add(self, rec: bytes, processor: int, raw: int) -> None:
        capacity = self.buffer_size - BUFFER_HEADER_SIZE
        if len(rec) > capacity:
            raise ValueError(f"record of {len(rec)} bytes does not fit a buffer of {self.buffer_size} bytes")
        used = self._used.get(processor, 0)
        if used + len(rec) > capacity:
            self._full.append((processor, self._open.pop(processor)))
            used = 0
        self._open.setdefault(processor, []).append(rec)
        self._used[processor] = used + len(rec)
        self._last_raw = max(self._last_raw, raw)
        self.records += 1

    # ------------------------------------------------------------------ output
    def to_bytes(self) -> bytes:
        """The whole file."""
        groups = self._full + sorted(self._open.items())
        start_ft = FILETIME_UNIX_EPOCH + self.start_ns // 100
        end_ft = start_ft + (self._last_raw - self.qpc_start) * 10_000_000 // self.perf_freq
        tz = {
            "bias": self.timezone_bias,
            "standard_name": "Coordinated Universal Time",
            "daylight_name": "Coordinated Universal Time",
        }
        payload = self.structs.trace_logfile_header.build(
            dict(
                buffer_size=self.buffer_size,
                buffers_written=1 + len(groups),
                start_time=start_ft,
                end_time=end_ft,
                boot_time=start_ft - 36_000_000_000,
                perf_freq=self.perf_freq,
                number_of_processors=self.number_of_processors,
                provider_version=self.provider_version,
                version=self.os_version[0] | self.os_version[1] << 8 | 2 << 16,
                cpu_speed_mhz=self.cpu_speed_mhz,
                timezone=tz,
                logger_name=self.logger_name,
                logfile_name=self.logfile_name,
            )
        )
        # group 0 / opcode 0: the logfile header; its thread/process ids are the session controller's
        head = build_record(
            self.structs.system_header,
            payload,
            opcode=0,
            group=0,
            timestamp=self.qpc_start,
            thread_id=self.header_tid,
            process_id=self.header_pid,
        )
        out = [
            build_buffer(
                [head],
                self.buffer_size,
                buffer_type=BUFFER_HEADER,
                buffer_flag=FLAG_FLUSH_MARKER,
                timestamp=self.qpc_start,
            )
        ]
        for seq, (cpu, recs) in enumerate(groups, 1):
            out.append(
                build_buffer(
                    recs, self.buffer_size, sequence_number=seq, processor_index=cpu, timestamp=self._last_raw
                )
            )
        return b"".join(out)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the file; returns its path."""
        p = Path(path)
        p.write_bytes(self.to_bytes())
        return p


def _dt_ns(dt: datetime) -> int:
    d = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return _td_ns(d)


def _td_ns(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * _NS + td.microseconds * 1000


#: Header types of the kernel header kinds, for callers that check what they built.
KERNEL_HEADER_TYPES = {
    (kind, size): HEADER_KINDS[kind][size == 8] for kind in KERNEL_KINDS for size in (4, 8)
}

__all__ = ["KERNEL_HEADER_TYPES", "EtlWriter"]
