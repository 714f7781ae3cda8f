"""Every event of an ETL file, record by record: the reference of the columnar decoder (``columnar.py``).

Fields come from, in order: etwtools' own decoders (kernel TcpIp/UdpIp, Process, SystemConfig NIC and
Services, Microsoft-Windows-Kernel-Network); etl-parser 1.0.1's generated per-provider schemas
(manifest providers by GUID/event id/version, kernel MOF classes by group/version/opcode), used on
our own record payloads and only where they are right: a schema is accepted for a record only when
it parses the payload and consumes exactly all of its bytes (its kernel classes assume 64-bit
pointers; its Kernel-Network IPv6 classes lack the addresses; such records fail that check); its
manifest schemas type pointers as 64-bit: 32-bit records use them with their pointer fields 32-bit
(``pointers.py``), or not at all where those fields are not known;
otherwise the payload in hex. etl-parser's container reader is not used (see tests/test_etl_generic.py
for the defects that rules it out).

This view decodes record by record in Python (30 k events/s): ``etwtools events --all`` and the library
use ``columnar.py``, which gives the same values in bulk; tests compare the two on the whole corpus.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import uuid
from typing import Any

import numpy as np
import polars as pl

from ..diagnostics import SkipReport
from ..schema import ColumnTypes
from ..units import Progress
from .guids import (
    EVENTTRACE_HEADER,
    IMAGE_KERNEL,
    KERNEL_NETWORK,
    KERNEL_TRACE_CONTROL,
    NDIS_PACKETCAPTURE,
    PKTMON,
    PROCESS_KERNEL,
    SYSTEMCONFIG_KERNEL,
    TCPIP,
    TCPIP_KERNEL,
    THREAD_KERNEL,
    UDPIP_KERNEL,
)
from .kernel import (
    NET_EXTRAS,
    NIC_OPCODE,
    PROCESS_EVENTS,
    SERVICES_OPCODE,
    decode_kernel_net,
    parse_nic,
    parse_process,
    parse_service,
    sid_text,
)
from .kernel_network import decode_kernel_network
from .pointers import pattern_for_pointer_size
from .records import EVENT_HEADER32, EVENT_HEADER64, RecordBatch
from .structs import HEADER_KINDS, KERNEL_KINDS

#: Header columns of every event table (then the event's own fields).
HEADER: ColumnTypes = {
    "time": pl.Datetime("ns", "UTC"),
    "provider": pl.Utf8,
    "event_id": pl.Int32,
    "opcode": pl.Int32,
    "version": pl.Int32,
    "pid": pl.Int64,
    "tid": pl.Int64,
    "record": pl.Int64,
}
ALL_EVENTS: ColumnTypes = {**HEADER, "decoder": pl.Utf8, "fields": pl.Utf8}

_NAMES = {
    EVENTTRACE_HEADER: "EventTrace",
    PROCESS_KERNEL: "Process",
    THREAD_KERNEL: "Thread",
    TCPIP_KERNEL: "TcpIp",
    UDPIP_KERNEL: "UdpIp",
    SYSTEMCONFIG_KERNEL: "SystemConfig",
    IMAGE_KERNEL: "Image",
    KERNEL_NETWORK: "Microsoft-Windows-Kernel-Network",
    TCPIP: "Microsoft-Windows-TCPIP",
    NDIS_PACKETCAPTURE: "Microsoft-Windows-NDIS-PacketCapture",
    PKTMON: "Microsoft-Windows-PktMon",
    KERNEL_TRACE_CONTROL: "KernelTraceControl",
}
#: Kernel group (hook id >> 8) names, as geoffchappell.com's hook id table and the MOF classes name them.
KERNEL_GROUP_NAMES = {
    0x00: "EventTrace",
    0x01: "DiskIo",
    0x02: "PageFault",
    0x03: "Process",
    0x04: "FileIo",
    0x05: "Thread",
    0x06: "TcpIp",
    0x07: "Job",
    0x08: "UdpIp",
    0x09: "Registry",
    0x0A: "DbgPrint",
    0x0B: "SystemConfig",
    0x0C: "Spare1",
    0x0D: "Wnf",
    0x0E: "Pool",
    0x0F: "PerfInfo",
    0x10: "Heap",
    0x11: "Object",
    0x12: "Power",
    0x13: "Modbound",
    0x14: "Image",
    0x15: "Dpc",
    0x16: "Gdi",
    0x17: "CritSec",
    0x18: "StackWalk",
    0x19: "Ums",
    0x1A: "ALPC",
    0x1B: "SplitIo",
    0x1C: "ThreadPool",
    0x1D: "Hypervisor",
    0x1E: "HypervisorX",
}
_KERNEL_HEADERS = frozenset(t for kind in KERNEL_KINDS for t in HEADER_KINDS[kind])
_NET_FIELDS = [
    "event",
    "protocol",
    "ip_version",
    "pid",
    "size",
    "saddr",
    "sport",
    "daddr",
    "dport",
    "connid",
    "seqnum",
    *NET_EXTRAS,
]


class _EtlParserSchemas:
    """Lazy access to etl-parser's schema tables (importing its 800 provider modules takes ~2 s)."""

    def __init__(self) -> None:
        self._etw: dict = {}
        self._mof: dict = {}
        self._loaded = False
        self._names: dict[uuid.UUID, str] = {}

    def _load(self) -> None:
        if self._loaded:
            return
        import etl.parsers.etw  # registers every generated provider module in __etw_factory__
        import etl.parsers.kernel  # noqa: F401
        from etl.parsers.etw.core import __etw_factory__
        from etl.parsers.kernel.core import __mof_factory__

        self._etw = {}
        self._loaded = True
        for g, by_id in __etw_factory__.items():
            key = _guid_of(g)
            self._etw[key] = by_id
            any_cls = next(iter(next(iter(by_id.values())).values()))
            doc = (sys.modules[any_cls.__module__].__doc__ or "").strip().splitlines()
            if doc:
                self._names[key] = doc[0].strip()
        self._mof = {}
        for group, by_version in __mof_factory__.items():
            self._mof[int(group)] = by_version

    def provider_name(self, guid: uuid.UUID) -> str | None:
        self._load()
        return self._names.get(guid)

    def manifest(self, guid: uuid.UUID, event_id: int, version: int):
        self._load()
        return self._etw.get(guid, {}).get(event_id, {}).get(version)

    def kernel(self, group: int, version: int, opcode: int):
        self._load()
        return self._mof.get(group, {}).get(version, {}).get(opcode)


def _guid_of(g: Any) -> uuid.UUID:
    """uuid.UUID of an etl-parser ``Guid`` (data1, data2, data3, data4 list)."""
    return uuid.UUID(
        fields=(g.data1, g.data2, g.data3, g.data4[0], g.data4[1], int.from_bytes(bytes(g.data4[2:8]), "big"))
    )


SCHEMAS = _EtlParserSchemas()


def _parse_exact(pattern, payload: bytes) -> Any | None:
    """The construct parse of ``payload`` if it consumes exactly every byte, else None."""
    stream = io.BytesIO(payload)
    try:
        value = pattern.parse_stream(stream)
    except Exception:  # noqa: BLE001  (construct raises many kinds; a failed schema means "not right")
        return None
    return value if stream.tell() == len(payload) else None


def jsonable(value: Any) -> Any:
    """Plain JSON values of a construct parse result (strings, SIDs and GUIDs as text, bytes as hex)."""
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in ("WString", "CString") and "string" in value:
            raw = bytes(value["string"])
            return (
                raw[:-2].decode("utf-16-le", "replace")
                if kind == "WString"
                else raw[:-1].decode("cp1252", "replace")
            )
        if kind == "Guid" and "inner" in value:
            inner = value["inner"]
            return str(
                uuid.UUID(
                    fields=(
                        inner["data1"],
                        inner["data2"],
                        inner["data3"],
                        inner["data4"][0],
                        inner["data4"][1],
                        int.from_bytes(bytes(inner["data4"][2:]), "big"),
                    )
                )
            )
        if "SubAuthorityCount" in value and "IdentifierAuthority" in value:
            raw = bytes([value.get("Revision", 1), value["SubAuthorityCount"], *value["IdentifierAuthority"]])
            raw += b"".join(int(x).to_bytes(4, "little") for x in value["SubAuthority"])
            return sid_text(raw)
        return {k: jsonable(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        if len(value) >= 16 and all(isinstance(x, int) and 0 <= x < 256 for x in value):  # Byte[n] blobs
            return bytes(value).hex()
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value if not isinstance(value, str) else str(value)
    return str(value)


def describe_batch(batch: RecordBatch, skipped: SkipReport) -> list[dict]:
    """One dict per record of the batch: header columns plus decoder name and JSON fields."""
    own: dict[int, dict] = {}
    for frame in decode_kernel_net(batch, skipped) + decode_kernel_network(batch, skipped):
        for row in frame.select(["record", *[c for c in _NET_FIELDS if c in frame.columns]]).to_dicts():
            record = row.pop("record")
            own[record] = {k: v for k, v in row.items() if v is not None}
    out = []
    for i in range(len(batch)):
        record = int(batch.record[i])
        pidx = int(batch.provider[i])
        guid = batch.guids[pidx] if 0 <= pidx < len(batch.guids) else None
        htype, group = int(batch.htype[i]), int(batch.group[i])
        opcode, version, event_id = int(batch.opcode[i]), int(batch.version[i]), int(batch.event_id[i])
        decoder, fields = "hex", None
        if record in own:
            decoder, fields = "etwtools", own[record]
        else:
            payload = batch.payload(i)
            fields, decoder = _own_slow(guid, opcode, version, int(batch.pointer_size[i]), payload)
            if fields is None:
                pattern = None
                if htype in (EVENT_HEADER32, EVENT_HEADER64) and guid is not None:
                    cls = SCHEMAS.manifest(guid, event_id, version)
                    if cls is not None:
                        pattern = pattern_for_pointer_size(
                            cls.pattern, guid, event_id, version, int(batch.pointer_size[i])
                        )
                elif htype in _KERNEL_HEADERS and group >= 0 and int(batch.pointer_size[i]) == 8:
                    cls = SCHEMAS.kernel(group, version, opcode)
                    pattern = cls.pattern if cls is not None else None
                parsed = _parse_exact(pattern, payload) if pattern is not None else None
                if parsed is not None:
                    decoder, fields = "etl-parser", jsonable(parsed)
                else:
                    decoder, fields = "hex", {"payload": payload.hex()}
        if group >= 0 and htype in _KERNEL_HEADERS:
            name = KERNEL_GROUP_NAMES.get(group, f"kernel group {group:#04x}")
        elif guid is not None:
            name = _NAMES.get(guid) or SCHEMAS.provider_name(guid) or str(guid)
        else:
            name = None
        pid, tid = int(batch.pid[i]), int(batch.tid[i])
        out.append(
            {
                "time": int(batch.time[i]),
                "provider": name,
                "event_id": event_id if htype in (EVENT_HEADER32, EVENT_HEADER64) else None,
                "opcode": opcode,
                "version": version,
                "pid": None if pid == 0xFFFFFFFF else pid,
                "tid": None if tid == 0xFFFFFFFF else tid,
                "record": record,
                "decoder": decoder,
                "fields": json.dumps(fields, ensure_ascii=False, default=str),
            }
        )
    return out


def _own_slow(guid, opcode: int, version: int, pointer_size: int, payload: bytes) -> tuple[dict | None, str]:
    """etwtools' own record-by-record decoders (Process, SystemConfig NIC/Services)."""
    try:
        if guid == PROCESS_KERNEL and opcode in PROCESS_EVENTS and version <= 5:
            fields = parse_process(payload, version, pointer_size)
            fields["event"] = PROCESS_EVENTS[opcode]
            return fields, "etwtools"
        if guid == SYSTEMCONFIG_KERNEL and opcode == NIC_OPCODE:
            nic = parse_nic(payload, version)
            return (nic, "etwtools") if nic is not None else (None, "hex")
        if guid == SYSTEMCONFIG_KERNEL and opcode == SERVICES_OPCODE:
            return parse_service(payload, version), "etwtools"
    except (ValueError, IndexError, UnicodeDecodeError, struct.error):
        return None, "hex"
    return None, "hex"


def reference_all_events(path: str | os.PathLike, *, progress: Progress | None = None) -> pl.DataFrame:
    """Every record of an ETL file (ALL_EVENTS schema), in file order, fields as a JSON string, decoded
    record by record (the reference the columnar decoder is tested against)."""
    from .container import EtlFile

    rows: list[dict] = []
    with EtlFile(path, progress=progress) as etl:
        for batch in etl.batches():
            rows.extend(describe_batch(batch, etl.skipped))
    return frame_of(rows)


def frame_of(rows: list[dict]) -> pl.DataFrame:
    """The ALL_EVENTS frame of :func:`describe_batch` rows."""
    schema: ColumnTypes = {**ALL_EVENTS, "time": pl.Int64}
    df = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return df.with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
