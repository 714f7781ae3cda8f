"""Build the demo inputs in data/ from the published exchange-udp support case.

    python data/build_demo.py [CASE_DIR]      (default: ../shared/cases/exchange-udp)

Writes data/kernel.csv, data/capture.pcap and data/tasklist.txt; see data/README.md for what is
taken from the case as published and what this script has to supply.
"""

from __future__ import annotations

import re
import struct
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from etwtools.parsers.packets import Packet
from etwtools.parsers.pcap import write_pcap

HERE = Path(__file__).resolve().parent

#: Wireshark's names for the destination ports in frames.txt -> IANA port numbers
#: (IANA service name and port number registry, as in Wireshark's "services" file).
PORTS = {
    "mxomss": 1141,
    "edtools": 1142,
    "fiveacross": 1193,
    "kwdb-commn": 1127,
    "dicom-tls": 2762,
    "dkmessenger": 1177,
    "tragic": 2642,
    "xds": 2130,
    "foliocorp": 2242,
    "saphostctrl": 1128,
    "slinkysearch": 1225,
    "oracle-oms": 1159,
    "proxy-gateway": 2303,
    "fcmsys": 2344,
}
SRC_MAC = bytes.fromhex("001cc4111111")
DST_MAC = bytes.fromhex("00000c07ac15")
PAYLOAD = bytes(8)  # 8-byte payloads; their content was not published
#: The analyst's display was UTC+4: the kernel line's FILETIME is 11:20:14.14 UTC and the same
#: packet shows as 15:20:14.45 local time (case README). The capture stores UTC.
DISPLAY_UTC_OFFSET = timedelta(hours=4)

TRACEDMP_HEADER = (
    "     Event Name,            Type,    TID,            Clock-Time, Kernel(ms),   User(ms), User Data\n"
)
TASKLIST_HEADER = (
    "\nImage Name                     PID Session Name        Session#    Mem Usage\n"
    "========================= ======== ================ =========== ============\n"
)

_FRAME = re.compile(
    r"^(\d+)\s+(\S+ \S+)\s+(\S+)\s+(\S+)\s+UDP\s+Source port: (\d+)\s+Destination port: (\S+)"
)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """Ethernet II + IPv4 + UDP frame with valid checksums."""
    s, d = bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))
    udp_len = 8 + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 128, 17, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return DST_MAC + SRC_MAC + b"\x08\x00" + ip + udp


def parse_frames(text: str) -> list[tuple[int, int, bytes]]:
    """(frame number, UTC time ns, frame bytes) for each line of Wireshark's summary."""
    out = []
    for line in text.splitlines():
        m = _FRAME.match(line.strip())
        if not m:
            continue
        number, local, src, dst, sport, dport = m.groups()
        t = datetime.fromisoformat(local).replace(tzinfo=UTC) - DISPLAY_UTC_OFFSET
        ns = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
        port = int(dport) if dport.isdigit() else PORTS[dport]
        out.append((int(number), ns, udp_frame(src, dst, int(sport), port, PAYLOAD)))
    return out


def build(case: Path, dest: Path = HERE) -> None:
    frames = parse_frames((case / "frames.txt").read_text())
    shown = {n: (t, data) for n, t, data in frames}
    first_time = frames[0][1]
    packets = []
    for n in range(1, max(shown) + 1):
        if n in shown:
            t, data = shown[n]
            packets.append(Packet(time_ns=t, data=data))
        else:  # a frame the published excerpt does not show: an empty placeholder keeps the numbering
            packets.append(
                Packet(time_ns=min(first_time, shown[min(k for k in shown if k > n)][0]), data=b"", wirelen=0)
            )
    write_pcap(dest / "capture.pcap", packets, link_type=1)
    (dest / "kernel.csv").write_text(TRACEDMP_HEADER + (case / "kernel.csv").read_text())
    rows = []
    for line in (case / "tasklist.txt").read_text().splitlines():
        image, pid, session_name, session, mem, unit = line.split()
        rows.append(f"{image:<25} {pid:>8} {session_name:<16} {session:>11} {mem + ' ' + unit:>12}\n")
    (dest / "tasklist.txt").write_text(TASKLIST_HEADER + "".join(rows))


if __name__ == "__main__":
    build(
        Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "cases" / "exchange-udp"
    )
