"""Attribution from Sysmon/Security connection events, on the real OTRF pairs (captures + the same lab's logs).

The logs are read by tests/otrf_logs.py (the JSON flavours the OTRF pairs use). Where a test changes the
logs (a shifted clock, a second owner, a disagreeing sensor) it says so; the frames are always the real ones.
"""

from __future__ import annotations

import polars as pl
import pytest
from otrf_logs import PAIRS, evaluate, load

from etwtools.errors import AttributionError
from etwtools.ownership import attribute_connections
from etwtools.sources import read_frames

PS = "purplesharp_ad_playbook_I"
L4S = "log4shell_cve2021_44228_java_serialized"
H = 3600 * 10**9


@pytest.fixture(scope="module")
def purplesharp(corpus):
    conns, procs, dns = load(corpus / "otrf" / PS)
    frames = read_frames(corpus / "otrf" / PS / PAIRS[PS][0])
    return frames, conns, procs, dns


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_otrf_each_sensor_judged_by_the_other(corpus, pair):
    """Acceptance 1: Sysmon alone, then Security alone, judged by the other sensor over the frames whose
    5-tuple both log: precision >= 0.98, coverage >= 0.95."""
    conns, procs, dns = load(corpus / "otrf" / pair)
    for cap in PAIRS[pair]:
        for row in evaluate(corpus / "otrf" / pair / cap, conns, procs, dns):
            assert row["frames"] >= 24, row
            assert row["precision"] >= 0.98, row
            assert row["coverage"] >= 0.95, row
            assert row["header_pid_frames"] == 0  # no capture of the corpus carries header PIDs


def test_host_and_offsets(purplesharp):
    frames, conns, procs, dns = purplesharp
    r = attribute_connections(frames, conns, procs, dns)
    assert r.host.host == "WORKSTATION5.theshire.local"
    assert "172.18.39.5 are in 1,121 frames" in r.host.why and "MORDORDC.theshire.local: 867" in r.host.why
    off = {o.sensor: o for o in r.offsets}
    # Security's record time is the lab's local time: capture - 4 h, within its 1 s resolution
    assert abs(off["security"].offset_ns - 4 * H) < 10**9 and off["security"].clock == "time"
    # Sysmon's UtcTime: UTC, a fraction of a second behind the capture
    assert 0 < off["sysmon"].offset_ns < 2 * 10**9 and off["sysmon"].clock == "sensor_time"
    assert off["sysmon"].support == off["sysmon"].candidates == 42 and off["sysmon"].spread_ns < 10**7
    # both sensors agree on every frame both name
    m = r._match
    assert m.filter(pl.col("_dis")).height == 0 and m.filter(pl.col("o_owner").is_not_null()).height > 1000
    assert r.frames.filter(pl.col("confidence") == "high").height >= 1099


def test_named_host_and_unknown_host(purplesharp):
    frames, conns, procs, dns = purplesharp
    r = attribute_connections(frames, conns, procs, dns, host="mordordc")
    assert r.host.host == "MORDORDC.theshire.local" and r.host.why == "given with --host"
    with pytest.raises(AttributionError, match="no such host"):
        attribute_connections(frames, conns, procs, dns, host="WORKSTATION9")


def test_dns_names_beside_remote_address(purplesharp):
    frames, conns, procs, dns = purplesharp
    r = attribute_connections(frames, conns, procs, dns)
    dc = r.frames.filter((pl.col("dst_addr") == "172.18.38.5") | (pl.col("src_addr") == "172.18.38.5"))
    assert set(dc["remote_name"].unique().to_list()) == {"mordordc.theshire.local"}
    lsass = r.summary.filter(pl.col("process") == "lsass.exe")
    assert lsass["remote_names"][0] == "mordordc.theshire.local"


def test_clock_hours_or_days_apart(purplesharp):
    """The logs' clocks moved by 19 h and by 39 h (changed copies of the real logs): the same answers."""
    frames, conns, procs, dns = purplesharp
    base = attribute_connections(frames, conns, procs, dns).frames
    for shift in (19 * H, -(35 * H)):
        moved = conns.with_columns(
            pl.col("time") + pl.duration(nanoseconds=shift),
            pl.col("sensor_time") + pl.duration(nanoseconds=shift),
        )
        r = attribute_connections(frames, moved, procs, dns)
        assert r.frames.select("pid", "process", "confidence").equals(
            base.select("pid", "process", "confidence"), null_equal=True
        )
        assert all(
            abs(o.offset_ns - (base_o - shift)) < 10**6
            for o, base_o in zip(
                r.offsets, [o.offset_ns for o in attribute_connections(frames, conns, procs, dns).offsets]
            )
        )


def test_unique_tuples_do_not_need_a_perfect_offset(purplesharp):
    """A given offset 30 s off: every 5-tuple with a single owner is still attributed to it."""
    frames, conns, procs, dns = purplesharp
    sysmon = conns.filter(pl.col("sensor") == "sysmon")
    good = attribute_connections(frames, sysmon, procs, dns)
    bad = attribute_connections(frames, sysmon, procs, dns, offset_s=good.offsets[0].offset_ns / 1e9 + 30)
    assert bad.offsets[0].source == "given"
    ok = good.frames.filter(pl.col("confidence") == "high")
    again = bad.frames.join(ok.select("frame", pl.col("pid").alias("p0")), on="frame")
    assert again.height == ok.height and (again["pid"] == again["p0"]).all()
    assert bad.frames.filter(pl.col("confidence") == "high").height == ok.height


def test_owner_changes_and_sensors_disagree(purplesharp):
    """Changed copies of the real logs: (1) a second Sysmon event gives one 5-tuple to another PID halfway
    through its frames: frames before keep the first owner, frames after go to the new one; (2) one
    Security event names another PID than Sysmon: the reason says the sensors disagree, medium confidence."""
    frames, conns, procs, dns = purplesharp
    sysmon = conns.filter(pl.col("sensor") == "sysmon", pl.col("host") == "WORKSTATION5.theshire.local")
    base = attribute_connections(frames, sysmon, procs, dns)
    # the longest-lived 5-tuple of the capture and its owner
    top = (
        base.frames.filter(pl.col("confidence") == "high")
        .group_by("pid", "src_port", "dst_port")
        .agg(pl.len(), pl.col("time").min().alias("t0"), pl.col("time").max().alias("t1"))
        .sort(pl.col("t1") - pl.col("t0"), descending=True)
        .row(0, named=True)
    )
    ev = sysmon.filter(
        ((pl.col("local_port") == top["src_port"]) & (pl.col("remote_port") == top["dst_port"]))
        | ((pl.col("local_port") == top["dst_port"]) & (pl.col("remote_port") == top["src_port"]))
    )
    assert ev.height == 1
    mid = top["t0"] + (top["t1"] - top["t0"]) / 2
    off = base.offsets[0].offset_ns
    takeover = ev.with_columns(
        pl.lit(999999, pl.Int64).alias("pid"),
        pl.lit("other.exe").alias("process"),
        (pl.lit(mid) - pl.duration(nanoseconds=off)).cast(pl.Datetime("ns", "UTC")).alias("sensor_time"),
        pl.lit(123).cast(sysmon.schema["record"]).alias("record"),
    )
    r = attribute_connections(frames, pl.concat([sysmon, takeover]), procs, dns)
    same = r.frames.join(base.frames.filter(pl.col("pid") == top["pid"]).select("frame"), on="frame")
    same = same.filter(
        ((pl.col("src_port") == top["src_port"]) & (pl.col("dst_port") == top["dst_port"]))
        | ((pl.col("src_port") == top["dst_port"]) & (pl.col("dst_port") == top["src_port"]))
    )
    # the new owner's event takes the frames from 2 s before it on (Sysmon logs a connection after its first packets)
    before = same.filter(pl.col("time") < mid - pl.duration(milliseconds=2500))
    after = same.filter(pl.col("time") > mid + pl.duration(milliseconds=500))
    assert before.height and after.height
    assert (before["pid"] == top["pid"]).all() and (after["pid"] == 999999).all()
    assert after["reason"][0].startswith("Sysmon event 3 (record 123) of PID 999999 other.exe")
    assert "the latest owner before the frame" in after["reason"][0]

    sec = conns.filter(pl.col("sensor") == "security", pl.col("host") == "WORKSTATION5.theshire.local")
    liar = sec.with_columns(
        pl.when(
            (pl.col("local_port") == ev["local_port"][0]) & (pl.col("remote_port") == ev["remote_port"][0])
        )
        .then(pl.lit(4242, pl.Int64))
        .otherwise(pl.col("pid"))
        .alias("pid")
    )
    r = attribute_connections(frames, pl.concat([sysmon, liar]), procs, dns)
    hit = r.frames.join(same.select("frame"), on="frame")
    assert (hit["confidence"] == "medium").all()
    assert hit["reason"].str.contains("the sensors DISAGREE: Security event 5156").all()
    assert hit["reason"].str.contains("of PID 4242").all()


def test_header_pid_is_the_weakest_hint(corpus, tmp_path):
    """The log4shell capture written again with etl2pcapng-style comments (the real capture has none): every
    packet says ``PID=4`` (the System thread that logged it, as a DPC would) except Tomcat's first ten, which
    say ``PID=3936``. The events' answer wins wherever there is one, the agreement is counted, and frames of a
    connection the logs do not have (PowerShell's three events removed from this copy of the Sysmon log) get
    the header PID, low."""
    from dataclasses import replace

    from etwtools.parsers import pcapng

    d = corpus / "otrf" / L4S
    interfaces, packets = pcapng.iter_packets(
        d / "pcap_log4shell_cve2021_44228_java_serialized_2022-05-13045800.pcapng"
    )
    packets = list(packets)
    out = tmp_path / "with_pids.pcapng"
    pcapng.write_pcapng(
        out,
        interfaces,
        [replace(p, comment=f"PID={3936 if i < 10 else 4} TID={100 + i}") for i, p in enumerate(packets)],
    )
    frames = read_frames(out)
    assert frames["header_pid"].to_list()[:11] == [3936] * 10 + [4]
    conns, procs, dns = load(d)
    sysmon = conns.filter(pl.col("sensor") == "sysmon")
    r = attribute_connections(frames, sysmon, procs, dns)
    assert r.header_pid_agreement == (10, 125)
    assert r.describe_header_pid().endswith(
        "agree with the answer for 10 of 125 attributed frames that carry one (8.0 %)"
    )
    # without the event of PowerShell's connection, its frames fall back to the header PID
    ps = sysmon.filter(pl.col("process") == "powershell.exe")
    assert ps.height == 3
    r = attribute_connections(frames, sysmon.join(ps.select("record"), on="record", how="anti"), procs, dns)
    weak = r.frames.filter(pl.col("method") == "header-pid")
    assert weak.height == 84 and (weak["confidence"] == "low").all() and (weak["pid"] == 4).all()
    assert weak["reason"][0].startswith("no connection event names this frame's 5-tuple or local endpoint")
    assert r.frames.filter(pl.col("method") == "sysmon-5-tuple").height == 41


def test_offset_voted_on_a_sample_then_counted_over_all(purplesharp, monkeypatch):
    """With fewer votes allowed than logged 5-tuples (as on a large capture), the offset is voted on a sample
    and its support counted over every 5-tuple: the same offset and support as a full vote."""
    from etwtools import ownership

    frames, conns, procs, dns = purplesharp
    full = {o.sensor: o for o in attribute_connections(frames, conns, procs, dns).offsets}
    monkeypatch.setattr(ownership, "VOTE_SAMPLE", 8)
    sampled = {o.sensor: o for o in attribute_connections(frames, conns, procs, dns).offsets}
    for s in ("sysmon", "security"):
        assert sampled[s].candidates == full[s].candidates > 8
        assert sampled[s].support == full[s].support
        assert abs(sampled[s].offset_ns - full[s].offset_ns) < 10**6


def test_dropped_packet_of_pid_0_gives_no_owner(corpus):
    """The corpus's Security 5152 (packet dropped, ProcessId 0) of an RDP SYN, and a frame of that 5-tuple made
    here half a second later (no capture of that host exists): no owner, and a note says why."""
    from etwtools.parsers import schema
    from etwtools.parsers.eventlog import read_eventlog

    log = read_eventlog(corpus / "eventlogs/omerbenamram-evtx/Security_short_selected.evtx")
    ev = log.connections.filter(pl.col("protocol") == "TCP").row(0, named=True)
    assert (ev["event_id"], ev["pid"], ev["local_port"]) == (5152, 0, 3389)
    t = ev["time"].timestamp()
    frames = schema.conform(
        pl.DataFrame(
            {
                "frame": [1],
                "time": [int((t + 0.5) * 1e9)],
                "protocol": ["TCP"],
                "src_addr": [ev["remote_addr"]],
                "src_port": [ev["remote_port"]],
                "dst_addr": [ev["local_addr"]],
                "dst_port": [3389],
                "tcp_flags": [2],
            }
        ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC"))),
        schema.FRAMES,
    )
    r = attribute_connections(frames, log.connections, log.processes, log.dns)
    assert r.frames["confidence"].to_list() == ["none"] and r.frames["pid"].to_list() == [None]
    assert any("name PID 0 or -1" in n for n in r.notes)


def test_merge_with_a_kernel_trace_names_the_other_source(purplesharp):
    """A kernel trace's answer beside the logs' (the logs' own answers with another PID: a made-up kernel
    attribution over the real frames): the higher confidence wins, the kernel trace on a tie, and the reason
    names what the other source says."""
    from types import SimpleNamespace

    from etwtools.ownership import merge_kernel

    frames, conns, procs, dns = purplesharp
    logs = attribute_connections(frames, conns, procs, dns)
    high = logs.frames.filter(pl.col("confidence") == "high")
    assert high.height >= 100
    tie, lower = high["frame"][::2], high["frame"][1::2]
    kernel_frames = logs.frames.with_columns(
        (pl.col("pid") + 1).alias("pid"),
        pl.lit("kernel.exe").alias("process"),
        pl.lit("tcp-5tuple").alias("method"),
        pl.lit("the kernel event").alias("reason"),
        pl.when(pl.col("frame").is_in(tie.implode()))
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium"))
        .alias("confidence"),
    )
    kernel = SimpleNamespace(frames=kernel_frames, notes=[], describe_offset=lambda: "kernel offset")
    merged = merge_kernel(kernel, logs).frames.join(
        logs.frames.select(
            "frame",
            pl.col("pid").alias("log_pid"),
            pl.col("process").alias("log_process"),
            pl.col("method").alias("log_method"),
        ),
        on="frame",
    )
    won = merged.filter(pl.col("frame").is_in(tie.implode()))
    assert (won["method"] == "tcp-5tuple").all() and (won["pid"] == won["log_pid"] + 1).all()
    expected = pl.format(
        "the kernel event; the event logs name PID {} {} ({})", "log_pid", "log_process", "log_method"
    )
    assert won.select((pl.col("reason") == expected).all()).item()
    kept = merged.filter(pl.col("frame").is_in(lower.implode()))
    assert (kept["pid"] == kept["log_pid"]).all()
    said = pl.col("reason").str.ends_with(
        pl.format("; the kernel trace names PID {} kernel.exe (tcp-5tuple)", pl.col("pid") + 1)
    )
    assert kept.select(said.all()).item()
