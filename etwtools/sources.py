"""Opening any input: tell ETL, tracerpt CSV, tasklist, pcap and pcapng apart and read them into tables."""
from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from .errors import EtwToolsError
from .parsers import schema
from .parsers.units import Progress

PathLike = str | os.PathLike



def _looks_like_etl(head: bytes) -> bool:
    """The first buffer's first record is a kernel header event (group 0)."""
    from .parsers.etl.records import HEADER_TYPES

    if len(head) < 0x50:
        return False
    size = struct.unpack_from("<I", head, 0)[0]
    htype, flags = head[0x4A], head[0x4B]
    return size >= 0x100 and size % 0x100 == 0 and htype in HEADER_TYPES and flags & 0xC0 == 0xC0


def detect(path: PathLike) -> str:
    """Kind of the file: ``etl``, ``pcap``, ``pcapng``, ``netmon``, ``tracerpt``, ``tasklist``, ``evtx`` or
    ``eventlog-json`` (Windows event logs: Sysmon / Security, as .evtx or JSON lines)."""
    from . import compressed
    from .parsers import captures, eventlog, tasklist, tracerpt

    p = Path(path)
    try:
        with open(p, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise EtwToolsError("not a regular file (a pipe or a device): the readers map and re-read "
                                    "their input; save it to a file first", path=p)
            head = f.read(65536)
    except OSError as e:
        raise EtwToolsError(f"cannot read: {e.strerror}", path=p) from None
    if not head:
        raise EtwToolsError("file is empty", path=p, offset=0)
    kind = captures.sniff(head)
    if kind:
        return kind
    packed = compressed.sniff(head)
    if packed:
        inner = compressed.peek(p)
        if inner and eventlog.sniff(inner) == "eventlog-json":
            return "eventlog-json"       # the event-log reader streams JSON lines out of a .zip or .gz
        held = compressed.members(p)
        what = (f" (holding {', '.join(held[:5])}{', ...' if len(held) > 5 else ''})" if held else "")
        raise EtwToolsError(f"{packed}-compressed{what}: extract it first (etwtools.compressed.extract does; "
                            "the command line reads .gz and .zip inputs itself)", path=p, offset=0)
    if _looks_like_etl(head):
        return "etl"
    kind = eventlog.sniff(head)
    if kind:
        return kind
    if tracerpt.looks_like_tracerpt(head):
        return "tracerpt"
    if tasklist.looks_like_tasklist(head):
        return "tasklist"
    if p.suffix.lower() == ".etl":
        return "etl"  # let the ETL reader say precisely what is wrong
    if p.suffix.lower() == ".evtx":
        return "evtx"  # let the event-log reader say precisely what is wrong
    raise EtwToolsError("not a recognised input (expected an ETL file, tracerpt CSV, tasklist output, "
                        "pcap, pcapng, .evtx or event-log JSON lines)", path=p, offset=0)


#: Kinds read by :func:`read_eventlog`.
EVENTLOG_KINDS = ("evtx", "eventlog-json")


@dataclass
class Trace:
    """What one trace file says: network events, processes, and the traced host's own addresses."""

    path: str
    kind: str
    events: pl.DataFrame
    processes: pl.DataFrame
    local_addresses: list[str] = field(default_factory=list)
    frames: pl.DataFrame | None = None   # the packets inside an ETL, when asked for


def read_trace(path: PathLike, *, with_frames: bool = False, progress: Progress | None = None) -> Trace:
    """Events, processes and local addresses of an ETL file or tracerpt CSV, in one pass.

    ``with_frames``: also the frames inside an ETL file (FRAMES schema), from the same pass.
    """
    kind = detect(path)
    if kind == "etl":
        from .parsers.etl.events import read_timeline
        from .parsers.etl.packets import EtlPacketReader

        packets = EtlPacketReader(path) if with_frames else None
        t = read_timeline(path, progress=progress, packets=packets)
        return Trace(os.fspath(path), kind, t.events, t.processes, list(t.local_addresses),
                     packets.frames() if packets is not None else None)
    if kind == "tracerpt":
        from .parsers.tracerpt import read_tracerpt

        t = read_tracerpt(path, progress=progress)
        return Trace(os.fspath(path), kind, t.events, t.processes, [])
    raise EtwToolsError(f"expected an ETL file or a tracerpt CSV, found {kind}", path=path)


def read_eventlog(path: PathLike, *, progress: Progress | None = None):
    """Connections, processes and DNS queries of a Windows event log (.evtx or JSON lines): an ``EventLog``."""
    from .parsers.eventlog import read_eventlog as _read

    return _read(path, progress=progress)


def read_events(path: PathLike, *, progress: Progress | None = None) -> pl.DataFrame:
    """Network events (EVENTS schema) of an ETL file or tracerpt CSV."""
    return read_trace(path, progress=progress).events


def read_processes(path: PathLike | list[PathLike], *, snapshot_time: datetime | None = None,
                   progress: Progress | None = None) -> pl.DataFrame:
    """Processes (PROCESSES schema) from an ETL file, a tracerpt CSV, tasklist output(s) or Windows event
    logs (Sysmon 1/5, Security 4688/4689: with the extra columns of EVENTLOG_PROCESSES)."""
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    frames = []
    tasklists = []
    for p in paths:
        kind = detect(p)
        if kind == "tasklist":
            tasklists.append(p)
        elif kind in ("etl", "tracerpt"):
            frames.append(read_trace(p, progress=progress).processes)
        elif kind in EVENTLOG_KINDS:
            frames.append(read_eventlog(p, progress=progress).processes)
        else:
            raise EtwToolsError(f"expected an ETL file, tracerpt CSV, event log or tasklist output, found {kind}",
                                path=p)
    if tasklists:
        from .parsers.tasklist import read_tasklist

        frames.append(read_tasklist(tasklists, snapshot_time=snapshot_time))
    if not frames:
        return schema.empty(schema.PROCESSES)
    return pl.concat([schema.conform(f, schema.PROCESSES) for f in frames], how="diagonal_relaxed")


def read_frames(path: PathLike, *, with_data: bool = False, progress: Progress | None = None,
                appearances: bool = False) -> pl.DataFrame:
    """Frames (FRAMES schema) of a pcap, a pcapng, or the packets inside an ETL file (pktmon: one row
    per packet, or per component it crossed with ``appearances``)."""
    kind = detect(path)
    if kind in ("pcap", "pcapng", "netmon"):
        from .parsers.captures import read_capture

        return read_capture(path, with_data=with_data, progress=progress)
    if kind == "etl":
        from .parsers.etl.packets import read_etl_frames

        return read_etl_frames(path, with_data=with_data, progress=progress, appearances=appearances)
    raise EtwToolsError(f"expected a pcap, pcapng or ETL file with packets, found {kind}", path=path)
