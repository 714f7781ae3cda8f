"""PerfView's baseline text (TraceEvent's GeneralParsing test output) parsed, matched to our records, compared.

A baseline holds, for every event type PerfView decodes (``Provider/EventName``), the first 5 events in
time order: ``EVENT <ms since the trace start>: <type> PID=..; TID=..; PName=..; ProceNum=..; DataLen=..;``
then ``Name=Value; `` per field, and at the end a ``COUNT <type>:<n>`` line per type. Display conventions
(TraceEvent's GeneralParsing.Parse and PayloadString), undone here on PerfView's side: numbers with
thousands separators (``65,536``), values longer than 20 characters cut to 20 and ``...``, newlines as
``\\n``, DateTime values as UTC ``yy/MM/dd HH:mm:ss.ffffff``, pointers and some integers in hex
(``0x00187000``), booleans ``True``/``False``, map values as their text (``Verbose``, ``A|B``), IPv4/IPv6
addresses as text.

Baseline events are matched to records by rule, not by a table per event type: same PID, TID and payload
size, time within 2 microseconds once the trace's time origin is found (the most common difference of the
candidate pairs). Field names are matched by their lower-case letters and digits.
"""

from __future__ import annotations

import collections
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from etwtools.parsers.etl import columnar
from etwtools.parsers.etl import eventsource as es
from etwtools.parsers.etl.container import open_etl

_EVENT = re.compile(
    r"^EVENT ([\d,]+\.\d{3}): (.+?) PID=(-?\d+); TID=(-?\d+); PName=(.*?); ProceNum=(\d+); DataLen=(\d+); (.*)$"
)
_FIELD = re.compile(r"([A-Za-z_][\w.]*)=(.*?); (?=[A-Za-z_][\w.]*=|$)")
_COUNT = re.compile(r"^COUNT (.+):(\d+)$")


@dataclass
class BaselineEvent:
    ms: float
    type: str
    pid: int
    tid: int
    datalen: int
    fields: dict[str, str]
    line: int


@dataclass
class Baseline:
    events: list[BaselineEvent]
    counts: dict[str, int]


def parse_baseline(path: Path) -> Baseline:
    events, counts = [], {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if m := _EVENT.match(line):
            ms, typ, pid, tid, _pname, _proc, dlen, rest = m.groups()
            fields = dict(_FIELD.findall(rest))
            events.append(
                BaselineEvent(float(ms.replace(",", "")), typ, int(pid), int(tid), int(dlen), fields, n)
            )
        elif m := _COUNT.match(line):
            counts[m.group(1)] = int(m.group(2))
        elif line.strip():
            raise ValueError(f"{path.name}:{n}: not an EVENT or COUNT line")
    return Baseline(events, counts)


def norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def record_index(path: Path) -> pl.DataFrame:
    """Every record's number, time (ns), PID, TID (-1 where the header has none; a CPU sample's is its
    payload's ThreadId, the thread PerfView shows) and payload size."""
    parts = []
    with open_etl(path) as f:
        for b in f.batches():
            tid = np.where(b.tid == 0xFFFFFFFF, -1, b.tid.astype(np.int64))
            d = np.frombuffer(b.data, np.uint8)
            for i in np.flatnonzero(
                (b.group == 0x0F) & (b.opcode == 46) & (b.payload_size == b.pointer_size.astype(np.int64) + 8)
            ):
                at = int(b.payload_offset[i] + b.pointer_size[i])
                tid[i] = int(d[at : at + 4].view("<u4")[0])
            parts.append(
                pl.DataFrame(
                    {
                        "record": b.record,
                        "ns": b.time,
                        "pid": np.where(b.pid == 0xFFFFFFFF, -1, b.pid.astype(np.int64)),
                        "tid": tid,
                        "datalen": b.payload_size,
                    }
                )
            )
    return pl.concat(parts)


def match(baseline: Baseline, index: pl.DataFrame) -> tuple[dict[int, int], int]:
    """Baseline event position -> record number, and the time origin (ns) found.

    Candidates: records of the same payload size; the origin is the most common time difference of the
    candidate pairs (to 10 us), refined to their median; then a record matches within 1.5 us (PerfView
    prints microseconds), the same TID and PID first (PerfView gives kernel events the PID of their
    thread, where the record has none)."""
    ns = index["ns"].to_numpy()
    records = index["record"].to_numpy()
    pids, tids = index["pid"].to_numpy(), index["tid"].to_numpy()
    sizes = index["datalen"].to_numpy()
    order = np.argsort(sizes, kind="stable")
    sorted_sizes = sizes[order]

    def candidates(e: BaselineEvent) -> np.ndarray:
        lo, hi = np.searchsorted(sorted_sizes, [e.datalen, e.datalen + 1])
        return order[lo:hi]

    diffs: collections.Counter = collections.Counter()
    for e in baseline.events:
        rows = candidates(e)
        rows = rows[(tids[rows] == e.tid)] if len(rows) > 2000 else rows
        diffs.update(np.round((ns[rows] - e.ms * 1e6) / 1e4).astype(np.int64).tolist())
    rough = diffs.most_common(1)[0][0] * 10_000
    close = []
    for e in baseline.events:
        d = ns[candidates(e)] - e.ms * 1e6 - rough
        close.extend(d[np.abs(d) < 10_000].tolist())
    origin = rough + int(np.median(close))
    out: dict[int, int] = {}
    taken: set[int] = set()
    for pos, e in enumerate(baseline.events):
        rows = candidates(e)
        gap = np.abs(ns[rows] - origin - e.ms * 1e6)
        near = rows[gap <= 1_500]
        if not len(near):
            continue
        score = (tids[near] == e.tid).astype(int) * 2 + (pids[near] == e.pid)
        for j in np.argsort(-score, kind="stable").tolist():
            r = int(records[near[j]])
            if r not in taken:
                taken.add(r)
                out[pos] = r
                break
    return out, origin


@dataclass
class Ours:
    """Our decoding of the records PerfView's baseline shows, and our per-type counts."""

    values: dict[int, tuple[str, str, dict]]  # record -> (type name, decoder, fields)
    counts: dict[str, int]
    #: (our event type "Provider.idN", field) -> (map kind, value -> text), from the manifests
    maps: dict[tuple[str, str], tuple[str, dict[int, str]]]
    #: the event types whose maps come from dissect.etl's shipped manifests (not from the trace)
    peer_maps: set[str] = field(default_factory=set)


def event_type(name: str) -> str:
    """An event table's event type for counting: provider and event id (or kernel group and opcode),
    whatever the version, pointer size and decoder (PerfView names events, not their versions)."""
    return re.sub(r"\.v\d+(\.ptr4)?(\.hex)?(\.json)?$", "", name)


def decode(path: Path, wanted: set[int]) -> Ours:
    dec = columnar.Decoder()
    values: dict[int, tuple[str, str, dict]] = {}
    counts: collections.Counter = collections.Counter()
    want = np.asarray(sorted(wanted), np.int64)
    guids: list[uuid.UUID] = []
    with open_etl(path) as f:
        for batch in f.batches(columnar.CHUNK):
            guids = batch.guids
            for t in dec.decode(batch):
                counts[event_type(t.name)] += t.frame.height
                hit = t.frame.filter(pl.col("record").is_in(want))
                for row in hit.iter_rows(named=True):
                    fields = {k: row[k] for k in t.frame.columns[len(columnar.HEADER) :]}
                    if t.name.endswith(".json"):
                        fields = json.loads(fields["fields"])
                    fields = {k.removeprefix("field_"): v for k, v in fields.items()}
                    values[row["record"]] = (event_type(t.name), t.decoder, fields)
    maps: dict[tuple[str, str], tuple[str, dict[int, str]]] = {}
    for m in dec.eventsource.by_provider.values():
        maps.update(_maps_of(m))
    ours = Ours(values, dict(counts), maps)
    for guid in set(guids) - set(dec.eventsource.by_provider):
        peer = _peer_manifest(guid)
        if peer is not None:
            more = _maps_of(peer)
            ours.peer_maps |= {t for t, _ in more}
            maps.update(more)
    return ours


def _maps_of(m: es.Manifest) -> dict[tuple[str, str], tuple[str, dict[int, str]]]:
    out = {}
    for ev in m.events.values():
        for d in m.templates.get(ev.template, ()):
            if d.map in m.maps:
                out[(f"{m.provider}.id{ev.id}", d.name)] = m.maps[d.map]
    return out


def _peer_manifest(guid: uuid.UUID) -> es.Manifest | None:
    """A provider's manifest as dissect.etl ships it (its data files; test-side only), parsed by ours."""
    from importlib.resources import files

    path = files("dissect.etl") / "manifests" / "xml" / f"{{{guid}}}.xml"
    if not path.is_file():
        return None
    try:
        return es.parse_manifest(path.read_bytes())
    except es.ManifestError:
        return None


# ------------------------------------------------------------------ values

_INT = re.compile(r"^-?\d{1,3}(,\d{3})*$|^-?\d+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^-?[\d,]*\.\d+(E[-+]?\d+)?$")


def _text(value) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%y/%m/%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return "" if value is None else str(value)


def _cut(text: str) -> str:
    """PerfView's display of a value: the first 20 characters and "..." when longer, newlines escaped."""
    return (text[:20] + "..." if len(text) > 20 else text).replace("\n", "\\n").replace("\r", "\\r")


def _mapped(value: int, kind: str, names: dict[int, str]) -> list[str]:
    """The texts PerfView prints for a mapped value: a value map's name; a bit map's names joined with
    "|" (manifests read from the trace) or ", " (TraceEvent's own enums), "None" for no bit."""
    if kind == "valueMap":
        return [names[value]] if value in names else []
    parts = [names[k] for k in sorted(names) if k and value & k == k]
    return ["|".join(parts), ", ".join(parts)] if parts else ["None"] if value == 0 else []


def same(theirs: str, ours, mapping: tuple[str, dict[int, str]] | None = None) -> str | None:
    """None when PerfView's displayed value is ours; else why not (a short cause)."""
    if _cut(_text(ours)) == theirs:
        return None
    if isinstance(ours, bool):
        return None if theirs == str(ours) else "value"
    if isinstance(ours, int):
        if mapping is not None and theirs in [_cut(t) for t in _mapped(ours, *mapping)]:
            return None
        if _INT.match(theirs):
            v = int(theirs.replace(",", ""))
            if v == ours:
                return None
            if v < 0 and ours in (v + 2**32, v + 2**64, v + 2**16, v + 2**8):
                return "sign"  # PerfView's type is signed, ours unsigned: same bits
            return "value"
        if _HEX.match(theirs):
            return None if int(theirs, 16) == ours else "value"
        if _FLOAT.match(theirs):
            return "value"
        return "map-text"  # PerfView shows a name from a map this decoder does not have
    if isinstance(ours, float):
        if _FLOAT.match(theirs) or _INT.match(theirs):
            v = float(theirs.replace(",", ""))
            return None if abs(v - ours) <= 1e-6 * max(1.0, abs(v)) else "value"
        return "value"
    if isinstance(ours, str) and theirs.lower() == _cut(ours).lower():
        return None  # GUIDs: PerfView prints them in lower case
    return "value"
