"""Attribution from a netsh trace alone: NDIS packets and Microsoft-Windows-TCPIP events in one ETL.

No public `netsh trace capture=yes` file with TCPIP events exists: these files are BUILT with the
project's EtlWriter (parsers/etl/build.py), with the TCPIP payload layouts documented in
parsers/etl/tcpip.py (from the provider's manifest) and NDIS event 1001 as FORMATS.md describes it.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from etwtools.cli import cli
from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.events import read_etl_events
from etwtools.parsers.etl.guids import TCPIP

START = datetime(2024, 6, 10, 20, 0, 0, tzinfo=UTC)
HOST, WEB, PEER = "10.0.0.1", "10.0.0.9", "10.0.0.77"
MACS = bytes.fromhex("00155d000001") + bytes.fromhex("00155d000002")


def s(sec: float) -> timedelta:
    return timedelta(seconds=sec)


def _ip(src: str, dst: str, proto: int, body: bytes) -> bytes:
    return (
        MACS
        + b"\x08\x00"
        + struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(body),
            1,
            0,
            128,
            proto,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        + body
    )


def tcp(src: str, sport: int, dst: str, dport: int, flags: int, payload: bytes = b"") -> bytes:
    return _ip(
        src, dst, 6, struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 0x50, flags, 65535, 0, 0) + payload
    )


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    return _ip(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


def sockaddr(addr: str, port: int) -> bytes:
    return struct.pack("<H", 2) + struct.pack("!H", port) + ipaddress.IPv4Address(addr).packed + bytes(8)


def connect_complete(
    w: EtlWriter, at: float, local: tuple[str, int], remote: tuple[str, int], pid: int
) -> None:
    """TCPIP 1033 TcpConnectTcbComplete: addresses, status, ProcessId, compartment, Tcb."""
    body = (
        struct.pack("<I", 16)
        + sockaddr(*local)
        + struct.pack("<I", 16)
        + sockaddr(*remote)
        + struct.pack("<III", 0, pid, 1)
        + bytes(w.pointer_size)
    )
    w.event(TCPIP, 1033, body, time=s(at), level=4, keyword=0x400000484, task=1033, pid=0, tid=1)


def udp_send(
    w: EtlWriter,
    at: float,
    local: tuple[str, int],
    remote: tuple[str, int],
    pid: int,
    size: int,
    messages: int = 1,
) -> None:
    """TCPIP 1169 UdpEndpointSendMessages: endpoint, NumMessages, NumBytes, addresses, Pid."""
    body = (
        bytes(w.pointer_size)
        + struct.pack("<III", messages, size, 16)
        + sockaddr(*local)
        + struct.pack("<I", 16)
        + sockaddr(*remote)
        + struct.pack("<I", pid)
    )
    w.event(TCPIP, 1169, body, time=s(at), level=4, keyword=0x100000000, task=1169, pid=0, tid=1)


@pytest.fixture(params=[8, 4], ids=["64-bit", "32-bit"])
def netsh_trace(tmp_path, request):
    w = EtlWriter(pointer_size=request.param, start=START)
    # a browser (PID 4711) connects to WEB:443 and sends a request
    w.ndis_packet(tcp(HOST, 50123, WEB, 443, 0x02), time=s(1.000), direction="out")
    w.ndis_packet(tcp(WEB, 443, HOST, 50123, 0x12), time=s(1.020), direction="in")
    w.ndis_packet(tcp(HOST, 50123, WEB, 443, 0x10), time=s(1.021), direction="out")
    connect_complete(w, 1.021, (HOST, 50123), (WEB, 443), pid=4711)
    w.ndis_packet(tcp(HOST, 50123, WEB, 443, 0x18, b"GET / HTTP/1.1\r\n\r\n"), time=s(1.030), direction="out")
    # an mDNS responder (PID 2020) sends one 48-byte datagram, then a batch of three
    udp_send(w, 2.000, (HOST, 5353), ("224.0.0.251", 5353), pid=2020, size=48)
    w.ndis_packet(udp(HOST, 5353, "224.0.0.251", 5353, bytes(48)), time=s(2.0003), direction="out")
    udp_send(w, 3.000, (HOST, 5353), ("224.0.0.251", 5353), pid=2020, size=144, messages=3)
    # traffic of another host that the trace has no event for
    w.ndis_packet(udp(PEER, 137, "10.0.0.255", 137, bytes(50)), time=s(2.5), direction="in")
    return w.write(tmp_path / f"netsh{request.param}.etl")


def test_tcpip_pid_events_join_the_timeline(netsh_trace):
    ev = read_etl_events(netsh_trace)
    rows = ev.select(
        "provider",
        "event",
        "protocol",
        "pid",
        "size",
        "local_addr",
        "local_port",
        "remote_addr",
        "remote_port",
    ).rows()
    assert rows == [
        ("TCPIP", "ConnectComplete", "TCP", 4711, None, HOST, 50123, WEB, 443),
        ("TCPIP", "Send", "UDP", 2020, 48, HOST, 5353, "224.0.0.251", 5353),
        ("TCPIP", "Send", "UDP", 2020, None, HOST, 5353, "224.0.0.251", 5353),  # 3 datagrams: no one size
    ]
    assert ev["time"][0] == START + s(1.021)


def test_attribute_from_the_trace_alone(netsh_trace):
    result = CliRunner().invoke(cli, ["attribute", "--etl", str(netsh_trace), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = {r["frame"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert len(rows) == 6
    tcp_frames = [r for r in rows.values() if r["protocol"] == "TCP"]
    assert len(tcp_frames) == 4 and {r["pid"] for r in tcp_frames} == {4711}
    assert all(r["confidence"] in ("high", "medium") for r in tcp_frames)
    mdns = next(r for r in rows.values() if r["src_port"] == 5353)
    assert (mdns["pid"], mdns["confidence"], mdns["method"]) == (2020, "high", "udp-5tuple-size")
    assert mdns["direction"] == "out"
    other = next(r for r in rows.values() if r["src_addr"] == PEER)
    assert other["confidence"] == "none" and other["pid"] is None
    assert "offset" in result.stderr


def test_one_pass_gives_the_same_frames_as_a_separate_read(netsh_trace):
    """`attribute --etl` alone reads events and packets in one pass over the file."""
    from polars.testing import assert_frame_equal

    from etwtools.sources import read_frames, read_trace

    trace = read_trace(netsh_trace, with_frames=True)
    assert trace.frames.height == 6
    assert_frame_equal(trace.frames, read_frames(netsh_trace))
