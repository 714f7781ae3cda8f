"""Warnings about skipped or damaged input: see :mod:`etwtools.parsers.diagnostics` (re-exported)."""

from __future__ import annotations

from .parsers.diagnostics import info, log, warn

__all__ = ["info", "log", "warn"]
