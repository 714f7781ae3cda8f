"""Types of the C accelerator ``_capwalk.c`` (the pcap and pcapng record walks; the pure-Python twins are
``pcap.walk_py`` and ``pcapng.walk_py``)."""

import numpy as np
from typing_extensions import Buffer

def pcap_walk(
    buf: Buffer | np.ndarray,
    pos: int,
    big: bool,
    maxcap: int,
    out: np.ndarray,
    windows: np.ndarray,
    window: int,
    record_header: int = 16,
    /,
) -> tuple[int, int, int]: ...
def pcapng_walk(
    buf: Buffer | np.ndarray, pos: int, big: bool, out: np.ndarray, windows: np.ndarray, window: int, /
) -> tuple[int, int, int]: ...
