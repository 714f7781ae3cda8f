"""`events --all` against PerfView's own decoding of the same traces (issue 14, acceptance 3).

net.4.5.2.x64/x86.baseline.txt are TraceEvent's GeneralParsing output for the .etl files beside them:
the first 5 events of every event type with all their fields, and a COUNT per type. Each baseline event
is matched to one of our records (tests/perfview_baseline.py: same payload size, TID/PID, time to the
microsecond); an event type of PerfView's and ours are the same when their events are; counts are
compared per such group, field values for every event both decode. Every difference has a cause below,
checked on the data (nothing is skipped by name): PerfView display conventions are undone on its side,
PerfView's own choices are shown with the values that prove them; no value of ours may be wrong (the
pointer-size mix-up of etl-parser's schemas in 32-bit records, which made 8 values wrong on x64 and 4 on
x86, is detected and counted as wrong should it come back). ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from perfview_baseline import Baseline, Ours, decode, match, norm_name, parse_baseline, record_index, same

from etwtools.parsers.etl import columnar
from etwtools.parsers.etl.container import open_etl

#: etwtools' own decoders (kernel Process, SystemConfig NIC/Services, TcpIp/UdpIp) name their columns
#: the project's way; PerfView's names for them (one row per column, not per event type).
OWN_COLUMNS = {
    "pid": ("ProcessID",),
    "ppid": ("ParentID",),
    "image": ("ImageFileName",),
    "session": ("SessionID",),
    "unique_key": ("UniqueProcessKey",),
    "package": ("PackageFullName",),
    "name": ("ServiceName",),
    "process": ("ProcessName",),
    "state": ("ServiceState",),
    "description": ("NICDescription",),
    "addresses": ("IpAddresses",),
    "dns": ("DnsServerAddresses",),
}
_ALIAS = {norm_name(p): norm_name(o) for o, ps in OWN_COLUMNS.items() for p in ps}


def _filetime(value: int) -> datetime:
    return datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 10)


def _sockaddr(raw: bytes) -> str | None:
    """A SOCKADDR's text as PerfView prints it (IPv4 a.b.c.d:port, IPv6 [addr]:port)."""
    family = int.from_bytes(raw[:2], "little")
    port = int.from_bytes(raw[2:4], "big")
    if family == 2 and len(raw) >= 8:
        return f"{ipaddress.IPv4Address(raw[4:8])}:{port}"
    if family == 23 and len(raw) >= 24:
        return f"[{ipaddress.IPv6Address(raw[8:24])}]:{port}"
    return None


def _cut(text: str) -> str:
    return text[:20] + "..." if len(text) > 20 else text


def normalised(name: str, theirs: str, ours, pid: int | None = None) -> str | None:
    """Which of PerfView's conventions makes its value ours (None: none does; ``pid``: the process ID
    PerfView shows for the event)."""
    date = re.match(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d\.", theirs)
    if date and isinstance(ours, int) and _cut(_filetime(ours).strftime("%y/%m/%d %H:%M:%S.%f")) == theirs:
        return "a FILETIME: etl-parser's schema types it as an integer, PerfView shows the UTC time"
    if isinstance(ours, str) and ours.startswith("\\Device\\"):
        rest = re.sub(r"^\\Device\\[^\\]+", "", ours)
        body = theirs.removesuffix("...")
        if re.sub(r"^[A-Za-z]:", "", body) and (
            rest.startswith(re.sub(r"^[A-Za-z]:", "", body)) or ("\\" + rest).startswith(body)
        ):
            return "a kernel path: PerfView rewrites \\Device\\<volume> to its drive letter (\\Device\\Mup to \\)"
    if isinstance(ours, str) and re.match(r"^\\(SystemRoot|Windows)\\", ours, re.IGNORECASE):
        body = theirs.removesuffix("...")
        root = "\\SystemRoot\\"
        full = "\\Windows\\" + ours[len(root) :] if ours.lower().startswith(root.lower()) else ours
        if re.match(r"^[A-Za-z]:\\", body) and full.lower().startswith(body[2:].lower()):
            return "a path without its drive: PerfView writes \\SystemRoot as C:\\Windows and adds the system drive"
    if (
        name == "Count"
        and isinstance(ours, int)
        and theirs.isdigit()
        and ours & 0xFFFF == int(theirs) != ours
    ):
        return (
            "SampledProfile's Count: PerfView shows its low 16 bits (the high half: DPC/ISR flags, priority)"
        )
    if name == "ProcessID" and theirs == "0" and ours == pid != 0:
        return "KernelTraceControl ImageID: PerfView shows the payload's ProcessID as the event's PID, the field as 0"
    if isinstance(ours, bytes) and (text := _sockaddr(ours)) is not None and _cut(text) == theirs:
        return "a SOCKADDR: etl-parser's schema keeps the bytes, PerfView prints the address"
    if isinstance(ours, list) and _cut(";".join(map(str, ours))) == theirs:
        return "a list: etwtools' own decoders keep a list, PerfView joins it with ';'"
    if ours is None and theirs == "-1":
        return "no session: etwtools' Process decoder gives SessionID 0xFFFFFFFF as null, PerfView as -1"
    if (
        name == "ProcessName"
        and isinstance(ours, str)
        and (ours.lower().removesuffix(".exe") == theirs.lower() or (ours, theirs) == ("", "Idle"))
    ):
        return "a process name: PerfView prints its process table's name (no .exe; Idle for PID 0)"
    if (
        name == "CreateOptions"
        and isinstance(ours, int)
        and theirs.isdigit()
        and ours & 0xFFFFFF == int(theirs)
    ):
        return "Kernel-File CreateOptions: PerfView shows the low 24 bits, the top byte as CreateDisposition"
    return None


@dataclass
class Report:
    """The comparison of one file."""

    name: str
    baseline: Baseline
    matched: int = 0
    groups: list[tuple[list[str], int, list[str], int]] = field(default_factory=list)
    count_causes: dict[str, str] = field(default_factory=dict)
    types_compared: set[str] = field(default_factory=set)
    types_agreeing: set[str] = field(default_factory=set)
    values: collections.Counter = field(default_factory=collections.Counter)
    causes: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    unexplained: list[str] = field(default_factory=list)
    perfview_only: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))

    def text(self) -> str:
        ok = sum(p == o for _, p, _, o in self.groups)
        lines = [
            (
                f"{self.name}: {self.matched}/{len(self.baseline.events)} baseline events matched to records; "
                f"{len(self.groups)} event types: counts agree for {ok}, explained for {len(self.count_causes)}"
            ),
            (
                f"  both decode {len(self.types_compared)} types; every value agrees (display undone) in {len(self.types_agreeing)}; "
                f"values: {self.values['agree']} agree, {self.values['normalised']} agree once PerfView's display "
                f"is undone, {self.values['map']} PerfView map text we have no map for, "
                f"{self.values['wrong']} ours wrong, {self.values['perfview-only']} PerfView-only fields"
            ),
        ]
        lines += [f"  count {k}: {v}" for k, v in self.count_causes.items()]
        lines += [f"  {cause}: {len(where)} values, e.g. {where[0]}" for cause, where in self.causes.items()]
        lines += [
            f"  PerfView-only fields of {t}: {', '.join(sorted(f))}"
            for t, f in sorted(self.perfview_only.items())
        ]
        return "\n".join(lines)


def _groups(b: Baseline, m: dict[int, int], ours: Ours) -> list[tuple[list[str], int, list[str], int]]:
    """PerfView's and our event types joined when their events are (connected groups), with counts."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for pos, rec in m.items():
        parent[find(("p", b.events[pos].type))] = find(("o", ours.values[rec][0]))
    members: dict[tuple[str, str], tuple[set[str], set[str]]] = collections.defaultdict(
        lambda: (set(), set())
    )
    for node in list(parent):
        members[find(node)][0 if node[0] == "p" else 1].add(node[1])
    return [
        (sorted(p), sum(b.counts[t] for t in p), sorted(o), sum(ours.counts.get(t, 0) for t in o))
        for p, o in members.values()
    ]


def _payloads(path, event_type: str) -> list[bytes]:
    out = []
    dec = columnar.Decoder()
    with open_etl(path) as f:
        for batch in f.batches(columnar.CHUNK):
            for t in dec.decode(batch):
                if t.name.startswith(event_type + ".") and t.decoder == "hex":
                    out += t.frame["payload"].to_list()
    return out


def _explain_count(
    path, perfview: list[str], theirs: int, ours_types: list[str], ours: int, values
) -> str | None:
    """Why PerfView counts differently, computed from our decoding (None: no known reason)."""
    if perfview == ["Windows Kernel/PerfInfo/Sample"]:
        # PerfView's TraceLog drops CPU samples of the idle thread (ThreadId 0) unless they ran a DPC/ISR
        # (low 2 bits of Count's third byte)
        tids, counts = values(ours_types, "ThreadId"), values(ours_types, "Count")
        kept = sum(t != 0 or (c >> 16) & 3 != 0 for t, c in zip(tids, counts))
        if kept == theirs and len(tids) == len(counts) == ours:
            return (
                f"PerfView drops idle-thread CPU samples: {ours - theirs} of {ours} (ThreadID 0, no DPC/ISR)"
            )
    if perfview == ["Microsoft-Windows-DotNETRuntime/Method/LoadVerbose"]:
        # TraceLog keeps a MethodLoadVerbose only when the method is dynamic (flag 1) or jitted (flag 8)
        flags = values(ours_types, "MethodFlags")
        if len(flags) == ours and sum((f & 9) != 0 for f in flags) == theirs:
            return f"PerfView drops {ours - theirs} MethodLoadVerbose events of methods neither jitted nor dynamic"
    return None


def compare(corpus, arch: str) -> Report:
    path = corpus / "perfview" / f"net.4.5.2.{arch}.etl"
    b = parse_baseline(path.with_name(f"net.4.5.2.{arch}.baseline.txt"))
    m, _origin = match(b, record_index(path))
    ours = decode(path, set(m.values()))
    r = Report(path.name, b, matched=len(m))

    def values(types: list[str], name: str) -> list:
        got = []
        for t in columnar.iter_events(path):
            if re.sub(r"\.v\d+(\.ptr4)?(\.hex)?(\.json)?$", "", t.name) in types and name in t.frame.columns:
                got += t.frame[name].to_list()
        return got

    for p, theirs, o, n in _groups(b, m, ours):
        r.groups.append((p, theirs, o, n))
        if theirs != n:
            cause = _explain_count(path, p, theirs, o, n, values)
            r.count_causes[" + ".join(p)] = cause or f"UNEXPLAINED: PerfView {theirs}, ours {n}"
            if cause is None:
                r.unexplained.append(f"count of {p}: PerfView {theirs}, ours {n} ({o})")

    bad: set[str] = set()
    for pos, rec in m.items():
        e = b.events[pos]
        typ, decoder, fields = ours.values[rec]
        if decoder == "hex":
            continue
        r.types_compared.add(e.type)
        by_name = {norm_name(k): k for k in fields}
        exact = {by_name[norm_name(n)] for n in e.fields if norm_name(n) in by_name}
        for name, theirs in e.fields.items():
            key = _our_name(
                name, {k: v for k, v in by_name.items() if v not in exact or norm_name(name) == k}
            )
            if key is None:
                # our layout consumed the whole payload (the decoders' exact-fit rule): a field PerfView
                # derives (thread names, parent IDs, later versions' fields) or names its own way
                r.values["perfview-only"] += 1
                r.perfview_only[e.type].add(name)
                unnamed = [k for k in fields if k not in exact and same(theirs, fields[k]) is None]
                if re.match(r"^0x[0-9a-f]+$", theirs) and len(unnamed) == 1:
                    r.causes[f"PerfView's {name} holds the value of the payload's {unnamed[0]}"].append(
                        f"{e.type} {name}={theirs} (ours {unnamed[0]}={fields[unnamed[0]]!r}, baseline line {e.line})"
                    )
                continue
            ours_value = fields[key]
            mapping = ours.maps.get((typ, key))
            why = same(theirs, ours_value, mapping)
            where = f"{e.type} {name}={theirs} (ours {key}={ours_value!r}, baseline line {e.line})"
            if why is None:
                if mapping is not None and typ in ours.peer_maps and not re.match(r"^-?[\d,]+$|^0x", theirs):
                    r.values["normalised"] += 1
                    r.causes[
                        "normalised, a map's text: maps from dissect.etl's shipped manifest of the provider"
                    ].append(where)
                else:
                    r.values["agree"] += 1
                continue
            if (rule := normalised(name, theirs, ours_value, e.pid)) is not None:
                r.values["normalised"] += 1
                r.causes[f"normalised, {rule}"].append(where)
                continue
            bad.add(e.type)
            if why == "map-text":
                r.values["map"] += 1
                r.causes[
                    "PerfView shows a name from a value/bit map we have no map for (etl-parser's schemas carry none; "
                    "dissect.etl's manifests define CLR maps but their templates do not reference them; kernel "
                    "MOF flags are TraceEvent's own enums)"
                ].append(where)
            elif why == "sign":
                r.values["normalised"] += 1
                r.causes["normalised, PerfView's field type is signed, ours unsigned (same bits)"].append(
                    where
                )
            elif _pointer_pair(e, fields, decoder):
                r.values["wrong"] += 1
                r.causes[
                    "OURS WRONG: a 32-bit process's event decoded with a pointer read as 64 bits (parsers/etl/pointers.py "
                    "should narrow it); a string after it absorbs the shift, so the exact-fit check passes"
                ].append(where)
            else:
                r.unexplained.append(where)
    r.types_agreeing = r.types_compared - bad
    return r


def _our_name(theirs: str, ours: dict[str, str]) -> str | None:
    """Our field for one of PerfView's, by rule: the same letters and digits; etwtools' own column
    names (OWN_COLUMNS); PerfView's ``Ptr`` suffix dropped (IrpPtr: Irp); else the one field of ours
    whose name ends with PerfView's (StartAddr: Win32StartAddr)."""
    n = norm_name(theirs)
    for key in (n, _ALIAS.get(n, ""), n.removesuffix("ptr")):
        if key in ours:
            return ours[key]
    tails = [k for k in ours if k.endswith(n) and len(n) >= 6]
    return ours[tails[0]] if len(tails) == 1 else None


def _pointer_pair(e, fields: dict, decoder: str) -> bool:
    """Two of PerfView's 32-bit pointer values are halves of one of our 64-bit fields (the proof of the
    pointer-size mix-up in etl-parser's schemas)."""
    hexes = [int(v, 16) for v in e.fields.values() if re.match(r"^0x[0-9a-f]{8}$", v)]
    return decoder == "etl-parser" and any(
        isinstance(v, int) and v > 0xFFFFFFFF and (v & 0xFFFFFFFF, v >> 32) == (a, c)
        for v in fields.values()
        for a, c in itertools.pairwise(hexes)
    )


@pytest.fixture(scope="module", params=["x64", "x86"])
def report(corpus, request) -> Report:
    r = compare(corpus, request.param)
    print("\n" + r.text())
    return r


def test_every_baseline_event_is_one_of_our_records(report):
    assert report.matched == len(report.baseline.events) > 450


def test_counts_agree_or_are_explained(report):
    assert not [u for u in report.unexplained if u.startswith("count")]
    agree = sum(p == o for _, p, _, o in report.groups)
    assert agree >= len(report.groups) - 2 and len(report.groups) == len(report.baseline.counts)


def test_values_agree_or_are_explained(report):
    """Every value of every event both decode equals PerfView's, or a cause above says why not."""
    assert not report.unexplained, "\n".join(report.unexplained)
    assert report.values["agree"] > 1300 and report.values["wrong"] == 0
    # the EventSource providers (typed from the manifests the trace carries) agree on every value
    for t in report.types_compared:
        if t.startswith(
            ("PerfView/", "System.Threading.Tasks.TplEventSource/", "System.Diagnostics.Eventing.")
        ):
            assert t in report.types_agreeing, t


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_clr_enable_parameters_writes_level_as_64_bits(corpus, arch):
    """PerfView/ClrEnableParameters (EventSource event 13): the trace's manifest declares keywords
    (win:UInt64) and level (a 4-byte enum), 12 bytes; the records hold 16. The trailing 4 bytes are not a
    field the manifest leaves out: PerfView's logger passes (long keywords, int level) to WriteEvent, whose
    nearest overload is WriteEvent(int, long, long), so level is written as 8 bytes (its sign extension
    after it). PerfView reads the first 12 bytes and is right by luck of the order; read as a payload
    prefix in general, a widened argument before another field shifts that field, so a manifest layout
    must fit its payload exactly and these two records stay bytes (counted with the others)."""
    path = corpus / "perfview" / f"net.4.5.2.{arch}.etl"
    b = parse_baseline(path.with_name(f"net.4.5.2.{arch}.baseline.txt"))
    theirs = [e.fields for e in b.events if e.type == "PerfView/ClrEnableParameters"]
    dec = columnar.Decoder()
    payloads, tables = [], set()
    with open_etl(path) as f:
        for batch in f.batches(columnar.CHUNK):
            for t in dec.decode(batch):
                if t.name.startswith("PerfView.id13."):
                    tables.add((t.name, t.decoder))
                    payloads += t.frame["payload"].to_list()
    manifest = next(m for m in dec.eventsource.by_provider.values() if m.provider == "PerfView")
    declared = [(d.name, d.in_type) for d in manifest.templates[manifest.events[13].template]]
    assert declared == [("keywords", "win:UInt64"), ("level", "win:UInt32")]
    assert tables == {("PerfView.id13.v0.ptr4.hex", "hex")}
    assert [len(p) for p in payloads] == [16, 16] and len(theirs) == 2
    for raw, fields in zip(payloads, theirs):
        keywords, level = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:12], "little", signed=True)
        assert int.from_bytes(raw[8:16], "little", signed=True) == level  # one 64-bit level
        assert (hex(keywords), fields["level"]) == (fields["keywords"], "Verbose") and level == 5
