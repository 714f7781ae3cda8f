"""Round trips: packets written by the project's writers read back identical (hypothesis properties), and
the table of a written capture equals the dissection of the packets that went in."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etwtools.parsers.captures import iter_capture_packets, read_capture
from etwtools.parsers.packets import Interface, Packet, dissect
from etwtools.parsers.pcap import write_pcap
from etwtools.parsers.pcapng import write_pcapng

SETTINGS = settings(max_examples=60, deadline=None)
DATA = st.binary(max_size=200)
EXTRA = st.one_of(st.none(), st.integers(0, 10_000))  # wirelen beyond the captured bytes
# 1970 .. 2106: what pcap's unsigned seconds hold
SECONDS = st.integers(0, (1 << 32) - 1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One folder for the module (hypothesis reruns a test body many times; files are overwritten)."""
    return tmp_path_factory.mktemp("roundtrip")


def _normal(p: Packet) -> Packet:
    """What a reader gives back: wirelen always set."""
    return Packet(
        p.time_ns,
        p.data,
        p.interface,
        len(p.data) if p.wirelen is None else p.wirelen,
        p.direction,
        p.comment,
    )


@st.composite
def pcap_packets(draw, nano: bool):
    out = []
    for data, extra, sec in draw(st.lists(st.tuples(DATA, EXTRA, SECONDS), max_size=25)):
        frac = draw(st.integers(0, 999_999_999)) if nano else draw(st.integers(0, 999_999)) * 1000
        out.append(Packet(sec * 10**9 + frac, data, 0, None if extra is None else len(data) + extra))
    return out


@st.composite
def pcapng_packets(draw):
    """Packets on two interfaces: 0 in microseconds, 1 in nanoseconds with if_tsoffset."""
    offset = draw(st.integers(-(10**6), 10**6))
    ifaces = [Interface(1, tsresol=6, name="us"), Interface(101, tsresol=9, tsoffset=offset)]
    out = []
    for data, extra, iface in draw(st.lists(st.tuples(DATA, EXTRA, st.integers(0, 1)), max_size=25)):
        ticks = draw(st.integers(0, (1 << 63) // 10**3 if iface == 0 else (1 << 62)))
        t = ticks * 1000 if iface == 0 else ticks + ifaces[1].tsoffset * 10**9
        out.append(
            Packet(
                t,
                data,
                iface,
                None if extra is None else len(data) + extra,
                draw(st.sampled_from([None, "in", "out", "unknown"])),
                draw(st.one_of(st.none(), st.text(max_size=40))),
            )
        )
    return ifaces, out


def _table_matches(path: Path, packets: list[Packet], link_types: list[int]) -> None:
    got = read_capture(path, with_data=True)
    want = dissect(
        [p.time_ns for p in packets],
        [p.data for p in packets],
        [link_types[p.interface] for p in packets],
        wirelens=[p.wirelen for p in packets],
        interfaces=[p.interface for p in packets],
        directions=[p.direction for p in packets],
        comments=[p.comment for p in packets] if "comment" in got.columns else None,
        with_data=True,
    )
    assert got.equals(want)


@SETTINGS
@given(pcap_packets(nano=False))
def test_pcap_microseconds(workdir, packets):
    path = workdir / "us.pcap"
    assert write_pcap(path, packets, link_type=1) == len(packets)
    ifaces, back = iter_capture_packets(path)
    assert ifaces == [Interface(1, tsresol=6, snaplen=262144)]
    assert list(back) == [_normal(p) for p in packets]
    _table_matches(path, packets, [1])


@SETTINGS
@given(pcap_packets(nano=True))
def test_pcap_nanoseconds(workdir, packets):
    path = workdir / "ns.pcap"
    write_pcap(path, packets, link_type=228, nanosecond=True)
    ifaces, back = iter_capture_packets(path)
    assert ifaces[0].tsresol == 9 and ifaces[0].link_type == 228
    assert list(back) == [_normal(p) for p in packets]
    _table_matches(path, packets, [228])


@SETTINGS
@given(pcapng_packets())
def test_pcapng_two_interfaces_comments_directions(workdir, case):
    ifaces, packets = case
    path = workdir / "two.pcapng"
    assert write_pcapng(path, ifaces, packets) == len(packets)
    back_ifaces, back = iter_capture_packets(path)
    assert back_ifaces == ifaces
    assert list(back) == [_normal(p) for p in packets]
    _table_matches(path, packets, [i.link_type for i in ifaces])


@SETTINGS
@given(pcapng_packets())
def test_pcapng_rewrite_is_byte_identical(workdir, case):
    """Reading a pcapng and writing it again gives the same bytes (the annotate path relies on this)."""
    ifaces, packets = case
    a, b = workdir / "a.pcapng", workdir / "b.pcapng"
    write_pcapng(a, ifaces, packets)
    back_ifaces, back = iter_capture_packets(a)
    write_pcapng(b, back_ifaces, back)
    assert a.read_bytes() == b.read_bytes()
