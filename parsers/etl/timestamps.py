"""Conversion of raw ETL event timestamps to UTC nanoseconds, anchored as PerfView does.

filetime = StartTime + scale * (raw - raw_of_header_event), where the scale follows the clock type
(TRACE_LOGFILE_HEADER.ReservedFlags): 1 QPC (1e7 / PerfFreq), 2 system time (1), 3 CPU cycles
(10 / CpuSpeedInMHz). Everything is integer arithmetic: no float rounding, no int64 overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..units import FILETIME_MAX_NS, FILETIME_UNIX_EPOCH, NS_PER_S, filetime_to_ns
from .structs import CLOCK_CPU_CYCLES, CLOCK_QPC, CLOCK_SYSTEM_TIME

_U64 = 2**64 - 1

CLOCK_NAMES = {CLOCK_QPC: "QPC", CLOCK_SYSTEM_TIME: "system time", CLOCK_CPU_CYCLES: "CPU cycles"}


@dataclass(frozen=True)
class Clock:
    """The time base of one file: ``ticks_per_second`` raw ticks, ``raw_anchor`` is UTC ``anchor_ns``."""

    clock_type: int
    ticks_per_second: int
    raw_anchor: int
    anchor_ns: int

    @classmethod
    def from_header(
        cls, clock_type: int, perf_freq: int, cpu_speed_mhz: int, start_time: int, raw_anchor: int
    ) -> Clock:
        """The clock of a logfile header; ValueError when its clock type or frequency is unusable."""
        if clock_type == CLOCK_QPC:
            tps = int(perf_freq)
        elif clock_type == CLOCK_SYSTEM_TIME:
            tps = 10_000_000
        elif clock_type == CLOCK_CPU_CYCLES:
            tps = int(cpu_speed_mhz) * 1_000_000
        else:
            raise ValueError(f"unknown clock type {clock_type} (expected 1 QPC, 2 system time, 3 CPU cycles)")
        if tps <= 0 or tps > 1 << 40:
            raise ValueError(f"unusable {CLOCK_NAMES[clock_type]} frequency {tps} Hz")
        if not FILETIME_UNIX_EPOCH <= start_time <= FILETIME_MAX_NS:
            raise ValueError(f"start time {start_time:#x} is not a FILETIME between 1970 and 2262")
        return cls(clock_type, tps, int(raw_anchor), filetime_to_ns(start_time))

    def to_ns(self, raw: np.ndarray) -> np.ndarray:
        """UTC ns (int64) of raw timestamps (any integer array)."""
        # raw values are u64: the difference wraps modulo 2^64 and is read as a signed delta
        d = (np.asarray(raw).astype(np.uint64) - np.uint64(self.raw_anchor & _U64)).view(np.int64)
        f = np.int64(self.ticks_per_second)
        q, r = np.divmod(d, f)  # r in [0, f)
        # r * 1e9 fits int64 while f < 9.2e9 Hz; split further above that (f <= 2^40).
        if self.ticks_per_second < 9_000_000_000:
            frac = (r * np.int64(NS_PER_S)) // f
        else:
            frac = (r * np.int64(1000) // f) * np.int64(1_000_000) + (
                (r * np.int64(1000) % f) * np.int64(1_000_000)
            ) // f
        return np.int64(self.anchor_ns) + q * np.int64(NS_PER_S) + frac

    def outside(self, raw: np.ndarray, lo_ns: int, hi_ns: int) -> np.ndarray:
        """Which raw timestamps fall outside [lo_ns, hi_ns] (UTC ns), without the int64 wrap of :meth:`to_ns`."""
        d = (np.asarray(raw).astype(np.uint64) - np.uint64(self.raw_anchor & _U64)).view(np.int64)
        lo, hi = self.raw_bounds(lo_ns, hi_ns)
        return (d < np.int64(lo)) | (d > np.int64(hi))

    def raw_bounds(self, lo_ns: int, hi_ns: int) -> tuple[int, int]:
        """The signed raw deltas from ``raw_anchor`` (int64) of [lo_ns, hi_ns] (UTC ns), as :meth:`outside`
        compares them."""
        tps = self.ticks_per_second
        lo = max(-(2**63), (lo_ns - self.anchor_ns) * tps // NS_PER_S)
        hi = min(2**63 - 1, -((self.anchor_ns - hi_ns) * tps // NS_PER_S))
        return lo, hi

    def raw_to_ns(self, raw: int) -> int:
        """UTC ns of one raw timestamp (exact, Python ints)."""
        d = (int(raw) - self.raw_anchor + 2**63) % 2**64 - 2**63
        return self.anchor_ns + (d * NS_PER_S) // self.ticks_per_second
