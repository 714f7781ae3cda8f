"""The layouts the project ships for single events (parsers/etl/event_layouts.txt): the form, pointer sizes,
counted and open-ended arrays, and every record of those events in the PerfView corpus files decoded (the
classic events' values are compared with PerfView's baselines in tests/test_perfview_baselines.py; the .NET
events', which PerfView's baselines leave out, with the trace's own method events here)."""

from __future__ import annotations

import struct
import uuid

import numpy as np
import polars as pl
import pytest

from etwtools.parsers.etl import columnar
from etwtools.parsers.etl import layouts as L
from etwtools.parsers.etl.container import open_etl
from etwtools.parsers.etl.guids import KERNEL_TRACE_CONTROL

GROUPS = {"PerfInfo": 0x0F, "Image": 0x14}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("class Image 2 3 Image_Load", "line 1: template Image_Load not written before"),
        ("template T a:u32\nclass Nowhere 2 3 T", "line 2: badly formed hexadecimal UUID string"),
        ("template T a:u32\nclass Image 2 3,3 T", "line 2: class Image v2 opcode 3 written twice"),
        ("template T a:u32\ntemplate T b:u8", "line 2: template T written twice"),
        ("template T a:u33", "line 1: field 'a:u33': unknown kind"),
        ("class Image 2 T", "line 1: not a source, template, class or event line"),
        (
            "template T n:u8 a:u32s[m]",
            "line 1: field 'a:u32s\\[m\\]': its count field 'm' is not an earlier field",
        ),
        (
            "template T a:u8\nevent e13c0d23-ccbc-4e12-931b-d9cc2eee27e4 82 0 T\nevent e13c0d23-ccbc-4e12-931b-d9cc2eee27e4 82 0 T",
            "line 3: event 82 v0 written twice",
        ),
    ],
)
def test_class_file_errors_name_the_line(text, error):
    with pytest.raises(ValueError, match=error):
        L.parse_own(text, "x.txt", GROUPS)


def test_classes_are_keyed_by_kernel_group_or_provider_guid_and_events_by_id():
    text = (
        "template T a:ptr b:u32\nclass PerfInfo 2 46 T\nclass b3e675d7-2554-4f18-830b-2762732560de 2 0,36 T\n"
        "event e13c0d23-ccbc-4e12-931b-d9cc2eee27e4 82 0 T"
    )
    own = L.parse_own(text, "x.txt", GROUPS)
    assert list(own.events) == [(uuid.UUID("e13c0d23-ccbc-4e12-931b-d9cc2eee27e4"), 82, 0)]
    got = own.classes
    assert sorted(got, key=str) == sorted(
        [(0x0F, 2, 46), (KERNEL_TRACE_CONTROL, 2, 0), (KERNEL_TRACE_CONTROL, 2, 36)], key=str
    )
    assert L.classic_layout(0x0F, 2, 46, 8) is not None and L.classic_layout(0x0F, 3, 46, 8) is None


def test_pointers_are_sized_per_record():
    """An Image load of a 32-bit trace (pointers of 4 bytes): the shipped layout, its ptr fields as u32,
    fits the payload exactly and reads each field at its place (payload built field by field here: the
    corpus has no 32-bit kernel trace)."""
    lay = L.classic_layout(0x14, 2, 10, 4)
    assert lay is not None and [f.kind for f in lay.fields[:3]] == ["u32", "u32", "u32"]
    name = "\\Windows\\System32\\kernel32.dll"
    raw = struct.pack("<11I", 0x75A0000, 0xD0000, 4321, 0x12345, 0x5010AE7A, 0, 0x75A0000, 0, 0, 0, 0)
    raw += (name + "\0").encode("utf-16-le")
    d = np.frombuffer(raw + bytes(64), np.uint8)
    ok, cols = columnar.decode_layout(d, np.array([0]), np.array([len(raw)]), lay, columnar._Nuls(d))
    assert ok.tolist() == [True]
    got = {k: v[0] for k, v in cols.items()}
    assert (got["ImageBase"], got["ImageSize"], got["ProcessId"], got["DefaultBase"]) == (
        0x75A0000,
        0xD0000,
        4321,
        0x75A0000,
    )
    assert got["TimeDateStamp"] == 0x5010AE7A and got["FileName"] == name
    wide = L.classic_layout(0x14, 2, 10, 8)
    assert wide is not None and [f.kind for f in wide.fields[:3]] == ["u64", "u64", "u32"]


def _records(path, provider, version: int, opcode: int) -> int:
    """Records of one classic event type, counted from the record headers (not through the decoder)."""
    n = 0
    with open_etl(path) as f:
        for b in f.batches():
            if isinstance(provider, int):
                mine = b.group == provider
            else:
                mine = (b.group < 0) & b.provider_mask(provider)
            n += int((mine & (b.version == version) & (b.opcode == opcode)).sum())
    return n


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_every_record_of_a_shipped_class_is_decoded(corpus, arch):
    """In the PerfView traces, no record of a shipped class stays bytes: each type's table holds all its
    records (counted from the headers), decoded by the project's layout."""
    path = corpus / "perfview" / f"net.4.5.2.{arch}.etl"
    rows: dict[str, int] = {}
    decoders: dict[str, set[str]] = {}
    for t in columnar.iter_events(path):
        rows[t.name] = rows.get(t.name, 0) + t.frame.height
        decoders.setdefault(t.name, set()).add(t.decoder)
    expect = {
        "PerfInfo.op46.v2": _records(path, 0x0F, 2, 46),
        "Image.op3.v2": _records(path, 0x14, 2, 3),
        "Image.op4.v2": _records(path, 0x14, 2, 4),
        "PageFault.op32.v2": _records(path, 0x02, 2, 32),
        "DiskIo.op12.v3": _records(path, 0x01, 3, 12),
        "StackWalk.op38.v2": _records(path, 0x18, 2, 38),
        "StackWalk.op32.v2": _records(path, 0x18, 2, 32),
        "StackWalk.op35.v2": _records(path, 0x18, 2, 35),
        "KernelTraceControl.op0.v2": _records(path, uuid.UUID(str(KERNEL_TRACE_CONTROL)), 2, 0),
        "KernelTraceControl.op36.v2": _records(path, KERNEL_TRACE_CONTROL, 2, 36),
        "KernelTraceControl.op64.v0": _records(path, KERNEL_TRACE_CONTROL, 0, 64),
        "Process.op33.v2": _records(path, 0x03, 2, 33),
    }
    assert rows["Process.op10.v2"] == _records(path, 0x03, 2, 10) > 30  # image loads in the Process group
    for name, n in expect.items():
        assert n > (30 if name.startswith("Process") else 100), name
        assert rows.get(name) == n and decoders[name] == {"etwtools"}, name
        assert f"{name}.hex" not in rows, name


def test_numbers_up_to_the_payload_end():
    """``ptrs`` (a stack: pointers up to the payload's end) is a list of u64 or u32 per the record's pointer
    size; a payload whose tail is not a whole number of them does not fit."""
    lay = L.layout("key:ptr frames:ptrs", "test")
    assert [f.kind for f in L.for_pointer(lay, 4).fields] == ["u32", "u32s"]
    raw = struct.pack("<5Q", 7, 0xFFFFF80021434313, 0x7F9D02F36BB, 1, 2) + struct.pack("<3I", 9, 10, 11)
    d = np.frombuffer(raw + bytes(64), np.uint8)
    starts, ends = np.array([0, 40, 16]), np.array([40, 52, 37])
    ok, cols = columnar.decode_layout(d, starts, ends, L.for_pointer(lay, 8), columnar._Nuls(d))
    assert ok.tolist() == [True, False, False]  # 12 bytes: one u64 and half of one; 21: not whole
    assert cols["frames"].to_list() == [[0xFFFFF80021434313, 0x7F9D02F36BB, 1, 2]]
    ok, cols = columnar.decode_layout(d, starts[1:2], ends[1:2], L.for_pointer(lay, 4), columnar._Nuls(d))
    assert ok.tolist() == [True] and cols["key"].to_list() == [9] and cols["frames"].to_list() == [[10, 11]]


def test_stack_keys_referenced_are_defined(corpus):
    """StackWalk's stack keys as the records give them: every key an event's kernel or user stack refers to
    (opcodes 37, 38) is one whose frames a key record gives (35, 36), and those frames are lists."""
    path = corpus / "perfview" / "net.4.5.2.x64.etl"
    refs, defs, frames = set(), set(), 0
    for t in columnar.iter_events(path):
        if t.name in ("StackWalk.op37.v2", "StackWalk.op38.v2"):
            refs.update(t.frame["StackKey"].to_list())
        elif t.name in ("StackWalk.op35.v2", "StackWalk.op36.v2"):
            defs.update(t.frame["StackKey"].to_list())
            frames += int(t.frame["Stack"].list.len().sum())
    assert len(refs) > 1000 and refs <= defs and frames > len(defs) * 5


CLR = uuid.UUID("e13c0d23-ccbc-4e12-931b-d9cc2eee27e4")  # Microsoft-Windows-DotNETRuntime
RUNDOWN = uuid.UUID("a669021c-c450-4609-a035-5af59af4df18")  # Microsoft-Windows-DotNETRuntimeRundown


def _events(path, guid: uuid.UUID, event_id: int, version: int) -> int:
    """Records of one manifest event, counted from the record headers."""
    n = 0
    with open_etl(path) as f:
        for b in f.batches():
            n += int((b.provider_mask(guid) & (b.event_id == event_id) & (b.version == version)).sum())
    return n


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_dotnet_counted_arrays_are_lists(corpus, arch):
    """The .NET runtime's stacks (ClrStackWalk) and IL-to-native maps: every record decoded, each list as
    long as its count field says, and each map's method one the trace's method rundown names."""
    path = corpus / "perfview" / f"net.4.5.2.{arch}.etl"
    frames: dict[str, list] = {}
    for t in columnar.iter_events(path):
        if t.name.startswith(
            ("Microsoft-Windows-DotNETRuntime.id82.", "Microsoft-Windows-DotNETRuntime.id190.")
        ) or (
            t.name.startswith(
                (
                    "Microsoft-Windows-DotNETRuntimeRundown.id150.",
                    "Microsoft-Windows-DotNETRuntimeRundown.id144.",
                )
            )
        ):
            assert t.decoder != "hex", t.name
            frames.setdefault(t.name.split(".v")[0], []).append(t.frame)
    got = {name: pl.concat(parts, how="diagonal_relaxed") for name, parts in frames.items()}
    stacks = got["Microsoft-Windows-DotNETRuntime.id82"]
    assert stacks.height == _events(path, CLR, 82, 0) > 1000
    assert (stacks["Stack"].list.len() == stacks["FrameCount"]).all() and stacks["FrameCount"].max() > 10
    maps = got["Microsoft-Windows-DotNETRuntimeRundown.id150"]
    assert maps.height == _events(path, RUNDOWN, 150, 0) > 1000
    assert got["Microsoft-Windows-DotNETRuntime.id190"].height == _events(path, CLR, 190, 0) > 100
    for m in (maps, got["Microsoft-Windows-DotNETRuntime.id190"]):
        assert (m["ILOffsets"].list.len() == m["CountOfMapEntries"]).all()
        assert (m["NativeOffsets"].list.len() == m["CountOfMapEntries"]).all()
    rundown = set(got["Microsoft-Windows-DotNETRuntimeRundown.id144"]["MethodID"].to_list())
    assert set(maps["MethodID"].to_list()) <= rundown


def test_windows_10_threads_are_named_and_older_ones_fall_back_to_etl_parser(corpus):
    """Thread version 3 records of Windows 10 end with the thread's name (the project's class); the older
    72-byte ones of the same version still fit etl-parser's class, tried next: none stays bytes."""
    newer = corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl"
    older = corpus / "perfview" / "net.4.5.2.x64.etl"
    for path, decoder in ((newer, "etwtools"), (older, "etl-parser")):
        rows, decoders, names = 0, set(), set()
        for t in columnar.iter_events(path):
            if t.name.startswith("Thread.op") and ".v3" in t.name:
                rows += t.frame.height
                decoders.add(t.decoder)
                if "ThreadName" in t.frame.columns:
                    names.update(t.frame["ThreadName"].to_list())
        assert rows == sum(_records(path, 0x05, 3, op) for op in (1, 2, 3, 4)) > 1000, path.name
        assert decoders == {decoder}, path.name
        assert ("EdgeHtml Render" in names) == (path == newer)


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_pnp_devices_with_filter_drivers_stay_bytes(corpus, arch):
    """SystemConfig PnP records fit the layout unless they list filter drivers (more strings than a layout
    can count): those, and only those, stay bytes, counted in their own table."""
    path = corpus / "perfview" / f"net.4.5.2.{arch}.etl"
    typed, raw = [], []
    for t in columnar.iter_events(path):
        if t.name == "SystemConfig.op22.v4":
            typed.append(t.frame)
        elif t.name == "SystemConfig.op22.v4.hex":
            raw += t.frame["payload"].to_list()
    frame = pl.concat(typed)
    assert frame.height + len(raw) == _records(path, 0x0B, 4, 22) == 78
    assert frame.height == 73 and (frame["UpperFilterCount"] + frame["LowerFilterCount"] == 0).all()
    assert all(struct.unpack_from("<2I", p, 16) != (0, 0) for p in raw)
    assert "System board" in frame["DeviceDescription"].to_list()
