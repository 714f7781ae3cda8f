"""Worst cases per reader: seconds and peak RSS per MB of input on the hand-made hostile shapes
(tests/hostile_shapes.py), each command run as the CLI runs it (tests/hostile_runner.py: one process per
command, under the suite's 2 GB address-space cap).

    .venv/bin/python benchmarks/bench_hostile.py [--out DIR]

Prints one row per (shape, command): input MB, seconds, s/MB, peak RSS MB, RSS above the runner's
baseline per input MB. The first rows are the peers measured in the same run: intact pcap, pcapng and
ETL inputs of about the same size read by the same commands. Last, pktmon ETLs of 16 and 63 MB through
`attribute --annotate`: the growth of RSS between the two, per MB, says whether memory follows the file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import hostile_shapes as hs
from hostile_runner import Runner


def peers(d: Path) -> list[hs.Shape]:
    """Intact inputs of the same kinds and sizes, read by the same commands: the yardstick."""
    pcap, pcapng = d / "intact.pcap", d / "intact.pcapng"
    hs.write_pcap(pcap, hs.syn_packets(20_000), nanosecond=True)
    hs.write_pcapng(pcapng, [hs.Interface(1, tsresol=9)], hs.syn_packets(20_000))
    w = hs.EtlWriter(buffer_size=1 << 20)
    for i in range(20_000):
        w.tcpip_counters(1057, (1, 0, 0, 0, 0, 0), time=hs.timedelta(milliseconds=i))
    etl = w.write(d / "intact.etl")
    return [
        hs.Shape("peer: intact pcap", [pcap], [["frames", "--pcap", str(pcap), "-f", "csv", "-o", "{out}"]]),
        hs.Shape(
            "peer: intact pcapng", [pcapng], [["frames", "--pcap", str(pcapng), "-f", "csv", "-o", "{out}"]]
        ),
        hs.Shape(
            "peer: intact ETL", [etl], [["events", "--etl", str(etl)], ["synattack", "--etl", str(etl)]]
        ),
    ]


def pktmon_volume(d: Path, packets: int) -> hs.Shape:
    """A pktmon ETL of ``packets`` distinct 1,442-byte UDP packets (1 ms apart), read by frames and by
    attribute --annotate (which must stream the packets, not hold them): run at two sizes, the RSS
    growth per MB of input says whether memory follows the file."""
    import struct
    from datetime import timedelta

    w = hs.EtlWriter(buffer_size=1 << 20)
    one = hs.EtlWriter()
    one.pktmon_packet(hs.udp_frame(hs.SERVER, hs.CLIENT, 50000, 53, bytes(1400)), time=timedelta(seconds=1))
    rec = bytearray(one._open[0][0])
    base = w.raw(timedelta(seconds=1))
    for i in range(packets):
        struct.pack_into("<Q", rec, 0x10, base + i * 10_000)  # EVENT_HEADER TimeStamp
        struct.pack_into("<Q", rec, 0x50, i + 1)  # PktGroupId: a packet of its own
        w.raw_record(bytes(rec), raw_time=base + i * 10_000)
    path = w.write(d / f"pktmon_{packets}.etl")
    return hs.Shape(
        f"pktmon volume ({packets:,} packets)",
        [path],
        [
            ["frames", "--etl", str(path), "-f", "csv", "-o", "{out}.csv"],
            ["attribute", "--etl", str(path), "--annotate", "{out}.pcapng", "-f", "csv", "-o", "{out}.csv"],
        ],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="folder for the built files (default: a temporary folder)")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_hostile_"))
    work.mkdir(parents=True, exist_ok=True)
    runner = Runner(str(work))
    base = runner.run(["--help"])[4] / 1024  # the runner's own RSS in a child, MB
    print(f"runner baseline RSS {base:.0f} MB (subtracted in rss/MB)")
    print(f"{'shape':32} {'command':26} {'MB':>7} {'s':>7} {'s/MB':>7} {'RSS MB':>7} {'dRSS/MB':>8} exit")
    shapes = [
        *hs.ETL_SHAPES,
        *hs.CAPTURE_SHAPES,
        *getattr(hs, "TEXT_SHAPES", []),
        *getattr(hs, "OTHER_SHAPES", []),
    ]
    (work / "peers").mkdir(exist_ok=True)
    todo = peers(work / "peers")
    for build in shapes:
        (work / build.__name__).mkdir(exist_ok=True)
        todo.append(build(work / build.__name__))
    (work / "pktmon").mkdir(exist_ok=True)
    todo += [pktmon_volume(work / "pktmon", n) for n in (10_000, 40_000)]
    for shape in todo:
        d = Path(shape.files[0]).parent
        mb = sum(os.path.getsize(p) for p in shape.files) / 1e6
        for cmd in shape.commands:
            argv = [a.replace("{out}", str(d / "out")) for a in cmd]
            status, _, _, secs, rss = runner.run(argv, timeout=600)
            rss_mb = rss / 1024
            label = " ".join(a for a in cmd[:2])
            print(
                f"{shape.name:32} {label:26} {mb:7.2f} {secs:7.2f} {secs / mb:7.2f} {rss_mb:7.0f} "
                f"{max(rss_mb - base, 0) / mb:8.1f} {status}"
            )
    runner.close()


if __name__ == "__main__":
    main()
