"""``attribute`` with event logs: several --etl files told apart by content, --host, and a kernel trace beside a log.

Real files: the OTRF log4shell pair (a pcapng and the same workstation's Sysmon and Security logs as two
Azure Monitor JSON exports), purplesharp's multi-host log, data/ (the demo case) and the corpus .evtx.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from etwtools.cli import cli

DATA = Path(__file__).resolve().parent.parent / "data"
L4S = "otrf/log4shell_cve2021_44228_java_serialized"


def run(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_sysmon_and_security_logs_with_a_capture(corpus):
    d = corpus / L4S
    r = run(
        "attribute",
        "--etl",
        d / "sysmon_log4shell_cve2021_44228_java_serialized_object_2022-05-13045800.json",
        "--etl",
        d / "securityauditing_log4shell_cve2021_44228_java_serialized_object_2022-05-13045400.json",
        "--pcap",
        d / "pcap_log4shell_cve2021_44228_java_serialized_2022-05-13045800.pcapng",
        "-f",
        "csv",
    )
    assert r.exit_code == 0, r.output
    csv = r.stdout
    df = pl.read_csv(io.StringIO(csv), infer_schema_length=None)
    assert df.height == 125 and "remote_name" in df.columns and "header_pid" in df.columns
    assert (df["confidence"] == "high").sum() == 125
    # the attacked Tomcat service, then the PowerShell that the exploit started, as both logs name them
    counts = dict(
        df.group_by("pid", "process").len().select(pl.format("{} {}", "pid", "process"), "len").rows()
    )
    assert counts == {"3936 tomcat9.exe": 41, "2084 powershell.exe": 84}
    assert df["method"].str.starts_with("sysmon").any() and "Security event 5156" in " ".join(
        df["reason"].to_list()
    )
    err = r.stderr
    assert "Sysmon: clock offset capture - log (Sysmon UtcTime)" in err
    assert "Security: clock offset capture - log (record time)" in err
    assert "host WORKSTATION5: the only host in the logs" in err


def test_host_option_and_unknown_host(corpus, tmp_path):
    with zipfile.ZipFile(corpus / "otrf/purplesharp_ad_playbook_I/host_purplesharp_ad_playbook_I.zip") as z:
        log = Path(z.extract(z.namelist()[0], tmp_path))
    cap = corpus / "otrf/purplesharp_ad_playbook_I/purplesharp_ad_playbook_I_2020-10-22042947.cap"
    r = run("attribute", "--etl", log, "--pcap", cap, "--frame", "1118")
    assert r.exit_code == 0, r.output
    assert "frame 1118: TCP 172.18.39.5:58184 -> 172.18.38.5:49674" in r.stdout
    assert (
        "answer: PID 720 lsass.exe" in r.stdout
        and "remote name (Sysmon DNS query): mordordc.theshire.local" in r.stdout
    )
    r = run("attribute", "--etl", log, "--pcap", cap, "--host", "WORKSTATION9")
    assert r.exit_code == 1
    assert (
        r.stderr.strip().splitlines()[-1].startswith("error: --host WORKSTATION9: the logs name no such host")
    )
    r = run("attribute", "--etl", log, "--pcap", cap, "--host", "workstation6", "-f", "json")
    assert r.exit_code == 0 and "host WORKSTATION6.theshire.local: given with --host" in r.stderr


def test_kernel_trace_beside_an_event_log(corpus):
    """The demo case's kernel trace with a Sysmon log of another host: the kernel trace still answers frame
    105540 (store.exe), the log none, and both sources are reported."""
    r = run(
        "attribute",
        "--etl",
        DATA / "kernel.csv",
        "--etl",
        corpus / "eventlogs/python-evtx/issue_43.evtx",
        "--pcap",
        DATA / "capture.pcap",
        "--tasklist",
        DATA / "tasklist.txt",
        "-f",
        "csv",
    )
    assert r.exit_code == 0, r.output
    df = pl.read_csv(io.StringIO(r.stdout), infer_schema_length=None)
    hit = df.filter(pl.col("frame") == 105540).row(0, named=True)
    assert (hit["pid"], hit["process"], hit["confidence"]) == (2136, "store.exe", "high")
    assert "clock offset capture - trace" in r.stderr
    assert "frames answered from the kernel trace" in r.stderr


def test_two_kernel_traces_are_refused(tmp_path):
    r = run(
        "attribute",
        "--etl",
        DATA / "kernel.csv",
        "--etl",
        DATA / "kernel.csv",
        "--pcap",
        DATA / "capture.pcap",
    )
    assert r.exit_code == 1 and "one kernel trace at a time" in r.stderr
