"""--annotate checked with Debian's tshark: comments that display filters select, the process id option,
frame numbers kept, and the optional process information blocks.

Debian's tshark 4.0 has no field for epb_processid_threadid (option 8; `tshark -G fields` lists none): it
reads the option without showing it in the frame tree. Its pcapng file dissector (`-X read_format:"MIME
Files Format"`) does show every option of every block (`pcapng.options.option.code`/`.data`), so the
option-8 value is checked there. That view puts all blocks of a file in one tree, limited to a million
items, so for the demo (105,558 frames) it is given a copy of the section header, the interface and the
one packet block of frame 105540, cut from the annotated file.

The corpus capture is built as tests/test_truth_sets.py builds it: frames from the real events of
perfview/net.4.5.2.x86.etl, written with the project's pcap writer.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import polars as pl
from click.testing import CliRunner
from test_truth_sets import HOUR, capture_from_events, load_events, write_capture

from etwtools.cli import cli
from etwtools.parsers.captures import read_capture

DATA = Path(__file__).resolve().parent.parent / "data"
MIME = ["-X", "read_format:MIME Files Format"]


def run_tshark(tshark: str, *args: str) -> list[str]:
    """tshark's output lines (it must succeed)."""
    p = subprocess.run([tshark, *args], capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def frame_columns(tshark: str, path) -> list[str]:
    """Number, length and time of every frame, as tshark numbers them."""
    return run_tshark(
        tshark,
        "-r",
        str(path),
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "frame.len",
        "-e",
        "frame.time_epoch",
    )


def pcapng_view(tshark: str, path) -> list[dict]:
    """Each enhanced packet block as tshark's pcapng file dissector shows it: {"comments": [...],
    "option8": the bytes tshark locates as the data of option 8, or None}."""
    import xml.etree.ElementTree as ET

    raw = Path(path).read_bytes()
    xml = subprocess.run(
        [tshark, *MIME, "-r", str(path), "-T", "pdml"], capture_output=True, timeout=300, check=False
    )
    assert xml.returncode == 0, xml.stderr
    out = []
    for block in ET.fromstring(xml.stdout).iter("field"):
        if block.get("name") != "pcapng.block":
            continue
        btype = next(f for f in block if f.get("name") == "pcapng.block.type")
        if btype.get("show") != "0x00000006":
            continue
        seen: dict = {"comments": [], "option8": None}
        for opt in block.iter("field"):
            if opt.get("name") != "pcapng.options.option":
                continue
            parts = {f.get("name"): f for f in opt}
            code = parts["pcapng.options.option.code"].get("show")
            if code == "1":
                seen["comments"].append(parts["pcapng.options.option.data.comment"].get("show"))
            elif code == "8":
                data = parts["pcapng.options.option.data"]
                pos, size = int(data.get("pos")), int(data.get("size"))
                seen["option8"] = raw[pos : pos + size]
        out.append(seen)
    return out


def blocks(path) -> list[tuple[int, bytes]]:
    """(type, whole block) of each block of a little-endian pcapng (as the project writes them)."""
    raw = Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        btype, blen = struct.unpack_from("<II", raw, pos)
        out.append((btype, raw[pos : pos + blen]))
        pos += blen
    return out


def annotate(tmp_path, *args: str, name: str = "out.pcapng"):
    out = tmp_path / name
    res = CliRunner().invoke(
        cli,
        ["attribute", *args, "--annotate", str(out), "-f", "csv", "-o", str(tmp_path / "attribution.csv")],
    )
    assert res.exit_code == 0, res.stderr
    return out, pl.read_csv(tmp_path / "attribution.csv", infer_schema_length=None), res


def test_demo_annotated_capture_in_tshark(tshark, tmp_path, demo):
    out, result, _ = annotate(tmp_path, *demo)
    # the comment lines are display-filter fields: "Process: store.exe" selects the answer (high) and the
    # one frame with a low-confidence candidate of the same process; the confidence line tells them apart
    sel = run_tshark(
        tshark,
        "-r",
        str(out),
        "-Y",
        'frame.comment contains "Process: store.exe"',
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    assert sel == ["105540", "105558"]
    high = run_tshark(
        tshark,
        "-r",
        str(out),
        "-Y",
        'frame.comment contains "Process: store.exe" && frame.comment contains "Confidence: high"',
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "frame.comment",
    )
    assert len(high) == 1
    number, comments = high[0].split("\t")
    assert number == "105540"
    assert comments.split(",")[:4] == [
        "PID: 2136",
        "Process: store.exe",
        "Confidence: high",
        "Method: udp-5tuple-size",
    ]
    assert run_tshark(
        tshark, "-r", str(out), "-Y", 'frame.comment == "PID: 2136"', "-T", "fields", "-e", "frame.number"
    ) == ["105540", "105558"]
    # frame numbers, lengths and times as in the input
    assert frame_columns(tshark, out) == frame_columns(tshark, DATA / "capture.pcap")
    assert result.filter(pl.col("frame") == 105540)["pid"].to_list() == [2136]

    # option 8 of frame 105540: PID 2136, thread unknown (0); the low-confidence frame has none
    bl = blocks(out)
    epbs = [b for t, b in bl if t == 6]
    assert len(epbs) == 105558
    head = b"".join(b for t, b in bl if t in (0x0A0D0D0A, 1))
    one = tmp_path / "frames-105540-105558.pcapng"
    one.write_bytes(head + epbs[105540 - 1] + epbs[105558 - 1])
    hit, low = pcapng_view(tshark, one)
    assert hit["option8"] == struct.pack("<II", 2136, 0)
    assert hit["comments"][:2] == ["PID: 2136", "Process: store.exe"]
    assert low["option8"] is None and "Confidence: low" in low["comments"]


def test_demo_process_blocks(tshark, tmp_path, demo):
    """--process-blocks: one Wireshark custom block (PEN 32622, entry type 3, PID 2136, name store.exe)
    after the interface. Debian's tshark 4.0 lists it as frame 1, so the packets move up by one there,
    as the warning says; the project's reader (like Wireshark builds that read these blocks) keeps the
    capture's numbers."""
    out, _, res = annotate(tmp_path, *demo, "--process-blocks")
    assert "1 process information block(s) written" in res.stderr and "shifted by 1" in res.stderr
    first = run_tshark(
        tshark, "-r", str(out), "-c", "1", "-T", "fields", "-e", "frame.cb_pen", "-e", "data.data"
    )
    pen, data = first[0].split("\t")
    assert pen == "32622"
    body = bytes.fromhex(data)
    entry_type, entry_len, pid = struct.unpack_from("<III", body)
    assert (entry_type, pid) == (3, 2136) and entry_len == len(body) - 8
    code, length = struct.unpack_from("<HH", body, 12)
    assert (code, body[16 : 16 + length]) == (2, b"store.exe")
    sel = run_tshark(
        tshark,
        "-r",
        str(out),
        "-Y",
        'frame.comment contains "Confidence: high"',
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    assert sel == ["105541"]
    back = read_capture(out)
    assert back.height == 105558
    assert back.filter(pl.col("comment").str.contains("Confidence: high"))["frame"].to_list() == [105540]


def test_corpus_capture_annotated_in_tshark(corpus, tshark, tmp_path):
    etl = corpus / "perfview" / "net.4.5.2.x86.etl"
    fr, truth = capture_from_events(load_events(etl), 3 * HOUR + 141_421_356, noise=120)
    pcap = tmp_path / "truth.pcap"
    write_capture(fr, pcap)
    out, result, _ = annotate(tmp_path, "--etl", str(etl), "--pcap", str(pcap))
    assert frame_columns(tshark, out) == frame_columns(tshark, pcap)

    # every frame's comment as tshark shows it, against the attribution table
    shown = run_tshark(tshark, "-r", str(out), "-T", "fields", "-e", "frame.number", "-e", "frame.comment")
    got = {int(n): c.split(",") for n, c in (line.split("\t") for line in shown) if c}
    want = result.filter(pl.col("pid").is_not_null() & (pl.col("confidence") != "none"))
    assert sorted(got) == want["frame"].to_list() and len(got) > 500
    for r in want.iter_rows(named=True):
        lines = got[r["frame"]]
        assert lines[0] == f"PID: {r['pid']}" and lines[1] == f"Process: {r['process'] or '(unknown)'}"
        assert f"Confidence: {r['confidence']}" in lines
    # a process filter selects exactly that process's frames
    top = want.group_by("process").len().sort("len", descending=True).row(0, named=True)
    sel = run_tshark(
        tshark,
        "-r",
        str(out),
        "-Y",
        f'frame.comment contains "Process: {top["process"]}"',
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    assert len(sel) == top["len"]

    # option 8 in the pcapng view, block by block: the PID of each high/medium frame, in frame order
    view = pcapng_view(tshark, out)
    assert len(view) == result.height
    with8 = [(n, v["option8"]) for n, v in enumerate(view, start=1) if v["option8"] is not None]
    sure = result.filter(pl.col("confidence").is_in(["high", "medium"]) & pl.col("pid").is_not_null())
    assert [n for n, _ in with8] == sure["frame"].to_list()
    pids = [struct.unpack("<II", v)[0] for _, v in with8]
    assert pids == sure["pid"].to_list()
    assert all(struct.unpack("<II", v)[1] == 0 for _, v in with8)
    # and the answer is right: the frames' true PIDs (built from the real events)
    truth_by_frame = dict(zip(range(1, len(truth) + 1), truth))
    right = sum(truth_by_frame[f] == p for f, p in zip(sure["frame"].to_list(), pids))
    assert right / len(pids) >= 0.99


def test_process_blocks_for_a_reused_pid(tshark, tmp_path):
    """PID 700 is first a.exe then b.exe in the capture: two process information blocks, each with the
    time of its process's first frame as start time (option 9, ns), so that a reader that matches a
    packet's option-8 PID to the latest block started before it names the right process; the frames
    and the attribution table are built here (two UDP datagrams written with the project's writer)."""
    from test_truth_sets import build_frame

    from etwtools.annotate import write_annotated
    from etwtools.attribution import Attribution
    from etwtools.parsers.packets import Interface, Packet
    from etwtools.parsers.pcapng import write_pcapng

    t0 = 1_700_000_000 * 1_000_000_000
    src = tmp_path / "in.pcapng"
    write_pcapng(
        src,
        [Interface(link_type=1, tsresol=9)],
        [
            Packet(t0 + k * 60_000_000_000, build_frame("192.0.2.1", "192.0.2.2", "UDP", 5000 + k, 53, 10))
            for k in range(2)
        ],
    )
    frames = (
        read_capture(src)
        .select("frame", "time", "protocol", "src_addr", "src_port", "dst_addr", "dst_port", "payload_len")
        .with_columns(
            pl.lit("out").alias("direction"),
            pl.Series("pid", [700, 700], dtype=pl.Int64),
            pl.Series("process", ["a.exe", "b.exe"]),
            pl.lit(None, pl.Utf8).alias("services"),
            pl.lit("high").alias("confidence"),
            pl.lit("udp-5tuple-size").alias("method"),
            pl.lit("same 5-tuple and size").alias("reason"),
        )
    )
    r = Attribution(
        frames=frames,
        offset_ns=0,
        offset_source="given",
        offset_support=2,
        local_addrs=["192.0.2.1"],
        local_addrs_source="given",
        summary=pl.DataFrame(),
    )
    out = tmp_path / "out.pcapng"
    assert write_annotated(src, r, out, with_process_blocks=True) == 2
    pibs = [b for t, b in blocks(out) if t == 0xBAD]
    assert len(pibs) == 2
    got = []
    for b in pibs:
        pen, entry, length, pid = struct.unpack_from("<IIII", b, 8)
        assert (pen, entry, pid) == (32622, 3, 700)
        opts, pos, end = {}, 24, 20 + length
        while pos < end:
            code, olen = struct.unpack_from("<HH", b, pos)
            if code == 0:
                break
            opts.setdefault(code, []).append(b[pos + 4 : pos + 4 + olen])
            pos += 4 + olen + (-olen % 4)
        got.append((opts[2][0], struct.unpack("<Q", opts[9][0])[0], opts[1][0].decode()))
    assert [(n, t) for n, t, _ in got] == [(b"a.exe", t0), (b"b.exe", t0 + 60_000_000_000)]
    assert all("PID reused" in c for _, _, c in got)
    # Debian's tshark: two custom-block frames first, then the packets with their comments
    rows = run_tshark(
        tshark,
        "-r",
        str(out),
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "frame.cb_pen",
        "-e",
        "frame.comment",
    )
    assert [r.split("\t")[1] for r in rows] == ["32622", "32622", "", ""]
    assert rows[2].split("\t")[2].startswith("PID: 700,Process: a.exe,")
    assert rows[3].split("\t")[2].startswith("PID: 700,Process: b.exe,")


def test_real_capture_annotated_from_event_logs(corpus, tshark, tmp_path):
    """A real capture (OTRF purplesharp pair: pcap, 1,121 frames) annotated from the same lab's Sysmon and
    Security logs through the command line: tshark keeps its frame numbers, a process filter selects that
    process's frames, the remote name (Sysmon DNS query) is a comment line too, and option 8 carries the
    PID of every high/medium frame."""
    pair = corpus / "otrf" / "purplesharp_ad_playbook_I"
    cap = pair / "purplesharp_ad_playbook_I_2020-10-22042947.cap"
    out, result, _ = annotate(
        tmp_path, "--etl", str(pair / "host_purplesharp_ad_playbook_I.zip"), "--pcap", str(cap)
    )
    assert frame_columns(tshark, out) == frame_columns(tshark, cap)
    lsass = result.filter((pl.col("process") == "lsass.exe") & (pl.col("confidence") != "none"))[
        "frame"
    ].to_list()
    sel = run_tshark(
        tshark,
        "-r",
        str(out),
        "-Y",
        'frame.comment contains "Process: lsass.exe"',
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    assert [int(n) for n in sel] == lsass and len(lsass) > 100
    dc = run_tshark(
        tshark,
        "-r",
        str(out),
        "-Y",
        'frame.comment == "Remote name: mordordc.theshire.local"',
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    assert [int(n) for n in dc] == result.filter(
        (pl.col("remote_name") == "mordordc.theshire.local")
        & (pl.col("confidence") != "none")
        & pl.col("pid").is_not_null()
    )["frame"].to_list()
    view = pcapng_view(tshark, out)
    assert len(view) == result.height == 1121
    sure = result.filter(pl.col("confidence").is_in(["high", "medium"]) & pl.col("pid").is_not_null())
    with8 = [(n, struct.unpack("<II", v["option8"])[0]) for n, v in enumerate(view, start=1) if v["option8"]]
    assert with8 == list(zip(sure["frame"].to_list(), sure["pid"].to_list()))
