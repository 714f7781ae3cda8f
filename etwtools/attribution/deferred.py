"""Reasons written when they are read: what each frame's reason is written from is kept compact (the
chosen candidate's own columns by method, the first fragment a later fragment follows, the few facts that
say why a frame has no candidate) and the sentences are written a slice of frames at a time, from the
input tables, by the renderers of :mod:`.reasons` (the same text as written all at once)."""

from __future__ import annotations

import numpy as np
import polars as pl

from ..parsers import schema
from .constants import NS
from .reasons import RENDERERS, Sources, _Branch, fragment_reason, render

#: Frames whose reasons are written at once when all of them are asked for.
SLICE = 131_072
_EVENT_INPUTS = [
    "time",
    "provider",
    "event",
    "protocol",
    "pid",
    "size",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
]
_FRAME_INPUTS = [
    "time",
    "protocol",
    "payload_len",
    "src_addr",
    "src_port",
    "dst_addr",
    "dst_port",
    "fragment",
]


class DeferredReasons:
    """The reason of every frame (row ``fid`` of the frames), written on demand.

    ``best``: by method, the chosen candidates' columns their renderer reads; ``frags``:
    later fragments that follow their first (fid, f_frame, ip_id); ``dir_source``: per frame, where its
    direction came from (null: unknown); ``nopid_fids``: frames whose 5-tuple only events without a PID
    have; ``none_reason``: why a frame has no candidate (:func:`~.reasons.unmatched_reason`);
    ``after_end``: per frame, ns since the End of a process named through the grace period (or null)."""

    def __init__(
        self,
        best: dict[str, pl.DataFrame],
        frags: pl.DataFrame,
        inputs: tuple[pl.DataFrame | None, pl.DataFrame | None, pl.Expr | None],
        dir_source: pl.Series,
        nopid_fids: pl.Series,
        none_reason: tuple[list[_Branch], pl.Expr],
        after_end: pl.Series,
        grace_s: float,
    ) -> None:
        events, frames, shift = inputs
        ev = schema.conform(events if events is not None else schema.empty(schema.EVENTS), schema.EVENTS)
        fr = schema.conform(frames if frames is not None else schema.empty(schema.FRAMES), schema.FRAMES)
        self.src = Sources(ev.select(_EVENT_INPUTS), fr.select(_FRAME_INPUTS), shift)
        # a later fragment whose first fragment's frame or IP id is unknown keeps its own reason
        frags = frags.filter(pl.col("f_frame").is_not_null() & pl.col("ip_id").is_not_null())
        skip = frags["fid"].implode()
        self.best = {
            m: b.filter(~pl.col("fid").is_in(skip)) if frags.height else b
            for m, b in best.items()
            if b.height
        }
        self.frags, self.dir_source = frags, dir_source
        self.nopid, self.none_reason = nopid_fids.implode(), none_reason
        late = after_end.is_not_null()
        self.late = pl.DataFrame({"fid": np.flatnonzero(late.to_numpy()), "_late": after_end.filter(late)})
        self.grace_s, self.height = grace_s, fr.height

    def write(self, start: int, stop: int, process: pl.Series) -> pl.Series:
        """The reasons of the frames ``start`` .. ``stop - 1`` (``process``: their answers' process)."""
        pieces = [_rows(self.frags, start, stop).select("fid", fragment_reason().alias("reason"))]
        for method, b in self.best.items():
            rows = _rows(b, start, stop)
            pieces += RENDERERS[method](rows, self.src) if rows.height else []
        told = pl.concat(pieces, how="vertical_relaxed").filter(pl.col("reason").is_not_null())
        need = np.ones(stop - start, bool)
        need[told["fid"].to_numpy() - start] = False
        fids = pl.Series("fid", np.flatnonzero(need) + start)
        if len(fids):
            told = pl.concat([told, *render(self._facts(fids), [self.none_reason], keep=["fid"])])
        told = told.sort("fid")
        if not told["fid"].equals(pl.Series("fid", np.arange(start, stop))):
            raise AssertionError(f"one reason per frame expected for frames {start} .. {stop - 1}")
        return self._grace(told, start, stop, process)

    def _facts(self, fids: pl.Series) -> pl.DataFrame:
        """What says why frames ``fids`` have no candidate: protocol, t, dir (known or unknown), fragment,
        _nopid."""
        fr = self.src.fr
        return fids.to_frame().with_columns(
            fr["protocol"].gather(fids),
            fr["time"].gather(fids).cast(pl.Int64).alias("t"),
            pl.when(self.dir_source.gather(fids).is_null())
            .then(pl.lit("unknown"))
            .otherwise(pl.lit("known"))
            .alias("dir"),
            fr["fragment"].gather(fids),
            pl.col("fid").is_in(self.nopid).alias("_nopid"),
        )

    def _grace(self, told: pl.DataFrame, start: int, stop: int, process: pl.Series) -> pl.Series:
        """The reasons of frames named through the grace period say so."""
        late = _rows(self.late, start, stop)
        if not late.height:
            return told["reason"]
        at = np.full(stop - start, -1, np.int64)
        at[late["fid"].to_numpy() - start] = np.arange(late.height)
        after = pl.Series(at).set(pl.Series(at < 0), None)
        secs = (late["_late"].gather(after) * (1 / NS)).round(3)  # (see reasons.ms_text)
        return told.select(
            pl.when(secs.is_not_null() & process.is_not_null())
            .then(
                pl.format(
                    "{}; {} had ended {} s before the event: its name is kept for {} s after its End "
                    "(grace period)",
                    pl.col("reason"),
                    process,
                    secs.cast(pl.Utf8),
                    pl.lit(f"{self.grace_s:g}"),
                )
            )
            .otherwise(pl.col("reason"))
            .alias("reason")
        ).to_series()

    def write_all(self, process: pl.Series) -> pl.Series:
        """Every frame's reason (``process``: every answer's process)."""
        parts = [
            self.write(a, min(a + SLICE, self.height), process.slice(a, SLICE))
            for a in range(0, self.height, SLICE)
        ]
        return pl.concat(parts, rechunk=False) if parts else pl.Series("reason", [], pl.Utf8)


def _rows(df: pl.DataFrame, start: int, stop: int) -> pl.DataFrame:
    """The rows of ``df`` whose fid is in ``start`` .. ``stop - 1`` (a scan: no table is kept sorted)."""
    return df.filter(pl.col("fid").is_between(start, stop, closed="left"))
