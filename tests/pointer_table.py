"""The table of win:Pointer fields shipped as ``parsers/etl/pointer_fields.txt``, derived from public manifests.

etl-parser 1.0.1's generated schemas type a manifest's ``win:Pointer`` fields as ``Int64ul``, the same as
``win:UInt64`` (tests/test_etl_parser_defects.py pins it). Which of those fields are pointers is read
here from the providers' manifests as dissect.etl ships them (the Windows manifests, public; for the CLR
the same templates as the .NET runtime's ClrEtwAll.man): an event of etl-parser's is covered when the
manifest has the same event id and version with the same field names in the same order.

Test-side only (dissect.etl is not a dependency of the package): ``python tests/pointer_table.py``
writes the file; tests/test_etl_pointers.py checks that the shipped file is what this derives.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from etwtools.parsers.etl import layouts as L
from etwtools.parsers.etl.generic import SCHEMAS

ROOT = Path(__file__).resolve().parent.parent

HEAD = """\
# win:Pointer fields of etl-parser 1.0.1's manifest schemas (which type them as 64-bit integers).
# Derived by tests/pointer_table.py from the providers' public manifests (as dissect.etl ships them);
# tests/test_etl_pointers.py checks this file against them. Only events whose schema has a 64-bit
# integer field are listed. "<guid> <provider>" starts a provider; then "<event id>.<version>" and the
# names of its pointer fields (none: it has none). An event not listed here whose schema has a 64-bit
# integer field is not covered: its 32-bit records are kept as bytes.
"""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _manifest_events(path: Path) -> dict[tuple[int, int], list[tuple[str, str]]]:
    """(event id, version) -> the (name, inType) of its template's top-level fields."""
    root = ET.parse(path).getroot()
    templates = {
        el.get("tid"): [(d.get("name") or "", d.get("inType") or _local(d.tag)) for d in el]
        for el in root.iter()
        if _local(el.tag) == "template"
    }
    out = {}
    for el in root.iter():
        if _local(el.tag) == "event" and el.get("value") is not None:
            key = (int(el.get("value"), 0), int(el.get("version", "0"), 0))
            out[key] = templates.get(el.get("template"), [])
    return out


def wide_events(guid: uuid.UUID) -> dict[tuple[int, int], list[str]]:
    """(event id, version) -> field names, of a provider's etl-parser schemas with a 64-bit integer field."""
    SCHEMAS._load()
    out = {}
    for event_id, by_version in SCHEMAS._etw.get(guid, {}).items():
        for version, cls in by_version.items():
            subs = getattr(cls.pattern, "subcons", None) or []
            if any(getattr(s.subcon, "fmtstr", "")[-1:] in ("Q", "q") for s in subs):
                out[(int(event_id), int(version))] = [s.name for s in subs]
    return out


def derive() -> str:
    import dissect.etl

    mdir = Path(dissect.etl.__file__).parent / "manifests" / "xml"
    lines = [HEAD]
    for guid, (_path, name) in sorted(L._provider_files().items(), key=lambda kv: str(kv[0])):
        wide = wide_events(guid)
        mpath = mdir / f"{{{guid}}}.xml"
        if not wide or not mpath.is_file():
            continue
        events = _manifest_events(mpath)
        body = []
        for key in sorted(wide):
            fields = events.get(key)
            if fields is None or [n for n, _ in fields] != wide[key]:
                continue  # not in the manifest, or not the same fields: not covered
            ptrs = [n for n, t in fields if t == "win:Pointer"]
            body.append(" ".join([f"{key[0]}.{key[1]}", *ptrs]))
        if body:
            lines.append(f"{guid} {name}")
            lines += body
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (ROOT / "parsers" / "etl" / "pointer_fields.txt").write_text(derive(), encoding="utf-8")
