"""Unit checks behind the hostile-input suite: the C and Python ETL record walks agree on damaged
buffers (property test), the resync keeps what follows a damage, and safe outputs never touch inputs."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etwtools.parsers.etl import container
from etwtools.parsers.etl.build import EtlWriter
from etwtools.safe_output import OutputError, Outputs


def _records() -> bytes:
    """The record bytes of a built buffer: kernel, TCPIP (with an extended item) and MESSAGE records."""
    from datetime import timedelta

    from etwtools.parsers.etl.guids import TCPIP

    w = EtlWriter()
    for i in range(40):
        w.kernel_event(0x08, 10, bytes(32), time=timedelta(milliseconds=i), version=2)
        w.event(
            TCPIP,
            1055,
            bytes(24),
            time=timedelta(milliseconds=i),
            ext_items=[(1, bytes(16))] if i % 3 else (),
        )
        w.raw_record(struct.pack("<HBB", 16, 0, 0x90) + bytes(12))
    raw = w.to_bytes()
    body = raw[0x10000 + 0x48 :]
    filled = struct.unpack_from("<I", raw, 0x10000 + 0x30)[0]
    return body[: filled - 0x48]


RECORDS = _records()


@pytest.mark.skipif(container._speedups is None, reason="the C accelerator is not built")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(RECORDS) - 1), st.integers(0, 255)), max_size=12),
    st.integers(0, len(RECORDS)),
)
def test_c_and_python_walks_agree_on_damaged_buffers(changes, cut):
    data = bytearray(RECORDS[:cut])
    for pos, value in changes:
        if pos < len(data):
            data[pos] = value
    n = len(data)
    buf = bytes(data) + bytes(64)
    starts, ends = np.array([0], np.int64), np.array([n], np.int64)
    a, b = container.walk_c(buf, starts, ends), container.walk_py(buf, starts, ends)
    for x, y in zip(a[:3], b[:3]):
        assert np.array_equal(x, y)
    assert [tuple(d) for d in a[3]] == [tuple(d) for d in b[3]]


@pytest.mark.skipif(container._columnar is None, reason="the C accelerator is not built")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(RECORDS) - 1), st.integers(0, 255)), max_size=12),
    st.integers(0, len(RECORDS)),
    st.lists(st.integers(-(2**62), 2**62) | st.integers(-64, len(RECORDS) + 64), max_size=8),
)
def test_c_and_python_header_fields_agree_on_damaged_records(changes, cut, stray):
    """The C header pass reads what the numpy reference reads from damaged records (built with EtlWriter,
    bytes changed), at the records' own offsets and at any other offset (inside, straddling the end, far
    outside, negative): a header that does not fit reads as zeros, nothing is read outside the data."""
    data = bytearray(RECORDS[:cut])
    for pos, value in changes:
        if pos < len(data):
            data[pos] = value
    buf = bytes(data)
    offs, _, _, _ = container.walk_c(buf + bytes(64), np.array([0], np.int64), np.array([len(buf)], np.int64))
    offs = np.concatenate([offs, np.asarray(stray, np.int64)])
    groups = np.arange(256, dtype=np.int32) - 7
    c = container._header_fields(buf, offs, groups)
    py = container._header_fields_py(buf, offs, groups)
    for (name, dtype), x, y in zip(container.HEADER_OUTS, c, py):
        assert x.dtype == y.dtype == dtype, name
        assert np.array_equal(x, y), name


def test_records_between_two_damages_are_kept():
    """Damage at both ends of a buffer costs the two damaged records, not the buffer."""
    from datetime import timedelta

    w = EtlWriter()
    bad = b"\x08\x00\x01\x77" + bytes(4)
    w.raw_record(bad)
    for i in range(100):
        w.kernel_event(0x08, 10, bytes(32), time=timedelta(milliseconds=i), version=2)
    w.raw_record(bad)
    data = w.to_bytes()[0x10000 + 0x48 :]
    filled = 100 * 0x40 + 16
    for walker in (container.walk_py, container.walk_c) if container._speedups else (container.walk_py,):
        offs, _, _, damages = walker(data + bytes(64), np.array([0], np.int64), np.array([filled], np.int64))
        assert len(offs) == 100
        assert [(d[1], d[2], d[3], d[4]) for d in damages] == [(0, 8, 1, 1), (filled - 8, -1, 1, 1)]


# ---------------------------------------------------------------------- safe outputs


def test_output_naming_an_input_is_refused(tmp_path):
    src = tmp_path / "in.pcap"
    src.write_bytes(b"capture")
    link = tmp_path / "link.pcap"
    link.symlink_to(src)
    hard = tmp_path / "hard.pcap"
    os.link(src, hard)
    for out in (src, link, hard):
        with pytest.raises(OutputError, match="is the input"):
            Outputs([src], [out], stdout=False)
    assert src.read_bytes() == b"capture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.pcap", "in.pcap", "link.pcap"]


def test_two_outputs_naming_one_file_are_refused(tmp_path):
    with pytest.raises(OutputError, match="is also the output"):
        Outputs([], [tmp_path / "a.csv", tmp_path / "." / "a.csv"], stdout=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_refused_before_the_work(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        Outputs([], [tmp_path / "no" / "a.csv"], stdout=False)
    # a folder (events --all -f parquet -o DIR/) is its command's to write: passed through as it is
    with Outputs([], [tmp_path], stdout=False) as outs, outs.writing(tmp_path) as target:
        assert target == str(tmp_path)


def test_output_is_written_whole_or_not_at_all(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("old")
    with (
        Outputs([], [target], stdout=False) as outs,
        pytest.raises(RuntimeError),
        outs.writing(target) as tmp,
    ):
        assert os.path.dirname(tmp) == str(tmp_path)
        Path(tmp).write_text("half")
        raise RuntimeError("the work failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]
    with (
        Outputs([], [target], stdout=False) as outs,
        pytest.raises(KeyboardInterrupt),
        outs.writing(target) as tmp,
    ):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.csv"]
    with Outputs([], [target], stdout=False) as outs, outs.writing(target) as tmp:
        Path(tmp).write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_full_disk_is_a_one_line_error_naming_the_output(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with (
        Outputs([], ["/dev/full"], stdout=False) as outs,
        pytest.raises(OutputError) as e,
        outs.writing("/dev/full") as path,
        open(path, "w") as f,
    ):
        f.write("x" * 100_000)
    assert str(e.value) == "/dev/full: cannot write: the disk is full"
    assert e.value.__class__.__name__ == "OutputError"
