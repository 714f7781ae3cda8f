"""A fork server that runs ``etwtools`` commands the way a shell would, each in its own process under an
address-space cap and a time limit, with the imports paid once.

Run as ``python hostile_runner.py``; it reads one JSON request per line on stdin
(``{"args": [...], "stdout": path, "stderr": path, "timeout": s, "cap": bytes, "stdout_mode": ...}``), forks, and in the
child points file descriptors 1 and 2 at the given files, sets RLIMIT_AS and runs the CLI. It answers
one JSON line per request: ``{"status": exit code or -signal (None: killed after the timeout),
"seconds": wall time, "maxrss_kb": the child's peak RSS}``.

Used by tests/test_hostile_inputs.py and benchmarks/bench_hostile.py.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time


def _preload() -> None:
    """Import what the commands import (not run anything: no thread pool before fork)."""
    import numpy  # noqa: F401
    import polars  # noqa: F401

    import etwtools.cli  # noqa: F401
    from etwtools import annotate, attribution, sources, synattack  # noqa: F401
    from etwtools.parsers import captures, tasklist, tracerpt  # noqa: F401
    from etwtools.parsers.etl import captured_frames, events, generic  # noqa: F401

    try:  # etl-parser's 800 provider modules (events --all): seconds per child otherwise
        import etl.parsers.etw
        import etl.parsers.kernel  # noqa: F401
    except ImportError:
        pass


def _child(req: dict) -> None:
    try:
        for fd, key in ((1, "stdout"), (2, "stderr")):
            f = os.open(req[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        if req.get("stdout_mode") == "closed":
            os.close(1)
        elif req.get("stdout_mode") == "broken_pipe":  # a reader that has gone away
            r, w = os.pipe()
            os.close(r)
            os.dup2(w, 1)
            os.close(w)
        cap = int(req.get("cap", 2 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from etwtools.cli import cli

        code = 0
        try:
            cli.main(args=list(req["args"]), prog_name="etwtools", standalone_mode=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        try:
            sys.stdout.flush()
        except Exception:
            pass
        os._exit(code)
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(99)


def _run(req: dict) -> dict:
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(req)
    deadline = t0 + float(req.get("timeout", 60))
    status = None
    while True:
        done, st, usage = os.wait4(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, st, usage = os.wait4(pid, 0)
            status = None
            break
        time.sleep(0.005)
    return {"status": status, "seconds": time.monotonic() - t0, "maxrss_kb": usage.ru_maxrss}


def main() -> None:
    _preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_run(json.loads(line))), flush=True)


class Runner:
    """Client side: ``Runner().run(args, timeout)`` -> (status, stdout text, stderr text, seconds, maxrss_kb)."""

    def __init__(self, workdir: str) -> None:
        import subprocess

        env = dict(
            os.environ,
            MALLOC_ARENA_MAX="2",
            ARROW_DEFAULT_MEMORY_POOL="system",
            POLARS_MAX_THREADS="2",
            COLUMNS="200",
        )
        self.workdir = workdir
        self.n = 0
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert json.loads(self.proc.stdout.readline())["ready"]

    def run(
        self, args: list[str], timeout: float = 60, cap: int = 2 << 30, stdout_mode: str | None = None
    ) -> tuple:
        """``stdout_mode``: None (a file), "closed" (no file descriptor 1) or "broken_pipe"."""
        self.n += 1
        out = os.path.join(self.workdir, f"run{self.n}.out")
        err = os.path.join(self.workdir, f"run{self.n}.err")
        self.proc.stdin.write(
            json.dumps(
                {
                    "args": args,
                    "stdout": out,
                    "stderr": err,
                    "timeout": timeout,
                    "cap": cap,
                    "stdout_mode": stdout_mode,
                }
            )
            + "\n"
        )
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        with (
            open(out, encoding="utf-8", errors="replace") as f1,
            open(err, encoding="utf-8", errors="replace") as f2,
        ):
            return r["status"], f1.read(), f2.read(), r["seconds"], r["maxrss_kb"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


if __name__ == "__main__":
    main()
