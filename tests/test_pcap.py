"""Classic pcap: both magics in both byte orders, the link-type field, the writer, and the two record walks.

No pcap file is in the corpus (its captures are pcapng), so the files here are written by hand with struct
from the format's header layout, or with the project's writer, and say which.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from etwtools.parsers import pcap
from etwtools.parsers.captures import iter_capture_packets, read_capture, sniff
from etwtools.parsers.packets import Packet

FRAME = bytes.fromhex(
    "66778899aabb001122334455 0800"
    "4500002e 1c46 4000 4011 0000 c0a8010a 0a141e28"
    "c000 0035 001a 0000"
    "68656c6c6f2c20776f726c642121".replace(" ", "")
)


def hand_pcap(
    big: bool, nano: bool, records: list[tuple[int, int, bytes, int]], link: int = 1, snaplen: int = 65535
) -> bytes:
    """A pcap written by hand: records are (seconds, fraction, data, wirelen)."""
    e = ">" if big else "<"
    out = [struct.pack(e + "IHHiIII", pcap.MAGIC_NS if nano else pcap.MAGIC_US, 2, 4, 0, 0, snaplen, link)]
    for sec, frac, data, wirelen in records:
        out.append(struct.pack(e + "IIII", sec, frac, len(data), wirelen) + data)
    return b"".join(out)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_magics_and_byte_orders(tmp_path, walker, big, nano):
    frac = 123456789 if nano else 123456
    path = tmp_path / "x.pcap"
    records = [(1_700_000_000, frac, FRAME, 60), (1_700_000_001, 0, FRAME[:20], 60)]
    path.write_bytes(hand_pcap(big, nano, records))
    assert sniff(path.read_bytes()[:16]) == "pcap"
    df = read_capture(path)
    want = 1_700_000_000 * 10**9 + (frac if nano else frac * 1000)
    assert df["time"].dt.epoch("ns").to_list() == [want, 1_700_000_001 * 10**9]
    assert df["caplen"].to_list() == [len(FRAME), 20] and df["wirelen"].to_list() == [60, 60]
    r = df.row(0, named=True)
    assert (r["src_addr"], r["src_port"], r["dst_addr"], r["dst_port"], r["payload_len"]) == (
        "192.168.1.10",
        49152,
        "10.20.30.40",
        53,
        18,
    )
    assert (r["protocol"], r["ip_id"], r["link_type"], r["direction"]) == ("UDP", 0x1C46, 1, None)
    assert df["notes"].to_list() == [None, "truncated"]
    ifaces, packets = iter_capture_packets(path)
    assert ifaces[0].tsresol == (9 if nano else 6) and ifaces[0].snaplen == 65535
    assert [p.data for p in packets] == [FRAME, FRAME[:20]]


def test_link_type_field_fcs_bits_are_masked(tmp_path):
    path = tmp_path / "fcs.pcap"
    path.write_bytes(hand_pcap(False, False, [(1, 0, FRAME, len(FRAME))], link=(1 << 28) | (2 << 26) | 1))
    assert read_capture(path)["link_type"].to_list() == [1]


def test_writer_output_is_byte_exact(tmp_path):
    """write_pcap lays out exactly the header and records that the format defines."""
    path = tmp_path / "w.pcap"
    pcap.write_pcap(path, [Packet(1_700_000_000_123_456_789, FRAME, wirelen=60)], link_type=1)
    assert path.read_bytes() == hand_pcap(False, False, [(1_700_000_000, 123456, FRAME, 60)], snaplen=262144)


def test_writer_cuts_to_snaplen_and_keeps_wirelen(tmp_path, walker):
    path = tmp_path / "s.pcap"
    pcap.write_pcap(path, [Packet(5_000, FRAME)], nanosecond=True, snaplen=40)
    df = read_capture(path, with_data=True)
    assert df["data"].to_list() == [FRAME[:40]]
    assert (df["caplen"][0], df["wirelen"][0], df["time"].dt.epoch("ns")[0]) == (40, len(FRAME), 5_000)


def test_writer_rejects_times_pcap_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="outside pcap's range"):
        pcap.write_pcap(tmp_path / "t.pcap", [Packet(-1, b"")])


def test_empty_capture_has_the_schema(tmp_path, walker):
    path = tmp_path / "e.pcap"
    pcap.write_pcap(path, [])
    df = read_capture(path)
    assert df.height == 0 and "src_port" in df.columns


def test_progress_reaches_the_file_size(tmp_path):
    path = tmp_path / "p.pcap"
    pcap.write_pcap(path, [Packet(i * 1000, FRAME) for i in range(100)])
    seen = []
    read_capture(path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)


def test_many_chunks_number_frames_across_chunks(tmp_path, monkeypatch, walker):
    """Frames are numbered and ordered across the walk's chunks (chunk size lowered to 7 records)."""
    monkeypatch.setattr(pcap, "CHUNK", 7)
    path = tmp_path / "c.pcap"
    pcap.write_pcap(path, [Packet(i * 1000, FRAME[: -1 - i % 5] + b"", wirelen=100 + i) for i in range(50)])
    df = read_capture(path)
    assert df["frame"].to_list() == list(range(1, 51))
    assert df["wirelen"].to_list() == [100 + i for i in range(50)]
    assert df["time"].dt.epoch("ns").to_list() == [i * 1000 for i in range(50)]


@pytest.mark.skipif(pcap._c_pcap_walk is None, reason="C accelerator etwtools.parsers._capwalk not built")
@pytest.mark.parametrize("cut", [0, 10, 24, 30, 40, 99, 100, 101, 115, None])
def test_c_and_python_walks_agree(tmp_path, cut):
    """Same entries, windows, stopping offset and status, on whole and cut files."""
    rng = np.random.default_rng(1)
    recs = [(i, i * 7, rng.bytes(int(rng.integers(0, 130))), 200) for i in range(30)]
    data = hand_pcap(True, False, recs)
    data = data if cut is None else data[: 24 + cut * 3]
    buf = np.frombuffer(data, np.uint8)
    results = []
    for fn in (pcap._c_pcap_walk, pcap.walk_py):
        out = np.zeros(64, pcap.RECORD)
        win = np.zeros(64 * 32, np.uint8)
        n, pos, status = fn(buf, 24, True, 262144, out, win, 32)
        results.append((n, pos, status, out[:n].tobytes(), win[: n * 32].tobytes()))
    assert results[0] == results[1]
    if cut is None:
        assert results[0][:3] == (30, len(buf), pcap.ST_END)
    else:
        assert results[0][2] in (pcap.ST_END, pcap.ST_TRUNCATED) and results[0][0] < 30


def test_bad_caplen_status_is_the_same_in_both_walks():
    damaged = struct.pack("<IIII", 2, 2, 10_000_000, 10) + bytes(40)
    data = hand_pcap(False, False, [(1, 1, b"abc", 3)]) + damaged
    buf = np.frombuffer(data, np.uint8)
    for fn in filter(None, (pcap._c_pcap_walk, pcap.walk_py)):
        out = np.zeros(8, pcap.RECORD)
        n, pos, status = fn(buf, 24, False, 262144, out, np.zeros(8 * 16, np.uint8), 16)
        assert (n, pos, status) == (1, 24 + 16 + 3, pcap.ST_BAD_CAPLEN)


@pytest.mark.skipif(pcap._c_pcap_walk is None, reason="C accelerator etwtools.parsers._capwalk not built")
def test_tables_are_identical_with_either_walk(tmp_path, monkeypatch):
    """The whole table (with data) from the C walk equals the pure-Python walk's, across chunks."""
    rng = np.random.default_rng(5)
    frames = [
        FRAME[: int(rng.integers(0, len(FRAME) + 1))] + rng.bytes(int(rng.integers(0, 200)))
        for _ in range(300)
    ]
    path = tmp_path / "w.pcap"
    pcap.write_pcap(
        path, [Packet(i * 999, f, wirelen=len(f) + i) for i, f in enumerate(frames)], nanosecond=True
    )
    monkeypatch.setattr(pcap, "CHUNK", 64)
    fast = read_capture(path, with_data=True)
    monkeypatch.setattr(pcap, "_c_pcap_walk", None)
    slow = read_capture(path, with_data=True)
    assert fast.equals(slow) and fast["data"].to_list() == frames


def test_unsupported_link_type_reported_once_for_the_file(tmp_path, monkeypatch, caplog):
    """A pcap of an undissected link type (here 9, PPP) read in several chunks: one warning, all frames."""
    monkeypatch.setattr(pcap, "CHUNK", 4)
    path = tmp_path / "ppp.pcap"
    pcap.write_pcap(path, [Packet(i, b"\xff\x03\x00\x21" + FRAME[14:]) for i in range(10)], link_type=9)
    df = read_capture(path)
    assert df.height == 10 and set(df["protocol"]) == {"other"} and set(df["link_type"]) == {9}
    assert caplog.text.count("unsupported link type 9") == 1
    assert f"{path}: 10 frame(s) of unsupported link type 9" in caplog.text


def test_modified_magic(tmp_path, tshark):
    """The "modified" pcap format (magic 0xA1B2CD34, patched libpcap: 8 more bytes in every record
    header), BUILT with the project's writer: the same frames as the standard file, and tshark reads
    the same number of frames with the same ports."""
    import subprocess

    frame = (
        bytes(12)
        + b"\x08\x00"
        + struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        )
    )
    packets = [
        Packet(
            1_700_000_000_000_000_000 + i * 1000,
            frame + struct.pack("!HHHH", 1000 + i, 53, 8, 0),
            direction="out" if i % 2 else "in",
        )
        for i in range(300)
    ]
    std, mod = tmp_path / "std.pcap", tmp_path / "mod.pcap"
    pcap.write_pcap(std, packets)
    pcap.write_pcap(mod, packets, modified=True)
    assert mod.read_bytes()[:4] == bytes.fromhex("34cdb2a1")
    assert mod.stat().st_size == std.stat().st_size + 8 * 300
    a, b = read_capture(std), read_capture(mod)
    assert b.height == 300 and b.equals(a)
    out = subprocess.run(
        [tshark, "-r", str(mod), "-T", "fields", "-e", "udp.srcport"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    assert [int(x) for x in out] == b["src_port"].to_list()
