"""tracerpt / tracedmp CSV dumps of the NT Kernel Logger: TcpIp/UdpIp events and Process lines.

Two layouts, with or without their header line, with tracerpt's padding spaces:

* Windows 2000/2003 ``dumpfile.csv`` (tracedmp, old tracerpt)::

      Event Name, Type, TID, Clock-Time, Kernel(ms), User(ms), User Data..., IID, PIID

  User data starts at column 7; the last two columns are IID and PIID, not user data.
* Vista+ ``tracerpt -of CSV``: 19 fixed columns, then user data from the 20th column (the header's
  20th name is ``User Data``)::

      Event Name, Type, Event ID, Version, Channel, Level, Opcode, Task, Keyword, PID, TID,
      Processor Number, Instance ID, Parent Instance ID, Activity ID, Related Activity ID,
      Clock-Time, Kernel(ms), User(ms), User Data...

  When a header line is present its column names decide where Version, Opcode, Clock-Time and User
  Data are; without one the layout is told from the data (a FILETIME-sized integer in column 4 for
  2003, in column 17 for Vista+).

Clock-Time is a FILETIME (100 ns since 1601, UTC). Addresses are zero-padded dotted quads with
DECIMAL octets (``010.001.001.001`` is 10.1.1.1) or IPv6 text.

Which payload version a network line is (the rule, from the number of user-data fields ``n``):

* TcpIp, ``n == 6`` and the first field is an address: v0 (daddr, saddr, dport, sport, size, PID).
* TcpIp, ``n`` in 8 (Recv, Disconnect, ...), 10 (Send: + startime, endtime) or 15 (Connect/Accept:
  + mss .. sndwinscale): v1 or v2, which have the same fields in the same places except the last two:
  v1 ends ``connid, seqnum``, v2 ends ``seqnum, connid``. The header's Version column decides when
  the line has one; without it, the 2003 layout means v1 and the Vista+ layout means v2 (the kernel
  that Vista+ tracerpt runs on writes v2).
* UdpIp, ``n == 7`` and the first field is a pointer (``0x...``): v0 (context, saddr, sport, size,
  daddr, dport, dsize; no PID). ``n == 6``: v1 (PID, size, daddr, saddr, dport, sport).
  ``n == 8``: v2 (v1 then seqnum, connid).
* ``n == 2`` (Proto, FailureCode): a Fail event without endpoints; counted in ``ignored``.
* Anything else is malformed: counted in the file's skip report (kind, first line numbers, count)
  and left out.

Process lines (Start/End/DCStart/DCEnd; payload v0..v4 and later versions told by the Version
column, or by the number of fields without one) fill :attr:`TracerptTrace.processes` and the ``process`` column of the events. All other
lines are counted in :attr:`TracerptTrace.ignored` by event name.

The file is read a chunk of whole lines at a time (:data:`CHUNK_SIZE` bytes; UTF-16 is re-encoded
and lone-CR line ends, as old Mac tools write them, become LF on the way), so the memory a read
needs is its output plus a few chunks. Each chunk is split into fields by polars' CSV reader (the
first 48 fields of each line; quotes are not interpreted there) and its network lines are decoded
with vectorized polars expressions (only the columns they use; text converted and dropped early),
never a Python loop per line; the next chunk is split in a worker thread meanwhile. Only Process
lines (a few hundred in a trace; found by a byte search, checked against the CSV reader's count)
go through Python's csv module, because their strings may be quoted and hold commas. Lines that
are not CSV text at all (junk past the first 64 KiB, which is checked for binary data up front)
are reported as malformed.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import diagnostics
from .addresses import dotted_quad_text, text_address_map
from .diagnostics import SkipReport, report_for
from .errors import TextFormatError
from .etl.kernel import TCP_EVENTS
from .lifetimes import process_at, process_instances
from .schema import EVENTS, PROCESSES, conform, empty
from .units import FILETIME_UNIX_EPOCH, MAX_T100, Progress

#: PIDs, parent PIDs and session ids are u32.
MAX_U32 = 2**32 - 1

NETWORK_PROVIDERS = {"tcpip": "TcpIp", "udpip": "UdpIp"}
PROCESS_TYPES = {"start": "Start", "end": "End", "dcstart": "DCStart", "dcend": "DCEnd"}

#: TcpIp/UdpIp opcodes -> event names (IPv6 forms are opcode + 16): the kernel's, as the ETL reader names them.
OPCODES = TCP_EVENTS
_CANONICAL = {name.lower(): name for name in OPCODES.values()}

#: Payload layouts: user-data index of each field (negative: from the end); None when absent.
_V1 = {"pid": 0, "size": 1, "daddr": 2, "saddr": 3, "dport": 4, "sport": 5}
LAYOUTS: dict[str, dict[str, int | None]] = {
    "tcp_v0": {
        "daddr": 0,
        "saddr": 1,
        "dport": 2,
        "sport": 3,
        "size": 4,
        "pid": 5,
        "connid": None,
        "seqnum": None,
    },
    "tcp_v1": {**_V1, "connid": -2, "seqnum": -1},
    "tcp_v2": {**_V1, "seqnum": -2, "connid": -1},
    "udp_v0": {
        "saddr": 1,
        "sport": 2,
        "size": 3,
        "daddr": 4,
        "dport": 5,
        "pid": None,
        "connid": None,
        "seqnum": None,
    },
    "udp_v1": {**_V1, "connid": None, "seqnum": None},
    "udp_v2": {**_V1, "seqnum": 6, "connid": 7},
}

#: Process payloads: version -> (field count, PID, parent PID, session, SID, image, command line).
#: v3: UniqueProcessKey, ProcessId, ParentId, SessionId, ExitStatus, DirectoryTableBase, UserSID,
#: ImageFileName, CommandLine; v4 adds Flags before UserSID and PackageFullName, ApplicationId after
#: CommandLine; later versions append fields after those (v5's Defunct: ExitTime), so a line whose
#: Version column says 4 or more is read with v4's positions whatever its length (12 or more fields).
#: Without a usable Version column the number of fields tells the version.
PROCESS_LAYOUTS = {
    0: (4, 0, 1, None, 2, 3, None),
    1: (7, 1, 2, 3, 5, 6, None),
    2: (8, 1, 2, 3, 5, 6, 7),
    3: (9, 1, 2, 3, 6, 7, 8),
    4: (12, 1, 2, 3, 7, 8, 9),
}
_PROCESS_BY_COUNT = {spec[0]: version for version, spec in PROCESS_LAYOUTS.items()}

_MAX_COLUMNS = 48  # fields read per line; Process command lines past that are cut
_MAX_USER_FIELDS = 15  # the longest network payload (TcpIp Connect/Accept v1/v2)
_MAX_FIXED = 8  # user-data fields picked by position from the start (the rest from the end)
_FIELDS = ("pid", "size", "daddr", "saddr", "dport", "sport", "connid", "seqnum")
_FILETIME_RE = r"^\d{15,19}$"
_SAMPLE_LINES = 200
_SHOW_LINES = 5
#: Bytes of whole lines read and parsed at a time (bounds the memory a read needs besides its output).
CHUNK_SIZE = 16 << 20


@dataclass
class TracerptTrace:
    """What a tracerpt CSV holds: network events, processes, the malformed lines skipped (``skipped``,
    published as the file was read) and the lines of other events left out (``ignored``: event -> lines)."""

    events: pl.DataFrame
    processes: pl.DataFrame
    skipped: SkipReport = field(default_factory=lambda: SkipReport(""))
    ignored: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Layout:
    """Where things are in one file's lines (0-based column indexes)."""

    vista: bool
    clock: int
    user_data: int
    version: int | None
    opcode: int | None
    trailing: int  # columns after the user data (IID, PIID in the 2003 layout)


# ----------------------------------------------------------------------------------------- text


def decode_text(data: bytes, path: str | os.PathLike) -> str:
    """Decode a text dump (UTF-8/UTF-16 with or without BOM, else cp1252); binary data is an error."""
    if data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    elif len(data) >= 4 and data[1] == 0 and data[3] == 0 and data[0] != 0:
        text = data.decode("utf-16-le", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    bad = re.search(r"[\x00-\x08\x0e-\x1a\x1c-\x1f]", text[:65536])
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise TextFormatError(
            f"binary data (control byte {ord(bad.group()):#04x}), not a text dump", path=path, line=line
        )
    return text


def looks_like_tracerpt(head: bytes) -> bool:
    """True when the first bytes of a file look like a tracerpt/tracedmp CSV dump."""
    try:
        text = decode_text(head, "<head>")
    except TextFormatError:
        return False
    for raw in text.splitlines()[:20]:
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if fields[0].lower() == "event name" and any(f.lower() == "clock-time" for f in fields):
            return True
        plausible = len(fields) >= 8 and re.match(r"^[A-Za-z][\w-]*$", fields[0])
        return bool(
            plausible
            and (
                re.match(_FILETIME_RE, fields[3])
                or (len(fields) >= 19 and re.match(_FILETIME_RE, fields[16]))
            )
        )
    return False


# --------------------------------------------------------------------------------------- layout


def _header_layout(names: list[str]) -> _Layout | None:
    low = [n.strip().lower() for n in names]
    if not low or low[0] != "event name" or "clock-time" not in low:
        return None
    clock = low.index("clock-time")
    user_data = low.index("user data") if "user data" in low else clock + 3
    vista = "event id" in low or "version" in low
    return _Layout(
        vista=vista,
        clock=clock,
        user_data=user_data,
        version=low.index("version") if "version" in low else None,
        opcode=low.index("opcode") if "opcode" in low else None,
        trailing=0 if vista else 2,
    )


def _data_layout(sample: list[str]) -> _Layout | None:
    vista = old = 0
    for line in sample:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 20 and re.match(_FILETIME_RE, fields[16]) and re.match(r"^\d{1,3}$", fields[3]):
            vista += 1
        elif len(fields) >= 6 and re.match(_FILETIME_RE, fields[3]):
            old += 1
    if vista == old == 0:
        return None
    if vista > old:
        return _Layout(vista=True, clock=16, user_data=19, version=3, opcode=6, trailing=0)
    return _Layout(vista=False, clock=3, user_data=6, version=None, opcode=None, trailing=2)


# ------------------------------------------------------------------------------------ helpers


def _int(expr: pl.Expr, dtype: type[pl.Int64 | pl.UInt64] = pl.Int64) -> pl.Expr:
    """Decimal or 0x-hex text -> integer (null when not a number or out of range)."""
    hexa = expr.str.starts_with("0x") | expr.str.starts_with("0X")
    digits = pl.when(hexa).then(expr.str.slice(2)).otherwise(expr)
    return digits.str.to_integer(base=pl.when(hexa).then(16).otherwise(10), dtype=dtype, strict=False)


def _ipv4(s: pl.Series) -> pl.Series:
    """:func:`dotted_quad_text`, computed once per distinct value when values repeat (they do in traces)."""
    sample = s.head(20_000)
    if sample.n_unique() * 4 >= len(sample):  # mostly distinct: convert every value
        return dotted_quad_text(s)
    distinct = s.unique()
    return s.replace_strict(distinct, dotted_quad_text(distinct), default=None, return_dtype=pl.Utf8)


def _with_ipv6(df: pl.DataFrame, raw: str, col: str) -> pl.DataFrame:
    """Fill ``col`` for rows whose ``raw`` address is IPv6 text (few distinct values: mapped in Python)."""
    v6 = df[raw].str.contains(":", literal=True).fill_null(False)
    if not v6.any():
        return df
    values = df[raw].filter(v6)
    mapped = values.replace_strict(text_address_map(values), default=None, return_dtype=pl.Utf8)
    return df.with_columns(df[col].scatter(v6.arg_true(), mapped))


def _malformed(report: SkipReport, kind: str, lines: pl.Series | list[int], count: int | None = None) -> None:
    """Count malformed lines of one kind (``lines``: their line numbers, the first ones at least)."""
    first = lines.head(_SHOW_LINES).to_list() if isinstance(lines, pl.Series) else lines[:_SHOW_LINES]
    report.add_lines(f"malformed line(s) ({kind})", first, len(lines) if count is None else count)


# ------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class _Source:
    """How to turn a file's bytes into the UTF-8, LF-terminated lines polars' CSV reader takes."""

    path: Path
    size: int
    utf16: (
        str | None
    )  # codec of a UTF-16 file ("utf-16" with a BOM, else "utf-16-le"); None: bytes as they are
    cr_only: bool  # lines end in a lone CR (old Mac style): CR (and CRLF) become LF


def _source(path: Path) -> _Source:
    """Check the start of the file (readable, not empty, not binary) and tell its encoding and line ends."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise TextFormatError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if not head or (size <= len(head) and not head.strip()):
        raise TextFormatError("empty file: no tracerpt lines", path=path, line=1)
    text = decode_text(head, path)  # binary junk -> TextFormatError with its line
    utf16 = None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        utf16 = "utf-16"
    elif len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        utf16 = "utf-16-le"
    return _Source(path, size, utf16, cr_only="\r" in text and "\n" not in text)


def _chunks(src: _Source, chunk_size: int) -> Iterator[tuple[bytes, int]]:
    """The file as pieces of about ``chunk_size`` bytes of whole lines (UTF-8, LF line ends), each
    with the number of bytes of the file read so far."""
    decoder = codecs.getincrementaldecoder(src.utf16)(errors="replace") if src.utf16 else None
    carry: list[bytes] = []  # the start of a line that continues in the next read
    pending, done = b"", 0
    try:
        with open(src.path, "rb") as fh:
            while True:
                block = fh.read(chunk_size)
                done += len(block)
                last = not block
                if decoder is not None:
                    block = decoder.decode(block, final=last).encode("utf-8")
                if src.cr_only:
                    block, pending = pending + block, b""
                    if block.endswith(b"\r") and not last:  # keep a CR LF cut between two reads together
                        block, pending = block[:-1], b"\r"
                    block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                if last:
                    if any(carry) or block:
                        yield b"".join((*carry, block)), done
                    return
                cut = block.rfind(b"\n") + 1
                if cut == 0:  # no line end in this read: a very long line
                    carry.append(block)
                    continue
                piece = b"".join((*carry, memoryview(block)[:cut]))
                carry = [block[cut:]]
                del block
                yield piece, done
                del piece
    except OSError as exc:
        raise TextFormatError(f"cannot read: {exc.strerror or exc}", path=src.path) from None


def _columns(data: bytes, first_line: int, lossy: bool = False) -> pl.LazyFrame:
    """Every line of ``data`` split at commas into ``c0 .. c{_MAX_COLUMNS-1}`` (null past the end), with
    ``record`` (1-based line number in the file; ``data`` starts at line ``first_line``) and ``name``
    (the Event Name, lower case). ``lossy`` replaces bytes that are not UTF-8 (slower; used when strict
    reading fails)."""
    return (
        pl.scan_csv(
            io.BytesIO(data),
            has_header=False,
            separator=",",
            quote_char=None,
            schema={f"c{i}": pl.Utf8 for i in range(_MAX_COLUMNS)},
            truncate_ragged_lines=True,
            missing_columns="insert",
            encoding="utf8-lossy" if lossy else "utf8",
        )
        .with_row_index("record", offset=first_line)
        .with_columns(
            pl.col("c0").str.strip_chars().str.strip_chars_start("\ufeff").str.to_lowercase().alias("name")
        )
    )


def _line_count(data: bytes) -> int:
    """The lines polars' CSV reader makes of ``data`` (one per LF, and a last line without one)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _find_process_lines(data: bytes, first_line: int) -> tuple[list[int], list[str]]:
    """The Process lines of ``data`` (line numbers, text), found by a byte search instead of a CSV pass."""
    records: list[int] = []
    texts: list[str] = []
    pos, line_no, counted_to = 0, first_line, 0
    while True:
        hit = data.find(b"Process", pos)
        if hit < 0:
            break
        start = data.rfind(b"\n", 0, hit) + 1
        end = data.find(b"\n", hit)
        end = len(data) if end < 0 else end
        lead = data[start:hit].replace(b"\xef\xbb\xbf", b"").strip(b" \t")
        after = data[hit + 7 : min(end, hit + 40)].lstrip(b" \t")
        if lead == b"" and after.startswith(b","):
            line_no += data.count(b"\n", counted_to, start)
            counted_to = start
            records.append(line_no)
            texts.append(data[start:end].decode("utf-8", errors="replace").rstrip("\r"))
        pos = end if lead == b"" and after.startswith(b",") else hit + 7
    return records, texts


#: The original line (up to _MAX_COLUMNS fields) of split rows.
_LINE_TEXT = pl.concat_str(
    [pl.col(f"c{i}").fill_null("") for i in range(_MAX_COLUMNS)], separator=","
).str.strip_chars_end(",")


_NOT_BLANK = (pl.col("name") != "") | pl.col("c1").is_not_null()
_IS_NET = pl.col("name").is_in(list(NETWORK_PROVIDERS))


def _sample(chunks: Iterator[tuple[bytes, int]], path: Path) -> tuple[pl.DataFrame, list[tuple[bytes, int]]]:
    """The first _SAMPLE_LINES non-blank lines (split) and the chunks read to find them."""
    taken: list[tuple[bytes, int]] = []
    parts: list[pl.DataFrame] = []
    have = 0
    line = 1
    for data, done in chunks:
        taken.append((data, done))
        try:
            part = _columns(data, line, lossy=True).filter(_NOT_BLANK).head(_SAMPLE_LINES - have).collect()
        except pl.exceptions.PolarsError as exc:
            raise TextFormatError(
                f"cannot split into CSV fields: {str(exc).splitlines()[0]}", path=path
            ) from None
        parts.append(part)
        have += part.height
        line += _line_count(data)
        if have >= _SAMPLE_LINES:
            break
    return (pl.concat(parts) if parts else pl.DataFrame()), taken


def _replay(taken: list[tuple[bytes, int]], rest: Iterator[tuple[bytes, int]]) -> Iterator[tuple[bytes, int]]:
    """The chunks already read (let go one by one), then the rest."""
    while taken:
        yield taken.pop(0)
    yield from rest


def _split_chunk(data: bytes, first_line: int, layout: _Layout) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One chunk of lines -> (lines other than TcpIp/UdpIp counted by name, network lines parsed)."""
    for lossy in (False, True):
        lines = _columns(data, first_line, lossy)
        try:
            counts, raw = pl.collect_all(
                [
                    lines.filter(_NOT_BLANK & ~_IS_NET & (pl.col("name") != "event name"))
                    .group_by("c0", "name")
                    .agg(pl.len().alias("len"), pl.col("record").head(_SHOW_LINES)),
                    _network_fields(lines.filter(_IS_NET), layout),
                ]
            )
            return counts, raw
        except pl.exceptions.ComputeError:
            if lossy:  # not an encoding problem
                raise
    raise AssertionError("unreachable")


def _split_ahead(
    chunks: Iterator[tuple[bytes, int]], layout: _Layout
) -> Iterator[tuple[bytes, int, int, pl.DataFrame, pl.DataFrame]]:
    """(chunk, its first line number, bytes read, :func:`_split_chunk` of it) for each chunk, the next
    chunk being split in a worker thread while the caller works on the current one."""
    with ThreadPoolExecutor(1) as pool:
        ahead = None
        line = 1
        for data, done in chunks:
            job = pool.submit(_split_chunk, data, line, layout)
            if ahead is not None:
                yield ahead[0], ahead[1], ahead[2], *ahead[3].result()
            ahead = (data, line, done, job)
            line += _line_count(data)
            del data
        if ahead is not None:
            yield ahead[0], ahead[1], ahead[2], *ahead[3].result()


def _split_process_lines(src: _Source, chunk_size: int) -> pl.DataFrame:
    """The Process lines (record, text) as the CSV reader splits them: a second pass over the file."""
    parts, line = [], 1
    for data, _done in _chunks(src, chunk_size):
        for lossy in (False, True):
            try:
                parts.append(
                    _columns(data, line, lossy)
                    .filter(pl.col("name") == "process")
                    .select("record", _LINE_TEXT.alias("text"))
                    .collect()
                )
                break
            except pl.exceptions.ComputeError:
                if lossy:
                    raise
        line += _line_count(data)
    return pl.concat(parts)


def read_tracerpt(
    path: str | os.PathLike, *, progress: Progress | None = None, chunk_size: int = CHUNK_SIZE
) -> TracerptTrace:
    """Read a tracerpt/tracedmp CSV dump into events (EVENTS schema) and processes (PROCESSES).

    The file is read ``chunk_size`` bytes (of whole lines) at a time, so memory stays bounded by the
    chunk and the output. ``progress(done, total)`` is called (in bytes of the file) after each chunk.
    """
    path = Path(path)
    src = _source(path)
    size = src.size
    chunk_size = max(int(chunk_size), 1)
    chunks = _chunks(src, chunk_size)
    head, taken = _sample(chunks, path)
    if head.height == 0:
        raise TextFormatError("empty file: no tracerpt lines", path=path, line=1)
    header_rows = head.filter(pl.col("name") == "event name")
    layout = None
    if header_rows.height:
        layout = _header_layout(header_rows.head(1).select(_LINE_TEXT).item().split(","))
    if layout is None:
        layout = _data_layout(
            head.filter(pl.col("name") != "event name").select(_LINE_TEXT).to_series().to_list()
        )
    if layout is None:
        raise TextFormatError(
            "wrong columns: not a tracerpt/tracedmp CSV line "
            "(no Clock-Time column where either layout has it)",
            path=path,
            line=int(head["record"][0]),
        )
    del head, header_rows
    if progress:
        progress(0, size)

    counts_parts: list[pl.DataFrame] = []
    event_parts: list[pl.DataFrame] = []
    n_process = 0
    found_records: list[int] = []
    found_texts: list[str] = []
    net_problems = report_for(path)
    fails: dict[str, int] = {}
    try:
        for data, first_line, done, counts, raw in _split_ahead(_replay(taken, chunks), layout):
            counts_parts.append(counts)
            here = int(counts.filter(pl.col("name") == "process")["len"].sum())
            if here:
                n_process += here
                recs, texts = _find_process_lines(data, first_line)
                found_records += recs
                found_texts += texts
            del data
            event_parts.append(_network(raw, net_problems, fails))
            del raw
            if progress:
                progress(done, size)
    except pl.exceptions.PolarsError as exc:
        raise TextFormatError(
            f"cannot split into CSV fields: {str(exc).splitlines()[0]}", path=path
        ) from None

    counts = (
        pl.concat(counts_parts)
        .group_by("c0", "name", maintain_order=True)
        .agg(pl.col("len").sum(), pl.col("record").explode().head(_SHOW_LINES))
    )
    if len(found_records) == n_process:
        procs = pl.DataFrame(
            {"record": found_records, "text": found_texts}, schema={"record": pl.UInt32, "text": pl.Utf8}
        )
    else:  # the quick byte search disagrees with the CSV reader: split them
        try:
            procs = _split_process_lines(src, chunk_size)
        except pl.exceptions.PolarsError as exc:
            raise TextFormatError(
                f"cannot split into CSV fields: {str(exc).splitlines()[0]}", path=path
            ) from None

    ignored: dict[str, int] = {}
    by_name: dict[str, int] = {}
    problems = report_for(path)
    for c0, low, n, first in counts.sort("c0").iter_rows():
        if low == "process":
            continue
        name = (c0 or "").strip().lstrip("\ufeff") or "(no event name)"
        if not re.fullmatch(r"[A-Za-z][\w .:/-]{0,63}|\(no event name\)", name):
            _malformed(problems, "not a tracerpt CSV line", sorted(first), n)  # e.g. binary junk
            continue
        by_name[name] = by_name.get(name, 0) + n
    ignored.update(sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0])))
    processes, proc_ignored = _processes(procs, layout, problems)
    for k, n in proc_ignored.items():
        ignored[k] = ignored.get(k, 0) + n
    ignored.update(fails)
    problems.merge(net_problems)
    events = pl.concat(event_parts) if event_parts else empty(EVENTS)
    del event_parts
    events = _name_processes(events, processes)
    if progress:
        progress(size, size)

    problems.publish()
    if ignored:
        listed = ", ".join(f"{k} {n}" for k, n in list(ignored.items())[:8])
        diagnostics.info(
            f"{path}: skipped {sum(ignored.values())} lines that are not TcpIp/UdpIp/Process "
            f"events or carry no endpoint ({listed})"
        )
    return TracerptTrace(events=events, processes=processes, skipped=problems, ignored=ignored)


def read_tracerpt_events(path: str | os.PathLike) -> pl.DataFrame:
    """The network events of a tracerpt CSV (EVENTS schema)."""
    return read_tracerpt(path).events


def read_tracerpt_processes(path: str | os.PathLike) -> pl.DataFrame:
    """The processes of a tracerpt CSV (PROCESSES schema, source ``tracerpt``)."""
    return read_tracerpt(path).processes


# ------------------------------------------------------------------------------------ network


def _network_fields(net: pl.LazyFrame, layout: _Layout) -> pl.LazyFrame:
    """TcpIp/UdpIp lines -> one row per line with its payload layout and fields parsed (lazy, bulk)."""
    ud = layout.user_data
    # The last field's index, looking only as far as the longest payload (15 fields) and one more:
    # the CSV reader then materializes only the columns a network line can use.
    limit = min(ud + _MAX_USER_FIELDS + layout.trailing + 1, _MAX_COLUMNS)
    last = (
        pl.max_horizontal(
            [pl.when(pl.col(f"c{i}").is_not_null()).then(pl.lit(i, pl.Int32)) for i in range(ud, limit)]
        ).fill_null(ud - 1)
        - layout.trailing
    )

    def get(index: int | None) -> pl.Expr:
        if index is None or index >= _MAX_COLUMNS:
            return pl.lit(None, pl.Utf8)
        return pl.col(f"c{index}").str.strip_chars()

    def from_end(back: int) -> pl.Expr:
        # Only TcpIp v1/v2 read fields from the end: n = 8, 10 or 15.
        ends = [ud + n - 1 for n in (8, 10, 15) if ud + n - 1 < _MAX_COLUMNS]
        return pl.coalesce(
            [pl.when(pl.col("_last") == j).then(pl.col(f"c{j - back}")) for j in ends]
        ).str.strip_chars()

    f = (
        net.with_columns(last.alias("_last"))
        .select(
            "record",
            "_last",
            pl.col("name").replace_strict(NETWORK_PROVIDERS, return_dtype=pl.Utf8).alias("provider"),
            get(1).alias("type"),
            (get(layout.clock).cast(pl.Int64, strict=False) - FILETIME_UNIX_EPOCH).alias("t100"),
            get(layout.version).cast(pl.Int64, strict=False).alias("version"),
            get(layout.opcode).cast(pl.Int64, strict=False).alias("opcode"),
            *[get(ud + i).alias(f"u{i}") for i in range(_MAX_FIXED)],
            from_end(1).alias("u_2"),
            from_end(0).alias("u_1"),
        )
        .with_columns((pl.col("_last") + 1 - ud).alias("n"))
    )

    tcp = pl.col("provider") == "TcpIp"
    n = pl.col("n")
    ud0 = pl.col("u0")
    addr_first = ud0.str.contains(r"^[\d.]+$|:") & ud0.str.contains(r"[.:]")
    ver = pl.col("version").fill_null(2 if layout.vista else 1)
    f = f.with_columns(
        pl.when(n == 2)
        .then(pl.lit("fail"))
        .when(tcp & (n == 6) & addr_first)
        .then(pl.lit("tcp_v0"))
        .when(tcp & n.is_in([8, 10, 15]) & (ver <= 1))
        .then(pl.lit("tcp_v1"))
        .when(tcp & n.is_in([8, 10, 15]))
        .then(pl.lit("tcp_v2"))
        .when(~tcp & (n == 7) & ud0.str.to_lowercase().str.starts_with("0x"))
        .then(pl.lit("udp_v0"))
        .when(~tcp & (n == 6))
        .then(pl.lit("udp_v1"))
        .when(~tcp & (n == 8))
        .then(pl.lit("udp_v2"))
        .otherwise(pl.lit(None, pl.Utf8))
        .alias("layout")
    )

    def pick(key: str) -> pl.Expr:
        expr = pl.lit(None, pl.Utf8)
        for name, spec in LAYOUTS.items():
            idx = spec[key]
            if idx is not None:
                src = pl.col(f"u{idx}") if idx >= 0 else pl.col(f"u_{-idx}")
                expr = pl.when(pl.col("layout") == name).then(src).otherwise(expr)
        return expr.alias(key)

    f = f.select("record", "provider", "type", "opcode", "t100", "layout", *[pick(k) for k in _FIELDS])
    # Only the addresses stay text; the other fields are converted here, their text dropped.
    return f.select(
        "record",
        "provider",
        "type",
        "opcode",
        "t100",
        "layout",
        "saddr",
        "daddr",
        pl.col("pid").is_null().alias("no_pid"),
        _int(pl.col("pid")).alias("pid_i"),
        _int(pl.col("size")).alias("size_i"),
        _int(pl.col("dport")).alias("dport_i"),
        _int(pl.col("sport")).alias("sport_i"),
        _int(pl.col("connid"), pl.UInt64).alias("connid_i"),
        _int(pl.col("seqnum"), pl.UInt64).alias("seqnum_i"),
    )


def _network(f: pl.DataFrame, problems: SkipReport, fails: dict[str, int]) -> pl.DataFrame:
    """Parsed network lines -> EVENTS; bad lines reported by kind, Fail lines counted in ``fails``."""
    if f.height == 0:
        return empty(EVENTS)
    f = f.with_columns(_ipv4(f["saddr"]).alias("local_addr"), _ipv4(f["daddr"]).alias("remote_addr"))
    f = _with_ipv6(_with_ipv6(f, "saddr", "local_addr"), "daddr", "remote_addr")
    layout = pl.col("layout")
    good_time = pl.col("t100").is_between(0, MAX_T100).fill_null(False)
    ok_addr = pl.col("local_addr").is_not_null() & pl.col("remote_addr").is_not_null()
    ok_num = (
        (pl.col("no_pid") | pl.col("pid_i").is_between(0, MAX_U32))
        & (pl.col("size_i") >= 0)
        & pl.col("dport_i").is_between(0, 65535)
        & pl.col("sport_i").is_between(0, 65535)
    ).fill_null(False)
    problem = (
        pl.when(layout.is_null())
        .then(pl.lit("unexpected number of user-data fields for TcpIp/UdpIp"))
        .when(layout == "fail")
        .then(pl.lit("fail"))
        .when(~good_time)
        .then(pl.lit("Clock-Time is not a FILETIME"))
        .when(~ok_addr)
        .then(pl.lit("address that is not IPv4/IPv6"))
        .when(~ok_num)
        .then(pl.lit("PID, size or port that is not a number"))
    )
    f = f.with_columns(problem.alias("problem"))
    bad = f.filter(pl.col("problem").is_not_null()).select("record", "provider", "problem")
    for kind, rows in bad.group_by("problem", maintain_order=True):
        kind = kind[0]
        if kind == "fail":
            for prov, cnt in rows.group_by("provider", maintain_order=True).len().iter_rows():
                key = f"{prov} Fail (no endpoint)"
                fails[key] = fails.get(key, 0) + cnt
        else:
            _malformed(problems, kind, rows["record"])
    ev = f.filter(pl.col("problem").is_null()) if bad.height else f

    kinds = ev.select("type", "opcode").unique()
    named = [(t, o, *_event_name(t or "", o)) for t, o in kinds.iter_rows()]
    table = pl.DataFrame(
        named,
        schema={"type": pl.Utf8, "opcode": pl.Int64, "event": pl.Utf8, "v6_type": pl.Boolean},
        orient="row",
    )
    joined = ev.select("type", "opcode").join(
        table, on=["type", "opcode"], how="left", nulls_equal=True, maintain_order="left"
    )  # joined narrow: no copy of ev
    ev = ev.with_columns(joined["event"], joined["v6_type"])
    v6 = pl.col("v6_type") | pl.col("local_addr").str.contains(":", literal=True)
    out = ev.select(
        (pl.col("t100") * 100).cast(pl.Datetime("ns", "UTC")).alias("time"),
        "provider",
        "event",
        pl.when(pl.col("provider") == "TcpIp").then(pl.lit("TCP")).otherwise(pl.lit("UDP")).alias("protocol"),
        pl.when(v6).then(pl.lit(6)).otherwise(pl.lit(4)).cast(pl.Int8).alias("ip_version"),
        pl.col("pid_i").alias("pid"),
        pl.lit(None, pl.Utf8).alias("process"),
        pl.col("size_i").alias("size"),
        "local_addr",
        pl.col("sport_i").alias("local_port"),
        "remote_addr",
        pl.col("dport_i").alias("remote_port"),
        pl.col("connid_i").alias("connid"),
        pl.col("seqnum_i").alias("seqnum"),
        pl.col("record").cast(pl.Int64),
    )
    return conform(out, EVENTS)


def _event_name(typ: str, opcode: int | None) -> tuple[str, bool]:
    """Event name and IPv6-ness from the Type text (SendIPV4, Recv, 26, ...) and the Opcode column."""
    low = typ.strip().lower()
    v6 = low.endswith("ipv6") or (opcode is not None and opcode >= 26)
    base = re.sub(r"_?ipv[46]$", "", low)
    if base in _CANONICAL:
        return _CANONICAL[base], v6
    for number in (low, str(opcode) if opcode is not None else ""):
        if re.fullmatch(r"[0-9]{1,10}|0x[0-9a-f]{1,8}", number):
            code = int(number, 0)
            v6 = v6 or code >= 26
            code = code - 16 if code >= 26 else code
            if code in OPCODES:
                return OPCODES[code], v6
    return typ.strip(), v6


# ---------------------------------------------------------------------------------- processes


def _py_int(text: str) -> int:
    text = text.strip()
    return int(text, 0) if text[:2].lower() == "0x" else int(text, 10)


def _sid(text: str) -> str | None:
    text = text.strip()
    return text if re.match(r"^S-\d+(-\d+)+$", text, re.IGNORECASE) else None


def _processes(
    rows: pl.DataFrame, layout: _Layout, problems: SkipReport
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Process lines -> one row per process instance (:func:`~etwtools.parsers.lifetimes.process_instances`)."""
    skipped: dict[str, int] = {}
    events: list[dict] = []
    bad: dict[str, list[int]] = {}
    for record, text in rows.select("record", "text").iter_rows():
        try:
            fields = next(csv.reader([text], skipinitialspace=True))
        except csv.Error:  # e.g. a lone CR inside the line
            bad.setdefault("Process line that cannot be split into CSV fields", []).append(record)
            continue
        fields = [x.strip() for x in fields]
        while fields and fields[-1] == "" and len(fields) > layout.user_data:
            fields.pop()
        kind = fields[1].lower() if len(fields) > 1 else ""
        if kind not in PROCESS_TYPES:
            key = f"Process {fields[1] if len(fields) > 1 else '?'}"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        ud = fields[layout.user_data : len(fields) - layout.trailing]
        version = None
        if layout.version is not None and layout.version < len(fields):
            try:
                version = int(fields[layout.version])
            except ValueError:
                version = None
        if version is not None and version > 4 and len(ud) >= PROCESS_LAYOUTS[4][0]:
            version = 4  # later versions keep v4's fields in place and append theirs
        if version not in PROCESS_LAYOUTS or PROCESS_LAYOUTS[version][0] > len(ud):
            version = _PROCESS_BY_COUNT.get(len(ud))
        try:
            clock = int(fields[layout.clock])
        except (ValueError, IndexError):
            bad.setdefault("Process line without a FILETIME Clock-Time", []).append(record)
            continue
        if version is None:
            bad.setdefault("Process line with an unexpected number of fields", []).append(record)
            continue
        _count, i_pid, i_ppid, i_session, i_sid, i_image, i_cmd = PROCESS_LAYOUTS[version]
        try:
            pid = _py_int(ud[i_pid])
            ppid = _py_int(ud[i_ppid])
            session = _py_int(ud[i_session]) if i_session is not None else None
        except ValueError:
            bad.setdefault("Process line with a PID that is not a number", []).append(record)
            continue
        if not all(0 <= v <= MAX_U32 for v in (pid, ppid, session or 0)):
            bad.setdefault("Process line with a PID or session out of range", []).append(record)
            continue
        if not 0 <= clock - FILETIME_UNIX_EPOCH <= MAX_T100:
            bad.setdefault("Process line without a FILETIME Clock-Time", []).append(record)
            continue
        time_ns = (clock - FILETIME_UNIX_EPOCH) * 100
        ptype = PROCESS_TYPES[kind]
        known = {
            "pid": pid,
            "ppid": ppid,
            "image": ud[i_image].strip('"') or None,
            "command_line": (ud[i_cmd].strip('"') or None) if i_cmd is not None else None,
            "session": session,
            "user": _sid(ud[i_sid]),
        }
        events.append({**known, "event": ptype, "time": time_ns, "record": record})
    for kind, recs in bad.items():
        _malformed(problems, kind, recs)
    cols = ("pid", "ppid", "image", "command_line", "session", "start", "end", "user")
    instances = [{k: row[k] for k in cols} for row in process_instances(events, "tracerpt")]
    if not instances:
        return empty(PROCESSES), skipped
    df = pl.DataFrame(
        instances,
        schema_overrides={
            "start": pl.Int64,
            "end": pl.Int64,
            "session": pl.Int64,
            "command_line": pl.Utf8,
            "user": pl.Utf8,
            "image": pl.Utf8,
        },
    )
    df = df.with_columns(
        pl.col("start").cast(pl.Datetime("ns", "UTC")),
        pl.col("end").cast(pl.Datetime("ns", "UTC")),
        pl.lit("tracerpt").alias("source"),
    )
    return conform(df, PROCESSES), skipped


def _name_processes(events: pl.DataFrame, processes: pl.DataFrame) -> pl.DataFrame:
    """Fill ``process``: the image of the instance of ``pid`` alive at the event's time."""
    if events.height == 0 or processes.height == 0:
        return events
    return events.with_columns(
        process_at(events, processes)["image"].cast(EVENTS["process"]).alias("process")
    )
