"""The all-events view (etwtools' decoders, then etl-parser 1.0.1's schemas where right, then hex)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from etwtools.parsers.etl.columnar import read_all_events
from etwtools.parsers.etl.container import count_records, open_etl
from etwtools.parsers.etl.generic import SCHEMAS, _parse_exact
from etwtools.parsers.etl.guids import KERNEL_NETWORK


@pytest.fixture(scope="module")
def kernel_network(corpus):
    return read_all_events(corpus / "tx" / "KernelNetwork.etl")


def test_one_row_per_record_with_json_fields(kernel_network, corpus):
    df = kernel_network
    assert len(df) == count_records(corpus / "tx" / "KernelNetwork.etl") == 8924
    assert df["record"].to_list() == list(range(len(df)))
    fields = [json.loads(f) for f in df["fields"]]
    assert all(isinstance(f, dict) for f in fields)
    kn = df.filter(pl.col("provider") == "Microsoft-Windows-Kernel-Network")
    assert kn.height == 8923 and set(kn["decoder"]) == {"etwtools"}
    first = json.loads(kn.filter(pl.col("event_id") == 26)["fields"][0])
    assert (
        first["pid"] == 2432
        and first["saddr"] == "2001:4898:0:fff:0:5efe:a79:6a76"
        and first["sport"] == 3389
    )
    assert {k for k, v in first.items() if v is not None} == {
        "event",
        "protocol",
        "ip_version",
        "pid",
        "size",
        "saddr",
        "sport",
        "daddr",
        "dport",
        "connid",
        "seqnum",
        "startime",
        "endtime",
    }


def test_etl_parser_kernel_network_ipv6_schema_is_wrong(corpus):
    """etl-parser's generated Kernel-Network IPv6 classes omit daddr/saddr (and take connid as u32): on the
    real 56-byte id 27 payloads they do not consume the payload, so the view never uses them."""
    with open_etl(corpus / "tx" / "KernelNetwork.etl") as f:
        batch = next(f.batches())
    rows = np.flatnonzero(batch.provider_mask(KERNEL_NETWORK) & (batch.event_id == 27))
    payload = batch.payload(int(rows[0]))
    assert len(payload) == 56
    cls = SCHEMAS.manifest(KERNEL_NETWORK, 27, 0)
    assert [s.name for s in cls.pattern.subcons] == ["PID", "size", "dport", "sport", "seqnum", "connid"]
    assert _parse_exact(cls.pattern, payload) is None


def test_etl_parser_manifest_event_class_fails_with_data1(corpus):
    """Pinned defect of etl-parser 1.0.1: Event.parse_etw reads provider_id.data1 where its Guid struct
    has the fields under .inner, so every manifest event raises AttributeError 'data1'."""
    from etl.event import Event, EventRecord

    with open_etl(corpus / "tx" / "KernelNetwork.etl") as f:
        batch = next(f.batches())
    i = int(np.flatnonzero(batch.provider_mask(KERNEL_NETWORK))[0])
    start, end = int(batch.offset[i]), int(batch.payload_offset[i] + batch.payload_size[i])
    record = EventRecord.parse(bytes(batch.data[start : end + 8]))
    assert record.event_header.provider_id.inner.data1 == 0x7DD42A49
    with pytest.raises(AttributeError, match="data1"):
        Event(record).parse_etw()


def test_etl_parser_schemas_used_where_right(corpus):
    """ShutdownPerfDiagLogger.etl (64-bit, Windows 10): etl-parser's kernel Image classes decode those
    records exactly; its Thread v3 class is shorter than the Windows 10 payloads (they end with the
    thread's name: the project's own class decodes them) and its logfile header class lacks the padding
    before BootTime, so that falls back to hex; our own decoders take the Process events."""
    df = read_all_events(corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl")
    assert len(df) == 17078
    by = {(p, d): n for p, d, n in df.group_by("provider", "decoder").len().iter_rows()}
    assert by[("Process", "etwtools")] == 256
    assert by[("Image", "etl-parser")] > 10000
    assert by[("Thread", "etwtools")] == 3058 and {("Thread", "etl-parser"), ("Thread", "hex")}.isdisjoint(by)
    header = df.row(0, named=True)
    assert (header["provider"], header["opcode"], header["decoder"]) == ("EventTrace", 0, "hex")
    with open_etl(corpus / "etl-parser" / "ShutdownPerfDiagLogger.etl") as f:
        boot_time = f.header.boot_time
        payload = next(f.batches()).payload(0)
    theirs = SCHEMAS.kernel(0, 2, 0).pattern.parse(payload)
    assert theirs.BootTime != boot_time  # no padding after TimeZoneInformation: shifted by 4 bytes
    image = json.loads(
        df.filter((pl.col("provider") == "Image") & (pl.col("decoder") == "etl-parser"))["fields"][0]
    )
    assert image["FileName"].lower().endswith((".dll", ".exe", ".sys"))
    hexed = df.filter(pl.col("decoder") == "hex")
    assert hexed.height > 0 and all("payload" in json.loads(f) for f in hexed["fields"].head(50))
    proc = json.loads(df.filter(pl.col("provider") == "Process")["fields"][0])
    assert proc["event"] in ("DCStart", "Start") and proc["user"].startswith("S-1-5")
    assert df.schema["time"] == pl.Datetime("ns", "UTC")
