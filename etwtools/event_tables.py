"""``events --all`` output, streamed batch by batch: one Parquet file per event type, or one long table.

Writers keep at most :data:`ROW_GROUP` rows per event type in memory before writing them as a Parquet
row group, so memory does not grow with the file.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from . import output

#: Rows buffered per event type before they are written (one Parquet row group).
ROW_GROUP = 65536


class _TypeWriter:
    """A Parquet file of one event type, written row group by row group."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parts: list = []
        self.rows = 0
        self.pending = 0
        self.writer = None
        self.schema = None

    def add(self, frame) -> None:
        self.parts.append(frame)
        self.pending += frame.height
        self.rows += frame.height
        if self.pending >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import polars as pl
        import pyarrow.parquet as pq

        if not self.parts:
            return
        table = pl.concat(self.parts, how="vertical_relaxed").to_arrow()
        self.parts, self.pending = [], 0
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.path, table.schema)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


def write_parquet_dir(tables: Iterable, directory: str | os.PathLike) -> dict[str, int]:
    """Write event tables (``columnar.EventTable``) as ``DIRECTORY/<event type>.parquet``; rows per file."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, _TypeWriter] = {}
    try:
        for t in tables:
            w = writers.get(t.name)
            if w is None:
                w = writers[t.name] = _TypeWriter(out / f"{t.name}.parquet")
            w.add(t.frame)
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
            if w.rows == 0:
                w.add(long_form([]))
                w.flush()
        finally:
            w.close()
        return w.rows
    df = pl.concat(list(frames))
    writer.write(df, "all_events")
    return df.height
