"""Windows event logs (.evtx through the evtx library, JSON-lines exports) -> connections, processes, DNS.

Counts are those of the corpus README (counted there with the evtx parser); the JSON flavours of the same
events are built from the real .evtx files in these tests (see test_eventlog_flavours.py).
"""

from __future__ import annotations

import logging

import polars as pl

from etwtools.parsers import schema
from etwtools.parsers.eventlog import read_eventlog

LOG4SHELL = "otrf/log4shell_cve2021_44228_java_serialized"
SECURITY_JSON_PATH = (
    f"{LOG4SHELL}/securityauditing_log4shell_cve2021_44228_java_serialized_object_2022-05-13045400.json"
)


def test_issue_43_sysmon_counts(corpus):
    log = read_eventlog(corpus / "eventlogs/python-evtx/issue_43.evtx")
    assert log.kind == "evtx"
    assert log.event_ids[1] == 356 and log.event_ids[3] == 153 and log.event_ids[5] == 351
    assert log.records == 1730 and not log.skipped
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
    both = p.filter(pl.col("start").is_not_null() & pl.col("end").is_not_null())
    assert (both["end"] >= both["start"]).all()
    # a lone exit is one whose ProcessGuid was never created in the log (counted from the raw records)
    import json

    import evtx

    recs = [
        json.loads(r["data"])["Event"]
        for r in evtx.PyEvtxParser(str(corpus / "eventlogs/python-evtx/issue_43.evtx")).records_json()
    ]
    created = {r["EventData"]["ProcessGuid"] for r in recs if r["System"]["EventID"] == 1}
    exited = [r["EventData"]["ProcessGuid"] for r in recs if r["System"]["EventID"] == 5]
    assert p.filter(pl.col("start").is_null()).height == sum(g not in created for g in exited) > 0
    assert both.height == sum(g in created for g in exited)


def test_damaged_chunks_cost_only_those_chunks(corpus, caplog):
    d = corpus / "eventlogs/omerbenamram-evtx"
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        bad = read_eventlog(d / "sample_with_a_bad_chunk_magic.evtx")
    assert bad.records == 270 and bad.skipped.counts == {"damaged chunk(s)": 2}
    (line,) = [r.getMessage() for r in caplog.records]  # one line for the file: both chunks, their messages
    assert line.startswith(f"{d / 'sample_with_a_bad_chunk_magic.evtx'}: skipped 2 damaged chunk(s): ")
    assert "Failed to parse chunk number 6:" in line and "Failed to parse chunk number 10:" in line
    zero = read_eventlog(d / "sample-with-zero-data-size-event.evtx")
    assert zero.records == 335 and zero.skipped.counts == {"damaged chunk(s)": 1}


def test_no_network_events_says_which_ids(corpus):
    log = read_eventlog(corpus / "eventlogs/omerbenamram-evtx/new-user-security.evtx")
    assert log.connections.height == 0
    assert log.describe() == (
        "no network events in new-user-security.evtx (Sysmon 3 or Security "
        "5156/5157/5152/5158/5154); 4 records with event ids: 4720 (1), 4728 (1), 4732 (2)"
    )


def test_azure_security_wfp_orientation(corpus):
    """5156 inbound: Source* is the remote (initiating) side; tomcat accepted on its own port 8080."""
    f = (
        corpus
        / LOG4SHELL
        / "securityauditing_log4shell_cve2021_44228_java_serialized_object_2022-05-13045400.json"
    )
    log = read_eventlog(f)
    c = log.connections
    assert c.height == 14 and dict(c.group_by("event_id").len().iter_rows()) == {5156: 5, 5158: 9}
    tomcat = c.filter(pl.col("process") == "tomcat9.exe").row(0, named=True)
    assert (
        tomcat["direction"],
        tomcat["action"],
        tomcat["local_addr"],
        tomcat["local_port"],
        tomcat["remote_addr"],
        tomcat["remote_port"],
        tomcat["pid"],
    ) == ("in", "accept", "192.168.2.5", 8080, "192.168.3.5", 50452, 3936)
    assert tomcat["image_path"].startswith("\\device\\harddiskvolume2\\programdata\\")
    binds = c.filter(pl.col("event_id") == 5158)
    assert set(binds["action"]) == {"bind"} and binds["direction"].null_count() == 9
    # 4688 writes PIDs in hex
    p = log.processes.filter(pl.col("source") == "security")
    assert p.height >= 2 and p["pid"].null_count() == 0


def test_sysmon_dns_and_process_tables(corpus):
    log = read_eventlog(corpus / "eventlogs/mdecrevoisier/sysmon_1_22__fs03vuln_2012R2.evtx")
    d = log.dns.row(0, named=True)
    assert log.dns.height == 1 and log.dns.schema == pl.Schema(schema.DNS)
    assert (d["query_name"], d["addresses"], d["pid"], d["process"], d["query_status"], d["host"]) == (
        "fs03vuln",
        ["10.23.42.38"],
        2124,
        "psexec64.exe",
        0,
        "fs03vuln.offsec.lan",
    )
    assert log.processes.height == 2 and log.processes.schema == pl.Schema(schema.EVENTLOG_PROCESSES)


def test_security_4688_hex_pids(corpus):
    log = read_eventlog(corpus / "eventlogs/mdecrevoisier/security_4688__win10-02__defender_disabled.evtx")
    p = log.processes
    assert p.height == 9 and set(p["source"]) == {"security"} and p["end"].null_count() == 9
    first = p.filter(pl.col("start") == p["start"].min()).row(0, named=True)
    # the corpus record: NewProcessId 0x242c, creator ProcessId 0x2924, powershell.exe from cmd.exe
    ps = p.filter(pl.col("pid") == 0x242C).row(0, named=True)
    assert (ps["ppid"], ps["image"], ps["parent_image"], ps["user"]) == (
        0x2924,
        "powershell.exe",
        "cmd.exe",
        "OFFSEC\\admmig",
    )
    assert first["start"] is not None


def test_otrf_zip_counts_match_a_plain_json_count(corpus):
    """Read from the zip as published; the counts are checked against json.loads of every line."""
    import json
    import zipfile
    from collections import Counter

    z = corpus / "otrf/purplesharp_ad_playbook_I/host_purplesharp_ad_playbook_I.zip"
    log = read_eventlog(z)
    with zipfile.ZipFile(z) as zf, zf.open(zf.namelist()[0]) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    want = Counter(
        (("sysmon" if "Sysmon" in r["Channel"] else "security"), r["EventID"])
        for r in recs
        if (r["Channel"], r["EventID"])
        in {("Microsoft-Windows-Sysmon/Operational", 3), ("Security", 5156), ("Security", 5158)}
    )
    got = Counter({(s, e): n for s, e, n in log.connections.group_by("sensor", "event_id").len().iter_rows()})
    assert got == want and sum(want.values()) == 452
    assert log.records == len(recs) and log.event_ids == Counter(r["EventID"] for r in recs)
    assert set(log.hosts["host"]) == {
        r["Hostname"] for r in recs if r["EventID"] in (3, 5156, 5158, 1, 5, 22, 4688, 4689)
    }
    # Execution/collector fields never stand in for the subject: every 5156 PID is its ProcessId field
    pids = Counter(int(r["ProcessId"]) for r in recs if r["EventID"] == 5156)
    assert Counter(log.connections.filter(pl.col("event_id") == 5156)["pid"].to_list()) == pids


def test_event_ids_with_qualifiers_are_counted(corpus):
    """system.evtx writes EventID as {"#attributes": {"Qualifiers": ..}, "#text": N}: every record counted."""
    log = read_eventlog(corpus / "eventlogs/omerbenamram-evtx/system.evtx")
    assert log.records == 1881 and sum(log.event_ids.values()) == 1881 and not log.skipped
    assert log.event_ids[6009] > 0  # EventLog 6009, written with Qualifiers 32768


def test_hostile_lines_cost_only_themselves(corpus, tmp_path):
    """Unclosed '"EventID":{' openings and a line of 5 MB without an end among real records."""
    real = (corpus / SECURITY_JSON_PATH).read_bytes()
    f = tmp_path / "hostile.json"
    f.write_bytes(
        real
        + (b'{"EventID":{' + b"x" * 300) * 1000
        + b"\n"
        + b'{"EventID": 5156, "a": "'
        + b"y" * 5_000_000
        + b"\n"
        + real
    )
    log = read_eventlog(f)
    good = read_eventlog(corpus / SECURITY_JSON_PATH)
    assert log.skipped.counts == {"truncated JSON line(s) (not ending with '}')": 2}
    assert log.connections.height == 2 * good.connections.height


def test_sysmon_evtx_with_slack_chunks(corpus):
    """Corpus README: 358 records, S1 227, S3 2, 8 garbage chunks at the end, S3 UtcTime 77.7 days early."""
    log = read_eventlog(corpus / "eventlogs/omerbenamram-evtx/sysmon.evtx")
    assert log.records == 358 and log.skipped.counts == {"damaged chunk(s)": 8}
    assert log.event_ids[1] == 227 and log.connections.height == 2
    lag_days = (
        (log.connections["time"] - log.connections["sensor_time"]).dt.total_seconds() / 86400
    ).to_list()
    assert all(77.6 < d < 77.8 for d in lag_days)


def test_evtx_cut_short_says_so(corpus, tmp_path, caplog):
    """A .evtx cut in the middle of its second chunk: the whole chunks are read, the cut one is reported."""
    src = (corpus / "eventlogs/python-evtx/issue_43.evtx").read_bytes()
    f = tmp_path / "cut.evtx"
    f.write_bytes(src[: 4096 + 65536 + 30000])
    whole = tmp_path / "one_chunk.evtx"
    whole.write_bytes(src[: 4096 + 65536])
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        log = read_eventlog(f)
    assert log.skipped.counts == {"partial chunk(s) at the end (the file is cut short?)": 1}
    assert (
        f"skipped 1 partial chunk(s) at the end (the file is cut short?): 30,000 byte(s) at {4096 + 65536:#x}"
        in (caplog.text)
    )
    assert log.records == read_eventlog(whole).records > 0
