"""What the readers skipped, and other warnings, reported through the ``etwtools`` logger.

Readers never drop data silently. Every reader fills one :class:`SkipReport` per file it reads (what
it skipped: units, bytes, where and why; and what the file itself says was lost before it was
written) and publishes it once, when the file is read: one ``WARNING`` record on the ``etwtools``
logger whose message is :meth:`SkipReport.line` and whose ``skip_report`` attribute is the report.
Library users get the reports typed: result objects carry theirs as ``.skipped`` (``Trace``,
``EventLog``, ``TracerptTrace``, ``Timeline``), and :func:`collect` gathers the reports of whatever is
read inside it, including readers that return a bare DataFrame. The CLI prints each as one
``warning: <file>: skipped ...`` line.

Other facts (data kept with a caveat, offsets found) go through :func:`warn` and :func:`info`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Self

log = logging.getLogger("etwtools")

#: Locations shown per reason in :meth:`SkipReport.line`.
EXAMPLES = 5


def warn(message: str) -> None:
    """Report something suspicious in data that was kept (one line, naming the file)."""
    log.warning(message)


def info(message: str) -> None:
    """Report a fact the user should see (offsets found, counts) on stderr."""
    log.info(message)


@dataclass(frozen=True)
class Skip:
    """One skipped place of a file: where (byte ``offset`` or 1-based ``line``), how many bytes, and
    what was wrong there beyond its reason (``detail``, e.g. ``caplen 2147483647``)."""

    offset: int | None = None
    line: int | None = None
    size: int = 0
    detail: str = ""

    def where(self) -> str:
        at = (
            f"{self.offset:#x}"
            if self.offset is not None
            else f"{self.line}"
            if self.line is not None
            else ""
        )
        return f"{at} ({self.detail})" if at and self.detail else at or self.detail


@dataclass
class Reason:
    """What was skipped for one reason: units (records, lines, blocks, chunks), bytes, first places."""

    count: int = 0
    bytes: int = 0
    places: list[Skip] = field(default_factory=list)
    located: int = 0  # units whose place was given (shown: the first EXAMPLES)
    kind: str = "skipped"  # or "missing" (not in the file: cut), "lost" (the logger says it lost them)


@dataclass
class SkipReport:
    """What the readers skipped in one file, by reason (a noun phrase that reads after a count:
    ``damaged record(s)``), in the order reasons first occurred."""

    file: str
    reasons: dict[str, Reason] = field(default_factory=dict)
    published: bool = field(default=False, compare=False, repr=False)

    def add(
        self,
        reason: str,
        n: int = 1,
        *,
        offset: int | None = None,
        line: int | None = None,
        size: int = 0,
        detail: str = "",
    ) -> None:
        """Count ``n`` units skipped for ``reason``, at ``offset`` (bytes) or ``line`` when known."""
        if n <= 0 and not size:
            return
        r = self.reasons.setdefault(reason, Reason())
        r.count += max(n, 0)
        r.bytes += size
        if offset is not None or line is not None or detail:
            r.located += 1
            if len(r.places) < EXAMPLES:
                r.places.append(Skip(offset, line, size, detail))

    def add_many(
        self,
        reason: str,
        offsets: Collection[Any],
        *,
        size: int = 0,
        detail: Callable[[int], str] | None = None,
    ) -> None:
        """Count one unit per byte offset in ``offsets`` (a list or an integer array; ``size``: their
        bytes in all); ``detail(i)`` describes the i-th of the first places shown."""
        if not len(offsets):
            return
        r = self.reasons.setdefault(reason, Reason())
        r.count += len(offsets)
        r.bytes += size
        r.located += len(offsets)
        room = max(0, EXAMPLES - len(r.places))
        for i, off in enumerate(islice(offsets, room)):
            r.places.append(Skip(int(off), detail=detail(i) if detail is not None else ""))

    def add_lines(self, reason: str, lines: Collection[Any], n: int | None = None) -> None:
        """Count ``n`` lines (default: as many as ``lines``), showing the first of ``lines`` (1-based
        line numbers, in the order given)."""
        n = len(lines) if n is None else n
        if n <= 0:
            return
        r = self.reasons.setdefault(reason, Reason())
        r.count += n
        r.located += n
        room = max(0, EXAMPLES - len(r.places))
        r.places.extend(Skip(line=int(x)) for x in islice(lines, room))

    def missing(self, reason: str, n: int) -> None:
        """Count ``n`` units the file should hold but does not (a cut file)."""
        if n > 0:
            self.reasons.setdefault(reason, Reason(kind="missing")).count += n

    def lost(self, reason: str, n: int) -> None:
        """Count ``n`` units the logger says it lost before writing the file (not skipped by a reader)."""
        if n > 0:
            self.reasons.setdefault(reason, Reason(kind="lost")).count += n

    def merge(self, other: SkipReport) -> None:
        """Add another report's counts and first places (of the same file)."""
        for reason, o in other.reasons.items():
            r = self.reasons.setdefault(reason, Reason(kind=o.kind))
            r.count += o.count
            r.bytes += o.bytes
            r.located += o.located
            r.places.extend(o.places[: EXAMPLES - len(r.places)])

    @property
    def counts(self) -> dict[str, int]:
        """Units per reason (reason -> count)."""
        return {k: r.count for k, r in self.reasons.items()}

    @property
    def total(self) -> int:
        """Units skipped by the readers (not counting those missing from the file or lost by the logger)."""
        return sum(r.count for r in self.reasons.values() if r.kind == "skipped")

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.reasons.values())

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def __getitem__(self, reason: str) -> int:
        r = self.reasons.get(reason)
        return r.count if r is not None else 0

    def line(self) -> str:
        """One line: the file, then per reason the count, bytes and first places (``and N more``)."""
        parts = []
        for kind, lead in _LEADS.items():
            groups = [_group(k, r) for k, r in self.reasons.items() if r.kind == kind]
            if groups:
                parts.append(lead + "; ".join(groups))
        return f"{self.file}: " + "; ".join(parts)

    def publish(self) -> SkipReport:
        """Report once (a second call does nothing): one warning record and every active :func:`collect`."""
        if self.published:
            return self
        self.published = True
        with _SINKS_LOCK:
            for sink in _SINKS:
                sink.append(self)
        if self.reasons:
            log.warning(self.line(), extra={"skip_report": self})
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.publish()


_LEADS = {"skipped": "skipped ", "missing": "missing ", "lost": "the logger reports "}


def _group(reason: str, r: Reason) -> str:
    """``3 damaged record(s): 120 byte(s) at 0x58 (caplen 9), 0x90 and 1 more`` (or ``lines 3, 8``)."""
    inside = []
    if r.bytes:
        inside.append(f"{r.bytes:,} byte(s)")
    if r.places:
        lines = all(p.offset is None and p.line is not None for p in r.places)
        where = ", ".join(p.where() for p in r.places)
        more = f" and {r.located - len(r.places):,} more" if r.located > len(r.places) else ""
        prefix = "lines " if lines else "at " if any(p.offset is not None for p in r.places) else ""
        inside.append(f"{prefix}{where}{more}")
    return f"{r.count:,} {reason}" + (": " + " ".join(inside) if inside else "")


def report_for(path: str | os.PathLike) -> SkipReport:
    """An empty report for a file (its path as given)."""
    return SkipReport(os.fspath(path))


_SINKS: list[list[SkipReport]] = []  # one per active collect(), in any thread (readers may run in polars')
_SINKS_LOCK = threading.Lock()


@contextmanager
def collect() -> Iterator[list[SkipReport]]:
    """The reports published while the block runs (one per file read, empty ones included; by any
    thread, as polars runs a lazy scan's reader in its own): ``with collect() as reports: read_frames(path)``."""
    sink: list[SkipReport] = []
    with _SINKS_LOCK:
        _SINKS.append(sink)
    try:
        yield sink
    finally:
        with _SINKS_LOCK:
            _SINKS.remove(sink)


#: :func:`collect` under the name the ``etwtools`` package exports.
skip_reports = collect
