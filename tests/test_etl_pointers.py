"""Pointer-sized fields of etl-parser's manifest schemas in 32-bit records (parsers/etl/pointers.py)."""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pointer_table import derive

from etwtools.parsers.diagnostics import SkipReport
from etwtools.parsers.etl import columnar, pointers
from etwtools.parsers.etl import layouts as L
from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.container import open_etl
from etwtools.parsers.etl.generic import describe_batch

CLR = uuid.UUID("e13c0d23-ccbc-4e12-931b-d9cc2eee27e4")
#: HidEventFilter: no public manifest in the table's source; event 107 v1 is (Device u64, PreviousState u32)
HID = uuid.UUID("dde50426-fa77-4088-8e0c-f2f553fb6843")


def test_shipped_table_is_the_one_the_public_manifests_give():
    """parsers/etl/pointer_fields.txt is exactly what tests/pointer_table.py derives (every listed
    pointer is a field of etl-parser's schema of that event, in the manifest's order)."""
    pytest.importorskip("dissect.etl")
    shipped = (Path(pointers.__file__).parent / pointers.TABLE).read_text(encoding="utf-8")
    assert shipped == derive()
    assert pointers.pointer_fields(CLR, 33, 0) == ("HandleID", "ObjectID")  # GCPinObjectAtGCTime
    assert pointers.pointer_fields(CLR, 1, 2) == ()  # GCStart_V2: ClientSequenceNumber u64, no pointer
    assert pointers.pointer_fields(HID, 107, 1) is None


def test_32bit_pin_object_at_gc_time_has_pointer_sized_fields(corpus):
    """net.4.5.2.x86.etl, the 32-bit Test.x86 process's GCPinObjectAtGCTime (46 bytes): HandleID and
    ObjectID are 4 bytes. PerfView's baseline (line 258) shows HandleID=0x00a313f8, ObjectID=0x027e121c,
    ObjectSize=12, TypeName=System.Object; the columnar decoder and the reference decoder agree with it."""
    path = corpus / "perfview/net.4.5.2.x86.etl"
    want = {
        "HandleID": 0x00A313F8,
        "ObjectID": 0x027E121C,
        "ObjectSize": 12,
        "TypeName": "System.Object",
        "ClrInstanceID": 11,
    }
    tables = [t for t in columnar.iter_events(path, providers=[str(CLR)], ids=[33]) if ".ptr4" in t.name]
    assert [(t.name, t.decoder) for t in tables] == [
        ("Microsoft-Windows-DotNETRuntime.id33.v0.ptr4", "etl-parser")
    ]
    row = tables[0].frame.row(0, named=True)
    assert (row["pid"], row["tid"]) == (3644, 3708)
    assert {k: row[k] for k in want} == want
    reference = []
    with open_etl(path) as f:
        for batch in f.batches():
            sel = batch.provider_mask(CLR) & (batch.event_id == 33) & (batch.pointer_size == 4)
            if sel.any():
                reference += describe_batch(batch.select(sel), SkipReport("test"))
    assert [(r["decoder"], json.loads(r["fields"])) for r in reference] == [("etl-parser", want)]


def test_32bit_records_of_an_event_whose_pointers_are_not_known_are_kept_as_bytes(tmp_path):
    """HidEventFilter 107 v1 (Device u64, PreviousState u32; no public manifest says whether Device is a
    pointer): a 64-bit process's record decodes; a 32-bit one of the same 12 bytes fits the 64-bit layout
    exactly but is kept as bytes and counted, and the reference decoder keeps it as bytes too. Files built
    with the project's writer (build.py)."""
    payload = struct.pack("<QI", 0x1122334455667788, 3)
    found = {}
    for size in (8, 4):
        w = EtlWriter(pointer_size=size)
        w.event(HID, 107, payload, version=1, pid=40, tid=41)
        path = w.write(tmp_path / f"hid{size}.etl")
        dec = columnar.Decoder()
        with open_etl(path) as f:
            batches = list(f.batches())
        tables = [t for b in batches for t in dec.decode(b) if t.name.startswith("HidEventFilter")]
        reference = [
            r for b in batches for r in describe_batch(b, SkipReport("test")) if r["event_id"] == 107
        ]
        found[size] = (tables, dec.skipped.counts, reference)
    tables, skipped, reference = found[8]
    assert [(t.name, t.decoder) for t in tables] == [("HidEventFilter.id107.v1", "etl-parser")]
    assert tables[0].frame.select("Device", "PreviousState").row(0) == (0x1122334455667788, 3)
    assert skipped == {} and reference[0]["decoder"] == "etl-parser"
    tables, skipped, reference = found[4]
    assert [(t.name, t.decoder) for t in tables] == [("HidEventFilter.id107.v1.ptr4.hex", "hex")]
    assert tables[0].frame["payload"].to_list() == [payload]
    assert skipped == {"32-bit events whose schema's pointer fields are not known kept as bytes": 1}
    assert reference[0]["decoder"] == "hex"


def test_narrowed_layout_and_struct_read_the_same_bytes():
    """GCPinObjectAtGCTime's layout and construct struct for 4-byte pointers: HandleID and ObjectID u32,
    the rest as etl-parser declares it; 64-bit records keep etl-parser's own."""
    layout = L.manifest_layout(CLR, 33, 0)
    assert layout
    narrow = pointers.for_pointer_size(layout, CLR, 33, 0, 4)
    assert narrow is not None
    assert [(f.name, f.kind) for f in narrow.fields] == [
        ("HandleID", "u32"),
        ("ObjectID", "u32"),
        ("ObjectSize", "u64"),
        ("TypeName", "wstring"),
        ("ClrInstanceID", "u16"),
    ]
    assert pointers.for_pointer_size(layout, CLR, 33, 0, 8) is layout
    pattern = L.manifest_pattern(CLR, 33, 0)
    raw = struct.pack("<IIQ", 7, 9, 12) + "A\0".encode("utf-16-le") + struct.pack("<H", 11)
    parsed = pointers.pattern_for_pointer_size(pattern, CLR, 33, 0, 4).parse(raw)
    assert (parsed.HandleID, parsed.ObjectID, parsed.ObjectSize, parsed.ClrInstanceID) == (7, 9, 12, 11)
    d = np.frombuffer(raw, np.uint8)
    ok, cols = columnar.decode_layout(d, np.array([0]), np.array([len(raw)]), narrow, columnar._Nuls(d))
    assert ok.tolist() == [True]
    assert pl.DataFrame(cols).row(0) == (7, 9, 12, "A", 11)
