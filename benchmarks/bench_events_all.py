"""Benchmark of ``etwtools events --all -f parquet -o DIR/`` against dissect.etl (a script, not a test).

Builds ETL files of the asked sizes from the real buffers of perfview/net.4.5.2.x64.etl (as
bench_etl.py does: plain buffers, and the original compressed ones), then measures, each in a fresh
process:
- ``all``: the whole command line ``etwtools events --all -f parquet -o DIR/`` (start-up, reading,
  decoding, writing one Parquet file per event type), events/s, CPU time (all threads) and peak RSS;
- ``dissect``: dissect.etl iterating the same file and decoding every event's fields (``record.event``
  then ``event_values()``; its installed version raises AttributeError for many structures, in which
  case the parsed structure's values are read instead, and KeyError for some manifests: counted), capped at --peer-seconds;
- ``events``: ``etwtools events`` (network events), and dissect.etl's bare record iteration.

Usage: python benchmarks/bench_events_all.py [--sizes 50,500,2048] [--peer-seconds 30] [--keep]
       [--data DIR] [--all-only] [--repeat N]
``--data DIR`` keeps the built files there as ``net452-<size>MB-<plain|compressed>.etl`` and reuses the
ones already there (several benchmarks share them); ``--all-only`` leaves out the ``events`` pair.
``--repeat N`` (default 3) runs ``all`` N times, one after the other, and gives the median and the best
run (a shared machine's other load only ever adds time; the peer runs once, between the first and the
second); the ratio uses the median; the peak RSS is the largest of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_etl import DEFAULT_CORPUS, SOURCE, build_big, compile_package

ETWTOOLS = Path(sys.executable).with_name("etwtools")


def child(kind: str, path: str, seconds: float) -> dict:
    """One peer measurement in this (fresh) process."""
    from dissect.etl.etl import ETL

    n = fields = errors = 0
    partial = False
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        for rec in ETL(fh):
            n += 1
            if kind == "dissect-values":
                try:
                    ev = rec.event
                    try:
                        values = ev.event_values()
                    except AttributeError:
                        struct = getattr(ev, "_struct", None)
                        values = dict(getattr(struct, "__values__", None) or {}) if struct is not None else {}
                    fields += len(values)
                except Exception:  # noqa: BLE001  (its manifests raise KeyError etc. on some events)
                    errors += 1
            if n % 1024 == 0 and time.perf_counter() - t0 > seconds:
                partial = True
                break
    dt = time.perf_counter() - t0
    return {
        "kind": kind,
        "n": n,
        "fields": fields,
        "errors": errors,
        "seconds": dt,
        "partial": partial,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def peer(kind: str, path: Path, seconds: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(seconds)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"kind": kind, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout)


def cli(kind: str, path: Path, records: int, workdir: Path) -> dict:
    """The whole command line, timed from outside; peak RSS of the child from wait4."""
    if kind == "all":
        target = workdir / "out"
        shutil.rmtree(target, ignore_errors=True)
        args = [
            str(ETWTOOLS),
            "-q",
            "events",
            "--all",
            "--etl",
            str(path),
            "-f",
            "parquet",
            "-o",
            f"{target}/",
        ]
    else:
        args = [
            str(ETWTOOLS),
            "-q",
            "events",
            "--etl",
            str(path),
            "-f",
            "parquet",
            "-o",
            str(workdir / "ev.parquet"),
        ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    if status != 0:
        return {"kind": kind, "error": err.splitlines()[-1] if err else f"exit status {status}"}
    return {
        "kind": kind,
        "n": records,
        "seconds": dt,
        "partial": False,
        "peak_rss_mb": usage.ru_maxrss // 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def _median(runs: list[dict]) -> dict:
    """The run of median time (of those without an error), with the largest peak RSS of all of them."""
    ok = sorted((r for r in runs if "error" not in r), key=lambda r: r["seconds"])
    if not ok:
        return runs[0]
    mid = dict(ok[(len(ok) - 1) // 2])
    mid["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    return mid


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['kind']:15s} error: {r['error']}"
    rate = r["n"] / r["seconds"] if r["seconds"] else float("nan")
    part = " (stopped early)" if r.get("partial") else ""
    if "cpu" in r:
        part += f"  CPU {r['cpu']:.2f} s ({r['n'] / r['cpu']:,.0f} rec per CPU-second)"
    if r.get("errors"):
        part += f" ({r['errors']:,d} events raised)"
    return (
        f"{r['kind']:15s} {r['n']:>11,d} records {r['seconds']:8.2f} s {rate:>12,.0f} rec/s"
        f"  peak RSS {r['peak_rss_mb']:5d} MB{part}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--sizes", default="50,500,2048", help="file sizes in MB (comma-separated)")
    ap.add_argument("--peer-seconds", type=float, default=30.0)
    ap.add_argument("--plain-only", action="store_true", help="only plain-buffer files (no compressed ones)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--data", type=Path, help="folder of the built files, kept and reused")
    ap.add_argument("--all-only", action="store_true", help="only events --all and its peer")
    ap.add_argument("--repeat", type=int, default=3, help="runs of events --all (median and best)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], float(args.child[2]))))
        return
    from etwtools.parsers.etl.container import count_records

    raw = (args.corpus / SOURCE).read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="events-all-bench-", dir="/tmp"))
    print(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}, source {SOURCE}, {compile_package()}")
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            for plain in (True, False) if not args.plain_only else (True,):
                kind = "plain" if plain else "compressed"
                if args.data:
                    p = args.data / f"net452-{size}MB-{kind}.etl"
                    if not p.exists():
                        part = p.with_name(f".{p.name}.{os.getpid()}.part")
                        build_big(raw, part, size, plain)
                        part.rename(p)
                else:
                    p = workdir / f"big-{size}-{kind}.etl"
                    build_big(raw, p, size, plain)
                real = p.stat().st_size
                records = count_records(p)
                print(f"\n{p.name} ({real / 2**20:,.0f} MB, {records:,d} records), load average {_load()}")
                runs = [cli("all", p, records, workdir)]
                results = [peer("dissect-values", p, args.peer_seconds)]
                runs += [cli("all", p, records, workdir) for _ in range(args.repeat - 1)]
                if len(runs) > 1:
                    for r in runs:
                        print("  " + fmt(r))
                results.insert(0, _median(runs))
                if not args.all_only:
                    results += [
                        cli("events", p, records, workdir),
                        peer("dissect-iterate", p, args.peer_seconds),
                    ]
                for r in results[1:] if len(runs) > 1 else results:  # the runs of all: printed above
                    print("  " + fmt(r))
                rate = {r["kind"]: r["n"] / r["seconds"] for r in results if "error" not in r}
                ok = [r for r in runs if "error" not in r]
                if len(ok) > 1:
                    best = min(ok, key=lambda r: r["seconds"])
                    print(
                        f"  events --all over {len(ok)} runs: median {rate['all']:,.0f} rec/s, best "
                        f"{best['n'] / best['seconds']:,.0f} rec/s, largest peak RSS {results[0]['peak_rss_mb']} MB"
                    )
                if "all" in rate and "dissect-values" in rate:
                    print(
                        f"  events --all: {rate['all'] / rate['dissect-values']:,.0f}x dissect.etl decoding"
                    )
                if "events" in rate and "dissect-iterate" in rate:
                    print(f"  events: {rate['events'] / rate['dissect-iterate']:,.1f}x dissect.etl iterating")
                print(f"  load average after: {_load()}")
                if not args.data:
                    p.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
