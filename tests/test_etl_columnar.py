"""The columnar all-events decoder: same values as the record-by-record reference, typed tables, streaming."""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from etwtools.cli import cli
from etwtools.parsers.diagnostics import SkipReport, collect
from etwtools.parsers.etl import columnar, generic
from etwtools.parsers.etl.container import count_records, open_etl

#: Files compared record for record; in the others, the first PER_TYPE records of every event type of
#: every batch (the reference decodes 30 k events/s).
WHOLE_BELOW = 20_000
PER_TYPE = 40


def _norm(value):
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _sample(batch) -> np.ndarray:
    key = np.stack(
        [
            batch.htype.astype(np.int64),
            batch.provider.astype(np.int64),
            batch.group.astype(np.int64),
            batch.event_id.astype(np.int64),
            batch.opcode.astype(np.int64),
            batch.version.astype(np.int64),
            batch.pointer_size.astype(np.int64),
        ],
        axis=1,
    )
    _, inverse = np.unique(key, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    rank = np.empty(len(order), np.int64)
    counts = np.bincount(inverse)
    rank[order] = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rank < PER_TYPE


def _etl_files(corpus):
    return sorted(corpus.glob("*/*.etl"))


def test_values_equal_the_reference_on_every_corpus_file(corpus):
    """Every corpus ETL: decoder and fields of each record equal the record-by-record reference's (etwtools'
    decoders, etl-parser's schemas where they consume the payload exactly, else hex)."""
    files = _etl_files(corpus)
    assert len(files) >= 19
    compared = decoded = traced = arrays_of_one = 0
    for path in files:
        whole = count_records(path) < WHOLE_BELOW
        dec = columnar.Decoder()
        with open_etl(path) as f:
            for batch in f.batches():
                if not whole:
                    batch = batch.select(_sample(batch))
                ours = columnar.long_form(dec.decode(batch))
                theirs = generic.frame_of(generic.describe_batch(batch, SkipReport("test")))
                assert ours.height == theirs.height == len(batch)
                # TraceLogging events: the reference (etl-parser's schemas) cannot decode them (nor name
                # their providers, which their metadata items do)
                found = dec._tracelogging(batch, np.frombuffer(batch.data, np.uint8))
                tl = np.isin(ours["record"].to_numpy(), batch.record[found[0]] if found else [])
                # EventSource providers whose manifest the trace carries: neither (their events, the
                # manifest's provider names); tests/test_etl_eventsource.py checks those
                own = np.zeros(len(batch), bool)
                for guid in dec.eventsource.by_provider:
                    own |= batch.provider_mask(guid)
                es_rows = np.isin(ours["record"].to_numpy(), batch.record[own])
                assert (theirs["decoder"].to_numpy()[tl | es_rows] == "hex").all()
                assert set(ours["decoder"].to_numpy()[es_rows]) <= {"hex", "eventsource"}
                tl |= es_rows
                # the manifests the project ships: etl-parser's values where its schemas decode the event
                # (as "etl-parser" below); the events they cannot: tests/test_shipped_manifests.py
                shipped = ours["decoder"].to_numpy() == "manifest"
                tl |= shipped & (theirs["decoder"].to_numpy() == "hex")
                # the classic event classes the project ships (which etl-parser lacks): checked against
                # PerfView's baselines (tests/test_perfview_baselines.py, tests/test_event_layouts.py)
                tl |= (ours["decoder"].to_numpy() == "etwtools") & (theirs["decoder"].to_numpy() == "hex")
                # the .NET events whose counted arrays etl-parser reads as one value: where an array holds
                # one element, its value is right (the record fits): the same value as a list of one
                arrays = (ours["decoder"].to_numpy() == "etwtools") & (
                    theirs["decoder"].to_numpy() == "etl-parser"
                )
                one = set(ours["record"].to_numpy()[arrays].tolist())
                names = np.where(shipped | arrays, "etl-parser", ours["decoder"].to_numpy().astype(str))
                ours = ours.with_columns(decoder=pl.Series(names.tolist(), dtype=pl.Utf8))
                assert set(ours["decoder"].to_numpy()[~tl]) <= {"hex", "etl-parser", "etwtools"}
                traced += int(tl.sum())
                ours, theirs = ours.filter(~tl), theirs.filter(~tl)
                assert ours.drop("fields").equals(theirs.drop("fields")), path
                for a, b, dname, rec in zip(
                    ours["fields"], theirs["fields"], ours["decoder"], ours["record"]
                ):
                    mine = json.loads(a)
                    if rec in one:
                        assert all(len(v) == 1 for v in mine.values() if isinstance(v, list)), rec
                        mine = {k: v[0] if isinstance(v, list) else v for k, v in mine.items()}
                    assert _norm(mine) == _norm(json.loads(b)), (path.name, rec)
                    arrays_of_one += rec in one
                    decoded += dname != "hex"
                compared += ours.height
    assert compared > 40_000 and decoded > 20_000 and traced > 10_000  # EventSource rows: traced
    assert arrays_of_one > 0


@pytest.fixture(scope="module")
def shutdown_tables(corpus):
    return list(columnar.iter_events(corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl"))


def test_tables_are_typed_per_event_type(shutdown_tables):
    """Image load events (kernel MOF class from etl-parser's layout): typed columns, real values."""
    by = {}
    for t in shutdown_tables:
        by.setdefault(t.name, []).append(t.frame)
    image = pl.concat(
        by["Image.op10.v3"]
        if "Image.op10.v3" in by
        else by[next(n for n in by if n.startswith("Image.op") and not n.endswith("hex"))]
    )
    assert image.schema["FileName"] == pl.Utf8 and image.schema["ImageBase"] == pl.UInt64
    assert image.schema["time"] == pl.Datetime("ns", "UTC") and image.schema["ProcessId"] == pl.UInt32
    assert image["FileName"].str.to_lowercase().str.contains(r"\.(dll|exe|sys)$").mean() > 0.9
    assert sum(t.frame.height for t in shutdown_tables) == 17078
    names = [t.name for t in shutdown_tables]
    assert any(
        n.startswith("EventTrace.") and n.endswith(".hex") for n in names
    )  # the header: see test_etl_generic
    threads = [t for t in shutdown_tables if t.name.startswith("Thread.")]
    assert threads and all(t.frame.schema["ThreadName"] == pl.Utf8 for t in threads)
    hexed = next(t for t in shutdown_tables if t.decoder == "hex")
    assert hexed.frame.schema["payload"] == pl.Binary


def test_filters_skip_records_before_decoding(corpus, monkeypatch):
    """providers/ids select records from the headers: the decoder only ever sees the selected ones."""
    path = corpus / "tx" / "KernelNetwork.etl"
    seen = []
    real = columnar.Decoder._decode_rows  # every record decoded, by either path, goes through it

    def spy(self, work, hdr, t, rows):
        seen.append(len(rows))
        return real(self, work, hdr, t, rows)

    monkeypatch.setattr(columnar.Decoder, "_decode_rows", spy)
    tables = list(columnar.iter_events(path, providers=["microsoft-windows-kernel-network"], ids=[27, 59]))
    frame = pl.concat([t.frame for t in tables])
    assert sum(seen) == frame.height == 134 + 61  # the corpus README's counts of ids 27 and 59
    assert set(frame["event_id"]) == {27, 59}
    tcp = pl.concat([t.frame for t in tables if t.name.endswith("id27.v0")])
    assert tcp.schema["sport"] == pl.Int32 and tcp["protocol"].unique().to_list() == ["TCP"]
    guid = list(columnar.iter_events(path, providers=["7dd42a49-5329-4832-8dfd-43d979153a88"], ids=[27]))
    assert sum(t.frame.height for t in guid) == 134


def test_cli_parquet_directory_one_file_per_event_type(corpus, tmp_path):
    path = corpus / "perfview" / "net.4.5.2.x64.etl"
    out = tmp_path / "events"
    result = CliRunner().invoke(
        cli, ["events", "--all", "--etl", str(path), "-f", "parquet", "-o", f"{out}/"]
    )
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.parquet"))
    assert len(files) > 100
    total = sum(
        pl.read_parquet_schema(f) is not None and pl.scan_parquet(f).select(pl.len()).collect().item()
        for f in files
    )
    assert total == count_records(path) == 179474
    send = pl.read_parquet(out / "TcpIp.op26.v2.parquet")  # TcpIp SendIPV6: etwtools' own decoder
    assert send.schema["pid"] == pl.Int64 and send.schema["size"] == pl.Int64
    assert send["protocol"].unique().to_list() == ["TCP"] and send["ip_version"].unique().to_list() == [6]


def test_cli_json_lines_stream_in_record_order(corpus, tmp_path):
    path = corpus / "tx" / "KernelNetwork.etl"
    out = tmp_path / "all.json"
    result = CliRunner().invoke(cli, ["events", "--all", "--etl", str(path), "-f", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record"] for r in rows] == list(range(8924))
    assert json.loads(rows[3]["fields"])["pid"] == 2432


def test_numpy_fallback_gives_the_same_tables(corpus, monkeypatch):
    """Without the C accelerator (a build without a compiler) the numpy paths give identical tables."""
    if columnar._c is None:
        (pytest.fail if os.environ.get("ETWTOOLS_REQUIRE_C") else pytest.skip)(
            "the C accelerator etwtools.parsers.etl._columnar is not built"
        )
    path = corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl"
    with_c = list(columnar.iter_events(path))
    monkeypatch.setattr(columnar, "_c", None)
    without = list(columnar.iter_events(path))
    assert [t.name for t in with_c] == [t.name for t in without]
    for a, b in zip(with_c, without):
        assert a.frame.equals(b.frame), a.name
    assert sum(t.frame.height for t in with_c if t.decoder == "etl-parser") > 10000


def _tiny_budgets(monkeypatch) -> None:
    """Budgets small enough that every mechanism of the regrouping and of the writer acts on a small file."""
    from etwtools import event_tables
    from etwtools.parsers.etl import regroup

    monkeypatch.setattr(event_tables, "ROW_GROUP", 500)
    monkeypatch.setattr(event_tables, "BUDGET", 64 << 10)
    monkeypatch.setattr(event_tables, "MAX_OPEN", 2)
    monkeypatch.setattr(event_tables, "OPEN_GROUPS", 3)
    monkeypatch.setattr(event_tables, "IN_FLIGHT", 1)
    monkeypatch.setattr(regroup, "ROWS", 700)
    monkeypatch.setattr(regroup, "DIRECT", 300)
    monkeypatch.setattr(regroup, "BUDGET", 96 << 10)
    monkeypatch.setattr(columnar, "REGROUP_CHUNK", 64 << 10)  # many batches: each type's rows come in pieces


def _by_name(tables) -> dict[str, pl.DataFrame]:
    parts: dict[str, list[pl.DataFrame]] = {}
    for t in tables:
        parts.setdefault(t.name, []).append(t.frame)
    return {name: pl.concat(frames) for name, frames in parts.items()}


@pytest.mark.parametrize(
    "name", ["tx/Process.etl", "perfview/net.4.5.2.x64.etl", "perfview/primitive-types.etl"]
)
def test_regrouped_tables_equal_the_batch_tables(corpus, monkeypatch, name):
    """Tables regrouped by event type (set aside, decoded from the batch itself, flushed past the budget)
    hold the same rows, in file order per type, as the tables of each batch."""
    _tiny_budgets(monkeypatch)
    path = corpus / name
    batches = _by_name(t for tables in columnar.iter_batches(path) for t in tables)
    grouped = _by_name(columnar.iter_events(path))
    assert grouped.keys() == batches.keys()
    for key, frame in batches.items():
        assert grouped[key].equals(frame), key
        assert grouped[key]["record"].is_sorted(), key


def test_records_set_aside_hold_their_payloads_only(corpus):
    """A type's records are set aside as their payloads (each 8-byte aligned), not their headers: the
    header fields are held as columns already."""
    from etwtools.parsers.etl import regroup
    from etwtools.parsers.etl.container import EtlFile

    with EtlFile(corpus / "perfview" / "net.4.5.2.x64.etl") as etl:
        batch = next(iter(etl.batches(columnar.REGROUP_CHUNK)))
    grouper = regroup.Regrouper()
    list(grouper.add(batch))
    keys = grouper.decoder.keys(batch)
    assert len(grouper._held) > 20
    for key, held in grouper._held.items():
        rows = np.flatnonzero(keys == key)
        assert held.n == len(rows)
        assert held.used == int(((batch.payload_size[rows] + 7) & ~7).sum())
        back = held.batch(batch.guids, {n: getattr(batch, n).dtype for n in regroup._COLUMNS})
        assert [back.payload(i) for i in range(len(back))] == [batch.payload(int(i)) for i in rows]


def test_parquet_dir_with_tiny_budgets_keeps_every_row(corpus, tmp_path, monkeypatch):
    """Row groups, the buffer budget and the open-file cap cut files into parts: no row is lost or changed."""
    from etwtools import event_tables

    path = corpus / "tx" / "Process.etl"
    _tiny_budgets(monkeypatch)
    rows = event_tables.write_parquet_dir(columnar.iter_events(path), tmp_path)
    assert sum(rows.values()) == count_records(path) == 10344
    assert any(".part2." in f.name for f in tmp_path.iterdir())
    for name, frame in _by_name(columnar.iter_events(path)).items():
        parts = sorted(tmp_path.glob(f"{name}.*parquet"), key=lambda f: (len(f.name), f.name))
        parts = [f for f in parts if f.name == f"{name}.parquet" or f.name.startswith(f"{name}.part")]
        got = pl.concat([pl.read_parquet(f) for f in parts])
        assert got.equals(frame), name


def _row_groups(tmp_path, names: str) -> dict[str, list[int]]:
    """Row counts of the row groups of each written file."""
    import pyarrow.parquet as pq

    return {
        f.name: [
            pq.ParquetFile(f).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(f).num_row_groups)
        ]
        for f in sorted(tmp_path.glob(names))
    }


def test_parquet_dir_keeps_the_types_written_most_open(tmp_path, monkeypatch):
    """Past MAX_OPEN open files, the type written least often is closed (its later rows go to a new part),
    not the least recent: a type written in every round stays in one file while two others take turns."""
    from etwtools import event_tables

    monkeypatch.setattr(event_tables, "ROW_GROUP", 1)  # every table is one row group, written at once
    monkeypatch.setattr(event_tables, "MAX_OPEN", 2)
    tables, n = [], 0
    for _ in range(4):
        for name in ("a", "a", "b", "c"):
            tables.append(columnar.EventTable(name, "test", pl.DataFrame({"record": [n, n + 1]}), []))
            n += 2
    rows = event_tables.write_parquet_dir(tables, tmp_path)
    assert rows == {"a": 16, "b": 8, "c": 8}
    groups = _row_groups(tmp_path, "*.parquet")
    assert groups["a.parquet"] == [2] * 8 and not any(name.startswith("a.part") for name in groups)
    assert sorted(name for name in groups if name.startswith("b")) == [
        "b.parquet",
        *(f"b.part{k}.parquet" for k in (2, 3, 4)),
    ]
    got = pl.concat([pl.read_parquet(tmp_path / name) for name in sorted(groups) if name.startswith("c")])
    assert sorted(got["record"].to_list()) == [r for k in range(4) for r in (8 * k + 6, 8 * k + 7)]


def test_parquet_dir_closes_the_file_holding_most_row_groups(tmp_path, monkeypatch):
    """The open files hold at most OPEN_GROUPS row groups together (each one's metadata stays in memory
    until its file is closed): past it, the file with the most is closed and its type goes on in a new part."""
    from etwtools import event_tables

    monkeypatch.setattr(event_tables, "ROW_GROUP", 1)
    monkeypatch.setattr(event_tables, "OPEN_GROUPS", 3)
    tables = [columnar.EventTable("a", "test", pl.DataFrame({"record": [k]}), []) for k in range(7)]
    tables.insert(2, columnar.EventTable("b", "test", pl.DataFrame({"record": [100]}), []))
    assert event_tables.write_parquet_dir(tables, tmp_path) == {"a": 7, "b": 1}
    assert _row_groups(tmp_path, "*.parquet") == {
        "a.parquet": [1, 1],  # then b's row group: three open
        "a.part2.parquet": [1, 1],
        "a.part3.parquet": [1, 1],
        "a.part4.parquet": [1],
        "b.parquet": [1],
    }


def test_parquet_dir_starts_a_part_when_a_types_columns_change(tmp_path, monkeypatch):
    """A type whose records two layouts decode (Windows 10 threads with their names, older ones without)
    may bring other columns: its rows go on in a new part with those columns, none lost; one row group
    mixing both holds every column (nulls where a layout has none)."""
    from etwtools import event_tables

    monkeypatch.setattr(event_tables, "ROW_GROUP", 2)
    plain = pl.DataFrame({"record": [1, 2], "tid": [5, 6]})
    named = pl.DataFrame({"record": [3, 4], "tid": [7, 8], "ThreadName": ["a", "b"]})
    mixed = [
        pl.DataFrame({"record": [5], "tid": [9]}),
        pl.DataFrame({"record": [6], "tid": [0], "ThreadName": ["c"]}),
    ]
    tables = [columnar.EventTable("t", "test", f, []) for f in (plain, named, *mixed)]
    assert event_tables.write_parquet_dir(tables, tmp_path) == {"t": 6}
    parts = {f.name: pl.read_parquet(f) for f in sorted(tmp_path.iterdir())}
    assert parts["t.parquet"].equals(plain)
    assert parts["t.part2.parquet"]["record"].to_list() == [3, 4, 5, 6]
    assert parts["t.part2.parquet"]["ThreadName"].to_list() == ["a", "b", None, "c"]


def test_parquet_dir_stores_times_and_record_numbers_as_deltas(corpus, tmp_path):
    """``time`` and ``record`` are written DELTA_BINARY_PACKED (small steps: smaller and faster to write
    than plain values), text with a dictionary, and read back as written."""
    import pyarrow.parquet as pq

    from etwtools import event_tables

    path = corpus / "perfview" / "net.4.5.2.x64.etl"
    event_tables.write_parquet_dir(columnar.iter_events(path), tmp_path)
    expected = _by_name(columnar.iter_events(path))
    for f in tmp_path.glob("*.parquet"):
        meta = pq.ParquetFile(f).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        chunks = {names[i]: meta.row_group(0).column(i) for i in range(meta.num_columns)}
        assert "DELTA_BINARY_PACKED" in chunks["time"].encodings, f.name
        assert "DELTA_BINARY_PACKED" in chunks["record"].encodings, f.name
        assert "RLE_DICTIONARY" in chunks["provider"].encodings, f.name
        assert "DELTA_BINARY_PACKED" not in chunks["pid"].encodings, f.name
    got = pl.read_parquet(tmp_path / "Microsoft-Windows-DotNETRuntime.id10.v3.parquet")
    assert got.height > 1000
    assert got.equals(expected["Microsoft-Windows-DotNETRuntime.id10.v3"])


def test_parquet_dir_last_row_groups_in_two_threads_write_the_same_files(corpus, tmp_path, monkeypatch):
    """The types' last row groups and closes run in two threads at the end: the same part files, each with
    the same rows, as when one thread writes them all."""
    from etwtools import event_tables

    path = corpus / "perfview" / "net.4.5.2.x64.etl"
    _tiny_budgets(monkeypatch)
    written = {}
    for finishers in (1, 2):
        monkeypatch.setattr(event_tables, "FINISHERS", finishers)
        out = tmp_path / str(finishers)
        rows = event_tables.write_parquet_dir(columnar.iter_events(path), out)
        written[finishers] = {f.name: pl.read_parquet(f) for f in out.iterdir()}
        assert sum(rows.values()) == count_records(path)
    assert written[1].keys() == written[2].keys()
    assert sum(".part" in name for name in written[2]) > 10
    for name, frame in written[1].items():
        assert written[2][name].equals(frame), name


def test_parquet_dir_relative_to_the_working_directory(corpus, tmp_path, monkeypatch):
    """A relative output directory (the files are opened through pyarrow's local file system, named)."""
    from etwtools import event_tables

    monkeypatch.chdir(tmp_path)
    rows = event_tables.write_parquet_dir(columnar.iter_events(corpus / "tx" / "Process.etl"), "out")
    files = sorted(f.name for f in (tmp_path / "out").iterdir())
    assert files == sorted(f"{name}.parquet" for name in rows)
    assert sum(pl.read_parquet(tmp_path / "out" / f).height for f in files) == 10344


def test_parquet_dir_that_reads_like_a_uri_is_a_local_folder(corpus, tmp_path, monkeypatch):
    """``-o s3:/bucket/`` is a folder ``s3:`` in the working directory (pyarrow would read the path as a URI)."""
    from etwtools import event_tables

    monkeypatch.chdir(tmp_path)
    rows = event_tables.write_parquet_dir(columnar.iter_events(corpus / "tx" / "Process.etl"), "s3:/bucket")
    out = tmp_path / "s3:" / "bucket"
    assert sorted(f.name for f in out.iterdir()) == sorted(f"{name}.parquet" for name in rows)
    assert sum(pl.read_parquet(f).height for f in out.iterdir()) == 10344


def test_header_columns_hold_no_view_of_the_set_aside_block(corpus):
    """polars takes numpy's int64 arrays without a copy: the header table of records set aside (their
    columns rows of one block) must not keep that block alive after the decoding."""
    import dataclasses
    import sys

    with open_etl(corpus / "tx" / "Process.etl") as etl:
        batch = next(iter(etl.batches()))
    block = np.stack([batch.record, batch.time])
    refs = sys.getrefcount(block)
    hdr = columnar._header(
        dataclasses.replace(batch, record=block[0], time=block[1]),
        pl.Series(["x"]).new_from_index(0, len(batch)),
    )
    assert sys.getrefcount(block) == refs
    assert hdr["record"].to_list() == batch.record.tolist()
    assert hdr["time"].dt.epoch("ns").to_list() == batch.time.tolist()


def test_tracelogging_events_decode_from_their_own_metadata(corpus):
    """Self-describing events: the layout comes from each event's metadata item (names, types, structs)."""
    single = [
        t
        for t in columnar.iter_events(corpus / "perfview" / "SelfDescribingSingleEvent.etl")
        if t.decoder == "tracelogging"
    ]
    assert [t.name for t in single] == ["MySource.TestEvent"]
    assert single[0].frame.select("a.b", "a.c").row(0) == ("Hello", "World!")  # struct a {b, c}
    prim = pl.concat(
        [
            t.frame
            for t in columnar.iter_events(corpus / "perfview" / "primitive-types.etl")
            if t.name == "solar_system.PrimitiveTypesTest"
        ]
    )
    assert prim["string_type"].to_list() == ["Mercury", "Venus", "Earth", "Mars", "Jupiter"]
    assert prim["char_type"].to_list() == [ord(p[0]) for p in prim["string_type"]]
    assert (prim["int16_type"] * 2 == prim["int32_type"]).all() and (
        prim["uint16_type"] == -prim["int16_type"]
    ).all()
    assert prim.schema["file_time_type"] == pl.Datetime("ns", "UTC") and prim.schema["guid_type"] == pl.Utf8
    st = prim["system_time_type"].struct.unnest().row(0, named=True)
    ft = prim["file_time_type"][0]
    assert (st["year"], st["month"], st["day"], st["hour"], st["minute"]) == (
        ft.year,
        ft.month,
        ft.day,
        14,
        59,
    )
    assert (st["hour"], st["minute"]) == (ft.hour, ft.minute)


def test_regrouped_events_before_their_manifest_stay_bytes(corpus, tmp_path, monkeypatch):
    """EventSource: a type's records set aside before the batch that completes its provider's manifest are
    decoded as planned then (bytes, counted); the records after it decode from the manifest. Same as the
    per-batch decoder (test_etl_eventsource.py::test_events_before_their_manifest_are_counted)."""
    import logging

    from test_etl_eventsource import TASK_SCHEDULED, TPL, _chunks

    from etwtools.parsers.etl import eventsource as es
    from etwtools.parsers.etl.build import EtlWriter

    with open_etl(corpus / "perfview" / "net.4.5.2.x64.etl") as f:
        manifest = next(
            batch.payload(i)[es.ENVELOPE_SIZE :]
            for batch in f.batches()
            for i in np.flatnonzero(batch.event_id == es.MANIFEST_EVENT_ID).tolist()
            if batch.guids[int(batch.provider[i])] == TPL
        )
    w = EtlWriter(pointer_size=4)
    for task in (6, 7):
        payload = TASK_SCHEDULED.build(dict(sched=1, orig=5, task=task, creating=0, options=8192))
        w.event(TPL, 7, payload, opcode=9, processor=0)
    w.event(TPL, es.MANIFEST_EVENT_ID, _chunks(manifest, 1)[0], opcode=es.MANIFEST_OPCODE, processor=1)
    payload = TASK_SCHEDULED.build(dict(sched=1, orig=5, task=8, creating=0, options=8192))
    w.event(TPL, 7, payload, opcode=9, processor=1)
    path = w.write(tmp_path / "late.etl")
    monkeypatch.setattr(columnar, "REGROUP_CHUNK", 1)  # one buffer a batch: processor 0's, then processor 1's
    records = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("etwtools").addHandler(handler)
    try:
        by = _by_name(columnar.iter_events(path))
    finally:
        logging.getLogger("etwtools").removeHandler(handler)
    assert by[f"{TPL}.id7.v0.ptr4.hex"].height == 2
    assert by["System.Threading.Tasks.TplEventSource.id7.v0.ptr4"]["TaskID"].to_list() == [8]
    said = " ".join(r.getMessage() for r in records)
    assert "2 events of System.Threading.Tasks.TplEventSource before its EventSource manifest" in said


def _assert_decoded_as_python_does(spans: list[bytes], encoding: str) -> None:
    """The C text decoder's text of the byte spans laid end to end is Python's own decoding ("replace")."""
    data = np.frombuffer(b"".join(spans), np.uint8)
    length = np.array([len(s) for s in spans], np.int64)
    start = np.cumsum(length) - length
    got = columnar._text(data, start, length, encoding)
    assert got is not None
    assert got.to_list() == [s.decode(encoding, "replace") for s in spans]


@pytest.mark.parametrize("encoding", ["utf-16-le", "cp1252"])
def test_c_text_decoding_equals_pythons_codecs(encoding):
    """The C text decoder gives Python's own decoding with "replace" (lone and reversed surrogates, a
    surrogate cut by the end, odd byte counts, cp1252's five undefined bytes), on random spans."""
    if columnar._c is None:
        (pytest.fail if os.environ.get("ETWTOOLS_REQUIRE_C") else pytest.skip)(
            "the C accelerator etwtools.parsers.etl._columnar is not built"
        )
    rng = np.random.default_rng(14)
    spans = []
    for _ in range(3000):
        n = int(rng.integers(0, 40))
        if encoding == "utf-16-le":
            units = np.where(
                rng.random(n) < 0.3, rng.integers(0xD800, 0xE000, n), rng.integers(0, 0x10000, n)
            ).astype("<u2")
            raw = units.tobytes() + (bytes([int(rng.integers(256))]) if rng.random() < 0.1 else b"")
        else:
            raw = rng.integers(0, 256, n).astype(np.uint8).tobytes()
        spans.append(raw)
    _assert_decoded_as_python_does(spans, encoding)


@pytest.mark.parametrize("encoding", ["utf-16-le", "cp1252"])
def test_c_text_decoding_of_mostly_ascii_text(encoding):
    """Text that is mostly ASCII (what traces hold: paths, method names), taken several characters at a
    time by the C decoder, with other characters at every place of those steps and odd lengths: Python's
    own decoding."""
    if columnar._c is None:
        (pytest.fail if os.environ.get("ETWTOOLS_REQUIRE_C") else pytest.skip)(
            "the C accelerator etwtools.parsers.etl._columnar is not built"
        )
    rng = np.random.default_rng(1414)
    other = "é€ÿ\u0080\u00a0中\U0001f600" if encoding == "utf-16-le" else "é€ÿ\u00a0"
    spans = []
    for _ in range(3000):
        chars = [chr(c) for c in rng.integers(0x20, 0x7F, int(rng.integers(0, 30)))]
        for _ in range(int(rng.integers(0, 3))):
            chars.insert(int(rng.integers(0, len(chars) + 1)), other[int(rng.integers(len(other)))])
        raw = "".join(chars).encode(encoding)
        spans.append(raw + (b"A" if rng.random() < 0.1 else b""))  # an odd byte after UTF-16
    _assert_decoded_as_python_does(spans, encoding)


@pytest.mark.parametrize("unit", [1, 2])
def test_c_terminators_find_the_first_nul(unit):
    """The C search for each string's terminator (a NUL byte, or a NUL unit at the string's own 2-byte
    steps, searched several units at a time) finds the first one before the end, or none (the data's
    length), from starts at even and odd places."""
    if columnar._c is None:
        (pytest.fail if os.environ.get("ETWTOOLS_REQUIRE_C") else pytest.skip)(
            "the C accelerator etwtools.parsers.etl._columnar is not built"
        )
    rng = np.random.default_rng(1415)
    data = rng.integers(1, 256, 1 << 15).astype(np.uint8)
    data[rng.integers(0, len(data), 600)] = 0  # lone zero bytes: a unit's half, not a terminator
    for at in rng.integers(0, len(data) - 1, 150).tolist():
        data[at : at + 2] = 0  # zero units at even and odd places
    pos = rng.integers(0, len(data) - 1, 4000).astype(np.int64)
    end = np.minimum(pos + rng.integers(0, 200, 4000), len(data)).astype(np.int64)
    out = np.empty(len(pos), np.int64)
    columnar._c.terminators(data, pos, end, unit, out)
    raw = data.tobytes()

    def first(a: int, e: int) -> int:
        for q in range(a, e - unit + 1, unit):
            if raw[q : q + unit] == bytes(unit):
                return q
        return len(raw)

    assert out.tolist() == [first(a, e) for a, e in zip(pos.tolist(), end.tolist())]


def test_c_binary_views_hold_every_span():
    """Byte blobs built as Arrow binary views by the C accelerator (values of up to 12 bytes inside their
    view, longer ones in the data buffer) read back as the spans themselves, empty ones included."""
    if columnar._c is None:
        (pytest.fail if os.environ.get("ETWTOOLS_REQUIRE_C") else pytest.skip)(
            "the C accelerator etwtools.parsers.etl._columnar is not built"
        )
    rng = np.random.default_rng(1412)
    data = rng.integers(0, 256, 1 << 16).astype(np.uint8)
    length = rng.integers(0, 40, 5000).astype(np.int64)
    start = rng.integers(0, len(data) - 40, 5000).astype(np.int64)
    got = columnar._binary(data, start, length)
    assert got.dtype == pl.Binary
    assert got.to_list() == [data[a : a + n].tobytes() for a, n in zip(start.tolist(), length.tolist())]
    with pytest.raises(ValueError, match="outside the data"):
        columnar._c.views(data, np.array([len(data) - 4]), np.array([8]), np.empty(16, np.uint8), data.copy())


@pytest.mark.skipif(columnar._c is None, reason="the C accelerator is not built")
def test_c_type_keys_and_grouping_equal_the_numpy_reference_on_the_corpus(corpus):
    """Every batch of every corpus ETL file: the C event-type keys equal numpy's, and the C grouping (a
    counting sort) equals a stable argsort of those keys, its distinct keys and bounds."""
    files = sorted(corpus.rglob("*.etl"))
    assert len(files) >= 10
    records = kinds = 0
    for path in files:
        with open_etl(path) as etl:
            for batch in etl.batches(1 << 20):
                keys = columnar._type_keys(batch)
                assert np.array_equal(keys, columnar._type_keys_py(batch)), path.name
                c, py = columnar.group_rows(keys), columnar._group_rows_py(keys)
                for x, y in zip(c, py):
                    assert np.array_equal(x, y), path.name
                records += len(batch)
                kinds += len(c[1])
    assert records > 400_000 and kinds > 500


@pytest.mark.skipif(columnar._c is None, reason="the C accelerator is not built")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=6),
    st.lists(st.integers(0, 5), max_size=300),
)
def test_c_grouping_is_a_stable_argsort_of_any_keys(values, picks):
    """Any int64 keys (few distinct ones, colliding hashes or not): the C grouping is numpy's stable
    argsort with the distinct keys ascending and each one's bounds."""
    keys = np.asarray([values[p % len(values)] for p in picks], np.int64)
    c, py = columnar.group_rows(keys), columnar._group_rows_py(keys)
    for x, y in zip(c, py):
        assert x.dtype == y.dtype == np.int64
        assert np.array_equal(x, y)


def _c_slot(key: int, slots: int) -> int:
    """The C grouping's table slot of a key (splitmix64's finalizer), to build keys that collide there."""
    m = (1 << 64) - 1
    z = key & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return (z ^ (z >> 31)) & (slots - 1)


@pytest.mark.skipif(columnar._c is None, reason="the C accelerator is not built")
def test_c_grouping_stays_linear_on_hostile_keys():
    """Event-type keys of a batch whose every record names another provider differ only in their provider
    bits: the C table spreads them (no give-up); keys made to share one slot make it give up within its
    probe bound, and the grouping is then numpy's, the same answer."""
    n = 100_000
    many = (np.int64(1) << 60) | ((np.arange(n, dtype=np.int64) + 1) << 34) | (np.int64(5) << 18)
    order, uniq, bounds = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n + 1, np.int64)
    assert columnar._c.group(many, order, uniq, bounds) == n
    assert np.array_equal(order, np.arange(n)) and np.array_equal(uniq, many)

    slots = 1024  # the table's size for 400 keys
    same = np.asarray([k for k in range(300_000) if _c_slot(k, slots) == 7][:400], np.int64)
    assert len(same) >= 250
    assert columnar._c.group(same, order[: len(same)], uniq[: len(same)], bounds[: len(same) + 1]) == -1
    for x, y in zip(columnar.group_rows(same), columnar._group_rows_py(same)):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("regrouped", [True, False], ids=["iter_events", "iter_batches"])
def test_event_types_past_the_cap_are_kept_as_bytes_in_one_table(corpus, monkeypatch, regrouped):
    """With the cap on event types at 12, net.4.5.2's first 12 types (in file order) keep their tables; every
    record of the others is in other_event_types.hex with its own header values, provider text and payload
    (the hex tables of an uncapped run give them), and the report counts them."""
    path = corpus / "perfview" / "net.4.5.2.x64.etl"
    header = list(generic.HEADER)
    other = columnar.OTHER_NAME + ".hex"

    def tables():
        if regrouped:
            return list(columnar.iter_events(path))
        return [t for batch in columnar.iter_batches(path) for t in batch]

    def base(name: str) -> str:
        return name.removesuffix(".hex")

    full = tables()
    monkeypatch.setattr(columnar, "MAX_TYPES", 12)
    with collect() as reports:
        capped = tables()
    firsts = pl.concat([t.frame.select(pl.col("record").min(), name=pl.lit(base(t.name))) for t in full])
    in_order = firsts.group_by("name").agg(pl.col("record").min()).sort("record")["name"].to_list()
    kept = {base(t.name) for t in capped if t.name != other}
    assert len(in_order) > 150 and kept == set(in_order[:12])
    others = pl.concat([t.frame for t in capped if t.name == other]).sort("record")
    expected = pl.concat([t.frame.select(header) for t in full if base(t.name) not in kept]).sort("record")
    assert others.height == expected.height > 80_000
    assert others.select(header).equals(expected)
    assert sum(t.frame.height for t in capped) == sum(t.frame.height for t in full)
    hexed = pl.concat([t.frame.select("record", "payload") for t in full if t.decoder == "hex"])
    same = others.join(hexed, on="record", suffix="_full")
    assert same.height > 1000 and (same["payload"] == same["payload_full"]).all()
    reason = f"events of event types past the file's first 12 kept as bytes in {other}"
    assert sum(r[reason] for r in reports) == others.height
