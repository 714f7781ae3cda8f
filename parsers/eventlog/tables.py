"""Rows of event-log fields (text) -> the CONNECTIONS, processes and DNS tables, in bulk with polars."""

from __future__ import annotations

from typing import Any

import polars as pl

from ..addresses import text_address_map
from ..schema import CONNECTIONS, DNS, EVENTLOG_PROCESSES, TIME, conform, empty
from .flavours import DATA_FIELDS
from .scan import SECURITY_IDS, SYSMON_IDS

RAW = {
    "time": pl.Utf8,
    "host": pl.Utf8,
    "channel": pl.Utf8,
    "provider": pl.Utf8,
    "event_id": pl.Int64,
    "record": pl.Int64,
    "line": pl.Int64,
    **{f: pl.Utf8 for f in DATA_FIELDS},
}

#: Security-Auditing WFP events: what each one says happened.
WFP_ACTION = {5156: "connect", 5157: "blocked", 5152: "dropped", 5158: "bind", 5154: "listen"}
PROTOCOLS = {"6": "TCP", "17": "UDP", "1": "ICMP", "58": "ICMPv6", "tcp": "TCP", "udp": "UDP"}
_DIRECTION = {"%%14592": "in", "%%14593": "out", "inbound": "in", "outbound": "out"}

_TIME_RE = (
    r"^\s*(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9})\d*)?\s*"
    r"(Z|UTC|[+-]\d{2}:?\d{2})?"
)


def raw_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The decoded rows as one frame of text columns (header ints as Int64)."""
    if not rows:
        return empty(RAW)
    return pl.from_dicts(rows, schema=RAW, strict=False)


def parse_time(col: pl.Expr) -> pl.Expr:
    """ISO-like text (``2020-10-22 04:29:46``, ``...T08:54:05.1230000Z``, ``+02:00``) -> UTC ns.

    A time without a zone is taken as UTC as written (exports often hold local time: the clock offset
    is found from the data downstream)."""
    g = col.str.extract_groups(_TIME_RE)
    frac = g.struct.field("3").fill_null("").str.pad_end(9, "0")
    naive = pl.concat_str(
        [g.struct.field("1"), pl.lit(" "), g.struct.field("2"), pl.lit("."), frac]
    ).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns", strict=False)
    zone = g.struct.field("4").str.replace(":", "", literal=True)
    sign = pl.when(zone.str.starts_with("-")).then(-1).otherwise(1)
    minutes = (
        pl.when(zone.str.contains(r"^[+-]\d{4}$"))
        .then(
            sign
            * (
                zone.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
                + zone.str.slice(3, 2).cast(pl.Int64, strict=False)
            )
        )
        .otherwise(0)
    )
    return (naive - pl.duration(minutes=minutes)).dt.replace_time_zone("UTC").cast(TIME)


def parse_int(col: pl.Expr) -> pl.Expr:
    """Decimal or ``0x``-hex text -> Int64 (4688/4689 write PIDs as ``0x1d60``); anything else null."""
    s = col.str.strip_chars().str.to_lowercase()
    return (
        pl.when(s.str.starts_with("0x"))
        .then(s.str.slice(2).str.to_integer(base=16, strict=False))
        .otherwise(s.str.to_integer(base=10, strict=False))
        .cast(pl.Int64)
    )


def image_name(col: pl.Expr) -> pl.Expr:
    """``C:\\Windows\\System32\\svchost.exe`` or ``\\device\\harddiskvolume2\\...\\svchost.exe`` -> ``svchost.exe``."""
    return (
        pl.when(col.str.strip_chars().is_in(["", "-", "<unknown process>"]))
        .then(None)
        .otherwise(col.str.replace(r"^.*[\\/]", "").str.to_lowercase())
    )


def _dash_null(col: pl.Expr) -> pl.Expr:
    return pl.when(col.str.strip_chars().is_in(["", "-"])).then(None).otherwise(col)


def canonical_addrs(df: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Addresses in canonical text (IPv4-mapped IPv6 unmapped); text that is no address becomes null."""
    present = [c for c in cols if c in df.columns]
    if not present or df.height == 0:
        return df
    mapping = text_address_map(pl.concat([df.get_column(c) for c in present]), unmap=True)
    return df.with_columns(
        pl.col(c).replace_strict(mapping, default=None, return_dtype=pl.Utf8) for c in present
    )


def sensor_of() -> pl.Expr:
    """``sysmon`` / ``security`` from the channel (else the provider, else the event id)."""
    ch = pl.col("channel").str.to_lowercase()
    pr = pl.col("provider").str.to_lowercase()
    eid = pl.col("event_id")
    return (
        pl.when(ch.str.contains("sysmon"))
        .then(pl.lit("sysmon"))
        .when(ch == "security")
        .then(pl.lit("security"))
        .when(ch.is_not_null())
        .then(pl.lit(None, pl.Utf8))
        .when(pr.str.contains("sysmon"))
        .then(pl.lit("sysmon"))
        .when(pr.str.contains("security-auditing"))
        .then(pl.lit("security"))
        .when(pr.is_not_null())
        .then(pl.lit(None, pl.Utf8))
        .when(eid.is_in(list(SYSMON_IDS)))
        .then(pl.lit("sysmon"))
        .when(eid.is_in(list(SECURITY_IDS)))
        .then(pl.lit("security"))
        .otherwise(pl.lit(None, pl.Utf8))
    )


def _record() -> pl.Expr:
    return pl.coalesce(pl.col("record"), pl.col("line")).cast(pl.UInt64)


def connections(raw: pl.DataFrame, source: str) -> pl.DataFrame:
    """CONNECTIONS rows from Sysmon 3 and Security 5156/5157/5152/5158/5154."""
    eid = pl.col("event_id")
    df = raw.filter(
        ((pl.col("sensor") == "sysmon") & (eid == 3))
        | ((pl.col("sensor") == "security") & eid.is_in(list(WFP_ACTION)))
    )
    if df.height == 0:
        return empty(CONNECTIONS)
    sysmon = pl.col("sensor") == "sysmon"
    initiated = pl.col("initiated").str.strip_chars().str.to_lowercase()
    wfp_dir = (
        pl.col("direction")
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(_DIRECTION, default=None, return_dtype=pl.Utf8)
    )
    direction = (
        pl.when(sysmon)
        .then(pl.when(initiated == "true").then(pl.lit("out")).when(initiated == "false").then(pl.lit("in")))
        .when(eid.is_in([5158, 5154]))
        .then(pl.lit(None, pl.Utf8))
        .otherwise(wfp_dir)
    )
    action = (
        pl.when(sysmon)
        .then(pl.when(initiated == "false").then(pl.lit("accept")).otherwise(pl.lit("connect")))
        .when(eid == 5156)
        .then(pl.when(wfp_dir == "in").then(pl.lit("accept")).otherwise(pl.lit("connect")))
        .otherwise(eid.replace_strict(WFP_ACTION, default=None, return_dtype=pl.Utf8))
    )
    image = pl.coalesce(pl.col("image"), pl.col("application"))
    df = df.with_columns(
        direction.alias("direction_"),
        action.alias("action"),
        pl.coalesce(pl.col("sourceip"), pl.col("sourceaddress")).alias("src_a"),
        parse_int(pl.col("sourceport")).alias("src_p"),
        pl.coalesce(pl.col("destinationip"), pl.col("destaddress")).alias("dst_a"),
        parse_int(pl.coalesce(pl.col("destinationport"), pl.col("destport"))).alias("dst_p"),
    )
    df = canonical_addrs(df, ["src_a", "dst_a"])
    inbound = pl.col("direction_") == "in"
    out = df.select(
        parse_time(pl.col("time")).alias("time"),
        parse_time(pl.col("utctime")).alias("sensor_time"),
        pl.col("host"),
        pl.col("sensor"),
        eid.cast(pl.Int32).alias("event_id"),
        _record().alias("record"),
        parse_int(pl.col("processid")).alias("pid"),
        pl.lit(None, pl.Int64).alias("tid"),
        image_name(image).alias("process"),
        _dash_null(image).alias("image_path"),
        _dash_null(pl.col("user")).alias("user"),
        pl.col("protocol")
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(PROTOCOLS, default=pl.col("protocol").str.strip_chars())
        .alias("protocol"),
        pl.when(inbound).then(pl.col("dst_a")).otherwise(pl.col("src_a")).alias("local_addr"),
        pl.when(inbound).then(pl.col("dst_p")).otherwise(pl.col("src_p")).alias("local_port"),
        pl.when(inbound).then(pl.col("src_a")).otherwise(pl.col("dst_a")).alias("remote_addr"),
        pl.when(inbound).then(pl.col("src_p")).otherwise(pl.col("dst_p")).alias("remote_port"),
        pl.col("direction_").alias("direction"),
        pl.col("action"),
        _dash_null(pl.col("processguid")).alias("process_guid"),
        pl.lit(source).alias("source"),
    )
    return conform(out, CONNECTIONS)


def _user(domain: str, name: str) -> pl.Expr:
    n = _dash_null(pl.col(name))
    return (
        pl.when(n.is_null())
        .then(None)
        .otherwise(
            pl.when(_dash_null(pl.col(domain)).is_null())
            .then(n)
            .otherwise(pl.concat_str([pl.col(domain), n], separator="\\"))
        )
    )


def processes(raw: pl.DataFrame, source: str) -> pl.DataFrame:
    """EVENTLOG_PROCESSES rows, one per process lifetime, from Sysmon 1/5 and Security 4688/4689.

    A create and an exit are the same process when they share host, sensor and ProcessGuid (Sysmon) or
    PID, the exit being the first after the create (PIDs are reused). An exit with no create is a process
    that started before the log (start null); a create with no exit was alive at its end (end null)."""
    eid = pl.col("event_id")
    sysmon = pl.col("sensor") == "sysmon"
    df = raw.filter(
        (sysmon & eid.is_in([1, 5])) | ((pl.col("sensor") == "security") & eid.is_in([4688, 4689]))
    )
    if df.height == 0:
        return empty(EVENTLOG_PROCESSES)
    sec_user = pl.coalesce(
        pl.when(~pl.col("targetusername").is_in(["-", "", "S-1-0-0"])).then(
            _user("targetdomainname", "targetusername")
        ),
        _user("subjectdomainname", "subjectusername"),
    )
    df = (
        df.with_columns(
            parse_time(pl.col("time")).alias("t"),
            (eid.is_in([1, 4688])).alias("is_start"),
            pl.when(eid == 4688)
            .then(parse_int(pl.col("newprocessid")))
            .otherwise(parse_int(pl.col("processid")))
            .alias("pid"),
            pl.when(eid == 4688)
            .then(parse_int(pl.col("processid")))
            .when(eid == 1)
            .then(parse_int(pl.col("parentprocessid")))
            .alias("ppid"),
            _dash_null(
                pl.coalesce(
                    pl.when(eid == 4688).then(pl.col("newprocessname")),
                    pl.col("image"),
                    pl.col("processname"),
                )
            ).alias("image_path"),
            pl.when(sysmon).then(_dash_null(pl.col("user"))).otherwise(sec_user).alias("user"),
            _dash_null(pl.col("processguid")).alias("process_guid"),
            image_name(pl.coalesce(pl.col("parentimage"), pl.col("parentprocessname"))).alias("parent_image"),
        )
        .with_columns(
            pl.coalesce(pl.col("process_guid"), pl.col("pid").cast(pl.Utf8)).alias("key"),
        )
        .with_row_index("row")
    )
    starts = df.filter(pl.col("is_start")).sort("t")
    ends = df.filter(~pl.col("is_start")).sort("t")
    m = ends.select("t", "host", "sensor", "key", pl.col("row").alias("end_row")).join_asof(
        starts.select(
            "t", "host", "sensor", "key", pl.col("row").alias("start_row"), pl.col("t").alias("start_t")
        ),
        on="t",
        by=["host", "sensor", "key"],
        strategy="backward",
        check_sortedness=False,
    )
    # one exit per create: the first after it
    m = m.filter(pl.col("start_row").is_not_null()).sort("t").unique("start_row", keep="first")
    matched_ends = set(m.get_column("end_row").to_list())
    starts = starts.join(
        m.select("start_row", pl.col("t").alias("end_t")), left_on="row", right_on="start_row", how="left"
    )
    lone_ends = ends.filter(~pl.col("row").is_in(list(matched_ends)))
    cols = [
        pl.col("pid"),
        pl.col("ppid"),
        image_name(pl.col("image_path")).alias("image"),
        _dash_null(pl.col("commandline")).alias("command_line"),
        parse_int(pl.col("terminalsessionid")).alias("session"),
    ]
    rest = [
        pl.col("user"),
        pl.col("sensor").alias("source"),
        *(pl.col(c) for c in ("host", "image_path", "process_guid", "parent_image")),
    ]
    a = starts.select(*cols, pl.col("t").alias("start"), pl.col("end_t").alias("end"), *rest)
    b = lone_ends.select(*cols, pl.lit(None, TIME).alias("start"), pl.col("t").alias("end"), *rest)
    out = pl.concat([conform(a, EVENTLOG_PROCESSES), conform(b, EVENTLOG_PROCESSES)])
    return out.sort(pl.coalesce("start", "end"), "pid", nulls_last=True)


def dns(raw: pl.DataFrame, source: str) -> pl.DataFrame:
    """DNS rows from Sysmon 22; QueryResults (``type: 5 x;::ffff:1.2.3.4;``) -> canonical addresses."""
    df = raw.filter((pl.col("sensor") == "sysmon") & (pl.col("event_id") == 22))
    if df.height == 0:
        return empty(DNS)
    df = df.with_row_index("row")
    items = (
        df.select("row", pl.col("queryresults").fill_null("").str.split(";").alias("a"))
        .explode("a")
        .with_columns(pl.col("a").str.strip_chars())
    )
    items = items.filter(~pl.col("a").str.starts_with("type:") & (pl.col("a") != ""))
    items = canonical_addrs(items, ["a"]).drop_nulls("a")
    lists = items.group_by("row", maintain_order=True).agg(
        pl.col("a").unique(maintain_order=True).alias("addresses")
    )
    df = df.join(lists, on="row", how="left")
    out = df.select(
        parse_time(pl.col("time")).alias("time"),
        parse_time(pl.col("utctime")).alias("sensor_time"),
        pl.col("host"),
        _record().alias("record"),
        parse_int(pl.col("processid")).alias("pid"),
        image_name(pl.col("image")).alias("process"),
        _dash_null(pl.col("image")).alias("image_path"),
        _dash_null(pl.col("processguid")).alias("process_guid"),
        pl.col("queryname").alias("query_name"),
        parse_int(pl.col("querystatus")).alias("query_status"),
        pl.col("addresses").fill_null(pl.lit([], pl.List(pl.Utf8))),
        pl.lit(source).alias("source"),
    )
    return conform(out, DNS)


def hosts(conns: pl.DataFrame, procs: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """Per host and sensor: how many connections, processes and DNS queries, first and last time."""
    parts = [
        conns.select(
            "host",
            "sensor",
            pl.lit(1).alias("connections"),
            pl.lit(0).alias("processes"),
            pl.lit(0).alias("dns"),
            "time",
        ),
        procs.select(
            "host",
            pl.col("source").alias("sensor"),
            pl.lit(0).alias("connections"),
            pl.lit(1).alias("processes"),
            pl.lit(0).alias("dns"),
            pl.coalesce("start", "end").alias("time"),
        ),
        names.select(
            "host",
            pl.lit("sysmon").alias("sensor"),
            pl.lit(0).alias("connections"),
            pl.lit(0).alias("processes"),
            pl.lit(1).alias("dns"),
            "time",
        ),
    ]
    allp = pl.concat(
        [p.cast({"connections": pl.Int64, "processes": pl.Int64, "dns": pl.Int64}) for p in parts]
    )
    return (
        allp.group_by("host", "sensor")
        .agg(
            pl.col("connections").sum(),
            pl.col("processes").sum(),
            pl.col("dns").sum(),
            pl.col("time").min().alias("first"),
            pl.col("time").max().alias("last"),
        )
        .sort("host", "sensor")
    )
