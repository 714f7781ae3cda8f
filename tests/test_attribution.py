"""The attribution engine (etwtools.attribution) on events, frames and processes built here.

No public capture + kernel trace pair of the same host exists (besides the four-line seed case, tested
at the end with the project's own readers), so most tests build the EVENTS / FRAMES / PROCESSES tables
here, in the project's schemas, with the situation each test is about written out in it.
"""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from etwtools.attribution import OUT_COLUMNS, attribute
from etwtools.parsers import schema

NS = 1_000_000_000
HOUR = 3600 * NS
T0 = 1_600_000_000 * NS  # 2020-09-13 12:26:40 UTC, trace clock
HOST = "10.0.0.5"
ACK, SYN, FIN, PSH = 0x10, 0x02, 0x01, 0x08


def events(rows: list[tuple]) -> pl.DataFrame:
    """rows: (t_ns, event, protocol, pid, size, local, lport, remote, rport)."""
    cols = [
        "time",
        "event",
        "protocol",
        "pid",
        "size",
        "local_addr",
        "local_port",
        "remote_addr",
        "remote_port",
    ]
    df = (
        pl.DataFrame([dict(zip(cols, r)) for r in rows], schema_overrides={"time": pl.Int64})
        if rows
        else pl.DataFrame(schema={c: pl.Int64 if c in ("time", "pid", "size") else pl.Utf8 for c in cols})
    )
    df = df.with_columns(
        pl.col("time").cast(schema.TIME),
        pl.when(pl.col("protocol") == "TCP")
        .then(pl.lit("TcpIp"))
        .otherwise(pl.lit("UdpIp"))
        .alias("provider"),
        pl.int_range(pl.len()).alias("record"),
    )
    return schema.conform(df, schema.EVENTS)


def frames(rows: list[dict]) -> pl.DataFrame:
    """rows: dicts with t, protocol, src, sport, dst, dport, payload and optional extras."""
    out = []
    for i, r in enumerate(rows, start=1):
        d = {
            "frame": r.get("frame", i),
            "time": r["t"],
            "protocol": r.get("protocol", "UDP"),
            "src_addr": r["src"],
            "src_port": r.get("sport"),
            "dst_addr": r["dst"],
            "dst_port": r.get("dport"),
            "payload_len": r.get("payload", 0),
            "tcp_flags": r.get("flags"),
            "direction": r.get("direction"),
            "fragment": r.get("fragment", "none"),
            "ip_id": r.get("ip_id"),
            "ip_version": 4,
            "wirelen": r.get("payload", 0) + 42,
        }
        out.append(d)
    df = pl.DataFrame(
        out,
        schema_overrides={
            "time": pl.Int64,
            "tcp_flags": pl.Int64,
            "ip_id": pl.Int64,
            "direction": pl.Utf8,
            "src_port": pl.Int64,
            "dst_port": pl.Int64,
        },
    )
    return schema.conform(df.with_columns(pl.col("time").cast(schema.TIME)), schema.FRAMES)


def processes(rows: list[dict]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema_overrides={"start": pl.Int64, "end": pl.Int64, "snapshot": pl.Int64})
    for c in ("start", "end", "snapshot"):
        if c in df.columns:
            df = df.with_columns(pl.col(c).cast(schema.TIME))
    return schema.conform(df, schema.PROCESSES)


def by_frame(result) -> dict[int, dict]:
    return {r["frame"]: r for r in result.frames.iter_rows(named=True)}


# ---------------------------------------------------------------------------------------------------


def _udp_scenario(offset: int):
    """Two processes: 1234 (DNS client) sends queries and receives answers; 77 (NTP) sends. Each
    datagram has its own 5-tuple or size; the capture clock is ``offset`` ahead of the trace's."""
    ev, fr, truth = [], [], {}
    for i in range(12):
        t = T0 + i * 700_000_000
        ev.append((t, "Send", "UDP", 1234, 30 + i, HOST, 50000 + i, "10.0.0.1", 53))
        fr.append(
            {
                "t": t + offset + 40_000,
                "src": HOST,
                "sport": 50000 + i,
                "dst": "10.0.0.1",
                "dport": 53,
                "payload": 30 + i,
            }
        )
        truth[len(fr)] = 1234
        ev.append((t + 9_000_000, "Recv", "UDP", 1234, 90 + i, HOST, 50000 + i, "10.0.0.1", 53))
        fr.append(
            {
                "t": t + offset + 8_950_000,
                "src": "10.0.0.1",
                "sport": 53,
                "dst": HOST,
                "dport": 50000 + i,
                "payload": 90 + i,
            }
        )
        truth[len(fr)] = 1234
    for i in range(4):
        t = T0 + 300_000_000 + i * 2 * NS
        ev.append((t, "SendIPV4", "UDP", 77, 48, HOST, 123, "192.0.2.7", 123))
        fr.append(
            {
                "t": t + offset + 15_000,
                "src": HOST,
                "sport": 123,
                "dst": "192.0.2.7",
                "dport": 123,
                "payload": 48,
            }
        )
        truth[len(fr)] = 77
    # traffic between two other hosts, seen by the capture only
    for i in range(5):
        fr.append(
            {
                "t": T0 + offset + i * NS,
                "src": "10.0.0.9",
                "sport": 4000 + i,
                "dst": "10.0.0.1",
                "dport": 53,
                "payload": 30 + i,
            }
        )
        truth[len(fr)] = None
    return events(ev), frames(fr), truth


def test_udp_datagrams_match_their_send_and_recv_events_at_an_estimated_offset():
    offset = 2 * HOUR + 432_100_000
    ev, fr, truth = _udp_scenario(offset)
    r = attribute(ev, fr)
    rows = by_frame(r)
    assert r.offset_source == "estimated"
    assert abs(r.offset_ns - offset - 40_000) < 100_000  # within the 15-50 us of stack latency
    assert r.offset_support == 28
    assert r.local_addrs == [HOST] and r.local_addrs_source == "inferred"
    for n, pid in truth.items():
        row = rows[n]
        if pid is None:
            assert row["pid"] is None and row["confidence"] == "none"
            assert "neither address" in row["reason"]
            assert row["direction"] == "unknown"
        else:
            assert row["pid"] == pid
            assert row["confidence"] == "high"
            assert row["method"] == "udp-5tuple-size"
            assert abs(row["delta_s"]) < 0.001
            assert row["direction"] == ("out" if row["src_addr"] == HOST else "in")
    assert r.why_nothing() is None


def test_output_columns_and_types():
    ev, fr, _ = _udp_scenario(HOUR)
    r = attribute(ev, fr)
    assert r.frames.columns == OUT_COLUMNS
    assert r.frames.height == fr.height
    assert r.frames["frame"].to_list() == fr["frame"].to_list()
    assert r.frames.schema["time"] == schema.TIME and r.frames.schema["event_time"] == schema.TIME
    assert r.frames.schema["delta_s"] == pl.Float64
    assert set(r.frames["confidence"]) <= {"high", "medium", "low", "none"}
    assert r.frames["reason"].null_count() == 0
    s = r.summary
    assert s.columns == ["pid", "process", "services", "frames", "bytes", "first", "last"]
    top = s.filter(pl.col("pid") == 1234).row(0, named=True)
    assert top["frames"] == 24
    assert top["bytes"] == sum(30 + i + 42 + 90 + i + 42 for i in range(12))
    assert s.filter(pl.col("pid").is_null())["frames"].to_list() == [5]


def test_udp_matching_agrees_with_a_brute_force_search():
    # Random datagrams on 6 5-tuples with 3 sizes each; the capture holds 70 % of them (with jitter)
    # plus some the trace lacks. Each frame must take the nearest event with its 5-tuple and size within
    # the tolerance, as a plain Python search finds it.
    rng = random.Random(7)
    offset = -7 * HOUR + 123_456_789
    tuples = [(HOST, 40000 + k, f"198.51.100.{k}", 443 + k) for k in range(6)]
    ev, fr = [], []
    for i in range(400):
        la, lp, ra, rp = rng.choice(tuples)
        t = T0 + rng.randrange(0, 60 * NS)
        size = rng.choice([100, 200, 300])
        kind = rng.choice(["Send", "Recv"])
        ev.append(
            (
                t,
                kind,
                "UDP",
                1000 + tuples.index((la, lp, ra, rp)) * 10 + rng.randrange(2),
                size,
                la,
                lp,
                ra,
                rp,
            )
        )
        if rng.random() < 0.7:
            jitter = rng.randrange(-2_000_000, 2_000_000)
            src, sp, dst, dp = (la, lp, ra, rp) if kind == "Send" else (ra, rp, la, lp)
            fr.append(
                {"t": t + offset + jitter, "src": src, "sport": sp, "dst": dst, "dport": dp, "payload": size}
            )
    evdf, frdf = events(ev), frames(fr)
    r = attribute(evdf, frdf, tolerance_s=0.5)
    assert abs(r.offset_ns - offset) < 2_000_000
    rows = by_frame(r)
    for n, f in enumerate(fr, start=1):
        out = f["src"] == HOST
        tt = f["t"] - r.offset_ns
        best = None
        for t, kind, _, pid, size, la, lp, ra, rp in ev:
            if size != f["payload"] or kind != ("Send" if out else "Recv"):
                continue
            if (la, lp, ra, rp) != (
                (f["src"], f["sport"], f["dst"], f["dport"])
                if out
                else (f["dst"], f["dport"], f["src"], f["sport"])
            ):
                continue
            d = abs(tt - t)
            if d <= NS // 2 and (best is None or d < best[0]):
                best = (d, pid)
        got = rows[n]
        assert got["method"] == "udp-5tuple-size"
        assert got["pid"] == best[1]
        assert abs(got["delta_s"] * NS) == pytest.approx(best[0], abs=2)


def _tcp_reuse():
    """One 4-tuple used first by PID 100 (a.exe), then, after it closed, by PID 200 (b.exe).
    Sends are 4,000 bytes, cut into 1,460-byte segments on the wire (TSO): one Send, three frames."""
    la, lp, ra, rp = HOST, 49700, "203.0.113.10", 443
    ev = [
        (T0 + 0 * NS, "Connect", "TCP", 100, 0, la, lp, ra, rp),
        (T0 + 1 * NS, "Send", "TCP", 100, 4000, la, lp, ra, rp),
        (T0 + 1 * NS + 80_000_000, "Recv", "TCP", 100, 517, la, lp, ra, rp),
        (T0 + 2 * NS, "Disconnect", "TCP", 100, 0, la, lp, ra, rp),
        (T0 + 30 * NS, "Connect", "TCP", 200, 0, la, lp, ra, rp),
        (T0 + 31 * NS, "Send", "TCP", 200, 4000, la, lp, ra, rp),
        (T0 + 31 * NS + 80_000_000, "Recv", "TCP", 200, 900, la, lp, ra, rp),
        (T0 + 33 * NS, "Disconnect", "TCP", 200, 0, la, lp, ra, rp),
    ]
    out = {"src": la, "sport": lp, "dst": ra, "dport": rp, "protocol": "TCP"}
    inn = {"src": ra, "sport": rp, "dst": la, "dport": lp, "protocol": "TCP"}
    fr, truth = [], []

    def add(t, d, payload, flags, pid):
        fr.append({**d, "t": t, "payload": payload, "flags": flags})
        truth.append(pid)

    for base, pid, rsize in ((0, 100, 517), (30, 200, 900)):
        t = T0 + base * NS
        add(t - 30_000_000, out, 0, SYN, pid)
        add(t - 10_000_000, inn, 0, SYN | ACK, pid)
        add(t - 9_000_000, out, 0, ACK, pid)
        for k, size in enumerate((1460, 1460, 1080)):
            add(t + NS + 20_000 + k * 12_000, out, size, ACK | (PSH if k == 2 else 0), pid)
        add(t + NS + 79_000_000, inn, rsize, ACK | PSH, pid)
        end = t + (2 if pid == 100 else 3) * NS
        add(end + 1_000_000, out, 0, FIN | ACK, pid)
        add(end + 40_000_000, inn, 0, FIN | ACK, pid)
        add(end + 41_000_000, out, 0, ACK, pid)
    return events(ev), fr, truth


def test_tcp_4tuple_reused_by_a_second_process_and_tso_segments():
    ev, fr, truth = _tcp_reuse()
    offset = -4 * HOUR + 250_000_000
    for f in fr:
        f["t"] += offset
    r = attribute(ev, frames(fr))
    assert abs(r.offset_ns - offset) < 2_000_000  # from the two Recv events (exact sizes)
    assert r.offset_support == 2
    got = r.frames["pid"].to_list()
    assert got == truth
    conf = r.frames["confidence"].to_list()
    assert all(c == "high" for c in conf), conf
    assert set(r.frames["method"]) == {"tcp-connection"}
    # the new connection's SYN sits between PID 100's Disconnect and PID 200's Connect
    syn2 = r.frames.row(truth.index(200), named=True)
    assert "SYN opens the new connection" in syn2["reason"]


def test_tcp_frames_far_from_any_event_lose_confidence():
    ev, fr, _ = _tcp_reuse()
    late = dict(fr[3])
    late["t"] = T0 + 33 * NS + 100 * NS  # 100 s after PID 200's Disconnect: medium
    later = dict(fr[3])
    later["t"] = T0 + 33 * NS + 400 * NS  # 400 s after: low
    r = attribute(ev, frames(fr + [late, later]), offset_s=0.0)
    rows = r.frames.tail(2).to_dicts()
    assert [x["pid"] for x in rows] == [200, 200]
    assert [x["confidence"] for x in rows] == ["medium", "low"]
    assert "no event of this 4-tuple follows" in rows[0]["reason"]


def test_later_ip_fragments_follow_their_first_fragment():
    # A 3,000-byte UDP datagram over IPv4 with a 1,500-byte MTU: 1,472 + 1,480 + 48 payload bytes; the
    # capture reader gives later fragments the first fragment's ports.
    ev = events([(T0, "Send", "UDP", 4321, 3000, HOST, 5353, "224.0.0.251", 5353)])
    common = {"src": HOST, "sport": 5353, "dst": "224.0.0.251", "dport": 5353, "ip_id": 777}
    fr = frames(
        [
            {**common, "t": T0 + 10_000, "payload": 1472, "fragment": "first"},
            {**common, "t": T0 + 11_000, "payload": 1480, "fragment": "later"},
            {**common, "t": T0 + 12_000, "payload": 48, "fragment": "later"},
            {**common, "t": T0 + 20_000, "payload": 48, "fragment": "later", "ip_id": 778},
        ]
    )
    r = attribute(ev, fr, offset_s=0.0)
    rows = r.frames.to_dicts()
    assert [x["pid"] for x in rows[:3]] == [4321] * 3
    assert rows[0]["method"] == "udp-5tuple-size" and rows[0]["confidence"] == "high"
    assert [x["method"] for x in rows[1:3]] == ["fragment", "fragment"]
    assert "later IP fragment of frame 1" in rows[1]["reason"]
    # a later fragment whose first fragment is missing falls back on its 5-tuple alone (no size match)
    assert rows[3]["method"] == "udp-5tuple" and rows[3]["confidence"] == "medium"


def test_weaker_evidence_is_low_and_says_what_it_rests_on():
    ev = events(
        [
            (T0, "Send", "UDP", 55, 20, HOST, 5000, "10.9.9.9", 7000),
            (T0 + 1000, "Send", "UDP", 55, 21, HOST, 5000, "10.9.9.9", 7001),
            (T0 + 2000, "Send", "TCP", 66, 100, HOST, 6000, "10.8.8.8", 80),
        ]
    )
    fr = frames(
        [
            {"t": T0, "src": HOST, "sport": 5000, "dst": "10.9.9.9", "dport": 7000, "payload": 20},  # exact
            {
                "t": T0,
                "src": HOST,
                "sport": 5000,
                "dst": "10.1.2.3",
                "dport": 9999,
                "payload": 20,
            },  # local port
            {
                "t": T0,
                "src": HOST,
                "sport": 6500,
                "dst": "10.8.8.8",
                "dport": 81,
                "payload": 5,
                "protocol": "TCP",
            },  # addresses
            {"t": T0, "src": HOST, "sport": 1111, "dst": "10.7.7.7", "dport": 2222, "payload": 5},  # nothing
            {"t": T0, "src": HOST, "dst": "10.7.7.7", "payload": 5, "protocol": "ICMP"},  # not TCP/UDP
            {
                "t": T0 + 2 * HOUR,
                "src": HOST,
                "sport": 1111,
                "dst": "10.7.7.7",
                "dport": 2222,
                "payload": 5,
            },  # after trace
        ]
    )
    r = attribute(ev, fr)
    rows = r.frames.to_dicts()
    assert rows[0]["confidence"] == "high" and rows[0]["pid"] == 55
    assert (rows[1]["confidence"], rows[1]["method"], rows[1]["pid"]) == ("low", "local-port", 55)
    assert "only the local port matches" in rows[1]["reason"]
    assert (rows[2]["confidence"], rows[2]["method"], rows[2]["pid"]) == ("low", "addresses", 66)
    assert "only the addresses match" in rows[2]["reason"]
    assert rows[3]["confidence"] == "none" and rows[3]["pid"] is None
    assert rows[3]["reason"].startswith("no TcpIp/UdpIp event has this 5-tuple")
    assert rows[4]["confidence"] == "none" and "only TCP and UDP" in rows[4]["reason"]
    assert "after the trace's last network event" in rows[5]["reason"]
    # low candidates are not attributions
    assert r.attributed.height == 1


def test_given_offset_is_used_and_a_disagreeing_estimate_is_noted():
    ev, fr, _ = _udp_scenario(3 * HOUR)
    r = attribute(ev, fr, offset_s=3 * 3600 + 0.00004)
    assert r.offset_source == "given" and r.offset_ns == 3 * HOUR + 40_000
    assert r.offset_support == 28
    assert not [n for n in r.notes if "differs" in n]
    wrong = attribute(ev, fr, offset_s=3 * 3600 + 5.0)
    assert wrong.offset_ns == 3 * HOUR + 5 * NS
    assert any("differs from the one the data suggest" in n for n in wrong.notes)
    assert wrong.attributed.filter(pl.col("method") == "udp-5tuple-size").height == 0


def test_local_addresses_given_nic_or_inferred_and_direction_from_the_capture():
    ev, fr, _ = _udp_scenario(HOUR)
    assert attribute(ev, fr, local_addrs=[HOST, "10.0.0.6"]).local_addrs_source == "given"
    r = attribute(ev, fr, nic_addrs=["10.0.0.6"])
    assert r.local_addrs_source == "nic events + inferred" and r.local_addrs == ["10.0.0.6", HOST]
    # a capture that records directions (pcapng flags) is believed; unknown orientation tries both
    fr2 = fr.with_columns(pl.lit("unknown").alias("direction"))
    r2 = attribute(ev, fr2, local_addrs=["192.0.2.99"])  # a wrong local list: both orientations tried
    assert r2.attributed.height == 28
    assert set(r2.attributed["direction"]) == {"in", "out"}


def test_multicast_receive_is_matched_but_the_group_is_not_a_local_address():
    # As in perfview/net.4.5.2.x64.etl: a Recv event of an SSDP multicast datagram has the group
    # (239.255.255.250) as its local address.
    ev = events(
        [
            (T0, "Recv", "UDP", 2108, 120, "239.255.255.250", 1900, "192.168.1.20", 50000),
            (T0 + NS, "Send", "UDP", 2108, 130, HOST, 1900, "239.255.255.250", 1900),
        ]
    )
    fr = frames(
        [
            {
                "t": T0 - 50_000,
                "src": "192.168.1.20",
                "sport": 50000,
                "dst": "239.255.255.250",
                "dport": 1900,
                "payload": 120,
            },
            {
                "t": T0 + NS + 50_000,
                "src": HOST,
                "sport": 1900,
                "dst": "239.255.255.250",
                "dport": 1900,
                "payload": 130,
            },
        ]
    )
    r = attribute(ev, fr)
    assert r.local_addrs == [HOST]
    assert r.frames.select("pid", "direction", "confidence").rows() == [
        (2108, "in", "high"),
        (2108, "out", "high"),
    ]


def test_loopback_frame_goes_to_its_sender():
    # 127.0.0.1:5000 (PID 10) sends to 127.0.0.1:6000 (PID 20): both ends are local and both sockets
    # have events; the frame is the sender's.
    lo = "127.0.0.1"
    ev = events(
        [
            (T0, "Send", "TCP", 10, 300, lo, 5000, lo, 6000),
            (T0 + 50_000, "Recv", "TCP", 20, 300, lo, 6000, lo, 5000),
            (T0 + 2 * NS, "Send", "TCP", 20, 40, lo, 6000, lo, 5000),
            (T0 + 2 * NS + 50_000, "Recv", "TCP", 10, 40, lo, 5000, lo, 6000),
        ]
    )
    fr = frames(
        [
            {
                "t": T0 + 20_000,
                "protocol": "TCP",
                "src": lo,
                "sport": 5000,
                "dst": lo,
                "dport": 6000,
                "payload": 300,
            },
            {
                "t": T0 + 2 * NS + 20_000,
                "protocol": "TCP",
                "src": lo,
                "sport": 6000,
                "dst": lo,
                "dport": 5000,
                "payload": 40,
            },
        ]
    )
    r = attribute(ev, fr)
    assert r.frames.select("pid", "direction", "confidence").rows() == [
        (10, "out", "high"),
        (20, "out", "high"),
    ]


def test_pids_resolve_through_process_lifetimes_then_tasklist():
    # PID 300 was a.exe until T0+5 s, then the PID was reused by b.exe. PID 400: the trace says c.exe,
    # tasklist says d.exe (a disagreement to report). PID 500 is only in the tasklist (with services).
    ev = events(
        [
            (T0 + 1 * NS, "Send", "UDP", 300, 10, HOST, 1000, "10.1.1.1", 53),
            (T0 + 8 * NS, "Send", "UDP", 300, 11, HOST, 1001, "10.1.1.1", 53),
            (T0 + 2 * NS, "Send", "UDP", 400, 12, HOST, 1002, "10.1.1.1", 53),
            (T0 + 3 * NS, "Send", "UDP", 500, 13, HOST, 1003, "10.1.1.1", 53),
        ]
    )
    fr = frames(
        [
            {"t": T0 + k * NS, "src": HOST, "sport": p, "dst": "10.1.1.1", "dport": 53, "payload": s}
            for k, p, s in ((1, 1000, 10), (8, 1001, 11), (2, 1002, 12), (3, 1003, 13))
        ]
    )
    procs = processes(
        [
            {"pid": 300, "image": "a.exe", "end": T0 + 5 * NS, "source": "etl"},
            {"pid": 300, "image": "b.exe", "start": T0 + 6 * NS, "source": "etl"},
            {"pid": 400, "image": "c.exe", "source": "etl"},
            {"pid": 300, "image": "b.exe", "services": "Dnscache", "source": "tasklist"},
            {"pid": 400, "image": "d.exe", "services": "Spooler", "source": "tasklist"},
            {"pid": 500, "image": "svchost.exe", "services": "W32Time,Dhcp", "source": "tasklist"},
        ]
    )
    r = attribute(ev, fr, procs, offset_s=0.0)
    rows = r.frames.select("pid", "process", "services").to_dicts()
    assert rows[0] == {"pid": 300, "process": "a.exe", "services": None}
    assert rows[1] == {"pid": 300, "process": "b.exe", "services": "Dnscache"}
    assert rows[2] == {"pid": 400, "process": "c.exe", "services": None}
    assert rows[3] == {"pid": 500, "process": "svchost.exe", "services": "W32Time,Dhcp"}
    notes = [n for n in r.notes if n.startswith("PID 400:")]
    assert len(notes) == 1 and "tasklist" in notes[0] and "d.exe" in notes[0] and "c.exe" in notes[0]
    assert not [n for n in r.notes if n.startswith("PID 300:")]
    text = r.explain(2)
    assert "b.exe" in text and "a.exe" in text and "alive at this time" in text


def test_explain_gives_the_chain_of_evidence():
    ev, fr, _ = _udp_scenario(2 * HOUR)
    r = attribute(ev, fr)
    text = r.explain(3)
    for part in (
        "Frame 3: UDP 10.0.0.5:50001 -> 10.0.0.1:53",
        "Answer: PID 1234",
        "confidence high",
        "Traced host's addresses (inferred): 10.0.0.5",
        "Direction: out",
        "capture - trace = +7200.0000",
        "Events with this 5-tuple",
        "<- the event used",
        "Rule applied: a UDP datagram is the Send",
        "PID 1234 -> process",
    ):
        assert part in text, part
    noise = r.explain(fr.height)
    assert "not attributed" in noise and "neither address is local" in noise
    assert "not in the capture" in r.explain(10_000)


# -- nothing attributed: a clear reason, no exception ---------------------------------------------------


def test_empty_trace():
    _, fr, _ = _udp_scenario(HOUR)
    r = attribute(events([]), fr)
    assert r.attributed.height == 0
    assert r.offset_ns is None and r.offset_source is None
    assert "no usable TcpIp/UdpIp network events" in r.why_nothing()
    assert "none could be established" in r.describe_offset()
    assert set(r.frames["confidence"]) == {"none"}


def test_capture_without_a_frame_of_the_traced_host():
    ev, _, _ = _udp_scenario(HOUR)
    fr = frames(
        [
            {
                "t": T0 + i * NS,
                "src": "172.16.0.1",
                "sport": 1000 + i,
                "dst": "172.16.0.2",
                "dport": 80,
                "payload": 10,
                "protocol": "TCP",
            }
            for i in range(5)
        ]
    )
    r = attribute(ev, fr)
    assert (
        "none of the capture's 5 TCP/UDP frames is from or to the traced host (10.0.0.5)" in r.why_nothing()
    )


def test_capture_from_another_day():
    ev, fr, _ = _udp_scenario(0)
    r = attribute(ev, fr.with_columns(pl.col("time") + pl.duration(days=2)))
    assert r.offset_ns is None
    msg = r.why_nothing()
    assert "no candidate match" in msg and "+-14 h" in msg and "about 2.0 days apart" in msg


def test_coincidental_matches_that_disagree_give_no_offset():
    # Two frames share 5-tuple and size with two events, but 40 min and 3 h 10 min away from them: no
    # offset is better supported than another, so none is assumed.
    ev, _, _ = _udp_scenario(0)
    first = ev.row(0, named=True)
    third = ev.row(2, named=True)
    fr = frames(
        [
            {
                "t": T0 + 40 * 60 * NS,
                "src": HOST,
                "sport": first["local_port"],
                "dst": "10.0.0.1",
                "dport": 53,
                "payload": first["size"],
            },
            {
                "t": T0 + 190 * 60 * NS,
                "src": HOST,
                "sport": third["local_port"],
                "dst": "10.0.0.1",
                "dport": 53,
                "payload": third["size"],
            },
        ]
    )
    r = attribute(ev, fr)
    assert r.offset_ns is None and r.attributed.height == 0
    assert "do not agree on one clock offset: the best has 1, another has 1" in r.why_nothing()


def test_capture_of_other_connections_of_the_same_host():
    ev, _, _ = _udp_scenario(0)
    fr = frames([{"t": T0, "src": HOST, "sport": 9, "dst": "10.0.0.1", "dport": 9, "payload": 1}])
    msg = attribute(ev, fr).why_nothing()
    assert msg.startswith("no frame shares a protocol and 5-tuple")


def test_given_offset_that_matches_nothing():
    ev, fr, _ = _udp_scenario(HOUR)
    r = attribute(ev, fr, offset_s=-3600.0)
    assert r.offset_source == "given" and r.offset_support == 0
    assert "with the given offset -3600.000000 s no frame falls within 0.5 s" in r.why_nothing()
    assert any("differs from the one the data suggest" in n for n in r.notes)


def test_frame_without_time_says_so():
    ev, fr, _ = _udp_scenario(HOUR)
    fr = fr.with_columns(pl.when(pl.col("frame") == 3).then(None).otherwise(pl.col("time")).alias("time"))
    rows = by_frame(attribute(ev, fr))
    assert rows[3]["confidence"] == "none" and "no timestamp" in rows[3]["reason"]
    assert rows[4]["confidence"] == "high"


@pytest.mark.parametrize(
    "kwargs", [{"tolerance_s": -1.0}, {"tolerance_s": float("nan")}, {"offset_s": float("inf")}]
)
def test_unusable_parameters_raise_attribution_error(kwargs):
    from etwtools.errors import AttributionError

    ev, fr, _ = _udp_scenario(0)
    with pytest.raises(AttributionError):
        attribute(ev, fr, **kwargs)


def test_empty_capture():
    ev, _, _ = _udp_scenario(0)
    r = attribute(ev, schema.empty(schema.FRAMES))
    assert r.frames.height == 0 and r.why_nothing() == "the capture has no frames"


# -- the seed case ----------------------------------------------------------------------------------------


def _case_frames(path) -> pl.DataFrame:
    """frames.txt is Wireshark's summary in the analyst's local time; the capture stores UTC. The
    README gives the pair (15:20:14.454856 local = 11:20:14.454856 UTC), so 4 h are subtracted here
    to get the capture's own times; the tool is not told any offset. Port names are Wireshark's: the
    ones this test needs are mapped to numbers (dicom-tls is 2762); the others only need to differ."""
    import datetime as dt
    import re

    names = {"dicom-tls": 2762}
    rows = []
    for line in path.read_text().splitlines()[1:]:
        m = re.match(r"(\d+) (\S+ \S+) (\S+) (\S+) UDP Source port: (\d+) Destination port: (\S+)$", line)
        assert m, line
        n, ts, src, dst, sport, dport = m.groups()
        local = dt.datetime.fromisoformat(ts)
        utc = (local - dt.timedelta(hours=4)).replace(tzinfo=dt.UTC)
        port = int(dport) if dport.isdigit() else names.get(dport, 10000 + len(rows))
        rows.append(
            {
                "frame": int(n),
                "time": utc,
                "src_addr": src,
                "dst_addr": dst,
                "src_port": int(sport),
                "dst_port": port,
                "protocol": "UDP",
                "payload_len": 8,
                "wirelen": 50,
                "ip_version": 4,
                "fragment": "none",
            }
        )
    return schema.conform(pl.DataFrame(rows), schema.FRAMES)


def test_seed_case_frame_105540_is_store_exe(cases):
    from etwtools.parsers.tasklist import read_tasklist
    from etwtools.parsers.tracerpt import read_tracerpt

    case = cases / "exchange-udp"
    trace = read_tracerpt(case / "kernel.csv")
    procs = pl.concat([trace.processes, read_tasklist([case / "tasklist.txt"])], how="diagonal_relaxed")
    fr = _case_frames(case / "frames.txt")
    r = attribute(trace.events, fr, procs)
    assert r.offset_source == "estimated"
    assert r.offset_support == 1
    # 11:20:14.454856 (capture, UTC) - 11:20:14.1424158 (kernel Clock-Time)
    assert r.offset_ns == 312_440_200
    row = r.frames.filter(pl.col("frame") == 105540).row(0, named=True)
    assert (row["pid"], row["process"], row["confidence"], row["method"]) == (
        2136,
        "store.exe",
        "high",
        "udp-5tuple-size",
    )
    assert row["direction"] == "out" and row["delta_s"] == 0.0
    others = r.frames.filter(pl.col("frame") != 105540)
    assert others.height == 14
    assert set(others["confidence"]) <= {"low", "none"}
    # frame 105558 (local port 36016) shares only its local port with the third kernel line
    low = others.filter(pl.col("confidence") == "low")
    assert low["frame"].to_list() == [105558]
    assert low["method"].to_list() == ["local-port"]
    assert r.why_nothing() is None
    assert "a single match" in r.describe_offset()
    text = r.explain(105540)
    assert "store.exe" in text and "11:20:14.1424158" in text and "tasklist" in text


# -- found by the break-attribution review -------------------------------------------------------------


def _udp_offset_anchor(n: int = 8) -> tuple[list[tuple], list[dict]]:
    """n exact UDP sends of PID 500 (frames 1..n) that fix the clock offset at 0."""
    ev = [(T0 + k * NS, "Send", "UDP", 500, 40, HOST, 5000 + k, "10.0.0.9", 53) for k in range(n)]
    fr = [
        {
            "t": T0 + k * NS + 100_000,
            "src": HOST,
            "sport": 5000 + k,
            "dst": "10.0.0.9",
            "dport": 53,
            "payload": 40,
        }
        for k in range(n)
    ]
    return ev, fr


def test_frames_of_another_host_get_no_local_port_guess():
    """A capture that also saw another host (neither address is the traced host's): its frames used to get
    a low-confidence 'local-port' PID of the traced host when a port number coincided, and the direction
    'out'. They are another host's traffic: no PID, direction unknown, and the reason says so."""
    ev, fr = _udp_offset_anchor()
    ev.append((T0 + 20 * NS, "Send", "TCP", 600, 100, HOST, 6000, "10.0.0.9", 443))
    fr += [
        {
            "t": T0 + 20 * NS,
            "protocol": "TCP",
            "src": HOST,
            "sport": 6000,
            "dst": "10.0.0.9",
            "dport": 443,
            "payload": 100,
        },
        {"t": T0 + 3 * NS, "src": "10.0.0.77", "sport": 5003, "dst": "10.0.0.9", "dport": 53, "payload": 40},
        {
            "t": T0 + 21 * NS,
            "protocol": "TCP",
            "src": "10.9.9.9",
            "sport": 6000,
            "dst": "10.9.9.8",
            "dport": 443,
            "payload": 100,
        },
        {"t": T0 + 4 * NS, "src": HOST, "sport": 5004, "dst": "10.1.2.3", "dport": 9999, "payload": 1},
    ]
    r = attribute(events(ev), frames(fr))
    rows = r.frames.to_dicts()
    assert [x["confidence"] for x in rows[:9]] == ["high"] * 9
    for x in rows[9:11]:
        assert (x["pid"], x["confidence"], x["direction"]) == (None, "none", "unknown")
        assert x["reason"] == f"neither address is one of the traced host's ({HOST})"
    # a frame of the traced host with only its local port in common is still offered, at low confidence
    assert (rows[11]["pid"], rows[11]["confidence"], rows[11]["method"]) == (500, "low", "local-port")


def test_ambiguous_udp_datagram_of_two_pids_is_medium_and_says_so():
    """Two PIDs send a datagram with the same 5-tuple and size within a microsecond (a shared socket):
    the frame used to go to one of them with high confidence and no word of the other. It is now medium,
    and the reason names the other PID."""
    ev, fr = _udp_offset_anchor()
    t = T0 + 30 * NS
    ev += [
        (t, "Send", "UDP", 901, 64, HOST, 9000, "10.0.0.9", 9999),
        (t + 1000, "Send", "UDP", 902, 64, HOST, 9000, "10.0.0.9", 9999),
        (t + 10 * NS, "Send", "UDP", 901, 64, HOST, 9000, "10.0.0.9", 9999),
    ]
    fr += [
        {"t": t + 300_000, "src": HOST, "sport": 9000, "dst": "10.0.0.9", "dport": 9999, "payload": 64},
        {
            "t": t + 10 * NS + 300_000,
            "src": HOST,
            "sport": 9000,
            "dst": "10.0.0.9",
            "dport": 9999,
            "payload": 64,
        },
    ]
    r = attribute(events(ev), frames(fr))
    amb, clear = r.frames.row(8, named=True), r.frames.row(9, named=True)
    assert amb["pid"] in (901, 902) and amb["confidence"] == "medium" and amb["method"] == "udp-5tuple-size"
    other = 901 if amb["pid"] == 902 else 902
    assert f"but an event of PID {other} with the same 5-tuple and size" in amb["reason"]
    assert "ambiguous, either process may have sent it" in amb["reason"]
    # ten seconds later only PID 901 sends: no ambiguity
    assert (clear["pid"], clear["confidence"]) == (901, "high") and "ambiguous" not in clear["reason"]
    assert [x["confidence"] for x in r.frames.head(8).to_dicts()] == ["high"] * 8


def test_tcp_frame_before_the_next_owners_connect_stays_with_the_previous_owner():
    """A 4-tuple closed by PID 100 and opened again by PID 200 much later: a FIN retransmitted 40 s before
    PID 200's Connect (nearer to it than to PID 100's last event) used to go to PID 200, whose connection
    did not exist yet. A frame that is not a SYN cannot belong to a connection that starts later."""
    ev, fr, truth = _tcp_reuse()
    inn = {"src": "203.0.113.10", "sport": 443, "dst": HOST, "dport": 49700, "protocol": "TCP"}
    fr += [
        {**inn, "t": T0 + 25 * NS, "payload": 0, "flags": FIN | ACK},  # 23 s after PID 100's Disconnect
        {**inn, "t": T0 - 40 * NS, "payload": 0, "flags": ACK},
    ]  # 40 s before the first Connect
    r = attribute(ev, frames(fr), offset_s=0.0)
    assert r.frames["pid"].to_list()[: len(truth)] == truth
    late, early = r.frames.row(len(truth), named=True), r.frames.row(len(truth) + 1, named=True)
    assert (late["pid"], late["confidence"]) == (100, "medium")
    assert "precedes that new connection, so it belongs to the previous one" in late["reason"]
    assert (early["pid"], early["confidence"]) == (100, "low")
    assert "belongs to an earlier connection whose owner the trace does not show" in early["reason"]


def test_given_local_addresses_are_canonical_and_checked():
    """--local 2001:DB8::10 (upper case) or 010.000.000.005 (tracerpt's zero-padded form) used to match no
    frame and produce a note that the events use an address 'not given as local'; an address that is not
    one was accepted silently, and one absent from the capture was not reported."""
    from etwtools.errors import AttributionError

    v6 = "2001:db8::10"
    ev, fr = _udp_offset_anchor()
    ev.append((T0 + 9 * NS, "Send", "UDP", 501, 30, v6, 7000, "2001:db8::99", 53))
    fr.append({"t": T0 + 9 * NS, "src": v6, "sport": 7000, "dst": "2001:db8::99", "dport": 53, "payload": 30})
    r = attribute(events(ev), frames(fr), local_addrs=["2001:DB8:0:0:0:0:0:10%12", "010.000.000.005"])
    assert r.local_addrs == [v6, HOST]
    assert not [n for n in r.notes if "not given as local" in n]
    assert r.frames["direction"].to_list() == ["out"] * 9
    r2 = attribute(events(ev), frames(fr), local_addrs=[HOST, v6, "192.0.2.1"])
    assert "the given local address(es) 192.0.2.1 appear in no frame of the capture" in r2.notes
    with pytest.raises(AttributionError, match="'host.example' is not an IPv4 or IPv6 address"):
        attribute(events(ev), frames(fr), local_addrs=["host.example"])


def test_frame_whose_only_events_have_pid_0_says_so():
    """Events with PID 0 are left out (with a note); a frame whose 5-tuple only such events have used to
    be told 'no TcpIp/UdpIp event has this 5-tuple', which is false. The reason and the chain of evidence
    now say that the events exist but carry no usable PID."""
    ev, fr = _udp_offset_anchor()
    ev.append((T0 + 20 * NS, "Retransmit", "TCP", 0, 100, HOST, 7000, "10.0.0.77", 80))
    fr.append(
        {
            "t": T0 + 20 * NS,
            "protocol": "TCP",
            "src": HOST,
            "sport": 7000,
            "dst": "10.0.0.77",
            "dport": 80,
            "payload": 100,
        }
    )
    r = attribute(events(ev), frames(fr))
    row = r.frames.row(8, named=True)
    assert (row["pid"], row["confidence"]) == (None, "none")
    assert row["reason"] == (
        "the trace's only events with this 5-tuple carry no usable PID (0 or -1), so no process can be named"
    )
    assert "1 network events carry no usable PID (0, -1 or none) and were not used" in r.notes
    text = r.explain(9)
    assert "1 event(s) with this 5-tuple carry no usable PID (0 or -1) and were left out:" in text
    assert "Retransmit PID 0 size 100" in text


def test_offset_voted_on_a_sample_and_verified_on_all_frames(monkeypatch):
    """Past SAMPLE_FRAMES frames the offset is voted on a sample of them and verified on all: the same
    offset, support and answers as the vote on every frame (2,000 datagrams of 500 distinct 5-tuples)."""
    from etwtools.attribution import offset as offset_mod

    offset = 3 * HOUR + 123_000_000
    rng = random.Random(7)
    ev, fr = [], []
    for i in range(2000):
        t = T0 + i * 37_000_000 + rng.randrange(1_000_000)
        port, size = 40000 + i % 500, 20 + rng.randrange(400)
        ev.append((t, "Send", "UDP", 1000 + i % 500 * 4, size, HOST, port, "10.0.0.1", 53))
        fr.append(
            {
                "t": t + offset + 30_000,
                "src": HOST,
                "sport": port,
                "dst": "10.0.0.1",
                "dport": 53,
                "payload": size,
            }
        )
    full = attribute(events(ev), frames(fr))
    monkeypatch.setattr(offset_mod, "SAMPLE_FRAMES", 300)
    sampled = attribute(events(ev), frames(fr))
    assert sampled.offset_source == full.offset_source == "estimated"
    assert (
        abs(sampled.offset_ns - full.offset_ns) <= 100_000 and abs(full.offset_ns - offset - 30_000) < 100_000
    )
    assert sampled.offset_support == full.offset_support == 2000
    assert sampled.frames.select("frame", "pid", "confidence").equals(
        full.frames.select("frame", "pid", "confidence")
    )


def test_tuple_ids_number_tuples_in_order_of_first_appearance():
    """dense_ids (5-tuple ids, packed and numbered with numpy): the ids a plain dictionary gives, in order
    of first appearance, with -1 for a missing part and for another table's tuple the keys lack; column
    spans large enough to need numbering part-way (their product passes 2**62)."""
    from etwtools.attribution.prepare import dense_ids

    rng = np.random.default_rng(7)
    for n, m in [(0, 5), (1, 0), (500, 300), (5_000, 4_000)]:
        spans = [2, 2**32, 2**16, 2**32, 2**16]
        pool = np.stack([rng.integers(0, s, 50) for s in spans], axis=1)  # 50 distinct tuples, reused
        keys = pool[rng.integers(0, 50, n)] if n else np.zeros((0, 5), np.int64)
        other = np.concatenate([pool[rng.integers(0, 50, m)], rng.integers(0, 2**16, (m, 5))])
        kmiss, omiss = rng.random(n) < 0.1, rng.random(len(other)) < 0.1
        ids, (oids,) = dense_ids(
            [keys[:, j].astype(np.int64) for j in range(5)] + [kmiss],
            [[other[:, j].astype(np.int64) for j in range(5)] + [omiss.copy()]],
        )
        seen: dict[tuple, int] = {}
        want = [-1 if kmiss[i] else seen.setdefault(tuple(keys[i]), len(seen)) for i in range(n)]
        assert ids.tolist() == want
        assert oids.tolist() == [-1 if omiss[i] else seen.get(tuple(other[i]), -1) for i in range(len(other))]
