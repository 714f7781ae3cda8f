"""Opening any input: tell ETL, tracerpt CSV, tasklist, pcap and pcapng apart and read them into tables."""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from .errors import EtwToolsError
from .parsers import schema
from .parsers.diagnostics import SkipReport
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


@dataclass(frozen=True)
class Kind:
    """One input kind: how its first bytes look and what reads it (None: no such table in this kind).

    ``sniff`` sees the file's first 64 KiB; ``suffix`` takes a file whose bytes no kind recognises by its
    extension, so that the kind's reader says precisely what is wrong. The readers: ``trace`` (path,
    with_frames, progress) -> :class:`Trace`; ``frames`` (path, with_data, progress, appearances) ->
    FRAMES; ``packets`` (path, spill_dir) -> (interfaces, packet iterator); ``eventlog`` (path,
    progress) -> an ``EventLog``; ``tasklist``: processes come from all tasklist files at once;
    ``syn_attack`` (path) -> the SYN-attack report of a trace that can hold Microsoft-Windows-TCPIP events.
    """

    name: str
    sniff: Callable[[bytes], bool]
    suffix: str | None = None
    trace: Callable[..., Trace] | None = None
    frames: Callable[..., pl.DataFrame] | None = None
    packets: Callable[..., tuple] | None = None
    eventlog: Callable[..., Any] | None = None
    tasklist: bool = False
    syn_attack: Callable[..., Any] | None = None


#: The input kinds by name, in the order their sniffs are tried. Adding a kind is one :func:`register`.
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add an input kind (tried after those already registered)."""
    KINDS[kind.name] = kind
    return kind


def detect(path: PathLike) -> str:
    """Kind of the file (a name in :data:`KINDS`): ``etl``, ``pcap``, ``pcapng``, ``netmon``, ``tracerpt``,
    ``tasklist``, ``evtx`` or ``eventlog-json`` (Windows event logs: Sysmon / Security, as .evtx or JSON
    lines)."""
    from . import compressed

    p = Path(path)
    try:
        with open(p, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise EtwToolsError(
                    "not a regular file (a pipe or a device): the readers map and re-read "
                    "their input; save it to a file first",
                    path=p,
                )
            head = f.read(65536)
    except OSError as e:
        raise EtwToolsError(f"cannot read: {e.strerror}", path=p) from None
    if not head:
        raise EtwToolsError("file is empty", path=p, offset=0)
    packed = compressed.sniff(head)  # gzip/zip magic: no registered kind starts so
    if packed:
        from .parsers import eventlog

        inner = compressed.peek(p)
        if inner and eventlog.sniff(inner) == "eventlog-json":
            return "eventlog-json"  # the event-log reader streams JSON lines out of a .zip or .gz
        held = compressed.members(p)
        what = f" (holding {', '.join(held[:5])}{', ...' if len(held) > 5 else ''})" if held else ""
        raise EtwToolsError(
            f"{packed}-compressed{what}: extract it first (etwtools.compressed.extract does; "
            "the command line reads .gz and .zip inputs itself)",
            path=p,
            offset=0,
        )
    for kind in KINDS.values():
        if kind.sniff(head):
            return kind.name
    for kind in KINDS.values():
        if kind.suffix and p.suffix.lower() == kind.suffix:
            return kind.name
    raise EtwToolsError(
        "not a recognised input (expected an ETL file, tracerpt CSV, tasklist output, "
        "pcap, pcapng, .evtx or event-log JSON lines)",
        path=p,
        offset=0,
    )


@dataclass
class Trace:
    """What one trace file says: network events, processes, the traced host's own addresses, and what
    the reader skipped (published as it was read)."""

    path: str
    kind: str
    events: pl.DataFrame
    processes: pl.DataFrame
    local_addresses: list[str] = field(default_factory=list)
    frames: pl.DataFrame | None = None  # the packets inside an ETL, when asked for
    skipped: SkipReport = field(default_factory=lambda: SkipReport(""))


def read_trace(path: PathLike, *, with_frames: bool = False, progress: Progress | None = None) -> Trace:
    """Events, processes and local addresses of an ETL file or tracerpt CSV, in one pass.

    ``with_frames``: also the frames inside an ETL file (FRAMES schema), from the same pass.
    """
    read = KINDS[kind := detect(path)].trace
    if read is not None:
        return read(path, with_frames=with_frames, progress=progress)
    raise EtwToolsError(f"expected an ETL file or a tracerpt CSV, found {kind}", path=path)


def read_eventlog(path: PathLike, *, progress: Progress | None = None):
    """Connections, processes and DNS queries of a Windows event log (.evtx or JSON lines): an ``EventLog``."""
    from .parsers.eventlog import read_eventlog as _read

    return _read(path, progress=progress)


def read_events(path: PathLike, *, progress: Progress | None = None) -> pl.DataFrame:
    """Network events (EVENTS schema) of an ETL file or tracerpt CSV."""
    return read_trace(path, progress=progress).events


def read_processes(
    path: PathLike | list[PathLike],
    *,
    snapshot_time: datetime | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Processes (PROCESSES schema) from an ETL file, a tracerpt CSV, tasklist output(s) or Windows event
    logs (Sysmon 1/5, Security 4688/4689: with the extra columns of EVENTLOG_PROCESSES)."""
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    frames = []
    tasklists = []
    for p in paths:
        kind = KINDS[detect(p)]
        if kind.tasklist:
            tasklists.append(p)
        elif kind.trace is not None:
            frames.append(kind.trace(p, progress=progress).processes)
        elif kind.eventlog is not None:
            frames.append(kind.eventlog(p, progress=progress).processes)
        else:
            raise EtwToolsError(
                f"expected an ETL file, tracerpt CSV, event log or tasklist output, found {kind.name}", path=p
            )
    if tasklists:
        from .parsers.tasklist import read_tasklist

        frames.append(read_tasklist(tasklists, snapshot_time=snapshot_time))
    if not frames:
        return schema.empty(schema.PROCESSES)
    return pl.concat([schema.conform(f, schema.PROCESSES) for f in frames], how="diagonal_relaxed")


def read_frames(
    path: PathLike, *, with_data: bool = False, progress: Progress | None = None, appearances: bool = False
) -> pl.DataFrame:
    """Frames (FRAMES schema) of a pcap, a pcapng, or the packets inside an ETL file (pktmon: one row
    per packet, or per component it crossed with ``appearances``)."""
    read = KINDS[kind := detect(path)].frames
    if read is not None:
        return read(path, with_data=with_data, progress=progress, appearances=appearances)
    raise EtwToolsError(f"expected a pcap, pcapng or ETL file with packets, found {kind}", path=path)


# ---------------------------------------------------------------------------------------------------
# the kinds (sniff order: captures, ETL, event logs, tracerpt, tasklist; readers imported when used)


def _etl_trace(path: PathLike, *, with_frames: bool = False, progress: Progress | None = None) -> Trace:
    from .parsers.etl.events import read_timeline

    packets = None
    if with_frames:
        from .parsers.etl.captured_frames import EtlPacketReader

        packets = EtlPacketReader(path)
    t = read_timeline(path, progress=progress, packets=packets)
    return Trace(
        os.fspath(path),
        "etl",
        t.events,
        t.processes,
        list(t.local_addresses),
        packets.frames() if packets is not None else None,
        t.skipped,
    )


def _tracerpt_trace(path: PathLike, *, with_frames: bool = False, progress: Progress | None = None) -> Trace:
    from .parsers.tracerpt import read_tracerpt

    t = read_tracerpt(path, progress=progress)
    return Trace(os.fspath(path), "tracerpt", t.events, t.processes, [], skipped=t.skipped)


def _etl_frames(
    path: PathLike, *, with_data: bool = False, progress: Progress | None = None, appearances: bool = False
) -> pl.DataFrame:
    from .parsers.etl.captured_frames import read_etl_frames

    return read_etl_frames(path, with_data=with_data, progress=progress, appearances=appearances)


def _etl_packets(path: PathLike, *, spill_dir: str | None = None) -> tuple:
    from .parsers.etl.captured_frames import iter_etl_capture
    from .parsers.packets import Interface

    interfaces, packets = iter_etl_capture(path, spill_dir=spill_dir)
    return interfaces or [Interface(link_type=1)], packets


def _etl_syn_attack(path: PathLike):
    from .synattack import synattack

    return synattack(path)


def _capture(name: str) -> Kind:
    def sniff(head: bytes) -> bool:
        from .parsers.captures import sniff

        return sniff(head) == name

    def frames(
        path: PathLike,
        *,
        with_data: bool = False,
        progress: Progress | None = None,
        appearances: bool = False,
    ) -> pl.DataFrame:
        from .parsers.captures import read_capture

        return read_capture(path, with_data=with_data, progress=progress, kind=name)

    def packets(path: PathLike, *, spill_dir: str | None = None) -> tuple:
        from .parsers.captures import iter_capture_packets

        return iter_capture_packets(path, kind=name)

    return Kind(name, sniff, frames=frames, packets=packets)


def _eventlog_sniff(name: str) -> Callable[[bytes], bool]:
    def sniff(head: bytes) -> bool:
        from .parsers import eventlog

        return eventlog.sniff(head) == name

    return sniff


def _tracerpt_sniff(head: bytes) -> bool:
    from .parsers.tracerpt import looks_like_tracerpt

    return looks_like_tracerpt(head)


def _tasklist_sniff(head: bytes) -> bool:
    from .parsers.tasklist import looks_like_tasklist

    return looks_like_tasklist(head)


for _name in ("pcap", "pcapng", "netmon"):
    register(_capture(_name))
register(
    Kind(
        "etl",
        _looks_like_etl,
        suffix=".etl",
        trace=_etl_trace,
        frames=_etl_frames,
        packets=_etl_packets,
        syn_attack=_etl_syn_attack,
    )
)
register(Kind("evtx", _eventlog_sniff("evtx"), suffix=".evtx", eventlog=read_eventlog))
register(Kind("eventlog-json", _eventlog_sniff("eventlog-json"), eventlog=read_eventlog))
register(Kind("tracerpt", _tracerpt_sniff, trace=_tracerpt_trace))
register(Kind("tasklist", _tasklist_sniff, tasklist=True))

#: Kinds read by :func:`read_eventlog`.
EVENTLOG_KINDS = tuple(k.name for k in KINDS.values() if k.eventlog is not None)
