"""NDIS packet capture (netsh trace capture=yes) inside ETL files: frames, directions, fragments, link types.

No public ETL written by ``netsh trace capture=yes`` exists (see ../shared/corpus/README.md), so these
files are BUILT with the project's construct definitions (parsers/etl/build.py on structs.py) from the
manifest facts of Microsoft-Windows-NDIS-PacketCapture (event 1001: MiniportIfIndex u32, LowerIfIndex
u32, FragmentSize u32, Fragment, and on Windows 10 two u64 Gft fields; keywords Ethernet 0x1,
WirelessWAN 0x200, PacketTruncated 0x2000000, PacketStart 0x40000000, PacketEnd 0x80000000, SendPath
0x100000000, ReceivePath 0x200000000). Each test checks that the reader gives back exactly the frames,
times and directions the file was built from.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.captured_frames import (
    KW_END,
    KW_ETHERNET,
    KW_RECEIVE,
    KW_START,
    has_packets,
    iter_etl_capture,
    iter_etl_packets,
    read_etl_frames,
)
from etwtools.parsers.etl.guids import NDIS_PACKETCAPTURE
from etwtools.parsers.packets import LINKTYPE_ETHERNET, LINKTYPE_RAW

START = datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)
MAC_A, MAC_B = bytes.fromhex("0022487bb380"), bytes.fromhex("948ed3c5f748")


def _csum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b[: len(b) // 2 * 2])) + (b[-1] << 8 if len(b) % 2 else 0)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_segment(sport: int, dport: int, flags: int, seq: int = 1000, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def ipv4(src: str, dst: str, proto: int, body: bytes, ident: int = 1) -> bytes:
    h = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(body),
        ident,
        0,
        128,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + body


def ipv6(src: str, dst: str, nh: int, body: bytes) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(body),
            nh,
            64,
            ipaddress.IPv6Address(src).packed,
            ipaddress.IPv6Address(dst).packed,
        )
        + body
    )


def ether(payload: bytes, ethertype: int = 0x0800, dst: bytes = MAC_A, src: bytes = MAC_B) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _built(tmp_path, pointer_size=8):
    """Single-event and fragmented packets, both directions, Ethernet and raw IP, with other events around."""
    w = EtlWriter(pointer_size=pointer_size, start=START)
    t = lambda ms: START + timedelta(milliseconds=ms)
    frames = [
        # (frame, direction, link, ifindex, time, fragment_size)
        (
            ether(ipv4("10.0.0.5", "10.0.0.1", 6, tcp_segment(50000, 443, 0x02))),
            "in",
            "ethernet",
            12,
            t(1),
            None,
        ),
        (
            ether(ipv4("10.0.0.1", "10.0.0.5", 6, tcp_segment(443, 50000, 0x12))),
            "out",
            "ethernet",
            12,
            t(2),
            None,
        ),
        (
            ether(
                ipv4("10.0.0.1", "10.0.0.5", 6, tcp_segment(443, 50000, 0x18, payload=bytes(range(256)) * 5))
            ),
            "out",
            "ethernet",
            12,
            t(3),
            600,
        ),
        (
            ether(ipv6("fe80::1", "ff02::1:3", 17, udp(5355, 5355, b"\x12\x34" * 20)), 0x86DD),
            "in",
            "ethernet",
            12,
            t(4),
            None,
        ),
        (ipv4("100.64.1.2", "8.8.8.8", 17, udp(53001, 53, b"q" * 30)), "out", "wwan", 7, t(5), None),
        (ipv4("8.8.8.8", "100.64.1.2", 17, udp(53, 53001, b"r" * 900)), "in", "wwan", 7, t(6), 256),
    ]
    w.event(NDIS_PACKETCAPTURE, 1011, struct.pack("<I", 0), time=t(0))  # "Capture Rules Count=0"
    for frame, direction, link, ifindex, when, frag in frames:
        w.ndis_packet(frame, time=when, ifindex=ifindex, direction=direction, link=link, fragment_size=frag)
        w.event(
            NDIS_PACKETCAPTURE, 1002, struct.pack("<III", ifindex, ifindex, 0), time=when
        )  # metadata, no frame
    return w, frames, w.write(tmp_path / f"ndis{pointer_size}.etl")


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_frames_and_directions_as_built(tmp_path, pointer_size):
    w, frames, path = _built(tmp_path, pointer_size)
    df = read_etl_frames(path, with_data=True)
    assert df.height == len(frames)
    assert df["data"].to_list() == [f[0] for f in frames]
    assert df["direction"].to_list() == [f[1] for f in frames]
    assert df["link_type"].to_list() == [LINKTYPE_ETHERNET] * 4 + [LINKTYPE_RAW] * 2
    assert df["interface"].to_list() == [f[3] for f in frames]
    assert df["time"].dt.epoch("ns").to_list() == [w.decoded_ns(f[4]) for f in frames]
    assert df["frame"].to_list() == list(range(1, 7))
    assert df["caplen"].to_list() == df["wirelen"].to_list() == [len(f[0]) for f in frames]
    # the frames table sees through the link layer
    assert df["protocol"].to_list() == ["TCP", "TCP", "TCP", "UDP", "UDP", "UDP"]
    assert df["src_addr"].to_list() == [
        "10.0.0.5",
        "10.0.0.1",
        "10.0.0.1",
        "fe80::1",
        "100.64.1.2",
        "8.8.8.8",
    ]
    assert df["dst_port"].to_list() == [443, 50000, 50000, 5355, 53, 53001]
    assert df["tcp_flags"].to_list()[:3] == [0x02, 0x12, 0x18]
    assert df["payload_len"].to_list()[2] == 1280 and df["payload_len"].to_list()[5] == 900
    assert df["notes"].null_count() == df.height
    assert has_packets(path)


def test_fragments_interleaved_with_another_thread(tmp_path):
    """Fragments of two packets logged by two threads on two processors join per thread, whatever the file order."""
    w = EtlWriter(start=START, buffer_size=0x1000)
    big1 = ether(ipv4("192.0.2.1", "192.0.2.2", 17, udp(1, 2, b"A" * 3000)))
    big2 = ether(ipv4("192.0.2.3", "192.0.2.4", 17, udp(3, 4, b"B" * 2000)))
    t1, t2 = START + timedelta(microseconds=10), START + timedelta(microseconds=11)
    n1 = w.ndis_packet(big1, time=t1, direction="in", fragment_size=700, tid=100, processor=0)
    n2 = w.ndis_packet(big2, time=t2, direction="in", fragment_size=700, tid=200, processor=1)
    assert (n1, n2) == (5, 3)
    df = read_etl_frames(w.write(tmp_path / "inter.etl"), with_data=True)
    assert df["data"].to_list() == [big1, big2]
    assert df["src_port"].to_list() == [1, 3]


def test_truncated_and_incomplete(tmp_path, caplog):
    """PacketTruncated: caplen is what was logged, wirelen from the IP header; a start without end is kept and said."""
    w = EtlWriter(start=START)
    full = ether(ipv4("10.1.1.1", "10.1.1.2", 6, tcp_segment(80, 51000, 0x10, payload=b"x" * 1400)))
    w.ndis_packet(full, time=timedelta(milliseconds=1), direction="out", truncated_to=128)
    head = ether(ipv4("10.1.1.1", "10.1.1.2", 17, udp(9, 9, b"z" * 500)))
    # first fragment only: the capture stopped before PacketEnd
    w.event(
        NDIS_PACKETCAPTURE,
        1001,
        struct.pack("<III", 12, 12, 200) + head[:200] + bytes(16),
        time=timedelta(milliseconds=2),
        keyword=KW_ETHERNET | KW_START | KW_RECEIVE,
    )
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_etl_frames(w.write(tmp_path / "trunc.etl"), with_data=True)
    assert df["caplen"].to_list() == [128, 200]
    assert df["wirelen"].to_list() == [len(full), 200]
    assert df["data"].to_list() == [full[:128], head[:200]]
    assert df["notes"].to_list()[0].startswith("truncated")
    assert "incomplete" in df["notes"].to_list()[1]
    assert df["direction"].to_list() == ["out", "in"]
    assert "1 NDIS packet(s) without their first or last fragment" in caplog.text


def test_damaged_event_is_skipped_and_reported(tmp_path, caplog):
    """A FragmentSize running past the event costs that event only, with a warning naming the file."""
    w = EtlWriter(start=START)
    good = ether(ipv4("10.2.2.2", "10.2.2.3", 6, tcp_segment(1, 2, 0x02)))
    w.event(
        NDIS_PACKETCAPTURE,
        1001,
        struct.pack("<III", 12, 12, 5000) + good,
        time=timedelta(milliseconds=1),
        keyword=KW_ETHERNET | KW_START | KW_END | KW_RECEIVE,
    )
    w.ndis_packet(good, time=timedelta(milliseconds=2))
    path = w.write(tmp_path / "bad.etl")
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_etl_frames(path, with_data=True)
    assert df["data"].to_list() == [good]
    assert f"{path}: skipped 1 packet event(s)" in caplog.text


def test_packets_for_a_pcapng_writer(tmp_path):
    w, frames, path = _built(tmp_path)
    pk = list(iter_etl_packets(path))
    assert [p.data for p in pk] == [f[0] for f in frames]
    assert [p.interface for p in pk] == [12, 12, 12, 12, 7, 7]
    assert [p.direction for p in pk] == [f[1] for f in frames]
    assert [p.time_ns for p in pk] == [w.decoded_ns(f[4]) for f in frames]
    interfaces, packets = iter_etl_capture(path)
    assert [(i.name, i.link_type, i.tsresol) for i in interfaces] == [
        ("NDIS ifindex 7", LINKTYPE_RAW, 9),
        ("NDIS ifindex 12", LINKTYPE_ETHERNET, 9),
    ]
    assert [p.interface for p in packets] == [1, 1, 1, 1, 0, 0]


def test_no_packets(tmp_path):
    w = EtlWriter(start=START)
    w.tcpip_counters(1025, (0, 0, 0, 0, 0, 0), time=timedelta(seconds=1))
    path = w.write(tmp_path / "none.etl")
    assert not has_packets(path)
    df = read_etl_frames(path)
    assert df.height == 0 and "time" in df.columns
    assert df.schema["time"] == pl.Datetime("ns", "UTC")


def test_lost_packet_end_then_whole_packets(tmp_path, caplog):
    """A first fragment whose PacketEnd was lost is closed by the next packet of the same thread, kept
    with its own time and the note 'incomplete'; whole packets of other threads are unaffected."""
    w = EtlWriter(start=START)
    a = ether(ipv4("10.3.3.1", "10.3.3.2", 17, udp(7, 7, b"a" * 300)))
    b = ether(ipv4("10.3.3.1", "10.3.3.2", 17, udp(8, 8, b"b" * 40)))
    c = ether(ipv4("10.3.3.9", "10.3.3.2", 17, udp(9, 9, b"c" * 40)))
    w.event(
        NDIS_PACKETCAPTURE,
        1001,
        struct.pack("<III", 12, 12, 100) + a[:100] + bytes(16),
        time=timedelta(milliseconds=1),
        keyword=KW_ETHERNET | KW_START | KW_RECEIVE,
        tid=5,
    )
    w.ndis_packet(c, time=timedelta(milliseconds=2), direction="in", tid=6)
    w.ndis_packet(b, time=timedelta(milliseconds=3), direction="in", tid=5)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_etl_frames(w.write(tmp_path / "lost.etl"), with_data=True)
    assert df["data"].to_list() == [a[:100], c, b]
    assert df["time"].dt.epoch("ns").to_list() == [w.to_ns(timedelta(milliseconds=k)) for k in (1, 2, 3)]
    assert df["notes"].to_list() == ["incomplete", None, None]
    assert df["src_port"].to_list() == [7, 9, 8]


def test_truncated_wire_lengths(tmp_path):
    """packettruncatebytes=N captures: the length on the wire comes from the IP header (IPv4, IPv6,
    802.1Q-tagged, raw IP); a non-IP frame keeps its captured length."""
    w = EtlWriter(start=START)
    v4 = ether(ipv4("10.1.1.1", "10.1.1.2", 17, udp(1, 2, b"a" * 1000)))
    v6 = ether(ipv6("2001:db8::1", "2001:db8::2", 17, udp(1, 2, b"b" * 700)), 0x86DD)
    tagged = (
        MAC_A
        + MAC_B
        + struct.pack("!HHH", 0x8100, 42, 0x0800)
        + ipv4("10.1.1.1", "10.1.1.3", 17, udp(1, 2, b"c" * 300))
    )
    raw = ipv4("100.64.0.1", "8.8.8.8", 17, udp(1, 53, b"d" * 200))
    arp = ether(b"\x00\x01\x08\x00\x06\x04\x00\x01" + bytes(20) + bytes(40), 0x0806)
    for i, (frame, link) in enumerate(
        [(v4, "ethernet"), (v6, "ethernet"), (tagged, "ethernet"), (raw, "wwan"), (arp, "ethernet")]
    ):
        w.ndis_packet(frame, time=timedelta(milliseconds=i + 1), truncated_to=64, link=link)
    df = read_etl_frames(w.write(tmp_path / "wire.etl"))
    assert df["caplen"].to_list() == [64] * 5
    assert df["wirelen"].to_list() == [len(v4), len(v6), len(tagged), len(raw), 64]
    assert df["notes"].to_list()[0].startswith("truncated")
