"""--annotate: the capture written again as pcapng with a comment per attributed packet, read back with
the project's capture reader.

The captures are written here with the project's pcap/pcapng/ETL writers from frames built in
tests/test_truth_sets.py (build_frame: Ethernet + IP + UDP/TCP headers, zero payload); the seed case's
frames come from cases/exchange-udp/frames.txt with the README's UTC times and MACs.
"""

from __future__ import annotations

import datetime as dt
import re
import struct

import polars as pl
import pytest
from test_truth_sets import build_frame

from etwtools.annotate import comments, write_annotated
from etwtools.attribution import attribute
from etwtools.errors import CaptureError
from etwtools.parsers.captures import iter_capture_packets, read_capture
from etwtools.parsers.packets import Interface, Packet
from etwtools.parsers.pcap import write_pcap
from etwtools.parsers.pcapng import write_pcapng

NS = 1_000_000_000


def seed_pcap(case, path) -> None:
    """The seed case's 15 frames (UTC = the analyst's local time - 4 h, per the case README)."""
    names = {"dicom-tls": 2762}
    packets = []
    for line in (case / "frames.txt").read_text().splitlines()[1:]:
        _, ts, src, dst, sport, dport = re.match(
            r"(\d+) (\S+ \S+) (\S+) (\S+) UDP Source port: (\d+) Destination port: (\S+)$", line
        ).groups()
        utc = dt.datetime.fromisoformat(ts).replace(tzinfo=dt.UTC) - dt.timedelta(hours=4)
        t = int(utc.timestamp()) * NS + utc.microsecond * 1000
        port = int(dport) if dport.isdigit() else names.get(dport, 10000 + len(packets))
        data = build_frame(src, dst, "UDP", int(sport), port, 8)
        assert len(data) == 50  # the README: frame 105540 is 50 bytes on the wire
        packets.append(Packet(t, data, 0, len(data)))
    write_pcap(path, packets, link_type=1)


def test_annotated_seed_case_reads_back_with_one_comment_per_attributed_frame(cases, tmp_path):
    from etwtools.parsers.tasklist import read_tasklist
    from etwtools.parsers.tracerpt import read_tracerpt

    case = cases / "exchange-udp"
    pcap = tmp_path / "seed.pcap"
    seed_pcap(case, pcap)
    trace = read_tracerpt(case / "kernel.csv")
    procs = pl.concat([trace.processes, read_tasklist([case / "tasklist.txt"])], how="diagonal_relaxed")
    fr = read_capture(pcap)
    r = attribute(trace.events, fr, procs)
    assert r.offset_ns == 312_440_200
    # pcap frames are numbered from 1: the datagram of kernel line 1 is the 5th (105540 in the case)
    row = r.frames.row(4, named=True)
    assert (row["pid"], row["process"], row["confidence"]) == (2136, "store.exe", "high")

    out = tmp_path / "seed-annotated.pcapng"
    n = write_annotated(pcap, r, out)
    back = read_capture(out)
    assert back.height == fr.height
    same = ["frame", "time", "wirelen", "src_addr", "src_port", "dst_addr", "dst_port", "payload_len"]
    assert back.select(same).equals(fr.select(same))
    with_pid = r.frames.filter(pl.col("pid").is_not_null())["frame"].to_list()
    commented = back.filter(pl.col("comment").is_not_null())["frame"].to_list()
    assert commented == with_pid == [5, 15]
    assert n == 2
    c = back["comment"].to_list()
    assert c[4].split("\n")[:4] == [
        "PID: 2136",
        "Process: store.exe",
        "Confidence: high",
        "Method: udp-5tuple-size",
    ]
    assert c[4].split("\n")[4] == f"Reason: {r.frames['reason'][4]}"
    assert c[14].split("\n")[:4] == [
        "PID: 2136",
        "Process: store.exe",
        "Confidence: low",
        "Method: local-port",
    ]
    # only the attributions proper
    out2 = tmp_path / "high-only.pcapng"
    assert write_annotated(pcap, r, out2, min_confidence="medium") == 1
    assert read_capture(out2)["comment"].drop_nulls().to_list() == [c[4]]


def test_existing_comments_are_kept_and_packets_can_be_given_directly(tmp_path):
    t0 = 1_700_000_000 * NS
    host, peer = "192.0.2.10", "192.0.2.20"
    from test_attribution import events

    ev = events([(t0 + k * NS, "Send", "UDP", 4040, 100 + k, host, 6000 + k, peer, 53) for k in range(3)])
    iface = Interface(link_type=1, tsresol=9)
    pk = [
        Packet(
            t0 + k * NS + 5000,
            build_frame(host, peer, "UDP", 6000 + k, 53, 100 + k),
            0,
            None,
            "out",
            "PID=4040 TID=12" if k == 0 else None,
        )
        for k in range(3)
    ]
    pk.append(Packet(t0 + 5000, build_frame(peer, "192.0.2.99", "UDP", 1, 2, 7), 0, None, "in", None))
    src = tmp_path / "in.pcapng"
    write_pcapng(src, [iface], pk)
    fr = read_capture(src)
    r = attribute(ev, fr)
    assert r.frames["pid"].to_list() == [4040, 4040, 4040, None]
    comments_by_frame = comments(r)
    assert set(comments_by_frame) == {1, 2, 3}

    out = tmp_path / "out.pcapng"
    assert write_annotated(src, r, out) == 3
    back = read_capture(out)
    got = back["comment"].to_list()
    # the packet's own comment stays first, as an option of its own (the reader joins options with newlines)
    assert got[0].split("\n")[:5] == [
        "PID=4040 TID=12",
        "PID: 4040",
        "Process: (unknown)",
        "Confidence: high",
        "Method: udp-5tuple-size",
    ]
    assert got[1].startswith("PID: 4040\n") and got[3] is None
    assert back["direction"].to_list() == ["out", "out", "out", "in"]

    # (interfaces, packets) instead of a path
    ifs, packets = iter_capture_packets(src)
    out3 = tmp_path / "direct.pcapng"
    assert write_annotated((ifs, packets), r, out3) == 3
    assert read_capture(out3)["comment"].to_list() == got


def test_a_packet_without_time_gives_a_capture_error(tmp_path):
    from test_attribution import events

    t0 = 1_700_000_000 * NS
    ev = events([(t0, "Send", "UDP", 1, 10, "192.0.2.1", 5, "192.0.2.2", 6)])
    data = build_frame("192.0.2.1", "192.0.2.2", "UDP", 5, 6, 10)
    src = tmp_path / "a.pcapng"
    write_pcapng(src, [Interface(link_type=1)], [Packet(t0, data)])
    r = attribute(ev, read_capture(src))
    with pytest.raises(CaptureError, match="cannot write the annotated capture"):
        write_annotated(([Interface(link_type=1)], [Packet(None, data)]), r, tmp_path / "b.pcapng")


def test_etl_with_packets_and_events_is_annotated(tmp_path):
    """An ETL holding both NDIS packet events (netsh trace capture=yes) and kernel UdpIp events, built
    with the project's ETL writer: the packets are attributed and written out as annotated pcapng."""
    from etwtools.parsers.etl.build import EtlWriter
    from etwtools.parsers.etl.captured_frames import read_etl_frames
    from etwtools.parsers.etl.events import read_timeline

    start = dt.datetime(2024, 6, 10, 20, 0, 0, tzinfo=dt.UTC)
    w = EtlWriter(pointer_size=8, start=start)
    host, peer = "10.20.30.40", "10.20.30.1"

    def ip4(a: str) -> bytes:
        return bytes(int(x) for x in a.split("."))

    for k in range(4):
        t = start + dt.timedelta(milliseconds=100 * k)
        size = 40 + k
        # kernel UdpIp SendIPV4 (group 0x08, opcode 10), version 2: PID, size, daddr, saddr, dport, sport,
        # seqnum, connid
        payload = (
            struct.pack("<II", 777, size)
            + ip4(peer)
            + ip4(host)
            + struct.pack(">HH", 53, 50000 + k)
            + struct.pack("<IQ", 0, 0)
        )
        w.kernel_event(0x08, 10, payload, time=t, version=2)
        w.ndis_packet(
            build_frame(host, peer, "UDP", 50000 + k, 53, size),
            time=t + dt.timedelta(microseconds=80),
            direction="out",
        )
    etl = w.write(tmp_path / "net.etl")
    tl = read_timeline(etl)
    fr = read_etl_frames(etl)
    assert tl.events.height == 4 and fr.height == 4
    r = attribute(tl.events, fr, tl.processes)
    assert r.frames["pid"].to_list() == [777] * 4
    assert set(r.frames["confidence"]) == {"high"}
    out = tmp_path / "net-annotated.pcapng"
    assert write_annotated(etl, r, out) == 4
    back = read_capture(out)
    assert back.height == 4
    assert all(c.startswith("PID: 777\n") for c in back["comment"].to_list())
    assert back["src_port"].to_list() == [50000, 50001, 50002, 50003]


def test_netmon_media_type_without_linktype_is_annotated(tmp_path):
    """A Network Monitor capture with a frame of a media type pcapng has no link type for (6: 802.11 with
    NetMon's radio header) used to crash --annotate (struct.error: exit 2). The capture is built with the
    project's NetMon writer; that frame's interface is written as LINKTYPE_USER0 and named after the media
    type, the other frames keep their link type, numbers and comments. (Found by the break-attribution
    review.)"""
    from test_attribution import events

    from etwtools.parsers.netmon import write_netmon

    t0 = 1_700_000_000 * NS
    ev = events(
        [(t0 + k * NS, "Send", "UDP", 42, 10, "192.0.2.1", 5000 + k, "192.0.2.2", 53) for k in range(3)]
    )
    packets = [
        Packet(t0 + k * NS + 1000, build_frame("192.0.2.1", "192.0.2.2", "UDP", 5000 + k, 53, 10))
        for k in range(3)
    ]
    packets.insert(1, Packet(t0 + 500_000, b"\x02" * 40))
    src = tmp_path / "wifi.cap"
    write_netmon(src, packets, media_types=[1, 6, 1, 1])
    r = attribute(ev, read_capture(src))
    out = tmp_path / "wifi-annotated.pcapng"
    assert write_annotated(src, r, out) == 3
    back = read_capture(out)
    assert back["link_type"].to_list() == [1, 147, 1, 1]
    assert back["src_port"].to_list() == [5000, None, 5001, 5002]
    assert [c is not None and c.startswith("PID: 42\n") for c in back["comment"].to_list()] == [
        True,
        False,
        True,
        True,
    ]
    ifaces, _ = iter_capture_packets(out)
    assert ifaces[1].name == "Network Monitor media type 0x0006"


# -- the command line on mismatched inputs: a clear reason, exit code 1, no traceback -------------------


def _cli(*args: str):
    from click.testing import CliRunner

    from etwtools.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_cli_capture_from_another_day(cases, tmp_path):
    case = cases / "exchange-udp"
    pcap = tmp_path / "seed.pcap"
    seed_pcap(case, pcap)
    frames = read_capture(pcap)
    later = tmp_path / "two-days-later.pcap"
    _, packets = iter_capture_packets(pcap)
    write_pcap(
        later, [Packet(p.time_ns + 2 * 86400 * NS, p.data, 0, p.wirelen) for p in packets], link_type=1
    )
    assert read_capture(later).height == frames.height
    res = _cli("attribute", "--etl", str(case / "kernel.csv"), "--pcap", str(later))
    assert res.exit_code == 1
    assert "error: nothing attributed:" in res.stderr
    assert "no candidate match" in res.stderr and "another day" in res.stderr
    assert "Traceback" not in res.output + res.stderr


def test_cli_capture_without_the_traced_host(cases, tmp_path):
    case = cases / "exchange-udp"
    pcap = tmp_path / "elsewhere.pcap"
    t0 = 1_263_468_014 * NS
    write_pcap(
        pcap,
        [
            Packet(t0 + k * 1000, build_frame("192.168.5.5", "192.168.5.6", "UDP", 1000 + k, 53, 8))
            for k in range(5)
        ],
        link_type=1,
    )
    res = _cli("attribute", "--etl", str(case / "kernel.csv"), "--pcap", str(pcap))
    assert res.exit_code == 1
    assert "none of the capture's 5 TCP/UDP frames is from or to the traced host" in res.stderr
    assert "Traceback" not in res.output + res.stderr


def test_cli_trace_without_network_events(corpus, cases, tmp_path):
    # ShutdownPerfDiagLogger.etl: a real trace with process and image events but no network events
    pcap = tmp_path / "seed.pcap"
    seed_pcap(cases / "exchange-udp", pcap)
    res = _cli(
        "attribute", "--etl", str(corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl"), "--pcap", str(pcap)
    )
    assert res.exit_code == 1
    assert "the trace has no usable TcpIp/UdpIp network events" in res.stderr
    assert "Traceback" not in res.output + res.stderr


def test_etl_packets_wait_on_disk_not_in_memory(corpus, tmp_path):
    """A real pktmon ETL (demikernel, 114 packet events): with a spill file, the reader keeps no packet
    bytes in memory (no data column in its parts, all of them in the file) and gives back the same packets
    as the in-memory reader; iter_etl_capture spills beside the given folder and cleans up after itself."""
    import os

    from etwtools.parsers.etl.captured_frames import EtlPacketReader, _read, iter_etl_capture

    etl = corpus / "pktmon" / "demikernel-PktMon.etl"
    with open(tmp_path / "spill.bin", "w+b") as spill:
        reader = _read(etl, None, True, spill=spill)
        assert reader.parts and all("data" not in p.columns for p in reader.parts)
        frames = reader.frames()
        assert "_spill_off" not in frames.columns
        spilled = [p.data for p in reader.packets()]
        assert os.path.getsize(tmp_path / "spill.bin") == sum(int(p["caplen"].sum()) for p in reader.parts)
    memory = [p.data for p in _read(etl, None, True).packets()]
    assert spilled == memory and len(memory) == frames.height > 0
    assert EtlPacketReader(etl).spill is None
    _ifaces, packets = iter_etl_capture(etl, spill_dir=tmp_path)
    assert [f for f in os.listdir(tmp_path) if f.startswith("etwtools-")] == []  # unnamed temporary file
    got = [(p.time_ns, p.data) for p in packets]
    assert [d for _, d in got] == memory
    assert got[0][0] == frames["time"].dt.epoch("ns")[0]
