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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from otrf_logs import PAIRS, evaluate, load


def main(corpus: Path) -> None:
    import tempfile

    base = corpus / "otrf"
    scratch = Path(tempfile.mkdtemp(prefix="otrf-"))
    table = []
    for name, caps in PAIRS.items():
        t0 = time.perf_counter()
        conns, procs, dns = load(base / name, scratch)
        for cap in caps:
            table += evaluate(base / name / cap, conns, procs, dns)
        print(f"{name}: {time.perf_counter() - t0:.1f} s (reading the logs, then both runs)", file=sys.stderr)
    print(
        "| capture | given | host | frames both sensors know | answered | right | judged by image | precision "
        "| coverage | header-PID baseline |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in table:
        hp = (
            f"{r['header_pid_precision']:.2f} over {r['header_pid_frames']:,}"
            if r["header_pid_frames"]
            else "no header PIDs in the capture"
        )
        print(
            f"| {r['capture']} | {r['given']} | {r['host']} | {r['frames']:,} | {r['answered']:,} | "
            f"{r['correct']:,} | {r['judged_by_image']:,} | {r['precision']:.3f} | {r['coverage']:.3f} | {hp} |"
        )
    print()
    for r in table:
        print(f"{r['capture']}, {r['given']} given: {r['offset']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus")
