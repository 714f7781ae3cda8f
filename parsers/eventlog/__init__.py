"""Windows event logs (Sysmon, Security auditing) as evidence: .evtx files and JSON-lines exports.

``read_eventlog(path)`` gives the network evidence (CONNECTIONS: Sysmon 3, Security 5156/5157/5152/5158/5154),
process lifetimes (EVENTLOG_PROCESSES: Sysmon 1/5, Security 4688/4689) and DNS queries (DNS: Sysmon 22) of
one file, with every event id it saw. JSON flavours (evtx_dump, Winlogbeat/ECS, Azure Monitor, NXLog-style
flat) are told apart by content, record by record.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import mmap
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl

from ..diagnostics import SkipReport, report_for
from ..errors import EventLogError
from ..units import PathLike, Progress
from . import scan, tables
from .evtx import iter_json_batches, looks_like_evtx, partial_tail
from .flavours import LOOKED_FOR, flatten, flavour_of

BOM = b"\xef\xbb\xbf"


@dataclass
class EventLog:
    """What one event log says: connections, processes, DNS queries, and what was read or skipped."""

    path: str
    kind: str  # evtx, or json (flavours: the JSON shapes seen, e.g. ["flat"])
    connections: pl.DataFrame  # schema.CONNECTIONS
    processes: pl.DataFrame  # schema.EVENTLOG_PROCESSES
    dns: pl.DataFrame  # schema.DNS
    hosts: pl.DataFrame  # host, sensor, connections, processes, dns, first, last
    event_ids: Counter = field(default_factory=Counter)  # every event id in the file -> records
    records: int = 0  # records (evtx) or non-blank lines (JSON) read
    skipped: SkipReport = field(default_factory=lambda: SkipReport(""))  # published as the log was read
    flavours: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: what the log holds, or that it has no network events and which ids it has."""
        name = Path(self.path).name
        if self.connections.height:
            by = self.connections.group_by("sensor", "event_id").len().sort("sensor", "event_id")
            parts = ", ".join(
                f"{r['sensor']} {r['event_id']}: {r['len']:,}" for r in by.iter_rows(named=True)
            )
            return f"{name}: {self.connections.height:,} network events ({parts}) on {self.hosts.height} host/sensor(s)"
        ids = ", ".join(f"{i} ({n:,})" for i, n in sorted(self.event_ids.items())[:40])
        more = "" if len(self.event_ids) <= 40 else f", ... ({len(self.event_ids)} ids)"
        return (
            f"no network events in {name} (Sysmon 3 or Security 5156/5157/5152/5158/5154); "
            f"{self.records:,} records with event ids: {ids or 'none'}{more}"
        )


def sniff(head: bytes) -> str | None:
    """``evtx`` or ``eventlog-json`` from the first bytes of a file, None when it is neither (every file
    of JSON objects is taken as an event log: etwtools reads no other JSON)."""
    if looks_like_evtx(head):
        return "evtx"
    # JSON lines: the reader tells the flavours apart, or names the fields it looked for
    if head.startswith((b"\xff\xfe{\x00", b"{\x00")):
        return "eventlog-json"  # UTF-16: the reader says what to do
    first = head.lstrip(BOM + b" \t\r\n")[:1]
    return "eventlog-json" if first == b"{" else None


class _Chained:
    """A stream that gives ``first`` (bytes already read) and then the rest of ``f``."""

    def __init__(self, first: bytes, f: IO[bytes] | gzip.GzipFile) -> None:
        self.first = first
        self.f = f

    def read(self, n: int) -> bytes:
        if self.first:
            out, self.first = self.first, b""
            return out
        return self.f.read(n)


class _Collector:
    """Decodes candidate lines into rows, counting what it has to skip."""

    def __init__(self, path: str, unit: str) -> None:
        self.path = path
        self.unit = unit
        self.rows: list[dict[str, Any]] = []
        self.stats = scan.ScanStats()
        self.skipped = report_for(path)
        self.flavours: Counter = Counter()
        self.first_unknown = False  # the keys of the first one are shown

    def feed(self, buf: bytes | memoryview, first_line: int, base: int) -> int:
        """Decode the candidate lines of one block; returns its number of newlines."""
        cands, newlines = scan.scan_block(buf, first_line, base, self.stats)
        for c in cands:
            text = c.text[3:] if c.offset == 0 and c.text.startswith(BOM) else c.text
            try:
                d = json.loads(text)
            except ValueError as e:
                if not c.text.rstrip().endswith(b"}"):
                    continue  # a truncated line: counted and reported by the scan
                # json.loads also raises UnicodeDecodeError (no msg/colno) for bytes that are not UTF-8
                why = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
                if self.unit == "record":  # .evtx: the record's number, no byte offset of its own
                    self.skipped.add("undecodable JSON record(s)", detail=f"record {c.line}: {why}")
                else:
                    self.skipped.add(
                        "undecodable JSON line(s)", offset=c.offset, detail=f"line {c.line}: {why}"
                    )
                continue
            fl = flavour_of(d)
            if fl is None:
                keys = ", ".join(sorted(d)[:12]) if isinstance(d, dict) and not self.first_unknown else ""
                self.first_unknown = self.first_unknown or bool(keys)
                self.skipped.add(
                    "line(s) of no known event-log flavour", line=c.line, detail=keys and f"has {keys}"
                )
                continue
            self.flavours[fl] += 1
            row = flatten(d, fl)
            assert row is not None  # a known flavour always flattens
            if row.get("event_id") not in scan.WANTED_IDS:
                continue  # the id matched elsewhere in the line (a nested field)
            row["line"] = c.line
            self.rows.append(row)
        return newlines


@contextlib.contextmanager
def _open_packed(path: str) -> Iterator[tuple[IO[bytes] | gzip.GzipFile, str | None]]:
    """The JSON lines of a plain file, or of the one file inside a .zip or a .gz, as a binary stream;
    with the member's name (None for a plain file)."""
    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        if magic.startswith(b"PK\x03\x04"):
            try:
                z = zipfile.ZipFile(f)
                members = [i for i in z.infolist() if not i.is_dir()]
            except (zipfile.BadZipFile, OSError) as e:
                raise EventLogError(f"damaged .zip: {e}", path=path) from None
            if len(members) != 1:
                raise EventLogError(
                    f".zip with {len(members)} files ({', '.join(i.filename for i in members[:5])}): "
                    "give one event log per file",
                    path=path,
                )
            with z.open(members[0]) as m:
                yield m, members[0].filename
        elif magic.startswith(b"\x1f\x8b"):
            with gzip.open(f) as g:
                yield g, os.path.basename(path)[:-3] if path.endswith(".gz") else "gzip content"
        else:
            yield f, None


def _read_json(path: str, progress: Progress | None) -> tuple[_Collector, int]:
    col = _Collector(path, "line")
    total = os.path.getsize(path)
    with _open_packed(path) as (f, member):
        try:
            head = f.read(1 << 20)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            raise EventLogError(f"cannot decompress: {e}", path=path) from None
        _check_json_head(path, head)
        mm = None
        if member is None:
            f.seek(0)
            try:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if total else None
            except (OSError, ValueError):
                mm = None
            blocks = scan.iter_mapped(mm) if mm is not None else scan.iter_blocks(f)
        else:
            blocks = scan.iter_blocks(_Chained(head, f))
        line = 1
        try:
            for buf, base in blocks:
                line += col.feed(buf, line, base)
                if progress:
                    progress(min(base + len(buf), total) if member is None else total // 2, total)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            raise EventLogError(f"cannot decompress {member}: {e}", path=path) from None
        finally:
            blocks.close()
            if mm is not None:
                mm.close()
    truncated = "truncated JSON line(s) (not ending with '}')"
    for line, off in col.stats.broken:
        col.skipped.add(truncated, offset=off, detail=f"line {line}")
    col.skipped.add(truncated, col.stats.broken_count - len(col.stats.broken))
    return col, col.stats.lines


def _check_json_head(path: str, head: bytes) -> None:
    """Refuse a file whose first records are JSON of no known event-log flavour, naming what was looked for."""
    if head.startswith((b"\xff\xfe", b"{\x00")):
        raise EventLogError(
            "UTF-16 text (as PowerShell's '>' writes it): save it as UTF-8 "
            "(Out-File -Encoding utf8) and read that",
            path=path,
            offset=0,
        )
    head = head[3:] if head.startswith(BOM) else head
    seen = 0
    for raw in head.split(b"\n")[:-1][:20]:
        line = raw.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if flavour_of(d):
            return
        seen += 1
        keys = ", ".join(sorted(d)[:12]) if isinstance(d, dict) else type(d).__name__
        if seen >= 3:
            break
    if seen:
        raise EventLogError(
            f"JSON lines of no known event-log flavour (looked for {'; '.join(LOOKED_FOR)}); "
            f"the records have: {keys}",
            path=path,
            line=1,
        )
    raise EventLogError(
        "not an event log: neither .evtx (ElfFile header) nor JSON lines with one event per line",
        path=path,
        offset=0,
    )


def _read_evtx(path: str, progress: Progress | None) -> tuple[_Collector, int]:
    col = _Collector(path, "record")
    errors: list[str] = []
    n = 0
    try:
        for buf in iter_json_batches(path, errors):
            n += col.feed(buf, n + 1, 0)
    except ValueError as e:
        raise EventLogError(f"cannot read as .evtx: {e}", path=path, offset=0) from None
    for msg in errors:
        col.skipped.add("damaged chunk(s)", detail=msg)
    tail = partial_tail(path)
    if tail:
        col.skipped.add(
            "partial chunk(s) at the end (the file is cut short?)",
            offset=os.path.getsize(path) - tail,
            size=tail,
        )
    if progress:
        size = os.path.getsize(path)
        progress(size, size)
    return col, n


def read_eventlog(path: PathLike, progress: Progress | None = None) -> EventLog:
    """Connections, processes and DNS queries of one .evtx file or JSON-lines export (kind by content;
    JSON lines may come zipped: a .zip holding one file, or .gz)."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise EventLogError(f"cannot read: {e.strerror}", path=p) from None
    if looks_like_evtx(head):
        col, records, kind = *_read_evtx(p, progress), "evtx"
    else:
        col, records, kind = *_read_json(p, progress), "json"
    without_id = records - sum(col.stats.event_ids.values()) - col.stats.broken_count
    if without_id > 0:
        what = (
            "record(s) without an event id (null System)" if kind == "evtx" else "line(s) without an event id"
        )
        col.skipped.add(what, without_id)
    col.skipped.publish()
    raw = tables.raw_frame(col.rows).with_columns(tables.sensor_of().alias("sensor"))
    conns = tables.connections(raw, p)
    procs = tables.processes(raw, p)
    names = tables.dns(raw, p)
    return EventLog(
        p,
        kind,
        conns,
        procs,
        names,
        tables.hosts(conns, procs, names),
        col.stats.event_ids,
        records,
        col.skipped,
        sorted(col.flavours),
    )
