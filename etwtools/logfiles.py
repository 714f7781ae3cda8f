"""``attribute`` with event logs among its inputs: several ``--etl`` files (Sysmon and Security logs as
.evtx or JSON lines, and at most one kernel trace), each told apart by content, joined to one capture."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

import polars as pl

from .errors import EtwToolsError
from .ownership import LogAttribution, attribute_connections, merge_kernel
from .parsers import schema
from .sources import EVENTLOG_KINDS, detect

PathLike = str | os.PathLike
Steps = Callable[[str, str], AbstractContextManager]


def _no_progress(label: str, unit: str) -> AbstractContextManager:
    return nullcontext(None)


def split_inputs(paths: Sequence[PathLike]) -> tuple[PathLike | None, list[PathLike]]:
    """(the kernel trace or None, the event logs) among ``--etl`` files; more than one trace is an error."""
    traces, logs = [], []
    for p in paths:
        (logs if detect(p) in EVENTLOG_KINDS else traces).append(p)
    if len(traces) > 1:
        raise EtwToolsError(f"one kernel trace at a time ({', '.join(map(os.fspath, traces))}); event logs "
                            f"(Sysmon, Security) may be given as many as needed")
    return (traces[0] if traces else None), logs


def attribute_with_logs(traces: Sequence[PathLike], capture: PathLike | None, tasklists: Sequence[PathLike] = (), *,
                        tasklist_time: datetime | None = None, offset_s: float | None = None,
                        tolerance_s: float | None = None, local_addrs: Sequence[str] | None = None,
                        host: str | None = None, steps: Steps = _no_progress) -> LogAttribution:
    """Attribute the frames of ``capture`` (None: the packets inside the kernel trace) from the event logs
    among ``traces`` and, when one is given, the kernel trace; ``host`` picks the host of multi-host logs."""
    from .parsers.eventlog import read_eventlog
    from .sources import read_frames, read_processes, read_trace

    trace, logs = split_inputs(traces)
    if not logs:
        raise EtwToolsError("no event log (Sysmon or Security, .evtx or JSON lines) among the --etl files")
    tr = None
    if trace is not None:
        with steps("reading trace", "MB") as bar:
            tr = read_trace(trace, with_frames=capture is None, progress=bar)
    if capture is not None:
        with steps("reading capture", "MB") as bar:
            frames = read_frames(capture, progress=bar)
    elif tr is not None and tr.frames is not None and tr.frames.height:
        frames = tr.frames
    else:
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
    if tasklists:
        procs.append(read_processes(list(tasklists), snapshot_time=tasklist_time))
    procs_df = pl.concat(procs, how="diagonal_relaxed")
    dns = pl.concat([g.dns for g in read], how="vertical_relaxed")
    with steps("attributing", "frames"):
        result = attribute_connections(frames, conns, procs_df, dns, offset_s=offset_s, host=host,
                                       local_addrs=local_addrs)
    result.notes[:0] = [g.describe() for g in read]
    if tr is None:
        return result
    from .attribution import attribute

    kwargs = {} if tolerance_s is None else {"tolerance_s": tolerance_s}
    with steps("attributing (kernel trace)", "frames") as bar:
        kernel = attribute(tr.events, frames, procs_df.select([c for c in schema.PROCESSES if c in procs_df.columns]),
                           offset_s=offset_s, local_addrs=list(local_addrs) if local_addrs else None,
                           nic_addrs=tr.local_addresses or None, progress=bar, **kwargs)
    return merge_kernel(kernel, result)
