"""The OTRF pairs' captures and event logs, for the attribution tests and benchmarks/eval_otrf.py.

Each pair's logs (JSON lines; host files over 40 MB are kept zipped in the corpus and extracted to a
scratch folder first) are read with etwtools' event-log reader.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import polars as pl

from etwtools.ownership import KEY, attribute_connections, orient
from etwtools.parsers.eventlog import read_eventlog
from etwtools.sources import read_frames

PAIRS = {
    "purplesharp_ad_playbook_I": ("purplesharp_ad_playbook_I_2020-10-22042947.cap",),
    "covenant_dcom_iertutil_dll_hijack": (
        "covenant_dcom_iertutil_dll_hijack_WORKSTATION5_2020-10-09183000.cap",
        "covenant_dcom_iertutil_dll_hijack_WORKSTATION6_2020-10-09183000.cap",
    ),
    "empire_powerview_ldap_ntsecuritydescriptor": (
        "empire_powerview_ldap_ntsecuritydescriptor_2020-09-21130944.cap",
    ),
    "schtask_create": ("schtask_create_2020-12-1907003032.pcapng",),
    "log4shell_cve2021_44228_java_serialized": (
        "pcap_log4shell_cve2021_44228_java_serialized_2022-05-13045800.pcapng",
    ),
}


def log_files(folder: Path, scratch: Path | None = None) -> list[Path]:
    """The pair's JSON logs, zipped ones extracted into ``scratch`` (default: a temporary folder)."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix == ".json":
            out.append(p)
        elif p.suffix == ".zip":
            dest = Path(scratch or tempfile.mkdtemp(prefix="otrf-")) / folder.name
            with zipfile.ZipFile(p) as z:
                for name in z.namelist():
                    if not (dest / name).exists():
                        z.extract(name, dest)
                    out.append(dest / name)
    return out


def load(folder: Path, scratch: Path | None = None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(connections, processes, dns) of one OTRF pair's logs."""
    logs = [read_eventlog(f) for f in log_files(folder, scratch)]
    return tuple(
        pl.concat([getattr(g, k) for g in logs], how="vertical_relaxed")
        for k in ("connections", "processes", "dns")
    )


def _agree(truth_pid: str, truth_process: str) -> pl.Expr:
    """The answer names the judging sensor's process: same PID, or the same image where a PID is unknown."""
    pid_ok = pl.col("pid").is_not_null() & pl.col(truth_pid).is_not_null()
    return (
        pl.when(pid_ok)
        .then(pl.col("pid") == pl.col(truth_pid))
        .otherwise(pl.col("process").str.to_lowercase() == pl.col(truth_process).str.to_lowercase())
    ).fill_null(False)


def _logged(r, frames: pl.DataFrame) -> pl.DataFrame:
    """Frame numbers whose 5-tuple the run's connection events name (at any time)."""
    ev = r._events.filter(pl.col("has_tuple")).select(KEY).unique()
    of = orient(frames, r.local_addrs)
    return of.join(ev, on=KEY, how="semi").select((pl.col("fid") + 1).alias("frame")).unique()


def evaluate(capture: Path, conns: pl.DataFrame, procs: pl.DataFrame, dns: pl.DataFrame) -> list[dict]:
    """One row per sensor given: frames judged, answers, correct answers, precision, coverage and the
    header-PID baseline."""
    frames = read_frames(capture)
    runs = {
        s: attribute_connections(frames, conns.filter(pl.col("sensor") == s), procs, dns)
        for s in ("sysmon", "security")
    }
    rows = []
    for given, judge in (("sysmon", "security"), ("security", "sysmon")):
        a, j = runs[given], runs[judge]
        truth = j.frames.filter(pl.col("method") == f"{judge}-5-tuple").select(
            "frame", pl.col("pid").alias("t_pid"), pl.col("process").alias("t_process")
        )
        known = _logged(a, frames).join(_logged(j, frames), on="frame")
        judged = a.frames.join(known, on="frame").join(truth, on="frame")
        answered = judged.filter(pl.col("confidence").is_in(["high", "medium"]))
        correct = answered.filter(_agree("t_pid", "t_process"))
        hp = judged.filter(pl.col("header_pid").is_not_null())
        by_name = answered.filter(pl.col("pid").is_null() | pl.col("t_pid").is_null()).height
        rows.append(
            {
                "capture": capture.name,
                "given": given,
                "host": a.host.host,
                "frames": judged.height,
                "judged_by_image": by_name,
                "answered": answered.height,
                "correct": correct.height,
                "precision": round(correct.height / answered.height, 4) if answered.height else None,
                "coverage": round(answered.height / judged.height, 4) if judged.height else None,
                "header_pid_frames": hp.height,
                "header_pid_precision": (
                    round(hp.filter(pl.col("header_pid") == pl.col("t_pid")).height / hp.height, 4)
                    if hp.height
                    else None
                ),
                "offset": a.describe_offset(),
            }
        )
    return rows
