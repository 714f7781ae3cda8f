"""Process names kept for a grace period after the process's End (a socket's last segments can follow
the exit). BUILT with the project's ETL writer: Microsoft-Windows-Kernel-Process ProcessStart/Stop
(manifest layouts v0/v1), kernel UdpIp SendIPV4 v2 events and the NDIS packets they describe."""

from __future__ import annotations

import datetime as dt
import struct

import polars as pl
from click.testing import CliRunner

from etwtools.attribution import attribute
from etwtools.cli import cli
from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.captured_frames import read_etl_frames
from etwtools.parsers.etl.events import read_timeline
from etwtools.parsers.etl.guids import KERNEL_PROCESS

START = dt.datetime(2024, 6, 10, 20, 0, 0, tzinfo=dt.UTC)
HOST, PEER = "10.20.30.40", "10.20.30.1"
FILETIME_EPOCH = 116444736000000000


def _ip4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def _frame(sport: int, size: int) -> bytes:
    udp = struct.pack("!HHHH", sport, 53, 8 + size, 0) + bytes(size)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, _ip4(HOST), _ip4(PEER)) + udp
    return bytes(6) + bytes(6) + b"\x08\x00" + ip


def _trace(tmp_path):
    w = EtlWriter(start=START)
    created = START + dt.timedelta(milliseconds=10)
    ft = FILETIME_EPOCH + int((created - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds() * 10_000_000)
    w.event(
        KERNEL_PROCESS,
        1,
        struct.pack("<IQII", 777, ft, 4, 1) + "\\Device\\X\\dnsq.exe\0".encode("utf-16-le"),
        version=0,
        opcode=1,
        time=created,
        pid=4,
    )
    stop = START + dt.timedelta(seconds=1)
    w.event(
        KERNEL_PROCESS,
        2,
        struct.pack("<IQQIIIQQ", 777, ft, ft + 9_900_000, 0, 1, 30, 0, 0) + b"dnsq.exe\0",
        version=0,
        opcode=2,
        time=stop,
        pid=777,
    )
    # sends while alive, 2 s after the End (inside the default 5 s), 8 s after (outside)
    for k, t in enumerate(
        [
            START + dt.timedelta(milliseconds=100),
            stop + dt.timedelta(seconds=2),
            stop + dt.timedelta(seconds=8),
        ]
    ):
        size = 40 + k
        payload = (
            struct.pack("<II", 777, size)
            + _ip4(PEER)
            + _ip4(HOST)
            + struct.pack(">HH", 53, 50000 + k)
            + struct.pack("<IQ", 0, 0)
        )
        w.kernel_event(0x08, 10, payload, time=t, version=2)
        w.ndis_packet(_frame(50000 + k, size), time=t + dt.timedelta(microseconds=80), direction="out")
    return w.write(tmp_path / "grace.etl")


def test_grace_after_end(tmp_path):
    etl = _trace(tmp_path)
    tl = read_timeline(etl)
    assert tl.processes["image"].to_list() == ["dnsq.exe"]
    # the events table keeps the name for the default grace period too
    assert tl.events["process"].to_list() == ["dnsq.exe", "dnsq.exe", None]
    fr = read_etl_frames(etl)
    r = attribute(tl.events, fr, tl.processes)
    assert r.frames["pid"].to_list() == [777] * 3
    assert r.frames["process"].to_list() == ["dnsq.exe", "dnsq.exe", None]
    reasons = r.frames["reason"].to_list()
    assert "grace" not in reasons[0]
    assert "dnsq.exe had ended 2.0 s before the event: its name is kept for 5 s after its End" in reasons[1]
    strict = attribute(tl.events, fr, tl.processes, grace_s=0)
    assert strict.frames["process"].to_list() == ["dnsq.exe", None, None]
    long = attribute(tl.events, fr, tl.processes, grace_s=10)
    assert long.frames["process"].to_list() == ["dnsq.exe"] * 3
    assert "kept for 10 s" in long.frames["reason"][2]


def test_grace_cli(tmp_path):
    etl = str(_trace(tmp_path))
    for grace, want in (([], ["dnsq.exe", "dnsq.exe", None]), (["--grace", "0"], ["dnsq.exe", None, None])):
        r = CliRunner().invoke(cli, ["attribute", "--etl", etl, *grace, "-f", "csv"])
        assert r.exit_code == 0, r.output
        df = pl.read_csv(r.stdout.encode(), infer_schema_length=0)
        assert df["process"].to_list() == want
    bad = CliRunner().invoke(cli, ["attribute", "--etl", etl, "--grace", "-1"])
    assert bad.exit_code == 2 and "--grace" in bad.output
