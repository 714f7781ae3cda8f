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
    threads[1].join(20)  # before the fix the second open of the FIFO blocked for ever
    assert not threads[1].is_alive(), "reading a FIFO hung"
    (exc,) = outcome
    assert isinstance(exc, EtwToolsError) and "not a regular file" in str(exc), exc
    assert "save it to a file first" in str(exc)
    with pytest.raises(EtwToolsError, match=r"^/dev/null: not a regular file"):
        etwtools.detect("/dev/null")
    assert etwtools.read_events(corpus / "tx/KernelNetwork.etl").height == 8923


def test_one_kind_registry_detects_and_reads_every_kind(corpus, tmp_path):
    """sources.KINDS is the one kind -> (sniff, readers) table: detect() names a registered kind for a
    real file of each kind, and the reader the registry holds for it is the one read_frames/read_trace/
    annotate use (captures are read with the detected kind: no second sniff)."""
    from etwtools.sources import KINDS, detect, read_frames, read_trace

    files = {
        "pcap": "otrf/empire_powerview_ldap_ntsecuritydescriptor/"
        "empire_powerview_ldap_ntsecuritydescriptor_2020-09-21130944.cap",
        "pcapng": "pktmon/demikernel-PktMon.pcapng",
        "etl": "pktmon/demikernel-PktMon.etl",
        "evtx": "eventlogs/omerbenamram-evtx/sysmon.evtx",
        "eventlog-json": "otrf/schtask_create/schtask_create_2020-12-1907003032.json",
    }
    for name, rel in files.items():
        if detect(corpus / rel) != name:  # the OTRF .cap may be NetMon rather than pcap
            assert name == "pcap" and detect(corpus / rel) == "netmon", rel
            name = "netmon"
        kind = KINDS[name]
        assert kind.sniff((corpus / rel).read_bytes()[:65536]), rel
        if kind.frames is not None:
            frames = read_frames(corpus / rel)
            assert frames.height > 0 and frames.equals(kind.frames(corpus / rel))
            interfaces, packets = kind.packets(corpus / rel)
            count = sum(1 for _ in packets)
            assert interfaces and count > 0 and (count == frames.height or name == "etl")  # ETL: appearances
        if kind.trace is not None:
            assert read_trace(corpus / rel).events.equals(kind.trace(corpus / rel).events)
    # the extension fallback: an unrecognisable .etl goes to the ETL reader, which says what is wrong
    bad = tmp_path / "x.etl"
    bad.write_bytes(b"\x01" * 200)
    assert detect(bad) == "etl"
    assert [k for k in KINDS] == [
        "pcap",
        "pcapng",
        "netmon",
        "etl",
        "evtx",
        "eventlog-json",
        "tracerpt",
        "tasklist",
    ]
