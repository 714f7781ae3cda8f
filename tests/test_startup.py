"""Start-up: ``--help`` imports only what help needs (heavy libraries load with the command that uses them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("polars", "numpy", "pyarrow", "etl", "construct", "etwtools.parsers")
#: The parsers' leaf (errors, diagnostics, units) is stdlib only: the application's error tree rests on it.
LEAF = {
    "etwtools.parsers",
    "etwtools.parsers.errors",
    "etwtools.parsers.diagnostics",
    "etwtools.parsers.units",
}

PROBE = """
import json, sys
from etwtools.cli import cli
try:
    cli(ARGS, prog_name="etwtools")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["events", "--help"], ["attribute", "--help"]])
def test_help_imports_no_heavy_module(args):
    """`etwtools --help` and `etwtools events --help` load neither polars, numpy nor etl-parser."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.replace("ARGS", repr(args))], capture_output=True, text=True, check=True
    )
    assert "Usage:" in out.stdout
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    heavy = [m for m in loaded if (m.split(".")[0] in HEAVY or m.startswith(HEAVY)) and m not in LEAF]
    assert heavy == []
    assert "click" in loaded  # the probe really ran the command line


def test_library_entry_points_load_on_first_use():
    """``import etwtools`` is light; its entry points import their modules when first touched."""
    code = (
        "import sys, etwtools; light = 'polars' not in sys.modules; f = etwtools.read_events; "
        "print(light, 'polars' in sys.modules, f.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "etwtools.sources"]


def test_iter_events_is_a_library_entry_point(corpus):
    """``etwtools.iter_events``: typed tables of the selected events (Kernel-Network TCP sends over IPv6)."""
    import etwtools

    tables = list(
        etwtools.iter_events(
            corpus / "tx" / "KernelNetwork.etl",
            providers=["Kernel-Network", "Microsoft-Windows-Kernel-Network"],
            ids=[26],
        )
    )
    assert {t.name for t in tables} == {"Microsoft-Windows-Kernel-Network.id26.v0"}
    assert sum(t.frame.height for t in tables) == 26  # the corpus README's count of id 26
    assert tables[0].frame["ip_version"].unique().to_list() == [6]


POOL_PROBE = """
import os, sys
import etwtools.cli as cli_module

def run(**kwargs):
    import pyarrow as pa
    print(pa.default_memory_pool().backend_name)

cli_module.cli = run
cli_module.main()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the command line asks for jemalloc on Linux only")
def test_command_line_allocates_arrow_memory_with_jemalloc():
    """The command line's Arrow allocations (Parquet writing) use the jemalloc pool, unless the user names
    another in ARROW_DEFAULT_MEMORY_POOL; a library user's process keeps Arrow's own default."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}

    def backend(code: str, **extra: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**env, **extra}
        )
        return out.stdout.strip()

    assert backend(POOL_PROBE) == "jemalloc"
    assert backend(POOL_PROBE, ARROW_DEFAULT_MEMORY_POOL="system") == "system"
    assert (
        backend("import etwtools, pyarrow as pa; print(pa.default_memory_pool().backend_name)") != "jemalloc"
    )


def test_events_all_to_parquet_does_not_load_pyarrow_compute(corpus, tmp_path):
    """``events --all -f parquet -o DIR/`` hands its Arrow columns to polars through the Arrow C data
    interface: polars' pyarrow path would import pyarrow.compute (about 30 ms and 10 MB) for conversions
    these columns never need. The probe really decoded text and byte columns."""
    args = ["-q", "events", "--all", "--etl", str(corpus / "perfview" / "net.4.5.2.x64.etl")]
    args += ["-f", "parquet", "-o", f"{tmp_path}/"]
    out = subprocess.run(
        [sys.executable, "-c", PROBE.replace("ARGS", repr(args))], capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    assert "pyarrow.parquet" in loaded and "polars" in loaded
    assert "pyarrow.compute" not in loaded
    names = {p.name for p in tmp_path.glob("*.parquet")}
    assert any(n.endswith(".hex.parquet") for n in names)  # byte columns
    assert "Microsoft-Windows-DotNETRuntimeRundown.id144.v1.ptr4.parquet" in names  # text columns
