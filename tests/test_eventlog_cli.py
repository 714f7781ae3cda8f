"""Event logs on the command line, and their bad input: one-line errors, warnings that count what was lost."""

from __future__ import annotations

import io
import json

import polars as pl
from click.testing import CliRunner

from etwtools.cli import cli
from etwtools.parsers.eventlog import read_eventlog

LOG4SHELL = "otrf/log4shell_cve2021_44228_java_serialized"
SYSMON_JSON = f"{LOG4SHELL}/sysmon_log4shell_cve2021_44228_java_serialized_object_2022-05-13045800.json"
SECURITY_JSON = (
    f"{LOG4SHELL}/securityauditing_log4shell_cve2021_44228_java_serialized_object_2022-05-13045400.json"
)


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_processes_from_sysmon_evtx(corpus):
    r = run("processes", "--etl", corpus / "eventlogs/python-evtx/issue_43.evtx", "-f", "csv")
    assert r.exit_code == 0, r.stderr
    df = pl.read_csv(io.StringIO(r.stdout))
    assert df.height == read_eventlog(corpus / "eventlogs/python-evtx/issue_43.evtx").processes.height
    assert df.filter(pl.col("start").is_not_null()).height == 356 and set(df["source"]) == {"sysmon"}


def test_events_from_security_json(corpus):
    r = run("events", "--etl", corpus / SECURITY_JSON, "-f", "json")
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 14 and {x["event_id"] for x in rows} == {5156, 5158}
    assert "14 network events (security 5156: 5, security 5158: 9)" in r.stderr


def test_no_network_events_names_the_ids(corpus):
    r = run("events", "--etl", corpus / "eventlogs/omerbenamram-evtx/new-user-security.evtx")
    assert r.exit_code == 0
    assert "warning: no network events in new-user-security.evtx" in r.stderr
    assert "4720 (1), 4728 (1), 4732 (2)" in r.stderr


def test_unknown_json_flavour_names_the_fields_looked_for(tmp_path):
    f = tmp_path / "other.json"
    f.write_text('{"ts": "2020-01-01", "msg": "hello"}\n{"ts": "2020-01-02", "msg": "bye"}\n')
    r = run("events", "--etl", f)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {f}, line 1: JSON lines of no known event-log flavour"
    )
    for looked in ("Event.System", "winlog.event_id", "TimeGenerated", "EventID"):
        assert looked in lines[0]
    assert "the records have: msg, ts" in lines[0]


def test_utf16_export_is_refused_with_what_to_do(corpus, tmp_path):
    f = tmp_path / "u16.json"
    f.write_bytes((corpus / SYSMON_JSON).read_text(encoding="utf-8").encode("utf-16"))
    r = run("events", "--etl", f)
    assert r.exit_code == 1 and "UTF-16" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_truncated_json_line_costs_that_line(corpus, tmp_path):
    """A real export with one network record cut short (as a collector killed mid-write leaves it)."""
    lines = (corpus / SYSMON_JSON).read_bytes().splitlines(keepends=True)
    full = read_eventlog(corpus / SYSMON_JSON)
    cut = next(i for i, line in enumerate(lines) if b'"EventID":3,' in line)
    lines[cut] = lines[cut][: len(lines[cut]) // 2] + b"\n"
    f = tmp_path / "cut.json"
    f.write_bytes(b"".join(lines))
    r = run("events", "--etl", f, "-f", "csv")
    assert r.exit_code == 0
    offset = sum(len(x) for x in lines[:cut])
    assert (
        f"skipped 1 truncated JSON line(s) (not ending with '}}'): at {offset:#x} (line {cut + 1})\n"
        in r.stderr
    )
    log = read_eventlog(f)
    assert log.skipped.counts == {"truncated JSON line(s) (not ending with '}')": 1}
    assert log.connections.height == full.connections.height - 1
    # an undecodable line that still ends in "}" is counted apart
    lines[cut] = b'{"EventID":3, "Channel": oops}\n'
    f.write_bytes(b"".join(lines))
    log = read_eventlog(f)
    assert (
        log.skipped.counts == {"undecodable JSON line(s)": 1}
        and log.connections.height == full.connections.height - 1
    )
    # bytes that are not UTF-8 (json.loads raises UnicodeDecodeError, not JSONDecodeError) cost that line too
    lines[cut] = b'{"EventID":3, "Image": "C:\\\xff.exe"}\n'
    f.write_bytes(b"".join(lines))
    r = run("events", "--etl", f, "-f", "csv")
    assert r.exit_code == 0 and f"undecodable JSON line(s): at {offset:#x} (line {cut + 1}: " in r.stderr
    assert "invalid start byte" in r.stderr
    log = read_eventlog(f)
    assert (
        log.skipped.counts == {"undecodable JSON line(s)": 1}
        and log.connections.height == full.connections.height - 1
    )


def test_damaged_evtx_chunk_on_the_command_line(corpus):
    r = run("events", "--etl", corpus / "eventlogs/omerbenamram-evtx/sample_with_a_bad_chunk_magic.evtx")
    assert r.exit_code == 0
    assert r.stderr.count(": skipped ") == 1 and "skipped 2 damaged chunk(s): " in r.stderr
    assert "chunk number 6" in r.stderr and "chunk number 10" in r.stderr
