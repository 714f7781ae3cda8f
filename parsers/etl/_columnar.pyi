"""Types of the C accelerator ``_columnar.c`` (column gathers of the bulk event decoder)."""

import numpy as np
from typing_extensions import Buffer

def fixed(data: Buffer | np.ndarray, pos: np.ndarray, width: int, out: np.ndarray, /) -> None: ...
def spans(data: Buffer | np.ndarray, start: np.ndarray, length: np.ndarray, out: np.ndarray, /) -> None: ...
def terminators(
    data: Buffer | np.ndarray, pos: np.ndarray, end: np.ndarray, unit: int, out: np.ndarray, /
) -> None: ...
def text(
    data: Buffer | np.ndarray,
    start: np.ndarray,
    length: np.ndarray,
    kind: int,
    offsets: np.ndarray,
    out: np.ndarray,
    /,
) -> int: ...
def views(
    data: Buffer | np.ndarray, start: np.ndarray, length: np.ndarray, views: np.ndarray, out: np.ndarray, /
) -> int: ...
def text_views(offsets: np.ndarray, buf: Buffer | np.ndarray, views: np.ndarray, /) -> None: ...
def headers(
    data: Buffer | np.ndarray,
    offs: np.ndarray,
    kinds: np.ndarray,
    ptrs: np.ndarray,
    groups: np.ndarray,
    message_flags: int,
    message_type: int,
    outs: tuple[np.ndarray, ...],
    /,
) -> None: ...
def type_keys(
    htype: np.ndarray,
    group: np.ndarray,
    provider: np.ndarray,
    event_id: np.ndarray,
    opcode: np.ndarray,
    version: np.ndarray,
    pointer_size: np.ndarray,
    is_eh: np.ndarray,
    out: np.ndarray,
    /,
) -> None: ...
def group(keys: np.ndarray, order: np.ndarray, uniq: np.ndarray, bounds: np.ndarray, /) -> int: ...
