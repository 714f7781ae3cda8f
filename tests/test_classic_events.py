"""Classic (MOF) event classes the project ships (parsers/etl/classic_events.txt): the form, pointer sizes, and
every record of those classes in the PerfView corpus files decoded (their values are compared with PerfView's
baselines in tests/test_perfview_baselines.py)."""

from __future__ import annotations

import struct
import uuid

import numpy as np
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
        ("class Image 2 T", "line 1: not a source, template or class line"),
    ],
)
def test_class_file_errors_name_the_line(text, error):
    with pytest.raises(ValueError, match=error):
        L.parse_classes(text, "x.txt", GROUPS)


def test_classes_are_keyed_by_kernel_group_or_provider_guid():
    text = (
        "template T a:ptr b:u32\nclass PerfInfo 2 46 T\nclass b3e675d7-2554-4f18-830b-2762732560de 2 0,36 T"
    )
    got = L.parse_classes(text, "x.txt", GROUPS)
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
    }
    for name, n in expect.items():
        assert n > 100, name
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
