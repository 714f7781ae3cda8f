"""Hand-made hostile inputs: small files shaped to make a reader quadratic, amplify memory, or lose data.

Every file is built here with the project's own writers (parsers/etl/build.py, the pcap/pcapng/NetMon
writers) or as plain text, then damaged in the one way its shape needs; no public file has these
shapes. Each builder returns a :class:`Shape`: the files, the commands that read them, and what must
survive (the intact parts). tests/test_hostile_inputs.py runs them under an address-space cap and a
time limit; benchmarks/bench_hostile.py measures seconds and peak RSS per MB on them.
"""

from __future__ import annotations

import ipaddress
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.structs import (
    BUFFER_HEADER_SIZE,
    FLAG_COMPRESSED,
    buffer_header,
    build_record,
)
from etwtools.parsers.netmon import write_netmon
from etwtools.parsers.packets import Interface, Packet
from etwtools.parsers.pcap import write_pcap
from etwtools.parsers.pcapng import write_pcapng

START = datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)
START_NS = int(START.timestamp()) * 1_000_000_000
SERVER, CLIENT = "10.0.0.1", "10.0.0.66"


@dataclass
class Shape:
    """Hostile files, the CLI commands that read them (argument lists, ``{out}`` for an output path),
    and checks of what survives: (command index, text that must be in its stdout+stderr)."""

    name: str
    files: list[Path]
    commands: list[list[str]]
    expect: list[tuple[int, str]] = field(default_factory=list)
    exit_codes: dict[int, int] = field(default_factory=dict)  # command index -> required exit code


def frame(src: str, dst: str, sport: int, dport: int, flags: int = 0x02, payload: bytes = b"") -> bytes:
    """Ethernet II + IPv4 + TCP (built here)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        1,
        0,
        64,
        6,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return b"\x00\x1c\xc4\x11\x11\x11\x00\x00\x0c\x07\xac\x15\x08\x00" + ip + tcp


def syn_packets(n: int, step_ms: int = 1) -> list[Packet]:
    """``n`` SYNs from distinct client ports to the server's port 80, ``step_ms`` apart."""
    return [
        Packet(START_NS + i * step_ms * 1_000_000, frame(CLIENT, SERVER, 1024 + i % 60000, 80), 0)
        for i in range(n)
    ]


def _syn_interval(w: EtlWriter, at_s: float, length_s: float, processor: int = 0) -> None:
    w.tcpip_counters(1055, (1, 0, 0, 0, 0, 0), time=timedelta(seconds=at_s), processor=processor)
    w.tcpip_counters(1063, (1, 0, 0, 0, 0, 0), time=timedelta(seconds=at_s + length_s), processor=processor)


def _etl_commands(path: Path) -> list[list[str]]:
    p = str(path)
    return [
        ["events", "--etl", p],
        ["events", "--all", "--etl", p, "-f", "csv", "-o", "{out}.csv"],
        ["frames", "--etl", p],
        ["processes", "--etl", p],
        ["synattack", "--etl", p],
    ]


# ---------------------------------------------------------------------- ETL


def etl_record_resync(d: Path) -> Shape:
    """A 4 MB buffer of 130,000 valid records between two bad ones (the old resync walked to the end
    of the buffer from every 8-byte position: hours), and an intact buffer with a SYN-attack interval."""
    w = EtlWriter(buffer_size=4 << 20)
    _syn_interval(w, 1, 2, processor=1)
    # kernel UdpIp SendIPV4 v2 (group 0x08, opcode 10): PID, size, daddr, saddr, dport, sport, seqnum, connid
    payload = (
        struct.pack("<II", 777, 8)
        + ipaddress.IPv4Address(CLIENT).packed
        + ipaddress.IPv4Address(SERVER).packed
        + struct.pack(">HH", 53, 50000)
        + struct.pack("<IQ", 0, 0)
    )
    rec = build_record(
        w.structs.system_header,
        payload,
        version=2,
        opcode=10,
        group=0x08,
        timestamp=w.raw(timedelta(seconds=1)),
        thread_id=0,
        process_id=0,
    )
    bad = b"\x08\x00\x01\x77" + bytes(4)  # marker flags 0x77: no record type
    w.raw_record(bad)
    n = ((4 << 20) - BUFFER_HEADER_SIZE - 64) // len(rec)
    for _ in range(n):
        w.raw_record(rec)
    w.raw_record(bad)
    path = w.write(d / "record_resync.etl")
    return Shape(
        "etl_record_resync",
        [path],
        _etl_commands(path),
        expect=[
            (0, f"{n:,} events"),
            (0, "skipped 2 record(s) in damaged buffers: 16 byte(s) at "),
            (4, "1 SYN-attack resistance interval"),
        ],
    )


def xpress_bomb_stream(record: bytes, total: int) -> bytes:
    """An MS-XCA plain LZ77 stream of ``record`` then one match repeating it up to ``total`` bytes: a
    literal per byte of ``record``, then a match (offset len(record)) with the 32-bit length form."""
    n = len(record)
    flags = 1 << (31 - n)  # n literals, then a match
    length = total - n - 3  # the decoder adds 3, the u32 form subtracts 22 + 15 + 7
    match = struct.pack("<H", (n - 1) << 3 | 7) + bytes([15, 255]) + struct.pack("<HI", 0, length)
    return struct.pack("<I", flags) + record + match


def compressed_buffer(stream: bytes, decompressed: int) -> bytes:
    """A compressed buffer (BufferFlag 0x40) holding ``stream``, claiming ``decompressed`` bytes of records."""
    size = BUFFER_HEADER_SIZE + len(stream)
    head = buffer_header.build(
        dict(
            buffer_size=size,
            filled_bytes=BUFFER_HEADER_SIZE + decompressed,
            saved_offset=size,
            buffer_flag=FLAG_COMPRESSED,
        )
    )
    return head + stream


def etl_xpress_bomb(d: Path) -> Shape:
    """40 compressed buffers of ~70 bytes each expanding to 16 MB of records (2.8 M events from 3 KB),
    after an intact buffer with a SYN-attack interval."""
    w = EtlWriter()
    _syn_interval(w, 1, 2)
    msg = struct.pack("<HBB", 8, 0, 0x90) + bytes(4)  # an 8-byte MESSAGE record
    total = (16 << 20) - BUFFER_HEADER_SIZE
    stream = xpress_bomb_stream(msg, total)
    raw = w.to_bytes() + compressed_buffer(stream, total) * 40
    path = d / "xpress_bomb.etl"
    path.write_bytes(raw)
    return Shape(
        "etl_xpress_bomb",
        [path],
        _etl_commands(path),
        expect=[(4, "1 SYN-attack resistance interval"), (0, "beyond any real Xpress ratio")],
    )


def etl_failing_compressed_buffers(d: Path) -> Shape:
    """20,000 times: four compressed buffers that decode to nothing (they stay in the batch being filled,
    which never fills), one that fails to decode, and one refused unread for its ratio (a damage counted
    in file order: the batch's compressed buffers are decompressed first). 8.9 MB; the intact buffer
    with a SYN-attack interval first. Taking the failed buffers out of the batch must not cost the
    length of the batch each time: that was 106 s."""
    w = EtlWriter()
    _syn_interval(w, 1, 2)
    empty = compressed_buffer(b"", 0)
    failing = compressed_buffer(b"\x00\x00\x00\x00\x05", 64)  # one literal, then the stream ends
    refused = compressed_buffer(b"\x00", 1 << 20)
    path = d / "failing_compressed_buffers.etl"
    path.write_bytes(w.to_bytes() + (empty * 4 + failing + refused) * 20_000)
    return Shape(
        "etl_failing_compressed_buffers",
        [path],
        _etl_commands(path),
        expect=[
            (0, "skipped 40,000 compressed buffer(s) of uncountable records"),
            (
                0,
                "0x20120 (compressed buffer: LZ77 data decodes to 1 bytes, expected 64), 0x2016d (compressed",
            ),
            (4, "1 SYN-attack resistance interval"),
        ],
    )


def etl_bad_buffer_header_candidates(d: Path) -> Shape:
    """A compressed-mode file (LogFileMode 0x04000000) with a bad buffer header followed by 1 MB whose
    every 16th byte starts a plausible buffer header with a valid first record, but whose records fail
    later; an intact buffer with a SYN-attack interval before and one after."""
    w = EtlWriter()
    _syn_interval(w, 1, 2)
    first = bytearray(w.to_bytes())
    # LogFileMode of the logfile header (payload offset 0x20 after the 0x20-byte SYSTEM header): compressed,
    # so the resync scans for the next buffer header instead of stepping one buffer size
    struct.pack_into("<I", first, BUFFER_HEADER_SIZE + 0x20 + 0x20, 0x04000001)
    w2 = EtlWriter()
    _syn_interval(w2, 5, 2)
    last = w2.to_bytes()[0x10000:]  # its event buffer, without its header buffer
    bad = bytearray(last[:BUFFER_HEADER_SIZE])
    struct.pack_into("<I", bad, 0, 7)  # BufferSize 7: a bad buffer header
    unit = bytearray(16)
    struct.pack_into("<I", unit, 0, 0x10000)  # BufferSize 64 KB (byte 3 = 0)
    # bytes 0x30.. of a candidate at q fall on q + 0x30 = q (mod 16): the same unit; byte 8 of the unit is
    # the first record (q + 0x48 = q + 8 mod 16): a MESSAGE record of 16 bytes whose chain meets a bad one
    struct.pack_into("<HBB", unit, 8, 16, 0, 0x90)
    bad_unit = bytes(8) + b"\x10\x00\x00\x77" + bytes(4)  # ... and every 4 KB a record that is not one
    body = (bytes(unit) * 255 + bad_unit) * ((1 << 20) // 4096)
    path = d / "bad_buffer_header.etl"
    path.write_bytes(bytes(first) + bytes(bad) + body + last)
    return Shape(
        "etl_bad_buffer_header",
        [path],
        _etl_commands(path),
        expect=[(4, "2 SYN-attack resistance intervals")],
    )


ETL_SHAPES: list[Callable[[Path], Shape]] = [
    etl_record_resync,
    etl_xpress_bomb,
    etl_failing_compressed_buffers,
    etl_bad_buffer_header_candidates,
]


def etl_syn_storm(d: Path) -> Shape:
    """20,000 SYN-attack intervals and 40,000 rate-limit events (1057) among them, plus a capture of
    40,000 SYNs over the same minute: the old matching was intervals x events in Python."""
    w = EtlWriter(buffer_size=1 << 20)
    recs = {}
    for eid in (1055, 1057, 1063):
        w2 = EtlWriter()
        w2.tcpip_counters(eid, (1, 0, 0, 0, 0, 0), time=timedelta(seconds=1))
        recs[eid] = bytearray(w2._open[0][0])
    step = 1_000_000  # 0.1 s at the writer's 10 MHz clock
    base = w.raw(timedelta(seconds=1))
    for i in range(20_000):
        t = base + i * step
        for eid, at in ((1055, 0), (1057, step // 4), (1057, step // 2), (1063, 3 * step // 4)):
            r = recs[eid]
            struct.pack_into("<Q", r, 0x10, t + at)  # EVENT_HEADER TimeStamp
            w.raw_record(bytes(r), raw_time=t + at)
    etl = w.write(d / "syn_storm.etl")
    pcap = d / "syn_storm.pcap"
    write_pcap(pcap, syn_packets(40_000, step_ms=50), nanosecond=True)
    return Shape(
        "etl_syn_storm",
        [etl, pcap],
        [
            ["synattack", "--etl", str(etl), "-f", "csv", "-o", "{out}.csv"],
            ["synattack", "--etl", str(etl), "--pcap", str(pcap), "-f", "csv", "-o", "{out}.csv"],
        ],
        expect=[
            (0, "20000 SYN-attack resistance intervals"),
            (0, "40,000 rate-limit"),
            (1, "40,000 frames from syn_storm.pcap"),
        ],
    )


# ---------------------------------------------------------------------- captures


def _capture_commands(path: Path, etl: Path) -> list[list[str]]:
    p = str(path)
    return [
        ["frames", "--pcap", p, "-f", "csv", "-o", "{out}.csv"],
        [
            "attribute",
            "--etl",
            str(etl),
            "--pcap",
            p,
            "-f",
            "csv",
            "-o",
            "{out}.csv",
            "--annotate",
            "{out}.pcapng",
        ],
        ["synattack", "--etl", str(etl), "--pcap", p],
    ]


def small_trace(d: Path) -> Path:
    """A trace with one SYN-attack interval and a kernel UdpIp send, for the commands that need --etl."""
    w = EtlWriter()
    _syn_interval(w, 1, 2)
    payload = (
        struct.pack("<II", 777, 8)
        + ipaddress.IPv4Address(CLIENT).packed
        + ipaddress.IPv4Address(SERVER).packed
        + struct.pack(">HH", 53, 50000)
        + struct.pack("<IQ", 0, 0)
    )
    w.kernel_event(0x08, 10, payload, time=timedelta(seconds=1), version=2)
    return w.write(d / "trace.etl")


def pcap_damage_everywhere(d: Path) -> Shape:
    """A pcap of 20,000 SYNs where every 4th record's caplen is damaged: 5,000 damages in 1.4 MB (each
    made its own chunk, search window and DataFrame); a resync needs 3 plausible records in a row."""
    path = d / "damage_everywhere.pcap"
    write_pcap(path, syn_packets(20_000), nanosecond=True)
    raw = bytearray(path.read_bytes())
    rec = 16 + len(frame(CLIENT, SERVER, 1, 80))
    for i in range(1, 20_000, 4):
        struct.pack_into("<I", raw, 24 + i * rec + 8, 0xFFFFFF)
    path.write_bytes(raw)
    return Shape(
        "pcap_damage_everywhere",
        [path],
        _capture_commands(path, small_trace(d)),
        expect=[(0, "15,000 frames")],
    )


def pcapng_damage_everywhere(d: Path) -> Shape:
    """A pcapng of 20,000 SYNs where every other block's trailing length is damaged."""
    path = d / "damage_everywhere.pcapng"
    write_pcapng(path, [Interface(1, tsresol=9)], syn_packets(20_000))
    raw = bytearray(path.read_bytes())
    pos, n = 0, 0
    while pos < len(raw):
        btype, blen = struct.unpack_from("<II", raw, pos)
        if btype == 6:
            if n % 2:
                struct.pack_into("<I", raw, pos + blen - 4, blen + 4)
            n += 1
        pos += blen
    path.write_bytes(raw)
    return Shape(
        "pcapng_damage_everywhere",
        [path],
        _capture_commands(path, small_trace(d)),
        expect=[(0, "10,000 frames")],
    )


def pcapng_interface_per_packet(d: Path) -> Shape:
    """A valid pcapng with an interface block before every one of its 20,000 packets (as concatenated
    captures have), each interface with its own time offset."""
    path = d / "interface_per_packet.pcapng"
    ifaces = [Interface(1, tsresol=6, tsoffset=i % 3) for i in range(20_000)]
    pk = syn_packets(20_000)
    for i, p in enumerate(pk):
        p.interface = i
        p.time_ns += (i % 3) * 1_000_000_000
    write_pcapng(path, ifaces, pk)
    raw = path.read_bytes()
    # move each interface block just before its packet: SHB, then (IDB, EPB) pairs
    pos, shb, idbs, epbs = 0, b"", [], []
    while pos < len(raw):
        btype, blen = struct.unpack_from("<II", raw, pos)
        block = raw[pos : pos + blen]
        if btype == 0x0A0D0D0A:
            shb = block
        elif btype == 1:
            idbs.append(block)
        else:
            epbs.append(block)
        pos += blen
    path.write_bytes(shb + b"".join(a + b for a, b in zip(idbs, epbs)))
    return Shape(
        "pcapng_interface_per_packet",
        [path],
        _capture_commands(path, small_trace(d)),
        expect=[(0, "20,000 frames")],
    )


def pcap_fraction_overflow(d: Path) -> Shape:
    """A microsecond pcap whose records carry ts_usec of 1,000,000 and more."""
    path = d / "usec_overflow.pcap"
    write_pcap(path, syn_packets(100))
    raw = bytearray(path.read_bytes())
    rec = 16 + len(frame(CLIENT, SERVER, 1, 80))
    for i in range(0, 100, 10):
        struct.pack_into("<I", raw, 24 + i * rec + 4, 1_500_000)
    path.write_bytes(raw)
    return Shape(
        "pcap_fraction_overflow",
        [path],
        _capture_commands(path, small_trace(d)),
        expect=[(0, "10 record(s) with microseconds of a second of 1,000,000 or more"), (0, "100 frames")],
    )


CAPTURE_SHAPES: list[Callable[[Path], Shape]] = [
    pcap_damage_everywhere,
    pcapng_damage_everywhere,
    pcapng_interface_per_packet,
    pcap_fraction_overflow,
]
ETL_SHAPES.append(etl_syn_storm)


def etl_eventsource_manifest_flood(d: Path) -> Shape:
    """EventSource manifest chunks claiming 65,535 chunks each from 400 threads (16 KB pieces), one thread
    sending 300 chunks of one manifest (4.8 MB), and an entity-bomb manifest, then 3 events of its
    provider and a SYN-attack interval: bounded memory, every problem counted, the events kept as bytes."""
    from etwtools.parsers.etl import eventsource as es

    w = EtlWriter(buffer_size=1 << 20)
    provider = "2e5dba47-a3d2-4d16-8ee0-6671ffdcd7b5"

    def chunk(total: int, number: int, piece: bytes) -> bytes:
        head = dict(format=1, major=1, minor=0, magic=es.MAGIC, total_chunks=total, chunk=number)
        return es.ENVELOPE.build(head) + piece

    piece = b"<" + b"x" * (16 << 10)
    for tid in range(400):
        w.event(provider, es.MANIFEST_EVENT_ID, chunk(65535, 0, piece), opcode=es.MANIFEST_OPCODE, tid=tid)
    for n in range(300):
        w.event(provider, es.MANIFEST_EVENT_ID, chunk(65535, n, piece), opcode=es.MANIFEST_OPCODE, tid=9999)
    bomb = (
        b'<!DOCTYPE m [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8))
        + b"]><instrumentationManifest>&i;</instrumentationManifest>"
    )
    w.event(provider, es.MANIFEST_EVENT_ID, chunk(1, 0, bomb), opcode=es.MANIFEST_OPCODE, tid=10000)
    for _ in range(3):
        w.event(provider, 7, bytes(20), opcode=9)
    _syn_interval(w, 1, 2)
    path = w.write(d / "manifest_flood.etl")
    return Shape(
        "etl_eventsource_manifest_flood",
        [path],
        _etl_commands(path),
        expect=[
            (
                1,
                f"145 EventSource manifest chunk(s) of {provider} of an incomplete manifest (dropped for room",
            ),
            (1, "more than 256 manifests unfinished at once"),
            (1, "over 4194304 bytes; 65280 of 65535 chunks missing"),
            (1, "DOCTYPE or entity declarations are not allowed"),
            (1, "707 events"),
            (4, "1 SYN-attack resistance interval"),
        ],
    )


ETL_SHAPES.append(etl_eventsource_manifest_flood)


def _flood(d: Path, name: str, n: int, distinct: Callable[[int], dict]) -> Path:
    """A SYN-attack interval, then ``n`` 8-byte EVENT_HEADER events, the ``i``-th with the header fields
    ``distinct(i)`` (over one template's)."""
    w = EtlWriter(buffer_size=1 << 20)
    _syn_interval(w, 1, 2)
    base = dict(
        flags=0,
        thread_id=1,
        process_id=2,
        timestamp=w.raw(timedelta(seconds=1)),
        provider_id=uuid.UUID("0badf00d-0000-4000-8000-000000000000"),
        id=5,
        version=0,
        channel=0,
        level=4,
        opcode=0,
        task=0,
        keyword=0,
        processor_time=0,
    )
    for i in range(n):
        w.raw_record(build_record(w.structs.event_header, bytes(8), (), **{**base, **distinct(i)}))
    return w.write(d / name)


def etl_provider_flood(d: Path) -> Shape:
    """70,000 events, each of a provider (GUID) of its own, after a SYN-attack interval: the provider table
    stops at 65,535 GUIDs (each costs memory; event-type keys hold 16 bits of provider index), the records
    of the others are counted; the event types past 4,096 are kept as bytes in one table (before: 68 s and
    1 GB for this 7 MB file, one table and one Parquet file per event)."""
    from etwtools.parsers.etl.columnar import MAX_TYPES
    from etwtools.parsers.etl.container import MAX_PROVIDERS
    from etwtools.parsers.etl.guids import KERNEL_GROUPS

    n = 70_000
    path = _flood(d, "provider_flood.etl", n, lambda i: {"provider_id": uuid.UUID(int=(0xF00D << 96) + i)})
    named = MAX_PROVIDERS - len(set(KERNEL_GROUPS.values())) - 1  # the TCPIP provider of the interval
    kept = 1 + 2 + named  # the logfile header, the interval's two events
    return Shape(
        "etl_provider_flood",
        [path],
        [*_etl_commands(path), ["events", "--all", "--etl", str(path), "-f", "parquet", "-o", "{out}/"]],
        expect=[
            (1, f"{kept:,} events"),
            (1, f"{n - named:,} record(s) of providers past the file's first {MAX_PROVIDERS:,}"),
            (
                1,
                f"{kept - MAX_TYPES:,} events of event types past the file's first {MAX_TYPES:,} kept as bytes",
            ),
            (4, "1 SYN-attack resistance interval"),
            (5, f"{kept:,} events in {MAX_TYPES + 1:,} event types written"),
        ],
    )


ETL_SHAPES.append(etl_provider_flood)


def etl_event_type_flood(d: Path) -> Shape:
    """70,000 events of one provider, each of an event id and version of its own: event types past 4,096 are
    kept as bytes in one table (every record kept)."""
    from etwtools.parsers.etl.columnar import MAX_TYPES

    n = 70_000
    path = _flood(d, "event_type_flood.etl", n, lambda i: {"id": i & 0xFFFF, "version": i >> 16})
    total = 1 + 2 + n
    return Shape(
        "etl_event_type_flood",
        [path],
        [*_etl_commands(path), ["events", "--all", "--etl", str(path), "-f", "parquet", "-o", "{out}/"]],
        expect=[
            (1, f"{total:,} events"),
            (1, f"{total - MAX_TYPES:,} events of event types past the file's first {MAX_TYPES:,}"),
            (4, "1 SYN-attack resistance interval"),
            (5, f"{total:,} events in {MAX_TYPES + 1:,} event types written"),
        ],
    )


ETL_SHAPES.append(etl_event_type_flood)


def netmon_aliased_frames(d: Path) -> Shape:
    """A NetMon 2.3 capture whose frame table points 20,000 times at one 256 KB frame (5 GB of frames from
    256 KB), after 3 intact frames."""
    path = d / "aliased.cap"
    # one Ethernet frame of 250,000 bytes (local experimental EtherType 0x88B5: no IP length to exceed)
    big = Packet(START_NS + 4_000_000_000, bytes(12) + b"\x88\xb5" + bytes(250_000), 0)
    write_netmon(path, [*syn_packets(3), big])
    raw = bytearray(path.read_bytes())
    table_off, table_len = struct.unpack_from("<II", raw, 24)
    offsets = list(struct.unpack_from(f"<{table_len // 4}I", raw, table_off))
    table = struct.pack(f"<{3 + 20_000}I", *offsets[:3], *[offsets[3]] * 20_000)
    raw = raw[:table_off] + table
    struct.pack_into("<II", raw, 24, table_off, len(table))
    struct.pack_into("<I", raw, 56, 0)  # no extended info / comments after the table
    struct.pack_into("<II", raw, 40, 0, 0)
    path.write_bytes(raw)
    etl = small_trace(d)
    return Shape(
        "netmon_aliased_frames",
        [path],
        _capture_commands(path, etl),
        expect=[(0, "4 frames"), (0, "skipped 19,999 frame-table entries")],
    )


def netmon_empty_table(d: Path) -> Shape:
    """A NetMon 2.3 capture of 100 frames whose frame-table length is 0."""
    path = d / "empty_table.cap"
    write_netmon(path, syn_packets(100))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 28, 0)
    path.write_bytes(raw)
    return Shape(
        "netmon_empty_table",
        [path],
        _capture_commands(path, small_trace(d)),
        expect=[(0, "100 frames"), (0, "the frame table is empty")],
    )


def netmon_frame_centuries_off(d: Path) -> Shape:
    """A NetMon 2.3 capture of 100 frames, one of whose UTC stamps says 1789 (a damaged byte)."""
    path = d / "centuries_off.cap"
    pk = syn_packets(100)
    write_netmon(path, pk)
    raw = bytearray(path.read_bytes())
    table_off, _ = struct.unpack_from("<II", raw, 24)
    rec = struct.unpack_from("<I", raw, table_off + 50 * 4)[0]
    cap = struct.unpack_from("<I", raw, rec + 12)[0]
    stamp = rec + 16 + cap + 6
    ft = struct.unpack_from("<Q", raw, stamp)[0]
    struct.pack_into("<Q", raw, stamp, ft & 0x00FFFFFFFFFFFFFF)  # the top byte lost: year 1601 + ...
    path.write_bytes(raw)
    return Shape(
        "netmon_frame_centuries_off",
        [path],
        [["frames", "--pcap", str(path), "-f", "csv"]],
        expect=[
            (0, "1 frame(s) whose UTC time stamp is more than a day"),
            (0, "51,2024-06-10T20:00:00.050000000Z"),
        ],
    )


def etl_odd_values(d: Path) -> Shape:
    """NDIS packets with MiniportIfIndex 2^31 + 5 (whole) and 2^32 - 1 (in fragments), next to one with
    ifindex 7; and kernel Process v0 events of a 64-bit trace."""
    w = EtlWriter()
    f = frame(CLIENT, SERVER, 1000, 80, payload=bytes(300))
    w.ndis_packet(f, time=timedelta(seconds=1), ifindex=2**31 + 5)
    w.ndis_packet(f, time=timedelta(seconds=2), ifindex=2**32 - 1, fragment_size=100)
    w.ndis_packet(f, time=timedelta(seconds=3), ifindex=7)
    sid = bytes(16) + bytes([1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0]) + bytes(16)
    w.kernel_event(
        0x03, 1, struct.pack("<QQ", 1234, 4) + sid + b"evil.exe\0", time=timedelta(seconds=1), version=0
    )
    w.kernel_event(
        0x03, 1, struct.pack("<QQ", 1235, 4) + bytes(4) + b"good.exe\0", time=timedelta(seconds=1), version=0
    )
    w.kernel_event(
        0x03, 1, struct.pack("<QQ", 1237, 4) + bytes([1, 200]), time=timedelta(seconds=1), version=0
    )
    path = w.write(d / "odd_values.etl")
    return Shape(
        "etl_odd_values",
        [path],
        [
            *_etl_commands(path),
            ["attribute", "--etl", str(path), "--annotate", "{out}.pcapng", "-f", "csv", "-o", "{out}.csv"],
        ],
        expect=[(2, "3 frames"), (2, "5 NDIS packet event(s) with a MiniportIfIndex above"), (3, "good.exe")],
    )


# ---------------------------------------------------------------------- text


def _tracerpt(d: Path, name: str, lines: list[str]) -> Path:
    head = (
        "     Event Name,            Type,    TID,            Clock-Time, Kernel(ms),   User(ms), User Data"
    )
    path = d / name
    path.write_text("\n".join([head, *lines]) + "\n")
    return path


UDP_LINE = (
    "UdpIp, Send, 0xFFFFFFFF, 129079416141424158, 0, 0, 2136, 8, 172.023.098.097, 010.001.001.001, "
    "2762, {port}, 0, 0"
)


def tracerpt_odd_lines(d: Path) -> Shape:
    """A tracerpt CSV with a Type of `0x`, a Type of 5,000 digits, a line of 60 fields first in the file,
    between 3 intact UdpIp Send lines."""
    lines = [
        "UdpIp, Send, 0xFFFFFFFF, 129079416141424158, 0, 0" + ", 1" * 60,
        UDP_LINE.format(port=36001),
        UDP_LINE.replace("Send", "0x").format(port=36002),
        UDP_LINE.format(port=36003),
        UDP_LINE.replace("Send", "9" * 5000).format(port=36004),
        UDP_LINE.format(port=36005),
    ]
    path = _tracerpt(d, "odd_lines.csv", lines)
    return Shape(
        "tracerpt_odd_lines",
        [path],
        [["events", "--etl", str(path), "-f", "csv"], ["processes", "--etl", str(path)]],
        expect=[(0, ",36001,"), (0, ",36003,"), (0, ",36005,")],
    )


def tasklist_huge_numbers(d: Path) -> Shape:
    """tasklist outputs (table and CSV) with a PID, a session and a memory size of 5,000 digits between
    intact rows."""
    table = d / "tasklist_huge.txt"
    table.write_text(
        "\n".join(
            [
                "Image Name                     PID Services",
                "========================= ======== ============================================",
                "System                           4 N/A",
                "evil.exe                  " + "9" * 5000 + " N/A",
                "svchost.exe                    780 BrokerInfrastructure, DcomLaunch, LSM,",
                "                                   PlugPlay, Power, SystemEventsBroker",
            ]
        )
        + "\n"
    )
    csv = d / "tasklist_huge.csv"
    csv.write_text(
        "\n".join(
            [
                '"Image Name","PID","Session Name","Session#","Mem Usage"',
                '"evil.exe","' + "9" * 5000 + '","Console","1","1,234 K"',
                '"big.exe","1234","Console","' + "9" * 5000 + '","' + "9" * 5000 + ' K"',
                '"ok.exe","1236","Console","1","1,234 K"',
            ]
        )
        + "\n"
    )
    return Shape(
        "tasklist_huge_numbers",
        [table, csv],
        [
            ["processes", "--tasklist", str(table), "-f", "csv"],
            ["processes", "--tasklist", str(csv), "-f", "csv"],
        ],
        expect=[(0, "svchost.exe"), (0, "PlugPlay"), (1, "ok.exe")],
    )


def huge_option_values(d: Path) -> Shape:
    """Finite but huge --offset, --tolerance and --tasklist-time."""
    etl = small_trace(d)
    cap = d / "syns.pcap"
    write_pcap(cap, syn_packets(10))
    tl = d / "tasklist.txt"
    tl.write_text(
        "Image Name                     PID Services\n"
        "========================= ======== ============================================\n"
        "System                           4 N/A\n"
    )
    base = ["attribute", "--etl", str(etl), "--pcap", str(cap), "-f", "csv", "-o", "{out}.csv"]
    return Shape(
        "huge_option_values",
        [etl, cap, tl],
        [
            [*base, "--offset", "1e300"],
            [*base, "--tolerance", "1e300"],
            [*base, "--offset", "1e10"],
            [*base, "--tasklist", str(tl), "--tasklist-time", "9999-12-31T23:59:59"],
            ["processes", "--tasklist", str(tl), "--tasklist-time", "0001-01-01T00:00:00"],
        ],
        exit_codes={0: 1, 1: 1, 2: 1, 3: 1, 4: 1},
        expect=[(0, "within"), (1, "century"), (2, "within")],
    )


OTHER_SHAPES: list[Callable[[Path], Shape]] = [
    netmon_aliased_frames,
    netmon_empty_table,
    netmon_frame_centuries_off,
    etl_odd_values,
    tracerpt_odd_lines,
    tasklist_huge_numbers,
    huge_option_values,
]


def etl_header_clock_damaged(d: Path) -> Shape:
    """Two copies of a 100 s trace (a SYN-attack interval at 1 s, another at 90 s), one with a byte of
    the logfile header's StartTime changed (325 days earlier), one with a byte of its PerfFreq changed
    (10 MHz -> 1.6 MHz): every time would move silently."""
    w = EtlWriter()
    _syn_interval(w, 1, 2)
    _syn_interval(w, 90, 2)
    raw = w.to_bytes()
    start_off = BUFFER_HEADER_SIZE + 0x20 + 0x108  # TRACE_LOGFILE_HEADER.StartTime (64-bit layout)
    a = bytearray(raw)
    a[start_off + 6] -= 1
    b = bytearray(raw)
    b[start_off - 8 + 2] = 0x18  # PerfFreq 0x989680 -> 0x189680
    pa, pb = d / "start_time.etl", d / "perf_freq.etl"
    pa.write_bytes(a)
    pb.write_bytes(b)
    return Shape(
        "etl_header_clock_damaged",
        [pa, pb],
        [["synattack", "--etl", str(pa)], ["synattack", "--etl", str(pb)]],
        expect=[
            (0, "StartTime, EndTime or clock frequency (10,000,000 Hz) is damaged"),
            (1, "StartTime, EndTime or clock frequency (1,611,392 Hz) is damaged"),
            (0, "2 SYN-attack resistance intervals"),
            (1, "2 SYN-attack resistance intervals"),
        ],
    )


OTHER_SHAPES.append(etl_header_clock_damaged)


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """Ethernet II + IPv4 + UDP (built here)."""
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(u),
        1,
        0,
        64,
        17,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return b"\x00\x1c\xc4\x11\x11\x11\x00\x00\x0c\x07\xac\x15\x08\x00" + ip + u


def pcapng_annotate_edges(d: Path) -> Shape:
    """A valid pcapng that --annotate once aborted on: a packet comment of 65,500 bytes on the attributed
    packet (the annotation must still fit), a packet without a time (a simple packet block), and a second
    section with a simple packet block."""
    path = d / "annotate_edges.pcapng"
    pk = syn_packets(5)
    pk.append(
        Packet(
            START_NS + 1_000_000_000, udp_frame(SERVER, CLIENT, 50000, 53, bytes(8)), 0, comment="x" * 65_500
        )
    )
    pk.append(Packet(None, udp_frame(SERVER, CLIENT, 50000, 53, bytes(8)), 0))
    write_pcapng(path, [Interface(1, tsresol=9)], pk, simple_untimed=True)
    raw = path.read_bytes()
    idb_len = struct.unpack_from("<I", raw, 28 + 4)[0]
    spb = udp_frame(SERVER, CLIENT, 50001, 53, bytes(8))
    second = (
        raw[:28] + raw[28 : 28 + idb_len] + struct.pack("<III", 3, 16 + len(spb) + (-len(spb) % 4), len(spb))
    )
    second += spb + bytes(-len(spb) % 4) + struct.pack("<I", 16 + len(spb) + (-len(spb) % 4))
    path.write_bytes(raw + second)
    etl = small_trace(d)
    return Shape(
        "pcapng_annotate_edges",
        [path],
        [
            [
                "attribute",
                "--etl",
                str(etl),
                "--pcap",
                str(path),
                "-f",
                "csv",
                "-o",
                "{out}.csv",
                "--annotate",
                "{out}.pcapng",
            ],
            ["frames", "--pcap", "{out}.pcapng", "-f", "csv"],
        ],
        exit_codes={0: 0, 1: 0},
        expect=[(1, "8 frames"), (1, ",777,")],
    )


OTHER_SHAPES.append(pcapng_annotate_edges)
