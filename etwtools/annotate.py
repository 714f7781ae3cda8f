"""Write a capture again as pcapng with the attribution as a comment on each packet.

Wireshark shows the comment in the packet details and filters on it:
``frame.comment contains "store.exe"``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import polars as pl

from .attribution import Attribution
from .errors import CaptureError
from .parsers.packets import Interface, Packet

_CONFIDENCE = {"high": 3, "medium": 2, "low": 1, "none": 0}


def comments(attribution: Attribution, min_confidence: str = "low") -> dict[int, str]:
    """Frame number -> comment text (``pid=2136 process=store.exe services=... confidence=high ...``)
    for every frame attributed with at least ``min_confidence``."""
    floor = _CONFIDENCE[min_confidence]
    keep = [c for c, r in _CONFIDENCE.items() if r >= max(floor, 1)]
    df = attribution.frames.filter(pl.col("pid").is_not_null() & pl.col("confidence").is_in(keep))
    text = df.select(
        "frame",
        pl.concat_str([
            pl.format("pid={}", pl.col("pid").cast(pl.Utf8)),
            pl.format(" process={}", pl.col("process").fill_null("unknown").str.replace_all(" ", "_")),
            pl.when(pl.col("services").is_not_null())
            .then(pl.format(" services={}", pl.col("services").str.replace_all(" ", ""))).otherwise(pl.lit("")),
            pl.format(" confidence={} method={}", pl.col("confidence"), pl.col("method")),
        ]).alias("comment"))
    return dict(zip(text["frame"].to_list(), text["comment"].to_list()))


def _open(source) -> tuple[list[Interface], Iterator[Packet]]:
    if isinstance(source, (str, os.PathLike)):
        from .sources import detect

        kind = detect(source)
        if kind in ("pcap", "pcapng", "netmon"):
            from .parsers.captures import iter_capture_packets

            return iter_capture_packets(source)
        if kind == "etl":
            from .parsers.etl.packets import iter_etl_capture

            interfaces, packets = iter_etl_capture(source)
            return interfaces or [Interface(link_type=1)], packets
        raise CaptureError(f"expected a pcap, pcapng, NetMon or ETL file with packets, found {kind}", path=source)
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

    what = (f"Network Monitor media type {iface.link_type - NETMON_LINK_BASE:#06x}"
            if iface.link_type > NETMON_LINK_BASE else f"link type {iface.link_type}")
    name = f"{iface.name} ({what})" if iface.name else what
    return Interface(_LINKTYPE_USER0, tsresol=iface.tsresol, tsoffset=iface.tsoffset, snaplen=iface.snaplen,
                     name=name)


def write_annotated(capture_path_or_packets: str | os.PathLike | tuple[list[Interface], Iterable[Packet]],
                    attribution: Attribution, out_path: str | os.PathLike, *,
                    min_confidence: str = "low") -> int:
    """Write the capture (a path, or ``(interfaces, packets)``) to ``out_path`` as pcapng, each packet
    attributed with at least ``min_confidence`` carrying a comment; a comment the packet already had
    is kept before ours. Packet i is frame i + 1. Returns the number of packets annotated."""
    from .parsers.pcapng import write_pcapng

    notes = comments(attribution, min_confidence)
    interfaces, packets = _open(capture_path_or_packets)
    interfaces = [_pcapng_interface(i) for i in interfaces]
    count = [0]

    def annotated() -> Iterator[Packet]:
        for i, p in enumerate(packets, start=1):
            c = notes.get(i)
            if c is not None:
                p.comment = f"{p.comment}; {c}" if p.comment else c
                count[0] += 1
            yield p

    try:
        # a file's packets without a time are its simple packet blocks: written back as such
        write_pcapng(out_path, interfaces, annotated(),
                     simple_untimed=isinstance(capture_path_or_packets, (str, os.PathLike)))
    except ValueError as e:  # a packet the pcapng format cannot hold (no time, bad interface)
        raise CaptureError(f"cannot write the annotated capture: {e}", path=out_path) from None
    return count[0]
