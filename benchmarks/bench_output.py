"""Output writers against Parquet, same data, same run: peak memory of `attribute` and time of `frames` output.

    python benchmarks/bench_output.py [--frames N] [--events N] [--skip-attribute] [--skip-frames]

1. Issue 12, acceptance 4: peak RSS (``/usr/bin/time -v``, whole process) of attributing N frames against N
   events (benchmarks/bench_attribute.py generates them) and writing the result as a table (to stdout, a
   120-column terminal's choice of columns; and --wide), CSV, JSON lines, against writing it as Parquet.
   Target: table within 1.5x of Parquet.
2. Issue 14, item 5: time to write the N-frame table (benchmarks/bench_pcap.py's capture, read once) as CSV,
   JSON lines and a table, against Parquet, each to a file; target: CSV within 2x of Parquet.
Each case runs in a fresh process so that peaks do not mix.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child_attribute(n_frames: int, n_events: int, fmt: str, out: str | None, wide: bool) -> None:
    sys.path.insert(0, str(HERE))
    from bench_attribute import generate

    from etwtools.attribution import attribute
    from etwtools.output import Output

    ev, fr, _, _ = generate(n_events, n_frames)
    result = attribute(ev, fr)
    t = time.perf_counter()
    Output(fmt, out, None, wide).write(result.frames, "attribute")
    print(f"write {time.perf_counter() - t:.2f} s", file=sys.stderr)


def _child_frames(pcap: str, fmt: str, out: str, repeat: int) -> None:
    from etwtools.output import Output
    from etwtools.parsers.captures import read_capture

    df = read_capture(pcap)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        Output(fmt, out).write(df, "frames")
        best = min(best, time.perf_counter() - t)
    print(f"WRITE {best:.4f} {os.path.getsize(out)}", file=sys.stderr)


def _measure(args: list[str], stdout=None, env=None) -> tuple[float, float, str]:
    """(peak RSS MB, wall s, stderr) of a child run under /usr/bin/time -v."""
    p = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, __file__, *args],
        stdout=stdout or subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )
    if p.returncode != 0:
        raise SystemExit(f"child failed: {args}\n{p.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return rss, wall, p.stderr


def bench_attribute(n_frames: int, n_events: int, tmp: Path) -> None:
    print(f"attribute {n_frames:,} frames x {n_events:,} events, then write (peak RSS of the whole process)")
    cases = [
        ("parquet", str(tmp / "a.parquet"), False),
        ("table", None, False),
        ("table", None, True),
        ("csv", str(tmp / "a.csv"), False),
        ("json", str(tmp / "a.json"), False),
    ]
    base = None
    env = {**os.environ, "COLUMNS": "120"}
    for fmt, out, wide in cases:
        args = ["--child", "attribute", "--fmt", fmt, "--frames", str(n_frames), "--events", str(n_events)]
        if out:
            args += ["--out", out]
        if wide:
            args.append("--wide")
        sink = tmp / "stdout.txt"
        with open(sink, "w") as so:
            rss, wall, err = _measure(args, stdout=so, env=env)
        size = os.path.getsize(out) if out else os.path.getsize(sink)
        write = re.search(r"write ([\d.]+) s", err).group(1)
        base = base or rss
        label = f"{fmt}{' --wide' if wide else ''}{' (stdout, COLUMNS=120)' if out is None else ''}"
        print(
            f"  {label:<34} peak RSS {rss:8,.0f} MB  ({rss / base:4.2f}x parquet)  write {write} s  "
            f"wall {wall:6.1f} s  output {size / 1e6:8,.1f} MB"
        )


def bench_frames(n_frames: int, tmp: Path) -> None:
    pcap = Path(tempfile.gettempdir()) / f"etwtools-bench-output-{n_frames}.pcap"
    if not pcap.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "bench_pcap.py"),
                "--frames",
                str(n_frames),
                "--path",
                str(pcap),
                "--skip-dpkt",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    print(
        f"frames: write the {n_frames:,}-frame table of {pcap.name} (best of 3, each format in its own process)"
    )
    base = None
    for fmt, ext in [("parquet", "parquet"), ("csv", "csv"), ("json", "json"), ("table", "txt")]:
        out = tmp / f"frames.{ext}"
        rss, _, err = _measure(["--child", "frames", "--fmt", fmt, "--pcap", str(pcap), "--out", str(out)])
        took, size = re.search(r"WRITE ([\d.]+) (\d+)", err).groups()
        took = float(took)
        base = base or took
        print(
            f"  {fmt:<8} {took:6.2f} s  ({took / base:4.2f}x parquet)  {int(size) / 1e6:8,.1f} MB  "
            f"peak RSS {rss:6,.0f} MB"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--skip-attribute", action="store_true")
    ap.add_argument("--skip-frames", action="store_true")
    ap.add_argument("--child", choices=["attribute", "frames"], help=argparse.SUPPRESS)
    ap.add_argument("--fmt", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--wide", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pcap", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "attribute":
        return _child_attribute(a.frames, a.events, a.fmt, a.out, a.wide)
    if a.child == "frames":
        return _child_frames(a.pcap, a.fmt, a.out, 3)
    with tempfile.TemporaryDirectory(prefix="etwtools-bench-") as tmp:
        if not a.skip_attribute:
            bench_attribute(a.frames, a.events, Path(tmp))
        if not a.skip_frames:
            bench_frames(a.frames, Path(tmp))


if __name__ == "__main__":
    main()
