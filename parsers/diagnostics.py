"""Warnings about skipped or damaged input, reported through the ``etwtools`` logger.

Readers never drop data silently: whatever they skip is counted and reported here.
The CLI prints these records on stderr as ``warning: ...``; library users get them
through :mod:`logging` (logger name ``etwtools``).
"""

from __future__ import annotations

import logging

log = logging.getLogger("etwtools")


def warn(message: str) -> None:
    """Report something skipped or suspicious (one line, naming the file)."""
    log.warning(message)


def info(message: str) -> None:
    """Report a fact the user should see (offsets found, counts) on stderr."""
    log.info(message)
