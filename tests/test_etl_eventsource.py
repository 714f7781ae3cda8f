"""EventSource manifests carried in traces: real ones from the corpus, and damaged ones built from them.

The damaged files are built with the project's writer (parsers/etl/build.py) and the envelope's construct
definition (eventsource.ENVELOPE) from the real manifest texts that net.4.5.2.x64.etl carries (no public
trace holds damaged manifests); the events beside them are built with construct from the manifests'
own templates.
"""

from __future__ import annotations

import uuid

import construct as cs
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from etwtools.cli import cli
from etwtools.parsers.diagnostics import SkipReport
from etwtools.parsers.etl import columnar
from etwtools.parsers.etl import eventsource as es
from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.container import open_etl

TPL = uuid.UUID("2e5dba47-a3d2-4d16-8ee0-6671ffdcd7b5")  # System.Threading.Tasks.TplEventSource
FRAMEWORK = uuid.UUID(
    "8e9f5090-2d75-4d03-8a81-e5afbf85daf1"
)  # System.Diagnostics.Eventing.FrameworkEventSource
PERFVIEW = uuid.UUID("a8a71ac1-040f-54a2-07ca-00a89b5ab761")
MSBUILD = uuid.UUID("d44a2098-821f-5808-4cea-1e24e982ca37")


def _tables(path, **kw) -> dict[str, pl.DataFrame]:
    by: dict[str, list[pl.DataFrame]] = {}
    decoders: dict[str, str] = {}
    for t in columnar.iter_events(path, **kw):
        by.setdefault(t.name, []).append(t.frame)
        decoders[t.name] = t.decoder
    return {n: pl.concat(f).with_columns(decoder=pl.lit(decoders[n])) for n, f in by.items()}


@pytest.fixture(scope="module")
def manifests(corpus) -> dict[uuid.UUID, bytes]:
    """The manifest texts net.4.5.2.x64.etl carries (one chunk each there)."""
    out = {}
    with open_etl(corpus / "perfview" / "net.4.5.2.x64.etl") as f:
        for batch in f.batches():
            for i in np.flatnonzero(batch.event_id == es.MANIFEST_EVENT_ID).tolist():
                payload = batch.payload(i)
                out[batch.guids[int(batch.provider[i])]] = payload[es.ENVELOPE_SIZE :]
    assert set(out) == {TPL, FRAMEWORK, PERFVIEW}
    return out


# ------------------------------------------------------------------ the real traces


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_perfview_traces_decode_their_eventsource_providers(corpus, arch):
    """PerfView's own events, TPL and FrameworkEventSource: typed from the manifests the trace carries
    (values as PerfView's baseline prints them for these events; PerfView is a 32-bit process in both)."""
    t = _tables(corpus / "perfview" / f"net.4.5.2.{arch}.etl")
    tpl = t["System.Threading.Tasks.TplEventSource.id7.v0.ptr4"].sort("time")  # TaskScheduled/Send
    assert tpl["decoder"][0] == "eventsource"
    assert tpl.schema["TaskCreationOptions"] == pl.Int32
    if arch == "x64":
        assert tpl.select("OriginatingTaskSchedulerID", "OriginatingTaskID", "TaskID").rows() == [
            (1, 5, 6),
            (1, 5, 7),
            (1, 5, 8),
        ]
        assert tpl["TaskCreationOptions"].to_list() == [8192] * 3
        work = t["System.Diagnostics.Eventing.FrameworkEventSource.id30.v0.ptr4"].sort("time")
        assert work["workID"].to_list() == [278775272, 278775344, 278775416]  # ThreadPoolEnqueueWork
        stop = t["System.Threading.Tasks.TplEventSource.id9.v1.ptr4"]  # TaskExecute/Stop, version 1
        assert stop.select("TaskID", "IsExceptional").rows() == [(8, False)]
    perfview = t["PerfView.id11.v0.ptr4"].sort("time")  # SessionParameters
    assert perfview["sessionName"].to_list() == ["NT Kernel Logger", "PerfViewSession"]
    assert perfview["bufferSizeMB"].to_list() == [256, 256]
    assert t["PerfView.id22.v0.ptr4"].height == 53  # PerfViewLog (the baselines' COUNT)
    assert t["PerfView.id14.v0.ptr4"]["providerName"][0] == "DotNet"  # ProviderEnableParameters
    # the manifest events themselves stay bytes (the manifest text), named by their provider
    assert t["PerfView.id65534.v1.ptr4.hex"].height == 2


def test_msbuild_trace_uses_the_best_manifest_of_many_processes(corpus):
    """msbuild-PerfViewData.etl: 15 processes send Microsoft-Build manifests of two versions; every
    Microsoft-Build event decodes, ids 53/54 only through the newer manifest (PerfView's rule: the higher
    version score wins)."""
    path = corpus / "misc" / "msbuild-PerfViewData.etl"
    t = _tables(path, providers=["Microsoft-Build"])
    assert t.pop("Microsoft-Build.id65534.v1.ptr4.hex").height == 30
    assert {f["decoder"][0] for f in t.values()} == {"eventsource"}
    with open_etl(path) as f:
        headers = sum(
            int((b.provider_mask(MSBUILD) & (b.event_id != es.MANIFEST_EVENT_ID)).sum()) for b in f.batches()
        )
    assert sum(f.height for f in t.values()) == headers == 5652
    assert t["Microsoft-Build.id53.v0.ptr4"]["graphEntryPoints"].to_list() == [
        r"E:\delete\p2p\A\A.csproj(foo = bar, bar = foo)"
    ]
    assert t["Microsoft-Build.id45.v0.ptr4"]["commandLine"][0].startswith(
        '"E:\\projects\\msbuild\\artifacts\\bin\\bootstrap\\net472\\MSBuild\\Current\\Bin\\MSBuild.exe"'
    )
    cond = t["Microsoft-Build.id10.v0.ptr4"]  # EvaluateConditionStop: condition, result (win:Boolean)
    assert cond.height == 399 and cond.schema["result"] == pl.Boolean
    assert cond.sort("record").row(0, named=True)["condition"] == " '$(EnableDefaultItems)' == 'true' "
    assert t["Microsoft-Build.id2.v0.ptr4"].height == 1047


def test_dissect_etl_has_no_manifest_for_these_providers():
    """The peer cannot cross-check these events: it ships manifests for OS providers only and does not read
    the ones a trace carries (its manifests folder holds none of these GUIDs)."""
    from importlib.resources import files

    names = {p.name.lower() for p in (files("dissect.etl") / "manifests" / "xml").iterdir()}
    assert len(names) > 500
    assert not any(str(g) in n for g in (TPL, FRAMEWORK, PERFVIEW, MSBUILD) for n in names)


# ------------------------------------------------------------------ built files, damaged chunks


def _chunks(xml: bytes, n: int, *, magic: int = es.MAGIC, total: int | None = None) -> list[bytes]:
    size = -(-len(xml) // n)
    pieces = [xml[i * size : (i + 1) * size] for i in range(n)]
    return [
        es.ENVELOPE.build(dict(format=1, major=1, minor=0, magic=magic, total_chunks=total or n, chunk=i))
        + piece
        for i, piece in enumerate(pieces)
    ]


#: TplEventSource TaskScheduled (id 7, opcode Send): five win:Int32 fields of its manifest's template.
TASK_SCHEDULED = cs.Struct(*(name / cs.Int32sl for name in ("sched", "orig", "task", "creating", "options")))
#: FrameworkEventSource ThreadPoolEnqueueWork (id 30): workID, win:Int64.
ENQUEUE = cs.Struct("workID" / cs.Int64sl)


def _trace(tmp_path, tpl_chunks: list[bytes], name: str = "t.etl", framework: bytes | None = None):
    """A 32-bit trace: TplEventSource's manifest ``tpl_chunks`` (in the given order), 3 TaskScheduled
    events, FrameworkEventSource's real manifest in one chunk and 2 ThreadPoolEnqueueWork events."""
    w = EtlWriter(pointer_size=4)
    for c in tpl_chunks:
        w.event(TPL, es.MANIFEST_EVENT_ID, c, opcode=es.MANIFEST_OPCODE, version=1, pid=40, tid=41)
    for task in (6, 7, 8):
        payload = TASK_SCHEDULED.build(dict(sched=1, orig=5, task=task, creating=0, options=8192))
        w.event(TPL, 7, payload, opcode=9, pid=40, tid=42)
    if framework is not None:
        w.event(
            FRAMEWORK, es.MANIFEST_EVENT_ID, _chunks(framework, 1)[0], opcode=es.MANIFEST_OPCODE, version=1
        )
    for work in (278775272, 278775344):
        w.event(FRAMEWORK, 30, ENQUEUE.build(dict(workID=work)), pid=40, tid=42)
    return w.write(tmp_path / name)


def _decode(path) -> tuple[dict[str, pl.DataFrame], str]:
    dec = columnar.Decoder()
    by: dict[str, list[pl.DataFrame]] = {}
    with open_etl(path) as f:
        for batch in f.batches():
            for t in dec.decode(batch):
                by.setdefault(t.name, []).append(t.frame.with_columns(decoder=pl.lit(t.decoder)))
    dec.eventsource.finish()
    return {n: pl.concat(v) for n, v in by.items()}, dec.skipped.line()


def test_chunks_out_of_order_and_repeated_reassemble(tmp_path, manifests):
    """A manifest in 3 chunks arriving 2, 0, 2 (again), 1: reassembled; the repeat counted, first kept."""
    c = _chunks(manifests[TPL], 3)
    path = _trace(tmp_path, [c[2], c[0], c[2], c[1]], framework=manifests[FRAMEWORK])
    t, skipped = _decode(path)
    sched = t["System.Threading.Tasks.TplEventSource.id7.v0.ptr4"]
    assert sched["decoder"].to_list() == ["eventsource"] * 3 and sched["TaskID"].to_list() == [6, 7, 8]
    assert "chunk 2 of 3 came twice (first kept)" in skipped
    work = t["System.Diagnostics.Eventing.FrameworkEventSource.id30.v0.ptr4"]
    assert work["workID"].to_list() == [278775272, 278775344]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda c: [c[0], c[2]], "the file ended; 1 of 3 chunks missing, dropped"),
        (lambda c: [c[0][:3] + b"\x00" + c[0][4:], c[1], c[2]], "magic 0x00 is not 0x5b"),
        (lambda c: [c[0][:8]], "8 bytes, no room for a manifest piece"),
        (lambda c: [bytes([2]) + c[0][1:], c[1], c[2]], "manifest format 2 is not XML (1)"),
        (lambda c: [c[0][:6] + b"\x07\x00" + c[0][8:], c[1], c[2]], "chunk 7 of 3"),
    ],
)
def test_damaged_chunks_cost_only_their_provider(tmp_path, manifests, damage, message):
    """Each damage is one line naming the provider, process and buffer offset; TplEventSource's events
    stay bytes; FrameworkEventSource (an intact manifest in the same file) still decodes."""
    path = _trace(tmp_path, damage(_chunks(manifests[TPL], 3)), framework=manifests[FRAMEWORK])
    t, skipped = _decode(path)
    assert f"EventSource manifest chunk(s) of {TPL} " in skipped
    assert "(first: process 40, in the buffer at byte " in skipped
    assert message in skipped
    hexed = [n for n in t if n.startswith(f"{TPL}.id7.")]
    assert hexed == [f"{TPL}.id7.v0.ptr4.hex"] and t[hexed[0]].height == 3
    assert t["System.Diagnostics.Eventing.FrameworkEventSource.id30.v0.ptr4"]["workID"][1] == 278775344


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    b"<instrumentationManifest><instrumentation><events><provider name='&d;' guid='{2e5dba47-a3d2-4d16-8ee0-"
    b"6671ffdcd7b5}'/></events></instrumentation></instrumentationManifest>"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (lambda m: BOMB, "DOCTYPE or entity declarations are not allowed in a manifest"),
        (lambda m: m[: len(m) // 2], "XML: "),
        (lambda m: m.replace(str(TPL).encode(), str(FRAMEWORK).encode()), f"describes provider {FRAMEWORK}"),
        (lambda m: m.replace(b'value="7"', b'value="70000"'), "event value 70000 is out of range"),
        (lambda m: m.replace(b"<tasks>", b"<tasks>" + b"<x/>" * 1500), "more than 1000 XML elements"),
    ],
)
def test_unusable_manifest_texts_are_refused(tmp_path, manifests, text, message, monkeypatch):
    """Each refused text is one line; its provider's events stay bytes, the other provider decodes."""
    if "elements" in message:
        monkeypatch.setattr(es, "MAX_ELEMENTS", 1000)  # the real manifests have 119 to 620
    path = _trace(tmp_path, _chunks(text(manifests[TPL]), 2), framework=manifests[FRAMEWORK])
    t, skipped = _decode(path)
    assert "manifest not usable (" in skipped and message in skipped
    assert t[f"{TPL}.id7.v0.ptr4.hex"].height == 3
    assert t["System.Diagnostics.Eventing.FrameworkEventSource.id30.v0.ptr4"].height == 2


def test_declared_sizes_are_not_trusted(tmp_path, manifests, monkeypatch):
    """A stream declaring 65,535 chunks, and streams from many threads: memory stays under the bounds (the
    oldest unfinished manifests make room, each counted)."""
    monkeypatch.setattr(es, "MAX_PENDING", 64 << 10)
    monkeypatch.setattr(es, "MAX_STREAMS", 8)
    w = EtlWriter(pointer_size=4)
    piece = b"<" + b"x" * 30_000
    for i in range(4):  # one thread: 4 x 30 KB of a 65,535-chunk manifest passes 64 KB pending
        env = es.ENVELOPE.build(dict(format=1, major=1, minor=0, magic=es.MAGIC, total_chunks=65535, chunk=i))
        w.event(TPL, es.MANIFEST_EVENT_ID, env + piece, opcode=es.MANIFEST_OPCODE, tid=1)
    for tid in range(100, 120):  # 20 threads each opening a 2-chunk manifest
        env = es.ENVELOPE.build(dict(format=1, major=1, minor=0, magic=es.MAGIC, total_chunks=2, chunk=0))
        w.event(FRAMEWORK, es.MANIFEST_EVENT_ID, env + b"<a>", opcode=es.MANIFEST_OPCODE, tid=tid)
    path = w.write(tmp_path / "flood.etl")
    skipped = SkipReport("test")
    m = es.Manifests(skipped)
    with open_etl(path) as f:
        for batch in f.batches():
            for i in range(len(batch)):
                m.add(batch.guids[int(batch.provider[i])], 0, int(batch.tid[i]), batch.payload(i), "0")
                assert m._pending <= es.MAX_PENDING and len(m._streams) <= es.MAX_STREAMS
    m.finish()
    text = skipped.line()
    assert "over 65536 bytes of unfinished manifests in the file; 65533 of 65535 chunks missing" in text
    assert "more than 8 manifests unfinished at once; 1 of 2 chunks missing" in text
    assert not m._streams and m._pending == 0


def test_cli_reports_a_damaged_manifest_in_one_line(tmp_path, manifests):
    c = _chunks(manifests[TPL], 3)
    path = _trace(tmp_path, [c[0], c[1]], framework=manifests[FRAMEWORK])
    out = tmp_path / "all.json"
    result = CliRunner().invoke(cli, ["events", "--all", "--etl", str(path), "-f", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "EventSource manifest" in x)
    assert (
        line.startswith(
            f"warning: {path}: skipped 1 EventSource manifest chunk(s) of {TPL} of an incomplete manifest"
        )
        and "1 of 3 chunks missing" in line
        and "Traceback" not in result.output
    )


def test_provider_filter_knows_manifest_names(tmp_path, manifests):
    """providers=[the manifest's name]: the manifest is read from the unfiltered records first."""
    path = _trace(tmp_path, _chunks(manifests[TPL], 2), framework=manifests[FRAMEWORK])
    t = _tables(path, providers=["System.Threading.Tasks.TplEventSource"], ids=[7])
    assert list(t) == ["System.Threading.Tasks.TplEventSource.id7.v0.ptr4"]
    assert t["System.Threading.Tasks.TplEventSource.id7.v0.ptr4"]["OriginatingTaskID"].to_list() == [5, 5, 5]


def test_manifest_maps_and_names_parse(manifests):
    """The parsed manifest keeps the maps (localized through the string table) and the event names."""
    m = es.parse_manifest(manifests[PERFVIEW])
    kind, levels = m.maps["TraceEventLevel"]
    assert kind == "valueMap" and levels[5] == "Verbose" and levels[4] == "Informational"
    assert m.maps["Keywords"][0] == "bitMap"
    assert m.events[14].name == "ProviderEnableParameters" and m.provider == "PerfView"
    tpl = es.parse_manifest(manifests[TPL])
    assert tpl.events[7].name == "TaskScheduled/Send" and tpl.events[9].version == 1
    layout = tpl.layout(7, 4)
    assert not isinstance(layout, str) and layout and [f.kind for f in layout.fields] == ["i32"] * 5


def test_events_before_their_manifest_are_counted(tmp_path, manifests):
    """A provider's events in an earlier batch than its manifest (file order): kept as bytes and counted;
    its events after the manifest decode."""
    w = EtlWriter(pointer_size=4)
    for task in (6, 7):
        payload = TASK_SCHEDULED.build(dict(sched=1, orig=5, task=task, creating=0, options=8192))
        w.event(TPL, 7, payload, opcode=9, processor=0)
    w.event(TPL, es.MANIFEST_EVENT_ID, _chunks(manifests[TPL], 1)[0], opcode=es.MANIFEST_OPCODE, processor=1)
    payload = TASK_SCHEDULED.build(dict(sched=1, orig=5, task=8, creating=0, options=8192))
    w.event(TPL, 7, payload, opcode=9, processor=1)
    path = w.write(tmp_path / "late.etl")
    dec = columnar.Decoder()
    tables = []
    with open_etl(path) as f:
        for batch in f.batches(1):  # one buffer a batch: processor 0's, then processor 1's
            tables += dec.decode(batch)
    by = {t.name: t.frame for t in tables}
    assert by[f"{TPL}.id7.v0.ptr4.hex"].height == 2
    assert by["System.Threading.Tasks.TplEventSource.id7.v0.ptr4"]["TaskID"].to_list() == [8]
    assert (
        dec.skipped.counts[
            "events of System.Threading.Tasks.TplEventSource before its EventSource manifest (file order) kept as bytes"
        ]
        == 2
    )


def test_manifests_kept_per_provider_are_bounded(manifests):
    """Ever better manifests of one provider, each defining one more event: the oldest ones' own events
    go once more than MAX_MANIFESTS are held (a hostile file cannot make us keep them all)."""
    m = es.Manifests(SkipReport("test"))
    base = manifests[TPL]
    for n in range(es.MAX_MANIFESTS + 3):
        extra = f'<event value="{1000 + n}" version="0" task="TaskScheduled" template="TaskScheduledArgs"/>'
        xml = base.replace(b"</events>", extra.encode() + b"</events>", 1)
        assert m.add(TPL, 1, 1, _chunks(xml, 1)[0], "0") is not None
    kept = [1000 + n for n in range(es.MAX_MANIFESTS + 3) if m.layout(TPL, 1000 + n, 4) is not None]
    assert kept == [1000 + n for n in range(3, es.MAX_MANIFESTS + 3)]
    assert m.layout(TPL, 7, 4) is not None  # defined by every manifest: always there
