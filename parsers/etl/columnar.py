"""Every event of an ETL file, decoded in bulk into typed columns, one table per event type.

Records of a batch are grouped by event type (provider, event id or kernel opcode, version, pointer
size); each group is decoded field by field over all its records at once with numpy: fixed-size fields
by one gather, NUL-terminated strings by a sorted search of the batch's NUL positions and one decode of
all the group's strings, SIDs and byte blobs by their length fields. A layout is accepted for a record
only when it consumes exactly the record's payload (the rule of the reference decoder, ``generic.py``);
the other records of the group keep their payload as bytes (decoder ``hex``).

Decoders, in order: layouts compiled from the EventSource manifests the trace itself carries
(``eventsource.py``; taken from each batch before its events, so a provider decodes from its manifest on);
etwtools' own (kernel TcpIp/UdpIp and Microsoft-Windows-Kernel-Network in bulk; Process, SystemConfig NIC
and Services record by record: they are few), the manifests the project ships (``layouts.shipped``,
decoder ``manifest``), layouts compiled from etl-parser's schemas (``layouts.py``), then construct for the
few schemas that do not compile.

:func:`iter_events` yields :class:`EventTable` s batch by batch (memory bounded by the batch, not the
file); ``providers``/``ids`` are applied to the record headers before anything is decoded.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from ..diagnostics import SkipReport, report_for
from ..units import FILETIME_MAX_NS, FILETIME_UNIX_EPOCH, Progress
from . import eventsource as es
from . import layouts as L
from . import pointers as ptr
from . import tracelogging as tl_mod
from .generic import (
    _KERNEL_HEADERS,
    _NAMES,
    _NET_FIELDS,
    ALL_EVENTS,
    HEADER,
    KERNEL_GROUP_NAMES,
    _own_slow,
    _parse_exact,
    jsonable,
)
from .guids import KERNEL_NETWORK, PROCESS_KERNEL, SYSTEMCONFIG_KERNEL, TCPIP_KERNEL, UDPIP_KERNEL
from .kernel import (
    NET_COLUMNS,
    NET_EXTRAS,
    NIC_OPCODE,
    PROCESS_EVENTS,
    SERVICES_OPCODE,
    decode_kernel_net,
    sid_text,
)
from .kernel_network import decode_kernel_network
from .records import EVENT_HEADER32, EVENT_HEADER64, RecordBatch
from .structs import HEADER_SIZES

try:
    from . import _columnar as _c
except ImportError:  # pragma: no cover - depends on the build: the numpy paths below give the same results
    _c = None  # type: ignore[assignment]  # the accelerator is optional

_NET_TYPES = {**NET_COLUMNS, **NET_EXTRAS}
_EH = (EVENT_HEADER32, EVENT_HEADER64)
_IS_EH = np.zeros(256, bool)
_IS_EH[list(_EH)] = True
_IS_KERNEL = np.zeros(256, bool)  # kernel header types (their records' provider is their group)
_IS_KERNEL[list(_KERNEL_HEADERS)] = True
_NO_ID = 0xFFFFFFFF
#: Bytes of (decompressed) buffers per batch: each batch's tables are built at once.
CHUNK = 2 << 20
#: Bytes of buffers per batch when records are regrouped by event type (:func:`iter_events`).
REGROUP_CHUNK = 4 << 20
#: Batches read ahead of the decoding (:func:`iter_events`).
AHEAD = 1
EVENT_HEADER_SIZE = HEADER_SIZES[EVENT_HEADER64]
#: Extended items looked at per record, and the largest TraceLogging metadata compiled.
_MAX_EXT_ITEMS = 16
_MAX_TL_METADATA = 4096
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _weights(n: int) -> np.ndarray:
    """``n`` odd 64-bit weights for hashing metadata bytes (splitmix64 of 1..n: no numpy.random import)."""
    with np.errstate(over="ignore"):
        x = np.arange(1, n + 1, dtype=np.uint64) * _MIX
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31)) | np.uint64(1)


_TL_WEIGHTS = _weights(_MAX_TL_METADATA)


@dataclass
class EventTable:
    """Events of one type from one batch: ``name`` (provider.id/opcode.version, + ``.hex`` for undecoded
    payloads), ``decoder`` (etwtools, manifest, etl-parser, tracelogging, eventsource, hex) and the ``frame`` (HEADER columns, then the fields;
    a field whose name is a header column's is prefixed ``field_``)."""

    name: str
    decoder: str
    frame: pl.DataFrame
    fields: list[str]


# ------------------------------------------------------------------ bulk field decoding


class _Nuls:
    """Where the NUL-terminated strings of a batch end (C scan of each string; numpy: sorted search of the
    batch's NUL positions, found once when first needed)."""

    def __init__(self, d: np.ndarray) -> None:
        self.d = d
        self._one: np.ndarray | None = None
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None

    def find(self, pos: np.ndarray, end: np.ndarray, unit: int) -> np.ndarray:
        """Position of the first NUL unit (1 or 2 bytes, at an even distance for 2) at or after each
        ``pos``; a position whose unit does not end by ``end`` means there is none."""
        if _c is not None:
            out = np.empty(len(pos), np.int64)
            _c.terminators(
                self.d, np.ascontiguousarray(pos, np.int64), np.ascontiguousarray(end, np.int64), unit, out
            )
            return out
        return self._after_byte(pos) if unit == 1 else self._after_pair(pos)

    def _after_byte(self, pos: np.ndarray) -> np.ndarray:
        if self._one is None:
            self._one = np.flatnonzero(self.d == 0)
        z = self._one
        if not len(z):
            return np.full(len(pos), len(self.d), np.int64)
        i = np.searchsorted(z, pos)
        return np.where(i < len(z), z[np.minimum(i, len(z) - 1)], len(self.d))

    def _after_pair(self, pos: np.ndarray) -> np.ndarray:
        if self._pairs is None:
            d = self.d
            z = np.flatnonzero((d[:-1] == 0) & (d[1:] == 0))
            self._pairs = (z[(z & 1) == 0], z[(z & 1) == 1])
        out = np.full(len(pos), len(self.d), np.int64)
        for parity, z in enumerate(self._pairs):
            sel = (pos & 1) == parity
            if not sel.any() or not len(z):
                continue
            i = np.searchsorted(z, pos[sel])
            out[sel] = np.where(i < len(z), z[np.minimum(i, len(z) - 1)], len(self.d))
        return out


def _fixed(d: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """(n, width) bytes at ``pos`` (zeros or clipped where they do not fit: the caller rejects those rows)."""
    if _c is not None:
        out = np.empty((len(pos), width), np.uint8)
        _c.fixed(d, np.ascontiguousarray(pos, np.int64), width, out)
        return out
    p = np.clip(pos, 0, max(len(d) - width, 0))
    return d[p[:, None] + np.arange(width)]


def _numbers(d: np.ndarray, pos: np.ndarray, dtype: str) -> np.ndarray:
    return _fixed(d, pos, np.dtype(dtype).itemsize).view(dtype).ravel()


def _spans(d: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The bytes of every span [start, start + length) (all inside ``d``), concatenated."""
    total = int(length.sum())
    if total == 0:
        return np.empty(0, np.uint8)
    if _c is not None:
        out = np.empty(total, np.uint8)
        _c.spans(d, np.ascontiguousarray(start, np.int64), np.ascontiguousarray(length, np.int64), out)
        return out
    first = np.cumsum(length) - length
    idx = np.repeat(start - first, length) + np.arange(total)
    return d[idx]


#: Bytes of one Arrow view array's data buffer (views hold 32-bit offsets); more: offset-based arrays.
_VIEW_MAX = (1 << 31) - 1
#: Encodings the C accelerator turns into UTF-8 (its ``text`` kinds).
_TEXT_KINDS = {"utf-16-le": 0, "cp1252": 1}


class _ArrowArray:
    """An Arrow array as the Arrow C data interface hands it over (see :func:`_series`)."""

    __slots__ = ("array",)

    def __init__(self, array) -> None:
        self.array = array

    def __arrow_c_array__(self, requested_schema=None):
        return self.array.__arrow_c_array__(requested_schema)


def _series(array) -> pl.Series:
    """A pyarrow array as a polars Series, buffers and all (view arrays as they are), through the Arrow C
    data interface: polars' own pyarrow path costs 5 times as much per call and imports pyarrow.compute
    (30 ms) for a conversion these arrays never need."""
    return pl.Series(_ArrowArray(array))


def _text(d: np.ndarray, start: np.ndarray, length: np.ndarray, encoding: str) -> pl.Series | None:
    """Text of the spans [start, start + length), decoded by the C accelerator straight into Arrow string
    buffers (no Python string per value); None without it or for another encoding."""
    kind = _TEXT_KINDS.get(encoding)
    if _c is None or kind is None:
        return None
    import pyarrow as pa

    start = np.ascontiguousarray(start, np.int64)
    length = np.ascontiguousarray(length, np.int64)
    room = int(3 * length.sum()) if kind == 1 else int(3 * (length // 2).sum()) + 3 * len(start)
    out = np.empty(room + 1, np.uint8)
    offsets = np.empty(len(start) + 1, np.int64)
    used = _c.text(d, start, length, kind, offsets, out)
    if used > _VIEW_MAX:
        arr = pa.LargeStringArray.from_buffers(len(start), pa.py_buffer(offsets), pa.py_buffer(out[:used]))
        return _series(arr)
    buf = out[:used] if 2 * used >= len(out) else out[:used].copy()  # polars keeps the buffer: no slack
    views = np.empty((len(start), 16), np.uint8)
    _c.text_views(offsets, buf, views)
    arr = pa.Array.from_buffers(pa.string_view(), len(start), [None, pa.py_buffer(views), pa.py_buffer(buf)])
    return _series(arr)


def _strings(d: np.ndarray, start: np.ndarray, stop: np.ndarray, encoding: str, unit: int) -> pl.Series:
    """Text of the NUL-terminated strings [start, stop) (stop: the terminator), decoded all at once."""
    if len(start) == 0:
        return pl.Series([], dtype=pl.Utf8)
    fast = _text(d, start, stop - start, encoding)
    if fast is not None:
        return fast
    raw = _spans(d, start, stop + unit - start).tobytes()  # each string keeps its terminator: a separator
    return pl.Series(raw.decode(encoding, "replace").split("\x00")[:-1], dtype=pl.Utf8)


def _number_lists(d: np.ndarray, start: np.ndarray, length: np.ndarray, dtype: str) -> pl.Series:
    """The spans [start, start + length) read as lists of numbers (each span a whole number of them)."""
    import pyarrow as pa

    width = np.dtype(dtype).itemsize
    offsets = np.zeros(len(start) + 1, np.int64)
    np.cumsum(length // width, out=offsets[1:])
    values = _spans(d, start, length).view(dtype)
    return _series(
        pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values.astype(dtype[1:], copy=False)))
    )


def _binary(d: np.ndarray, start: np.ndarray, length: np.ndarray) -> pl.Series:
    """The bytes of the spans [start, start + length), as a Binary column (built as Arrow binary views by the
    C accelerator: polars takes those without a copy)."""
    import pyarrow as pa

    if _c is not None:
        start = np.ascontiguousarray(start, np.int64)
        length = np.ascontiguousarray(length, np.int64)
        total = int(length.sum())
        if total <= _VIEW_MAX:
            views = np.empty((len(start), 16), np.uint8)
            out = np.empty(max(total, 1), np.uint8)
            used = _c.views(d, start, length, views, out)
            buf = out[:used] if 2 * used >= len(out) else out[:used].copy()
            arr = pa.Array.from_buffers(
                pa.binary_view(), len(start), [None, pa.py_buffer(views), pa.py_buffer(buf)]
            )
            return _series(arr)
    data = _spans(d, start, length)
    offsets = np.zeros(len(start) + 1, np.int64)
    np.cumsum(length, out=offsets[1:])
    arr = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(start), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    return _series(arr).cast(pl.Binary)


def _by_value(rows: np.ndarray, text: Callable[[bytes], str]) -> pl.Series:
    """Text of each (n, w) byte row, each distinct row formatted once."""
    if len(rows) == 0:
        return pl.Series([], dtype=pl.Utf8)
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    return pl.Series([text(r.tobytes()) for r in uniq], dtype=pl.Utf8).gather(inverse.ravel())


#: FILETIME of 1970-01-01 and the last FILETIME a nanosecond Datetime holds (2262).
_FT_EPOCH, _FT_MAX = FILETIME_UNIX_EPOCH, FILETIME_MAX_NS


def _filetime(v: np.ndarray) -> pl.Series:
    """FILETIME values -> UTC times (null outside 1970..2262)."""
    ok = (v >= _FT_EPOCH) & (v <= _FT_MAX)
    ns = (np.where(ok, v, _FT_EPOCH).astype(np.int64) - _FT_EPOCH) * 100
    return _nullable(ns, ~ok, "").cast(pl.Datetime("ns", "UTC"))


def _guid_text(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def decode_layout(
    d: np.ndarray, start: np.ndarray, end: np.ndarray, layout: L.Layout, nuls: _Nuls, exact: bool = True
) -> tuple[np.ndarray, dict[str, pl.Series]]:
    """(mask of the records the layout fits exactly, columns of those records) for payloads [start, end).

    ``exact=False`` reads the layout as a prefix of the payload: bytes may follow it (column ``_end``:
    where the layout ends, from the payload's start) and a string without its NUL ends with the payload.
    """
    fit = _place(d, start, end, layout, nuls, exact)
    ok = fit.ok
    cols: dict[str, pl.Series] = {}
    if not ok.any():
        return ok, cols
    take: np.ndarray | slice = slice(None) if ok.all() else ok  # every record's: taken without a copy
    if not exact:
        cols["_end"] = pl.Series("_end", (fit.pos - start)[take])
    for f, where in zip(layout.fields, fit.places):
        cols[f.name] = _column(d, f, where[take], fit, take).alias(f.name)
    return ok, cols


@dataclass
class _Fit:
    """Where a layout's fields lie in each payload: ``ok`` (the layout fits), each field's start
    (``places``), the numbers read on the way (by name: lengths refer to them), the lengths or string
    ends of variable fields (``extents``), the prefix-mode strings that run to the payload's end
    (``open_ended``), and where the layout ends (``pos``)."""

    ok: np.ndarray
    places: list[np.ndarray]
    numbers: dict[str, np.ndarray]
    extents: dict[str, np.ndarray]
    open_ended: dict[str, np.ndarray]
    pos: np.ndarray


def _place(
    d: np.ndarray, start: np.ndarray, end: np.ndarray, layout: L.Layout, nuls: _Nuls, exact: bool
) -> _Fit:
    """The first pass of :func:`decode_layout`: each field's place in every payload, field after field."""
    n = len(start)
    open_ended: dict[str, np.ndarray] = {}  # prefix mode: the strings that run to the payload's end
    pos = start.copy()
    ok = np.ones(n, bool)
    places: list[np.ndarray] = []
    numbers: dict[str, np.ndarray] = {}
    extents: dict[str, np.ndarray] = {}
    for f in layout.fields:
        places.append(pos)
        if f.kind in L.NUMERIC:
            width = np.dtype(L.NUMERIC[f.kind]).itemsize
            nxt = pos + width
            numbers[f.name] = _numbers(d, pos, L.NUMERIC[f.kind])
        elif f.kind in ("guid", "systemtime"):
            nxt = pos + 16
        elif f.kind in ("bool32", "filetime"):
            nxt = pos + (4 if f.kind == "bool32" else 8)
        elif f.kind in ("bytes_u16", "wstring_u16", "cstring_u16"):
            length = _numbers(d, pos, "<u2").astype(np.int64)
            extents[f.name] = length
            nxt = pos + 2 + length
        elif f.kind == "bytes":
            nxt = pos + f.size
        elif f.kind == "bytes_from":
            ref = numbers.get(f.ref)
            if ref is None:
                ok[:] = False
                break
            room = np.maximum(end - pos, 0) + 1  # longer than the payload: rejected
            length = np.minimum(np.maximum(ref.astype(np.float64) * max(f.size, 1), 0), room).astype(np.int64)
            extents[f.name] = length
            nxt = pos + length
        elif f.kind in ("wstring", "cstring", "utf8z"):
            unit = 2 if f.kind == "wstring" else 1
            term = nuls.find(pos, end, unit)
            nxt = term + unit
            if not exact:
                missing = nxt > end
                if missing.any():
                    open_ended[f.name] = missing
                    term = np.where(missing, pos + np.maximum(end - pos, 0) // unit * unit, term)
                    nxt = np.where(missing, np.maximum(end, pos), nxt)
            extents[f.name] = term
        elif f.kind in ("u64s", "u32s"):  # numbers: as many as field ``ref`` says, or up to the payload's end
            width = 8 if f.kind == "u64s" else 4
            if f.ref:
                ref = numbers.get(f.ref)
                if ref is None:
                    ok[:] = False
                    break
                room = np.maximum(end - pos, 0) + width  # longer than the payload: rejected
                length = np.minimum(np.maximum(ref.astype(np.float64), 0) * width, room).astype(np.int64)
                nxt = pos + length
            else:
                length = np.maximum(end - pos, 0)
                ok &= length % width == 0
                nxt = np.maximum(end, pos)
            extents[f.name] = length
        elif f.kind == "sid":
            head = _fixed(d, pos, 2)
            ok &= head[:, 0] == 1  # Revision is always 1
            nxt = pos + 8 + 4 * head[:, 1].astype(np.int64)
        else:  # pragma: no cover - layouts only hold KINDS
            raise ValueError(f"unknown field kind {f.kind}")
        ok &= nxt <= end
        pos = nxt
    ok &= (pos == end) if exact else (pos <= end)
    return _Fit(ok, places, numbers, extents, open_ended, pos)


def _column(d: np.ndarray, f: L.Field, p: np.ndarray, fit: _Fit, ok: np.ndarray | slice) -> pl.Series:
    """The column of field ``f`` of the records that fit (``ok``: their rows; ``p``: where the field starts
    in each)."""
    numbers, extents, open_ended = fit.numbers, fit.extents, fit.open_ended
    if f.kind in L.NUMERIC:
        col = pl.Series(f.name, numbers[f.name][ok])
    elif f.kind == "guid":
        col = _by_value(_fixed(d, p, 16), _guid_text)
    elif f.kind == "systemtime":
        parts = np.ascontiguousarray(_fixed(d, p, 16)).view("<i2")
        col = pl.DataFrame({k: parts[:, i] for i, k in enumerate(L.SYSTEMTIME_FIELDS)}).to_struct()
    elif f.kind == "bytes":
        col = _binary(d, p, np.full(len(p), f.size, np.int64))
    elif f.kind == "bytes_from":
        col = _binary(d, p, extents[f.name][ok])
    elif f.kind in ("wstring", "cstring", "utf8z"):
        enc, unit = {"wstring": ("utf-16-le", 2), "cstring": ("cp1252", 1), "utf8z": ("utf-8", 1)}[f.kind]
        stop = extents[f.name][ok]
        if f.name in open_ended and open_ended[f.name][ok].any():
            blobs = _binary(d, p, stop - p).to_list()
            col = pl.Series([b.decode(enc, "replace") for b in blobs], dtype=pl.Utf8)
        else:
            col = _strings(d, p, stop, enc, unit)
    elif f.kind == "bool32":
        col = pl.Series(_numbers(d, p, "<u4") != 0)
    elif f.kind == "filetime":
        col = _filetime(_numbers(d, p, "<u8"))
    elif f.kind in ("u64s", "u32s"):
        col = _number_lists(d, p, extents[f.name][ok], "<u8" if f.kind == "u64s" else "<u4")
    elif f.kind == "bytes_u16":
        col = _binary(d, p + 2, extents[f.name][ok])
    elif f.kind in ("wstring_u16", "cstring_u16"):
        enc = "utf-16-le" if f.kind == "wstring_u16" else "cp1252"
        fast = _text(d, p + 2, extents[f.name][ok], enc) if len(p) else None
        if fast is not None:
            col = fast
        else:
            raw = _binary(d, p + 2, extents[f.name][ok])
            col = pl.Series(
                [None if b is None else b.decode(enc, "replace") for b in raw.to_list()], dtype=pl.Utf8
            )
    else:  # sid
        count = d[np.clip(p + 1, 0, len(d) - 1)].astype(np.int64)
        col = (
            pl.Series(
                [sid_text(bytes(d[a : a + 8 + 4 * c])) for a, c in zip(p.tolist(), count.tolist())],
                dtype=pl.Utf8,
            )
            if len(set(count.tolist())) > 1
            else _by_value(_fixed(d, p, 8 + 4 * int(count[0])), sid_text)
        )
    return col


def decode_records(
    batch: RecordBatch, rows: np.ndarray, layout: L.Layout, exact: bool = True
) -> tuple[np.ndarray, dict[str, pl.Series]]:
    """:func:`decode_layout` of the payloads of ``rows`` of a batch (the one bulk decoder of layouts)."""
    d = np.frombuffer(batch.data, np.uint8)
    start = batch.payload_offset[rows].astype(np.int64)
    return decode_layout(d, start, start + batch.payload_size[rows], layout, _Nuls(d), exact)


def _type_keys(batch: RecordBatch) -> np.ndarray:
    """The event-type key of every record from its header fields alone, by the C accelerator (the same as
    :func:`_type_keys_py`; TraceLogging events get theirs from their metadata in ``Decoder.keys``)."""
    out = np.empty(len(batch), np.int64)
    _c.type_keys(
        np.ascontiguousarray(batch.htype, np.uint8),
        np.ascontiguousarray(batch.group, np.int16),
        np.ascontiguousarray(batch.provider, np.int32),
        np.ascontiguousarray(batch.event_id, np.uint16),
        np.ascontiguousarray(batch.opcode, np.uint8),
        np.ascontiguousarray(batch.version, np.uint16),
        np.ascontiguousarray(batch.pointer_size, np.uint8),
        _IS_EH,
        out,
    )
    return out


def _type_keys_py(batch: RecordBatch) -> np.ndarray:
    """:func:`_type_keys` with numpy (the reference of the C pass): kind (0 kernel group, 1 EVENT_HEADER, 2
    other) << 60 | group + 1 or header type << 50 | provider index + 1 << 34 | event id or opcode << 18 |
    version << 2 | 64-bit pointers (the container gives at most ``container.MAX_PROVIDERS`` provider
    indexes: index + 1 fits its 16 bits, so keys of distinct types never meet)."""
    kind = np.where(_IS_EH[batch.htype], 1, np.where(batch.group >= 0, 0, 2)).astype(np.int64)
    ident = np.where(kind == 1, batch.event_id, batch.opcode).astype(np.int64)
    sub = np.where(kind == 2, batch.htype.astype(np.int64), np.where(kind == 0, batch.group + 1, 0))
    return (
        (kind << 60)
        | (sub.astype(np.int64) << 50)
        | ((batch.provider.astype(np.int64) + 1) << 34)
        | (ident << 18)
        | (batch.version.astype(np.int64) << 2)
        | (batch.pointer_size == 8)
    )


def group_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, distinct keys ascending, bounds): ``order`` lists the rows by key, the rows of one key in
    their own order (a stable argsort); the rows of ``uniq[g]`` are ``order[bounds[g]:bounds[g + 1]]``.
    By the C accelerator in one pass (a counting sort), else (or for keys made to collide in its table) numpy."""
    keys = np.ascontiguousarray(keys, np.int64)
    if _c is None:
        return _group_rows_py(keys)
    n = len(keys)
    order = np.empty(n, np.int64)
    uniq = np.empty(n, np.int64)
    bounds = np.empty(n + 1, np.int64)
    m = _c.group(keys, order, uniq, bounds)
    if m < 0:
        return _group_rows_py(keys)
    return order, uniq[:m].copy(), bounds[: m + 1].copy()


def _group_rows_py(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`group_rows` with numpy (its reference)."""
    order = np.argsort(keys, kind="stable")
    skeys = keys[order]
    cut = np.flatnonzero(skeys[1:] != skeys[:-1]) + 1 if len(keys) else np.empty(0, np.int64)
    starts = np.concatenate([[0], cut]).astype(np.int64) if len(keys) else np.empty(0, np.int64)
    bounds = np.concatenate([starts, [len(keys)]]).astype(np.int64)
    return order, skeys[starts], bounds


# ------------------------------------------------------------------ event types

#: Event types (keys) a file's records are decoded as. Real traces hold a few hundred (the 500 MB
#: benchmark file 205); each type costs its own plan, tables and output file, so the records of the types
#: past these are kept as bytes in one table of their own (:data:`OTHER_KEY`), named :data:`OTHER_NAME`.
MAX_TYPES = 4096
OTHER_KEY = 4 << 60
OTHER_NAME = "other_event_types"


@dataclass
class _Type:
    """How one event type (group key) of a file is decoded: ``steps`` in order, each taking the records
    the steps before it did not decode ("net": etwtools' bulk network decoders; "slow": etwtools' record
    by record decoders; "layout": a compiled layout; "fallback": etl-parser's layout after the project's
    own; "construct": an etl-parser schema that does not compile); what is left is kept as bytes."""

    name: str
    provider: str | None
    steps: tuple[str, ...]
    layout: L.Layout | None = None
    fallback: L.Layout | None = None  # "fallback" step: etl-parser's layout, after ``layout``
    pattern: object = None
    decoder: str = "etl-parser"  # the name the tables of a compiled layout carry
    manifest_provider: uuid.UUID | None = None  # a provider whose EventSource manifest may come later
    unknown_pointers: bool = False  # 32-bit events whose schema's pointer fields are not known


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "unknown"


class _Work:
    """What the decoding of one batch shares between its event types: the bytes, their NULs, the network
    decoders' table (made when first needed)."""

    def __init__(self, batch: RecordBatch) -> None:
        self.batch = batch
        self.d = np.frombuffer(batch.data, np.uint8)
        self.nuls = _Nuls(self.d)
        self.net: pl.DataFrame | None = None


class Decoder:
    """Decodes the batches of one file (the event-type table is shared between batches)."""

    def __init__(self, skipped: SkipReport | None = None) -> None:
        self.skipped = skipped if skipped is not None else SkipReport("<batches>")  # the file's report
        self._types: dict[int, _Type] = {}
        self._tl_ids: dict[tuple[int, bytes], int] = {}
        self._tl_meta: dict[int, bytes] = {}
        self.eventsource = es.Manifests(self.skipped)
        self._before_manifest: dict[uuid.UUID, int] = {}
        self._manifests_upto = -1  # the last record whose manifest chunk was taken
        self._admitted: set[int] = set()  # the keys decoded as types of their own (MAX_TYPES at most)

    def _type(self, batch: RecordBatch, i: int) -> _Type:
        htype, group = int(batch.htype[i]), int(batch.group[i])
        pidx = int(batch.provider[i])
        guid = batch.guids[pidx] if 0 <= pidx < len(batch.guids) else None
        opcode, version, event_id = int(batch.opcode[i]), int(batch.version[i]), int(batch.event_id[i])
        psize = int(batch.pointer_size[i])
        kernel = group >= 0 and htype in _KERNEL_HEADERS
        if htype in _EH and guid is not None and event_id != es.MANIFEST_EVENT_ID:
            found = self.eventsource.layout(guid, event_id, psize)
            if found is not None:
                return self._eventsource_type(found[0], found[1], event_id, version, psize)
        provider = self._provider_label(group if kernel else None, guid)
        ident = f"id{event_id}" if htype in _EH else (f"op{opcode}" if provider else f"type{htype:#04x}")
        name = _safe(f"{provider or 'no-provider'}.{ident}.v{version}") + (
            "" if psize == 8 else f".ptr{psize}"
        )
        steps: list[str] = []
        if guid in (TCPIP_KERNEL, UDPIP_KERNEL, KERNEL_NETWORK):
            steps.append("net")
        if (guid == PROCESS_KERNEL and opcode in PROCESS_EVENTS and version <= 5) or (
            guid == SYSTEMCONFIG_KERNEL and opcode in (NIC_OPCODE, SERVICES_OPCODE)
        ):
            steps.append("slow")
        layout: L.Layout | Literal[False] | None = False
        fallback: L.Layout | None = None  # etl-parser's kernel class, after the project's own
        pattern = None
        decoder = "etl-parser"
        narrow = False
        if htype in _EH and guid is not None:
            layout = L.shipped_layout(guid, event_id, version, psize)  # the project's manifests first
            if layout:
                decoder = "manifest"
            elif own := L.own_event_layout(guid, event_id, version, psize):
                layout, decoder = own, "etwtools"  # an event etl-parser's schema reads wrong
            else:  # a provider it does not ship, or an event its manifest lacks
                layout = L.manifest_layout(guid, event_id, version)
                if layout:
                    layout = ptr.for_pointer_size(layout, guid, event_id, version, psize)
                elif layout is None:
                    pattern = ptr.pattern_for_pointer_size(
                        L.manifest_pattern(guid, event_id, version), guid, event_id, version, psize
                    )
                narrow = layout is None and pattern is None  # a 32-bit event whose pointers are not known
        else:
            classic = group if kernel else guid
            own = L.classic_layout(classic, version, opcode, psize) if classic is not None else None
            if kernel and psize == 8:
                layout = L.kernel_layout(group, version, opcode)
                if layout is None:
                    cls = L.kernel_class(group, version, opcode)
                    pattern = cls.pattern if cls is not None else None
            if own:  # a class the project ships first; etl-parser's then takes the records it does not fit
                fallback, layout, decoder = layout or None, own, "etwtools"
        if layout:
            steps.append("layout")
            if fallback is not None:
                steps.append("fallback")
        if pattern is not None:
            steps.append("construct")
        waits = (
            guid if htype in _EH and not steps and event_id != es.MANIFEST_EVENT_ID and not narrow else None
        )
        return _Type(
            name,
            provider,
            tuple(steps),
            layout=layout or None,
            fallback=fallback,
            pattern=pattern,
            decoder=decoder,
            manifest_provider=waits,
            unknown_pointers=narrow,
        )

    def _provider_label(self, kernel_group: int | None, guid: uuid.UUID | None) -> str | None:
        """The provider column's text for a kernel group, or else a provider GUID (None: neither)."""
        if kernel_group is not None:
            return KERNEL_GROUP_NAMES.get(kernel_group, f"kernel group {kernel_group:#04x}")
        if guid is None:
            return None
        return _NAMES.get(guid) or self.eventsource.provider_name(guid) or L.provider_name(guid) or str(guid)

    def _row_providers(self, batch: RecordBatch) -> pl.Series:
        """Each record's provider text, as its own event type would give it (for :data:`OTHER_KEY`)."""
        kernel = (batch.group >= 0) & _IS_KERNEL[batch.htype]
        code = np.where(kernel, -2 - batch.group.astype(np.int64), batch.provider.astype(np.int64))
        uniq, inverse = np.unique(code, return_inverse=True)
        names = []
        for c in uniq.tolist():
            guid = batch.guids[c] if 0 <= c < len(batch.guids) else None
            names.append(self._provider_label(-2 - c if c <= -2 else None, guid))
        return pl.Series("provider", names, dtype=pl.Utf8).gather(inverse.ravel())

    def admit(self, keys: np.ndarray, first: np.ndarray) -> list[int]:
        """Each of a batch's distinct ``keys`` (``first``: the row where each one first appears), or
        :data:`OTHER_KEY` for the new ones past the file's first :data:`MAX_TYPES`, taken in file order."""
        out = keys.tolist()
        if len(self._admitted) + len(out) <= MAX_TYPES:
            self._admitted.update(out)
            return out
        for j in np.argsort(first, kind="stable").tolist():
            k = out[j]
            if k not in self._admitted:
                if len(self._admitted) >= MAX_TYPES:
                    out[j] = OTHER_KEY
                else:
                    self._admitted.add(k)
        return out

    def _eventsource_type(
        self, manifest: es.Manifest, layout: L.Layout | str, event_id: int, version: int, psize: int
    ) -> _Type:
        """How the events of a provider whose EventSource manifest the trace carries are decoded."""
        name = _safe(f"{manifest.provider}.id{event_id}.v{version}") + ("" if psize == 8 else f".ptr{psize}")
        if isinstance(layout, str):
            self.skipped.add(f"EventSource event type {name} kept as bytes: {layout}")
            return _Type(name, manifest.provider, ())
        return _Type(name, manifest.provider, ("layout",), layout=layout, decoder="eventsource")

    def take_manifests(self, batch: RecordBatch, first: Callable[[int], None] | None = None) -> None:
        """Take the EventSource manifest chunks of a batch (before its events are decoded, and before
        records are filtered out); a provider with a new manifest gets its event types planned again.
        ``first(i)`` is called first with the provider's index + 1 (the key's provider field): the
        records of its types set aside until then are decoded as planned before the manifest."""
        rows = np.flatnonzero(batch.event_id == es.MANIFEST_EVENT_ID)  # few: the other tests on those alone
        rows = rows[
            (batch.record[rows] > self._manifests_upto)
            & _IS_EH[batch.htype[rows]]
            & (batch.opcode[rows] == es.MANIFEST_OPCODE)
            & (batch.provider[rows] >= 0)
        ]
        if len(batch):
            self._manifests_upto = max(self._manifests_upto, int(batch.record[-1]))
        for i in rows.tolist():
            pidx = int(batch.provider[i])
            guid = batch.guids[pidx]
            m = self.eventsource.add(
                guid, int(batch.pid[i]), int(batch.tid[i]), batch.payload(i), str(int(batch.file_offset[i]))
            )
            if m is None:
                continue
            idx = pidx + 1  # the key's provider field (the GUID's place in the file's table)
            if first is not None:
                first(idx)
            for k in [k for k in self._types if k >> 60 == 1 and (k >> 34) & 0xFFFF == idx]:
                del self._types[k]
            before = self._before_manifest.pop(guid, 0)
            if before:
                self.skipped.add(
                    f"events of {m.provider} before its EventSource manifest (file order) kept as bytes",
                    before,
                )

    def keys(self, batch: RecordBatch) -> np.ndarray:
        """The event-type key of every record of a batch (int64; equal keys: one event type of the file)."""
        key = _type_keys(batch) if _c is not None else _type_keys_py(batch)
        tl = self._tracelogging(batch, np.frombuffer(batch.data, np.uint8))
        if tl is not None:
            rows, ids = tl
            key[rows] = (np.int64(3) << 60) | (ids.astype(np.int64) << 2) | (batch.pointer_size[rows] == 8)
        return key

    def type_of(self, batch: RecordBatch, key: int, i: int) -> _Type:
        """How the event type ``key`` (of record ``i`` of the batch) is decoded, planned once per file."""
        t = self._types.get(key)
        if t is None:
            if key == OTHER_KEY:
                t = _Type(OTHER_NAME, None, ())
            elif key >> 60 == 3:
                t = self._tl_type(batch, i, (key >> 2) & 0xFFFFFFFF)
            else:
                t = self._type(batch, i)
            self._types[key] = t
        return t

    def decode(self, batch: RecordBatch) -> list[EventTable]:
        """The event tables of one batch (records of a type in file order)."""
        if len(batch) == 0:
            return []
        self.take_manifests(batch)
        keys = self.keys(batch)
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        admitted = self.admit(uniq, first)
        if OTHER_KEY in admitted:  # types past the file's first MAX_TYPES: one table of bytes
            keys = self.past_types(keys, uniq, admitted)
            uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(uniq)))])
        types = [self.type_of(batch, k, int(first[g])) for g, k in enumerate(uniq.tolist())]
        providers = pl.Series([t.provider for t in types], dtype=pl.Utf8).gather(inverse)
        if OTHER_KEY in uniq:
            other = keys == OTHER_KEY
            providers = providers.scatter(np.flatnonzero(other), self._row_providers(batch.select(other)))
        hdr = _header(batch, providers)
        work = _Work(batch)
        out: list[EventTable] = []
        for g, t in enumerate(types):
            out += self._decode_rows(work, hdr, t, order[bounds[g] : bounds[g + 1]])
        return out

    def past_types(self, keys: np.ndarray, uniq: np.ndarray, admitted: list[int]) -> np.ndarray:
        """``keys`` with those past :data:`MAX_TYPES` (``admitted``: :meth:`admit` of ``uniq``) made
        :data:`OTHER_KEY`, their records counted."""
        past = np.isin(keys, uniq[np.asarray(admitted, np.int64) == OTHER_KEY])
        self.skipped.add(
            f"events of event types past the file's first {MAX_TYPES:,} kept as bytes in {OTHER_NAME}.hex",
            int(past.sum()),
        )
        return np.where(past, np.int64(OTHER_KEY), keys)

    def decode_type(self, batch: RecordBatch, key: int) -> list[EventTable]:
        """The event tables of a batch whose records are all of the event type ``key`` (see :meth:`keys`),
        planned when they were set aside (EventSource manifests are taken by the caller, in file order)."""
        if len(batch) == 0:
            return []
        t = self.type_of(batch, key, 0)
        if key == OTHER_KEY:
            hdr = _header(batch, self._row_providers(batch))
        else:
            hdr = _header(batch, pl.Series([t.provider], dtype=pl.Utf8).new_from_index(0, len(batch)))
        return self._decode_rows(_Work(batch), hdr, t, np.arange(len(batch)))

    def _decode_rows(self, work: _Work, hdr: pl.DataFrame, t: _Type, rows: np.ndarray) -> list[EventTable]:
        """The tables of the records ``rows`` (one event type) of a batch: each step takes what the steps
        before it did not decode; the rest is kept as bytes."""
        batch = work.batch
        out: list[EventTable] = []
        for step in t.steps:
            if step == "net":
                if work.net is None:
                    work.net = self._net(batch)
                rows = self._net_table(hdr, batch, t, rows, work.net, out)
            elif step in ("layout", "fallback"):
                lay, decoder = (t.layout, t.decoder) if step == "layout" else (t.fallback, "etl-parser")
                assert lay is not None  # these steps are planned only with their layout
                start = batch.payload_offset[rows]
                ok, cols = decode_layout(work.d, start, start + batch.payload_size[rows], lay, work.nuls)
                if ok.all():
                    out.append(_table(hdr, t, rows, decoder, cols))
                    return out
                if ok.any():
                    out.append(_table(hdr, t, rows[ok], decoder, cols))
                rows = rows[~ok]
            else:
                rows = self._record_by_record(hdr, batch, t, rows, step, out)
            if len(rows) == 0:
                return out
        out.append(_hex(hdr, batch, t, rows))
        waiting = t.manifest_provider
        if waiting is not None:
            self._before_manifest[waiting] = self._before_manifest.get(waiting, 0) + len(rows)
        if t.unknown_pointers:
            self.skipped.add(
                "32-bit events whose schema's pointer fields are not known kept as bytes", len(rows)
            )
        return out

    def _tracelogging(self, batch: RecordBatch, d: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, metadata ids) of the batch's TraceLogging events: records whose extended items hold
        event metadata; each distinct (provider, metadata, pointer size) gets an id for the file."""
        # the container takes EH_EXTENDED_INFO's items into the header: only those records' headers are
        # longer than EVENT_HEADER (no flags read at each record's own place in the batch's bytes)
        ext = np.flatnonzero(batch.payload_offset - batch.offset > EVENT_HEADER_SIZE)
        rows = ext[_IS_EH[batch.htype[ext]]]
        if not len(rows):
            return None
        pos = batch.offset[rows] + EVENT_HEADER_SIZE
        stop = batch.payload_offset[rows]
        meta_pos = np.full(len(rows), -1, np.int64)
        meta_len = np.zeros(len(rows), np.int64)
        alive = np.ones(len(rows), bool)
        for _ in range(_MAX_EXT_ITEMS):
            alive &= pos + 8 <= stop
            if not alive.any():
                break
            head = _fixed(d, pos, 8).view("<u2")
            total, typ, link, size = (head[:, k].astype(np.int64) for k in range(4))
            hit = alive & (typ == tl_mod.EXT_EVENT_SCHEMA_TL) & (pos + 8 + size <= stop)
            meta_pos[hit], meta_len[hit] = pos[hit] + 8, size[hit]
            alive &= ((link & 1) != 0) & (total >= 8)
            pos = pos + np.maximum(total, 8)
        has = (meta_pos >= 0) & (meta_len >= 4) & (meta_len <= _MAX_TL_METADATA)
        if not has.any():
            return None
        rows, meta_pos, meta_len = rows[has], meta_pos[has], meta_len[has]
        width = int(meta_len.max())
        blobs = _fixed(d, meta_pos, width)
        blobs[np.arange(width)[None, :] >= meta_len[:, None]] = 0
        with np.errstate(over="ignore"):
            h = (
                blobs.astype(np.uint64) @ _TL_WEIGHTS[:width]
                + meta_len.astype(np.uint64) * _MIX
                + batch.provider[rows].astype(np.uint64) * np.uint64(0x100000001B3)
            )
        _, firsts, inverse = np.unique(h, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        if not (blobs == blobs[firsts][inverse]).all():  # a hash collision: exact (slower) path
            _, firsts, inverse = np.unique(blobs, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.ravel()
        ids = np.empty(len(firsts), np.int64)
        for j, f in enumerate(firsts.tolist()):
            key = (int(batch.provider[rows[f]]), blobs[f, : meta_len[f]].tobytes())
            ids[j] = self._tl_ids.setdefault(key, len(self._tl_ids))
            self._tl_meta.setdefault(int(ids[j]), key[1])
        return rows, ids[inverse]

    def _tl_type(self, batch: RecordBatch, i: int, tl_id: int) -> _Type:
        """How the TraceLogging events of one metadata are decoded."""
        guid = batch.guids[int(batch.provider[i])]
        provider = _NAMES.get(guid) or self._tl_provider(batch, i) or L.provider_name(guid) or str(guid)
        psize = int(batch.pointer_size[i])
        try:
            event, layout = tl_mod.parse_metadata(self._tl_meta[tl_id], psize)
        except (ValueError, IndexError) as exc:
            self.skipped.add(f"TraceLogging events with unreadable metadata ({exc})")
            event, layout = f"metadata{tl_id}", None
        name = _safe(f"{provider}.{event}") + ("" if psize == 8 else f".ptr{psize}")
        return _Type(name, provider, ("layout",) if layout else (), layout=layout, decoder="tracelogging")

    def _tl_provider(self, batch: RecordBatch, i: int) -> str | None:
        """The provider name of a record's provider-traits extended item."""
        q, stop = int(batch.offset[i]) + EVENT_HEADER_SIZE, int(batch.payload_offset[i])
        data = batch.data
        for _ in range(_MAX_EXT_ITEMS):
            if q + 8 > stop:
                break
            total, typ, link, size = (int.from_bytes(data[q + k : q + k + 2], "little") for k in (0, 2, 4, 6))
            if typ == tl_mod.EXT_PROV_TRAITS and q + 8 + size <= stop:
                return tl_mod.provider_name(bytes(data[q + 8 : q + 8 + size]))
            if not link & 1 or total < 8:
                break
            q += total
        return None

    def _net(self, batch: RecordBatch) -> pl.DataFrame:
        frames = decode_kernel_net(batch, self.skipped) + decode_kernel_network(batch, self.skipped)
        cols = ["record", *_NET_FIELDS]
        if not frames:
            return pl.DataFrame(schema={c: _NET_TYPES.get(c, pl.Int64) for c in cols})
        return pl.concat(
            [f.select([c for c in cols if c in f.columns]) for f in frames], how="diagonal_relaxed"
        ).sort("record")

    def _net_table(
        self,
        hdr: pl.DataFrame,
        batch: RecordBatch,
        t: _Type,
        rows: np.ndarray,
        net: pl.DataFrame,
        out: list[EventTable],
    ) -> np.ndarray:
        """Append the table of the rows etwtools' network decoders decoded; the other rows."""
        if net.height == 0:
            return rows
        decoded = net["record"].to_numpy()
        records = batch.record[rows]
        idx = np.minimum(np.searchsorted(decoded, records), net.height - 1)
        hit = decoded[idx] == records
        if hit.any():
            part = net[idx[hit]]
            cols = {
                c: (
                    part[c]
                    if c in part.columns
                    else pl.repeat(None, part.height, dtype=_NET_TYPES[c], eager=True)
                ).alias(c)
                for c in _NET_FIELDS
            }
            out.append(_table(hdr, t, rows[hit], "etwtools", cols))
        return rows[~hit]

    def _record_by_record(
        self,
        hdr: pl.DataFrame,
        batch: RecordBatch,
        t: _Type,
        rows: np.ndarray,
        step: str,
        out: list[EventTable],
    ) -> np.ndarray:
        """etwtools' record-by-record decoders (Process, SystemConfig) or construct (uncompiled schemas)."""
        good, values, bad = [], [], []
        for i in rows.tolist():
            payload = batch.payload(i)
            if step == "slow":
                fields, _ = _own_slow(
                    batch.guids[int(batch.provider[i])],
                    int(batch.opcode[i]),
                    int(batch.version[i]),
                    int(batch.pointer_size[i]),
                    payload,
                )
            else:
                parsed = _parse_exact(t.pattern, payload)
                fields = jsonable(parsed) if parsed is not None else None
            if fields is None:
                bad.append(i)
            else:
                good.append(i)
                values.append(json.dumps(fields, ensure_ascii=False, default=str))
        if good:
            out.append(
                _table(
                    hdr,
                    t,
                    np.asarray(good, np.int64),
                    "etwtools" if step == "slow" else "etl-parser",
                    {"fields": pl.Series("fields", values, dtype=pl.Utf8)},
                    json_fields=True,
                )
            )
        return np.asarray(bad, np.int64)


def _nullable(values: np.ndarray, null: np.ndarray, name: str) -> pl.Series:
    """``values`` with nulls where ``null`` (no mask at all when none is, all nulls when all are)."""
    nulls = int(np.count_nonzero(null))
    if not nulls:
        return pl.Series(name, values)
    if nulls == len(values):
        return pl.Series(name, [None], dtype=pl.Series(values[:0]).dtype).new_from_index(0, len(values))
    import pyarrow as pa

    return _series(pa.array(values, mask=null)).alias(name)


def _header(batch: RecordBatch, providers: pl.Series) -> pl.DataFrame:
    """The HEADER columns of every record of a batch (``providers``: each record's provider name)."""
    eh = _IS_EH[batch.htype]
    return pl.DataFrame(
        [
            pl.Series("time", _own(batch.time)).cast(pl.Datetime("ns", "UTC")),
            providers.alias("provider"),
            _nullable(batch.event_id.astype(np.int32), ~eh, "event_id"),
            pl.Series("opcode", batch.opcode.astype(np.int32)),
            pl.Series("version", batch.version.astype(np.int32)),
            _nullable(batch.pid.astype(np.int64), batch.pid == _NO_ID, "pid"),
            _nullable(batch.tid.astype(np.int64), batch.tid == _NO_ID, "tid"),
            pl.Series("record", _own(batch.record)),
        ]
    )


def _own(values: np.ndarray) -> np.ndarray:
    """``values`` in an array of their own: polars takes numpy's int64 arrays without a copy, so a column
    that is a view (a row of the header columns set aside by ``regroup``) would keep the whole block those
    columns share alive as long as the table is (until it is written)."""
    return values if values.base is None else values.copy()


def _table(
    hdr: pl.DataFrame,
    t: _Type,
    rows: np.ndarray,
    decoder: str,
    cols: dict[str, pl.Series],
    json_fields: bool = False,
) -> EventTable:
    series = [col.alias(f"field_{name}" if name in HEADER else name) for name, col in cols.items()]
    name = t.name + ("" if decoder != "hex" else ".hex") + (".json" if json_fields else "")
    frame = hdr if len(rows) == hdr.height else hdr[rows]  # rows ascend: all of them is the identity
    return EventTable(name, decoder, frame.hstack(series), list(cols))


def _hex(hdr: pl.DataFrame, batch: RecordBatch, t: _Type, rows: np.ndarray) -> EventTable:
    d = np.frombuffer(batch.data, np.uint8)
    payload = _binary(d, batch.payload_offset[rows], batch.payload_size[rows])
    return _table(hdr, t, rows, "hex", {"payload": payload.alias("payload")})


# ------------------------------------------------------------------ the long table (one row per record)


def long_form(tables: Iterable[EventTable]) -> pl.DataFrame:
    """The ALL_EVENTS rows of some event tables (fields as one JSON text per record), in record order."""
    parts = []
    for t in tables:
        f = t.frame
        if t.name.endswith(".json"):
            fields = f["fields"]
        else:
            inner = []
            for name in t.fields:
                col = f[f"field_{name}" if name in HEADER else name]
                if col.dtype == pl.Binary:
                    col = col.bin.encode("hex")
                elif col.dtype == pl.Float32:
                    col = col.cast(pl.Float64)
                inner.append(col.alias(name))
            fields = (
                pl.DataFrame(inner).select(pl.struct(pl.all()).struct.json_encode()).to_series()
                if inner
                else pl.repeat("{}", f.height, dtype=pl.Utf8, eager=True)
            )
        parts.append(
            f.select(list(HEADER)).with_columns(
                decoder=pl.lit(t.decoder, dtype=pl.Utf8), fields=fields.alias("fields")
            )
        )
    if not parts:
        return pl.DataFrame(schema=ALL_EVENTS)
    return pl.concat(parts).sort("record")


# ------------------------------------------------------------------ entry points


def _selector(
    batch: RecordBatch,
    providers: Iterable[str] | None,
    ids: Iterable[int] | None,
    names: dict[int, str | None],
    manifests: es.Manifests | None = None,
) -> np.ndarray | None:
    """Mask of the records of the asked providers (name or GUID, case-insensitive) and event ids/opcodes.

    A provider named by its EventSource manifest is known by that name from its manifest on."""
    mask = None
    if providers is not None:
        wanted = {str(p).lower() for p in providers}
        ok_idx = np.zeros(len(batch.guids) + 1, bool)
        for i, g in enumerate(batch.guids):
            name = names.get(i)
            if name is None:
                name = names[i] = (
                    _NAMES.get(g) or (manifests and manifests.provider_name(g)) or L.provider_name(g)
                )
            ok_idx[i] = str(g) in wanted or (name or "").lower() in wanted
        kernel = batch.group >= 0
        kname = np.zeros(len(batch), bool)
        if kernel.any():
            for grp in np.unique(batch.group[kernel]).tolist():
                if KERNEL_GROUP_NAMES.get(grp, "").lower() in wanted:
                    kname |= batch.group == grp
        mask = np.where(batch.provider >= 0, ok_idx[batch.provider], False) | kname
    if ids is not None:
        want = np.asarray(sorted({int(x) for x in ids}), np.int64)
        ident = np.where(np.isin(batch.htype, _EH), batch.event_id, batch.opcode).astype(np.int64)
        m = np.isin(ident, want)
        mask = m if mask is None else mask & m
    return mask


def _batches(
    path: str | os.PathLike, progress: Progress | None, chunk: int, skipped: SkipReport
) -> Iterator[RecordBatch]:
    """Each batch of records of an ETL file, in file order; what the container skips goes to ``skipped``
    (the decoder's report of the file, published by :func:`_report` once the last record is decoded)."""
    from .container import EtlFile

    with EtlFile(path, progress=progress, skipped=skipped) as etl:
        yield from etl.batches(chunk)


def _batches_ahead(
    path: str | os.PathLike, progress: Progress | None, chunk: int, skipped: SkipReport
) -> Iterator[RecordBatch]:
    """:func:`_batches`, each batch read (walked, decompressed, its headers gathered) in a reader thread
    while the one before it is decoded: the container's C code releases the GIL. At most
    :data:`AHEAD` batches wait. What the container skips is counted into ``skipped`` when the last
    batch has been taken, as without the thread (the order of the report's reasons stays the same)."""
    import queue
    import threading

    own = SkipReport(skipped.file)
    ready: queue.Queue = queue.Queue(AHEAD)
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in _batches(path, progress, chunk, own):
                while not stop.is_set():
                    try:
                        ready.put(("batch", batch), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(("end", None))
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, raised there)
            ready.put(("error", exc))

    reader = threading.Thread(target=read, name="etl-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "batch":
                yield item
            elif kind == "error":
                raise item
            else:
                skipped.merge(own)
                return
    finally:
        stop.set()
        while reader.is_alive():  # let it leave put() and close the file
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
        reader.join()


class _Selection:
    """The records asked for (``providers``/``ids``) of each batch: header fields alone decide."""

    def __init__(self, providers: Iterable[str] | None, ids: Iterable[int] | None) -> None:
        self.providers = list(providers) if providers is not None else None
        self.ids = ids
        self.names: dict[int, str | None] = {}

    def __call__(self, batch: RecordBatch, dec: Decoder) -> RecordBatch | None:
        """The batch's records asked for (None: none); after the batch's manifests were taken."""
        mask = _selector(batch, self.providers, self.ids, self.names, dec.eventsource)
        if mask is None:
            return batch
        return batch.select(mask) if mask.any() else None


def _report(path: str | os.PathLike, dec: Decoder) -> None:
    """Publish the file's report: the container's and the decoder's skips (after the last record was
    decoded, with the manifests left unfinished)."""
    dec.eventsource.finish()
    dec.skipped.publish()


def iter_batches(
    path: str | os.PathLike,
    providers: Iterable[str] | None = None,
    ids: Iterable[int] | None = None,
    *,
    progress: Progress | None = None,
) -> Iterator[list[EventTable]]:
    """The event tables of each batch of records of an ETL file, batch by batch in file order (the long
    table's order; :func:`iter_events` gives larger tables)."""
    dec, select = Decoder(report_for(path)), _Selection(providers, ids)
    for batch in _batches(path, progress, CHUNK, dec.skipped):
        dec.take_manifests(batch)
        chosen = select(batch, dec)
        if chosen is not None:
            yield dec.decode(chosen)
    _report(path, dec)


def iter_events(
    path: str | os.PathLike,
    providers: Iterable[str] | None = None,
    ids: Iterable[int] | None = None,
    *,
    progress: Progress | None = None,
) -> Iterator[EventTable]:
    """The events of an ETL file as typed :class:`EventTable` s, one event type per table, each table of up
    to about ``regroup.ROWS`` rows; a type's rows come in file order (memory bounded by ``regroup.BUDGET``).

    ``providers``: names (``Microsoft-Windows-Kernel-Network``, kernel groups such as ``TcpIp``) or GUIDs;
    ``ids``: event ids (manifest events) or opcodes (kernel events). Records not selected are never decoded.
    """
    from .regroup import Regrouper

    regroup, select = Regrouper(Decoder(report_for(path))), _Selection(providers, ids)
    for batch in _batches_ahead(path, progress, REGROUP_CHUNK, regroup.decoder.skipped):
        yield from regroup.take_manifests(batch)
        chosen = select(batch, regroup.decoder)
        if chosen is not None:
            yield from regroup.add(chosen)
    yield from regroup.finish()
    _report(path, regroup.decoder)


def read_all_events(
    path: str | os.PathLike,
    *,
    progress: Progress | None = None,
    providers: Iterable[str] | None = None,
    ids: Iterable[int] | None = None,
) -> pl.DataFrame:
    """Every record of an ETL file (ALL_EVENTS schema), in file order, fields as a JSON text."""
    parts = [long_form(tables) for tables in iter_batches(path, providers, ids, progress=progress)]
    return pl.concat(parts) if parts else long_form([])
