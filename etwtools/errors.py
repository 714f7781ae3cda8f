"""The project's exception tree: one base class, one subclass per input family (the readers' classes
live in :mod:`etwtools.parsers.errors`), plus the application's own."""

from __future__ import annotations

from .parsers.errors import CaptureError, EtlError, EtwToolsError, EventLogError, TextFormatError

__all__ = [
    "AttributionError",
    "CaptureError",
    "EtlError",
    "EtwToolsError",
    "EventLogError",
    "MissingInputError",
    "TextFormatError",
]


class AttributionError(EtwToolsError):
    """Inputs that cannot be joined (nothing in common, no clock offset, ...)."""


class MissingInputError(EtwToolsError):
    """The files given cannot answer the question: one more is needed (the CLI reports a usage error)."""
