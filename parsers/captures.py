"""Capture files (pcap, pcapng, Network Monitor 2.x .cap): tell them apart and read them into the FRAMES
table or as packets."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import polars as pl

from . import netmon, pcap, pcapng
from .errors import CaptureError
from .packets import Interface, Packet
from .units import PathLike, Progress


def sniff(head: bytes) -> str | None:
    """``"pcap"``, ``"pcapng"``, ``"netmon"`` or None from the first bytes of a file."""
    if head[:4] == netmon.SIGNATURE:
        return "netmon"
    if (
        len(head) >= 12
        and head[:4] == b"\x0a\x0d\x0d\x0a"
        and head[8:12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d")
    ):
        return "pcapng"
    if len(head) >= 4:
        for order in "<>":
            if struct.unpack(order + "I", head[:4])[0] in (pcap.MAGIC_US, pcap.MAGIC_NS, pcap.MAGIC_MODIFIED):
                return "pcap"
    return None


def _kind(path: PathLike) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise CaptureError(f"cannot read: {e.strerror}", path=path) from None
    kind = sniff(head)
    if kind is None and head[:4] == b"\x0a\x0d\x0d\x0a":
        kind = "pcapng"  # a damaged section header: let the pcapng reader say what is wrong
    if kind is None:
        raise CaptureError(
            f"not a pcap or pcapng file (starts with {head[:4].hex() or 'nothing'})", path=path, offset=0
        )
    return kind


def read_capture(
    path: PathLike, *, with_data: bool = False, progress: Progress | None = None, kind: str | None = None
) -> pl.DataFrame:
    """Frames (FRAMES schema) of a pcap, pcapng or Network Monitor file (pcapng adds a ``comment``
    column); ``with_data`` adds the raw frame bytes as a ``data`` column. ``kind``: what the file is
    when already known (:func:`sniff`'s name), else sniffed here."""
    kind = kind or _kind(path)
    if kind == "pcapng":
        return pcapng.read_pcapng(path, with_data=with_data, progress=progress)
    if kind == "netmon":
        return netmon.read_netmon(path, with_data=with_data, progress=progress)
    return pcap.read_pcap(path, with_data=with_data, progress=progress)


def iter_capture_packets(
    path: PathLike, *, kind: str | None = None
) -> tuple[list[Interface], Iterator[Packet]]:
    """The interfaces and the packets, in file order (packet i is frame i + 1 of :func:`read_capture`);
    ``kind`` as for :func:`read_capture`."""
    kind = kind or _kind(path)
    if kind == "pcapng":
        return pcapng.iter_packets(path)
    if kind == "netmon":
        return netmon.iter_packets(path)
    return pcap.iter_packets(path)
