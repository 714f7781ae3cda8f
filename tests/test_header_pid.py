"""Header PID/TID of captures converted from ETW: pcapng option 8 and etl2pcapng's ``PID=n TID=m`` comment.

No public capture in the corpus carries them (checked: the OTRF .cap files are classic pcap, the OTRF
and pktmon .pcapng files have no comment and no option 8), so these files are built from the real
demikernel pktmon capture's packets with the project's own pcapng writer; option 8 is laid out as
etl2pcapng writes it (code 8, length 8, PID u32, TID u32, after epb_flags and before the comment).
"""

from __future__ import annotations

import struct
from dataclasses import replace

from etwtools.parsers import pcapng
from etwtools.sources import read_frames


def test_corpus_captures_have_no_header_pid(corpus):
    files = [
        corpus / "pktmon" / "demikernel-PktMon.pcapng",
        *sorted((corpus / "otrf").glob("*/*.pcapng")),
        *sorted((corpus / "otrf").glob("*/*.cap")),
    ]
    assert len(files) == 7
    for f in files:
        fr = read_frames(f)
        assert fr.height and fr["header_pid"].null_count() == fr.height, f
        assert fr["header_tid"].null_count() == fr.height


def test_comment_pid_tid(corpus, tmp_path):
    interfaces, packets = pcapng.iter_packets(corpus / "pktmon" / "demikernel-PktMon.pcapng")
    packets = list(packets)
    notes = ["PID=4 TID=120", "PID=1234 TID=5678 VlanId=0 SrcPortId=3", "PID=77", None, "VlanId=1 PID=x"]
    out = tmp_path / "comments.pcapng"
    pcapng.write_pcapng(out, interfaces, [replace(p, comment=notes[i % 5]) for i, p in enumerate(packets)])
    fr = read_frames(out)
    assert fr.height == 114
    assert fr["header_pid"].head(5).to_list() == [4, 1234, 77, None, None]
    assert fr["header_tid"].head(5).to_list() == [120, 5678, None, None, None]
    assert (
        fr["src_addr"].to_list()
        == read_frames(corpus / "pktmon" / "demikernel-PktMon.pcapng")["src_addr"].to_list()
    )


def _epb(p, options: bytes) -> bytes:
    data = bytes(p.data)
    ticks = p.time_ns // 1000
    return pcapng._block(
        pcapng.EPB,
        struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
        + data
        + b"\0" * (-len(data) % 4)
        + options,
    )


def test_option_8_wins_over_comment(corpus, tmp_path):
    interfaces, packets = pcapng.iter_packets(corpus / "pktmon" / "demikernel-PktMon.pcapng")
    packets = list(packets)[:4]
    opt = pcapng._option
    blocks = [
        opt(2, struct.pack("<I", 2))
        + opt(8, struct.pack("<II", 3120, 4411))
        + opt(1, b"PID=3120 TID=4411")
        + opt(0, b""),
        opt(8, struct.pack("<II", 99, 7)) + opt(1, b"PID=5 TID=6") + opt(0, b""),  # option 8 wins
        opt(2, struct.pack("<I", 1)) + opt(0, b""),  # no PID
        opt(8, struct.pack("<I", 12)) + opt(0, b""),  # too short: ignored
    ]
    out = tmp_path / "opt8.pcapng"
    out.write_bytes(
        pcapng._block(pcapng.SHB, struct.pack("<IHHq", pcapng.BYTE_ORDER_MAGIC, 1, 0, -1))
        + pcapng._block(pcapng.IDB, struct.pack("<HHI", interfaces[0].link_type, 0, 65535))
        + b"".join(_epb(p, o) for p, o in zip(packets, blocks))
    )
    fr = read_frames(out)
    assert fr["header_pid"].to_list() == [3120, 99, None, None]
    assert fr["header_tid"].to_list() == [4411, 7, None, None]
    assert fr["direction"].to_list()[:3] == ["out", None, "in"]  # no epb_flags: no direction
