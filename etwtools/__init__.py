"""etwtools: which process sent this packet?

Library entry points (all return polars DataFrames in the schemas of ``etwtools.parsers.schema``):

- :func:`read_events` (ETL or tracerpt CSV -> network events with PIDs and process names)
- :func:`iter_events` (ETL -> every event, typed tables per event type, batch by batch)
- :func:`scan_events` (ETL -> every event as one lazy long table; header filters skip records undecoded)
- :func:`read_processes` (ETL, tracerpt CSV, event logs or tasklist output -> processes)
- :func:`read_eventlog` (Sysmon / Security event log, .evtx or JSON lines -> connections, processes, DNS)
- :func:`read_frames` (pcap, pcapng, or packets inside an ETL -> frames)
- :func:`attribute` (events x frames x processes -> one answer per frame, with evidence)
- :func:`attribute_files` (the same from the files: trace, capture, tasklists; what the CLI calls)
- :func:`synattack` (Microsoft-Windows-TCPIP ETL -> SYN-attack resistance intervals)
- :func:`skip_reports` (the :class:`SkipReport` of every file read inside it: what each reader skipped)
"""

from __future__ import annotations

from .errors import AttributionError, CaptureError, EtlError, EtwToolsError, EventLogError, TextFormatError

__all__ = [
    "AttributionError",
    "CaptureError",
    "EtlError",
    "EtwToolsError",
    "EventLogError",
    "SkipReport",
    "TextFormatError",
    "attribute",
    "attribute_files",
    "detect",
    "iter_events",
    "read_eventlog",
    "read_events",
    "read_frames",
    "read_processes",
    "read_trace",
    "scan_events",
    "skip_reports",
    "synattack",
]


#: Where each lazily imported entry point lives (importing polars takes ~0.1 s: only when used).
_LAZY = {
    "attribute": "attribution",
    "attribute_files": "attribution",
    "synattack": "synattack",
    "detect": "sources",
    "read_events": "sources",
    "read_eventlog": "sources",
    "read_frames": "sources",
    "read_processes": "sources",
    "read_trace": "sources",
    "iter_events": "parsers.etl.columnar",
    "scan_events": "parsers.etl.scan",
    "SkipReport": "parsers.diagnostics",
    "skip_reports": "parsers.diagnostics",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'etwtools' has no attribute {name!r}")
