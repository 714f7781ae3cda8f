"""tracerpt / tracedmp CSV: the real exchange-udp case file, plus inputs built from the documented layouts.

Only four real kernel lines are public (cases/exchange-udp/kernel.csv, Windows 2003 dumpfile.csv layout,
no header). Every other input here is BUILT by the tests from the layouts documented in
parsers/tracerpt.py and ../shared/docs/FORMATS.md (header line, Vista+ 19 fixed columns + user data,
v0/v1/v2 payload field orders, IPv6, Process lines); each test says so.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from etwtools.errors import TextFormatError
from etwtools.parsers.schema import EVENTS, PROCESSES
from etwtools.parsers.tracerpt import (
    looks_like_tracerpt,
    read_tracerpt,
    read_tracerpt_events,
    read_tracerpt_processes,
)

OLD_HEADER = "Event Name, Type, TID, Clock-Time, Kernel(ms), User(ms), User Data, IID, PIID"
VISTA_HEADER = (
    "Event Name, Type, Event ID, Version, Channel, Level, Opcode, Task, Keyword, PID, TID, "
    "Processor Number, Instance ID, Parent Instance ID, Activity ID, Related Activity ID, "
    "Clock-Time, Kernel(ms), User(ms), User Data"
)
FT = 129079416141424158  # Clock-Time of the case's kernel lines
T0 = datetime(2010, 1, 14, 11, 20, 14, 142415, tzinfo=UTC)
T0_NS = 1263468014142415800  # 2010-01-14 11:20:14.1424158 UTC in ns


def ns(df: pl.DataFrame, row: int = 0) -> int:
    return df["time"].cast(pl.Int64)[row]


def old_line(name: str, typ: str, clock: int, *user: object, tid: str = "0xFFFFFFFF") -> str:
    """A Windows 2003 dumpfile.csv line (tracedmp layout): 6 fixed columns, user data, IID, PIID."""
    return ", ".join([name, typ, tid, str(clock), "0", "0", *map(str, user), "0", "0"])


def vista_line(name: str, typ: str, version: int, opcode: int, clock: int, *user: object) -> str:
    """A Vista+ `tracerpt -of CSV` line: 19 fixed columns (blank Instance IDs as tracerpt leaves them),
    then user data."""
    fixed = [
        f"{name:>12}",
        f"{typ:>12}",
        "0",
        str(version),
        "0",
        "0",
        str(opcode),
        "0",
        "0x0000000000000000",
        "0xFFFFFFFF",
        "0x00000A3C",
        "0",
        " ",
        " ",
        "{00000000-0000-0000-0000-000000000000}",
        " ",
        str(clock),
        "0",
        "0",
    ]
    return ", ".join(fixed + [str(u) for u in user])


def write(tmp_path, name: str, lines: list[str], encoding: str = "utf-8", newline: str = "\n"):
    path = tmp_path / name
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


CASE_USER = [
    (2136, 8, "172.023.098.097", "010.001.001.001", 2762, 36003),
    (2136, 8, "172.027.153.050", "172.023.021.024", 6004, 36009),
    (2136, 8, "172.028.097.111", "172.023.021.024", 2344, 36016),
    (2136, 8, "172.027.102.056", "172.023.021.024", 1116, 36022),
]
COMPARE = [
    "time",
    "provider",
    "event",
    "protocol",
    "ip_version",
    "pid",
    "size",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
]


# ---------------------------------------------------------------------------------- real case


def test_exchange_case_kernel_csv(cases):
    """Acceptance 1: the real 2003 kernel.csv gives 4 UdpIp Send events of store.exe's PID."""
    trace = read_tracerpt(cases / "exchange-udp" / "kernel.csv")
    ev = trace.events
    assert ev.schema == pl.Schema(EVENTS)
    assert ev.height == 4
    first = ev.row(0, named=True)
    assert first["provider"] == "UdpIp" and first["event"] == "Send" and first["protocol"] == "UDP"
    assert first["pid"] == 2136 and first["size"] == 8 and first["ip_version"] == 4
    assert (first["local_addr"], first["local_port"]) == ("10.1.1.1", 36003)
    assert (first["remote_addr"], first["remote_port"]) == ("172.23.98.97", 2762)
    assert ns(ev) == T0_NS
    assert first["time"] == T0  # microsecond view of the same instant
    assert first["process"] is None  # the file has no Process lines
    assert ev["record"].to_list() == [1, 2, 3, 4]
    # Zero-padded octets are decimal (inet_aton would read 010 as octal 8 and 098 as invalid).
    assert ev["remote_addr"].to_list() == ["172.23.98.97", "172.27.153.50", "172.28.97.111", "172.27.102.56"]
    assert ev["local_addr"].to_list()[1:] == ["172.23.21.24"] * 3
    assert ev["local_port"].to_list() == [36003, 36009, 36016, 36022]
    assert ev["remote_port"].to_list() == [2762, 6004, 2344, 1116]
    assert ev["connid"].null_count() == 4 and ev["seqnum"].null_count() == 4  # v1 UdpIp has neither
    assert trace.processes.height == 0 and trace.ignored == {} and not trace.skipped


def test_case_detected_as_tracerpt(cases):
    head = (cases / "exchange-udp" / "kernel.csv").read_bytes()
    assert looks_like_tracerpt(head)
    assert not looks_like_tracerpt((cases / "exchange-udp" / "tasklist.txt").read_bytes())


def test_wrappers(cases):
    path = cases / "exchange-udp" / "kernel.csv"
    assert_frame_equal(read_tracerpt_events(path), read_tracerpt(path).events)
    procs = read_tracerpt_processes(path)
    assert procs.height == 0 and procs.schema == pl.Schema(PROCESSES)


# ---------------------------------------------------------------------- same events, other layouts


def test_tracedmp_header_gives_same_events(cases, tmp_path):
    """Acceptance 2 (BUILT): the case's own lines under a tracedmp header line."""
    real = read_tracerpt(cases / "exchange-udp" / "kernel.csv").events
    lines = (cases / "exchange-udp" / "kernel.csv").read_text().splitlines()
    built = read_tracerpt(write(tmp_path, "hdr.csv", [OLD_HEADER, *lines])).events
    assert_frame_equal(built.drop("record"), real.drop("record"))
    assert built["record"].to_list() == [2, 3, 4, 5]


def test_vista_layout_gives_same_events(cases, tmp_path):
    """Acceptance 2 (BUILT): the same four events written in the Vista+ `tracerpt -of CSV` layout
    (19 fixed columns + user data), with header, and padded like tracerpt pads."""
    real = read_tracerpt(cases / "exchange-udp" / "kernel.csv").events
    lines = [vista_line("UdpIp", "Send", 1, 10, FT, *u) for u in CASE_USER]
    for header in ([VISTA_HEADER], []):
        built = read_tracerpt(write(tmp_path, "vista.csv", header + lines)).events
        assert_frame_equal(built.select(COMPARE), real.select(COMPARE))


def test_vista_udp_v2_with_seqnum_connid(tmp_path):
    """BUILT: a Vista+ UdpIp v2 SendIPV4 line (v1 fields then seqnum, connid), connid a 64-bit pointer."""
    line = vista_line(
        "UdpIp",
        "SendIPV4",
        2,
        10,
        FT,
        2136,
        8,
        "172.023.098.097",
        "010.001.001.001",
        2762,
        36003,
        77,
        "0xFFFFFA8003B2C010",
    )
    ev = read_tracerpt(write(tmp_path, "v2.csv", [VISTA_HEADER, line])).events
    row = ev.row(0, named=True)
    assert row["event"] == "Send" and row["ip_version"] == 4 and row["pid"] == 2136
    assert row["seqnum"] == 77 and row["connid"] == 0xFFFFFA8003B2C010
    assert row["remote_addr"] == "172.23.98.97" and ns(ev) == T0_NS


def test_crlf_utf16_and_bom(cases, tmp_path):
    """BUILT: the case's lines saved as UTF-16 with BOM and CRLF, and as UTF-8 with BOM."""
    real = read_tracerpt(cases / "exchange-udp" / "kernel.csv").events
    lines = (cases / "exchange-udp" / "kernel.csv").read_text().splitlines()
    u16 = read_tracerpt(write(tmp_path, "u16.csv", [OLD_HEADER, *lines], "utf-16", "\r\n")).events
    assert_frame_equal(u16.drop("record"), real.drop("record"))
    u8 = read_tracerpt(write(tmp_path, "u8.csv", lines, "utf-8-sig", "\r\n")).events
    assert_frame_equal(u8, real)


# -------------------------------------------------------------------------- payload versions


def test_tcp_v0_field_order(tmp_path):
    """BUILT: TcpIp v0 (XP/2003): daddr, saddr, dport, sport, size, PID; the first field is an address."""
    line = old_line("TcpIp", "Send", FT, "192.168.001.020", "010.001.001.001", 445, 1042, 1460, 4)
    ev = read_tracerpt(write(tmp_path, "v0.csv", [line])).events
    row = ev.row(0, named=True)
    assert (row["provider"], row["event"], row["protocol"]) == ("TcpIp", "Send", "TCP")
    assert row["pid"] == 4 and row["size"] == 1460
    assert (row["local_addr"], row["local_port"], row["remote_addr"], row["remote_port"]) == (
        "10.1.1.1",
        1042,
        "192.168.1.20",
        445,
    )


def test_udp_v0_field_order(tmp_path):
    """BUILT: UdpIp v0: context(p), saddr, sport, size, daddr, dport, dsize; no PID."""
    line = old_line(
        "UdpIp", "Recv", FT, "0x81F0A8C8", "010.001.001.001", 53, 120, "010.001.001.200", 49152, 120
    )
    row = read_tracerpt(write(tmp_path, "u0.csv", [line])).events.row(0, named=True)
    assert row["pid"] is None and row["size"] == 120 and row["event"] == "Recv"
    assert (row["local_addr"], row["local_port"], row["remote_addr"], row["remote_port"]) == (
        "10.1.1.1",
        53,
        "10.1.1.200",
        49152,
    )


def test_tcp_v1_and_v2_connid_seqnum_order(tmp_path):
    """BUILT: v1 ends connid, seqnum; v2 ends seqnum, connid. 2003 layout = v1; Vista+ layout takes
    the Version column (here 1 and 2 on otherwise identical lines)."""
    user = (1234, 1460, "093.184.216.034", "010.001.001.001", 443, 50000)
    send_tail = (FT, FT + 5)
    v1_old = old_line("TcpIp", "Send", FT, *user, *send_tail, "0x8A0B0C0D", 999)
    ev = read_tracerpt(write(tmp_path, "v1.csv", [v1_old])).events
    assert ev["connid"][0] == 0x8A0B0C0D and ev["seqnum"][0] == 999
    lines = [
        vista_line("TcpIp", "SendIPV4", 1, 10, FT, *user, *send_tail, "0x8A0B0C0D", 999),
        vista_line("TcpIp", "SendIPV4", 2, 10, FT, *user, *send_tail, 999, "0x8A0B0C0D"),
        vista_line("TcpIp", "RecvIPV4", 2, 11, FT + 1, *user, 1000, "0x8A0B0C0D"),
    ]
    ev = read_tracerpt(write(tmp_path, "v12.csv", [VISTA_HEADER, *lines])).events
    assert ev["event"].to_list() == ["Send", "Send", "Recv"]
    assert ev["connid"].to_list() == [0x8A0B0C0D] * 3
    assert ev["seqnum"].to_list() == [999, 999, 1000]
    assert ev["remote_addr"].to_list() == ["93.184.216.34"] * 3
    assert ev["pid"].to_list() == [1234] * 3


def test_tcp_connect_15_fields(tmp_path):
    """BUILT: Vista+ TcpIp v2 ConnectIPV4: PID..sport, mss..sndwinscale (7 fields), seqnum, connid."""
    line = vista_line(
        "TcpIp",
        "ConnectIPV4",
        2,
        12,
        FT,
        500,
        0,
        "093.184.216.034",
        "010.001.001.001",
        443,
        50001,
        1460,
        1,
        0,
        1,
        65535,
        8,
        8,
        0,
        "0xFFFFFA8001234560",
    )
    row = read_tracerpt(write(tmp_path, "c.csv", [VISTA_HEADER, line])).events.row(0, named=True)
    assert row["event"] == "Connect" and row["pid"] == 500 and row["local_port"] == 50001
    assert row["seqnum"] == 0 and row["connid"] == 0xFFFFFA8001234560


def test_ipv6_events(tmp_path):
    """BUILT: Vista+ TcpIp SendIPV6 (opcode 26) and UdpIp RecvIPV6 (opcode 27) lines."""
    lines = [
        VISTA_HEADER,
        vista_line(
            "TcpIp",
            "SendIPV6",
            2,
            26,
            FT,
            4321,
            100,
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "fe80:0:0:0:0:0:0:1",
            443,
            50010,
            FT,
            FT + 1,
            5,
            "0x10",
        ),
        vista_line(
            "UdpIp", "RecvIPV6", 2, 27, FT + 10, 4321, 40, "2001:db8::53", "2001:db8::1", 53, 50011, 6, "0x11"
        ),
    ]
    ev = read_tracerpt(write(tmp_path, "v6.csv", lines)).events
    assert ev["ip_version"].to_list() == [6, 6]
    assert ev["event"].to_list() == ["Send", "Recv"]
    assert ev["protocol"].to_list() == ["TCP", "UDP"]
    assert ev["remote_addr"].to_list() == ["2001:db8::1", "2001:db8::53"]
    assert ev["local_addr"].to_list() == ["fe80::1", "2001:db8::1"]
    assert ev["seqnum"].to_list() == [5, 6] and ev["connid"].to_list() == [16, 17]
    assert ns(ev, 1) - ns(ev, 0) == 1000  # 10 FILETIME ticks = 1 us


def test_numeric_type_uses_opcode(tmp_path):
    """BUILT: a Type column that tracerpt left as a number (no MOF name) is named from the opcode table."""
    line = vista_line("TcpIp", "26", 2, 26, FT, 7, 10, "2001:db8::2", "2001:db8::1", 80, 50000, FT, FT, 1, 2)
    row = read_tracerpt(write(tmp_path, "n.csv", [VISTA_HEADER, line])).events.row(0, named=True)
    assert row["event"] == "Send" and row["ip_version"] == 6


# ----------------------------------------------------------------------------------- processes

#: 2003 Process v1 lines and UdpIp sends: store.exe alive from the rundown; tool.exe (PID 3000) starts,
#: sends twice, and ends before _LATE_SEND of its reused PID.
_LIFETIMES = [
    old_line(
        "Process",
        "DCStart",
        FT - 100,
        "0x1A2B3000",
        "0x00000858",
        "0x00000268",
        0,
        0,
        "S-1-5-18",
        '"store.exe"',
    ),
    old_line(
        "Process",
        "Start",
        FT - 50,
        "0x1A2B4000",
        "0x00000BB8",
        "0x00000858",
        0,
        0,
        "S-1-5-21-1-2-3-500",
        '"tool.exe"',
    ),
    old_line("UdpIp", "Send", FT, *CASE_USER[0]),
    old_line("UdpIp", "Send", FT + 10, 3000, 20, "010.001.001.002", "010.001.001.001", 53, 5353),
    old_line(
        "Process",
        "End",
        FT + 20,
        "0x1A2B4000",
        "0x00000BB8",
        "0x00000858",
        0,
        0,
        "S-1-5-21-1-2-3-500",
        '"tool.exe"',
    ),
]
# 6 s after tool.exe's End: past the 5 s a process keeps its name (grace period)
_LATE_SEND = old_line(
    "UdpIp", "Send", FT + 60_000_020, 3000, 20, "010.001.001.002", "010.001.001.001", 53, 5354
)


def test_process_lines_name_the_events(tmp_path):
    """BUILT: 2003 Process v1 lines (PageDirectoryBase, ProcessId, ParentId, SessionId, ExitStatus,
    UserSID, ImageFileName): store.exe alive from the rundown, a short-lived process that ends
    before a later event of its reused PID."""
    lines = [
        OLD_HEADER,
        old_line("EventTrace", "Header", FT - 100, 65536, 1),
        *_LIFETIMES,
        _LATE_SEND,
        old_line("Thread", "DCStart", FT - 100, "0x00000858", "0x00000A3C"),
    ]
    trace = read_tracerpt(write(tmp_path, "p.csv", lines))
    procs = trace.processes
    assert procs.schema == pl.Schema(PROCESSES)
    assert procs["pid"].to_list() == [2136, 3000]
    assert procs["image"].to_list() == ["store.exe", "tool.exe"]
    assert procs["ppid"].to_list() == [616, 2136]
    assert procs["user"].to_list() == ["S-1-5-18", "S-1-5-21-1-2-3-500"]
    assert procs["source"].to_list() == ["tracerpt"] * 2
    assert procs["start"][0] is None and procs["end"][0] is None  # rundown, still alive
    assert procs["start"].cast(pl.Int64)[1] == (FT - 50 - 116444736000000000) * 100
    assert procs["end"].cast(pl.Int64)[1] == (FT + 20 - 116444736000000000) * 100
    assert trace.events["process"].to_list() == ["store.exe", "tool.exe", None]
    assert trace.ignored == {"EventTrace": 1, "Thread": 1} and not trace.skipped


def test_vista_process_v3_with_command_line(tmp_path):
    """BUILT: Vista+ Process v3 DCStart (UniqueProcessKey, ProcessId, ParentId, SessionId, ExitStatus,
    DirectoryTableBase, UserSID, ImageFileName, CommandLine) with a comma inside the quoted command line."""
    lines = [
        VISTA_HEADER,
        vista_line(
            "Process",
            "DCStart",
            3,
            3,
            FT - 1,
            "0xFFFFFA8003000000",
            2136,
            616,
            0,
            259,
            "0x000000001A2B3000",
            "S-1-5-18",
            '"store.exe"',
            '"store.exe -a b,c"',
        ),
        vista_line("UdpIp", "SendIPV4", 2, 10, FT, *CASE_USER[0], 1, "0x1"),
    ]
    trace = read_tracerpt(write(tmp_path, "p3.csv", lines))
    row = trace.processes.row(0, named=True)
    assert (row["pid"], row["ppid"], row["session"], row["image"]) == (2136, 616, 0, "store.exe")
    assert row["command_line"] == "store.exe -a b,c"
    assert trace.events["process"].to_list() == ["store.exe"]


# ------------------------------------------------------------------------------ damaged input


def test_malformed_lines_warned_once_per_kind(cases, tmp_path, caplog):
    """BUILT: good case lines mixed with bad ones; each bad kind gives one warning with line numbers."""
    good = (cases / "exchange-udp" / "kernel.csv").read_text().splitlines()
    lines = [
        good[0],
        old_line("UdpIp", "Send", FT, 2136, 8, "172.023.098.097"),  # 2: 3 fields
        old_line("UdpIp", "Send", FT, 2136, 8, "999.1.1.1", "010.001.001.001", 1, 2),  # 3: bad addr
        old_line("UdpIp", "Send", "yesterday", *CASE_USER[0]),  # 4: bad clock
        old_line("UdpIp", "Send", FT, "x", 8, "1.1.1.1", "2.2.2.2", 1, 2),  # 5: bad pid
        old_line("UdpIp", "Send", FT, 2136, 8, "1.1.1.1", "2.2.2.2", 70000, 2),  # 6: bad port
        good[1],
        old_line("UdpIp", "Send", FT, 2136, 8, "1.2.3", "2.2.2.2", 1, 2),  # 8: bad addr
        old_line("TcpIp", "Fail", FT, 6, 10055),
    ]  # 9: no endpoint
    with caplog.at_level(logging.INFO, logger="etwtools"):
        trace = read_tracerpt(write(tmp_path, "bad.csv", lines))
    assert trace.events["record"].to_list() == [1, 7]
    assert trace.ignored == {"TcpIp Fail (no endpoint)": 1}
    assert trace.skipped.counts == {
        "malformed line(s) (unexpected number of user-data fields for TcpIp/UdpIp)": 1,
        "malformed line(s) (address that is not IPv4/IPv6)": 2,
        "malformed line(s) (Clock-Time is not a FILETIME)": 1,
        "malformed line(s) (PID, size or port that is not a number)": 2,
    }
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]  # one per file
    assert warning.startswith(f"{tmp_path / 'bad.csv'}: skipped ")
    assert "; 2 malformed line(s) (address that is not IPv4/IPv6): lines 3, 8;" in warning
    assert "2 malformed line(s) (PID, size or port that is not a number): lines 5, 6" in warning


def test_many_bad_lines_show_first_five(tmp_path, caplog):
    """BUILT: 12 lines with too few fields: one warning, first five line numbers, the count."""
    lines = [old_line("TcpIp", "Send", FT, 1, 2, 3)] * 12
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        trace = read_tracerpt(write(tmp_path, "many.csv", lines))
    assert trace.events.height == 0 and trace.events.schema == pl.Schema(EVENTS)
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.endswith(
        "skipped 12 malformed line(s) (unexpected number of user-data fields for TcpIp/UdpIp): lines 1, 2, 3, 4, 5 and 7 more"
    )


@pytest.mark.parametrize(
    "content, line",
    [
        (b"", 1),
        (b"   \n\n", 1),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", 1),
        (b"UdpIp, Send, 0xFFFFFFFF, 129079416141424158, 0, 0, 1\n\x00\x01\x02binary", 2),
        (b"Image Name                     PID Session Name\n=====\nstore.exe 2136 Console 0 1 K\n", 1),
        (b"a,b,c\n1,2,3\n", 1),
    ],
)
def test_bad_input_raises_one_line_error(tmp_path, content, line):
    """Empty file, binary junk, wrong columns: TextFormatError naming the path and the line."""
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(TextFormatError) as info:
        read_tracerpt(path)
    err = info.value
    assert err.path == str(path) and err.line == line
    assert "\n" not in str(err) and str(err).startswith(f"{path}, line {line}: ")


def test_missing_file_is_text_format_error(tmp_path):
    with pytest.raises(TextFormatError, match="cannot read"):
        read_tracerpt(tmp_path / "nope.csv")


def test_progress_reports_bytes(cases):
    calls = []
    path = cases / "exchange-udp" / "kernel.csv"
    read_tracerpt(path, progress=lambda done, total: calls.append((done, total)))
    size = path.stat().st_size
    assert calls[-1] == (size, size) and all(t == size for _, t in calls)


def test_no_network_lines_gives_empty_events(tmp_path):
    """BUILT: a dump with only Process and Thread lines: no events (not a row of nulls), one process."""
    lines = [
        old_line("Process", "DCStart", FT, "0x0", "0x00000004", "0x00000000", 0, 0, "S-1-5-18", "System"),
        old_line("Thread", "DCStart", FT, "0x00000004", "0x00000008"),
    ]
    trace = read_tracerpt(write(tmp_path, "np.csv", lines))
    assert trace.events.height == 0 and trace.events.schema == pl.Schema(EVENTS)
    assert trace.processes["image"].to_list() == ["System"] and trace.ignored == {"Thread": 1}


def test_process_lines_found_either_way(tmp_path):
    """BUILT: Process lines are found by a byte search; "Process" inside other lines is not one, and a
    lower-case event name (which the search does not take) falls back to the CSV pass, same result."""
    proc = old_line(
        "Process", "DCStart", FT, "0x0", "0x00000858", "0x00000268", 0, 0, "S-1-5-18", "store.exe"
    )
    other = old_line("Image", "DCStart", FT, "0x0", '"C:\\Process Explorer\\Process, x.dll"')
    for name, lines in [
        ("a.csv", [other, "  " + proc, other]),
        ("b.csv", [other, "  " + proc.replace("Process", "process", 1), other]),
    ]:
        trace = read_tracerpt(write(tmp_path, name, lines))
        assert trace.processes["pid"].to_list() == [2136], name
        assert trace.ignored == {"Image": 2} and not trace.skipped, name


def test_junk_after_a_good_start_is_counted_not_fatal(cases, tmp_path, caplog):
    """BUILT: the case's lines, then binary junk past the first 64 KiB: the events are kept and the
    junk lines are reported as one kind of malformed line."""
    good = (cases / "exchange-udp" / "kernel.csv").read_text()
    filler = "Thread, CSwitch, 0x0, 129079416141424158, 0, 0, 1, 2, 0, 0\n" * 1200  # past 64 KiB
    junk = b"\x8f\x00\x13\x9c\xff,\x01\x02\n" * 3
    path = tmp_path / "j.csv"
    path.write_bytes(good.encode() + filler.encode() + junk)
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        trace = read_tracerpt(path)
    assert trace.events.height == 4
    assert trace.ignored == {"Thread": 1200}
    assert trace.skipped.counts == {"malformed line(s) (not a tracerpt CSV line)": 3}
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.endswith(": lines 1205, 1206, 1207")


def test_non_utf8_bytes_are_read(cases, tmp_path):
    """BUILT: a cp1252 image path (not UTF-8) in a line after the case's lines: still read."""
    path = tmp_path / "cp.csv"
    path.write_bytes(
        (cases / "exchange-udp" / "kernel.csv").read_bytes()
        + old_line("Image", "DCStart", FT, "0x0", '"C:\\Müller\\x.dll"').encode("cp1252")
        + b"\n"
    )
    trace = read_tracerpt(path)
    assert trace.events.height == 4 and trace.ignored == {"Image": 1}


def test_process_line_with_out_of_range_pid_or_clock_is_malformed_not_internal_error(tmp_path, caplog):
    """BUILT. Bug (break-readers): a Process line whose PID does not fit int64 or whose End Clock-Time
    is past year 2262 made polars raise (an internal error); now each is one malformed line."""
    udp = old_line("UdpIp", "Send", FT, *CASE_USER[0])
    lines = [
        OLD_HEADER,
        old_line(
            "Process", "DCStart", FT, "0x1", "99999999999999999999999", "0x4", "0", "0", "S-1-5-18", "a.exe"
        ),
        old_line("Process", "End", 2**64, "0x1", "0x868", "0x4", "0", "0", "S-1-5-18", "b.exe"),
        old_line("Process", "DCStart", FT, "0x1", "0x858", "0x4", "0", "0", "S-1-5-18", "store.exe"),
        udp,
    ]
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        t = read_tracerpt(write(tmp_path, "p.csv", lines))
    assert t.processes["image"].to_list() == ["store.exe"]
    assert t.skipped["malformed line(s) (Process line with a PID or session out of range)"] == 1
    assert t.skipped["malformed line(s) (Process line without a FILETIME Clock-Time)"] == 1
    assert t.events["process"].to_list() == ["store.exe"]


def test_network_line_past_2262_negative_size_or_pid_is_malformed(tmp_path):
    """BUILT. Bug (break-readers): a Clock-Time past year 2262 overflowed int64 nanoseconds and came out
    as a wrong date (2185); a negative size or PID was accepted. Each is now a malformed line."""
    lines = [
        OLD_HEADER,
        old_line("UdpIp", "Send", 2**63 - 1, 2136, 8, "1.1.1.1", "2.2.2.2", 1, 6),
        old_line("UdpIp", "Send", FT, 2136, -8, "1.1.1.1", "2.2.2.2", 1, 6),
        old_line("UdpIp", "Send", FT, -5, 8, "1.1.1.1", "2.2.2.2", 1, 6),
        old_line("UdpIp", "Send", FT, *CASE_USER[0]),
    ]
    t = read_tracerpt(write(tmp_path, "n.csv", lines))
    assert t.events["record"].to_list() == [5] and ns(t.events) == T0_NS
    assert t.skipped["malformed line(s) (Clock-Time is not a FILETIME)"] == 1
    assert t.skipped["malformed line(s) (PID, size or port that is not a number)"] == 2


def test_process_line_with_a_lone_cr_is_malformed_not_internal_error(tmp_path, caplog):
    """BUILT. Bug (break-readers, found by fuzzing): a lone CR inside a Process line (not a line end for
    the CSV reader) made Python's csv module raise _csv.Error, an internal error."""
    lines = [
        OLD_HEADER,
        old_line("Process", "DCStart", FT, "0x1", "0x858", "0x4", "0", "0", "S-1-5-18", "\rtore.exe"),
        old_line("UdpIp", "Send", FT, *CASE_USER[0]),
    ]
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        t = read_tracerpt(write(tmp_path, "cr.csv", lines))
    assert t.events["pid"].to_list() == [2136] and t.processes.height == 0
    assert t.skipped["malformed line(s) (Process line that cannot be split into CSV fields)"] == 1
    assert any(r.getMessage().endswith("split into CSV fields): lines 2") for r in caplog.records)


def test_cr_only_line_ends_are_read(cases, tmp_path):
    """BUILT. Bug (review): a file whose lines end in a lone CR (old Mac style) failed with a polars
    message about column names; it now gives the same events, line numbers included, as LF lines."""
    real = read_tracerpt(cases / "exchange-udp" / "kernel.csv").events
    lines = (cases / "exchange-udp" / "kernel.csv").read_text().splitlines()
    assert_frame_equal(read_tracerpt(write(tmp_path, "cr.csv", lines, newline="\r")).events, real)
    u16 = read_tracerpt(write(tmp_path, "cr16.csv", [OLD_HEADER, *lines], "utf-16", "\r")).events
    assert_frame_equal(u16.drop("record"), real.drop("record"))
    assert u16["record"].to_list() == [2, 3, 4, 5]
    # CR lines for the first 64 KiB, then CR LF lines: a CR LF cut between two reads is one line end
    filler = f"Thread, CSwitch, 0x0, {FT}, 0, 0, 1, 2, 0, 0\r" * 1200
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes((filler + "\r\n".join(lines) + "\r\n").encode())
    for chunk_size in (len(filler) + len(lines[0]) + 1, 1 << 20):  # a read ends at the first CR LF's CR
        t = read_tracerpt(mixed, chunk_size=chunk_size)
        assert_frame_equal(t.events.drop("record"), real.drop("record"))
        assert t.events["record"].to_list() == [1201, 1202, 1203, 1204] and t.ignored == {"Thread": 1200}


def _many_kinds_of_lines() -> list[str]:
    """Vista+ lines of every kind the reader tells apart: header, Process rundown (one with a lower-case
    name, which sends Process lines through the CSV reader instead of the byte search), TcpIp/UdpIp
    v1/v2 IPv4/IPv6, Fail, malformed and skipped lines, with events out of time order."""
    out = [
        VISTA_HEADER,
        vista_line(
            "Process",
            "DCStart",
            3,
            3,
            FT - 9,
            "0x0",
            2136,
            616,
            0,
            259,
            "0x0",
            "S-1-5-18",
            '"store.exe"',
            '"store.exe -a b,c"',
        ),
        vista_line(
            "process",
            "DCStart",
            3,
            3,
            FT - 9,
            "0x0",
            3000,
            616,
            0,
            259,
            "0x0",
            "S-1-5-18",
            '"tool.exe"',
            '"tool.exe"',
        ),
    ]
    for i in range(40):
        t = FT + (i * 7919) % 40  # not in time order
        out += [
            vista_line("UdpIp", "SendIPV4", 2, 10, t, *CASE_USER[i % 4], i, f"0x{i:x}"),
            vista_line(
                "TcpIp",
                "RecvIPV6",
                2,
                27,
                t,
                3000,
                10 + i,
                "2001:db8::2",
                "fe80::1",
                443,
                5000 + i,
                i,
                "0x10",
            ),
            vista_line("Thread", "CSwitch", 2, 36, t, "0x0", "0x0"),
        ]
        if i % 9 == 0:
            out += [
                vista_line("UdpIp", "SendIPV4", 2, 10, t, 2136, 8, "999.1.1.1", "1.1.1.1", 1, 2, 0, "0x0"),
                vista_line("TcpIp", "Fail", 2, 17, t, 6, 10055),
                vista_line("UdpIp", "SendIPV4", 2, 10, t, 1, 2, 3),
                "",
                vista_line(
                    "Process",
                    "End",
                    3,
                    2,
                    "yesterday",
                    "0x0",
                    3000,
                    616,
                    0,
                    259,
                    "0x0",
                    "S-1-5-18",
                    '"tool.exe"',
                    '"tool.exe"',
                ),
            ]
    return out


def test_chunks_give_the_same_result_as_one_read(tmp_path, caplog):
    """BUILT: the file is read a chunk of lines at a time; chunks of 1 byte (each line its own chunk),
    a few lines and the whole file give the same events, processes, skipped counts and warnings."""
    path = write(tmp_path, "many.csv", _many_kinds_of_lines())
    results = []
    for chunk_size in (1 << 30, 1, 700, 4096):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="etwtools"):
            t = read_tracerpt(path, chunk_size=chunk_size)
        results.append((t, [r.getMessage() for r in caplog.records]))
    whole, messages = results[0]
    assert whole.events.height == 80 and whole.processes["pid"].to_list() == [2136, 3000]
    assert whole.skipped["malformed line(s) (address that is not IPv4/IPv6)"] == 5
    assert whole.ignored["TcpIp Fail (no endpoint)"] == 5 and whole.ignored["Thread"] == 40
    assert len(whole.skipped.reasons) == 3  # 2 kinds of malformed network lines, 1 of Process lines
    assert len(messages) == 2  # one warning line for the file, 1 info
    for t, msgs in results[1:]:
        assert_frame_equal(t.events, whole.events)
        assert_frame_equal(t.processes, whole.processes)
        assert t.skipped == whole.skipped and t.ignored == whole.ignored and msgs == messages


def test_events_out_of_time_order_are_named(tmp_path):
    """BUILT: the lines of test_process_lines_name_the_events with the last event moved first: each
    event is still named by the instance of its PID alive at its time, and keeps its place."""
    lines = [OLD_HEADER, _LATE_SEND, *_LIFETIMES]
    ev = read_tracerpt(write(tmp_path, "o.csv", lines)).events
    assert ev["record"].to_list() == [2, 5, 6]
    assert ev["process"].to_list() == [None, "store.exe", "tool.exe"]


@pytest.mark.parametrize(
    "version,extra", [(3, []), (4, []), (5, []), (5, ["0x01D9A1B2C3D4E5F6"]), (6, ["0x0", "0x1"])]
)
def test_vista_process_lines_of_every_version(tmp_path, version, extra):
    """BUILT: Vista+ Process DCStart lines of v3 (9 user-data fields) and v4+ (Flags before UserSID,
    PackageFullName and ApplicationId after CommandLine: 12 fields, more in later versions): ImageFileName
    is found by the version, whatever follows it (a 13-field v5 line used to be skipped)."""
    if version == 3:
        ud = [
            "0xFFFFFA8003000000",
            2136,
            616,
            1,
            259,
            "0x000000001A2B3000",
            "S-1-5-18",
            '"store.exe"',
            '"store.exe -a b,c"',
        ]
    else:
        ud = [
            "0xFFFFFA8003000000",
            2136,
            616,
            1,
            259,
            "0x000000001A2B3000",
            "0x0",
            "S-1-5-18",
            '"store.exe"',
            '"store.exe -a b,c"',
            '"Microsoft.Store_1.0_x64__8wekyb3d8bbwe"',
            '"App"',
            *extra,
        ]
    lines = [
        VISTA_HEADER,
        vista_line("Process", "DCStart", version, 3, FT - 1, *ud),
        vista_line("UdpIp", "SendIPV4", 2, 10, FT, *CASE_USER[0], 1, "0x1"),
    ]
    trace = read_tracerpt(write(tmp_path, f"p{version}.csv", lines))
    row = trace.processes.row(0, named=True)
    assert (row["pid"], row["ppid"], row["session"], row["image"], row["user"]) == (
        2136,
        616,
        1,
        "store.exe",
        "S-1-5-18",
    )
    assert row["command_line"] == "store.exe -a b,c"
    assert trace.events["process"].to_list() == ["store.exe"]


def test_process_lines_follow_the_one_lifetime_state_machine(tmp_path):
    """BUILT: tracerpt Process lines go through parsers.lifetimes.process_instances, the ETL reader's
    state machine: lines in time order whatever their file order (an End written before its Start), a
    second rundown DCStart of an open instance is the same instance, DCEnd leaves it alive."""
    store = ("0x1A2B3000", "0x00000858", "0x00000268", 0, 0, "S-1-5-18", '"store.exe"')
    tool = ("0x1A2B4000", "0x00000BB8", "0x00000858", 0, 0, "S-1-5-21-1-2-3-500", '"tool.exe"')
    lines = [
        OLD_HEADER,
        old_line("Process", "DCStart", FT - 100, *store),
        old_line("Process", "End", FT + 20, *tool),
        old_line("Process", "DCStart", FT - 90, *store),
        old_line("Process", "Start", FT - 50, *tool),
        old_line("Process", "DCEnd", FT + 30, *store),
    ]
    procs = read_tracerpt(write(tmp_path, "p.csv", lines)).processes
    assert procs["pid"].to_list() == [0x858, 0xBB8]
    assert procs["start"].cast(pl.Int64).to_list() == [None, (FT - 50 - 116444736000000000) * 100]
    assert procs["end"].cast(pl.Int64).to_list() == [None, (FT + 20 - 116444736000000000) * 100]
