"""Kernel TcpIp/UdpIp events of the perfview corpus files against PerfView's own decoding (the baselines).

The baseline files print the first events of every type with all their fields and process names
(relative times in ms from the logfile header's StartTime, values cut to 20 characters with "..."),
then one COUNT line per event type. Every TcpIp/UdpIp count and every printed TcpIp/UdpIp event must
be found in etwtools' decoding.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from etwtools.parsers.etl import kernel
from etwtools.parsers.etl.container import open_etl
from etwtools.parsers.etl.events import read_timeline
from etwtools.parsers.etl.guids import UDPIP_KERNEL
from etwtools.parsers.schema import EVENTS

FILETIME_EPOCH = 116444736000000000
_LINE = re.compile(r"EVENT ([\d,.]+): Windows Kernel/(TcpIp|UdpIp)/(\w+) (.*)$")
_COUNT = re.compile(r"COUNT Windows Kernel/(TcpIp|UdpIp)/(\w+):(\d+)$")


def parse_baseline(path: Path) -> tuple[list[dict], Counter]:
    """(printed TcpIp/UdpIp events, counts by (provider, event, ip_version)) of a PerfView baseline."""
    events, counts = [], Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := _COUNT.match(line):
            counts[(m[1], *_name(m[2]))] = int(m[3])
        elif m := _LINE.match(line):
            fields = dict(kv.split("=", 1) for kv in m[4].rstrip("; ").split("; "))
            name, ipv = _name(m[3])
            events.append(
                {
                    "ms": float(m[1].replace(",", "")),
                    "provider": m[2],
                    "event": name,
                    "ip_version": ipv,
                    **fields,
                }
            )
    return events, counts


def _name(perfview: str) -> tuple[str, int]:
    return (perfview[:-4], 6) if perfview.endswith("IPV6") else (perfview, 4)


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def _same(value: str | None, baseline: str) -> bool:
    """Equal, or a prefix of ours where PerfView cut the value ("2001:4898:e0:81:7cb9...")."""
    if value is None:
        return False
    return value.startswith(baseline[:-3]) if baseline.endswith("...") else value == baseline


@pytest.fixture(scope="module", params=["x64", "x86"])
def perfview(request, corpus):
    etl = corpus / "perfview" / f"net.4.5.2.{request.param}.etl"
    base = corpus / "perfview" / f"net.4.5.2.{request.param}.baseline.txt"
    return request.param, etl, read_timeline(etl), parse_baseline(base)


def test_counts_equal_the_baseline_count_lines(perfview):
    arch, _, timeline, (_, counts) = perfview
    ours = Counter(
        {
            (p, e, v): n
            for p, e, v, n in timeline.events.group_by("provider", "event", "ip_version").len().iter_rows()
        }
    )
    assert counts, "no TcpIp/UdpIp COUNT lines parsed"
    assert ours == counts
    assert sum(counts.values()) == {"x64": 526, "x86": 526}[arch]


def test_every_printed_event_is_decoded_with_equal_fields(perfview):
    _, _, timeline, (printed, _) = perfview
    origin = (timeline.header.start_time - FILETIME_EPOCH) * 100
    ev = timeline.events.with_columns(ms=(pl.col("time").cast(pl.Int64) - origin) / 1e6)
    assert len(printed) >= 26
    for b in printed:
        near = ev.filter(
            (pl.col("provider") == b["provider"])
            & (pl.col("event") == b["event"])
            & (pl.col("ip_version") == b["ip_version"])
            & ((pl.col("ms") - b["ms"]).abs() <= 1.0)
            & (pl.col("pid") == _num(b["PID"]))
            & (pl.col("size") == _num(b["size"]))
        )
        # UDP Recv carries the packet's orientation: its saddr/sport are the remote side.
        udp_recv = b["provider"] == "UdpIp" and b["event"] == "Recv"
        local, remote = ("daddr", "saddr") if udp_recv else ("saddr", "daddr")
        lport, rport = ("dport", "sport") if udp_recv else ("sport", "dport")
        hits = [
            r
            for r in near.iter_rows(named=True)
            if r["local_port"] == _num(b[lport])
            and r["remote_port"] == _num(b[rport])
            and (local not in b or (_same(r["local_addr"], b[local]) and _same(r["remote_addr"], b[remote])))
        ]
        assert hits, f"no decoded event for baseline {b}"
        assert hits[0]["process"] in (b["PName"], b["PName"] + ".exe"), (hits[0]["process"], b)


def test_first_printed_event_exact_values(perfview):
    """The first TcpIp event PerfView prints, field by field (IPv6 addresses in full)."""
    arch, _, timeline, _ = perfview
    first = timeline.events.filter(pl.col("provider") == "TcpIp").row(0, named=True)
    assert first["event"] == "Send" and first["ip_version"] == 6 and first["protocol"] == "TCP"
    assert first["pid"] == 4 and first["process"] == "System" and first["size"] == 65652
    assert first["remote_addr"] == "2001:4898:e0:81:7cb9:ab:cd5:e6af" and first["remote_port"] == 445
    assert first["local_addr"] == "2001:4898:f0:26:b18e:e85f:db5d:8e8"
    assert first["local_port"] == {"x64": 64025, "x86": 64022}[arch]
    assert first["startime"] == first["endtime"] == {"x64": 1942, "x86": 1534}[arch]


def test_accept_layout_fields_x86(corpus):
    """The only Connect/Accept-layout event of the corpus (x86 AcceptIPV4): mss..rcvwin as PerfView prints."""
    timeline = read_timeline(corpus / "perfview" / "net.4.5.2.x86.etl")
    acc = timeline.events.filter(pl.col("event") == "Accept").row(0, named=True)
    assert (acc["mss"], acc["rcvwin"], acc["local_port"], acc["remote_addr"]) == (
        1460,
        65700,
        2869,
        "10.128.0.77",
    )


def test_local_side_is_a_traced_host_address(perfview):
    """Orientation check against the SystemConfig NIC rundown: the local side of every TCP event and of
    every UDP Send is one of the host's own addresses; UDP Recv's local side is the packet destination
    (the host or a multicast group), never a unicast address of another host."""
    _, _, timeline, _ = perfview
    own = set(timeline.local_addresses)
    ev = timeline.events
    sends = ev.filter((pl.col("protocol") == "TCP") | (pl.col("event") == "Send"))
    assert set(sends["local_addr"]) <= own
    recv = ev.filter((pl.col("protocol") == "UDP") & (pl.col("event") == "Recv"))
    broadcasts = {
        str(ipaddress.ip_network(f"{a}/{p}", strict=False).broadcast_address)
        for a in own
        if ipaddress.ip_address(a).version == 4
        for p in range(8, 31)
    }
    kinds = Counter(
        "own"
        if a in own
        else "multicast"
        if ipaddress.ip_address(a).is_multicast
        else "broadcast"
        if a in broadcasts
        else "other"
        for a in recv["local_addr"]
    )
    assert kinds["other"] == 0 and kinds["multicast"] > 0, kinds


def test_win8_udp_payload_is_v2_not_v0(corpus):
    """PerfView prints the Win8 UdpIp Send/Recv with the v0 template (context=...): the context it shows
    is the v2 PID (low 32 bits) and size (high 32 bits), so the payload really is the v2 layout."""
    printed, _ = parse_baseline(corpus / "perfview" / "net.4.5.2.x86.baseline.txt")
    v0_lines = [b for b in printed if "context" in b]
    assert v0_lines
    for b in v0_lines:
        context = int(b["context"], 16)
        assert context & 0xFFFFFFFF == _num(b["PID"]) and context >> 32 == _num(b["size"])
    with open_etl(corpus / "perfview" / "net.4.5.2.x86.etl") as f:
        sizes = Counter()
        for batch in f.batches():
            m = batch.provider_mask(UDPIP_KERNEL) & np.isin(batch.opcode, [10, 11])
            sizes.update(
                zip(batch.version[m].tolist(), batch.payload_size[m].tolist(), batch.pointer_size[m].tolist())
            )
    assert sizes == Counter({(2, 32, 8): 30})  # PID, size, daddr, saddr, dport, sport, seqnum u32, connid u64


def test_events_schema_and_order(perfview):
    _, _, timeline, _ = perfview
    ev = timeline.events
    assert list(ev.columns[: len(EVENTS)]) == list(EVENTS)
    assert ev.schema["time"] == pl.Datetime("ns", "UTC")
    assert ev["time"].is_sorted()
    assert ev["record"].n_unique() == len(ev)
    assert ev["pid"].null_count() == 0 and ev["process"].null_count() == 0


def test_layout_table_covers_every_formats_opcode():
    """Every opcode of FORMATS.md has a layout in versions 0-2 where the MOF defines one, sizes as the MOF."""
    for op in list(range(10, 23)) + [26, 27, 28, 29, 30, 31, 32, 34]:
        assert kernel.net_layout("TCP", op, 2) is not None, op
    assert kernel.net_layout("TCP", 33, 2) is None
    for op in (10, 11, 17, 26, 27):
        assert kernel.net_layout("UDP", op, 2) is not None
    sizes = {op: kernel.net_layout("TCP", op, 2).offsets(8)[1] for op in (10, 11, 12, 17, 26, 27, 28)}
    assert sizes == {10: 40, 11: 32, 12: 48, 17: 4, 26: 64, 27: 56, 28: 72}
    assert kernel.net_layout("TCP", 10, 1).offsets(4)[1] == 20
    assert kernel.net_layout("TCP", 10, 0).offsets(4)[1] == 20
    assert kernel.net_layout("UDP", 10, 0).offsets(4)[1] == 20
    assert kernel.net_layout("UDP", 10, 2).offsets(4)[1] == 28


# ------------------------------------------------------------------------------------------------
# Layouts no public file has: inputs written with the project's own ETL writer (parsers/etl/build.py,
# built on the construct definitions), payloads packed per the MOF layouts in kernel.py's docstring.


def _ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _be16(port: int) -> bytes:
    return port.to_bytes(2, "big")


def test_v1_udp_send_of_the_exchange_case(tmp_path):
    """Windows 2003 UdpIp v1 Send (PID, size, daddr, saddr, dport, sport), 32-bit pointers, with the
    values of the exchange-udp case's tracerpt line: 2136, 8, 172.23.98.97, 10.1.1.1, 2762, 36003."""
    from etwtools.parsers.etl.build import EtlWriter

    w = EtlWriter(pointer_size=4)
    payload = (
        struct.pack("<II", 2136, 8) + _ip4("172.23.98.97") + _ip4("10.1.1.1") + _be16(2762) + _be16(36003)
    )
    w.kernel_event(0x08, 10, payload, version=1, header="system", pid=0xFFFFFFFF)
    row = read_timeline(w.write(tmp_path / "w2003.etl")).events.row(0, named=True)
    assert (row["provider"], row["event"], row["protocol"], row["ip_version"]) == ("UdpIp", "Send", "UDP", 4)
    assert (row["pid"], row["size"], row["local_addr"], row["local_port"]) == (2136, 8, "10.1.1.1", 36003)
    assert (row["remote_addr"], row["remote_port"]) == ("172.23.98.97", 2762)
    assert row["connid"] is None and row["seqnum"] is None


def test_v0_and_32bit_v2_layouts(tmp_path):
    """XP v0 TcpIp Recv (daddr, saddr, dport, sport, size, PID), XP v0 UdpIp Send (context ptr, saddr,
    sport, size u16, daddr, dport, dsize; no PID), a 32-bit v2 TcpIp Connect (connid u32) and a Fail."""
    from etwtools.parsers.etl.build import EtlWriter

    w = EtlWriter(pointer_size=4)
    w.kernel_event(
        0x06,
        11,
        _ip4("192.0.2.9") + _ip4("192.0.2.1") + _be16(80) + _be16(1025) + struct.pack("<II", 1460, 812),
        version=0,
        time=1_718_049_600_000_000_000 + 1000,
    )
    w.kernel_event(
        0x08,
        10,
        struct.pack("<I", 0x81234567)
        + _ip4("192.0.2.1")
        + _be16(137)
        + struct.pack("<H", 50)
        + _ip4("192.0.2.255")
        + _be16(137)
        + struct.pack("<H", 0),
        version=0,
        pid=777,
        time=1_718_049_600_000_000_000 + 2000,
    )
    connect = (
        struct.pack("<II", 912, 0)
        + _ip4("198.51.100.7")
        + _ip4("192.0.2.1")
        + _be16(443)
        + _be16(50001)
        + struct.pack("<HHHHIhhII", 1440, 1, 0, 1, 64240, 8, 7, 99, 0xABCDEF01)
    )
    w.kernel_event(0x06, 12, connect, version=2, header="perfinfo", time=1_718_049_600_000_000_000 + 3000)
    w.kernel_event(
        0x06, 17, struct.pack("<HH", 6, 3), version=2, pid=912, time=1_718_049_600_000_000_000 + 4000
    )
    ev = read_timeline(w.write(tmp_path / "old.etl")).events
    assert ev["event"].to_list() == ["Recv", "Send", "Connect", "Fail"]
    recv, send, conn, fail = ev.iter_rows(named=True)
    assert (recv["pid"], recv["size"], recv["local_addr"], recv["local_port"], recv["remote_port"]) == (
        812,
        1460,
        "192.0.2.1",
        1025,
        80,
    )
    assert send["pid"] == 777  # no PID in the v0 UdpIp payload: the header's
    assert (send["size"], send["local_addr"], send["remote_addr"]) == (50, "192.0.2.1", "192.0.2.255")
    assert (conn["pid"], conn["mss"], conn["rcvwin"], conn["seqnum"], conn["connid"]) == (
        912,
        1440,
        64240,
        99,
        0xABCDEF01,
    )
    assert (fail["pid"], fail["proto"], fail["failure_code"], fail["local_addr"]) == (912, 6, 3, None)


def test_short_and_unknown_records_are_counted_not_fatal(tmp_path, caplog):
    """A TcpIp Send cut short and a TcpIp record of an unknown version are skipped with one warning."""
    from etwtools.parsers.etl.build import EtlWriter

    w = EtlWriter(pointer_size=8)
    good = (
        struct.pack("<II", 4, 10)
        + _ip4("192.0.2.9")
        + _ip4("192.0.2.1")
        + _be16(80)
        + _be16(1025)
        + struct.pack("<III", 0, 0, 0)
        + struct.pack("<Q", 0)
    )
    w.kernel_event(0x06, 10, good, version=2)
    w.kernel_event(0x06, 10, good[:30], version=2)
    w.kernel_event(0x06, 10, good, version=9)
    with caplog.at_level("WARNING", logger="etwtools"):
        ev = read_timeline(w.write(tmp_path / "short.etl")).events
    assert len(ev) == 1 and ev["size"][0] == 10
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1
    assert "1 TcpIp Send records shorter than their layout (40 bytes)" in lines[0]
    assert "1 TcpIp records of unknown opcode/version (10/v9)" in lines[0]
