""".evtx files through the ``evtx`` library (Rust): records as evtx_dump JSON, damaged chunks skipped.

The library raises once from ``next()`` for each chunk (or record run) it cannot read and then goes on
with the next chunk, so the loop catches, counts and continues. Records come in chunk order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

EVTX_MAGIC = b"ElfFile\x00"
CHUNK = 65536


def partial_tail(path: str | os.PathLike) -> int:
    """Bytes after the last whole 64 KB chunk (a file cut short): the library does not read them."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(128)
    block = int.from_bytes(head[40:42], "little") if len(head) >= 42 else 4096
    if block < 128 or block > size:
        block = 4096
    return max(size - block, 0) % CHUNK


def looks_like_evtx(head: bytes) -> bool:
    """The file header magic ``ElfFile\\0``."""
    return head.startswith(EVTX_MAGIC)


def iter_json_batches(path: str | os.PathLike, errors: list[str], batch: int = 8192) -> Iterator[bytes]:
    """The records' JSON, one per line, ``batch`` records per block; each unreadable chunk appends its
    message to ``errors`` (bounded: at most one per 64 KB chunk of the file, plus the header)."""
    import evtx

    try:
        parser = evtx.PyEvtxParser(os.fspath(path))
    except (RuntimeError, OSError) as e:
        raise ValueError(str(e)) from None
    it = parser.records_json()
    limit = os.path.getsize(path) // 65536 + 2
    lines: list[str] = []
    while True:
        try:
            r = next(it)
        except StopIteration:
            break
        except RuntimeError as e:
            errors.append(str(e))
            if len(errors) > limit:
                break
            continue
        assert r is not None  # a record (evtx's generated stub says Optional)
        lines.append(r["data"].replace("\n", " "))
        if len(lines) >= batch:
            yield ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
