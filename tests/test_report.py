"""etwtools report: one HTML page, opened in Debian's headless Chromium (a real browser).

Chromium loads the page from the file (``--dump-dom``: the DOM after the page's script ran), with any
network lookup mapped to failure, and logs every console message to stderr (``--enable-logging``): a
console message fails the test. The page's script reads ``#search=N`` from the address as if N had been
typed into its search box, so the dumped DOM shows the evidence panel after a search. A screenshot of
each page goes to test-output/ (git-ignored) for a person to look at.

The corpus case is the truth set of tests/test_truth_sets.py (frames built from the real events of
perfview/net.4.5.2.x86.etl, written with the project's pcap writer). The SYN-attack case is a
netsh-shaped ETL built as tests/test_synattack.py builds them (TCPIP events, 1055/1063, NDIS packets),
with UDP datagrams that match its TCPIP UDP send events so that one process has a lane.
"""

from __future__ import annotations

import html
import json
import os
import re
import struct
import subprocess
import tempfile
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from test_synattack import SERVER, _flood, _trace, s
from test_truth_sets import HOUR, capture_from_events, load_events, write_capture

from etwtools.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ARTIFACTS = Path(os.environ.get("ETWTOOLS_TEST_OUTPUT", ROOT / "test-output"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
]


def browse(chromium: str, page: Path, fragment: str = "", screenshot: str | None = None) -> str:
    """The page's DOM after its script ran in Chromium (fails on any console message); with
    ``screenshot``, also a PNG of it in ARTIFACTS."""
    url = page.resolve().as_uri() + fragment
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
        assert not console, console
        if screenshot:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / screenshot
            subprocess.run(
                [
                    chromium,
                    *FLAGS,
                    f"--user-data-dir={profile}",
                    "--window-size=1400,2200",
                    f"--screenshot={shot}",
                    url,
                ],
                capture_output=True,
                timeout=180,
                check=True,
            )
            assert shot.stat().st_size > 10_000
    return run.stdout


def lanes(dom: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<g class="lane" data-lane="([^"]*)"', dom)]


def evidence(dom: str) -> str:
    m = re.search(r'<pre id="evidence"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    assert m, "no evidence panel"
    return html.unescape(m.group(1))


def page_data(page: Path) -> dict:
    """The JSON data embedded in a report page."""
    m = re.search(
        r'<script id="report-data" type="application/json">(.*?)</script>',
        page.read_text(encoding="utf-8"),
        re.DOTALL,
    )
    return json.loads(m.group(1))


def report(tmp_path, *args: str, name: str = "report.html"):
    out = tmp_path / name
    res = CliRunner().invoke(cli, ["report", *args, "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    return out, res


def self_contained(page: Path) -> None:
    """Nothing the page would fetch: no external script, style, image or frame."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<(script|img|iframe|link)[^>]*\b(src|href)=", text, re.IGNORECASE)
    assert "url(" not in text and "@import" not in text


def test_demo_report_in_chromium(chromium, tmp_path, demo):
    page, res = report(tmp_path, *demo)
    self_contained(page)
    assert "+0.312440 s" in res.stderr and "wrote" in res.stderr
    dom = browse(chromium, page, "#search=105540", screenshot="report-demo.png")
    assert lanes(dom) == ["store.exe (PID 2136)", "(not attributed)"]
    ev = evidence(dom)
    explain = CliRunner().invoke(cli, ["attribute", *demo, "--frame", "105540"]).stdout.strip()
    assert ev.strip() == explain
    assert ev.startswith("Frame 105540: UDP 10.1.1.1:36003 -> 172.23.98.97:2762")
    assert "Answer: PID 2136 store.exe, confidence high" in ev
    # the clock, the talkers and the cap, as the page shows them
    assert "+0.312440 s" in dom and "a single match, check it" in dom
    assert re.search(
        r'<table class="talkers-table" data-lane="store.exe \(PID 2136\)">.*?172\.23\.98\.97.*?2762',
        dom,
        re.DOTALL,
    )
    assert "5,000 of 105,558 frames are listed" in dom
    # every frame of the demo with evidence is listed, the placeholders only up to the cap
    assert all(f'data-frame="{n}"' in browse(chromium, page, f"#search={n}") for n in (105540, 105558))


def test_corpus_truth_case_report_in_chromium(corpus, chromium, tmp_path):
    etl = corpus / "perfview" / "net.4.5.2.x86.etl"
    fr, _ = capture_from_events(load_events(etl), 2 * HOUR + 577_215_664, noise=150)
    pcap = tmp_path / "truth.pcap"
    write_capture(fr, pcap)
    page, _ = report(tmp_path, "--etl", str(etl), "--pcap", str(pcap))
    self_contained(page)
    runner = CliRunner()
    table = runner.invoke(
        cli, ["attribute", "--etl", str(etl), "--pcap", str(pcap), "-f", "csv", "-o", str(tmp_path / "a.csv")]
    )
    assert table.exit_code == 0
    result = pl.read_csv(tmp_path / "a.csv", infer_schema_length=None)
    sure = result.filter(pl.col("confidence").is_in(["high", "medium"]) & pl.col("pid").is_not_null())
    by_lane = (
        sure.with_columns(
            pl.format("{} (PID {})", pl.col("process").fill_null("(name unknown)"), pl.col("pid")).alias(
                "lane"
            )
        )
        .group_by("lane")
        .len()
        .sort(["len", "lane"], descending=[True, False])
    )
    # a frame of the smallest process lane whose whole chain of evidence the page embeds
    data = page_data(page)
    least = sure.filter(pl.col("pid") == sure.group_by("pid").len().sort("len")["pid"][0])["frame"].to_list()
    frame = next(n for n in least if str(n) in data["evidence"])
    dom = browse(chromium, page, f"#search={frame}", screenshot="report-corpus.png")
    assert lanes(dom) == by_lane["lane"].to_list() + ["(not attributed)"]
    assert len(by_lane) >= 2
    explain = runner.invoke(cli, ["attribute", "--etl", str(etl), "--pcap", str(pcap), "--frame", str(frame)])
    assert evidence(dom).strip() == explain.stdout.strip()
    # a frame the page does not list (caps made small through the library call) says so
    from etwtools.attribution import attribute
    from etwtools.parsers.captures import read_capture
    from etwtools.report import write_report
    from etwtools.sources import read_trace

    tr = read_trace(etl)
    frames = read_capture(pcap)
    r = attribute(tr.events, frames, tr.processes, nic_addrs=tr.local_addresses or None)
    small = tmp_path / "small.html"
    facts = write_report(r, frames, small, max_frames=50, max_explained=5)
    assert (facts.frames_listed, facts.frames_explained, facts.frames) == (50, 5, frames.height)
    dom = browse(chromium, small)
    listed = [int(n) for n in re.findall(r'<tr class="row" data-frame="(\d+)"', dom)]
    missing = next(n for n in range(1, frames.height + 1) if n not in listed)
    dom = browse(chromium, small, f"#search={missing}")
    assert f"Frame {missing} is not listed in this page (50 of {frames.height:,} frames are)" in evidence(dom)
    assert f"50 of {frames.height:,} frames are listed" in dom
    embedded = page_data(small)
    assert len(embedded["evidence"]) == 5
    plain = next(n for n in listed if str(n) not in embedded["evidence"])
    ev = evidence(browse(chromium, small, f"#search={plain}"))
    assert ev.startswith(f"Frame {plain}: ") and f"--frame {plain}" in ev


def _udp_send(w, at: float) -> None:
    """The datagram of the trace's TCPIP UDP send event (1169, PID 2020, 48 bytes) at ``at`` + 0.2 s."""
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 28 + 48, 1, 0, 128, 17, 0, bytes([10, 0, 0, 1]), bytes([224, 0, 0, 251])
    )
    frame = (
        bytes.fromhex("01005e0000fb948ed3c5f748")
        + b"\x08\x00"
        + ip
        + struct.pack("!HHHH", 5353, 5353, 56, 0)
        + bytes(48)
    )
    w.ndis_packet(frame, time=s(at + 0.2003), direction="out")


def test_syn_attack_interval_shaded(chromium, tmp_path):
    """A netsh-shaped trace (capture=yes) with SYN-attack resistance from 10 s to 40 s: the timeline has
    one shaded interval; the UDP datagrams of PID 2020 get their lane, the flood is not attributed."""

    def packets(w):
        _flood(w)
        for t in range(0, 101, 5):
            _udp_send(w, t + 0.5)

    _, etl, _ = _trace(
        tmp_path,
        "flood",
        [(1055, 10, (1, 0, 0, 0, 0, 0)), (1063, 40, (1, 0, 0, 0, 0, 0))],
        end=100,
        packets=packets,
    )
    page, _ = report(tmp_path, "--etl", str(etl))
    dom = browse(chromium, page, screenshot="report-synattack.png")
    assert lanes(dom) == ["(name unknown) (PID 2020)", "(not attributed)"]
    rects = re.findall(r'<rect class="syn" x="([\d.]+)" y="[\d.-]+" width="([\d.]+)"', dom)
    assert len(rects) == 1
    # the plot spans the first to the last frame (0.7 s to 100.7 s) over 1000 px from x = 260
    x, width = map(float, rects[0])
    t0, t1 = 0.7003, 100.7003
    assert x == pytest.approx(260 + (10 - t0) / (t1 - t0) * 1000, abs=2)
    assert width == pytest.approx(30 / (t1 - t0) * 1000, abs=2)
    assert "SYN-attack resistance mode (1 interval)" in dom
    assert SERVER in dom


def test_event_log_attribution_report_names_remote_hosts(corpus, chromium, tmp_path):
    """The OTRF purplesharp pair (a real capture and the same lab's Sysmon/Security logs, zipped JSON
    lines) through the command line: the report of the event-log attribution has its processes' lanes,
    each sensor's offset, and the DNS names of the Sysmon queries beside the remote addresses (lsass.exe
    talks to the domain controller mordordc.theshire.local)."""
    from etwtools.logfiles import attribute_with_logs

    pair = corpus / "otrf" / "purplesharp_ad_playbook_I"
    logs, cap = (
        pair / "host_purplesharp_ad_playbook_I.zip",
        pair / "purplesharp_ad_playbook_I_2020-10-22042947.cap",
    )
    page, res = report(tmp_path, "--etl", str(logs), "--pcap", str(cap))
    self_contained(page)
    assert "Sysmon: clock offset" in res.stderr
    dom = browse(chromium, page, screenshot="report-otrf.png")
    r = attribute_with_logs([logs], cap)
    sure = r.frames.filter(pl.col("confidence").is_in(["high", "medium"]) & pl.col("pid").is_not_null())
    want = (
        sure.with_columns(
            pl.format("{} (PID {})", pl.col("process").fill_null("(name unknown)"), pl.col("pid")).alias(
                "lane"
            )
        )
        .group_by("lane")
        .len()
        .sort(["len", "lane"], descending=[True, False])["lane"]
        .to_list()
    )
    assert len(want) >= 4
    assert lanes(dom) == [*want, "(not attributed)"]
    lsass = next(lane for lane in lanes(dom) if lane.startswith("lsass.exe"))
    table = re.search(
        rf'<table class="talkers-table" data-lane="{re.escape(lsass)}">(.*?)</table>', dom, re.DOTALL
    )
    assert table and "172.18.38.5" in table.group(1) and "mordordc.theshire.local" in table.group(1)
    assert "offsets (capture - log)" in dom and "Sysmon: clock offset" in dom
    # the evidence of a frame, as attribute --frame N gives it
    n = sure["frame"][0]
    assert evidence(browse(chromium, page, f"#search={n}")).strip() == r.explain(n).strip()


def test_hostile_names_stay_text(chromium, tmp_path):
    """Process and service names come from the inputs: one that looks like markup ends neither the
    page's data nor its script, and shows as text (the attribution table is built here)."""
    from etwtools.attribution import Attribution
    from etwtools.parsers import schema
    from etwtools.report import write_report

    evil = '</script><!--<script>document.title="owned"</script>'
    t0 = 1_700_000_000 * 10**9
    frames = schema.conform(
        pl.DataFrame(
            {
                "frame": [1, 2],
                "time": [t0, t0 + 10**9],
                "protocol": ["UDP", "UDP"],
                "src_addr": ["192.0.2.1"] * 2,
                "src_port": [5000, 5001],
                "dst_addr": ["192.0.2.2"] * 2,
                "dst_port": [53, 53],
                "payload_len": [10, 10],
                "wirelen": [52, 52],
            }
        ).with_columns(pl.col("time").cast(schema.TIME)),
        schema.FRAMES,
    )
    rows = frames.select(
        "frame", "time", "protocol", "src_addr", "src_port", "dst_addr", "dst_port", "payload_len"
    ).with_columns(
        pl.lit("out").alias("direction"),
        pl.Series("pid", [66, None], dtype=pl.Int64),
        pl.Series("process", [evil, None]),
        pl.Series("services", [evil, None]),
        pl.Series("confidence", ["high", "none"]),
        pl.lit("udp-5tuple-size").alias("method"),
        pl.Series("reason", [evil, "no event"]),
    )
    r = Attribution(
        frames=rows,
        offset_ns=0,
        offset_source="given",
        offset_support=1,
        local_addrs=["192.0.2.1"],
        local_addrs_source="given",
        summary=pl.DataFrame(),
    )
    page = tmp_path / "evil.html"
    write_report(r, frames, page, max_explained=0, title=evil)
    dom = browse(chromium, page, "#search=1")
    assert lanes(dom) == [f"{evil} (PID 66)", "(not attributed)"]
    assert html.unescape(re.search(r"<title>(.*?)</title>", dom, re.DOTALL).group(1)) == evil  # not "owned"
    assert f"Why: {evil}." in evidence(dom)
