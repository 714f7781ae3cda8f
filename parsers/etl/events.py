"""Network events, processes and local addresses of an ETL file, in one pass over its records.

Public functions: :func:`read_timeline` (everything, one pass), :func:`read_etl_events`,
:func:`read_processes`, :func:`read_local_addresses` (thin wrappers).

``process`` of an event is the image name of its PID at the event's time, from the trace's own
process events: each process instance lives from its Start (or, for DCStart rundowns and processes
first seen at their end, from before the trace) to its End/Defunct (or, for DCEnd, past the trace).
PIDs are reused; the lookup is an as-of join by PID on these lifetimes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..addresses import text_address
from ..diagnostics import SkipReport
from ..lifetimes import PROCESS_GRACE_S, lifetime, process_at, process_instances
from ..schema import EVENTS, PROCESSES, conform
from ..units import Progress
from .guids import (
    KERNEL_NETWORK,
    KERNEL_PROCESS,
    PROCESS_KERNEL,
    SYSTEMCONFIG_KERNEL,
    TCPIP,
    TCPIP_KERNEL,
    UDPIP_KERNEL,
)
from .kernel import (
    NET_COLUMNS,
    NET_EXTRAS,
    NetPieces,
    decode_kernel_net,
    decode_process_events,
    decode_systemconfig,
    orient,
)
from .kernel_network import decode_kernel_network
from .kernel_process import decode_kernel_process
from .records import RecordBatch
from .tcpip import decode_pid_events

#: The providers whose records the timeline decodes (the container hands over no others).
PROVIDERS = (
    TCPIP_KERNEL,
    UDPIP_KERNEL,
    PROCESS_KERNEL,
    SYSTEMCONFIG_KERNEL,
    KERNEL_NETWORK,
    KERNEL_PROCESS,
    TCPIP,
)

#: Columns kept after the EVENTS schema ones.
EVENT_EXTRAS = ["tid", "opcode", "version", "event_id", *NET_EXTRAS]


@dataclass
class Timeline:
    """What one pass over an ETL file gives: events (EVENTS schema), processes (PROCESSES schema),
    the traced host's addresses (SystemConfig NIC), services, the container's header and stats, and
    what the pass skipped (``skipped``: the file's report, published)."""

    events: pl.DataFrame
    processes: pl.DataFrame
    local_addresses: list[str]
    header: Any = None
    stats: Any = None
    skipped: SkipReport = field(default_factory=lambda: SkipReport("<batches>"))
    nics: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)


@dataclass
class _Collector:
    """Accumulates decoded pieces batch after batch."""

    net: NetPieces = field(default_factory=NetPieces)
    #: Microsoft-Windows-TCPIP events with a payload PID (netsh traces), already local/remote oriented.
    tcpip: list[pl.DataFrame] = field(default_factory=list)
    procs: list[dict] = field(default_factory=list)
    #: Microsoft-Windows-Kernel-Process Start/Stop (kept apart: they fill what classic events miss).
    kprocs: list[dict] = field(default_factory=list)
    nics: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    skipped: SkipReport = field(default_factory=lambda: SkipReport("<batches>"))
    path: str = ""

    def add(self, batch: RecordBatch) -> None:
        decode_kernel_net(batch, self.skipped, self.net)
        decode_kernel_network(batch, self.skipped, self.net)
        tcpip = decode_pid_events(batch, self.skipped)
        if tcpip.height:
            self.tcpip.append(tcpip.drop("process").with_columns(pl.col("time").cast(pl.Int64)))
        self.procs.extend(decode_process_events(batch, self.skipped))
        self.kprocs.extend(decode_kernel_process(batch, self.skipped))
        nics, services = decode_systemconfig(batch, self.skipped)
        self.nics.extend(nics)
        self.services.extend(services)


def read_timeline(path: str | os.PathLike, progress: Progress | None = None, packets: Any = None) -> Timeline:
    """Events, processes and local addresses of an ETL file, reading it once.

    ``packets`` (an :class:`~.packets.EtlPacketReader`) is fed the same batches, so the frames inside
    the file come out of the same pass; call its ``frames()`` afterwards.
    """
    from .container import EtlFile

    providers = PROVIDERS if packets is None else (*PROVIDERS, *packets.PROVIDERS)
    with EtlFile(path, progress=progress) as etl:  # publishes the file's report: container + decoders
        collector = _Collector(path=os.fspath(path), skipped=etl.skipped)
        for batch in etl.batches(providers=providers):
            collector.add(batch)
            if packets is not None:
                packets.feed(batch)
        header, stats = etl.header, etl.stats
        if packets is not None:
            packets.finish(etl.skipped)
    return _timeline_from(collector, path, header, stats)


def timeline_from_batches(
    batches: Iterable[RecordBatch],
    path: str | os.PathLike = "<batches>",
    header: Any = None,
    stats: Any = None,
) -> Timeline:
    """The timeline of already decoded record batches (no container statistics are reported; what the
    decoders skip is published as the report of ``path``)."""
    with SkipReport(os.fspath(path)) as skipped:
        collector = _Collector(skipped=skipped)
        for batch in batches:
            collector.add(batch)
    return _timeline_from(collector, path, header, stats)


def _timeline_from(collector: _Collector, path: str | os.PathLike, header: Any, stats: Any) -> Timeline:
    processes = merge_processes(
        build_processes(collector.procs, collector.services),
        build_processes(collector.kprocs, collector.services),
    )
    events = _events_frame(collector.net.frames(), processes, collector.tcpip)
    local: list[str] = []
    for nic in collector.nics:
        for addr in nic["addresses"]:
            text = text_address(addr)
            if text and text not in local:
                local.append(text)
    return Timeline(
        events=events,
        processes=conform(processes, PROCESSES),
        local_addresses=local,
        header=header,
        stats=stats,
        nics=collector.nics,
        services=collector.services,
        skipped=collector.skipped,
    )


def read_etl_events(path: str | os.PathLike, *, progress: Progress | None = None) -> pl.DataFrame:
    """Network events (TcpIp, UdpIp, Kernel-Network) of an ETL file: EVENTS schema, sorted by time."""
    return read_timeline(path, progress=progress).events


def read_processes(path: str | os.PathLike) -> pl.DataFrame:
    """Process instances seen in an ETL file (PROCESSES schema + pid lifetime extras)."""
    return read_timeline(path).processes


def read_local_addresses(path: str | os.PathLike) -> list[str]:
    """The traced host's IP addresses from the SystemConfig NIC rundown; [] when the file has none."""
    return read_timeline(path).local_addresses


# ---------------------------------------------------------------------------------------------


def _events_frame(
    frames: list[pl.DataFrame], processes: pl.DataFrame, oriented: Sequence[pl.DataFrame] = ()
) -> pl.DataFrame:
    if frames:
        df = pl.concat(frames, how="diagonal_relaxed")
    else:
        df = pl.DataFrame(schema={**NET_COLUMNS, **NET_EXTRAS})
    if "event_id" not in df.columns:
        df = df.with_columns(event_id=pl.lit(None, dtype=pl.Int32))
    df = orient(df)
    if oriented:
        df = pl.concat([df, *oriented], how="diagonal_relaxed")
    df = df.sort("time", "record")
    df = attach_process(df, processes)
    df = df.with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    return conform(df, EVENTS).select([*EVENTS, *EVENT_EXTRAS])


def attach_process(
    events: pl.DataFrame, processes: pl.DataFrame, grace_s: float = PROCESS_GRACE_S
) -> pl.DataFrame:
    """Add ``process``: the image of ``pid`` at ``time`` (None when no process covers it), by the rule
    of :func:`etwtools.parsers.lifetimes.process_at` (names kept ``grace_s`` after the End); rows keep
    their order and columns."""
    if processes.is_empty():
        return events.with_columns(process=pl.lit(None, dtype=pl.Utf8))
    return events.with_columns(process_at(events, processes, grace_s=grace_s)["image"].alias("process"))


def build_processes(events: list[dict], services: list[dict]) -> pl.DataFrame:
    """One row per process instance from Process events (sorted by time), with services attached.

    Extra columns: ``exit_status``, ``alive_at_end`` (a DCEnd rundown saw it at trace end),
    ``defunct``, ``unique_key``, ``flags`` (v4+: 2 = Wow64, 4 = protected, as PerfView names them), ``record`` (of its first event).
    """
    rows = process_instances(events, "etl")
    for svc in services:
        if not svc["pid"]:
            continue
        for row in reversed(rows):
            if row["pid"] == svc["pid"] and row["begin"] <= svc["time"] <= row["until"]:
                if svc["name"] not in row["_services"]:
                    row["_services"].append(svc["name"])
                break
    for row in rows:
        row["services"] = ",".join(row.pop("_services")) or None
    schema = {
        "pid": pl.Int64,
        "ppid": pl.Int64,
        "image": pl.Utf8,
        "command_line": pl.Utf8,
        "session": pl.Int64,
        "start": pl.Int64,
        "end": pl.Int64,
        "services": pl.Utf8,
        "user": pl.Utf8,
        "source": pl.Utf8,
        "exit_status": pl.Int64,
        "alive_at_end": pl.Boolean,
        "defunct": pl.Boolean,
        "unique_key": pl.UInt64,
        "flags": pl.Int64,
        "record": pl.Int64,
    }
    df = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")
    return df.with_columns(pl.col("start", "end").cast(pl.Datetime("ns", "UTC")))


def merge_processes(classic: pl.DataFrame, manifest: pl.DataFrame) -> pl.DataFrame:
    """Classic kernel Process instances, plus the Kernel-Process ones no classic instance of the same
    PID overlaps (a trace with both providers logs each process twice)."""
    if manifest.is_empty() or classic.is_empty():
        return manifest if classic.is_empty() else classic
    span = lifetime("_b", "_e")
    m = manifest.with_row_index("_row").with_columns(span)
    c = classic.select("pid", *span)
    overlap = m.join(c, on="pid", suffix="_c").filter(
        (pl.col("_b") <= pl.col("_e_c")) & (pl.col("_b_c") <= pl.col("_e"))
    )["_row"]
    kept = m.filter(~pl.col("_row").is_in(overlap.implode())).drop("_row", "_b", "_e")
    return pl.concat([classic, kept]).sort(span[0], "record")


__all__ = [
    "Timeline",
    "attach_process",
    "build_processes",
    "merge_processes",
    "read_etl_events",
    "read_local_addresses",
    "read_processes",
    "read_timeline",
    "timeline_from_batches",
]
