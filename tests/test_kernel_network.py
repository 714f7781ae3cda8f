"""Microsoft-Windows-Kernel-Network manifest events on tx/KernelNetwork.etl (Windows 7 SP1, 64-bit)."""

from __future__ import annotations

import struct
from collections import Counter

import numpy as np
import polars as pl
import pytest

from etwtools.parsers.etl import kernel_network
from etwtools.parsers.etl.container import open_etl
from etwtools.parsers.etl.events import read_etl_events
from etwtools.parsers.etl.guids import KERNEL_NETWORK

#: Per-id counts from the corpus README (counted there with an independent decoder).
README_COUNTS = {11: 7968, 10: 575, 43: 149, 27: 134, 59: 61, 26: 26, 42: 8, 29: 2}


@pytest.fixture(scope="module")
def events(corpus):
    return read_etl_events(corpus / "tx" / "KernelNetwork.etl")


@pytest.fixture(scope="module")
def raw(corpus):
    """(record -> (header pid, payload bytes)) of every Kernel-Network record, read from the container."""
    out = {}
    with open_etl(corpus / "tx" / "KernelNetwork.etl") as f:
        for batch in f.batches():
            for i in np.flatnonzero(batch.provider_mask(KERNEL_NETWORK)):
                out[int(batch.record[i])] = (int(batch.pid[i]), batch.payload(int(i)))
    return out


def test_counts_per_event_id(events):
    assert len(events) == 8923
    assert set(events["provider"]) == {"Kernel-Network"}
    assert dict(Counter(events["event_id"].to_list())) == README_COUNTS


def test_every_event_has_its_payload_pid(events, raw):
    """The PID column is the payload's first u32 for every event, not the header's (often 0)."""
    assert events["pid"].null_count() == 0
    payload_pids = [struct.unpack_from("<I", raw[r][1])[0] for r in events["record"]]
    assert events["pid"].to_list() == payload_pids
    header_zero = sum(1 for r in events["record"] if raw[r][0] == 0)
    assert header_zero > 4000  # the header PID alone would lose most of them
    assert dict(Counter(events["pid"].to_list()).most_common(3)) == {2716: 8543, 2432: 156, 1008: 147}


def test_ipv6_addresses_decoded(events):
    v6 = events.filter(pl.col("ip_version") == 6)
    assert v6.height == 26 + 134 + 61 + 2
    send = v6.filter(pl.col("event_id") == 26).row(0, named=True)
    assert (send["event"], send["protocol"], send["pid"], send["size"]) == ("Send", "TCP", 2432, 37)
    assert (send["local_addr"], send["local_port"]) == ("2001:4898:0:fff:0:5efe:a79:6a76", 3389)
    assert (send["remote_addr"], send["remote_port"]) == ("2001:4898:0:fff:0:5efe:af6:60d", 24485)
    llmnr = v6.filter(pl.col("event_id") == 59).row(0, named=True)
    assert (llmnr["event"], llmnr["protocol"], llmnr["pid"]) == ("Recv", "UDP", 1008)
    assert (llmnr["local_addr"], llmnr["local_port"]) == ("ff02::1:3", 5355)
    assert (llmnr["remote_addr"], llmnr["remote_port"]) == ("fe80::d2d:5c45:da2f:47a7", 58909)
    disc = v6.filter(pl.col("event_id") == 29).row(0, named=True)
    assert disc["event"] == "Disconnect" and disc["local_addr"] == "2001:4898:0:fff:0:5efe:a79:6a76"
    assert disc["remote_addr"] == "2001:4898:a8:6006:6ab5:99ff:feb0:5d4c"


def test_ipv4_values_and_time(events, corpus):
    tcp = events.filter(pl.col("event_id") == 11).row(0, named=True)
    assert (tcp["pid"], tcp["size"], tcp["local_addr"], tcp["local_port"]) == (
        2716,
        4101,
        "10.121.106.118",
        61740,
    )
    assert (tcp["remote_addr"], tcp["remote_port"]) == ("157.56.244.38", 443)
    assert events["time"].is_sorted()
    with open_etl(corpus / "tx" / "KernelNetwork.etl") as f:
        start, end = ((t - 116444736000000000) * 100 for t in (f.header.start_time, f.header.end_time))
    times = events["time"].cast(pl.Int64)
    assert start <= times.min() and times.max() <= end
    assert str(events["time"][0])[:16] == "2012-06-19 20:33"


def test_event_ids_without_network_fields_are_not_guessed():
    assert kernel_network.layout_for(33) is None and kernel_network.layout_for(1) is None
    assert kernel_network.layout_for(49)[1].event == "Fail"
    assert kernel_network.layout_for(58)[1].ip_version == 6
