"""Damaged captures: a one-line CaptureError with the byte offset when nothing can be read, otherwise the
frames around the damage plus a warning saying what was skipped and where. The damaged files are made
here from files written by the project's writers (or by hand with struct), then cut or overwritten."""

from __future__ import annotations

import logging
import struct

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etwtools.errors import CaptureError
from etwtools.parsers import pcap, pcapng
from etwtools.parsers.captures import iter_capture_packets, read_capture
from etwtools.parsers.diagnostics import SkipReport, collect
from etwtools.parsers.packets import Interface, Packet
from etwtools.parsers.pcap import write_pcap
from etwtools.parsers.pcapng import write_pcapng

FRAME = bytes.fromhex(  # Ethernet, IPv4 192.168.1.10 -> 10.20.30.40, UDP 49152 -> 53, 18 bytes
    "66778899aabb001122334455 0800"
    "4500002e 1c46 4000 4011 0000 c0a8010a 0a141e28"
    "c000 0035 001a 0000"
    "68656c6c6f2c20776f726c642121".replace(" ", "")
)


SHB_START, BOM_LE = b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\x2b\x1a"


def packets(n: int) -> list[Packet]:
    return [Packet(1_700_000_000 * 10**9 + i * 1000, FRAME[: 40 + i % 7]) for i in range(n)]


def pcap_file(tmp_path, n: int = 5) -> tuple[bytes, list[int]]:
    """A pcap of n packets and the offsets of its record headers."""
    path = tmp_path / "ok.pcap"
    write_pcap(path, packets(n))
    data = path.read_bytes()
    offsets, pos = [], 24
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return data, offsets


def pcapng_file(tmp_path, n: int = 5) -> tuple[bytes, list[int]]:
    """A pcapng of n packets and the offsets of its enhanced packet blocks."""
    path = tmp_path / "ok.pcapng"
    write_pcapng(path, [Interface(1)], packets(n))
    data = path.read_bytes()
    offsets, pos = [], 0
    while pos < len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 6:
            offsets.append(pos)
        pos += blen
    return data, offsets


def read(tmp_path, data: bytes, name: str) -> pl.DataFrame:
    path = tmp_path / name
    path.write_bytes(data)
    return read_capture(path)


def read_reported(tmp_path, data: bytes, name: str) -> tuple[pl.DataFrame, SkipReport]:
    """The frames and the one skip report the reader published for the file."""
    with collect() as reports:
        df = read(tmp_path, data, name)
    (report,) = reports
    assert report.file == str(tmp_path / name)
    return df, report


def skipped(report: SkipReport, reason: str) -> tuple[int, int, list[tuple[int | None, str]]]:
    """(units, bytes, first places as (offset, detail)) skipped for ``reason``."""
    r = report.reasons[reason]
    return r.count, r.bytes, [(p.offset, p.detail) for p in r.places]


@pytest.mark.parametrize(
    "data,message,offset",
    [
        (b"", "not a pcap or pcapng file", 0),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(40), "not a pcap or pcapng file (starts with 7f454c46)", 0),
        (struct.pack("<I", pcap.MAGIC_US) + bytes(10), "shorter than the 24-byte header", 0),
        (SHB_START + struct.pack("<I", 28) + BOM_LE + bytes(8), "damaged section header", 0),
        (SHB_START + struct.pack("<I", 30) + BOM_LE + bytes(18), "damaged section header", 0),
    ],
)
def test_unreadable_files_raise_one_line_with_offset(tmp_path, data, message, offset):
    path = tmp_path / "bad.cap"
    path.write_bytes(data)
    with pytest.raises(CaptureError) as e:
        read_capture(path)
    assert message in str(e.value) and e.value.offset == offset and e.value.path == str(path)
    assert "\n" not in str(e.value)


def test_bad_byte_order_magic(tmp_path):
    data = b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 28) + b"\x01\x02\x03\x04" + bytes(16)
    with pytest.raises(CaptureError, match="bad byte-order magic 01020304") as e:
        pcapng.read_pcapng(_write(tmp_path, data))
    assert e.value.offset == 8


def _write(tmp_path, data: bytes):
    path = tmp_path / "f.pcapng"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("cut", [1, 10, 17, 30])
def test_pcap_truncated_last_record(tmp_path, caplog, walker, cut):
    data, offs = pcap_file(tmp_path)
    df, report = read_reported(tmp_path, data[: offs[-1] + cut], "t.pcap")
    assert df.height == 4
    assert skipped(report, "truncated record(s) at the end of the file") == (1, cut, [(offs[-1], "")])
    assert (
        f"t.pcap: skipped 1 truncated record(s) at the end of the file: {cut:,} byte(s) at {offs[-1]:#x}\n"
        in caplog.text
    )


def test_pcap_damaged_caplen_costs_that_record(tmp_path, caplog, walker):
    data, offs = pcap_file(tmp_path, 8)
    bad = bytearray(data)
    struct.pack_into("<I", bad, offs[2] + 8, 0x7FFFFFFF)
    df, report = read_reported(tmp_path, bytes(bad), "c.pcap")
    assert df["time"].dt.epoch("ns").to_list() == [p.time_ns for i, p in enumerate(packets(8)) if i != 2]
    assert skipped(report, "damaged record(s)") == (1, offs[3] - offs[2], [(offs[2], "caplen 2147483647")])
    assert (
        f"skipped 1 damaged record(s): {offs[3] - offs[2]} byte(s) at {offs[2]:#x} (caplen 2147483647)"
        in caplog.text
    )


def test_pcap_caplen_past_the_end_mid_file_is_damage_not_truncation(tmp_path, caplog, walker):
    data, offs = pcap_file(tmp_path, 8)
    bad = bytearray(data)
    struct.pack_into("<I", bad, offs[5] + 8, 200_000)  # below the maximum, but beyond the file
    df, report = read_reported(tmp_path, bytes(bad), "d.pcap")
    assert df.height == 7 and list(report.reasons) == ["damaged record(s)"]
    assert skipped(report, "damaged record(s)")[2] == [(offs[5], "caplen 200000")]


def test_pcap_garbage_inside_is_skipped(tmp_path, caplog, walker):
    data, offs = pcap_file(tmp_path, 8)
    df, report = read_reported(tmp_path, data[: offs[4]] + b"\xee" * 37 + data[offs[4] :], "g.pcap")
    assert df.height == 8
    assert skipped(report, "damaged record(s)")[:2] == (1, 37) and report.total_bytes == 37


def test_pcap_damage_with_nothing_after_it(tmp_path, caplog, walker):
    data, offs = pcap_file(tmp_path)
    bad = bytearray(data)
    struct.pack_into("<I", bad, offs[4] + 8, 0x7FFFFFFF)
    df, report = read_reported(tmp_path, bytes(bad), "n.pcap")
    assert df.height == 4
    assert skipped(report, "damaged record(s)") == (1, len(data) - offs[4], [(offs[4], "caplen 2147483647")])


def test_pcapng_truncated_block(tmp_path, caplog, walker):
    data, offs = pcapng_file(tmp_path)
    df, report = read_reported(tmp_path, data[: offs[-1] + 20], "t.pcapng")
    assert df.height == 4
    assert skipped(report, "damaged block(s)") == (1, 20, [(offs[-1], "block runs past the end of the file")])
    assert (
        f"skipped 1 damaged block(s): 20 byte(s) at {offs[-1]:#x} (block runs past the end of the file)"
        in caplog.text
    )


def test_pcapng_length_not_multiple_of_4_costs_one_block(tmp_path, caplog, walker):
    data, offs = pcapng_file(tmp_path)
    bad = bytearray(data)
    struct.pack_into("<I", bad, offs[1] + 4, struct.unpack_from("<I", data, offs[1] + 4)[0] + 2)
    df, report = read_reported(tmp_path, bytes(bad), "m.pcapng")
    assert df["time"].dt.epoch("ns").to_list() == [p.time_ns for i, p in enumerate(packets(5)) if i != 1]
    assert skipped(report, "damaged block(s)")[2] == [
        (offs[1], "block length not a multiple of 4 or below 12")
    ]


def test_pcapng_trailer_mismatch_costs_one_block(tmp_path, caplog, walker):
    data, offs = pcapng_file(tmp_path)
    bad = bytearray(data)
    blen = struct.unpack_from("<I", data, offs[3] + 4)[0]
    struct.pack_into("<I", bad, offs[3] + blen - 4, 1234)
    df, report = read_reported(tmp_path, bytes(bad), "t.pcapng")
    assert df.height == 4 and df["frame"].to_list() == [1, 2, 3, 4]
    assert skipped(report, "damaged block(s)") == (1, blen, [(offs[3], "trailing block length differs")])


def test_pcapng_caplen_larger_than_block_costs_that_block(tmp_path, caplog, walker):
    data, offs = pcapng_file(tmp_path)
    bad = bytearray(data)
    struct.pack_into("<I", bad, offs[0] + 20, 5000)
    df, report = read_reported(tmp_path, bytes(bad), "c.pcapng")
    assert df["time"].dt.epoch("ns").to_list() == [p.time_ns for p in packets(5)[1:]]
    assert skipped(report, "damaged block(s)")[2] == [(offs[0], "caplen larger than the block")]


@pytest.mark.parametrize("garbage", [64, 3, 1, 1_100_001])
def test_pcapng_garbage_between_blocks_is_skipped(tmp_path, caplog, walker, garbage):
    """Whatever its length (the next block may no longer be 4-aligned), only the garbage is lost."""
    data, offs = pcapng_file(tmp_path)
    bad = data[: offs[2]] + b"\xff" * garbage + data[offs[2] :]
    df, report = read_reported(tmp_path, bad, "g.pcapng")
    assert df.height == 5
    assert skipped(report, "damaged block(s)")[:2] == (1, garbage) and report.total_bytes == garbage
    assert f"skipped 1 damaged block(s): {garbage:,} byte(s) at {offs[2]:#x} (" in caplog.text


def test_pcapng_damage_without_a_later_block_skips_to_the_end(tmp_path, caplog, walker):
    data, offs = pcapng_file(tmp_path)
    bad = data[: offs[4]] + struct.pack("<II", 6, 7) + bytes(40)
    df, report = read_reported(tmp_path, bad, "e.pcapng")
    assert df.height == 4
    assert skipped(report, "damaged block(s)")[:2] == (1, 48) and report.total_bytes == 48


def test_damaged_iteration_matches_the_table(tmp_path, walker):
    """iter_capture_packets skips what read_capture skips, so packet i is still frame i + 1."""
    data, offs = pcapng_file(tmp_path)
    bad = bytearray(data)
    struct.pack_into("<I", bad, offs[1] + 20, 5000)
    path = _write(tmp_path, bytes(bad))
    with collect() as reports:
        _, it = iter_capture_packets(path)
        times = [p.time_ns for p in it]
        assert len(reports) == 1  # published once the packets ran out (the interface pre-pass is quiet)
        assert times == read_capture(path)["time"].dt.epoch("ns").to_list()
    assert reports[0] == reports[1] and reports[0].counts == {"damaged block(s)": 1}


def rich_pcapng(tmp_path) -> bytes:
    """Two interfaces with name, if_tsresol and if_tsoffset options; packets with comments and flags."""
    path = tmp_path / "rich.pcapng"
    ifaces = [Interface(1, tsresol=9, tsoffset=5, name="eth0"), Interface(101, tsresol=0x94)]
    write_pcapng(
        path,
        ifaces,
        [
            Packet(
                p.time_ns,
                p.data if i % 2 == 0 else p.data[14:],
                i % 2,
                None,
                ("in", "out", None)[i % 3],
                f"c{i}" if i % 4 else None,
            )
            for i, p in enumerate(packets(12))
        ],
    )
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["pcap", "pcapng", "rich"]),
    cut=st.integers(0, 2000),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
)
def test_fuzzed_files_give_a_table_or_a_capture_error(tmp_path, kind, cut, flips):
    """Any truncation and byte overwrites: frames or CaptureError, nothing else, and no hang."""
    if kind == "rich":
        data = rich_pcapng(tmp_path)
    else:
        data, _ = (pcap_file if kind == "pcap" else pcapng_file)(tmp_path, 12)
    bad = bytearray(data[: max(cut, 1)])
    for pos, value in flips:
        if pos < len(bad):
            bad[pos] = value
    path = tmp_path / f"fuzz.{'pcap' if kind == 'pcap' else 'pcapng'}"
    path.write_bytes(bytes(bad))
    logging.getLogger("etwtools").disabled = True
    try:
        df = read_capture(path)
        assert df.height <= 12
        _, it = iter_capture_packets(path)
        assert sum(1 for _ in it) == df.height
    except CaptureError as e:
        assert e.offset is not None
    finally:
        logging.getLogger("etwtools").disabled = False
