"""SYN-attack resistance mode from Microsoft-Windows-TCPIP traces (issue 6).

No public ETL with these events exists (see ../shared/corpus/README.md). The netsh-shaped files here
are BUILT with the project's construct definitions (parsers/etl/build.py on structs.py): a real
logfile header (QPC clock), EVENT_HEADER records (32- and 64-bit) with the Microsoft-Windows-TCPIP
GUID 2f07e2ee-15db-40f1-90ef-9d7ba282188a, NDIS-PacketCapture packets, and other TCPIP events around.

Where the values come from:
- ids, levels, keywords, tasks, template: the Microsoft-Windows-TCPIP manifest as dumped from Windows 7
  (7600) and Windows 10 (17134, 18990) in repnz/etw-providers-docs (identical for these events): 1055
  TcpGlobalSynAttackEntry level 3 (Warning), 1063 TcpGlobalSynAttackExit level 4 (Informational), both
  keywords ut:TcpipDiagnosis 0x80 | ut:Global 0x8000000000, task = event id, opcode 0, version 0,
  template TcpSecurityRateLimitArgs (six UInt32); 1025 level 4 keywords 0x400000484; 1056-1058 level 3,
  1058 with keyword 0x10000000000 too (parsers/etl/tcpip.py holds the table). Same facts in OTRF/OSSEM.
- the counter values and times are made up for each case; the expectations follow from them.
"""

from __future__ import annotations

import ipaddress
import struct
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.guids import NDIS_PACKETCAPTURE, TCPIP
from etwtools.parsers.etl.tcpip import read_tcpip, read_tcpip_security_events
from etwtools.synattack import synattack

START = datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)
SERVER = "10.0.0.1"


def s(sec: float) -> timedelta:
    return timedelta(seconds=sec)


def _sockaddr4(addr: str, port: int) -> bytes:
    return struct.pack("<H", 2) + struct.pack("!H", port) + ipaddress.IPv4Address(addr).packed + bytes(8)


def _noise(w: EtlWriter, at: float) -> int:
    """Other TCPIP events, as a level-5 netsh trace has plenty of: 1033, 1300, 1169. Returns how many."""
    ps = w.pointer_size
    local, remote = _sockaddr4(SERVER, 50123), _sockaddr4("10.0.0.9", 443)
    connect = (
        struct.pack("<I", 16)
        + local
        + struct.pack("<I", 16)
        + remote
        + struct.pack("<III", 0, 4711, 1)
        + bytes(ps)
    )
    w.event(TCPIP, 1033, connect, time=s(at), level=4, keyword=0x400000484, task=1033, pid=4711, tid=1)
    rundown = (
        bytes(ps)
        + struct.pack("<I", 16)
        + _sockaddr4(SERVER, 443)
        + struct.pack("<I", 16)
        + _sockaddr4("10.0.0.7", 61000)
        + struct.pack("<II", 5, 888)
    )
    w.event(TCPIP, 1300, rundown, time=s(at + 0.1), level=4, keyword=0x400000484, task=1300)
    udp = (
        bytes(ps)
        + struct.pack("<III", 1, 48, 16)
        + _sockaddr4(SERVER, 5353)
        + struct.pack("<I", 16)
        + _sockaddr4("224.0.0.251", 5353)
        + struct.pack("<I", 2020)
    )
    w.event(TCPIP, 1169, udp, time=s(at + 0.2), level=4, keyword=0x100000000, task=1169)
    return 3


def _trace(tmp_path, name, marks, pointer_size=8, end=200.0, other=(), packets=None):
    """A netsh-shaped trace: NDIS rundown, TCPIP noise every 5 s to ``end``, the given counter events."""
    w = EtlWriter(pointer_size=pointer_size, start=START)
    w.event(NDIS_PACKETCAPTURE, 1011, struct.pack("<I", 0), time=s(0.001))
    n = 0
    for t in range(0, int(end) + 1, 5):
        n += _noise(w, t + 0.5)
    for event_id, at, counters in [*marks, *other]:
        w.tcpip_counters(event_id, counters, time=s(at))
        n += 1
    if packets:
        packets(w)
    path = w.write(tmp_path / f"{name}{pointer_size}.etl")
    return w, path, n


C = (1, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_one_interval(tmp_path, pointer_size):
    _, path, n = _trace(
        tmp_path,
        "one",
        [(1055, 10, (1, 0, 2, 3, 0, 40)), (1063, 70, (1, 0, 5, 6, 0, 40))],
        pointer_size=pointer_size,
    )
    r = synattack(path)
    assert r.tcpip_events_read == n == 41 * 3 + 2
    iv = r.intervals
    assert iv.height == 1
    row = iv.row(0, named=True)
    assert row["entered"] == START + s(10) and row["left"] == START + s(70)
    assert row["duration_s"] == 60.0
    assert (row["open_at_end"], row["started_before_trace"]) == (False, False)
    assert (row["syn_attacks_detected_at_entry"], row["syn_attacks_detected_at_exit"]) == (1, 1)
    assert (
        row["connection_rate_limit_backlog"],
        row["connection_rate_limit_violations"],
        row["connection_rate_limit_depth"],
    ) == (5, 6, 40)  # from the exit event
    assert r.other_events.height == 0
    assert r.packets is None
    assert r.message.startswith(f"1 SYN-attack resistance interval in {path.name} ({n} TCPIP events read)")


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_two_intervals_and_other_events(tmp_path, pointer_size):
    marks = [
        (1055, 10, (1, 0, 0, 0, 0, 0)),
        (1063, 40, (1, 0, 0, 0, 0, 0)),
        (1055, 100, (2, 0, 0, 0, 0, 0)),
        (1063, 130.5, (2, 0, 0, 0, 0, 0)),
    ]
    other = [
        (1025, 5, (0, 0, 10, 1, 0, 20)),
        (1057, 20, (1, 0, 11, 2, 0, 20)),
        (1058, 110, (2, 0, 0, 0, 3, 0)),
        (1056, 150, (2, 7, 0, 0, 3, 0)),
    ]
    _, path, n = _trace(tmp_path, "two", marks, pointer_size=pointer_size, other=other)
    r = synattack(path)
    iv = r.intervals
    assert iv["interval"].to_list() == [1, 2]
    assert iv["duration_s"].to_list() == [30.0, 30.5]
    assert iv["syn_attacks_detected_at_entry"].to_list() == [1, 2]
    assert iv["syn_attacks_detected_at_exit"].to_list() == [1, 2]
    assert not iv["open_at_end"].any() and not iv["started_before_trace"].any()
    o = r.other_events
    assert o["event_id"].to_list() == [1025, 1057, 1058, 1056]
    assert o["name"].to_list() == [
        "TcpSecurityRateLimit",
        "TcpGlobalConnectionRateLimitViolation",
        "TcpGlobalLandAttackSegmentDrop",
        "TcpGlobalReassemblyLimitViolation",
    ]
    assert o["level"].to_list() == [4, 3, 3, 3]
    assert o["interval"].to_list() == [None, 1, 2, None]
    assert o["connection_rate_limit_backlog"].to_list() == [10, 11, 0, 0]
    assert o["land_attack_segments_dropped"].to_list() == [0, 0, 3, 3]
    assert o["reassembly_limit_violations"].to_list() == [0, 0, 0, 7]
    assert r.tcpip_events_read == n
    assert (
        "2 SYN-attack resistance intervals" in r.message and "4 rate-limit or land-attack events" in r.message
    )


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_entry_without_exit(tmp_path, pointer_size):
    _, path, _ = _trace(
        tmp_path, "open", [(1055, 150, (3, 0, 0, 0, 0, 0))], pointer_size=pointer_size, end=180
    )
    r = synattack(path)
    row = r.intervals.row(0, named=True)
    assert row["left"] is None and row["open_at_end"] is True and row["started_before_trace"] is False
    last = START + s(180.7)  # the last record of the trace: noise at 180.5 + 0.2
    assert r.trace_end == last
    assert row["duration_s"] == pytest.approx(30.7)
    assert row["syn_attacks_detected_at_exit"] is None and row["syn_attacks_detected_at_entry"] == 3
    assert "1 still on when the trace ended" in r.message


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_exit_without_entry(tmp_path, pointer_size):
    _, path, _ = _trace(tmp_path, "late", [(1063, 42, (4, 0, 0, 0, 0, 0))], pointer_size=pointer_size)
    r = synattack(path)
    row = r.intervals.row(0, named=True)
    assert row["entered"] is None and row["started_before_trace"] is True and row["open_at_end"] is False
    assert row["left"] == START + s(42)
    assert row["duration_s"] == 42.0  # at least: from the start of the trace (its header record)
    assert row["syn_attacks_detected_at_exit"] == 4
    assert "1 already on when the trace started" in r.message


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_no_syn_attack_events(tmp_path, pointer_size):
    _, path, n = _trace(
        tmp_path, "quiet", [], pointer_size=pointer_size, other=[(1025, 3, (0, 0, 1, 1, 0, 5))]
    )
    r = synattack(path)
    assert r.intervals.height == 0 and r.other_events.height == 1
    assert r.message == (
        f"no SYN-attack events in {path.name} ({n} TCPIP events read); 1 rate-limit or land-attack event"
    )
    sec = read_tcpip_security_events(path)
    assert sec["event_id"].to_list() == [1025]
    assert sec["ConnectionRateLimitDepth"].to_list() == [5]


def test_pid_events_decoded(tmp_path):
    """1033 / 1300 / 1169 (built, see module docstring) as EVENTS rows with the payload PID."""
    for ps in (4, 8):
        w = EtlWriter(pointer_size=ps, start=START)
        _noise(w, 1.0)
        ev = read_tcpip(w.write(tmp_path / f"pid{ps}.etl")).pid_events
        assert ev["event"].to_list() == ["ConnectComplete", "Rundown", "Send"]
        assert ev["pid"].to_list() == [4711, 888, 2020]
        assert ev["protocol"].to_list() == ["TCP", "TCP", "UDP"]
        assert ev["local_addr"].to_list() == [SERVER] * 3
        assert ev["local_port"].to_list() == [50123, 443, 5353]
        assert ev["remote_addr"].to_list() == ["10.0.0.9", "10.0.0.7", "224.0.0.251"]
        assert ev["remote_port"].to_list() == [443, 61000, 5353]
        assert ev["size"].to_list() == [None, None, 48]
        assert ev["provider"].unique().to_list() == ["TCPIP"]


# ------------------------------------------------------------------------------------------ packets


def _syn_frame(src: str, sport: int, dst: str, dport: int, flags: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 8192, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40,
        1,
        0x4000,
        128,
        6,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return bytes.fromhex("0022487bb380948ed3c5f748") + b"\x08\x00" + ip + tcp


def _flood(w: EtlWriter) -> None:
    """Before [0, 10 s): 5 clients, all answered. During [10, 40]: 300 SYNs from 50 spoofed sources to
    :443, 30 answered. After (40, 70]: 10 SYNs to :80 and :443, all answered."""

    def syn(t, src, sport, dport, answered):
        w.ndis_packet(_syn_frame(src, sport, SERVER, dport, 0x02), time=s(t), direction="in")
        if answered:
            w.ndis_packet(_syn_frame(SERVER, dport, src, sport, 0x12), time=s(t + 0.001), direction="out")

    for i in range(5):
        syn(2 + i, f"192.168.1.{10 + i}", 40000 + i, 443, True)
    for i in range(300):
        syn(10.05 + i * 0.1, f"203.0.113.{i % 50 + 1}", 1024 + i, 443, i % 10 == 0)
    for i in range(10):
        syn(45 + i, "192.168.1.20", 41000 + i, 80 if i < 6 else 443, True)
    dns = (
        bytes.fromhex("0022487bb380948ed3c5f748")
        + b"\x08\x00"
        + struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 128, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53])
        )
        + struct.pack("!HHHH", 53000, 53, 8, 0)
    )
    for i in range(4):  # other traffic: counted, not summarized
        w.ndis_packet(dns, time=s(20 + i), direction="out")


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_packet_summary_from_ndis_packets(tmp_path, pointer_size):
    """Issue 6, acceptance 2: the same netsh-shaped file with packets inside (capture=yes)."""
    _, path, _ = _trace(
        tmp_path,
        "flood",
        [(1055, 10, (1, 0, 0, 0, 0, 0)), (1063, 40, (1, 0, 0, 0, 0, 0))],
        pointer_size=pointer_size,
        end=100,
        packets=_flood,
    )
    r = synattack(path)
    assert r.frames_source == "etl" and r.frames == 5 * 2 + 300 + 30 + 10 * 2 + 4
    p = r.packets
    assert p["phase"].to_list() == ["before", "during", "after"]
    assert p["seconds"].to_list() == [10.0, 30.0, 30.0]  # before: cut at the trace start
    assert p["syns"].to_list() == [5, 300, 10]
    assert p["syn_per_s"].to_list() == [0.5, 10.0, pytest.approx(10 / 30)]
    assert p["syn_acks"].to_list() == [5, 30, 10]
    assert p["answered_share"].to_list() == [1.0, 0.1, 1.0]
    assert p["sources"].to_list() == [5, 50, 1]
    assert p["attacked_ports"].to_list() == ["443 (5)", "443 (300)", "80 (6), 443 (4)"]
    top = p["top_sources"].to_list()[1]
    assert top == ", ".join(f"203.0.113.{k} (6)" for k in (1, 10, 11, 12, 13))  # ties: by address text
    assert "364 frames in the ETL file" in r.message


def test_packet_summary_from_a_capture(tmp_path):
    """With --pcap: the frames of a separate capture (written here with the project's pcapng writer)."""
    from etwtools.parsers.etl.captured_frames import iter_etl_capture
    from etwtools.parsers.pcapng import write_pcapng

    w = EtlWriter(start=START)
    _flood(w)
    interfaces, packets = iter_etl_capture(w.write(tmp_path / "cap.etl"))
    pcap = tmp_path / "cap.pcapng"
    write_pcapng(pcap, interfaces, packets)
    _, path, _ = _trace(tmp_path, "nopk", [(1055, 10, C), (1063, 40, C)], end=100)
    r = synattack(path, pcap)
    assert r.frames_source == str(pcap)
    assert r.packets["syns"].to_list() == [5, 300, 10]
    assert r.packets["answered_share"].to_list() == [1.0, 0.1, 1.0]
    # a separate capture covers first to last frame (2 s to 54.001 s): the windows stop there
    assert r.packets["seconds"].to_list() == [8.0, 30.0, pytest.approx(14.001)]
    assert r.packets["syn_per_s"].to_list()[0] == 5 / 8


def test_capture_not_covering_the_interval(tmp_path):
    from etwtools.parsers.packets import Interface, Packet
    from etwtools.parsers.pcapng import write_pcapng

    pcap = tmp_path / "later.pcapng"
    frame = _syn_frame("192.0.2.1", 1234, SERVER, 443, 0x02)
    later = EtlWriter(start=START).to_ns(s(300))
    write_pcapng(pcap, [Interface(link_type=1, tsresol=9)], [Packet(later + i, frame) for i in range(3)])
    _, path, _ = _trace(tmp_path, "cover", [(1055, 10, C), (1063, 40, C)], end=100)
    r = synattack(path, pcap)
    assert r.packets.height == 0
    assert r.message.endswith(
        "the frames (2024-06-10 20:05:00 to 2024-06-10 20:05:00 UTC) do not cover interval 1"
    )


def test_corpus_has_no_syn_attack_events(corpus):
    """Issue 6, acceptance 3: every real ETL of the corpus runs through and says so with its count.

    None of them was traced with Microsoft-Windows-TCPIP: 0 TCPIP events each (checked independently
    with dissect.etl, looking for the GUID in both byte orders)."""
    files = sorted(corpus.rglob("*.etl"))
    assert len(files) == 19
    for f in files:
        r = synattack(f)
        assert r.intervals.height == 0 and r.other_events.height == 0, f
        assert r.tcpip_events_read == 0, f
        assert r.message.startswith(f"no SYN-attack events in {f.name} (0 TCPIP events read)"), f
    pkt = synattack(corpus / "pktmon" / "demikernel-PktMon.etl")
    assert pkt.packets is None  # frames are only summarized around intervals


def test_frames_schema_types(tmp_path):
    _, path, _ = _trace(tmp_path, "types", [(1055, 10, C)], end=20, packets=_flood)
    r = synattack(path)
    assert r.intervals.schema["entered"] == pl.Datetime("ns", "UTC")
    assert r.packets.schema["start"] == pl.Datetime("ns", "UTC")
    assert r.packets["phase"].to_list() == ["before", "during"]


def test_short_counter_event_is_skipped_and_reported(tmp_path, caplog):
    """A 1055 whose payload is shorter than the six counters costs that event only, with a warning."""
    import logging

    w = EtlWriter(start=START)
    w.event(TCPIP, 1055, struct.pack("<2I", 1, 0), time=s(5), level=3, keyword=0x8000000080, task=1055)
    w.tcpip_counters(1055, (2, 0, 0, 0, 0, 0), time=s(6))
    w.tcpip_counters(1063, (2, 0, 0, 0, 0, 0), time=s(9))
    path = w.write(tmp_path / "short.etl")
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        r = synattack(path)
    assert r.tcpip_events_read == 3
    assert r.intervals["syn_attacks_detected_at_entry"].to_list() == [2]
    assert f"{path}: skipped 1 TCPIP counter events shorter than 24 bytes" in caplog.text


def test_entry_twice_without_exit(tmp_path):
    """Two entries with no exit between (an exit lost): the first interval's end is unknown, not 'open'."""
    _, path, _ = _trace(
        tmp_path,
        "twice",
        [(1055, 10, (1, 0, 0, 0, 0, 0)), (1055, 20, (2, 0, 0, 0, 0, 0)), (1063, 30, (2, 0, 0, 0, 0, 0))],
        other=[(1057, 15, (1, 0, 1, 1, 0, 5)), (1057, 25, (2, 0, 1, 1, 0, 5))],
        end=40,
    )
    r = synattack(path)
    iv = r.intervals
    assert iv["entered"].to_list() == [START + s(10), START + s(20)]
    assert iv["left"].to_list() == [None, START + s(30)]
    assert iv["open_at_end"].to_list() == [False, False]
    assert iv["duration_s"].to_list() == [None, 10.0]
    assert iv["note"].to_list()[0].startswith("entered again before an exit was seen")
    assert r.other_events["interval"].to_list() == [1, 2]
