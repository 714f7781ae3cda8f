"""etwtools: which process sent this packet?

Library entry points (all return polars DataFrames in the schemas of ``etwtools.parsers.schema``):

- :func:`read_events` (ETL or tracerpt CSV -> network events with PIDs and process names)
- :func:`read_processes` (ETL, tracerpt CSV or tasklist output -> processes)
- :func:`read_frames` (pcap, pcapng, or packets inside an ETL -> frames)
- :func:`attribute` (events x frames x processes -> one answer per frame, with evidence)
- :func:`synattack` (Microsoft-Windows-TCPIP ETL -> SYN-attack resistance intervals)
"""
from __future__ import annotations

from .errors import AttributionError, CaptureError, EtlError, EtwToolsError, TextFormatError
from .sources import detect, read_events, read_frames, read_processes, read_trace

__all__ = [
    "AttributionError",
    "CaptureError",
    "EtlError",
    "EtwToolsError",
    "TextFormatError",
    "attribute",
    "detect",
    "read_events",
    "read_frames",
    "read_processes",
    "read_trace",
    "synattack",
]


def __getattr__(name: str):
    if name == "attribute":
        from .attribution import attribute

        return attribute
    if name == "synattack":
        from .synattack import synattack

        return synattack
    raise AttributeError(f"module 'etwtools' has no attribute {name!r}")
