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

from ..diagnostics import SkipReport
from ..units import FILETIME_UNIX_EPOCH
from .columnar import decode_records
from .guids import KERNEL_PROCESS
from .kernel import _group_rows
from .layouts import Layout, layout
from .records import EVENT_HEADER32, EVENT_HEADER64, RecordBatch

PROVIDER = "Kernel-Process"
START, STOP = 1, 2

_START = "pid:u32 create_time:u64 ppid:u32 session:u32"
_PACKAGE = "image_checksum:u32 time_date_stamp:u32 package:wstring application_id:wstring"
_STOP_V0 = (
    "create_time:u64 exit_time:u64 exit_status:u32 elevation_type:u32 handles:u32 commit:u64 commit_peak:u64"
)
_STOP_IO = "cpu_cycles:u64 read_ops:u32 write_ops:u32 read_kb:u32 write_kb:u32 hard_faults:u32"
_V3 = (
    "pid:u32 sequence:u64 create_time:u64 ppid:u32 parent_sequence:u64 session:u32 flags:u32"
    " elevation_type:u32 elevated:u32 mandatory_label:sid image:wstring"
)

#: (event id, version) -> payload layout (FILETIMEs as u64: 100 ns ticks since 1601).
LAYOUTS: dict[tuple[int, int], Layout] = {
    key: layout(spec, f"{PROVIDER} {key[0]} v{key[1]}")
    for key, spec in {
        (START, 0): f"{_START} image:wstring",
        (START, 1): f"{_START} flags:u32 image:wstring",
        (START, 2): f"{_START} flags:u32 image:wstring {_PACKAGE}",
        (START, 3): f"{_V3} {_PACKAGE}",
        (STOP, 0): f"pid:u32 {_STOP_V0} image:cstring",
        (STOP, 1): f"pid:u32 {_STOP_V0} {_STOP_IO} image:cstring",
        (STOP, 2): f"pid:u32 sequence:u64 {_STOP_V0} {_STOP_IO} image:cstring",
    }.items()
}
EVENTS = {START: "Start", STOP: "End"}


def decode_kernel_process(batch: RecordBatch, skipped: SkipReport) -> list[dict]:
    """ProcessStart/ProcessStop events of one batch as process-event dicts (the keys of
    ``kernel.parse_process`` plus ``image_path``, ``create_time`` and ``provider``)."""
    eh = (batch.htype == EVENT_HEADER32) | (batch.htype == EVENT_HEADER64)
    sel = np.flatnonzero(eh & batch.provider_mask(KERNEL_PROCESS) & np.isin(batch.event_id, list(EVENTS)))
    out: list[dict] = []
    for (event_id, version), pos in _group_rows([batch.event_id[sel], batch.version[sel]]):
        rows = sel[pos]
        lay = LAYOUTS.get((event_id, version))
        if lay is None:
            skipped.add(f"{PROVIDER} event {event_id} records of unknown version {version}", len(rows))
            continue
        ok, cols = decode_records(batch, rows, lay, exact=False)  # later versions may add fields
        skipped.add(
            f"{PROVIDER} event {event_id} v{version} records shorter than their layout", int((~ok).sum())
        )
        if not ok.any():
            continue
        rows = rows[ok]
        raw_created = cols["create_time"].to_numpy()
        created = filetime_ns(raw_created)
        pid = cols["pid"].to_numpy()
        names = cols["image"].to_list()
        if event_id == STOP:
            exit_codes = cols["exit_status"].to_numpy().astype(np.uint32).view(np.int32)  # signed, as classic
        for k in range(len(rows)):
            path = names[k] or None
            rec = {
                "pid": int(pid[k]),
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
                "unique_key": int(raw_created[k]) or None,
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
                rec["exit_status"] = int(exit_codes[k])
                exit_ns = filetime_ns(cols["exit_time"][k : k + 1].to_numpy())[0]
                rec["exit_time"] = int(exit_ns) or None
            out.append(rec)
    return out


def filetime_ns(values: np.ndarray) -> np.ndarray:
    """FILETIME (100 ns since 1601, UTC) to int64 ns since 1970; 0 stays 0 (no time)."""
    v = values.astype(np.int64)
    return np.where(v > FILETIME_UNIX_EPOCH, (v - FILETIME_UNIX_EPOCH) * 100, 0)


def _file_name(path: str | None) -> str | None:
    """The last component of an NT path (``\\Device\\HarddiskVolume2\\...\\devenv.exe`` -> devenv.exe)."""
    if not path:
        return None
    return path.replace("/", "\\").rsplit("\\", 1)[-1] or path
