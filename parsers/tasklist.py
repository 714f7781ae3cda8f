"""``tasklist`` output (table, /svc, /v, /m, /fo csv, /fo list, /nh, localized) as process snapshots.

Every layout tasklist writes is read:

* tables (default, /svc, /v, /m): a header, a ``=====`` line whose runs give the column widths, and rows
  in those columns. Service and module lists wrap onto continuation lines with no image or PID.
  Columns are mapped by their English names, or by position (from the number of columns) when the
  header is localized. Rows whose whitespace was collapsed (text pasted into tickets and write-ups)
  are read by their tokens instead of by column position.
* no header (/nh, or a header that was not copied): the layout is told from the rows themselves
  (``... N K`` ends a default row; ``h:mm:ss`` CPU time marks /v; otherwise image, PID, list).
* ``/fo csv`` (quoted fields, header unless /nh) and ``/fo list`` (``Key: value`` blocks; localized
  keys are mapped by their position in the block).

Snapshots. PIDs are reused, so every row carries the snapshot it came from (``snapshot_index``) and
that snapshot's time (``snapshot``) when known. A file holds several snapshots when they are
separated by a header line or by a snapshot line that the user adds::

    # snapshot 2010-01-14 11:20:00Z

(``#``, the word ``snapshot``, then an ISO 8601 time; ``Z`` or ``+hh:mm`` give the zone, a time with
no zone is taken as UTC; ``# snapshot`` alone starts a snapshot of unknown time). The
``snapshot_time`` argument (naive = UTC) is the time of every snapshot without a snapshot line of
its own.

Output: the PROCESSES schema (``services`` comma-separated, null for ``N/A``; ``user`` as printed,
``DOMAIN\\user``; ``source`` = ``tasklist``), then extra columns ``session_name``, ``mem_kb``,
``status``, ``cpu_time`` (text as printed, ``h:mm:ss``), ``window_title``, ``modules``, ``image_cut``
(the image name fills the 25-character column, so it may be cut), ``snapshot_index``, ``file``,
``line`` (1-based line of the row).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from .diagnostics import report_for
from .errors import TextFormatError
from .schema import PROCESSES, conform
from .tracerpt import decode_text

IMAGE_WIDTH = 25
#: PIDs and session ids are u32; memory sizes fit an int64.
MAX_U32 = 2**32 - 1
MAX_I64 = 2**63 - 1
#: Snapshot times must fit int64 nanoseconds (the PROCESSES schema) and be after 1970.
_MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(2262, 4, 11, tzinfo=UTC)

#: English column names -> output columns.
ENGLISH = {
    "image name": "image",
    "pid": "pid",
    "session name": "session_name",
    "session#": "session",
    "mem usage": "mem",
    "status": "status",
    "user name": "user",
    "cpu time": "cpu_time",
    "window title": "window_title",
    "services": "services",
    "modules": "modules",
}

#: Column order of each layout, by number of columns (for localized headers and list blocks).
BY_COUNT = {
    3: ["image", "pid", "list"],
    5: ["image", "pid", "session_name", "session", "mem"],
    9: ["image", "pid", "session_name", "session", "mem", "status", "user", "cpu_time", "window_title"],
}

EXTRA = {
    "session_name": pl.Utf8,
    "mem_kb": pl.Int64,
    "status": pl.Utf8,
    "cpu_time": pl.Utf8,
    "window_title": pl.Utf8,
    "modules": pl.Utf8,
    "image_cut": pl.Boolean,
    "snapshot_index": pl.Int32,
    "file": pl.Utf8,
    "line": pl.Int64,
}

_NA = {"n/a", "", "暂缺", "n/d", "nicht zutreffend"}  # "N/A" as English, Chinese, ... Windows print it
_SNAPSHOT_RE = re.compile(r"^#\s*snapshot\b\s*(?P<time>.*)$", re.IGNORECASE)
_SEPARATOR_RE = re.compile(r"^=+( +=+)+\s*$")
_CPU_RE = r"\d+:\d{2}:\d{2}"
_MEM_RE = r"\d[\d.,'\u00a0\u202f ]*\s*(?:K|KB|Ko|k)"
_ROW_DEFAULT = re.compile(
    rf"^(?P<image>\S.*?)\s+(?P<pid>\d+)\s+(?:(?P<session_name>\S.*?)\s+)?"
    rf"(?P<session>\d+)\s+(?P<mem>{_MEM_RE})\s*$"
)
_ROW_VERBOSE = re.compile(
    rf"^(?P<image>\S.*?)\s+(?P<pid>\d+)\s+(?:(?P<session_name>\S.*?)\s+)?"
    rf"(?P<session>\d+)\s+(?P<mem>{_MEM_RE})\s+(?P<middle>.*?)\s+"
    rf"(?P<cpu_time>{_CPU_RE})(?:\s+(?P<window_title>.*))?\s*$"
)
_ROW_LIST = re.compile(r"^(?P<image>\S.*?)\s+(?P<pid>\d+)\s+(?P<list>\S.*?)\s*$")
_KNOWN_STATUS = ("not responding", "running", "unknown", "suspended")
_MODULE_RE = re.compile(r"\.(dll|exe|drv|ocx|mui|sys|cpl|ax|tlb|nls)$", re.IGNORECASE)


@dataclass
class _Snapshot:
    time: datetime | None = None
    timed: bool = False  # has its own snapshot line
    rows: list[dict] = field(default_factory=list)


def _parse_time(text: str, path: Path, line: int) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except ValueError:
        raise TextFormatError(
            f"snapshot line: {text!r} is not an ISO 8601 time (e.g. '# snapshot 2010-01-14 11:20:00Z')",
            path=path,
            line=line,
        ) from None
    except OverflowError:
        when = None
    if when is None or not _MIN_TIME <= when < _MAX_TIME:
        raise TextFormatError(f"snapshot line: {text!r} is not between 1970 and 2262", path=path, line=line)
    return when


def looks_like_tasklist(head: bytes) -> bool:
    """True when the first bytes of a file look like tasklist output (any layout)."""
    try:
        text = decode_text(head, "<head>")
    except TextFormatError:
        return False
    lines = [ln.rstrip() for ln in text.splitlines()[:40] if ln.strip()]
    for ln in lines:
        low = ln.strip().lower()
        if _SEPARATOR_RE.match(ln.strip()) or _SNAPSHOT_RE.match(ln.strip()):
            return True
        if low.startswith(('"image name","pid"', "image name:", "image name ")):
            return True
        if re.match(r'^"[^"]*","(pid|\d+)"', low) or re.match(r"^pid\s*[:：]\s*\d+$", low):
            return True  # /fo csv or /fo list, whatever the language
    rows = [ln for ln in lines if _ROW_DEFAULT.match(ln) or _ROW_VERBOSE.match(ln)]
    return bool(lines) and len(rows) >= max(1, len(lines) // 2)


# ------------------------------------------------------------------------------------- values


def _number(value: object, limit: int = MAX_U32) -> int | None:
    """ASCII decimal text (surrounding spaces allowed) up to ``limit`` -> int; None otherwise."""
    text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"[0-9]+", text):
        return None
    text = text.lstrip("0") or "0"
    if len(text) > 20:  # beyond any 64-bit value (and Python's 4,300-digit int() limit)
        return None
    number = int(text)
    return number if number <= limit else None


def _none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in _NA else value


def _mem_kb(value: str | None) -> int | None:
    if value is None:
        return None
    digits = re.sub(r"[^0-9]", "", value)
    return _number(digits, MAX_I64)


def _join_list(parts: list[str]) -> str | None:
    names = [p.strip() for chunk in parts for p in chunk.split(",")]
    names = [n for n in names if n and n.lower() not in _NA]
    return ",".join(names) if names else None


def _is_modules(values: list[str]) -> bool:
    names = [n.strip() for v in values for n in v.split(",") if n.strip() and n.strip().lower() not in _NA]
    return bool(names) and sum(bool(_MODULE_RE.search(n)) for n in names) >= len(names) / 2


def _split_status_user(middle: str) -> tuple[str | None, str | None]:
    """Status and user from the text between Mem Usage and CPU Time of a collapsed /v row."""
    low = middle.lower()
    for status in _KNOWN_STATUS:
        if low.startswith(status + " ") or low == status:
            return middle[: len(status)], middle[len(status) :].strip() or None
    head, _, tail = middle.partition(" ")
    return head or None, tail.strip() or None


# ------------------------------------------------------------------------------------- parser


class _Reader:
    """Reads one file's lines into snapshots."""

    def __init__(self, path: Path, default_time: datetime | None) -> None:
        self.path = path
        self.default_time = default_time
        self.snapshots: list[_Snapshot] = [_Snapshot(time=default_time)]
        self.columns: list[str] | None = None  # current table layout (names)
        self.spans: list[tuple[int, int]] | None = None
        self.pending_header: list[str] | None = None
        self.pending_number = 0
        self.csv_columns: list[str] | None = None
        self.list_block: dict | None = None
        self.list_last: str | None = None
        self.skipped = report_for(path)  # published once the file is read

    # -- snapshots
    @property
    def snap(self) -> _Snapshot:
        return self.snapshots[-1]

    def new_snapshot(self, when: datetime | None = None, timed: bool = False) -> None:
        self.flush_list()
        if not self.snap.rows and not (self.snap.timed and timed):
            self.snap.time = when if timed else self.snap.time
            self.snap.timed = self.snap.timed or timed
            return
        self.snapshots.append(_Snapshot(time=when if timed else self.default_time, timed=timed))

    def bad(self, kind: str, line: int) -> None:
        self.skipped.add(f"line(s) ({kind})", line=line)

    def add(self, row: dict, line: int, table: bool) -> None:
        if row.get("pid") is None:
            self.bad("row without a numeric PID", line)
            return
        image = _none(row.get("image"))
        out = {
            "pid": row["pid"],
            "image": image,
            "session_name": _none(row.get("session_name")),
            "session": row.get("session"),
            "mem_kb": _mem_kb(row.get("mem")),
            "status": _none(row.get("status")),
            "user": _none(row.get("user")),
            "cpu_time": _none(row.get("cpu_time")),
            "window_title": _none(row.get("window_title")),
            "services": row.get("services"),
            "modules": row.get("modules"),
            "image_cut": bool(table and image is not None and len(image) >= IMAGE_WIDTH),
            "line": line,
            "_list": row.get("_list"),
            "_list_kind": row.get("_list_kind"),
        }
        self.snap.rows.append(out)

    # -- main loop
    def read(self, text: str) -> None:
        raws = text.split("\n")
        # A header is the non-blank line right before a ===== line (whatever its language).
        headers = set()
        previous = None
        for number, raw in enumerate(raws, start=1):
            if not raw.strip():
                continue
            if _SEPARATOR_RE.match(raw.strip()) and previous is not None:
                headers.add(previous)
            previous = number
        for number, raw in enumerate(raws, start=1):
            line = raw.rstrip("\r\n\t ")
            stripped = line.strip()
            if self.list_block is not None and not stripped:
                self.flush_list()
                continue
            if not stripped:
                continue
            m = _SNAPSHOT_RE.match(stripped)
            if m:
                self.new_snapshot(_parse_time(m.group("time"), self.path, number), timed=True)
                continue
            if stripped.startswith("#"):
                continue
            if stripped.upper().startswith(("INFO:", "ERROR:", "WARNING:")):
                continue  # tasklist's own messages ("INFO: No tasks ...")
            if _SEPARATOR_RE.match(stripped):
                self.start_table(line, number)
                continue
            if number in headers:
                self.flush_list()
                self.pending_header = [stripped]
                self.pending_number = number
                continue
            if stripped.startswith('"'):
                self.csv_line(stripped, number)
                continue
            if self.is_list_line(line):
                self.list_line(line, number)
                continue
            if self.pending_header is not None:
                self.bad("header line not followed by a ===== line", self.pending_number)
                self.pending_header = None
            if self.looks_like_header(stripped):
                self.pending_header = [stripped]
                self.pending_number = number
                continue
            self.table_row(line, number)
        self.flush_list()
        if self.pending_header is not None:
            self.bad("header line not followed by a ===== line", self.pending_number)

    # -- tables
    @staticmethod
    def looks_like_header(stripped: str) -> bool:
        """An English header whose ===== line is missing."""
        low = stripped.lower()
        return low.startswith("image name") and " pid" in low

    def start_table(self, line: str, number: int) -> None:
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", line)]
        header = self.pending_header[0] if self.pending_header else None
        self.pending_header = None
        names: list[str] | None = None
        if header is not None:
            english = self._english_names(header, len(spans))
            names = english
        if names is None:
            names = list(BY_COUNT.get(len(spans), []))
            if not names:
                self.bad(f"table with {len(spans)} columns (expected 3, 5 or 9)", number)
                self.columns = None
                return
        if self.snap.rows:  # a new header: a new snapshot
            self.new_snapshot()
        self.columns = names
        self.spans = spans
        self.csv_columns = None

    @staticmethod
    def _english_names(header: str, count: int) -> list[str] | None:
        low = header.lower()
        found = []
        for name, col in ENGLISH.items():
            pos = re.search(rf"(?<![\w#]){re.escape(name)}(?![\w#])", low)
            if pos:
                found.append((pos.start(), col))
        found.sort()
        names = [col for _, col in found]
        return names if len(names) == count else None

    def table_row(self, line: str, number: int) -> None:
        if self.columns is not None and self.spans is not None:
            row = self._fixed_row(line)
            if row is not None:
                self._store_table_row(row, number)
                return
            row = self._token_row(line.strip(), self.columns)
            if row is not None:
                self._store_table_row(row, number)
                return
            if self._continuation(line.strip()):
                return
            self.bad("table row that fits neither the columns nor the tokens of its layout", number)
            return
        # No header: the layout comes from the row.
        stripped = line.strip()
        for names in (BY_COUNT[9], BY_COUNT[5], BY_COUNT[3]):
            row = self._token_row(stripped, names)
            if row is not None:
                if names is BY_COUNT[3] and line[:1].isspace() and self._continuation(stripped):
                    return
                self._store_table_row(row, number)
                return
        if self._continuation(stripped):
            return
        self.bad("line that is not tasklist output", number)

    def _fixed_row(self, line: str) -> dict | None:
        spans = self.spans
        assert spans is not None and self.columns is not None
        cells = []
        for i, (a, b) in enumerate(spans):
            end = len(line) if i == len(spans) - 1 else b
            cells.append(line[a:end].strip() if a < len(line) else "")
        row = dict(zip(self.columns, cells))
        if (
            not row.get("image")
            and not row.get("pid")
            and ("list" in row or "services" in row or "modules" in row)
        ):
            value = row.get("list") or row.get("services") or row.get("modules") or ""
            if value and self._continuation(value):
                return {"_continued": True}
            return None
        pid = row.get("pid", "")
        if not re.fullmatch(r"\d+", pid or ""):
            return None
        # Aligned rows have a separator space (or nothing) right before every column start.
        for a, _b in spans[1:]:
            if a - 1 < len(line) and line[a - 1] not in " ":
                return None
        if "session" in row and row["session"] and not re.fullmatch(r"\d+", row["session"]):
            return None
        if "mem" in row and not re.fullmatch(_MEM_RE, row["mem"] or ""):
            return None
        if "cpu_time" in row and not re.fullmatch(_CPU_RE, row["cpu_time"] or ""):
            return None
        return row

    def _token_row(self, stripped: str, names: list[str]) -> dict | None:
        if len(names) == 9:
            m = _ROW_VERBOSE.match(stripped)
            if not m:
                return None
            row = m.groupdict()
            row["status"], row["user"] = _split_status_user(row.pop("middle"))
            return row
        if len(names) == 5:
            m = _ROW_DEFAULT.match(stripped)
            return m.groupdict() if m else None
        if len(names) != 3:  # a table of other columns (named by its header): no token layout
            return None
        m = _ROW_LIST.match(stripped)
        if not m:
            return None
        row = m.groupdict()
        if names[2] in ("services", "modules"):
            row[names[2]] = row.pop("list")
        return row

    def _continuation(self, value: str) -> bool:
        """A wrapped service/module list line: append to the previous row's list."""
        rows = self.snap.rows
        if not rows or rows[-1].get("_list") is None:
            return False
        prev = rows[-1]["_list"]
        if not prev or not prev[-1].rstrip().endswith(","):
            return False
        if re.search(r"\s\d+\s", f" {value} ") and _ROW_LIST.match(value) and "," not in value.split()[0]:
            return False
        prev.append(value)
        return True

    def _store_table_row(self, row: dict, number: int) -> None:
        if row.get("_continued"):
            return
        row = dict(row)
        row["pid"] = _number(row.get("pid"))
        if row.get("session") is not None:
            row["session"] = _number(row["session"])
        for key in ("list", "services", "modules"):
            if key in row and row[key] is not None:
                row["_list"] = [row[key]]
                row["_list_kind"] = key
        self.add(row, number, table=True)

    # -- csv
    def csv_line(self, stripped: str, number: int) -> None:
        try:
            fields = next(csv.reader([stripped]))
        except (csv.Error, StopIteration):
            self.bad("CSV line that cannot be split", number)
            return
        if not fields:
            return
        names = self._english_names(",  ".join(f.lower() for f in fields), len(fields))
        # a localized header has no digits; a row always has some (session, memory), even when its
        # PID is damaged
        is_header = names is not None or not any(c.isdigit() for f in fields for c in f)
        if is_header:
            if self.snap.rows:
                self.new_snapshot()
            self.csv_columns = names or list(BY_COUNT.get(len(fields), []))
            if not self.csv_columns:
                self.bad(f"CSV header with {len(fields)} columns (expected 3, 5 or 9)", number)
                self.csv_columns = None
            self.columns = None
            return
        columns = self.csv_columns or list(BY_COUNT.get(len(fields), []))
        if len(columns) != len(fields):
            self.bad(f"CSV row with {len(fields)} fields (expected {len(columns) or '3, 5 or 9'})", number)
            return
        row: dict[str, Any] = dict(zip(columns, fields))
        row["pid"] = _number(row.get("pid"))
        if row.get("session") is not None:
            row["session"] = _number(row["session"])
        for key in ("list", "services", "modules"):
            if key in row:
                row["_list"] = [row[key]]
                row["_list_kind"] = key
        self.add(row, number, table=False)

    # -- list (/fo list)
    _KEY_RE = re.compile(r"^(?P<key>[^\s:：][^:：]*?)\s*[:：]\s*(?P<value>.*)$")

    def is_list_line(self, line: str) -> bool:
        if self.list_block is not None and line[:1].isspace():
            return True
        m = self._KEY_RE.match(line)
        if not m:
            return False
        key = m.group("key").strip().lower()
        if key in ENGLISH:
            return True
        # A localized key: a short label with no digits, followed by a value aligned after spaces.
        return (
            (self.list_block is not None or self.columns is None)
            and len(key) <= 30
            and not re.search(r"\d", key)
            and bool(re.search(r"[:：]\s+\S", line))
        )

    def list_line(self, line: str, number: int) -> None:
        if line[:1].isspace():
            if self.list_block is not None and self.list_last is not None:
                self.list_block["_values"][self.list_last].append(line.strip())
            return
        m = self._KEY_RE.match(line)
        assert m is not None
        key, value = m.group("key").strip(), m.group("value").strip()
        if self.list_block is not None and self.list_block["_keys"] and key == self.list_block["_keys"][0]:
            self.flush_list()
        if self.list_block is None:
            self.list_block = {"_keys": [], "_values": {}, "_line": number}
        self.list_block["_keys"].append(key)
        self.list_block["_values"][key] = [value]
        self.list_last = key

    def flush_list(self) -> None:
        block, self.list_block, self.list_last = self.list_block, None, None
        if block is None:
            return
        keys = block["_keys"]
        lows = [k.lower() for k in keys]
        if all(k in ENGLISH for k in lows):
            names = [ENGLISH[k] for k in lows]
        else:
            names = list(BY_COUNT.get(len(keys), []))
        if len(names) != len(keys):
            self.bad(f"list block with {len(keys)} keys (expected 3, 5 or 9)", block["_line"])
            return
        row: dict = {}
        for key, name in zip(keys, names):
            values = block["_values"][key]
            if name in ("list", "services", "modules"):
                row["_list"] = values
                row["_list_kind"] = name
                row[name] = values[0]
            else:
                row[name] = " ".join(values)
        row["pid"] = _number(row.get("pid"))
        if row.get("session") is not None:
            row["session"] = _number(row["session"])
        self.add(row, block["_line"], table=False)


def _finish_rows(rows: list[dict]) -> None:
    """Join wrapped lists into services/modules (by header name, or by content when unnamed)."""
    for row in rows:
        parts = row.pop("_list", None)
        kind = row.pop("_list_kind", None)
        if parts is None:
            continue
        joined = _join_list(parts)
        if kind == "list":
            kind = "modules" if _is_modules(parts) else "services"
        row["services"] = joined if kind == "services" else None
        row["modules"] = joined if kind == "modules" else None


def read_tasklist(paths: str | os.PathLike | list, *, snapshot_time: datetime | None = None) -> pl.DataFrame:
    """Read tasklist output files into the PROCESSES schema (one snapshot per table/snapshot line)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if snapshot_time is not None:
        snapshot_time = (
            snapshot_time.replace(tzinfo=UTC)
            if snapshot_time.tzinfo is None
            else snapshot_time.astimezone(UTC)
        )
        if not _MIN_TIME <= snapshot_time < _MAX_TIME:
            raise TextFormatError(f"snapshot time {snapshot_time.isoformat()} is not between 1970 and 2262")
    frames = []
    index = 0
    for p in paths:
        path = Path(p)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TextFormatError(f"cannot read: {exc.strerror or exc}", path=path) from None
        if not data.strip():
            raise TextFormatError("empty file: no tasklist lines", path=path, line=1)
        text = decode_text(data, path)
        reader = _Reader(path, snapshot_time)
        reader.read(text)
        rows_total = sum(len(s.rows) for s in reader.snapshots)
        if rows_total == 0:
            lines = [p.line for r in reader.skipped.reasons.values() for p in r.places if p.line is not None]
            raise TextFormatError(
                "wrong columns: no tasklist rows (image name and PID) found",
                path=path,
                line=min(lines, default=1),
            )
        reader.skipped.publish()
        for snap in reader.snapshots:
            if not snap.rows:
                continue
            _finish_rows(snap.rows)
            df = pl.DataFrame(
                snap.rows,
                schema_overrides={
                    "pid": pl.Int64,
                    "session": pl.Int64,
                    "mem_kb": pl.Int64,
                    "line": pl.Int64,
                    "image": pl.Utf8,
                    "session_name": pl.Utf8,
                    "status": pl.Utf8,
                    "user": pl.Utf8,
                    "cpu_time": pl.Utf8,
                    "window_title": pl.Utf8,
                    "services": pl.Utf8,
                    "modules": pl.Utf8,
                    "image_cut": pl.Boolean,
                },
                infer_schema_length=None,
            )
            df = df.with_columns(
                pl.lit("tasklist").alias("source"),
                pl.lit(snap.time, dtype=pl.Datetime("us", "UTC"))
                .cast(pl.Datetime("ns", "UTC"))
                .alias("snapshot"),
                pl.lit(index, dtype=pl.Int32).alias("snapshot_index"),
                pl.lit(str(path)).alias("file"),
            )
            frames.append(df)
            index += 1
    df = pl.concat(frames, how="diagonal_relaxed")
    df = conform(df, PROCESSES)
    return df.select(
        list(PROCESSES)
        + [pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c) for c, t in EXTRA.items()]
    )
