"""Benchmark of pktmon packets in ETL files (a script, not a test).

Measures, in one run:
- ``etwtools frames --etl`` (the whole command, a fresh process) on the corpus pktmon file, in the
  default packet view and with ``--appearances``;
- ``read_etl_frames`` (packets and appearances) on a pktmon ETL built with the project's writer:
  --packets packets of 4 appearances each (the path of a reply on a Hyper-V guest), 1,500-byte frames;
- the peer on the same built file: dissect.etl walking its records with the PktGroupId/PktNumber
  dedupe the tests use (when installed; capped at --peer-seconds).

Usage: python benchmarks/bench_pktmon.py [--corpus DIR] [--packets 50000] [--peer-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = Path(os.environ.get("ETWTOOLS_CORPUS", ROOT.parent / "shared" / "corpus"))


def build(path: Path, packets: int) -> int:
    from etwtools.parsers.etl.build import EtlWriter

    w = EtlWriter(start=datetime(2024, 6, 10, 20, 0, tzinfo=UTC))
    body = struct.pack("!HHIIBBHHH", 443, 50000, 1, 0, 0x50, 0x10, 65535, 0, 0) + bytes(1460 - 20)
    ip = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(body),
            1,
            0,
            64,
            6,
            0,
            bytes([10, 0, 0, 1]),
            bytes([10, 0, 0, 2]),
        )
        + body
    )
    frame = bytes(12) + b"\x08\x00" + ip
    for i in range(packets):
        t = timedelta(microseconds=100 * i)
        for k, comp in enumerate((61, 59, 50, 48)):
            w.pktmon_packet(
                frame,
                time=t + timedelta(microseconds=k),
                component=comp,
                group_id=1_000_000 + i,
                number=1,
                appearance=k + 1,
                direction="out",
                processor=i % 4,
            )
    w.write(path)
    return packets * 4


def peer(path: Path, limit: float) -> tuple[int, int, float, bool]:
    from dissect.etl.etl import ETL

    pktmon = uuid.UUID("4d4f80d9-c8bd-4d73-bb5b-19c90402c5ac")
    seen: set = set()
    n = 0
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        for rec in ETL(f):
            h = rec.header
            g = getattr(h, "provider_id", None)
            if g is None:
                continue
            g = uuid.UUID(str(g))
            if pktmon not in (g, uuid.UUID(bytes_le=g.bytes)) or h.descriptor.id not in (160, 170):
                continue
            seen.add(struct.unpack_from("<QH", bytes(h.payload), 0))
            n += 1
            if time.perf_counter() - t0 > limit:
                return n, len(seen), time.perf_counter() - t0, True
    return n, len(seen), time.perf_counter() - t0, False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--packets", type=int, default=50_000)
    ap.add_argument("--peer-seconds", type=float, default=60)
    a = ap.parse_args()
    exe = [sys.executable, "-m", "etwtools.cli"]
    real = a.corpus / "pktmon" / "demikernel-PktMon.etl"
    if real.exists():
        for extra in ([], ["--appearances"]):
            t0 = time.perf_counter()
            out = subprocess.run(
                [*exe, "frames", "--etl", str(real), "-f", "csv", *extra],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            dt = time.perf_counter() - t0
            print(
                f"corpus frames --etl {' '.join(extra) or '(packets)'}: {out.count(chr(10)) - 1} rows, "
                f"{dt:.2f} s (whole command)"
            )
    from etwtools.parsers.etl.captured_frames import read_etl_frames

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "pktmon-built.etl"
        t0 = time.perf_counter()
        n = build(path, a.packets)
        print(
            f"built {n:,} appearances ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s"
        )
        times = {}
        read_etl_frames(path)  # warm-up (imports, page cache)
        for view in (False, True):
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                df = read_etl_frames(path, appearances=view)
                best = min(best, time.perf_counter() - t0)
            times[view] = best
            print(
                f"read_etl_frames appearances={view}: {df.height:,} rows in {times[view]:.2f} s (best of 3) "
                f"({n / times[view]:,.0f} appearances/s)"
            )
        try:
            got, uniq, dt, capped = peer(path, a.peer_seconds)
            rate = got / dt
            print(
                f"peer dissect.etl walk + dedupe: {got:,} appearances ({uniq:,} packets) in {dt:.2f} s "
                f"({rate:,.0f} appearances/s{', capped' if capped else ''}); etwtools packets view "
                f"{(n / times[False]) / rate:.1f}x faster"
            )
        except ImportError:
            print("dissect.etl not installed (pip install '.[bench]'): no peer measured")


if __name__ == "__main__":
    main()
