"""Frames per second of read_capture on a 1,000,000-frame pcap, against dpkt reading and parsing the
same file.

The file (built once in /tmp, reused while its parameters match) mixes what an enterprise capture holds:
Ethernet IPv4 TCP (ACKs, small requests, full segments) and UDP (DNS-sized), IPv6 TCP/UDP, 802.1Q and
QinQ tagged IPv4, ICMP, and a few ARP frames; 20,000 distinct hosts.

    python benchmarks/bench_pcap.py [--frames N] [--format pcap|pcapng] [--path FILE] [--skip-dpkt]

--format pcapng converts the same frames to pcapng (two interfaces, us and ns, every packet with a
direction flag) with the project's writer, and times read_capture and dpkt's pcapng reader on it.
"""

from __future__ import annotations

import argparse
import os
import struct
import time

import numpy as np

from etwtools.parsers.captures import read_capture


def _ipv4(src: int, dst: int, proto: int, payload: bytes, ident: int) -> bytes:
    head = struct.pack(">BBHHHBBHII", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0, src, dst)
    return head + payload


def _ipv6(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    return struct.pack(">IHBB", 0x60000000, len(payload), proto, 64) + src + dst + payload


def _tcp(sport: int, dport: int, seq: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 0x50, flags, 65535, 0, 0) + data


def _udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data


def build(path: str, frames: int, seed: int = 7) -> None:
    """Write the benchmark pcap: templates for 4,096 flows, picked at random, with per-frame seq and time."""
    rng = np.random.default_rng(seed)
    hosts4 = (0x0A000000 + rng.integers(1, 20_000, 4096)).tolist()
    servers4 = (0xC0A80000 + rng.integers(1, 200, 4096)).tolist()
    mac = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"
    templates = []
    for i in range(4096):
        kind = rng.random()
        size = int(rng.choice([0, 0, 0, 120, 300, 1460]))
        data = bytes(size)
        sport, dport = int(rng.integers(1024, 65535)), int(rng.choice([443, 80, 445, 3389, 53]))
        if kind < 0.62:
            l3 = _ipv4(hosts4[i], servers4[i], 6, _tcp(sport, dport, 0, 0x18 if size else 0x10, data), i)
            frame = mac + b"\x08\x00" + l3
        elif kind < 0.80:
            l3 = _ipv4(hosts4[i], servers4[i], 17, _udp(sport, 53, bytes(int(rng.integers(30, 200)))), i)
            frame = mac + b"\x08\x00" + l3
        elif kind < 0.90:
            a, b = bytes([0x20, 1, 0xD, 0xB8]) + rng.bytes(12), bytes([0x20, 1, 0xD, 0xB8]) + rng.bytes(12)
            l4 = _tcp(sport, dport, 0, 0x10, data) if kind < 0.86 else _udp(sport, 53, bytes(80))
            frame = mac + b"\x86\xdd" + _ipv6(a, b, 6 if kind < 0.86 else 17, l4)
        elif kind < 0.95:
            l3 = _ipv4(hosts4[i], servers4[i], 6, _tcp(sport, dport, 0, 0x10, data), i)
            frame = mac + b"\x81\x00\x00\x64\x08\x00" + l3
        elif kind < 0.97:
            l3 = _ipv4(hosts4[i], servers4[i], 6, _tcp(sport, dport, 0, 0x10, data), i)
            frame = mac + b"\x88\xa8\x00\x0a\x81\x00\x00\x64\x08\x00" + l3
        elif kind < 0.995:
            l3 = _ipv4(hosts4[i], servers4[i], 1, struct.pack(">BBHHH", 8, 0, 0, 1, i) + bytes(56), i)
            frame = mac + b"\x08\x00" + l3
        else:
            frame = mac + b"\x08\x06" + bytes(28)
        templates.append(frame)
    pick = rng.integers(0, 4096, frames).tolist()
    t0 = 1_700_000_000 * 1_000_000
    times = (t0 + np.cumsum(rng.integers(1, 200, frames))).tolist()
    rec = struct.Struct("<IIII")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        out = []
        for k, (i, t) in enumerate(zip(pick, times)):
            fr = templates[i]
            out.append(rec.pack(t // 1_000_000, t % 1_000_000, len(fr), len(fr)))
            out.append(fr)
            if len(out) >= 65536:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    os.replace(path + ".tmp", path)


def to_pcapng(src: str, path: str) -> None:
    """The frames of ``src`` as pcapng: even packets on a microsecond interface, odd on a nanosecond one."""
    from etwtools.parsers.captures import iter_capture_packets
    from etwtools.parsers.packets import Interface, Packet
    from etwtools.parsers.pcapng import write_pcapng

    _, packets = iter_capture_packets(src)
    ifaces = [Interface(1, tsresol=6), Interface(1, tsresol=9)]
    write_pcapng(
        path + ".tmp",
        ifaces,
        (Packet(p.time_ns, p.data, i % 2, p.wirelen, ("in", "out")[i % 2]) for i, p in enumerate(packets)),
    )
    os.replace(path + ".tmp", path)


def dpkt_read(path: str) -> int:
    """dpkt's pcap (or pcapng) reader plus its Ethernet/IP/TCP/UDP parse of every frame."""
    import dpkt

    n = 0
    with open(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f) if path.endswith(".pcapng") else dpkt.pcap.Reader(f)
        for _ts, buf in reader:
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                l4 = ip.data
                if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                    _ = (ip.src, ip.dst, l4.sport, l4.dport)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--format", choices=["pcap", "pcapng"], default="pcap")
    ap.add_argument("--path", default=None)
    ap.add_argument("--skip-dpkt", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="read_capture runs (best is reported)")
    args = ap.parse_args()
    pcap_path = f"/tmp/bench_pcap_{args.frames}.pcap"
    path = args.path or (pcap_path if args.format == "pcap" else f"/tmp/bench_pcap_{args.frames}.pcapng")
    if not os.path.exists(path):
        t = time.perf_counter()
        if args.format == "pcap":
            build(path, args.frames)
        else:
            if not os.path.exists(pcap_path):
                build(pcap_path, args.frames)
            to_pcapng(pcap_path, path)
        print(f"built {path} ({os.path.getsize(path) / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s")
    size = os.path.getsize(path)
    best = None
    for _ in range(args.repeat):
        t = time.perf_counter()
        df = read_capture(path)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    assert df.height == args.frames, df.height
    fps = args.frames / best
    print(
        f"read_capture: {args.frames:,} frames in {best:.3f} s = {fps:,.0f} frames/s "
        f"({size / best / 1e6:,.0f} MB/s)"
    )
    mix = df.group_by("ip_version", "protocol").len().sort("len", descending=True)
    print("mix: " + ", ".join(f"{f'IPv{v}' if v else 'non-IP'} {p} {n:,}" for v, p, n in mix.rows()))
    if not args.skip_dpkt:
        t = time.perf_counter()
        n = dpkt_read(path)
        dt = time.perf_counter() - t
        assert n == args.frames
        print(f"dpkt read+parse: {n:,} frames in {dt:.2f} s = {n / dt:,.0f} frames/s")
        print(f"speedup: {fps / (n / dt):.1f}x")


if __name__ == "__main__":
    main()
