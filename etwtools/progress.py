"""A progress bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time

from .parsers.units import Progress

__all__ = ["Bar", "Progress", "bar_for"]


class Bar:
    """Redraws at most ten times a second; ``close()`` clears the line."""

    def __init__(self, label: str, stream=None, unit: str = "MB") -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        pct = 100.0 * done / total if total else 100.0
        if self.unit == "MB":
            amount = f"{done / 1e6:,.1f} of {total / 1e6:,.1f} MB"
        else:
            amount = f"{done:,} of {total:,} {self.unit}"
        self.stream.write(f"\r{self.label}: {pct:5.1f}% ({amount})")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def bar_for(label: str, enabled: bool | None = None, unit: str = "MB") -> Bar | None:
    """A Bar when stderr is a terminal (or ``enabled`` is true), else None."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return Bar(label, unit=unit) if enabled else None
