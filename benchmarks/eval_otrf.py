"""Event-log attribution judged on the OTRF pairs (issue 11, acceptance 1).

For each pair (a capture + the same lab's Sysmon and Security logs), etwtools is given the Sysmon
events alone, then the Security events alone, and its answer is judged by the other sensor: over the
frames whose 5-tuple both sensors log, precision = answers naming the other sensor's process (PID; the
image name where a PID is unknown) / answers, coverage = answers (high or medium) / frames. The
header-PID baseline is judged the same way when the capture carries header PIDs.

Run: python benchmarks/eval_otrf.py [CORPUS]   (default ../shared/corpus)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from otrf_logs import PAIRS, load  # noqa: E402

from etwtools.ownership import KEY, attribute_connections, orient  # noqa: E402
from etwtools.sources import read_frames  # noqa: E402


def _agree(truth_pid: str, truth_process: str) -> pl.Expr:
    """The answer names the judging sensor's process: same PID, or the same image where a PID is unknown."""
    pid_ok = pl.col("pid").is_not_null() & pl.col(truth_pid).is_not_null()
    return (pl.when(pid_ok).then(pl.col("pid") == pl.col(truth_pid))
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
    runs = {s: attribute_connections(frames, conns.filter(pl.col("sensor") == s), procs, dns)
            for s in ("sysmon", "security")}
    rows = []
    for given, judge in (("sysmon", "security"), ("security", "sysmon")):
        a, j = runs[given], runs[judge]
        truth = j.frames.filter(pl.col("method") == f"{judge}-5-tuple").select(
            "frame", pl.col("pid").alias("t_pid"), pl.col("process").alias("t_process"))
        known = _logged(a, frames).join(_logged(j, frames), on="frame")
        judged = a.frames.join(known, on="frame").join(truth, on="frame")
        answered = judged.filter(pl.col("confidence").is_in(["high", "medium"]))
        correct = answered.filter(_agree("t_pid", "t_process"))
        hp = judged.filter(pl.col("header_pid").is_not_null())
        rows.append(dict(capture=capture.name, given=given, host=a.host.host, frames=judged.height,
                         answered=answered.height, correct=correct.height,
                         precision=round(correct.height / answered.height, 4) if answered.height else None,
                         coverage=round(answered.height / judged.height, 4) if judged.height else None,
                         header_pid_frames=hp.height,
                         header_pid_precision=(round(hp.filter(pl.col("header_pid") == pl.col("t_pid")).height
                                                     / hp.height, 4) if hp.height else None),
                         offset=a.describe_offset()))
    return rows


def main(corpus: Path) -> None:
    base = corpus / "otrf"
    table = []
    for name, caps in PAIRS.items():
        t0 = time.perf_counter()
        conns, procs, dns = load(base / name)
        for cap in caps:
            table += evaluate(base / name / cap, conns, procs, dns)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    df = pl.DataFrame(table)
    with pl.Config(tbl_rows=100, tbl_width_chars=200, fmt_str_lengths=60):
        print(df.drop("offset"))
        for r in table:
            print(r["capture"], r["given"], r["offset"])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus")
