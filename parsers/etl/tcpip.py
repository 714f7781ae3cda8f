"""Microsoft-Windows-TCPIP manifest events: the SYN-attack / rate-limit counters and the PID-carrying events.

Facts from the provider's manifest (Windows 7 7600 to Windows 10 18990 dumps; ids, levels, keywords,
tasks and templates identical across them; keyword 0x8000000000 is named ``ut:Dropped`` on Windows 7
and ``ut:Global`` on Windows 10):

========  =====================================  =======  ==================================
event id  symbol (task of the same name & value)  level    keywords
========  =====================================  =======  ==================================
1025      TcpSecurityRateLimit                   4 Info   0x400000484 (TcpipTcb, TcpipDiagnosis, Endpoint, ConnectPath)
1055      TcpGlobalSynAttackEntry                3 Warn   0x8000000080 (TcpipDiagnosis, Global)
1056      TcpGlobalReassemblyLimitViolation      3 Warn   0x8000000080
1057      TcpGlobalConnectionRateLimitViolation  3 Warn   0x8000000080
1058      TcpGlobalLandAttackSegmentDrop         3 Warn   0x18000000080 (+ keyword_10000000000)
1063      TcpGlobalSynAttackExit                 4 Info   0x8000000080
========  =====================================  =======  ==================================

All six use template ``TcpSecurityRateLimitArgs``: six UInt32 counters (:data:`COUNTERS`), version 0,
opcode 0. The PID-carrying events decoded by :func:`decode_pid_events`:

- 1017 TcpAcceptListenerComplete / 1033 TcpConnectTcbComplete (template
  TcpAccpetListenerRouteLookupFailureArgs[_V1]): LocalAddressLength u32, LocalAddress (SOCKADDR),
  RemoteAddressLength u32, RemoteAddress, Status u32, ProcessId u32, Compartment u32, Tcb (p)
  [, ProcessSequenceNumber u64 in version 1].
- 1169 UdpEndpointSendMessages / 1170 UdpEndpointReceiveMessages (UdpEndpointSendMessagesArgs):
  Endpoint (p), NumMessages u32, NumBytes u32, LocalSockAddrLength u32, LocalSockAddr,
  RemoteSockAddrLength u32, RemoteSockAddr, Pid u32. ``size`` is NumBytes when NumMessages is 1
  (one datagram's payload), null otherwise.
- 1300 TcpConnectionRundown (TcpConnectionRundownArgs[_V1]): Tcb (p), LocalAddressLength u32,
  LocalAddress, RemoteAddressLength u32, RemoteAddress, State u32, Pid u32 [, ProcessSequenceNumber].

SOCKADDR: family u16 little-endian (2 = IPv4, 23 = IPv6), port u16 big-endian, then the IPv4 address
(SOCKADDR_IN, 16 bytes) or flow info u32 + IPv6 address + scope id (SOCKADDR_IN6, 28 bytes).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..addresses import packed_text
from ..diagnostics import SkipReport, report_for
from ..schema import EVENTS, TIME, ColumnTypes, conform, empty
from ..units import Progress
from .guids import TCPIP
from .records import RecordBatch

#: The counters of template TcpSecurityRateLimitArgs, in payload order (six UInt32).
COUNTERS = (
    "SynAttacksDetected",
    "ReassemblyLimitViolations",
    "ConnectionRateLimitBacklog",
    "ConnectionRateLimitViolations",
    "LandAttackSegmentsDropped",
    "ConnectionRateLimitDepth",
)

SYN_ATTACK_ENTRY = 1055
SYN_ATTACK_EXIT = 1063

#: Event id -> manifest symbol, for the events with the six-counter template.
SECURITY_EVENTS: dict[int, str] = {
    1025: "TcpSecurityRateLimit",
    1055: "TcpGlobalSynAttackEntry",
    1056: "TcpGlobalReassemblyLimitViolation",
    1057: "TcpGlobalConnectionRateLimitViolation",
    1058: "TcpGlobalLandAttackSegmentDrop",
    1063: "TcpGlobalSynAttackExit",
}

#: Manifest level and keyword of each security event (used by tests and fixtures to build real-looking files).
SECURITY_LEVELS: dict[int, int] = {1025: 4, 1055: 3, 1056: 3, 1057: 3, 1058: 3, 1063: 4}
KW_TCPIP_TCB, KW_TCPIP_DIAGNOSIS, KW_ENDPOINT = 0x4, 0x80, 0x400
KW_SEND_PATH, KW_RECEIVE_PATH, KW_CONNECT_PATH, KW_GLOBAL = (
    0x100000000,
    0x200000000,
    0x400000000,
    0x8000000000,
)
SECURITY_KEYWORDS: dict[int, int] = {
    1025: KW_TCPIP_TCB | KW_TCPIP_DIAGNOSIS | KW_ENDPOINT | KW_CONNECT_PATH,
    1055: KW_TCPIP_DIAGNOSIS | KW_GLOBAL,
    1056: KW_TCPIP_DIAGNOSIS | KW_GLOBAL,
    1057: KW_TCPIP_DIAGNOSIS | KW_GLOBAL,
    1058: KW_TCPIP_DIAGNOSIS | KW_GLOBAL | 0x10000000000,
    1063: KW_TCPIP_DIAGNOSIS | KW_GLOBAL,
}

#: PID-carrying events: id -> EVENTS "event" name (protocol UDP for 1169/1170, TCP for the others).
PID_EVENTS: dict[int, str] = {
    1017: "AcceptComplete",
    1033: "ConnectComplete",
    1169: "Send",
    1170: "Recv",
    1300: "Rundown",
}

SECURITY_SCHEMA: ColumnTypes = {
    "time": TIME,
    "event_id": pl.Int32,
    "name": pl.Utf8,
    "level": pl.Int8,
    **{c: pl.UInt32 for c in COUNTERS},
    "record": pl.Int64,
}


def decode_security(batch: RecordBatch, skipped: SkipReport) -> tuple[pl.DataFrame, int]:
    """The six-counter events of one batch, and how many TCPIP-provider records the batch held; short
    ones are counted in ``skipped``."""
    tcp = batch.provider_mask(TCPIP)
    n_tcpip = int(tcp.sum())
    if not n_tcpip:
        return pl.DataFrame(schema=SECURITY_SCHEMA), 0
    ids = batch.event_id
    sel = tcp & np.isin(ids, list(SECURITY_EVENTS)) & (batch.htype >= 0x12) & (batch.htype <= 0x13)
    short = sel & (batch.payload_size < 24)
    if short.any():
        skipped.add_many(
            "TCPIP counter events shorter than 24 bytes (offsets of their buffers)", batch.file_offset[short]
        )
        sel &= ~short
    b = batch.select(sel)
    cols: dict[str, object] = {
        "time": pl.Series(b.time, dtype=pl.Int64).cast(TIME),
        "event_id": b.event_id.astype(np.int32),
        "name": [SECURITY_EVENTS[int(i)] for i in b.event_id],
        "level": b.level.astype(np.int8),
    }
    if len(b):
        words = _u32_view(b.data)
        base = b.payload_offset // 4
        for k, name in enumerate(COUNTERS):
            cols[name] = words[base + k]
    else:
        for name in COUNTERS:
            cols[name] = np.zeros(0, dtype=np.uint32)
    cols["record"] = b.record
    return pl.DataFrame(cols, schema=SECURITY_SCHEMA), n_tcpip


def decode_pid_events(batch: RecordBatch, skipped: SkipReport) -> pl.DataFrame:
    """Events 1017/1033/1169/1170/1300 of one batch as EVENTS rows (pid from the payload); malformed
    ones are counted in ``skipped``."""
    sel = batch.provider_mask(TCPIP) & np.isin(batch.event_id, list(PID_EVENTS))
    idx = np.flatnonzero(sel)
    rows: list[tuple] = []
    bad: list[int] = []
    for i in idx:
        eid = int(batch.event_id[i])
        try:
            rows.append(_pid_row(batch, int(i), eid))
        except (struct.error, ValueError, IndexError):
            bad.append(int(batch.file_offset[i]))
    skipped.add_many("malformed TCPIP PID events (offsets of their buffers)", bad)
    df = pl.DataFrame(
        rows,
        schema={
            "time": pl.Int64,
            "event": pl.Utf8,
            "protocol": pl.Utf8,
            "ip_version": pl.Int8,
            "pid": pl.Int64,
            "size": pl.Int64,
            "local_addr": pl.Utf8,
            "local_port": pl.Int32,
            "remote_addr": pl.Utf8,
            "remote_port": pl.Int32,
            "record": pl.Int64,
        },
        orient="row",
    )
    df = df.with_columns(pl.col("time").cast(TIME), pl.lit("TCPIP").alias("provider"))
    return conform(df, EVENTS)


def _pid_row(batch: RecordBatch, i: int, eid: int) -> tuple:
    p = batch.payload(i)
    ps = int(batch.pointer_size[i])
    time, record = int(batch.time[i]), int(batch.record[i])
    o = 0
    size = None
    if eid in (1169, 1170):
        o += ps
        n_msgs, n_bytes = struct.unpack_from("<II", p, o)
        size = n_bytes if n_msgs == 1 else None  # a datagram's size only when the event covers one
        o += 8
    elif eid == 1300:
        o += ps
    (ln,) = struct.unpack_from("<I", p, o)
    local = _sockaddr(p[o + 4 : o + 4 + ln], ln)
    o += 4 + ln
    (ln,) = struct.unpack_from("<I", p, o)
    remote = _sockaddr(p[o + 4 : o + 4 + ln], ln)
    o += 4 + ln
    if eid in (1017, 1033):
        _status, pid = struct.unpack_from("<II", p, o)
    elif eid == 1300:
        _state, pid = struct.unpack_from("<II", p, o)
    else:
        (pid,) = struct.unpack_from("<I", p, o)
    proto = "UDP" if eid in (1169, 1170) else "TCP"
    return (
        time,
        PID_EVENTS[eid],
        proto,
        local[0],
        pid,
        size,
        local[1],
        local[2],
        remote[1],
        remote[2],
        record,
    )


def _sockaddr(raw: bytes, length: int) -> tuple[int | None, str | None, int | None]:
    """(ip_version, address text, port) of a SOCKADDR_IN / SOCKADDR_IN6."""
    if len(raw) != length:
        raise ValueError("sockaddr runs past the payload")
    if length >= 8 and raw[0:2] == b"\x02\x00":
        return 4, packed_text(raw[4:8]), int.from_bytes(raw[2:4], "big")
    if length >= 24 and raw[0:2] == b"\x17\x00":
        return 6, packed_text(raw[8:24]), int.from_bytes(raw[2:4], "big")
    if length == 4:
        return 4, packed_text(raw), None
    if length == 16:
        return 6, packed_text(raw), None
    raise ValueError(f"unknown address form of {length} bytes")


def _u32_view(data) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    return buf[: len(buf) // 4 * 4].view("<u4")


@dataclass
class TcpipEvents:
    """What one pass over an ETL file found of Microsoft-Windows-TCPIP."""

    security: pl.DataFrame  # SECURITY_SCHEMA: 1025, 1055-1058, 1063 with their counters
    pid_events: pl.DataFrame  # EVENTS: 1017, 1033, 1169, 1170, 1300
    events_read: int  # every TCPIP-provider record seen


class TcpipCollector:
    """Accumulates TCPIP events batch by batch (so callers can share one pass over the file)."""

    def __init__(
        self, path: str | os.PathLike, *, pid_events: bool = True, skipped: SkipReport | None = None
    ) -> None:
        """``skipped``: the report of the file's pass (``EtlFile.skipped``) the decoders count into."""
        self.path = path
        self.skipped = skipped if skipped is not None else report_for(path)
        self.want_pid = pid_events
        self._sec: list[pl.DataFrame] = []
        self._pid: list[pl.DataFrame] = []
        self.events_read = 0

    def feed(self, batch: RecordBatch) -> None:
        df, n = decode_security(batch, self.skipped)
        self.events_read += n
        if df.height:
            self._sec.append(df)
        if n and self.want_pid:
            pid = decode_pid_events(batch, self.skipped)
            if pid.height:
                self._pid.append(pid)

    def result(self) -> TcpipEvents:
        sec = pl.concat(self._sec) if self._sec else pl.DataFrame(schema=SECURITY_SCHEMA)
        pid = pl.concat(self._pid) if self._pid else empty(EVENTS)
        return TcpipEvents(
            security=sec.sort("time", "record"),
            pid_events=pid.sort("time", "record"),
            events_read=self.events_read,
        )


def read_tcpip(path: str | os.PathLike, *, progress: Progress | None = None) -> TcpipEvents:
    """Every Microsoft-Windows-TCPIP security and PID event of an ETL file, and the provider's event count."""
    from .container import EtlFile

    with EtlFile(path, progress=progress) as etl:
        col = TcpipCollector(path, skipped=etl.skipped)
        for batch in etl.batches():
            col.feed(batch)
    return col.result()


def read_tcpip_security_events(path: str | os.PathLike, *, progress: Progress | None = None) -> pl.DataFrame:
    """Events 1025, 1055-1058, 1063 (time, event_id, name, level, the six counters, record), time-sorted.

    The number of TCPIP-provider events read is in :func:`read_tcpip`'s ``events_read``.
    """
    from .container import EtlFile

    with EtlFile(path, progress=progress) as etl:
        col = TcpipCollector(path, pid_events=False, skipped=etl.skipped)
        for batch in etl.batches():
            col.feed(batch)
    return col.result().security
