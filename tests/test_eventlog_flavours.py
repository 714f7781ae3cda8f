"""The same events as .evtx and as each JSON-lines flavour read to the same rows.

No public file holds one host's events both as .evtx and as exported JSON, so the JSON flavours are BUILT
here from the real .evtx files of the corpus (read with the evtx library), following the published shapes:
evtx_dump's JSON lines, NXLog-style flat records (fields at the top level, all text, ``ProcessID`` folded to
``ProcessId``, the logging process in ``ExecutionProcessID``, the collector in ``host``), Winlogbeat/ECS
(``winlog.event_data``, Sysmon fields moved to ``process.*``/``source.*``/``destination.*``, the logging
process in ``winlog.process.pid``) and Azure Monitor exports (``EventData`` as an XML string for Security,
a JSON string for Sysmon; no record ids, so ``record`` is the line number there).
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import evtx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from etwtools.parsers.eventlog import read_eventlog

FILES = [
    "python-evtx/issue_43.evtx",  # Sysmon 1/3/5
    "omerbenamram-evtx/Security_short_selected.evtx",  # Security 5157/5152
    "omerbenamram-evtx/sysmon.evtx",  # Sysmon 1/3, 8 damaged chunks at the end
    "mdecrevoisier/sysmon_1_22__fs03vuln_2012R2.evtx",  # Sysmon 1 + 22
    "mdecrevoisier/sysmon_3__fs03vuln_2012R2__CME_Mimikatz.evtx",  # Sysmon 3
    "mdecrevoisier/security_4688__FS03__Tchopper.evtx",  # Security 4688 v2 (hex PIDs)
]
# Winlogbeat's Sysmon module moves these out of winlog.event_data
ECS_MOVED = {
    "ProcessId": ("process", "pid"),
    "Image": ("process", "executable"),
    "ProcessGuid": ("process", "entity_id"),
    "CommandLine": ("process", "command_line"),
    "SourceIp": ("source", "ip"),
    "SourcePort": ("source", "port"),
    "DestinationIp": ("destination", "ip"),
    "DestinationPort": ("destination", "port"),
    "QueryName": ("dns", "question", "name"),
}


def _records(path: Path) -> list[dict]:
    """The readable records (a damaged chunk raises once from next(): skip it and go on)."""
    out = []
    it = evtx.PyEvtxParser(str(path)).records_json()
    while True:
        try:
            out.append(json.loads(next(it)["data"]))
        except StopIteration:
            return out
        except RuntimeError:
            continue


def _text(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _sys(d: dict) -> dict:
    return d["Event"]["System"]


def _data(d: dict) -> dict:
    return d["Event"].get("EventData") or {}


def _flat(d: dict) -> dict:
    s = _sys(d)
    out = {
        "EventID": s["EventID"],
        "Channel": s["Channel"],
        "Hostname": s["Computer"],
        "SourceName": s["Provider"]["#attributes"]["Name"],
        "RecordNumber": s["EventRecordID"],
        "TimeCreated": s["TimeCreated"]["#attributes"]["SystemTime"],
        "ExecutionProcessID": s["Execution"]["#attributes"]["ProcessID"],
        "host": "collector.example.net",
    }
    for k, v in _data(d).items():
        out["ProcessId" if k == "ProcessID" else k] = _text(v)
    return out


def _ecs(d: dict) -> dict:
    s = _sys(d)
    sysmon = "Sysmon" in s["Channel"]
    event_data: dict = {}
    out: dict = {"@timestamp": s["TimeCreated"]["#attributes"]["SystemTime"], "host": {"name": "collector"}}
    for k, v in _data(d).items():
        if sysmon and k in ECS_MOVED:
            *parents, leaf = ECS_MOVED[k]
            node = out
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = int(v) if leaf in ("pid", "port") else v
        else:
            event_data[k] = _text(v)
    out["winlog"] = {
        "event_id": str(s["EventID"]),
        "channel": s["Channel"],
        "computer_name": s["Computer"],
        "provider_name": s["Provider"]["#attributes"]["Name"],
        "record_id": s["EventRecordID"],
        "process": {"pid": s["Execution"]["#attributes"]["ProcessID"]},
        "event_data": event_data,
    }
    return out


def _azure(d: dict) -> dict:
    s = _sys(d)
    data = _data(d)
    if s["Channel"] == "Security":
        xml = "".join(f'<Data Name="{k}">{escape(_text(v), quote=False)}</Data>' for k, v in data.items())
        ed = f'<EventData xmlns="http://schemas.microsoft.com/win/2004/08/events/event">{xml}</EventData>'
    else:
        ed = json.dumps({k: _text(v) for k, v in data.items()})
    return {
        "TenantId": "redacted",
        "TimeGenerated": s["TimeCreated"]["#attributes"]["SystemTime"],
        "Computer": s["Computer"],
        "Channel": s["Channel"],
        "EventID": s["EventID"],
        "EventData": ed,
        "Type": "SecurityEvent" if s["Channel"] == "Security" else "WindowsEvent",
    }


BUILD = {"evtx_dump": lambda d: d, "flat": _flat, "ecs": _ecs, "azure": _azure}


def _same(a: pl.DataFrame, b: pl.DataFrame, drop: list[str]) -> None:
    key = [c for c in a.columns if c not in drop and a.schema[c] != pl.List(pl.Utf8)]
    assert_frame_equal(a.drop(drop).sort(key, nulls_last=True), b.drop(drop).sort(key, nulls_last=True))


@pytest.mark.parametrize("flavour", list(BUILD))
@pytest.mark.parametrize("name", FILES)
def test_json_flavours_read_to_the_evtx_rows(corpus, tmp_path, name, flavour):
    path = corpus / "eventlogs" / name
    ref = read_eventlog(path)
    records = [d for d in _records(path) if _sys(d) is not None]
    out = tmp_path / f"{flavour}.json"
    out.write_text("".join(json.dumps(BUILD[flavour](d)) + "\n" for d in records), encoding="utf-8")
    got = read_eventlog(out)
    assert got.kind == "json" and got.flavours == [flavour]
    assert got.event_ids == ref.event_ids and not got.skipped  # the .evtx's damage is not in the JSON
    drop = ["source"] + (["record"] if flavour == "azure" else [])
    assert ref.connections.height + ref.processes.height + ref.dns.height > 0
    _same(ref.connections, got.connections, drop)
    _same(ref.processes, got.processes, [])
    _same(ref.dns, got.dns, drop)
