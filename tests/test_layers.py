"""The layers (tests/layers.py) hold in the source tree, the check catches an upward import, and the
source tree imports as laid out (./parsers as a package of its own, without etwtools)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from layers import layer, violations

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_imports_a_higher_layer():
    assert violations(ROOT) == []


def test_the_check_fails_on_a_planted_upward_import(tmp_path):
    """A copy of the tree with one reader importing the application's errors, and one application
    module importing the command line: both are reported, with file and line."""
    for folder in ("etwtools", "parsers"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.so", "__pycache__")
        )
    assert violations(tmp_path) == []
    pcap = tmp_path / "parsers" / "pcap.py"
    pcap.write_text(pcap.read_text() + "\n\ndef _planted():\n    from ..errors import AttributionError\n")
    clock = tmp_path / "etwtools" / "clock_offset.py"
    clock.write_text("from .cli import cli\n" + clock.read_text())
    lines = pcap.read_text().count("\n")
    assert violations(tmp_path) == [
        "etwtools/clock_offset.py:1: etwtools.clock_offset (application) imports etwtools.cli (presentation)",
        f"parsers/pcap.py:{lines}: etwtools.parsers.pcap (formats) imports etwtools.errors (application)",
    ]


def test_layer_names():
    assert [
        layer(m)
        for m in (
            "etwtools.parsers.units",
            "etwtools.parsers.etl.container",
            "etwtools.sources",
            "etwtools.attribution.matchers",
            "etwtools.cli",
        )
    ] == ["leaf", "formats", "application", "application", "presentation"]


def test_the_source_tree_imports_as_laid_out(tmp_path):
    """./parsers imports as a top-level package from the source tree (no etwtools on the path)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import parsers.captures, parsers.tracerpt, parsers.tasklist, parsers.etl.events, "
        "parsers.etl.captured_frames, parsers.etl.generic, parsers.etl.build, parsers.etl.columnar, parsers.eventlog; "
        "print('etwtools' in sys.modules, parsers.etl.events.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "parsers.etl.events"]
