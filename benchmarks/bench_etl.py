"""Benchmark of the ETL container (a script, not a test).

Measures, in one run:
- records/s of ``EtlFile.batches()`` (and of ``etwtools.parsers.etl.events.read_etl_events`` when it exists)
  on perfview/net.4.5.2.x64.etl and on two files of >= 500 MB built in /tmp by repeating that file's
  real buffers: one with plain (decompressed) buffers, one with its original compressed buffers;
- dissect.etl's record iteration on the same files (when installed; capped at --peer-seconds per file);
- Xpress decompression MB/s of output, C accelerator and pure-Python fallback;
- peak RSS of each measurement (a fresh child process per file), to show memory does not grow with
  file size;
- ``cli``: the whole command line ``etwtools -q events --etl FILE -f parquet -o OUT`` (start-up, imports,
  reading, writing), timed from outside, peak RSS from wait4 (as ``/usr/bin/time -v`` reports it).

Usage: python benchmarks/bench_etl.py [--corpus DIR] [--sizes 500] [--data-dir DIR] [--keep] [--peer-seconds 20]

``--data-dir DIR``: the built files are DIR/net452-<size>MB-plain.etl and -compressed.etl, reused when
there (and kept); without it they are built in a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = Path(os.environ.get("ETWTOOLS_CORPUS", ROOT.parent / "shared" / "corpus"))
SOURCE = "perfview/net.4.5.2.x64.etl"


def compile_package() -> str:
    """Write the bytecode of etwtools' modules (as ``pip install`` does for a package it installs): an
    editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module from source in
    every measured process (about 0.2 s). What was done, for the report."""
    import compileall

    import etwtools
    import etwtools.parsers

    dirs = {Path(etwtools.__file__).parent, Path(etwtools.parsers.__file__).parent}
    ok = all(compileall.compile_dir(d, quiet=1) for d in sorted(dirs))
    return "etwtools bytecode written ahead" if ok else "etwtools bytecode: some modules did not compile"


# ---------------------------------------------------------------- big files from real buffers


def split_buffers(raw: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every buffer of a file."""
    out, off = [], 0
    while off + 0x48 <= len(raw):
        size = struct.unpack_from("<I", raw, off)[0]
        out.append((off, size))
        off += size
    return out


def build_big(raw: bytes, path: Path, size_mb: int, plain: bool) -> int:
    """Write ``path``: raw's header buffer, then raw's other buffers repeated until ``size_mb``.

    ``plain``: each compressed buffer is decompressed into a plain buffer of the file's buffer size.
    """
    from etwtools.parsers.etl.compression import decompress

    bufs = split_buffers(raw)
    head_off, head_size = bufs[0]
    body = []
    for off, size in bufs[1:]:
        b = raw[off : off + size]
        filled, flag = struct.unpack_from("<IH", b, 0x30)
        if plain and flag & 0x40:
            data = decompress(b[0x48:], filled - 0x48)
            hdr = bytearray(b[:0x48])
            struct.pack_into("<I", hdr, 0, 0x10000)
            struct.pack_into("<H", hdr, 0x34, flag & ~0x40)
            b = (bytes(hdr) + data).ljust(0x10000, b"\xff")
        body.append(b)
    one = sum(len(b) for b in body)
    copies = max(1, -(-(size_mb << 20) // one))
    header = bytearray(raw[head_off : head_off + head_size])
    # logfile header payload at 0x68: BuffersWritten @0x24, LogFileMode @0x20
    struct.pack_into("<I", header, 0x68 + 0x24, 1 + copies * len(body))
    if plain:
        mode = struct.unpack_from("<I", header, 0x68 + 0x20)[0]
        struct.pack_into("<I", header, 0x68 + 0x20, mode & ~0x04000000)
    with open(path, "wb") as fh:
        fh.write(header)
        for _ in range(copies):
            for b in body:
                fh.write(b)
    return path.stat().st_size


# ---------------------------------------------------------------- child measurements


def child(kind: str, path: str, seconds: float) -> dict:
    """One measurement in this (fresh) process; imports happen before the clock starts."""
    from etwtools.parsers.etl.container import count_records, open_etl

    if kind == "events":
        from etwtools.parsers.etl import events
    elif kind == "dissect":
        from dissect.etl.etl import ETL
    n = 0
    rows = None
    partial = False
    t0 = time.perf_counter()
    if kind == "batches":
        with open_etl(path) as f:
            for b in f.batches():
                n += len(b)
    elif kind == "events":
        rows = len(events.read_etl_events(path))
        dt = time.perf_counter() - t0
        n = count_records(path)  # records/s: the file's records over read_etl_events' time
        return {
            "kind": kind,
            "n": n,
            "rows": rows,
            "seconds": dt,
            "partial": False,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        }
    elif kind == "dissect":
        with open(path, "rb") as fh:
            for _ in ETL(fh):
                n += 1
                if n % 4096 == 0 and time.perf_counter() - t0 > seconds:
                    partial = True
                    break
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return {"kind": kind, "n": n, "seconds": dt, "partial": partial, "peak_rss_mb": rss}


def cli(path: Path, records: int, out: Path) -> dict:
    """The whole ``etwtools events`` command line, timed from outside; peak RSS of the child from wait4."""
    etwtools = Path(sys.executable).with_name("etwtools")
    args = [str(etwtools), "-q", "events", "--etl", str(path), "-f", "parquet", "-o", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    out.unlink(missing_ok=True)
    if status != 0:
        return {"kind": "cli", "error": err.splitlines()[-1] if err else f"exit status {status}"}
    return {
        "kind": "cli",
        "n": records,
        "seconds": dt,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "partial": False,
        "peak_rss_mb": usage.ru_maxrss // 1024,
    }


def measure(kind: str, path: Path, seconds: float = 0.0) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(seconds)],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {"kind": kind, "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout)


def decompression(raw: bytes, py_buffers: int) -> dict:
    from etwtools.parsers.etl import compression

    items = []
    for off, size in split_buffers(raw)[1:]:
        filled, flag = struct.unpack_from("<IH", raw, off + 0x30)
        if flag & 0x40:
            items.append((raw[off + 0x48 : off + size], filled - 0x48))
    res = {}
    if compression.HAVE_C:
        t = time.perf_counter()
        out = sum(len(compression.decompress_c(s, n)) for s, n in items)
        res["c_mb_s"] = out / 1e6 / (time.perf_counter() - t)
    sub = items[:py_buffers]
    t = time.perf_counter()
    out = sum(len(compression.decompress_py(s, n)) for s, n in sub)
    res["python_mb_s"] = out / 1e6 / (time.perf_counter() - t)
    res["buffers"] = len(items)
    return res


def fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['kind']:8s} error: {r['error']}"
    rate = r["n"] / r["seconds"] if r["seconds"] else float("nan")
    part = " (stopped early)" if r.get("partial") else ""
    rows = f" ({r['rows']:,d} event rows)" if r.get("rows") is not None else ""
    if r.get("cpu_seconds") is not None:
        rows += f" (CPU {r['cpu_seconds']:.2f} s)"
    return (
        f"{r['kind']:8s} {r['n']:>11,d} records {r['seconds']:8.2f} s {rate:>12,.0f} rec/s"
        f"  peak RSS {r['peak_rss_mb']:5d} MB{part}{rows}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--sizes", default="500", help="sizes of the built files in MB (comma-separated)")
    ap.add_argument("--data-dir", type=Path, help="where the built files are kept (reused when there)")
    ap.add_argument("--peer-seconds", type=float, default=20.0)
    ap.add_argument("--keep", action="store_true", help="keep the big files in /tmp/etl-bench")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], float(args.child[2]))))
        return

    src = args.corpus / SOURCE
    raw = src.read_bytes()
    try:
        import etwtools.parsers.etl.events  # noqa: F401

        have_events = hasattr(sys.modules["etwtools.parsers.etl.events"], "read_etl_events")
    except ImportError:
        have_events = False
    try:
        import dissect.etl  # noqa: F401

        have_dissect = True
    except ImportError:
        have_dissect = False
    from etwtools.parsers.etl import compression

    print(
        f"python {sys.version.split()[0]}, C accelerator: {'yes' if compression.HAVE_C else 'no'}, "
        f"cpus {os.cpu_count()}, {compile_package()}"
    )
    d = decompression(raw, py_buffers=40)
    print(
        f"decompression ({d['buffers']} buffers of {SOURCE}): "
        + (f"C {d['c_mb_s']:,.0f} MB/s, " if "c_mb_s" in d else "")
        + f"pure Python {d['python_mb_s']:,.1f} MB/s of output"
    )

    workdir = args.data_dir or Path(tempfile.mkdtemp(prefix="etl-bench-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    files = [(SOURCE, src)]
    built = []
    for size_mb in (int(x) for x in args.sizes.split(",")):
        for plain in (True, False):
            p = workdir / f"net452-{size_mb}MB-{'plain' if plain else 'compressed'}.etl"
            if not p.exists():
                part = p.with_name(p.name + f".part{os.getpid()}")
                build_big(raw, part, size_mb, plain)
                part.rename(p)
                built.append(p)
            size = p.stat().st_size
            files.append(
                (f"{p.name} ({size / 2**20:,.0f} MB, {'plain' if plain else 'compressed'} buffers)", p)
            )
    try:
        for label, path in files:
            print(f"\n{label}")
            first = measure("batches", path)
            print("  " + fmt(first))
            if have_events:
                print("  " + fmt(measure("events", path)))
                whole = cli(path, first.get("n", 0), workdir / f"events-{os.getpid()}.parquet")
                print("  " + fmt(whole))
            if have_dissect:
                peer = measure("dissect", path, args.peer_seconds)
                print("  " + fmt(peer))
                if have_events and "error" not in whole and "error" not in peer:
                    ratio = (whole["n"] / whole["seconds"]) / (peer["n"] / peer["seconds"])
                    print(f"  events (whole process): {ratio:,.1f}x dissect.etl's bare iteration")
    finally:
        if not args.keep and args.data_dir is None:
            for p in built:
                p.unlink(missing_ok=True)
            workdir.rmdir()


if __name__ == "__main__":
    main()
