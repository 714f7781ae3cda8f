"""``events --all`` output, streamed batch by batch: one Parquet file per event type, or one long table.

Rows are buffered per event type and written as Parquet row groups of up to :data:`ROW_GROUP` rows;
past :data:`BUDGET` bytes buffered over all types, the largest buffers are written first. A Parquet
writer holds about 0.7 MB while open, so a file is opened only when its type has rows to write before
the end, and at most :data:`MAX_OPEN` at a time (the least recently written one is closed; its type's
later rows go to ``<type>.part2.parquet`` and so on), each for at most :data:`MAX_GROUPS` row groups (a
writer keeps the metadata of every row group it wrote). Memory does not grow with the input file.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from . import output

#: Rows buffered per event type before they are written (one Parquet row group).
ROW_GROUP = 65536
#: Bytes buffered over all event types: past it, the largest buffers are written first.
BUDGET = 16 << 20
#: Parquet files open at once.
MAX_OPEN = 48
#: Row groups per file: an open writer keeps every row group's metadata, so a type's rows continue in a
#: new part past this many.
MAX_GROUPS = 32


class _TypeWriter:
    """The Parquet file(s) of one event type, written row group by row group."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parts: list = []
        self.rows = 0
        self.pending = 0
        self.bytes = 0
        self.writer = None
        self.schema = None
        self.files = 0
        self.groups = 0

    def add(self, frame) -> None:
        self.parts.append(frame)
        self.pending += frame.height
        self.rows += frame.height
        self.bytes += frame.estimated_size()

    def write(self) -> None:
        """Write the buffered rows (opening the type's next file when none is open)."""
        import polars as pl
        import pyarrow.parquet as pq

        if not self.parts:
            return
        table = pl.concat(self.parts, how="vertical_relaxed").to_arrow()
        self.parts, self.pending, self.bytes = [], 0, 0
        if self.writer is None:
            self.files += 1
            path = self.path if self.files == 1 else self.path.with_suffix(f".part{self.files}.parquet")
            self.schema = self.schema or table.schema
            self.writer = pq.ParquetWriter(path, self.schema)
        if table.schema != self.schema:
            table = table.cast(self.schema)
        self.writer.write_table(table)
        self.groups += 1
        if self.groups >= MAX_GROUPS:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.groups = 0


def write_parquet_dir(tables: Iterable, directory: str | os.PathLike) -> dict[str, int]:
    """Write event tables (``columnar.EventTable``) as ``DIRECTORY/<event type>.parquet``; rows per type."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, _TypeWriter] = {}
    open_: OrderedDict[str, _TypeWriter] = OrderedDict()
    buffered = 0

    def write(w: _TypeWriter) -> None:
        nonlocal buffered
        buffered -= w.bytes
        if w.writer is None and len(open_) >= MAX_OPEN:
            open_.popitem(last=False)[1].close()
        w.write()
        if w.writer is None:  # closed after MAX_GROUPS row groups
            open_.pop(w.path.name, None)
        else:
            open_[w.path.name] = w
            open_.move_to_end(w.path.name)

    try:
        for t in tables:
            w = writers.get(t.name)
            if w is None:
                w = writers[t.name] = _TypeWriter(out / f"{t.name}.parquet")
            before = w.bytes
            w.add(t.frame)
            buffered += w.bytes - before
            if w.pending >= ROW_GROUP:
                write(w)
            if buffered > BUDGET:
                for big in sorted(writers.values(), key=lambda x: x.bytes, reverse=True):
                    write(big)
                    if buffered <= BUDGET // 2:
                        break
        for w in writers.values():  # the rest, one file at a time
            if w.parts:
                write(w)
            w.close()
            open_.pop(w.path.name, None)
    finally:
        for w in writers.values():
            w.close()
    return {name: w.rows for name, w in sorted(writers.items())}


def write_long(batches: Iterable[list], writer: output.Output) -> int:
    """Write the long table (one row per record, in file order, fields as JSON text) of the event tables
    of each batch: batch by batch (csv, json, parquet to a file) or whole (table, parquet to stdout).
    Returns the number of rows."""
    import polars as pl

    from .parsers.etl.columnar import long_form

    frames = (long_form(tables) for tables in batches)
    if writer.fmt in ("csv", "json"):
        n, first = 0, True
        with writer.open() as stream:
            for df in frames:
                if writer.columns is not None:
                    df = df.select(output.check_columns(df, writer.columns))
                if writer.fmt == "csv":
                    output.write_csv(df, stream, header=first)
                    first = False
                else:
                    output.write_json(df, stream)
                n += df.height
        return n
    if writer.fmt == "parquet" and writer.path and writer.columns is None:
        w = _TypeWriter(Path(writer.path))
        try:
            for df in frames:
                w.add(df)
                if w.pending >= ROW_GROUP:
                    w.write()
            if w.rows == 0:
                w.add(long_form([]))
            w.write()
        finally:
            w.close()
        return w.rows
    df = pl.concat(list(frames))
    writer.write(df, "all_events")
    return df.height
