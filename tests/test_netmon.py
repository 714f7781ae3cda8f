"""Network Monitor 2.x captures (.cap).

No Network Monitor capture with a license that lets the project keep it was found in public
repositories, so these tests build their files with the project's own writer (write_netmon) and byte
edits of what it writes; the field layout they check is the one documented by Microsoft
(CAPTUREFILE_HEADER_VALUES, NetMon 3.x "Capture File Format"). ``test_real_capture`` reads a real
NetMon-written file from the corpus when one is there.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from etwtools.errors import CaptureError
from etwtools.parsers import netmon
from etwtools.parsers.captures import iter_capture_packets, read_capture, sniff
from etwtools.parsers.netmon import NETMON_LINK_BASE, iter_packets, read_netmon, write_netmon
from etwtools.parsers.packets import Packet, dissect, header_windows
from etwtools.sources import detect, read_frames

SETTINGS = settings(max_examples=40, deadline=None)
T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z
ETH = bytes.fromhex("00155d010203 00155d040506 0800".replace(" ", ""))
VERSIONS = [(2, 0), (2, 1), (2, 2), (2, 3)]


def _tcp(src: int, sport: int, flags: int = 0x02, payload: bytes = b"") -> bytes:
    ip = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        40 + len(payload),
        7,
        0,
        64,
        6,
        0,
        bytes([10, 0, 0, src]),
        bytes([10, 0, 0, 99]),
    )
    return ip + struct.pack(">HHIIBBHHH", sport, 443, 1000 + src, 0, 0x50, flags, 8192, 0, 0) + payload


def _frames(n: int = 5) -> list[Packet]:
    return [
        Packet(T0 + i * 1_500_000, ETH + _tcp(i + 1, 50000 + i, payload=b"x" * i), 0, None) for i in range(n)
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("netmon")


def _floor(t: int, version: tuple[int, int], first: int) -> int:
    """What a reader gives back: 100 ns UTC stamps in 2.3, else ms start + whole microseconds."""
    if version >= (2, 3):
        return t // 100 * 100
    start = first // 1_000_000 * 1_000_000
    return start + (t - start) // 1000 * 1000


# -- round trips --------------------------------------------------------------------------------------


@st.composite
def captures(draw):
    base = draw(st.integers(315_532_800, 4_102_444_800)) * 10**9 + draw(st.integers(0, 10**9 - 1))
    rows = draw(
        st.lists(
            st.tuples(
                st.binary(max_size=120),
                st.one_of(st.none(), st.integers(0, 9000)),
                st.integers(-(10**13), 10**13),
            ),
            max_size=20,
        )
    )
    text = st.text(min_size=1, max_size=30).filter(lambda t: "\0" not in t)
    notes = draw(st.lists(st.one_of(st.none(), text), min_size=len(rows), max_size=len(rows)))
    return [
        Packet(base + dt, data, 0, None if extra is None else len(data) + extra, comment=note)
        for (data, extra, dt), note in zip(rows, notes)
    ]


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(packets=captures(), offset=st.integers(-12 * 60, 14 * 60))
def test_roundtrip(workdir, version, packets, offset):
    """Bytes, wire lengths and times (to the resolution of the version) come back, earlier-than-start
    frames included; the local start time is turned to UTC with the offset it was written with."""
    path = workdir / f"rt{version[1]}.cap"
    assert write_netmon(path, packets, version=version, utc_offset_minutes=offset) == len(packets)
    ifaces, got = iter_packets(path, utc_offset_minutes=offset)
    got = list(got)
    assert [g.data for g in got] == [p.data for p in packets]
    assert [g.comment for g in got] == [p.comment if version >= (2, 2) else None for p in packets]
    assert [g.wirelen for g in got] == [len(p.data) if p.wirelen is None else p.wirelen for p in packets]
    if packets:
        assert [g.time_ns for g in got] == [_floor(p.time_ns, version, packets[0].time_ns) for p in packets]
        assert [i.link_type for i in ifaces] == [1]


@pytest.mark.parametrize("version", VERSIONS)
def test_table_is_the_dissection_of_what_went_in(workdir, version):
    """read_netmon gives the same table as dissecting the packets written (Ethernet, TCP SYNs), frame
    comments included from 2.2 on (the comment table)."""
    packets = _frames(7)
    packets[2].comment = "SYN from .3 – retransmitted?"
    packets[6].comment = "last"
    path = workdir / f"t{version[1]}.cap"
    write_netmon(path, packets, version=version)
    df = read_netmon(path, with_data=True, utc_offset_minutes=0)
    notes = [p.comment if version >= (2, 2) else None for p in packets]
    want = dissect(
        [_floor(p.time_ns, version, T0) for p in packets],
        [p.data for p in packets],
        1,
        with_data=True,
        comments=notes,
    )
    assert_frame_equal(df, want)
    assert df["src_addr"].to_list() == [f"10.0.0.{i + 1}" for i in range(7)]
    assert df["src_port"].to_list() == [50000 + i for i in range(7)]
    assert df["payload_len"].to_list() == list(range(7))
    assert df["tcp_flags"].to_list() == [2] * 7


@SETTINGS
@given(
    buf=st.binary(min_size=0, max_size=400),
    spans=st.lists(st.tuples(st.integers(0, 399), st.integers(0, 200)), max_size=12),
)
def test_windows_match_header_windows(buf, spans):
    """The reader's fast header windows equal packets.header_windows (short frames, frames near EOF)."""
    arr = np.frombuffer(buf, np.uint8)
    spans = [(o, min(c, len(buf) - o)) for o, c in spans if o <= len(buf)]
    off = np.array([o for o, _ in spans], np.int64)
    cap = np.array([c for _, c in spans], np.int64)
    assert np.array_equal(netmon.windows(arr, off, cap), header_windows(arr, off, cap))


def test_dispatch(workdir):
    """'GMBU' is sniffed as netmon; read_capture, iter_capture_packets and read_frames read it."""
    path = workdir / "d.cap"
    write_netmon(path, _frames(3))
    assert sniff(path.read_bytes()[:16]) == "netmon" and detect(path) == "netmon"
    seen = []
    direct = read_netmon(path, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][1] == path.stat().st_size
    assert_frame_equal(read_capture(path), direct)
    assert_frame_equal(read_frames(path), direct)
    _, packets = iter_capture_packets(path)
    assert [p.data for p in packets] == [p.data for p in _frames(3)]


# -- media types, metadata records, times -------------------------------------------------------------


def test_per_frame_media_types(workdir, caplog):
    """2.1+ trailers carry the link type of each frame: Ethernet (1, and 0), raw IP (9), a pcap link type
    (0xE000 | 113, Linux cooked), 802.11 with NetMon's header (6, kept undissected and reported); the
    metadata records 0xFFFC-0xFFFE are not frames and leave no gap in the frame numbers."""
    ip = _tcp(1, 1111)
    sll = struct.pack(">HHH8sH", 4, 1, 6, bytes(8), 0x0800) + _tcp(2, 2222)
    rows = [
        (1, ETH + _tcp(3, 3333)),
        (0xFFFD, b"adapters"),
        (9, ip),
        (0xE071, sll),
        (0xFFFE, b"dns"),
        (0, ETH + _tcp(4, 4444)),
        (6, b"\x02" * 40),
        (0xFFFC, b"hdr"),
    ]
    packets = [Packet(T0 + i * 1000, d) for i, (_, d) in enumerate(rows)]
    path = workdir / "media.cap"
    write_netmon(path, packets, media_types=[m for m, _ in rows])
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_netmon(path)
    assert df["frame"].to_list() == [1, 2, 3, 4, 5]
    assert df["link_type"].to_list() == [1, 101, 113, 1, NETMON_LINK_BASE + 6]
    assert df["src_port"].to_list() == [3333, 1111, 2222, 4444, None]
    assert df["time"].dt.epoch("ns").to_list() == [(T0 + i * 1000) // 100 * 100 for i in (0, 2, 3, 5, 6)]
    assert "1 frame(s) of unsupported link type 65542" in caplog.text
    ifaces, pk = iter_packets(path)
    assert [i.link_type for i in ifaces] == [1, 101, 113, NETMON_LINK_BASE + 6]
    assert [p.interface for p in pk] == [0, 1, 2, 0, 3]


def test_version_2_0_uses_the_header_mac_type(workdir):
    """Without trailers every frame has the header's MacType (2: Token Ring, LINKTYPE 6)."""
    path = workdir / "tr.cap"
    write_netmon(path, _frames(2), mac_type=2, version=(2, 0))
    assert read_netmon(path, utc_offset_minutes=0)["link_type"].to_list() == [6, 6]


def test_local_time_without_offset_is_reported(workdir, caplog):
    """Before 2.3 the start is local time: without an offset it is taken as UTC, with a warning; with
    the offset the UTC times are exact to the microsecond."""
    path = workdir / "local.cap"
    write_netmon(path, _frames(3), version=(2, 2), utc_offset_minutes=-300)  # UTC-5
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        naive = read_netmon(path)
    assert "local time" in caplog.text and "3 frame time(s) taken as UTC" in caplog.text
    assert naive["time"].dt.epoch("ns")[0] == T0 // 1000 * 1000 - 300 * 60 * 10**9
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        exact = read_netmon(path, utc_offset_minutes=-300)
    assert not caplog.text
    assert exact["time"].dt.epoch("ns").to_list() == [(T0 + i * 1_500_000) // 1000 * 1000 for i in range(3)]


def test_utc_stamps_need_extended_info(workdir):
    """2.3 per-frame UTC stamps are used only when the header's extended info offset is not 0 (the
    documented rule): with it zeroed, times come from the local start time and the offsets."""
    path = workdir / "ext.cap"
    write_netmon(path, _frames(2), version=(2, 3), utc_offset_minutes=120)
    assert read_netmon(path)["time"].dt.epoch("ns").to_list() == [
        (T0 + i * 1_500_000) // 100 * 100 for i in range(2)
    ]
    raw = bytearray(path.read_bytes())
    raw[56:60] = bytes(4)
    path.write_bytes(bytes(raw))
    got = read_netmon(path, utc_offset_minutes=120)["time"].dt.epoch("ns").to_list()
    assert got == [(T0 + i * 1_500_000) // 1000 * 1000 for i in range(2)]


def test_bad_utc_stamp_falls_back_to_local_time(workdir):
    """A 2.3 frame whose FILETIME is 0 or beyond what ns can hold gets the start time plus its offset."""
    path = workdir / "ft.cap"
    write_netmon(path, _frames(3), version=(2, 3))
    raw = bytearray(path.read_bytes())
    table = struct.unpack_from("<I", raw, 24)[0]
    for i, value in ((0, 0), (2, (1 << 64) - 1)):
        rec = struct.unpack_from("<I", raw, table + 4 * i)[0]
        cap = struct.unpack_from("<I", raw, rec + 12)[0]
        struct.pack_into("<Q", raw, rec + 16 + cap + 6, value)
    path.write_bytes(bytes(raw))
    got = read_netmon(path, utc_offset_minutes=0)["time"].dt.epoch("ns").to_list()
    assert got == [T0 // 1000 * 1000, (T0 + 1_500_000) // 100 * 100, (T0 + 3_000_000) // 1000 * 1000]


def test_empty_capture(workdir):
    path = workdir / "empty.cap"
    assert write_netmon(path, []) == 0
    df = read_netmon(path)
    assert df.height == 0 and "src_addr" in df.columns


# -- damaged input ------------------------------------------------------------------------------------


def _edit(workdir: Path, name: str, edit) -> Path:
    path = workdir / name
    write_netmon(path, _frames(4), version=(2, 1))
    raw = bytearray(path.read_bytes())
    raw = edit(raw) or raw
    path.write_bytes(bytes(raw))
    return path


def _table_offset(raw: bytes) -> int:
    return struct.unpack_from("<I", raw, 24)[0]


@pytest.mark.parametrize(
    "edit, message, offset",
    [
        (lambda r: r.__setitem__(slice(0, 4), b"GMBX"), "bad signature 474d4258", 0),
        (lambda r: r.__setitem__(slice(0, 4), b"RTSS"), "1.x capture files are not supported", 0),
        (lambda r: r.__setitem__(5, 3), "unsupported Network Monitor format version 3.1", 5),
        (lambda r: r.__setitem__(slice(28, 32), struct.pack("<I", 15)), "not a multiple of 4", 28),
        (lambda r: r[:-6], "lies outside the frame data", 24),
        (lambda r: r[:100], "shorter than 128", 0),
        (lambda r: r.__setitem__(slice(10, 12), struct.pack("<H", 13)), "bad capture start time", 8),
    ],
)
def test_bad_file(workdir, edit, message, offset):
    """Whole-file damage: one CaptureError naming the file and the byte offset."""
    path = _edit(workdir, "bad.cap", edit)
    with pytest.raises(CaptureError) as e:
        read_netmon(path, utc_offset_minutes=0)
    assert message in str(e.value) and e.value.offset == offset and e.value.path == str(path)


def test_damaged_frames_are_skipped(workdir, caplog):
    """A frame table entry past the end of the file and a record whose captured length runs past it
    cost only those frames; the warning names both offsets."""

    def edit(raw):
        t = _table_offset(raw)
        first = struct.unpack_from("<I", raw, t)[0]
        struct.pack_into("<I", raw, t + 4, len(raw) + 100)  # frame 2 outside the file
        struct.pack_into("<I", raw, first + 12, 1_000_000)  # frame 1: caplen too large
        return raw

    path = _edit(workdir, "frames.cap", edit)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_netmon(path, utc_offset_minutes=0)
    assert df["src_addr"].to_list() == ["10.0.0.3", "10.0.0.4"]
    assert df["frame"].to_list() == [1, 2]
    raw = path.read_bytes()
    t = _table_offset(raw)
    first = struct.unpack_from("<I", raw, t)[0]
    assert (
        f"frames.cap: skipped 2 damaged frame record(s): at {len(raw) + 100:#x} (outside the file or in its "
        f"header), {first:#x} (captured length 1,000,000 above 262,144)\n"
    ) in caplog.text


def test_damaged_comment_table(workdir, caplog):
    """A comment whose title runs past the comment table keeps the comments before it, with a warning."""
    packets = _frames(3)
    for i, p in enumerate(packets):
        p.comment = f"note {i}"
    path = workdir / "notes.cap"
    write_netmon(path, packets, version=(2, 2))
    raw = bytearray(path.read_bytes())
    table = struct.unpack_from("<I", raw, 40)[0]
    second = table + 16 + len("note 0".encode("utf-16-le"))
    struct.pack_into("<I", raw, second + 8, 10_000)  # second title length: too long
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_netmon(path, utc_offset_minutes=0)
    assert df["comment"].to_list() == ["note 0", None, None]
    assert "notes.cap: skipped 1 damaged comment(s) ending the comment table: " in caplog.text
    assert f"at {second:#x} (1 comment(s) before it kept)" in caplog.text


def test_truncated_record(workdir, caplog):
    """A record whose data ends past the file end (frame table moved before it) is skipped."""

    def edit(raw):
        t = _table_offset(raw)
        table = bytes(raw[t:])
        last = struct.unpack_from("<I", table, 12)[0]
        raw = raw[: last + 20] + table  # cut the last record, keep the table after it
        struct.pack_into("<I", raw, 24, last + 20)
        return raw

    path = _edit(workdir, "trunc.cap", edit)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_netmon(path, utc_offset_minutes=0)
    assert df.height == 3
    assert "trunc.cap: skipped 1 damaged frame record(s): at 0x" in caplog.text
    assert "bytes running past the end of the file)" in caplog.text


# -- found by the break-attribution review ------------------------------------------------------------


@pytest.mark.parametrize("year", [1601, 2500, 9999])
def test_start_time_beyond_int64_ns_is_a_capture_error(workdir, year):
    """A header start time the SYSTEMTIME allows but int64 ns cannot hold (before 1678, after 2262) used to
    escape as an OverflowError (an internal error, exit 2)."""
    path = _edit(workdir, f"year{year}.cap", lambda r: r.__setitem__(slice(8, 10), struct.pack("<H", year)))
    with pytest.raises(CaptureError, match="outside the years 1678 to 2262") as e:
        read_netmon(path, utc_offset_minutes=0)
    assert e.value.offset == 8


def test_time_offset_of_centuries_is_no_time(workdir, caplog):
    """A record's TimeOffsetLocal so large that the frame's ns would wrap around (a damaged record) used
    to give a silently wrong time; the frame is kept without a time and reported."""

    def edit(raw):
        t = _table_offset(raw)
        for i, value in ((1, 1 << 62), (2, (1 << 64) - (1 << 61))):
            rec = struct.unpack_from("<I", raw, t + 4 * i)[0]
            struct.pack_into("<Q", raw, rec, value)
        return raw

    path = _edit(workdir, "centuries.cap", edit)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_netmon(path, utc_offset_minutes=0)
    times = df["time"].dt.epoch("ns").to_list()
    assert times[1] is None and times[2] is None
    assert times[0] == T0 // 1000 * 1000 and times[3] == (T0 + 3 * 1_500_000) // 1000 * 1000
    assert df["src_port"].to_list() == [50000, 50001, 50002, 50003]
    assert "2 frame(s) with a time offset of centuries" in caplog.text
    _, packets = iter_packets(path, utc_offset_minutes=0)
    assert [p.time_ns for p in packets] == times
