"""pcapng: the two real captures of the corpus, then hand-built files for what they do not hold (several
sections in both byte orders, several interfaces with their own if_tsresol/if_tsoffset, simple and
obsolete packet blocks, comments and epb_flags), written with struct from the pcapng specification's
block layouts (IETF draft-ietf-opsawg-pcapng)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from etwtools.parsers import pcapng
from etwtools.parsers.captures import iter_capture_packets, read_capture, sniff

FRAME = bytes.fromhex(  # Ethernet, IPv4 192.168.1.10 -> 10.20.30.40, UDP 49152 -> 53, 18 bytes
    "66778899aabb001122334455 0800"
    "4500002e 1c46 4000 4011 0000 c0a8010a 0a141e28"
    "c000 0035 001a 0000"
    "68656c6c6f2c20776f726c642121".replace(" ", "")
)


def ns(text: str) -> int:
    """ISO time (UTC) with up to 9 fractional digits to integer ns."""
    whole, _, frac = text.partition(".")
    t = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return int(t.timestamp()) * 10**9 + int((frac + "000000000")[:9])


def test_snmp_capture(corpus, walker):
    """tx/snmp.pcapng: 40 SNMP requests and responses of 2005 between two hosts (values checked with dpkt)."""
    df = read_capture(corpus / "tx" / "snmp.pcapng")
    assert df.height == 40
    assert df["frame"].to_list() == list(range(1, 41))
    assert set(df["protocol"]) == {"UDP"} and set(df["ip_version"]) == {4} and set(df["link_type"]) == {1}
    first, second, last = df.row(0, named=True), df.row(1, named=True), df.row(39, named=True)
    assert first["time"] == datetime(2005, 9, 8, 19, 34, 38, 562375, tzinfo=UTC)
    assert (first["src_addr"], first["src_port"], first["dst_addr"], first["dst_port"]) == (
        "172.31.19.54",
        15916,
        "172.31.19.73",
        161,
    )
    assert (first["caplen"], first["wirelen"], first["payload_len"], first["ip_id"]) == (82, 82, 40, 43545)
    assert (second["src_addr"], second["src_port"], second["dst_addr"], second["dst_port"]) == (
        "172.31.19.73",
        161,
        "172.31.19.54",
        15916,
    )
    assert (second["payload_len"], second["ip_id"]) == (58, 6683)
    assert last["time"].isoformat() == "2005-09-08T19:34:45.733451+00:00"
    assert (last["src_port"], last["dst_port"], last["payload_len"], last["ip_id"]) == (161, 15935, 67, 6704)
    requests = df.filter(pl.col("dst_port") == 161)
    assert requests["src_port"].to_list() == list(range(15916, 15936))
    assert requests["frame"].to_list() == list(range(1, 41, 2))
    assert df["payload_len"].sum() == 2407 and df["caplen"].sum() == 4087
    assert df["comment"].null_count() == 40 and df["direction"].null_count() == 40


def test_pktmon_capture(corpus, walker):
    """pktmon/demikernel-PktMon.pcapng (pktmon's own conversion of its ETL): 114 pings, each seen twice or
    more along the stack; the reference the ETL path must match."""
    path = corpus / "pktmon" / "demikernel-PktMon.pcapng"
    df = read_capture(path)
    assert df.height == 114
    assert set(df["link_type"]) == {1} and set(df["interface"]) == {0}
    assert df["time"].dt.epoch("ns")[0] == ns("2024-06-10T20:18:35.489172")
    assert df["time"].dt.epoch("ns")[113] == ns("2024-06-10T20:18:53.907418")
    assert df["time"].is_sorted()
    pairs = df.group_by("src_addr", "dst_addr", "protocol", "caplen", "payload_len").len().sort("len")
    assert pairs.rows() == [
        ("10.9.1.14", "10.9.1.22", "ICMP", 98, 56, 38),
        ("10.9.1.22", "10.9.1.14", "ICMP", 98, 56, 76),
    ]
    assert df["ip_id"].head(3).to_list() == [49046, 49046, 0]
    ifaces, packets = iter_capture_packets(path)
    assert [(i.link_type, i.tsresol, i.tsoffset) for i in ifaces] == [(1, 6, 0)]
    packets = list(packets)
    assert len(packets) == 114 and packets[0].data[:6] == bytes.fromhex("0022487bb380")
    assert [p.time_ns for p in packets] == df["time"].dt.epoch("ns").to_list()


@pytest.mark.parametrize("name", ["tx/snmp.pcapng", "pktmon/demikernel-PktMon.pcapng"])
def test_corpus_agrees_with_dpkt(corpus, name):
    """An independent reader (dpkt, a test-only dependency) sees the same frames, times (us) and bytes."""
    dpkt = pytest.importorskip("dpkt")
    path = corpus / name
    df = read_capture(path, with_data=True)
    with open(path, "rb") as f:
        theirs = list(dpkt.pcapng.Reader(f))
    assert df.height == len(theirs)
    assert df["data"].to_list() == [bytes(b) for _, b in theirs]
    assert (df["time"].dt.epoch("us") == [round(t * 1e6) for t, _ in theirs]).all()


# -- hand-built files ------------------------------------------------------------------------------


def block(big: bool, btype: int, body: bytes) -> bytes:
    e = ">" if big else "<"
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def option(big: bool, code: int, value: bytes) -> bytes:
    e = ">" if big else "<"
    return struct.pack(e + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def shb(big: bool) -> bytes:
    e = ">" if big else "<"
    return block(big, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(
    big: bool,
    link: int,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    snaplen: int = 0,
    name: str | None = None,
) -> bytes:
    e = ">" if big else "<"
    opts = b""
    if name is not None:
        opts += option(big, 2, name.encode())
    if tsresol is not None:
        opts += option(big, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(big, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += option(big, 0, b"")
    return block(big, 1, struct.pack(e + "HHI", link, 0, snaplen) + opts)


def epb(
    big: bool,
    iface: int,
    ticks: int,
    data: bytes,
    wirelen: int | None = None,
    opts: bytes = b"",
    obsolete: bool = False,
) -> bytes:
    e = ">" if big else "<"
    head = struct.pack(e + "HH", iface, 0) if obsolete else struct.pack(e + "I", iface)
    body = head + struct.pack(
        e + "IIII", ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data) if wirelen is None else wirelen
    )
    return block(big, 2 if obsolete else 6, body + data + bytes(-len(data) % 4) + opts)


def spb(big: bool, data: bytes, wirelen: int | None = None) -> bytes:
    e = ">" if big else "<"
    return block(
        big, 3, struct.pack(e + "I", len(data) if wirelen is None else wirelen) + data + bytes(-len(data) % 4)
    )


RAW_FRAME = FRAME[14:]
T = 1_700_000_000


def two_sections() -> bytes:
    """Section 1 little-endian: Ethernet us interface, Ethernet ns interface with tsoffset, comments, flags.
    Section 2 big-endian: raw-IP interface at 2^-20 s, an obsolete packet block, a simple packet block
    (snaplen 30), and name-resolution / statistics / custom blocks that carry no packet."""
    le, be = False, True
    flags_in = option(le, 2, struct.pack("<I", 1))
    return b"".join(
        [
            shb(le),
            idb(le, 1, name="eth0"),
            idb(le, 1, tsresol=9, tsoffset=100, snaplen=65535),
            epb(le, 0, T * 10**6 + 5, FRAME, opts=option(le, 1, b"first") + flags_in + option(le, 0, b"")),
            epb(
                le,
                1,
                7,
                FRAME[:30],
                wirelen=len(FRAME),
                opts=option(le, 2, struct.pack("<I", 2))
                + option(le, 1, "zweite Ä".encode())
                + option(le, 0, b""),
            ),
            block(le, 4, bytes(8)),  # name resolution block
            epb(le, 0, T * 10**6, FRAME, opts=option(le, 2, struct.pack("<I", 0)) + option(le, 0, b"")),
            epb(
                le,
                0,
                T * 10**6,
                FRAME,
                opts=option(le, 1, b"one") + option(le, 1, b"two") + option(le, 0, b""),
            ),
            shb(be),
            block(be, 0x40000BAD, bytes(12)),  # custom block
            idb(be, 101, tsresol=0x80 | 20, snaplen=30),
            epb(
                be,
                0,
                (T << 20) + (1 << 19),
                RAW_FRAME,
                obsolete=True,
                opts=option(be, 2, struct.pack(">I", 2)) + option(be, 0, b""),
            ),
            spb(be, RAW_FRAME),
            block(be, 5, bytes(12)),  # interface statistics block
        ]
    )


def test_two_sections_both_byte_orders(tmp_path, walker):
    path = tmp_path / "two.pcapng"
    path.write_bytes(two_sections())
    assert sniff(path.read_bytes()[:12]) == "pcapng"
    df = read_capture(path, with_data=True)
    assert df.height == 6
    assert df["interface"].to_list() == [0, 1, 0, 0, 2, 2]
    assert df["link_type"].to_list() == [1, 1, 1, 1, 101, 101]
    assert df["time"].dt.epoch("ns").to_list() == [
        T * 10**9 + 5000,
        100 * 10**9 + 7,
        T * 10**9,
        T * 10**9,
        T * 10**9 + 500_000_000,
        None,
    ]
    assert df["direction"].to_list() == ["in", "out", "unknown", None, "out", None]
    assert df["comment"].to_list() == ["first", "zweite Ä", None, "one\ntwo", None, None]
    assert df["caplen"].to_list() == [len(FRAME), 30, len(FRAME), len(FRAME), len(RAW_FRAME), 30]
    assert df["wirelen"].to_list() == [len(FRAME)] * 4 + [len(RAW_FRAME)] * 2
    assert df["data"].to_list() == [FRAME, FRAME[:30], FRAME, FRAME, RAW_FRAME, RAW_FRAME[:30]]
    assert df["src_port"].to_list() == [49152, None, 49152, 49152, 49152, 49152]
    assert df["src_addr"].to_list() == ["192.168.1.10", None] + ["192.168.1.10"] * 4
    assert df["notes"].to_list() == [None, "truncated", None, None, None, None]
    ifaces, packets = iter_capture_packets(path)
    assert [(i.link_type, i.tsresol, i.tsoffset, i.snaplen, i.name) for i in ifaces] == [
        (1, 6, 0, 0, "eth0"),
        (1, 9, 100, 65535, None),
        (101, 0x94, 0, 30, None),
    ]
    packets = list(packets)
    assert [p.interface for p in packets] == [0, 1, 0, 0, 2, 2]
    assert [p.comment for p in packets] == df["comment"].to_list()
    assert [p.direction for p in packets] == df["direction"].to_list()
    assert [p.time_ns for p in packets] == df["time"].dt.epoch("ns").to_list()


def test_binary_and_fine_resolutions():
    """if_tsresol as a power of two and finer than ns: floors to the ns."""
    from etwtools.parsers.packets import Interface, ns_to_ticks, ticks_to_ns

    ticks = np.array([3, (5 << 30) + 1], np.uint64)
    assert ticks_to_ns(ticks, Interface(1, tsresol=0x80 | 30)).tolist() == [2, 5 * 10**9]
    assert ticks_to_ns(np.array([123456789012], np.uint64), Interface(1, tsresol=12)).tolist() == [123456789]
    assert ticks_to_ns(np.array([1], np.uint64), Interface(1, tsresol=0x80 | 40)).tolist() == [0]
    assert ns_to_ticks(5 * 10**9, Interface(1, tsresol=0x80 | 30)) == 5 << 30
    assert ns_to_ticks(123456789, Interface(1, tsresol=12)) == 123456789000


def test_undefined_interface_is_skipped_and_reported(tmp_path, caplog):
    path = tmp_path / "u.pcapng"
    path.write_bytes(shb(False) + idb(False, 1) + epb(False, 3, 1, FRAME) + epb(False, 0, 2, FRAME))
    df = read_capture(path)
    assert df["time"].dt.epoch("ns").to_list() == [2000]
    assert "skipped 1 packet block(s) naming an undefined interface" in caplog.text


@pytest.mark.skipif(pcapng._c_pcapng_walk is None, reason="C accelerator etwtools.parsers._capwalk not built")
@pytest.mark.parametrize("window", [0, 16, 96])
def test_c_and_python_walks_agree(window):
    """Same entries, windows, stop offset and status for every stop of the multi-section file."""
    data = two_sections()
    buf = np.frombuffer(data, np.uint8)
    pos, big = 28, False
    stops = []
    while pos < len(buf):
        results = []
        for fn in (pcapng._c_pcapng_walk, pcapng.walk_py):
            out = np.zeros(16, pcapng.ENTRY)
            win = np.zeros(16 * max(window, 1), np.uint8)
            n, at, status = fn(buf, pos, big, out, win, window)
            results.append((n, at, status, out[:n].tobytes(), win[: n * window].tobytes()))
        assert results[0] == results[1]
        n, at, status = results[0][:3]
        stops.append((n, status))
        if status != pcapng.ST_STOP_BLOCK:
            break
        btype = struct.unpack_from("<I", data, at)[0]
        if btype == 0x0A0D0D0A:
            big = data[at + 8 : at + 12] == b"\x1a\x2b\x3c\x4d"
        pos = at + struct.unpack_from(">I" if big else "<I", data, at + 4)[0]
    assert stops == [(0, 5), (0, 5), (4, 5), (0, 5), (2, 0)]


def test_chunks_keep_order_interfaces_and_fragments(tmp_path, monkeypatch, walker):
    """Read in chunks of 3 blocks: numbering, interfaces, times and comments run on across chunks, and a
    later IPv4 fragment finds its first fragment in an earlier chunk."""
    from etwtools.parsers.packets import Interface, Packet

    monkeypatch.setattr(pcapng, "CHUNK", 3)
    ip_first = (
        bytes.fromhex("45000024 0007 2000 4011 0000 c0a8010a 0a141e28")
        + bytes.fromhex("1f90 0050 0018 0000")
        + b"x" * 8
    )
    ip_later = bytes.fromhex("4500001c 0007 0002 4011 0000 c0a8010a 0a141e28") + b"y" * 8
    eth = FRAME[:14]
    packets = [Packet(10**9 * i, eth + FRAME[14:], i % 2, None, "in", f"#{i}") for i in range(10)]
    packets[1] = Packet(10**9, eth + ip_first, 1)
    packets[8] = Packet(8 * 10**9, eth + ip_later, 0)
    path = tmp_path / "chunks.pcapng"
    pcapng.write_pcapng(path, [Interface(1), Interface(1, tsresol=9)], packets)
    df = read_capture(path)
    assert df["frame"].to_list() == list(range(1, 11))
    assert df["interface"].to_list() == [0, 1] * 4 + [0, 1]
    assert df["time"].dt.epoch("ns").to_list() == [10**9 * i for i in range(10)]
    assert df["comment"].to_list() == ["#0", None] + [f"#{i}" for i in range(2, 8)] + [None, "#9"]
    assert df["fragment"].to_list()[1] == "first" and df["fragment"].to_list()[8] == "later"
    assert (df["src_port"][8], df["dst_port"][8], df["payload_len"][8]) == (8080, 80, 8)


# -- found by the break-attribution review: damaged timestamps and resolutions ------------------------


def test_timestamp_overflow_is_no_time(tmp_path, walker, caplog):
    """A timestamp beyond what int64 ns hold (2^64-1 us, 1.6e15 s at if_tsresol 0, or any time pushed past
    2262 by if_tsoffset) used to wrap silently to a date in 1969 or 2071; such a packet is kept without a
    time and reported. The block layouts are the specification's (built here with struct)."""
    import logging

    le = False
    data = (
        shb(le)
        + idb(le, 1)
        + idb(le, 1, tsresol=0)
        + idb(le, 1, tsoffset=1 << 33)
        + epb(le, 0, T * 10**6, FRAME)
        + epb(le, 0, (1 << 64) - 1, FRAME)
        + epb(le, 1, 1_600_000_000_000_000, FRAME)
        + epb(le, 1, T, FRAME)
        + epb(le, 2, T * 10**6, FRAME)
        + epb(le, 2, 0, FRAME)
    )
    path = tmp_path / "overflow.pcapng"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_capture(path)
    assert df.height == 6
    assert df["time"].dt.epoch("ns").to_list() == [T * 10**9, None, None, T * 10**9, None, (1 << 33) * 10**9]
    assert df["src_port"].to_list() == [49152] * 6
    assert "3 packet(s) with a timestamp beyond the year 2262" in caplog.text
    _, packets = iter_capture_packets(path)
    assert [p.time_ns for p in packets] == df["time"].dt.epoch("ns").to_list()


@pytest.mark.parametrize("tsresol", [20, 63, 127, 0x80 | 64, 0xFF])
def test_unusable_tsresol_is_ignored_with_a_warning(tmp_path, caplog, tsresol):
    """if_tsresol 10^-20 s and finer, or 2^-64 s and finer, cannot be the unit of a 64-bit count (every
    time fell within a second of 1970): the option is ignored with a warning, as a damaged if_tsoffset is."""
    import logging

    path = tmp_path / "tsresol.pcapng"
    path.write_bytes(shb(False) + idb(False, 1, tsresol=tsresol) + epb(False, 0, T * 10**6, FRAME))
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_capture(path)
    assert df["time"].dt.epoch("ns").to_list() == [T * 10**9]
    assert f"ignored if_tsresol {tsresol:#04x}" in caplog.text


def test_simple_packet_blocks_survive_an_annotated_rewrite(tmp_path):
    """write_pcapng(simple_untimed=True) writes a packet without a time as a simple packet block, so a
    capture holding simple packet blocks can be written again (--annotate used to fail on it)."""
    from etwtools.parsers.packets import Interface

    src = tmp_path / "spb.pcapng"
    src.write_bytes(
        shb(False) + idb(False, 1, snaplen=0) + epb(False, 0, T * 10**6, FRAME) + spb(False, FRAME)
    )
    ifaces, packets = iter_capture_packets(src)
    with pytest.raises(ValueError, match="no time"):
        pcapng.write_pcapng(tmp_path / "strict.pcapng", ifaces, iter_capture_packets(src)[1])
    out = tmp_path / "out.pcapng"
    assert pcapng.write_pcapng(out, ifaces, packets, simple_untimed=True) == 2
    a, b = read_capture(src), read_capture(out)
    assert b["time"].to_list() == a["time"].to_list() and b["time"][1] is None
    assert b.drop("comment").equals(a.drop("comment"))
    with pytest.raises(ValueError, match="does not fit pcapng's 16 bits"):
        pcapng.write_pcapng(tmp_path / "x.pcapng", [Interface(0x10006)], [])


def test_unknown_section_version_is_reported(tmp_path, caplog):
    """A section header with major version 2 (none exists) used to be read without a word; its blocks are
    still read as version 1 blocks, with a warning naming the version. (Found by the break-attribution
    review.)"""
    import logging

    head = bytearray(shb(False))
    head[12:14] = struct.pack("<H", 2)
    path = tmp_path / "v2.pcapng"
    path.write_bytes(bytes(head) + idb(False, 1) + epb(False, 0, T * 10**6, FRAME))
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_capture(path)
    assert df["src_port"].to_list() == [49152]
    assert "section at offset 0x0 has pcapng version 2.0, not 1.x" in caplog.text
    caplog.clear()
    path.write_bytes(shb(False) + idb(False, 1) + epb(False, 0, T * 10**6, FRAME))
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        read_capture(path)
    assert "pcapng version" not in caplog.text


def journal_entry(usec: int, message: str) -> pcapng.Packet:
    """A systemd Journal Export Format entry (journalctl -o export), as a record for the pcapng writer."""
    text = f"__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP=8813712\n_HOSTNAME=probe\nMESSAGE={message}\n"
    return pcapng.Packet(None, text.encode(), block=pcapng.SJE)


def test_journal_export_blocks_take_frame_numbers_as_in_wireshark(tmp_path, tshark_fields, walker):
    """systemd Journal Export blocks (type 9) are frames in Wireshark's numbering: the packets after them
    keep tshark's numbers, and rewriting the packets (what --annotate does) keeps the blocks. No public
    capture with such blocks was found: the file is written with the project's pcapng writer."""
    t0 = ns("2024-03-01 10:00:00.000001")
    packets = [pcapng.Packet(t0 + k * 1000, FRAME) for k in range(4)]
    records = [journal_entry(t0 // 1000, "start"), packets[0], journal_entry(t0 // 1000 + 1, "a"), packets[1]]
    records += [
        journal_entry(t0 // 1000 + 2, "b"),
        journal_entry(t0 // 1000 + 3, "c"),
        packets[2],
        packets[3],
    ]
    records += [journal_entry(t0 // 1000 + 4, "end")]
    path = tmp_path / "journal.pcapng"
    assert pcapng.write_pcapng(path, [pcapng.Interface(1)], records) == 9

    def tshark_frames(p) -> list[tuple[int, str]]:
        return [(int(n), protos) for n, protos in tshark_fields(p, "frame.number", "frame.protocols")]

    shown = tshark_frames(path)
    assert [n for n, protos in shown if protos == "systemd_journal"] == [1, 3, 5, 6, 9]
    df = read_capture(path)
    assert df["frame"].to_list() == [n for n, protos in shown if protos.startswith("eth")] == [2, 4, 7, 8]
    assert df["time"].dt.epoch("ns").to_list() == [p.time_ns for p in packets]

    # packets in file order with the journal blocks between them: written back, the numbers hold
    interfaces, it = iter_capture_packets(path)
    back = list(it)
    assert [p.block for p in back] == [
        pcapng.SJE,
        None,
        pcapng.SJE,
        None,
        pcapng.SJE,
        pcapng.SJE,
        None,
        None,
        9,
    ]
    assert back[2].data.rstrip(b"\0") == records[2].data and back[3].data == FRAME
    again = tmp_path / "again.pcapng"
    pcapng.write_pcapng(again, interfaces, back)
    assert tshark_frames(again) == shown
    assert read_capture(again)["frame"].to_list() == [2, 4, 7, 8]
