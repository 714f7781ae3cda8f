"""Pointer-sized fields of etl-parser's manifest schemas, per record pointer size.

etl-parser 1.0.1's generated schemas type a manifest's ``win:Pointer`` fields as 64-bit integers, right
for 64-bit processes only. Which of their 64-bit fields are pointers is data (``pointer_fields.txt``,
derived from the providers' public manifests by tests/pointer_table.py); a layout or construct struct is
made for a pointer size from it: pointers of 32-bit records are 4 bytes. A 32-bit record of an event
whose schema has a 64-bit field the table does not cover gets no layout (kept as bytes): whether that
field is a pointer is not known.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from functools import cache, lru_cache
from importlib.resources import files

from .layouts import Layout

#: The table's file, beside this module.
TABLE = "pointer_fields.txt"
#: Kinds of 64-bit integer fields (how etl-parser types a pointer).
WIDE = ("u64", "i64")


@lru_cache(maxsize=1)
def _table() -> dict[uuid.UUID, dict[tuple[int, int], tuple[str, ...]]]:
    """Provider GUID -> (event id, version) -> names of its pointer fields."""
    out: dict[uuid.UUID, dict[tuple[int, int], tuple[str, ...]]] = {}
    events: dict[tuple[int, int], tuple[str, ...]] = {}
    text = files(__package__).joinpath(TABLE).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, *names = line.split()
        if "-" in head:
            events = out.setdefault(uuid.UUID(head), {})
        else:
            event_id, version = head.split(".")
            events[(int(event_id), int(version))] = tuple(names)
    return out


def pointer_fields(guid: uuid.UUID, event_id: int, version: int) -> tuple[str, ...] | None:
    """The pointer fields of a manifest event (None: not covered by the table)."""
    return _table().get(guid, {}).get((event_id, version))


def for_pointer_size(
    layout: Layout, guid: uuid.UUID, event_id: int, version: int, pointer_size: int
) -> Layout | None:
    """``layout`` (compiled from etl-parser's schema) for records of ``pointer_size``: pointer fields 4
    bytes in 32-bit records; None when a 32-bit record's pointer fields are not known."""
    if pointer_size == 8 or not any(f.kind in WIDE for f in layout.fields):
        return layout
    ptrs = pointer_fields(guid, event_id, version)
    if ptrs is None or not _all_wide(ptrs, {f.name: f.kind for f in layout.fields}):
        return None
    if not ptrs:
        return layout
    fields = tuple(replace(f, kind="u32") if f.name in ptrs else f for f in layout.fields)
    return Layout(fields, f"{layout.source} ptr{pointer_size}")


def pattern_for_pointer_size(pattern, guid: uuid.UUID, event_id: int, version: int, pointer_size: int):
    """An etl-parser construct ``Struct`` for records of ``pointer_size`` (None: pointers not known)."""
    if pointer_size == 8 or pattern is None:
        return pattern
    kinds = {s.name: _construct_kind(s.subcon) for s in pattern.subcons}
    if not any(k in WIDE for k in kinds.values()):
        return pattern
    ptrs = pointer_fields(guid, event_id, version)
    if ptrs is None or not _all_wide(ptrs, kinds):
        return None
    return _narrowed(pattern, ptrs) if ptrs else pattern


def _all_wide(ptrs: tuple[str, ...], kinds: dict[str | None, str | None]) -> bool:
    """Every listed pointer is an unsigned 64-bit field of the schema (else the table does not fit it)."""
    return all(kinds.get(p) == "u64" for p in ptrs)


def _construct_kind(con) -> str | None:
    fmt = getattr(con, "fmtstr", "")
    return {"<Q": "u64", "<q": "i64"}.get(fmt)


@cache
def _narrowed(pattern, ptrs: tuple[str, ...]):
    """``pattern`` with its pointer fields 32-bit (once per schema class: the reference decoder asks per record)."""
    import construct as cs

    return cs.Struct(*[(s.name / cs.Int32ul) if s.name in ptrs else s for s in pattern.subcons])
