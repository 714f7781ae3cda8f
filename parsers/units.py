"""Units every reader shares: Windows FILETIME time stamps, the progress callback type, path types.

Part of the parsers' leaf: it imports nothing from the rest of the project.
"""

from __future__ import annotations

import os
from collections.abc import Callable

#: A file path as the readers take it.
PathLike = str | os.PathLike

#: A reader's progress callback: (units done, units total).
Progress = Callable[[int, int], None]

NS_PER_S = 1_000_000_000

#: FILETIME (100 ns ticks since 1601-01-01 UTC) of the Unix epoch.
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000
#: Last FILETIME whose ns since 1970 fit an int64 (year 2262).
FILETIME_MAX_NS = FILETIME_UNIX_EPOCH + (2**63 - 1) // 100
#: Largest FILETIME - FILETIME_UNIX_EPOCH (100 ns ticks since 1970) whose ns fit an int64.
MAX_T100 = (2**63 - 1) // 100


def filetime_to_ns(filetime: int) -> int:
    """A FILETIME (100 ns since 1601, UTC) as ns since 1970."""
    return (int(filetime) - FILETIME_UNIX_EPOCH) * 100
