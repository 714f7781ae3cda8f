"""Output that fits (issue 12) and streaming writers (issue 14, item 5), on the demo data/ and the corpus.

Each complaint of issue 12's "Why" has a test here; the names say which. The SYN-attack trace is BUILT
with the project's ETL writer (no public file has those events; see tests/test_synattack.py).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pty
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from etwtools import output
from etwtools.cli import cli

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def attribute_demo(demo) -> list[str]:
    """``attribute`` on the demo's inputs."""
    return ["attribute", *demo]


ENTRY = [sys.executable, "-c", "from etwtools.cli import main; main()"]


def run(*args: str, columns: int | None = None):
    env = {"COLUMNS": str(columns)} if columns else {}
    return CliRunner().invoke(cli, list(args), env=env)


def _table_lines(stdout: str) -> list[str]:
    """The lines of the first table (up to the first empty line)."""
    lines = stdout.splitlines()
    return lines[: lines.index("")] if "" in lines else lines


# --- complaint: tables 208 to 391 columns wide; internal columns such as unique_key show ----------


@pytest.mark.parametrize("width", [80, 120, 160])
def test_attribute_table_fits_the_terminal_width(width, attribute_demo):
    r = run(*attribute_demo, columns=width)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines if not line.startswith(("clock offset", "note:"))) <= width
    header = lines[0].split()
    assert header[:4] == ["frame", "pid", "process", "confidence"]
    row = next(line for line in lines if line.lstrip().startswith("105540 "))
    assert "2136" in row and "store.exe" in row and "high" in row
    assert "not shown" in r.stderr and "--wide" in r.stderr


def test_processes_table_fits_and_hides_internal_columns(corpus):
    etl = corpus / "perfview" / "net.4.5.2.x64.etl"
    r = run("processes", "--etl", str(etl), columns=120)
    assert r.exit_code == 0, r.stderr
    lines = _table_lines(r.stdout)
    assert max(map(len, lines)) <= 120
    assert "unique_key" not in lines[0] and "defunct" not in lines[0]
    assert lines[0].split()[:2] == ["pid", "image"]
    wide = run("processes", "--etl", str(etl), "--wide", columns=120)
    assert wide.exit_code == 0
    assert "command_line" in wide.stdout.splitlines()[0] and "unique_key" not in wide.stdout.splitlines()[0]
    full = run("processes", "--etl", str(etl), "-f", "csv")
    assert "unique_key" in full.stdout.splitlines()[0]  # data formats keep every column


def test_columns_picks_and_orders_columns_in_every_format(tmp_path, attribute_demo):
    r = run(*attribute_demo, "--columns", "frame,process,pid", columns=200)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["frame", "process", "pid"]
    out = tmp_path / "a.csv"
    r = run(*attribute_demo, "--columns", "frame,pid", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    df = pl.read_csv(out, infer_schema_length=None)
    assert df.columns == ["frame", "pid"] and df.filter(pl.col("frame") == 105540)["pid"][0] == 2136
    bad = run(*attribute_demo, "--columns", "frame,pdi")
    assert bad.exit_code != 0 and "pdi" in bad.stderr and "pid" in bad.stderr


# --- complaint: reason cut at 60 characters --------------------------------------------------------


def test_reason_is_wrapped_not_cut(attribute_demo):
    """Every word of frame 105540's reason appears in the table, in order, on its row and the lines under it."""
    js = run(*attribute_demo, "-f", "json")
    reason = next(json.loads(x) for x in js.stdout.splitlines() if json.loads(x)["frame"] == 105540)["reason"]
    assert len(reason) > 60
    r = run(*attribute_demo, columns=120)
    lines = r.stdout.splitlines()
    i = next(k for k, line in enumerate(lines) if line.lstrip().startswith("105540 "))
    col = lines[0].index("reason")
    text = lines[i][col:]
    for line in lines[i + 1 :]:
        if line[:col].strip():
            break
        text += " " + line[col:]
    assert "…" not in text
    assert " ".join(text.split()) == " ".join(reason.split())


# --- complaint: delta_s in scientific notation -------------------------------------------------------


def test_delta_s_is_rounded_for_people_and_exact_in_data_formats(attribute_demo):
    """With --offset 0.31243 the frame is 10.2 us from its event: 0.000010 in the table, exact in JSON."""
    args = [*attribute_demo, "--offset", "0.31243", "--columns", "frame,delta_s"]
    r = run(*args)
    assert r.exit_code == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.lstrip().startswith("105540 "))
    assert row.split() == ["105540", "0.000010"]
    assert "e-" not in r.stdout
    js = run(*args, "-f", "json")
    hit = next(json.loads(x) for x in js.stdout.splitlines() if json.loads(x)["frame"] == 105540)
    assert hit["delta_s"] == pytest.approx(1.02e-05, abs=1e-9)


def test_format_number_column_is_fixed_point():
    s = pl.DataFrame({"x": [1.02e-05, -2.5, 123456.78912, None, float("nan"), 1e20]})
    got = s.select(output.fixed_point(pl.col("x"), 6)).to_series().to_list()
    assert got[:3] == ["0.000010", "-2.500000", "123456.789120"]
    assert (
        got[3] is None
        and got[4] == "NaN"
        and "e" not in got[5]
        and got[5].startswith("100000000000000000000")
    )


# --- complaint: -o events.csv without -f writes the text table --------------------------------------


@pytest.mark.parametrize(
    "ext,reader",
    [
        ("csv", pl.read_csv),
        ("json", pl.read_ndjson),
        ("jsonl", pl.read_ndjson),
        ("ndjson", pl.read_ndjson),
        ("parquet", pl.read_parquet),
    ],
)
def test_format_from_the_output_extension(tmp_path, ext, reader):
    out = tmp_path / f"events.{ext}"
    r = run("events", "--etl", str(DATA / "kernel.csv"), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    df = reader(out)
    assert df.height == 4 and df["pid"].to_list() == [2136] * 4 and df["remote_port"][0] == 2762


def test_unknown_output_extension_is_an_error(tmp_path):
    out = tmp_path / "events.xlsx"
    r = run("events", "--etl", str(DATA / "kernel.csv"), "-o", str(out))
    assert r.exit_code == 1 and not out.exists()
    assert "events.xlsx" in r.stderr and ".csv" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_explicit_format_wins_over_the_extension(tmp_path):
    out = tmp_path / "events.txt"
    r = run("events", "--etl", str(DATA / "kernel.csv"), "-f", "csv", "-o", str(out))
    assert r.exit_code == 0 and pl.read_csv(out).height == 4


# --- complaint: JSON output is not JSON only; synattack drops two of its three tables --------------


def test_synattack_json_without_intervals_is_json_only(corpus):
    r = run("synattack", "--etl", str(corpus / "tx" / "KernelNetwork.etl"), "-f", "json")
    assert r.exit_code == 0, r.stderr
    for line in r.stdout.splitlines():
        json.loads(line)
    assert "no SYN-attack events" in r.stderr


def test_attribute_json_with_frame_is_json_only(attribute_demo):
    r = run(*attribute_demo, "-f", "json", "--frame", "105540")
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(x["frame"], x["pid"]) for x in rows] == [(105540, 2136)]
    assert "Frame 105540" in r.stderr


@pytest.fixture(scope="module")
def flood_trace(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_synattack import _flood, _trace

    _, path, _ = _trace(
        tmp_path_factory.mktemp("syn"),
        "flood",
        [(1055, 10, (1, 0, 0, 0, 0, 0)), (1063, 40, (1, 0, 0, 0, 0, 0))],
        other=[(1057, 20, (1, 0, 0, 0, 0, 0))],
        end=100,
        packets=_flood,
    )
    return path


@pytest.mark.parametrize(
    "table,col,first",
    [("intervals", "duration_s", 30.0), ("events", "event_id", 1057), ("packets", "phase", "before")],
)
def test_synattack_writes_each_table(flood_trace, table, col, first):
    r = run("synattack", "--etl", str(flood_trace), "-f", "json", "--table", table)
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows and rows[0][col] == first


def test_synattack_writes_one_file_per_table(flood_trace, tmp_path):
    out = tmp_path / "syn"
    r = run("synattack", "--etl", str(flood_trace), "-f", "parquet", "-o", f"{out}/")
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["events.parquet", "intervals.parquet", "packets.parquet"]
    assert pl.read_parquet(out / "packets.parquet")["syns"].to_list() == [5, 300, 10]
    assert pl.read_parquet(out / "intervals.parquet")["duration_s"].to_list() == [30.0]


# --- complaint: --frame 0 or a frame that does not exist exits 0 ----------------------------------


@pytest.mark.parametrize("frame", ["0", "999999999"])
def test_frame_not_in_the_capture_is_an_error(frame, attribute_demo):
    r = run(*attribute_demo, "--frame", frame)
    assert r.exit_code == 1
    assert r.stderr.startswith("error: ") and f"frame {frame}" in r.stderr and "capture.pcap" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --- complaint: Parquet is dumped to a terminal ------------------------------------------------------


def test_parquet_refuses_a_terminal():
    master, slave = pty.openpty()
    try:
        p = subprocess.run(
            [*ENTRY, "events", "--etl", str(DATA / "kernel.csv"), "-f", "parquet"],
            stdout=slave,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        os.close(slave)
        got = b""
        try:
            while chunk := os.read(master, 65536):
                got += chunk
        except OSError:
            pass
    finally:
        os.close(master)
    assert p.returncode == 1 and b"PAR1" not in got
    assert b"terminal" in p.stderr and b"-o" in p.stderr


# --- complaint: .etl.zip / .gz inputs get "not a recognised input" ---------------------------------


def test_gzip_input_is_read(tmp_path):
    gz = tmp_path / "kernel.csv.gz"
    gz.write_bytes(gzip.compress((DATA / "kernel.csv").read_bytes()))
    plain = run("events", "--etl", str(DATA / "kernel.csv"), "-f", "csv")
    got = run("events", "--etl", str(gz), "-f", "csv")
    assert got.exit_code == 0, got.stderr
    assert got.stdout == plain.stdout


def test_etl_zip_is_read(corpus, tmp_path):
    etl = corpus / "tx" / "KernelNetwork.etl"
    z = tmp_path / "KernelNetwork.etl.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.write(etl, "KernelNetwork.etl")
    plain = run("events", "--etl", str(etl), "-f", "csv")
    got = run("events", "--etl", str(z), "-f", "csv")
    assert got.exit_code == 0, got.stderr
    assert got.stdout == plain.stdout and len(got.stdout.splitlines()) > 1000


def test_zip_with_several_members_names_them(corpus, tmp_path):
    z = tmp_path / "pair.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.write(corpus / "pktmon" / "demikernel-PktMon.etl", "PktMon.etl")
        f.write(corpus / "pktmon" / "demikernel-PktMon.pcapng", "PktMon.pcapng")
    r = run("frames", "--pcap", str(z))
    assert r.exit_code != 0
    assert "PktMon.etl" in r.stderr and "PktMon.pcapng" in r.stderr and f"{z}:PktMon.pcapng" in r.stderr
    picked = run("frames", "--pcap", f"{z}:PktMon.pcapng", "-f", "csv")
    assert picked.exit_code == 0, picked.stderr
    assert len(picked.stdout.splitlines()) == 1 + 114
    missing = run("frames", "--pcap", f"{z}:nope.pcap")
    assert missing.exit_code != 0 and "nope.pcap" in missing.stderr and "PktMon.etl" in missing.stderr


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    from etwtools import compressed

    gz = tmp_path / "bomb.pcap.gz"
    with gzip.open(gz, "wb") as f:
        for _ in range(64):
            f.write(bytes(1 << 20))
    with pytest.raises(compressed.EtwToolsError, match=r"bomb\.pcap\.gz.*more than"):
        compressed.extract(gz, tmp_path / "x", budget=16 << 20)
    assert not any((tmp_path / "x").iterdir())


def test_compressed_inputs_are_named_by_the_library(tmp_path):
    from etwtools import read_events
    from etwtools.errors import EtwToolsError

    gz = tmp_path / "kernel.csv.gz"
    gz.write_bytes(gzip.compress((DATA / "kernel.csv").read_bytes()))
    with pytest.raises(EtwToolsError, match=r"gzip-compressed \(holding kernel\.csv\): extract it first"):
        read_events(gz)


# --- streaming writers (issue 14, item 5) ------------------------------------------------------------


class _Counting(io.BytesIO):
    writes = 0

    def write(self, b):  # type: ignore[override]
        self.writes += 1
        return super().write(b)


@pytest.fixture(scope="module")
def demo_frames():
    from etwtools.sources import read_frames

    return read_frames(DATA / "capture.pcap")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_text_writers_stream_batch_by_batch_and_equal_polars(demo_frames, fmt):
    out = _Counting()
    output.write(demo_frames, fmt, out, batch_rows=10_000)
    assert out.writes >= demo_frames.height // 10_000
    whole = output.text_ready(demo_frames)
    expect = whole.write_csv() if fmt == "csv" else whole.write_ndjson()
    assert out.getvalue().decode() == expect


def test_table_writer_streams_and_aligns(demo_frames):
    out = _Counting()
    output.write(demo_frames, "table", out, width=100, batch_rows=10_000)
    lines = out.getvalue().decode().splitlines()
    assert out.writes >= demo_frames.height // 10_000
    assert len(lines) == demo_frames.height + 2 and max(map(len, lines)) <= 100
    assert lines[2].split()[0] == "1" and lines[-1].split()[0] == str(demo_frames["frame"][-1])


def test_broken_pipe_is_quiet():
    """`etwtools frames ... | head -1`: no traceback, no 'Exception ignored', the exit of a SIGPIPE'd tool."""
    p1 = subprocess.Popen(
        [*ENTRY, "frames", "--pcap", str(DATA / "capture.pcap"), "-f", "csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = p1.stdout.readline()
    p1.stdout.close()
    err = p1.stderr.read()
    p1.wait(timeout=120)
    assert first.startswith(b"frame,time")
    assert p1.returncode in (0, 141) and b"Traceback" not in err and b"Exception ignored" not in err
    assert b"error" not in err


# --- --version and shell completion -----------------------------------------------------------------


def test_version():
    from importlib.metadata import version

    r = run("--version")
    assert r.exit_code == 0 and version("etwtools") in r.stdout


def test_bash_completion_script_and_completion_of_commands():
    p = subprocess.run(
        ENTRY, env={**os.environ, "_ETWTOOLS_COMPLETE": "bash_source"}, capture_output=True, timeout=60
    )
    assert p.returncode == 0 and b"complete " in p.stdout and b"_ETWTOOLS_COMPLETE" in p.stdout
    p = subprocess.run(
        ENTRY,
        env={
            **os.environ,
            "_ETWTOOLS_COMPLETE": "bash_complete",
            "COMP_WORDS": "etwtools syn",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        timeout=60,
    )
    assert p.stdout.decode().split() == ["plain,synattack"]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert re.search(r"_ETWTOOLS_COMPLETE=bash_source etwtools", readme)


def test_zipped_event_log_json_is_detected_by_the_library(corpus):
    """OTRF publishes its JSON lines zipped: the library takes the .zip as an event log (streamed by its
    reader); an ETL in a zip is 'extract it first'."""
    from etwtools.sources import detect

    assert (
        detect(corpus / "otrf/purplesharp_ad_playbook_I/host_purplesharp_ad_playbook_I.zip")
        == "eventlog-json"
    )


def test_batches_written_as_the_whole_table():
    """write_batches (attribute -f csv/json: reasons written a batch at a time) gives the bytes write gives
    for the whole table, --columns included; more than one batch, texts that need quoting, nulls."""
    n = output.BATCH_ROWS * 2 + 123
    df = pl.DataFrame(
        {
            "frame": range(1, n + 1),
            "reason": [f'reason "{i}", with a comma' if i % 7 else None for i in range(n)],
            "delta_s": [i / 3 for i in range(n)],
        }
    )
    for fmt in ("csv", "json"):
        for columns in (None, ["reason", "frame"]):
            whole, batched = io.BytesIO(), io.BytesIO()
            output.write(df, fmt, whole, columns=columns)
            output.write_batches(df.iter_slices(output.BATCH_ROWS), fmt, batched, columns=columns)
            assert batched.getvalue() == whole.getvalue(), (fmt, columns)
    with pytest.raises(ValueError):
        output.write_batches([df], "parquet", io.BytesIO())
