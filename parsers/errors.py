"""The readers' exception tree: one base class, one subclass per input family.

Part of the parsers' leaf (it imports nothing from the rest of the project); ``etwtools.errors``
re-exports these classes and adds the application's own.
"""

from __future__ import annotations

import os


class EtwToolsError(Exception):
    """An input etwtools cannot use; the message names the file, where, and what is wrong."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        offset: int | None = None,
        line: int | None = None,
    ) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.offset = offset
        self.line = line
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.offset is not None:
            where.append(f"offset {self.offset:#x}")
        if self.line is not None:
            where.append(f"line {self.line}")
        return f"{': '.join([', '.join(where)]) + ': ' if where else ''}{self.reason}"


class EtlError(EtwToolsError):
    """A damaged or unsupported ETL file."""


class CaptureError(EtwToolsError):
    """A damaged or unsupported pcap/pcapng file."""


class TextFormatError(EtwToolsError):
    """A tracerpt CSV or tasklist text that cannot be read."""


class EventLogError(EtwToolsError):
    """A Windows event log (.evtx or JSON lines) that cannot be read."""
