"""IP address text: the one rule every reader uses to write an address.

An address is written as Wireshark and Windows write it (:func:`address_text`): IPv4 dotted decimal
without zero padding (``10.1.1.1``), IPv6 lower case with the longest run of zero groups compressed
(``fe80::1``), an IPv4-mapped IPv6 address with its IPv4 part dotted (``::ffff:10.1.1.1``, on every
Python version: :mod:`ipaddress` writes ``::ffff:a01:101`` before 3.13). Raw addresses (packet
headers, ETW payloads) keep their family: an IPv4-mapped IPv6 address in a packet stays IPv6. Address *text* (tracerpt, event logs, NIC rundowns, the command line) is
read leniently: surrounding blanks, ``[...]`` brackets and an IPv6 zone id (``%12``) are dropped and
zero-padded IPv4 octets are decimal (tracerpt writes ``010.001.001.001``); readers of logs that write
IPv4 peers as IPv4-mapped IPv6 ask for them unmapped.
"""

from __future__ import annotations

import functools
import ipaddress

import numpy as np
import polars as pl

#: Up to this many distinct IPv4 addresses are formatted in Python, above it by polars string kernels.
_FEW_ADDRESSES = 50_000
_MIX = np.uint64(0x9E3779B97F4A7C15)


def address_text(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The text of an address (the one formatter: every other function here writes through it)."""
    if a.version == 6 and a.ipv4_mapped is not None:
        return f"::ffff:{a.ipv4_mapped}"
    return str(a)


@functools.lru_cache(maxsize=1 << 16)
def packed_text(raw: bytes) -> str:
    """Text of a raw address in network byte order: 4 bytes IPv4, 16 bytes IPv6."""
    return address_text(ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw))


def ipv4_text(addrs: np.ndarray) -> pl.Series:
    """Text of IPv4 addresses given as integers (host order of the big-endian value, ``0x0A010101`` ->
    ``10.1.1.1``); bulk, one row per value."""
    if len(addrs) <= _FEW_ADDRESSES:
        return pl.Series(
            [f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}" for a in addrs.tolist()], dtype=pl.Utf8
        )
    a = pl.col("a").cast(pl.Int64)
    return (
        pl.DataFrame({"a": addrs})
        .select(
            pl.concat_str(
                [
                    (a // 16777216).cast(pl.Utf8),
                    (a // 65536 % 256).cast(pl.Utf8),
                    (a // 256 % 256).cast(pl.Utf8),
                    (a % 256).cast(pl.Utf8),
                ],
                separator=".",
            )
        )
        .to_series()
    )


def raw_text(values: np.ndarray) -> pl.Series:
    """Text of IPv4 (uint32 integers) or IPv6 ((n, 2) uint64 rows of the 16 raw bytes) addresses; each
    distinct value is formatted once."""
    if len(values) == 0:
        return pl.Series([], dtype=pl.Utf8)
    if values.ndim == 1:
        uniq, inverse = np.unique(values, return_inverse=True)
        return ipv4_text(uniq.astype(np.uint32)).gather(inverse.ravel())
    with np.errstate(over="ignore"):
        key = values[:, 0] * _MIX ^ values[:, 1]
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    reps = values[first]
    if not (reps[inverse] == values).all():  # a hash collision: exact (slower) path
        reps, inverse = np.unique(values, axis=0, return_inverse=True)
    return pl.Series([packed_text(row.tobytes()) for row in reps], dtype=pl.Utf8).gather(inverse.ravel())


def _dotted_quad(text: str) -> str | None:
    """Zero-padded decimal dotted quad (``010.001.001.001``) -> ``10.1.1.1``; None when it is not one."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    octets = [int(p, 10) for p in parts]
    return ".".join(map(str, octets)) if all(o <= 255 for o in octets) else None


def text_address(text: str | None, *, unmap: bool = False) -> str | None:
    """Canonical text of an address written as text; None when it is no address. ``unmap``: an
    IPv4-mapped IPv6 address (``::ffff:10.1.1.1``) becomes its IPv4 address."""
    if text is None:
        return None
    t = str(text).strip().strip("[]").split("%", 1)[0]
    try:
        a = ipaddress.ip_address(t)
    except ValueError:
        return _dotted_quad(t)
    if unmap and isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return address_text(a)


def dotted_quad_text(s: pl.Series) -> pl.Series:
    """Bulk :func:`text_address` for IPv4 text (zero-padded octets are decimal); null when not IPv4."""
    parts = s.str.split_exact(".", 4).struct.unnest()
    octets = [parts[f"field_{i}"].cast(pl.UInt16, strict=False) for i in range(4)]
    frame = pl.DataFrame({f"o{i}": o for i, o in enumerate(octets)}).with_columns(
        extra=parts["field_4"].is_not_null()
    )
    ok = pl.all_horizontal([pl.col(f"o{i}") <= 255 for i in range(4)]).fill_null(False) & ~pl.col("extra")
    return frame.select(
        pl.when(ok).then(pl.concat_str([pl.col(f"o{i}").cast(pl.Utf8) for i in range(4)], separator="."))
    ).to_series()


def text_address_map(values: pl.Series, *, unmap: bool = False) -> dict[str, str | None]:
    """{text: :func:`text_address` of it} over the distinct values (for ``replace_strict``)."""
    return {v: text_address(v, unmap=unmap) for v in values.drop_nulls().unique().to_list()}


def _unmapped_texts(s: pl.Series) -> pl.Series:
    texts = text_address_map(s, unmap=True)
    return s.replace_strict(
        {k: v for k, v in texts.items() if v is not None}, default=s, return_dtype=pl.Utf8
    )


def text_address_expr(expr: pl.Expr) -> pl.Expr:
    """:func:`text_address` (``unmap=True``) as a polars expression, each distinct text read once: an
    IPv4-mapped address becomes its IPv4 address; text that is no address is kept as it is."""
    return expr.map_batches(_unmapped_texts, return_dtype=pl.Utf8)


__all__ = [
    "address_text",
    "dotted_quad_text",
    "ipv4_text",
    "packed_text",
    "raw_text",
    "text_address",
    "text_address_expr",
    "text_address_map",
]
