"""Decompression of compressed ETL buffers: MS-XCA plain LZ77 ("Xpress").

The C accelerator (``etwtools.parsers.etl._speedups``) is used when it was built; otherwise
:func:`decompress_py`, a pure-Python decoder written step for step like the C one, so that both accept
and reject exactly the same streams and give the same bytes (tests/test_xpress.py compares them on
random and mutated streams, tests/test_etl_container.py on every compressed buffer of the corpus).

``partial=True`` decodes only the first ``out_size`` bytes of a longer stream (no error when the
stream goes on): the resynchronisation after damage looks at the start of a candidate buffer with it.
"""

from __future__ import annotations

try:  # the optional C accelerator
    from . import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None  # type: ignore[assignment]  # the accelerator is optional

HAVE_C = _speedups is not None


class DecompressionError(ValueError):
    """Compressed data that does not decode to the expected size."""


def _fail(what: str, ip: int) -> DecompressionError:
    return DecompressionError(f"malformed LZ77 data: {what} (input byte {ip})")


def decompress_py(src: bytes | memoryview, out_size: int, partial: bool = False) -> bytes:
    """Pure-Python decompression of ``src`` to exactly ``out_size`` bytes (DecompressionError otherwise)."""
    if out_size < 0:
        raise DecompressionError("negative output size")
    data = bytes(src)
    n = len(data)
    out = bytearray()
    cap = out_size
    ip = last_half = 0
    flags = flag_count = 0
    while ip < n:
        if partial and len(out) >= cap:
            break
        if flag_count == 0:
            if ip + 4 > n:
                raise _fail("truncated flag word", ip)
            flags = int.from_bytes(data[ip : ip + 4], "little")
            ip += 4
            flag_count = 32
        flag_count -= 1
        if not flags >> flag_count & 1:
            if ip >= n:
                raise _fail("truncated literal", ip)
            if len(out) >= cap:
                raise _fail("output larger than expected", ip)
            out.append(data[ip])
            ip += 1
            continue
        if ip == n:
            break  # end of stream
        if ip + 2 > n:
            raise _fail("truncated match", ip)
        match = data[ip] | data[ip + 1] << 8
        ip += 2
        length, offset = match & 7, (match >> 3) + 1
        if length == 7:
            if last_half == 0:
                if ip >= n:
                    raise _fail("truncated match length", ip)
                length = data[ip] & 15
                last_half = ip
                ip += 1
            else:
                length = data[last_half] >> 4
                last_half = 0
            if length == 15:
                if ip >= n:
                    raise _fail("truncated match length", ip)
                length = data[ip]
                ip += 1
                if length == 255:
                    if ip + 2 > n:
                        raise _fail("truncated match length", ip)
                    length = data[ip] | data[ip + 1] << 8
                    ip += 2
                    if length == 0:
                        if ip + 4 > n:
                            raise _fail("truncated match length", ip)
                        length = int.from_bytes(data[ip : ip + 4], "little")
                        ip += 4
                    if length < 15 + 7:
                        raise _fail("wrong match length", ip)
                    length -= 15 + 7
                length += 15
            length += 7
        length += 3
        op = len(out)
        if offset > op:
            raise _fail("match before the start of the output", ip)
        if length > cap - op:
            if not partial:
                raise _fail("output larger than expected", ip)
            length = cap - op
        if offset >= length:
            out += out[op - offset : op - offset + length]
        else:  # overlapping: the last `offset` bytes repeat
            piece = out[op - offset :]
            out += (piece * (length // offset + 1))[:length]
    return _checked(bytes(out), out_size, partial)


def decompress_c(src: bytes | memoryview, out_size: int, partial: bool = False) -> bytes:
    """C decompression of ``src`` to exactly ``out_size`` bytes (DecompressionError otherwise)."""
    if _speedups is None:
        raise RuntimeError("etwtools.parsers.etl._speedups is not built")
    try:
        out = _speedups.lzxpress_decompress(src, out_size, partial)
    except ValueError as exc:
        raise DecompressionError(str(exc)) from None
    return _checked(out, out_size, partial)


def _checked(out: bytes, out_size: int, partial: bool) -> bytes:
    if len(out) != out_size and not partial:
        raise DecompressionError(f"LZ77 data decodes to {len(out)} bytes, expected {out_size}")
    return out


def decompress(src: bytes | memoryview, out_size: int, partial: bool = False) -> bytes:
    """``src`` decompressed to exactly ``out_size`` bytes, with the fastest decoder available
    (``partial``: at most its first ``out_size`` bytes)."""
    if _speedups is not None:
        return decompress_c(src, out_size, partial)
    return decompress_py(src, out_size, partial)


def decompress_into(src: bytes | memoryview, out: bytearray, at: int, out_size: int) -> None:
    """``src`` decompressed into ``out[at:at + out_size]``, exactly ``out_size`` bytes (DecompressionError
    otherwise; the bytes written before the error stay)."""
    if _speedups is None:
        out[at : at + out_size] = decompress_py(src, out_size)
        return
    try:
        written = _speedups.lzxpress_decompress_into(src, out, at, out_size)
    except ValueError as exc:
        raise DecompressionError(str(exc)) from None
    if written != out_size:
        raise DecompressionError(f"LZ77 data decodes to {written} bytes, expected {out_size}")


def decompress_many(srcs: list, out: bytearray, at: list[int], sizes: list[int]) -> list[tuple[int, str]]:
    """Each ``srcs[i]`` decompressed into ``out[at[i]:at[i] + sizes[i]]`` as :func:`decompress_into` does,
    the C decoder taking them all in one call (it lets other threads run meanwhile); the failures, as
    (index, reason)."""
    if _speedups is None:
        fails = []
        for i, src in enumerate(srcs):
            try:
                decompress_into(src, out, at[i], sizes[i])
            except DecompressionError as exc:
                fails.append((i, str(exc)))
        return fails
    import numpy as np

    return _speedups.lzxpress_decompress_many(
        srcs, out, np.asarray(at, np.int64), np.asarray(sizes, np.int64)
    )
