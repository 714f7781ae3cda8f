"""PID -> process name and services at a given time.

The trace's own process events come first (they have lifetimes, and PIDs are reused); tasklist
snapshots come second and add services. Where the two disagree about a PID the disagreement is
reported in :attr:`ProcessResolver.notes`, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from .parsers import schema
from .parsers.lifetimes import OPEN_BEGIN, OPEN_END, PROCESS_GRACE_S, lifetime, process_at

_NS = pl.Int64
#: tasklist's default table cuts image names to 25 characters.
_TASKLIST_WIDTH = 25


def _same_image(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return True
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    # tasklist cuts long names; the ETL keeps 15 characters of the image (EPROCESS ImageFileName).
    short = min(len(a), len(b))
    return short >= 15 and a[:short] == b[:short]


def _fmt_ns(ns: int | None) -> str:
    from .clock_offset import format_ns

    return format_ns(ns)


@dataclass
class ProcessResolver:
    """Resolves (pid, time) pairs against the processes table (PROCESSES schema).

    A process's name is kept ``grace_s`` seconds after its End (not past the start of the PID's next
    instance): ``after_end_ns`` says when that was used."""

    processes: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    grace_s: float = PROCESS_GRACE_S

    def __post_init__(self) -> None:
        p = schema.conform(
            self.processes if self.processes is not None else schema.empty(schema.PROCESSES), schema.PROCESSES
        )
        p = p.filter(pl.col("pid").is_not_null())
        is_snap = pl.col("source").fill_null("").str.to_lowercase() == "tasklist"
        self.trace = p.filter(~is_snap).with_columns(*lifetime("start_ns", "end_ns")).sort("start_ns")
        self.snapshots = (
            p.filter(is_snap).with_columns(pl.col("snapshot").cast(_NS).alias("snap_ns")).sort("pid")
        )

    # -- bulk resolution ---------------------------------------------------------------------------
    def resolve(self, queries: pl.DataFrame) -> pl.DataFrame:
        """``queries`` has ``qid``, ``pid`` and ``t`` (trace clock, ns). Returns qid, process, services,
        process_source (``trace``, ``tasklist`` or null), tasklist_image (for disagreements),
        after_end_ns (time since the process's End when its name was kept for the grace period) and
        in_trace (the trace has process events for the PID)."""
        q = queries.select("qid", "pid", pl.col("t").cast(_NS)).filter(pl.col("pid").is_not_null())
        q = q.with_columns(pl.col("t").fill_null(0)).sort("t")
        named = self.trace.filter(pl.col("image").is_not_null())  # instances that carry a name
        if named.height:
            at = process_at(
                q, named, time="t", columns=("image", "services"), grace_s=self.grace_s, after_end=True
            )
            q = q.with_columns(
                at["image"].alias("trace_image"),
                at["services"].alias("trace_services"),
                at["after_end_ns"].alias("after_end_ns"),
                pl.col("pid").is_in(named["pid"].unique().implode()).alias("in_trace"),
            )
        else:
            q = q.with_columns(
                pl.lit(None, pl.Utf8).alias("trace_image"),
                pl.lit(None, pl.Utf8).alias("trace_services"),
                pl.lit(None, pl.Int64).alias("after_end_ns"),
                pl.lit(False).alias("in_trace"),
            )
        snaps = self.snapshots.select(
            "pid",
            pl.col("image").alias("tasklist_image"),
            pl.col("services").alias("tasklist_services"),
            pl.col("snap_ns").fill_null(0).alias("snap_ns"),
        )
        if snaps.height:
            q = q.sort("t").join_asof(
                snaps.sort("snap_ns"),
                left_on="t",
                right_on="snap_ns",
                by="pid",
                strategy="nearest",
                check_sortedness=False,
            )
        else:
            q = q.with_columns(
                pl.lit(None, pl.Utf8).alias("tasklist_image"),
                pl.lit(None, pl.Utf8).alias("tasklist_services"),
            )
        agree = (
            pl.col("trace_image").is_null()
            | pl.col("tasklist_image").is_null()
            | (pl.col("trace_image").str.to_lowercase() == pl.col("tasklist_image").str.to_lowercase())
            | (
                pl.col("trace_image").str.to_lowercase().str.slice(0, 15)
                == pl.col("tasklist_image").str.to_lowercase().str.slice(0, 15)
            )
        )
        return q.select(
            "qid",
            pl.coalesce("trace_image", "tasklist_image").alias("process"),
            pl.coalesce("trace_services", pl.when(agree).then(pl.col("tasklist_services"))).alias("services"),
            pl.when(pl.col("trace_image").is_not_null())
            .then(pl.lit("trace"))
            .when(pl.col("tasklist_image").is_not_null())
            .then(pl.lit("tasklist"))
            .alias("process_source"),
            "tasklist_image",
            pl.when(pl.col("trace_image").is_not_null()).then(pl.col("after_end_ns")).alias("after_end_ns"),
            "in_trace",
        )

    # -- disagreements -----------------------------------------------------------------------------
    def disagreements(self, pids: set[int] | None = None) -> list[str]:
        """One note per PID whose tasklist image differs from the trace's process alive at the snapshot."""
        out: list[str] = []
        if not self.trace.height or not self.snapshots.height:
            return out
        for row in self.snapshots.iter_rows(named=True):
            pid = row["pid"]
            if pids is not None and pid not in pids:
                continue
            rows = self.trace.filter(pl.col("pid") == pid)
            if not rows.height:
                continue
            snap = row["snap_ns"]
            if snap is not None:
                alive = rows.filter((pl.col("start_ns") <= snap) & (pl.col("end_ns") >= snap))
                cand = alive if alive.height else rows
            else:
                cand = rows
            images = [r for r in cand.iter_rows(named=True) if r["image"]]
            if not images or any(_same_image(r["image"], row["image"]) for r in images):
                continue
            desc = "; ".join(
                f"{r['image']} (started {_fmt_ns(r['start_ns']) if r['start_ns'] != OPEN_BEGIN else 'before the trace'}, "
                f"ended {_fmt_ns(r['end_ns']) if r['end_ns'] != OPEN_END else 'after the trace'})"
                for r in images[:3]
            )
            when = f"snapshot {_fmt_ns(snap)}" if snap is not None else "snapshot time unknown"
            out.append(
                f"PID {pid}: tasklist ({when}) says {row['image']}, the trace's process events say {desc}; "
                f"the trace's name is used, tasklist services are not applied"
            )
        return out

    def describe(self, pid: int, t_ns: int | None) -> list[str]:
        """Lines explaining how ``pid`` at ``t_ns`` was resolved (for the evidence chain)."""
        lines: list[str] = []
        rows = self.trace.filter(pl.col("pid") == pid)
        if rows.height:
            for r in rows.iter_rows(named=True):
                start = "before the trace" if r["start_ns"] == OPEN_BEGIN else _fmt_ns(r["start_ns"])
                end = "still alive at the end" if r["end_ns"] == OPEN_END else _fmt_ns(r["end_ns"])
                alive = t_ns is not None and r["start_ns"] <= t_ns <= r["end_ns"]
                extra = f", command line {r['command_line']!r}" if r.get("command_line") else ""
                svc = f", services {r['services']}" if r.get("services") else ""
                lines.append(
                    f"trace process event: PID {pid} = {r['image']} from {start} to {end}{extra}{svc}"
                    f"{'  <- alive at this time' if alive else ''}"
                )
        else:
            lines.append(f"the trace has no process event for PID {pid}")
        snaps = self.snapshots.filter(pl.col("pid") == pid)
        if snaps.height:
            for r in snaps.iter_rows(named=True):
                when = _fmt_ns(r["snap_ns"]) if r["snap_ns"] is not None else "time unknown"
                lines.append(
                    f"tasklist snapshot ({when}): PID {pid} = {r['image']}"
                    f"{', services ' + r['services'] if r.get('services') else ', no services'}"
                )
        else:
            lines.append(f"no tasklist snapshot lists PID {pid}")
        return lines
