"""One skip report per file: every reader of every registered input kind (etwtools.sources.KINDS) fills a
:class:`SkipReport` and publishes it once, the CLI prints it as one line, and results carry the same
report. Driven by the registry: a kind registered without a damaged example here fails
:func:`test_every_registered_kind_has_a_damaged_example`, so a new reader cannot forget its report.

The damaged inputs are real files damaged here: corpus captures, traces and event logs (cut short,
one length overwritten; sample_with_a_bad_chunk_magic.evtx is damaged as published) and the demo's
tracerpt CSV and tasklist output (data/) with one malformed line added.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import pytest
from click.testing import CliRunner

from etwtools import sources
from etwtools.cli import cli
from etwtools.parsers.captures import iter_capture_packets
from etwtools.parsers.diagnostics import SkipReport, collect
from etwtools.parsers.netmon import write_netmon

DATA = Path(__file__).resolve().parent.parent / "data"
PKTMON_ETL = "pktmon/demikernel-PktMon.etl"
PKTMON_PCAPNG = "pktmon/demikernel-PktMon.pcapng"
OTRF_PCAP = "otrf/covenant_dcom_iertutil_dll_hijack/covenant_dcom_iertutil_dll_hijack_WORKSTATION6_2020-10-09183000.cap"
BAD_EVTX = "eventlogs/omerbenamram-evtx/sample_with_a_bad_chunk_magic.evtx"
SYSMON_JSON = (
    "otrf/log4shell_cve2021_44228_java_serialized/"
    "sysmon_log4shell_cve2021_44228_java_serialized_object_2022-05-13045800.json"
)


def _pcap(corpus: Path, tmp: Path) -> tuple[Path, str]:
    raw = bytearray((DATA / "capture.pcap").read_bytes())
    second = 24 + 16 + struct.unpack_from("<I", raw, 24 + 8)[0]
    struct.pack_into("<I", raw, second + 8, 0x7FFFFFFF)  # the second record's caplen
    return _write(tmp / "damaged.pcap", raw), "damaged record(s)"


def _pcapng(corpus: Path, tmp: Path) -> tuple[Path, str]:
    raw = bytearray((corpus / PKTMON_PCAPNG).read_bytes())
    pos, packets = 0, 0
    while packets < 3:  # the third enhanced packet block: its trailing length no longer matches
        btype, blen = struct.unpack_from("<II", raw, pos)
        packets += btype == 6
        pos += blen
    struct.pack_into("<I", raw, pos - 4, 1234)
    return _write(tmp / "damaged.pcapng", raw), "damaged block(s)"


def _netmon(corpus: Path, tmp: Path) -> tuple[Path, str]:
    """No NetMon capture is public: the first 50 packets of a real pcap (an OTRF .cap that is a pcap),
    written by the project's NetMon writer, then damaged."""
    _, packets = iter_capture_packets(corpus / OTRF_PCAP)
    write_netmon(tmp / "built.cap", list(islice(packets, 50)))
    raw = bytearray((tmp / "built.cap").read_bytes())
    table = struct.unpack_from("<I", raw, 24)[0]
    struct.pack_into("<I", raw, table + 4, len(raw) + 100)  # frame 2's record lies outside the file
    return _write(tmp / "damaged.cap", raw), "damaged frame record(s)"


def _etl(corpus: Path, tmp: Path) -> tuple[Path, str]:
    raw = (corpus / PKTMON_ETL).read_bytes()
    return _write(tmp / "damaged.etl", raw[: len(raw) - 1000]), "compressed buffer(s) of uncountable records"


def _evtx(corpus: Path, tmp: Path) -> tuple[Path, str]:
    return corpus / BAD_EVTX, "damaged chunk(s)"


def _eventlog_json(corpus: Path, tmp: Path) -> tuple[Path, str]:
    lines = (corpus / SYSMON_JSON).read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if b'"EventID":3,' in line)
    lines[cut] = lines[cut][: len(lines[cut]) // 2] + b"\n"
    return _write(tmp / "damaged.json", b"".join(lines)), "truncated JSON line(s) (not ending with '}')"


def _tracerpt(corpus: Path, tmp: Path) -> tuple[Path, str]:
    lines = (DATA / "kernel.csv").read_bytes().splitlines(keepends=True)
    bad = lines[1].replace(b"172.023.098.097", b"172.023.098.zzz")
    return _write(tmp / "damaged.csv", b"".join(lines[:3] + [bad] + lines[3:])), (
        "malformed line(s) (address that is not IPv4/IPv6)"
    )


def _tasklist(corpus: Path, tmp: Path) -> tuple[Path, str]:
    lines = (DATA / "tasklist.txt").read_bytes().splitlines(keepends=True)
    garbled = b"store.exe               twenty-one Console                    0     45,792 K\r\n"
    return _write(tmp / "damaged.txt", b"".join(lines[:4] + [garbled] + lines[4:])), (
        "line(s) (table row that fits neither the columns nor the tokens of its layout)"
    )


def _write(path: Path, data: bytes | bytearray) -> Path:
    path.write_bytes(bytes(data))
    return path


#: kind name -> (corpus, tmp_path) -> (a damaged file of that kind, the reason its report must name)
DAMAGED: dict[str, Callable[[Path, Path], tuple[Path, str]]] = {
    "pcap": _pcap,
    "pcapng": _pcapng,
    "netmon": _netmon,
    "etl": _etl,
    "evtx": _evtx,
    "eventlog-json": _eventlog_json,
    "tracerpt": _tracerpt,
    "tasklist": _tasklist,
}


def _readers(kind: sources.Kind) -> dict[str, Callable[[Path], object]]:
    """Every way the registry reads a file of ``kind``: name -> call (iterators consumed)."""
    out: dict[str, Callable[[Path], object]] = {}
    if kind.trace is not None:
        out["trace"] = kind.trace
        out["trace with frames"] = lambda p: kind.trace(p, with_frames=True)
    if kind.frames is not None:
        out["frames"] = kind.frames
    if kind.packets is not None:
        out["packets"] = lambda p: [*kind.packets(p)[1]]
    if kind.eventlog is not None:
        out["eventlog"] = kind.eventlog
    if kind.tasklist:
        out["tasklist"] = lambda p: sources.read_processes([p])
    return out


def test_every_registered_kind_has_a_damaged_example():
    assert sorted(DAMAGED) == sorted(sources.KINDS)
    assert all(_readers(k) for k in sources.KINDS.values())


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_every_reader_returns_one_report_per_file(corpus, tmp_path, name):
    path, reason = DAMAGED[name](corpus, tmp_path)
    assert sources.detect(path) == name
    for how, read in _readers(sources.KINDS[name]).items():
        with collect() as reports:
            result = read(path)
        mine = [r for r in reports if r.file == str(path)]
        assert len(mine) == 1 and mine[0].published, (name, how, reports)
        (report,) = mine
        assert isinstance(report, SkipReport) and report.total >= 1, (name, how, report)
        assert report.reasons[reason].count >= 1, (name, how, report.line())
        assert report.line().startswith(f"{path}: skipped "), report.line()
        if hasattr(result, "skipped"):  # a result object carries the very report it published
            assert result.skipped is report, (name, how)


@pytest.mark.parametrize("name", ["pcap", "tracerpt", "tasklist"])
def test_undamaged_files_publish_an_empty_report(corpus, tmp_path, name):
    """The same readers on the intact file: one report, empty, and no warning."""
    path = {"pcap": DATA / "capture.pcap", "tracerpt": DATA / "kernel.csv", "tasklist": DATA / "tasklist.txt"}
    for how, read in _readers(sources.KINDS[name]).items():
        with collect() as reports:
            read(path[name])
        assert [(r.file, bool(r)) for r in reports] == [(str(path[name]), False)], how


def test_the_command_line_prints_one_line_per_file(corpus, tmp_path):
    """``attribute`` reads a trace, a capture and a tasklist, each damaged: one warning line each, naming
    the file, the place and the count; -q keeps them (they are warnings)."""
    trace, _ = _tracerpt(corpus, tmp_path)
    capture, _ = _pcap(corpus, tmp_path)
    tasklist, _ = _tasklist(corpus, tmp_path)
    args = ["attribute", "--etl", trace, "--pcap", capture, "--tasklist", tasklist, "-f", "csv"]
    for quiet in ([], ["-q"]):
        r = CliRunner().invoke(cli, [*quiet, *map(str, args)])
        assert r.exit_code == 0, r.stderr
        warnings = [line for line in r.stderr.splitlines() if ": skipped " in line]
        assert sorted(warnings) == sorted(
            [
                f"warning: {trace}: skipped 1 malformed line(s) (address that is not IPv4/IPv6): lines 4",
                f"warning: {capture}: skipped 1 damaged record(s): " + _pcap_place(capture),
                f"warning: {tasklist}: skipped 1 line(s) (table row that fits neither the columns nor the tokens of its layout): lines 5",
            ]
        ), r.stderr


def _pcap_place(path: Path) -> str:
    with collect() as reports:
        sources.read_frames(path)
    (place,) = reports[0].reasons["damaged record(s)"].places
    return (
        f"{reports[0].reasons['damaged record(s)'].bytes:,} byte(s) at {place.offset:#x} (caplen 2147483647)"
    )


def test_the_report_is_a_warning_record_carrying_the_report(tmp_path, caplog):
    """Library users without :func:`collect` get each report through the ``etwtools`` logger, typed."""
    path, _ = _pcap(Path(), tmp_path)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        sources.read_frames(path)
    (record,) = [r for r in caplog.records if hasattr(r, "skip_report")]
    assert record.getMessage() == record.skip_report.line() and record.skip_report.counts == {
        "damaged record(s)": 1
    }


def test_rendering_counts_places_and_kinds():
    r = SkipReport("x.bin")
    for i in range(7):
        r.add("damaged record(s)", offset=16 * i, size=10, detail="caplen 9" if i == 0 else "")
    r.add_lines("malformed line(s) (bad PID)", [3, 8], 12)
    r.missing("of the 9 buffer(s) its logfile header counts (the file is cut)", 2)
    r.lost("event(s) lost (logfile header)", 3)
    r.lost("buffer(s) flagged BUFFER_LOST", 0)  # nothing lost: not listed
    assert r.total == 19 and r.counts["event(s) lost (logfile header)"] == 3
    assert r.line() == (
        "x.bin: skipped 7 damaged record(s): 70 byte(s) at 0x0 (caplen 9), 0x10, 0x20, 0x30, 0x40 and 2 more; "
        "12 malformed line(s) (bad PID): lines 3, 8 and 10 more; "
        "missing 2 of the 9 buffer(s) its logfile header counts (the file is cut); "
        "the logger reports 3 event(s) lost (logfile header)"
    )
    merged = SkipReport("x.bin")
    merged.merge(r)
    assert merged == r and merged.line() == r.line()


@pytest.mark.parametrize("how", ["iter_batches", "iter_events", "scan_events"])
def test_every_event_reader_of_etl_reports_once(corpus, tmp_path, how):
    """``events --all``'s readers (batch tables, regrouped tables, the lazy long table) count the
    container's and the decoders' skips into one report of the file, published after the last record."""
    from etwtools.parsers.etl import columnar, scan

    path, reason = _etl(corpus, tmp_path)
    with collect() as reports:
        if how == "scan_events":
            scan.scan_events(path).collect()
        else:
            for _ in getattr(columnar, how)(path):
                pass
    (report,) = [r for r in reports if r.file == str(path)]
    assert report.published and report.reasons[reason].count == 1
