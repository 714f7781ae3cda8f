"""Types of the C accelerator ``_speedups.c`` (the ETL record walk and LZ77 decompression)."""

import numpy as np
from typing_extensions import Buffer

def lzxpress_decompress(src: Buffer, out_size: int, partial: bool = False, /) -> bytes: ...
def lzxpress_decompress_into(src: Buffer, out: Buffer, at: int, out_size: int, /) -> int: ...
def lzxpress_decompress_many(
    srcs: list[Buffer], out: Buffer, at: np.ndarray, sizes: np.ndarray, /
) -> list[tuple[int, str]]: ...
def walk(
    data: Buffer | np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    offsets: np.ndarray,
    sizes: np.ndarray,
    hdrs: np.ndarray,
    /,
) -> tuple[int, list[tuple[int, int, int, int, int]]]: ...
def walk_select(
    data: Buffer | np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    offsets: np.ndarray,
    sizes: np.ndarray,
    hdrs: np.ndarray,
    kinds: Buffer | np.ndarray,
    groups: Buffer,
    guids: Buffer,
    raw_anchor: int,
    lo: int,
    hi: int,
    index: np.ndarray,
    /,
) -> tuple[int, int, int, list[tuple[int, int, int, int, int]]]: ...
def lay_out(
    out: Buffer, parts: list[memoryview | None], starts: np.ndarray, ends: np.ndarray, stop: int, /
) -> None: ...
def pack(
    data: Buffer | np.ndarray, offsets: np.ndarray, sizes: np.ndarray, out: Buffer, out_offsets: np.ndarray, /
) -> int: ...
def select(
    data: Buffer | np.ndarray,
    offsets: np.ndarray,
    kinds: Buffer | np.ndarray,
    groups: Buffer,
    guids: Buffer,
    raw_anchor: int,
    lo: int,
    hi: int,
    out: np.ndarray,
    /,
) -> tuple[int, int]: ...
