"""Shared fixtures: where the real corpus lives, the demo's inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ETWTOOLS_CORPUS", ROOT.parent / "shared" / "corpus"))
CASES = CORPUS.parent / "cases"
DATA = ROOT / "data"


def _missing(reason: str) -> None:
    """Skip, or fail in CI (ETWTOOLS_REQUIRE_CORPUS=1) where the corpus must be there."""
    if os.environ.get("ETWTOOLS_REQUIRE_CORPUS"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real-file corpus (../shared/corpus or $ETWTOOLS_CORPUS); tests that need it skip without it."""
    if not CORPUS.is_dir():
        _missing(f"real-file corpus not found at {CORPUS} (set ETWTOOLS_CORPUS)")
    return CORPUS


@pytest.fixture(scope="session")
def cases() -> Path:
    """The support cases folder (../shared/cases), next to the corpus."""
    if not CASES.is_dir():
        _missing(f"cases folder not found at {CASES}")
    return CASES


@pytest.fixture(scope="session")
def demo() -> list[str]:
    """The demo's inputs (data/: the case's tracerpt CSV, capture and tasklist) as command-line options."""
    return [
        "--etl",
        str(DATA / "kernel.csv"),
        "--pcap",
        str(DATA / "capture.pcap"),
        "--tasklist",
        str(DATA / "tasklist.txt"),
    ]


@pytest.fixture(params=["c", "python"])
def walker(request, monkeypatch) -> str:
    """Run a test with the C capture walks (pcap and pcapng), then with the pure-Python ones."""
    from etwtools.parsers import pcap, pcapng

    if request.param == "python":
        monkeypatch.setattr(pcap, "_c_pcap_walk", None)
        monkeypatch.setattr(pcapng, "_c_pcapng_walk", None)
    elif pcap._c_pcap_walk is None:
        pytest.skip("C accelerator etwtools.parsers._capwalk not built")
    return request.param


def require_tool(name: str, package: str) -> str:
    """The path of the program ``name`` (from Debian's ``package``): skips without it, fails in CI
    (CI=true or ETWTOOLS_REQUIRE_CORPUS=1), where .ci/run installs it."""
    import shutil

    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI") == "true" or os.environ.get("ETWTOOLS_REQUIRE_CORPUS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def tshark() -> str:
    """Debian's tshark."""
    return require_tool("tshark", "tshark")


@pytest.fixture(scope="session")
def tshark_fields(tshark):
    """``fields(path, *names)``: the named fields of every frame as Debian's tshark shows them, one list per
    frame (tshark must succeed)."""
    import subprocess

    def fields(path, *names: str) -> list[list[str]]:
        args = [a for name in names for a in ("-e", name)]
        out = subprocess.run(
            [tshark, "-r", str(path), "-T", "fields", *args], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        return [line.split("\t") for line in out.stdout.splitlines()]

    return fields


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (headless)."""
    return require_tool("chromium", "chromium")


#: Fixtures that read the real-file corpus or the support cases: a test using one (directly or through
#: another fixture) is marked ``corpus``, so ``pytest -m "not corpus"`` is the fast loop on built files.
CORPUS_FIXTURES = {"corpus", "cases"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if CORPUS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.corpus)
