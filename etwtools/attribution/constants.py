"""The numbers and column names attribution rests on."""

from __future__ import annotations

import polars as pl

from ..parsers.units import NS_PER_S as NS

#: Default tolerance (s) between a frame and its event once the offset is applied. A packet's ETW
#: event and its capture timestamp differ by the stack's latency (microseconds to milliseconds), the
#: clock granularity of older Windows (15.6 ms) and the drift between the two clocks over a long trace
#: (tens of ms per hour). 0.5 s covers all three; a UDP match also needs the same 5-tuple AND size, so a
#: wider window costs little precision, while a second datagram of the same flow and size inside it
#: would still be resolved by taking the nearest event.
DEFAULT_TOLERANCE_S = 0.5
#: A 4-tuple (TCP) or 5-tuple (UDP) seen within this time of the frame keeps medium confidence:
#: 240 s is TCP's TIME_WAIT (2 MSL) on Windows, before which the tuple cannot start a new connection.
MEDIUM_HORIZON_NS = 240 * NS
#: Evidence further away than this is not offered at all.
LOW_HORIZON_NS = 600 * NS
#: Fewer matches than this cannot establish an offset when another offset has as many.
AGREE_MIN = 5
#: PIDs that never own a socket (Idle, and -1 / 0xFFFFFFFF for "unknown").
NO_PID = [0, -1, 0xFFFFFFFF]
#: Event kinds that show a PID owns a TCP 4-tuple ("rundown": Microsoft-Windows-TCPIP 1300, a connection
#: alive when a netsh trace started).
TCP_OWNER_EVENTS = [
    "send",
    "recv",
    "connect",
    "accept",
    "disconnect",
    "retransmit",
    "reconnect",
    "copy",
    "rundown",
]
SYN = 0x02

#: A frame's or event's (local, remote) 5-tuple.
KEY = ["protocol", "l_addr", "l_port", "r_addr", "r_port"]
#: Exact integer id of a KEY tuple seen in the events (joins on it are cheaper than on five columns).
KID = "kid"
#: Confidence of each candidate rank.
CONFIDENCE = {3: "high", 2: "medium", 1: "low", 0: "none"}
#: Rank of each confidence (the inverse of CONFIDENCE).
RANK = {v: k for k, v in CONFIDENCE.items()}
#: The answer's short texts as held until written (1 byte a row; rendered as text by
#: :class:`~.result.Attribution`'s accessors): a frame's direction and confidence.
DIRECTIONS = pl.Enum(["in", "out", "unknown"])
CONFIDENCES = pl.Enum(list(CONFIDENCE.values()))
#: A prepared frame's direction and where it comes from, as held while attributing.
FRAME_DIRECTIONS = pl.Enum(["in", "out", "both", "unknown"])
DIRECTION_SOURCES = pl.Enum(["capture", "local addresses"])
#: The orientation of a frame or event (its local end sends: out, receives: in), as held while attributing.
ODIRS = pl.Enum(["out", "in"])
#: Confidences that count as an answer (a frame "attributed").
ATTRIBUTED = ["high", "medium"]
#: The frame's own columns, at the head of every answer table (this one, and the event-log attribution's).
FRAME_COLUMNS = ["frame", "time", "direction", "protocol", "src_addr", "src_port", "dst_addr", "dst_port"]
#: The columns of the answer, one row per frame.
OUT_COLUMNS = [
    *FRAME_COLUMNS,
    "payload_len",
    "pid",
    "process",
    "services",
    "confidence",
    "method",
    "event_time",
    "delta_s",
    "reason",
]
