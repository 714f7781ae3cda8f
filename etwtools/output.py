"""Writing result tables: text that fits the terminal, CSV, JSON lines or Parquet, batch by batch.

Every writer takes an open BINARY stream and writes ``batch_rows`` rows at a time (never the whole output as
one string). Tables are for people: the columns that matter most for the terminal's width (internal ones
never), one column wrapped instead of cut, numbers in fixed point. CSV, JSON and Parquet keep every column at
full precision.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from .errors import EtwToolsError

FORMATS = ("table", "csv", "json", "parquet")
#: Output file extensions and the format each one means when -f is not given.
EXTENSIONS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".txt": "table",
}
#: The extension each format's files get (one file per table in a folder).
EXTENSION_OF = {"table": "txt", "csv": "csv", "json": "json", "parquet": "parquet"}
BATCH_ROWS = 65_536
_GAP = "  "
_MIN_WRAP = 24
_DEFAULT_CAP = 40

if TYPE_CHECKING:  # polars is imported where a table is written, not at start-up (fast --help)
    import polars as pl

log = logging.getLogger("etwtools")


@dataclass(frozen=True)
class View:
    """How one kind of table shows in a terminal.

    ``importance``: columns most important first (unlisted ones follow in table order); ``internal``: never in
    a table unless asked for by name; ``wrap``: the column shown last that takes the remaining width and wraps;
    ``decimals``: per float column (default 3); ``caps``: widest cell per column before it is cut with "…".
    """

    importance: tuple[str, ...] = ()
    internal: frozenset[str] = frozenset()
    wrap: str | None = None
    decimals: Mapping[str, int] = field(default_factory=dict)
    caps: Mapping[str, int] = field(default_factory=dict)


VIEWS: dict[str, View] = {
    "attribute": View(
        (
            "frame",
            "pid",
            "process",
            "confidence",
            "src_addr",
            "src_port",
            "dst_addr",
            "dst_port",
            "remote_name",
            "reason",
            "protocol",
            "direction",
            "time",
            "payload_len",
            "method",
            "services",
            "delta_s",
            "event_time",
        ),
        wrap="reason",
        decimals={"delta_s": 6},
        caps={"process": 24, "services": 30},
    ),
    "summary": View(
        ("pid", "process", "frames", "bytes", "services", "first", "last"),
        caps={"process": 60, "services": 40},
    ),
    "events": View(
        (
            "time",
            "event",
            "protocol",
            "pid",
            "process",
            "local_addr",
            "local_port",
            "remote_addr",
            "remote_port",
            "size",
            "provider",
            "ip_version",
            "connid",
            "seqnum",
            "record",
        ),
        caps={"process": 24},
    ),
    "connections": View(
        (
            "time",
            "event_id",
            "pid",
            "process",
            "protocol",
            "local_addr",
            "local_port",
            "remote_addr",
            "remote_port",
            "direction",
            "action",
            "host",
            "sensor",
            "user",
        ),
        caps={"process": 24, "image_path": 40, "user": 30},
    ),
    "all_events": View(
        ("time", "provider", "event_id", "pid", "fields", "opcode", "version", "tid", "decoder", "record"),
        wrap="fields",
    ),
    "processes": View(
        (
            "pid",
            "image",
            "start",
            "end",
            "ppid",
            "services",
            "command_line",
            "session",
            "user",
            "source",
            "snapshot",
            "alive_at_end",
            "exit_status",
        ),
        internal=frozenset({"unique_key", "flags", "record", "defunct"}),
        wrap="command_line",
        caps={"image": 30, "services": 40, "user": 46},
    ),
    "frames": View(
        (
            "frame",
            "time",
            "protocol",
            "src_addr",
            "src_port",
            "dst_addr",
            "dst_port",
            "payload_len",
            "direction",
            "tcp_flags",
            "notes",
            "wirelen",
            "caplen",
            "interface",
            "fragment",
            "ip_version",
            "link_type",
            "tcp_seq",
            "ip_id",
        ),
        wrap="notes",
    ),
    "intervals": View(
        ("entered", "left", "duration_s", "open_at_end", "started_before_trace", "note"), wrap="note"
    ),
    "syn_events": View(),
    "syn_packets": View(
        (
            "interval",
            "phase",
            "start",
            "end",
            "seconds",
            "syns",
            "syn_per_s",
            "answered_share",
            "sources",
            "top_sources",
            "attacked_ports",
        ),
        decimals={"syn_per_s": 1, "answered_share": 2},
        caps={"top_sources": 60},
    ),
}


def format_for(fmt: str | None, out: str | os.PathLike | None) -> str:
    """The output format: ``fmt`` when given, else from the extension of ``out``, else ``table``."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
        return fmt
    if out is None or is_dir_target(out):
        return "table" if out is None else "parquet"
    ext = Path(out).suffix.lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    what = f"the extension {ext}" if ext else "a name without extension"
    raise EtwToolsError(
        f"cannot tell the output format from {what}: name it .csv, .json/.jsonl/.ndjson, "
        ".parquet or .txt, or give -f FORMAT",
        path=out,
    )


def is_dir_target(out: str | os.PathLike) -> bool:
    """``out`` names a folder (ends with a slash, or exists as one)."""
    return os.fspath(out).endswith(("/", os.sep)) or Path(out).is_dir()


def terminal_width() -> int | None:
    """Width for tables on stdout: $COLUMNS, else the terminal on stdout or stderr, else no limit."""
    try:
        n = int(os.environ.get("COLUMNS", ""))
        if n > 0:
            return n
    except ValueError:
        pass
    for fd in (1, 2):
        try:
            if os.isatty(fd):
                return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return None


# ---------------------------------------------------------------------------------------------------
# cells


#: Times in CSV and JSON: ISO 8601 with nanoseconds.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.9fZ"


def text_ready(df: pl.DataFrame, times: bool = True) -> pl.DataFrame:
    """Full-precision text form for CSV/JSON: times as ISO 8601 with nanoseconds (unless ``times`` is False:
    the CSV writer formats them itself), nested values as text."""
    import polars as pl

    cols = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime) and times:
            cols.append(pl.col(name).dt.strftime(TIME_FORMAT).alias(name))
        elif isinstance(dtype, (pl.List, pl.Array, pl.Struct, pl.Binary, pl.Object)):
            cols.append(pl.col(name).map_elements(repr, return_dtype=pl.Utf8).alias(name))
        else:
            cols.append(pl.col(name))
    return df.select(cols)


def fixed_point(x: pl.Expr, decimals: int) -> pl.Expr:
    """Floats as fixed-point text with ``decimals`` digits (never scientific notation); null stays null."""
    import polars as pl

    as_decimal = x.cast(pl.Decimal(38, decimals), strict=False).cast(pl.Utf8)
    return (
        pl.when(x.is_nan())
        .then(pl.lit("NaN"))
        .when(x.is_infinite())
        .then(pl.when(x > 0).then(pl.lit("inf")).otherwise(pl.lit("-inf")))
        .when(x.abs() < 1e15)
        .then(as_decimal)
        .otherwise(x.cast(pl.Decimal(38, 0), strict=False).cast(pl.Utf8).fill_null(x.cast(pl.Utf8)))
    )


def _cell(name: str, dtype: pl.DataType, view: View) -> pl.Expr:
    """A column as text for people (null: empty)."""
    import polars as pl

    c = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        e = c.dt.strftime("%Y-%m-%d %H:%M:%S%.6f")
    elif dtype.is_float():
        e = fixed_point(c, view.decimals.get(name, 3))
    elif dtype == pl.Utf8:
        e = c.str.replace_all(r"[\r\n\t]", " ")
    elif isinstance(dtype, (pl.List, pl.Array, pl.Struct, pl.Binary, pl.Object)):
        e = c.map_elements(repr, return_dtype=pl.Utf8)
    else:
        e = c.cast(pl.Utf8)
    return e.fill_null("")


def _data_width(df: pl.DataFrame, name: str, view: View) -> int:
    """Widest cell of a column as _cell shows it, without formatting the whole column where avoidable."""
    import polars as pl

    dtype = df.schema[name]
    s = df.get_column(name)
    if s.null_count() == len(s):
        return 0
    if isinstance(dtype, pl.Datetime):
        return 26
    if dtype == pl.Boolean:
        return 5 if (~s).any() else 4
    if dtype.is_numeric():  # widest of the smallest and largest value (and NaN/inf)
        ends = pl.DataFrame({name: [s.min(), s.max()]}, schema={name: dtype})
        w = ends.select(_cell(name, dtype, view).str.len_chars().max()).item()
        return max(w, 4 if dtype.is_float() and (s.is_nan().any() or s.is_infinite().any()) else 0)
    if dtype == pl.Utf8:
        return int(s.str.len_chars().max() or 0)
    return int(df.select(_cell(name, dtype, view).str.len_chars().max()).item() or 0)


@dataclass
class Layout:
    """The columns a table shows, their widths, and which column wraps."""

    columns: list[str]
    widths: dict[str, int]
    wrap: str | None
    hidden: list[str]
    right: set[str]
    data: dict[str, int] = field(default_factory=dict)  # widest cell per column (before cutting)


def layout(
    df: pl.DataFrame,
    view: View | None = None,
    width: int | None = None,
    *,
    wide: bool = False,
    columns: Sequence[str] | None = None,
) -> Layout:
    """Choose columns by importance for ``width`` (None: no limit); ``columns`` fixes them, ``wide`` shows all."""
    view = view or View()
    right = {c for c, t in df.schema.items() if t.is_numeric()}
    data = {c: _data_width(df, c, view) for c in df.columns}
    natural = {c: max(len(c), data[c]) for c in df.columns}
    capped = {
        c: max(len(c), min(data[c], view.caps.get(c, _DEFAULT_CAP)))
        if c != view.wrap and not wide
        else natural[c]
        for c in df.columns
    }
    if columns is not None:
        shown = list(columns)
    else:
        order = [c for c in view.importance if c in df.columns]
        order += [c for c in df.columns if c not in order]
        order = [c for c in order if c not in view.internal]
        if wide or width is None:
            shown = order
        else:
            shown, used, reserve = [], 0, 0
            for c in order:
                if c == view.wrap:
                    need = min(natural[c], max(_MIN_WRAP, len(c)))
                    if used + reserve + need + (len(_GAP) if shown else 0) <= width or not shown:
                        reserve = need + (len(_GAP) if shown else 0)
                        shown.append(c)
                    continue
                need = capped[c] + (len(_GAP) if shown or reserve else 0)
                if used + reserve + need <= width or not shown:
                    shown.append(c)
                    used += need
        if view.wrap in shown:  # by importance, the wrapping column last
            shown = [c for c in shown if c != view.wrap] + [view.wrap]
    wrap = view.wrap if shown and shown[-1] == view.wrap and not wide else None
    widths = {c: capped[c] for c in shown}
    if wrap is not None:
        fixed = sum(widths[c] for c in shown[:-1]) + len(_GAP) * (len(shown) - 1)
        room = natural[wrap] if width is None else max(width - fixed, len(wrap), 1)
        widths[wrap] = max(min(natural[wrap], room), len(wrap))
    hidden = [c for c in df.columns if c not in shown and c not in view.internal]
    return Layout(shown, widths, wrap, hidden, right, data)


def _line(lay: Layout, schema: Mapping[str, pl.DataType], view: View) -> pl.Expr:
    import polars as pl

    cells = []
    last = lay.columns[-1]
    for c in lay.columns:
        w = lay.widths[c]
        e = _cell(c, schema[c], view)
        if c == lay.wrap and lay.data.get(c, w + 1) > w:
            indent = "\n" + " " * (
                sum(lay.widths[k] for k in lay.columns[:-1]) + len(_GAP) * (len(lay.columns) - 1)
            )
            pattern = rf"\S.{{0,{w - 1}}}(?:\s+|$)|\S{{{w}}}"
            cells.append(
                e.str.extract_all(pattern).list.eval(pl.element().str.strip_chars_end()).list.join(indent)
            )
            continue
        if lay.data.get(c, w + 1) > w:  # only columns with cells wider than their width are cut
            e = pl.when(e.str.len_chars() > w).then(e.str.slice(0, w - 1) + "…").otherwise(e)
        if c in lay.right:
            e = e.str.pad_start(w)
        elif c != last:
            e = e.str.pad_end(w)
        cells.append(e)
    return pl.concat_str(cells, separator=_GAP).str.strip_chars_end(" ").alias("line")


def _header(lay: Layout) -> bytes:
    def row(cells: list[str]) -> str:
        out = [
            v.rjust(lay.widths[c]) if c in lay.right else v.ljust(lay.widths[c])
            for c, v in zip(lay.columns, cells)
        ]
        return _GAP.join(out).rstrip()

    return (row(lay.columns) + "\n" + row(["-" * lay.widths[c] for c in lay.columns]) + "\n").encode()


# ---------------------------------------------------------------------------------------------------
# writers (binary streams, batch by batch)


def write_table(
    df: pl.DataFrame,
    stream: IO[bytes],
    *,
    view: View | None = None,
    width: int | None = None,
    wide: bool = False,
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Layout:
    """Aligned text, one row per line (the wrapping column continues on the lines under it)."""
    view = view or View()
    lay = layout(df, view, width, wide=wide, columns=columns)
    if not lay.columns:
        return lay
    stream.write(_header(lay))
    expr = _line(lay, df.schema, view)
    for batch in df.iter_slices(batch_rows):
        batch.select(expr).write_csv(stream, include_header=False, quote_style="never")
    return lay


def write_csv(
    df: pl.DataFrame, stream: IO[bytes], *, batch_rows: int = BATCH_ROWS, header: bool = True
) -> None:
    """CSV (with a header line unless ``header`` is False), full precision, times in ISO 8601 with nanoseconds."""
    if df.height == 0 and header:
        text_ready(df).write_csv(stream)
    for i, batch in enumerate(df.iter_slices(batch_rows)):
        text_ready(batch, times=False).write_csv(
            stream, include_header=header and i == 0, datetime_format=TIME_FORMAT
        )


def write_json(df: pl.DataFrame, stream: IO[bytes], *, batch_rows: int = BATCH_ROWS) -> None:
    """JSON lines: one object per row."""
    for batch in df.iter_slices(batch_rows):
        text_ready(batch).write_ndjson(stream)


def write_parquet(df: pl.DataFrame, stream: IO[bytes]) -> None:
    """Parquet (typed columns, for polars, pandas, DuckDB)."""
    df.write_parquet(stream)


def write(
    df: pl.DataFrame,
    fmt: str,
    stream: IO[bytes],
    *,
    view: View | str | None = None,
    width: int | None = None,
    wide: bool = False,
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Layout | None:
    """Write ``df`` to the binary ``stream`` in ``fmt``; ``columns`` selects (any format); returns a table's layout."""
    if columns is not None:
        df = df.select(check_columns(df, columns))
    if fmt == "table":
        v = VIEWS.get(view, View()) if isinstance(view, str) or view is None else view
        return write_table(df, stream, view=v, width=width, wide=wide, columns=columns, batch_rows=batch_rows)
    if fmt == "csv":
        write_csv(df, stream, batch_rows=batch_rows)
    elif fmt == "json":
        write_json(df, stream, batch_rows=batch_rows)
    elif fmt == "parquet":
        write_parquet(df, stream)
    else:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    return None


def write_batches(
    batches: Iterable[pl.DataFrame], fmt: str, stream: IO[bytes], *, columns: Sequence[str] | None = None
) -> None:
    """CSV or JSON lines of a table handed over a batch at a time (each written, then let go: columns such
    as attribution's reasons are made per batch); ``columns`` selects. The same bytes as :func:`write` of
    the whole table when the batches are its slices of ``BATCH_ROWS`` rows."""
    if fmt not in ("csv", "json"):
        raise ValueError(f"only csv and json are written batch by batch, not {fmt!r}")
    for i, batch in enumerate(batches):
        if columns is not None:
            batch = batch.select(check_columns(batch, columns))
        if fmt == "csv":
            write_csv(batch, stream, header=i == 0)
        else:
            write_json(batch, stream)


def check_columns(df: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """``columns`` if all are in ``df``, else an error naming the unknown ones and the choices."""
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise EtwToolsError(
            f"no column {', '.join(repr(c) for c in unknown)} in this table; it has: {', '.join(df.columns)}"
        )
    return list(columns)


# ---------------------------------------------------------------------------------------------------
# destinations


@contextmanager
def _stdout_binary() -> Iterator[BinaryIO]:
    """stdout as bytes; a closed pipe (``| head``) is a BrokenPipeError whoever wrote (polars says OSError)."""
    try:
        sys.stdout.flush()
        stream = sys.stdout.buffer
        yield stream
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        if e.errno == errno.EPIPE or "os error 32" in str(e) or "Broken pipe" in str(e):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe") from None
        raise


@contextmanager
def _file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    try:
        f = open(path, "wb")  # noqa: SIM115
    except OSError as e:
        raise EtwToolsError(f"cannot write: {e.strerror}", path=path) from None
    with f:
        yield f


def refuse_terminal(fmt: str, path: str | os.PathLike | None) -> None:
    """Parquet is binary: never to a terminal."""
    if fmt == "parquet" and path is None and sys.stdout.isatty():
        raise EtwToolsError(
            "Parquet is binary and stdout is a terminal: give -o FILE.parquet, or pipe it "
            "to a program that reads Parquet"
        )


@dataclass
class Output:
    """Where and how a command writes its tables (-f, -o, --columns, --wide)."""

    fmt: str = "table"
    path: str | None = None
    columns: list[str] | None = None
    wide: bool = False
    opener: Callable[[str | os.PathLike], AbstractContextManager[BinaryIO]] | None = None  # default: open()

    @property
    def to_terminal(self) -> bool:
        """Text for people on stdout (where summaries and notes may follow)."""
        return self.fmt == "table" and self.path is None

    @contextmanager
    def open(self, path: str | os.PathLike | None = None) -> Iterator[BinaryIO]:
        """The binary stream to write to: ``path`` (default: -o), else stdout."""
        path = path if path is not None else self.path
        refuse_terminal(self.fmt, path)
        opener = self.opener or _file
        with _stdout_binary() if path is None else opener(path) as stream:  # type: ignore[operator]
            yield stream

    def write(
        self,
        df: pl.DataFrame,
        view: str | None = None,
        path: str | os.PathLike | None = None,
        *,
        main: bool = True,
    ) -> None:
        """Write one table to ``path`` (default: -o, else stdout); --columns applies to the ``main`` table."""
        columns = self.columns if main else None
        to_stdout = path is None and self.path is None
        with self.open(path) as stream:
            lay = write(
                df,
                self.fmt,
                stream,
                view=view,
                wide=self.wide,
                columns=columns,
                width=terminal_width() if to_stdout and not self.wide else None,
            )
        self._hidden(lay, main, columns)

    def write_batches(self, batches: Iterable[pl.DataFrame], path: str | os.PathLike | None = None) -> None:
        """Write one table (csv or json), given a batch at a time, to ``path`` (default: -o, else stdout)."""
        with self.open(path) as stream:
            write_batches(batches, self.fmt, stream, columns=self.columns)

    @staticmethod
    def _hidden(lay: Layout | None, main: bool, columns: list[str] | None) -> None:
        """Say which columns a table left out for the terminal's width."""
        if lay is not None and lay.hidden and main and columns is None:
            shown = ", ".join(lay.hidden[:8]) + (", ..." if len(lay.hidden) > 8 else "")
            n = len(lay.hidden)
            log.info(
                f"{n} column{'s' if n > 1 else ''} not shown for the width ({shown}): --wide shows all, "
                "--columns a,b,c picks"
            )
