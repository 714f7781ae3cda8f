"""Write a provider's instrumentation manifest (XML) in the compact form of ``parsers/etl/manifests/``.

usage: python tools/manifest_to_compact.py MANIFEST.xml "SOURCE TEXT" > parsers/etl/manifests/NAME.txt

The form is described in ``parsers/etl/layouts.py``. Field types map to layout kinds as the decoder
presents them: FILETIME as its raw u64 (100 ns ticks since 1601), HexInt as unsigned integers,
IPAddrV4 as u32, Pointer/SizeT as ``ptr`` (the record's pointer size), Binary with a length as
``bytes[N]``/``bytes[Field]``; an array of a fixed-size type with a count field becomes
``bytes[Count*size]``. A template with another construct is written with the reason in a comment and
its events are left out (the decoder keeps their payloads as bytes).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

from etwtools.parsers.etl import eventsource as es

#: The EventSource compiler's inType -> kind table, with the forms etl-parser and the project's outputs
#: give manifest events: FILETIME raw, pointers per record, IPv4 addresses as u32.
IN_TYPES = {
    **{k: v for k, v in es.IN_TYPES.items() if v is not None and v != "bytes"},
    "win:FILETIME": "u64",
    "win:Pointer": "ptr",
    "win:SizeT": "ptr",
    "trace:SizeT": "ptr",
    "win:IPAddrV4": "u32",
}
SIZES = {"i8": 1, "u8": 1, "i16": 2, "u16": 2, "i32": 4, "u32": 4, "i64": 8, "u64": 8, "f32": 4, "f64": 8}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _field(data: ET.Element) -> str:
    name, in_type = data.get("name", ""), data.get("inType", "")
    length, count = data.get("length"), data.get("count")
    if " " in name or ":" in name or "," in name or not name:
        raise ValueError(f"field name {name!r}")
    if in_type == "win:Binary":
        if length is None:
            raise ValueError(f"{name}: Binary without a length")
        return f"{name}:bytes[{length}]"
    if in_type == "win:IPAddrV6":
        return f"{name}:bytes[16]"
    kind = IN_TYPES.get(in_type)
    if kind is None:
        raise ValueError(f"{name}: type {in_type}")
    if length is not None:
        raise ValueError(f"{name}: {in_type} with a length")
    if count is not None:
        if kind not in SIZES:
            raise ValueError(f"{name}: array of {in_type}")
        return f"{name}:bytes[{count}*{SIZES[kind]}]"
    return f"{name}:{kind}"


def convert(path: str, source: str) -> str:
    root = ET.parse(path).getroot()
    provider = next(e for e in root.iter() if _local(e.tag) == "provider")
    guid = provider.get("guid", "").strip("{}").lower()
    lines = [
        f"provider {provider.get('name')} {guid}",
        f"source {source}",
    ]
    templates: dict[str, str | None] = {}
    for t in provider.iter():
        if _local(t.tag) != "template":
            continue
        tid = t.get("tid", "")
        try:
            if any(_local(c.tag) == "struct" for c in t):
                raise ValueError("a struct")
            fields = [_field(d) for d in t if _local(d.tag) == "data"]
        except ValueError as exc:
            lines.append(f"# template {tid} left out: {exc}")
            templates[tid] = None
            continue
        templates[tid] = tid
        lines.append(f"template {tid} {' '.join(fields)}".rstrip())
    for e in provider.iter():
        if _local(e.tag) != "event":
            continue
        tid = e.get("template")
        name = e.get("symbol") or e.get("task") or f"event{e.get('value')}"
        if tid is not None and templates.get(tid) is None:
            lines.append(f"# event {e.get('value')} v{e.get('version', '0')} {name}: template {tid} left out")
            continue
        lines.append(f"event {e.get('value')} {e.get('version', '0')} {name} {tid or '-'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(convert(sys.argv[1], sys.argv[2]))
