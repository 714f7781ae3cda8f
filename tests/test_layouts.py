"""The one payload-layout mechanism: layouts written ``name:kind`` and decoded by ``columnar.decode_records``.

Files are built with the project's ETL writer (construct definitions); the payloads are packed here with
``struct`` from the field lists, independently of the decoder.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from etwtools.parsers.etl import columnar
from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.container import EtlFile
from etwtools.parsers.etl.layouts import Field, layout, parse_fields

T0 = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
PROVIDER = uuid.UUID("6a1f2b00-0000-4000-8000-00000000beef")  # a made-up provider of the built files


def test_fields_written_name_kind():
    assert parse_fields("a:u32, b:wstring c:bytes[4] d:bytes[a]") == (
        Field("a", "u32"),
        Field("b", "wstring"),
        Field("c", "bytes", size=4),
        Field("d", "bytes_from", ref="a"),
    )


@pytest.mark.parametrize(
    "spec,message",
    [
        ("a:u33", "unknown kind"),
        ("a", "not name:kind"),
        ("a:bytes", "unknown kind"),
        ("a:u32[4]", "unknown kind"),
        ("d:bytes[a] a:u32", "not an earlier field"),
        ("a:u32 a:u16", "used twice"),
    ],
)
def test_bad_field_lists_are_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_fields(spec)


def _batch(tmp_path, payloads: list[bytes]):
    w = EtlWriter(start=T0)
    for i, p in enumerate(payloads):
        w.event(PROVIDER, 7, p, time=T0 + timedelta(seconds=i))
    path = w.write(tmp_path / "built.etl")
    with EtlFile(path) as etl:
        (batch,) = list(etl.batches())
    return batch.select(batch.provider_mask(PROVIDER))  # without the logfile header record


def _decode(batch, lay, exact, monkeypatch, with_c: bool):
    if not with_c:
        monkeypatch.setattr(columnar, "_c", None)
    ok, cols = columnar.decode_records(batch, np.arange(len(batch)), lay, exact=exact)
    return ok.tolist(), {k: v.to_list() for k, v in cols.items()}


@pytest.mark.parametrize("with_c", [True, False])
def test_exact_and_prefix_decoding(tmp_path, monkeypatch, with_c):
    """Exact: the layout consumes the whole payload. Prefix: bytes may follow (``_end`` says where the
    layout ends) and a string without its NUL ends with the payload; a short record is never guessed."""
    if with_c and columnar._c is None:
        pytest.skip("C accelerator not built")  # the numpy run below still checks the same values
    lay = layout("n:u32 name:wstring tag:cstring size:u16 blob:bytes[size]", "test")
    whole = (
        struct.pack("<I", 7) + "Täst".encode("utf-16-le") + b"\0\0" + b"ab\0" + struct.pack("<H", 3) + b"xyz"
    )
    payloads = [
        whole,
        whole + b"\x99\x98",  # trailing bytes: prefix only
        whole[:3],  # short: neither
        struct.pack("<I", 8) + "no-nul".encode("utf-16-le"),  # no NUL: prefix reads it to the end...
    ]
    batch = _batch(tmp_path, payloads)
    ok, cols = _decode(batch, lay, True, monkeypatch, with_c)
    assert ok == [True, False, False, False]
    assert cols == {"n": [7], "name": ["Täst"], "tag": ["ab"], "size": [3], "blob": [b"xyz"]}
    name_only = layout("n:u32 name:wstring", "test")
    ok, cols = _decode(batch, name_only, False, monkeypatch, with_c)
    assert ok == [True, True, False, True]
    assert cols["name"] == ["Täst", "Täst", "no-nul"]
    assert cols["_end"] == [14, 14, len(payloads[3])]
    ok, cols = _decode(batch, lay, False, monkeypatch, with_c)
    assert ok == [True, True, False, False]  # ...but not the fields after it
    assert cols["_end"] == [len(whole)] * 2 and cols["blob"] == [b"xyz"] * 2
