"""The ETL writer (parsers/etl/build.py): what it writes, the project's own container reads back exactly.

These files are BUILT with the project's construct definitions (structs.py); they stand in for inputs
no public file has (netsh TCPIP/NDIS traces). The checks here make sure what the builder claims to
write is what a reader finds: header fields, every EVENT_HEADER descriptor field, kernel headers,
times on the QPC clock, per-processor buffers, determinism.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from etwtools.parsers.etl.build import KERNEL_HEADER_TYPES, EtlWriter
from etwtools.parsers.etl.container import EtlFile
from etwtools.parsers.etl.guids import TCPIP, TCPIP_KERNEL
from etwtools.parsers.etl.records import EVENT_HEADER32, EVENT_HEADER64

START = datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)
PROVIDER = uuid.UUID("12345678-9abc-4def-8123-456789abcdef")


def _read(path):
    with EtlFile(path) as etl:
        header = etl.header
        batches = list(etl.batches())
        stats = etl.stats
    return header, batches, stats


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_event_header_fields_round_trip(tmp_path, pointer_size):
    w = EtlWriter(pointer_size=pointer_size, start=START, perf_freq=10_000_000)
    t = START + timedelta(seconds=1, microseconds=234_567)
    w.event(
        PROVIDER,
        4321,
        b"payload!",
        time=t,
        level=2,
        keyword=0x8000000000000081,
        opcode=7,
        version=3,
        pid=1234,
        tid=5678,
        task=99,
        channel=16,
    )
    w.event(
        TCPIP,
        1055,
        struct.pack("<6I", 1, 2, 3, 4, 5, 6),
        time=timedelta(seconds=2),
        level=3,
        keyword=0x8000000080,
        task=1055,
    )
    header, batches, stats = _read(w.write(tmp_path / "e.etl"))
    assert header.pointer_size == pointer_size
    assert header.perf_freq == 10_000_000 and header.clock_type == 1
    assert header.logger_name == "NetTrace" and header.os_version == (10, 0)
    assert header.start_time == 116_444_736_000_000_000 + w.start_ns // 100
    assert stats.skipped_bytes == 0 and stats.records == 3
    (b,) = batches
    ev = b.select(b.htype == (EVENT_HEADER64 if pointer_size == 8 else EVENT_HEADER32))
    assert len(ev) == 2
    assert [b.guids[i] for i in ev.provider] == [PROVIDER, TCPIP]
    assert ev.event_id.tolist() == [4321, 1055]
    assert ev.level.tolist() == [2, 3]
    assert ev.keyword.tolist() == [0x8000000000000081, 0x8000000080]
    assert ev.opcode.tolist() == [7, 0]
    assert ev.version.tolist() == [3, 0]
    assert ev.pid.tolist() == [1234, 0] and ev.tid.tolist() == [5678, 0]
    assert ev.pointer_size.tolist() == [pointer_size] * 2
    assert ev.time.tolist() == [w.to_ns(t), w.to_ns(START + timedelta(seconds=2))]
    assert ev.payload(0) == b"payload!"
    assert struct.unpack("<6I", ev.payload(1)) == (1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize("pointer_size", [4, 8])
@pytest.mark.parametrize("kind", ["system", "compact", "perfinfo"])
def test_kernel_events(tmp_path, pointer_size, kind):
    w = EtlWriter(pointer_size=pointer_size, start=START)
    payload = bytes(range(44))
    w.kernel_event(0x06, 10, payload, time=timedelta(milliseconds=5), version=2, pid=4, tid=8, header=kind)
    _, (b,), _ = _read(w.write(tmp_path / "k.etl"))
    rec = b.select(b.group == 0x06)
    assert len(rec) == 1
    assert int(rec.htype[0]) == KERNEL_HEADER_TYPES[(kind, pointer_size)]
    assert b.guids[int(rec.provider[0])] == TCPIP_KERNEL
    assert (int(rec.opcode[0]), int(rec.version[0])) == (10, 2)
    if kind == "perfinfo":  # no ids in a PERFINFO header
        assert int(rec.pid[0]) == 0xFFFFFFFF
    else:
        assert (int(rec.pid[0]), int(rec.tid[0])) == (4, 8)
    assert int(rec.time[0]) == w.start_ns + 5_000_000
    assert rec.payload(0) == payload


def test_qpc_clock_other_frequency(tmp_path):
    """At 3,579,545 Hz (the old ACPI timer), times round down to a tick, as decoded_ns says."""
    w = EtlWriter(start=START, perf_freq=3_579_545)
    times = [timedelta(microseconds=us) for us in (1, 999_999, 3_600_000_001)]
    for t in times:
        w.event(PROVIDER, 1, time=t)
    header, (b,), _ = _read(w.write(tmp_path / "f.etl"))
    assert header.perf_freq == 3_579_545
    got = b.time[b.event_id == 1].tolist()
    assert got == [w.decoded_ns(t) for t in times]
    assert all(0 <= w.to_ns(t) - g < 1e9 / 3_579_545 + 1 for t, g in zip(times, got))


def test_buffers_per_processor_and_determinism(tmp_path):
    """Records spill into several 4 KiB buffers per processor; the file order is flush order."""

    def build():
        w = EtlWriter(start=START, buffer_size=0x1000)
        for i in range(300):
            w.event(
                PROVIDER, 1 + i % 2, struct.pack("<I", i) * 8, time=timedelta(milliseconds=i), processor=i % 2
            )
        return w

    w = build()
    data = w.to_bytes()
    assert data == build().to_bytes()
    assert len(data) % 0x1000 == 0
    path = tmp_path / "p.etl"
    path.write_bytes(data)
    header, batches, stats = _read(path)
    assert header.buffers_written == len(data) // 0x1000
    assert stats.buffers == header.buffers_written and stats.skipped_bytes == 0
    ids = np.concatenate([b.event_id for b in batches])
    times = np.concatenate([b.time for b in batches])
    payloads = [b.payload(i) for b in batches for i in range(len(b)) if b.event_id[i] in (1, 2)]
    seq = [struct.unpack_from("<I", p)[0] for p in payloads]
    assert sorted(seq) == list(range(300))
    assert seq != sorted(seq)  # two processors' buffers interleave: file order is not time order
    ev = (ids == 1) | (ids == 2)
    assert sorted(times[ev].tolist()) == [w.start_ns + i * 1_000_000 for i in range(300)]


def test_bad_arguments():
    with pytest.raises(ValueError):
        EtlWriter(pointer_size=6)
    w = EtlWriter(start=START)
    with pytest.raises(ValueError):
        w.event(PROVIDER, 1, time=START - timedelta(seconds=1))
    with pytest.raises(ValueError):
        w.kernel_event(6, 10, header="full")
    with pytest.raises(ValueError):
        w.event(PROVIDER, 1, b"x" * 0x10000)


def test_shaped_events(tmp_path):
    """tcpip_counters / ndis_packet / pktmon_packet write the manifest's level and keywords."""
    w = EtlWriter(start=START)
    w.tcpip_counters(1055, (1, 2, 3, 4, 5, 6), time=timedelta(seconds=1))
    w.tcpip_counters(1063, (1, 2, 3, 4, 5, 6), time=timedelta(seconds=2))
    w.tcpip_counters(1058, (0, 0, 0, 0, 1, 0), time=timedelta(seconds=3))
    assert w.ndis_packet(b"\x01" * 100, time=timedelta(seconds=4), direction="out", fragment_size=40) == 3
    w.pktmon_packet(b"\x02" * 60, time=timedelta(seconds=5))
    _, (b,), _ = _read(w.write(tmp_path / "shaped.etl"))
    ev = b.select(b.event_id > 0)
    assert ev.event_id.tolist() == [1055, 1063, 1058, 1001, 1001, 1001, 160]
    assert ev.level.tolist() == [3, 4, 3, 4, 4, 4, 4]
    assert [hex(k) for k in ev.keyword.tolist()] == [
        "0x8000000080",
        "0x8000000080",
        "0x18000000080",
        "0x140000001",
        "0x100000001",
        "0x180000001",
        "0x10",
    ]
    assert ev.payload(3)[:12] == struct.pack("<III", 12, 12, 40)
    assert len(ev.payload(5)) == 12 + 20 + 16  # last fragment, then the two Gft u64
    with pytest.raises(ValueError):
        w.tcpip_counters(1055, (1, 2, 3))
