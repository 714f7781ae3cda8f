"""``attribute`` with event logs among its inputs: several ``--etl`` files (Sysmon and Security logs as
.evtx or JSON lines, and at most one kernel trace), each told apart by content, joined to one capture."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

import polars as pl

from .attribution.files import Steps, no_progress, read_packets, with_tasklists
from .errors import EtwToolsError
from .ownership import LogAttribution, attribute_connections, merge_kernel
from .parsers import schema
from .parsers.units import PathLike
from .sources import EVENTLOG_KINDS, detect


def split_inputs(paths: Sequence[PathLike]) -> tuple[PathLike | None, list[PathLike]]:
    """(the kernel trace or None, the event logs) among ``--etl`` files; more than one trace is an error."""
    traces, logs = [], []
    for p in paths:
        (logs if detect(p) in EVENTLOG_KINDS else traces).append(p)
    if len(traces) > 1:
        raise EtwToolsError(
            f"one kernel trace at a time ({', '.join(map(os.fspath, traces))}); event logs "
            f"(Sysmon, Security) may be given as many as needed"
        )
    return (traces[0] if traces else None), logs


def attribute_with_logs(
    traces: Sequence[PathLike],
    capture: PathLike | None,
    tasklists: Sequence[PathLike] = (),
    *,
    tasklist_time: datetime | None = None,
    offset_s: float | None = None,
    tolerance_s: float | None = None,
    local_addrs: Sequence[str] | None = None,
    host: str | None = None,
    steps: Steps = no_progress,
) -> LogAttribution:
    """Attribute the frames of ``capture`` (None: the packets inside the kernel trace) from the event logs
    among ``traces`` and, when one is given, the kernel trace; ``host`` picks the host of multi-host logs."""
    from .parsers.eventlog import read_eventlog

    trace, logs = split_inputs(traces)
    if not logs:
        raise EtwToolsError("no event log (Sysmon or Security, .evtx or JSON lines) among the --etl files")
    tr, frames = read_packets(trace, capture, steps)
    if frames is None:
        raise EtwToolsError("event logs hold no packets: give the capture with --pcap FILE", path=logs[0])
    read = []
    for p in logs:
        with steps(f"reading {os.path.basename(os.fspath(p))}", "MB") as bar:
            log = read_eventlog(p, progress=bar)
        if not log.connections.height and not log.dns.height and not log.processes.height:
            raise EtwToolsError(log.describe(), path=p)
        read.append(log)
    conns = pl.concat([g.connections for g in read], how="vertical_relaxed")
    procs = [g.processes for g in read]
    if tr is not None:
        procs.append(schema.conform(tr.processes, schema.PROCESSES))
    procs_df = with_tasklists(procs, tasklists, tasklist_time)
    dns = pl.concat([g.dns for g in read], how="vertical_relaxed")
    with steps("attributing", "frames"):
        result = attribute_connections(
            frames, conns, procs_df, dns, offset_s=offset_s, host=host, local_addrs=local_addrs
        )
    result.notes[:0] = [g.describe() for g in read]
    if tr is None:
        return result
    from .attribution import attribute

    kwargs = {} if tolerance_s is None else {"tolerance_s": tolerance_s}
    with steps("attributing (kernel trace)", "frames") as bar:
        kernel = attribute(
            tr.events,
            frames,
            procs_df.select([c for c in schema.PROCESSES if c in procs_df.columns]),
            offset_s=offset_s,
            local_addrs=list(local_addrs) if local_addrs else None,
            nic_addrs=tr.local_addresses or None,
            progress=bar,
            **kwargs,
        )
    return merge_kernel(kernel, result)
