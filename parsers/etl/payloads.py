"""Manifest payload layouts decoded in bulk: fixed fields, NUL-ended strings and SIDs, many records at once.

A layout is a tuple of ``(name, kind)`` in payload order. Kinds: ``u8 u16 u32 u64 s32`` (little-endian),
``ptr`` (pointer-sized), ``filetime`` (u64, 100 ns since 1601), ``wstr`` (UTF-16LE, NUL-ended),
``astr`` (ANSI, NUL-ended), ``sid`` (a plain SID: revision, count, 6-byte authority, count x u32).
Variable-length fields shift the fields after them row by row; every position is an array, so
records of one layout are decoded together with numpy (the strings are decoded with one ``decode``
call per field). A string without its NUL ends at the end of the payload; a record whose fixed
fields run past its payload is reported as short, never guessed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..units import FILETIME_UNIX_EPOCH
from .records import RecordBatch

Layout = tuple[tuple[str, str], ...]

_FIXED = {
    "u8": ("<u1", 1),
    "u16": ("<u2", 2),
    "u32": ("<u4", 4),
    "s32": ("<i4", 4),
    "u64": ("<u8", 8),
    "filetime": ("<u8", 8),
}


def decode_fields(
    batch: RecordBatch, rows: np.ndarray, layout: Layout, pointer_size: int = 8
) -> tuple[dict[str, Any], np.ndarray]:
    """Columns of ``layout`` for ``rows`` of ``batch`` and the mask of the rows that hold the layout.

    Numbers come back as numpy arrays, strings and SIDs as lists (None for the rows not held);
    ``_end`` is where each row's last field ends (bytes from the payload's start), for the fields that
    follow a layout (counted arrays, blobs).
    """
    rows = np.asarray(rows, np.int64)
    n = len(rows)
    size = batch.payload_size[rows].astype(np.int64)
    start = batch.payload_offset[rows].astype(np.int64)
    size = np.where((start >= 0) & (start + size <= len(batch.data)), size, 0)
    # the rows' payloads side by side in one compact array: row r is buf[base[r]:base[r] + size[r]]
    base = np.zeros(n, np.int64)
    if n > 1:
        np.cumsum(size[:-1], out=base[1:])
    u8 = np.frombuffer(batch.data, np.uint8)
    buf = u8[_spans(start, size)] if n else np.zeros(0, np.uint8)
    end = base + size
    pos = base.copy()
    ok = np.ones(n, bool)
    cols: dict[str, np.ndarray | list[str | None]] = {}
    pad = np.concatenate([buf, np.zeros(16, np.uint8)])  # reads past a short row's end stay inside
    for name, kind in layout:
        if kind == "ptr":
            kind = "u64" if pointer_size == 8 else "u32"
        if kind in _FIXED:
            dtype, width = _FIXED[kind]
            ok &= pos + width <= end
            p = np.where(ok, pos, 0)
            raw = np.ascontiguousarray(pad[p[:, None] + np.arange(width)])
            cols[name] = raw.view(dtype).ravel()
            pos = pos + width
        elif kind in ("wstr", "astr"):
            stop, after = _string_ends(buf, pos, end, 2 if kind == "wstr" else 1)
            ok &= pos <= end
            cols[name] = _strings(buf, pos, stop, ok, kind)
            pos = after
        elif kind == "sid":
            ok &= pos + 8 <= end
            count = np.where(ok, pad[np.where(ok, pos, 0) + 1], 0).astype(np.int64)
            stop = pos + 8 + 4 * count
            ok &= (stop <= end) & (count <= 15)
            cols[name] = [
                _sid_text(bytes(buf[a:b])) if good else None
                for a, b, good in zip(pos.tolist(), stop.tolist(), ok.tolist())
            ]
            pos = stop
        else:
            raise ValueError(f"unknown field kind {kind!r}")
    cols["_end"] = pos - base
    return cols, ok


def filetime_ns(values: np.ndarray) -> np.ndarray:
    """FILETIME (100 ns since 1601, UTC) to int64 ns since 1970; 0 stays 0 (no time)."""
    v = values.astype(np.int64)
    return np.where(v > FILETIME_UNIX_EPOCH, (v - FILETIME_UNIX_EPOCH) * 100, 0)


def _spans(start: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Indices of the bytes ``start[i]:start[i] + size[i]`` for every row, concatenated."""
    total = int(size.sum())
    if not total:
        return np.zeros(0, np.int64)
    first = np.repeat(start - np.concatenate([[0], np.cumsum(size)[:-1]]), size)
    return first + np.arange(total, dtype=np.int64)


def _string_ends(
    buf: np.ndarray, pos: np.ndarray, end: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(end of each string, position after its NUL) for strings of ``width``-byte units at ``pos``;
    a string without its NUL runs to the end of its payload (whole units)."""
    big = np.iinfo(np.int64).max
    stop = np.full(len(pos), big, np.int64)
    if width == 1:
        nul = np.append(np.flatnonzero(buf == 0), big)
        stop = nul[np.searchsorted(nul, pos)]
    else:
        pair = np.flatnonzero((buf[:-1] == 0) & (buf[1:] == 0)) if len(buf) > 1 else np.zeros(0, np.int64)
        for parity in (0, 1):  # a UTF-16 NUL starts an even number of bytes after the string's start
            rows = np.flatnonzero(pos % 2 == parity)
            cand = np.append(pair[pair % 2 == parity], big)
            stop[rows] = cand[np.searchsorted(cand, pos[rows])]
    found = stop <= end - width
    stop = np.where(found, stop, pos + np.maximum(end - pos, 0) // width * width)
    return stop, np.where(found, stop + width, end)


def _strings(
    buf: np.ndarray, pos: np.ndarray, stop: np.ndarray, ok: np.ndarray, kind: str
) -> list[str | None]:
    """The strings ``buf[pos:stop]``, decoded with one call (NUL-joined, then split)."""
    length = np.where(ok, np.maximum(stop - pos, 0), 0)
    width = 2 if kind == "wstr" else 1
    dest = np.zeros(int(length.sum()) + width * len(pos), np.uint8)
    out_start = np.concatenate([[0], np.cumsum(length + width)[:-1]]).astype(np.int64)
    dest[_spans(out_start, length)] = buf[_spans(pos, length)]
    text = dest.tobytes().decode("utf-16-le" if width == 2 else "cp1252", "replace")
    parts = text.split("\0")[: len(pos)]
    return [s if good else None for s, good in zip(parts, ok.tolist())]


def _sid_text(raw: bytes) -> str:
    count = raw[1]
    subs = [str(int.from_bytes(raw[8 + 4 * i : 12 + 4 * i], "little")) for i in range(count)]
    return "-".join(["S", str(raw[0]), str(int.from_bytes(raw[2:8], "big")), *subs])
