"""Damaged and foreign input (acceptance 4 of issue 2): one-line EtlError with file and offset, or the
intact buffers' records plus a warning counting what was skipped. Damaged files are made in tmp_path
from real corpus files (cut, bytes overwritten)."""

from __future__ import annotations

import logging
import struct
import time

import numpy as np
import pytest

from etwtools.errors import EtlError, EtwToolsError
from etwtools.parsers.etl import container, guids
from etwtools.parsers.etl.container import count_records, open_etl

KN = "tx/KernelNetwork.etl"  # uncompressed, 0x2000-byte buffers, 8,924 records
X64 = "perfview/net.4.5.2.x64.etl"  # compressed, 179,474 records
BUF = 0x2000


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path):
    with open_etl(path) as f:
        batches = list(f.batches())
    return f, batches


def records_by_buffer(corpus, name):
    """{buffer file offset: number of records} of an intact corpus file."""
    _, batches = read(corpus / name)
    offs = np.concatenate([b.file_offset for b in batches])
    return dict(zip(*map(list, np.unique(offs, return_counts=True))))


def one_line(exc: EtlError, path) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.startswith(f"{path}, offset 0x"), msg
    return msg


# ---------------------------------------------------------------- nothing usable: EtlError


def test_empty_file(tmp_path):
    path = write(tmp_path, "empty.etl", b"")
    with pytest.raises(EtlError) as e:
        open_etl(path)
    assert one_line(e.value, path) == f"{path}, offset 0x0: empty file"
    assert e.value.offset == 0 and e.value.path == str(path)


def test_random_bytes(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, 100_000, np.uint8).tobytes()
    path = write(tmp_path, "random.etl", noise)
    with pytest.raises(EtlError) as e:
        count_records(path)
    assert "not an ETL file: first buffer size 0x7922e4ff is invalid" in one_line(e.value, path)


def test_text_file_named_etl(tmp_path):
    path = write(tmp_path, "notes.etl", b"This is a text file, not a trace.\r\n" * 50)
    with pytest.raises(EtlError) as e:
        open_etl(path)
    assert "not an ETL file" in one_line(e.value, path)


def test_missing_file(tmp_path):
    with pytest.raises(EtlError) as e:
        open_etl(tmp_path / "nope.etl")
    assert "cannot open" in str(e.value) and isinstance(e.value, EtwToolsError)


@pytest.mark.parametrize(
    "cut, where, reason",
    [
        (0x30, 0x0, "too short for a buffer header"),
        (0x100, 0x4C, "logfile header record of 364 bytes does not fit the first buffer"),
    ],
)
def test_file_cut_inside_the_header_buffer(corpus, tmp_path, cut, where, reason):
    path = write(tmp_path, "cut.etl", (corpus / X64).read_bytes()[:cut])
    with pytest.raises(EtlError) as e:
        open_etl(path)
    assert e.value.offset == where and reason in one_line(e.value, path)


def test_header_record_that_is_not_a_logfile_header(corpus, tmp_path):
    raw = bytearray((corpus / KN).read_bytes())
    raw[0x48 + 7] = 0x06  # hook 0x0600 instead of 0x0000
    path = write(tmp_path, "hook.etl", bytes(raw))
    with pytest.raises(EtlError) as e:
        open_etl(path)
    assert e.value.offset == 0x4E and "not the logfile header" in one_line(e.value, path)


def test_unusable_clock_in_header(corpus, tmp_path):
    raw = bytearray((corpus / KN).read_bytes())
    struct.pack_into("<I", raw, 0x68 + 0x110, 7)  # ReservedFlags (clock type) of the 64-bit header
    path = write(tmp_path, "clock.etl", bytes(raw))
    with pytest.raises(EtlError) as e:
        open_etl(path)
    assert "unknown clock type 7" in one_line(e.value, path)


# ---------------------------------------------------------------- damage costs only its unit


def test_file_cut_in_the_middle_of_a_plain_buffer(corpus, tmp_path, caplog):
    raw = (corpus / KN).read_bytes()
    cut = 50 * BUF + 0x1000
    path = write(tmp_path, "cut.etl", raw[:cut])
    per_buffer = records_by_buffer(corpus, KN)
    whole = sum(n for off, n in per_buffer.items() if off < 50 * BUF)
    f, batches = read(path)
    got = sum(len(b) for b in batches)
    # the cut buffer keeps the records that end before the cut
    last = next(b for b in batches if (b.file_offset == 50 * BUF).any())
    sel = last.file_offset == 50 * BUF
    assert got == whole + sel.sum() and 0 < sel.sum() < per_buffer[50 * BUF]
    seg_start = int(last.offset[sel][0]) - 0x48  # record area of the buffer starts at 0x48
    assert (last.offset[sel] - seg_start + last.payload_size[sel] <= 0x1000).all()
    assert f.stats.damaged_buffers == 1 and f.stats.skipped_records == 1
    assert f.stats.trailing_bytes == 0x1000
    r = f.skipped.reasons["record(s) in damaged buffers"]
    assert r.count == 1 and (cut, "file ends inside a buffer") in [(p.offset, p.detail) for p in r.places]
    line = f.skipped.line()
    assert line.startswith(f"{path}: skipped 1 record(s) in damaged buffers: ") and f"{cut:#x}" in line
    assert any(r.getMessage() == line for r in caplog.records if r.levelno == logging.WARNING)


def test_file_cut_in_the_middle_of_a_compressed_buffer(corpus, tmp_path):
    raw = (corpus / X64).read_bytes()
    third = 0x3CA8  # start of the third buffer
    assert struct.unpack_from("<I", raw, third)[0] > 0x2000
    path = write(tmp_path, "cut.etl", raw[: third + 0x2000])
    per_buffer = records_by_buffer(corpus, X64)
    f, batches = read(path)
    assert sum(len(b) for b in batches) == per_buffer[0] + per_buffer[0x200] == 428
    assert f.stats.skipped_buffers == f.stats.uncounted_buffers == 1
    assert f.stats.skipped_bytes == 0x2000
    r = f.skipped.reasons["compressed buffer(s) of uncountable records"]
    assert (r.count, r.bytes) == (1, 0x2000)
    assert [(p.offset, p.detail) for p in r.places] == [(third, "file ends inside a compressed buffer")]


def second_record(raw: bytes, buffer: int) -> int:
    first = buffer + 0x48
    return first + ((struct.unpack_from("<H", raw, first)[0] + 7) & ~7)


@pytest.mark.parametrize(
    "size, reason",
    [
        (0, "record size smaller than its header"),
        (0xFFF0, "record runs past the end of the buffer"),
        (None, "record runs past the end of the buffer"),  # overlaps the buffer's end by 8 bytes
    ],
)
def test_corrupted_record_size_skips_one_record(corpus, tmp_path, size, reason):
    """EVENT_HEADER size (u16 @0) of the 2nd record of buffer 5 corrupted: the walk resyncs after it."""
    raw = bytearray((corpus / KN).read_bytes())
    buffer = 5 * BUF
    p = second_record(raw, buffer)
    true_size = struct.unpack_from("<H", raw, p)[0]
    filled = struct.unpack_from("<I", raw, buffer + 0x30)[0]
    struct.pack_into("<H", raw, p, size if size is not None else filled - (p - buffer) + 8)
    path = write(tmp_path, "size.etl", bytes(raw))
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 8924 - 1
    st = f.stats
    assert (st.damaged_buffers, st.skipped_records, st.skipped_bytes) == (1, 1, (true_size + 7) & ~7)
    assert st.damage_offsets == [p] and st.damage_reasons == [reason]
    # the records after the damaged one are the real ones: same times as in the intact file
    _, intact = read(corpus / KN)
    t_ok = np.concatenate([b.time for b in intact])
    t = np.concatenate([b.time for b in batches])
    k = int(np.nonzero(np.concatenate([b.file_offset for b in intact]) == buffer)[0][0]) + 1
    assert np.array_equal(np.delete(t_ok, k), t)


def test_corrupted_kernel_record_size(corpus, tmp_path):
    """A PERFINFO record (size u16 @4) set to 0 in a compressed file's buffer is skipped, the rest kept."""
    from etwtools.parsers.etl import structs

    s = structs.structs_for(8)
    recs = [
        structs.build_record(s.perfinfo_header, bytes(24), opcode=3, group=3, timestamp=100 + i)
        for i in range(40)
    ]
    raw = bytearray(structs.build_etl(recs, buffer_size=0x400, start_time=132404548206236167))
    p = 0x400 + 0x48 + 3 * len(recs[0])
    struct.pack_into("<H", raw, p + 4, 0)
    path = write(tmp_path, "perfinfo.etl", bytes(raw))
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 1 + 40 - 1
    assert f.stats.damage_offsets == [p] and f.stats.skipped_bytes == len(recs[0])


def test_undecodable_compressed_buffer_is_skipped_whole(corpus, tmp_path):
    raw = bytearray((corpus / X64).read_bytes())
    raw[0x3CA8 + 0x100 : 0x3CA8 + 0x140] = bytes(64)
    path = write(tmp_path, "lz.etl", bytes(raw))
    per_buffer = records_by_buffer(corpus, X64)
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 179_474 - per_buffer[0x3CA8]
    assert f.stats.skipped_buffers == 1 and f.stats.damage_offsets == [0x3CA8]
    (place,) = f.skipped.reasons["compressed buffer(s) of uncountable records"].places
    assert place.offset == 0x3CA8 and place.detail.startswith("compressed buffer: malformed LZ77 data")


def test_bad_buffer_header_in_plain_file_skips_one_buffer(corpus, tmp_path):
    raw = bytearray((corpus / KN).read_bytes())
    struct.pack_into("<I", raw, 5 * BUF, 0)  # BufferSize 0: would never advance
    path = write(tmp_path, "bufsize.etl", bytes(raw))
    per_buffer = records_by_buffer(corpus, KN)
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 8924 - per_buffer[5 * BUF]
    assert f.stats.skipped_records == per_buffer[5 * BUF]  # counted in the skipped bytes
    assert f.stats.skipped_bytes == BUF and f.stats.damage_offsets == [5 * BUF]


def test_bad_buffer_header_in_compressed_file_finds_the_next_buffer(corpus, tmp_path):
    raw = bytearray((corpus / X64).read_bytes())
    size = struct.unpack_from("<I", raw, 0x3CA8)[0]
    struct.pack_into("<I", raw, 0x3CA8, 0)
    path = write(tmp_path, "bufsize.etl", bytes(raw))
    per_buffer = records_by_buffer(corpus, X64)
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 179_474 - per_buffer[0x3CA8]
    assert f.stats.skipped_bytes == size and f.stats.buffers == 359


def test_trailing_garbage_after_last_buffer(corpus, tmp_path):
    raw = (corpus / KN).read_bytes() + b"\x00" * 20
    path = write(tmp_path, "tail.etl", raw)
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 8924
    assert f.stats.skipped_bytes == 20
    r = f.skipped.reasons["record(s) in damaged buffers"]
    assert (r.count, r.bytes, r.places[0].detail) == (0, 20, "file ends inside a buffer header")


@pytest.mark.parametrize("walker", ["walk_c", "walk_py"])
def test_random_damage_never_raises_anything_but_etlerror(corpus, tmp_path, monkeypatch, caplog, walker):
    """300 randomly damaged small real files (both walkers): EtlError or records; never a hang."""
    if walker == "walk_c" and container._speedups is None:
        pytest.skip("C accelerator not built")
    monkeypatch.setattr(container, "walk", getattr(container, walker))
    caplog.set_level(logging.ERROR, logger="etwtools")
    rng = np.random.default_rng(0)
    outcomes = {"records": 0, "error": 0}
    start = time.monotonic()
    for name in [
        "etl-parser/lxcore_kernel.etl",
        "perfview/SelfDescribingSingleEvent.etl",
        "tx/WsRm01.etl",
        "perfview/smallEtlFile.etl",
        "pktmon/demikernel-PktMon.etl",
    ]:
        raw = (corpus / name).read_bytes()
        for _ in range(60):
            d = bytearray(raw)
            for _ in range(int(rng.integers(1, 20))):
                pos = int(rng.integers(0, len(d)))
                d[pos : pos + 2] = rng.integers(0, 256, 2, np.uint8).tobytes()
            if rng.random() < 0.2:
                d = d[: int(rng.integers(0, len(d)))]
            path = write(tmp_path, "fuzz.etl", bytes(d))
            try:
                count_records(path)
                outcomes["records"] += 1
            except EtlError as e:
                one_line(e, path)
                outcomes["error"] += 1
    assert outcomes["records"] > 100 and outcomes["error"] > 10
    assert time.monotonic() - start < 60


def test_bad_buffer_header_with_no_usable_stride_scans_for_the_next_buffer(corpus, tmp_path):
    """The logfile header's BufferSize is bad too (0x48), so the next plain buffer is found by scanning."""
    raw = bytearray((corpus / KN).read_bytes())
    struct.pack_into("<I", raw, 0x68, 0x48)  # TRACE_LOGFILE_HEADER.BufferSize
    struct.pack_into("<I", raw, BUF, 0)  # the first data buffer's BufferSize
    path = write(tmp_path, "stride.etl", bytes(raw))
    per_buffer = records_by_buffer(corpus, KN)
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 8924 - per_buffer[BUF]
    assert f.stats.skipped_bytes == BUF and f.stats.skipped_records == per_buffer[BUF]


@pytest.mark.parametrize("cut", [40 * BUF, 40 * BUF - 1, 0x1000])
def test_file_cut_at_a_buffer_boundary_is_not_a_silent_loss(corpus, tmp_path, caplog, cut):
    """Bug (break-readers): a file cut at a buffer boundary, or inside the unused tail of a buffer, lost
    every later buffer without a warning. The logfile header's BuffersWritten (129 here) now tells."""
    path = write(tmp_path, "cut.etl", (corpus / KN).read_bytes()[:cut])
    f, _ = read(path)
    found = -(-cut // BUF)
    assert f.stats.buffers == found and f.stats.expected_buffers == 129
    reason = "of the 129 buffer(s) its logfile header counts (the file is cut)"
    assert {k: r.count for k, r in f.skipped.reasons.items() if r.kind == "missing"} == {reason: 129 - found}
    line = f.skipped.line()
    assert f"missing {129 - found} of the 129 buffer(s) its logfile header counts" in line
    assert any(r.getMessage() == line for r in caplog.records if r.levelno == logging.WARNING)


def test_whole_and_concatenated_files_do_not_warn_of_missing_buffers(corpus, tmp_path):
    """The BuffersWritten check warns only when buffers are missing, not when there are more."""
    raw = (corpus / KN).read_bytes()
    for path in (corpus / KN, write(tmp_path, "twice.etl", raw + raw)):
        f, _ = read(path)
        assert not f.skipped and f.stats.notes() == []


def damaged_times(corpus, tmp_path):
    """KernelNetwork.etl with the timestamps of three Send records set to 2^63-1, 2^64-1 and 0: the
    file's path and the trace's start (UTC ns)."""
    raw = bytearray((corpus / KN).read_bytes())
    with open_etl(corpus / KN) as f:
        batch = next(f.batches())
        idx = np.flatnonzero(batch.event_id == 10)[:3]
        heads = [bytes(batch.data[int(batch.offset[i]) : int(batch.offset[i]) + 0x50]) for i in idx]
        start = f.clock.anchor_ns
    for head, value in zip(heads, [2**63 - 1, 2**64 - 1, 0]):
        struct.pack_into("<Q", raw, raw.find(head) + 0x10, value)  # EVENT_HEADER.TimeStamp
    return write(tmp_path, "ts.etl", bytes(raw)), start


@pytest.mark.parametrize("walker", ["c", "python"])
def test_damaged_record_timestamps_are_counted_when_only_some_providers_are_read(
    corpus, tmp_path, monkeypatch, walker
):
    """The selection of providers (C or its Python reference) still counts every record's damaged time:
    the same warning as a read of every record, though the damaged records' provider is not asked for."""
    if walker == "python":
        monkeypatch.setattr(container, "_speedups", None)
        monkeypatch.setattr(container, "walk", container.walk_py)
    elif container._speedups is None:
        pytest.skip("the C accelerator is not built (tests/test_accelerators.py fails in CI)")
    path, _ = damaged_times(corpus, tmp_path)
    with open_etl(path) as f:
        batches = list(f.batches(providers=[guids.PROCESS_KERNEL]))
    assert sum(len(b) for b in batches) == 0 and f.stats.records == 8924
    assert f.stats.bad_time_records == 3
    (line,) = f.stats.notes()  # records kept: a warning, not a skip
    assert "3 record(s) have a timestamp outside the trace" in line and "0x2000" in line


def test_damaged_record_timestamps_are_warned_not_silently_wrapped(corpus, tmp_path, caplog):
    """Bug (break-readers): a record timestamp of 2^63-1 wrapped the int64 nanoseconds (the event came out
    in 1985), 0 or 2^64-1 put it days before the trace: all silently. Such records are kept and warned."""
    path, start = damaged_times(corpus, tmp_path)
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 8924
    assert f.stats.bad_time_records == 3 and not f.skipped  # kept, with a warning
    (line,) = f.stats.notes()
    assert "3 record(s) have a timestamp outside the trace" in line and "0x2000" in line
    assert any(r.getMessage() == line for r in caplog.records if r.levelno == logging.WARNING)
    times = np.concatenate([b.time for b in batches])
    assert (times >= start - 60 * 10**9).sum() == 8924 - 3  # 2^63-1 wraps to 1985: kept, warned


def test_intact_corpus_timestamps_are_inside_the_trace(corpus):
    """No false alarm: every record of the intact corpus files is inside its header's span."""
    for name in (KN, X64, "perfview/net.4.5.2.x86.etl", "misc/msbuild-PerfViewData.etl"):
        f, _ = read(corpus / name)
        assert f.stats.bad_time_records == 0, name


def test_cut_circular_file_is_not_a_silent_loss(corpus, tmp_path):
    """Bug (break-readers), circular variant: pywintrace-eventlog.etl is a circular file (LogFileMode 0x2,
    1 MB = 8 buffers of 128 KB, 6 written, not wrapped); cut after 3 buffers it lost 13 records silently."""
    path = write(tmp_path, "cut.etl", (corpus / "misc/pywintrace-eventlog.etl").read_bytes()[:0x60000])
    f, batches = read(path)
    assert sum(len(b) for b in batches) == 34 and f.header.expected_buffers == 6
    assert f.skipped.counts == {"of the 6 buffer(s) its logfile header counts (the file is cut)": 3}


@pytest.mark.parametrize("walker", ["c", "python"])
@pytest.mark.parametrize("damage", ["record size", "cut"])
def test_damage_is_counted_alike_when_only_some_providers_are_read(
    corpus, tmp_path, monkeypatch, walker, damage
):
    """Plain buffers read for a few providers are walked where they lie in the file (C) or copied first
    (Python): a damaged record or a cut buffer is skipped and reported exactly as by a read of every record."""
    from etwtools.parsers.etl.events import PROVIDERS

    raw = bytearray((corpus / KN).read_bytes())
    if damage == "cut":
        raw = raw[: 50 * BUF + 0x1000]
    else:
        struct.pack_into("<H", raw, second_record(raw, 5 * BUF), 0)
    path = write(tmp_path, "damaged.etl", bytes(raw))
    whole, batches = read(path)
    if walker == "python":
        monkeypatch.setattr(container, "_speedups", None)
        monkeypatch.setattr(container, "walk", container.walk_py)
    elif container._speedups is None:
        pytest.skip("the C accelerator is not built (tests/test_accelerators.py fails in CI)")
    in_place = []
    if walker == "c":
        pick = container.EtlFile._pick
        monkeypatch.setattr(container.EtlFile, "_pick", lambda *a: in_place.append(pick(*a)) or in_place[-1])
    with open_etl(path) as f:
        picked = list(f.batches(chunk_bytes=1 << 16, providers=PROVIDERS))
    assert any(in_place) == (walker == "c")
    assert whole.skipped.line() and f.skipped.line() == whole.skipped.line()
    assert f.stats.records == whole.stats.records == sum(len(b) for b in batches)
    assert 0 < sum(len(b) for b in picked) < f.stats.records
    full = np.concatenate([b.record for b in batches])
    got = np.concatenate([b.record for b in picked])
    assert np.isin(got, full).all()
