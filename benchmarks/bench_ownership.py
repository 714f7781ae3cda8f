"""Attribution from event-log connection events at size: time, peak memory, and the ratio to a plain Python
lookup (dict of 5-tuple -> owners, bisect by time) doing the same job on the same data, in the same run.

    python benchmarks/bench_ownership.py [--connections N] [--frames N] [--seed S]

Generated: N connections of one host (TCP 80 %, UDP 20 %), each logged by Sysmon 3 (UtcTime, ms) and
Security 5156 (record time, s, the host's local time: capture - 5 h), 300 processes; 10 % of the TCP
5-tuples are reused later by another process; the frames are the connections' packets (both directions)
over one hour, the capture clock 0.8 s ahead of Sysmon's. Checks that the offsets are found and that the
answer equals the plain lookup's (given the same offset) on every frame.
"""

from __future__ import annotations

import argparse
import bisect
import resource
import time

import numpy as np
import polars as pl

from etwtools.ownership import attribute_connections
from etwtools.parsers import schema

NS = 1_000_000_000
HOST, ADDR = "WS1.example.local", "10.0.0.5"


def generate(n_conn: int, n_frames: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    t0 = 1_700_000_000 * NS
    tcp = rng.random(n_conn) < 0.8
    lport = rng.integers(1024, 65535, n_conn)
    raddr = np.array([f"172.16.{a // 250}.{a % 250 + 1}" for a in rng.integers(0, 60_000, n_conn)])
    rport = rng.choice([443, 80, 445, 53, 389, 88], n_conn)
    start = np.sort(rng.integers(0, 3600 * NS, n_conn)) + t0
    pid = rng.integers(100, 400, n_conn) * 4
    reuse = np.flatnonzero(tcp)[: n_conn // 10]  # later connections take earlier 5-tuples
    later = np.flatnonzero(tcp)[-len(reuse) :]
    lport[later], raddr[later], rport[later] = lport[reuse], raddr[reuse], rport[reuse]
    proto = np.where(tcp, "TCP", "UDP")
    sysmon_t = start - 800_000_000  # Sysmon UtcTime: 0.8 s behind the capture
    sec_t = (start - 5 * 3600 * NS) // NS * NS  # Security: local time, 1 s resolution
    common = {
        "host": HOST,
        "protocol": proto,
        "local_addr": ADDR,
        "local_port": lport,
        "remote_addr": raddr,
        "remote_port": rport,
        "pid": pid,
        "process": [f"p{p}.exe" for p in pid],
        "direction": "out",
    }
    sysmon = pl.DataFrame(
        {
            **common,
            "sensor": "sysmon",
            "event_id": 3,
            "time": sysmon_t + 2 * NS,
            "sensor_time": sysmon_t,
            "record": np.arange(n_conn),
        }
    )
    security = pl.DataFrame(
        {**common, "sensor": "security", "event_id": 5156, "time": sec_t, "record": np.arange(n_conn) + 10**6}
    )
    conns = schema.conform(
        pl.concat([sysmon, security], how="diagonal_relaxed").with_columns(
            pl.col("time", "sensor_time").cast(pl.Datetime("ns", "UTC"))
        ),
        schema.CONNECTIONS,
    )
    # frames: each connection's first packet 1 ms after it starts, the others, both ways, within 20 s
    which = np.concatenate([np.arange(n_conn), rng.integers(0, n_conn, n_frames - n_conn)])
    t = start[which] + np.concatenate(
        [np.full(n_conn, 1_000_000), rng.integers(0, 20 * NS, n_frames - n_conn)]
    )
    out = rng.random(n_frames) < 0.5
    order = np.argsort(t, kind="stable")
    which, t, out = which[order], t[order], out[order]
    frames = pl.DataFrame(
        {
            "frame": np.arange(1, n_frames + 1),
            "time": t,
            "protocol": proto[which],
            "src_addr": np.where(out, ADDR, raddr[which]),
            "src_port": np.where(out, lport[which], rport[which]),
            "dst_addr": np.where(out, raddr[which], ADDR),
            "dst_port": np.where(out, rport[which], lport[which]),
            "tcp_flags": np.full(n_frames, 0x10),
        }
    ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))
    return schema.conform(frames, schema.FRAMES), conns


def plain_lookup(
    frames: pl.DataFrame, conns: pl.DataFrame, offset_ns: int, slack_ns: int
) -> list[int | None]:
    """The peer: per frame, the latest Sysmon event of its 5-tuple at most ``slack`` after it, else the first."""
    owners: dict[tuple, tuple[list[int], list[int]]] = {}
    s = conns.filter(pl.col("sensor") == "sysmon").sort("sensor_time")
    for proto, la, lp, ra, rp, t, pid in s.select(
        "protocol",
        "local_addr",
        "local_port",
        "remote_addr",
        "remote_port",
        pl.col("sensor_time").cast(pl.Int64),
        "pid",
    ).iter_rows():
        ts, ps = owners.setdefault((proto, la, lp, ra, rp), ([], []))
        ts.append(t)
        ps.append(pid)
    out: list[int | None] = []
    for proto, sa, sp, da, dp, t in frames.select(
        "protocol", "src_addr", "src_port", "dst_addr", "dst_port", pl.col("time").cast(pl.Int64)
    ).iter_rows():
        key = (proto, sa, sp, da, dp) if sa == ADDR else (proto, da, dp, sa, sp)
        hit = owners.get(key)
        if hit is None:
            out.append(None)
            continue
        i = bisect.bisect_right(hit[0], t - offset_ns + slack_ns) - 1
        out.append(hit[1][max(i, 0)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=200_000)
    ap.add_argument("--frames", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    frames, conns = generate(a.connections, a.frames, a.seed)
    print(f"{frames.height:,} frames, {conns.height:,} connection events")
    t = time.perf_counter()
    r = attribute_connections(frames, conns)
    ours = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"etwtools: {ours:.2f} s, peak RSS {peak:,.0f} MB")
    for o in r.offsets:
        print("  " + o.describe())
    sysmon = next(o for o in r.offsets if o.sensor == "sysmon")
    t = time.perf_counter()
    peer = plain_lookup(frames, conns, sysmon.offset_ns, 2 * NS)
    plain = time.perf_counter() - t
    print(
        f"plain Python lookup (Sysmon only, offset given): {plain:.2f} s; etwtools is {plain / ours:.1f}x "
        f"as fast while doing both sensors, the offsets and the reasons"
    )
    same = r.frames["pid"].to_list() == peer
    print(f"same PID as the plain lookup on every frame: {same}")
    print(r.frames["confidence"].value_counts().sort("confidence"))


if __name__ == "__main__":
    main()
