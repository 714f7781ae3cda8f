"""Every event of an ETL file as one lazy polars table, filters applied to the record headers first.

:func:`scan_events` gives a ``pl.LazyFrame`` of the long table (``generic.ALL_EVENTS``: the header
columns, ``decoder``, and ``fields`` as one JSON text per event, the rows of ``events --all -f json``),
one table for every event type so that queries may span types; typed columns per event type are
``columnar.iter_events``'s. polars hands the query's filter and columns to the scan (an IO plugin):

- a filter on header columns only (``provider``, ``event_id``, ``opcode``, ``version``, ``pid``, ``tid``,
  ``time``, ``record``) is evaluated on the record headers of each batch, and the records it rejects are
  never decoded; a filter that reads ``decoder`` or ``fields`` is applied after decoding;
- a query that selects neither ``decoder`` nor ``fields`` decodes no payload at all;
- ``providers``/``ids`` select records before anything else, as in ``iter_events``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import polars as pl

from ..diagnostics import report_for
from .columnar import CHUNK, HEADER, Decoder, _batches, _header, _report, _Selection, long_form
from .generic import ALL_EVENTS
from .records import RecordBatch

_DECODED = ("decoder", "fields")


def _providers(dec: Decoder, batch: RecordBatch) -> pl.Series:
    """The provider name of every record of a batch (the event types' names; no payload is decoded)."""
    keys = dec.keys(batch)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    names = [dec.type_of(batch, k, int(i)).provider for k, i in zip(uniq.tolist(), first.tolist())]
    return pl.Series(names, dtype=pl.Utf8).gather(inverse.ravel())


def _rows(
    path: str | os.PathLike,
    providers: list[str] | None,
    ids: list[int] | None,
    columns: list[str] | None,
    predicate: pl.Expr | None,
    n_rows: int | None,
) -> Iterator[pl.DataFrame]:
    decode = columns is None or any(c in columns for c in _DECODED)
    on_headers = predicate is not None and set(predicate.meta.root_names()) <= set(HEADER)
    dec, select = Decoder(report_for(path)), _Selection(providers, ids)
    left = n_rows
    for whole in _batches(path, None, CHUNK, dec.skipped):
        dec.take_manifests(whole)
        batch = select(whole, dec)
        if batch is None:
            continue
        hdr = None
        if on_headers:
            assert predicate is not None  # on_headers says so
            hdr = _header(batch, _providers(dec, batch))
            keep = hdr.select(predicate.fill_null(False)).to_series().to_numpy()
            if not keep.any():
                continue
            if not keep.all():
                batch, hdr = batch.select(keep), hdr.filter(keep)
        if decode:
            frame = long_form(dec.decode(batch))
        else:
            frame = hdr if hdr is not None else _header(batch, _providers(dec, batch))
        if predicate is not None and not on_headers:
            frame = frame.filter(predicate)
        if columns is not None:
            frame = frame.select(columns)
        if left is not None:
            frame = frame.head(left)
            left -= frame.height
        if frame.height:
            yield frame
        if left == 0:
            return
    _report(path, dec)


def scan_events(
    path: str | os.PathLike,
    providers: Iterable[str] | None = None,
    ids: Iterable[int] | None = None,
) -> pl.LazyFrame:
    """Every event of an ETL file as a lazy long table (``ALL_EVENTS`` columns, ``fields`` as JSON text).

    ``providers``: names or GUIDs; ``ids``: event ids (kernel events: opcodes). A filter on the header
    columns is applied to the record headers before decoding, so records it rejects are never decoded.
    """
    from polars.io.plugins import register_io_source

    from .container import EtlFile

    with EtlFile(path):  # not an ETL file: said now, not at collect()
        pass
    wanted = list(providers) if providers is not None else None
    chosen = [int(i) for i in ids] if ids is not None else None

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        yield from _rows(path, wanted, chosen, with_columns, predicate, n_rows)

    return register_io_source(source, schema=ALL_EVENTS, explain_name="etwtools.scan_events")
