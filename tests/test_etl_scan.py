"""The lazy polars entry: filters on header columns reach the record walk, skipped records are never decoded."""

from __future__ import annotations

import json

import polars as pl
import pytest

import etwtools
from etwtools.errors import EtlError
from etwtools.parsers.etl import columnar
from etwtools.parsers.etl.generic import ALL_EVENTS


@pytest.fixture
def decoded(monkeypatch):
    """Every record handed to the payload decoders, by event-type name (the spy calls the real decoder)."""
    seen: dict[str, int] = {}
    real = columnar.Decoder._decode_rows

    def spy(self, work, hdr, t, rows):
        seen[t.name] = seen.get(t.name, 0) + len(rows)
        return real(self, work, hdr, t, rows)

    monkeypatch.setattr(columnar.Decoder, "_decode_rows", spy)
    return seen


def test_a_provider_and_id_filter_is_pushed_down_to_the_record_walk(corpus, decoded):
    """Kernel-Network TCP receives (id 27) of a real trace: only those 134 records are decoded, and the rows
    equal the whole long table's, filtered."""
    path = corpus / "tx" / "KernelNetwork.etl"
    wanted = (pl.col("provider") == "Microsoft-Windows-Kernel-Network") & (pl.col("event_id") == 27)
    lazy = etwtools.scan_events(path)
    assert lazy.collect_schema() == pl.Schema(ALL_EVENTS)
    got = lazy.filter(wanted).collect()
    assert got.height == 134  # the corpus README's count of id 27
    assert decoded == {"Microsoft-Windows-Kernel-Network.id27.v0": 134}
    assert json.loads(got["fields"][0])["protocol"] == "TCP"
    decoded.clear()
    assert got.equals(columnar.read_all_events(path).filter(wanted))


def test_header_only_queries_decode_nothing(corpus, decoded):
    path = corpus / "perfview" / "net.4.5.2.x64.etl"
    counts = etwtools.scan_events(path).group_by("provider").agg(pl.len()).collect()
    assert counts["len"].sum() == 179474 and decoded == {}
    first = (
        etwtools.scan_events(path).filter(pl.col("opcode") == 26).select("record", "pid").head(3).collect()
    )
    assert first.height == 3 and decoded == {}


def test_a_filter_on_fields_is_applied_after_decoding(corpus):
    path = corpus / "tx" / "KernelNetwork.etl"
    lazy = etwtools.scan_events(path, providers=["Microsoft-Windows-Kernel-Network"], ids=[27, 59])
    rows = lazy.filter(pl.col("fields").str.contains('"pid":2432')).collect()
    assert rows.height > 0 and all(json.loads(f)["pid"] == 2432 for f in rows["fields"])
    assert set(rows["event_id"]) <= {27, 59}


def test_not_an_etl_file_is_refused_when_scanned(tmp_path):
    bad = tmp_path / "x.etl"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(EtlError):
        etwtools.scan_events(bad)
