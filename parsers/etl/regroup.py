"""The records of a file regrouped by event type, so that each type is decoded in large tables.

A batch of records holds a few records of each of dozens of event types; decoding and writing a
table costs a fixed amount whatever its length, so the records of each type are set aside (their
payloads and header columns copied out of the batch, in one sorted gather per batch) until the type has
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


#: Header columns held as int64 rows (wide values) and as int32 rows (the rest; unsigned values wrap and
#: come back whole when cast back to their own type). ``offset`` and ``payload_offset`` are not held: a
#: record set aside is its payload, found where the payloads before it end.
_WIDE = ["record", "file_offset", "time", "keyword", "payload_size"]
_NARROW = [name for name in _COLUMNS if name not in _WIDE and name not in ("offset", "payload_offset")]


class _Held:
    """Records of one type set aside, one piece per batch (exact sizes: nothing is copied as they come):
    their payloads (each 8-byte aligned, one after the other) and their header columns (rows of ``wide``
    and ``narrow``). The pieces are joined into one batch when the type is decoded."""

    def __init__(self) -> None:
        self.pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.used = 0  # bytes of payload
        self.n = 0  # records
        self.nbytes = 0  # memory held

    def add(self, data: np.ndarray, wide: np.ndarray, narrow: np.ndarray) -> None:
        self.pieces.append((data, wide, narrow))
        self.used += len(data)
        self.n += wide.shape[1]
        self.nbytes += data.nbytes + wide.nbytes + narrow.nbytes

    def batch(self, guids: list, dtypes: dict[str, np.dtype]) -> RecordBatch:
        """The records set aside, as one batch (its data followed by :data:`_TAIL` zero bytes)."""
        datas, wides, narrows = zip(*self.pieces)
        self.pieces = []
        data = np.concatenate([*datas, np.zeros(_TAIL, np.uint8)])
        wide = np.concatenate(wides, axis=1)
        narrow = np.concatenate(narrows, axis=1)
        sizes = wide[_WIDE.index("payload_size")]
        start = np.zeros(self.n, np.int64)
        np.cumsum((sizes[:-1] + 7) & ~7, out=start[1:])
        cols = {name: wide[k].astype(dtypes[name], copy=False) for k, name in enumerate(_WIDE)}
        cols.update({name: narrow[k].astype(dtypes[name], copy=False) for k, name in enumerate(_NARROW)})
        return RecordBatch(data=data.data, guids=guids, offset=start, payload_offset=start, **cols)


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
            wide[k] = getattr(batch, name)[rows]
        narrow = np.empty((len(_NARROW), len(rows)), np.int32)
        for k, name in enumerate(_NARROW):
            narrow[k] = getattr(batch, name)[rows]
        d = np.frombuffer(batch.data, np.uint8)
        ready, i = [], 0
        for key, a, b in staged:
            j = i + b - a
            held = self._held.get(key)
            if held is None:
                held = self._held[key] = _Held()
            before = held.nbytes
            data = np.empty(int(at[j] - at[i]), np.uint8)
            _put(d, start[i:j], length[i:j], data)
            held.add(data, wide[:, i:j].copy(), narrow[:, i:j].copy())
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
