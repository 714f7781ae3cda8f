"""Compressed inputs (.gz, .zip, .etl.zip): extracted to a temporary folder under a size budget.

The readers map their input and read it more than once, so a compressed file is decompressed to a real file
first, streaming, and never beyond a budget (a small file can claim, or hold, terabytes). A zip holding
several files needs ``archive.zip:member``.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import zipfile
import zlib
from pathlib import Path

from .errors import EtwToolsError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
#: Default budget: this many times the compressed size, at least MIN_BUDGET; $ETWTOOLS_EXTRACT_LIMIT (bytes) wins.
RATIO = 200
MIN_BUDGET = 1 << 30
_CHUNK = 1 << 20


def sniff(head: bytes) -> str | None:
    """``gzip`` or ``zip`` from a file's first bytes, else None."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    return None


def split_member(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``archive.zip:member`` -> (archive.zip, member); any other existing path -> (path, None)."""
    text = os.fspath(spec)
    if os.path.exists(text):
        return Path(text), None
    m = re.match(r"(?is)(.+?\.zip):(.+)$", text)
    if m and os.path.isfile(m.group(1)):
        return Path(m.group(1)), m.group(2)
    return Path(text), None


def budget_for(path: str | os.PathLike) -> int:
    """How many bytes ``path`` may decompress to."""
    env = os.environ.get("ETWTOOLS_EXTRACT_LIMIT")
    if env and env.isdigit():
        return int(env)
    return max(MIN_BUDGET, RATIO * os.path.getsize(path))


def _too_big(path: Path, budget: int, member: str | None = None) -> EtwToolsError:
    what = f"member {member!r} " if member else ""
    return EtwToolsError(
        f"{what}decompresses to more than {budget / 1e9:,.1f} GB: refused (a decompression bomb?); "
        "if it is genuine, extract it yourself or set ETWTOOLS_EXTRACT_LIMIT (bytes)",
        path=path,
    )


def _copy(src, dst: Path, path: Path, budget: int, member: str | None) -> None:
    done = 0
    try:
        with open(dst, "wb") as out:
            while chunk := src.read(_CHUNK):
                done += len(chunk)
                if done > budget:
                    raise _too_big(path, budget, member)
                out.write(chunk)
    except EtwToolsError:
        dst.unlink(missing_ok=True)
        raise
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
        dst.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None:
            raise EtwToolsError(
                f"cannot extract to {dst.parent}: {e.strerror} (set TMPDIR to a folder with room)", path=path
            ) from None
        raise EtwToolsError(
            f"damaged compressed data{' in ' + repr(member) if member else ''} after {done:,} bytes: {e}",
            path=path,
        ) from None


def _pick(z: zipfile.ZipFile, path: Path, member: str | None) -> zipfile.ZipInfo:
    files = [i for i in z.infolist() if not i.is_dir()]
    names = [i.filename for i in files]
    listing = ", ".join(names[:12]) + (f", ... ({len(names):,} in all)" if len(names) > 12 else "")
    if member is not None:
        hits = [i for i in files if i.filename == member] or [
            i for i in files if Path(i.filename).name == member
        ]
        if len(hits) != 1:
            raise EtwToolsError(
                f"no member {member!r} in this zip; it holds: {listing or 'nothing'}", path=path
            )
        return hits[0]
    if not files:
        raise EtwToolsError("empty zip archive", path=path)
    if len(files) > 1:
        raise EtwToolsError(
            f"zip archive with {len(files):,} files: name one as {path}:MEMBER, e.g. "
            + " or ".join(f"{path}:{n}" for n in names[:3])
            + f" (it holds: {listing})",
            path=path,
        )
    return files[0]


def extract(
    path: str | os.PathLike, dest: str | os.PathLike, member: str | None = None, budget: int | None = None
) -> Path:
    """Decompress ``path`` (gzip, or one member of a zip) into the folder ``dest``; the new file's path."""
    path, dest = Path(path), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    budget = budget_for(path) if budget is None else budget
    try:
        with open(path, "rb") as f:
            kind = sniff(f.read(8))
    except OSError as e:
        raise EtwToolsError(f"cannot read: {e.strerror}", path=path) from None
    if kind == "gzip":
        name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name + ".out"
        dst = dest / (name or "input")
        with gzip.open(path, "rb") as src:
            _copy(src, dst, path, budget, None)
        return dst
    if kind != "zip":
        raise EtwToolsError("not a gzip or zip file", path=path, offset=0)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise EtwToolsError(f"damaged zip archive: {e}", path=path) from None
    with z:
        info = _pick(z, path, member)
        if info.flag_bits & 0x1:
            raise EtwToolsError(f"member {info.filename!r} is encrypted: extract it first", path=path)
        dst = dest / (Path(info.filename).name or "member")
        try:
            src = z.open(info)
        except NotImplementedError as e:
            raise EtwToolsError(f"member {info.filename!r}: {e}: extract it first", path=path) from None
        with src:
            _copy(src, dst, path, budget, info.filename)
    return dst


def peek(path: str | os.PathLike, n: int = 65536) -> bytes | None:
    """The first ``n`` decompressed bytes of a .gz, or of a zip's only member; None when not readable so."""
    try:
        with open(path, "rb") as f:
            kind = sniff(f.read(8))
        if kind == "gzip":
            with gzip.open(path, "rb") as g:
                return g.read(n)
        if kind == "zip":
            with zipfile.ZipFile(path) as z:
                files = [i for i in z.infolist() if not i.is_dir()]
                if len(files) == 1 and not files[0].flag_bits & 0x1:
                    with z.open(files[0]) as m:
                        return m.read(n)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError):
        return None
    return None


def members(path: str | os.PathLike) -> list[str]:
    """The file names a .gz or .zip holds (a .gz: its name without .gz); [] when unreadable."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            kind = sniff(f.read(8))
        if kind == "gzip":
            return [path.name[:-3] if path.name.lower().endswith(".gz") else path.name]
        if kind == "zip":
            with zipfile.ZipFile(path) as z:
                return [i.filename for i in z.infolist() if not i.is_dir()]
    except (OSError, zipfile.BadZipFile):
        return []
    return []


def cleanup(folder: str | os.PathLike) -> None:
    """Remove a folder of extracted inputs."""
    shutil.rmtree(folder, ignore_errors=True)
