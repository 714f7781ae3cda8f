"""Clock offset between a capture and a trace (capture clock minus trace clock), found from the data.

Candidate matches are (frame, event) pairs with the same protocol and 5-tuple (UDP and TCP: and the
same size). Their time differences are voted into a histogram over a +-14 h window (every time-zone
difference fits in it); each bin's vote is the number of DISTINCT events and frames in it, so a burst
cannot outvote many independent matches. The winning bin is refined to the median of its inliers.
Wrong candidates (a 5-tuple reused, periodic traffic) spread over many bins and lose the vote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from .parsers.units import NS_PER_S as NS

#: Largest plausible |capture - trace| offset: time zones go from UTC-12 to UTC+14.
WINDOW_NS = 14 * 3600 * NS + 30 * 60 * NS
#: Histogram bin width.
BIN_NS = 50_000_000
#: Cap on the number of candidate pairs per key (events are thinned, frames kept: every kept event
#: still has its true frame, so the true offset keeps its votes).
PAIRS_PER_KEY = 20_000
#: Cap on the total number of candidate pairs.
PAIRS_TOTAL = 4_000_000
_QUARTER_HOUR_NS = 15 * 60 * NS
#: A drift between the clocks is fitted from at least this many matches ...
DRIFT_MIN_SUPPORT = 10
#: ... and applied only when it moves the offset by more than this over the capture.
DRIFT_MIN_NS = 2_000_000
#: Pairs used to fit the drift.
DRIFT_SAMPLE = 100_000
#: Support a sampled estimate needs before it is verified on all frames instead of voted again on all.
SAMPLE_MIN_SUPPORT = 100
#: Rounds of fit-the-line, take-its-inliers (each round follows the line further from where it started).
DRIFT_ROUNDS = 12


def format_ns(ns: int | None) -> str:
    """UTC text of a ns timestamp with all its significant sub-second digits (at least microseconds)."""
    if ns is None:
        return "?"
    import datetime as _dt

    sec, frac = divmod(int(ns), NS)
    base = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=sec)
    digits = f"{frac:09d}".rstrip("0").ljust(6, "0")
    return f"{base:%Y-%m-%d %H:%M:%S}.{digits} UTC"


@dataclass
class OffsetEstimate:
    """The offset found, how many distinct matches support it, and what was voted on."""

    offset_ns: int
    support: int
    candidates: int  # candidate pairs voted
    runner_up: int  # support of the best other bin (far from the winner)
    spread_ns: int  # median absolute deviation of the inliers
    drift_ppm: float = 0.0  # capture clock rate minus trace clock rate (0 when not significant)
    reference_ns: int = 0  # capture time at which offset_ns holds exactly when drifting

    def at(self, t_capture: pl.Expr) -> pl.Expr:
        """The offset (ns) at capture time ``t_capture`` (an Int64 ns expression)."""
        if not self.drift_ppm:
            return pl.lit(self.offset_ns, pl.Int64)
        return pl.lit(self.offset_ns, pl.Int64) + (
            (t_capture - self.reference_ns).cast(pl.Float64) * (self.drift_ppm * 1e-6)
        ).round(0).cast(pl.Int64)

    def describe(self) -> str:
        drift = (
            f"; clocks drift apart by {self.drift_ppm:+.1f} ppm, offset given at "
            f"{format_ns(self.reference_ns)}"
            if self.drift_ppm
            else ""
        )
        return (
            f"{self.offset_ns / NS:+.6f} s (supported by {self.support:,} match"
            f"{'es' if self.support != 1 else ''} of {self.candidates:,} candidate pair"
            f"{'s' if self.candidates != 1 else ''}"
            f"{f'; next best offset has {self.runner_up:,}' if self.runner_up else ''}{drift})"
        )


def _empty_pairs() -> pl.DataFrame:
    return pl.DataFrame(schema={"fid": pl.Int64, "eid": pl.Int64, "diff": pl.Int64, "t_f": pl.Int64})


def candidate_pairs(frames: pl.DataFrame, events: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Join oriented frames (``fid``, ``t``, keys) with events (``eid``, ``t``, keys) on ``keys``.

    Returns ``fid``, ``eid``, ``diff`` (frame time minus event time, ns) within the +-14 h window, and
    ``t_f`` (the frame's time).
    Groups with more than :data:`PAIRS_PER_KEY` pairs have their events thinned evenly; :func:`estimate`
    then re-checks the best offsets against all frames and events.
    """
    return _candidate_pairs(frames, events, keys)[0]


def _candidate_pairs(
    frames: pl.DataFrame, events: pl.DataFrame, keys: list[str]
) -> tuple[pl.DataFrame, bool]:
    if not frames.height or not events.height:
        return _empty_pairs(), False
    # only the events of keys some frame has can pair (cheaper than grouping every event)
    events = events.join(frames.select(keys).unique(), on=keys, how="semi", maintain_order="left")
    fc = frames.group_by(keys).agg(pl.len().alias("n_f"))
    ec = events.group_by(keys).agg(pl.len().alias("n_e"))
    counts = fc.join(ec, on=keys, how="inner")
    if not counts.height:
        return _empty_pairs(), False
    prod = counts["n_f"].cast(pl.Int64) * counts["n_e"].cast(pl.Int64)
    total = int(prod.sum())
    per_key = PAIRS_PER_KEY
    if total > PAIRS_TOTAL:
        per_key = max(1_000, PAIRS_PER_KEY * PAIRS_TOTAL // total)
    thinned = bool((prod > per_key).any())
    ev = events.select(keys + ["eid", pl.col("t").alias("t_e")])
    if thinned:
        big = (
            counts.filter(prod > per_key)
            .with_columns(
                ((pl.col("n_f").cast(pl.Int64) * pl.col("n_e") + per_key - 1) // per_key).alias("stride")
            )
            .select(keys + ["stride"])
        )
        few = ev.join(big, on=keys, how="anti")
        many = (
            ev.join(big, on=keys, how="inner")
            .with_columns(pl.int_range(pl.len()).over(keys).alias("_rank"))
            .filter(pl.col("_rank") % pl.col("stride") == 0)
            .select(keys + ["eid", "t_e"])
        )
        ev = pl.concat([few, many])
    fr = frames.select(keys + ["fid", pl.col("t").alias("t_f")])
    pairs = fr.join(ev, on=keys, how="inner")
    pairs = pairs.select("fid", "eid", (pl.col("t_f") - pl.col("t_e")).alias("diff"), "t_f").filter(
        pl.col("diff").abs() <= WINDOW_NS
    )
    return pairs, thinned


def _vote(pairs: pl.DataFrame, shift: int) -> pl.DataFrame:
    return (
        pairs.with_columns(((pl.col("diff") + shift) // BIN_NS).alias("bin"))
        .group_by("bin")
        .agg(
            pl.col("eid").n_unique().alias("n_e"),
            pl.col("fid").n_unique().alias("n_f"),
            pl.col("diff").median().alias("center"),
        )
        .with_columns(pl.min_horizontal("n_e", "n_f").alias("score"), pl.lit(shift).alias("shift"))
    )


def _votes(pairs: pl.DataFrame) -> pl.DataFrame:
    """Bins of two grids half a bin apart, best first: support, then nearest a quarter hour, then 0."""
    votes = pl.concat([_vote(pairs, 0), _vote(pairs, BIN_NS // 2)])
    return votes.with_columns(
        (((pl.col("center") + _QUARTER_HOUR_NS / 2) % _QUARTER_HOUR_NS) - _QUARTER_HOUR_NS / 2)
        .abs()
        .alias("tz_residual"),
        pl.col("center").abs().alias("abs_center"),
    ).sort(["score", "tz_residual", "abs_center"], descending=[True, False, False])


def _inliers(pairs: pl.DataFrame, center: float, half: int) -> pl.DataFrame:
    """One pair per event and per frame (the closest to ``center``) within ``half`` of it."""
    c = round(center)
    return (
        pairs.filter((pl.col("diff") - c).abs() <= half)
        .with_columns((pl.col("diff") - c).abs().alias("_d"))
        .sort("_d")
        .unique("eid", keep="first", maintain_order=True)
        .unique("fid", keep="first", maintain_order=True)
    )


def _refine(pairs: pl.DataFrame, center: float) -> tuple[int, int, int]:
    inl = _inliers(pairs, center, BIN_NS)
    center = float(inl["diff"].median())
    inl = _inliers(pairs, center, BIN_NS)
    offset = round(float(inl["diff"].median()))
    spread = int((inl["diff"] - offset).abs().median() or 0)
    return offset, inl.height, spread


def _distinct_centers(votes: pl.DataFrame, k: int) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    for c, score in votes.select("center", "score").iter_rows():
        if all(abs(c - o) > BIN_NS for o, _ in out):
            out.append((c, score))
        if len(out) >= k:
            break
    return out


def estimate_offset(pairs: pl.DataFrame, votes: pl.DataFrame | None = None) -> OffsetEstimate | None:
    """The most supported offset among candidate pairs (``fid``, ``eid``, ``diff``); None without pairs."""
    if not pairs.height:
        return None
    if votes is None:
        votes = _votes(pairs)
    best = _distinct_centers(votes, 2)
    offset, support, spread = _refine(pairs, best[0][0])
    runner = best[1][1] if len(best) > 1 else 0
    return OffsetEstimate(
        offset_ns=offset, support=support, candidates=pairs.height, runner_up=runner, spread_ns=spread
    )


def _nearest_within_bin(f: pl.DataFrame, e: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Each frame (shifted time ``_tt``) with its nearest same-key event (time ``_on``) within a bin, or nulls."""
    f = f if f["_tt"].is_sorted() else f.sort("_tt")  # (callers may give them in time order)
    e = e if e["_on"].is_sorted() else e.sort("_on")
    return f.join_asof(
        e,
        left_on="_tt",
        right_on="_on",
        by=keys,
        strategy="nearest",
        tolerance=BIN_NS,
        check_sortedness=False,
    )


def _matches_at(frames: pl.DataFrame, events: pl.DataFrame, keys: list[str], center: int) -> pl.DataFrame:
    """Pairs (fid, eid, diff) of every frame with its nearest same-key event within a bin of ``center``."""
    f = frames.select(keys + ["fid", (pl.col("t") - center).alias("_tt"), pl.col("t").alias("t_f")])
    e = events.select(keys + ["eid", pl.col("t").alias("t_e"), pl.col("t").alias("_on")])
    m = _nearest_within_bin(f, e, keys)
    return m.filter(pl.col("eid").is_not_null()).select(
        "fid", "eid", (pl.col("t_f") - pl.col("t_e")).alias("diff"), "t_f"
    )


def estimate(
    frames: pl.DataFrame, events: pl.DataFrame, keys: list[str], pairs: pl.DataFrame | None = None
) -> tuple[OffsetEstimate | None, pl.DataFrame]:
    """Offset from frames (``fid``, ``t``, keys) and events (``eid``, ``t``, keys), and the candidate pairs.

    When the vote is close, or pairs had to be thinned, the best few offsets are checked against ALL
    frames and events (each frame with its nearest same-key event): the offset matching most wins.
    """
    if pairs is None:
        pairs, thinned = _candidate_pairs(frames, events, keys)
    else:
        thinned = False
    if not pairs.height:
        return None, pairs
    votes = _votes(pairs)
    top = _distinct_centers(votes, 8)
    if not thinned and (len(top) == 1 or top[1][1] * 2 < top[0][1]):
        return _fit_drift(pairs, estimate_offset(pairs, votes)), pairs
    scored = []
    for c, _ in top:
        m = _matches_at(frames, events, keys, round(c))
        scored.append((_inliers(m, c, BIN_NS).height, c, m))
    scored.sort(key=lambda x: -x[0])
    _, c, m = scored[0]
    offset, support, spread = _refine(m, c)
    m2 = _matches_at(frames, events, keys, offset)
    offset, support, spread = _refine(m2, offset)
    runner = scored[1][0] if len(scored) > 1 else 0
    est = OffsetEstimate(
        offset_ns=offset, support=support, candidates=pairs.height, runner_up=runner, spread_ns=spread
    )
    fitted = _fit_drift(m2, est)
    if fitted is not None and fitted.drift_ppm and "t_f" in pairs.columns:
        # m2 holds only the pairs within a bin of the constant offset: the line's support is in all of them
        fitted = _fit_drift(pl.concat([m2, pairs.select(m2.columns)]).unique(["fid", "eid"]), est)
    return fitted, pairs


def estimate_sampled(
    frames: pl.DataFrame, events: pl.DataFrame, keys: list[str], sample: int
) -> tuple[OffsetEstimate | None, pl.DataFrame]:
    """:func:`estimate` on about ``sample`` of the frames (by ``fid``), then verified on all of them: the
    support is the number of frames whose nearest same-key event lies within a bin of the sampled offset.
    Falls back to all frames when the sample's vote is weak or close, or when the frames are few."""
    if frames.height <= sample:
        return estimate(frames, events, keys)
    step = frames.height // sample + 1
    est, pairs = estimate(frames.filter(pl.col("fid") % step == 0), events, keys)
    if est is None or est.support < SAMPLE_MIN_SUPPORT or est.runner_up * 2 > est.support:
        return estimate(frames, events, keys)
    support = _support_at(frames, events, keys, est.offset_ns)
    return replace(est, support=max(support, est.support), runner_up=est.runner_up * step), pairs


def _support_at(frames: pl.DataFrame, events: pl.DataFrame, keys: list[str], center: int) -> int:
    """How many frames have a same-key event within a bin of ``center``: the frames :func:`_matches_at`
    pairs (its nearest event is within a bin, so its ``diff`` is within a bin of ``center`` too), counted
    from the key and time columns alone."""
    f = frames.select(keys + [(pl.col("t") - center).alias("_tt")])
    e = events.select(keys + [pl.col("t").alias("_on"), pl.lit(True).alias("_hit")])
    m = _nearest_within_bin(f, e, keys)
    return int(m["_hit"].is_not_null().sum())


def _line_inliers(pairs: pl.DataFrame, a: float, b: float, ref: int, half: int) -> pl.DataFrame:
    """One pair per event and per frame, closest to the line a + b * (t_f - ref), within ``half``."""
    resid = (pl.col("diff") - (a + b * (pl.col("t_f") - ref).cast(pl.Float64))).abs()
    return (
        pairs.with_columns(resid.alias("_d"))
        .filter(pl.col("_d") <= half)
        .sort("_d")
        .unique("eid", keep="first", maintain_order=True)
        .unique("fid", keep="first", maintain_order=True)
    )


def _fit_drift(pairs: pl.DataFrame, est: OffsetEstimate | None) -> OffsetEstimate | None:
    """Fit offset = a + b * (t - ref) when the clocks run at measurably different rates.

    Starts from the inliers of the constant offset and widens as the line follows them; the drift is
    kept only when significant (slope > 5 standard errors) and worth more than 2 ms over the capture.
    """
    if est is None or est.support < DRIFT_MIN_SUPPORT or "t_f" not in pairs.columns:
        return est
    a, b, ref = float(est.offset_ns), 0.0, 0
    full = pairs
    if pairs.height > DRIFT_SAMPLE:  # the line needs thousands of points, not millions
        pairs = pairs.filter(pl.col("eid") % (pairs.height // DRIFT_SAMPLE + 1) == 0)
    inl = _line_inliers(pairs, a, 0.0, 0, BIN_NS)
    se = np.inf
    for _ in range(DRIFT_ROUNDS):
        if inl.height < DRIFT_MIN_SUPPORT:
            return est
        t = inl["t_f"].to_numpy().astype(np.int64)
        d = (inl["diff"].to_numpy() - est.offset_ns).astype(np.float64)  # small numbers: well conditioned
        ref = int(np.median(t))
        x = (t - ref).astype(np.float64)
        if not np.ptp(x):
            return est
        b, a = np.polyfit(x, d, 1)
        res = d - (a + b * x)
        a += est.offset_ns
        se = np.sqrt(res.var() * len(x) / max(len(x) - 2, 1) / ((x - x.mean()) ** 2).sum())
        nxt = _line_inliers(pairs, a, b, ref, BIN_NS)
        if nxt.height <= inl.height:
            inl = nxt
            break
        inl = nxt
    span = float(inl["t_f"].max() - inl["t_f"].min()) if inl.height else 0.0
    if not (abs(b) > 5 * se and abs(b) * span > DRIFT_MIN_NS):
        return est
    if full.height != pairs.height:
        inl = _line_inliers(full, a, b, ref, BIN_NS)
    resid = inl["diff"].to_numpy() - (a + b * (inl["t_f"].to_numpy() - ref))
    # the constant-offset runner-up was another stretch of this same line: the runner-up is now the best
    # offset among the candidate pairs the line does not explain
    rest = full.join(inl.select("eid"), on="eid", how="anti").join(inl.select("fid"), on="fid", how="anti")
    runner = int(_votes(rest)["score"].max()) if rest.height else 0
    return OffsetEstimate(
        offset_ns=round(a),
        support=inl.height,
        candidates=est.candidates,
        runner_up=runner,
        spread_ns=round(float(np.median(np.abs(resid)))),
        drift_ppm=float(b * 1e6),
        reference_ns=ref,
    )
