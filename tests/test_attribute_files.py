"""``attribute_files``: the library call the ``attribute`` command makes (same rows), reading the trace
once and keeping its NIC addresses; the matcher registry and the evidence API the explainer reads."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import etwtools
from etwtools import output
from etwtools.attribution import attribute, attribute_files
from etwtools.attribution.matchers import COMMON, MATCHERS
from etwtools.attribution.reasons import RENDERERS
from etwtools.cli import cli

DATA = Path(__file__).resolve().parent.parent / "data"


def test_the_command_prints_exactly_what_attribute_files_returns(tmp_path, demo):
    """The demo: the CLI's CSV rows are attribute_files' frames, byte for byte."""
    result = attribute_files(DATA / "kernel.csv", DATA / "capture.pcap", [DATA / "tasklist.txt"])
    with open(tmp_path / "lib.csv", "wb") as f:
        output.write(result.frames, "csv", f, view="attribute")
    cli_out = CliRunner().invoke(cli, ["attribute", *demo, "-f", "csv"])
    assert cli_out.exit_code == 0, cli_out.stderr
    assert pl.read_csv(io.StringIO(cli_out.stdout)).height == result.frames.height == 105_558
    assert cli_out.stdout == (tmp_path / "lib.csv").read_text()
    hit = result.frames.filter(pl.col("frame") == 105540).row(0, named=True)
    assert (hit["pid"], hit["process"], hit["confidence"]) == (2136, "store.exe", "high")


def test_attribute_files_keeps_the_traces_nic_addresses(corpus):
    """perfview x64 has SystemConfig NIC events: its seven addresses are the traced host's, where the
    events alone would infer only the four the TcpIp/UdpIp events use."""
    etl, pcap = corpus / "perfview" / "net.4.5.2.x64.etl", corpus / "pktmon" / "demikernel-PktMon.pcapng"
    r = attribute_files(etl, pcap)
    assert r.local_addrs_source == "nic events"
    assert sorted(r.local_addrs) == sorted(
        [
            "10.128.0.55",
            "127.0.0.1",
            "::1",
            "fe80::950:d6de:fa84:4cc0",
            "fe80::5efe:a80:37",
            "2001:4898:f0:26:950:d6de:fa84:4cc0",
            "2001:4898:f0:26:b18e:e85f:db5d:8e8",
        ]
    )
    events_only = attribute(etwtools.read_events(etl), etwtools.read_frames(pcap))
    assert events_only.local_addrs_source == "inferred" and len(events_only.local_addrs) == 4
    assert r.why_nothing() == "none of the capture's 114 frames is TCP or UDP"


def test_a_csv_trace_without_a_capture_is_a_missing_input():
    with pytest.raises(etwtools.errors.MissingInputError, match="--pcap FILE is needed"):
        attribute_files(DATA / "kernel.csv")


def test_every_matcher_has_a_renderer_and_a_rule():
    """The extension point: a new evidence source is one MATCHERS entry and one RENDERERS entry."""
    assert [m.method for m in MATCHERS] == list(RENDERERS)
    assert all(m.rule.endswith(".") for m in MATCHERS)
    assert list(COMMON) == ["fid", "odir", "rank", "e_eid", "method", "dist"]


def test_evidence_api_gives_the_chosen_event_and_its_neighbours():
    """The evidence the explainer reads, through the public API: demo frame 105540 (fid 105539)."""
    r = attribute_files(DATA / "kernel.csv", DATA / "capture.pcap", [DATA / "tasklist.txt"])
    ev = r.evidence
    fid = 105539
    rows = ev.orientations(fid)
    assert rows["odir"].to_list() == ["out"]
    chosen = ev.chosen_event(fid)
    same = ev.events_like(rows.row(0, named=True), "protocol", "l_addr", "l_port", "r_addr", "r_port")
    assert chosen in same["eid"].to_list() and same.filter(pl.col("eid") == chosen)["pid"][0] == 2136
    assert ev.direction_source(fid) == "local addresses"
    assert any("store.exe" in line for line in ev.process_history(2136, same["t"][0]))
    assert_frame_equal(ev.events_like({"pid": 2136}, "pid", usable=False), ev.events_without_pid.clear())
