"""Payload layouts of events: the one way the project declares an event's fields (decoded by ``columnar.py``).

A :class:`Layout` is the ordered list of an event's fields, each of one :data:`KINDS` kind: fixed-size
numbers, GUIDs and SYSTEMTIMEs (read in bulk with numpy), and variable-length UTF-16/ANSI strings, SIDs
and byte blobs whose length is an earlier field (found per group, in bulk too). Every layout, whatever
its source, is decoded by ``columnar.decode_layout`` (``columnar.decode_records`` for rows of a batch):
exactly (the layout consumes the whole payload, ``events --all``) or as a prefix (fields may follow).

Layouts are written ``name:kind`` in payload order (:func:`parse_fields`, :func:`layout`), e.g.
``"pid:u32 create_time:u64 image:wstring data:bytes[size] dest:bytes[count*8]"``. Their sources, in the
order ``events --all`` prefers them: the manifests the project ships, etl-parser 1.0.1's generated
schemas (read as data: the schema file of the one provider asked for, by GUID; the kernel MOF classes
from its 6 small kernel modules; a construct this module does not know compiles to None and the caller
falls back to construct), TraceLogging metadata in the events (``tracelogging.py``) and EventSource
manifests in the trace (``eventsource.py``).

The shipped manifests (``manifests/*.txt``, one file per provider, package data) are the compact form
of a provider's instrumentation manifest, one line each (``#`` starts a comment)::

    provider Microsoft-Windows-Kernel-Process 22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716
    source <where the facts come from>
    template ProcessStartArgs ProcessID:u32 CreateTime:u64 ParentProcessID:u32 ImageName:wstring
    event 1 0 ProcessStart ProcessStartArgs            (event id, version, name, template; - : none)

Kinds as the decoder presents manifest types: FILETIME as its raw u64, HexInt as unsigned, IPAddrV4
as u32, Boolean as ``bool32``, Pointer/SizeT as ``ptr`` (per the record's pointer size).
``tools/manifest_to_compact.py`` writes the form from a manifest's XML. A shipped file is trusted data,
but layouts compiled from a trace (TraceLogging, EventSource) are hostile: the decoder bounds every
field by its record's payload whatever the layout says.
"""

from __future__ import annotations

import ast
import re
import uuid
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

#: Fixed-size numeric kinds -> numpy dtype.
NUMERIC = {
    "u8": "<u1",
    "i8": "<i1",
    "u16": "<u2",
    "i16": "<i2",
    "u32": "<u4",
    "i32": "<i4",
    "u64": "<u8",
    "i64": "<i8",
    "f32": "<f4",
    "f64": "<f8",
}
#: Every kind: the numeric ones, ``guid`` (16 bytes -> text), ``systemtime`` (8 x i16 -> struct),
#: ``bytes`` (``size`` bytes), ``bytes_from`` (length in the field ``ref``), ``wstring`` (UTF-16LE,
#: NUL-terminated), ``cstring`` (ANSI, NUL-terminated), ``sid`` (revision, count, authority, count x u32).
#: TraceLogging adds ``bool32``, ``filetime`` (u64 -> UTC time), ``utf8z`` (UTF-8, NUL-terminated) and the
#: counted forms ``bytes_u16``, ``wstring_u16``, ``cstring_u16`` (u16 byte count, then the bytes).
#: ``ptr`` (a pointer: u64 or u32 per the record's pointer size) is resolved by :func:`for_pointer`
#: before decoding; ``bytes_from`` with a ``size`` is an array: ``ref`` x ``size`` bytes. ``u64s`` and ``u32s``:
#: a list of numbers, as many as the earlier field ``ref`` says (``name:u32s[Count]``) or else up to the
#: payload's end; ``ptrs`` the same of pointers (resolved by ``for_pointer``).
KINDS = (
    *NUMERIC,
    "guid",
    "systemtime",
    "bytes",
    "bytes_from",
    "wstring",
    "cstring",
    "sid",
    "bool32",
    "filetime",
    "utf8z",
    "bytes_u16",
    "wstring_u16",
    "cstring_u16",
    "ptr",
    "u64s",
    "u32s",
    "ptrs",
)
SYSTEMTIME_FIELDS = ("year", "month", "day_of_week", "day", "hour", "minute", "second", "milliseconds")


@dataclass(frozen=True)
class Field:
    """One payload field: its name, kind, and size (``bytes``) or length field (``bytes_from``)."""

    name: str
    kind: str
    size: int = 0
    ref: str = ""


@dataclass(frozen=True)
class Layout:
    """The fields of one event type's payload, in order, and where the layout came from."""

    fields: tuple[Field, ...]
    source: str

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


_SPEC = re.compile(r"([^\s:,]+):([a-z0-9_]+)(?:\[([^\]\s*]+)(?:\*(\d+))?\])?")


def parse_fields(spec: str) -> tuple[Field, ...]:
    """Fields written ``name:kind`` in payload order (spaces or commas between them): a :data:`KINDS` kind,
    ``name:bytes[16]`` (a fixed number of bytes), ``name:bytes[Other]`` (as many bytes as the earlier
    field ``Other`` says) or ``name:bytes[Count*8]`` (an array: ``Count`` elements of 8 bytes). Raises ValueError naming the first token it does not understand."""
    fields: list[Field] = []
    for token in spec.replace(",", " ").split():
        m = _SPEC.fullmatch(token)
        if m is None:
            raise ValueError(f"field {token!r}: not name:kind")
        name, kind, arg, times = m.groups()
        if times is not None and (kind != "bytes" or arg is None or arg.isdigit()):
            raise ValueError(f"field {token!r}: only bytes[Field*size] multiplies")
        if kind == "bytes" and arg is not None and arg.isdigit():
            fields.append(Field(name, "bytes", size=int(arg)))
        elif kind == "bytes" and arg is not None:
            if arg not in {f.name for f in fields}:
                raise ValueError(f"field {token!r}: its length field {arg!r} is not an earlier field")
            fields.append(Field(name, "bytes_from", size=int(times or 0), ref=arg))
        elif kind in ("u64s", "u32s", "ptrs") and arg is not None and not arg.isdigit():
            if arg not in {f.name for f in fields}:
                raise ValueError(f"field {token!r}: its count field {arg!r} is not an earlier field")
            fields.append(Field(name, kind, ref=arg))
        elif kind in KINDS and kind not in ("bytes", "bytes_from") and arg is None:
            fields.append(Field(name, kind))
        else:
            raise ValueError(f"field {token!r}: unknown kind (or a length on a kind other than bytes)")
    if len({f.name for f in fields}) != len(fields):
        raise ValueError(f"fields {spec!r}: a name is used twice")
    return tuple(fields)


def layout(spec: str, source: str) -> Layout:
    """The :class:`Layout` of fields written as :func:`parse_fields` reads them."""
    return Layout(parse_fields(spec), source)


# ------------------------------------------------------------------ construct -> Layout

_FMT = {
    "B": "u8",
    "b": "i8",
    "H": "u16",
    "h": "i16",
    "L": "u32",
    "l": "i32",
    "Q": "u64",
    "q": "i64",
    "f": "f32",
    "d": "f64",
}


def _specials() -> dict[int, str]:
    from etl.dtyp import Sid
    from etl.utils import CString, Guid, SystemTime, WString

    return {
        id(WString): "wstring",
        id(CString): "cstring",
        id(Guid): "guid",
        id(SystemTime): "systemtime",
        id(Sid): "sid",
    }


def compile_struct(pattern, source: str) -> Layout | None:
    """The Layout of an etl-parser construct ``Struct`` (None when one of its fields is not understood)."""
    import construct as cs

    special = _specials()
    fields: list[Field] = []
    for sub in pattern.subcons:
        name, con = sub.name, sub.subcon
        if name is None:
            return None
        kind = special.get(id(con))
        if kind is not None:
            fields.append(Field(name, kind))
        elif (
            isinstance(con, cs.FormatField)
            and con.fmtstr[-1] in _FMT
            and (con.fmtstr[0] == "<" or con.sizeof() == 1)
        ):
            fields.append(Field(name, _FMT[con.fmtstr[-1]]))
        elif isinstance(con, cs.Bytes):
            if isinstance(con.length, int):
                fields.append(Field(name, "bytes", size=con.length))
            elif callable(con.length) and getattr(con.length, "__code__", None) is not None:
                refs = con.length.__code__.co_names
                if len(refs) != 1 or refs[0] not in {f.name for f in fields}:
                    return None
                fields.append(Field(name, "bytes_from", ref=refs[0]))
            else:
                return None
        elif (
            isinstance(con, cs.Array)
            and isinstance(con.count, int)
            and con.count >= 16
            and isinstance(con.subcon, cs.FormatField)
            and con.subcon.sizeof() == 1
        ):
            fields.append(Field(name, "bytes", size=con.count))  # Byte[n]: a blob (hex in JSON)
        else:
            return None
    return Layout(tuple(fields), source)


# ------------------------------------------------------------------ etl-parser's manifest schemas


def _etw_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("etl")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "parsers" / "etw"
    return d if d.is_dir() else None


_HEAD_GUID = re.compile(r"GUID\s*:\s*([0-9a-fA-F-]{36})")


@lru_cache(maxsize=1)
def _provider_files() -> dict[uuid.UUID, tuple[Path, str]]:
    """GUID -> (schema file, provider name), from the docstring at the head of each schema file."""
    out: dict[uuid.UUID, tuple[Path, str]] = {}
    d = _etw_dir()
    if d is None:
        return out
    for path in sorted(d.glob("*.py")):
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(400)
        m = _HEAD_GUID.search(head)
        if m:
            lines = [x.strip() for x in head.split('"""')[1].strip().splitlines()] if '"""' in head else []
            out[uuid.UUID(m.group(1))] = (path, lines[0] if lines else path.stem)
    return out


def provider_name(guid: uuid.UUID) -> str | None:
    """A manifest provider's name, per the shipped manifests, else etl-parser's schema files."""
    m = shipped(guid)
    if m is not None:
        return m.name
    hit = _provider_files().get(guid)
    return hit[1] if hit else None


_DECLARE = re.compile(r"@declare\(guid=guid\(\"([0-9a-fA-F-]{36})\"\),\s*event_id=(\d+),\s*version=(\d+)\)")


def _type_namespace() -> dict:
    import construct as cs
    from etl.dtyp import Sid
    from etl.utils import CString, Guid, SystemTime, TimeZoneInformation, WString

    ns = {
        n: getattr(cs, n)
        for n in (
            "Int8sl",
            "Int8ul",
            "Int16ul",
            "Int16sl",
            "Int32sl",
            "Int32ul",
            "Int64sl",
            "Int64ul",
            "Bytes",
            "Double",
            "Float32l",
            "Struct",
            "Byte",
            "Array",
        )
    }
    ns.update(
        WString=WString,
        CString=CString,
        SystemTime=SystemTime,
        Guid=Guid,
        Sid=Sid,
        TimeZoneInformation=TimeZoneInformation,
    )
    return ns


@cache
def _manifest_layouts(guid: uuid.UUID) -> dict[tuple[int, int], Layout | None]:
    """(event id, version) -> Layout of one provider, from its etl-parser schema file (read, not imported)."""
    hit = _provider_files().get(guid)
    if hit is None:
        return {}
    text = hit[0].read_text(encoding="utf-8", errors="replace")
    ns = _type_namespace()
    out: dict[tuple[int, int], Layout | None] = {}
    for m in _DECLARE.finditer(text):
        if uuid.UUID(m.group(1)) != guid:
            continue
        start = text.find("Struct(", m.end())
        nxt = text.find("@declare(", m.end())
        if start < 0 or (0 <= nxt < start):
            continue
        try:
            # The class name is not needed: the Struct expression alone, evaluated with construct's types.
            node = ast.parse(text[start : _matching_paren(text, start + 6) + 1], mode="eval")
            pattern = eval(compile(node, str(hit[0]), "eval"), {"__builtins__": {}}, ns)
        except (SyntaxError, NameError, TypeError, ValueError):
            out[(int(m.group(2)), int(m.group(3)))] = None
            continue
        key = (int(m.group(2)), int(m.group(3)))
        out[key] = compile_struct(pattern, f"etl-parser {hit[0].stem} {key[0]} v{key[1]}")
    return out


def _matching_paren(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    raise SyntaxError("unbalanced parentheses")


def manifest_layout(guid: uuid.UUID, event_id: int, version: int) -> Layout | Literal[False] | None:
    """The Layout of a manifest event; None when its schema cannot be compiled; False when there is none."""
    layouts = _manifest_layouts(guid)
    key = (event_id, version)
    return layouts.get(key, False)


# ------------------------------------------------------------------ etl-parser's kernel MOF classes


@lru_cache(maxsize=1)
def _kernel_layouts() -> dict[tuple[int, int, int], Layout | None]:
    try:
        import etl.parsers.kernel  # noqa: F401  (6 small modules: registers the MOF classes)
        from etl.parsers.kernel.core import __mof_factory__
    except ImportError:
        return {}
    out: dict[tuple[int, int, int], Layout | None] = {}
    for group, by_version in __mof_factory__.items():
        for version, by_type in by_version.items():
            for opcode, cls in by_type.items():
                if cls.pattern is not None:
                    out[(int(group), version, opcode)] = compile_struct(
                        cls.pattern, f"etl-parser kernel {cls.__name__}"
                    )
    return out


def kernel_layout(group: int, version: int, opcode: int) -> Layout | Literal[False] | None:
    """The Layout of a kernel MOF event (64-bit pointers); None: not compilable; False: no class."""
    layouts = _kernel_layouts()
    key = (group, version, opcode)
    return layouts.get(key, False)


def kernel_class(group: int, version: int, opcode: int):
    """etl-parser's kernel MOF class (for the construct fallback)."""
    _kernel_layouts()
    from etl.parsers.kernel.core import __mof_factory__

    return __mof_factory__.get(group, {}).get(version, {}).get(opcode)


def manifest_pattern(guid: uuid.UUID, event_id: int, version: int):
    """The construct Struct of a manifest event whose layout does not compile (the construct fallback)."""
    hit = _provider_files().get(guid)
    if hit is None:
        return None
    text = hit[0].read_text(encoding="utf-8", errors="replace")
    for m in _DECLARE.finditer(text):
        if uuid.UUID(m.group(1)) == guid and (int(m.group(2)), int(m.group(3))) == (event_id, version):
            start = text.find("Struct(", m.end())
            node = ast.parse(text[start : _matching_paren(text, start + 6) + 1], mode="eval")
            return eval(compile(node, str(hit[0]), "eval"), {"__builtins__": {}}, _type_namespace())
    return None


# ------------------------------------------------------------------ manifests the project ships

#: The compact manifests shipped with the package (one file per provider).
MANIFESTS = Path(__file__).with_name("manifests")


@dataclass(frozen=True)
class Manifest:
    """A provider's events as a compact manifest file gives them: (event id, version) -> (name, Layout)."""

    name: str
    guid: uuid.UUID
    source: str
    events: dict[tuple[int, int], tuple[str, Layout]]


def _add_template(words: list[str], templates: dict[str, tuple[Field, ...]]) -> None:
    """A ``template NAME fields...`` line of a compact file, added to ``templates``."""
    if words[1] in templates:
        raise ValueError(f"template {words[1]} written twice")
    templates[words[1]] = parse_fields(" ".join(words[2:]))


def _template(name: str, templates: dict[str, tuple[Field, ...]]) -> tuple[Field, ...]:
    """The fields of a template an event line names (written before it)."""
    if name not in templates:
        raise ValueError(f"template {name} not written before")
    return templates[name]


def parse_manifest(text: str, origin: str) -> Manifest:
    """A :class:`Manifest` from the compact form (see the module docstring); ValueError names the line."""
    name, guid, source = "", None, ""
    templates: dict[str, tuple[Field, ...]] = {"-": ()}
    events: dict[tuple[int, int], tuple[str, Layout]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            if words[0] == "provider" and len(words) == 3:
                name, guid = words[1], uuid.UUID(words[2])
            elif words[0] == "source" and len(words) >= 2:
                source = line.split(None, 1)[1].strip()
            elif words[0] == "template" and len(words) >= 2:
                _add_template(words, templates)
            elif words[0] == "event" and len(words) == 5:
                key = (int(words[1]), int(words[2]))
                if key in events:
                    raise ValueError(f"event {key[0]} v{key[1]} written twice")
                fields = _template(words[4], templates)
                events[key] = (words[3], Layout(fields, f"manifest {name} {key[0]} v{key[1]}"))
            else:
                raise ValueError("not a provider, source, template or event line")
        except ValueError as exc:
            raise ValueError(f"{origin} line {number}: {exc}") from None
    if guid is None:
        raise ValueError(f"{origin}: no provider line")
    return Manifest(name, guid, source, events)


@lru_cache(maxsize=1)
def _shipped_files() -> dict[uuid.UUID, Path]:
    """GUID -> compact manifest file, from each file's provider line (the files are read when used)."""
    out: dict[uuid.UUID, Path] = {}
    for path in sorted(MANIFESTS.glob("*.txt")):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("provider "):
                    out[uuid.UUID(line.split()[2])] = path
                    break
    return out


@cache
def shipped(guid: uuid.UUID) -> Manifest | None:
    """The manifest the project ships for a provider, if it ships one."""
    path = _shipped_files().get(guid)
    return None if path is None else parse_manifest(path.read_text(encoding="utf-8"), path.name)


def shipped_layout(
    guid: uuid.UUID, event_id: int, version: int, pointer_size: int
) -> Layout | Literal[False] | None:
    """The shipped Layout of an event (pointers of ``pointer_size`` bytes); None: the provider is shipped
    but not this event (or it has no layout); False: the provider is not shipped."""
    m = shipped(guid)
    if m is None:
        return False
    hit = m.events.get((event_id, version))
    return None if hit is None else for_pointer(hit[1], pointer_size)


# ------------------------------------------------------------------ layouts the project ships for single events

#: Layouts of the events etl-parser has no class for or reads wrong (``template`` lines as in the shipped
#: manifests; ``class`` lines: a classic event by provider, version and opcodes; ``event`` lines: a manifest
#: event by provider GUID, event id and version).
OWN = Path(__file__).with_name("event_layouts.txt")


@dataclass(frozen=True)
class OwnLayouts:
    """The layouts of ``event_layouts.txt``: classic events by (kernel group or provider GUID, version,
    opcode), manifest events by (provider GUID, event id, version)."""

    classes: dict[tuple[int | uuid.UUID, int, int], Layout]
    events: dict[tuple[uuid.UUID, int, int], Layout]


def parse_own(text: str, origin: str, groups: dict[str, int]) -> OwnLayouts:
    """The :class:`OwnLayouts` of the compact form of ``event_layouts.txt`` (``groups``: kernel group names ->
    ids); ValueError names the line."""
    templates: dict[str, tuple[Field, ...]] = {}
    classes: dict[tuple[int | uuid.UUID, int, int], Layout] = {}
    events: dict[tuple[uuid.UUID, int, int], Layout] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#") or words[0] == "source":
            continue
        try:
            if words[0] == "template" and len(words) >= 2:
                _add_template(words, templates)
            elif words[0] in ("class", "event") and len(words) == 5:
                lay = Layout(_template(words[4], templates), f"etwtools {words[4]} ({words[1]} v{words[2]})")
                if words[0] == "event":
                    key = (uuid.UUID(words[1]), int(words[2]), int(words[3]))
                    if key in events:
                        raise ValueError(f"event {words[2]} v{words[3]} written twice")
                    events[key] = lay
                    continue
                provider: int | uuid.UUID = groups[words[1]] if words[1] in groups else uuid.UUID(words[1])
                for opcode in words[3].split(","):
                    ckey = (provider, int(words[2]), int(opcode))
                    if ckey in classes:
                        raise ValueError(f"class {words[1]} v{words[2]} opcode {opcode} written twice")
                    classes[ckey] = lay
            else:
                raise ValueError("not a source, template, class or event line")
        except ValueError as exc:
            raise ValueError(f"{origin} line {number}: {exc}") from None
    return OwnLayouts(classes, events)


@lru_cache(maxsize=1)
def _own() -> OwnLayouts:
    from .generic import KERNEL_GROUP_NAMES

    groups = {name: group for group, name in KERNEL_GROUP_NAMES.items()}
    return parse_own(OWN.read_text(encoding="utf-8"), OWN.name, groups)


def classic_layout(provider: int | uuid.UUID, version: int, opcode: int, pointer_size: int) -> Layout | None:
    """The shipped Layout of a classic event (``provider``: its kernel group, or its provider's GUID), with
    pointers of ``pointer_size`` bytes; None: the project ships no class for it."""
    hit = _own().classes.get((provider, version, opcode))
    return None if hit is None else for_pointer(hit, pointer_size)


def own_event_layout(guid: uuid.UUID, event_id: int, version: int, pointer_size: int) -> Layout | None:
    """The shipped Layout of one manifest event etl-parser reads wrong (None: none shipped)."""
    hit = _own().events.get((guid, event_id, version))
    return None if hit is None else for_pointer(hit, pointer_size)


@cache
def for_pointer(lay: Layout, pointer_size: int) -> Layout:
    """``lay`` with its ``ptr`` fields as u64 or u32."""
    if all(f.kind not in ("ptr", "ptrs") for f in lay.fields):
        return lay
    kinds = {"ptr": "u64", "ptrs": "u64s"} if pointer_size == 8 else {"ptr": "u32", "ptrs": "u32s"}
    return Layout(tuple(replace(f, kind=kinds.get(f.kind, f.kind)) for f in lay.fields), lay.source)
