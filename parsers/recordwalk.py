"""The record walk of the capture readers (pcap, pcapng and their C twin ``_capwalk.c``): the status
codes a walk ends with, the checks every walk makes before a record, and the search for where records
start again after damage.

A walk fills a preallocated array with the records from an offset and stops at the end of the file
(``ST_END``), when the array is full (``ST_FULL``), before a record whose header does not fit in what is
left (``ST_TRUNCATED``), or at damage the reader names (``ST_BAD_CAPLEN``, pcapng's block codes).

After damage, every byte offset is a candidate start: the u32 words at every offset are viewed at once
(one unaligned numpy view per window), a vectorised test keeps the plausible starts, and the reader's
own check confirms them one by one in file order. Windows grow from 4 KiB to 1 MiB, so the work stays
proportional to the bytes skipped, however large the damage.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Status codes of a walk (the C walks return the same numbers).
ST_END, ST_FULL, ST_TRUNCATED, ST_BAD_CAPLEN = 0, 1, 2, 4
#: The first and the largest window of candidate offsets.
FIRST_WINDOW, MAX_WINDOW = 1 << 12, 1 << 20


def walk_stop(pos: int, size: int, count: int, limit: int, header: int) -> int | None:
    """The status that ends a walk before the record at ``pos`` (``count`` records kept of at most
    ``limit``; ``header``: the bytes a record header needs); None: read the record."""
    if pos == size:
        return ST_END
    if count == limit:
        return ST_FULL
    if size - pos < header:
        return ST_TRUNCATED
    return None


def find_start(
    buf: np.ndarray,
    start: int,
    last: int,
    big: bool,
    plausible: Callable[[np.ndarray, int], np.ndarray],
    confirmed: Callable[[int], bool],
    reach: int = 0,
) -> int | None:
    """The first offset in ``[start, last)`` that ``plausible`` and then ``confirmed`` accept; None when none.

    ``plausible(words, k)`` gets the u32 words (big-endian when ``big``) at every byte offset of a window
    of ``k`` candidates, plus ``reach`` bytes of words beyond it (what a record header needs), and
    returns a boolean mask of the ``k`` candidates; ``confirmed(offset)`` checks one candidate fully.
    """
    dt = np.dtype(">u4" if big else "<u4")
    window = FIRST_WINDOW
    while start < last:
        stop = min(last, start + window)  # candidates in [start, stop)
        window = min(window * 2, MAX_WINDOW)
        seg = np.ascontiguousarray(buf[start : min(len(buf), stop + reach + 3)])
        words = np.ndarray((max(0, len(seg) - 3),), dtype=dt, buffer=seg, strides=(1,))
        k = stop - start
        for p in (start + np.flatnonzero(plausible(words, k)[:k])).tolist():
            if confirmed(p):
                return p
        start = stop
    return None


__all__ = [
    "FIRST_WINDOW",
    "MAX_WINDOW",
    "ST_BAD_CAPLEN",
    "ST_END",
    "ST_FULL",
    "ST_TRUNCATED",
    "find_start",
    "walk_stop",
]
