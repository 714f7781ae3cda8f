"""Microsoft-Windows-Kernel-Network manifest events (provider 7dd42a49-5329-4832-8dfd-43d979153a88).

The manifest events carry the fields of the classic kernel TcpIp/UdpIp version 2 events, in the same
order (FORMATS.md; checked on tx/KernelNetwork.etl, Windows 7 SP1, 64-bit: Send 40 bytes, Recv 32,
IPv6 Recv 56, so connid is pointer-sized): TCP ids 10..18 = opcodes Send..TCPCopy, 26..34 their IPv6
forms; UDP 42 Send, 43 Recv, 49 Fail, 58/59 IPv6 Send/Recv. The PID is the payload's (the header PID
is often 0). Only version 0 is known (every manifest dump has only it); other versions are counted and
reported, not guessed. Addresses keep the kernel events' orientation (UDP Recv: daddr is the local side).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..diagnostics import SkipReport
from .guids import KERNEL_NETWORK
from .kernel import NetLayout, NetPieces, _group_rows, fits, net_frame, net_layout
from .records import RecordBatch

PROVIDER = "Kernel-Network"

#: UDP event id -> classic UdpIp opcode of the same layout.
_UDP_IDS = {42: 10, 43: 11, 49: 17, 58: 26, 59: 27}


def layout_for(event_id: int) -> tuple[str, NetLayout] | None:
    """(protocol, layout) of a Kernel-Network event id, None for ids without network fields."""
    if 10 <= event_id <= 18 or (26 <= event_id <= 34 and event_id != 33):
        layout = net_layout("TCP", event_id, 2)
        return ("TCP", layout) if layout else None
    if event_id in _UDP_IDS:
        layout = net_layout("UDP", _UDP_IDS[event_id], 2)
        return ("UDP", layout) if layout else None
    return None


def decode_kernel_network(
    batch: RecordBatch, skipped: SkipReport, pieces: NetPieces | None = None
) -> list[pl.DataFrame]:
    """Frames (kernel.NET_COLUMNS + extras) of the Kernel-Network events of one batch; with ``pieces``,
    their columns go there instead (and no frame is returned)."""
    sel = np.flatnonzero(batch.provider_mask(KERNEL_NETWORK))
    frames = []
    for (event_id, version, psize), pos in _group_rows(
        [batch.event_id[sel], batch.version[sel], batch.pointer_size[sel]]
    ):
        rows = sel[pos]
        found = layout_for(event_id) if version == 0 else None
        if found is None:
            skipped.add(f"{PROVIDER} events of unknown id/version ({event_id}/v{version})", len(rows))
            continue
        protocol, layout = found
        _, size = layout.offsets(psize)
        ok = fits(batch, rows, size)
        skipped.add(
            f"{PROVIDER} event {event_id} records shorter than their layout ({size} bytes)", int((~ok).sum())
        )
        if ok.any() and pieces is not None:
            pieces.add(batch, rows[ok], layout, psize, PROVIDER, protocol, event_id)
        elif ok.any():
            frame = net_frame(batch, rows[ok], layout, psize, PROVIDER, protocol)
            frames.append(frame.with_columns(event_id=pl.lit(event_id, dtype=pl.Int32)))
    return frames
