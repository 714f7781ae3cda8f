"""Write a capture again as pcapng with the attribution on each packet, where Wireshark shows it.

Each attributed packet gets:

- comments, one option per line, ``Key: value``: ``PID: 2136``, ``Process: store.exe``, ``Services: ...``,
  ``Confidence: high``, ``Method: udp-5tuple-size``, ``Reason: ...`` (Wireshark: ``frame.comment contains
  "Process: store.exe"``);
- the pcapng draft's ``epb_processid_threadid`` option (code 8: process id and thread id, two u32) with the
  ATTRIBUTED pid (thread id 0, "unknown", unless the attribution gives one), for high and medium
  confidence only: Wireshark shows that field without the confidence.

Optionally (``process_blocks``) one Process Information Block per attributed process, as Wireshark's
development builds read and write it: a custom block (type 0xBAD) of the Wireshark Foundation's PEN 32622,
entry type 3, then (little-endian) the process id and the block's options (2 name, 9 start time in ns,
1 comment). Wireshark matches a packet's option-8 pid to it. Wireshark releases without that support
(Debian's 4.0) list each such block as a frame of its own, so frame numbers then shift by the number of
blocks; packets are numbered as in the input everywhere else.

Packets stream from the input to the output: memory holds one batch of packets and the attribution's
columns, never the whole capture.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable, Iterator

import polars as pl

from .attribution import Attribution
from .attribution.constants import RANK
from .errors import CaptureError
from .parsers.packets import Interface, Packet
from .parsers.pcapng import OPT_COMMENT, OPT_PROCESSID_THREADID, custom_block

log = logging.getLogger("etwtools")

#: Wireshark Foundation's private enterprise number, and the entry type of a process information block
#: inside its custom blocks (wiretap/pcapng-wireshark-custom.c).
PEN_WIRESHARK = 32622
WIRESHARK_CB_PROCESS_INFORMATION = 3
PIB_NAME, PIB_STARTTIME = 2, 9
#: The comment lines, in order: (key, column); a line whose value is empty, or whose column the
#: attribution does not have (User and Remote name come with event-log attributions), is left out.
FIELDS = [
    ("PID", "pid"),
    ("Process", "process"),
    ("Services", "services"),
    ("User", "user"),
    ("Confidence", "confidence"),
    ("Method", "method"),
    ("Remote name", "remote_name"),
    ("Reason", "reason"),
]
_BATCH = 65536


def _levels(floor: str) -> list[str]:
    if floor not in RANK:
        raise ValueError(f"confidence {floor!r} is not one of {', '.join(RANK)}")
    return [c for c, r in RANK.items() if r >= max(RANK[floor], 1)]


def annotations(attribution: Attribution, min_confidence: str = "low") -> pl.DataFrame:
    """The annotated frames, in frame order: ``frame``, ``lines`` (the comment lines, list of str),
    ``pid``, ``tid`` and ``confidence``, for every frame attributed with at least ``min_confidence``."""
    df = attribution.frames.filter(
        pl.col("pid").is_not_null() & pl.col("confidence").is_in(_levels(min_confidence))
    )
    tid = pl.col("tid").cast(pl.Int64) if "tid" in df.columns else pl.lit(None, pl.Int64)
    one = {"pid": pl.col("pid").cast(pl.Utf8), "process": pl.col("process").fill_null("(unknown)")}
    lines = [
        pl.format(f"{key}: {{}}", one.get(col, pl.col(col).cast(pl.Utf8)))
        for key, col in FIELDS
        if col in df.columns
    ]
    return df.select(
        "frame",
        pl.concat_list(lines).list.drop_nulls().alias("lines"),
        pl.col("pid").cast(pl.Int64),
        tid.alias("tid"),
        "confidence",
    ).sort("frame")


def comments(attribution: Attribution, min_confidence: str = "low") -> dict[int, str]:
    """Frame number -> the comment text (its lines joined by newlines) of every annotated frame."""
    a = annotations(attribution, min_confidence)
    return dict(zip(a["frame"].to_list(), a["lines"].list.join("\n").to_list()))


def process_blocks(attribution: Attribution, min_confidence: str = "medium") -> list[bytes]:
    """One Process Information Block (Wireshark custom block) per attributed (pid, process) pair.

    When a pid belongs to several processes in the capture (reuse), each block gets the time of its
    first attributed frame as start time, so that Wireshark picks the right one for each packet; a
    comment says so."""
    df = (
        attribution.frames.filter(
            pl.col("pid").is_not_null() & pl.col("confidence").is_in(_levels(min_confidence))
        )
        .group_by("pid", "process")
        .agg(pl.col("time").min().cast(pl.Int64).alias("first"), pl.col("services").drop_nulls().first())
        .with_columns(pl.len().over("pid").alias("n"))
        .sort("pid", "first")
    )
    out = []
    for r in df.iter_rows(named=True):
        opts = []
        if r["process"] is not None:
            opts.append((PIB_NAME, r["process"].encode("utf-8")))
        notes = []
        if r["services"]:
            notes.append(f"Services: {r['services']}")
        if r["n"] > 1 and r["first"] is not None:
            opts.append((PIB_STARTTIME, struct.pack("<Q", max(r["first"], 0))))
            notes.append("Start time: the first frame attributed to this process (PID reused in the capture)")
        opts += [(OPT_COMMENT, n.encode("utf-8")) for n in notes]
        body = struct.pack("<I", r["pid"] & 0xFFFFFFFF) + _options(opts)
        out.append(
            custom_block(
                PEN_WIRESHARK, struct.pack("<II", WIRESHARK_CB_PROCESS_INFORMATION, len(body)) + body
            )
        )
    return out


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    """Little-endian options with their end-of-options marker (nothing when there are none)."""
    if not opts:
        return b""
    out = b"".join(struct.pack("<HH", c, len(v)) + v + b"\0" * (-len(v) % 4) for c, v in opts)
    return out + b"\0\0\0\0"


def _open(source, spill_dir: str | None = None) -> tuple[list[Interface], Iterator[Packet]]:
    if isinstance(source, (str, os.PathLike)):
        from .sources import KINDS, detect

        read = KINDS[kind := detect(source)].packets
        if read is not None:
            return read(source, spill_dir=spill_dir)
        raise CaptureError(
            f"expected a pcap, pcapng, NetMon or ETL file with packets, found {kind}", path=source
        )
    interfaces, packets = source
    return list(interfaces), iter(packets)


#: LINKTYPE_USER0: the pcapng link type of frames whose capture gave none that pcapng has (Network
#: Monitor media types without a LINKTYPE); the interface's name says what they were.
_LINKTYPE_USER0 = 147


def _pcapng_interface(iface: Interface) -> Interface:
    """``iface`` as pcapng can describe it: NetMon-only media types become LINKTYPE_USER0, named."""
    if 0 <= iface.link_type <= 0xFFFF:
        return iface
    from .parsers.netmon import NETMON_LINK_BASE

    what = (
        f"Network Monitor media type {iface.link_type - NETMON_LINK_BASE:#06x}"
        if iface.link_type > NETMON_LINK_BASE
        else f"link type {iface.link_type}"
    )
    name = f"{iface.name} ({what})" if iface.name else what
    return Interface(
        _LINKTYPE_USER0, tsresol=iface.tsresol, tsoffset=iface.tsoffset, snaplen=iface.snaplen, name=name
    )


class _Options:
    """The pcapng options of packet i (0-based), walking the annotations batch by batch."""

    def __init__(self, ann: pl.DataFrame, pid_levels: list[str]) -> None:
        self.ann, self.pid_levels = ann, set(pid_levels)
        self.start = 0  # first row of the current batch in ``ann``
        self.rows: dict[int, tuple] = {}  # frame -> (lines, pid, tid, confidence) of the current batch
        self.last_frame = 0
        self.count = 0

    def _load(self, frame: int) -> None:
        """Load the batch of rows from the first with a frame number >= ``frame``."""
        frames = self.ann["frame"]
        pos = self.start
        if pos < len(frames) and frames[pos] < frame:
            pos = int(frames.search_sorted(frame, side="left"))
        part = self.ann.slice(pos, _BATCH)
        self.start = pos + part.height
        self.rows = {
            f: (lines, pid, tid, conf)
            for f, lines, pid, tid, conf in zip(
                part["frame"].to_list(),
                part["lines"].to_list(),
                part["pid"].to_list(),
                part["tid"].to_list(),
                part["confidence"].to_list(),
            )
        }
        self.last_frame = part["frame"][-1] if part.height else None

    def __call__(self, i: int) -> list[tuple[int, bytes]] | None:
        frame = i + 1
        if self.last_frame is not None and frame > self.last_frame:
            self._load(frame)
        row = self.rows.pop(frame, None)
        if row is None:
            return None
        lines, pid, tid, conf = row
        self.count += 1
        opts = [(OPT_COMMENT, line.encode("utf-8")) for line in lines]
        if conf in self.pid_levels:
            opts.append(
                (OPT_PROCESSID_THREADID, struct.pack("<II", pid & 0xFFFFFFFF, (tid or 0) & 0xFFFFFFFF))
            )
        return opts


def write_annotated(
    capture_path_or_packets: str | os.PathLike | tuple[list[Interface], Iterable[Packet]],
    attribution: Attribution,
    out_path: str | os.PathLike,
    *,
    min_confidence: str = "low",
    pid_confidence: str = "medium",
    with_process_blocks: bool = False,
) -> int:
    """Write the capture (a path, or ``(interfaces, packets)``) to ``out_path`` as pcapng. Each packet
    attributed with at least ``min_confidence`` gets the comment lines of :func:`annotations` (after any
    comment it already had), and with at least ``pid_confidence`` the epb_processid_threadid option.
    ``with_process_blocks`` adds :func:`process_blocks` after the interfaces. Packet i is frame i + 1.
    Returns the number of packets annotated."""
    from .parsers.pcapng import write_pcapng

    ann = annotations(attribution, min_confidence)
    opts = _Options(ann, _levels(pid_confidence))
    blocks = process_blocks(attribution, pid_confidence) if with_process_blocks else []
    # an ETL's packets wait on disk beside the output until they are written in frame order
    interfaces, packets = _open(capture_path_or_packets, os.path.dirname(os.path.abspath(out_path)))
    interfaces = [_pcapng_interface(i) for i in interfaces]
    try:
        # a file's packets without a time are its simple packet blocks: written back as such
        write_pcapng(
            out_path,
            interfaces,
            packets,
            blocks=blocks,
            options=opts,
            simple_untimed=isinstance(capture_path_or_packets, (str, os.PathLike)),
        )
    except ValueError as e:  # a packet the pcapng format cannot hold (no time, bad interface)
        raise CaptureError(f"cannot write the annotated capture: {e}", path=out_path) from None
    if blocks:
        log.warning(
            f"{os.fspath(out_path)}: {len(blocks)} process information block(s) written; Wireshark "
            f"releases that do not read them (before the 4.7 development series; Debian's 4.0) list "
            f"each as a frame, so their frame numbers are shifted by {len(blocks)}"
        )
    return opts.count
