"""The one PID -> process-at-a-time rule (parsers/lifetimes.py), on a processes table built here: a PID
reused by a second instance, an instance alive from before the trace, one still alive at its end."""

from __future__ import annotations

import polars as pl

from etwtools.parsers.lifetimes import process_at

PROCS = pl.DataFrame(
    {
        "pid": [7, 7, 9, None],
        "start": [None, 500, 100, 0],
        "end": [300, None, 200, None],
        "image": ["old.exe", "new.exe", "short.exe", "nopid.exe"],
    }
)


def test_the_instance_alive_at_each_time():
    q = pl.DataFrame(
        {"pid": [7, 7, 7, 7, 9, 9, 9, 8, None, 7], "time": [0, 300, 301, 500, 99, 150, 201, 150, 150, None]}
    )
    assert process_at(q, PROCS, grace_s=0)["image"].to_list() == [
        "old.exe",
        "old.exe",
        None,
        "new.exe",
        None,
        "short.exe",
        None,
        None,
        None,
        None,
    ]


def test_names_kept_for_the_grace_period_after_the_end():
    """By default a name lasts 5 s after its End, never past the start of the PID's next instance."""
    q = pl.DataFrame(
        {"pid": [7, 7, 9, 9, 9], "time": [301, 499, 201, 200 + 5_000_000_000, 200 + 5_000_000_001]}
    )
    out = process_at(q, PROCS, after_end=True)
    assert out["image"].to_list() == ["old.exe", "old.exe", "short.exe", "short.exe", None]
    assert out["after_end_ns"].to_list() == [1, 199, 1, 5_000_000_000, None]
    q2 = pl.DataFrame({"pid": [7], "time": [500]})
    assert process_at(q2, PROCS)["image"].to_list() == ["new.exe"]


def test_rows_keep_their_order_when_times_are_not_sorted():
    q = pl.DataFrame({"pid": [7, 9, 7], "time": [10_000, 150, 5]})
    assert process_at(q, PROCS, columns=("image", "start"))["image"].to_list() == [
        "new.exe",
        "short.exe",
        "old.exe",
    ]
