"""Attribute 1,000,000 frames against 1,000,000 events (generated) and print the time and peak memory.

    python benchmarks/bench_attribute.py [--frames N] [--events N] [--seed S]

The generated trace: 20,000 TCP connections (some 4-tuples reused by a second process) and 100,000 UDP
5-tuples over one hour, 300 processes; TCP Send/Recv sizes up to 64 KB, each event seen on the wire as
its first MSS-sized segment; 5 % of the frames are unrelated noise. The capture clock runs 3 h 0.123 s
ahead of the trace's. Target (issue 5): under 10 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import polars as pl

from etwtools.attribution import attribute
from etwtools.parsers import schema

NS = 1_000_000_000


def generate(
    n_events: int, n_frames: int, seed: int = 1
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    t0 = 1_700_000_000 * NS
    offset = 3 * 3600 * NS + 123_000_000
    n_tcp = n_events * 7 // 10
    n_udp = n_events - n_tcp
    host = "10.0.0.5"
    # TCP: 20,000 connections; the last 10 % reuse an earlier 4-tuple 30 minutes later with another PID
    n_conn = 20_000
    c_lport = rng.integers(49152, 65535, n_conn)
    c_raddr = rng.integers(0, 5000, n_conn)
    c_rport = rng.choice([443, 80, 445, 3389, 8080], n_conn)
    c_pid = rng.integers(1000, 1300, n_conn) * 4
    reuse = n_conn - n_conn // 10
    c_lport[reuse:] = c_lport[: n_conn // 10]
    c_raddr[reuse:] = c_raddr[: n_conn // 10]
    c_rport[reuse:] = c_rport[: n_conn // 10]
    conn = rng.integers(0, n_conn, n_tcp)
    half = 1800 * NS
    t_tcp = np.where(
        conn >= reuse, t0 + half + rng.integers(0, half, n_tcp), t0 + rng.integers(0, half, n_tcp)
    )
    mask = conn < n_conn // 10
    t_tcp[mask] = t0 + rng.integers(0, half - 60 * NS, mask.sum())  # first users close before reuse
    tcp_kind = rng.choice(["Send", "Recv"], n_tcp)
    tcp_size = np.clip(rng.lognormal(6, 2, n_tcp).astype(np.int64), 1, 65535)
    # UDP: 100,000 5-tuples
    n_tu = 100_000
    u_lport = rng.integers(1024, 65535, n_tu)
    u_raddr = rng.integers(0, 20000, n_tu)
    u_pid = rng.integers(1000, 1300, n_tu) * 4
    tup = rng.integers(0, n_tu, n_udp)
    t_udp = t0 + rng.integers(0, 2 * half, n_udp)
    udp_kind = rng.choice(["Send", "Recv"], n_udp)
    udp_size = rng.integers(8, 1400, n_udp)

    ev = pl.DataFrame(
        {
            "time": np.concatenate([t_tcp, t_udp]),
            "event": np.concatenate([tcp_kind, udp_kind]),
            "protocol": ["TCP"] * n_tcp + ["UDP"] * n_udp,
            "pid": np.concatenate([c_pid[conn], u_pid[tup]]),
            "size": np.concatenate([tcp_size, udp_size]),
            "local_addr": [host] * n_events,
            "local_port": np.concatenate([c_lport[conn], u_lport[tup]]),
            "raddr_n": np.concatenate([c_raddr[conn], u_raddr[tup] + 100_000]),
            "remote_port": np.concatenate([c_rport[conn], np.full(n_udp, 53)]),
        }
    )
    ev = ev.with_columns(
        pl.format(
            "172.{}.{}.{}",
            pl.col("raddr_n") // 65536,
            pl.col("raddr_n") // 256 % 256,
            pl.col("raddr_n") % 256,
        ).alias("remote_addr"),
        pl.col("time").cast(schema.TIME),
        pl.when(pl.col("protocol") == "TCP")
        .then(pl.lit("TcpIp"))
        .otherwise(pl.lit("UdpIp"))
        .alias("provider"),
        pl.int_range(pl.len()).alias("record"),
    ).drop("raddr_n")
    ev = schema.conform(ev, schema.EVENTS)

    n_noise = n_frames // 20
    pick = rng.choice(n_events, n_frames - n_noise, replace=n_frames - n_noise > n_events)
    e = ev[pick]
    out = e["event"] == "Send"
    tt = e["time"].cast(pl.Int64).to_numpy()
    lat = np.where(out.to_numpy(), 30_000, -30_000)
    payload = np.where(
        e["protocol"].to_numpy() == "TCP", np.minimum(e["size"].to_numpy(), 1460), e["size"].to_numpy()
    )
    fr = pl.DataFrame(
        {
            "time": tt + offset + lat,
            "protocol": e["protocol"],
            "src_addr": pl.select(pl.when(out).then(e["local_addr"]).otherwise(e["remote_addr"])).to_series(),
            "dst_addr": pl.select(pl.when(out).then(e["remote_addr"]).otherwise(e["local_addr"])).to_series(),
            "src_port": pl.select(pl.when(out).then(e["local_port"]).otherwise(e["remote_port"])).to_series(),
            "dst_port": pl.select(pl.when(out).then(e["remote_port"]).otherwise(e["local_port"])).to_series(),
            "payload_len": payload,
            "truth": e["pid"],
        }
    )
    noise = pl.DataFrame(
        {
            "time": t0 + offset + rng.integers(0, 2 * half, n_noise),
            "protocol": rng.choice(["TCP", "UDP"], n_noise),
            "src_addr": [host] * n_noise,
            "dst_addr": ["198.18.0.1"] * n_noise,
            "src_port": rng.integers(1024, 65535, n_noise),
            "dst_port": rng.integers(1, 1024, n_noise),
            "payload_len": rng.integers(0, 1460, n_noise),
            "truth": pl.Series([None] * n_noise, dtype=pl.Int64),
        }
    )
    fr = pl.concat([fr, noise], how="vertical_relaxed").sort("time")
    truth = fr["truth"].to_numpy()
    fr = fr.drop("truth").with_columns(
        pl.int_range(1, pl.len() + 1).alias("frame"),
        pl.col("time").cast(schema.TIME),
        pl.lit(4, pl.Int8).alias("ip_version"),
        pl.lit("none").alias("fragment"),
        (pl.col("payload_len") + 54).alias("wirelen"),
    )
    return ev, schema.conform(fr, schema.FRAMES), truth, offset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t = time.perf_counter()
    ev, fr, truth, offset = generate(a.events, a.frames, a.seed)
    gen = time.perf_counter() - t
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"generated {ev.height:,} events and {fr.height:,} frames in {gen:.1f} s "
        f"(peak RSS so far {rss_before:,.0f} MB)"
    )
    t = time.perf_counter()
    r = attribute(ev, fr)
    took = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    got = r.frames["pid"].to_numpy()
    conf = r.frames["confidence"].to_numpy()
    att = np.isin(conf, ["high", "medium"])
    has = ~np.isnan(truth.astype(float))
    correct = att & has & (got == truth)
    print(f"attribute: {took:.2f} s, peak RSS {peak:,.0f} MB (process, including the generated inputs)")
    print(f"offset found {r.offset_ns / NS:+.6f} s (true {offset / NS:+.6f} s), support {r.offset_support:,}")
    print(
        f"attributed {att.sum():,} of {len(truth):,} frames; precision {correct.sum() / max(att.sum(), 1):.4f}, "
        f"recall {correct.sum() / max(has.sum(), 1):.4f}"
    )
    print(f"target: < 10 s and < 2,048 MB -> {'met' if took < 10 and peak < 2048 else 'NOT met'}")


if __name__ == "__main__":
    main()
