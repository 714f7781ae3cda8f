"""The OTRF pairs' event logs as tables, for the attribution tests and benchmarks/eval_otrf.py.

A stand-in for the event-log reader (issue 11, other half) until it lands: the two JSON flavours the
OTRF pairs use (NXLog flat records; Azure Monitor exports with EventData as a JSON or XML string),
only the fields attribution needs.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime
from pathlib import Path

import polars as pl

from etwtools.ownership import CONNECTIONS, DNS, KEY, attribute_connections, orient
from etwtools.sources import read_frames

PAIRS = {
    "purplesharp_ad_playbook_I": ("purplesharp_ad_playbook_I_2020-10-22042947.cap",),
    "covenant_dcom_iertutil_dll_hijack": ("covenant_dcom_iertutil_dll_hijack_WORKSTATION5_2020-10-09183000.cap",
                                          "covenant_dcom_iertutil_dll_hijack_WORKSTATION6_2020-10-09183000.cap"),
    "empire_powerview_ldap_ntsecuritydescriptor": ("empire_powerview_ldap_ntsecuritydescriptor_2020-09-21130944.cap",),
    "schtask_create": ("schtask_create_2020-12-1907003032.pcapng",),
    "log4shell_cve2021_44228_java_serialized": ("pcap_log4shell_cve2021_44228_java_serialized_2022-05-13045800.pcapng",),
}
_WANTED = {3, 22, 1, 5, 5156, 5158, 5154, 5157, 4688, 4689}
_XML_DATA = re.compile(r'<Data Name="([^"]+)">([^<]*)</Data>')


def _lines(folder: Path):
    for p in sorted(folder.iterdir()):
        if p.suffix == ".zip":
            with zipfile.ZipFile(p) as z:
                for name in z.namelist():
                    with z.open(name) as f:
                        yield from io.TextIOWrapper(f, encoding="utf-8")
        elif p.suffix == ".json":
            with open(p, encoding="utf-8") as f:
                yield from f


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    t = text.strip().replace("Z", "").replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(t[:26], fmt)
        except ValueError:
            pass
    return None


def _records(folder: Path):
    for line in _lines(folder):
        if '"EventID"' not in line:
            continue
        d = json.loads(line)
        eid = int(d.get("EventID", 0))
        if eid not in _WANTED:
            continue
        data = d.get("EventData")
        if isinstance(data, str):          # Azure Monitor: EventData as JSON (WindowsEvent) or XML text
            fields = json.loads(data) if data.startswith("{") else dict(_XML_DATA.findall(data))
            d = {**d, **fields}
            d["Hostname"] = d.get("Computer")
            d["_time"] = _time(d.get("TimeGenerated"))
        else:
            d["_time"] = _time(d.get("EventTime") or d.get("TimeCreated"))
        d["EventID"] = eid
        yield d


def _int(v, base: int = 10) -> int | None:
    if v in (None, "", "-"):
        return None
    try:
        return int(str(v), 16 if str(v).lower().startswith("0x") else base)
    except ValueError:
        return None


def load(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(connections, processes, dns) of one OTRF pair's logs."""
    conns, procs, dns = [], [], []
    for d in _records(folder):
        eid, host = d["EventID"], d.get("Hostname")
        if eid == 3:
            init = str(d.get("Initiated", "")).lower() == "true"
            # TCP: Source is the initiator; UDP: Source is the host's own side, whatever Initiated says
            # (seen in these files), except for a broadcast or multicast datagram received
            udp_local_src = str(d.get("Protocol")).lower() == "udp" and not re.search(
                r"(\.255$|^22[4-9]\.|^23\d\.|^ff)", d.get("SourceIp") or "")
            a, b = ("Source", "Destination") if init or udp_local_src else ("Destination", "Source")
            img = d.get("Image") or ""
            conns.append(dict(time=d["_time"], sensor_time=_time(d.get("UtcTime")), host=host, sensor="sysmon",
                              event_id=3, record=_int(d.get("RecordNumber")), pid=_int(d.get("ProcessId")),
                              process=img.replace("/", "\\").split("\\")[-1] or None, image_path=img or None,
                              user=d.get("User"), protocol=str(d.get("Protocol", "")).upper(),
                              local_addr=d.get(a + "Ip"), local_port=_int(d.get(a + "Port")),
                              remote_addr=d.get(b + "Ip"), remote_port=_int(d.get(b + "Port")),
                              direction="out" if init else "in", action="connect",
                              process_guid=(d.get("ProcessGuid") or "").lower() or None))
        elif eid in (5156, 5158, 5154, 5157):
            app = d.get("Application") or ""
            proto = {"6": "TCP", "17": "UDP"}.get(str(d.get("Protocol")), str(d.get("Protocol")))
            # inbound (%%14592): Source is the remote initiator, Dest the host's own side (seen in these files)
            a, b = ("Dest", "Source") if d.get("Direction") == "%%14592" else ("Source", "Dest")
            conns.append(dict(time=d["_time"], host=host, sensor="security", event_id=eid,
                              record=_int(d.get("RecordNumber")), pid=_int(d.get("ProcessID") or d.get("ProcessId")),
                              process=app.split("\\")[-1] or None, image_path=app or None, protocol=proto,
                              local_addr=d.get(a + "Address"), local_port=_int(d.get(a + "Port")),
                              remote_addr=d.get(b + "Address"), remote_port=_int(d.get(b + "Port")),
                              direction={"%%14592": "in", "%%14593": "out"}.get(d.get("Direction")),
                              action={5156: "permit", 5158: "bind", 5154: "listen", 5157: "block"}[eid]))
        elif eid in (1, 4688):
            img = d.get("Image") or d.get("NewProcessName") or ""
            procs.append(dict(pid=_int(d.get("ProcessId") if eid == 1 else d.get("NewProcessId")),
                              image=img.split("\\")[-1] or None, start=d["_time"], host=host,
                              process_guid=(d.get("ProcessGuid") or "").lower() or None,
                              source="sysmon" if eid == 1 else "security"))
        elif eid == 22:
            dns.append(dict(time=d["_time"], host=host, pid=_int(d.get("ProcessId")),
                            process=(d.get("Image") or "").split("\\")[-1] or None, query_name=d.get("QueryName"),
                            addresses=[a.replace("::ffff:", "") for a in (d.get("QueryResults") or "").split(";")
                                       if a and not a.startswith("type:")]))
    c = pl.DataFrame(conns, schema={k: v for k, v in CONNECTIONS.items() if k != "source"},
                     strict=False).with_columns(pl.col("time").dt.replace_time_zone("UTC"),
                                                pl.col("sensor_time").dt.replace_time_zone("UTC"))
    p = pl.DataFrame(procs, schema={"pid": pl.Int64, "image": pl.Utf8, "start": pl.Datetime("ns"), "host": pl.Utf8,
                                    "process_guid": pl.Utf8, "source": pl.Utf8}, strict=False
                     ).with_columns(pl.col("start").dt.replace_time_zone("UTC"))
    n = pl.DataFrame(dns, schema={k: v for k, v in DNS.items()}, strict=False
                     ).with_columns(pl.col("time").dt.replace_time_zone("UTC")) if dns else pl.DataFrame(schema=DNS)
    return c, p, n


def _agree(truth_pid: str, truth_process: str) -> pl.Expr:
    """The answer names the judging sensor's process: same PID, or the same image where a PID is unknown."""
    pid_ok = pl.col("pid").is_not_null() & pl.col(truth_pid).is_not_null()
    return (pl.when(pid_ok).then(pl.col("pid") == pl.col(truth_pid))
            .otherwise(pl.col("process").str.to_lowercase() == pl.col(truth_process).str.to_lowercase())
            ).fill_null(False)


def _logged(r, frames: pl.DataFrame) -> pl.DataFrame:
    """Frame numbers whose 5-tuple the run's connection events name (at any time)."""
    ev = r._events.filter(pl.col("has_tuple")).select(KEY).unique()
    of = orient(frames, r.local_addrs)
    return of.join(ev, on=KEY, how="semi").select((pl.col("fid") + 1).alias("frame")).unique()


def evaluate(capture: Path, conns: pl.DataFrame, procs: pl.DataFrame, dns: pl.DataFrame) -> list[dict]:
    """One row per sensor given: frames judged, answers, correct answers, precision, coverage and the
    header-PID baseline."""
    frames = read_frames(capture)
    runs = {s: attribute_connections(frames, conns.filter(pl.col("sensor") == s), procs, dns)
            for s in ("sysmon", "security")}
    rows = []
    for given, judge in (("sysmon", "security"), ("security", "sysmon")):
        a, j = runs[given], runs[judge]
        truth = j.frames.filter(pl.col("method") == f"{judge}-5-tuple").select(
            "frame", pl.col("pid").alias("t_pid"), pl.col("process").alias("t_process"))
        known = _logged(a, frames).join(_logged(j, frames), on="frame")
        judged = a.frames.join(known, on="frame").join(truth, on="frame")
        answered = judged.filter(pl.col("confidence").is_in(["high", "medium"]))
        correct = answered.filter(_agree("t_pid", "t_process"))
        hp = judged.filter(pl.col("header_pid").is_not_null())
        rows.append(dict(capture=capture.name, given=given, host=a.host.host, frames=judged.height,
                         answered=answered.height, correct=correct.height,
                         precision=round(correct.height / answered.height, 4) if answered.height else None,
                         coverage=round(answered.height / judged.height, 4) if judged.height else None,
                         header_pid_frames=hp.height,
                         header_pid_precision=(round(hp.filter(pl.col("header_pid") == pl.col("t_pid")).height
                                                     / hp.height, 4) if hp.height else None),
                         offset=a.describe_offset()))
    return rows
