"""The records of a file regrouped by event type, so that each type is decoded in large tables.

A batch of records holds a few records of each of dozens of event types; decoding and writing a
table costs a fixed amount whatever its length, so the records of each type are set aside (their
bytes and header columns copied out of the batch, in one sorted gather per batch) until the type has
:data:`ROWS` of them, then decoded together into one table. Past :data:`BUDGET` bytes set aside over
all types, the type holding the most is decoded first; the rest is decoded at the end of the file.
Records of a type come out in file order; memory is bounded by the budget, not by the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import eventsource as es
from .columnar import _IS_EH, Decoder, EventTable, _spans
from .records import _COLUMNS, RecordBatch

#: Records of a type decoded together (one table, one Parquet row group).
ROWS = 65536
#: A type with at least this many records in a batch, and none set aside, is decoded from the batch itself.
DIRECT = 4096
#: Bytes (record bytes and header columns) set aside over all event types.
BUDGET = 16 << 20
#: Zero bytes after the data of a regrouped batch (fixed-width reads near its end stay inside it).
_TAIL = 0x40


@dataclass
class _Part:
    """Records of one type taken out of one batch: their bytes (each record 8-byte aligned, from its
    header to the end of its payload) and header columns (one structured row per record;
    ``offset``/``payload_offset`` index ``data``)."""

    data: bytes
    rows: np.ndarray
    base: int  # where ``data`` starts in the batch's sorted bytes (``rows``' offsets count from there)

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.rows.nbytes


def _take(batch: RecordBatch, rows: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The records ``rows`` of a batch, in that order: (their bytes, their header columns as structured
    rows, where each record starts in those bytes and, last, where the last one ends)."""
    start = batch.offset[rows]
    length = (batch.payload_offset[rows] + batch.payload_size[rows] - start + 7) & ~7
    at = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(length, out=at[1:])
    data = _spans(np.frombuffer(batch.data, np.uint8), start, length)
    table = np.empty(len(rows), dtype)
    for name in _COLUMNS:
        table[name] = getattr(batch, name)[rows]
    table["payload_offset"] += at[:-1] - start
    table["offset"] = at[:-1]
    return data, table, at


def _joined(parts: list[_Part], guids: list) -> RecordBatch:
    """One batch of the parts (in order)."""
    table = np.concatenate([p.rows for p in parts]) if len(parts) > 1 else parts[0].rows
    shift = np.zeros(len(parts), np.int64)
    np.cumsum([len(p.data) for p in parts[:-1]], out=shift[1:])
    shift -= np.array([p.base for p in parts], np.int64)
    base = np.repeat(shift, [len(p.rows) for p in parts])
    cols = {name: np.ascontiguousarray(table[name]) for name in _COLUMNS}
    cols["offset"] += base
    cols["payload_offset"] += base
    data = b"".join([p.data for p in parts] + [bytes(_TAIL)])
    return RecordBatch(data=data, guids=guids, **cols)


class Regrouper:
    """Takes a file's batches in order and gives event tables of one type each, most of :data:`ROWS` rows."""

    def __init__(self, decoder: Decoder | None = None) -> None:
        self.decoder = decoder or Decoder()
        self._parts: dict[int, list[_Part]] = {}
        self._rows: dict[int, int] = {}
        self._bytes: dict[int, int] = {}
        self._held = 0
        self._guids: list = []
        self._dtype: np.dtype | None = None

    def add(self, batch: RecordBatch) -> Iterator[EventTable]:
        """Set the batch's records aside by type; the tables of the types that are ready."""
        if len(batch) == 0:
            return
        self._guids = batch.guids
        if self._dtype is None:
            self._dtype = np.dtype([(name, getattr(batch, name).dtype) for name in _COLUMNS])
        keys = self.decoder.keys(batch)
        order = np.argsort(keys, kind="stable")
        skeys = keys[order]
        cut = np.flatnonzero(skeys[1:] != skeys[:-1]) + 1
        bounds = list(zip(np.concatenate([[0], cut]).tolist(), np.concatenate([cut, [len(order)]]).tolist()))
        direct: list[tuple[int, int, int]] = []
        staged: list[tuple[int, int, int]] = []
        for a, b in bounds:
            key = int(skeys[a])
            if key not in self._parts:
                self.decoder.type_of(batch, key, int(order[a]))  # planned while its first record is at hand
            (direct if b - a >= DIRECT and key not in self._parts else staged).append((key, a, b))
        for key, a, b in direct:
            yield from self.decoder.decode_type(batch.select(order[a:b]), key)
        if not staged:
            return
        rows = np.concatenate([order[a:b] for _, a, b in staged])
        data, table, at = _take(batch, rows, self._dtype)
        ready, i = [], 0
        for key, a, b in staged:
            j = i + b - a
            part = _Part(data[at[i] : at[j]].tobytes(), table[i:j].copy(), int(at[i]))
            i = j
            self._parts.setdefault(key, []).append(part)
            self._rows[key] = self._rows.get(key, 0) + b - a
            self._bytes[key] = self._bytes.get(key, 0) + part.nbytes
            self._held += part.nbytes
            if self._rows[key] >= ROWS:
                ready.append(key)
        for key in ready:
            yield from self._flush(key)
        while self._held > BUDGET and self._bytes:
            yield from self._flush(max(self._bytes, key=self._bytes.__getitem__))

    def take_manifests(self, batch: RecordBatch) -> Iterator[EventTable]:
        """Take the batch's EventSource manifests (before its records are selected and set aside). The
        types of a provider with manifest chunks in the batch are decoded first, as planned before it: a
        manifest applies from the batch that completes it on, as in ``Decoder.decode``."""
        chunks = batch.provider[
            _IS_EH[batch.htype]
            & (batch.event_id == es.MANIFEST_EVENT_ID)
            & (batch.opcode == es.MANIFEST_OPCODE)
        ]
        if len(chunks) and self._parts:
            idx = {int(p) + 1 for p in np.unique(chunks).tolist() if p >= 0}
            for key in [k for k in self._parts if k >> 60 == 1 and (k >> 34) & 0xFFFF in idx]:
                yield from self._flush(key)
        self.decoder.take_manifests(batch)

    def finish(self) -> Iterator[EventTable]:
        """The tables of every type still set aside (types in the order first met)."""
        for key in list(self._parts):
            yield from self._flush(key)

    def _flush(self, key: int) -> Iterator[EventTable]:
        parts = self._parts.pop(key)
        self._held -= self._bytes.pop(key)
        del self._rows[key]
        batch = _joined(parts, self._guids)
        parts.clear()
        yield from self.decoder.decode_type(batch, key)
