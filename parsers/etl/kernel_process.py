"""Microsoft-Windows-Kernel-Process manifest events (provider 22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716).

The provider WPR, netsh and xperf sessions enable where no NT Kernel Logger runs. ProcessStart (1) and
ProcessStop (2), layouts from the provider's manifest (the one bundled with dissect.etl; checked on
tx/Process.etl, Windows 7 SP1: Start v0 212 bytes for devenv.exe, Stop v1 91 bytes)::

    Start v0   ProcessID u32, CreateTime FILETIME, ParentProcessID u32, SessionID u32, ImageName wstr
    Start v1   ... SessionID, Flags u32, ImageName
    Start v2   v1 + ImageChecksum u32, TimeDateStamp u32, PackageFullName wstr, PackageRelativeAppId wstr
    Start v3   ProcessID, ProcessSequenceNumber u64, CreateTime, ParentProcessID,
               ParentProcessSequenceNumber u64, SessionID, Flags, ProcessTokenElevationType u32,
               ProcessTokenIsElevated u32, MandatoryLabel SID, then ImageName ... as v2
    Stop v0    ProcessID, CreateTime, ExitTime FILETIME, ExitCode u32, TokenElevationType u32,
               HandleCount u32, CommitCharge u64, CommitPeak u64, ImageName astr (15 characters)
    Stop v1    v0 with CPUCycleCount u64, Read/WriteOperationCount, Read/WriteTransferKiloBytes,
               HardFaultCount (u32 each) before ImageName
    Stop v2    v1 with ProcessSequenceNumber u64 after ProcessID

No version carries a command line. The process is the payload's ProcessID: the header PID of a
ProcessStart is the creating (parent) process. ``unique_key`` is the CreateTime, which the Start and
the Stop of one instance share (PIDs are reused). ``image`` is the file name of ImageName (ProcessStart
gives the NT path, ``image_path``), like the classic kernel events' ImageFileName. Other ids (threads,
image loads, priorities) carry no process names and are not decoded here.
"""

from __future__ import annotations

import numpy as np

from .guids import KERNEL_PROCESS
from .kernel import Skipped, _group_rows
from .payloads import Layout, decode_fields, filetime_ns
from .records import EVENT_HEADER32, EVENT_HEADER64, RecordBatch

PROVIDER = "Kernel-Process"
START, STOP = 1, 2

_START = (("pid", "u32"), ("create_time", "filetime"), ("ppid", "u32"), ("session", "u32"))
_PACKAGE = (
    ("image_checksum", "u32"),
    ("time_date_stamp", "u32"),
    ("package", "wstr"),
    ("application_id", "wstr"),
)
_STOP_V0 = (
    ("create_time", "filetime"),
    ("exit_time", "filetime"),
    ("exit_status", "u32"),
    ("elevation_type", "u32"),
    ("handles", "u32"),
    ("commit", "u64"),
    ("commit_peak", "u64"),
)
_STOP_IO = (
    ("cpu_cycles", "u64"),
    ("read_ops", "u32"),
    ("write_ops", "u32"),
    ("read_kb", "u32"),
    ("write_kb", "u32"),
    ("hard_faults", "u32"),
)

#: (event id, version) -> payload layout.
LAYOUTS: dict[tuple[int, int], Layout] = {
    (START, 0): _START + (("image", "wstr"),),
    (START, 1): _START + (("flags", "u32"), ("image", "wstr")),
    (START, 2): _START + (("flags", "u32"), ("image", "wstr")) + _PACKAGE,
    (START, 3): (
        ("pid", "u32"),
        ("sequence", "u64"),
        ("create_time", "filetime"),
        ("ppid", "u32"),
        ("parent_sequence", "u64"),
        ("session", "u32"),
        ("flags", "u32"),
        ("elevation_type", "u32"),
        ("elevated", "u32"),
        ("mandatory_label", "sid"),
        ("image", "wstr"),
    )
    + _PACKAGE,
    (STOP, 0): (("pid", "u32"),) + _STOP_V0 + (("image", "astr"),),
    (STOP, 1): (("pid", "u32"),) + _STOP_V0 + _STOP_IO + (("image", "astr"),),
    (STOP, 2): (("pid", "u32"), ("sequence", "u64")) + _STOP_V0 + _STOP_IO + (("image", "astr"),),
}
EVENTS = {START: "Start", STOP: "End"}


def decode_kernel_process(batch: RecordBatch, skipped: Skipped) -> list[dict]:
    """ProcessStart/ProcessStop events of one batch as process-event dicts (the keys of
    ``kernel.parse_process`` plus ``image_path``, ``create_time`` and ``provider``)."""
    eh = (batch.htype == EVENT_HEADER32) | (batch.htype == EVENT_HEADER64)
    sel = np.flatnonzero(eh & batch.provider_mask(KERNEL_PROCESS) & np.isin(batch.event_id, list(EVENTS)))
    out: list[dict] = []
    for (event_id, version), pos in _group_rows([batch.event_id[sel], batch.version[sel]]):
        rows = sel[pos]
        layout = LAYOUTS.get((event_id, version))
        if layout is None:
            skipped.add(f"{PROVIDER} event {event_id} records of unknown version {version}", len(rows))
            continue
        cols, ok = decode_fields(batch, rows, layout)
        skipped.add(
            f"{PROVIDER} event {event_id} v{version} records shorter than their layout", int((~ok).sum())
        )
        created = filetime_ns(cols["create_time"])
        names = cols["image"]
        good = np.flatnonzero(ok).tolist()
        for k in good:
            path = names[k] or None
            rec = {
                "pid": int(cols["pid"][k]),
                "ppid": None,
                "session": None,
                "flags": None,
                "user": None,
                "command_line": None,
                "package": None,
                "application_id": None,
                "exit_status": None,
                "exit_time": None,
                "image": _file_name(path),
                "image_path": path,
                "unique_key": int(cols["create_time"][k]) or None,
                "create_time": int(created[k]) or None,
                "time": int(batch.time[rows[k]]),
                "record": int(batch.record[rows[k]]),
                "event": EVENTS[event_id],
                "version": version,
                "provider": PROVIDER,
            }
            if event_id == START:
                rec["ppid"] = int(cols["ppid"][k])
                session = int(cols["session"][k])
                rec["session"] = None if session == 0xFFFFFFFF else session
                if "flags" in cols:
                    rec["flags"] = int(cols["flags"][k])
                if "package" in cols:
                    rec["package"] = cols["package"][k] or None
                    rec["application_id"] = cols["application_id"][k] or None
            else:
                rec["image_path"] = None
                rec["exit_status"] = int(cols["exit_status"][k].astype(np.int32))
                exit_ns = filetime_ns(cols["exit_time"][k : k + 1])[0]
                rec["exit_time"] = int(exit_ns) or None
            out.append(rec)
    return out


def _file_name(path: str | None) -> str | None:
    """The last component of an NT path (``\\Device\\HarddiskVolume2\\...\\devenv.exe`` -> devenv.exe)."""
    if not path:
        return None
    return path.replace("/", "\\").rsplit("\\", 1)[-1] or path
