"""Packet Monitor (pktmon) frames inside ETL files, checked against the pcapng pktmon itself wrote.

../corpus/pktmon holds a matched pair from microsoft/demikernel: PktMon.etl (Windows Server 2022,
compressed buffers, 403 PktMon events of which 114 are packet events, id 160) and the pcapng that
Packet Monitor wrote from that same ETL. The pcapng is the answer: same frames, same order, same
bytes, same times to the microsecond (pcapng stores microseconds; the ETL has 100 ns ticks).
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.captured_frames import has_packets, iter_etl_capture, read_etl_frames
from etwtools.parsers.etl.guids import PKTMON as PKTMON_GUID
from etwtools.parsers.pcapng import read_pcapng

START = datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pair(corpus):
    etl = read_etl_frames(corpus / "pktmon" / "demikernel-PktMon.etl", with_data=True, appearances=True)
    ref = read_pcapng(corpus / "pktmon" / "demikernel-PktMon.pcapng", with_data=True)
    return etl, ref


def test_pktmon_etl_gives_the_frames_of_its_pcapng(pair):
    """Issue 3, acceptance 1; issue 13: in --appearances mode."""
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
    assert etl.group_by("interface").len().sort("interface").rows() == [
        (48, 19),
        (50, 19),
        (59, 38),
        (61, 38),
    ]
    assert etl["notes"].null_count() == 114
    assert etl["component"].to_list()[:2] == [
        "Microsoft Hyper-V Network Adapter #3 [59]",
        "XDP Lightweight Filter [61]",
    ]


def test_pktmon_has_packets_and_interfaces(corpus):
    path = corpus / "pktmon" / "demikernel-PktMon.etl"
    assert has_packets(path)
    interfaces, packets = iter_etl_capture(path)
    # named from PktMon's component rundown (event 20) of the same file
    assert [i.name for i in interfaces] == [
        "PktMon component 48: Mellanox ConnectX-4 Lx Virtual Ethernet Adapter #2 (mlx5.sys)",
        "PktMon component 50: NETVSCVFPP (NULL)",
        "PktMon component 59: Microsoft Hyper-V Network Adapter #3 (netvsc.sys)",
        "PktMon component 61: XDP Lightweight Filter (xdp.sys)",
    ]
    assert {i.link_type for i in interfaces} == {1}
    assert sum(1 for _ in packets) == 38  # one per packet by default
    _, packets = iter_etl_capture(path, appearances=True)
    assert sum(1 for _ in packets) == 114


def test_corpus_files_without_packets(corpus):
    """The PerfView kernel trace has network events but no frames."""
    path = corpus / "perfview" / "smallEtlFile.etl"
    assert not has_packets(path)
    assert read_etl_frames(path).height == 0


def _udp_ipv4() -> bytes:
    body = struct.pack("!HHHH", 5000, 53, 8 + 4, 0) + b"abcd"
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(body),
            7,
            0,
            64,
            17,
            0,
            bytes([10, 0, 0, 1]),
            bytes([10, 0, 0, 2]),
        )
        + body
    )


@pytest.mark.parametrize("pointer_size", [4, 8])
def test_built_pktmon(tmp_path, pointer_size):
    """BUILT file (no public pktmon trace has drops or mobile-broadband frames): event 170 with a
    DropReason, PacketType 3 (raw IP), DirTag 0 (unknown), an OriginalPayloadSize larger than logged."""
    w = EtlWriter(pointer_size=pointer_size, start=START)
    frame = _udp_ipv4()
    w.pktmon_packet(frame, time=timedelta(milliseconds=1), packet_type=3, direction="out", component=9)
    w.pktmon_packet(
        frame,
        time=timedelta(milliseconds=2),
        packet_type=3,
        direction=None,
        component=9,
        event_id=170,
        drop_reason=25,
        drop_location=0xE0004,
    )
    w.pktmon_packet(
        frame[:20],
        time=timedelta(milliseconds=3),
        packet_type=3,
        direction="in",
        component=9,
        original_size=len(frame),
    )
    df = read_etl_frames(w.write(tmp_path / "pm.etl"), with_data=True, appearances=True)
    assert df["direction"].to_list() == ["out", "unknown", "in"]
    assert df["link_type"].to_list() == [101, 101, 101]
    assert df["data"].to_list() == [frame, frame, frame[:20]]
    assert df["caplen"].to_list() == [32, 32, 20] and df["wirelen"].to_list() == [32, 32, 32]
    assert (
        df["notes"].to_list()[1] == "dropped at component 9: InvalidVlanFormat (reason 25) location 0xe0004"
    )
    assert df["dst_port"].to_list()[:2] == [53, 53]
    assert df.schema["time"] == pl.Datetime("ns", "UTC")


def _independent_pktmon(path):
    """(PktGroupId, PktNumber, ComponentId, DropReason) of every PktMon packet event, read with
    dissect.etl (its own container walk; it reads provider GUIDs in the other byte order) and
    ``struct`` on the documented 34-byte header: nothing of etwtools' reader is used."""
    import uuid

    from dissect.etl.etl import ETL

    from etwtools.parsers.etl.guids import PKTMON

    out = []
    with open(path, "rb") as f:
        for rec in ETL(f):
            h = rec.header
            guid = getattr(h, "provider_id", None)
            if guid is None:
                continue
            g = uuid.UUID(str(guid))
            if PKTMON not in (g, uuid.UUID(bytes_le=g.bytes)) or h.descriptor.id not in (160, 170):
                continue
            group, number, _, _, _, comp = struct.unpack_from("<QHHHHH", bytes(h.payload), 0)
            reason = struct.unpack_from("<I", bytes(h.payload), 22)[0]
            out.append((h.timestamp, group, number, comp, reason))
    return out


def test_pktmon_one_row_per_packet(corpus):
    """Issue 13, acceptance 1: the default view has each packet once (PktGroupId + PktNumber), with the
    path of components it crossed; counts match an independent dedupe of the same events."""
    path = corpus / "pktmon" / "demikernel-PktMon.etl"
    events = sorted(_independent_pktmon(path), key=lambda e: e[0])
    assert len(events) == 114
    first: dict = {}
    path_of: dict = {}
    for _, group, number, comp, _ in events:
        first.setdefault((group, number), len(first))
        path_of.setdefault((group, number), []).append(comp)
    df = read_etl_frames(path)
    assert df.height == len(first) == 38
    assert list(zip(df["pkt_group"].to_list(), df["pkt_number"].to_list())) == list(first)
    assert df["appearances"].to_list() == [len(path_of[k]) for k in first]
    assert df["appearances"].sum() == 114
    assert df["frame"].to_list() == list(range(1, 39))
    ids = [[int(x) for x in re.findall(r"\[(\d+)\]", c)] for c in df["components"].to_list()]
    assert ids == [path_of[k] for k in first]
    assert df["interface"].to_list() == [p[0] for p in ids]
    # 19 pings in (netvsc, then XDP), 19 replies out (XDP, netvsc, the VF path, the Mellanox NIC)
    by = df.group_by("direction", "appearances").len().sort("direction").rows()
    assert by == [("in", 2, 19), ("out", 4, 19)]
    assert df["components"][1] == (
        "XDP Lightweight Filter [61] > Microsoft Hyper-V Network Adapter #3 [59] > "
        "NETVSCVFPP [50] > Mellanox ConnectX-4 Lx Virtual Ethernet Adapter #2 [48]"
    )


def test_pktmon_cli_views(corpus):
    from click.testing import CliRunner

    from etwtools.cli import cli

    path = str(corpus / "pktmon" / "demikernel-PktMon.etl")
    one = CliRunner().invoke(cli, ["frames", "--etl", path, "-f", "csv"])
    every = CliRunner().invoke(cli, ["frames", "--etl", path, "--appearances", "-f", "csv"])
    assert one.exit_code == 0 and every.exit_code == 0
    assert pl.read_csv(one.stdout.encode()).height == 38
    assert pl.read_csv(every.stdout.encode()).height == 114


def test_built_pktmon_drops_and_paths(tmp_path):
    """BUILT (no public pktmon trace has drops): a packet seen by two components and dropped by the
    second keeps one row with the drop text; another packet of the same group (PktNumber 2) is its
    own row; component names come from the component rundown (event 20)."""
    w = EtlWriter(start=START)
    rundown = [
        (9, "Intel(R) Wi-Fi 6 AX201 160MHz", "Netwtw10.sys"),
        (12, "WFP Native MAC Layer LightWeight Filter", "wfplwfs.sys"),
    ]
    for comp, desc, driver in rundown:
        w.event(
            PKTMON_GUID,
            20,
            struct.pack("<HH", comp, 1) + (driver + "\0" + desc + "\0").encode("utf-16-le"),
            time=timedelta(0),
        )
    frame = _udp_ipv4()
    w.pktmon_packet(frame, time=timedelta(milliseconds=1), component=9, group_id=77, number=1, appearance=1)
    w.pktmon_packet(
        frame,
        time=timedelta(milliseconds=2),
        component=12,
        group_id=77,
        number=1,
        appearance=2,
        event_id=170,
        drop_reason=8,
        drop_location=0x1C,
    )
    w.pktmon_packet(frame, time=timedelta(milliseconds=3), component=9, group_id=77, number=2, appearance=1)
    w.pktmon_packet(
        frame,
        time=timedelta(milliseconds=4),
        component=9,
        group_id=78,
        number=1,
        appearance=1,
        event_id=170,
        drop_reason=9999,
    )
    path = w.write(tmp_path / "drops.etl")
    df = read_etl_frames(path)
    assert df.height == 3
    assert df["components"].to_list() == [
        "Intel(R) Wi-Fi 6 AX201 160MHz [9] > WFP Native MAC Layer LightWeight Filter [12]",
        "Intel(R) Wi-Fi 6 AX201 160MHz [9]",
        "Intel(R) Wi-Fi 6 AX201 160MHz [9]",
    ]
    assert df["notes"].to_list() == [
        "dropped at WFP Native MAC Layer LightWeight Filter [12]: Filtered (reason 8) location 0x1c",
        None,
        "dropped at Intel(R) Wi-Fi 6 AX201 160MHz [9]: reason 9999",
    ]
    assert df["appearances"].to_list() == [2, 1, 1]
    assert read_etl_frames(path, appearances=True).height == 4
