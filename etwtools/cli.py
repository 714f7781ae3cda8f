"""The ``etwtools`` command line: every command is one library call plus formatting.

Data goes to stdout (or ``-o``); warnings, offsets and summaries go to stderr. Errors are one line
(``error: FILE: offset 0x..: what is wrong``) and exit code 1; ``--traceback`` shows the Python traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from . import output
from .errors import EtwToolsError
from .progress import Bar, bar_for
from .safe_output import Outputs, output_error

if TYPE_CHECKING:
    from .attribution import Attribution


class OneLineError(click.ClickException):
    """An error found while parsing options, shown as ``error: ...`` with exit code 1."""

    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


class InputFile(click.ParamType):
    """An existing file; .gz, .zip and ``archive.zip:member`` are extracted to a temporary folder first."""

    name = "file"

    def convert(self, value, param, ctx):
        from . import compressed

        path, member = compressed.split_member(value)
        if not path.exists():
            self.fail(f"{value!r} does not exist", param, ctx)
        if path.is_dir():
            self.fail(f"{value!r} is a folder, not a file", param, ctx)
        try:
            with open(path, "rb") as f:
                kind = compressed.sniff(f.read(8))
        except OSError as e:
            self.fail(f"{value!r}: {e.strerror}", param, ctx)
        if kind is None and member is None:
            return os.fspath(path)
        if ctx is None:
            return os.fspath(path)
        root = ctx.find_root()
        root.meta.setdefault("etwtools.archives", []).append(os.fspath(path))  # still an input for -o
        folder = root.meta.get("etwtools.extracted")
        if folder is None:
            folder = root.meta["etwtools.extracted"] = tempfile.mkdtemp(prefix="etwtools-")
            root.call_on_close(lambda: compressed.cleanup(folder))
        try:
            out = compressed.extract(path, os.path.join(folder, str(len(os.listdir(folder)))), member)
        except EtwToolsError as e:
            raise OneLineError(str(e)) from None
        logging.getLogger("etwtools").info(f"{value}: reading {out.name} (extracted to a temporary folder)")
        return os.fspath(out)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(incomplete, type="file")]


EXISTING = InputFile()


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        """``warning: <file>: skipped ...`` for a reader's skip report (the one place they are printed),
        ``warning: ...`` for other warnings, the bare message for information."""
        report = getattr(record, "skip_report", None)
        if report is not None:
            return f"warning: {report.line()}"
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        return prefix + record.getMessage()


class _OncePerFile(logging.Filter):
    """A file read twice by one command (a trace that is also the capture) reports its skips once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        report = getattr(record, "skip_report", None)
        if report is None:
            return True
        line = report.line()
        if line in self.seen:
            return False
        self.seen.add(line)
        return True


def _setup_logging(quiet: bool) -> None:
    log = logging.getLogger("etwtools")
    log.handlers[:] = []
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    handler.addFilter(_OncePerFile())
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _info(message: str) -> None:
    sys.stdout.flush()
    logging.getLogger("etwtools").info(message)


def output_options(f):
    """-f, -o, --columns and --wide, shared by every command that writes a table: gives ``writer``."""

    @functools.wraps(f)
    def wrapper(*args, fmt: str | None, out: str | None, columns: str | None, wide: bool, **kwargs):
        picked = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        o = output.Output(output.format_for(fmt, out), out, picked, wide)
        outs = click.get_current_context().meta.get("etwtools.outputs")
        if outs is not None:  # files are written whole or not at all, never over an input
            o.opener = outs.open_binary
        output.refuse_terminal(o.fmt, out)
        return f(*args, writer=o, **kwargs)

    wrapper = click.option(
        "--wide", is_flag=True, help="Tables: every column, cells uncut (for a pager: | less -S)."
    )(wrapper)
    wrapper = click.option(
        "--columns", metavar="A,B,...", help="Only these columns, in this order (every format)."
    )(wrapper)
    wrapper = click.option(
        "-o",
        "--output",
        "out",
        type=click.Path(writable=True),
        help="Write to this file instead of stdout; its extension gives the format.",
    )(wrapper)
    wrapper = click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(output.FORMATS),
        help="table (default): aligned text that fits the terminal; csv; json: one JSON "
        "object per line; parquet: for polars/pandas/DuckDB (not to a terminal). "
        "Default with -o: from its extension (.csv, .json/.jsonl/.ndjson, .parquet, "
        ".txt).",
    )(wrapper)
    return wrapper


#: Parameters naming input files and output files (checked against each other before the work).
_INPUT_PARAMS = ("path", "etl", "tasklists", "pcap", "trace", "traces", "capture")
_OUTPUT_PARAMS = ("out", "annotate")


def _outputs(kwargs: dict) -> Outputs:
    inputs = [
        p
        for name in _INPUT_PARAMS
        for p in (kwargs.get(name) if isinstance(kwargs.get(name), tuple) else [kwargs.get(name)])
    ]
    inputs += click.get_current_context().find_root().meta.get("etwtools.archives", [])
    return Outputs(inputs, [kwargs.get(name) for name in _OUTPUT_PARAMS], stdout=kwargs.get("out") is None)


def _writing(path: str | None):
    """The temporary path to write the output ``path`` to (None: stdout), renamed over it when done."""
    return click.get_current_context().meta["etwtools.outputs"].writing(path)


def _guarded(f):
    """Turn library errors into one line on stderr and exit code 1 (unless --traceback); outputs are
    checked before the work and written whole or not at all (:mod:`etwtools.safe_output`)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        show_tb = ctx.find_root().params.get("traceback", False)
        try:
            with _outputs(kwargs) as outs:
                ctx.meta["etwtools.outputs"] = outs
                return f(*args, **kwargs)
        except EtwToolsError as e:
            if show_tb:
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except BrokenPipeError:  # the reader went away (| head): stop quietly, as a tool killed by SIGPIPE
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            if _real_stdout():
                # polars' writer threads may still hold the closed pipe: leave now (after our own cleanup)
                # rather than through interpreter shutdown, which can abort in a native library
                ctx.find_root().close()
                sys.stderr.flush()
                os._exit(141)
            sys.exit(141)
        except MemoryError:
            if show_tb:
                raise
            click.echo(
                "error: out of memory (the input needs more memory than this machine allows)", err=True
            )
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # an etwtools bug: still one line, with a hint
            if show_tb:
                raise
            if isinstance(e, OSError) and e.errno in (errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                click.echo(f"error: {output_error(e)}", err=True)  # stdout written outside _write
                sys.exit(1)
            click.echo(
                f"error: internal error ({type(e).__name__}: {e}); run again with --traceback and report it",
                err=True,
            )
            sys.exit(2)

    return wrapper


def _real_stdout() -> bool:
    """stdout is the process's file descriptor 1 (not a test runner's buffer)."""
    try:
        return sys.stdout.fileno() == 1
    except (OSError, ValueError, AttributeError):
        return False


def _with_progress(label: str, call, unit: str = "MB"):
    bar = bar_for(label, unit=unit)
    try:
        return call(bar)
    finally:
        if bar is not None:
            bar.close()


@contextlib.contextmanager
def _progress_step(label: str, unit: str = "MB") -> Iterator[Bar | None]:
    """A progress bar for one step (None when stderr is not a terminal), cleared when the step ends."""
    bar = bar_for(label, unit=unit)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2010-01-14T11:20:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--traceback", is_flag=True, help="Show the Python traceback on errors (for bug reports).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.version_option(package_name="etwtools")
def cli(traceback: bool, quiet: bool) -> None:
    """Which process sent this packet? Join Windows ETW traces, captures and tasklist snapshots.

    \b
    Typical session:
      etwtools events --etl kernel.etl                  # network events with PIDs and process names
      etwtools frames --pcap net.pcapng                  # the capture as a table
      etwtools attribute --etl kernel.etl --pcap net.pcapng --tasklist tasklist.txt
      etwtools attribute ... --frame 105540              # the whole chain of evidence for one frame
      etwtools synattack --etl TCPIP.etl                 # when Windows entered/left SYN-attack mode

    --etl takes a binary .etl (NT Kernel Logger, netsh trace, WPR, pktmon) or its tracerpt CSV dump.
    Times are UTC. Data goes to stdout, diagnostics to stderr.
    """
    _setup_logging(quiet)


@cli.command()
@click.option(
    "--etl",
    "path",
    required=True,
    type=EXISTING,
    help="ETL file or tracerpt CSV (dumpfile.csv or 'tracerpt -of CSV'), or a Sysmon / Security "
    "event log (.evtx or JSON lines).",
)
@click.option(
    "--all",
    "all_events",
    is_flag=True,
    help="Every event in the file (not only TcpIp/UdpIp), fields as JSON; with -f parquet -o DIR/: "
    "one Parquet file of typed columns per event type.",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help="With --all: only this provider (name such as Microsoft-Windows-Kernel-Network or TcpIp, "
    "or GUID). Repeatable.",
)
@click.option(
    "--id",
    "ids",
    multiple=True,
    type=int,
    help="With --all: only this event id (kernel events: opcode). Repeatable.",
)
@_guarded
@output_options
def events(
    path: str, all_events: bool, providers: tuple[str, ...], ids: tuple[int, ...], writer: output.Output
) -> None:
    """Network events (TcpIp/UdpIp, Kernel-Network) with PID and process name.

    \b
    Columns: time (UTC), provider, event, protocol, ip_version, pid, process, size,
    local_addr, local_port, remote_addr, remote_port, connid, seqnum, record.
    --all: time, provider, event_id, opcode, version, pid, tid, record, decoder, fields (JSON);
    with -f parquet -o DIR/ the fields are typed columns, one file per event type.
    Example: etwtools events --etl kernel.etl --format csv -o events.csv

    \b
    From an event log (Sysmon 3, Security 5156/5157/5152/5158/5154) the columns are: time,
    sensor_time, host, sensor, event_id, record, pid, tid, process, image_path, user, protocol,
    local_addr, local_port, remote_addr, remote_port, direction, action, process_guid, source.
    """
    if (providers or ids) and not all_events:
        raise click.UsageError("--provider and --id select events of --all")

    from .sources import EVENTLOG_KINDS, detect

    if detect(path) in EVENTLOG_KINDS:
        if all_events:
            raise click.UsageError("--all reads ETL files; an event log gives its network events without it")
        from .sources import read_eventlog

        log = _with_progress("reading", lambda bar: read_eventlog(path, progress=bar))
        writer.write(log.connections, "connections")
        if log.connections.height:
            _info(log.describe())
        else:
            sys.stdout.flush()
            logging.getLogger("etwtools").warning(log.describe())
        return
    if all_events:
        from .event_tables import write_long, write_parquet_dir
        from .parsers.etl.columnar import iter_batches, iter_events

        def tables(bar):
            return iter_batches(path, providers or None, ids or None, progress=bar)

        out = writer.path
        if writer.fmt == "parquet" and out and output.is_dir_target(out):
            files = _with_progress(
                "reading",
                lambda bar: write_parquet_dir(
                    iter_events(path, providers or None, ids or None, progress=bar), out
                ),
            )
            _info(f"{sum(files.values()):,} events in {len(files):,} event types written to {out}")
            return
        if out and os.path.isdir(out):
            raise click.UsageError(f"{out} is a directory: only --all -f parquet writes a directory")
        n = _with_progress("reading", lambda bar: write_long(tables(bar), writer))
        _info(f"{n:,} events")
        return
    if writer.path and os.path.isdir(writer.path):
        raise click.UsageError(f"{writer.path} is a directory: give a file name")
    from .sources import read_events

    df = _with_progress("reading", lambda bar: read_events(path, progress=bar))
    writer.write(df, "events")
    _info(f"{df.height:,} events")


@cli.command()
@click.option(
    "--etl",
    "etl",
    type=EXISTING,
    help="ETL file or tracerpt CSV with process events, or a Sysmon / Security event log "
    "(.evtx or JSON lines: Sysmon 1/5, Security 4688/4689).",
)
@click.option(
    "--tasklist",
    "tasklists",
    multiple=True,
    type=EXISTING,
    help="tasklist output (any format: table, /svc, /v, /fo csv, /fo list). Repeatable.",
)
@click.option("--tasklist-time", help="UTC time the tasklist snapshot was taken, e.g. 2010-01-14T11:20:00Z.")
@_guarded
@output_options
def processes(
    etl: str | None, tasklists: tuple[str, ...], tasklist_time: str | None, writer: output.Output
) -> None:
    """Processes with their lifetimes and services, from a trace and/or tasklist snapshots.

    \b
    Columns: pid, ppid, image, command_line, session, start, end, services, user, source, snapshot.
    Example: etwtools processes --tasklist tasklist_svc.txt
    """
    from .sources import read_processes

    if not etl and not tasklists:
        raise click.UsageError("give --etl FILE and/or --tasklist FILE")
    paths = ([etl] if etl else []) + list(tasklists)
    df = _with_progress(
        "reading", lambda bar: read_processes(paths, snapshot_time=_parse_time(tasklist_time), progress=bar)
    )
    writer.write(df, "processes")
    _info(f"{df.height:,} processes")


@cli.command()
@click.option("--pcap", "pcap", type=EXISTING, help="Capture: pcap, pcapng or Network Monitor .cap.")
@click.option("--etl", "etl", type=EXISTING, help="ETL file with packets (pktmon, netsh trace capture=yes).")
@click.option(
    "--appearances",
    is_flag=True,
    help="pktmon: one row per component a packet crossed (as pktmon's own pcapng), not per packet.",
)
@_guarded
@output_options
def frames(pcap: str | None, etl: str | None, appearances: bool, writer: output.Output) -> None:
    """The frames of a capture, with their 5-tuples and exact UTC times.

    \b
    Columns: frame, time, caplen, wirelen, interface, link_type, direction, ip_version, protocol,
    src_addr, src_port, dst_addr, dst_port, payload_len, tcp_flags, tcp_seq, ip_id, fragment, notes;
    pktmon ETL files add pkt_group, pkt_number, components (the path the packet took) and appearances.
    Example: etwtools frames --pcap net.pcapng --format json | head
    """
    from .sources import read_frames

    if bool(pcap) == bool(etl):
        raise click.UsageError("give exactly one of --pcap FILE or --etl FILE")
    path = pcap or etl
    df = _with_progress("reading", lambda bar: read_frames(path, progress=bar, appearances=appearances))
    writer.write(df, "frames")
    _info(f"{df.height:,} frames")


@dataclass(frozen=True)
class _Inputs:
    """The values of the :func:`attribution_inputs` options (a command takes them as ``**inputs``)."""

    traces: tuple[str, ...]
    capture: str | None
    tasklists: tuple[str, ...]
    tasklist_time: str | None
    offset: float | None
    tolerance: float | None
    local_addrs: tuple[str, ...]
    host: str | None


def _attribute_files(inputs: _Inputs, wanted: tuple[int, ...] = (), grace: float | None = None):
    """The library's attribute_files with progress bars; a missing input is a usage error. ``wanted``:
    frame numbers that must be in the capture (checked before the attribution)."""
    from .attribution import attribute_files
    from .errors import MissingInputError

    try:
        return attribute_files(
            inputs.traces,
            inputs.capture,
            inputs.tasklists,
            offset_s=inputs.offset,
            local_addrs=inputs.local_addrs,
            tasklist_time=_parse_time(inputs.tasklist_time) if inputs.tasklists else None,
            wanted_frames=wanted,
            host=inputs.host,
            steps=_progress_step,
            **({} if inputs.tolerance is None else {"tolerance_s": inputs.tolerance}),
            **({} if grace is None else {"grace_s": grace}),
        )
    except MissingInputError as e:
        raise click.UsageError(e.reason) from None


def attribution_inputs(f):
    """The inputs of an attribution, shared by attribute and report: --etl (repeatable: event logs beside a
    kernel trace), --host, --pcap, --tasklist, --tasklist-time, --offset, --tolerance, --local (the
    fields of :class:`_Inputs`)."""
    for option in reversed(_SEVERAL_OPTIONS + _INPUT_OPTIONS):
        f = option(f)
    return f


_INPUT_OPTIONS = [
    click.option(
        "--pcap",
        "capture",
        type=EXISTING,
        help="The capture: pcap, pcapng, NetMon .cap, or an ETL with packets (netsh trace capture=yes, "
        "pktmon). Omit when the --etl file itself holds the packets.",
    ),
    click.option(
        "--tasklist",
        "tasklists",
        multiple=True,
        type=EXISTING,
        help="tasklist output taken on the same host (adds names and services). Repeatable.",
    ),
    click.option("--tasklist-time", help="UTC time the tasklist snapshot was taken (PIDs are reused)."),
    click.option(
        "--offset",
        type=float,
        help="Capture clock minus trace clock, in seconds (default: estimated from the data).",
    ),
    click.option(
        "--tolerance",
        type=float,
        help="Largest time difference, in seconds, between a frame and its event after alignment.",
    ),
    click.option(
        "--local",
        "local_addrs",
        multiple=True,
        help="An address of the traced host (default: from the trace). Repeatable.",
    ),
]


_SEVERAL_OPTIONS = [
    click.option(
        "--etl",
        "traces",
        required=True,
        multiple=True,
        type=EXISTING,
        help="The trace: ETL file (kernel network events, Kernel-Network) or tracerpt CSV; or Sysmon / "
        "Security event logs (.evtx or JSON lines). Repeatable: several logs, with at most one "
        "kernel trace; each file's kind is found from its content.",
    ),
    click.option(
        "--host",
        help="Event logs of several hosts: the host the capture was taken on (default: the "
        "one whose addresses the capture shows).",
    ),
]


@cli.command()
@attribution_inputs
@click.option(
    "--frame",
    "explain",
    multiple=True,
    type=int,
    help="Print the whole chain of evidence for this frame number. Repeatable.",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Table format: list every frame, also non-TCP/UDP/ICMP frames with no evidence (hidden by default).",
)
@click.option(
    "--annotate",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the capture as pcapng, each attributed packet with comment lines (PID, Process, "
    'Services, Confidence, Method, Reason; Wireshark: frame.comment contains "Process: '
    'store.exe") and, for high/medium confidence, the process id option (epb_processid_threadid). '
    "Frame numbers stay those of the capture.",
)
@click.option(
    "--process-blocks",
    is_flag=True,
    help="With --annotate: also a Process Information Block per process (Wireshark's development "
    "builds show the names with the packets; older versions, e.g. 4.0, list these blocks as "
    "frames, shifting frame numbers).",
)
@click.option(
    "--grace",
    type=click.FloatRange(0, 86400),
    help="Seconds a process keeps its name after its End event (default 5: a socket's last "
    "segments can follow the exit); the reason says when it was used.",
)
@_guarded
@output_options
def attribute(
    explain: tuple[int, ...],
    show_all: bool,
    annotate: str | None,
    process_blocks: bool,
    grace: float | None,
    writer: output.Output,
    **inputs: Any,
) -> None:
    """Attribute every frame of a capture to the process that sent or received it.

    \b
    Matches frames to the trace's TcpIp/UdpIp events by protocol and 5-tuple (UDP: and size),
    after finding the clock offset between capture and trace on its own; resolves PIDs through
    the trace's process events, then tasklist snapshots. Each frame gets a confidence
    (high/medium/low/none), the method, the event it rests on and a one-sentence reason.
    Exit code 1 when no frame at all could be attributed.

    \b
    With event logs (Sysmon 3, Security 5156/5158/5154/5157), each connection event gives its
    5-tuple (a bind or listen: its local endpoint) to its process until another event gives it
    to another; every frame of it, both ways, inherits that owner. Each sensor's clock offset is
    found from the data; the remote name comes from Sysmon's DNS queries (22).

    \b
    Example:
      etwtools attribute --etl kernel.csv --pcap capture.pcap --tasklist tasklist.txt
      etwtools attribute --etl kernel.etl --pcap net.pcapng --frame 105540 --annotate out.pcapng
      etwtools attribute --etl Sysmon.evtx --etl Security.evtx --pcap net.pcapng
    """
    if process_blocks and not annotate:
        raise click.UsageError("--process-blocks goes with --annotate FILE")
    given = _Inputs(**inputs)
    traces, capture = given.traces, given.capture
    result = _attribute_files(given, wanted=explain, grace=grace)
    _print_attribution(result, explain, show_all, writer)
    if annotate:
        from .annotate import write_annotated
        from .logfiles import split_inputs

        kernel = split_inputs(traces)[0]
        with _writing(annotate) as target:
            n = write_annotated(
                capture or kernel or traces[0], result, target, with_process_blocks=process_blocks
            )
        _info(f"wrote {annotate}: {n:,} packets annotated")
    why = result.why_nothing()
    if why:
        click.echo(f"error: nothing attributed: {why}", err=True)
        sys.exit(1)


def _print_attribution(
    result: Attribution, explain: tuple[int, ...], show_all: bool, writer: output.Output
) -> None:
    """The evidence of the frames asked for, the table, the summary, the offset, the notes and (event
    logs) the host chosen."""
    import polars as pl

    if explain and writer.path is None and not writer.to_terminal:
        # a data format on stdout stays data: the explained frames' rows; the evidence goes to stderr
        for n in explain:
            click.echo(result.explain(n) + "\n", err=True)
        writer.write(result.frames.filter(pl.col("frame").is_in(list(explain))), "attribute")
    else:
        for n in explain:
            click.echo(result.explain(n))
            click.echo()
    if (not explain or writer.path) and writer.fmt in ("csv", "json") and hasattr(result, "batches"):
        # every frame, its reasons written a batch at a time as they are written out
        if result.answers.height:
            writer.write_batches(result.batches(output.BATCH_ROWS))
        else:
            writer.write(result.frames, "attribute")
    elif not explain or writer.path:
        rows = result.frames
        if writer.fmt == "table" and not show_all:
            rows = rows.filter(
                pl.col("protocol").is_in(["TCP", "UDP", "ICMP", "ICMPv6"]) | pl.col("confidence").ne("none")
            )
            if rows.height < result.frames.height:
                _info(
                    f"{result.frames.height - rows.height:,} frames that are not TCP, UDP or ICMP and have "
                    "no evidence are not listed (--all lists them)"
                )
        writer.write(rows, "attribute")
    if writer.to_terminal and not explain:
        click.echo()
        click.echo("Summary by process:")
        writer.write(result.summary, "summary", main=False)
        click.echo()
        click.echo(result.describe_offset())
        for note in result.notes:
            click.echo(f"note: {note}")
    else:
        _info(result.describe_offset())
        for note in result.notes:
            _info(f"note: {note}")
    for line in (
        getattr(result, "describe_host", lambda: None)(),
        getattr(result, "describe_header_pid", lambda: None)(),
    ):
        if line:
            _info(line)


@cli.command()
@attribution_inputs
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="The HTML file to write.",
)
@_guarded
def report(out: str, **inputs: Any) -> None:
    """One HTML page of the attribution, to read in any browser (offline: nothing is fetched).

    \b
    The clock offset and what supports it; the traffic over time, one lane per process (and one for
    what is not attributed), with SYN-attack resistance intervals shaded when the trace has them; the
    top talkers of every process (with DNS names from Sysmon's queries); a searchable table of frames
    with the chain of evidence of the frame you pick (the same as attribute --frame N). The inputs
    are those of attribute, event logs included.
    Example: etwtools report --etl kernel.etl --pcap net.pcapng --tasklist tasklist.txt -o report.html
    """
    from .logfiles import split_inputs
    from .report import syn_attack_intervals, write_report

    given = _Inputs(**inputs)
    result = _attribute_files(given)
    # an event-log result keeps each frame's size (no frames table needed)
    fr = result.evidence.frames if hasattr(result, "evidence") else None
    trace = split_inputs(given.traces)[0]
    syn = syn_attack_intervals(trace) if trace is not None else None
    files = list(given.traces) + ([given.capture] if given.capture else []) + list(given.tasklists)
    with _writing(out) as target:
        facts = write_report(result, fr, target, syn_intervals=syn, inputs=files)
    _info(result.describe_offset())
    _info(
        f"wrote {out}: {facts.bytes / 1e6:,.2f} MB, {facts.lanes} lanes, {facts.frames_listed:,} of "
        f"{facts.frames:,} frames listed, {facts.frames_explained:,} with their whole evidence, "
        f"in {facts.seconds:.1f} s"
    )


@cli.command()
@click.option(
    "--etl",
    "path",
    required=True,
    type=EXISTING,
    help="ETL with Microsoft-Windows-TCPIP events (netsh trace, see README).",
)
@click.option(
    "--pcap",
    "pcap",
    type=EXISTING,
    help="A capture of the same period (default: the packets inside the ETL, if any).",
)
@click.option(
    "--table",
    type=click.Choice(["intervals", "events", "packets"]),
    help="The table to write: intervals (default), events (rate-limit and land-attack events), "
    "packets (SYN traffic before/during/after). -o DIR/ writes all three.",
)
@_guarded
@output_options
def synattack(path: str, pcap: str | None, table: str | None, writer: output.Output) -> None:
    """When Windows entered and left SYN-attack resistance mode, and what traffic caused it.

    \b
    Collect on the server (as administrator):
      netsh trace start capture=yes provider=Microsoft-Windows-TCPIP level=0x05 tracefile=TCPIP.etl
      ... wait for the problem ...
      netsh trace stop
    Example: etwtools synattack --etl TCPIP.etl
    """
    from .synattack import synattack as run

    report = _with_progress("reading", lambda bar: run(path, pcap, progress=bar))
    tables = {
        "intervals": (report.intervals, "intervals"),
        "events": (report.other_events, "syn_events"),
        "packets": (report.packets, "syn_packets"),
    }
    if writer.path is not None and output.is_dir_target(writer.path):
        folder = writer.path
        os.makedirs(folder, exist_ok=True)
        for name, (df, view) in tables.items():
            if df is not None:
                target = os.path.join(folder, f"{name}.{output.EXTENSION_OF[writer.fmt]}")
                writer.write(df, view, path=target, main=name == "intervals")
                _info(f"wrote {target}: {df.height:,} rows")
    elif table is not None:
        df, view = tables[table]
        if df is not None:
            writer.write(df, view)
    elif writer.to_terminal:
        if report.intervals.height or report.other_events.height:
            writer.write(report.intervals, "intervals")
        if report.other_events.height:
            click.echo("\nRate-limit and land-attack events:")
            writer.write(report.other_events, "syn_events", main=False)
        if report.packets is not None and report.packets.height:
            click.echo("\nSYN traffic before, during and after each interval:")
            writer.write(report.packets, "syn_packets", main=False)
    else:
        writer.write(report.intervals, "intervals")
        _info("the intervals; the other tables: --table events|packets, or -o DIR/ for one file per table")
    click.echo(report.message, err=True)


def main() -> None:
    """Console-script entry point."""
    # The command-line process does no linear algebra: numpy's BLAS threads would only spin (set before
    # numpy is imported). Collections of the cyclic garbage collector, once the big libraries' objects
    # are in memory, took 5-8 % of a whole ETL read: they run 100 times less often (a short-lived process).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Arrow's jemalloc pool (in Linux wheels; read when pyarrow first allocates) instead of its default
    # mimalloc: events --all on the 500 MB benchmark file peaks 14 MB lower, with a fifth less system time.
    if sys.platform == "linux":
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    gc.set_threshold(70_000, 10, 10)
    cli(prog_name="etwtools")


if __name__ == "__main__":
    main()
