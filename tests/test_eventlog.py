"""Windows event logs (.evtx through the evtx library, JSON-lines exports) -> connections, processes, DNS.

Counts are those of the corpus README (counted there with the evtx parser); the JSON flavours of the same
events are built from the real .evtx files in these tests (see test_eventlog_flavours.py).
"""
from __future__ import annotations

import logging

import polars as pl
import pytest

from etwtools.parsers import schema
from etwtools.parsers.eventlog import read_eventlog

LOG4SHELL = "otrf/log4shell_cve2021_44228_java_serialized"


def test_issue_43_sysmon_counts(corpus):
    log = read_eventlog(corpus / "eventlogs/python-evtx/issue_43.evtx")
    assert log.kind == "evtx"
    assert log.event_ids[1] == 356 and log.event_ids[3] == 153 and log.event_ids[5] == 351
    assert log.records == 1730 and log.skipped == {}
    c = log.connections
    assert c.schema == pl.Schema(schema.CONNECTIONS)
    assert c.height == 153 and set(c["sensor"]) == {"sysmon"} and set(c["event_id"]) == {3}
    assert c["pid"].null_count() == 0 and c["process"].null_count() == 0
    # S3 UtcTime is 1-3 s before TimeCreated on this host (corpus README)
    lag = (c["time"] - c["sensor_time"]).dt.total_milliseconds()
    assert lag.min() >= 0 and lag.max() <= 3500
    p = log.processes
    assert p.filter(pl.col("start").is_not_null()).height == 356
    # every exit is matched to its create (by ProcessGuid) or stands alone: none is lost
    assert p["end"].drop_nulls().len() == 351
    assert set(p["source"]) == {"sysmon"}


def test_damaged_chunks_cost_only_those_chunks(corpus, caplog):
    d = corpus / "eventlogs/omerbenamram-evtx"
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        bad = read_eventlog(d / "sample_with_a_bad_chunk_magic.evtx")
    assert bad.records == 270 and bad.skipped == {"damaged chunk": 2}
    assert sum("damaged chunk skipped" in r.getMessage() and "chunk number 6" in r.getMessage()
               for r in caplog.records) == 1
    zero = read_eventlog(d / "sample-with-zero-data-size-event.evtx")
    assert zero.records == 335 and zero.skipped == {"damaged chunk": 1}


def test_no_network_events_says_which_ids(corpus):
    log = read_eventlog(corpus / "eventlogs/omerbenamram-evtx/new-user-security.evtx")
    assert log.connections.height == 0
    assert log.describe() == ("no network events in new-user-security.evtx (Sysmon 3 or Security "
                              "5156/5157/5152/5158/5154); 4 records with event ids: 4720 (1), 4728 (1), 4732 (2)")


def test_azure_security_wfp_orientation(corpus):
    """5156 inbound: Source* is the remote (initiating) side; tomcat accepted on its own port 8080."""
    f = corpus / LOG4SHELL / "securityauditing_log4shell_cve2021_44228_java_serialized_object_2022-05-13045400.json"
    log = read_eventlog(f)
    c = log.connections
    assert c.height == 14 and dict(c.group_by("event_id").len().iter_rows()) == {5156: 5, 5158: 9}
    tomcat = c.filter(pl.col("process") == "tomcat9.exe").row(0, named=True)
    assert (tomcat["direction"], tomcat["action"], tomcat["local_addr"], tomcat["local_port"],
            tomcat["remote_addr"], tomcat["remote_port"], tomcat["pid"]) == \
        ("in", "accept", "192.168.2.5", 8080, "192.168.3.5", 50452, 3936)
    assert tomcat["image_path"].startswith("\\device\\harddiskvolume2\\programdata\\")
    binds = c.filter(pl.col("event_id") == 5158)
    assert set(binds["action"]) == {"bind"} and binds["direction"].null_count() == 9
    # 4688 writes PIDs in hex
    p = log.processes.filter(pl.col("source") == "security")
    assert p.height >= 2 and p["pid"].null_count() == 0
