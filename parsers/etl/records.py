"""Decoded record headers of an ETL file, as columns: the contract between the container and the event decoders.

The container (``container.py``) walks buffers and yields :class:`RecordBatch` objects, each covering
one chunk of consecutive buffers. Event decoders (``kernel.py``, ``manifest.py``, ``captured_frames.py``, ...)
select rows by provider/opcode/event id and read payload fields in bulk with numpy, never by
looping over records in Python.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

#: Header types (low byte of HeaderType at record offset 2).
SYSTEM32, SYSTEM64, COMPACT32, COMPACT64 = 0x01, 0x02, 0x03, 0x04
FULL_HEADER32, INSTANCE32, MESSAGE = 0x0A, 0x0B, 0x0F
PERFINFO32, PERFINFO64, EVENT_HEADER32, EVENT_HEADER64 = 0x10, 0x11, 0x12, 0x13
FULL_HEADER64, INSTANCE64 = 0x14, 0x15
#: Every record header type (what the first record of a file's first buffer may have).
HEADER_TYPES = frozenset(
    {
        SYSTEM32,
        SYSTEM64,
        COMPACT32,
        COMPACT64,
        FULL_HEADER32,
        INSTANCE32,
        MESSAGE,
        PERFINFO32,
        PERFINFO64,
        EVENT_HEADER32,
        EVENT_HEADER64,
        FULL_HEADER64,
        INSTANCE64,
    }
)


@dataclass
class RecordBatch:
    """Headers of the records of one chunk of buffers, one numpy array per field (all the same length).

    ``data`` holds the (decompressed) bytes of the chunk's buffers; ``payload_offset`` and
    ``offset`` index into it. Every record and payload starts 8-byte aligned, so fields can be
    gathered with ``np.frombuffer(data, '<u4')[(payload_offset + k) // 4]`` and the like.
    """

    data: bytes | bytearray | memoryview
    record: np.ndarray  # int64: index of the record in the file (0-based, file order)
    offset: np.ndarray  # int64: start of the record in ``data``
    file_offset: np.ndarray  # int64: start of the record's buffer in the file (for error messages)
    htype: np.ndarray  # uint8: header type (constants above)
    pointer_size: np.ndarray  # uint8: 4 or 8, from the header type (32/64 forms)
    provider: np.ndarray  # int32: index into ``guids``; -1 when the record has no provider
    group: np.ndarray  # int16: kernel group (hook id >> 8) for SYSTEM/COMPACT/PERFINFO, else -1
    opcode: (
        np.ndarray
    )  # uint8: packet type (kernel), class type (FULL/INSTANCE), descriptor opcode (EVENT_HEADER)
    version: np.ndarray  # uint16: packet/class/descriptor version
    event_id: np.ndarray  # uint16: EVENT_HEADER descriptor id, else 0
    level: np.ndarray  # uint8
    keyword: np.ndarray  # uint64: EVENT_HEADER keyword, else 0
    pid: np.ndarray  # uint32: header process id (0xFFFFFFFF where the header has none)
    tid: np.ndarray  # uint32: header thread id (0xFFFFFFFF where the header has none)
    time: np.ndarray  # int64: UTC, ns since 1970 (already converted with the file's clock)
    payload_offset: np.ndarray  # int64: start of the payload (user data) in ``data``
    payload_size: np.ndarray  # int64: payload bytes (record size minus header and extended items)
    guids: list[uuid.UUID] = field(default_factory=list)  # provider table, shared by all batches of a file

    def __len__(self) -> int:
        return len(self.record)

    def select(self, mask: np.ndarray) -> RecordBatch:
        """The rows where ``mask`` is true (same data buffer)."""
        kw = {name: getattr(self, name)[mask] for name in _COLUMNS}
        return RecordBatch(data=self.data, guids=self.guids, **kw)

    def provider_mask(self, guid: uuid.UUID | str) -> np.ndarray:
        """Boolean mask of the records of one provider."""
        guid = uuid.UUID(str(guid))
        try:
            idx = self.guids.index(guid)
        except ValueError:
            return np.zeros(len(self), dtype=bool)
        return self.provider == idx

    def payload(self, i: int) -> bytes:
        """Payload bytes of row ``i`` (for slow paths and tests)."""
        start = int(self.payload_offset[i])
        return bytes(self.data[start : start + int(self.payload_size[i])])


_COLUMNS = [n for n in RecordBatch.__dataclass_fields__ if n not in ("data", "guids")]
