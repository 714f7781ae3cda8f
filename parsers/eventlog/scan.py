"""Byte-level scanning of JSON-lines event logs: find the few lines worth decoding without decoding the rest.

Real exports are mostly events etwtools does not use (registry, image loads, object access). One regex pass
over each block finds the lines whose event id is one of :data:`WANTED_IDS` (only those are decoded with
``json.loads``), counts every event id, and finds lines that cannot be whole JSON objects (truncated).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Event ids the tables are built from: Sysmon 1/3/5/22, Security 4688/4689 and the WFP audit events.
SYSMON_IDS = (1, 3, 5, 22)
SECURITY_IDS = (4688, 4689, 5152, 5154, 5156, 5157, 5158)
WANTED_IDS = frozenset(SYSMON_IDS + SECURITY_IDS)

# The event id as every flavour writes it: "EventID": 3 / "EventID":"3" (flat, Azure), "event_id": "3" (ECS),
# "EventID": {"#attributes": {...}, "#text": 4688} (evtx_dump with Qualifiers).
_KEY = rb'"(?:EventID|event_id)"\s*:\s*(?:\{(?:[^{}]|\{[^{}]*\})*?"#text"\s*:\s*)?"?'
_ID_RE = re.compile(_KEY + rb'(\d{1,10})"?\s*[,}]')
_WANTED_RE = re.compile(
    _KEY + rb'(?:'
    + b"|".join(str(i).encode() for i in sorted(WANTED_IDS, reverse=True)) + rb')"?\s*[,}]')
# A non-blank line whose last non-blank byte is not "}" cannot be a whole JSON object.
_BROKEN_END_RE = re.compile(rb'[^}\s][ \t\r]*(?:\n|\Z)')

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
    lines: int = 0
    broken: list[tuple[int, int]] = field(default_factory=list)   # (line, offset) of lines not ending in "}"
    broken_count: int = 0


def scan_block(buf: bytes, first_line: int, base: int, stats: ScanStats) -> list[Candidate]:
    """The candidate lines of ``buf`` (whole lines), counting event ids and broken lines into ``stats``."""
    stats.event_ids.update(int(m) for m in _ID_RE.findall(buf))
    out: list[Candidate] = []
    line = first_line
    pos = 0
    last_end = -1
    for m in _WANTED_RE.finditer(buf):
        start = buf.rfind(b"\n", 0, m.start()) + 1
        if start <= last_end:           # a second id on a line already taken
            continue
        end = buf.find(b"\n", m.end())
        if end < 0:
            end = len(buf)
        line += buf.count(b"\n", pos, start)
        pos = start
        out.append(Candidate(line, base + start, buf[start:end]))
        last_end = end
    for m in _BROKEN_END_RE.finditer(buf):
        stats.broken_count += 1
        if len(stats.broken) < 20:
            ln = first_line + buf.count(b"\n", 0, m.start())
            stats.broken.append((ln, base + buf.rfind(b"\n", 0, m.start()) + 1))
    stats.lines += buf.count(b"\n") + (0 if buf.endswith(b"\n") or not buf else 1)
    return out


def iter_blocks(f, block: int = BLOCK) -> Iterator[tuple[bytes, int, int]]:
    """Whole-line blocks of a binary file: (bytes, first line number, byte offset)."""
    line = 1
    offset = 0
    rest = b""
    while True:
        data = f.read(block)
        if not data:
            break
        buf = rest + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            if len(buf) <= 4 * block:
                rest = buf
                continue
            cut = len(buf)              # a line longer than any event: pass it on whole, it cannot decode

        yield buf[:cut], line, offset
        line += buf.count(b"\n", 0, cut)
        offset += cut
        rest = buf[cut:]
    if rest:
        yield rest, line, offset
