"""The JSON shapes Windows events are exported in, flattened to one row of strings per event.

- ``evtx_dump``: ``{"Event": {"System": {...}, "EventData": {...}}}``, as the ``evtx`` library and evtx_dump
  write it (EventID may be ``{"#attributes": {"Qualifiers": ..}, "#text": N}``).
- ``ecs``: Winlogbeat / Elastic Common Schema, ``winlog.event_id``, ``winlog.event_data.*`` and ECS fields
  (``process.pid``, ``source.ip``...). ``winlog.process.pid`` is the logging process and is never used.
- ``azure``: Azure Monitor exports (``TimeGenerated``, ``Computer``, ``EventData`` as an XML or JSON string).
- ``flat``: NXLog-style records with ``EventID``, ``Channel``, ``Hostname`` and the event's own fields at the
  top level (``ExecutionProcessID`` is the logging process, kept apart).

Every flavour gives the same row: the header (``time``, ``host``, ``channel``, ``provider``, ``event_id``,
``record``) and the event's data fields under their lower-case names (NXLog folds ``ProcessID`` to
``ProcessId``; lower case makes them one), values as text.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

#: The event-data fields the tables use (lower-case). Everything else in a record is ignored.
DATA_FIELDS = (
    "utctime",
    "processid",
    "processguid",
    "image",
    "application",
    "user",
    "protocol",
    "initiated",
    "sourceip",
    "sourceport",
    "destinationip",
    "destinationport",
    "direction",
    "sourceaddress",
    "destaddress",
    "destport",
    "layername",
    "newprocessid",
    "newprocessname",
    "parentprocessid",
    "parentimage",
    "parentprocessname",
    "parentprocessguid",
    "commandline",
    "terminalsessionid",
    "processname",
    "subjectusername",
    "subjectdomainname",
    "targetusername",
    "targetdomainname",
    "queryname",
    "queryresults",
    "querystatus",
)
HEADER_FIELDS = ("time", "host", "channel", "provider", "event_id", "record")
_DATA = frozenset(DATA_FIELDS)

#: What the flavour detection looks for, for the error message when nothing matches.
LOOKED_FOR = (
    "Event.System (evtx_dump)",
    "winlog.event_id (Winlogbeat/ECS)",
    "TimeGenerated + EventData (Azure Monitor)",
    "EventID at the top level (NXLog-style)",
)


def flavour_of(d: Any) -> str | None:
    """``evtx_dump``, ``ecs``, ``azure`` or ``flat`` for a decoded record, None for anything else."""
    if not isinstance(d, dict):
        return None
    if isinstance(d.get("Event"), dict):
        return "evtx_dump"
    if isinstance(d.get("winlog"), dict):
        return "ecs"
    if "EventID" in d:
        return "azure" if "TimeGenerated" in d else "flat"
    return None


def _text(v: Any) -> str | None:
    """A field value as text: JSON true/false as lower case, numbers in decimal, "-" kept as written."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    if isinstance(v, dict) and "#text" in v:  # evtx_dump: an element with attributes
        return _text(v["#text"])
    if isinstance(v, list):
        return ";".join(t for t in (_text(x) for x in v) if t is not None)
    return json.dumps(v)


_KEYS: dict[str, str] = {}  # field name as written -> lower-case name the tables use, "" for others


def _put_data(row: dict[str, str | None], data: Any) -> None:
    """Event-data fields (a name -> value mapping) into ``row`` under lower-case names."""
    if not isinstance(data, dict):
        return
    keys = _KEYS
    for k, v in data.items():
        lk = keys.get(k)
        if lk is None:
            lk = k.lower() if k.lower() in _DATA else ""
            if len(keys) < 100_000:  # hostile input could hold endless distinct names
                keys[k] = lk
        if lk:
            row[lk] = v if type(v) is str else _text(v)


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _event_id(v: Any) -> int | None:
    t = _text(v)
    if t is None:
        return None
    t = t.strip()
    return int(t) if t.isdigit() and len(t) <= 10 else None


def _flat_evtx_dump(d: dict) -> dict[str, Any]:
    ev = d["Event"]
    system = ev.get("System")
    row: dict[str, Any] = {}
    if isinstance(system, dict):
        row["time"] = _text(_get(system, "TimeCreated", "#attributes", "SystemTime"))
        row["host"] = _text(system.get("Computer"))
        row["channel"] = _text(system.get("Channel"))
        row["provider"] = _text(_get(system, "Provider", "#attributes", "Name"))
        row["event_id"] = _event_id(system.get("EventID"))
        row["record"] = _event_id(system.get("EventRecordID"))
    _put_data(row, ev.get("EventData"))
    user_data = ev.get("UserData")
    if isinstance(user_data, dict):  # <UserData><SomeEvent><Field>..</Field></SomeEvent></UserData>
        for inner in user_data.values():
            _put_data(row, inner)
    return row


# ECS fields the Winlogbeat Sysmon module moves out of winlog.event_data, as (ECS path, event-data name).
_ECS_FIELDS = (
    (("process", "pid"), "processid"),
    (("process", "entity_id"), "processguid"),
    (("process", "executable"), "image"),
    (("process", "command_line"), "commandline"),
    (("process", "parent", "pid"), "parentprocessid"),
    (("process", "parent", "executable"), "parentimage"),
    (("process", "parent", "entity_id"), "parentprocessguid"),
    (("network", "transport"), "protocol"),
    (("source", "ip"), "sourceip"),
    (("source", "port"), "sourceport"),
    (("destination", "ip"), "destinationip"),
    (("destination", "port"), "destinationport"),
    (("dns", "question", "name"), "queryname"),
)


def _flat_ecs(d: dict) -> dict[str, Any]:
    w = d["winlog"]
    row: dict[str, Any] = {
        "time": _text(d.get("@timestamp")),
        "host": _text(w.get("computer_name") or _get(d, "host", "hostname") or _get(d, "host", "name")),
        "channel": _text(w.get("channel")),
        "provider": _text(w.get("provider_name")),
        "event_id": _event_id(
            w.get("event_id") if w.get("event_id") is not None else _get(d, "event", "code")
        ),
        "record": _event_id(w.get("record_id")),
    }
    _put_data(row, w.get("event_data"))
    _put_data(row, w.get("user_data"))
    for path, name in _ECS_FIELDS:
        if row.get(name) is None:
            v = _get(d, *path)
            if v is not None:
                row[name] = _text(v)
    if row.get("user") is None and _get(d, "user", "name") is not None:
        dom = _get(d, "user", "domain")
        row["user"] = f"{dom}\\{_get(d, 'user', 'name')}" if dom else _text(_get(d, "user", "name"))
    if row.get("initiated") is None and _get(d, "network", "direction") is not None:
        nd = str(_get(d, "network", "direction")).lower()
        if nd in ("egress", "outbound"):
            row["initiated"] = "true"
        elif nd in ("ingress", "inbound"):
            row["initiated"] = "false"
    if row.get("queryresults") is None and isinstance(_get(d, "dns", "resolved_ip"), list):
        row["queryresults"] = ";".join(str(x) for x in _get(d, "dns", "resolved_ip")) + ";"
    return row


_XML_DATA = re.compile(r'<Data Name="([^"]+)"\s*>([^<]*)</Data>|<Data Name="([^"]+)"\s*/>')


def _flat_azure(d: dict) -> dict[str, Any]:
    row: dict[str, Any] = {
        "time": _text(d.get("TimeGenerated")),
        "host": _text(d.get("Computer")),
        "channel": _text(d.get("Channel")),
        "provider": _text(d.get("Provider") or d.get("EventSourceName")),
        "event_id": _event_id(d.get("EventID")),
        "record": _event_id(d.get("EventRecordId")),
    }
    _put_data(row, d)  # SecurityEvent copies some fields to the top level
    ed = d.get("EventData") or ""
    if isinstance(ed, dict):
        _put_data(row, ed)
    elif ed.lstrip().startswith("{"):
        try:
            _put_data(row, json.loads(ed))
        except ValueError:
            row["_bad_eventdata"] = "JSON"
    else:
        _put_data(row, {m[0] or m[2]: html.unescape(m[1]) for m in _XML_DATA.findall(ed)})
    return row


def _flat_nxlog(d: dict) -> dict[str, Any]:
    row: dict[str, Any] = {
        "time": _text(d.get("TimeCreated") or d.get("EventTime") or d.get("@timestamp")),
        "host": _text(d.get("Hostname") or d.get("Computer") or d.get("ComputerName")),
        "channel": _text(d.get("Channel")),
        "provider": _text(d.get("SourceName") or d.get("ProviderName")),
        "event_id": _event_id(d.get("EventID")),
        "record": _event_id(d.get("RecordNumber") or d.get("EventRecordID")),
    }
    _put_data(row, d)
    return row


_FLATTEN = {"evtx_dump": _flat_evtx_dump, "ecs": _flat_ecs, "azure": _flat_azure, "flat": _flat_nxlog}


def flatten(d: Any, flavour: str | None = None) -> dict[str, Any] | None:
    """One decoded record as a row (header + lower-case data fields), None when no flavour fits."""
    f = flavour or flavour_of(d)
    return _FLATTEN[f](d) if f else None
