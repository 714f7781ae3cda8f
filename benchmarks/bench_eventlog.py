"""Windows event logs: read_eventlog against its peers, measured in the same run.

EVTX: records/s of read_eventlog (the whole path to the three tables) against the evtx library's own
iteration (records_json(), the floor under it) and python-evtx (record.xml() per record), over the corpus
.evtx files (small: per-file set-up weighs), then over a large .evtx BUILT here from the real chunks of
issue_43.evtx repeated (EVTX chunks are self-contained: the file header's chunk count and CRC are rewritten);
python-evtx only on the original, its rate would take minutes there. Then what each library gets out of the
damaged files.

JSON lines: MB/s of read_eventlog on a ~100 MB export built by repeating the real OTRF records
(purplesharp_ad_playbook_I, read from its zip: 2 % network/process events, as real exports are) against a
naive loop that json.loads every line and keeps the wanted ones.

    python benchmarks/bench_eventlog.py [--mb 100] [--repeat 3] [--corpus ../shared/corpus] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

from etwtools.parsers.eventlog import read_eventlog
from etwtools.parsers.eventlog.scan import WANTED_IDS

ROOT = Path(__file__).resolve().parent.parent
EVTX_FILES = [
    "python-evtx/issue_43.evtx",
    "omerbenamram-evtx/security.evtx",
    "omerbenamram-evtx/system.evtx",
    "omerbenamram-evtx/sysmon.evtx",
    "mdecrevoisier/security_4688__FS03__Tchopper.evtx",
]
DAMAGED = [
    "omerbenamram-evtx/sample_with_a_bad_chunk_magic.evtx",
    "omerbenamram-evtx/sample-with-zero-data-size-event.evtx",
]
OTRF_ZIP = "otrf/purplesharp_ad_playbook_I/host_purplesharp_ad_playbook_I.zip"


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def evtx_lib(path: Path) -> tuple[int, int]:
    """Records and errors of the evtx library's JSON iteration (errors caught, iteration goes on)."""
    import evtx

    it = evtx.PyEvtxParser(str(path)).records_json()
    n = errors = 0
    while True:
        try:
            next(it)
        except StopIteration:
            return n, errors
        except RuntimeError:
            errors += 1
            continue
        n += 1


def python_evtx(path: Path) -> tuple[int, int | str]:
    """Records rendered to XML by python-evtx; records that raise are counted; a fatal error ends it."""
    import Evtx.Evtx as PyEvtx

    n = bad = 0
    try:
        with PyEvtx.Evtx(str(path)) as log:
            for r in log.records():
                try:
                    r.xml()
                    n += 1
                except Exception:  # noqa: BLE001 - counting the peer's failures
                    bad += 1
    except Exception as e:  # noqa: BLE001
        return n, f"{bad} bad records, then stopped: {type(e).__name__}"
    return n, bad


def bench_evtx(corpus: Path, repeat: int) -> None:
    print("EVTX (records/s; best of", repeat, "runs)")
    print(
        f"{'file':52} {'records':>8} {'etwtools':>10} {'evtx lib':>10} {'python-evtx':>12} "
        f"{'etw/lib':>8} {'etw/py':>7}"
    )
    tot = {"n": 0, "etw": 0.0, "lib": 0.0, "py": 0.0}
    for name in EVTX_FILES:
        p = corpus / "eventlogs" / name
        n = read_eventlog(p).records
        t_etw = best(lambda p=p: read_eventlog(p), repeat)
        t_lib = best(lambda p=p: evtx_lib(p), repeat)
        t_py = best(lambda p=p: python_evtx(p), 1)
        tot["n"] += n
        tot["etw"] += t_etw
        tot["lib"] += t_lib
        tot["py"] += t_py
        print(
            f"{name:52} {n:8,} {n / t_etw:10,.0f} {n / t_lib:10,.0f} {n / t_py:12,.0f} "
            f"{t_lib / t_etw:8.2f} {t_py / t_etw:7.1f}"
        )
    n = tot["n"]
    print(
        f"{'all':52} {n:8,} {n / tot['etw']:10,.0f} {n / tot['lib']:10,.0f} {n / tot['py']:12,.0f} "
        f"{tot['lib'] / tot['etw']:8.2f} {tot['py'] / tot['etw']:7.1f}"
    )
    print("\nDamaged files: records read (errors)")
    for name in DAMAGED:
        p = corpus / "eventlogs" / name
        log = read_eventlog(p)
        lib_n, lib_err = evtx_lib(p)
        py_n, py_err = python_evtx(p)
        print(
            f"  {name}: etwtools {log.records} ({log.skipped}); evtx lib {lib_n} ({lib_err} errors, "
            f"caught one by one); python-evtx {py_n} ({py_err})"
        )


def build_evtx(path: Path, corpus: Path, times: int) -> None:
    """A large .evtx: the file header of issue_43.evtx, its valid chunks repeated ``times`` times."""
    import struct
    import zlib

    src = (corpus / "eventlogs/python-evtx/issue_43.evtx").read_bytes()
    header = bytearray(src[:4096])
    chunks = [src[i : i + 65536] for i in range(4096, len(src), 65536) if src[i : i + 8] == b"ElfChnk\x00"]
    count = len(chunks) * times
    struct.pack_into("<QQ", header, 8, 0, count - 1)  # first and last chunk numbers
    struct.pack_into("<H", header, 42, count)  # chunk count
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    with open(path, "wb") as f:
        f.write(header)
        f.writelines(b"".join(chunks) for _ in range(times))


def bench_big_evtx(path: Path, corpus: Path, repeat: int) -> None:
    log = read_eventlog(path)
    n = log.records
    t_etw = best(lambda: read_eventlog(path), repeat)
    t_lib = best(lambda: evtx_lib(path), repeat)
    orig = corpus / "eventlogs/python-evtx/issue_43.evtx"
    t_py = best(lambda: python_evtx(orig), 1)
    n_py = read_eventlog(orig).records
    print(
        f"\nLarge EVTX ({os.path.getsize(path) / 1e6:,.0f} MB, {n:,} records, {log.connections.height:,} "
        f"connections, {log.processes.height:,} process rows; best of {repeat})"
    )
    print(f"  etwtools read_eventlog: {n / t_etw:10,.0f} records/s ({t_etw:.2f} s)")
    print(
        f"  evtx records_json():    {n / t_lib:10,.0f} records/s ({t_lib:.2f} s): etwtools at "
        f"{t_lib / t_etw:.2f}x the library's raw iteration"
    )
    print(
        f"  python-evtx (original): {n_py / t_py:10,.0f} records/s: etwtools {t_py / n_py * n / t_etw:,.0f}x faster"
    )


def build_json(path: Path, corpus: Path, mb: int) -> tuple[int, float]:
    """~mb MB of real OTRF records, repeated; returns (lines, share of wanted events)."""
    with zipfile.ZipFile(corpus / OTRF_ZIP) as z, z.open(z.namelist()[0]) as f:
        lines = [line if line.endswith(b"\n") else line + b"\n" for line in f if line.strip()]
    size = sum(map(len, lines))
    n = 0
    with open(path, "wb") as out:
        written = 0
        while written < mb * 1_000_000:
            out.writelines(lines)
            written += size
            n += len(lines)
    wanted = sum(json.loads(line)["EventID"] in WANTED_IDS for line in lines) / len(lines)
    return n, wanted


def naive(path: Path) -> int:
    keep = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                if d.get("EventID") in WANTED_IDS:
                    keep += 1
    return keep


def bench_json(path: Path, repeat: int) -> None:
    mb = os.path.getsize(path) / 1e6
    t_etw = best(lambda: read_eventlog(path), repeat)
    t_naive = best(lambda: naive(path), 1)
    log = read_eventlog(path)
    print(
        f"\nJSON lines ({mb:,.0f} MB, {log.records:,} records, {log.connections.height:,} connections, "
        f"{log.processes.height:,} process rows; best of {repeat})"
    )
    print(f"  etwtools read_eventlog: {mb / t_etw:8.1f} MB/s ({t_etw:.2f} s)")
    print(f"  naive json.loads loop:  {mb / t_naive:8.1f} MB/s ({t_naive:.2f} s, decoding only)")
    print(f"  ratio: {t_naive / t_etw:.1f}x the naive loop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--corpus",
        type=Path,
        default=Path(os.environ.get("ETWTOOLS_CORPUS", ROOT.parent / "shared" / "corpus")),
    )
    ap.add_argument("--keep", type=Path, help="keep the generated JSON-lines file here")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("etwtools").setLevel(logging.ERROR)  # the damaged files warn, as they should
    bench_evtx(a.corpus, a.repeat)
    with tempfile.TemporaryDirectory() as d:
        big = Path(d) / "big.evtx"
        build_evtx(big, a.corpus, 40)
        bench_big_evtx(big, a.corpus, a.repeat)
        big.unlink()
        path = a.keep or Path(d) / "export.json"
        n, wanted = build_json(path, a.corpus, a.mb)
        print(f"\n(built {path}: {n:,} lines, {wanted:.1%} of them events the tables use)")
        bench_json(path, a.repeat)


if __name__ == "__main__":
    main()
