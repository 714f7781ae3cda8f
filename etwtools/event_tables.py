"""``events --all`` output, streamed: one Parquet file per event type, or one long table.

The tables come grouped by event type (``columnar.iter_events``). Rows are buffered per event type and
written as Parquet row groups of at least :data:`ROW_GROUP` rows; past :data:`BUDGET` bytes buffered
over all types, the largest buffers are written first. Joining a type's buffered frames and Parquet encoding run in one writer
thread (polars and pyarrow release the GIL) while the next records are decoded: at most :data:`IN_FLIGHT` tables
ahead, and past two of them at most :data:`FLIGHT_BYTES` bytes (the budget flushes hand several types over at once;
the decoding goes on while the writer takes them). At the end of the input, each type's last rows are written
and its file closed by :data:`FINISHERS` threads (nothing is left to decode then).
An open Parquet writer holds the buffers of the last column it wrote (bounded by :data:`PAGE` bytes a page)
and the metadata of every row group it wrote, so a file is opened only when its type has rows to write before
the end, at most :data:`MAX_OPEN` at a time (past it, the open file of the type written least often is closed;
its type's later rows go to ``<type>.part2.parquet`` and so on), and the open files hold at most
:data:`OPEN_GROUPS` row groups together (past it, the open file with the most is closed the same way). Memory
does not grow with the input.
Dictionary encoding is used for text columns, delta encoding for times and record numbers, and statistics
are written for the header columns only (numbers and byte blobs of the payload gain little from either and
cost most of the encoding time).
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from . import output

#: Rows buffered per event type before they are written (one Parquet row group).
ROW_GROUP = 65536
#: Bytes buffered over all event types: past it, the largest buffers are written first.
BUDGET = 8 << 20
#: Parquet files open at once.
MAX_OPEN = 32
#: Row groups in the open files together (a writer keeps the metadata of each, about 1 kB a column).
OPEN_GROUPS = 1024
#: Bytes of a Parquet data page (an open writer keeps the last page buffers of its last column).
PAGE = 64 << 10
#: Tables handed to the writer thread and not yet written (more than two only while they hold at most
#: :data:`FLIGHT_BYTES` together).
IN_FLIGHT = 8
FLIGHT_BYTES = 16 << 20
#: Threads writing the types' last row groups and closing their files at the end.
FINISHERS = 2
#: Row groups written (over all files) between two releases of Arrow's unused memory: its allocator keeps
#: freed pages otherwise, and every release makes the next row groups fault their pages in again.
RELEASE_EVERY = 4
#: Columns with statistics (min/max per row group: what readers use to skip row groups).
_STATISTICS = ["time", "event_id", "opcode", "version", "pid", "tid", "record"]
#: Columns stored as deltas (Parquet's DELTA_BINARY_PACKED): times and record numbers grow by small steps,
#: which plain values followed by snappy neither shrink much nor encode fast.
_DELTA = ["time", "record"]


def _options(schema) -> dict:
    import pyarrow as pa

    text = [
        f.name
        for f in schema
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)
    ]
    return {
        "use_dictionary": text,
        "column_encoding": {c: "DELTA_BINARY_PACKED" for c in _DELTA if c in schema.names},
        "write_statistics": [c for c in _STATISTICS if c in schema.names],
        "data_page_size": PAGE,
        # the Parquet types say all (text, bytes, UTC times); the Arrow schema would name polars' view
        # types, which older readers do not know
        "store_schema": False,
    }


def _local():
    """The local file system (named: pyarrow otherwise looks for each new file and parses its path as a URI)."""
    import pyarrow.fs

    global _LOCAL
    if _LOCAL is None:
        _LOCAL = pyarrow.fs.LocalFileSystem()
    return _LOCAL


_LOCAL = None


class _TypeWriter:
    """The Parquet file(s) of one event type, written row group by row group."""

    written = 0  # row groups written by every writer (one thread writes them)

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.planned = 0  # row groups handed to the writer thread for the open file
        self.handed = 0  # row groups handed to the writer thread in all
        self.parts: list = []
        self.rows = 0
        self.pending = 0
        self.bytes = 0
        self.writer = None
        self.schema = None
        self.options: dict | None = None
        self.files = 0
        self.groups = 0

    def add(self, frame) -> None:
        self.parts.append(frame)
        self.pending += frame.height
        self.rows += frame.height
        self.bytes += frame.estimated_size()

    def take(self) -> list:
        """The buffered frames (taken: the type buffers none after this)."""
        parts = self.parts
        self.parts, self.pending, self.bytes = [], 0, 0
        return parts

    @staticmethod
    def arrow(parts: list):
        """Frames as one Arrow table (None when there are none)."""
        import polars as pl

        if not parts:
            return None
        # not rechunked: the row group is written from the frames' own chunks (no copy); frames of one
        # schema (nearly always) are joined directly, without the lazy engine that relaxing types needs
        same = all(p.schema == parts[0].schema for p in parts[1:])
        names = all(p.columns == parts[0].columns for p in parts[1:])
        how = "vertical" if same else "vertical_relaxed" if names else "diagonal_relaxed"
        frame = parts[0] if len(parts) == 1 else pl.concat(parts, how=how, rechunk=False)
        return frame.to_arrow(compat_level=pl.CompatLevel.newest())  # text and bytes as views: no copy

    def write_table(self, table) -> None:
        """Write one table as a row group (opening the type's next file when none is open)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is not None and table.schema.names != self.schema.names:
            self.close()  # other columns (a type whose records two layouts decode): a part of their own
            self.schema = self.options = None
        if self.writer is None:
            self.files += 1
            path = self.path if self.files == 1 else self.path.with_suffix(f".part{self.files}.parquet")
            self.schema = self.schema or table.schema
            self.options = self.options or _options(self.schema)  # every part: the first part's schema
            self.writer = pq.ParquetWriter(path, self.schema, filesystem=_local(), **self.options)
        if table.schema != self.schema:
            table = table.cast(self.schema)
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        del table
        _TypeWriter.written += 1
        if _TypeWriter.written % RELEASE_EVERY == 0:
            pa.default_memory_pool().release_unused()
        self.groups += 1

    def write(self) -> None:
        """Write the buffered rows (in this thread)."""
        table = self.arrow(self.take())
        if table is not None:
            self.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.groups = 0


def write_parquet_dir(tables: Iterable, directory: str | os.PathLike) -> dict[str, int]:
    """Write event tables (``columnar.EventTable``) as ``DIRECTORY/<event type>.parquet``; rows per type."""
    out = Path(directory).absolute()  # a local path, whatever it looks like (pyarrow reads "x:/y" as a URI)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, _TypeWriter] = {}
    open_: OrderedDict[str, _TypeWriter] = OrderedDict()
    buffered = 0
    flight: deque[tuple[Future, int]] = deque()
    flying = 0  # bytes of the tables in flight
    open_groups = 0  # row groups handed over for the open files
    pool = ThreadPoolExecutor(1, thread_name_prefix="parquet")

    def in_thread(w: _TypeWriter, parts: list, close_first: list[_TypeWriter]) -> None:
        for e in close_first:
            e.close()
        table = w.arrow(parts)
        parts.clear()
        w.write_table(table)

    def write(w: _TypeWriter, last: dict[str, list] | None = None) -> None:
        """Hand the type's buffered rows to the writer thread (files opened and closed in its order);
        ``last``: the end of the file, the steps are listed per type instead (run by :func:`_finish`)."""
        nonlocal buffered, flying, open_groups
        nbytes = w.bytes
        buffered -= nbytes
        parts = w.take()
        if not parts:
            return
        evict = []
        if w.name not in open_ and len(open_) >= MAX_OPEN:  # the type written least often (then least lately)
            evict.append(open_.pop(min(open_.values(), key=lambda o: o.handed).name))
        if open_groups - sum(e.planned for e in evict) >= OPEN_GROUPS:  # the open file with the most
            evict.append(open_.pop(max(open_.values(), key=lambda o: o.planned).name))
        for e in evict:
            open_groups -= e.planned
            e.planned = 0
        if last is not None:
            for e in evict:
                last.setdefault(e.name, []).append(e.close)
            last.setdefault(w.name, []).append(lambda: in_thread(w, parts, []))
        else:
            while flight and (
                len(flight) >= IN_FLIGHT or (len(flight) >= 2 and flying + nbytes > FLIGHT_BYTES)
            ):
                done, size = flight.popleft()
                done.result()
                flying -= size
            flight.append((pool.submit(in_thread, w, parts, evict), nbytes))
            flying += nbytes
        w.planned += 1
        w.handed += 1
        open_groups += 1
        open_[w.name] = w
        open_.move_to_end(w.name)

    try:
        for t in tables:
            w = writers.get(t.name)
            if w is None:
                w = writers[t.name] = _TypeWriter(out / f"{t.name}.parquet", t.name)
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
        while flight:
            flight.popleft()[0].result()
        last: dict[str, list] = {}
        for w in writers.values():  # the rest: each type's last rows, then its file closed
            write(w, last)
            last.setdefault(w.name, []).append(w.close)
            if open_.pop(w.name, None) is not None:
                open_groups -= w.planned
        _finish(last)
    finally:
        for f, _ in flight:
            f.cancel()
        pool.shutdown(wait=True)
        for w in writers.values():
            w.close()
    return {name: w.rows for name, w in sorted(writers.items())}


def _finish(steps: dict[str, list]) -> None:
    """Run each type's last steps in order, :data:`FINISHERS` types at a time (every earlier row group is
    written: the types' files are independent now; each type's steps, so its files, are the same as in one
    thread)."""

    def run(todo: list) -> None:
        for step in todo:
            step()

    with ThreadPoolExecutor(FINISHERS, thread_name_prefix="parquet-last") as finishers:
        for f in [finishers.submit(run, todo) for todo in steps.values()]:
            f.result()


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
        w = _TypeWriter(Path(writer.path), "all_events")
        try:
            for df in frames:
                w.add(df)
                if w.pending >= ROW_GROUP:
                    w.write()
                    if w.groups >= OPEN_GROUPS:  # its rows go on in a new part
                        w.close()
            if w.rows == 0:
                w.add(long_form([]))
            w.write()
        finally:
            w.close()
        return w.rows
    df = pl.concat(list(frames))
    writer.write(df, "all_events")
    return df.height
