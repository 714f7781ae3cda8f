"""Throughput of read_tracerpt on a generated 1,000,000-line tracerpt CSV.

Builds a Vista+ ``tracerpt -of CSV`` (default) or a 2003 ``dumpfile.csv`` file of kernel TcpIp/UdpIp
lines (IPv4, a few IPv6), some Process rundown lines and some Thread lines (skipped), in the
layouts documented in parsers/tracerpt.py, then times read_tracerpt and prints lines/s.

    python benchmarks/bench_tracerpt.py [--lines 1000000] [--layout vista|2003] [--repeat 3] [--keep FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from etwtools.parsers.tracerpt import read_tracerpt

VISTA_HEADER = (
    "Event Name, Type, Event ID, Version, Channel, Level, Opcode, Task, Keyword, PID, TID, "
    "Processor Number, Instance ID, Parent Instance ID, Activity ID, Related Activity ID, "
    "Clock-Time, Kernel(ms), User(ms), User Data"
)
OLD_HEADER = "Event Name, Type, TID, Clock-Time, Kernel(ms), User(ms), User Data"


def build(path: Path, lines: int, layout: str, seed: int = 1) -> None:
    rnd = random.Random(seed)
    clock = 130_000_000_000_000_000
    pids = [rnd.randrange(100, 20000, 4) for _ in range(50)]
    out = [VISTA_HEADER if layout == "vista" else OLD_HEADER]

    def fixed(name: str, typ: str, opcode: int, version: int, t: int) -> str:
        if layout == "vista":
            return (
                f"{name:>12}, {typ:>12}, 0, {version}, 0, 0, {opcode}, 0, 0x0000000000000000, "
                f"0xFFFFFFFF, 0x{rnd.randrange(1 << 16):08X}, 0, , , "
                "{00000000-0000-0000-0000-000000000000}, , "
                f"{t}, 0, 0"
            )
        return f"{name:>12}, {typ:>12}, 0x{rnd.randrange(1 << 16):08X}, {t}, 0, 0"

    tail = "" if layout == "vista" else ", 0, 0"
    for pid in pids:
        ud = (
            (f'0xFFFFFA8000000000, {pid}, 4, 0, 0, 0x0, 0, S-1-5-18, "app{pid}.exe", "C:\\app{pid}.exe -x"')
            if layout == "vista"
            else f'0x00000000, 0x{pid:08X}, 0x00000004, 0, 0, S-1-5-18, "app{pid}.exe"'
        )
        out.append(f"{fixed('Process', 'DCStart', 3, 3 if layout == 'vista' else 1, clock)}, {ud}{tail}")
    while len(out) < lines:
        clock += rnd.randrange(1, 2000)
        r = rnd.random()
        pid = rnd.choice(pids)
        d = ".".join(
            f"{x:03d}"
            for x in (rnd.randrange(1, 224), rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        )
        s = f"010.001.{rnd.randrange(256):03d}.001"
        dport, sport, size = rnd.randrange(1, 65536), rnd.randrange(1024, 65536), rnd.randrange(1, 1460)
        if r < 0.05:
            out.append(f"{fixed('Thread', 'CSwitch', 36, 2, clock)}, 0x{pid:08X}, 0x0, 0, 0{tail}")
        elif r < 0.40:
            out.append(
                f"{fixed('TcpIp', 'SendIPV4' if layout == 'vista' else 'Send', 10, 2, clock)}, "
                f"{pid}, {size}, {d}, {s}, {dport}, {sport}, {clock}, {clock + 5}, "
                f"{rnd.randrange(1 << 31)}, 0x{rnd.randrange(1 << 48):016X}{tail}"
            )
        elif r < 0.75:
            out.append(
                f"{fixed('TcpIp', 'RecvIPV4' if layout == 'vista' else 'Recv', 11, 2, clock)}, "
                f"{pid}, {size}, {d}, {s}, {dport}, {sport}, {rnd.randrange(1 << 31)}, "
                f"0x{rnd.randrange(1 << 48):016X}{tail}"
            )
        elif r < 0.98:
            out.append(
                f"{fixed('UdpIp', 'SendIPV4' if layout == 'vista' else 'Send', 10, 1, clock)}, "
                f"{pid}, {size}, {d}, {s}, {dport}, {sport}{tail}"
            )
        else:
            out.append(
                f"{fixed('TcpIp', 'SendIPV6' if layout == 'vista' else 'Send', 26, 2, clock)}, "
                f"{pid}, {size}, fe80::{rnd.randrange(1 << 16):x}, fe80::1, {dport}, {sport}, "
                f"{clock}, {clock + 5}, 1, 0x1{tail}"
            )
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--layout", choices=["vista", "2003"], default="vista")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.csv"
        t0 = time.perf_counter()
        build(path, args.lines, args.layout)
        t1 = time.perf_counter()
        size = os.path.getsize(path)
        print(f"built {args.lines:,} lines ({size / 1e6:.1f} MB, {args.layout} layout) in {t1 - t0:.1f} s")
        best = cpu = None
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            trace = read_tracerpt(path)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if best is None or dt < best:
                best, cpu = dt, dc
        print(
            f"read_tracerpt: {trace.events.height:,} events, {trace.processes.height} processes, "
            f"skipped {trace.skipped}"
        )
        print(
            f"best of {args.repeat}: {best:.2f} s wall = {args.lines / best:,.0f} lines/s "
            f"({size / best / 1e6:.0f} MB/s); CPU {cpu:.2f} s on {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
