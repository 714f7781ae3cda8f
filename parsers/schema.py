"""Column schemas shared by every reader: the same table whatever the input format."""

from __future__ import annotations

import polars as pl
from polars.datatypes import DataTypeClass

# Declarative tables below keep their aligned columns and comments: the formatter stops here.
# fmt: off
#: A table's column name -> polars type (a type instance such as ``TIME`` or a class such as ``pl.Int64``).
ColumnTypes = dict[str, pl.DataType | DataTypeClass]

TIME = pl.Datetime("ns", "UTC")

#: Network events (ETL kernel TcpIp/UdpIp, Kernel-Network, tracerpt CSV).
EVENTS: ColumnTypes = {
    "time": TIME,               # UTC
    "provider": pl.Utf8,        # TcpIp, UdpIp, Kernel-Network, ...
    "event": pl.Utf8,           # Send, Recv, Connect, Accept, Disconnect, Retransmit, Reconnect, Fail, TCPCopy, ...
    "protocol": pl.Utf8,        # TCP / UDP
    "ip_version": pl.Int8,      # 4 / 6
    "pid": pl.Int64,            # from the payload
    "process": pl.Utf8,         # image name of pid at that time (from the trace's process events)
    "size": pl.Int64,
    "local_addr": pl.Utf8,      # canonical text (ipaddress)
    "local_port": pl.Int32,
    "remote_addr": pl.Utf8,
    "remote_port": pl.Int32,
    "connid": pl.UInt64,
    "seqnum": pl.UInt64,
    "record": pl.Int64,         # index of the record (or line) in the file
}

#: Processes (ETL process events, SystemConfig services, tracerpt, tasklist).
PROCESSES: ColumnTypes = {
    "pid": pl.Int64,
    "ppid": pl.Int64,
    "image": pl.Utf8,
    "command_line": pl.Utf8,
    "session": pl.Int64,
    "start": TIME,              # null when it started before the trace / snapshot
    "end": TIME,                # null when still alive at the end
    "services": pl.Utf8,        # comma-separated service names, null when none
    "user": pl.Utf8,            # SID (ETL) or DOMAIN\\user (tasklist /v)
    "source": pl.Utf8,          # etl, tracerpt, tasklist
    "snapshot": TIME,           # tasklist snapshot time when known
}

#: Frames (pcap, pcapng, packets embedded in ETL files).
FRAMES: ColumnTypes = {
    "frame": pl.Int64,          # 1-based, as Wireshark numbers them
    "time": TIME,
    "caplen": pl.Int32,
    "wirelen": pl.Int32,
    "interface": pl.Int32,
    "link_type": pl.Int32,      # LINKTYPE_* of the interface
    "direction": pl.Utf8,       # in / out / unknown
    "ip_version": pl.Int8,
    "protocol": pl.Utf8,        # TCP, UDP, ICMP, ICMPv6, other
    "src_addr": pl.Utf8,
    "src_port": pl.Int32,
    "dst_addr": pl.Utf8,
    "dst_port": pl.Int32,
    "payload_len": pl.Int32,    # transport payload
    "tcp_flags": pl.UInt8,
    "tcp_seq": pl.UInt32,
    "ip_id": pl.Int64,          # IPv4 16-bit or IPv6 fragment 32-bit identification
    "fragment": pl.Utf8,        # none / first / later
    "notes": pl.Utf8,           # e.g. "ip-length-0" for TSO frames; null when nothing to say
    "header_pid": pl.Int64,     # PID/TID of the ETW event header a converted capture carries (pcapng option 8,
    "header_tid": pl.Int64,     # etl2pcapng's "PID=n TID=m" comment): the logging thread's, not the owner
}


#: Network evidence from Windows event logs (Sysmon 3; Security 5156/5158/5154/5157/5152): one row per event.
CONNECTIONS: ColumnTypes = {
    "time": TIME,               # the record's TimeCreated / EventTime / TimeGenerated / @timestamp, as written
    #                             (a time without a zone is taken as UTC: find the clock offset from the data)
    "sensor_time": TIME,        # Sysmon's own UtcTime (same treatment); null for Security events
    "host": pl.Utf8,            # Computer / Hostname as written (FQDN or short name)
    "sensor": pl.Utf8,          # sysmon / security
    "event_id": pl.Int32,       # 3, 5156, 5158, 5154, 5157, 5152
    "record": pl.UInt64,        # EventRecordID / RecordNumber, or the line number when the export has none
    "pid": pl.Int64,            # the subject process (never the logging process of System/Execution)
    "tid": pl.Int64,            # null: neither sensor names the thread
    "process": pl.Utf8,         # image name, lower-case (svchost.exe)
    "image_path": pl.Utf8,      # as written: C:\\... (Sysmon) or \\device\\harddiskvolumeN\\... (Security)
    "user": pl.Utf8,            # DOMAIN\\user (Sysmon); null for Security
    "protocol": pl.Utf8,        # TCP / UDP, else the IANA number as text
    "local_addr": pl.Utf8,      # canonical text (IPv4-mapped IPv6 unmapped)
    "local_port": pl.Int32,
    "remote_addr": pl.Utf8,
    "remote_port": pl.Int32,
    "direction": pl.Utf8,       # out (the process initiated) / in (accepted); null for binds and listens
    "action": pl.Utf8,          # connect / accept / bind / listen / blocked / dropped
    "process_guid": pl.Utf8,    # Sysmon ProcessGuid, null otherwise
    "source": pl.Utf8,          # the file read
}

#: Processes from Windows event logs (Sysmon 1/5, Security 4688/4689): PROCESSES plus these columns.
EVENTLOG_PROCESSES: ColumnTypes = {
    **PROCESSES,                # source: sysmon / security; image: lower-case image name
    "host": pl.Utf8,
    "image_path": pl.Utf8,      # as written
    "process_guid": pl.Utf8,    # Sysmon only
    "parent_image": pl.Utf8,    # image name of the parent when the event says it
}

#: DNS queries (Sysmon 22): the names a process resolved and the addresses it got.
DNS: ColumnTypes = {
    "time": TIME,
    "sensor_time": TIME,        # Sysmon UtcTime
    "host": pl.Utf8,
    "record": pl.UInt64,
    "pid": pl.Int64,
    "process": pl.Utf8,         # image name, lower-case
    "image_path": pl.Utf8,
    "process_guid": pl.Utf8,
    "query_name": pl.Utf8,
    "query_status": pl.Int64,   # 0 = success; Win32 / DNS error code otherwise
    "addresses": pl.List(pl.Utf8),  # A/AAAA answers in canonical text (CNAME entries dropped)
    "source": pl.Utf8,
}

def empty(schema: dict) -> pl.DataFrame:
    """An empty frame with the given schema."""
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict) -> pl.DataFrame:
    """Cast to the schema, add missing columns as nulls, put schema columns first (extras kept after)."""
    if df.width == 0:   # selecting only literals would give one row, not df.height rows
        return pl.DataFrame(schema=schema).clear(n=df.height)
    cols = []
    for name, dtype in schema.items():
        if name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    extra = [c for c in df.columns if c not in schema]
    return df.select([*cols, *extra])
