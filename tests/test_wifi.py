"""802.11 frames (Wi-Fi) dissected to LLC/SNAP -> IPv4/IPv6 -> TCP/UDP in pcap, pcapng and ETL inputs.

No real Wi-Fi pktmon trace with a licence is public, so the frames are BUILT here from the published
layouts (IEEE 802.11-2020 clause 9.2 MAC header and frame control, QoS Control, HT Control; IEEE 802.2
LLC + RFC 1042 SNAP; radiotap.org's header) and written with the project's own writers: pcap
(LINKTYPE_IEEE802_11 105), pcapng (105 and radiotap 127 on two interfaces), and ETL as pktmon logs
them (PacketType 2) and as netsh's NDIS capture does on a native Wi-Fi adapter (keyword Native802.11).
Debian's tshark dissects the same pcapng as the independent check.
"""

from __future__ import annotations

import struct
import subprocess
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.captured_frames import iter_etl_capture, read_etl_frames
from etwtools.parsers.packets import Interface, Packet, dissect
from etwtools.parsers.pcap import read_pcap, write_pcap
from etwtools.parsers.pcapng import read_interfaces, read_pcapng, write_pcapng

T0 = datetime(2025, 2, 3, 8, 0, tzinfo=UTC)
AP, STA, DA = bytes.fromhex("a0b1c2d3e4f5"), bytes.fromhex("020000000001"), bytes.fromhex("0a0b0c0d0e0f")


def _ipv4(proto: int, body: bytes, src=(192, 168, 1, 20), dst=(142, 250, 74, 36)) -> bytes:
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0x1234, 0, 64, proto, 0, bytes(src), bytes(dst))
        + body
    )


def _ipv6(nh: int, body: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 0x60000000, len(body), nh, 64)
        + bytes.fromhex("fe80" + "00" * 12 + "0001")
        + bytes.fromhex("2001" + "0db8" + "00" * 11 + "02")
        + body
    )


def _tcp(sport: int, dport: int, payload: bytes = b"", flags: int = 0x18) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _snap(ethertype: int) -> bytes:
    return bytes([0xAA, 0xAA, 0x03, 0, 0, 0]) + struct.pack("!H", ethertype)


def _wlan(
    subtype: int,
    body: bytes,
    *,
    to_ds=True,
    from_ds=False,
    qos_tid: int | None = None,
    amsdu=False,
    htc=False,
    protected=False,
    ftype=2,
) -> bytes:
    """An 802.11 frame: frame control (type/subtype, flags), duration, addresses, sequence control,
    [Address 4], [QoS Control], [HT Control], body."""
    fc0 = (ftype << 2) | (subtype << 4)
    fc1 = (1 if to_ds else 0) | (2 if from_ds else 0) | (0x40 if protected else 0) | (0x80 if htc else 0)
    hdr = bytes([fc0, fc1]) + struct.pack("<H", 44) + AP + STA + DA + struct.pack("<H", 0x10)
    if to_ds and from_ds:
        hdr += STA
    if qos_tid is not None:
        hdr += bytes([qos_tid | (0x80 if amsdu else 0), 0])
        if htc:
            hdr += b"\x00\x00\x00\x00"
    return hdr + body


def _radiotap(frame: bytes) -> bytes:
    # version 0, pad, length 12, present = Flags (bit 1) | Rate (bit 2); flags 0, rate 0x6c, pad to 12
    return struct.pack("<BBHI", 0, 0, 12, 0x6) + bytes([0x00, 0x6C, 0, 0]) + frame


def _frames() -> list[tuple[bytes, dict]]:
    """(802.11 frame, what it carries) for every case the dissector must tell apart."""
    http = _ipv4(6, _tcp(50123, 443, b"hello"))
    dns = _ipv4(17, _udp(53001, 53, b"\x12\x34" + b"\0" * 10), dst=(192, 168, 1, 1))
    v6 = _ipv6(17, _udp(5353, 5353, b"mdns!"))
    amsdu_sub = DA + STA + struct.pack("!H", 8 + len(http)) + _snap(0x0800) + http
    return [
        (_wlan(0, _snap(0x0800) + http), dict(protocol="TCP", src_port=50123, dst_port=443, payload_len=5)),
        (
            _wlan(8, _snap(0x0800) + dns, qos_tid=6),
            dict(protocol="UDP", src_port=53001, dst_port=53, payload_len=12),
        ),
        (
            _wlan(8, _snap(0x86DD) + v6, qos_tid=0, to_ds=False, from_ds=True),
            dict(protocol="UDP", ip_version=6, src_port=5353, dst_port=5353, payload_len=5),
        ),
        (
            _wlan(8, _snap(0x0800) + http, qos_tid=5, htc=True),  # QoS + HT Control (+HTC/Order bit)
            dict(protocol="TCP", src_port=50123, dst_port=443, payload_len=5),
        ),
        (
            _wlan(0, _snap(0x0800) + dns, to_ds=True, from_ds=True),  # WDS / mesh: four addresses
            dict(protocol="UDP", src_port=53001, dst_port=53, payload_len=12),
        ),
        (
            _wlan(8, amsdu_sub, qos_tid=0, amsdu=True),
            dict(protocol="TCP", src_port=50123, dst_port=443, payload_len=5),
        ),
        (
            _wlan(0, _snap(0x0800) + http, protected=True),  # decrypted body, Protected bit still set
            dict(protocol="TCP", src_port=50123, dst_port=443, payload_len=5),
        ),
        (
            _wlan(8, bytes(range(40)), qos_tid=0, protected=True),
            dict(protocol="other", notes="802.11-protected"),
        ),
        (_wlan(12, b"", qos_tid=0), dict(protocol="other", notes="802.11-no-body")),  # QoS Null
        (
            _wlan(8, b"", ftype=0, to_ds=False) + b"\x00" * 12,
            dict(protocol="other", notes="802.11-management"),
        ),
        (
            bytes([0xB4, 0]) + struct.pack("<H", 0) + AP + STA,
            dict(protocol="other", notes="802.11-control"),
        ),  # RTS
        (_wlan(0, b"\x00" * 30, ftype=3), dict(protocol="other", notes="802.11-unknown-type")),
        (_wlan(0, _snap(0x0806) + b"\x00" * 28), dict(protocol="other")),  # ARP over SNAP
        (_wlan(8, _snap(0x0800)[:5], qos_tid=0), dict(protocol="other", notes="truncated")),
    ]


def _check(df: pl.DataFrame, cases) -> None:
    assert df.height == len(cases)
    for row, (_, want) in zip(df.iter_rows(named=True), cases):
        for k, v in want.items():
            assert row[k] == v, (k, row, want)
        if want["protocol"] != "other":
            assert row["ip_version"] == want.get("ip_version", 4)
            assert row["notes"] is None, row
    # no TCP/UDP frame inside an 802.11 data frame left as "other"
    assert df.filter(pl.col("protocol") == "other")["notes"].null_count() == 1  # the ARP frame


def _packets(frames, radiotap=False):
    return [
        Packet(
            time_ns=int((T0 + timedelta(milliseconds=i)).timestamp() * 1e9),
            data=_radiotap(f) if radiotap else f,
        )
        for i, (f, _) in enumerate(frames)
    ]


def test_dissect_80211():
    cases = _frames()
    df = dissect([p.time_ns for p in _packets(cases)], [f for f, _ in cases], 105)
    _check(df, cases)
    rt = dissect([p.time_ns for p in _packets(cases)], [_radiotap(f) for f, _ in cases], 127)
    _check(rt, cases)
    assert rt["src_addr"].to_list() == df["src_addr"].to_list()
    assert df["src_addr"][2] == "fe80::1" and df["dst_addr"][0] == "142.250.74.36"


def test_pcap_and_pcapng(tmp_path):
    cases = _frames()
    pcap = tmp_path / "wifi.pcap"
    write_pcap(pcap, _packets(cases), link_type=105)
    _check(read_pcap(pcap), cases)
    ng = tmp_path / "wifi.pcapng"
    plain, radio = _packets(cases), _packets(cases, radiotap=True)
    for p in radio:
        p.interface = 1
    write_pcapng(ng, [Interface(105, name="wlan0"), Interface(127, name="wlan0mon")], plain + radio)
    df = read_pcapng(ng)
    _check(df.filter(pl.col("interface") == 0), cases)
    _check(df.filter(pl.col("interface") == 1), cases)


def test_tshark_agrees(tmp_path, tshark):
    """Debian's tshark dissects the same pcapng (802.11 and radiotap interfaces) to the same ports."""
    cases = _frames()
    ng = tmp_path / "wifi.pcapng"
    radio = _packets(cases, radiotap=True)
    for p in radio:
        p.interface = 1
    write_pcapng(ng, [Interface(105), Interface(127)], _packets(cases) + radio)
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(ng),
            "-o",
            "wlan.ignore_wep:Yes - with IV",
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
            "-e",
            "udp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.dstport",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.splitlines()
    theirs = [tuple(int(x) if x else None for x in (line.split("\t") + ["", "", "", ""])[:4]) for line in out]
    df = read_pcapng(ng)
    ours = [
        (r["src_port"], r["dst_port"]) if r["protocol"] == "TCP" else (None, None)
        for r in df.iter_rows(named=True)
    ]
    assert len(theirs) == len(ours) == 2 * len(cases)
    tcp_theirs = [(t[0], t[2]) if t[0] is not None else (None, None) for t in theirs]
    # tshark reads the TCP ports of every TCP frame but the still-"protected" one it cannot trust
    for mine, its, (_, want) in zip(ours, tcp_theirs, cases + cases):
        if its != (None, None):
            assert mine == its
        elif want["protocol"] == "TCP":
            assert want.get("notes") is None
    udp = [(t[1], t[3]) for t in theirs if t[1] is not None]
    assert udp == [(r["src_port"], r["dst_port"]) for r in df.iter_rows(named=True) if r["protocol"] == "UDP"]


@pytest.mark.parametrize("how", ["pktmon", "ndis"])
def test_etl_80211(tmp_path, how):
    """pktmon PacketType 2 and NDIS Native802.11 frames in an ETL: the same dissection; a Wi-Fi
    component that also logs Ethernet frames gets one pcapng interface per link type."""
    cases = _frames()
    w = EtlWriter(start=T0)
    for i, (f, _) in enumerate(cases):
        t = timedelta(milliseconds=1 + i)
        if how == "pktmon":
            w.pktmon_packet(f, time=t, packet_type=2, component=7, group_id=100 + i)
        else:
            w.ndis_packet(f, time=t, link="802.11", ifindex=7)
    eth = bytes(6) + bytes(6) + b"\x08\x00" + _ipv4(6, _tcp(1, 2))
    if how == "pktmon":
        w.pktmon_packet(eth, time=timedelta(seconds=1), packet_type=1, component=7, group_id=999)
    else:
        w.ndis_packet(eth, time=timedelta(seconds=1), link="ethernet", ifindex=7)
    path = w.write(tmp_path / f"{how}.etl")
    df = read_etl_frames(path)
    _check(df.head(len(cases)), cases)
    assert df["link_type"].to_list() == [105] * len(cases) + [1]
    assert df["protocol"][-1] == "TCP"
    interfaces, packets = iter_etl_capture(path)
    assert [i.link_type for i in interfaces] == [1, 105]
    assert [p.interface for p in packets] == [1] * len(cases) + [0]
    out = tmp_path / "back.pcapng"
    _, packets = iter_etl_capture(path)
    write_pcapng(out, interfaces, packets)
    assert [i.link_type for i in read_interfaces(out)] == [1, 105]
    again = read_pcapng(out, with_data=True)
    assert again["protocol"].to_list() == df["protocol"].to_list()
    # NDIS logs 802.11 bodies decrypted: the Protected bit is cleared on the way out, as etl2pcapng does
    flags = [d[1] & 0x40 for d in again["data"].to_list()[: len(cases)]]
    assert flags == [0x40 if how == "pktmon" and i in (6, 7) else 0 for i in range(len(cases))]
