"""Hostile inputs (tests/hostile_shapes.py) through every command that reads them, each in a subprocess
under a 2 GB address-space cap and a time limit: exit 0 or 1 with a message, never an internal error
or a signal, the inputs unchanged, the intact parts kept.

The cap is on address space (RLIMIT_AS), so the allocators' reservations are kept small
(MALLOC_ARENA_MAX, Arrow's system pool): otherwise polars and Arrow reserve over 1.5 GB of untouched
address space at start and the cap would measure that, not the work.
"""

from __future__ import annotations

import hashlib

import hostile_shapes as hs
import pytest
from hostile_runner import Runner

CAP = 2 << 30
TIME_LIMIT = 60


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = Runner(str(tmp_path_factory.mktemp("runs")))
    yield r
    r.close()


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def check_shape(shape: hs.Shape, tmp_path, runner) -> None:
    before = {p: digest(p) for p in shape.files}
    outputs = []
    for i, cmd in enumerate(shape.commands):
        out = str(tmp_path / "out")  # one prefix: a command may read what the one before wrote
        args = [a.replace("{out}", out) for a in cmd]
        status, stdout, stderr, _, _ = runner.run(args, timeout=TIME_LIMIT, cap=CAP)
        where = f"{shape.name}: etwtools {' '.join(args)}"
        assert status is not None, f"{where}: took over {TIME_LIMIT} s"
        outputs.append(stdout + stderr)
        assert status in (0, 1), f"{where}: exit {status}\n{stderr[-2000:]}"
        assert "internal error" not in stderr and "Traceback" not in stderr, f"{where}\n{stderr[-2000:]}"
        if status == 1:
            lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
            assert len(lines) == 1, f"{where}: exit 1 without one error line\n{stderr}"
        if i in shape.exit_codes:
            assert status == shape.exit_codes[i], f"{where}\n{stderr[-2000:]}"
    for p, h in before.items():
        assert digest(p) == h, f"{shape.name}: input {p} changed"
    for i, needle in shape.expect:
        assert needle in outputs[i], (
            f"{shape.name}: {' '.join(shape.commands[i])}: {needle!r} not in\n{outputs[i][-3000:]}"
        )


@pytest.mark.parametrize("build", hs.ETL_SHAPES, ids=lambda b: b.__name__)
def test_hostile_etl(build, tmp_path, runner):
    check_shape(build(tmp_path), tmp_path, runner)


@pytest.mark.parametrize("build", hs.CAPTURE_SHAPES, ids=lambda b: b.__name__)
def test_hostile_capture(build, tmp_path, runner):
    check_shape(build(tmp_path), tmp_path, runner)


@pytest.mark.parametrize("build", hs.OTHER_SHAPES, ids=lambda b: b.__name__)
def test_hostile_other(build, tmp_path, runner):
    check_shape(build(tmp_path), tmp_path, runner)


# ---------------------------------------------------------------------- outputs


def _one_error(status, stderr) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert status == 1 and len(lines) == 1 and "internal error" not in stderr, stderr
    return lines[0]


def test_outputs_never_harm_inputs(tmp_path, runner):
    """-o or --annotate naming an input (also through a symbolic or hard link), -o and --annotate naming
    one file, a missing folder, a full disk, a closed stdout: one line, exit 1; a reader gone: exit 141
    quietly; inputs unchanged, no file left behind."""
    trace = hs.small_trace(tmp_path)
    cap = tmp_path / "syns.pcap"
    hs.write_pcap(cap, hs.syn_packets(50))
    link = tmp_path / "link.pcap"
    link.symlink_to(cap)
    hard = tmp_path / "hard.pcap"
    import os

    os.link(cap, hard)
    before = {p: digest(p) for p in (trace, cap)}
    names = sorted(p.name for p in tmp_path.iterdir())
    attr = ["attribute", "--etl", str(trace), "--pcap", str(cap)]
    cases = [
        (["frames", "--pcap", str(cap), "-o", str(cap)], "is the input"),
        (["frames", "--pcap", str(cap), "-o", str(link)], "is the input"),
        (["frames", "--pcap", str(cap), "-o", str(hard)], "is the input"),
        (["events", "--etl", str(trace), "-o", str(trace)], "is the input"),
        ([*attr, "-o", str(tmp_path / "x.csv"), "--annotate", str(link)], "is the input"),
        ([*attr, "-o", str(trace)], "is the input"),
        ([*attr, "-o", str(tmp_path / "same"), "--annotate", str(tmp_path / "same")], "is also the output"),
        (["synattack", "--etl", str(trace), "--pcap", str(cap), "-o", str(trace)], "is the input"),
        (["frames", "--pcap", str(cap), "-o", str(tmp_path / "missing" / "x.csv")], "does not exist"),
        (["frames", "--pcap", str(cap), "-o", "/dev/full", "-f", "csv"], "/dev/full: cannot write: "),
    ]
    for args, message in cases:
        status, _, stderr, _, _ = runner.run(args)
        assert message in _one_error(status, stderr), (args, stderr)
    status, _, stderr, _, _ = runner.run(["frames", "--pcap", str(cap)], stdout_mode="closed")
    assert "stdout is closed" in _one_error(status, stderr)
    # a reader gone (| head) stops the command quietly with the shell's SIGPIPE status, as tools do
    status, _, stderr, _, _ = runner.run(
        ["frames", "--pcap", str(cap), "-f", "csv"], stdout_mode="broken_pipe"
    )
    assert status == 141 and "Traceback" not in stderr and "internal error" not in stderr, stderr
    for p, h in before.items():
        assert digest(p) == h
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    # and a good output is complete, with the usual permissions
    status, _, stderr, _, _ = runner.run(
        ["frames", "--pcap", str(cap), "-f", "csv", "-o", str(tmp_path / "f.csv")]
    )
    assert status == 0, stderr
    assert (tmp_path / "f.csv").read_text().count("\n") == 51
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names + ["f.csv"])
