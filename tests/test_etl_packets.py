"""Packet Monitor (pktmon) frames inside ETL files, checked against the pcapng pktmon itself wrote.

../corpus/pktmon holds a matched pair from microsoft/demikernel: PktMon.etl (Windows Server 2022,
compressed buffers, 403 PktMon events of which 114 are packet events, id 160) and the pcapng that
Packet Monitor wrote from that same ETL. The pcapng is the answer: same frames, same order, same
bytes, same times to the microsecond (pcapng stores microseconds; the ETL has 100 ns ticks).
"""
from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.packets import has_packets, iter_etl_capture, read_etl_frames
from etwtools.parsers.pcapng import read_pcapng

START = datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pair(corpus):
    etl = read_etl_frames(corpus / "pktmon" / "demikernel-PktMon.etl", with_data=True)
    ref = read_pcapng(corpus / "pktmon" / "demikernel-PktMon.pcapng", with_data=True)
    return etl, ref


def test_pktmon_etl_gives_the_frames_of_its_pcapng(pair):
    """Issue 3, acceptance 1."""
    etl, ref = pair
    assert etl.height == ref.height == 114
    assert etl["data"].to_list() == ref["data"].to_list()
    assert etl["time"].dt.epoch("us").to_list() == ref["time"].dt.epoch("us").to_list()
    assert etl["frame"].to_list() == ref["frame"].to_list()
    assert etl["caplen"].to_list() == ref["caplen"].to_list()
    assert etl["wirelen"].to_list() == ref["wirelen"].to_list()
    # everything dissected from the bytes agrees too
    for col in ("ip_version", "protocol", "src_addr", "dst_addr", "ip_id", "payload_len", "link_type"):
        assert etl[col].to_list() == ref[col].to_list(), col


def test_pktmon_values(pair):
    """Real values: ICMP echo between 10.9.1.14 and 10.9.1.22, each frame once per component it crossed."""
    etl, _ = pair
    assert etl["protocol"].unique().to_list() == ["ICMP"]
    first = etl.row(0, named=True)
    assert (first["src_addr"], first["dst_addr"], first["wirelen"]) == ("10.9.1.14", "10.9.1.22", 98)
    assert first["time"] == datetime(2024, 6, 10, 20, 18, 35, 489172, tzinfo=UTC)
    assert int(etl["time"].dt.epoch("ns")[0]) % 1000 == 100  # the ETL's own 100 ns tick survives
    # direction from DirTag: the 38 frames to the traced host (.22) come in, the 76 of its replies go out
    by = etl.group_by("direction", "dst_addr").len().sort("direction").rows()
    assert by == [("in", "10.9.1.22", 38), ("out", "10.9.1.14", 76)]
    # interface = PktMon ComponentId; pktmon's pcapng has one interface and no direction flags
    assert etl.group_by("interface").len().sort("interface").rows() == [(48, 19), (50, 19), (59, 38), (61, 38)]
    assert etl["notes"].null_count() == 114


def test_pktmon_has_packets_and_interfaces(corpus):
    path = corpus / "pktmon" / "demikernel-PktMon.etl"
    assert has_packets(path)
    interfaces, packets = iter_etl_capture(path)
    # named from PktMon's component rundown (event 20) of the same file
    assert [i.name for i in interfaces] == [
        "PktMon component 48: Mellanox ConnectX-4 Lx Virtual Ethernet Adapter #2 (mlx5.sys)",
        "PktMon component 50: NETVSCVFPP (NULL)",
        "PktMon component 59: Microsoft Hyper-V Network Adapter #3 (netvsc.sys)",
        "PktMon component 61: XDP Lightweight Filter (xdp.sys)"]
    assert {i.link_type for i in interfaces} == {1}
    assert sum(1 for _ in packets) == 114


def test_corpus_files_without_packets(corpus):
    """The PerfView kernel trace has network events but no frames."""
    path = corpus / "perfview" / "smallEtlFile.etl"
    assert not has_packets(path)
    assert read_etl_frames(path).height == 0


def _udp_ipv4() -> bytes:
    body = struct.pack("!HHHH", 5000, 53, 8 + 4, 0) + b"abcd"
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 7, 0, 64, 17, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + body


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_built_pktmon(tmp_path, pointer_size):
    """BUILT file (no public pktmon trace has drops or mobile-broadband frames): event 170 with a
    DropReason, PacketType 3 (raw IP), DirTag 0 (unknown), an OriginalPayloadSize larger than logged."""
    w = EtlWriter(pointer_size=pointer_size, start=START)
    frame = _udp_ipv4()
    w.pktmon_packet(frame, time=timedelta(milliseconds=1), packet_type=3, direction="out", component=9)
    w.pktmon_packet(frame, time=timedelta(milliseconds=2), packet_type=3, direction=None, component=9,
                    event_id=170, drop_reason=25, drop_location=0xE0004)
    w.pktmon_packet(frame[:20], time=timedelta(milliseconds=3), packet_type=3, direction="in", component=9,
                    original_size=len(frame))
    df = read_etl_frames(w.write(tmp_path / "pm.etl"), with_data=True)
    assert df["direction"].to_list() == ["out", "unknown", "in"]
    assert df["link_type"].to_list() == [101, 101, 101]
    assert df["data"].to_list() == [frame, frame, frame[:20]]
    assert df["caplen"].to_list() == [32, 32, 20] and df["wirelen"].to_list() == [32, 32, 32]
    assert df["notes"].to_list()[1] == "dropped (reason 25)"
    assert df["dst_port"].to_list()[:2] == [53, 53]
    assert df.schema["time"] == pl.Datetime("ns", "UTC")
