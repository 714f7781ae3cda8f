"""Acceptance 3 (attribution side): one host's log given as .evtx and as each JSON flavour gives the same
attribution.

The log is the real Sysmon .evtx of the corpus (python-evtx issue_43.evtx: Win10, 153 network connection
events). The four JSON flavours are built here from its records as the ``evtx`` library decodes them
(evtx_dump's own shape; NXLog-style flat records with local times to the second; Winlogbeat/ECS with the
Sysmon module's ECS fields moved out of ``winlog.event_data`` and the logging process in
``winlog.process.pid``; Azure Monitor with EventData as a JSON string). No capture of that host exists,
so the frames are made from the log's own IPv4 connections: three frames per connection (out, in, out),
1.2 s after Sysmon's UtcTime, as a capture taken beside it would show them.
"""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl
import pytest

from etwtools.ownership import attribute_connections
from etwtools.parsers import schema
from etwtools.parsers.eventlog import read_eventlog

EVTX = "eventlogs/python-evtx/issue_43.evtx"
HOST_ADDR = "192.168.62.128"
_ECS_MOVED = {
    "ProcessId": ("process", "pid"),
    "Image": ("process", "executable"),
    "ProcessGuid": ("process", "entity_id"),
    "Protocol": ("network", "transport"),
    "SourceIp": ("source", "ip"),
    "SourcePort": ("source", "port"),
    "DestinationIp": ("destination", "ip"),
    "DestinationPort": ("destination", "port"),
}


def _records(path) -> list[dict]:
    import evtx

    return [json.loads(r["data"]) for r in evtx.PyEvtxParser(str(path)).records_json()]


def _text(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else "" if v is None else str(v)


def _flat(d: dict) -> dict:
    s, data = d["Event"]["System"], d["Event"].get("EventData") or {}
    t = datetime.fromisoformat(s["TimeCreated"]["#attributes"]["SystemTime"])
    return {
        "EventTime": t.strftime("%Y-%m-%d %H:%M:%S"),
        "Hostname": s["Computer"],
        "EventID": s["EventID"],
        "Channel": s["Channel"],
        "SourceName": s["Provider"]["#attributes"]["Name"],
        "RecordNumber": s["EventRecordID"],
        "ExecutionProcessID": s["Execution"]["#attributes"]["ProcessID"],
        **{k: _text(v) for k, v in data.items()},
    }


def _ecs(d: dict) -> dict:
    s, data = d["Event"]["System"], dict(d["Event"].get("EventData") or {})
    out: dict = {
        "@timestamp": s["TimeCreated"]["#attributes"]["SystemTime"],
        "winlog": {
            "event_id": str(s["EventID"]),
            "channel": s["Channel"],
            "computer_name": s["Computer"],
            "record_id": s["EventRecordID"],
            "provider_name": s["Provider"]["#attributes"]["Name"],
            "process": {"pid": s["Execution"]["#attributes"]["ProcessID"]},
        },
    }
    for name, path in _ECS_MOVED.items():
        if name in data:
            v = data.pop(name)
            out.setdefault(path[0], {})[path[1]] = v
    out["winlog"]["event_data"] = {k: _text(v) for k, v in data.items()}
    return out


def _azure(d: dict) -> dict:
    s, data = d["Event"]["System"], d["Event"].get("EventData") or {}
    return {
        "TimeGenerated": s["TimeCreated"]["#attributes"]["SystemTime"],
        "Computer": s["Computer"],
        "Provider": s["Provider"]["#attributes"]["Name"],
        "Channel": s["Channel"],
        "EventID": s["EventID"],
        "EventRecordId": s["EventRecordID"],
        "Type": "WindowsEvent",
        "EventData": json.dumps({k: _text(v) for k, v in data.items()}),
    }


def _frames(conns: pl.DataFrame) -> pl.DataFrame:
    c = conns.filter(
        pl.col("local_addr") == HOST_ADDR,
        pl.col("remote_addr").str.contains(r"^\d+\.\d+\.\d+\.\d+$"),
        pl.col("remote_port") > 0,
    ).sort("sensor_time")
    rows = []
    for r in c.iter_rows(named=True):
        t = r["sensor_time"].timestamp()
        for k, out in enumerate((True, False, True)):
            a = (r["local_addr"], r["local_port"]) if out else (r["remote_addr"], r["remote_port"])
            b = (r["remote_addr"], r["remote_port"]) if out else (r["local_addr"], r["local_port"])
            rows.append(
                {
                    "time": int((t + 1.2 + 0.01 * k) * 1e9),
                    "protocol": r["protocol"],
                    "src_addr": a[0],
                    "src_port": a[1],
                    "dst_addr": b[0],
                    "dst_port": b[1],
                    "ip_version": 4,
                    "tcp_flags": 0x02 if k == 0 and r["protocol"] == "TCP" else 0x10,
                    "payload_len": 0,
                }
            )
    df = pl.DataFrame(rows).sort("time").with_row_index("frame", offset=1)
    return schema.conform(df.with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC"))), schema.FRAMES)


@pytest.fixture(scope="module")
def flavours(corpus, tmp_path_factory):
    recs = _records(corpus / EVTX)
    d = tmp_path_factory.mktemp("flavours")
    files = {"evtx": corpus / EVTX}
    for name, f in (("evtx_dump", lambda r: r), ("flat", _flat), ("ecs", _ecs), ("azure", _azure)):
        files[name] = d / f"issue_43.{name}.json"
        files[name].write_text("".join(json.dumps(f(r)) + "\n" for r in recs), encoding="utf-8")
    return files


def test_same_attribution_from_evtx_and_every_json_flavour(flavours):
    logs = {k: read_eventlog(p) for k, p in flavours.items()}
    assert {k: g.kind for k, g in logs.items()} == {
        "evtx": "evtx",
        **{k: "json" for k in flavours if k != "evtx"},
    }
    frames = _frames(logs["evtx"].connections)
    assert frames.height >= 300
    cols = ["frame", "pid", "process", "confidence", "method", "remote_name"]
    results = {k: attribute_connections(frames, g.connections, g.processes, g.dns) for k, g in logs.items()}
    base = results["evtx"].frames.select(cols)
    assert base.filter(pl.col("confidence") == "high").height >= 0.95 * frames.height
    assert 904 in base["pid"].to_list() and base["pid"].n_unique() >= 5
    for name, r in results.items():
        assert r.host.host == "DESKTOP-DF4ULDE", name
        assert r.frames.select(cols).equals(base, null_equal=True), name
        off = r.offsets[0]
        assert off.clock == "sensor_time" and abs(off.offset_ns - 1_200_000_000) < 1_000_000, name
