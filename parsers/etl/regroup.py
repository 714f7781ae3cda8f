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

import numpy as np

from .columnar import OTHER_KEY, Decoder, EventTable, _c, _spans, group_rows
from .records import _COLUMNS, RecordBatch

#: Records of a type decoded together (one table, one Parquet row group).
ROWS = 65536
#: A type with at least this many records in a batch, and none set aside, is decoded from the batch itself.
DIRECT = 4096
#: Bytes (record bytes and header columns) set aside over all event types.
BUDGET = 24 << 20
#: Zero bytes after the data of a regrouped batch (fixed-width reads near its end stay inside it).
_TAIL = 0x40


def _put(d: np.ndarray, start: np.ndarray, length: np.ndarray, out: np.ndarray) -> None:
    """The spans [start, start + length) of ``d``, concatenated into ``out`` (as long as their sum)."""
    if len(out):
        if _c is not None:
            _c.spans(d, np.ascontiguousarray(start, np.int64), np.ascontiguousarray(length, np.int64), out)
        else:
            out[...] = _spans(d, start, length)


#: Header columns held as int64 rows (wide values, positions) and as int32 rows (the rest; unsigned
#: values wrap and come back whole when cast back to their own type).
_WIDE = ["record", "offset", "file_offset", "time", "keyword", "payload_offset", "payload_size"]
_NARROW = [name for name in _COLUMNS if name not in _WIDE]
#: Rows of ``_Held.wide``: where records start and where their payload starts (the same place there).
_OFFSET, _PAYLOAD = _WIDE.index("offset"), _WIDE.index("payload_offset")


class _Held:
    """Records of one type set aside: their payloads (each 8-byte aligned), gathered straight from the
    batches into one growing buffer, and their header columns (rows of ``wide`` and ``narrow``;
    ``offset`` and ``payload_offset`` both index ``data``: a record set aside is its payload)."""

    def __init__(self, nbytes: int, rows: int) -> None:
        self.data = np.empty(nbytes + nbytes // 4 + _TAIL + (1 << 12), np.uint8)
        self.wide = np.empty((len(_WIDE), rows + rows // 4 + 64), np.int64)
        self.narrow = np.empty((len(_NARROW), self.wide.shape[1]), np.int32)
        self.used = 0  # bytes of ``data`` in use
        self.n = 0  # rows in use
        self.nbytes = self.data.nbytes + self.wide.nbytes + self.narrow.nbytes  # memory held

    def room(self, nbytes: int, rows: int) -> None:
        """Make room for ``nbytes`` more bytes and ``rows`` more rows (grown by half again at least)."""
        if self.used + nbytes + _TAIL > len(self.data):
            data = np.empty(max(self.used + nbytes + _TAIL, len(self.data) * 3 // 2), np.uint8)
            data[: self.used] = self.data[: self.used]
            self.data = data
        if self.n + rows > self.wide.shape[1]:
            cap = max(self.n + rows, self.wide.shape[1] * 3 // 2)
            wide = np.empty((len(_WIDE), cap), np.int64)
            narrow = np.empty((len(_NARROW), cap), np.int32)
            wide[:, : self.n] = self.wide[:, : self.n]
            narrow[:, : self.n] = self.narrow[:, : self.n]
            self.wide, self.narrow = wide, narrow
        self.nbytes = self.data.nbytes + self.wide.nbytes + self.narrow.nbytes

    def batch(self, guids: list, dtypes: dict[str, np.dtype]) -> RecordBatch:
        """The records set aside, as one batch (its data followed by :data:`_TAIL` zero bytes)."""
        self.data[self.used : self.used + _TAIL] = 0
        cols = {name: self.wide[k, : self.n].astype(dtypes[name], copy=False) for k, name in enumerate(_WIDE)}
        cols.update(
            {
                name: self.narrow[k, : self.n].astype(dtypes[name], copy=False)
                for k, name in enumerate(_NARROW)
            }
        )
        return RecordBatch(data=self.data[: self.used + _TAIL].data, guids=guids, **cols)


class Regrouper:
    """Takes a file's batches in order and gives event tables of one type each, most of :data:`ROWS` rows."""

    def __init__(self, decoder: Decoder | None = None) -> None:
        self.decoder = decoder or Decoder()
        self._held: dict[int, _Held] = {}
        self._held_bytes = 0
        self._guids: list = []
        self._dtypes: dict[str, np.dtype] = {}

    def add(self, batch: RecordBatch) -> Iterator[EventTable]:
        """Set the batch's records aside by type; the tables of the types that are ready."""
        if len(batch) == 0:
            return
        self._guids = batch.guids
        if not self._dtypes:
            self._dtypes = {name: getattr(batch, name).dtype for name in _COLUMNS}
        keys = self.decoder.keys(batch)
        order, uniq, cuts = group_rows(keys)
        admitted = self.decoder.admit(uniq, order[cuts[:-1]])
        if OTHER_KEY in admitted:  # types past the file's first MAX_TYPES: one table of bytes
            order, uniq, cuts = group_rows(self.decoder.past_types(keys, uniq, admitted))
        direct: list[tuple[int, int, int]] = []
        staged: list[tuple[int, int, int]] = []
        for key, a, b in zip(uniq.tolist(), cuts[:-1].tolist(), cuts[1:].tolist()):
            if key not in self._held:
                self.decoder.type_of(batch, key, int(order[a]))  # planned while its first record is at hand
            (direct if b - a >= DIRECT and key not in self._held else staged).append((key, a, b))
        for key, a, b in direct:
            yield from self.decoder.decode_type(batch.select(order[a:b]), key)
        if not staged:
            return
        rows = np.concatenate([order[a:b] for _, a, b in staged])
        start = batch.payload_offset[rows]
        length = (batch.payload_size[rows] + 7) & ~7
        at = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(length, out=at[1:])
        wide = np.empty((len(_WIDE), len(rows)), np.int64)
        for k, name in enumerate(_WIDE):
            if k != _OFFSET and k != _PAYLOAD:
                wide[k] = getattr(batch, name)[rows]
        narrow = np.empty((len(_NARROW), len(rows)), np.int32)
        for k, name in enumerate(_NARROW):
            narrow[k] = getattr(batch, name)[rows]
        wide[_OFFSET] = wide[_PAYLOAD] = at[:-1]
        d = np.frombuffer(batch.data, np.uint8)
        ready, i = [], 0
        for key, a, b in staged:
            j = i + b - a
            nbytes = int(at[j] - at[i])
            held = self._held.get(key)
            if held is None:
                held = self._held[key] = _Held(nbytes, b - a)
                before = 0
            else:
                before = held.nbytes
                held.room(nbytes, b - a)
            _put(d, start[i:j], length[i:j], held.data[held.used : held.used + nbytes])
            part = held.wide[:, held.n : held.n + b - a]
            part[...] = wide[:, i:j]
            part[_OFFSET] += held.used - at[i]
            part[_PAYLOAD] = part[_OFFSET]
            held.narrow[:, held.n : held.n + b - a] = narrow[:, i:j]
            held.used += nbytes
            held.n += b - a
            self._held_bytes += held.nbytes - before
            i = j
            if held.n >= ROWS:
                ready.append(key)
        for key in ready:
            yield from self._flush(key)
        if self._held_bytes > BUDGET:  # the types holding the most first, until under the budget
            for key in sorted(self._held, key=lambda k: self._held[k].nbytes, reverse=True):
                if self._held_bytes <= BUDGET:
                    break
                yield from self._flush(key)

    def take_manifests(self, batch: RecordBatch) -> Iterator[EventTable]:
        """Take the batch's EventSource manifests (before its records are selected and set aside). The
        types of a provider whose manifest a chunk of the batch completes are decoded first, as planned
        before it: a manifest applies from the batch that completes it on, as in ``Decoder.decode`` (a
        chunk that completes nothing, or the same manifest again, changes no plan)."""
        flushed: list[EventTable] = []

        def before(idx: int) -> None:
            for key in [k for k in self._held if k >> 60 == 1 and (k >> 34) & 0xFFFF == idx]:
                flushed.extend(self._flush(key))

        self.decoder.take_manifests(batch, before)
        yield from flushed

    def finish(self) -> Iterator[EventTable]:
        """The tables of every type still set aside (types in the order first met)."""
        for key in list(self._held):
            yield from self._flush(key)

    def _flush(self, key: int) -> Iterator[EventTable]:
        held = self._held.pop(key)
        self._held_bytes -= held.nbytes
        yield from self.decoder.decode_type(held.batch(self._guids, self._dtypes), key)
