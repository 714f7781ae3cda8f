"""The one address-text rule (parsers/addresses.py) every reader writes addresses with."""

import socket

import numpy as np
import polars as pl

from etwtools.parsers.addresses import (
    dotted_quad_text,
    ipv4_text,
    packed_text,
    raw_text,
    text_address,
    text_address_expr,
)


def test_raw_addresses_keep_their_family():
    assert packed_text(socket.inet_pton(socket.AF_INET, "10.1.1.1")) == "10.1.1.1"
    assert packed_text(socket.inet_pton(socket.AF_INET6, "fe80:0:0:0:0:0:0:1")) == "fe80::1"
    # zero compression: the longest run of zero groups, the first of equal runs, no single-group "::"
    assert packed_text(socket.inet_pton(socket.AF_INET6, "2001:db8:0:0:1:0:0:1")) == "2001:db8::1:0:0:1"
    assert packed_text(socket.inet_pton(socket.AF_INET6, "2001:db8:0:1:1:1:1:1")) == "2001:db8:0:1:1:1:1:1"
    # an IPv4-mapped address in a packet or ETW payload stays IPv6 (not unmapped), written as Wireshark and
    # Windows write it, whatever Python's own text (``::ffff:a01:101`` before 3.13)
    mapped = packed_text(socket.inet_pton(socket.AF_INET6, "::ffff:10.1.1.1"))
    assert mapped == "::ffff:10.1.1.1"
    assert text_address(mapped, unmap=True) == "10.1.1.1"
    # only mapped addresses: an IPv4-compatible (::10.1.1.1, deprecated) or IPv4-translated one is plain IPv6
    assert packed_text(socket.inet_pton(socket.AF_INET6, "::10.1.1.1")) == "::a01:101"
    assert packed_text(socket.inet_pton(socket.AF_INET6, "::ffff:0:10.1.1.1")) == "::ffff:0:a01:101"


def test_mapped_addresses_have_one_text_form():
    """Text in either form Python versions write (``::ffff:a01:101`` up to 3.12) reads as the one form."""
    for given in ("::ffff:a01:101", "::FFFF:10.1.1.1", "0:0:0:0:0:ffff:0a01:0101", "[::ffff:a01:101%4]"):
        assert text_address(given) == "::ffff:10.1.1.1"
        assert text_address(given, unmap=True) == "10.1.1.1"


def test_bulk_forms_agree_with_the_scalar_rule():
    rng = np.random.default_rng(9)
    v4 = np.concatenate(
        [
            rng.integers(0, 2**32, 500, dtype=np.uint64).astype(np.uint32),
            np.array([0, 0x0A010101, 0xFFFFFFFF], np.uint32),
        ]
    )
    want4 = [packed_text(int(a).to_bytes(4, "big")) for a in v4]
    assert ipv4_text(v4).to_list() == want4
    assert raw_text(v4).to_list() == want4
    big = np.repeat(v4, 200)  # above the Python path's size: polars string kernels
    assert ipv4_text(big).to_list() == [t for t in want4 for _ in range(200)]
    raws = [
        socket.inet_pton(socket.AF_INET6, a)
        for a in ("fe80::1", "::ffff:10.1.1.1", "::", "2001:db8::1:0:0:1")
    ]
    rows = np.frombuffer(b"".join(raws + raws[:2]), dtype="<u8").reshape(-1, 2)
    mapped = packed_text(raws[1])
    assert raw_text(rows).to_list() == ["fe80::1", mapped, "::", "2001:db8::1:0:0:1", "fe80::1", mapped]
    assert raw_text(np.zeros(0, np.uint32)).to_list() == []


def test_text_is_read_leniently():
    assert text_address(" FE80:0::1%12 ") == "fe80::1"  # case, compression, zone id
    assert text_address("[2001:DB8:0::1]") == "2001:db8::1"  # brackets (tracerpt, URLs)
    assert text_address("010.001.001.001") == "10.1.1.1"  # tracerpt's zero padding is decimal
    assert text_address("::ffff:10.1.1.1") == "::ffff:10.1.1.1"  # kept IPv6
    assert text_address("::FFFF:10.1.1.1", unmap=True) == "10.1.1.1"  # event logs' IPv4 peers
    for bad in ("", "-", "10.1.1", "10.1.1.256", "010.001.001.1x", "host", "fe80::1::2", None):
        assert text_address(bad) is None
    assert dotted_quad_text(pl.Series(["010.001.001.001", "10.1.1.256", "1.2.3.4.5", "x"])).to_list() == [
        "10.1.1.1",
        None,
        None,
        None,
    ]


def test_expression_matches_the_scalar_rule_on_reader_text():
    texts = ["10.1.1.1", "::ffff:10.1.1.1", "::ffff:a01:101", "FE80::1%3", "[fe80::1]", "2001:db8::1", None]
    got = pl.DataFrame({"a": texts}).select(text_address_expr(pl.col("a"))).to_series().to_list()
    assert (
        got
        == [text_address(t, unmap=True) for t in texts]
        == ["10.1.1.1", "10.1.1.1", "10.1.1.1", "fe80::1", "fe80::1", "2001:db8::1", None]
    )
    # text that is no address is kept as it is (it matches nothing)
    kept = pl.DataFrame({"a": ["-", "host"]}).select(text_address_expr(pl.col("a"))).to_series()
    assert kept.to_list() == ["-", "host"]
