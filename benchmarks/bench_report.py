"""The HTML report of 1,000,000 frames attributed against 1,000,000 events (bench_attribute's generated
case): the page's size and the time to build it, against the time of the attribution itself.

    python benchmarks/bench_report.py [--frames N] [--events N] [--out report.html]

The page stays small because it is aggregated: 400 time bins per lane (24 lanes at most), ten talkers
per lane, 5,000 frames listed and 200 of them with their whole chain of evidence (stopped after 20 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_attribute import generate

from etwtools.attribution import attribute
from etwtools.report import write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--out", help="keep the page here (default: a temporary file)")
    a = ap.parse_args()
    ev, fr, _, _ = generate(a.events, a.frames)
    t = time.perf_counter()
    r = attribute(ev, fr)
    took = time.perf_counter() - t
    out = a.out or os.path.join(tempfile.mkdtemp(), "report.html")
    facts = write_report(r, fr, out, inputs=["generated"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"attribute {fr.height:,} frames x {ev.height:,} events: {took:.1f} s")
    print(
        f"report: {facts.bytes / 1e6:.2f} MB, {facts.lanes} lanes, {facts.frames_listed:,} frames listed, "
        f"{facts.frames_explained} explained, built in {facts.seconds:.1f} s "
        f"({facts.seconds / took:.2f}x the attribution); peak RSS {peak:,.0f} MB; {out}"
    )


if __name__ == "__main__":
    main()
