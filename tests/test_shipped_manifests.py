"""The manifests the project ships (parsers/etl/manifests/): compiled, preferred by ``events --all``, and
equal to etl-parser's values on every corpus file that holds their events, where etl-parser is right.

Corpus files with events of shipped providers (counted with the container's record walk): tx/Process.etl
(Kernel-Process, 10,343), perfview/net.4.5.2.x64/x86.etl (DNS-Client 1001 and Kernel-Process 1/2: 6
each; their PerfView baselines are compared in test_perfview_baselines.py), pktmon/demikernel-PktMon.etl
(PktMon, 403); tx/KernelNetwork.etl's Kernel-Network events are decoded by etwtools' own network decoder
first (unchanged). No corpus ETL holds TCPIP, NDIS-PacketCapture, Winsock-AFD, Sysmon or Security-Auditing
events: those layouts are checked by the compiler test below and against etl-parser's schemas on payloads
built here.
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime

import polars as pl
import pytest

from etwtools.parsers.etl import columnar
from etwtools.parsers.etl import layouts as L
from etwtools.parsers.etl.guids import KERNEL_NETWORK, KERNEL_PROCESS, NDIS_PACKETCAPTURE, PKTMON

SYSMON = uuid.UUID("5770385f-c22a-43e0-bf4c-06f5698ffbd9")
SECURITY = uuid.UUID("54849625-5478-4994-a5ba-3e3b0328c30d")
TCPIP = uuid.UUID("2f07e2ee-15db-40f1-90ef-9d7ba282188a")
DNS_CLIENT = uuid.UUID("1c95126e-7eea-49a9-a3fe-a378b03ddb4d")
AFD = uuid.UUID("e53c6823-7bb8-44bb-90dc-3f86090d48a6")

#: The events each shipped provider must have: the ones the tool reads, and the ones the corpus holds.
USED = {
    KERNEL_PROCESS: [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), *((i, v) for i in (3, 4) for v in (0, 1))],
    KERNEL_NETWORK: [(10, 0), (11, 0), (12, 0), (13, 0)],
    TCPIP: [(1055, 0), (1063, 0)],
    NDIS_PACKETCAPTURE: [(1001, 0), (1003, 0)],
    PKTMON: [(20, 0), (30, 0), (65, 0), (66, 0), (100, 0), (160, 0), (170, 0)],
    AFD: [(1000, 0), (1001, 0), (18, 0)],
    DNS_CLIENT: [(1001, 0), (3006, 0), (3008, 0)],
    SYSMON: [(1, 5), (3, 5), (5, 3), (22, 5)],
    SECURITY: [
        (4688, 0),
        (4688, 1),
        (4688, 2),
        (4689, 0),
        (5152, 0),
        (5154, 0),
        (5156, 1),
        (5157, 1),
        (5158, 0),
    ],
}

#: Corpus file -> events decoded by shipped manifests (all its events of shipped providers).
CORPUS = {
    "tx/Process.etl": 10343,
    "perfview/net.4.5.2.x64.etl": 6,
    "perfview/net.4.5.2.x86.etl": 6,
    "pktmon/demikernel-PktMon.etl": 403,
}
#: Events etl-parser cannot decode and the shipped manifest does (checked on the file below).
ETL_PARSER_WRONG = {
    "pktmon/demikernel-PktMon.etl": {
        "Microsoft-Windows-PktMon.id65.v0": 5,
        "Microsoft-Windows-PktMon.id66.v0": 5,
        "Microsoft-Windows-PktMon.id100.v0": 1,
    }
}


def test_the_shipped_providers_and_the_events_the_tool_uses():
    ships = {g: L.shipped(g) for g in USED}
    assert all(m is not None for m in ships.values())
    assert set(L._shipped_files()) == set(USED)
    for guid, keys in USED.items():
        m = ships[guid]
        assert m is not None and m.guid == guid and m.source
        missing = [k for k in keys if k not in m.events]
        assert not missing, (m.name, missing)
    assert sum(len(m.events) for m in ships.values() if m) > 1000


def test_kernel_process_start_as_the_manifest_writes_it():
    m = L.shipped(KERNEL_PROCESS)
    assert m is not None
    name, lay = m.events[(1, 0)]
    assert name == "ProcessStart"
    assert [(f.name, f.kind) for f in lay.fields] == [
        ("ProcessID", "u32"),
        ("CreateTime", "u64"),
        ("ParentProcessID", "u32"),
        ("SessionID", "u32"),
        ("ImageName", "wstring"),
    ]
    _, thread = m.events[(3, 0)]
    assert {f.kind for f in L.for_pointer(thread, 4).fields} == {"u32"}  # ptr: the record's pointer size
    assert "ptr" not in {f.kind for f in L.for_pointer(thread, 8).fields}


@pytest.mark.parametrize(
    "text,message",
    [
        ("source x\n", "no provider line"),
        (
            "provider P 22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716\nevent 1 0 Start T\n",
            "line 2: template T not written",
        ),
        ("provider P 22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716\ntemplate T a:u99\n", "line 2: field 'a:u99'"),
        ("provider P 22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716\nevent 1 0 Start\n", "line 2: not a provider"),
        ("provider P nope\n", "line 1"),
    ],
)
def test_a_bad_manifest_line_is_named(text, message):
    with pytest.raises(ValueError, match=message):
        L.parse_manifest(text, "x.txt")


def _tables(path, providers) -> dict[str, tuple[str, pl.DataFrame]]:
    parts: dict[str, list[pl.DataFrame]] = defaultdict(list)
    decoders: dict[str, str] = {}
    for t in columnar.iter_events(path, providers=providers):
        name = t.name.removesuffix(".hex")
        parts[name].append(t.frame)
        decoders[name] = t.decoder
    return {n: (decoders[n], pl.concat(p, how="diagonal_relaxed").sort("record")) for n, p in parts.items()}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_shipped_values_equal_etl_parsers_on_the_corpus(corpus, name, monkeypatch):
    """Every event of a shipped provider decodes by its shipped manifest, and to etl-parser's values
    (same fields, same values) except where etl-parser cannot decode the event (ETL_PARSER_WRONG)."""
    path = corpus / name
    providers = [m.name for g in USED if (m := L.shipped(g)) is not None]
    ours = _tables(path, providers)
    decoded = Counter()
    for n, (decoder, frame) in ours.items():
        decoded[decoder] += frame.height
    assert decoded == {"manifest": CORPUS[name]}
    monkeypatch.setattr(L, "shipped_layout", lambda *a: False)
    theirs = _tables(path, providers)
    assert set(theirs) == set(ours)
    wrong = {}
    for n, (decoder, frame) in theirs.items():
        if decoder == "hex":
            wrong[n] = frame.height
            continue
        assert decoder == "etl-parser"
        assert ours[n][1].equals(frame), n
    assert wrong == ETL_PARSER_WRONG.get(name, {})


def test_pktmon_events_etl_parser_misses(corpus):
    """PktMon 100 (a packet filter) holds both MAC addresses (Microsoft's NetMon parser; etl-parser's
    schema lacks them and does not fit the 42-byte events); 65/66 are component IPv4/IPv6 addresses."""
    tables = _tables(corpus / "pktmon" / "demikernel-PktMon.etl", ["Microsoft-Windows-PktMon"])
    _, f = tables["Microsoft-Windows-PktMon.id100.v0"]
    row = f.row(0, named=True)
    assert row["FilterName"] == "eth3" and row["MacAddress1"] == bytes.fromhex("0022487bb380")
    assert row["MacAddress2"] == bytes(6) and row["TCPFlags"] == 0
    _, v4 = tables["Microsoft-Windows-PktMon.id65.v0"]
    _, v6 = tables["Microsoft-Windows-PktMon.id66.v0"]
    assert set(v4["Type"]) == set(v6["Type"]) == {13}
    v4_text = {str(ipaddress.IPv4Address(v.to_bytes(4, "little"))) for v in v4["Value"]}
    v6_text = {str(ipaddress.IPv6Address(b)) for b in v6["Value"]}
    assert v4_text == {"10.9.1.22", "10.9.0.22", "127.0.0.1"}  # two NICs' addresses and the loopback's
    assert v6_text == {"fe80::fb0f:5039:c3e9:adf7", "fe80::5c19:f5b3:a4bc:efda", "::1"}


def test_etl_parser_is_not_imported_for_shipped_providers(corpus):
    """Decoding a shipped provider's events never imports etl-parser (nor reads its schemas)."""
    code = (
        "import sys\n"
        "from etwtools.parsers.etl import columnar\n"
        f"n = sum(t.frame.height for t in columnar.iter_events({str(corpus / 'tx' / 'Process.etl')!r},"
        " providers=['Microsoft-Windows-Kernel-Process']))\n"
        "print(n, 'etl' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["10343", "False"]


def _pack(lay: L.Layout, seed: int) -> bytes:
    """A payload of ``lay`` (64-bit pointers) with values derived from ``seed``, packed with struct."""
    refs = {f.ref for f in lay.fields if f.kind == "bytes_from"}
    fmt = {
        "u8": "B",
        "i8": "b",
        "u16": "H",
        "i16": "h",
        "u32": "I",
        "i32": "i",
        "u64": "Q",
        "i64": "q",
        "ptr": "Q",
        "f32": "f",
        "f64": "d",
        "bool32": "I",
    }
    out, values = b"", {}
    for k, f in enumerate(lay.fields):
        v = 3 if f.name in refs else seed + k
        if f.kind in fmt:
            v = 1 if f.kind == "bool32" else (v & 0x7F if f.kind in ("u8", "i8") else v)
            out += struct.pack("<" + fmt[f.kind], v)
            values[f.name] = v
        elif f.kind == "wstring":
            out += f"{f.name}-{seed}".encode("utf-16-le") + b"\0\0"
        elif f.kind == "cstring":
            out += f"{f.name}-{seed}".encode("cp1252") + b"\0"
        elif f.kind == "guid":
            out += uuid.UUID(int=seed * 7919 + k).bytes_le
        elif f.kind == "sid":
            out += bytes([1, 2, 0, 0, 0, 0, 0, 5]) + struct.pack("<II", 21, seed)
        elif f.kind == "systemtime":
            out += struct.pack("<8H", 2024, 3, 2, 5, 9, 30, 15, 250)
        elif f.kind == "bytes":
            out += bytes(range(k, k + f.size))
        elif f.kind == "bytes_from":
            out += bytes(values[f.ref] * max(f.size, 1))
        else:
            raise AssertionError(f.kind)
    return out


#: Shipped events whose payloads etl-parser's schema reads differently, and why (the manifest's types).
ETL_PARSER_DIFFERS = {
    # win:Boolean is 32 bits in the manifest schema; etl-parser reads one byte
    (SYSMON, 3, 5): "Initiated, SourceIsIpv6, DestinationIsIpv6 are win:Boolean",
    (AFD, 18, 0): "FastPath is win:Boolean",
    # Destination is an array (count="DestinationCount" of 8-byte items); etl-parser reads one Double
    (NDIS_PACKETCAPTURE, 1003, 0): "Destination is an array",
}


@pytest.mark.parametrize("guid", [TCPIP, NDIS_PACKETCAPTURE, AFD, DNS_CLIENT, SYSMON, SECURITY])
def test_built_events_of_providers_the_corpus_lacks_equal_etl_parsers(tmp_path, monkeypatch, guid):
    """No corpus ETL holds these providers' events: each event the tool uses is built with the project's
    ETL writer (payload packed here from the shipped field list, values from the event's position) and
    decoded by the shipped manifest and by etl-parser's schema of the same event: same fields, same values,
    except where etl-parser's schema reads a type differently (ETL_PARSER_DIFFERS)."""
    from etwtools.parsers.etl.build import EtlWriter

    m = L.shipped(guid)
    assert m is not None
    w = EtlWriter(start=datetime(2024, 3, 5, 9, 0, tzinfo=UTC))
    for n, (event_id, version) in enumerate(USED[guid]):
        w.event(guid, event_id, _pack(m.events[(event_id, version)][1], 1000 + n), version=version)
    path = w.write(tmp_path / "built.etl")
    ours = _tables(path, [m.name])
    monkeypatch.setattr(L, "shipped_layout", lambda *a: False)
    theirs = _tables(path, [m.name])
    differs = set()
    for name, (decoder, frame) in ours.items():
        assert decoder == "manifest" and frame.height == 1, name
        ident, ver = name.split(".")[-2:]  # provider.id<N>.v<N>
        event_id, version = int(ident.removeprefix("id")), int(ver.removeprefix("v"))
        t_decoder, t_frame = theirs[name]
        if t_decoder == "etl-parser" and t_frame.equals(frame):
            continue
        differs.add((guid, event_id, version))
    assert differs == {k for k in ETL_PARSER_DIFFERS if k[0] == guid}
