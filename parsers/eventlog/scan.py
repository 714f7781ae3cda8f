"""Byte-level scanning of JSON-lines event logs: find the few lines worth decoding without decoding the rest.

Real exports are mostly events etwtools does not use (registry, image loads, object access). One regex pass
over each block finds the lines whose event id is one of :data:`WANTED_IDS` (only those are decoded with
``json.loads``), counts every event id, and finds lines that cannot be whole JSON objects (truncated).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

#: Event ids the tables are built from: Sysmon 1/3/5/22, Security 4688/4689 and the WFP audit events.
SYSMON_IDS = (1, 3, 5, 22)
SECURITY_IDS = (4688, 4689, 5152, 5154, 5156, 5157, 5158)
WANTED_IDS = frozenset(SYSMON_IDS + SECURITY_IDS)

# The event id as every flavour writes it: "EventID": 3 / "EventID":"3" (flat, Azure), "event_id": "3" (ECS),
# "EventID": {"#attributes": {...}, "#text": 4688} (evtx_dump with Qualifiers).
_ID_RE = re.compile(rb'"(?:EventID|event_id)"\s*:\s*(?:"?(\d{1,10})"?\s*[,}]|\{)')
# after "EventID": { -- the #text member, looked for in the next few hundred bytes only (hostile lines)
_TEXT_RE = re.compile(rb'"#text"\s*:\s*"?(\d{1,10})"?\s*[,}]')
_TEXT_WINDOW = 400

BLOCK = 16 << 20


@dataclass
class Candidate:
    """One line worth decoding: its 1-based line number, byte offset and bytes."""

    line: int
    offset: int
    text: bytes


@dataclass
class ScanStats:
    """What the scan saw over the whole input."""

    event_ids: Counter = field(default_factory=Counter)
    lines: int = 0  # non-blank lines
    broken: list[tuple[int, int]] = field(default_factory=list)  # (line, offset) of the first 20 truncated
    broken_count: int = 0


def scan_block(buf, first_line: int, base: int, stats: ScanStats) -> tuple[list[Candidate], int]:
    """The candidate lines of ``buf`` (bytes or a memoryview of whole lines) and its number of newlines;
    counts event ids, non-blank lines and truncated lines (not ending in "}") into ``stats``."""
    a = np.frombuffer(buf, np.uint8)
    size = len(a)
    nl = np.flatnonzero(a == 10)
    ids: list[bytes] = []
    wanted: list[int] = []
    for m in _ID_RE.finditer(buf):
        g = m.group(1)
        if g is None:
            t = _TEXT_RE.search(buf, m.end(), min(m.end() + _TEXT_WINDOW, size))
            if t is None:
                continue
            g = t.group(1)
        ids.append(g)
        if int(g) in WANTED_IDS:
            wanted.append(m.start())
    stats.event_ids.update(int(k) for k in ids)
    out: list[Candidate] = []
    if wanted:
        li = np.unique(np.searchsorted(nl, np.asarray(wanted, np.int64)))
        if len(nl):
            starts = np.where(li > 0, nl[np.maximum(li - 1, 0)] + 1, 0)
            ends = np.where(li < len(nl), nl[np.minimum(li, len(nl) - 1)], size)
        else:
            starts, ends = np.zeros(len(li), np.int64), np.full(len(li), size, np.int64)
        out = [
            Candidate(first_line + int(i), base + int(s0), bytes(buf[s0:e0]))
            for i, s0, e0 in zip(li.tolist(), starts.tolist(), ends.tolist())
        ]
    # line ends: the last byte before each newline (before a CR) must be "}" for a whole JSON object
    open_end = size > 0 and a[-1] != 10
    pieces = len(nl) + open_end
    whole = 0
    if len(nl):
        prev = a[np.maximum(nl - 1, 0)]
        cr = prev == 13
        if cr.any():
            prev = prev.copy()
            prev[cr] = a[np.maximum(nl[cr] - 2, 0)]
        whole = int(np.count_nonzero(prev == 125))
    if open_end:
        whole += bytes(buf[max(nl[-1] + 1 if len(nl) else 0, size - 4096) :]).rstrip().endswith(b"}")
    if whole != pieces:  # blank lines, or lines that cannot be whole JSON objects: find which (rare)
        stats.lines += _odd_lines(bytes(buf), first_line, base, stats)
    else:
        stats.lines += pieces
    return out, len(nl)


def _odd_lines(buf: bytes, first_line: int, base: int, stats: ScanStats) -> int:
    """Count the truncated lines (non-blank, last non-blank byte not "}"); returns the non-blank lines."""
    off = 0
    nonblank = 0
    for i, raw in enumerate(buf.split(b"\n")):
        s = raw.rstrip()
        if s:
            nonblank += 1
            if not s.endswith(b"}"):
                stats.broken_count += 1
                if len(stats.broken) < 20:
                    stats.broken.append((first_line + i, base + off))
        off += len(raw) + 1
    return nonblank


def iter_mapped(mm, block: int = BLOCK) -> Generator[tuple[memoryview, int], None, None]:
    """Whole-line views of a mapped file (no copy): (memoryview, byte offset)."""
    size = len(mm)
    view = memoryview(mm)
    try:
        pos = 0
        while pos < size:
            end = min(pos + block, size)
            if end < size:
                cut = mm.rfind(b"\n", pos, end) + 1
                if cut <= pos:  # one line longer than a block
                    nxt = mm.find(b"\n", end)
                    cut = size if nxt < 0 else nxt + 1
            else:
                cut = size
            piece = view[pos:cut]
            try:
                yield piece, pos
            finally:
                piece.release()
            pos = cut
    finally:
        view.release()


def iter_blocks(f, block: int = BLOCK) -> Generator[tuple[bytes, int], None, None]:
    """Whole-line blocks of a binary file: (bytes, byte offset). A line longer than 4 blocks is cut."""
    offset = 0
    rest = b""
    while True:
        data = f.read(block)
        if not data:
            break
        buf = rest + data if rest else data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            if len(buf) <= 4 * block:
                rest = buf
                continue
            cut = len(buf)  # a line longer than any event: pass it on whole, it cannot decode
        yield buf[:cut] if cut < len(buf) else buf, offset
        offset += cut
        rest = buf[cut:]
    if rest:
        yield rest, offset
