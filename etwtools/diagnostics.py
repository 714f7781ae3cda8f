"""What the readers skipped, and other warnings: see :mod:`etwtools.parsers.diagnostics` (re-exported)."""

from __future__ import annotations

from .parsers.diagnostics import Skip, SkipReport, collect, info, log, warn

__all__ = ["Skip", "SkipReport", "collect", "info", "log", "warn"]
