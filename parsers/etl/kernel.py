"""Classic kernel (MOF) events: TcpIp, UdpIp, Process, SystemConfig NIC and Services.

Layouts (FORMATS.md, MS Learn MOF classes, checked against PerfView's baselines of the perfview corpus
files; offsets are into the payload, fields are packed, ``ptr`` is the record's pointer size):

- TcpIp/UdpIp v2 (Vista to Windows 11): PID u32, size u32, daddr, saddr, dport, sport (ports big-endian;
  IPv4 addresses 4 raw bytes, IPv6 16), then per event: Send startime u32, endtime u32, seqnum u32,
  connid ptr; Connect/Accept mss u16, sackopt u16, tsopt u16, wsopt u16, rcvwin u32, rcvwinscale s16,
  sndwinscale s16, seqnum u32, connid ptr; the others (and every UdpIp Send/Recv) seqnum u32,
  connid ptr. Fail: Proto u16, FailureCode u16 (no PID, no addresses). Opcodes 26..34 are the IPv6
  forms of 10..18.
- v1 (XP SP2/2003): PID, size, daddr, saddr, dport, sport (``TcpIp_V1_TypeGroup1``; the
  tracerpt line of the exchange-udp case has exactly these six fields). FORMATS.md's longer v1
  (startime, endtime, connid, seqnum) is not in the MOF class: bytes past the six fields are ignored.
- v0 (XP): TcpIp daddr, saddr, dport, sport, size u32, PID u32; UdpIp context ptr, saddr, sport,
  size u16, daddr, dport, dsize u16 (no PID).

The Win8 "UdpIp Send/Recv" events of the perfview files (version 2, 32-byte payload) are the v2 layout
above, not v0: PerfView decodes them with the v0 template and prints ``context`` = PID | size << 32.

Process (v0..v5, see :func:`parse_process`): Terminate (opcode 11, v2) carries only the ProcessId;
the x86 perfview file's kernel events are 64-bit (PERFINFO64: a 32-bit process on 64-bit Windows).
SystemConfig Services v3 (the corpus files): ProcessId, ServiceState, SubProcessTag, then five UTF-16
strings (ServiceName, DisplayName, ProcessName, LoadOrderGroup, SvchostGroup; MS Learn lists three).

Address orientation (measured on the corpus, see tests/test_etl_kernel_net.py): TCP events of every
kind, and UDP Send, have saddr = local and daddr = remote. UDP *Recv* events carry the packet's own
source and destination: daddr is the local side (a multicast group for SSDP/LLMNR) and saddr the
sender. :func:`orient` maps both to local/remote.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ..addresses import raw_text
from ..diagnostics import SkipReport
from ..units import filetime_to_ns
from .guids import PROCESS_KERNEL, SYSTEMCONFIG_KERNEL, TCPIP_KERNEL, UDPIP_KERNEL
from .records import RecordBatch

TCP_EVENTS = {
    10: "Send",
    11: "Recv",
    12: "Connect",
    13: "Disconnect",
    14: "Retransmit",
    15: "Accept",
    16: "Reconnect",
    17: "Fail",
    18: "TCPCopy",
    19: "ARPCopy",
    20: "FullACK",
    21: "PartACK",
    22: "DupACK",
}
UDP_EVENTS = {10: "Send", 11: "Recv", 17: "Fail"}

#: Field kinds -> (numpy dtype, size); "ptr" is resolved per pointer size, addresses are raw bytes.
_NUMBERS: dict[str, tuple[str, int]] = {
    "u16": ("<u2", 2),
    "s16": ("<i2", 2),
    "be16": (">u2", 2),
    "u32": ("<u4", 4),
    "s32": ("<i4", 4),
    "u64": ("<u8", 8),
}
_SIZES = {**{kind: size for kind, (_, size) in _NUMBERS.items()}, "ip4": 4, "ip6": 16}

_ADDR4 = (
    ("pid", "u32"),
    ("size", "u32"),
    ("daddr", "ip4"),
    ("saddr", "ip4"),
    ("dport", "be16"),
    ("sport", "be16"),
)
_ADDR6 = (
    ("pid", "u32"),
    ("size", "u32"),
    ("daddr", "ip6"),
    ("saddr", "ip6"),
    ("dport", "be16"),
    ("sport", "be16"),
)
_SEND = (("startime", "u32"), ("endtime", "u32"), ("seqnum", "u32"), ("connid", "ptr"))
_GROUP1 = (("seqnum", "u32"), ("connid", "ptr"))
_GROUP2 = (
    ("mss", "u16"),
    ("sackopt", "u16"),
    ("tsopt", "u16"),
    ("wsopt", "u16"),
    ("rcvwin", "u32"),
    ("rcvwinscale", "s16"),
    ("sndwinscale", "s16"),
    ("seqnum", "u32"),
    ("connid", "ptr"),
)
_FAIL = (("proto", "u16"), ("failure_code", "u16"))
_TCP_V0 = (
    ("daddr", "ip4"),
    ("saddr", "ip4"),
    ("dport", "be16"),
    ("sport", "be16"),
    ("size", "u32"),
    ("pid", "u32"),
)
_UDP_V0 = (
    ("context", "ptr"),
    ("saddr", "ip4"),
    ("sport", "be16"),
    ("size", "u16"),
    ("daddr", "ip4"),
    ("dport", "be16"),
    ("dsize", "u16"),
)


@dataclass(frozen=True)
class NetLayout:
    """One payload layout of a network event: event name, IP version and packed fields."""

    event: str
    ip_version: int | None
    fields: tuple[tuple[str, str], ...]

    def offsets(self, pointer_size: int) -> tuple[list[tuple[str, str, int]], int]:
        """(name, kind, offset) of every field and the total size, for one pointer size."""
        out, pos = [], 0
        for name, kind in self.fields:
            size = pointer_size if kind == "ptr" else _SIZES[kind]
            out.append((name, kind, pos))
            pos += size
        return out, pos


def net_layout(protocol: str, opcode: int, version: int) -> NetLayout | None:
    """Layout of a classic TcpIp ("TCP") or UdpIp ("UDP") event, None when unknown (other versions are
    not guessed: their records are counted and reported as skipped)."""
    if protocol == "TCP":
        if version == 2:
            if opcode == 17:
                return NetLayout("Fail", None, _FAIL)
            if opcode in TCP_EVENTS:
                base, name, ipv = _ADDR4, TCP_EVENTS[opcode], 4
            elif 26 <= opcode <= 34 and opcode != 33:
                base, name, ipv = _ADDR6, TCP_EVENTS[opcode - 16], 6
            else:
                return None
            tail = _SEND if name == "Send" else _GROUP2 if name in ("Connect", "Accept") else _GROUP1
            return NetLayout(name, ipv, base + tail)
        if version == 1 and 10 <= opcode <= 16:
            return NetLayout(TCP_EVENTS[opcode], 4, _ADDR4)
        if version == 0 and 10 <= opcode <= 15:
            return NetLayout(TCP_EVENTS[opcode], 4, _TCP_V0)
        return None
    if version == 2:
        if opcode == 17:
            return NetLayout("Fail", None, _FAIL)
        if opcode in (10, 11):
            return NetLayout(UDP_EVENTS[opcode], 4, _ADDR4 + _GROUP1)
        if opcode in (26, 27):
            return NetLayout(UDP_EVENTS[opcode - 16], 6, _ADDR6 + _GROUP1)
        return None
    if version == 1 and opcode in (10, 11):
        return NetLayout(UDP_EVENTS[opcode], 4, _ADDR4)
    if version == 0 and opcode in (10, 11):
        return NetLayout(UDP_EVENTS[opcode], 4, _UDP_V0)
    return None


# ---------------------------------------------------------------------------------------------
# Bulk field access


def gather(
    data: bytes | bytearray | memoryview, base: np.ndarray, offset: int, kind: str, pointer_size: int = 8
) -> np.ndarray:
    """One field of many payloads starting at ``base`` (byte offsets into ``data``).

    Numbers come back as a 1-d array of the field's dtype; IPv4 addresses as big-endian uint32 (their
    numeric value); IPv6 addresses as (n, 2) uint64 rows holding the 16 raw bytes. Fields whose
    position is a multiple of their size (all of them in the real layouts, payloads being 8-byte
    aligned) are read through a typed view; others byte by byte.
    """
    if kind == "ptr":
        kind = "u64" if pointer_size == 8 else "u32"
    if kind == "ip4":
        dtype, size = ">u4", 4
    elif kind == "ip6":
        dtype, size = "<u8", 8
    else:
        dtype, size = _NUMBERS[kind]
    pos = base + offset
    if kind == "ip6":
        return np.stack([_read(data, pos, dtype, size), _read(data, pos + 8, dtype, size)], axis=1)
    return _read(data, pos, dtype, size)


def _read(data, pos: np.ndarray, dtype: str, size: int) -> np.ndarray:
    if len(pos) and not (pos % size).any():
        view = np.frombuffer(data, dtype=dtype, count=len(data) // size)
        return view[pos // size]
    u8 = np.frombuffer(data, dtype=np.uint8)
    raw = np.ascontiguousarray(u8[pos[:, None] + np.arange(size)])
    return raw.view(dtype).ravel()


def decode_layout(batch: RecordBatch, rows: np.ndarray, layout: NetLayout, pointer_size: int) -> dict:
    """Columns of ``layout`` for the given rows (all of that layout and pointer size)."""
    base = batch.payload_offset[rows]
    fields, _ = layout.offsets(pointer_size)
    cols: dict = {}
    for name, kind, off in fields:
        value = gather(batch.data, base, off, kind, pointer_size)
        cols[name] = raw_text(value) if kind in ("ip4", "ip6") else value
    return cols


def fits(batch: RecordBatch, rows: np.ndarray, size: int) -> np.ndarray:
    """Mask of the rows whose payload holds ``size`` bytes (and lies inside ``data``)."""
    start = batch.payload_offset[rows]
    return (batch.payload_size[rows] >= size) & (start >= 0) & (start + size <= len(batch.data))


# ---------------------------------------------------------------------------------------------
# Network events

NET_COLUMNS = {
    "time": pl.Int64,
    "provider": pl.Utf8,
    "event": pl.Utf8,
    "protocol": pl.Utf8,
    "ip_version": pl.Int8,
    "pid": pl.Int64,
    "size": pl.Int64,
    "saddr": pl.Utf8,
    "sport": pl.Int32,
    "daddr": pl.Utf8,
    "dport": pl.Int32,
    "connid": pl.UInt64,
    "seqnum": pl.UInt64,
    "record": pl.Int64,
    "tid": pl.Int64,
    "opcode": pl.Int32,
    "version": pl.Int32,
}
#: Extra fields kept when an event has them (Connect/Accept options, Send times, Fail codes).
NET_EXTRAS = {
    "mss": pl.Int32,
    "rcvwin": pl.Int64,
    "startime": pl.Int64,
    "endtime": pl.Int64,
    "proto": pl.Int32,
    "failure_code": pl.Int32,
}


def net_frame(
    batch: RecordBatch, rows: np.ndarray, layout: NetLayout, pointer_size: int, provider: str, protocol: str
) -> pl.DataFrame:
    """A network-events frame (:data:`NET_COLUMNS` + extras) of rows that all share one layout."""
    return net_table([net_columns(batch, rows, layout, pointer_size)], layout, provider, protocol)


def net_columns(batch: RecordBatch, rows: np.ndarray, layout: NetLayout, pointer_size: int) -> dict:
    """The numpy columns of rows that all share one layout: payload fields (addresses raw, as
    :func:`gather` reads them) and the header's time, record, pid, tid, opcode and version (``_``-named)."""
    base = batch.payload_offset[rows]
    fields, _ = layout.offsets(pointer_size)
    cols = {name: gather(batch.data, base, off, kind, pointer_size) for name, kind, off in fields}
    for name in ("time", "record", "pid", "tid", "opcode", "version"):
        cols[f"_{name}"] = getattr(batch, name)[rows]
    return cols


def net_table(pieces: list[dict], layout: NetLayout, provider: str, protocol: str) -> pl.DataFrame:
    """The network-events frame of :func:`net_columns` pieces of one layout (and pointer size)."""
    cols: dict[str, Any] = {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}
    for name, kind in layout.fields:
        if kind in ("ip4", "ip6"):
            cols[name] = raw_text(cols[name])
    n = len(cols["_time"])
    if "pid" in cols:
        pid = pl.Series(cols["pid"].astype(np.int64))
    else:  # Fail / UdpIp v0: no PID in the payload; the header's when it has one
        hp = cols["_pid"]
        pid = pl.Series(hp.astype(np.int64)).set(pl.Series(hp == 0xFFFFFFFF), None)
    tid = cols["_tid"].astype(np.int64)
    out = {
        "time": cols["_time"],
        "provider": pl.repeat(provider, n, dtype=pl.Utf8, eager=True),
        "event": pl.repeat(layout.event, n, dtype=pl.Utf8, eager=True),
        "protocol": pl.repeat(protocol, n, dtype=pl.Utf8, eager=True),
        "ip_version": pl.repeat(layout.ip_version, n, dtype=pl.Int8, eager=True),
        "pid": pid,
        "size": cols.get("size"),
        "saddr": cols.get("saddr"),
        "sport": cols.get("sport"),
        "daddr": cols.get("daddr"),
        "dport": cols.get("dport"),
        "connid": cols.get("connid"),
        "seqnum": cols.get("seqnum"),
        "record": cols["_record"],
        "tid": pl.Series(tid).set(pl.Series(tid == 0xFFFFFFFF), None),
        "opcode": cols["_opcode"],
        "version": cols["_version"],
    }
    series = []
    for name, dtype in NET_COLUMNS.items():
        value = out[name]
        if value is None:
            series.append(pl.repeat(None, n, dtype=dtype, eager=True).alias(name))
        else:
            series.append(pl.Series(name, value).cast(dtype))
    for name, dtype in NET_EXTRAS.items():
        value = cols.get(name)
        series.append(
            pl.repeat(None, n, dtype=dtype, eager=True).alias(name)
            if value is None
            else pl.Series(name, value).cast(dtype)
        )
    return pl.DataFrame(series)


@dataclass
class NetPieces:
    """Network-event columns gathered batch after batch and made into frames once, one per layout
    (instead of one per layout and batch)."""

    pieces: dict[tuple, list[dict]] = field(default_factory=dict)

    def add(
        self,
        batch: RecordBatch,
        rows: np.ndarray,
        layout: NetLayout,
        pointer_size: int,
        provider: str,
        protocol: str,
        event_id: int | None = None,
    ) -> None:
        key = (layout, pointer_size, provider, protocol, event_id)
        self.pieces.setdefault(key, []).append(net_columns(batch, rows, layout, pointer_size))

    def frames(self) -> list[pl.DataFrame]:
        """One frame per layout (with ``event_id`` where the events have one)."""
        out = []
        for (layout, _, provider, protocol, event_id), pieces in self.pieces.items():
            frame = net_table(pieces, layout, provider, protocol)
            if event_id is not None:
                frame = frame.with_columns(event_id=pl.lit(event_id, dtype=pl.Int32))
            out.append(frame)
        return out


def empty_net() -> pl.DataFrame:
    return pl.DataFrame(schema={**NET_COLUMNS, **NET_EXTRAS})


def _group_rows(keys: list[np.ndarray]) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Split row positions by the distinct tuples of at most three small key columns (each < 2**16)."""
    if len(keys[0]) == 0:
        return []
    combined = np.zeros(len(keys[0]), np.int64)
    for k in keys:
        combined = (combined << 16) | k.astype(np.int64)
    out = []
    for value in np.unique(combined).tolist():
        parts, v = [], value
        for _ in keys:
            parts.append(v & 0xFFFF)
            v >>= 16
        out.append((tuple(reversed(parts)), np.flatnonzero(combined == value)))
    return out


def decode_kernel_net(
    batch: RecordBatch, skipped: SkipReport, pieces: NetPieces | None = None
) -> list[pl.DataFrame]:
    """Frames of the classic kernel TcpIp and UdpIp events of one batch (one frame per layout); with
    ``pieces``, their columns go there instead (and no frame is returned)."""
    frames = []
    for guid, provider, protocol in ((TCPIP_KERNEL, "TcpIp", "TCP"), (UDPIP_KERNEL, "UdpIp", "UDP")):
        sel = np.flatnonzero(batch.provider_mask(guid))
        if len(sel) == 0:
            continue
        groups = _group_rows([batch.opcode[sel], batch.version[sel], batch.pointer_size[sel]])
        for (opcode, version, psize), pos in groups:
            rows = sel[pos]
            layout = net_layout(protocol, opcode, version)
            if layout is None:
                skipped.add(f"{provider} records of unknown opcode/version ({opcode}/v{version})", len(rows))
                continue
            _, size = layout.offsets(psize)
            ok = fits(batch, rows, size)
            skipped.add(
                f"{provider} {layout.event} records shorter than their layout ({size} bytes)",
                int((~ok).sum()),
            )
            if ok.any() and pieces is not None:
                pieces.add(batch, rows[ok], layout, psize, provider, protocol)
            elif ok.any():
                frames.append(net_frame(batch, rows[ok], layout, psize, provider, protocol))
    return frames


def orient(df: pl.DataFrame) -> pl.DataFrame:
    """saddr/daddr/sport/dport -> local/remote (UDP Recv carries the packet's own orientation)."""
    flip = (pl.col("protocol") == "UDP") & (pl.col("event") == "Recv")
    return df.with_columns(
        local_addr=pl.when(flip).then(pl.col("daddr")).otherwise(pl.col("saddr")),
        local_port=pl.when(flip).then(pl.col("dport")).otherwise(pl.col("sport")),
        remote_addr=pl.when(flip).then(pl.col("saddr")).otherwise(pl.col("daddr")),
        remote_port=pl.when(flip).then(pl.col("sport")).otherwise(pl.col("dport")),
    ).drop("saddr", "daddr", "sport", "dport")


# ---------------------------------------------------------------------------------------------
# Process events (variable-length payloads: decoded one record at a time; they are few)

PROCESS_EVENTS = {1: "Start", 2: "End", 3: "DCStart", 4: "DCEnd", 11: "Terminate", 39: "Defunct"}


def sid_text(raw: bytes) -> str:
    """Text form ("S-1-5-18") of a binary SID."""
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack_from(f"<{count}I", raw, 8)
    return "-".join(["S", str(revision), str(authority), *map(str, subs)])


def read_sid(payload: bytes, pos: int, pointer_size: int) -> tuple[str | None, int]:
    """The UserSID block at ``pos``: (SID text or None for a null SID, position after it)."""
    if struct.unpack_from("<I", payload, pos)[0] == 0:
        return None, pos + 4
    pos += 2 * pointer_size  # TOKEN_USER (SID pointer + attributes)
    count = payload[pos + 1]
    end = pos + 8 + 4 * count
    if end > len(payload) or count > 15:
        raise ValueError("SID runs past the payload")
    return sid_text(payload[pos:end]), end


def _cstring(payload: bytes, pos: int) -> tuple[str, int]:
    end = payload.find(b"\0", pos)
    if end < 0:
        end = len(payload)
    return payload[pos:end].decode("cp1252", "replace"), end + 1


def _wstring(payload: bytes, pos: int) -> tuple[str, int]:
    """The NUL-terminated UTF-16 string at ``pos`` (cut at the payload's last whole unit) and the position
    after its terminator."""
    end = payload.find(b"\0\0", pos)
    while end >= 0 and (end - pos) & 1:  # a NUL pair across two units: look on
        end = payload.find(b"\0\0", end + 1)
    if end < 0:
        end = pos + (max(len(payload) - 1 - pos, 0) + 1) // 2 * 2
    return payload[pos:end].decode("utf-16-le", "replace"), end + 2


def parse_process(payload: bytes, version: int, pointer_size: int) -> dict:
    """Fields of one Process event payload (versions 0 to 5; Terminate's 4-byte ProcessId-only form)."""
    p = pointer_size
    ptr = "<Q" if p == 8 else "<I"
    out: dict = {
        "unique_key": None,
        "session": None,
        "exit_status": None,
        "flags": None,
        "command_line": None,
        "package": None,
        "application_id": None,
        "exit_time": None,
    }
    if len(payload) < 8:  # Terminate (opcode 11, v2): ProcessId only
        out.update(pid=struct.unpack_from("<I", payload, 0)[0], ppid=None, user=None, image=None)
        return out
    if version == 0:
        out["pid"] = struct.unpack_from(ptr, payload, 0)[0]
        out["ppid"] = struct.unpack_from(ptr, payload, p)[0]
        pos = 2 * p
    else:
        key = struct.unpack_from(ptr, payload, 0)[0]
        out["pid"], out["ppid"], out["session"], out["exit_status"] = struct.unpack_from("<IIIi", payload, p)
        if version >= 2:
            out["unique_key"] = key
        pos = p + 16
        if version >= 3:
            pos += p  # DirectoryTableBase
        if version >= 4:
            out["flags"] = struct.unpack_from("<I", payload, pos)[0]
            pos += 4
    out["user"], pos = read_sid(payload, pos, p)
    out["image"], pos = _cstring(payload, pos)
    if version >= 2:
        out["command_line"], pos = _wstring(payload, pos)
    if version >= 4:
        out["package"], pos = _wstring(payload, pos)
        out["application_id"], pos = _wstring(payload, pos)
    if version >= 5 and pos + 8 <= len(payload):  # Defunct v5: ExitTime (FILETIME, UTC)
        filetime = struct.unpack_from("<Q", payload, pos)[0]
        out["exit_time"] = filetime_to_ns(filetime) if filetime else None
    if out["session"] == 0xFFFFFFFF:
        out["session"] = None
    return out


def decode_process_events(batch: RecordBatch, skipped: SkipReport) -> list[dict]:
    """Process Start/End/DCStart/DCEnd/Terminate/Defunct events of one batch, as dicts."""
    sel = np.flatnonzero(batch.provider_mask(PROCESS_KERNEL) & np.isin(batch.opcode, list(PROCESS_EVENTS)))
    out = []
    for i in sel:
        version, psize = int(batch.version[i]), int(batch.pointer_size[i])
        payload = batch.payload(int(i))
        if version > 5:
            skipped.add(f"Process records of unknown version {version}")
            continue
        try:
            rec = parse_process(payload, version, psize)
        except (struct.error, ValueError, IndexError):
            skipped.add("damaged Process records")
            continue
        rec.update(
            time=int(batch.time[i]),
            record=int(batch.record[i]),
            event=PROCESS_EVENTS[int(batch.opcode[i])],
            version=version,
        )
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------------------
# SystemConfig: NIC (the traced host's addresses) and Services (PID -> service names)

NIC_OPCODE, SERVICES_OPCODE = 13, 15


def parse_nic(payload: bytes, version: int) -> dict | None:
    """NIC rundown (v2+: PhysicalAddr u64, PhysicalAddrLen u32, Ipv4Index u32, Ipv6Index u32,
    NICDescription, IpAddresses (';'-separated), DnsServerAddresses, UTF-16); None for older versions."""
    if version < 2:
        return None
    mac, mac_len = struct.unpack_from("<QI", payload, 0)
    desc, pos = _wstring(payload, 20)
    addrs, pos = _wstring(payload, pos)
    dns, pos = _wstring(payload, pos)
    return {
        "description": desc,
        "mac": mac.to_bytes(8, "little")[: min(mac_len, 8)].hex(":"),
        "addresses": [a for a in addrs.split(";") if a],
        "dns": [a for a in dns.split(";") if a],
    }


def parse_service(payload: bytes, version: int) -> dict:
    """Services rundown: v2+ ProcessId, ServiceState, SubProcessTag u32, then ServiceName, DisplayName,
    ProcessName (UTF-16, NUL-terminated); v0/v1 ServiceName, DisplayName, ProcessName char16[256], ProcessId."""
    if version >= 2:
        pid, state, _tag = struct.unpack_from("<III", payload, 0)
        name, pos = _wstring(payload, 12)
        display, pos = _wstring(payload, pos)
        process, pos = _wstring(payload, pos)
    else:
        name = payload[0:512].decode("utf-16-le", "replace").split("\0")[0]
        display = payload[512:1024].decode("utf-16-le", "replace").split("\0")[0]
        process = payload[1024:1536].decode("utf-16-le", "replace").split("\0")[0]
        (pid,) = struct.unpack_from("<I", payload, 1536)
        state = None
    return {"pid": pid, "state": state, "name": name, "display_name": display, "process": process}


def decode_systemconfig(batch: RecordBatch, skipped: SkipReport) -> tuple[list[dict], list[dict]]:
    """(NIC dicts, service dicts, each with ``time``) of one batch."""
    mask = batch.provider_mask(SYSTEMCONFIG_KERNEL)
    nics, services = [], []
    for i in np.flatnonzero(mask & np.isin(batch.opcode, [NIC_OPCODE, SERVICES_OPCODE])):
        opcode, version = int(batch.opcode[i]), int(batch.version[i])
        payload = batch.payload(int(i))
        try:
            if opcode == NIC_OPCODE:
                nic = parse_nic(payload, version)
                if nic is None:
                    skipped.add(f"SystemConfig NIC records of version {version}")
                    continue
                nic["time"] = int(batch.time[i])
                nics.append(nic)
            else:
                svc = parse_service(payload, version)
                svc["time"] = int(batch.time[i])
                services.append(svc)
        except (struct.error, ValueError, IndexError):
            skipped.add("damaged SystemConfig records")
    return nics, services


__all__ = [
    "NET_COLUMNS",
    "NET_EXTRAS",
    "PROCESS_EVENTS",
    "TCP_EVENTS",
    "UDP_EVENTS",
    "NetLayout",
    "NetPieces",
    "decode_kernel_net",
    "decode_layout",
    "decode_process_events",
    "decode_systemconfig",
    "empty_net",
    "gather",
    "net_columns",
    "net_frame",
    "net_layout",
    "net_table",
    "orient",
    "parse_nic",
    "parse_process",
    "parse_service",
    "read_sid",
    "sid_text",
]
