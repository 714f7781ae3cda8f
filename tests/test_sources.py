"""etwtools.sources: opening any input (found by the break-readers review)."""
from __future__ import annotations

import os
import threading

import pytest

import etwtools
from etwtools.errors import EtwToolsError


def test_pipe_or_device_is_a_clear_error_not_an_empty_file(corpus, tmp_path):
    """Bug (break-readers): `etwtools events --etl /dev/stdin` (or <(...)) with a trace piped in said
    'empty file': detect() consumed the pipe, then the ETL reader reopened it. Pipes and devices are now
    refused up front with a reason; a regular file still reads."""
    fifo = tmp_path / "trace.etl"
    os.mkfifo(fifo)
    data = (corpus / "tx/KernelNetwork.etl").read_bytes()

    def feed() -> None:
        try:
            with open(fifo, "wb") as w:
                w.write(data)
        except BrokenPipeError:
            pass

    outcome: list[BaseException] = []

    def read() -> None:
        try:
            etwtools.read_events(fifo)
        except BaseException as exc:
            outcome.append(exc)

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=read, daemon=True)]
    for t in threads:
        t.start()
    threads[1].join(20)            # before the fix the second open of the FIFO blocked for ever
    assert not threads[1].is_alive(), "reading a FIFO hung"
    (exc,) = outcome
    assert isinstance(exc, EtwToolsError) and "not a regular file" in str(exc), exc
    assert "save it to a file first" in str(exc)
    with pytest.raises(EtwToolsError, match=r"^/dev/null: not a regular file"):
        etwtools.detect("/dev/null")
    assert etwtools.read_events(corpus / "tx/KernelNetwork.etl").height == 8923
