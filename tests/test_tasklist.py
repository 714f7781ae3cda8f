"""tasklist output: the real corpus and case files, plus every other layout BUILT from its documented form.

Real: ../shared/corpus/tasklist (/svc with wrapped services; /v) and ../shared/cases/exchange-udp/tasklist.txt
(default table, no header, whitespace collapsed by the publisher). Everything else (/fo csv, /fo list, /nh,
/m, localized headers, several snapshots) is BUILT by the tests from the layouts documented in
parsers/tasklist.py and ../shared/docs/FORMATS.md (column widths 25, 8, 16, 11, 12, ... one space apart);
each test says so.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from etwtools.errors import TextFormatError
from etwtools.parsers.schema import PROCESSES
from etwtools.parsers.tasklist import looks_like_tasklist, read_tasklist

SNAP = datetime(2010, 1, 14, 11, 20, 0, tzinfo=UTC)


def svc_of(df: pl.DataFrame, pid: int) -> str | None:
    (value,) = df.filter(pl.col("pid") == pid)["services"].to_list()
    return value


def table(widths: list[int], header: list[str] | None, rows: list[list[str]], lefts: set[int]) -> list[str]:
    """Fixed-width tasklist table: columns `widths` wide, one space apart; columns in `lefts` are
    left-aligned (names), the others right-aligned (numbers), as tasklist prints them."""

    def fmt(cells: list[str]) -> str:
        out = [c.ljust(w) if i in lefts else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return " ".join(out).rstrip()

    lines = [""]
    if header is not None:
        lines += [
            " ".join(
                h.ljust(w) if i in lefts else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))
            ).rstrip(),
            " ".join("=" * w for w in widths),
        ]
    return lines + [fmt(r) for r in rows]


DEFAULT_W = [25, 8, 16, 11, 12]
DEFAULT_ROWS = [
    ["System Idle Process", "0", "Services", "0", "8 K"],
    ["System", "4", "Services", "0", "144 K"],
    ["store.exe", "2136", "Console", "0", "1,040,592 K"],
    ["FileZilla Server Interfac", "3396", "RDP-Tcp#0", "2", "12,004 K"],
]
EXPECT_DEFAULT = {
    "pid": [0, 4, 2136, 3396],
    "image": ["System Idle Process", "System", "store.exe", "FileZilla Server Interfac"],
    "session_name": ["Services", "Services", "Console", "RDP-Tcp#0"],
    "session": [0, 0, 0, 2],
    "mem_kb": [8, 144, 1040592, 12004],
}


def check(df: pl.DataFrame, expect: dict) -> None:
    for col, values in expect.items():
        assert df[col].to_list() == values, col


def write(tmp_path, name: str, lines: list[str], encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


# ------------------------------------------------------------------------------------ real files


def test_svc_real_file(corpus):
    """Acceptance 3: tasklist /svc on Server 2016 (real), wrapped service lists and N/A."""
    df = read_tasklist(corpus / "tasklist" / "tasklist_svc_WINLPE-SRV01.txt")
    assert df.columns[: len(PROCESSES)] == list(PROCESSES)
    assert df.height == 76  # 86 lines - header 2 - wrapped 8
    assert svc_of(df, 780).split(",") == [
        "BrokerInfrastructure",
        "DcomLaunch",
        "LSM",
        "PlugPlay",
        "Power",
        "SystemEventsBroker",
    ]
    assert svc_of(df, 688).split(",") == ["KeyIso", "SamSs", "VaultSvc"]
    assert svc_of(df, 964).split(",") == [
        "Appinfo",
        "CertPropSvc",
        "DsmSvc",
        "gpsvc",
        "IKEEXT",
        "iphlpsvc",
        "lfsvc",
        "ProfSvc",
        "Schedule",
        "SENS",
        "SessionEnv",
        "ShellHWDetection",
        "Themes",
        "UserManager",
        "Winmgmt",
        "WpnService",
        "wuauserv",
    ]
    assert svc_of(df, 2088) == "FileZilla Server"  # a service name with a space
    assert svc_of(df, 3520) == "MSSQL$SQLEXPRESS01"
    for pid in (0, 4, 332, 2516, 1576):  # N/A: no services
        assert svc_of(df, pid) is None
    assert df.filter(pl.col("services").is_null()).height == 40  # grep -c " N/A$"
    row = df.filter(pl.col("pid") == 3396).row(0, named=True)
    assert row["image"] == "FileZilla Server Interfac" and row["image_cut"] is True
    assert df["image_cut"].sum() == 1
    assert df["source"].unique().to_list() == ["tasklist"]
    assert df["snapshot"].null_count() == df.height and df["snapshot_index"].unique().to_list() == [0]
    assert df.filter(pl.col("pid") == 780)["line"].to_list() == [12]


def test_v_real_file_every_user(corpus):
    """Acceptance 3: tasklist /v (real): every PID with its user, session, memory, status, CPU time."""
    df = read_tasklist(corpus / "tasklist" / "tasklist_v_teamviewer_writeup.txt")
    system, network = r"NT AUTHORITY\SYSTEM", r"NT AUTHORITY\NETWORK SERVICE"
    local = r"NT AUTHORITY\LOCAL SERVICE"
    expected = [
        (0, system),
        (4, None),
        (260, system),
        (376, system),
        (444, system),
        (452, system),
        (504, system),
        (568, system),
        (576, system),
        (660, system),
        (712, network),
        (812, system),
        (820, r"Window Manager\DWM-1"),
        (912, network),
        (948, system),
        (956, local),
        (396, local),
        (440, system),
        (1060, system),
        (1072, local),
        (1188, system),
        (1256, network),
        (1268, local),
        (1952, system),
        (2032, system),
        (1172, system),
        (1580, system),
        (1908, system),
    ]
    assert list(zip(df["pid"].to_list(), df["user"].to_list())) == expected
    row = df.filter(pl.col("pid") == 1908).row(0, named=True)
    assert row["image"] == "TeamViewer_Service.exe" and row["session_name"] == "Services"
    assert (row["session"], row["mem_kb"], row["status"], row["cpu_time"]) == (0, 14908, "Unknown", "0:00:01")
    assert row["window_title"] is None
    assert df.filter(pl.col("pid") == 0)["cpu_time"].to_list() == ["69:20:56"]
    assert df.filter(pl.col("pid") == 452)["session"].to_list() == [1]


@pytest.mark.parametrize("name", ["tasklist_svc_WINLPE-SRV01.txt", "tasklist_v_teamviewer_writeup.txt"])
def test_collapsed_whitespace_reads_the_same(corpus, tmp_path, name):
    """BUILT from the real files: runs of spaces collapsed to one (as the case's tasklist.txt was
    published, and as tickets often paste it) give the same rows, read by tokens, not positions."""
    import re

    real = corpus / "tasklist" / name
    collapsed = [re.sub(r" +", " ", ln).strip() for ln in real.read_text().splitlines()]
    a = read_tasklist(real).drop("file")
    b = read_tasklist(write(tmp_path, name, collapsed)).drop("file")
    assert b.height == a.height > 20
    assert b.drop("image_cut").equals(a.drop("image_cut"))


def test_case_tasklist_without_header(cases):
    """Acceptance 3: the case's tasklist (no header, single spaces): store.exe is PID 2136."""
    df = read_tasklist(cases / "exchange-udp" / "tasklist.txt")
    assert df.filter(pl.col("image") == "store.exe")["pid"].to_list() == [2136]
    check(
        df,
        {
            "pid": [5176, 7176, 10092, 2136, 12020],
            "image": ["wmiprvse.exe", "mad.exe", "AntigenStore.exe", "store.exe", "emsmta.exe"],
            "session_name": ["Console"] * 5,
            "session": [0] * 5,
            "mem_kb": [2168, 45792, 200, 1040592, 29092],
        },
    )
    assert df["services"].null_count() == 5


def test_detection(corpus, cases):
    for path in [
        corpus / "tasklist" / "tasklist_svc_WINLPE-SRV01.txt",
        corpus / "tasklist" / "tasklist_v_teamviewer_writeup.txt",
        cases / "exchange-udp" / "tasklist.txt",
    ]:
        assert looks_like_tasklist(path.read_bytes()), path
    assert not looks_like_tasklist((cases / "exchange-udp" / "kernel.csv").read_bytes())
    assert not looks_like_tasklist(b"\x00\x01\x02\x03")
    # BUILT: localized /fo csv and /fo list are recognized too (by the PID column or key).
    assert looks_like_tasklist('"映像名称","PID","会话名"\n"store.exe","2136","Console"'.encode())
    assert looks_like_tasklist("映像名称:     store.exe\nPID:          2136\n".encode())
    assert not looks_like_tasklist(b"hello\nworld\n")


# ----------------------------------------------------------------------------- built layouts


def test_default_table_built(tmp_path):
    """BUILT: the default table (blank line, header, ===== line, fixed columns 25/8/16/11/12)."""
    lines = table(
        DEFAULT_W, ["Image Name", "PID", "Session Name", "Session#", "Mem Usage"], DEFAULT_ROWS, lefts={0, 2}
    )
    df = read_tasklist(write(tmp_path, "t.txt", lines))
    check(df, EXPECT_DEFAULT)
    assert df["image_cut"].to_list() == [False, False, False, True]


def test_nh_table_built(tmp_path):
    """BUILT: /nh: the same rows in their fixed columns, no header and no ===== line."""
    df = read_tasklist(write(tmp_path, "nh.txt", table(DEFAULT_W, None, DEFAULT_ROWS, lefts={0, 2})))
    check(df, EXPECT_DEFAULT)


def test_nh_svc_built(tmp_path):
    """BUILT: /svc /nh: image, PID, services in 25/8/44 columns, wrapped lists, no header."""
    lines = table(
        [25, 8, 44],
        None,
        [
            ["svchost.exe", "780", "BrokerInfrastructure, DcomLaunch, LSM,"],
            ["", "", "PlugPlay, Power, SystemEventsBroker"],
            ["lsass.exe", "688", "KeyIso, SamSs, VaultSvc"],
            ["System", "4", "N/A"],
        ],
        lefts={0, 2},
    )
    df = read_tasklist(write(tmp_path, "nhsvc.txt", lines))
    check(
        df,
        {
            "pid": [780, 688, 4],
            "services": [
                "BrokerInfrastructure,DcomLaunch,LSM,PlugPlay,Power,SystemEventsBroker",
                "KeyIso,SamSs,VaultSvc",
                None,
            ],
        },
    )


def test_csv_built(tmp_path):
    """BUILT: /fo csv (every field quoted, header), /fo csv /nh, /fo csv /svc and /fo csv /v."""
    header = '"Image Name","PID","Session Name","Session#","Mem Usage"'
    rows = ['"{}","{}","{}","{}","{}"'.format(*r) for r in DEFAULT_ROWS]
    check(read_tasklist(write(tmp_path, "c.csv", [header, *rows])), EXPECT_DEFAULT)
    check(read_tasklist(write(tmp_path, "nh.csv", rows)), EXPECT_DEFAULT)
    svc = read_tasklist(
        write(
            tmp_path,
            "svc.csv",
            [
                '"Image Name","PID","Services"',
                '"svchost.exe","780","BrokerInfrastructure,DcomLaunch,LSM,PlugPlay,Power,SystemEventsBroker"',
                '"lsass.exe","688","KeyIso,SamSs,VaultSvc"',
                '"System","4","N/A"',
            ],
        )
    )
    assert svc["services"].to_list() == [
        "BrokerInfrastructure,DcomLaunch,LSM,PlugPlay,Power,SystemEventsBroker",
        "KeyIso,SamSs,VaultSvc",
        None,
    ]
    v = read_tasklist(
        write(
            tmp_path,
            "v.csv",
            [
                (
                    '"Image Name","PID","Session Name","Session#","Mem Usage","Status","User Name","CPU Time",'
                    '"Window Title"'
                ),
                '"explorer.exe","1576","Console","1","61,220 K","Running","CORP\\alice","0:00:12","Program Manager"',
                '"System","4","Services","0","144 K","Unknown","N/A","0:01:43","N/A"',
            ],
        )
    )
    check(
        v,
        {
            "pid": [1576, 4],
            "user": ["CORP\\alice", None],
            "status": ["Running", "Unknown"],
            "window_title": ["Program Manager", None],
            "mem_kb": [61220, 144],
            "cpu_time": ["0:00:12", "0:01:43"],
        },
    )


def test_list_built(tmp_path):
    """BUILT: /fo list (`Key: value` blocks) and /fo list /svc (one service per line, continued)."""
    lines = [""]
    for r in DEFAULT_ROWS:
        lines += [
            f"Image Name:   {r[0]}",
            f"PID:          {r[1]}",
            f"Session Name: {r[2]}",
            f"Session#:     {r[3]}",
            f"Mem Usage:    {r[4]}",
            "",
        ]
    check(read_tasklist(write(tmp_path, "l.txt", lines)), EXPECT_DEFAULT)
    svc = read_tasklist(
        write(
            tmp_path,
            "ls.txt",
            [
                "",
                "Image Name: svchost.exe",
                "PID:        780",
                "Services:   BrokerInfrastructure",
                "            DcomLaunch",
                "            LSM",
                "",
                "Image Name: System",
                "PID:        4",
                "Services:   N/A",
                "",
            ],
        )
    )
    check(
        svc,
        {
            "pid": [780, 4],
            "image": ["svchost.exe", "System"],
            "services": ["BrokerInfrastructure,DcomLaunch,LSM", None],
        },
    )


def test_m_modules_built(tmp_path):
    """BUILT: /m: Image Name, PID, Modules (25/8/44), module lists wrapped like /svc services."""
    lines = table(
        [25, 8, 44],
        ["Image Name", "PID", "Modules"],
        [
            ["store.exe", "2136", "ntdll.dll, KERNEL32.DLL, KERNELBASE.dll,"],
            ["", "", "WS2_32.dll, mswsock.dll"],
            ["System", "4", "N/A"],
        ],
        lefts={0, 2},
    )
    df = read_tasklist(write(tmp_path, "m.txt", lines))
    check(
        df,
        {
            "pid": [2136, 4],
            "modules": ["ntdll.dll,KERNEL32.DLL,KERNELBASE.dll,WS2_32.dll,mswsock.dll", None],
            "services": [None, None],
        },
    )


def test_localized_headers_built(tmp_path):
    """BUILT: Chinese and German headers (mapped by column position), German thousands separator '.'."""
    zh = table(DEFAULT_W, ["映像名称", "PID", "会话名", "会话#", "内存使用"], DEFAULT_ROWS, lefts={0, 2})
    check(read_tasklist(write(tmp_path, "zh.txt", zh)), EXPECT_DEFAULT)
    de_rows = [[r[0], r[1], r[2], r[3], r[4].replace(",", ".")] for r in DEFAULT_ROWS]
    de = table(
        DEFAULT_W,
        ["Abbildname", "PID", "Sitzungsname", "Sitz.-Nr.", "Speichernutzung"],
        de_rows,
        lefts={0, 2},
    )
    check(read_tasklist(write(tmp_path, "de.txt", de, encoding="cp1252")), EXPECT_DEFAULT)
    zh_svc = table(
        [25, 8, 44],
        ["映像名称", "PID", "服务"],
        [["svchost.exe", "780", "DcomLaunch, PlugPlay,"], ["", "", "Power"]],
        lefts={0, 2},
    )
    services = read_tasklist(write(tmp_path, "zhs.txt", zh_svc))["services"].to_list()
    assert services == ["DcomLaunch,PlugPlay,Power"]
    zh_list = [
        "",
        "映像名称:     store.exe",
        "PID:          2136",
        "会话名      : Console",
        "会话#   :     0",
        "内存使用 :    1,040,592 K",
        "",
    ]
    check(
        read_tasklist(write(tmp_path, "zhl.txt", zh_list)),
        {"pid": [2136], "image": ["store.exe"], "session": [0], "mem_kb": [1040592]},
    )


def test_utf16_file(tmp_path):
    """BUILT: the default table saved as UTF-16 (what `tasklist > file` gives in PowerShell)."""
    lines = table(
        DEFAULT_W, ["Image Name", "PID", "Session Name", "Session#", "Mem Usage"], DEFAULT_ROWS, lefts={0, 2}
    )
    check(read_tasklist(write(tmp_path, "u16.txt", lines, encoding="utf-16")), EXPECT_DEFAULT)


# ---------------------------------------------------------------------------------- snapshots


def test_snapshots_in_one_file_keep_their_times(tmp_path):
    """BUILT: two snapshots in one file, each after a `# snapshot` line; PID 2136 is reused."""
    first = table(
        DEFAULT_W,
        ["Image Name", "PID", "Session Name", "Session#", "Mem Usage"],
        [["store.exe", "2136", "Console", "0", "1,040,592 K"]],
        lefts={0, 2},
    )
    second = table(
        DEFAULT_W,
        ["Image Name", "PID", "Session Name", "Session#", "Mem Usage"],
        [["notepad.exe", "2136", "Console", "1", "4,000 K"]],
        lefts={0, 2},
    )
    lines = ["# snapshot 2010-01-14 11:20:00Z", *first, "# snapshot 2010-01-14T12:20:00+01:00", *second]
    df = read_tasklist(write(tmp_path, "two.txt", lines))
    check(df, {"pid": [2136, 2136], "image": ["store.exe", "notepad.exe"], "snapshot_index": [0, 1]})
    assert df["snapshot"].to_list() == [SNAP, SNAP]  # 12:20+01:00 is 11:20Z
    assert df["snapshot"].dtype == pl.Datetime("ns", "UTC")


def test_snapshots_by_header_and_files(tmp_path, corpus, cases):
    """BUILT: a second header starts a new snapshot; several files each keep their own; the
    snapshot_time argument dates every snapshot without its own line."""
    block = table(
        DEFAULT_W,
        ["Image Name", "PID", "Session Name", "Session#", "Mem Usage"],
        DEFAULT_ROWS[:2],
        lefts={0, 2},
    )
    path = write(tmp_path, "hdr2.txt", ["# snapshot 2010-01-14 11:20:00", *block, *block])
    df = read_tasklist(
        [path, cases / "exchange-udp" / "tasklist.txt"], snapshot_time=SNAP + timedelta(hours=1)
    )
    assert df["snapshot_index"].to_list() == [0, 0, 1, 1, 2, 2, 2, 2, 2]
    assert df["snapshot"].to_list() == [SNAP] * 2 + [SNAP + timedelta(hours=1)] * 7
    assert df["file"].to_list()[-1].endswith("tasklist.txt")


# ------------------------------------------------------------------------------ damaged input


@pytest.mark.parametrize(
    "content, line",
    [
        (b"", 1),
        (b"\n \n", 1),
        (b"\x00\x01\x02\x03\xff\xfe junk", 1),
        (b"hello world\nthis is not tasklist\n", 1),
    ],
)
def test_bad_input_raises_one_line_error(tmp_path, content, line):
    path = tmp_path / "in.txt"
    path.write_bytes(content)
    with pytest.raises(TextFormatError) as info:
        read_tasklist(path)
    assert info.value.path == str(path) and info.value.line == line and "\n" not in str(info.value)


def test_bad_snapshot_time(tmp_path):
    path = write(tmp_path, "s.txt", ["# snapshot yesterday", "store.exe 2136 Console 0 1 K"])
    with pytest.raises(TextFormatError, match="line 1: snapshot line"):
        read_tasklist(path)


def test_damaged_rows_warned_and_skipped(tmp_path, caplog):
    """BUILT: a table with a garbled row: the row is skipped with a warning naming its line."""
    lines = table(
        DEFAULT_W,
        ["Image Name", "PID", "Session Name", "Session#", "Mem Usage"],
        DEFAULT_ROWS[:2],
        lefts={0, 2},
    ) + ["store.exe  twenty-one  Console", "INFO: done"]
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_tasklist(write(tmp_path, "dmg.txt", lines))
    assert df["pid"].to_list() == [0, 4]
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "skipped 1 line(s) (" in msg and msg.endswith("): lines 6")


def test_two_localized_snapshots_without_warnings(tmp_path, caplog):
    """BUILT: two German tables in one file: the second header (known by its ===== line) starts a
    second snapshot, nothing is skipped."""
    de = table(
        DEFAULT_W,
        ["Abbildname", "PID", "Sitzungsname", "Sitz.-Nr.", "Speichernutzung"],
        [r[:4] + [r[4].replace(",", ".")] for r in DEFAULT_ROWS],
        lefts={0, 2},
    )
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_tasklist(write(tmp_path, "de2.txt", de + de))
    assert caplog.records == []
    assert df["snapshot_index"].to_list() == [0] * 4 + [1] * 4
    assert df["pid"].to_list() == EXPECT_DEFAULT["pid"] * 2


def test_csv_row_with_a_damaged_pid_is_warned_not_taken_for_a_header(tmp_path, caplog):
    """BUILT. Bug (break-readers): a /fo csv row whose PID had non-digits was taken for a localized
    header and dropped without a warning."""
    header = '"Image Name","PID","Session Name","Session#","Mem Usage"'
    rows = ['"{}","{}","{}","{}","{}"'.format(*r) for r in DEFAULT_ROWS]
    lines = [header, rows[0], '"a.exe","21x6","Console","1","5 K"', *rows[1:]]
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_tasklist(write(tmp_path, "c.csv", lines))
    check(df, EXPECT_DEFAULT)
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.endswith("skipped 1 line(s) (row without a numeric PID): lines 3")


@pytest.mark.parametrize(
    "lines",
    [
        [
            '"Image Name","PID","Session Name","Session#","Mem Usage"',
            '"a.exe","99999999999999999999999","C","1","5 K"',
        ],
        ['"Image Name","PID","Session Name","Session#","Mem Usage"', '"a.exe","\u00b2","C","1","5 K"'],
        [
            "Image Name:   a.exe",
            "PID:          \u00b2",
            "Session Name: Console",
            "Session#:     1",
            "Mem Usage:    5 K",
        ],
    ],
)
def test_out_of_range_or_unicode_pid_is_not_an_internal_error(tmp_path, lines):
    """BUILT. Bug (break-readers): a PID that overflows int64 made polars raise, a superscript digit
    ('\u00b2'.isdigit() is True) made int() raise; both are now rows without a numeric PID."""
    rows = ['"{}","{}","{}","{}","{}"'.format(*r) for r in DEFAULT_ROWS] if lines[0].startswith('"') else []
    path = write(tmp_path, "t.txt", lines + rows)
    if rows:
        assert read_tasklist(path)["pid"].to_list() == EXPECT_DEFAULT["pid"]
    else:
        with pytest.raises(TextFormatError, match="no tasklist rows"):
            read_tasklist(path)


def test_huge_session_and_memory_are_null_not_internal_error(tmp_path):
    """BUILT. Bug (break-readers): a session number or memory size past int64 made polars raise."""
    lines = [
        '"Image Name","PID","Session Name","Session#","Mem Usage"',
        '"a.exe","7","C","\u00b2","99999999999999999999999 K"',
        '"b.exe","8","C","99999999999999999999999","5 K"',
    ]
    df = read_tasklist(write(tmp_path, "t.csv", lines))
    check(df, {"pid": [7, 8], "session": [None, None], "mem_kb": [None, 5]})


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
        "1900-01-01T00:00:00Z",
    ],
)
def test_snapshot_time_out_of_range_is_one_line_error(tmp_path, when):
    """BUILT. Bug (break-readers): a snapshot line past 2262 or before year 1 + zone made polars or
    datetime raise (an internal error); now a TextFormatError naming the line."""
    path = write(tmp_path, "s.txt", [f"# snapshot {when}", "store.exe 2136 Console 0 1 K"])
    with pytest.raises(TextFormatError, match="line 1: snapshot line: .* is not between 1970 and 2262"):
        read_tasklist(path)
    with pytest.raises(TextFormatError, match="not between 1970 and 2262"):
        read_tasklist(
            write(tmp_path, "n.txt", ["store.exe 2136 Console 0 1 K"]), snapshot_time=datetime(9999, 1, 1)
        )


def test_misaligned_row_of_a_two_column_table_is_warned_not_internal_error(tmp_path, caplog):
    """BUILT. Bug (break-readers, found by fuzzing): a table with an English header of two columns (Image
    Name, PID) and a row off its columns raised IndexError in the token fallback (it assumed 3 columns)."""
    lines = table([25, 8], ["Image Name", "PID"], [["svchost.exe", "868"]], lefts={0}) + [
        "foo.exe  12 bar baz"
    ]
    with caplog.at_level(logging.WARNING, logger="etwtools"):
        df = read_tasklist(write(tmp_path, "two.txt", lines))
    check(df, {"pid": [868], "image": ["svchost.exe"]})
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "skipped 1 line(s) (" in msg and msg.endswith("): lines 5")
