"""Writing result tables: aligned text, CSV, JSON lines or Parquet, to stdout or a file."""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where a table is written, not at start-up (fast --help)
    import polars as pl

FORMATS = ("table", "csv", "json", "parquet")


def _text_ready(df: pl.DataFrame) -> pl.DataFrame:
    """Render times as ISO text with nanoseconds and nested values as strings."""
    import polars as pl

    cols = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime):
            cols.append(pl.col(name).dt.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").alias(name))
        elif isinstance(dtype, (pl.List, pl.Struct, pl.Binary)):
            cols.append(pl.col(name).map_elements(repr, return_dtype=pl.Utf8).alias(name))
        else:
            cols.append(pl.col(name))
    return df.select(cols)


def render_table(df: pl.DataFrame, max_width: int = 60) -> str:
    """Aligned plain-text table (no box drawing), one line per row, empty cells for nulls."""
    text = _text_ready(df)
    header = list(text.columns)
    rows = [["" if v is None else str(v) for v in row] for row in text.iter_rows()]
    rows = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    numeric = [df.schema[h].is_numeric() for h in header]

    def fmt(cells: list[str]) -> str:
        out = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return "  ".join(out).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines) + "\n"


def write(df: pl.DataFrame, fmt: str = "table", out: str | Path | None = None,
          stream: IO[str] | None = None) -> None:
    """Write ``df`` in ``fmt`` to the file ``out``, or to ``stream`` (stdout) when ``out`` is None."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "parquet":
        if out is None:
            buf = io.BytesIO()
            df.write_parquet(buf)
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
        else:
            df.write_parquet(out)
        return
    if fmt == "table":
        text = render_table(df)
    elif fmt == "csv":
        text = _text_ready(df).write_csv()
    else:
        text = _text_ready(df).write_ndjson()
    if out is None:
        (stream or sys.stdout).write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
