"""TraceLogging self-describing events: the field layout each event carries in an extended data item.

An EVENT_HEADER record of a TraceLogging provider has extended items of type 11 (the event's metadata:
u16 size, tag bytes, the event name, then per field its name, InType byte and, when the InType's 0x80 bit
says so, an OutType byte, itself followed by tag bytes while their 0x80 bit is set; a STRUCT field's
OutType is its number of member fields, which follow) and 12 (provider traits: u16 size, the provider
name). Facts from Microsoft's TraceLoggingProvider.h documentation, checked on the perfview corpus files
SelfDescribingSingleEvent.etl and primitive-types.etl. Array fields (InType 0x20/0x40 flags) are not
compiled: such events keep their payload as bytes.
"""

from __future__ import annotations

from .layouts import Field, Layout

#: Extended data item types.
EXT_EVENT_SCHEMA_TL = 11
EXT_PROV_TRAITS = 12

#: InType (low 5 bits) -> layout kind; None: variable per pointer size (POINTER).
IN_TYPES = {
    1: "wstring",
    2: "cstring",
    3: "i8",
    4: "u8",
    5: "i16",
    6: "u16",
    7: "i32",
    8: "u32",
    9: "i64",
    10: "u64",
    11: "f32",
    12: "f64",
    13: "bool32",
    14: "bytes_u16",
    15: "guid",
    16: None,
    17: "filetime",
    18: "systemtime",
    19: "sid",
    20: "u32",
    21: "u64",
    22: "wstring_u16",
    23: "cstring_u16",
    25: "bytes_u16",
}
STRUCT = 24
OUT_UTF8 = 35
_CHAIN = 0x80
_ARRAY = 0x60


def _cstr(blob: bytes, p: int) -> tuple[str, int]:
    end = blob.index(b"\0", p)
    return blob[p:end].decode("utf-8", "replace"), end + 1


def _skip_tags(blob: bytes, p: int) -> int:
    while blob[p] & 0x80:
        p += 1
    return p + 1


def parse_metadata(blob: bytes, pointer_size: int) -> tuple[str, Layout | None]:
    """(event name, Layout) of an event's TraceLogging metadata; Layout None when it has array fields.

    Raises ValueError/IndexError on malformed metadata."""
    size = int.from_bytes(blob[:2], "little")
    if not 4 <= size <= len(blob):
        raise ValueError(f"metadata size {size} does not fit its {len(blob)} bytes")
    blob = blob[:size]
    p = _skip_tags(blob, 2)
    name, p = _cstr(blob, p)
    fields: list[Field] = []
    prefixes: list[tuple[str, int]] = []  # open STRUCTs: (name prefix, members left)
    supported = True
    while p < len(blob):
        fname, p = _cstr(blob, p)
        in_type = blob[p]
        p += 1
        out_type = 0
        if in_type & _CHAIN:
            out_type = blob[p]
            p += 1
            if out_type & _CHAIN:
                p = _skip_tags(blob, p)
        base, flags = in_type & 0x1F, in_type & _ARRAY
        if flags:
            supported = False
            if flags == 0x20:  # constant count: u16 count in the metadata
                p += 2
        while prefixes and prefixes[-1][1] == 0:
            prefixes.pop()
        prefix = "".join(f"{pre}." for pre, _ in prefixes)
        if prefixes:
            pre, left = prefixes[-1]
            prefixes[-1] = (pre, left - 1)
        if base == STRUCT:
            prefixes.append((prefix + fname, out_type & 0x7F))
            continue
        if base not in IN_TYPES:
            raise ValueError(f"field {fname!r}: unknown TraceLogging InType {base}")
        kind = IN_TYPES[base] or ("u64" if pointer_size == 8 else "u32")
        if kind == "cstring" and (out_type & 0x7F) == OUT_UTF8:
            kind = "utf8z"
        fields.append(Field(prefix + fname, kind))
    return name, (Layout(tuple(fields), f"TraceLogging {name}") if supported else None)


def provider_name(blob: bytes) -> str | None:
    """The provider name of a provider-traits item."""
    try:
        return _cstr(blob, 2)[0] or None
    except (ValueError, IndexError):
        return None
