"""NDIS-PacketCapture event 1003 (VMSwitch packet fragment, ``netsh trace capture=yes`` on a Hyper-V host).

No public trace carries event 1003, so the events are BUILT with the project's ETL writer, their
payloads laid out from the template of event 1003 in the provider's manifest (the copy bundled with
dissect.etl, read below): MiniportIfIndex, LowerIfIndex, SourcePortId, SourcePortName, SourceNicName,
SourceNicType, DestinationCount, Destination[DestinationCount], FragmentSize, Fragment, OOBDataSize, OOBData.
"""

from __future__ import annotations

import logging
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from etwtools.parsers.etl.build import EtlWriter
from etwtools.parsers.etl.captured_frames import (
    KW_END,
    KW_ETHERNET,
    KW_RECEIVE,
    KW_SEND,
    KW_START,
    has_packets,
    read_etl_frames,
)
from etwtools.parsers.etl.guids import NDIS_PACKETCAPTURE

T0 = datetime(2025, 5, 6, 7, 0, tzinfo=UTC)


def _template() -> list[tuple[str, str]]:
    import dissect.etl

    xml = (
        Path(dissect.etl.__file__).parent / "manifests" / "xml" / "{2ed6006e-4729-4609-b423-3ee7bcd678ef}.xml"
    ).read_text(encoding="utf-8")
    body = re.search(r'<template tid="task_01003Args">(.*?)</template>', xml, re.DOTALL)[1]
    return re.findall(r'<data name="(\w+)" inType="win:(\w+)"', body)


def _event(values: dict) -> bytes:
    out = b""
    for name, kind in _template():
        v = values[name]
        if kind == "UInt32":
            out += struct.pack("<I", v)
        elif kind == "UnicodeString":
            out += v.encode("utf-16-le") + b"\0\0"
        elif kind == "Double":  # Destination: DestinationCount 8-byte entries
            out += b"".join(struct.pack("<II", port, nic) for port, nic in v)
        elif kind == "Binary":
            out += v
        else:
            raise AssertionError(kind)
    return out


def _udp_frame(sport: int) -> bytes:
    body = struct.pack("!HHHH", sport, 53, 12, 0) + b"abcd"
    ip = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(body),
            1,
            0,
            128,
            17,
            0,
            bytes([172, 16, 0, 5]),
            bytes([172, 16, 0, 1]),
        )
        + body
    )
    return bytes.fromhex("00155d00000100155d000002") + b"\x08\x00" + ip


def test_template_is_the_manifests():
    assert [n for n, _ in _template()] == [
        "MiniportIfIndex",
        "LowerIfIndex",
        "SourcePortId",
        "SourcePortName",
        "SourceNicName",
        "SourceNicType",
        "DestinationCount",
        "Destination",
        "FragmentSize",
        "Fragment",
        "OOBDataSize",
        "OOBData",
    ]


def test_vmswitch_frames(tmp_path, caplog):
    w = EtlWriter(start=T0)
    frame = _udp_frame(5000)
    port = {
        "MiniportIfIndex": 9,
        "LowerIfIndex": 9,
        "SourcePortId": 0x1D,
        "SourceNicType": "Synthetic",
        "SourcePortName": "E2B5C0A1-6A7B-4C8D-9E0F-112233445566",
        "SourceNicName": "web01_nic0",
        "OOBDataSize": 8,
        "OOBData": bytes(8),
    }
    kw = KW_ETHERNET | KW_START | KW_END | KW_SEND
    w.event(
        NDIS_PACKETCAPTURE,
        1003,
        _event(
            {
                **port,
                "DestinationCount": 2,
                "Destination": [(3, 0), (4, 1)],
                "FragmentSize": len(frame),
                "Fragment": frame,
            }
        ),
        time=timedelta(seconds=1),
        keyword=kw,
    )
    # a frame in two fragments, from another port, received, no destinations
    other = {**port, "SourcePortId": 0x2A, "SourceNicName": "Host vNIC", "SourceNicType": "Internal"}
    big = _udp_frame(5001)
    for i, part in enumerate((big[:20], big[20:])):
        k = KW_ETHERNET | KW_RECEIVE | (KW_START if i == 0 else KW_END)
        w.event(
            NDIS_PACKETCAPTURE,
            1003,
            _event(
                {
                    **other,
                    "DestinationCount": 0,
                    "Destination": [],
                    "FragmentSize": len(part),
                    "Fragment": part,
                }
            ),
            time=timedelta(seconds=2, milliseconds=i),
            keyword=k,
            tid=7,
        )
    # damaged: its DestinationCount runs past the event
    w.event(
        NDIS_PACKETCAPTURE,
        1003,
        _event(
            {
                **port,
                "DestinationCount": 500,
                "Destination": [(1, 1)],
                "FragmentSize": len(frame),
                "Fragment": frame,
            }
        ),
        time=timedelta(seconds=3),
        keyword=kw,
    )
    path = w.write(tmp_path / "vmswitch.etl")
    assert has_packets(path)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_etl_frames(path)
    assert "skipped 1 packet event(s) whose frame runs past the event" in caplog.text
    assert df.height == 2
    assert df["direction"].to_list() == ["out", "in"]
    assert df["src_port"].to_list() == [5000, 5001] and df["protocol"].to_list() == ["UDP", "UDP"]
    assert df["interface"].to_list() == [9, 9]
    assert df["switch_port"].to_list() == [0x1D, 0x2A]
    assert df["nic_name"].to_list() == ["web01_nic0", "Host vNIC"]
    assert df["nic_type"].to_list() == ["Synthetic", "Internal"]
    assert df["port_name"][0] == "E2B5C0A1-6A7B-4C8D-9E0F-112233445566"
    assert df["caplen"].to_list() == [len(frame), len(big)]
    assert df.schema["switch_port"] == pl.Int64
