"""EventSource manifests carried in a trace: chunks reassembled per provider, XML compiled to Layouts.

A .NET EventSource writes its own manifest into the trace as events of its own provider with event id
0xFFFE (task 0xFFFE, opcode 0xFE). Each payload is an 8-byte envelope (:data:`ENVELOPE`: format 1 = XML,
major and minor version, magic 0x5B, u16 total chunks, u16 chunk number) and then one piece of the
UTF-8 XML manifest, at most 0xFF00 bytes a chunk. The chunks of one manifest come from one thread of one
process. Facts from .NET's ``ManifestEnvelope`` and PerfView's TraceEvent, checked on the corpus files
net.4.5.2.x64/x86.etl (PerfView, TplEventSource, FrameworkEventSource) and msbuild-PerfViewData.etl.

A provider's manifest in use is the best one seen so far (PerfView's rule: the higher sum of event
versions and largest event id, then the larger text); event ids only an older manifest defines keep its
definition. Manifests are hostile input: sizes, streams and XML elements are bounded, DOCTYPE and entity
declarations are refused (no entity expansion), and a damaged manifest costs only its provider's typed
decoding: each problem is one line (provider, process, buffer offset, what is wrong) in ``skipped``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Literal
from xml.parsers import expat

import construct as cs

from ..diagnostics import SkipReport
from .layouts import Field, Layout

#: The manifest event of every EventSource provider.
MANIFEST_EVENT_ID = 0xFFFE
MANIFEST_OPCODE = 0xFE
MAGIC = 0x5B
FORMAT_XML = 1
#: The largest piece of manifest one event carries (.NET's ManifestEnvelope.MaxChunkSize).
MAX_CHUNK = 0xFF00

ENVELOPE = cs.Struct(
    "format" / cs.Int8ul,
    "major" / cs.Int8ul,
    "minor" / cs.Int8ul,
    "magic" / cs.Int8ul,
    "total_chunks" / cs.Int16ul,
    "chunk" / cs.Int16ul,
)
ENVELOPE_SIZE = ENVELOPE.sizeof()

#: Bounds (whatever the chunks declare): one manifest, all unfinished manifests of a file, the streams
#: open at once, the XML elements of one manifest and the fields of one template.
MAX_MANIFEST = 4 << 20
MAX_PENDING = 16 << 20
MAX_STREAMS = 256
MAX_ELEMENTS = 200_000
MAX_FIELDS = 512
#: Manifests of one provider whose event definitions are kept (the best and older ones defining other
#: events), and parsed manifests remembered (many processes send the same one).
MAX_MANIFESTS = 4
MAX_REMEMBERED = 32

#: Manifest inType -> layout kind (None: the pointer size's unsigned integer).
IN_TYPES: dict[str, str | None] = {
    "win:Int8": "i8",
    "win:UInt8": "u8",
    "win:Int16": "i16",
    "win:UInt16": "u16",
    "win:Int32": "i32",
    "win:UInt32": "u32",
    "win:HexInt32": "u32",
    "win:Int64": "i64",
    "win:UInt64": "u64",
    "win:HexInt64": "u64",
    "win:Float": "f32",
    "win:Double": "f64",
    "win:Boolean": "bool32",
    "win:UnicodeString": "wstring",
    "win:AnsiString": "cstring",
    "win:GUID": "guid",
    "win:FILETIME": "filetime",
    "win:SYSTEMTIME": "systemtime",
    "win:SID": "sid",
    "win:Pointer": None,
    "trace:SizeT": None,
    "win:Binary": "bytes",
}
#: Standard opcodes (winmeta.xml) for event names.
OPCODES = {
    "win:Info": 0,
    "win:Start": 1,
    "win:Stop": 2,
    "win:DC_Start": 3,
    "win:DC_Stop": 4,
    "win:Extension": 5,
    "win:Reply": 6,
    "win:Resume": 7,
    "win:Suspend": 8,
    "win:Send": 9,
    "win:Receive": 240,
}


class ManifestError(ValueError):
    """A manifest that cannot be used (the message says what is wrong)."""


@dataclass(frozen=True)
class DataField:
    """One ``<data>`` of a template, as written."""

    name: str
    in_type: str
    out_type: str = ""
    map: str = ""
    length: str = ""
    count: str = ""


@dataclass(frozen=True)
class EventDef:
    """One ``<event>``: id, version, template id and names (task, opcode, symbol)."""

    id: int
    version: int
    template: str
    task: str = ""
    opcode: str = ""
    symbol: str = ""

    @property
    def name(self) -> str:
        """The event's name: task/opcode (opcode without its ``win:`` prefix), else the symbol."""
        op = self.opcode.split(":")[-1] if self.opcode not in ("", "win:Info") else ""
        task = self.task or (self.symbol if not op else "")
        return "/".join(p for p in (task, op) if p) or f"EventID({self.id})"


@dataclass
class Manifest:
    """A provider's parsed manifest."""

    provider: str
    guid: uuid.UUID
    events: dict[int, EventDef]
    templates: dict[str, tuple[DataField, ...]]
    #: map name -> (kind "valueMap"/"bitMap", value -> message)
    maps: dict[str, tuple[str, dict[int, str]]]
    size: int
    _compiled: dict[tuple[int, int], Layout | str] = field(default_factory=dict, repr=False)

    @property
    def rank(self) -> tuple[int, int]:
        """PerfView's order of manifests of one provider: (event count + versions + 100 x largest id, size)."""
        score = len(self.events) + sum(e.version for e in self.events.values())
        return score + 100 * max(self.events, default=0), self.size

    def layout(self, event_id: int, pointer_size: int) -> Layout | str | Literal[False]:
        """The Layout of an event; a str says why its template cannot be compiled; False: no such event."""
        if event_id not in self.events:
            return False
        key = (event_id, pointer_size)
        if key not in self._compiled:
            self._compiled[key] = self._compile(self.events[event_id], pointer_size)
        return self._compiled[key]

    def _compile(self, ev: EventDef, pointer_size: int) -> Layout | str:
        data = self.templates.get(ev.template, ()) if ev.template else ()
        if ev.template and ev.template not in self.templates:
            return f"template {ev.template!r} is not in the manifest"
        fields: list[Field] = []
        names: set[str] = set()
        for d in data:
            if d.name in names or not d.name:
                return f"field name {d.name!r} repeated or empty"
            if d.count:
                return f"field {d.name!r} is an array"
            if d.in_type not in IN_TYPES:
                return f"field {d.name!r} has the unsupported type {d.in_type}"
            kind = IN_TYPES[d.in_type] or ("u64" if pointer_size == 8 else "u32")
            if kind == "bytes":
                numeric = {f.name for f in fields if f.kind in ("u8", "u16", "u32", "i32", "u64", "i64")}
                if d.length.isdigit():
                    fields.append(Field(d.name, "bytes", size=int(d.length)))
                elif d.length in numeric:
                    fields.append(Field(d.name, "bytes_from", ref=d.length))
                else:
                    return f"binary field {d.name!r} has no length field before it"
            elif d.length:
                return f"field {d.name!r} has a fixed length"
            else:
                fields.append(Field(d.name, kind))
            names.add(d.name)
        return Layout(tuple(fields), f"EventSource manifest {self.provider} {ev.id} v{ev.version}")


# ------------------------------------------------------------------ the XML


def _int(text: str | None, what: str, top: int) -> int:
    if text is None:
        raise ManifestError(f"{what} is missing")
    t = text.strip()
    try:
        v = int(t, 16) if t.lower().startswith("0x") else int(t)
    except ValueError:
        raise ManifestError(f"{what} {t[:20]!r} is not a number") from None
    if not 0 <= v <= top:
        raise ManifestError(f"{what} {v} is out of range")
    return v


def parse_manifest(xml: bytes) -> Manifest:
    """The provider, events, templates and maps of an XML manifest (raises ManifestError).

    expat, with DOCTYPE, entity declarations and external entities refused: no entity is ever expanded.
    """
    if len(xml) > MAX_MANIFEST:
        raise ManifestError(f"manifest of {len(xml)} bytes is over the {MAX_MANIFEST} bytes allowed")
    providers: list[tuple[str, str]] = []
    events: dict[int, EventDef] = {}
    templates: dict[str, list[DataField]] = {}
    maps: dict[str, tuple[str, dict[int, str]]] = {}
    strings: dict[str, str] = {}
    stack: list[str] = []
    state: dict[str, str | None] = {"template": None, "map": None}
    elements = 0

    def refuse(*_args: object) -> int:
        raise ManifestError("DOCTYPE or entity declarations are not allowed in a manifest")

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal elements
        elements += 1
        if elements > MAX_ELEMENTS:
            raise ManifestError(f"more than {MAX_ELEMENTS} XML elements")
        name = tag.rsplit(":", 1)[-1]
        parent = stack[-1] if stack else ""
        stack.append(name)
        if name == "provider" and parent == "events":
            providers.append((attrs.get("name", ""), attrs.get("guid", "")))
        elif name == "event" and parent == "events":
            eid = _int(attrs.get("value"), "event value", 0xFFFF)
            events[eid] = EventDef(
                eid,
                _int(attrs.get("version", "0"), f"event {eid} version", 0xFF),
                attrs.get("template", ""),
                attrs.get("task", ""),
                attrs.get("opcode", ""),
                attrs.get("symbol", ""),
            )
        elif name == "template":
            tid = attrs.get("tid", "")
            state["template"] = tid
            templates[tid] = []
        elif name == "data" and state["template"] is not None and parent == "template":
            fields = templates[state["template"]]
            if len(fields) >= MAX_FIELDS:
                raise ManifestError(f"template {state['template']!r} has more than {MAX_FIELDS} fields")
            fields.append(
                DataField(
                    attrs.get("name", ""),
                    attrs.get("inType", ""),
                    attrs.get("outType", ""),
                    attrs.get("map", ""),
                    attrs.get("length", ""),
                    attrs.get("count", ""),
                )
            )
        elif name == "struct" and state["template"] is not None:
            templates[state["template"]].append(DataField(attrs.get("name", "struct"), "struct"))
        elif name in ("valueMap", "bitMap"):
            new_map = attrs.get("name", "")
            state["map"] = new_map
            maps[new_map] = (name, {})
        elif name == "map" and (current := state["map"]) is not None:
            maps[current][1][_int(attrs.get("value"), "map value", 2**64 - 1)] = attrs.get("message", "")
        elif name == "string" and parent == "stringTable" and "id" in attrs:
            strings.setdefault(attrs["id"], attrs.get("value", ""))

    def end(tag: str) -> None:
        name = stack.pop() if stack else ""
        if name == "template":
            state["template"] = None
        elif name in ("valueMap", "bitMap"):
            state["map"] = None

    p = expat.ParserCreate()
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.StartDoctypeDeclHandler = refuse
    p.EntityDeclHandler = refuse
    p.UnparsedEntityDeclHandler = refuse
    p.ExternalEntityRefHandler = refuse
    p.StartElementHandler = start
    p.EndElementHandler = end
    try:
        p.Parse(xml, True)
    except expat.ExpatError as exc:
        raise ManifestError(f"XML: {exc}") from None
    if len(providers) != 1:
        raise ManifestError(f"{len(providers)} provider elements, not 1")
    name, guid_text = providers[0]
    try:
        guid = uuid.UUID(guid_text)
    except ValueError:
        raise ManifestError(f"provider GUID {guid_text[:40]!r} is not a GUID") from None
    for _, values in maps.values():  # messages "$(string.ID)" from the string table
        for k, v in values.items():
            if v.startswith("$(string.") and v.endswith(")"):
                values[k] = strings.get(v[9:-1], v)
    return Manifest(
        name or str(guid),
        guid,
        events,
        {k: tuple(v) for k, v in templates.items()},
        maps,
        len(xml),
    )


# ------------------------------------------------------------------ chunks -> manifests


@dataclass
class _Stream:
    """The chunks of one manifest being sent by one thread."""

    head: tuple[int, int, int]  # format, major, minor
    total: int
    chunks: dict[int, bytes]
    where: str

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks.values())


class Manifests:
    """The EventSource manifests of one file, reassembled as their chunks come (file order)."""

    def __init__(self, skipped: SkipReport) -> None:
        self.skipped = skipped
        self.by_provider: dict[uuid.UUID, Manifest] = {}
        #: event id -> the manifest defining it, per provider (the best manifest first, then older ones)
        self._events: dict[uuid.UUID, dict[int, Manifest]] = {}
        self._history: dict[uuid.UUID, list[Manifest]] = {}
        self._streams: dict[tuple[uuid.UUID, int, int], _Stream] = {}
        self._pending = 0
        #: parsed manifests by (provider, digest of the text): many processes send the same one
        self._parsed: dict[tuple[uuid.UUID, bytes], Manifest | str] = {}
        self._first: dict[tuple[uuid.UUID, str], str] = {}

    def _problem(self, guid: uuid.UUID, pid: int, where: str, what: str, why: str) -> None:
        """Count a kind of problem per provider, naming the first one's process, buffer and details."""
        key = (guid, what)
        if key not in self._first:
            self._first[key] = f"first: process {pid}, in the buffer at byte {where}: {why}"
        self.skipped.add(f"EventSource manifest chunk(s) of {guid} {what} ({self._first[key]})")

    def add(self, guid: uuid.UUID, pid: int, tid: int, payload: bytes, where: str) -> Manifest | None:
        """Take one manifest event's payload; the provider's manifest when this chunk completes a better one."""
        if len(payload) <= ENVELOPE_SIZE:
            self._problem(
                guid, pid, where, "too short", f"{len(payload)} bytes, no room for a manifest piece"
            )
            return None
        env = ENVELOPE.parse(payload[:ENVELOPE_SIZE])
        piece = payload[ENVELOPE_SIZE:]
        if env.magic != MAGIC:
            self._problem(
                guid, pid, where, "without the magic", f"magic {env.magic:#04x} is not {MAGIC:#04x}"
            )
            return None
        if env.format != FORMAT_XML:
            self._problem(guid, pid, where, "not XML", f"manifest format {env.format} is not XML (1)")
            return None
        if not env.chunk < env.total_chunks:
            self._problem(
                guid, pid, where, "numbered past their total", f"chunk {env.chunk} of {env.total_chunks}"
            )
            return None
        if len(piece) > MAX_CHUNK:
            self._problem(guid, pid, where, "too large", f"a piece of {len(piece)} bytes, over {MAX_CHUNK}")
            return None
        key = (guid, pid, tid)
        head = (env.format, env.major, env.minor)
        s = self._streams.get(key)
        if s is not None and (
            s.head != head or s.total != env.total_chunks or (env.chunk == 0 and 0 in s.chunks)
        ):
            # chunks may come out of order (a thread's events land in the buffer of the CPU it ran on);
            # a second chunk 0 or another envelope starts a new manifest
            self._abandon(key, "restarted", "a new manifest started before it was complete")
            s = None
        if s is None:
            if env.total_chunks == 1:  # the usual case: the whole manifest in one event
                return self._install(guid, pid, piece, where)
            if len(self._streams) >= MAX_STREAMS:  # the oldest unfinished one makes room
                oldest = next(iter(self._streams))
                self._abandon(
                    oldest, "dropped for room", f"more than {MAX_STREAMS} manifests unfinished at once"
                )
            s = self._streams[key] = _Stream(head, env.total_chunks, {}, where)
        if env.chunk in s.chunks:
            self._problem(
                guid,
                pid,
                where,
                "repeated",
                f"chunk {env.chunk} of {env.total_chunks} came twice (first kept)",
            )
            return None
        if s.size + len(piece) > MAX_MANIFEST:
            self._abandon(key, "too large", f"over {MAX_MANIFEST} bytes")
            return None
        while self._pending + len(piece) > MAX_PENDING:  # the oldest unfinished ones make room
            oldest = next(iter(self._streams))
            self._abandon(
                oldest, "dropped for room", f"over {MAX_PENDING} bytes of unfinished manifests in the file"
            )
            if oldest == key:
                return None
        s.chunks[env.chunk] = piece
        self._pending += len(piece)
        if len(s.chunks) < s.total:
            return None
        del self._streams[key]
        self._pending -= s.size
        xml = b"".join(s.chunks[i] for i in range(s.total))
        return self._install(guid, pid, xml, s.where)

    def _abandon(self, key: tuple[uuid.UUID, int, int], what: str, why: str) -> None:
        s = self._streams.pop(key)
        self._pending -= s.size
        missing = s.total - len(s.chunks)
        self._problem(
            key[0],
            key[1],
            s.where,
            f"of an incomplete manifest ({what})",
            f"{why}; {missing} of {s.total} chunks missing, dropped",
        )

    def _install(self, guid: uuid.UUID, pid: int, xml: bytes, where: str) -> Manifest | None:
        digest = (guid, hashlib.blake2b(xml, digest_size=16).digest())
        m = self._parsed.get(digest)
        if m is None:
            try:
                m = parse_manifest(xml)
                if m.guid != guid:
                    raise ManifestError(f"it describes provider {m.guid}, not the provider carrying it")
            except ManifestError as exc:
                m = str(exc)
            if len(self._parsed) >= MAX_REMEMBERED:  # the oldest answer goes (it is only a cache)
                del self._parsed[next(iter(self._parsed))]
            self._parsed[digest] = m
        if isinstance(m, str):
            self._problem(
                guid,
                pid,
                where,
                "completing an unusable manifest",
                f"manifest not usable ({m}); its events stay bytes",
            )
            return None
        old = self.by_provider.get(guid)
        if old is not None and m.rank <= old.rank:
            return None
        self.by_provider[guid] = m
        events = self._events.setdefault(guid, {})
        for eid in m.events:
            events[eid] = m
        history = self._history.setdefault(guid, [])
        history.append(m)
        if len(history) > MAX_MANIFESTS:  # the oldest manifest's own events go past the bound
            gone = id(history.pop(0))
            for eid in [e for e, owner in events.items() if id(owner) == gone]:
                del events[eid]
        return m

    def layout(
        self, guid: uuid.UUID, event_id: int, pointer_size: int
    ) -> tuple[Manifest, Layout | str] | None:
        """(manifest, Layout or why not) of an event of a provider with a manifest; None: none defines it."""
        m = self._events.get(guid, {}).get(event_id)
        if m is None:
            return None
        got = m.layout(event_id, pointer_size)
        return None if got is False else (m, got)

    def provider_name(self, guid: uuid.UUID) -> str | None:
        """The name a provider's manifest gives it."""
        m = self.by_provider.get(guid)
        return m.provider if m is not None else None

    def finish(self) -> None:
        """Report the manifests still incomplete at the end of the file."""
        for key in list(self._streams):
            self._abandon(key, "unfinished at the end", "the file ended")
