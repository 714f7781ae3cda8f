"""The command line: help texts, output formats, one-line errors, and the demo answer on data/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from etwtools.cli import cli

DATA = Path(__file__).resolve().parent.parent / "data"
COMMANDS = ["events", "processes", "frames", "attribute", "synattack"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_teaches_with_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "--format" in result.output or command == "synattack"


def test_demo_answer_frame_105540_is_store_exe(demo):
    """README's main command on data/: the case's answer, found with an estimated clock offset."""
    result = run("attribute", *demo, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_frame = {r["frame"]: r for r in rows}
    hit = by_frame[105540]
    assert (hit["pid"], hit["process"], hit["confidence"]) == (2136, "store.exe", "high")
    assert hit["src_port"] == 36003 and hit["dst_addr"] == "172.23.98.97"
    # every other shown frame: no 5-tuple match, so never high or medium confidence
    others = [r for n, r in by_frame.items() if n != 105540 and r["protocol"] == "UDP"]
    assert len(others) == 14
    assert all(r["confidence"] in ("low", "none") for r in others)
    assert "offset" in result.stderr and "+0.312" in result.stderr


def test_demo_table_ends_with_summary_and_explains_a_frame(demo):
    args = ["attribute", *demo]
    table = run(*args)
    assert table.exit_code == 0, table.stderr
    assert "Summary by process" in table.stdout and "store.exe" in table.stdout
    assert table.stdout.rstrip().splitlines()[-1].startswith("clock offset capture - trace: +0.312440 s")
    explained = run(*args, "--frame", "105540")
    assert explained.exit_code == 0
    assert "2136" in explained.stdout and "store.exe" in explained.stdout


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_output_formats_read_back(tmp_path, fmt):
    out = tmp_path / f"events.{fmt}"
    result = run("events", "--etl", str(DATA / "kernel.csv"), "--format", fmt, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    df = {"csv": pl.read_csv, "json": pl.read_ndjson, "parquet": pl.read_parquet}[fmt](out)
    assert df.height == 4
    assert df["pid"].to_list() == [2136] * 4
    assert df["local_addr"][0] == "10.1.1.1"


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "empty.etl": b"",
        "random.etl": os.urandom(70000),
        "text.etl": b"this is not a trace\n" * 100,
        "random.pcap": os.urandom(5000),
    }
    out = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


@pytest.mark.parametrize(
    "name,command,option",
    [
        ("empty.etl", "events", "--etl"),
        ("random.etl", "events", "--etl"),
        ("text.etl", "events", "--etl"),
        ("random.pcap", "frames", "--pcap"),
        ("empty.etl", "frames", "--etl"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, name, command, option):
    path = _bad_inputs(tmp_path)[name]
    result = run(command, option, str(path))
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and name in lines[0]


def test_processes_needs_an_input():
    result = run("processes")
    assert result.exit_code == 2 and "--tasklist" in result.stderr


def test_conform_keeps_the_row_count_of_an_empty_frame():
    from etwtools.parsers import schema

    assert schema.conform(pl.DataFrame(), schema.EVENTS).shape == (0, len(schema.EVENTS))
    assert schema.conform(pl.DataFrame({"pid": [1, 2]}), schema.EVENTS)["pid"].to_list() == [1, 2]


def test_attribute_without_a_capture_says_what_is_missing(corpus):
    """--etl alone needs an ETL that carries packets; a kernel-only ETL or a CSV gets a clear message."""
    kernel_only = run("attribute", "--etl", str(corpus / "perfview" / "net.4.5.2.x64.etl"))
    assert kernel_only.exit_code == 1 and "holds no packets" in kernel_only.stderr
    assert "Traceback" not in kernel_only.stderr
    csv_only = run("attribute", "--etl", str(DATA / "kernel.csv"))
    assert csv_only.exit_code == 2 and "--pcap FILE is needed" in csv_only.stderr


def test_readme_library_example_runs_as_written(capsys):
    """The Python block of README.md, executed verbatim from the project root, gives the demo answer."""
    readme = (DATA.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    code = next(b for b in blocks if "etwtools.attribute(" in b)
    cwd = os.getcwd()
    os.chdir(DATA.parent)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert "+0.312440 s" in printed and "Answer: PID 2136 store.exe, confidence high" in printed


def test_readme_skip_report_example_runs_as_written(capsys):
    """README's skip-report block, executed verbatim from the project root: one report per file read."""
    readme = (DATA.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    code = next(b for b in blocks if "skip_reports()" in b)
    cwd = os.getcwd()
    os.chdir(DATA.parent)
    try:
        exec(compile("import etwtools\n" + code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out.splitlines() == [
        "data/kernel.csv 0 {}",
        "data/capture.pcap 0 {}",
        "nothing skipped",
    ]
