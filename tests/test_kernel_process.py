"""Microsoft-Windows-Kernel-Process ProcessStart/ProcessStop into the processes table and the timeline.

The real file (tx/Process.etl, Windows 7 SP1) is checked against an independent decoding: dissect.etl
walks the container (it reads the provider GUID in the other byte order, so both are compared) and
the ProcessStart/ProcessStop fields are unpacked here with ``struct`` in the order of the templates of
the Kernel-Process manifest bundled with dissect.etl (read from its XML below, not from etwtools).
Versions the file does not carry (Start v1-v3 with SIDs and package names, Stop v0/v2) are built with
the project's ETL writer from the same manifest's field lists.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from etwtools.parsers.diagnostics import SkipReport
from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.container import EtlFile
from etwtools.parsers.etl.events import read_timeline
from etwtools.parsers.etl.guids import KERNEL_PROCESS
from etwtools.parsers.etl.kernel_process import LAYOUTS, decode_kernel_process

FILETIME_EPOCH = 116444736000000000
T0 = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


def _manifest_templates() -> dict[str, list[tuple[str, str]]]:
    """Template name -> [(field, inType)] from dissect.etl's copy of the Kernel-Process manifest."""
    import dissect.etl

    xml = (
        Path(dissect.etl.__file__).parent / "manifests" / "xml" / "{22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716}.xml"
    ).read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r'<template tid="([^"]+)">(.*?)</template>', xml, re.DOTALL):
        out[m[1]] = re.findall(r'<data name="(\w+)" inType="win:(\w+)"', m[2])
    events = {
        (int(m[1]), int(m[2])): m[3]
        for m in re.finditer(r'<event value="(\d+)" symbol="\w+" version="(\d+)"[^>]*template="(\w+)"', xml)
    }
    return {key: out[tpl] for key, tpl in events.items()}


def _unpack(payload: bytes, fields: list[tuple[str, str]]) -> dict:
    """Fields of a manifest template, read one by one (independent of etwtools' bulk decoder)."""
    out, pos = {}, 0
    for name, kind in fields:
        if kind in ("UInt32", "Int32"):
            out[name], pos = struct.unpack_from("<I", payload, pos)[0], pos + 4
        elif kind in ("UInt64", "FILETIME"):
            out[name], pos = struct.unpack_from("<Q", payload, pos)[0], pos + 8
        elif kind == "UnicodeString":
            end = pos
            while payload[end : end + 2] not in (b"\0\0", b""):
                end += 2
            out[name], pos = payload[pos:end].decode("utf-16-le"), end + 2
        elif kind == "AnsiString":
            end = payload.index(b"\0", pos)
            out[name], pos = payload[pos:end].decode("cp1252"), end + 1
        else:
            return out  # fields after a SID etc. are not needed here
    return out


def _independent(path: Path) -> tuple[Counter, list[dict]]:
    from dissect.etl.etl import ETL

    templates = _manifest_templates()
    ids: Counter = Counter()
    events = []
    with open(path, "rb") as f:
        for rec in ETL(f):
            h = rec.header
            guid = getattr(h, "provider_id", None)
            if guid is None or KERNEL_PROCESS not in (
                uuid.UUID(str(guid)),
                uuid.UUID(bytes_le=uuid.UUID(str(guid)).bytes),
            ):
                continue
            d = h.descriptor
            ids[d.id] += 1
            if d.id in (1, 2):
                fields = _unpack(bytes(h.payload), templates[(d.id, d.version)])
                events.append(
                    {
                        "id": d.id,
                        "version": d.version,
                        "header_pid": h.process_id,
                        "time": h.timestamp,
                        **fields,
                    }
                )
    return ids, events


@pytest.fixture(scope="module")
def process_etl(corpus):
    path = corpus / "tx" / "Process.etl"
    return path, read_timeline(path)


def test_corpus_event_counts(process_etl):
    """The 10,343 Kernel-Process events (ids 1-10); 4 ProcessStart v0 and 4 ProcessStop v1 among them."""
    path, _ = process_etl
    ids: Counter = Counter()
    with EtlFile(path) as etl:
        for b in etl.batches():
            m = b.provider_mask(KERNEL_PROCESS)
            ids.update(Counter(zip(b.event_id[m].tolist(), b.version[m].tolist())))
    assert sum(ids.values()) == 10343
    assert {k for k, _ in ids} == set(range(1, 11))
    assert ids[(1, 0)] == 4 and ids[(2, 1)] == 4


def test_processes_match_independent_decoding(process_etl):
    """Every ProcessStart/ProcessStop decoded by dissect.etl + struct gives the same processes: six of
    them (two started and stopped in the trace, two started, two only stopped), with names, parents,
    sessions and lifetimes; the process is the payload's ProcessID, not the header's (the parent)."""
    path, timeline = process_etl
    ids, events = _independent(path)
    assert sum(ids.values()) == 10343
    starts = [e for e in events if e["id"] == 1]
    stops = [e for e in events if e["id"] == 2]
    assert len(starts) == 4 and len(stops) == 4
    # the header PID of a ProcessStart is the creating process
    assert all(e["header_pid"] == e["ParentProcessID"] != e["ProcessID"] for e in starts)
    p = timeline.processes
    assert p.height == 6 and p["source"].to_list() == ["etl"] * 6
    rows = {(r["pid"], r["unique_key"]): r for r in p.iter_rows(named=True)}
    checked = 0
    for e in starts:
        r = rows[(e["ProcessID"], e["CreateTime"])]
        assert r["image"] == e["ImageName"].rsplit("\\", 1)[-1]
        assert r["ppid"] == e["ParentProcessID"] and r["session"] == e["SessionID"]
        assert abs(r["start"] - e["time"]) < timedelta(microseconds=10)  # dissect.etl's float clock
        checked += 1
    for e in stops:
        r = rows[(e["ProcessID"], e["CreateTime"])]
        assert abs(r["end"] - e["time"]) < timedelta(microseconds=10)
        assert r["exit_status"] == e["ExitCode"] == 0
        if not any(s["ProcessID"] == e["ProcessID"] and s["CreateTime"] == e["CreateTime"] for s in starts):
            # started before the trace: the name of the stop event, its creation time as start
            assert r["image"] == e["ImageName"] and r["ppid"] is None
            created = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=e["CreateTime"] // 10)
            assert abs(r["start"] - created) < timedelta(microseconds=1)
            checked += 1
    assert checked == 6
    by_pid = {r["pid"]: r for r in p.iter_rows(named=True)}
    assert by_pid[5864]["image"] == "devenv.exe" and by_pid[5864]["ppid"] == 3324
    assert by_pid[700]["image"] == "SearchProtocolHost.exe" and by_pid[700]["end"] is None
    assert by_pid[4492]["image"] == "SearchFilterHo"  # ImageFileName: 15 bytes with the NUL


def test_cli_processes(corpus):
    from click.testing import CliRunner

    from etwtools.cli import cli

    r = CliRunner().invoke(cli, ["processes", "--etl", str(corpus / "tx" / "Process.etl"), "-f", "csv"])
    assert r.exit_code == 0, r.output
    df = pl.read_csv(r.stdout.encode())
    assert df.height == 6
    assert sorted(df["image"].to_list()) == [
        "OUTLOOK.EXE",
        "SearchFilterHo",
        "SearchFilterHost.exe",
        "SearchProtocol",
        "SearchProtocolHost.exe",
        "devenv.exe",
    ]


def _filetime(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000) + FILETIME_EPOCH


def _pack(fields: list[tuple[str, str]], values: dict) -> bytes:
    out = b""
    for name, kind in fields:
        v = values.get(name, 0)
        if kind in ("UInt32", "Int32"):
            out += struct.pack("<I", v)
        elif kind in ("UInt64", "FILETIME"):
            out += struct.pack("<Q", v)
        elif kind == "UnicodeString":
            out += v.encode("utf-16-le") + b"\0\0"
        elif kind == "AnsiString":
            out += v.encode("cp1252") + b"\0"
        elif kind == "SID":
            out += bytes([1, 1, 0, 0, 0, 0, 0, 16]) + struct.pack("<I", 0x3000)  # S-1-16-12288 (high)
        else:
            raise AssertionError(kind)
    return out


@pytest.mark.parametrize("start_v,stop_v", [(1, 0), (2, 1), (3, 2)])
def test_built_versions(tmp_path, start_v, stop_v):
    """Start v1-v3 (v3: sequence numbers and a MandatoryLabel SID before ImageName) and Stop v0-v2,
    built from the manifest's field lists: names, parents, sessions and the instance pairing."""
    templates = _manifest_templates()
    if (1, 3) not in templates:  # dissect.etl's manifest stops at v2: v3 from OSSEM's field list
        templates[(1, 3)] = [
            ("ProcessID", "UInt32"),
            ("ProcessSequenceNumber", "UInt64"),
            ("CreateTime", "FILETIME"),
            ("ParentProcessID", "UInt32"),
            ("ParentProcessSequenceNumber", "UInt64"),
            ("SessionID", "UInt32"),
            ("Flags", "UInt32"),
            ("ProcessTokenElevationType", "UInt32"),
            ("ProcessTokenIsElevated", "UInt32"),
            ("MandatoryLabel", "SID"),
            ("ImageName", "UnicodeString"),
            ("ImageChecksum", "UInt32"),
            ("TimeDateStamp", "UInt32"),
            ("PackageFullName", "UnicodeString"),
            ("PackageRelativeAppId", "UnicodeString"),
        ]
    if (2, 2) not in templates:
        v1 = templates[(2, 1)]
        templates[(2, 2)] = v1[:1] + [("ProcessSequenceNumber", "UInt64")] + v1[1:]
    assert [n for n, _ in templates[(1, start_v)]][:1] == ["ProcessID"]
    w = EtlWriter(start=T0)
    created = T0 + timedelta(seconds=1)
    start = {
        "ProcessID": 4321,
        "CreateTime": _filetime(created),
        "ParentProcessID": 880,
        "SessionID": 2,
        "Flags": 0,
        "ImageName": r"\Device\HarddiskVolume3\Program Files\Täst\chrome.exe",
        "PackageFullName": "Pkg_1.0_x64__abc",
        "PackageRelativeAppId": "App",
    }
    w.event(
        KERNEL_PROCESS,
        1,
        _pack(templates[(1, start_v)], start),
        version=start_v,
        opcode=1,
        time=created,
        pid=880,
        tid=12,
    )
    stop = {
        "ProcessID": 4321,
        "CreateTime": _filetime(created),
        "ExitTime": _filetime(created + timedelta(seconds=5)),
        "ExitCode": 0xC0000005,
        "ImageName": "chrome.exe",
    }
    w.event(
        KERNEL_PROCESS,
        2,
        _pack(templates[(2, stop_v)], stop),
        version=stop_v,
        opcode=2,
        time=created + timedelta(seconds=5),
        pid=4321,
        tid=13,
    )
    # the same PID again later: another instance
    later = dict(
        start, CreateTime=_filetime(created + timedelta(seconds=9)), ImageName=r"\??\C:\x\notepad.exe"
    )
    w.event(
        KERNEL_PROCESS,
        1,
        _pack(templates[(1, start_v)], later),
        version=start_v,
        opcode=1,
        time=created + timedelta(seconds=9),
        pid=880,
        tid=12,
    )
    w.event(KERNEL_PROCESS, 1, b"\1\2\3", version=9, opcode=1, time=created)  # unknown version: reported
    path = w.write(tmp_path / "kp.etl")
    p = read_timeline(path).processes
    assert p["image"].to_list() == ["chrome.exe", "notepad.exe"]
    assert p["pid"].to_list() == [4321, 4321] and p["ppid"].to_list() == [880, 880]
    assert p["session"].to_list() == [2, 2]
    first = p.row(0, named=True)
    assert first["end"] - first["start"] == timedelta(seconds=5)
    assert first["exit_status"] == struct.unpack("<i", struct.pack("<I", 0xC0000005))[0]  # signed, as classic
    assert p.row(1, named=True)["end"] is None
    sk = SkipReport("test")
    with EtlFile(path) as etl:
        recs = [r for b in etl.batches() for r in decode_kernel_process(b, sk)]
    assert sk.counts == Counter({"Kernel-Process event 1 records of unknown version 9": 1})
    assert recs[0]["image_path"] == start["ImageName"]
    if start_v >= 2:
        assert recs[0]["package"] == "Pkg_1.0_x64__abc" and recs[0]["application_id"] == "App"


def test_short_records_reported_not_guessed(tmp_path):
    w = EtlWriter(start=T0)
    full = struct.pack("<IQII", 77, _filetime(T0), 4, 1) + "a.exe".encode("utf-16-le") + b"\0\0"
    w.event(KERNEL_PROCESS, 1, full, version=0, opcode=1, time=T0)
    w.event(KERNEL_PROCESS, 1, full[:14], version=0, opcode=1, time=T0 + timedelta(seconds=1))
    w.event(
        KERNEL_PROCESS,
        1,
        full[:-2] + "b".encode("utf-16-le"),
        version=0,
        opcode=1,  # no NUL: to the end
        time=T0 + timedelta(seconds=2),
    )
    path = w.write(tmp_path / "short.etl")
    sk = SkipReport("test")
    with EtlFile(path) as etl:
        recs = [r for b in etl.batches() for r in decode_kernel_process(b, sk)]
    assert [r["image"] for r in recs] == ["a.exe", "a.exeb"]
    assert sk.counts == Counter({"Kernel-Process event 1 v0 records shorter than their layout": 1})


def test_layouts_cover_the_manifest():
    """Every ProcessStart/ProcessStop version of the manifest has a layout with its number of fields."""
    templates = _manifest_templates()
    versions = [k for k in templates if k[0] in (1, 2)]
    assert len(versions) >= 5
    for key in versions:
        assert len(LAYOUTS[key].fields) == len(templates[key]), key


def test_mixed_with_classic_events_one_row_per_process(tmp_path):
    """A trace with both classic kernel Process events and Kernel-Process events (WPR enables both)
    keeps one row per process: the classic one; a process only Kernel-Process saw is added."""
    templates = _manifest_templates()
    w = EtlWriter(start=T0)
    t1 = T0 + timedelta(seconds=1)
    classic = (
        struct.pack("<QIIIiQ", 0xFFFF0001, 4321, 880, 1, 0, 0)
        + struct.pack("<I", 0)
        + b"chrome.exe\0"
        + "chrome.exe --type=renderer".encode("utf-16-le")
        + b"\0\0"
    )
    w.kernel_event(group=0x03, opcode=1, version=3, payload=classic, time=t1, pid=880)
    start = {
        "ProcessID": 4321,
        "CreateTime": _filetime(t1),
        "ParentProcessID": 880,
        "SessionID": 1,
        "ImageName": r"\Device\HarddiskVolume3\chrome.exe",
    }
    w.event(KERNEL_PROCESS, 1, _pack(templates[(1, 0)], start), version=0, opcode=1, time=t1, pid=880)
    other = dict(start, ProcessID=5000, ImageName=r"\Device\HarddiskVolume3\svc.exe")
    w.event(KERNEL_PROCESS, 1, _pack(templates[(1, 0)], other), version=0, opcode=1, time=t1, pid=880)
    p = read_timeline(w.write(tmp_path / "mixed.etl")).processes
    assert p["pid"].to_list() == [4321, 5000]
    assert p["command_line"].to_list() == ["chrome.exe --type=renderer", None]
    assert p["image"].to_list() == ["chrome.exe", "svc.exe"]
