"""Attribute 1,000,000 frames against 1,000,000 events (generated) and print the time and memory.

    python benchmarks/bench_attribute.py [--frames N] [--events N] [--seed S] [--data DIR] [--stages]

The generated trace: 20,000 TCP connections (some 4-tuples reused by a second process) and 100,000 UDP
5-tuples over one hour, 300 processes; TCP Send/Recv sizes up to 64 KB, each event seen on the wire as
its first MSS-sized segment; 5 % of the frames are unrelated noise. The capture clock runs 3 h 0.123 s
ahead of the trace's. ``--data DIR`` keeps the generated tables there as Parquet and reads them back on
the next run (the same inputs for every run, and no generation garbage in the process).

Memory is the process's resident set (RSS), sampled every 2 ms by a thread (polars and Arrow allocate
outside Python's tracemalloc): "inputs" is the RSS once the input tables are loaded, "peak" the highest
RSS while ``attribute`` runs, "above the inputs" their difference. ``--stages`` also times each step of
the attribution (each matcher apart) with the RSS peak inside it, above the inputs.
Targets (issue 14): 1 M x 1 M in under 3 s and under 400 MB above the inputs; 4 M x 4 M under 12 s and
1.6 GB above the inputs.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from etwtools.attribution import attribute
from etwtools.parsers import schema

NS = 1_000_000_000
_PAGE = os.sysconf("SC_PAGE_SIZE")


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


def inputs(
    n_events: int, n_frames: int, seed: int, data: Path | None
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray, int, str]:
    """The generated tables, from ``data`` when they were kept there (else generated, and kept there)."""
    if data is None:
        return *generate(n_events, n_frames, seed), "generated"
    stem = data / f"attribute-{n_events}e-{n_frames}f-seed{seed}"
    paths = [Path(f"{stem}-{part}.parquet") for part in ("events", "frames", "truth")]
    if not all(p.exists() for p in paths):
        data.mkdir(parents=True, exist_ok=True)
        ev, fr, truth, offset = generate(n_events, n_frames, seed)
        ev.write_parquet(paths[0])
        fr.write_parquet(paths[1])
        pl.DataFrame({"truth": truth, "offset": [offset] * len(truth)}).write_parquet(paths[2])
        del ev, fr, truth
        gc.collect()
    t = pl.read_parquet(paths[2])
    truth, offset = t["truth"].to_numpy(), int(t["offset"][0])
    del t
    return pl.read_parquet(paths[0]), pl.read_parquet(paths[1]), truth, offset, f"read from {stem}-*"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


class Sampler(threading.Thread):
    """RSS every ``every`` seconds; ``peak`` since the last :meth:`reset`."""

    def __init__(self, every: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.every, self.peak, self.running = every, rss_mb(), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.every)

    def reset(self) -> float:
        """The peak since the last reset (now included); starts anew from the current RSS."""
        now = rss_mb()
        peak, self.peak = max(self.peak, now), now
        return peak


def trim() -> None:
    """Hand freed heap pages back (glibc), so that the RSS after loading is what the inputs hold."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def cpu() -> float:
    """CPU seconds of the process so far (all threads, user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def instrument(sampler: Sampler, base: float) -> list[tuple[str, float, float, float]]:
    """Wrap the attribution's steps (each matcher apart) to record (step, seconds, CPU seconds, RSS peak
    above ``base``)."""
    from etwtools.attribution import engine, matchers

    rows: list[tuple[str, float, float, float]] = []

    def timed(name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*a, **k):
            sampler.reset()
            t, c = time.perf_counter(), cpu()
            try:
                return fn(*a, **k)
            finally:
                rows.append((name, time.perf_counter() - t, cpu() - c, sampler.reset() - base))

        return run

    for name in ["prepare", "choose_offset", "follow_fragments", "name_processes"]:
        setattr(engine, name, timed(name.replace("_", " "), getattr(engine, name)))
    for name in ["why_nothing", "finish", "summary"]:
        setattr(engine, name, timed(name.strip("_").replace("_", " "), getattr(engine, name)))
    engine.pick_best = timed("pick best", engine.pick_best)
    matchers.MATCHERS[:] = [
        matchers.Matcher(m.method, timed(f"match {m.method}", m.match), m.rule) for m in matchers.MATCHERS
    ]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, help="folder keeping the generated inputs as Parquet")
    ap.add_argument("--stages", action="store_true", help="time each step, with its RSS peak")
    a = ap.parse_args()
    t = time.perf_counter()
    ev, fr, truth, offset, how = inputs(a.events, a.frames, a.seed, a.data)
    gen = time.perf_counter() - t
    trim()
    base = rss_mb()
    print(
        f"{ev.height:,} events and {fr.height:,} frames {how} in {gen:.1f} s; RSS with the inputs loaded "
        f"{base:,.0f} MB (the tables: {(ev.estimated_size() + fr.estimated_size()) / 2**20:,.0f} MB)"
    )
    sampler = Sampler()
    sampler.start()
    stages = instrument(sampler, base) if a.stages else []
    sampler.reset()
    load = os.getloadavg()
    t, c = time.perf_counter(), cpu()
    r = attribute(ev, fr)
    took, took_cpu = time.perf_counter() - t, cpu() - c
    load_after = os.getloadavg()
    peak = max(sampler.reset(), *[base + s[3] for s in stages]) if stages else sampler.reset()
    sampler.running = False
    after = rss_mb()
    whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    got = r.answers["pid"].to_numpy()
    conf = r.answers["confidence"].to_numpy()
    att = np.isin(conf, ["high", "medium"])
    has = ~np.isnan(truth.astype(float))
    correct = att & has & (got == truth)
    for name, s, c, mb in stages:
        print(f"  {name:<24} {s:6.2f} s  CPU {c:6.2f} s  peak {mb:+7,.0f} MB above the inputs")
    print(
        f"attribute: {took:.2f} s, CPU {took_cpu:.2f} s (load average {load[0]:.1f} before, "
        f"{load_after[0]:.1f} after; 2 polars threads on {os.cpu_count()} cores); peak RSS "
        f"{peak:,.0f} MB, {peak - base:,.0f} MB above the inputs ({base:,.0f} MB); {after - base:,.0f} MB "
        f"above them held by the result; whole process peak {whole:,.0f} MB"
    )
    print(f"offset found {r.offset_ns / NS:+.6f} s (true {offset / NS:+.6f} s), support {r.offset_support:,}")
    print(
        f"attributed {att.sum():,} of {len(truth):,} frames; precision {correct.sum() / max(att.sum(), 1):.4f}, "
        f"recall {correct.sum() / max(has.sum(), 1):.4f}"
    )
    # the reasons, written as the writers stream the answer (a batch at a time, each let go once written)
    trim()
    before = rss_mb()
    sampler = Sampler()
    sampler.start()
    t, c, chars = time.perf_counter(), cpu(), 0
    for batch in r.batches():
        chars += int(batch["reason"].str.len_bytes().sum())
    wrote, wrote_cpu = time.perf_counter() - t, cpu() - c
    sampler.running = False
    print(
        f"reasons of every frame written batch by batch (as -f csv/json/table stream them): {wrote:.2f} s, "
        f"CPU {wrote_cpu:.2f} s, {chars / 2**20:,.0f} MB of text; peak {sampler.reset() - before:+,.0f} MB "
        f"above the RSS before"
    )
    budget_s, budget_mb = 3 * max(a.frames, a.events) / 1e6, 400 * max(a.frames, a.events) / 1e6
    ok = took < budget_s and peak - base < budget_mb
    print(
        f"target: < {budget_s:g} s and < {budget_mb:,.0f} MB above the inputs -> {'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
