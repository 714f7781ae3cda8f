"""Decompression of compressed ETL buffers: MS-XCA plain LZ77 ("Xpress").

The C accelerator (``etwtools.parsers.etl._speedups``) is used when it was built; otherwise dissect.util's
pure-Python decoder. Both give identical bytes (tests/test_etl_container.py checks every compressed
buffer of the corpus through both).
"""
from __future__ import annotations

from dissect.util.compression.lzxpress import decompress as _dissect_decompress

try:  # the optional C accelerator
    from . import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None

HAVE_C = _speedups is not None


class DecompressionError(ValueError):
    """Compressed data that does not decode to the expected size."""


def decompress_py(src: bytes | memoryview, out_size: int) -> bytes:
    """Pure-Python decompression of ``src`` to exactly ``out_size`` bytes (DecompressionError otherwise)."""
    try:
        out = _dissect_decompress(bytes(src))
    except Exception as exc:  # noqa: BLE001 - the pure decoder fails with TypeError/struct.error/ValueError on bad input
        raise DecompressionError(f"malformed LZ77 data ({type(exc).__name__}: {exc})") from None
    if len(out) != out_size:
        raise DecompressionError(f"LZ77 data decodes to {len(out)} bytes, expected {out_size}")
    return out


def decompress_c(src: bytes | memoryview, out_size: int) -> bytes:
    """C decompression of ``src`` to exactly ``out_size`` bytes (DecompressionError otherwise)."""
    if _speedups is None:
        raise RuntimeError("etwtools.parsers.etl._speedups is not built")
    try:
        out = _speedups.lzxpress_decompress(src, out_size)
    except ValueError as exc:
        raise DecompressionError(str(exc)) from None
    if len(out) != out_size:
        raise DecompressionError(f"LZ77 data decodes to {len(out)} bytes, expected {out_size}")
    return out


def decompress(src: bytes | memoryview, out_size: int) -> bytes:
    """``src`` decompressed to exactly ``out_size`` bytes, with the fastest decoder available."""
    if _speedups is not None:
        return decompress_c(src, out_size)
    return decompress_py(src, out_size)
