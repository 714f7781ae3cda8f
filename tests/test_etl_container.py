"""The ETL container on the real corpus: buffers, records, headers, clock, C accelerator vs fallback."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import struct
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etwtools.parsers.etl import compression, container, guids, structs
from etwtools.parsers.etl.container import EtlFile, count_records, open_etl
from etwtools.parsers.etl.records import (
    COMPACT64,
    EVENT_HEADER32,
    EVENT_HEADER64,
    FULL_HEADER32,
    FULL_HEADER64,
    HEADER_TYPES,
    INSTANCE32,
    INSTANCE64,
    MESSAGE,
    PERFINFO32,
    PERFINFO64,
    SYSTEM32,
    SYSTEM64,
)
from etwtools.parsers.etl.timestamps import Clock, filetime_to_ns

X64 = "perfview/net.4.5.2.x64.etl"
X86 = "perfview/net.4.5.2.x86.etl"


def all_etl(corpus):
    return sorted(corpus.glob("*/*.etl"))


def read_all(path, **kw):
    with open_etl(path, **kw) as f:
        batches = list(f.batches())
        return f, batches


def concat(batches, name):
    return np.concatenate([getattr(b, name) for b in batches])


# ---------------------------------------------------------------- acceptance 3: counts, every file opens


@pytest.mark.parametrize(
    "name, count", [(X64, 179_474), (X86, 168_298), ("etl-parser/ShutdownPerfDiagLogger.etl", 17_078)]
)
def test_record_counts_equal_corpus_readme(corpus, name, count):
    """A record is every record of every buffer, the logfile header record included."""
    assert count_records(corpus / name) == count


def test_every_corpus_file_opens_and_iterates_cleanly(corpus):
    files = all_etl(corpus)
    assert len(files) >= 19
    for path in files:
        f, batches = read_all(path)
        n = sum(len(b) for b in batches)
        assert n == f.stats.records > 0, path
        assert f.stats.skipped_bytes == 0 and f.stats.damaged_buffers == 0, (path, f.skipped.line())
        assert f.stats.buffers == f.header.buffers_written, path
        rec = concat(batches, "record")
        assert (rec == np.arange(n)).all()
        # every payload lies inside its batch's data and inside the record
        for b in batches:
            assert (b.payload_offset >= b.offset).all() and (b.payload_size >= 0).all()
            assert (b.payload_offset + b.payload_size <= len(b.data)).all()
            assert (b.offset % 8 == 0).all()


def test_lost_events_in_header_are_reported(corpus, caplog):
    """AMSITrace.etl's logfile header says 3 events were lost: a warning says so."""
    f, _ = read_all(corpus / "etl-parser/AMSITrace.etl")
    assert f.header.events_lost == 3 and f.stats.header_events_lost == 3
    assert f.stats.events_lost_flag_buffers == 0
    assert f.skipped.counts == {"event(s) lost (logfile header)": 3} and f.skipped.total == 0
    line = f.skipped.line()
    assert (
        line == f"{corpus / 'etl-parser/AMSITrace.etl'}: the logger reports 3 event(s) lost (logfile header)"
    )
    assert any(r.getMessage() == line for r in caplog.records)


def test_buffer_statistics_of_compressed_files(corpus):
    for name, buffers in [(X64, 360), (X86, 276)]:
        f, _ = read_all(corpus / name)
        assert f.header.compressed
        assert f.stats.buffers == buffers
        assert f.stats.compressed_buffers == buffers - 1  # the header buffer is plain
        assert f.stats.events_lost_flag_buffers == f.stats.buffer_lost_flag_buffers == 0


# ---------------------------------------------------------------- logfile header, as PerfView shows it


def perfview_header(corpus, name):
    line = (corpus / name.replace(".etl", ".baseline.txt")).read_text(encoding="utf-8").splitlines()[0]
    assert "Windows Kernel/EventTrace " in line
    return dict(re.findall(r"(\w+)=([^;]*);", line))


def perfview_time(filetime: int) -> str:
    """A FILETIME as the baseline prints it: yy/mm/dd HH:MM:SS.ff (cut, then '...')."""
    t = dt.datetime(1601, 1, 1) + dt.timedelta(microseconds=filetime // 10)
    return t.strftime("%y/%m/%d %H:%M:%S.%f")[:20] + "..."


@pytest.mark.parametrize("name", [X64, X86])
def test_logfile_header_equals_perfview(corpus, name):
    pv = perfview_header(corpus, name)
    with open_etl(corpus / name) as f:
        h = f.header

    def num(key):
        return int(pv[key].replace(",", ""))

    assert h.pointer_size == num("PointerSize") == 8
    assert h.clock_type == num("ReservedFlags") == 1
    assert h.perf_freq == num("PerfFreq") == 10_000_000
    assert h.cpu_speed_mhz == num("CPUSpeed") == 3592
    assert h.number_of_processors == num("NumberOfProcessors") == 8
    assert h.buffers_written == num("BuffersWritten")
    assert h.buffer_size == num("BufferSize") == 65536
    assert h.log_file_mode == num("LogFileMode")
    assert h.events_lost == num("EventsLost") and h.buffers_lost == num("BuffersLost")
    assert h.timezone_bias_minutes == num("UtcOffsetMinutes") == 480
    assert h.logger_name == pv["SessionName"] == "Relogger"
    assert h.logfile_name == pv["LogFileName"] == "[multiple files]"
    assert perfview_time(h.start_time) == pv["StartTime"]
    assert perfview_time(h.boot_time) == pv["BootTime"]
    assert perfview_time(h.end_time) == pv["EndTime"]
    assert h.os_version == (6, 2) and h.os_build == 9200


def test_x64_start_time_and_clock(corpus):
    with open_etl(corpus / X64) as f:
        h = f.header
        assert h.start_time == 132404548206236167
        assert h.header_timestamp == 1942608875
        b = next(f.batches())
    assert (
        dt.datetime.fromtimestamp(b.time[0] / 1e9, dt.UTC).isoformat() == "2020-07-29T00:07:00.623617+00:00"
    )
    assert b.time[0] == filetime_to_ns(h.start_time)  # the header record is the anchor


def test_small_file_has_32bit_headers(corpus):
    """smallEtlFile.etl: a SYSTEM32 logfile header (0x110-byte layout), QPC at 3,117,777 Hz."""
    f, batches = read_all(corpus / "perfview/smallEtlFile.etl")
    h = f.header
    assert h.pointer_size == 4 and h.perf_freq == 3_117_777 and h.clock_type == 1
    assert h.logger_name == "PerfWatsonGCHeapETLSession688" and h.logfile_name == "ReloggedFile.ETL"
    assert h.cpu_speed_mhz == 3193 and h.os_build == 10586
    htype = concat(batches, "htype")
    assert list(htype) == [SYSTEM32, EVENT_HEADER32]
    assert list(concat(batches, "pointer_size")) == [4, 4]


@pytest.mark.parametrize("name", [X64, X86])
def test_process_rundown_times_and_sizes_equal_perfview_baseline(corpus, name):
    """Every Process/DCStart the baseline prints: same relative time (ms, 3 decimals) and DataLen."""
    text = (corpus / name.replace(".etl", ".baseline.txt")).read_text(encoding="utf-8")
    expected = [
        (float(t), int(n))
        for t, n in re.findall(
            r"^EVENT ([\d.]+): Windows Kernel/Process/DCStart .*?DataLen=(\d+);", text, re.MULTILINE
        )
    ]
    assert len(expected) == 5
    f, batches = read_all(corpus / name)
    group, opcode = concat(batches, "group"), concat(batches, "opcode")
    sel = (group == 3) & (opcode == 3)
    rel_ms = (concat(batches, "time")[sel] - filetime_to_ns(f.header.start_time)) / 1e6
    sizes = concat(batches, "payload_size")[sel]
    for (t, n), ours, size in zip(expected, rel_ms, sizes):
        assert abs(ours - t) <= 0.001, (t, ours)
        assert size == n
    assert (concat(batches, "provider")[sel] == f.guids.index(guids.PROCESS_KERNEL)).all()


def test_x86_trace_mixes_64bit_kernel_and_32bit_user_headers(corpus):
    """The 'x86' file is a 64-bit kernel trace (pointer size 8) with 32-bit processes' EVENT_HEADER32."""
    _f, batches = read_all(corpus / X86)
    htype = concat(batches, "htype")
    kinds = dict(zip(*np.unique(htype, return_counts=True)))
    assert kinds == {
        SYSTEM32: 2,
        SYSTEM64: 4472,
        FULL_HEADER32: 73,
        PERFINFO64: 115_091,
        EVENT_HEADER32: 39_425,
        EVENT_HEADER64: 1073,
        FULL_HEADER64: 8162,
    }
    ps = concat(batches, "pointer_size")
    assert (ps[htype == EVENT_HEADER32] == 4).all() and (ps[htype == PERFINFO64] == 8).all()


# ---------------------------------------------------------------- providers, event ids, extended items


def test_kernel_network_event_ids(corpus):
    """tx/KernelNetwork.etl: 8,923 Kernel-Network events with the README's per-id counts."""
    f, batches = read_all(corpus / "tx/KernelNetwork.etl")
    b = batches[0]
    mask = np.concatenate([x.provider_mask(guids.KERNEL_NETWORK) for x in batches])
    ids = concat(batches, "event_id")[mask]
    assert mask.sum() == 8923
    assert dict(zip(*map(list, np.unique(ids, return_counts=True)))) == {
        10: 575,
        11: 7968,
        26: 26,
        27: 134,
        29: 2,
        42: 8,
        43: 149,
        59: 61,
    }
    assert b.guids is f.guids


def test_pktmon_events_and_kernel_process_events(corpus):
    _, batches = read_all(corpus / "pktmon/demikernel-PktMon.etl")
    pk = np.concatenate([b.provider_mask(guids.PKTMON) for b in batches])
    assert pk.sum() == 403 and (concat(batches, "event_id")[pk] == 160).sum() == 114
    f, batches = read_all(corpus / "tx/Process.etl")
    kp = concat(batches, "provider") == f.guids.index(uuid.UUID("22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716"))
    ids = concat(batches, "event_id")[kp]
    assert kp.sum() == 10_343 and set(ids) == set(range(1, 11))


def test_extended_items_are_skipped_to_the_payload(corpus):
    """EVENT_HEADER records with EXTENDED_INFO: the payload starts after the linked items."""
    _f, batches = read_all(corpus / "misc/msbuild-PerfViewData.etl")
    b = batches[0]
    ext = np.isin(b.htype, (EVENT_HEADER32, EVENT_HEADER64)) & (
        np.frombuffer(b.data, np.uint16)[(b.offset + 4) // 2] & structs.EH_EXTENDED_INFO > 0
    )
    assert ext.sum() == 5795  # every EVENT_HEADER of this file has one item
    i = int(np.nonzero(ext)[0][0])
    off = int(b.offset[i])
    item = structs.ext_item_header.parse(b.data[off + 0x50 : off + 0x58])
    assert item.linkage & 1 == 0
    assert b.payload_offset[i] == off + 0x50 + item.size
    hdr = structs.structs_for(4).event_header.parse(b.data[off : off + 0x50])
    assert b.payload_size[i] == hdr.size - 0x50 - item.size
    # x64: three records carry two linked items (RELATED_ACTIVITYID then STACK_TRACE64)
    _, batches = read_all(corpus / X64)
    two = 0
    for b in batches:
        for i in np.nonzero(b.payload_offset - b.offset > 0x50)[0]:
            off = int(b.offset[i])
            first = structs.ext_item_header.parse(b.data[off + 0x50 : off + 0x58])
            if first.linkage & 1:
                second = structs.ext_item_header.parse(b.data[off + 0x50 + first.size :][:8])
                assert (first.ext_type, second.ext_type) == (
                    structs.EXT_RELATED_ACTIVITYID,
                    structs.EXT_STACK_TRACE64,
                )
                assert b.payload_offset[i] == off + 0x50 + first.size + second.size
                two += 1
    assert two == 3


def test_kernel_groups_map_to_providers(corpus):
    f, batches = read_all(corpus / X64)
    group, prov, htype = concat(batches, "group"), concat(batches, "provider"), concat(batches, "htype")
    tcp = group == 6
    assert (prov[tcp] == f.guids.index(guids.TCPIP_KERNEL)).all() and tcp.sum() > 0
    unknown = (group >= 0) & ~np.isin(group, list(guids.KERNEL_GROUPS))
    assert unknown.sum() > 0 and (prov[unknown] == -1).all()
    assert (group[np.isin(htype, (EVENT_HEADER32, EVENT_HEADER64))] == -1).all()
    # PerfInfo headers have no thread/process id
    assert (concat(batches, "pid")[htype == PERFINFO64] == 0xFFFFFFFF).all()


# ---------------------------------------------------------------- C accelerator vs pure Python


def compressed_buffers(corpus):
    for path in all_etl(corpus):
        data = path.read_bytes()
        off = 0
        while off + 0x48 <= len(data):
            bh = structs.buffer_header.parse(data[off : off + 0x48])
            if bh.buffer_flag & structs.FLAG_COMPRESSED:
                yield path, off, data[off + 0x48 : off + bh.buffer_size], bh.filled_bytes - 0x48
            off += bh.buffer_size


@pytest.mark.skipif(not compression.HAVE_C, reason="C accelerator not built")
def test_c_and_python_decompression_identical_on_every_compressed_buffer(corpus):
    n = 0
    for path, off, src, size in compressed_buffers(corpus):
        assert compression.decompress_c(src, size) == compression.decompress_py(src, size), (path, off)
        n += 1
    assert n == 668


@pytest.mark.skipif(not compression.HAVE_C, reason="C accelerator not built")
def test_c_decompression_rejects_damage_like_python(corpus):
    _, _, src, size = next(compressed_buffers(corpus))
    for bad_src, bad_size in [(src[: len(src) // 2], size), (src, size - 1), (b"\xff" * 64, size)]:
        with pytest.raises(compression.DecompressionError):
            compression.decompress_c(bad_src, bad_size)
        with pytest.raises(compression.DecompressionError):
            compression.decompress_py(bad_src, bad_size)


@pytest.mark.skipif(container._speedups is None, reason="C accelerator not built")
@pytest.mark.parametrize("name", [X86, "misc/ebpf-for-windows.etl", "tx/HTTP_Server.etl"])
def test_c_and_python_paths_give_identical_batches(corpus, name, monkeypatch):
    _, fast = read_all(
        corpus / name,
    )
    monkeypatch.setattr(container, "walk", container.walk_py)
    monkeypatch.setattr(compression, "_speedups", None)
    _, slow = read_all(corpus / name)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert a.data == b.data
        for col in container.RecordBatch.__dataclass_fields__:
            if col not in ("data", "guids"):
                assert np.array_equal(getattr(a, col), getattr(b, col)), col


def rows_of(batches, wanted=None):
    """Every column of the batches' rows (only those of the ``wanted`` providers, when given), providers
    as GUIDs and payloads as bytes: comparable across reads whatever their provider tables."""
    out: dict = {}
    for b in batches:
        gids = np.array([str(b.guids[p]) if p >= 0 else "" for p in b.provider], dtype=object)
        keep = np.ones(len(b), bool) if wanted is None else np.isin(gids, [str(g) for g in wanted])
        for col in container.RecordBatch.__dataclass_fields__:
            if col not in ("data", "guids", "provider", "offset", "payload_offset"):
                out.setdefault(col, []).append(getattr(b, col)[keep])
        out.setdefault("provider", []).append(gids[keep])
        pay = [bytes(b.data[o : o + s]) for o, s in zip(b.payload_offset[keep], b.payload_size[keep])]
        out.setdefault("payload", []).append(np.array(pay, dtype=object))
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.mark.parametrize("walker", ["c", "python"])
@pytest.mark.parametrize(
    "name", [X64, X86, "tx/KernelNetwork.etl", "tx/Process.etl", "etl-parser/ShutdownPerfDiagLogger.etl"]
)
def test_provider_selection_gives_the_rows_of_those_providers(corpus, name, walker, monkeypatch):
    """``batches(providers=...)`` (what ``events`` and ``frames`` read) holds exactly the rows of those
    providers of a full read, every column equal, file-wide record numbers kept; the statistics count
    every record. The C selection and its Python reference agree (the python case runs without C)."""
    from etwtools.parsers.etl.events import PROVIDERS

    _, full = read_all(corpus / name)
    wanted = rows_of(full, PROVIDERS)
    if walker == "python":
        monkeypatch.setattr(container, "_speedups", None)
        monkeypatch.setattr(container, "walk", container.walk_py)
    elif container._speedups is None:
        pytest.skip("the C accelerator is not built (tests/test_accelerators.py fails in CI)")
    with open_etl(corpus / name) as f:
        got = rows_of(list(f.batches(providers=PROVIDERS)))
        records = f.stats.records
    assert records == sum(len(b) for b in full)
    assert len(got["record"]) == len(wanted["record"]) > 0
    for col, values in wanted.items():
        assert np.array_equal(got[col], values), col


def test_batch_buffers_are_reused_only_when_nothing_holds_them(corpus):
    """Batches kept by a reader keep their bytes (their buffer is not reused); batches dropped as the
    next one comes give their buffer back: a read holds at most two whatever the file's size."""
    path = corpus / X64
    with open_etl(path) as f:
        kept = list(f.batches(chunk_bytes=1 << 20))
    assert len(kept) > 4
    with open_etl(path) as f:
        seen = set()
        for b, k in zip(f.batches(chunk_bytes=1 << 20), kept):
            assert all(
                bytes(b.data[o : o + s]) == bytes(k.data[o : o + s])
                for o, s in zip(b.payload_offset, b.payload_size)
            )
            seen.add(id(b.data))
    assert len({id(b.data) for b in kept}) == len(kept) and len(seen) <= 3


@pytest.mark.skipif(container._speedups is None, reason="C accelerator not built")
def test_c_and_python_walkers_identical_on_damaged_segments(corpus):
    """Both walkers find the same records and the same damage (with resync) on corrupted buffers."""
    raw = (corpus / "tx/KernelNetwork.etl").read_bytes()
    rng = np.random.default_rng(7)
    for trial in range(60):
        seg = bytearray(raw[0x2048 : 0x2000 + 0x1FF0])
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, len(seg) - 4))
            seg[pos : pos + 2] = rng.integers(0, 256, 2, dtype=np.uint8).tobytes()
        data = bytes(seg) + bytes(8)
        starts, ends = np.array([0], np.int64), np.array([len(seg)], np.int64)
        a, b = container.walk_c(data, starts, ends), container.walk_py(data, starts, ends)
        assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] == b[3], trial


# ---------------------------------------------------------------- chunks, progress, memory


def test_small_chunks_give_the_same_records(corpus):
    _, big = read_all(corpus / X64)
    with open_etl(corpus / X64) as f:
        small = list(f.batches(chunk_bytes=200_000))
    assert len(small) > 10 * len(big)
    for col in ("record", "htype", "time", "pid", "provider", "payload_size", "file_offset"):
        assert np.array_equal(concat(big, col), concat(small, col)), col
    assert big[0].guids == small[0].guids  # provider indexes follow first appearance in the file


def test_progress_reports_monotonic_bytes(corpus):
    seen = []
    with EtlFile(corpus / X64, progress=lambda done, total: seen.append((done, total))) as f:
        for _ in f.batches(chunk_bytes=1 << 20):
            pass
    size = (corpus / X64).stat().st_size
    assert seen[-1] == (size, size) and len(seen) > 3
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))


def test_closed_file_refuses_iteration(corpus):
    f = open_etl(corpus / "perfview/smallEtlFile.etl")
    f.close()
    with pytest.raises(ValueError):
        next(f.batches())


# ---------------------------------------------------------------- clock


def test_clock_is_exact_integer_arithmetic():
    rng = np.random.default_rng(1)
    for clock_type, freq, mhz in [
        (1, 10_000_000, 0),
        (1, 2_994_853, 0),
        (1, 3_117_777, 0),
        (2, 0, 0),
        (3, 0, 3592),
        (1, 1 << 39, 0),
    ]:
        c = Clock.from_header(clock_type, freq, mhz, 132404548206236167, 1_942_608_875)
        raw = rng.integers(0, 1 << 50, 2000, dtype=np.int64)  # years of ticks; ns stay in int64
        raw[:3] = [1_942_608_875, 0, 1_942_608_874]
        fast = c.to_ns(raw)
        assert [int(x) for x in fast] == [c.raw_to_ns(int(r)) for r in raw]
    assert c.to_ns(np.array([1_942_608_875]))[0] == filetime_to_ns(132404548206236167)


def test_clock_scales():
    start = 132404548206236167
    qpc = Clock.from_header(1, 3_000_000, 0, start, 100)
    assert qpc.raw_to_ns(100 + 3_000_000) - qpc.raw_to_ns(100) == 1_000_000_000
    sys_ = Clock.from_header(2, 0, 0, start, start)
    assert sys_.raw_to_ns(start + 10) - sys_.raw_to_ns(start) == 1000
    cyc = Clock.from_header(3, 0, 2000, start, 0)
    assert cyc.raw_to_ns(2_000_000_000) - cyc.raw_to_ns(0) == 1_000_000_000
    for bad in [(0, 1, 1), (4, 1, 1), (1, 0, 0), (3, 0, 0)]:
        with pytest.raises(ValueError):
            Clock.from_header(*bad, start, 0)


# ---------------------------------------------------------------- structs build what they parse


def test_structs_parse_and_build_the_real_logfile_headers(corpus):
    for name, ps in [(X64, 8), ("perfview/smallEtlFile.etl", 4), ("tx/KernelNetwork.etl", 8)]:
        raw = (corpus / name).read_bytes()
        s = structs.structs_for(ps)
        sh = s.system_header.parse(raw[0x48:0x68])
        lf = s.trace_logfile_header.parse(raw[0x68 : 0x48 + sh.size])
        rebuilt = s.system_header.build(sh) + s.trace_logfile_header.build(lf)
        assert rebuilt == raw[0x48 : 0x48 + len(rebuilt)]
        assert s.logfile_header_size == (0x118 if ps == 8 else 0x110)
    assert structs.structs_for(8) is structs.structs_for(8)


@pytest.mark.parametrize("ps", [4, 8])
def test_synthetic_file_of_every_header_type_round_trips(tmp_path, ps):
    """Built with the project's own structs (no public file has INSTANCE or COMPACT records)."""
    s = structs.structs_for(ps)
    g = uuid.UUID("2ed6006e-4729-4609-b423-3ee7bcd678ef")
    recs = [
        structs.build_record(
            s.system_header,
            b"S" * 9,
            opcode=10,
            group=6,
            version=2,
            thread_id=7,
            process_id=1234,
            timestamp=1_000,
        ),
        structs.build_record(
            s.compact_header, b"C" * 4, opcode=11, group=8, thread_id=8, process_id=99, timestamp=2_000
        ),
        structs.build_record(s.perfinfo_header, b"P" * 3, opcode=3, group=3, version=4, timestamp=3_000),
        structs.build_record(
            s.full_header,
            b"F" * 5,
            opcode=1,
            level=4,
            version=3,
            thread_id=9,
            process_id=42,
            timestamp=4_000,
            guid=g,
        ),
        structs.build_record(
            s.instance_header,
            b"I" * 2,
            opcode=2,
            version=1,
            thread_id=10,
            process_id=43,
            timestamp=5_000,
            guid=g,
        ),
        structs.build_record(
            s.event_header,
            b"E" * 11,
            [(structs.EXT_RELATED_ACTIVITYID, bytes(16)), (structs.EXT_SID, b"\x01" * 12)],
            id=1001,
            version=1,
            level=4,
            opcode=0,
            keyword=0x80000001,
            thread_id=11,
            process_id=44,
            timestamp=6_000,
            provider_id=g,
        ),
    ]
    start = 132404548206236167
    path = tmp_path / "synthetic.etl"
    path.write_bytes(
        structs.build_etl(
            recs * 3,
            pointer_size=ps,
            buffer_size=0x200,
            start_time=start,
            timestamp=500,
            cpu_speed_mhz=2000,
            number_of_processors=4,
        )
    )
    f, batches = read_all(path)
    assert f.header.pointer_size == ps and f.header.buffer_size == 0x200
    assert f.stats.buffers == f.header.buffers_written > 2 and not f.skipped and not f.stats.notes()
    n = sum(len(b) for b in batches)
    assert n == 1 + 18

    def col(name):
        return concat(batches, name)[1:7]

    t32 = ps == 4
    assert list(col("htype")) == [
        SYSTEM32 if t32 else SYSTEM64,
        3 if t32 else COMPACT64,
        PERFINFO32 if t32 else PERFINFO64,
        FULL_HEADER32 if t32 else FULL_HEADER64,
        INSTANCE32 if t32 else INSTANCE64,
        EVENT_HEADER32 if t32 else EVENT_HEADER64,
    ]
    assert list(col("pointer_size")) == [ps] * 6
    assert list(col("pid")) == [1234, 99, 0xFFFFFFFF, 42, 43, 44]
    assert list(col("tid")) == [7, 8, 0xFFFFFFFF, 9, 10, 11]
    assert list(col("opcode")) == [10, 11, 3, 1, 2, 0]
    assert list(col("version")) == [2, 2, 4, 3, 1, 1]
    assert list(col("group")) == [6, 8, 3, -1, -1, -1]
    assert list(col("event_id")) == [0, 0, 0, 0, 0, 1001]
    assert list(col("keyword")) == [0, 0, 0, 0, 0, 0x80000001]
    assert list(col("payload_size")) == [9, 4, 3, 5, 2, 11]
    prov = [f.guids[i] if i >= 0 else None for i in col("provider")]
    assert prov == [guids.TCPIP_KERNEL, guids.UDPIP_KERNEL, guids.PROCESS_KERNEL, g, g, g]
    # QPC at the default 10 MHz: one raw tick = 100 ns after the anchor (raw 500 = start_time)
    assert list(col("time") - filetime_to_ns(start)) == [
        (t - 500) * 100 for t in (1000, 2000, 3000, 4000, 5000, 6000)
    ]
    payloads = []
    for b in batches:
        payloads += [b.payload(i) for i in range(len(b))]
    assert payloads[1:7] == [b"S" * 9, b"C" * 4, b"P" * 3, b"F" * 5, b"I" * 2, b"E" * 11]


@pytest.mark.parametrize(
    "clock_type, fields, expected_ns",
    [
        (2, {}, 100),  # system time: raw counts 100 ns
        (3, {"cpu_speed_mhz": 2500}, 0.4),  # CPU cycles at 2.5 GHz
    ],
)
def test_synthetic_clock_types(tmp_path, clock_type, fields, expected_ns):
    s = structs.structs_for(8)
    recs = [
        structs.build_record(s.system_header, b"", opcode=1, group=3, timestamp=10_000 + 10_000 * i)
        for i in range(3)
    ]
    path = tmp_path / "clock.etl"
    path.write_bytes(
        structs.build_etl(
            recs, start_time=132404548206236167, timestamp=10_000, clock_type=clock_type, **fields
        )
    )
    _, batches = read_all(path)
    t = concat(batches, "time")
    assert list(np.diff(t)) == [0] + [int(10_000 * expected_ns)] * 2  # header record, then 3 records


def test_build_record_rejects_oversized_records():
    with pytest.raises(ValueError):
        structs.build_record(structs.structs_for(8).system_header, bytes(70_000), opcode=0, group=0)
    with pytest.raises(ValueError):
        structs.build_buffer([bytes(0x200)], 0x200)


def test_marker_layout_of_real_records(corpus):
    """Size is at offset 4 for SYSTEM/PERFINFO headers and at offset 0 otherwise; flags byte is 0xC0."""
    _, batches = read_all(corpus / X64)
    b = batches[1]
    u8 = np.frombuffer(b.data, np.uint8)
    assert (u8[b.offset + 3] == structs.MARKER_FLAGS).all()
    i = int(np.nonzero(b.htype == PERFINFO64)[0][0])
    off = int(b.offset[i])
    size4 = struct.unpack_from("<H", b.data, off + 4)[0]
    assert b.payload_size[i] == size4 - 0x10
    j = int(np.nonzero(b.htype == EVENT_HEADER32)[0][0])
    off = int(b.offset[j])
    size0 = struct.unpack_from("<H", b.data, off)[0]
    assert b.payload_offset[j] - off + b.payload_size[j] == size0


def test_extended_system_header_bits_move_the_payload(tmp_path):
    """FORMATS.md: marker bit 0x8000 adds 8 header bytes, bits 0x0700 add 8 each. No corpus file sets
    them (checked: every SYSTEM/COMPACT/PERFINFO version word is < 0x100), so this file is built."""
    s = structs.structs_for(8)
    recs = [
        structs.build_record(s.system_header, bytes(8) + b"PAYLOAD", version=0x8002, opcode=10, group=6),
        structs.build_record(s.perfinfo_header, bytes(16) + b"XY", version=0x0203, opcode=1, group=3),
        structs.build_record(s.compact_header, bytes(32) + b"Z", version=0x8302, opcode=2, group=8),
    ]
    path = tmp_path / "ext.etl"
    path.write_bytes(structs.build_etl(recs, start_time=132404548206236167))
    f, batches = read_all(path)
    b = batches[0]
    assert [b.payload(i) for i in range(1, 4)] == [b"PAYLOAD", b"XY", b"Z"]
    assert list(b.version[1:]) == [2, 3, 2] and not f.skipped and not f.stats.notes()


_KINDS = [f"{kind}_header" for kind in structs.HEADER_KINDS]


@st.composite
def synthetic_records(draw):
    """(kind, fields, payload, ext items) of records built with the project's structs."""
    out = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(_KINDS))
        payload = draw(st.binary(max_size=300))
        fields = {"timestamp": draw(st.integers(0, 1 << 40))}
        ext = []
        if kind in ("system_header", "compact_header", "perfinfo_header"):
            fields |= {
                "opcode": draw(st.integers(0, 255)),
                "group": draw(st.integers(0, 255)),
                "version": draw(st.integers(0, 255)),
            }
        elif kind == "event_header":
            fields |= {
                "id": draw(st.integers(0, 0xFFFF)),
                "provider_id": uuid.UUID(int=draw(st.integers(1, 5))),
                "keyword": draw(st.integers(0, 2**64 - 1)),
                "opcode": draw(st.integers(0, 255)),
            }
            ext = draw(st.lists(st.tuples(st.integers(1, 13), st.binary(max_size=40)), max_size=3))
        else:
            fields |= {"opcode": draw(st.integers(0, 255)), "guid": uuid.UUID(int=draw(st.integers(1, 5)))}
        if kind != "perfinfo_header":
            fields |= {
                "process_id": draw(st.integers(0, 2**32 - 1)),
                "thread_id": draw(st.integers(0, 2**32 - 1)),
            }
        out.append((kind, fields, payload, ext))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=synthetic_records(), ps=st.sampled_from([4, 8]), buffer_size=st.sampled_from([0x400, 0x1000]))
def test_property_built_records_read_back(tmp_path, recs, ps, buffer_size):
    """Any sequence of built records reads back with the fields and payloads it was built with."""
    s = structs.structs_for(ps)
    raw = [
        structs.build_record(getattr(s, kind), payload, ext, **fields) for kind, fields, payload, ext in recs
    ]
    path = tmp_path / "prop.etl"
    path.write_bytes(
        structs.build_etl(raw, pointer_size=ps, buffer_size=buffer_size, start_time=132404548206236167)
    )
    f, batches = read_all(path)
    assert not f.skipped and not f.stats.notes()
    rows = [(b, i) for b in batches for i in range(len(b))][1:]
    assert len(rows) == len(recs)
    for (b, i), (kind, fields, payload, _) in zip(rows, recs):
        assert b.payload(i) == payload
        assert b.opcode[i] == fields["opcode"]
        assert b.time[i] == filetime_to_ns(132404548206236167) + fields["timestamp"] * 100  # 10 MHz QPC
        assert b.pid[i] == fields.get("process_id", 0xFFFFFFFF)
        if kind == "event_header":
            assert (b.event_id[i], b.keyword[i]) == (fields["id"], fields["keyword"])
            assert f.guids[b.provider[i]] == fields["provider_id"]
        elif kind in ("full_header", "instance_header"):
            assert f.guids[b.provider[i]] == fields["guid"]
        else:
            assert (b.group[i], b.version[i]) == (fields["group"], fields["version"])


def _derived_tables() -> tuple[bytes, bytes]:
    """Header size and size-at-4 flag per header type, from the construct structs (256 entries each)."""
    sizes, at4 = bytearray(256), bytearray(256)
    for htype, pointer_size in structs.POINTER_SIZES.items():
        header = structs.structs_for(pointer_size).header_for(htype)
        sizes[htype] = header.sizeof()
        at4[htype] = header.subcons[0].name != "size"
    return bytes(sizes), bytes(at4)


def test_header_sizes_are_derived_from_the_structs_and_used_by_the_walk():
    """One header table: structs.HEADER_SIZES is the size of each header struct, and the container's walk
    (its per-type lookup tables) uses exactly it; every record header type of records.py has an entry."""
    sizes, at4 = _derived_tables()
    assert {t: sizes[t] for t in structs.HEADER_SIZES} == structs.HEADER_SIZES
    assert set(structs.HEADER_SIZES) == HEADER_TYPES - {MESSAGE}
    assert set(np.flatnonzero(container._KIND)) == set(structs.HEADER_SIZES)  # every kind gathered
    assert bytes(container._HDR_LEN.astype(np.uint8)) == sizes
    assert bytes(container._SIZE_AT_4.astype(np.uint8)) == at4
    assert structs.SIZE_AT_4 == {t for t in range(256) if at4[t]}
    # a record built from each struct is walked to a payload right after its header
    for htype, pointer_size in structs.POINTER_SIZES.items():
        header = structs.structs_for(pointer_size).header_for(htype)
        fields = {"opcode": 1, "group": 2, "guid": uuid.UUID(int=1), "provider_id": uuid.UUID(int=1), "id": 3}
        rec = structs.build_record(
            header, b"\x11" * 8, **{k: v for k, v in fields.items() if k in {s.name for s in header.subcons}}
        )
        assert header.parse(rec).header_type == htype
        assert len(rec) == sizes[htype] + 8


def test_c_walker_header_tables_equal_the_derived_ones():
    """The C walker keeps its own tables (C cannot import Python constants at compile time): they must
    equal the ones derived from the structs."""
    if container._speedups is None:
        pytest.skip("etwtools.parsers.etl._speedups not built (tests/test_accelerators.py fails in CI)")
    assert container._speedups.header_tables() == _derived_tables()


@pytest.mark.skipif(container._speedups is None, reason="C accelerator not built")
def test_c_lay_out_places_parts_and_marks_the_gaps():
    """The chunk layout in C (copies made without the interpreter) equals the slice assignments it
    replaces, leaves parts given as None alone, and refuses parts that do not fit their place."""
    rng = np.random.default_rng(7)
    sizes = [13, 0, 64, 7, 1000]
    parts = [rng.integers(0, 256, n, np.uint8).tobytes() for n in sizes]
    starts, ends, pos = [], [], 0
    for n in sizes:
        starts.append(pos)
        ends.append(pos + n)
        pos += n + (-n & 7)
    stop = pos + 64
    want = bytearray(b"\x00" * (stop + 8))
    got = bytearray(want)
    for i, part in enumerate(parts):
        want[starts[i] : ends[i]] = part if i != 2 else bytes(len(part))
        want[ends[i] : starts[i + 1] if i + 1 < len(parts) else stop] = b"\xff" * (
            (starts[i + 1] if i + 1 < len(parts) else stop) - ends[i]
        )
    given = [memoryview(p) if i != 2 else None for i, p in enumerate(parts)]
    container._speedups.lay_out(got, given, np.array(starts, np.int64), np.array(ends, np.int64), stop)
    assert got == want
    with pytest.raises(ValueError, match="part 1 holds 3 bytes"):
        container._speedups.lay_out(
            got, [None, b"abc"], np.array([0, 8], np.int64), np.array([8, 16], np.int64), 16
        )
    with pytest.raises(ValueError, match="out of order"):
        container._speedups.lay_out(
            got, [None, None], np.array([8, 0], np.int64), np.array([16, 8], np.int64), 16
        )


@pytest.mark.skipif(container._columnar is None, reason="the C accelerator is not built")
def test_c_header_fields_equal_the_numpy_reference_on_the_corpus(corpus):
    """Every record header of every corpus ETL file: the C pass gives the numpy reference's columns."""
    files = sorted(corpus.rglob("*.etl"))
    assert len(files) >= 10
    records = 0
    for path in files:
        with container.EtlFile(path) as etl:
            for batch in etl.batches(1 << 20):
                c = container._header_fields(batch.data, batch.offset, etl._group_provider)
                py = container._header_fields_py(batch.data, batch.offset, etl._group_provider)
                for (name, _), x, y in zip(container.HEADER_OUTS, c, py):
                    assert np.array_equal(x, y), f"{path.name}: {name}"
                records += len(batch)
    assert records > 400_000


def test_heap_is_trimmed_once_the_process_has_grown(monkeypatch):
    """A trim hands back every free page of the C heap and the next chunks fault them in again, so the
    reader trims only once resident memory has grown by ``TRIM_GROWTH`` since the last trim (after which
    it measures again)."""
    trims: list[int] = []
    monkeypatch.setattr(container, "_trim_heap_fn", trims.append)
    readings = iter(mb << 20 for mb in [100, 110, 131, 120, 125, 152, 160, 170])
    monkeypatch.setattr(container, "_resident", lambda: next(readings))
    monkeypatch.setattr(container, "TRIM_GROWTH", 20 << 20)
    trim = container._Trimmer()  # 100 MB at the start
    for _ in range(5):
        trim()  # 110: no; 131: trim, then 120; 125: no; 152: trim, then 160; 170: no
    assert trims == [0, 0]
    assert trim.after == 160 << 20


def test_reading_a_file_trims_by_growth(corpus, monkeypatch):
    """The reader's trims follow ``TRIM_GROWTH``: none when the process may grow without bound, some when
    any growth counts (a real file, read in small chunks)."""
    if container._trim_heap_fn is container._no_trim or container._resident() is None:
        pytest.skip("no glibc malloc_trim or /proc/self/statm on this system")
    trims: list[int] = []
    real = container._trim_heap_fn
    monkeypatch.setattr(container, "_trim_heap_fn", lambda pad: trims.append(pad) or real(pad))
    counts = {}
    for growth in (1 << 50, -(1 << 50)):
        monkeypatch.setattr(container, "TRIM_GROWTH", growth)
        trims.clear()
        with EtlFile(corpus / X64) as f:
            records = sum(len(b) for b in f.batches(1 << 20))
        counts[growth] = len(trims)
    assert records > 100_000
    assert counts[1 << 50] == 0
    assert counts[-(1 << 50)] >= 5  # every chunk
