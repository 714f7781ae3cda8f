"""``attribute_files``: read the trace, the capture and tasklist snapshots, then attribute (what the
``attribute`` command calls)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from ..errors import EtwToolsError, MissingInputError
from ..parsers.units import PathLike, Progress
from ..processes import PROCESS_GRACE_S
from .constants import DEFAULT_TOLERANCE_S
from .engine import attribute
from .result import Attribution

if TYPE_CHECKING:
    from ..ownership import LogAttribution
    from ..sources import Trace

#: ``steps(label, unit)`` opens the progress callback of one step (a bar; None for none).
Steps = Callable[[str, str], AbstractContextManager[Progress | None]]


def no_progress(label: str, unit: str) -> AbstractContextManager[Progress | None]:
    """No progress display for any step."""
    return contextlib.nullcontext(None)


def attribute_files(
    trace: PathLike | Sequence[PathLike],
    capture: PathLike | None = None,
    tasklists: Sequence[PathLike] = (),
    *,
    tasklist_time: datetime | None = None,
    offset_s: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    local_addrs: Sequence[str] | None = None,
    wanted_frames: Sequence[int] = (),
    host: str | None = None,
    steps: Steps = no_progress,
    grace_s: float = PROCESS_GRACE_S,
) -> Attribution | LogAttribution:
    """Attribute every frame of ``capture`` (pcap, pcapng, NetMon, or an ETL with packets; None: the
    packets inside the ``trace`` ETL) using ``trace`` (ETL or tracerpt CSV: events, processes and the
    NIC addresses, read once) and ``tasklists`` (taken at ``tasklist_time`` when known).
    ``trace`` may be several files: Windows event logs (Sysmon, Security; .evtx or JSON lines) beside at
    most one kernel trace, each told apart by content; then the answer comes from
    :func:`etwtools.logfiles.attribute_with_logs` (a :class:`~etwtools.ownership.LogAttribution`), and
    ``host`` picks the host of multi-host logs.
    ``wanted_frames``: frame numbers that must be in the capture (checked before the attribution).
    ``steps(label, unit)`` gives each reading step's progress callback; ``grace_s``: how long after its
    End a process keeps its name. Raises
    :class:`~etwtools.errors.MissingInputError` when no file holds the packets."""
    if not isinstance(trace, (str, os.PathLike)):
        from ..logfiles import attribute_with_logs, split_inputs

        kernel, logs = split_inputs(trace)
        if logs:
            result = attribute_with_logs(
                trace,
                capture,
                tasklists,
                tasklist_time=tasklist_time,
                offset_s=offset_s,
                tolerance_s=tolerance_s,
                local_addrs=local_addrs,
                host=host,
                steps=steps,
            )
            check_frames(wanted_frames, result.frames, capture or kernel or logs[0])
            return result
        if kernel is None:
            raise MissingInputError("no trace given")
        trace = kernel
    if host is not None:
        raise MissingInputError("--host chooses among the hosts of event logs; no --etl file is one")

    from ..sources import KINDS

    tr, frames = read_packets(trace, capture, steps)
    assert tr is not None
    if capture is None and KINDS[tr.kind].frames is None:
        raise MissingInputError(f"--pcap FILE is needed: a {tr.kind} trace holds no packets", path=trace)
    if frames is None:
        raise EtwToolsError(
            "holds no packets (only netsh trace capture=yes and pktmon ETL files do): "
            "give the capture with --pcap FILE",
            path=trace,
        )
    check_frames(wanted_frames, frames, capture or trace)
    procs = with_tasklists([tr.processes], tasklists, tasklist_time)
    with steps("attributing", "frames") as bar:
        return attribute(
            tr.events,
            frames,
            procs,
            offset_s=offset_s,
            tolerance_s=tolerance_s,
            local_addrs=list(local_addrs) if local_addrs else None,
            nic_addrs=tr.local_addresses or None,
            progress=bar,
            grace_s=grace_s,
        )


def check_frames(wanted: Sequence[int], frames: pl.DataFrame, path: PathLike) -> None:
    """Every frame number in ``wanted`` is one of ``frames``; else an error naming the capture."""
    present = frames.filter(pl.col("frame").is_in(list(wanted)))["frame"].to_list() if wanted else []
    for n in wanted:
        if n not in present:
            span = f"numbered {frames['frame'].min()} to {frames['frame'].max()}" if frames.height else "none"
            raise EtwToolsError(
                f"frame {n} is not in the capture ({frames.height:,} frames, {span})", path=path
            )


def read_packets(
    trace: PathLike | None, capture: PathLike | None, steps: Steps = no_progress
) -> tuple[Trace | None, pl.DataFrame | None]:
    """The kernel trace (None: none given; its packets read only when no ``capture`` is given) and the
    frames: the capture's, else the trace's (None when it holds none)."""
    from ..sources import read_frames, read_trace

    tr = None
    if trace is not None:
        with steps("reading trace", "MB") as bar:
            tr = read_trace(trace, with_frames=capture is None, progress=bar)
    if capture is not None:
        with steps("reading capture", "MB") as bar:
            return tr, read_frames(capture, progress=bar)
    frames = tr.frames if tr is not None else None
    return tr, (frames if frames is not None and frames.height else None)


def with_tasklists(
    processes: Sequence[pl.DataFrame],
    tasklists: Sequence[PathLike] = (),
    tasklist_time: datetime | None = None,
) -> pl.DataFrame:
    """The process tables and the ``tasklists`` snapshots (taken at ``tasklist_time``) as one table."""
    from ..sources import read_processes

    tables = list(processes)
    if tasklists:
        tables.append(read_processes(list(tasklists), snapshot_time=tasklist_time))
    return tables[0] if len(tables) == 1 else pl.concat(tables, how="diagonal_relaxed")
