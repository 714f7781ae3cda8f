"""Kernel Process events, SystemConfig Services/NIC rundowns and the process-name lookup, on real files."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import polars as pl
import pytest

from etwtools.parsers.diagnostics import SkipReport
from etwtools.parsers.etl import kernel
from etwtools.parsers.etl.container import open_etl
from etwtools.parsers.etl.events import attach_process, build_processes, read_processes, read_timeline
from etwtools.parsers.etl.guids import PROCESS_KERNEL
from etwtools.parsers.schema import PROCESSES

FILETIME_EPOCH = 116444736000000000
_LINE = re.compile(r"EVENT ([\d,.]+): Windows Kernel/(Process|SystemConfig)/(\w+) (.*)$")
_COUNT = re.compile(r"COUNT Windows Kernel/Process/(\w+):(\d+)$")


def _baseline(corpus, arch):
    printed, counts = [], {}
    for line in (
        (corpus / "perfview" / f"net.4.5.2.{arch}.baseline.txt").read_text(encoding="utf-8").splitlines()
    ):
        if m := _COUNT.match(line):
            counts[m[1]] = int(m[2])
        elif m := _LINE.match(line):
            fields = dict(kv.split("=", 1) for kv in m[4].rstrip("; ").split("; "))
            printed.append({"ms": float(m[1].replace(",", "")), "group": m[2], "name": m[3], **fields})
    return printed, counts


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def _prefix(value, baseline: str) -> bool:
    return (value or "").startswith(baseline[:-3]) if baseline.endswith("...") else (value or "") == baseline


@pytest.fixture(scope="module", params=["x64", "x86"])
def perfview(request, corpus):
    timeline = read_timeline(corpus / "perfview" / f"net.4.5.2.{request.param}.etl")
    return request.param, timeline, *_baseline(corpus, request.param)


def test_process_rows_match_baseline_counts(perfview):
    """One row per instance: DCStart..DCStop pairs, the Start..Stop process, the two Defunct zombies."""
    _, timeline, _, counts = perfview
    p = timeline.processes
    assert counts["DCStart"] == counts["DCStop"] and counts["Start"] == counts["Stop"] == 1
    assert len(p) == counts["DCStart"] + counts["Start"] + counts["Defunct"]
    assert p.filter(pl.col("start").is_null() & pl.col("alive_at_end")).height == counts["DCStart"]
    assert p.filter(pl.col("start").is_not_null()).height == counts["Start"]
    assert p.filter(pl.col("defunct")).height == counts["Defunct"]
    assert p.filter(pl.col("end").is_not_null() & ~pl.col("defunct")).height == counts["Stop"]
    assert list(p.columns[: len(PROCESSES)]) == list(PROCESSES) and set(p["source"]) == {"etl"}


def test_printed_process_events_match(perfview):
    """Every Process event PerfView prints has its instance: pid, parent, image, session, command line, times."""
    _, timeline, printed, _ = perfview
    origin = (timeline.header.start_time - FILETIME_EPOCH) * 100
    p = timeline.processes.with_columns(
        start_ms=(pl.col("start").cast(pl.Int64) - origin) / 1e6,
        end_ms=(pl.col("end").cast(pl.Int64) - origin) / 1e6,
    )
    seen = 0
    for b in (
        e for e in printed if e["group"] == "Process" and e["name"] in ("DCStart", "Start", "Stop", "DCStop")
    ):
        rows = p.filter(pl.col("pid") == _num(b["ProcessID"])).rows(named=True)
        assert len(rows) == 1, b
        row = rows[0]
        assert row["ppid"] == _num(b["ParentID"]) and row["image"] == b["ImageFileName"]
        assert row["session"] == (None if b["SessionID"] == "-1" else _num(b["SessionID"]))
        assert _prefix(row["command_line"], b["CommandLine"])
        assert row["unique_key"] == int(b["UniqueProcessKey"], 16)
        if b["name"] == "Start":
            assert abs(row["start_ms"] - b["ms"]) <= 1.0
        if b["name"] == "Stop":
            assert abs(row["end_ms"] - b["ms"]) <= 1.0 and row["exit_status"] == _num(b["ExitStatus"])
        seen += 1
    assert seen >= 10


def test_known_process_values(perfview):
    arch, timeline, _, _ = perfview
    p = timeline.processes
    test_exe = f"Test.{arch}.exe"
    row = p.filter(pl.col("image") == test_exe).row(0, named=True)
    assert (row["pid"], row["ppid"], row["session"], row["command_line"]) == (
        {"x64": 3676, "x86": 3644}[arch],
        3508,
        1,
        test_exe,
    )
    assert row["flags"] == {"x64": 0, "x86": 2}[arch]  # PerfView: Flags=None / Flags=Wow64
    assert row["start"] is not None and row["end"] is not None and row["exit_status"] == 0
    assert row["user"].startswith("S-1-5-21-2935914779-1618742390")
    assert p.filter(pl.col("pid") == 4).row(0, named=True)["image"] == "System"
    assert p.filter(pl.col("pid") == 4).row(0, named=True)["user"] == "S-1-5-18"
    assert set(p.filter(pl.col("defunct"))["image"]) == {"smss.exe", "LogonUI.exe"}


def test_services_attached_to_their_process(perfview):
    """SystemConfig Services rundown: the printed running services appear in their PID's row."""
    _, timeline, printed, _ = perfview
    p = timeline.processes
    running = [e for e in printed if e["name"] == "Services" and _num(e["ProcessID"]) != 0]
    assert running
    for svc in running:
        services = p.filter(pl.col("pid") == _num(svc["ProcessID"]))["services"][0]
        assert svc["ServiceName"] in services.split(","), svc
    assert timeline.processes.filter(pl.col("pid") == 144)["services"][0].split(",")[0] == "Appinfo"
    assert len(timeline.services) == 157


def test_local_addresses_from_nic_rundown(perfview, corpus):
    _, timeline, printed, _ = perfview
    nics = [e for e in printed if e["name"] == "NIC"]
    assert len(nics) == 3 and len(timeline.nics) == 3
    assert [n["description"][:20] for n in timeline.nics] == [
        n["NICDescription"][:20].rstrip(".") for n in nics
    ]
    assert timeline.local_addresses == [
        "2001:4898:f0:26:950:d6de:fa84:4cc0",
        "2001:4898:f0:26:b18e:e85f:db5d:8e8",
        "fe80::950:d6de:fa84:4cc0",
        "10.128.0.55",
        "::1",
        "127.0.0.1",
        "fe80::5efe:a80:37",
    ]


def test_event_process_names_follow_pid_lifetimes(corpus):
    """Events of a PID get the image of the instance alive at their time. The corpus has no PID reuse
    with network events, so this builds process events (dicts as kernel.parse_process returns them)
    where PID 500 is first a.exe (from before the trace until t=100) then b.exe (t=200..300)."""

    def ev(t, kind, pid, image, key):
        return {
            "time": t,
            "record": t,
            "event": kind,
            "pid": pid,
            "ppid": 1,
            "session": 1,
            "exit_status": 0,
            "user": None,
            "image": image,
            "command_line": image,
            "unique_key": key,
            "exit_time": None,
            "flags": None,
        }

    procs = build_processes(
        [
            ev(100, "End", 500, "a.exe", 1),
            ev(200, "Start", 500, "b.exe", 2),
            ev(300, "End", 500, "b.exe", 2),
            ev(10, "DCStart", 7, "c.exe", 3),
        ],
        [],
    )
    events = pl.DataFrame(
        {
            "time": [50, 150, 250, 350, 20, 60],
            "pid": [500, 500, 500, 500, 7, None],
            "record": [0, 1, 2, 3, 4, 5],
        },
        schema={"time": pl.Int64, "pid": pl.Int64, "record": pl.Int64},
    )
    out = attach_process(events, procs, grace_s=0)
    assert out["process"].to_list() == ["a.exe", None, "b.exe", None, "c.exe", None]
    assert out["record"].to_list() == [0, 1, 2, 3, 4, 5]
    # with the default grace period (5 s) a.exe's name lasts until b.exe starts, b.exe's past its End
    assert attach_process(events, procs)["process"].to_list() == [
        "a.exe",
        "a.exe",
        "b.exe",
        "b.exe",
        "c.exe",
        None,
    ]
    as_datetime = attach_process(
        events.with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC"))), procs, grace_s=0
    )
    assert as_datetime["process"].to_list() == out["process"].to_list()
    assert as_datetime.schema["time"] == pl.Datetime("ns", "UTC") and as_datetime.columns == out.columns


def test_shutdown_logger_process_events_v4_with_sids(corpus):
    """etl-parser/ShutdownPerfDiagLogger.etl: 256 process events (DCStart/End/DCEnd v4, Terminate v2,
    Defunct v5), real SIDs."""
    path = corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl"
    decoded, skipped = [], SkipReport("test")
    kinds = Counter()
    with open_etl(path) as f:
        for batch in f.batches():
            m = batch.provider_mask(PROCESS_KERNEL) & np.isin(batch.opcode, list(kernel.PROCESS_EVENTS))
            kinds.update(zip(batch.opcode[m].tolist(), batch.version[m].tolist()))
            decoded.extend(kernel.decode_process_events(batch, skipped))
    assert not skipped and len(decoded) == 256
    assert kinds == Counter({(3, 4): 94, (2, 4): 60, (11, 2): 60, (4, 4): 37, (39, 5): 5})
    sids = Counter(e["user"] for e in decoded if e["event"] != "Terminate")
    assert sids["S-1-5-18"] > 0 and sids["S-1-5-19"] > 0 and sids["S-1-5-20"] > 0
    assert sids["S-1-5-21-4151223144-1238771585-1724997581-1000"] > 0
    with open_etl(path) as f:
        window = [(f.header.start_time - FILETIME_EPOCH) * 100, (f.header.end_time - FILETIME_EPOCH) * 100]
    defunct = [e for e in decoded if e["event"] == "Defunct"]
    assert len(defunct) == 5 and all(window[0] < e["exit_time"] < window[1] for e in defunct)
    p = read_processes(path)
    assert len(p) == 97 and p["pid"].n_unique() == 97
    row = p.filter(pl.col("image") == "sihost.exe").row(0, named=True)
    assert row["pid"] == 3580 and row["user"] == "S-1-5-21-4151223144-1238771585-1724997581-1000"


def test_null_sid_and_sid_text():
    """A null UserSID is a 4-byte zero block; a SID renders as S-R-A-S1-..."""
    assert kernel.read_sid(b"\0\0\0\0rest", 0, 8) == (None, 4)
    sid = bytes([1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0])
    assert kernel.sid_text(sid) == "S-1-5-32-544"
    token = bytes(16) + sid
    assert kernel.read_sid(b"\x01\0\0\0" + token[4:], 0, 8) == ("S-1-5-32-544", 32)


def test_built_32bit_v3_process_with_null_sid_names_its_events(tmp_path):
    """Process v3 on 32-bit pointers (UniqueProcessKey, PID, PPID, Session, ExitStatus,
    DirectoryTableBase, null UserSID, ANSI image, UTF-16 command line), then a PID reuse: no public file
    has these, so the input is written with the project's ETL writer (parsers/etl/build.py)."""
    import ipaddress
    import struct
    from datetime import timedelta

    from etwtools.parsers.etl.build import EtlWriter

    def proc(key, pid, image, cmd):
        return (
            struct.pack("<IIIIiI", key, pid, 600, 2, 259, 0x1000)
            + b"\0\0\0\0"
            + image.encode()
            + b"\0"
            + cmd.encode("utf-16-le")
            + b"\0\0"
        )

    def send(pid, size):
        return (
            struct.pack("<II", pid, size)
            + ipaddress.IPv4Address("192.0.2.9").packed
            + ipaddress.IPv4Address("192.0.2.1").packed
            + (80).to_bytes(2, "big")
            + (1025).to_bytes(2, "big")
            + struct.pack("<IIII", 0, 0, 0, 0)
        )

    w = EtlWriter(pointer_size=4)
    s = timedelta(seconds=1)
    w.kernel_event(
        0x03, 3, proc(0x8100, 900, "old.exe", "old.exe -x"), version=3, header="perfinfo", time=0 * s
    )
    w.kernel_event(0x06, 10, send(900, 11), time=1 * s, header="perfinfo")
    w.kernel_event(0x03, 2, proc(0x8100, 900, "old.exe", "old.exe -x"), version=3, time=2 * s)
    w.kernel_event(0x06, 10, send(900, 12), time=3 * s, header="perfinfo")
    w.kernel_event(0x03, 1, proc(0x8200, 900, "new.exe", "new.exe /y"), version=3, time=4 * s)
    w.kernel_event(0x06, 10, send(900, 13), time=5 * s, header="perfinfo")
    t = read_timeline(w.write(tmp_path / "reuse.etl"))
    p = t.processes
    assert p.select("pid", "image", "command_line", "session", "user").rows() == [
        (900, "old.exe", "old.exe -x", 2, None),
        (900, "new.exe", "new.exe /y", 2, None),
    ]
    assert p["start"][0] is None and p["end"][0] is not None and p["start"][1] is not None
    # 12 is sent 1 s after old.exe's End: inside the 5 s grace period, so it keeps old.exe's name
    assert t.events.select("size", "process").rows() == [(11, "old.exe"), (12, "old.exe"), (13, "new.exe")]
    strict = attach_process(t.events.drop("process"), p, grace_s=0)
    assert strict.select("size", "process").rows() == [(11, "old.exe"), (12, None), (13, "new.exe")]


def test_damaged_process_record_is_skipped_and_reported(tmp_path, caplog):
    """A Process v4 record whose SID claims more sub-authorities than the payload holds costs only
    itself: counted in one warning; the intact DCStart next to it is kept (input written with the
    project's ETL writer)."""
    import struct

    from etwtools.parsers.etl.build import EtlWriter

    def v4(pid, sid: bytes, image: bytes):
        return (
            struct.pack("<QIIIiQIQQ", 0xFFFF0000 + pid, pid, 4, 0, 259, 0x1000, 0, 0xFFFFA0000000DEAD, 0)
            + sid
            + image
            + b"\0\0\0\0\0\0"
        )

    w = EtlWriter(pointer_size=8)
    w.kernel_event(
        0x03,
        3,
        v4(100, bytes([1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]), b"good.exe\0"),
        version=4,
        header="perfinfo",
    )
    w.kernel_event(
        0x03, 3, v4(200, bytes([1, 200, 0, 0, 0, 0, 0, 5]), b"bad.exe\0"), version=4, header="perfinfo"
    )
    with caplog.at_level("WARNING", logger="etwtools"):
        p = read_processes(w.write(tmp_path / "damaged.etl"))
    assert p.select("pid", "image", "user").rows() == [(100, "good.exe", "S-1-5-18")]
    assert any("skipped 1 damaged Process records" in r.getMessage() for r in caplog.records)


def test_files_without_network_or_config_events(corpus):
    """A file with no network events gives an empty EVENTS frame with every column, and no NIC rundown
    gives no local addresses (not an error)."""
    from etwtools.parsers.etl.events import read_etl_events, read_local_addresses
    from etwtools.parsers.schema import EVENTS

    ev = read_etl_events(corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl")
    assert ev.is_empty() and list(ev.columns[: len(EVENTS)]) == list(EVENTS)
    assert dict(ev.schema)["time"] == pl.Datetime("ns", "UTC")
    assert read_local_addresses(corpus / "tx" / "KernelNetwork.etl") == []
    assert read_local_addresses(corpus / "perfview" / "net.4.5.2.x64.etl")[3] == "10.128.0.55"
