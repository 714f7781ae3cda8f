"""The C and pure-Python Xpress (MS-XCA plain LZ77) decoders accept and reject the same streams and give
the same bytes: random streams, mutations of real compressed buffers of the corpus, and streams built
here (a hypothesis search over each)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etwtools.parsers.etl import compression

pytestmark = pytest.mark.skipif(not compression.HAVE_C, reason="the C accelerator is not built")


def into(src: bytes, size: int, partial: bool = False) -> bytes:
    """The C decoder writing into a larger buffer at an offset (what the ETL reader does): the bytes
    around the output stay as they were."""
    buf = bytearray(b"\xaa" * (size + 24))
    compression.decompress_into(src, buf, 8, size)
    assert buf[:8] == b"\xaa" * 8 and buf[8 + size :] == b"\xaa" * 16
    return bytes(buf[8 : 8 + size])


def both(src: bytes, size: int, partial: bool = False):
    """(result or error text) of each decoder (and, for whole outputs, of decoding into a buffer: the
    same as the C decoder's)."""
    out = []
    for f in (compression.decompress_c, compression.decompress_py):
        try:
            out.append(f(src, size, partial))
        except compression.DecompressionError as e:
            out.append(("error", str(e)))
    if not partial:
        try:
            assert into(src, size) == out[0]
        except compression.DecompressionError as e:
            assert ("error", str(e)) == out[0]
    return out


def tokens_stream(tokens: list[tuple[int, int]]) -> bytes:
    """A stream from (kind, value) tokens: kind 0 a literal byte, kind 1 a match word (offset, length
    bits as the format packs them), kind 2 a raw byte (the extra length bytes)."""
    out, flags, body, n = bytearray(), 0, bytearray(), 0
    for kind, value in tokens:
        if kind == 2:
            body.append(value & 0xFF)
            continue
        if n == 32:
            out += struct.pack("<I", flags) + body
            flags, body, n = 0, bytearray(), 0
        flags |= (kind & 1) << (31 - n)
        n += 1
        body += bytes([value & 0xFF]) if kind == 0 else struct.pack("<H", value & 0xFFFF)
    return bytes(out + struct.pack("<I", flags) + body)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 4000), st.booleans())
def test_random_streams_decode_alike(src, size, partial):
    c, py = both(src, size, partial)
    assert c == py


token = st.one_of(
    st.tuples(st.just(0), st.integers(0, 255)),
    st.tuples(st.just(1), st.integers(0, 0xFFFF)),
    st.tuples(st.just(2), st.integers(0, 255)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(token, max_size=80), st.integers(0, 3000), st.booleans())
def test_token_streams_decode_alike(tokens, size, partial):
    src = tokens_stream(tokens)
    c, py = both(src, size, partial)
    assert c == py


def _corpus_buffers(corpus, limit=6):
    from etwtools.parsers.etl.container import FLAG_COMPRESSED, EtlFile

    out = []
    with EtlFile(corpus / "pktmon" / "demikernel-PktMon.etl") as f:
        mm, off = f._mm, 0
        while off + 0x48 <= f.size and len(out) < limit:
            (bsize,) = struct.unpack_from("<I", mm, off)
            filled, flag = struct.unpack_from("<IH", mm, off + 0x30)
            if bsize < 0x48:
                break
            if flag & FLAG_COMPRESSED:
                out.append((bytes(mm[off + 0x48 : off + bsize]), filled - 0x48))
            off += bsize
    return out


def test_mutated_real_buffers_decode_alike(corpus):
    import random

    rng = random.Random(10)
    bufs = _corpus_buffers(corpus)
    assert bufs, "the pktmon ETL of the corpus has compressed buffers"
    for src, size in bufs:
        assert compression.decompress_c(src, size) == compression.decompress_py(src, size)
        for _ in range(40):
            m = bytearray(src)
            for _ in range(rng.randint(1, 4)):
                m[rng.randrange(len(m))] = rng.randrange(256)
            cut = rng.choice([len(m), rng.randrange(len(m) + 1)])
            c, py = both(bytes(m[:cut]), size)
            assert c == py
            c, py = both(bytes(m[:cut]), 4096, True)
            assert c == py


def test_partial_gives_the_prefix_of_the_whole(corpus):
    for src, size in _corpus_buffers(corpus, 2):
        whole = compression.decompress(src, size)
        for n in (0, 1, 100, 4096):
            assert (
                compression.decompress_c(src, n, True) == whole[:n] == compression.decompress_py(src, n, True)
            )


def test_many_buffers_in_one_call_decode_as_one_at_a_time(corpus, monkeypatch):
    """``decompress_many`` (one C call for a batch's buffers) writes each buffer where it is asked and lists
    the failures with the reasons one call per buffer gives; the pure-Python fallback says the same."""
    import random

    rng = random.Random(3)
    good = _corpus_buffers(corpus, 6)
    srcs, sizes = [], []
    for i, (src, size) in enumerate(good * 2):
        if i % 4 == 3:  # mutated: some fail, some decode to other bytes
            m = bytearray(src)
            m[rng.randrange(len(m))] ^= 0xFF
            src = bytes(m[: rng.randrange(len(m) + 1)])
        srcs.append(src)
        sizes.append(size)
    at = [sum(sizes[:i]) + 8 * i for i in range(len(sizes))]
    expected, fails = bytearray(b"\xaa" * (at[-1] + sizes[-1] + 8)), []
    for i, src in enumerate(srcs):
        try:
            compression.decompress_into(src, expected, at[i], sizes[i])
        except compression.DecompressionError as e:
            fails.append((i, str(e)))
    assert fails and len(fails) < len(srcs)
    got = bytearray(b"\xaa" * len(expected))
    assert compression.decompress_many(srcs, got, at, sizes) == fails
    assert got == expected
    monkeypatch.setattr(compression, "_speedups", None)
    py = bytearray(b"\xaa" * len(expected))
    assert [i for i, _ in compression.decompress_many(srcs, py, at, sizes)] == [i for i, _ in fails]
    ok = [i for i in range(len(srcs)) if i not in dict(fails)]
    assert all(py[at[i] : at[i] + sizes[i]] == got[at[i] : at[i] + sizes[i]] for i in ok)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="outside the output"):
        compression.decompress_many(srcs[:1], bytearray(10), [0], [sizes[0]])
