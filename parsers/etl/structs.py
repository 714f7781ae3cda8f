"""Construct definitions of the ETL (Event Trace Log) on-disk structures, parameterized by pointer size.

Sources: FORMATS.md (PerfView TraceEvent, geoffchappell.com ETW pages, MS Learn evntrace.h/evntcons.h),
checked against the real files of the corpus (see tests/test_etl_container.py). Every struct parses
AND builds: constant fields (header type, marker flags) have defaults, so
``s.system_header.build(dict(size=..., opcode=10, group=6, ...))`` gives valid bytes; the builders at the
end (:func:`build_record`, :func:`build_buffer`, :func:`build_logfile_header_record`, :func:`build_etl`)
write whole records, buffers and files for tests that need inputs no public file has.

Layout facts (verified on the corpus):

- A file is a sequence of buffers, each starting with a 0x48-byte ``WMI_BUFFER_HEADER``. A buffer
  occupies ``BufferSize`` bytes of the file. Records run from 0x48 up to ``FilledBytes``, which
  ends exactly at the last (8-aligned) record in every corpus buffer; unused space is 0xFF, and a
  0xFFFFFFFF marker where a record would start also ends the records. ``SavedOffset`` is NOT the
  end: header buffers have it 0 (tx/*.etl) or short of ``FilledBytes`` (ebpf, sonde, pktmon).
- The header buffer (BufferType 4) is plain; every other corpus buffer has BufferType 0. Relogged
  files (PerfView) have a 0x200/0x400-byte header buffer, not the logfile header's BufferSize.
- Compressed buffers (BufferFlag 0x40) hold MS-XCA plain LZ77 ("Xpress") data from 0x48 to
  ``BufferSize`` (any byte count: buffers of compressed files are not aligned in the file); it
  decompresses to ``FilledBytes - 0x48`` bytes, the records of the buffer.
- Records are 8-byte aligned. The marker (first u32) carries the header type in byte 2 and the marker
  flags 0xC0 in byte 3. SYSTEM/COMPACT/PERFINFO headers keep the record size at offset 4 (u16);
  every other header keeps it at offset 0.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from construct import (
    Adapter,
    Bytes,
    Construct,
    CString,
    Default,
    Int8ul,
    Int16ul,
    Int32sl,
    Int32ul,
    Int64ul,
    Padding,
    Struct,
)

from .records import (
    COMPACT32,
    COMPACT64,
    EVENT_HEADER32,
    EVENT_HEADER64,
    FULL_HEADER32,
    FULL_HEADER64,
    INSTANCE32,
    INSTANCE64,
    PERFINFO32,
    PERFINFO64,
    SYSTEM32,
    SYSTEM64,
)

# Declarative tables below keep their aligned columns and comments: the formatter stops here.
# fmt: off
BUFFER_HEADER_SIZE = 0x48
#: Marker flags (byte 3 of every record): TRACE_HEADER_FLAG | TRACE_HEADER_EVENT_TRACE.
MARKER_FLAGS = 0xC0
#: A MESSAGE (WPP) record has marker flags 0x90 and no header-type byte of its own.
MESSAGE_FLAGS = 0x90
END_MARKER = 0xFFFFFFFF

# BufferFlag bits (WMI_BUFFER_HEADER @0x34)
FLAG_FLUSH_MARKER = 0x0001
FLAG_EVENTS_LOST = 0x0002
FLAG_BUFFER_LOST = 0x0004
FLAG_RTBACKUP_CORRUPT = 0x0008
FLAG_RTBACKUP = 0x0010
FLAG_PROC_INDEX = 0x0020
FLAG_COMPRESSED = 0x0040

# BufferType (WMI_BUFFER_HEADER @0x36)
BUFFER_GENERIC, BUFFER_RUNDOWN, BUFFER_CTX_SWAP, BUFFER_REFTIME = 0, 1, 2, 3
BUFFER_HEADER, BUFFER_BATCHED, BUFFER_EMPTY_MARKER, BUFFER_DBG_INFO = 4, 5, 6, 7

# EVENT_HEADER.Flags (@4)
EH_EXTENDED_INFO = 0x0001
EH_PRIVATE_SESSION = 0x0002
EH_STRING_ONLY = 0x0004
EH_TRACE_MESSAGE = 0x0008
EH_NO_CPUTIME = 0x0010
EH_32_BIT_HEADER = 0x0020
EH_64_BIT_HEADER = 0x0040
EH_CLASSIC_HEADER = 0x0100

# EVENT_HEADER_EXTENDED_DATA_ITEM.ExtType
EXT_RELATED_ACTIVITYID, EXT_SID, EXT_TS_ID, EXT_INSTANCE_INFO = 1, 2, 3, 4
EXT_STACK_TRACE32, EXT_STACK_TRACE64, EXT_PEBS_INDEX, EXT_PMC_COUNTERS = 5, 6, 7, 8
EXT_PSM_KEY, EXT_EVENT_KEY, EXT_EVENT_SCHEMA_TL, EXT_PROV_TRAITS = 9, 10, 11, 12
EXT_PROCESS_START_KEY = 13
#: Linkage bit of an extended item: another item follows.
EXT_LINKAGE_MORE = 0x0001

# TRACE_LOGFILE_HEADER.ReservedFlags = clock type
CLOCK_QPC, CLOCK_SYSTEM_TIME, CLOCK_CPU_CYCLES = 1, 2, 3

#: The record header kinds (``EtlStructs.<kind>_header``) and their header types, 32-bit then 64-bit
#: payload pointers: the one list of which header type is which struct.
HEADER_KINDS = {
    "system":   (SYSTEM32, SYSTEM64),
    "compact":  (COMPACT32, COMPACT64),
    "perfinfo": (PERFINFO32, PERFINFO64),
    "full":     (FULL_HEADER32, FULL_HEADER64),
    "instance": (INSTANCE32, INSTANCE64),
    "event":    (EVENT_HEADER32, EVENT_HEADER64),
}
#: The kinds of the kernel's own events (a group/opcode hook id instead of a provider GUID).
KERNEL_KINDS = ("system", "compact", "perfinfo")
#: Header type -> its kind (a key of HEADER_KINDS).
KIND_OF = {t: kind for kind, types in HEADER_KINDS.items() for t in types}
#: Header type -> pointer size of the payload.
POINTER_SIZES = {t: size for types in HEADER_KINDS.values() for t, size in zip(types, (4, 8))}


class GuidAdapter(Adapter):
    """A GUID as stored by Windows: first three fields little-endian (``uuid.UUID(bytes_le=...)``)."""

    def _decode(self, obj, context, path):
        return uuid.UUID(bytes_le=bytes(obj))

    def _encode(self, obj, context, path):
        return uuid.UUID(str(obj)).bytes_le


Guid = GuidAdapter(Bytes(16))


class Utf16Fixed(Adapter):
    """A fixed-size, NUL-padded UTF-16 field; undecodable code units become U+FFFD instead of failing."""

    def _decode(self, obj, context, path):
        raw = bytes(obj)
        for i in range(0, len(raw) - 1, 2):
            if raw[i:i + 2] == b"\0\0":
                raw = raw[:i]
                break
        return raw.decode("utf-16-le", errors="replace")

    def _encode(self, obj, context, path):
        raw = str(obj).encode("utf-16-le")
        if len(raw) > self.subcon.sizeof():
            raise ValueError(f"{obj!r} does not fit {self.subcon.sizeof()} bytes")
        return raw.ljust(self.subcon.sizeof(), b"\0")
NULL_GUID = uuid.UUID(int=0)

#: WMI_BUFFER_HEADER, 0x48 bytes (pointer-size independent in the file format).
buffer_header = Struct(
    "buffer_size" / Int32ul,                    # 0x00 bytes of the file this buffer occupies
    "saved_offset" / Default(Int32ul, 0),       # 0x04
    "current_offset" / Default(Int32ul, 0),     # 0x08
    "reference_count" / Default(Int32ul, 0),    # 0x0C
    "timestamp" / Default(Int64ul, 0),          # 0x10 raw clock value when the buffer was flushed
    "sequence_number" / Default(Int64ul, 0),    # 0x18
    "clock" / Default(Int64ul, 0),              # 0x20 clock type / frequency bits
    "processor_index" / Default(Int8ul, 0),     # 0x28 ETW_BUFFER_CONTEXT.ProcessorNumber
    "alignment" / Default(Int8ul, 0),           # 0x29 ETW_BUFFER_CONTEXT.Alignment
    "logger_id" / Default(Int16ul, 0),          # 0x2A ETW_BUFFER_CONTEXT.LoggerId
    "state" / Default(Int32ul, 0),              # 0x2C
    "filled_bytes" / Int32ul,                   # 0x30 end of the records (incl. this header; uncompressed)
    "buffer_flag" / Default(Int16ul, 0),        # 0x34 FLAG_*
    "buffer_type" / Default(Int16ul, BUFFER_GENERIC),  # 0x36 BUFFER_*
    "reserved" / Default(Bytes(16), bytes(16)),  # 0x38 reference time / list entry (varies)
)                                               # 0x48
assert buffer_header.sizeof() == BUFFER_HEADER_SIZE

#: The first u32 of every record.
marker = Struct(
    "low" / Int16ul,                            # 0x00 size (EVENT/FULL/INSTANCE) or version (SYSTEM family)
    "header_type" / Int8ul,                     # 0x02
    "flags" / Int8ul,                           # 0x03 MARKER_FLAGS
)

systemtime = Struct(
    "year" / Default(Int16ul, 0),               # 0x00
    "month" / Default(Int16ul, 0),              # 0x02
    "day_of_week" / Default(Int16ul, 0),        # 0x04
    "day" / Default(Int16ul, 0),                # 0x06
    "hour" / Default(Int16ul, 0),               # 0x08
    "minute" / Default(Int16ul, 0),             # 0x0A
    "second" / Default(Int16ul, 0),             # 0x0C
    "milliseconds" / Default(Int16ul, 0),       # 0x0E
)                                               # 0x10

#: TIME_ZONE_INFORMATION, 0xAC bytes.
timezone = Struct(
    "bias" / Default(Int32sl, 0),               # 0x00 minutes, UTC = local + bias
    "standard_name" / Default(Utf16Fixed(Bytes(64)), ""),  # 0x04
    "standard_date" / Default(systemtime, {}),  # 0x44
    "standard_bias" / Default(Int32sl, 0),      # 0x54
    "daylight_name" / Default(Utf16Fixed(Bytes(64)), ""),  # 0x58
    "daylight_date" / Default(systemtime, {}),  # 0x98
    "daylight_bias" / Default(Int32sl, 0),      # 0xA8
)                                               # 0xAC
assert timezone.sizeof() == 0xAC

#: EVENT_HEADER_EXTENDED_DATA_ITEM as stored after an EVENT_HEADER (when EH_EXTENDED_INFO is set).
ext_item_header = Struct(
    "size" / Int16ul,                           # 0x00 whole item incl. this header, multiple of 8
    "ext_type" / Int16ul,                       # 0x02 EXT_*
    "linkage" / Default(Int16ul, 0),            # 0x04 bit 0: another item follows
    "data_size" / Int16ul,                      # 0x06 bytes of data used (<= size - 8)
)                                               # 0x08, data follows


@dataclass(frozen=True)
class EtlStructs:
    """The record-level structs of one pointer size (4 or 8)."""

    pointer_size: int
    pointer: Construct
    system_header: Struct
    compact_header: Struct
    perfinfo_header: Struct
    full_header: Struct
    instance_header: Struct
    event_header: Struct
    trace_logfile_header: Struct
    trace_logfile_header_fixed: Struct
    logfile_header_size: int

    def header_for(self, htype: int) -> Struct:
        """The header struct of a header type (either pointer size)."""
        return getattr(self, f"{KIND_OF[htype]}_header")


@functools.cache
def structs_for(pointer_size: int) -> EtlStructs:
    """The structs for 32-bit (4) or 64-bit (8) payload pointers; built once per size."""
    if pointer_size not in (4, 8):
        raise ValueError(f"pointer size must be 4 or 8, not {pointer_size}")
    b64 = pointer_size == 8
    pointer = Int64ul if b64 else Int32ul

    def htype(kind: str) -> Construct:
        return "header_type" / Default(Int8ul, HEADER_KINDS[kind][b64])

    marker_flags = "marker_flags" / Default(Int8ul, MARKER_FLAGS)

    # SYSTEM_TRACE_HEADER (types 1/2), 0x20 bytes.
    system_header = Struct(
        "version" / Default(Int16ul, 2),        # 0x00 event version (plus 0x8000/0x0700 extension bits)
        htype("system"),                        # 0x02
        marker_flags,                           # 0x03
        "size" / Int16ul,                       # 0x04 record size incl. header
        "opcode" / Int8ul,                      # 0x06 "Type"
        "group" / Int8ul,                       # 0x07 hook id = group << 8 | opcode
        "thread_id" / Default(Int32ul, 0),      # 0x08
        "process_id" / Default(Int32ul, 0),     # 0x0C
        "timestamp" / Default(Int64ul, 0),      # 0x10 raw clock value
        "kernel_time" / Default(Int32ul, 0),    # 0x18
        "user_time" / Default(Int32ul, 0),      # 0x1C
    )                                           # 0x20
    # Compact SYSTEM_TRACE_HEADER (types 3/4), 0x18 bytes.
    compact_header = Struct(
        "version" / Default(Int16ul, 2),        # 0x00
        htype("compact"),                       # 0x02
        marker_flags,                           # 0x03
        "size" / Int16ul,                       # 0x04
        "opcode" / Int8ul,                      # 0x06
        "group" / Int8ul,                       # 0x07
        "thread_id" / Default(Int32ul, 0),      # 0x08
        "process_id" / Default(Int32ul, 0),     # 0x0C
        "timestamp" / Default(Int64ul, 0),      # 0x10
    )                                           # 0x18
    # PERFINFO_TRACE_HEADER (types 0x10/0x11), 0x10 bytes: no thread or process id.
    perfinfo_header = Struct(
        "version" / Default(Int16ul, 2),        # 0x00
        htype("perfinfo"),                      # 0x02
        marker_flags,                           # 0x03
        "size" / Int16ul,                       # 0x04
        "opcode" / Int8ul,                      # 0x06
        "group" / Int8ul,                       # 0x07
        "timestamp" / Default(Int64ul, 0),      # 0x08
    )                                           # 0x10
    # EVENT_TRACE_HEADER (FULL_HEADER, types 0x0A/0x14), 0x30 bytes: classic MOF providers.
    full_header = Struct(
        "size" / Int16ul,                       # 0x00 record size incl. header
        htype("full"),                          # 0x02
        marker_flags,                           # 0x03
        "opcode" / Int8ul,                      # 0x04 Class.Type
        "level" / Default(Int8ul, 0),           # 0x05 Class.Level
        "version" / Default(Int16ul, 0),        # 0x06 Class.Version
        "thread_id" / Default(Int32ul, 0),      # 0x08
        "process_id" / Default(Int32ul, 0),     # 0x0C
        "timestamp" / Default(Int64ul, 0),      # 0x10
        "guid" / Guid,                          # 0x18 event class GUID
        "kernel_time" / Default(Int32ul, 0),    # 0x28
        "user_time" / Default(Int32ul, 0),      # 0x2C
    )                                           # 0x30
    # EVENT_INSTANCE_GUID_HEADER (types 0x0B/0x15), 0x48 bytes.
    instance_header = Struct(
        "size" / Int16ul,                       # 0x00
        htype("instance"),                      # 0x02
        marker_flags,                           # 0x03
        "opcode" / Int8ul,                      # 0x04
        "level" / Default(Int8ul, 0),           # 0x05
        "version" / Default(Int16ul, 0),        # 0x06
        "thread_id" / Default(Int32ul, 0),      # 0x08
        "process_id" / Default(Int32ul, 0),     # 0x0C
        "timestamp" / Default(Int64ul, 0),      # 0x10
        "guid" / Guid,                          # 0x18
        "kernel_time" / Default(Int32ul, 0),    # 0x28
        "user_time" / Default(Int32ul, 0),      # 0x2C
        "instance_id" / Default(Int32ul, 0),    # 0x30
        "parent_instance_id" / Default(Int32ul, 0),  # 0x34
        "parent_guid" / Default(Guid, NULL_GUID),    # 0x38
    )                                           # 0x48
    # EVENT_HEADER (types 0x12/0x13), 0x50 bytes: manifest and TraceLogging providers.
    event_header = Struct(
        "size" / Int16ul,                       # 0x00 record size incl. header and extended items
        htype("event"),                         # 0x02
        marker_flags,                           # 0x03
        "flags" / Default(Int16ul, 0),          # 0x04 EH_* (EH_EXTENDED_INFO: items follow the header)
        "event_property" / Default(Int16ul, 0),  # 0x06
        "thread_id" / Default(Int32ul, 0),      # 0x08
        "process_id" / Default(Int32ul, 0),     # 0x0C
        "timestamp" / Default(Int64ul, 0),      # 0x10
        "provider_id" / Guid,                   # 0x18
        "id" / Int16ul,                         # 0x28 EventDescriptor.Id
        "version" / Default(Int8ul, 0),         # 0x2A
        "channel" / Default(Int8ul, 0),         # 0x2B
        "level" / Default(Int8ul, 4),           # 0x2C
        "opcode" / Default(Int8ul, 0),          # 0x2D
        "task" / Default(Int16ul, 0),           # 0x2E
        "keyword" / Default(Int64ul, 0),        # 0x30
        "processor_time" / Default(Int64ul, 0),  # 0x38 kernel/user time
        "activity_id" / Default(Guid, NULL_GUID),  # 0x40
    )                                           # 0x50
    # TRACE_LOGFILE_HEADER: payload of the first record (group 0, opcode 0). Offsets are 64-bit / 32-bit.
    tz_off = 0x38 + 2 * pointer_size
    logfile_fields = [
        "buffer_size" / Int32ul,                # 0x00
        "version" / Default(Int32ul, 0x00020206),  # 0x04 major, minor, sub, subminor bytes
        "provider_version" / Default(Int32ul, 9200),  # 0x08 OS build number
        "number_of_processors" / Default(Int32ul, 1),  # 0x0C
        "end_time" / Default(Int64ul, 0),       # 0x10 FILETIME
        "timer_resolution" / Default(Int32ul, 156250),  # 0x18
        "maximum_file_size" / Default(Int32ul, 0),  # 0x1C MB
        "log_file_mode" / Default(Int32ul, 0x00000001),  # 0x20 (0x04000000: compressed buffers)
        "buffers_written" / Int32ul,            # 0x24
        "start_buffers" / Default(Int32ul, 1),  # 0x28
        "pointer_size" / Default(Int32ul, pointer_size),  # 0x2C
        "events_lost" / Default(Int32ul, 0),    # 0x30
        "cpu_speed_mhz" / Default(Int32ul, 0),  # 0x34
        "logger_name_ptr" / Default(pointer, 0),  # 0x38
        "logfile_name_ptr" / Default(pointer, 0),  # 0x40 / 0x3C
        "timezone" / Default(timezone, {}),     # 0x48 / 0x40, 0xAC bytes
        Padding(4),                             # 0xF4 / 0xEC  alignment of the u64 that follows
        "boot_time" / Default(Int64ul, 0),      # 0xF8 / 0xF0 FILETIME
        "perf_freq" / Default(Int64ul, 10_000_000),  # 0x100 / 0xF8 QPC frequency (Hz)
        "start_time" / Int64ul,                 # 0x108 / 0x100 FILETIME (UTC) of the header record
        "clock_type" / Default(Int32ul, CLOCK_QPC),  # 0x110 / 0x108 ReservedFlags
        "buffers_lost" / Default(Int32ul, 0),   # 0x114 / 0x10C
    ]
    trace_logfile_header_fixed = Struct(*logfile_fields)   # the part before the two strings
    trace_logfile_header = Struct(
        *logfile_fields,
        "logger_name" / Default(CString("utf_16_le"), ""),   # 0x118 / 0x110
        "logfile_name" / Default(CString("utf_16_le"), ""),  # after logger_name
    )
    fixed = tz_off + 0xAC + 4 + 8 * 3 + 4 + 4
    assert fixed == (0x118 if b64 else 0x110) == trace_logfile_header_fixed.sizeof()
    return EtlStructs(pointer_size, pointer, system_header, compact_header, perfinfo_header, full_header,
                      instance_header, event_header, trace_logfile_header, trace_logfile_header_fixed,
                      fixed)


# ---------------------------------------------------------------- builders (tests, synthetic files)

def align8(n: int) -> int:
    """``n`` rounded up to a multiple of 8."""
    return (n + 7) & ~7


def build_record(header: Struct, payload: bytes = b"", ext_items: Iterable[tuple[int, bytes]] = (),
                 **fields) -> bytes:
    """One record: ``header`` built from ``fields`` (``size`` computed), extended items, payload, padded to 8.

    ``ext_items`` (EVENT_HEADER only) are (ext_type, data) pairs; EH_EXTENDED_INFO is set for them.
    """
    items = b""
    ext_items = list(ext_items)
    for i, (ext_type, data) in enumerate(ext_items):
        size = 8 + align8(len(data))
        more = EXT_LINKAGE_MORE if i + 1 < len(ext_items) else 0
        items += ext_item_header.build({"size": size, "ext_type": ext_type, "linkage": more,
                                        "data_size": len(data)})
        items += data.ljust(size - 8, b"\0")
    if ext_items:
        fields["flags"] = fields.get("flags", 0) | EH_EXTENDED_INFO
    size = header.sizeof() + len(items) + len(payload)
    if size > 0xFFFF:
        raise ValueError(f"record of {size} bytes does not fit the u16 size field")
    raw = header.build(dict(fields, size=size)) + items + payload
    return raw.ljust(align8(len(raw)), b"\0")


def build_buffer(records: Iterable[bytes], buffer_size: int, **fields) -> bytes:
    """One uncompressed buffer of ``buffer_size`` bytes holding ``records`` (each already 8-aligned)."""
    body = b"".join(records)
    filled = BUFFER_HEADER_SIZE + len(body)
    if filled > buffer_size:
        raise ValueError(f"{len(body)} bytes of records do not fit a buffer of {buffer_size} bytes")
    fields.setdefault("saved_offset", filled)
    head = buffer_header.build(dict(fields, buffer_size=buffer_size, filled_bytes=filled))
    return (head + body).ljust(buffer_size, b"\xff")


def build_logfile_header_record(pointer_size: int = 8, *, timestamp: int = 0, **fields) -> bytes:
    """The first record of a file: a SYSTEM header (group 0, opcode 0) with a TRACE_LOGFILE_HEADER payload.

    ``fields`` go to the TRACE_LOGFILE_HEADER (``buffer_size``, ``buffers_written`` and ``start_time``
    are required); ``timestamp`` is the raw clock value that ``start_time`` anchors.
    """
    s = structs_for(pointer_size)
    payload = s.trace_logfile_header.build(fields)
    return build_record(s.system_header, payload, opcode=0, group=0, timestamp=timestamp)


def build_etl(records: Iterable[bytes], *, pointer_size: int = 8, buffer_size: int = 0x10000,
              start_time: int, timestamp: int = 0, **logfile_fields) -> bytes:
    """A whole uncompressed ETL file: header buffer, then ``records`` packed into buffers of ``buffer_size``.

    ``start_time`` (FILETIME) is the UTC time of raw clock value ``timestamp``; with the default
    clock (QPC at ``perf_freq`` = 10 MHz) a record's raw timestamp counts 100 ns ticks.
    """
    capacity = buffer_size - BUFFER_HEADER_SIZE
    groups: list[list[bytes]] = [[]]
    used = 0
    for rec in records:
        if len(rec) > capacity:
            raise ValueError(f"record of {len(rec)} bytes does not fit a buffer of {buffer_size} bytes")
        if used + len(rec) > capacity:
            groups.append([])
            used = 0
        groups[-1].append(rec)
        used += len(rec)
    if not groups[-1]:
        groups.pop()
    head = build_logfile_header_record(pointer_size, timestamp=timestamp, buffer_size=buffer_size,
                                       buffers_written=1 + len(groups), start_time=start_time,
                                       **logfile_fields)
    out = [build_buffer([head], buffer_size, buffer_type=BUFFER_HEADER, buffer_flag=FLAG_FLUSH_MARKER)]
    for i, group in enumerate(groups, 1):
        out.append(build_buffer(group, buffer_size, sequence_number=i))
    return b"".join(out)


def _offset_of(struct: Struct, name: str) -> int:
    """Byte offset of a field of a fixed-size struct."""
    offset = 0
    for sub in struct.subcons:
        if sub.name == name:
            return offset
        offset += sub.sizeof()
    raise KeyError(name)


#: Header size of each header type (bytes before payload / extended items), before the 0x8000 extension:
#: the size of its header struct, derived once from the definitions above (the container's walk, its C
#: twin and the columnar decoder all take it from here; tests/test_etl_container.py checks the C copy).
HEADER_SIZES = {t: structs_for(p).header_for(t).sizeof() for t, p in POINTER_SIZES.items()}
#: Header types whose record size is the u16 at offset 4 (the "packet"); the others have it at offset 0.
SIZE_AT_4 = frozenset(t for t, p in POINTER_SIZES.items() if _offset_of(structs_for(p).header_for(t), "size") == 4)


__all__ = [
    "HEADER_KINDS",
    "HEADER_SIZES",
    "KERNEL_KINDS",
    "KIND_OF",
    "POINTER_SIZES",
    "SIZE_AT_4",
    "EtlStructs",
    "Guid",
    "align8",
    "buffer_header",
    "build_buffer",
    "build_etl",
    "build_logfile_header_record",
    "build_record",
    "ext_item_header",
    "marker",
    "structs_for",
    "systemtime",
    "timezone",
]
